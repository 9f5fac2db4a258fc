// SPDX-License-Identifier: GPL-2.0

//! Receive: frames from the backend into the guest's receive buffers.
//!
//! Receive works from any thread. The receive queue's rings are pinned
//! while it runs (`mem::RingMem`) and its buffers are pinned through the
//! device's pin cache as they are used (`mem::VmPins`), so a sender writes a
//! frame straight into the receiver's buffers and used ring on its own
//! thread (run to completion), then signals the receiver's interrupt. Only
//! when that cannot be done now (no receive buffer posted, a memory map
//! change not yet seen by the receiver, a checksum to complete, the
//! receiver's own thread busy with its receive side, a page that would have
//! to be faulted in) does the frame wait in the receiver's backlog, which its
//! own vCPU thread drains when its transport says so (virtio-mmio: on a
//! notify, or when the guest's interrupt handler reads InterruptStatus).

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
        Device,
        MapGen, //
    },
    stats::C, //
};
use crate::{
    backend::Delivery,
    kvm::GuestMap,
    mem::{
        Buf,
        Frame,
        OwnThread,
        PinBufError,
        RingMem,
        VmPins, //
    },
    pvcore::{
        backlog::{
            Backlog,
            BacklogError,
            Entry, //
        },
        pincache::PinError,
        virtq::{
            Chain,
            Virtqueue, //
        },
        vnet::{
            self,
            NetHdr,
            Offloads,
            HDR_LEN, //
        }, //
    },
    transport::Transport, //
};

/// Bytes of frames a port's backlog holds (16 full GSO frames, or about 700
/// MTU-sized ones) before it drops its own traffic.
const BACKLOG_BYTES: usize = 1 << 20;
/// How often draining the backlog tries again when the guest adds buffers
/// while notifications are being re-enabled.
const DRAIN_RETRIES: u32 = 4;
/// Frames a port's backlog holds.
const BACKLOG_FRAMES: usize = 256;
/// Receive buffers one frame may fill with MRG_RXBUF; a guest posting
/// smaller buffers than that loses the frame (counted as too small).
const MAX_RX_BUFFERS: usize = 64;
/// Heap storage for the backlog (the core wants `AsRef`/`AsMut` slices):
/// its bytes (1 MiB) and its frame list (8 KiB, not for a kernel stack).
pub(super) struct Heap<T>(KVVec<T>);

impl<T> AsRef<[T]> for Heap<T> {
    fn as_ref(&self) -> &[T] {
        &self.0
    }
}

impl<T> AsMut<[T]> for Heap<T> {
    fn as_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

pub(super) type PortBacklog = Backlog<Heap<u8>, Heap<Entry>>;

/// An empty backlog of `BACKLOG_BYTES` and `BACKLOG_FRAMES`.
pub(super) fn new_backlog() -> Result<PortBacklog> {
    Ok(Backlog::new(
        Heap(KVVec::from_elem(0u8, BACKLOG_BYTES, GFP_KERNEL)?),
        Heap(KVVec::from_elem(
            Entry::default(),
            BACKLOG_FRAMES,
            GFP_KERNEL,
        )?),
    ))
}

/// The large part of the receive side (about 8 KiB), allocated zeroed: the
/// all-zero value of each field is valid (empty map of generation 0, empty
/// chains and buffers), and it never lives on a kernel stack.
pub(super) struct RxBig {
    /// The memory map the queue was checked against (the vCPU thread's copy
    /// of generation `map_gen`).
    pub(super) map: GuestMap,
    pub(super) map_gen: MapGen,
    /// Receive chains and their pinned buffers for the frame being written:
    /// the first (which takes the header last) and the current later one.
    pub(super) first: Chain<64>,
    pub(super) more: Chain<64>,
    pub(super) bfirst: Buf,
    pub(super) bmore: Buf,
    /// Receive buffers filled for the current frame: (head, bytes).
    pub(super) used: [(u16, u32); MAX_RX_BUFFERS],
}

/// The receive side, under `Device::rx`: usable from any thread.
pub(super) struct RxState {
    pub(super) q: Option<Virtqueue>,
    /// The queue's rings, pinned while it runs.
    pub(super) ring: KBox<RingMem>,
    pub(super) pins: VmPins,
    pub(super) big: KBox<RxBig>,
    /// Offloads the driver takes, and MRG_RXBUF.
    pub(super) off: Offloads,
    pub(super) mrg_rxbuf: bool,
    /// KVM logs writes to the VM's memory (live migration): every page the
    /// device writes must be marked dirty, which only the VM's own vCPU
    /// thread can do, so frames for it wait for that thread.
    pub(super) dirty_log: bool,
    /// The backlog frame being written by the drain, copied out of the
    /// backlog so that senders can push while the drain pins (and faults).
    pub(super) scratch: KVVec<u8>,
    /// The next avail index of the queue when it last stopped (also when
    /// it broke): what vhost's GET_VRING_BASE reports.
    pub(super) stopped_at: Option<u16>,
    /// Buffers lent to the backend (`lend`), once it asked for some.
    pub(super) lender: Option<KBox<super::lend::Lender>>,
}

impl RxState {
    /// Stop the queue and unpin its rings (the driver took them back, the
    /// queue is broken, or its memory moved).
    pub(super) fn stop(&mut self) {
        if let Some(q) = self.q.take() {
            // Lent buffers were not used: the guest gets them again.
            let lent = self.lender.as_ref().map_or(0, |l| l.outstanding());
            self.stopped_at = Some(q.last_avail().wrapping_sub(lent));
        }
        self.ring.release(&mut self.pins);
    }
}

/// What happened to one frame offered to a receive queue.
enum Rx {
    /// Written into the guest's buffers, or dropped with a counted reason;
    /// true if the guest wants an interrupt for it (EVENT_IDX).
    Done(bool),
    /// Cannot be written now (no buffer yet, map change pending, needs the
    /// receiver's thread): it waits in the backlog. True if buffers came
    /// while notifications were being re-enabled (worth one more try).
    Wait(bool),
}

impl Device {
    /// A malformed receive queue, found on any thread: stop it and have the
    /// registers say so at the next access.
    pub(super) fn rx_broken(&self, rx: &mut RxState, what: &str, err: impl core::fmt::Debug) {
        self.warn(what, err);
        rx.stop();
        self.transport.needs_reset();
    }

    /// Called by the backend on the sender's thread: write `frame` (with its
    /// checked header, reaching the port as `how`) into this port's receive
    /// buffers now if it can, or queue it in the backlog and kick the
    /// interrupt. A flooded frame finding the flooded half of the backlog
    /// full is dropped (`drop_rx_flood`): the other half waits for frames
    /// addressed to this port.
    pub(super) fn receive(&self, hdr: &NetHdr, frame: &Frame<'_>, how: Delivery) {
        if self.lending.active.load(Relaxed) {
            // Frames come only through loans while lending (nothing else may
            // pop the queue): a backend never delivers then.
            self.counters.inc(C::DropRxNoBuffer);
            return;
        }
        // Never wait for the receiver: its own thread may hold `rx` while it
        // faults pages in (for a VMM that may never resolve the fault). The
        // frame then waits in the backlog for that thread.
        if let Some(mut rx) = self.rx.try_lock() {
            // Frames already waiting go first: keep the order.
            if self.backlog.lock().is_empty() {
                if let Rx::Done(notify) = self.rx_frame(&mut rx, hdr, frame, None) {
                    // Or held back (notification coalescing, `coal`).
                    self.completed(0, 1, notify, true);
                    return;
                }
            }
        }
        // The guard goes at the end of the statement: the kick is outside it.
        let pushed = self
            .backlog
            .lock()
            .push_with(*hdr, frame.len(), how, |d| frame.copy_to(d));
        match pushed {
            Err(BacklogError::FloodShare) => self.counters.inc(C::DropRxFlood),
            Err(_) => self.counters.inc(C::DropRxNoBuffer),
            Ok(was_empty) => {
                self.counters.inc(C::RxDeferred);
                if was_empty {
                    self.transport.kick();
                }
            }
        }
    }

    /// Offer one frame to the receive queue. `own`: the device's own vCPU
    /// thread, taking the frame from the backlog; `None`: a sender's thread
    /// (direct), which must not modify the frame (a flood shares it between
    /// receivers) and cannot mark pages dirty, so a checksum to complete or
    /// a dirty-logged guest makes the frame wait for the receiver's own
    /// thread.
    fn rx_frame(
        &self,
        rx: &mut RxState,
        hdr: &NetHdr,
        frame: &Frame<'_>,
        own: Option<&dyn OwnThread>,
    ) -> Rx {
        let direct = own.is_none();
        if direct && rx.dirty_log {
            return Rx::Wait(false);
        }
        if rx.q.is_none() || self.map_stale(rx) {
            return Rx::Wait(false);
        }
        match hdr.fits(rx.off) {
            Ok(()) => {}
            Err(true) if direct => return Rx::Wait(false),
            // The caller completed the checksum when it took the frame from
            // the backlog (see `drain_rx`); fits() cannot know.
            Err(true) => {}
            Err(false) => {
                self.counters.inc(C::DropRxNoOffload);
                return Rx::Done(false);
            }
        }
        // Pages written are marked dirty when KVM logs them.
        let dirty = own.filter(|_| rx.dirty_log);
        match self.rx_fill(rx, hdr, frame, direct, dirty) {
            Ok(r) => r,
            Err((what, e)) => {
                self.rx_broken(rx, what, e);
                Rx::Done(false)
            }
        }
    }

    /// The receive side's memory map is not the VM's now: the memslots or
    /// what backs them changed (pins are keyed by host address, so behind a
    /// pinned address there may be other pages now). Checked before the
    /// frame is written and again after its buffers are pinned: a memslot
    /// deleted and its host range reused between the two would otherwise
    /// land the frame in the VMM's own memory.
    pub(super) fn map_stale(&self, rx: &RxState) -> bool {
        rx.big.map_gen.stale(&rx.pins, &self.mm_seq)
    }

    /// `rx_frame` once the queue is known to take the frame; an error
    /// breaks the queue.
    fn rx_fill(
        &self,
        rx: &mut RxState,
        hdr: &NetHdr,
        frame: &Frame<'_>,
        direct: bool,
        dirty: Option<&dyn OwnThread>,
    ) -> Result<Rx, (&'static str, PinBufError)> {
        // For `fill` to check whether the map changed while it pinned (see
        // `map_stale`).
        let seq = &self.mm_seq;
        let RxState {
            q,
            ring,
            pins,
            big,
            off: _,
            mrg_rxbuf,
            dirty_log: _,
            scratch: _,
            stopped_at: _,
            lender: _,
        } = rx;
        let Some(queue) = q.as_mut() else {
            return Ok(Rx::Wait(false));
        };
        let max = if *mrg_rxbuf { MAX_RX_BUFFERS } else { 1 };
        let pinned = Pinned { direct, seq };
        let filled = fill(queue, ring, pins, big, hdr, frame, max, dirty, pinned);
        pins.release(&mut big.bfirst);
        pins.release(&mut big.bmore);
        let n = match filled {
            Fill::Done(n) => {
                self.counters.inc(C::RxFrames);
                self.counters.add(C::RxBytes, frame.len() as u64);
                if direct {
                    self.counters.inc(C::RxDirect);
                }
                if hdr.is_gso() {
                    self.counters.inc(C::RxGso);
                }
                n
            }
            Fill::TooSmall(n) => {
                self.counters.inc(C::DropRxTooSmall);
                n
            }
            Fill::PinFailed(n, e) => {
                self.counters.inc(C::DropRxPinFailed);
                self.warn("receive buffer could not be pinned, frame dropped", e);
                n
            }
            Fill::Scattered(n) => {
                self.counters.inc(C::DropRxScattered);
                self.warn(
                    "receive buffer on more pages than its length needs, frame dropped",
                    n,
                );
                n
            }
            // Not now, from this thread: the backlog and the receiver's own
            // thread take it (nothing was consumed). On that thread (a map
            // change, a dirty ring to harvest first) the drain tries again
            // and then asks the guest to come back.
            Fill::Defer => return Ok(Rx::Wait(!direct)),
            // Ask for a notify when the guest adds buffers (EVENT_IDX).
            Fill::Wait => {
                let more = queue
                    .enable_notify_for_more(&**ring)
                    .map_err(|e| ("receive ring", PinBufError::Queue(e)))?;
                if let Some(cpu) = dirty {
                    ring.used_gfns(|g| cpu.mark_dirty(g));
                }
                return Ok(Rx::Wait(more));
            }
            Fill::Broken(e) => return Err(("malformed receive chain", e)),
        };
        for &(head, len) in big.used.iter().take(n) {
            queue
                .push(&**ring, head, len)
                .map_err(|e| ("receive used ring", PinBufError::Queue(e)))?;
        }
        if let Some(cpu) = dirty {
            ring.used_gfns(|g| cpu.mark_dirty(g));
        }
        Ok(Rx::Done(queue.need_notify(&**ring).unwrap_or(true)))
    }

    /// Receive on the device's own thread: move waiting frames from the
    /// backlog into the guest's receive buffers. Each frame is copied out of
    /// the backlog first (its lock is a spinlock that senders take to push),
    /// so this thread may pin with faults allowed, and sleep in them, while
    /// senders go on queueing; only it and `shutdown`/reset, all under
    /// `state`, ever take frames off the backlog.
    ///
    /// Pinning a buffer may itself change the memory map (a write fault
    /// that breaks copy-on-write, a page migrated to be pinned long-term):
    /// then the map is read afresh and the frame tried again, as KVM retries
    /// a fault whose `mmu_invalidate_seq` moved.
    pub(super) fn drain_rx(&self, cpu: &dyn OwnThread, st: &mut DevState, kick: bool) {
        self.lend_service(cpu, st);
        // Most exits find nothing waiting: leave `rx` to the senders then.
        if self.backlog.lock().is_empty() {
            return;
        }
        let mut rx = self.rx.lock();
        let mut scratch = core::mem::take(&mut rx.scratch);
        let mut notify = false;
        let mut retries = 0;
        let mut rereads = 0;
        let mut come_back = false;
        let mut frames = 0;
        loop {
            // Senders push while this drains (the backlog's lock is not
            // held across a frame): at most a backlog's worth per exit, then
            // the guest is asked to come back.
            if frames == BACKLOG_FRAMES {
                come_back = true;
                break;
            }
            let (mut hdr, len) = {
                let mut backlog = self.backlog.lock();
                let Some((hdr, frame)) = backlog.front() else {
                    break;
                };
                let len = frame.len();
                match scratch.get_mut(..len) {
                    Some(d) => d.copy_from_slice(frame),
                    // Never longer than FRAME_MAX; dropped if it were.
                    None => {
                        backlog.pop();
                        continue;
                    }
                }
                (*hdr, len)
            };
            let Some(frame) = scratch.get_mut(..len) else {
                break;
            };
            if let Err(true) = hdr.fits(rx.off) {
                // A receiver without GUEST_CSUM: the frame is ours now.
                if vnet::complete_csum(frame, &hdr).is_ok() {
                    hdr.flags &= !vnet::F_NEEDS_CSUM;
                    self.counters.inc(C::RxCsumCompleted);
                }
            }
            match self.rx_frame(&mut rx, &hdr, &Frame::kernel(frame), Some(cpu)) {
                Rx::Done(n) => {
                    notify |= n;
                    frames += 1;
                    self.backlog.lock().pop();
                }
                // The guest added buffers while notifications were being
                // re-enabled (so it will not notify for them): try again,
                // a few times; a guest that keeps adding too few is asked
                // to come back through its interrupt handler instead of
                // keeping this thread.
                Rx::Wait(_) if rereads < DRAIN_RETRIES && rx.q.is_some() && self.map_stale(&rx) => {
                    rereads += 1;
                    drop(rx);
                    let usable = self.refresh(cpu, st);
                    rx = self.rx.lock();
                    if !usable {
                        break;
                    }
                }
                Rx::Wait(true) if retries < DRAIN_RETRIES => retries += 1,
                Rx::Wait(more) => {
                    // Also when the memory map keeps changing: the next exit
                    // reads it afresh and drains again.
                    come_back = more || (rx.q.is_some() && self.map_stale(&rx));
                    break;
                }
            }
        }
        rx.scratch = scratch;
        drop(rx);
        if frames > 0 {
            self.completed(0, u32::try_from(frames).unwrap_or(u32::MAX), notify, kick);
        }
        if come_back {
            self.transport.kick();
        }
    }
}

/// What filling receive buffers with one frame came to. `Done(n)`,
/// `TooSmall(n)` and `PinFailed(n, _)`: the first `n` entries of
/// `RxBig::used` are to be pushed.
enum Fill {
    Done(usize),
    /// The frame did not fit (dropped); the buffers go back empty.
    TooSmall(usize),
    /// A buffer could not be pinned (dropped); the buffers go back empty.
    PinFailed(usize, PinError),
    /// A buffer spans far more pages than its length needs (dropped before
    /// it was pinned); the buffers go back empty.
    Scattered(usize),
    /// Not from this thread: a page would have to be faulted in, or the map
    /// changed while pinning. Nothing was consumed.
    Defer,
    /// Not enough buffers now; nothing was consumed.
    Wait,
    Broken(PinBufError),
}

/// How `fill` pins receive buffers.
struct Pinned<'a> {
    /// On a sender's thread: fault nothing in (`VmPins::acquire`).
    direct: bool,
    /// The receiver's `Device::mm_seq`: with the memslot generation, checked
    /// against the map after each pin (`Device::map_stale`).
    seq: &'a Atomic<u32>,
}

/// Write one frame into receive chains: as many as it needs, at most `max`
/// (1 without MRG_RXBUF, where a GSO receiver posts chains big enough for a
/// whole GSO frame, as Linux's "big packets" mode does). Each chain is
/// checked and translated against `map` and its pages pinned through `pins`
/// (mostly cache hits: drivers recycle their buffers). The header, whose
/// num_buffers is known only at the end, is written last into the first.
/// The caller releases the pins of `b.bfirst` and `b.bmore` afterwards.
#[expect(
    clippy::too_many_arguments,
    reason = "the frame, its queue and its pins are separate borrows of the receive side"
)]
fn fill(
    q: &mut Virtqueue,
    ring: &RingMem,
    pins: &mut VmPins,
    b: &mut RxBig,
    hdr: &NetHdr,
    frame: &Frame<'_>,
    max: usize,
    dirty: Option<&dyn OwnThread>,
    pinned: Pinned<'_>,
) -> Fill {
    let RxBig {
        map,
        map_gen,
        first,
        more,
        bfirst,
        bmore,
        used,
    } = b;
    let total = HDR_LEN + frame.len();
    let mut pos = 0usize;
    let mut n = 0usize;
    let mut first_pages = 0usize;
    while pos < total {
        if n == max {
            // The buffers cannot hold the frame: drop it, give them back.
            return Fill::TooSmall(empty(used, n));
        }
        let (chain, buf) = if n == 0 {
            (&mut *first, &mut *bfirst)
        } else {
            (&mut *more, &mut *bmore)
        };
        match q.pop(ring, map, chain) {
            Ok(true) => {}
            Ok(false) => return give_back(q, n, Fill::Wait),
            Err(e) => return Fill::Broken(PinBufError::Queue(e)),
        }
        if let Some(slot) = used.get_mut(n) {
            *slot = (chain.head(), 0);
        }
        n += 1;
        if n > 1 {
            pins.release(buf);
        }
        match pins.acquire(chain, map, buf, pinned.direct) {
            Ok(()) => {}
            Err(PinBufError::WouldFault) => return give_back(q, n, Fill::Defer),
            Err(PinBufError::Scattered) => return Fill::Scattered(empty(used, n)),
            // The guest's buffer is unusable (read-only, outside its RAM,
            // too scattered): the frame cannot be delivered.
            Err(PinBufError::Pin(e)) if e != PinError::TooManyPages => {
                return Fill::PinFailed(empty(used, n), e)
            }
            Err(_) => return Fill::TooSmall(empty(used, n)),
        }
        // A dirty ring takes only so many marks before its VMM harvests it:
        // the pages of this buffer and the first (marked last) plus the used
        // ring must fit, or the frame waits for the next exit.
        if n == 1 {
            first_pages = buf.gfn_count();
        }
        let need = buf.gfn_count() + if n > 1 { first_pages } else { 0 } + 4;
        if map_gen.stale(pins, pinned.seq)
            || dirty.is_some_and(|cpu| (cpu.dirty_room() as usize) < need)
        {
            return give_back(q, n, Fill::Defer);
        }
        // Frame bytes at stream position `pos` (the header's place is
        // written with zeros now and with the header at the end).
        let written = buf.write(&[0u8; HDR_LEN], frame, pos);
        // Marked after the last write to the buffer: a dirty log harvested
        // in between would miss the rest (the first gets the header last).
        if let Some(cpu) = dirty.filter(|_| n > 1) {
            buf.gfns(|g| cpu.mark_dirty(g));
        }
        if let Some(slot) = used.get_mut(n - 1) {
            slot.1 = u32::try_from(written).unwrap_or(0);
        }
        if written == 0 {
            return Fill::TooSmall(empty(used, n));
        }
        pos += written;
    }
    let h = NetHdr {
        num_buffers: u16::try_from(n).unwrap_or(0),
        ..*hdr
    }
    .to_bytes();
    let ok = bfirst.write(&h, &Frame::kernel(&[]), 0) == HDR_LEN;
    if let Some(cpu) = dirty {
        bfirst.gfns(|g| cpu.mark_dirty(g));
    }
    if ok {
        Fill::Done(n)
    } else {
        Fill::TooSmall(empty(used, n))
    }
}

/// Put the `n` chains popped for this frame back on the queue (the guest
/// gets them again with the next frame); returns `why`.
fn give_back(q: &mut Virtqueue, n: usize, why: Fill) -> Fill {
    for _ in 0..n {
        q.unpop();
    }
    why
}

/// Mark the first `n` buffers of `used` as returned empty; returns `n`.
fn empty(used: &mut [(u16, u32); MAX_RX_BUFFERS], n: usize) -> usize {
    for slot in used.iter_mut().take(n) {
        slot.1 = 0;
    }
    n
}
