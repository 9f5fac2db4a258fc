// SPDX-License-Identifier: GPL-2.0

//! One attached device: the virtio-mmio register file a guest sees, its two
//! virtqueues (0: receive, 1: transmit), its port on the switch, and the entry
//! points the C glue calls for every guest access to the window.
//!
//! Everything that touches the guest's memory runs on the guest's own vCPU
//! thread, inside the MMIO op (`kvm::InVcpu`): a transmit notify walks the
//! transmit queue through the descriptor engine, copies each frame once into
//! the device's scratch buffer, checks its virtio-net header and forwards it;
//! frames for this device wait in its backlog until its own vCPU thread copies
//! them into receive buffers (on a receive notify, or when the guest's
//! interrupt handler reads InterruptStatus after the sender kicked the
//! interrupt).
//!
//! Offloads: CSUM, HOST_TSO4/6 (the guest sends 64 KiB TCP segments with
//! partial checksums) and GUEST_CSUM, GUEST_TSO4/6 (it takes them), checked by
//! `vnet`; MRG_RXBUF (a frame may fill several receive buffers) and
//! EVENT_IDX (notification suppression in both directions).
//!
//! Lock order: `Device::state`, then `switch::SWITCH`, then any
//! `Device::backlog` (a leaf). `state` is taken on the vCPU thread with
//! `kvm->srcu` read-held: nothing that waits for srcu (unregistering a window)
//! may run under it.

use core::ffi::{c_int, c_void};
use core::ptr::NonNull;
use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Mutex,
    },
};

use crate::{
    kvm::{self, GuestMap, InVcpu, IrqFd, VcpuMem},
    pvcore::{
        backlog::Backlog,
        mmio::{feature, reg, MmioDevice, MmioEvent},
        traits::GuestMemory,
        virtq::{Chain, Desc, QueueConfig, Virtqueue},
        vnet::{self, NetHdr, Offloads, FRAME_MAX, HDR_LEN},
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
/// Frames a port's backlog holds.
const BACKLOG_FRAMES: usize = 256;
/// Receive buffers one frame may fill with MRG_RXBUF; a guest posting
/// smaller buffers than that loses the frame (counted as too small).
const MAX_RX_BUFFERS: usize = 64;

/// The backlog's byte storage (the core wants `AsRef`/`AsMut` slices).
struct Bytes(KVVec<u8>);

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl AsMut<[u8]> for Bytes {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

type PortBacklog = Backlog<Bytes, BACKLOG_FRAMES>;

/// What the vCPU thread works on, under `Device::state`.
struct DevState {
    regs: MmioDevice,
    map: GuestMap,
    /// `map` was filled from the memslots of generation `map.generation`.
    map_valid: bool,
    rxq: Option<Virtqueue>,
    txq: Option<Virtqueue>,
    /// Offloads the driver negotiated for sending and for receiving.
    tx_off: Offloads,
    rx_off: Offloads,
    mrg_rxbuf: bool,
    /// Transmit scratch: header + frame, each byte copied from the guest once.
    frame: KVVec<u8>,
    /// Receive buffers filled for the current frame: (head, bytes).
    rx_used: [(u16, u32); MAX_RX_BUFFERS],
    /// Receive chains after a frame's first (MRG_RXBUF); kept here, not on
    /// the vCPU thread's kernel stack.
    rx_more: Chain<64>,
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
}
const NR_COUNTERS: usize = C::DropTxSpoofed as usize + 1;

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
    backlog: Mutex<PortBacklog>,
    counters: Counters,
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

impl Device {
    pub(crate) fn new(id: u32, gpa: u64, mac: [u8; 6], irq: Option<IrqFd>) -> Result<Arc<Self>> {
        let backlog = Backlog::new(Bytes(KVVec::from_elem(0u8, BACKLOG_BYTES, GFP_KERNEL)?));
        let frame = KVVec::from_elem(0u8, HDR_LEN + FRAME_MAX, GFP_KERNEL)?;
        let regs = MmioDevice::new(DEVICE_FEATURES, mac);
        Arc::pin_init(
            try_pin_init!(Self {
                id,
                gpa,
                mac,
                irq,
                state <- new_mutex!(DevState {
                    regs,
                    map: GuestMap::new(0),
                    map_valid: false,
                    rxq: None,
                    txq: None,
                    tx_off: Offloads::default(),
                    rx_off: Offloads::default(),
                    mrg_rxbuf: false,
                    frame,
                    rx_used: [(0, 0); MAX_RX_BUFFERS],
                    rx_more: Chain::new(),
                }),
                backlog <- new_mutex!(backlog),
                counters: Counters::new(),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub(crate) fn stats(&self) -> uapi::Stats {
        let c = &self.counters;
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
            ..Default::default()
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

    /// Raise the used-buffer interrupt; `kick` also injects it (not needed
    /// when the guest is reading InterruptStatus right now).
    fn interrupt(&self, regs: &mut MmioDevice, kick: bool) {
        regs.raise_interrupt(1);
        if kick {
            if let Some(irq) = &self.irq {
                self.counters.inc(C::Interrupts);
                irq.signal();
            }
        }
    }

    /// A malformed queue: the device needs a reset, the driver is told.
    fn broken(&self, st: &mut DevState, what: &str, err: impl core::fmt::Debug) {
        self.warn(what, err);
        st.rxq = None;
        st.txq = None;
        st.regs.set_needs_reset();
        if let Some(irq) = &self.irq {
            irq.signal();
        }
    }

    /// Called by the switch on the sender's thread: queue `frame` (with its
    /// checked header) for this port and kick its interrupt if the backlog
    /// was empty.
    pub(crate) fn receive(&self, hdr: &NetHdr, frame: &[u8]) {
        match self.backlog.lock().push(*hdr, frame) {
            Err(_) => self.counters.inc(C::DropRxNoBuffer),
            Ok(false) => {}
            Ok(true) => {
                if let Some(irq) = &self.irq {
                    self.counters.inc(C::Interrupts);
                    irq.signal();
                }
            }
        }
    }

    fn mmio_read(&self, cpu: &InVcpu, offset: u64, data: &mut [u8]) {
        self.counters.inc(C::MmioReads);
        let mut st = self.state.lock();
        if offset == reg::INTERRUPT_STATUS && self.refresh(cpu, &mut st) {
            // The guest's interrupt handler: deliver what is waiting first,
            // through a memory map read afresh (as on every notify).
            self.drain_rx(cpu, &mut st, false);
        }
        if st.regs.read(offset, data).is_err() {
            drop(st);
            self.bad_access(offset, data.len(), false);
        }
    }

    fn mmio_write(&self, cpu: &InVcpu, offset: u64, data: &[u8]) {
        self.counters.inc(C::MmioWrites);
        let mut st = self.state.lock();
        match st.regs.write(offset, data) {
            Err(_) => {
                drop(st);
                self.bad_access(offset, data.len(), true);
            }
            Ok(MmioEvent::Notify(q)) => {
                self.counters.inc(C::Notifies);
                if self.refresh(cpu, &mut st) {
                    if q == 1 {
                        self.process_tx(cpu, &mut st);
                    }
                    self.drain_rx(cpu, &mut st, true);
                }
            }
            Ok(MmioEvent::DriverOk) => self.start_queues(cpu, &mut st),
            Ok(MmioEvent::Reset) => {
                st.rxq = None;
                st.txq = None;
                self.backlog.lock().clear();
            }
            Ok(_) => {}
        }
    }

    /// Set up the queues the driver made ready, checked against guest memory.
    fn start_queues(&self, cpu: &InVcpu, st: &mut DevState) {
        st.map_valid = false;
        if let Err(e) = cpu.snapshot(&mut st.map) {
            return self.broken(st, "guest memory map", e);
        }
        st.map_valid = true;
        let f = st.regs.driver_features();
        (st.tx_off, st.rx_off) = offloads(f);
        st.mrg_rxbuf = f & feature::NET_F_MRG_RXBUF != 0;
        for (n, slot) in [(0u16, 0usize), (1, 1)] {
            let Some(r) = st.regs.queue(n).copied() else { continue };
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
            match Virtqueue::new(cfg, &st.map) {
                Ok(q) if slot == 0 => st.rxq = Some(q),
                Ok(q) => st.txq = Some(q),
                Err(e) => return self.broken(st, "queue setup rejected", e),
            }
        }
    }

    /// Re-read the memory map if the VMM changed the memslots since it was
    /// read, and re-check the queues against it. False if the device is not
    /// usable.
    fn refresh(&self, cpu: &InVcpu, st: &mut DevState) -> bool {
        if st.map_valid && cpu.generation() == st.map.generation {
            return true;
        }
        st.map_valid = false;
        if let Err(e) = cpu.snapshot(&mut st.map) {
            self.broken(st, "guest memory map", e);
            return false;
        }
        st.map_valid = true;
        let DevState { map, rxq, txq, .. } = &mut *st;
        let checked = [rxq, txq].into_iter().flatten().try_for_each(|q| q.recheck(map));
        if let Err(e) = checked {
            self.broken(st, "queue outside guest memory", e);
            return false;
        }
        true
    }

    /// Transmit: every chain the guest made available, run to completion.
    /// With EVENT_IDX the guest is then asked to notify at its next frame,
    /// and frames it added meanwhile are served in the same call.
    fn process_tx(&self, cpu: &InVcpu, st: &mut DevState) {
        let mut chain = Chain::<64>::new();
        let mut completed = false;
        loop {
            let DevState { map, txq, frame, tx_off, .. } = &mut *st;
            let Some(q) = txq.as_mut() else { return };
            let mem = VcpuMem::new(cpu, map);
            match q.pop(&mem, map, &mut chain) {
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
            let len = copy_in(&mem, chain.descs(), frame);
            if let Err(e) = q.push(&mem, chain.head(), 0) {
                return self.broken(st, "transmit used ring", e);
            }
            completed = true;
            let Some((raw, f)) = len.and_then(|n| frame.get(..n)).and_then(|b| b.split_first_chunk::<HDR_LEN>()) else {
                self.counters.inc(C::DropTxBadBuffer);
                continue;
            };
            let mut hdr = NetHdr::parse(raw);
            if let Err(e) = hdr.check(f, *tx_off) {
                self.counters.inc(C::DropTxBadHdr);
                self.warn("transmit header refused, frame dropped", e);
                continue;
            }
            if switch::forward(self.id, &hdr, f) == switch::Forwarded::Spoofed {
                self.counters.inc(C::DropTxSpoofed);
                self.warn("frame with another port's MAC as source dropped", f.get(6..12));
                continue;
            }
            self.counters.inc(C::TxFrames);
            self.counters.add(C::TxBytes, f.len() as u64);
            if hdr.is_gso() {
                self.counters.inc(C::TxGso);
            }
        }
        let DevState { regs, map, txq, .. } = &mut *st;
        if let Some(q) = txq.as_mut() {
            let mem = VcpuMem::new(cpu, map);
            if completed && q.need_notify(&mem).unwrap_or(true) {
                self.interrupt(regs, true);
            }
        }
    }

    /// Receive: move waiting frames into the guest's receive buffers.
    fn drain_rx(&self, cpu: &InVcpu, st: &mut DevState, kick: bool) {
        let mut chain = Chain::<64>::new();
        let mut backlog = self.backlog.lock();
        let mut completed = false;
        let mut retried = false;
        loop {
            if backlog.is_empty() {
                break;
            }
            let DevState { map, rxq, rx_off, mrg_rxbuf, rx_used, rx_more, .. } = &mut *st;
            let Some(q) = rxq.as_mut() else { return };
            let mem = VcpuMem::new(cpu, map);
            let Some((hdr, frame)) = backlog.front() else { break };
            match hdr.fits(*rx_off) {
                Ok(()) => {}
                Err(true) => {
                    if vnet::complete_csum(frame, hdr).is_ok() {
                        hdr.flags &= !vnet::F_NEEDS_CSUM;
                        self.counters.inc(C::RxCsumCompleted);
                    }
                }
                Err(false) => {
                    self.counters.inc(C::DropRxNoOffload);
                    backlog.pop();
                    continue;
                }
            }
            let gso = hdr.is_gso();
            let flen = frame.len() as u64;
            let max = if *mrg_rxbuf { MAX_RX_BUFFERS } else { 1 };
            let filled = fill(q, &mem, map, &mut chain, rx_more, hdr, frame, rx_used, max);
            let used = match filled {
                Fill::Done(n) => {
                    self.counters.inc(C::RxFrames);
                    self.counters.add(C::RxBytes, flen);
                    if gso {
                        self.counters.inc(C::RxGso);
                    }
                    n
                }
                Fill::TooSmall(n) => {
                    self.counters.inc(C::DropRxTooSmall);
                    n
                }
                Fill::Wait => {
                    // No buffer (or not enough) yet: the frame waits. With
                    // EVENT_IDX, ask for a notify at the next buffer; serve
                    // buffers that came meanwhile right away, once: the
                    // chains a mergeable fill put back count as available
                    // too, so retrying for ever would spin on them.
                    match q.enable_notify(&mem) {
                        Ok(true) if !retried => {
                            retried = true;
                            continue;
                        }
                        Ok(_) => break,
                        Err(e) => {
                            drop(backlog);
                            return self.broken(st, "receive ring", e);
                        }
                    }
                }
                Fill::Broken(e) => {
                    drop(backlog);
                    return self.broken(st, "malformed receive chain", e);
                }
            };
            backlog.pop();
            for &(head, len) in rx_used.iter().take(used) {
                if let Err(e) = q.push(&mem, head, len) {
                    drop(backlog);
                    return self.broken(st, "receive used ring", e);
                }
            }
            completed = true;
        }
        drop(backlog);
        let DevState { regs, map, rxq, .. } = &mut *st;
        if let Some(q) = rxq.as_mut() {
            let mem = VcpuMem::new(cpu, map);
            if completed && q.need_notify(&mem).unwrap_or(true) {
                self.interrupt(regs, kick);
            }
        }
    }
}

/// What filling receive buffers with one frame came to. `Done(n)` and
/// `TooSmall(n)`: the first `n` entries of `rx_used` are to be pushed.
enum Fill {
    Done(usize),
    /// The frame did not fit (dropped); the buffers go back empty.
    TooSmall(usize),
    /// Not enough buffers now; nothing was consumed.
    Wait,
    Broken(crate::pvcore::virtq::QueueError),
}

/// Write one frame into receive chains: as many as it needs, at most `max`
/// (1 without MRG_RXBUF, where a GSO receiver posts chains big enough for a
/// whole GSO frame, as Linux's "big packets" mode does). The first chain
/// goes into `first`, later ones into `more`; the header, whose num_buffers
/// is known only at the end, is written last at the start of `first`.
#[allow(clippy::too_many_arguments)]
fn fill(
    q: &mut Virtqueue,
    mem: &VcpuMem<'_>,
    map: &GuestMap,
    first: &mut Chain<64>,
    more: &mut Chain<64>,
    hdr: &NetHdr,
    frame: &[u8],
    rx_used: &mut [(u16, u32); MAX_RX_BUFFERS],
    max: usize,
) -> Fill {
    let total = HDR_LEN + frame.len();
    let mut pos = 0usize;
    let mut n = 0usize;
    while pos < total {
        if n == max {
            // The buffers cannot hold the frame: drop it, give them back.
            return Fill::TooSmall(empty(rx_used, n));
        }
        let chain = if n == 0 { &mut *first } else { &mut *more };
        match q.pop(mem, map, chain) {
            Ok(true) => {}
            Ok(false) => {
                for _ in 0..n {
                    q.unpop();
                }
                return Fill::Wait;
            }
            Err(e) => return Fill::Broken(e),
        }
        // Frame bytes at stream position `pos` (the header's place is
        // written with zeros now and with the header at the end).
        let written = copy_out(mem, chain.descs(), &[0u8; HDR_LEN], frame, pos).unwrap_or(0);
        if let Some(slot) = rx_used.get_mut(n) {
            *slot = (chain.head(), u32::try_from(written).unwrap_or(0));
        }
        n += 1;
        if written == 0 {
            // Read-only or unusable buffer: the frame cannot be delivered.
            return Fill::TooSmall(empty(rx_used, n));
        }
        pos += written;
    }
    let h = NetHdr { num_buffers: u16::try_from(n).unwrap_or(0), ..*hdr }.to_bytes();
    match copy_out(mem, first.descs(), &h, &[], 0) {
        Some(HDR_LEN) => Fill::Done(n),
        _ => Fill::TooSmall(empty(rx_used, n)),
    }
}

/// Mark the first `n` buffers of `rx_used` as returned empty; returns `n`.
fn empty(rx_used: &mut [(u16, u32); MAX_RX_BUFFERS], n: usize) -> usize {
    for slot in rx_used.iter_mut().take(n) {
        slot.1 = 0;
    }
    n
}

/// Copy a transmit chain (device-readable buffers only) into `frame`, each
/// byte once. The length, or `None` for a chain that does not fit, has a
/// device-writable buffer or points outside guest memory.
fn copy_in<M: GuestMemory>(mem: &M, descs: &[Desc], frame: &mut [u8]) -> Option<usize> {
    let mut len = 0usize;
    for d in descs {
        if d.writable {
            return None;
        }
        let end = len.checked_add(usize::try_from(d.len).ok()?)?;
        mem.read(d.addr, frame.get_mut(len..end)?).ok()?;
        len = end;
    }
    Some(len)
}

/// Write the stream `hdr ++ frame`, from stream position `from` on, into a
/// receive chain's buffers, as far as they reach. The bytes written, or `None`
/// if a buffer is read-only or outside guest memory.
fn copy_out(mem: &VcpuMem<'_>, descs: &[Desc], hdr: &[u8], frame: &[u8], from: usize) -> Option<usize> {
    let total = hdr.len() + frame.len();
    let mut pos = from;
    for d in descs {
        if !d.writable {
            return None;
        }
        let mut addr = d.addr;
        let mut left = usize::try_from(d.len).ok()?.min(total.checked_sub(pos)?);
        while left > 0 {
            let src = if pos < hdr.len() { hdr.get(pos..)? } else { frame.get(pos - hdr.len()..)? };
            let n = src.len().min(left);
            mem.write(addr, src.get(..n)?).ok()?;
            addr = addr.checked_add(n as u64)?;
            pos += n;
            left -= n;
        }
        if pos == total {
            break;
        }
    }
    Some(pos - from)
}

/// Called by glue.c for a guest read of `len` bytes at `offset` in the window.
///
/// # Safety
///
/// Called only from the glue's MMIO read op for window `mmio`. `ctx` is the
/// `Device` the window was registered with (see `kvm::MmioWindow::register`),
/// and `val` points to `len` writable bytes; the glue guarantees
/// `1 <= len <= 8` and `offset + len <= WINDOW_SIZE`.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_mmio_read(
    ctx: *const c_void,
    mmio: *mut c_void,
    offset: u64,
    len: c_int,
    val: *mut c_void,
) -> c_int {
    // SAFETY: Per the function's contract, `ctx` is a live `Device`.
    let dev = unsafe { &*ctx.cast::<Device>() };
    let Some(mmio) = NonNull::new(mmio) else { return 0 };
    // SAFETY: We are in the MMIO op of `mmio`, and `cpu` dies with this call.
    let cpu = unsafe { InVcpu::new(mmio) };
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
    offset: u64,
    len: c_int,
    val: *const c_void,
) -> c_int {
    // SAFETY: Per the function's contract, `ctx` is a live `Device`.
    let dev = unsafe { &*ctx.cast::<Device>() };
    let Some(mmio) = NonNull::new(mmio) else { return 0 };
    // SAFETY: We are in the MMIO op of `mmio`, and `cpu` dies with this call.
    let cpu = unsafe { InVcpu::new(mmio) };
    let len = usize::try_from(len).unwrap_or(0);
    // SAFETY: Per the function's contract, `val` points to `len` readable bytes.
    let data = unsafe { core::slice::from_raw_parts(val.cast::<u8>(), len) };
    dev.mmio_write(&cpu, offset, data);
    0
}
