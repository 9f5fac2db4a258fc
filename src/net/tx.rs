// SPDX-License-Identifier: GPL-2.0

//! Transmit: the guest's frames to the backend, on its own vCPU thread.
//!
//! Transmit runs inside the MMIO op (`kvm::InVcpu`): a notify walks the
//! transmit queue through the descriptor engine, pins each chain's pages
//! through the device's transmit pin cache, reads the virtio-net and
//! Ethernet headers once into kernel memory (so the header it checks is the
//! header it forwards), checks them and hands the frame to the backend's
//! uplink; the rest of the frame is copied once, from the pinned pages into
//! each receiver. The chain goes back to the guest (used ring) only when
//! the backend is done with it.

use kernel::prelude::*;

use super::{
    device::{
        ring_areas,
        DevState,
        Device, //
    },
    stats::C, //
};
use crate::{
    backend::{
        Sent,
        Uplink, //
    },
    mem::{
        Buf,
        Frame,
        OwnThread,
        PinBufError,
        UserMem, //
    },
    pvcore::{
        memmap::PAGE_SIZE,
        txpolicy::{
            AtEmpty,
            TxWhy, //
        },
        virtq::Chain,
        vnet::{
            NetHdr,
            Offloads,
            ETH_HLEN,
            HDR_LEN, //
        }, //
    }, //
};

/// Transmit frames one exit may send (vhost-net's weight): a guest whose
/// other vCPUs keep the ring full cannot keep this one in the kernel.
const TX_BUDGET_FRAMES: u32 = 256;
/// Transmit bytes one exit may send (vhost-net's byte weight).
const TX_BUDGET_BYTES: usize = 512 << 10;

/// The chain being sent and its pinned buffer (allocated zeroed, as
/// `RxBig`).
pub(super) struct TxBig {
    pub(super) chain: Chain<64>,
    pub(super) buf: Buf,
}

impl Device {
    /// Transmit: the chains the guest made available, run to completion, at
    /// most `TX_BUDGET_FRAMES` frames or `TX_BUDGET_BYTES` bytes per exit
    /// (a guest whose other vCPUs keep adding chains would otherwise keep
    /// this thread in the kernel for as long as it likes), and none once the
    /// thread has a signal pending. What is left is served at this device's
    /// next exit: the budget's end raises the used-buffer interrupt, so the
    /// guest's handler comes back with an InterruptStatus read.
    ///
    /// Notifications (EVENT_IDX's `avail_event`, or the NO_NOTIFY flag):
    /// - a service that sent frames and found the ring empty leaves them
    ///   off (with `tuning::tx_poll_ns` set): the guest goes on adding
    ///   frames without an exit for each, and the device owes it a poll
    ///   (`tx_deferred`). The poll comes at the device's next exit the guest
    ///   makes anyway (its interrupt handler's InterruptStatus read, a
    ///   receive notify, a vhost kick of either queue), or from the poll
    ///   timer (`transport::poll`) within the poll period;
    /// - a service that found nothing (a poll of an idle ring), and one
    ///   with polling off, turn them back on, re-checking for frames added
    ///   meanwhile: the first frame after idle is notified and served at
    ///   once (request/response traffic never waits for a timer).
    pub(super) fn process_tx(&self, cpu: &dyn OwnThread, st: &mut DevState) {
        st.tx_more = false;
        let poll_ns = self.tx_poll_ns;
        let why = if st.tx_timer {
            TxWhy::Timer
        } else if st.tx_deferred {
            TxWhy::Piggyback
        } else {
            TxWhy::Notify
        };
        st.tx_timer = false;
        let mut completed = false;
        let mut frames = 0u32;
        let mut bytes = 0usize;
        let mut yielded = false;
        let mut deferred = false;
        loop {
            let DevState {
                map,
                txq,
                tx_off,
                tx_pins,
                tx,
                uplink,
                tx_policy,
                ..
            } = &mut *st;
            let Some(q) = txq.as_mut() else { return };
            let mem = UserMem::new(cpu, map);
            if frames >= TX_BUDGET_FRAMES
                || bytes >= TX_BUDGET_BYTES
                || kernel::current!().signal_pending()
            {
                yielded = true;
                if let Err(e) = q.enable_notify(&mem) {
                    return self.broken(st, "transmit ring", e);
                }
                break;
            }
            let TxBig { chain, buf } = &mut **tx;
            match q.pop(&mem, map, chain) {
                Ok(false) if tx_policy.at_empty(why, frames, poll_ns != 0) == AtEmpty::Defer => {
                    if let Err(e) = q.disable_notify(&mem) {
                        return self.broken(st, "transmit ring", e);
                    }
                    deferred = true;
                    break;
                }
                Ok(false) => match q.enable_notify(&mem) {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => return self.broken(st, "transmit ring", e),
                },
                Ok(true) => {}
                Err(e) => {
                    self.counters.inc(C::DropTxBadChain);
                    return self.broken(st, "malformed transmit chain", e);
                }
            }
            frames += 1;
            match tx_pins.acquire(chain, map, buf, false) {
                Ok(()) => {
                    bytes = bytes.saturating_add(buf.len());
                    self.send(buf, *tx_off, uplink.as_mut());
                }
                Err(e) => {
                    self.counters.inc(C::DropTxBadBuffer);
                    if let PinBufError::Pin(e) = e {
                        self.warn("transmit buffer could not be pinned, frame dropped", e);
                    }
                }
            }
            // The buffer goes back to the guest only now: every receiver
            // has its copy.
            tx_pins.release(buf);
            if let Err(e) = q.push(&mem, chain.head(), 0) {
                return self.broken(st, "transmit used ring", e);
            }
            completed = true;
        }
        if yielded {
            st.tx_more = true;
            self.counters.inc(C::TxYields);
        }
        // A budget's end is served like an owed poll (its interrupt brings
        // the guest back), so the timer is only for a deferral.
        if deferred {
            if !st.tx_deferred {
                self.counters.inc(C::TxDeferrals);
            }
            st.tx_deferred = true;
            self.poll.arm(cpu.poll_target(), poll_ns);
        } else if st.tx_deferred {
            st.tx_deferred = false;
            self.poll.cancel();
        }
        let DevState {
            map,
            txq,
            dirty_log,
            ..
        } = &mut *st;
        if let Some(q) = txq.as_mut() {
            if *dirty_log {
                // The used ring (entries, index, avail_event) was written
                // through the VMM's mapping, which KVM does not log.
                let (gpa, len) = ring_areas(q.config())[2];
                (gpa / PAGE_SIZE..=(gpa + len - 1) / PAGE_SIZE).for_each(|g| cpu.mark_dirty(g));
            }
            let mem = UserMem::new(cpu, map);
            if yielded {
                // After a budget's end always, at once: the guest must
                // come back.
                self.raise(1, true);
            } else if completed {
                // Or held back (notification coalescing, `coal`).
                let wanted = q.need_notify(&mem).unwrap_or(true);
                self.completed(1, frames, wanted, true);
            }
        }
    }

    /// Check and forward the frame in pinned transmit buffer `buf`. Its
    /// virtio-net header and Ethernet header are read once into kernel
    /// memory, checked and routed from there; the rest is copied once, from
    /// the pinned pages straight into each receiver.
    fn send(&self, buf: &Buf, tx_off: Offloads, uplink: Option<&mut KBox<dyn Uplink>>) {
        let total = buf.len();
        let mut head = [0u8; HDR_LEN + ETH_HLEN];
        let n = total.min(head.len());
        let got = buf.read(0, head.get_mut(..n).unwrap_or(&mut []));
        let Some((raw, eth)) = head
            .get(..got)
            .and_then(|b| b.split_first_chunk::<HDR_LEN>())
        else {
            self.counters.inc(C::DropTxBadBuffer);
            return;
        };
        let mut hdr = NetHdr::parse(raw);
        let flen = total - HDR_LEN;
        if let Err(e) = hdr.check_parts(eth, flen, tx_off) {
            self.counters.inc(C::DropTxBadHdr);
            self.warn("transmit header refused, frame dropped", e);
            return;
        }
        let frame = Frame::pinned(eth, buf, got, flen);
        let sent = uplink.map_or(Sent::NotAPort, |up| up.xmit(&hdr, &frame));
        match sent {
            Sent::Done => {}
            // No backend completes later yet; when one does, the chain and
            // its pins are kept until it does (see `backend::Sent`).
            Sent::Pending => {}
            Sent::Spoofed => {
                self.counters.inc(C::DropTxSpoofed);
                self.warn(
                    "frame with another port's MAC, a group or zero MAC as source dropped",
                    eth.get(6..12),
                );
                return;
            }
            Sent::Storm => {
                self.counters.inc(C::DropTxStorm);
                self.warn(
                    "broadcast/multicast over the port's rate limit dropped",
                    flen,
                );
                return;
            }
            // Not connected yet, or being detached: off the backend already.
            Sent::NotAPort => return,
        }
        self.counters.inc(C::TxFrames);
        self.counters.add(C::TxBytes, flen as u64);
        if hdr.is_gso() {
            self.counters.inc(C::TxGso);
        }
    }
}
