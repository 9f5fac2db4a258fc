// SPDX-License-Identifier: GPL-2.0

//! One attached device: the virtio-mmio register file a guest sees, its two
//! virtqueues (0: receive, 1: transmit), its port on the switch, and the entry
//! points the C glue calls for every guest access to the window.
//!
//! Transmit runs on the guest's own vCPU thread, inside the MMIO op
//! (`kvm::InVcpu`): a notify walks the transmit queue through the descriptor
//! engine, pins each chain's pages through the device's transmit pin cache,
//! reads the virtio-net and Ethernet headers once into kernel memory (so the
//! header it checks is the header it forwards), checks them and hands the
//! frame to the switch; the rest of the frame is copied once, from the
//! pinned pages into each receiver. The chain goes back to the guest (used
//! ring) only when every receiver has its copy.
//!
//! Receive works from any thread. The receive queue's rings are pinned
//! while it runs (`pinned::RingMem`) and its buffers are pinned through the
//! device's pin cache as they are used (`pinned::VmPins`), so the switch
//! writes a frame straight into the receiver's buffers and used ring on the
//! sender's thread (run to completion), then signals the receiver's irqfd.
//! Only when that cannot be done now (no receive buffer posted, a memory map
//! change not yet seen by the receiver, a checksum to complete) does the frame
//! wait in the receiver's backlog, which its own vCPU thread drains (on a
//! receive notify, or when the guest's interrupt handler reads
//! InterruptStatus).
//!
//! Offloads: CSUM, HOST_TSO4/6 (the guest sends 64 KiB TCP segments with
//! partial checksums) and GUEST_CSUM, GUEST_TSO4/6 (it takes them), checked by
//! `vnet`; MRG_RXBUF (a frame may fill several receive buffers) and
//! EVENT_IDX (notification suppression in both directions).
//!
//! Hostile guests: one exit does a bounded amount of work (`TX_BUDGET_*`
//! frames and bytes, then the rest is left for the next exit, which the
//! device asks for with an interrupt), and no thread ever waits for another
//! VM: a sender only *tries* a receiver's `rx` lock and pins its pages
//! without faulting them in (`nofault`); when either fails the frame waits in
//! the receiver's backlog, which only the receiver's own vCPU thread drains,
//! with faults allowed. A receiver whose VMM stalls its page faults
//! (userfaultfd, FUSE) thereby stalls only its own traffic.
//!
//! Lock order: `Device::state` (the vCPU thread's: registers and transmit),
//! then any device's `Device::rx` (a sender only ever `try_lock`s another
//! device's), then that device's `Device::backlog` (a spinlock, a leaf: held
//! only to copy a frame in or out). `switch::SWITCH` is a leaf too: nothing
//! is taken or delivered under it. A sender never takes a receiver's
//! `state`: what it must tell the receiver's registers (interrupt status, a
//! broken receive queue) goes through atomics that the receiver folds in at
//! its next register access. `state` is taken on the vCPU thread with
//! `kvm->srcu` read-held: nothing that waits for srcu (unregistering a
//! window) may run under it. Threads that are not the device's own (stats,
//! debugfs, the resample work item) only `try_lock` `state` and `rx`, so a
//! vCPU thread stuck in its own VMM's page fault blocks nobody else.

use core::ffi::{c_int, c_void};
use core::ptr::NonNull;
use kernel::{
    new_mutex, new_spinlock,
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Full, Relaxed},
        Arc, Mutex, SpinLock,
    },
};

use crate::{
    kvm::{self, GuestMap, InVcpu, IrqFd, VcpuMem, VmFile},
    pinned::{self, Buf, Frame, PinBufError, RingMem, VmPins},
    pvcore::{
        backlog::{Backlog, Entry},
        memmap::PAGE_SIZE,
        mmio::{feature, reg, MmioDevice, MmioEvent},
        pincache::{PinError, PinStats},
        virtq::{Chain, QueueConfig, QueueIndices, Virtqueue, DESC_SIZE},
        vnet::{self, NetHdr, Offloads, ETH_HLEN, FRAME_MAX, HDR_LEN},
    },
    switch, uapi,
};

/// Features offered besides VERSION_1 (added by `MmioDevice`).
const DEVICE_FEATURES: u64 = feature::NET_F_MAC
    | feature::NET_F_STATUS
    | feature::NET_F_MTU
    | feature::NET_F_CSUM
    | feature::NET_F_GUEST_CSUM
    | feature::NET_F_HOST_TSO4
    | feature::NET_F_HOST_TSO6
    | feature::NET_F_GUEST_TSO4
    | feature::NET_F_GUEST_TSO6
    | feature::NET_F_MRG_RXBUF
    | feature::RING_EVENT_IDX;
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
/// Transmit frames one exit may send (vhost-net's weight): a guest whose
/// other vCPUs keep the ring full cannot keep this one in the kernel.
const TX_BUDGET_FRAMES: u32 = 256;
/// Transmit bytes one exit may send (vhost-net's byte weight).
const TX_BUDGET_BYTES: usize = 512 << 10;

/// Heap storage for the backlog (the core wants `AsRef`/`AsMut` slices):
/// its bytes (1 MiB) and its frame list (8 KiB, not for a kernel stack).
struct Heap<T>(KVVec<T>);

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

type PortBacklog = Backlog<Heap<u8>, Heap<Entry>>;

/// What the vCPU thread works on, under `Device::state`.
struct DevState {
    regs: MmioDevice,
    map: GuestMap,
    /// The memory generation `map` was read at.
    map_gen: MapGen,
    /// `map` was filled from the memslots of generation `map_gen`.
    map_valid: bool,
    txq: Option<Virtqueue>,
    /// Offloads the driver negotiated for sending.
    tx_off: Offloads,
    /// Transmit buffers are pinned (for reading) through this cache.
    tx_pins: VmPins,
    /// KVM logs writes to the VM's memory: mark the used ring dirty.
    dirty_log: bool,
    /// The last exit spent its budget with chains still available: the next
    /// exit of this device goes on with them.
    tx_more: bool,
    tx: KBox<TxBig>,
    /// The ports a frame goes to, filled by the switch (see `switch::forward`).
    targets: KBox<switch::Targets>,
}

/// The guest memory generation that maps and pins are checked against:
/// KVM's memslot generation and how often the VMM changed what backs the
/// memslots (`Device::mm_seq`). Either change makes the device drop its pins
/// and re-read the map. Compared as a pair, so neither count can alias the
/// other. All-zero is the generation of the empty map.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct MapGen {
    slots: u64,
    mm: u32,
}

impl MapGen {
    /// The generation now, for memslot generation `slots` and the device's
    /// `mm_seq`.
    fn now(slots: u64, mm_seq: &Atomic<u32>) -> Self {
        Self {
            slots,
            mm: mm_seq.load(Acquire),
        }
    }

    /// The receive side's map of generation `self` is not the VM's now
    /// (`pins` knows the VM; `None` after shutdown counts as stale).
    fn stale(self, pins: &VmPins, mm_seq: &Atomic<u32>) -> bool {
        pins.generation()
            .is_none_or(|g| Self::now(g, mm_seq) != self)
    }
}

/// The chain being sent and its pinned buffer (allocated zeroed, as
/// `RxBig`).
struct TxBig {
    chain: Chain<64>,
    buf: Buf,
}

/// The large part of the receive side (about 8 KiB), allocated zeroed: the
/// all-zero value of each field is valid (empty map of generation 0, empty
/// chains and buffers), and it never lives on a kernel stack.
struct RxBig {
    /// The memory map the queue was checked against (the vCPU thread's copy
    /// of generation `map_gen`).
    map: GuestMap,
    map_gen: MapGen,
    /// Receive chains and their pinned buffers for the frame being written:
    /// the first (which takes the header last) and the current later one.
    first: Chain<64>,
    more: Chain<64>,
    bfirst: Buf,
    bmore: Buf,
    /// Receive buffers filled for the current frame: (head, bytes).
    used: [(u16, u32); MAX_RX_BUFFERS],
}

/// The receive side, under `Device::rx`: usable from any thread.
struct RxState {
    q: Option<Virtqueue>,
    /// The queue's rings, pinned while it runs.
    ring: KBox<RingMem>,
    pins: VmPins,
    big: KBox<RxBig>,
    /// Offloads the driver takes, and MRG_RXBUF.
    off: Offloads,
    mrg_rxbuf: bool,
    /// KVM logs writes to the VM's memory (live migration): every page the
    /// device writes must be marked dirty, which only the VM's own vCPU
    /// thread can do, so frames for it wait for that thread.
    dirty_log: bool,
    /// The backlog frame being written by the drain, copied out of the
    /// backlog so that senders can push while the drain pins (and faults).
    scratch: KVVec<u8>,
}

/// Per-device counters (`pvpass_stats`), by index.
#[derive(Clone, Copy)]
enum C {
    MmioReads,
    MmioWrites,
    MmioBad,
    Notifies,
    Interrupts,
    TxFrames,
    TxBytes,
    RxFrames,
    RxBytes,
    DropTxBadChain,
    DropTxBadBuffer,
    DropRxNoBuffer,
    DropRxTooSmall,
    DropTxBadHdr,
    DropRxNoOffload,
    TxGso,
    RxGso,
    RxCsumCompleted,
    DropTxSpoofed,
    RxDirect,
    RxDeferred,
    DropRxPinFailed,
    MapRereads,
    Resamples,
    TxYields,
    DropTxStorm,
    DropRxScattered,
}
const NR_COUNTERS: usize = C::DropRxScattered as usize + 1;

struct Counters([Atomic<u64>; NR_COUNTERS]);

impl Counters {
    const fn new() -> Self {
        Self([const { Atomic::new(0) }; NR_COUNTERS])
    }

    fn add(&self, c: C, n: u64) {
        if let Some(a) = self.0.get(c as usize) {
            a.add(n, Relaxed);
        }
    }

    fn inc(&self, c: C) {
        self.add(c, 1);
    }

    fn get(&self, c: C) -> u64 {
        self.0.get(c as usize).map_or(0, |a| a.load(Relaxed))
    }
}

/// A virtio-net device attached to one VM.
#[pin_data]
pub(crate) struct Device {
    pub(crate) id: u32,
    pub(crate) gpa: u64,
    mac: [u8; 6],
    irq: Option<IrqFd>,
    #[pin]
    state: Mutex<DevState>,
    #[pin]
    rx: Mutex<RxState>,
    #[pin]
    backlog: SpinLock<PortBacklog>,
    /// The used-buffer interrupt bit (1) when raised by another thread,
    /// folded into the registers at the next register access (only ever
    /// 0 or 1: a broken queue goes through `rx_failed`).
    pending_isr: Atomic<u32>,
    /// Set by another thread that found the receive queue malformed: the
    /// device needs a reset (folded in like `pending_isr`).
    rx_failed: Atomic<u32>,
    /// How often the VMM changed what backs guest memory (mmu notifier,
    /// `kvm::MmWatch`): part of the memory generation, see `MapGen`.
    mm_seq: Atomic<u32>,
    counters: Counters,
    /// The pin caches' counters as `stats` last read them (pinned, hits,
    /// misses; transmit then receive), for when the caches' locks are busy.
    pin_stats: [Atomic<u64>; 6],
}

/// Shuts the device down when dropped: kept in an attachment's `Live` after
/// the switch port and the window, so no sender and no MMIO op can reach the
/// device any more when it runs.
pub(crate) struct ShutdownOnDrop(pub(crate) Arc<Device>);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// The offloads in `f` (driver features) for each direction.
fn offloads(f: u64) -> (Offloads, Offloads) {
    let has = |bit: u64| f & bit != 0;
    let tx = Offloads {
        csum: has(feature::NET_F_CSUM),
        tso4: has(feature::NET_F_HOST_TSO4),
        tso6: has(feature::NET_F_HOST_TSO6),
    };
    let rx = Offloads {
        csum: has(feature::NET_F_GUEST_CSUM),
        tso4: has(feature::NET_F_GUEST_TSO4),
        tso6: has(feature::NET_F_GUEST_TSO6),
    };
    (tx, rx)
}

/// The three ring areas of a queue `(gpa, bytes)`, with the event fields.
fn ring_areas(c: &QueueConfig) -> [(u64, u64); 3] {
    let n = u64::from(c.size);
    [
        (c.desc, DESC_SIZE * n),
        (c.avail, 6 + 2 * n),
        (c.used, 6 + 8 * n),
    ]
}

/// See `Device::rx_state`.
#[derive(Default)]
pub(crate) struct RxDebug {
    pub(crate) backlog: usize,
    pub(crate) pending_isr: u32,
    pub(crate) queue: Option<QueueIndices>,
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
    #[inline(never)]
    pub(crate) fn new(
        id: u32,
        gpa: u64,
        mac: [u8; 6],
        irq: Option<IrqFd>,
        vm: &VmFile,
    ) -> Result<Arc<Self>> {
        let backlog = Backlog::new(
            Heap(KVVec::from_elem(0u8, BACKLOG_BYTES, GFP_KERNEL)?),
            Heap(KVVec::from_elem(
                Entry::default(),
                BACKLOG_FRAMES,
                GFP_KERNEL,
            )?),
        );
        let regs = MmioDevice::new(DEVICE_FEATURES, mac);
        let pins = VmPins::new(vm.clone_ref(), pinned::RX_QUOTA, true)?;
        let tx_pins = VmPins::new(vm.clone_ref(), pinned::TX_QUOTA, false)?;
        // SAFETY: An empty chain and an unpinned buffer are all zeros.
        let tx = unsafe { pinned::new_zeroed::<TxBig>() }?;
        // SAFETY: The all-zero value of `RingMem` (areas of no length, empty
        // tokens) is valid, as is `RxBig`'s (see its documentation).
        let ring = unsafe { pinned::new_zeroed::<RingMem>() }?;
        // SAFETY: As above.
        let big = unsafe { pinned::new_zeroed::<RxBig>() }?;
        let scratch = KVVec::from_elem(0u8, FRAME_MAX, GFP_KERNEL)?;
        let targets = switch::Targets::new()?;
        Arc::pin_init(
            try_pin_init!(Self {
                id,
                gpa,
                mac,
                irq,
                state <- new_mutex!(DevState {
                    regs,
                    map: GuestMap::new(0),
                    map_gen: MapGen::default(),
                    map_valid: false,
                    txq: None,
                    tx_off: Offloads::default(),
                    tx_pins,
                    dirty_log: false,
                    tx_more: false,
                    tx,
                    targets,
                }),
                rx <- new_mutex!(RxState {
                    q: None,
                    ring,
                    pins,
                    big,
                    off: Offloads::default(),
                    mrg_rxbuf: false,
                    dirty_log: false,
                    scratch,
                }),
                backlog <- new_spinlock!(backlog),
                pending_isr: Atomic::new(0),
                rx_failed: Atomic::new(0),
                mm_seq: Atomic::new(0),
                counters: Counters::new(),
                pin_stats: [const { Atomic::new(0) }; 6],
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Read the memory map afresh into `map`; returns whether KVM logs the
    /// VM's writes, and the map's generation (`mm_seq` is read first: a
    /// change during the read makes the map stale at once).
    fn snapshot(&self, cpu: &InVcpu, map: &mut GuestMap) -> Result<(bool, MapGen)> {
        let mm = self.mm_seq.load(Acquire);
        let dirty_log = cpu.snapshot(map)?;
        Ok((
            dirty_log,
            MapGen {
                slots: map.generation,
                mm,
            },
        ))
    }

    /// Remember the pin counters of one direction (0: transmit, 1: receive).
    fn save_pin_stats(&self, dir: usize, p: PinStats) {
        for (i, v) in [p.pinned, p.hits, p.misses].into_iter().enumerate() {
            if let Some(a) = self.pin_stats.get(dir * 3 + i) {
                a.store(v, Relaxed);
            }
        }
    }

    /// The pin counters of one direction: read now if its lock is free (it
    /// is taken only by its own thread's work, briefly, unless the VMM stalls
    /// a page fault), else as the last call read them.
    fn pin_stats(&self, dir: usize, now: Option<PinStats>) -> PinStats {
        if let Some(p) = now {
            self.save_pin_stats(dir, p);
            return p;
        }
        let get = |i: usize| {
            self.pin_stats
                .get(dir * 3 + i)
                .map_or(0, |a| a.load(Relaxed))
        };
        PinStats {
            pinned: get(0),
            hits: get(1),
            misses: get(2),
            ..Default::default()
        }
    }

    pub(crate) fn stats(&self) -> uapi::Stats {
        let c = &self.counters;
        // Never waits for the device's own thread (see the lock order).
        let tx = self.pin_stats(0, self.state.try_lock().map(|st| st.tx_pins.stats()));
        let rx = self.pin_stats(1, self.rx.try_lock().map(|rx| rx.pins.stats()));
        uapi::Stats {
            id: self.id,
            mmio_reads: c.get(C::MmioReads),
            mmio_writes: c.get(C::MmioWrites),
            mmio_bad: c.get(C::MmioBad),
            notifies: c.get(C::Notifies),
            interrupts: c.get(C::Interrupts),
            tx_frames: c.get(C::TxFrames),
            tx_bytes: c.get(C::TxBytes),
            rx_frames: c.get(C::RxFrames),
            rx_bytes: c.get(C::RxBytes),
            drop_tx_bad_chain: c.get(C::DropTxBadChain),
            drop_tx_bad_buffer: c.get(C::DropTxBadBuffer),
            drop_rx_no_buffer: c.get(C::DropRxNoBuffer),
            drop_rx_too_small: c.get(C::DropRxTooSmall),
            drop_tx_bad_hdr: c.get(C::DropTxBadHdr),
            drop_rx_no_offload: c.get(C::DropRxNoOffload),
            tx_gso_frames: c.get(C::TxGso),
            rx_gso_frames: c.get(C::RxGso),
            rx_csum_completed: c.get(C::RxCsumCompleted),
            drop_tx_spoofed: c.get(C::DropTxSpoofed),
            pages_pinned: rx.pinned + tx.pinned,
            pin_hits: rx.hits + tx.hits,
            pin_misses: rx.misses + tx.misses,
            rx_direct: c.get(C::RxDirect),
            rx_deferred: c.get(C::RxDeferred),
            drop_rx_pin_failed: c.get(C::DropRxPinFailed),
            map_rereads: c.get(C::MapRereads),
            irq_resamples: c.get(C::Resamples),
            tx_yields: c.get(C::TxYields),
            drop_tx_storm: c.get(C::DropTxStorm),
            drop_rx_scattered: c.get(C::DropRxScattered),
            ..Default::default()
        }
    }

    /// The receive side's state for debugfs: frames waiting in the backlog,
    /// the interrupt bit raised but not yet folded, and the receive queue's
    /// indices (device: next avail, used; guest: avail idx, used_event;
    /// the avail_event the device asked for), each `None` without a queue.
    pub(crate) fn rx_state(&self) -> RxDebug {
        let mut d = RxDebug {
            backlog: self.backlog.lock().len(),
            pending_isr: self.pending_isr.load(Relaxed),
            ..Default::default()
        };
        // Not while the device's own thread holds it (see the lock order).
        if let Some(rx) = self.rx.try_lock() {
            d.queue = rx.q.as_ref().map(|q| q.indices(&*rx.ring));
        }
        d
    }

    /// The attachment is going away (its port is off the switch and its
    /// window off the bus): unpin everything and let go of the VM.
    pub(crate) fn shutdown(&self) {
        let mut st = self.state.lock();
        st.txq = None;
        let DevState { tx_pins, tx, .. } = &mut *st;
        tx_pins.release(&mut tx.buf);
        tx_pins.shutdown();
        let mut rx = self.rx.lock();
        rx.q = None;
        let RxState {
            ring, pins, big, ..
        } = &mut *rx;
        ring.release(pins);
        pins.release(&mut big.bfirst);
        pins.release(&mut big.bmore);
        pins.shutdown();
        drop(rx);
        drop(st);
        self.backlog.lock().clear();
    }

    /// Take the interrupt eventfd off the VM's GSI (the attaching process
    /// only; see `IrqFd::unbind`). Nothing signals it after detach anyway.
    pub(crate) fn unbind_irq(&self, vm: &VmFile) {
        if let Some(irq) = &self.irq {
            if let Err(e) = irq.unbind(vm) {
                if kvm::ratelimit() {
                    pr_info!(
                        "device {}: irqfd left bound until the VM goes ({})\n",
                        self.id,
                        e.to_errno()
                    );
                }
            }
        }
    }

    fn warn(&self, what: &str, detail: impl core::fmt::Debug) {
        if kvm::ratelimit() {
            pr_warn!("device {}: {} ({:?})\n", self.id, what, detail);
        }
    }

    fn bad_access(&self, offset: u64, len: usize, write: bool) {
        self.counters.inc(C::MmioBad);
        if kvm::ratelimit() {
            pr_warn!(
                "device {}: guest {} of {} bytes at window offset {:#x} ignored\n",
                self.id,
                if write { "write" } else { "read" },
                len,
                offset
            );
        }
    }

    /// Raise the used-buffer interrupt (from any thread); `kick` also
    /// injects it (not needed when the guest is reading InterruptStatus
    /// right now).
    fn interrupt(&self, kick: bool) {
        self.pending_isr.xchg(1, Relaxed);
        if kick {
            self.kick();
        }
    }

    /// Signal the guest's irqfd (counted): its handler comes and reads
    /// InterruptStatus, which drains the backlog.
    fn kick(&self) {
        if let Some(irq) = &self.irq {
            self.counters.inc(C::Interrupts);
            irq.signal();
        }
    }

    /// After an EOI of a level-triggered GSI: raise the line again if the
    /// guest has not acknowledged every interrupt bit (one that came while
    /// its handler ran, after it read InterruptStatus).
    fn resample(&self) {
        // A busy `state` means the vCPU thread is in a register access right
        // now, or stuck in its own VMM's page fault: raise the line anyway
        // (at worst a spurious interrupt), never wait.
        let pending = self.pending_isr.load(Relaxed) != 0
            || self.rx_failed.load(Relaxed) != 0
            || self
                .state
                .try_lock()
                .is_none_or(|st| st.regs.interrupt_status() != 0);
        if pending {
            self.counters.inc(C::Resamples);
            self.kick();
        }
    }

    /// Fold what other threads raised into the registers.
    fn fold(&self, st: &mut DevState) {
        if self.rx_failed.xchg(0, Relaxed) != 0 {
            st.txq = None;
            st.regs.set_needs_reset();
        }
        let bits = self.pending_isr.xchg(0, Relaxed);
        if bits != 0 {
            st.regs.raise_interrupt(bits);
        }
    }

    /// A malformed queue: the device needs a reset, the driver is told.
    fn broken(&self, st: &mut DevState, what: &str, err: impl core::fmt::Debug) {
        self.warn(what, err);
        st.txq = None;
        let mut rx = self.rx.lock();
        rx.q = None;
        let RxState { ring, pins, .. } = &mut *rx;
        ring.release(pins);
        drop(rx);
        st.regs.set_needs_reset();
        if let Some(irq) = &self.irq {
            irq.signal();
        }
    }

    /// A malformed receive queue, found on any thread: stop it and have the
    /// registers say so at the next access.
    fn rx_broken(&self, rx: &mut RxState, what: &str, err: impl core::fmt::Debug) {
        self.warn(what, err);
        rx.q = None;
        let RxState { ring, pins, .. } = rx;
        ring.release(pins);
        // `fold` marks the device broken, which raises the config interrupt.
        self.rx_failed.xchg(1, Relaxed);
        if let Some(irq) = &self.irq {
            irq.signal();
        }
    }

    /// Called by the switch on the sender's thread: write `frame` (with its
    /// checked header) into this port's receive buffers now if it can, or
    /// queue it in the backlog and kick the interrupt.
    pub(crate) fn receive(&self, hdr: &NetHdr, frame: &Frame<'_>) {
        // Never wait for the receiver: its own thread may hold `rx` while it
        // faults pages in (for a VMM that may never resolve the fault). The
        // frame then waits in the backlog for that thread.
        if let Some(mut rx) = self.rx.try_lock() {
            // Frames already waiting go first: keep the order.
            if self.backlog.lock().is_empty() {
                if let Rx::Done(notify) = self.rx_frame(&mut rx, hdr, frame, None) {
                    if notify {
                        self.interrupt(true);
                    }
                    return;
                }
            }
        }
        // The guard goes at the end of the statement: the kick is outside it.
        let pushed = self
            .backlog
            .lock()
            .push_with(*hdr, frame.len(), |d| frame.copy_to_slice(0, d));
        match pushed {
            Err(_) => self.counters.inc(C::DropRxNoBuffer),
            Ok(was_empty) => {
                self.counters.inc(C::RxDeferred);
                if was_empty {
                    self.kick();
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
        own: Option<&InVcpu>,
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
    fn map_stale(&self, rx: &RxState) -> bool {
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
        dirty: Option<&InVcpu>,
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

    fn mmio_read(&self, cpu: &InVcpu, offset: u64, data: &mut [u8]) {
        self.counters.inc(C::MmioReads);
        let mut st = self.state.lock();
        if offset == reg::INTERRUPT_STATUS && self.refresh(cpu, &mut st) {
            // The guest's interrupt handler: go on with transmit work the
            // last exit left (it raised this interrupt for that), and
            // deliver what is waiting first, through a memory map read
            // afresh (as on every notify).
            if st.tx_more {
                self.process_tx(cpu, &mut st);
            }
            self.drain_rx(cpu, &mut st, false);
        }
        self.fold(&mut st);
        if st.regs.read(offset, data).is_err() {
            drop(st);
            self.bad_access(offset, data.len(), false);
        }
    }

    fn mmio_write(&self, cpu: &InVcpu, offset: u64, data: &[u8]) {
        self.counters.inc(C::MmioWrites);
        let mut st = self.state.lock();
        // What other threads raised is folded in after the guest's write has
        // taken effect, never before: an InterruptACK clears only the bits
        // the guest read (folded before, it would clear an interrupt the
        // guest never saw, whose irqfd signal then finds InterruptStatus 0),
        // and a reset starts from nothing.
        match st.regs.write(offset, data) {
            Err(_) => {
                self.fold(&mut st);
                drop(st);
                self.bad_access(offset, data.len(), true);
                return;
            }
            Ok(MmioEvent::Notify(q)) => {
                self.counters.inc(C::Notifies);
                if self.refresh(cpu, &mut st) {
                    if q == 1 || st.tx_more {
                        self.process_tx(cpu, &mut st);
                    }
                    self.drain_rx(cpu, &mut st, true);
                }
            }
            Ok(MmioEvent::DriverOk) => self.start_queues(cpu, &mut st),
            // The driver took the queue back (QueueReady 0): nothing more
            // goes into its buffers, its rings are unpinned.
            Ok(MmioEvent::QueueStopped(0)) => self.stop_rx(),
            Ok(MmioEvent::QueueStopped(_)) => {
                st.txq = None;
                st.tx_more = false;
                st.tx_pins.invalidate();
            }
            // A driver error the registers refused (a bad queue size, DRIVER_OK
            // without FEATURES_OK): they say DEVICE_NEEDS_RESET; tell the
            // driver through its config interrupt.
            Ok(MmioEvent::NeedsReset) => self.kick(),
            Ok(MmioEvent::Reset) => {
                st.txq = None;
                st.tx_more = false;
                self.stop_rx();
                self.backlog.lock().clear();
                self.pending_isr.xchg(0, Relaxed);
                self.rx_failed.xchg(0, Relaxed);
            }
            Ok(_) => {}
        }
        self.fold(&mut st);
    }

    /// Stop the receive queue and unpin its rings and its cached buffer
    /// pages (the driver took them back).
    fn stop_rx(&self) {
        let mut rx = self.rx.lock();
        rx.q = None;
        let RxState { ring, pins, .. } = &mut *rx;
        ring.release(pins);
        pins.invalidate();
    }

    /// Set up the queues the driver made ready, checked against guest memory.
    fn start_queues(&self, cpu: &InVcpu, st: &mut DevState) {
        st.map_valid = false;
        let (dirty_log, gen) = match self.snapshot(cpu, &mut st.map) {
            Ok(d) => d,
            Err(e) => return self.broken(st, "guest memory map", e),
        };
        st.map_valid = true;
        st.map_gen = gen;
        st.dirty_log = dirty_log;
        st.tx_pins.invalidate();
        let f = st.regs.driver_features();
        let (tx_off, rx_off) = offloads(f);
        st.tx_off = tx_off;
        let mut rx = self.rx.lock();
        rx.off = rx_off;
        rx.mrg_rxbuf = f & feature::NET_F_MRG_RXBUF != 0;
        rx.big.map = st.map.clone();
        rx.big.map_gen = gen;
        rx.dirty_log = dirty_log;
        rx.pins.invalidate();
        drop(rx);
        for n in [0u16, 1] {
            let Some(r) = st.regs.queue(n).copied() else {
                continue;
            };
            if !r.ready {
                continue;
            }
            let cfg = QueueConfig {
                size: u16::try_from(r.num).unwrap_or(0),
                desc: r.desc,
                avail: r.driver,
                used: r.device,
                event_idx: f & feature::RING_EVENT_IDX != 0,
                indirect: false,
            };
            let q = match Virtqueue::new(cfg, &st.map) {
                Ok(q) => q,
                Err(e) => return self.broken(st, "queue setup rejected", e),
            };
            if n == 1 {
                st.txq = Some(q);
                continue;
            }
            let mut rx = self.rx.lock();
            let RxState {
                ring, pins, big, ..
            } = &mut *rx;
            if let Err(e) = ring.pin(pins, &big.map, ring_areas(&cfg)) {
                drop(rx);
                return self.broken(st, "receive ring cannot be pinned", e);
            }
            rx.q = Some(q);
        }
    }

    /// Re-read the memory map if the VMM changed the memslots since it was
    /// read, re-check the queues against it and re-pin the receive ring
    /// (every pin of the old map is dropped). False if the device is not
    /// usable.
    fn refresh(&self, cpu: &InVcpu, st: &mut DevState) -> bool {
        let now = MapGen::now(cpu.generation(), &self.mm_seq);
        if st.map_valid && now == st.map_gen {
            return true;
        }
        st.map_valid = false;
        self.counters.inc(C::MapRereads);
        let (dirty_log, gen) = match self.snapshot(cpu, &mut st.map) {
            Ok(d) => d,
            Err(e) => {
                self.broken(st, "guest memory map", e);
                return false;
            }
        };
        st.map_valid = true;
        st.map_gen = gen;
        st.dirty_log = dirty_log;
        // Pins are keyed by host address: behind the same address there may
        // be other pages now.
        st.tx_pins.invalidate();
        if let Some(q) = st.txq.as_mut() {
            if let Err(e) = q.recheck(&st.map) {
                self.broken(st, "queue outside guest memory", e);
                return false;
            }
        }
        let mut rx = self.rx.lock();
        rx.big.map = st.map.clone();
        rx.big.map_gen = gen;
        rx.dirty_log = dirty_log;
        let RxState {
            q, ring, pins, big, ..
        } = &mut *rx;
        ring.release(pins);
        pins.invalidate();
        let Some(q) = q.as_mut() else { return true };
        let map = &big.map;
        let checked = q
            .recheck(map)
            .map_err(PinBufError::Queue)
            .and_then(|()| ring.pin(pins, map, ring_areas(q.config())));
        if let Err(e) = checked {
            drop(rx);
            self.broken(st, "receive queue outside guest memory", e);
            return false;
        }
        true
    }

    /// Transmit: the chains the guest made available, run to completion, at
    /// most `TX_BUDGET_FRAMES` frames or `TX_BUDGET_BYTES` bytes per exit
    /// (a guest whose other vCPUs keep adding chains would otherwise keep
    /// this thread in the kernel for as long as it likes), and none once the
    /// thread has a signal pending. What is left is served at this device's
    /// next exit: the budget's end raises the used-buffer interrupt, so the
    /// guest's handler comes back with an InterruptStatus read. With
    /// EVENT_IDX the guest is asked to notify at its next frame, both then
    /// and when the ring is empty (frames it added meanwhile are served in
    /// the same call).
    fn process_tx(&self, cpu: &InVcpu, st: &mut DevState) {
        st.tx_more = false;
        let mut completed = false;
        let mut frames = 0u32;
        let mut bytes = 0usize;
        let mut yielded = false;
        loop {
            let DevState {
                map,
                txq,
                tx_off,
                tx_pins,
                tx,
                targets,
                ..
            } = &mut *st;
            let Some(q) = txq.as_mut() else { return };
            let mem = VcpuMem::new(cpu, map);
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
                    self.send(buf, *tx_off, targets);
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
            let mem = VcpuMem::new(cpu, map);
            // After a budget's end always: the guest must come back.
            if yielded || (completed && q.need_notify(&mem).unwrap_or(true)) {
                self.interrupt(true);
            }
        }
    }

    /// Check and forward the frame in pinned transmit buffer `buf`. Its
    /// virtio-net header and Ethernet header are read once into kernel
    /// memory, checked and routed from there; the rest is copied once, from
    /// the pinned pages straight into each receiver.
    fn send(&self, buf: &Buf, tx_off: Offloads, targets: &mut switch::Targets) {
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
        match switch::forward(self.id, &hdr, &frame, targets) {
            switch::Forwarded::Sent => {}
            switch::Forwarded::Spoofed => {
                self.counters.inc(C::DropTxSpoofed);
                self.warn(
                    "frame with another port's MAC, a group or zero MAC as source dropped",
                    eth.get(6..12),
                );
                return;
            }
            switch::Forwarded::Storm => {
                self.counters.inc(C::DropTxStorm);
                self.warn(
                    "broadcast/multicast over the port's rate limit dropped",
                    flen,
                );
                return;
            }
            // Being detached: off the switch already.
            switch::Forwarded::NotAPort => return,
        }
        self.counters.inc(C::TxFrames);
        self.counters.add(C::TxBytes, flen as u64);
        if hdr.is_gso() {
            self.counters.inc(C::TxGso);
        }
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
    fn drain_rx(&self, cpu: &InVcpu, st: &mut DevState, kick: bool) {
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
        if notify {
            self.interrupt(kick);
        }
        if come_back {
            self.kick();
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
#[allow(clippy::too_many_arguments)]
fn fill(
    q: &mut Virtqueue,
    ring: &RingMem,
    pins: &mut VmPins,
    b: &mut RxBig,
    hdr: &NetHdr,
    frame: &Frame<'_>,
    max: usize,
    dirty: Option<&InVcpu>,
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

/// Called by glue.c for a guest read of `len` bytes at `offset` in the window.
///
/// # Safety
///
/// Called only from the glue's MMIO read op for window `mmio`, on `vcpu`. `ctx` is the
/// `Device` the window was registered with (see `kvm::MmioWindow::register`),
/// and `val` points to `len` writable bytes; the glue guarantees
/// `1 <= len <= 8` and `offset + len <= WINDOW_SIZE`.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_mmio_read(
    ctx: *const c_void,
    mmio: *mut c_void,
    vcpu: *mut c_void,
    offset: u64,
    len: c_int,
    val: *mut c_void,
) -> c_int {
    // SAFETY: Per the function's contract, `ctx` is a live `Device`.
    let dev = unsafe { &*ctx.cast::<Device>() };
    let (Some(mmio), Some(vcpu)) = (NonNull::new(mmio), NonNull::new(vcpu)) else {
        return 0;
    };
    // SAFETY: We are in the MMIO op of `mmio` on `vcpu`, and `cpu` dies with
    // this call.
    let cpu = unsafe { InVcpu::new(mmio, vcpu) };
    let len = usize::try_from(len).unwrap_or(0);
    // SAFETY: Per the function's contract, `val` points to `len` writable bytes
    // that nothing else accesses during this call.
    let data = unsafe { core::slice::from_raw_parts_mut(val.cast::<u8>(), len) };
    dev.mmio_read(&cpu, offset, data);
    0
}

/// Called by glue.c for a guest write of `len` bytes at `offset` in the window.
///
/// # Safety
///
/// As for [`pvpass_rs_mmio_read`], with `val` pointing to `len` readable bytes.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_mmio_write(
    ctx: *const c_void,
    mmio: *mut c_void,
    vcpu: *mut c_void,
    offset: u64,
    len: c_int,
    val: *const c_void,
) -> c_int {
    // SAFETY: Per the function's contract, `ctx` is a live `Device`.
    let dev = unsafe { &*ctx.cast::<Device>() };
    let (Some(mmio), Some(vcpu)) = (NonNull::new(mmio), NonNull::new(vcpu)) else {
        return 0;
    };
    // SAFETY: We are in the MMIO op of `mmio` on `vcpu`, and `cpu` dies with
    // this call.
    let cpu = unsafe { InVcpu::new(mmio, vcpu) };
    let len = usize::try_from(len).unwrap_or(0);
    // SAFETY: Per the function's contract, `val` points to `len` readable bytes.
    let data = unsafe { core::slice::from_raw_parts(val.cast::<u8>(), len) };
    dev.mmio_write(&cpu, offset, data);
    0
}

/// The guest ended an interrupt of a level-triggered GSI (the glue's resample
/// watch, process context): KVM has de-asserted the line; assert it again
/// while InterruptStatus is not zero.
///
/// # Safety
///
/// `ctx` is the `Device` the watch was registered with (see
/// `kvm::ResampleWatch::register`), valid until the watch is dropped.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_resample(ctx: *const c_void) {
    // SAFETY: Per the function's contract, `ctx` is a live `Device`.
    let dev = unsafe { &*ctx.cast::<Device>() };
    dev.resample();
}

/// Called by glue.c's mmu notifier when the VMM changed what backs guest
/// memory (or exited): pins and map are stale.
///
/// # Safety
///
/// `ctx` is the `Device` the watch was registered with (see
/// `kvm::MmWatch::register`), valid until the watch is dropped.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_mm_changed(ctx: *const c_void) {
    // SAFETY: Per the function's contract, `ctx` is a live `Device`.
    let dev = unsafe { &*ctx.cast::<Device>() };
    dev.mm_seq.fetch_add(1, Full);
}
