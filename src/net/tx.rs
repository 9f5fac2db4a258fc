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
            self,
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

/// Frames a backend may hold at once (`Sent::Pending`) per transmit queue.
/// One more waits for the oldest (`Uplink::flush`).
const PENDING: usize = 32;

/// The chain being sent and its pinned buffer, and the frames the backend
/// still reads (allocated zeroed, as `RxBig`).
pub(super) struct TxBig {
    pub(super) chain: Chain<64>,
    pub(super) buf: Buf,
    pub(super) pending: Pending,
}

/// Frames the backend answered `Sent::Pending`, oldest first: their chain
/// heads, and their buffers, pinned until the backend is done with them.
/// All-zero is the empty queue.
pub(super) struct Pending {
    heads: [u16; PENDING],
    bufs: [Buf; PENDING],
    first: usize,
    len: usize,
}

impl Pending {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Keep `buf` (swapped for an empty buffer) for chain `head`; false if
    /// full.
    fn push(&mut self, head: u16, buf: &mut Buf) -> bool {
        if self.len >= PENDING {
            return false;
        }
        let i = (self.first + self.len) % PENDING;
        let (Some(h), Some(b)) = (self.heads.get_mut(i), self.bufs.get_mut(i)) else {
            return false;
        };
        *h = head;
        core::mem::swap(b, buf);
        self.len += 1;
        true
    }

    /// The oldest frame: `f(head, buf)` (which releases the buffer), then
    /// it is gone. False if there is none.
    fn pop(&mut self, f: impl FnOnce(u16, &mut Buf)) -> bool {
        if self.len == 0 {
            return false;
        }
        let i = self.first;
        let (Some(h), Some(b)) = (self.heads.get(i).copied(), self.bufs.get_mut(i)) else {
            return false;
        };
        f(h, b);
        self.first = (self.first + 1) % PENDING;
        self.len -= 1;
        true
    }
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
    ///   timer (`transport::poll`) within the poll period, or (with
    ///   `tuning::tx_poll_adapt`, the default) within a
    ///   period that adapts from `tuning::tx_poll_ns` up to 32 times it
    ///   and 2 ms (`pvcore::txpolicy`), or from the guest's own notify once
    ///   it added `KICK_AFTER` frames;
    /// - a service that found nothing (a poll of an idle ring), and one
    ///   with polling off, turn them back on, re-checking for frames added
    ///   meanwhile: the first frame after idle is notified and served at
    ///   once (request/response traffic never waits for a timer).
    ///
    /// `in_handler`: the service runs inside the guest's interrupt handler
    /// (virtio-mmio's InterruptStatus read): what it completes is signalled
    /// by the status that read returns, with no interrupt of its own (the
    /// handler then goes on to the transmit queue's used ring; an
    /// interrupt raised now would only bring it back for a status read and
    /// an ACK of nothing new). Counted in `tx_handler_completions`.
    pub(super) fn process_tx(&self, cpu: &dyn OwnThread, st: &mut DevState, in_handler: bool) {
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
        // What an earlier service held (`tuning::tx_hold_used`) goes to the
        // guest now, whatever this one holds.
        let mut published = false;
        {
            let DevState { map, txq, .. } = &mut *st;
            if let Some(q) = txq.as_mut().filter(|q| q.held() > 0) {
                match q.publish(&UserMem::new(cpu, map)) {
                    Ok(p) => published = p,
                    Err(e) => return self.broken(st, "transmit used ring", e),
                }
            }
        }
        let mut frames = 0u32;
        let mut bytes = 0usize;
        let mut yielded = false;
        let mut deferred = false;
        // Frames handed to the backend in this service (`Uplink::push`).
        let mut sent = false;
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
            // Frames the backend finished with go back to the guest first;
            // with the backend holding `PENDING`, wait for it. Nothing to
            // ask while it holds none (a switch never does).
            if tx.pending.len() > 0 {
                let mut done = uplink.as_mut().map_or(0, |u| u.completed());
                if tx.pending.len() >= PENDING {
                    if let Some(u) = uplink.as_mut() {
                        u.flush();
                        self.counters.inc(C::TxFlushes);
                    }
                    done = u32::MAX;
                }
                if let Err(e) = Self::complete(q, &mem, tx_pins, &mut tx.pending, done) {
                    return self.broken(st, "transmit used ring", e);
                }
            }
            let TxBig {
                chain,
                buf,
                pending,
            } = &mut **tx;
            match q.pop(&mem, map, chain) {
                Ok(false) if tx_policy.at_empty(why, frames, poll_ns != 0) == AtEmpty::Defer => {
                    // Off; with `tx_poll_adapt`, but for a burst: the guest
                    // notifies anyway at its `KICK_AFTER`-th frame
                    // (EVENT_IDX).
                    let r = if self.tx_poll_adapt {
                        q.notify_after(&mem, txpolicy::KICK_AFTER)
                    } else {
                        q.disable_notify(&mem)
                    };
                    if let Err(e) = r {
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
                    sent = true;
                    // The backend reads the pages: chain and pins wait for
                    // its completion (`complete`). There is room: a full
                    // queue was flushed above.
                    if self.send(buf, *tx_off, uplink.as_mut()) == Some(Sent::Pending)
                        && pending.push(chain.head(), buf)
                    {
                        self.counters.inc(C::TxPending);
                        continue;
                    }
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
            if let Err(e) = q.push_held(&mem, chain.head(), 0) {
                return self.broken(st, "transmit used ring", e);
            }
        }
        // What the backend finished meanwhile; what it still holds is
        // waited for now (bounded: a NIC reads a frame in microseconds), so
        // no chain stays with the backend once the exit is over. The batch
        // is handed over first (a NIC's tail, once per service).
        {
            let DevState {
                map,
                txq,
                tx_pins,
                tx,
                uplink,
                ..
            } = &mut *st;
            if sent {
                if let Some(u) = uplink.as_mut() {
                    u.push();
                }
            }
            if let (Some(q), Some(u), true) = (txq.as_mut(), uplink.as_mut(), tx.pending.len() > 0)
            {
                let mut done = u.completed();
                if tx.pending.len() > done as usize {
                    u.flush();
                    self.counters.inc(C::TxFlushes);
                    done = u32::MAX;
                }
                let mem = UserMem::new(cpu, map);
                if let Err(e) = Self::complete(q, &mem, tx_pins, &mut tx.pending, done) {
                    return self.broken(st, "transmit used ring", e);
                }
            }
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
            let period = if self.tx_poll_adapt {
                st.tx_policy.period_ns(poll_ns)
            } else {
                poll_ns
            };
            self.poll.arm(cpu.poll_target(), period);
        } else if st.tx_deferred {
            st.tx_deferred = false;
            self.poll.cancel();
        }
        // The used entries of this service: published now, or (a poll owed,
        // `tx_hold_used`) held for it: the guest's driver then frees its
        // buffers later, as under vhost-net, whose worker completes after
        // the kick returned. Its TCP sees the socket's earlier data still
        // below it, so that it corks the next write onto what it has
        // queued (autocorking) instead of sending each write as a frame of
        // its own. Measured no better, and the frames did not grow
        // (bench/results/hold-2026-12-02: a stream's ring is notified most
        // of the time, so little is held): off by default. A budget's end
        // publishes: the guest must come back.
        let hold = deferred && self.tx_hold_used;
        let DevState { map, txq, .. } = &mut *st;
        if let Some(q) = txq.as_mut().filter(|_| !hold) {
            match q.publish(&UserMem::new(cpu, map)) {
                Ok(p) => published |= p,
                Err(e) => return self.broken(st, "transmit used ring", e),
            }
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
            } else if published {
                // Or held back (notification coalescing, `coal`), or, in
                // the guest's handler, the bit only.
                let wanted = q.need_notify(&mem).unwrap_or(true);
                if in_handler {
                    self.counters.inc(C::TxHandlerCompletions);
                }
                self.completed(1, frames, wanted, !in_handler);
            }
        }
    }

    /// The `n` oldest pending frames (all for `u32::MAX`) back to the
    /// guest: their pins released, their chains in the used ring (held:
    /// the service publishes them).
    fn complete(
        q: &mut crate::pvcore::virtq::Virtqueue,
        mem: &UserMem<'_>,
        pins: &mut crate::mem::VmPins,
        pending: &mut Pending,
        n: u32,
    ) -> Result<(), crate::pvcore::virtq::QueueError> {
        let mut res = Ok(());
        for _ in 0..n.min(PENDING as u32) {
            let more = pending.pop(|head, buf| {
                pins.release(buf);
                if res.is_ok() {
                    res = q.push_held(mem, head, 0);
                }
            });
            if !more {
                break;
            }
        }
        res
    }

    /// Gives up the pending frames without completing them (the queue is
    /// being stopped): the backend is flushed first, so that nothing reads
    /// their pages any more, then they are unpinned.
    pub(super) fn abandon_pending(st: &mut DevState) {
        let DevState {
            tx_pins,
            tx,
            uplink,
            ..
        } = st;
        if tx.pending.len() == 0 {
            return;
        }
        if let Some(u) = uplink.as_mut() {
            u.flush();
        }
        while tx.pending.pop(|_, buf| tx_pins.release(buf)) {}
    }

    /// Check and forward the frame in pinned transmit buffer `buf`. Its
    /// virtio-net header and Ethernet header are read once into kernel
    /// memory, checked and routed from there; the rest is copied once, from
    /// the pinned pages straight into each receiver (or read by the NIC).
    /// What the backend said, if it was given the frame.
    fn send(
        &self,
        buf: &Buf,
        tx_off: Offloads,
        uplink: Option<&mut KBox<dyn Uplink>>,
    ) -> Option<Sent> {
        let total = buf.len();
        let mut head = [0u8; HDR_LEN + ETH_HLEN];
        let n = total.min(head.len());
        let got = buf.read(0, head.get_mut(..n).unwrap_or(&mut []));
        let Some((raw, eth)) = head
            .get(..got)
            .and_then(|b| b.split_first_chunk::<HDR_LEN>())
        else {
            self.counters.inc(C::DropTxBadBuffer);
            return None;
        };
        let mut hdr = NetHdr::parse(raw);
        let flen = total - HDR_LEN;
        if let Err(e) = hdr.check_parts(eth, flen, tx_off) {
            self.counters.inc(C::DropTxBadHdr);
            self.warn("transmit header refused, frame dropped", e);
            return None;
        }
        let frame = Frame::pinned(eth, buf, got, flen);
        let sent = uplink.map_or(Sent::NotAPort, |up| up.xmit(&hdr, &frame));
        match sent {
            // Pending: the caller keeps the chain and its pins until the
            // backend completes it (see `backend::Sent`).
            Sent::Done | Sent::Pending => {}
            Sent::Spoofed => {
                self.counters.inc(C::DropTxSpoofed);
                self.warn(
                    "frame with another port's MAC, a group or zero MAC as source dropped",
                    eth.get(6..12),
                );
                return Some(sent);
            }
            Sent::Storm => {
                self.counters.inc(C::DropTxStorm);
                self.warn(
                    "broadcast/multicast over the port's rate limit dropped",
                    flen,
                );
                return Some(sent);
            }
            // Not connected yet, or being detached: off the backend already.
            Sent::NotAPort => return Some(sent),
        }
        self.counters.inc(C::TxFrames);
        self.counters.add(C::TxBytes, flen as u64);
        if hdr.is_gso() {
            self.counters.inc(C::TxGso);
        }
        Some(sent)
    }
}
