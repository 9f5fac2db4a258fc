// SPDX-License-Identifier: GPL-2.0

//! Zero-copy receive: the device lends the guest's posted receive buffers to
//! a backend that writes frames into memory itself (a NIC pool), the
//! receive buffer provider of `backend::Port::lend`.
//!
//! A loan is a receive chain popped from the avail ring, checked and
//! translated once, its pages pinned for as long as it is lent. If the
//! bytes after the virtio-net header's place lie in one piece of one pinned
//! page, the loan says where (`Loan::direct`) and the NIC writes the frame
//! there; otherwise the backend receives into its own memory and the frame
//! is copied in when the loan comes back (a bounce, counted). A chain that
//! fails its checks is lent too, with nothing to write into: it comes back
//! empty (used length 0), so the loans stay in avail order.
//!
//! Loans come back oldest first (a NIC writes its ring in order). When the
//! device must take them back unwritten (the queue stops, the device is
//! reset, the memory map changes, KVM starts logging dirty pages), its own
//! thread marks the lender closing, asks the backend to stop writing into
//! them (`Uplink::reclaim`: the pool's receive queue disabled and the
//! disable confirmed), and only then unpins them and rewinds the queue's
//! avail index by their number: the guest gets the same buffers again, and
//! nothing was written into a page after it was unpinned. If the backend
//! could not confirm, the pages stay pinned (leaked, logged) rather than
//! freed under a NIC that may still write them.
//!
//! Lending needs MRG_RXBUF (a frame in one buffer, the driver's buffers of
//! at least 1,536 bytes) and no dirty logging (the NIC writes pages the
//! device could not mark dirty): otherwise the backend delivers copies as
//! before (`Port::deliver`). While the lender is active nothing else pops
//! the receive queue.

use kernel::{
    prelude::*,
    sync::atomic::{
        Atomic,
        Relaxed, //
    },
};

use super::{
    device::{
        DevState,
        Device, //
    },
    rx::RxState,
    stats::C,
};
use crate::{
    backend::{
        Loan,
        Returned, //
    },
    mem::{
        Buf,
        Frame,
        OwnThread,
        PinBufError, //
    },
    pvcore::{
        virtq::Chain,
        vnet::{
            NetHdr,
            HDR_LEN, //
        },
    },
    transport::Transport, //
};

/// Most buffers lent at once (a NIC pool's ring holds 127).
const LEND_MAX: usize = 128;
/// Segments of a lent buffer: a mergeable receive buffer has one or two
/// (it may cross a page); a chain of more is lent empty.
const LEND_SEGS: usize = 4;

/// One lent buffer.
struct Lent {
    head: u16,
    /// Its pins (empty for a chain lent empty).
    buf: Buf<LEND_SEGS>,
    /// The chain failed its checks: it comes back empty.
    dead: bool,
}

/// The loans of one receive queue, under `Device::rx` (`RxState::lender`).
pub(super) struct Lender {
    /// A ring of `LEND_MAX` loans, the oldest at `first`.
    slots: KVVec<Lent>,
    first: usize,
    count: usize,
    /// Loans are being taken back (see the module documentation): none is
    /// given out, and the backend gives none back.
    closing: bool,
    /// Scratch for popping.
    chain: Chain<64>,
    /// The avail index of a chain the device's own thread could not pin
    /// (with faults allowed): lent empty when popped next.
    dead_at: Option<u16>,
}

impl Lender {
    fn new() -> Result<KBox<Self>> {
        let mut slots = KVVec::with_capacity(LEND_MAX, GFP_KERNEL)?;
        for _ in 0..LEND_MAX {
            slots.push(
                Lent {
                    head: 0,
                    buf: Buf::new(),
                    dead: false,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(KBox::new(
            Self {
                slots,
                first: 0,
                count: 0,
                closing: false,
                chain: Chain::new(),
                dead_at: None,
            },
            GFP_KERNEL,
        )?)
    }

    /// Loans out now (for vhost's GET_VRING_BASE: they were not used).
    pub(super) fn outstanding(&self) -> u16 {
        u16::try_from(self.count).unwrap_or(u16::MAX)
    }
}

/// The device's lending state outside its `rx` lock (readable by any
/// thread without it).
pub(super) struct LendFlags {
    /// The lender is active: frames come only through loans.
    pub(super) active: Atomic<bool>,
    /// The backend wants the device's own thread to call its
    /// `Uplink::rx_service` (a busy receive side, a page to fault in, the
    /// guest posted buffers).
    pub(super) want: Atomic<bool>,
    /// The device has its uplink (`Device::set_uplink`): only then may it
    /// lend, so that taking loans back can always reach the backend.
    pub(super) linked: Atomic<bool>,
    /// Its backend borrows receive buffers (`Uplink::borrows_rx`, and
    /// `rx_lend`): a guest that posts some (a receive notify) is worth
    /// telling it about. Devices that never lend (a switch's) never call it.
    pub(super) lends: Atomic<bool>,
}

impl LendFlags {
    pub(super) const fn new() -> Self {
        Self {
            active: Atomic::new(false),
            want: Atomic::new(false),
            linked: Atomic::new(false),
            lends: Atomic::new(false),
        }
    }
}

impl Device {
    /// `Port::lend` (see there).
    pub(super) fn lend(&self, need: usize, out: &mut [Loan]) -> Option<usize> {
        let Some(mut rx) = self.rx.try_lock() else {
            // Its own thread has it: ask again from there.
            if self.lending.active.load(Relaxed) {
                self.lending.want.store(true, Relaxed);
                self.transport.kick();
                return Some(0);
            }
            return None;
        };
        if rx.lender.as_ref().is_none_or(|l| !l.closing) && !self.lending.active.load(Relaxed) {
            // Start lending only with nothing else in the queue's way.
            let can = crate::tuning::rx_lend()
                && self.lending.linked.load(Relaxed)
                && rx.q.is_some()
                && rx.mrg_rxbuf
                && !rx.dirty_log
                && !self.map_stale(&rx)
                && self.backlog.lock().is_empty();
            if !can {
                return None;
            }
            if rx.lender.is_none() {
                rx.lender = Some(Lender::new().ok()?);
            }
            self.lending.active.store(true, Relaxed);
        }
        Some(self.lend_locked(&mut rx, need, out))
    }

    fn lend_locked(&self, rx: &mut RxState, need: usize, out: &mut [Loan]) -> usize {
        if rx.q.is_none() || rx.dirty_log {
            return 0;
        }
        if self.map_stale(rx) {
            // Only the device's own thread reads the map afresh (and takes
            // the loans of the old one back): have it come.
            self.lending.want.store(true, Relaxed);
            self.transport.kick();
            return 0;
        }
        let stale = &self.mm_seq;
        let RxState {
            q,
            ring,
            pins,
            big,
            lender,
            ..
        } = rx;
        let (Some(q), Some(l)) = (q.as_mut(), lender.as_mut()) else {
            return 0;
        };
        let Lender {
            slots,
            first,
            count,
            closing,
            chain,
            dead_at,
        } = &mut **l;
        if *closing {
            return 0;
        }
        let mut n = 0usize;
        let mut bad = None;
        while n < out.len() && *count < LEND_MAX {
            let idx = q.last_avail();
            match q.pop(&**ring, &big.map, &mut *chain) {
                Ok(true) => {}
                Ok(false) => {
                    // Ask for a notify when the guest adds buffers; if it
                    // added some meanwhile, go on.
                    match q.enable_notify_for_more(&**ring) {
                        Ok(true) => continue,
                        _ => break,
                    }
                }
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            }
            let at = (*first + *count) % LEND_MAX;
            let Some(slot) = slots.get_mut(at) else {
                q.unpop();
                break;
            };
            slot.head = chain.head();
            slot.dead = false;
            let direct = match pins.acquire(chain, &big.map, &mut slot.buf, true) {
                Ok(()) if big.map_gen.stale(pins, stale) => {
                    pins.release(&mut slot.buf);
                    q.unpop();
                    self.lending.want.store(true, Relaxed);
                    self.transport.kick();
                    break;
                }
                Ok(()) => {
                    if slot.buf.len() >= HDR_LEN + need {
                        slot.buf.page_at(HDR_LEN, need)
                    } else {
                        None
                    }
                }
                // A chain whose pages the device's own thread could not
                // pin either (`lend_service`): lent empty, as the copy path
                // drops its frame, rather than asked for again for ever.
                Err(PinBufError::WouldFault) if *dead_at == Some(idx) => {
                    *dead_at = None;
                    self.warn("receive buffer cannot be pinned, returned empty", idx);
                    slot.dead = true;
                    None
                }
                // Not from this thread: the chain stays available, the
                // device's own thread faults its pages in and comes back.
                Err(PinBufError::WouldFault) => {
                    q.unpop();
                    self.lending.want.store(true, Relaxed);
                    self.transport.kick();
                    break;
                }
                // The guest's malformed buffer: lent empty, returned empty.
                Err(e) => {
                    self.warn("receive buffer unusable, returned empty", e);
                    slot.dead = true;
                    None
                }
            };
            let Some(o) = out.get_mut(n) else {
                pins.release(&mut slot.buf);
                q.unpop();
                break;
            };
            *o = Loan {
                token: at as u16,
                direct,
            };
            *count += 1;
            n += 1;
        }
        self.counters.add(C::RxLent, n as u64);
        if let Some(e) = bad {
            // As on the copy path: the queue needs a reset (its loans are
            // taken back then).
            self.rx_broken(rx, "malformed receive chain", e);
        }
        n
    }

    /// `Port::returned` (see there).
    pub(super) fn loan_returned(&self, token: u16, r: Returned<'_>) -> bool {
        let Some(mut rx) = self.rx.try_lock() else {
            self.lending.want.store(true, Relaxed);
            self.transport.kick();
            return false;
        };
        if rx.q.is_none() {
            // Stopped (broken, from another thread): the loans wait for the
            // reset, which takes them back.
            return false;
        }
        if self.map_stale(&rx) {
            // The pages may not be the guest's any more: nothing is written
            // until the device's own thread took the loans back.
            self.lending.want.store(true, Relaxed);
            self.transport.kick();
            return false;
        }
        let RxState {
            q,
            ring,
            pins,
            lender,
            off,
            ..
        } = &mut *rx;
        let (Some(q), Some(l)) = (q.as_mut(), lender.as_mut()) else {
            return true;
        };
        let newest = (l.first + l.count + LEND_MAX - 1) % LEND_MAX;
        if l.count > 0 && usize::from(token) == newest && matches!(r, Returned::Empty) {
            // The newest loan back unused (the backend could not post it):
            // nothing was popped after it, so it goes back on the queue.
            if let Some(slot) = l.slots.get_mut(newest) {
                pins.release(&mut slot.buf);
            }
            l.count -= 1;
            q.unpop();
            return true;
        }
        if l.count == 0 || usize::from(token) != l.first {
            // Not the oldest: a backend bug, not the guest's.
            self.warn("loan returned out of order, ignored", token);
            return true;
        }
        let at = l.first;
        let Some(slot) = l.slots.get_mut(at) else {
            return true;
        };
        let hdr_of = |h: &NetHdr| {
            let mut h = NetHdr {
                num_buffers: 1,
                ..*h
            };
            if h.fits(*off).is_err() {
                h.flags = 0;
            }
            h.to_bytes()
        };
        let used = match (&r, slot.dead) {
            (_, true) | (Returned::Empty, _) => {
                self.counters.inc(C::DropRxTooSmall);
                0
            }
            (Returned::Written(h, len), false) => {
                let len = *len as usize;
                let ok = slot.buf.write(&hdr_of(h), &Frame::kernel(&[]), 0) == HDR_LEN;
                if ok && slot.buf.len() >= HDR_LEN + len {
                    self.counters.inc(C::RxZeroCopy);
                    self.counters.add(C::RxBytes, len as u64);
                    HDR_LEN + len
                } else {
                    self.counters.inc(C::DropRxTooSmall);
                    0
                }
            }
            (Returned::Copy(h, frame), false) => {
                let total = HDR_LEN + frame.len();
                if slot.buf.len() >= total && slot.buf.write(&hdr_of(h), frame, 0) == total {
                    self.counters.inc(C::RxBounced);
                    self.counters.add(C::RxBytes, frame.len() as u64);
                    total
                } else {
                    self.counters.inc(C::DropRxTooSmall);
                    0
                }
            }
        };
        let head = slot.head;
        pins.release(&mut slot.buf);
        l.first = (l.first + 1) % LEND_MAX;
        l.count -= 1;
        if used > 0 {
            self.counters.inc(C::RxFrames);
            self.counters.inc(C::RxDirect);
        }
        let len = u32::try_from(used).unwrap_or(0);
        let pushed = q.push(&**ring, head, len);
        let notify = pushed.is_ok() && q.need_notify(&**ring).unwrap_or(true);
        if let Err(e) = pushed {
            self.warn("receive used ring", e);
        }
        drop(rx);
        self.completed(0, 1, notify, true);
        true
    }

    /// Take every loan back (see the module documentation): on the device's
    /// own thread, before its receive pins or its map go, `rx` not held.
    /// Afterwards the lender is inactive; the next `lend` may start it
    /// again (the caller has the backend ask, `Uplink::rx_service`, if it
    /// wants that), unless `stop`: then the receive queue is stopped in the
    /// same critical section, so no loan is made between the two (lending
    /// needs a running queue). True if it was active.
    pub(super) fn reclaim_loans(&self, st: &mut DevState, stop: bool) -> bool {
        if !self.lending.active.load(Relaxed) {
            if stop {
                self.rx.lock().stop();
            }
            return false;
        }
        let outstanding = {
            let mut rx = self.rx.lock();
            rx.lender.as_mut().map_or(0, |l| {
                l.closing = true;
                l.count
            })
        };
        // No uplink (not connected yet, or gone) confirms nothing: loans
        // are kept pinned then.
        let confirmed = match st.uplink.as_mut() {
            Some(u) => u.reclaim(),
            None => outstanding == 0,
        };
        let mut rx = self.rx.lock();
        let RxState {
            q, pins, lender, ..
        } = &mut *rx;
        if let Some(l) = lender.as_mut() {
            let n = l.count;
            for k in (0..n).rev() {
                let at = (l.first + k) % LEND_MAX;
                if let Some(slot) = l.slots.get_mut(at) {
                    if confirmed {
                        pins.release(&mut slot.buf);
                    } else {
                        // The NIC may still write them: the pins are
                        // dropped unreleased, so the cache never unpins
                        // those pages (leaked, not freed under the NIC).
                        slot.buf = Buf::new();
                    }
                }
                // Given back to the guest only if nothing writes them any
                // more: unconfirmed, they stay in flight (the pool is stuck
                // until the NIC is reset).
                if let (true, Some(q)) = (confirmed, q.as_mut()) {
                    q.unpop();
                }
            }
            if !confirmed && n > 0 {
                self.warn("receive buffers kept pinned: the backend did not stop", n);
            }
            self.counters.add(C::RxReclaimed, n as u64);
            l.first = 0;
            l.count = 0;
            l.closing = false;
        }
        self.lending.active.store(false, Relaxed);
        if stop {
            rx.stop();
        }
        true
    }

    /// On the device's own thread (each service of it): if the backend
    /// asked, fault in the next receive buffer's pages (a sender could not)
    /// and let the backend ask again.
    pub(super) fn lend_service(&self, cpu: &dyn OwnThread, st: &mut DevState) {
        if !self.lending.want.xchg(false, Relaxed) {
            return;
        }
        let _ = cpu;
        {
            let mut rx = self.rx.lock();
            let RxState {
                q,
                ring,
                pins,
                big,
                lender,
                ..
            } = &mut *rx;
            let mut bad = None;
            if let (Some(q), Some(l)) = (q.as_mut(), lender.as_mut()) {
                let idx = q.last_avail();
                match q.pop(&**ring, &big.map, &mut l.chain) {
                    Ok(true) => {
                        let mut b: Buf<LEND_SEGS> = Buf::new();
                        match pins.acquire(&l.chain, &big.map, &mut b, false) {
                            Ok(()) => pins.release(&mut b),
                            // Not even from here: the next loan of it is
                            // empty (`lend_locked`).
                            Err(_) => l.dead_at = Some(idx),
                        }
                        q.unpop();
                    }
                    Ok(false) => {}
                    Err(e) => bad = Some(e),
                }
            }
            if let Some(e) = bad {
                self.rx_broken(&mut rx, "malformed receive chain", e);
            }
        }
        if let Some(u) = st.uplink.as_mut() {
            u.rx_service();
        }
    }
}
