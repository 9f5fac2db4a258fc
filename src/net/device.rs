// SPDX-License-Identifier: GPL-2.0

//! One attached device: a virtio-net device with two virtqueues (0: receive,
//! 1: transmit) and, on virtio-mmio for a driver that accepts CTRL_VQ, the
//! control queue (2: `coal`), reached through a transport (virtio-mmio or
//! vhost, `transport`) and a port of a backend (`backend::Port`).
//!
//! Transmit runs on the guest's own vCPU thread, inside the MMIO op
//! (`kvm::InVcpu`; see `tx`). Receive works from any thread (`rx`). What the
//! device keeps for both, and how it follows the VM's memory map, is here.
//!
//! Offloads: CSUM, HOST_TSO4/6 (the guest sends 64 KiB TCP segments with
//! partial checksums) and GUEST_CSUM, GUEST_TSO4/6 (it takes them), checked by
//! `vnet`; MRG_RXBUF (a frame may fill several receive buffers) and
//! EVENT_IDX (notification suppression in both directions). On virtio-mmio
//! also CTRL_VQ and NOTF_COAL (`ethtool -C`'s rx/tx-usecs and -frames:
//! `coal`).
//!
//! Hostile guests: one exit does a bounded amount of work (`tx::TX_BUDGET_*`
//! frames and bytes, then the rest is left for the next exit, which the
//! device asks for with an interrupt), and no thread ever waits for another
//! VM: a sender only *tries* a receiver's `rx` lock and pins its pages
//! without faulting them in (`nofault`); when either fails the frame waits in
//! the receiver's backlog, which only the receiver's own vCPU thread drains,
//! with faults allowed. A receiver whose VMM stalls its page faults
//! (userfaultfd, FUSE) thereby stalls only its own traffic.
//!
//! Lock order: the transmit poll's run mutex (glue/poll.c, held by a poll's
//! task work), then `Device::state` (the vCPU thread's: registers and transmit),
//! then any device's `Device::rx` (a sender only ever `try_lock`s another
//! device's), then that device's `Device::backlog` (a spinlock, a leaf: held
//! only to copy a frame in or out). A backend's locks (a switch's table) are
//! leaves too: nothing is taken or delivered under them. A sender never
//! takes a receiver's `state`: what it must tell the receiver's registers
//! (interrupt status, a broken receive queue) goes through the transport's
//! atomics, folded in at the receiver's next register access. `state` is
//! taken on the vCPU thread with `kvm->srcu` read-held: nothing that waits
//! for srcu (unregistering a window) may run under it. Threads that are not
//! the device's own (stats, debugfs, the resample work item) only `try_lock`
//! `state` and `rx`, so a vCPU thread stuck in its own VMM's page fault
//! blocks nobody else.

use kernel::{
    new_mutex,
    new_spinlock,
    prelude::*,
    sync::{
        atomic::{
            Acquire,
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex,
        SpinLock, //
    }, //
};

use super::{
    coal::Coal,
    rx::{
        PortBacklog,
        RxBig,
        RxState, //
    },
    stats::{
        Counters,
        Snapshot,
        C, //
    },
    tx::TxBig, //
};
use crate::{
    backend::{
        Delivery,
        Loan,
        Port,
        Returned,
        Uplink, //
    },
    kvm::{
        self,
        GuestMap,
        IrqFd,
        VmFile, //
    },
    mem::{
        self,
        Frame,
        OwnThread,
        Owner,
        PinBufError,
        UserMem,
        VmPins, //
    },
    pvcore::{
        pincache::PinStats,
        traits::GuestMemory,
        txpolicy::TxPolicy,
        virtio_mmio::{
            feature,
            MmioDevice,
            CTRL_QUEUE,
            NUM_QUEUES, //
        },
        virtq::{
            Chain,
            QueueConfig,
            QueueIndices,
            Virtqueue,
            DESC_SIZE, //
        },
        vnet::{
            NetHdr,
            Offloads,
            FRAME_MAX, //
        }, //
    },
    transport::{
        mmio::{
            MmioIrq,
            MmioOps, //
        },
        poll::TxPoll,
        vhost::VhostIrq,
        Irq,
        Transport, //
    }, //
};

/// Features offered besides VERSION_1 (added by `MmioDevice`), on
/// virtio-mmio (the vhost transport's are QEMU's: `control::vhost`).
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
    | feature::NET_F_CTRL_VQ
    | feature::NET_F_NOTF_COAL
    | feature::RING_EVENT_IDX;

/// What the device's own thread works on, under `Device::state`: the
/// virtio-mmio registers (`None` on the vhost transport, whose registers
/// QEMU emulates) and the device's transmit side.
pub(super) struct Locked {
    pub(super) regs: Option<MmioDevice>,
    pub(super) st: DevState,
}

/// The device's part of `Locked`.
pub(super) struct DevState {
    pub(super) map: GuestMap,
    /// The memory generation `map` was read at.
    pub(super) map_gen: MapGen,
    /// `map` was filled from the memslots of generation `map_gen`.
    pub(super) map_valid: bool,
    pub(super) txq: Option<Virtqueue>,
    /// The control queue (virtio-mmio with CTRL_VQ: `coal`).
    pub(super) ctrlq: Option<Virtqueue>,
    /// The control chain being answered.
    pub(super) ctrl_chain: Chain<8>,
    /// The driver negotiated NOTF_COAL (its commands are carried out).
    pub(super) notf_coal: bool,
    /// Offloads the driver negotiated for sending.
    pub(super) tx_off: Offloads,
    /// Transmit buffers are pinned (for reading) through this cache.
    pub(super) tx_pins: VmPins,
    /// KVM logs writes to the VM's memory: mark the used ring dirty.
    pub(super) dirty_log: bool,
    /// The last exit spent its budget with chains still available: the next
    /// exit of this device goes on with them.
    pub(super) tx_more: bool,
    /// The guest's transmit notifications are off and the device owes it a
    /// poll of the ring (`tx`): at its next register access or notify, or
    /// from `Device::poll`.
    pub(super) tx_deferred: bool,
    /// The next transmit service is the poll timer's (`TxWhy::Timer`).
    pub(super) tx_timer: bool,
    /// When to defer (`pvcore::txpolicy`).
    pub(super) tx_policy: TxPolicy,
    pub(super) tx: KBox<TxBig>,
    /// The transmit queue's next avail index when it broke (see
    /// `RxState::stopped_at`).
    pub(super) tx_stopped_at: Option<u16>,
    /// Where frames go: the backend's uplink, once connected (`connect`);
    /// `None` before and after (frames are then dropped).
    pub(super) uplink: Option<KBox<dyn Uplink>>,
}

/// The guest memory generation that maps and pins are checked against:
/// KVM's memslot generation and how often the VMM changed what backs the
/// memslots (`Device::mm_seq`). Either change makes the device drop its pins
/// and re-read the map. Compared as a pair, so neither count can alias the
/// other. All-zero is the generation of the empty map.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct MapGen {
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
    pub(super) fn stale(self, pins: &VmPins, mm_seq: &Atomic<u32>) -> bool {
        pins.generation()
            .is_none_or(|g| Self::now(g, mm_seq) != self)
    }
}

/// A virtio-net device attached to one VM.
#[pin_data]
pub(crate) struct Device {
    /// The transmit poll timer (`tx`); its callbacks reach this device, so
    /// it is the first field: dropped (stopped) before the rest.
    pub(super) poll: TxPoll,
    /// The transmit poll period (`tuning::tx_poll_ns`), 0: no polling. On
    /// virtio-mmio only: on the vhost transport it gained nothing
    /// (bench/results/vhost-poll-2026-12-01, docs/design.md).
    pub(super) tx_poll_ns: u64,
    /// The poll period adapts and a deferred ring is notified after a
    /// burst (`tuning::tx_poll_adapt`).
    pub(super) tx_poll_adapt: bool,
    /// A service that leaves a poll owed holds its used entries for it
    /// (`tuning::tx_hold_used`).
    pub(super) tx_hold_used: bool,
    pub(crate) id: u32,
    pub(crate) gpa: u64,
    mac: [u8; 6],
    pub(super) transport: Irq,
    #[pin]
    pub(super) state: Mutex<Locked>,
    #[pin]
    pub(super) rx: Mutex<RxState>,
    #[pin]
    pub(super) backlog: SpinLock<PortBacklog>,
    /// How often the VMM changed what backs guest memory (mmu notifier,
    /// `kvm::MmWatch`): part of the memory generation, see `MapGen`.
    pub(super) mm_seq: Atomic<u32>,
    /// Whether receive buffers are lent to the backend (`lend`).
    pub(super) lending: super::lend::LendFlags,
    /// Notification coalescing of the receive (0) and transmit (1) queues
    /// (`coal`); their timers are `poll`'s.
    pub(super) coal: [Coal; 2],
    /// The guest posted receive buffers since the queues started (vhost:
    /// `rx_posted`).
    rx_used: Atomic<u32>,
    pub(super) counters: Counters,
    /// The pin caches' counters as `stats` last read them (pinned, hits,
    /// misses; transmit then receive), for when the caches' locks are busy.
    pin_stats: [Atomic<u64>; 6],
    /// The poll timer raised the guest's interrupt (virtio-mmio) or queued
    /// the device's work (vhost) instead of polling: the next service is
    /// its poll (`TxWhy::Timer`).
    pub(super) poll_irq: Atomic<u32>,
}

/// Shuts the device down when dropped: kept in an attachment's `Live` after
/// the backend link and the window, so no sender and no MMIO op can reach
/// the device any more when it runs.
pub(crate) struct ShutdownOnDrop(pub(crate) Arc<Device>);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// Stops the device's transmit poll when dropped: kept before the device's
/// window, which a poll runs on (`transport::poll`).
pub(crate) struct StopPollOnDrop(pub(crate) Arc<Device>);

impl Drop for StopPollOnDrop {
    fn drop(&mut self) {
        self.0.stop_poll();
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
pub(super) fn ring_areas(c: &QueueConfig) -> [(u64, u64); 3] {
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

/// The device on its vCPU thread, inside a register access: what the
/// transport drives (`MmioOps`).
pub(super) struct OnVcpu<'a> {
    pub(super) dev: &'a Device,
    pub(super) cpu: &'a dyn OwnThread,
    pub(super) st: &'a mut DevState,
}

impl MmioOps for OnVcpu<'_> {
    fn notify(&mut self, q: u16) {
        let Self { dev, cpu, st } = self;
        dev.counters.inc(C::Notifies);
        if q == 0 && dev.lending.lends.load(Relaxed) {
            // The guest posted receive buffers: the backend that borrows
            // them (`lend`) takes them now.
            dev.lending.want.store(true, Relaxed);
        }
        if dev.refresh(*cpu, st) {
            // A receive notify polls the transmit ring too if a poll is
            // owed: this exit is one the guest made anyway.
            if q == CTRL_QUEUE {
                dev.process_ctrl(*cpu, st);
            }
            if q == 1 || st.tx_more || st.tx_deferred {
                dev.process_tx(*cpu, st, false);
            }
            dev.drain_rx(*cpu, st, true);
        }
    }

    fn handler(&mut self) {
        // Go on with transmit work the last exit left (it raised this
        // interrupt for that) or poll the ring if a poll is owed, and
        // deliver what is waiting first, through a memory map read afresh
        // (as on every notify).
        let Self { dev, cpu, st } = self;
        if dev.refresh(*cpu, st) {
            // A poll the timer asked for with this interrupt; none is left
            // over for a later service (a stale one would count a notify's
            // frames as a timer hit).
            let timer = dev.poll_irq.xchg(0, Relaxed) != 0;
            if st.tx_more || st.tx_deferred {
                st.tx_timer = timer;
                dev.process_tx(*cpu, st, true);
            }
            dev.drain_rx(*cpu, st, false);
        }
    }

    fn start(&mut self, features: u64, queues: [Option<QueueConfig>; NUM_QUEUES]) {
        self.dev.start_queues(self.cpu, self.st, features, queues);
    }

    fn stop(&mut self, q: u16) {
        if q == 0 {
            // Nothing more goes into its buffers, its rings are unpinned.
            self.dev.stop_rx(self.st);
            self.dev.coal_stop(0);
        } else if q == CTRL_QUEUE {
            self.st.ctrlq = None;
        } else {
            self.dev.stop_tx(self.st);
            self.dev.coal_stop(1);
            self.st.tx_pins.invalidate();
        }
    }

    fn reset(&mut self) {
        self.dev.stop_tx(self.st);
        self.st.ctrlq = None;
        self.st.notf_coal = false;
        self.dev.stop_rx(self.st);
        self.dev.coal_reset();
        self.dev.backlog.lock().clear();
    }

    fn failed(&mut self) {
        self.dev.stop_tx(self.st);
        self.st.ctrlq = None;
    }
}

impl Port for Device {
    fn id(&self) -> u32 {
        self.id
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn deliver(&self, hdr: &NetHdr, frame: &Frame<'_>, how: Delivery) {
        self.receive(hdr, frame, how);
    }

    fn lend(&self, need: usize, out: &mut [Loan]) -> Option<usize> {
        Device::lend(self, need, out)
    }

    fn returned(&self, token: u16, r: Returned<'_>) -> bool {
        self.loan_returned(token, r)
    }
}

impl Device {
    /// A virtio-mmio device of VM `vm`, at `gpa`, interrupting through `irq`.
    pub(crate) fn new(
        id: u32,
        gpa: u64,
        mac: [u8; 6],
        irq: Option<IrqFd>,
        vm: &VmFile,
    ) -> Result<Arc<Self>> {
        let regs = MmioDevice::new(DEVICE_FEATURES, mac);
        let owner = Owner::Vm(vm.clone_ref());
        Self::build(
            id,
            gpa,
            mac,
            Irq::Mmio(MmioIrq::new(irq)),
            Some(regs),
            owner,
        )
    }

    /// A device on the vhost transport: guest memory in `owner`'s address
    /// space, signals through `irq`.
    pub(crate) fn new_vhost(
        id: u32,
        mac: [u8; 6],
        irq: VhostIrq,
        owner: Owner,
    ) -> Result<Arc<Self>> {
        Self::build(id, 0, mac, Irq::Vhost(irq), None, owner)
    }

    #[inline(never)]
    fn build(
        id: u32,
        gpa: u64,
        mac: [u8; 6],
        transport: Irq,
        regs: Option<MmioDevice>,
        owner: Owner,
    ) -> Result<Arc<Self>> {
        let backlog = super::rx::new_backlog()?;
        let pins = VmPins::new(owner.clone_ref(), mem::RX_QUOTA, true)?;
        let tx_pins = VmPins::new(owner, mem::TX_QUOTA, false)?;
        // SAFETY: An empty chain and an unpinned buffer are all zeros.
        let tx = unsafe { mem::new_zeroed::<TxBig>() }?;
        // SAFETY: The all-zero value of `RingMem` (areas of no length, empty
        // tokens) is valid, as is `RxBig`'s (see its documentation).
        let ring = unsafe { mem::new_zeroed::<mem::RingMem>() }?;
        // SAFETY: As above.
        let big = unsafe { mem::new_zeroed::<RxBig>() }?;
        let scratch = KVVec::from_elem(0u8, FRAME_MAX, GFP_KERNEL)?;
        let tx_poll_ns = match transport {
            Irq::Mmio(_) => crate::tuning::tx_poll_ns(),
            Irq::Vhost(_) => 0,
        };
        Arc::pin_init(
            try_pin_init!(&this in Self {
                // SAFETY: The poll's callbacks reach `this` until the poll
                // is stopped, which dropping the device does first (`poll`
                // is dropped before the rest of the device goes).
                poll: unsafe { TxPoll::new(this.as_ptr().cast())? },
                tx_poll_ns,
                tx_poll_adapt: crate::tuning::tx_poll_adapt(),
                tx_hold_used: crate::tuning::tx_hold_used(),
                id,
                gpa,
                mac,
                transport,
                state <- new_mutex!(Locked { regs, st: DevState {
                    map: GuestMap::new(0),
                    map_gen: MapGen::default(),
                    map_valid: false,
                    txq: None,
                    ctrlq: None,
                    ctrl_chain: Chain::new(),
                    notf_coal: false,
                    tx_off: Offloads::default(),
                    tx_pins,
                    dirty_log: false,
                    tx_more: false,
                    tx_deferred: false,
                    tx_timer: false,
                    tx_policy: TxPolicy::new(),
                    tx,
                    tx_stopped_at: None,
                    uplink: None,
                }}),
                rx <- new_mutex!(RxState {
                    q: None,
                    ring,
                    pins,
                    big,
                    off: Offloads::default(),
                    mrg_rxbuf: false,
                    dirty_log: false,
                    scratch,
                    stopped_at: None,
                    lender: None,
                }),
                backlog <- new_spinlock!(backlog),
                mm_seq: Atomic::new(0),
                lending: super::lend::LendFlags::new(),
                coal: [const { Coal::new() }; 2],
                rx_used: Atomic::new(0),
                counters: Counters::new(),
                pin_stats: [const { Atomic::new(0) }; 6],
                poll_irq: Atomic::new(0),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Connected to its backend: frames go through `uplink` from now on.
    pub(crate) fn set_uplink(&self, uplink: KBox<dyn Uplink>) {
        let mut locked = self.state.lock();
        // Loans made through an old uplink go back through it first.
        self.reclaim_loans(&mut locked.st, false);
        let lends = uplink.borrows_rx() && crate::tuning::rx_lend();
        let old = locked.st.uplink.replace(uplink);
        self.lending.lends.store(lends, Relaxed);
        self.lending.linked.store(true, Relaxed);
        drop(locked);
        drop(old);
    }

    /// Read the memory map afresh into `map`; returns whether KVM logs the
    /// VM's writes, and the map's generation (`mm_seq` is read first: a
    /// change during the read makes the map stale at once).
    pub(super) fn snapshot(
        &self,
        cpu: &dyn OwnThread,
        map: &mut GuestMap,
    ) -> Result<(bool, MapGen)> {
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

    /// Every counter now (with `released` zero: the attachment knows).
    pub(crate) fn counters(&self) -> Snapshot {
        let mut s = self.counters.snapshot();
        // Never waits for the device's own thread (see the lock order).
        let tx = self.pin_stats(0, self.state.try_lock().map(|l| l.st.tx_pins.stats()));
        let rx = self.pin_stats(1, self.rx.try_lock().map(|rx| rx.pins.stats()));
        s.set(C::PagesPinned, rx.pinned + tx.pinned);
        s.set(C::PinHits, rx.hits + tx.hits);
        s.set(C::PinMisses, rx.misses + tx.misses);
        s.set(C::Interrupts, self.transport.interrupts());
        s.set(C::Resamples, self.transport.resamples());
        s.set(C::MergedIrqs, self.transport.merged());
        s
    }

    /// The receive side's state for debugfs: frames waiting in the backlog,
    /// the interrupt bit raised but not yet folded, and the receive queue's
    /// indices (device: next avail, used; guest: avail idx, used_event;
    /// the avail_event the device asked for), each `None` without a queue.
    pub(crate) fn rx_state(&self) -> RxDebug {
        let mut d = RxDebug {
            backlog: self.backlog.lock().len(),
            pending_isr: self.transport.mmio().map_or(0, MmioIrq::pending),
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
        self.stop_poll();
        let mut locked = self.state.lock();
        let st = &mut locked.st;
        self.stop_tx(st);
        st.ctrlq = None;
        self.coal_reset();
        self.lending.linked.store(false, Relaxed);
        self.reclaim_loans(st, true);
        // The backend's reference on the switch (a cycle through its port
        // table, broken here and by the link's disconnect).
        let uplink = st.uplink.take();
        let DevState { tx_pins, tx, .. } = st;
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
        rx.lender = None;
        drop(rx);
        drop(locked);
        drop(uplink);
        self.backlog.lock().clear();
    }

    /// No transmit poll runs after this returns, and none is armed again:
    /// before the device's window goes (a poll's target is in it).
    /// Process context, none of the device's locks held.
    pub(crate) fn stop_poll(&self) {
        self.poll.stop();
    }

    /// Take the interrupt eventfd off the VM's GSI (the attaching process
    /// only; see `IrqFd::unbind`). Nothing signals it after detach anyway.
    pub(crate) fn unbind_irq(&self, vm: &VmFile) {
        if let Some(irq) = self.transport.mmio().and_then(MmioIrq::irqfd) {
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

    pub(super) fn warn(&self, what: &str, detail: impl core::fmt::Debug) {
        if kvm::ratelimit() {
            pr_warn!("device {}: {} ({:?})\n", self.id, what, detail);
        }
    }

    pub(super) fn bad_access(&self, offset: u64, len: usize, write: bool) {
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

    /// A malformed queue: the device needs a reset, the driver is told.
    pub(super) fn broken(&self, st: &mut DevState, what: &str, err: impl core::fmt::Debug) {
        self.warn(what, err);
        if let Some(q) = st.txq.take() {
            st.tx_stopped_at = Some(q.last_avail());
        }
        st.ctrlq = None;
        st.tx_deferred = false;
        self.poll.cancel();
        self.reclaim_loans(st, true);
        self.transport.needs_reset();
    }

    /// Stop the transmit queue: nothing more is sent, no poll is owed.
    pub(super) fn stop_tx(&self, st: &mut DevState) {
        Self::abandon_pending(st);
        st.txq = None;
        st.tx_more = false;
        st.tx_deferred = false;
        self.poll.cancel();
    }

    /// Stop the receive queue and unpin its rings and its cached buffer
    /// pages (the driver took them back), its lent buffers taken back first.
    pub(super) fn stop_rx(&self, st: &mut DevState) {
        self.reclaim_loans(st, true);
        let mut rx = self.rx.lock();
        rx.pins.invalidate();
    }

    /// Set up the queues the driver made ready, checked against guest memory.
    fn start_queues(
        &self,
        cpu: &dyn OwnThread,
        st: &mut DevState,
        f: u64,
        queues: [Option<QueueConfig>; NUM_QUEUES],
    ) {
        st.map_valid = false;
        // Loans of an earlier queue (none: a reset or stop took them back).
        self.reclaim_loans(st, true);
        let (dirty_log, gen) = match self.snapshot(cpu, &mut st.map) {
            Ok(d) => d,
            Err(e) => return self.broken(st, "guest memory map", e),
        };
        st.map_valid = true;
        st.map_gen = gen;
        st.dirty_log = dirty_log;
        st.tx_pins.invalidate();
        let (tx_off, rx_off) = offloads(f);
        st.tx_off = tx_off;
        st.notf_coal = f & feature::NET_F_NOTF_COAL != 0;
        let mut rx = self.rx.lock();
        rx.off = rx_off;
        rx.mrg_rxbuf = f & feature::NET_F_MRG_RXBUF != 0;
        rx.big.map = st.map.clone();
        rx.big.map_gen = gen;
        rx.dirty_log = dirty_log;
        rx.pins.invalidate();
        drop(rx);
        for (n, cfg) in queues.into_iter().enumerate() {
            let Some(cfg) = cfg else {
                continue;
            };
            let q = match Virtqueue::new(cfg, &st.map) {
                Ok(q) => q,
                Err(e) => return self.broken(st, "queue setup rejected", e),
            };
            if n == 1 {
                st.txq = Some(q);
                continue;
            }
            if n == usize::from(CTRL_QUEUE) {
                st.ctrlq = Some(q);
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

    /// The vhost transport started the queues (`VHOST_NET_SET_BACKEND` on
    /// both), from an ioctl of the owner: each resumes at its base, with
    /// the used index the guest's used ring holds.
    pub(crate) fn vhost_start(
        &self,
        own: &dyn OwnThread,
        f: u64,
        queues: [QueueConfig; 2],
        bases: [u16; 2],
    ) {
        let mut locked = self.state.lock();
        let st = &mut locked.st;
        st.tx_stopped_at = None;
        self.rx.lock().stopped_at = None;
        let [rxq, txq] = queues;
        self.start_queues(own, st, f, [Some(rxq), Some(txq), None]);
        let mem = UserMem::new(own, &st.map);
        let used = |q: &Virtqueue| mem.read_u16(q.config().used + 2).unwrap_or(0);
        if let Some(q) = st.txq.as_mut() {
            let u = used(q);
            q.resume(bases[1], u);
        }
        let mut rx = self.rx.lock();
        if let Some(q) = rx.q.as_mut() {
            let u = used(q);
            q.resume(bases[0], u);
        }
        drop(rx);
        // Chains the guest made available before the kick eventfd was
        // watched.
        self.transport.kick();
    }

    /// The vhost transport stopped the queues: the next avail index of each
    /// (receive, transmit), `None` for a queue that was not running.
    pub(crate) fn vhost_stop(&self) -> [Option<u16>; 2] {
        let mut locked = self.state.lock();
        let st = &mut locked.st;
        // A queue that broke stopped where it broke.
        let tx = st
            .txq
            .take()
            .map(|q| q.last_avail())
            .or(st.tx_stopped_at.take());
        self.stop_tx(st);
        st.tx_pins.invalidate();
        self.reclaim_loans(st, true);
        let mut rx = self.rx.lock();
        let r = rx.stopped_at.take();
        rx.pins.invalidate();
        drop(rx);
        self.backlog.lock().clear();
        self.rx_used.store(0, Relaxed);
        [r, tx]
    }

    /// The guest has posted receive buffers on this device since it
    /// started: it uses this queue pair (vhost multiqueue). Lock-free: set
    /// by the device's own thread (`serve`).
    pub(crate) fn rx_posted(&self) -> bool {
        self.rx_used.load(Relaxed) != 0
    }

    /// The vhost transport's work, on the device's own thread (a kick of
    /// either queue, or the work asking for itself): transmit what the guest
    /// made available, deliver what waits in the backlog. What the budget
    /// left is asked for again (in a worker: the vCPU goes back to its
    /// guest).
    pub(crate) fn serve(&self, own: &dyn OwnThread) {
        self.counters.inc(C::Notifies);
        // A kick of either queue: the guest may have posted receive buffers
        // for a backend that borrows them (`lend`).
        if self.lending.lends.load(Relaxed) {
            self.lending.want.store(true, Relaxed);
        }
        if self.rx_used.load(Relaxed) == 0 {
            let posted = self.rx.try_lock().is_some_and(|rx| {
                rx.q.as_ref()
                    .is_some_and(|q| q.indices(&*rx.ring).guest_avail != 0)
            });
            if posted {
                self.rx_used.store(1, Relaxed);
            }
        }
        let mut locked = self.state.lock();
        let st = &mut locked.st;
        if !self.refresh(own, st) {
            return;
        }
        // Queued by the poll timer (and owed still), or a kick.
        st.tx_timer = self.poll_irq.xchg(0, Relaxed) != 0 && st.tx_deferred;
        if st.tx_timer {
            self.counters.inc(C::TxPolls);
        }
        self.process_tx(own, st, false);
        self.drain_rx(own, st, true);
        if st.tx_more {
            self.transport.kick();
        }
    }

    /// Re-read the memory map if the VMM changed the memslots since it was
    /// read, re-check the queues against it and re-pin the receive ring
    /// (every pin of the old map is dropped). False if the device is not
    /// usable.
    pub(super) fn refresh(&self, cpu: &dyn OwnThread, st: &mut DevState) -> bool {
        let now = MapGen::now(cpu.generation(), &self.mm_seq);
        if st.map_valid && now == st.map_gen {
            return true;
        }
        st.map_valid = false;
        self.counters.inc(C::MapRereads);
        // Lent buffers were checked against the old map: taken back before
        // anything is read afresh, lent again after.
        let relend = self.reclaim_loans(st, false);
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
        let map = &st.map;
        let bad = [st.txq.as_mut(), st.ctrlq.as_mut()]
            .into_iter()
            .flatten()
            .find_map(|q| q.recheck(map).err());
        if let Some(e) = bad {
            self.broken(st, "queue outside guest memory", e);
            return false;
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
        drop(rx);
        if relend {
            if let Some(u) = st.uplink.as_mut() {
                u.rx_service();
            }
        }
        true
    }
}
