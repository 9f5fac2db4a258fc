// SPDX-License-Identifier: GPL-2.0

//! One attached device: the virtio-mmio register file a guest sees, its two
//! virtqueues (0: receive, 1: transmit), its port on the switch, and the entry
//! points the C glue calls for every guest access to the window.
//!
//! Everything that touches the guest's memory runs on the guest's own vCPU
//! thread, inside the MMIO op (`kvm::InVcpu`): a transmit notify walks the
//! transmit queue through the descriptor engine, copies each frame once into
//! the device's scratch buffer and forwards it; frames for this device wait
//! in its backlog until its own vCPU thread copies them into receive buffers
//! (on a receive notify, or when the guest's interrupt handler reads
//! InterruptStatus after the sender kicked the interrupt).
//!
//! Lock order: `Device::state`, then `switch::PORTS`, then any
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
        mmio::{feature, reg, MmioDevice, MmioEvent},
        traits::GuestMemory,
        virtq::{Chain, Desc, QueueConfig, Virtqueue},
    },
    switch, uapi,
};

/// Features offered: VERSION_1 (added by `MmioDevice`), a MAC, link status
/// and a fixed MTU. Offloads, EVENT_IDX and MRG_RXBUF come with a later
/// version of the data path.
const DEVICE_FEATURES: u64 = feature::NET_F_MAC | feature::NET_F_STATUS | feature::NET_F_MTU;
/// `struct virtio_net_hdr_v1`: with VERSION_1 it always has `num_buffers`.
const HDR_LEN: usize = 12;
/// Largest frame carried: MTU 1500 + Ethernet header + one VLAN tag.
const FRAME_MAX: usize = 1500 + 14 + 4;
/// Frames a port's backlog holds before it drops its own traffic.
const BACKLOG: usize = 64;

/// Frames waiting for a port's receive buffers.
struct Backlog {
    data: KVVec<u8>,
    lens: [u16; BACKLOG],
    head: usize,
    count: usize,
}

impl Backlog {
    fn new() -> Result<Self> {
        Ok(Self { data: KVVec::from_elem(0u8, BACKLOG * FRAME_MAX, GFP_KERNEL)?, lens: [0; BACKLOG], head: 0, count: 0 })
    }

    /// Queue a copy of `frame` (at most FRAME_MAX bytes). Returns whether the
    /// backlog was empty, or `None` if it is full.
    fn push(&mut self, frame: &[u8]) -> Option<bool> {
        if self.count == BACKLOG || frame.len() > FRAME_MAX {
            return None;
        }
        let slot = (self.head + self.count) % BACKLOG;
        self.data.get_mut(slot * FRAME_MAX..slot * FRAME_MAX + frame.len())?.copy_from_slice(frame);
        *self.lens.get_mut(slot)? = frame.len() as u16;
        self.count += 1;
        Some(self.count == 1)
    }

    fn front(&self) -> Option<&[u8]> {
        if self.count == 0 {
            return None;
        }
        let len = usize::from(*self.lens.get(self.head)?);
        self.data.get(self.head * FRAME_MAX..self.head * FRAME_MAX + len)
    }

    fn pop(&mut self) {
        if self.count > 0 {
            self.head = (self.head + 1) % BACKLOG;
            self.count -= 1;
        }
    }

    fn clear(&mut self) {
        self.count = 0;
    }
}

/// What the vCPU thread works on, under `Device::state`.
struct DevState {
    regs: MmioDevice,
    map: GuestMap,
    /// `map` was filled from the memslots of generation `map.generation`.
    map_valid: bool,
    rxq: Option<Virtqueue>,
    txq: Option<Virtqueue>,
    /// Transmit scratch: header + frame, each byte copied from the guest once.
    frame: [u8; HDR_LEN + FRAME_MAX],
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
}
const NR_COUNTERS: usize = C::DropRxTooSmall as usize + 1;

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
    backlog: Mutex<Backlog>,
    counters: Counters,
}

impl Device {
    pub(crate) fn new(id: u32, gpa: u64, mac: [u8; 6], irq: Option<IrqFd>) -> Result<Arc<Self>> {
        let backlog = Backlog::new()?;
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
                    frame: [0; HDR_LEN + FRAME_MAX],
                }),
                backlog <- new_mutex!(backlog),
                counters: Counters::new(),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn mac(&self) -> &[u8] {
        &self.mac
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

    /// Called by the switch on the sender's thread: queue `frame` for this
    /// port and kick its interrupt if the backlog was empty.
    pub(crate) fn receive(&self, frame: &[u8]) {
        match self.backlog.lock().push(frame) {
            None => self.counters.inc(C::DropRxNoBuffer),
            Some(false) => {}
            Some(true) => {
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
                event_idx: false,
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
    fn process_tx(&self, cpu: &InVcpu, st: &mut DevState) {
        let mut chain = Chain::<64>::new();
        let mut completed = false;
        loop {
            let DevState { map, txq, frame, .. } = &mut *st;
            let Some(q) = txq.as_mut() else { return };
            let mem = VcpuMem::new(cpu, map);
            match q.pop(&mem, map, &mut chain) {
                Ok(false) => break,
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
            match len.and_then(|n| frame.get(HDR_LEN..n).filter(|f| f.len() >= 14)) {
                Some(f) => {
                    self.counters.inc(C::TxFrames);
                    self.counters.add(C::TxBytes, f.len() as u64);
                    switch::forward(self.id, f);
                }
                None => self.counters.inc(C::DropTxBadBuffer),
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
        loop {
            let Some(frame) = backlog.front() else { break };
            let DevState { map, rxq, .. } = &mut *st;
            let Some(q) = rxq.as_mut() else { return };
            let mem = VcpuMem::new(cpu, map);
            match q.pop(&mem, map, &mut chain) {
                Ok(false) => break, // no buffer yet: the frame waits
                Ok(true) => {}
                Err(e) => {
                    drop(backlog);
                    return self.broken(st, "malformed receive chain", e);
                }
            }
            let written = copy_out(&mem, chain.descs(), frame);
            let flen = frame.len() as u64;
            backlog.pop();
            let used = match written {
                Some(n) => {
                    self.counters.inc(C::RxFrames);
                    self.counters.add(C::RxBytes, flen);
                    n
                }
                None => {
                    self.counters.inc(C::DropRxTooSmall);
                    0
                }
            };
            if let Err(e) = q.push(&mem, chain.head(), used) {
                drop(backlog);
                return self.broken(st, "receive used ring", e);
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

/// Write a virtio-net header and `frame` into a receive chain's buffers.
/// The bytes written, or `None` if the buffers are too small, read-only or
/// outside guest memory.
fn copy_out(mem: &VcpuMem<'_>, descs: &[Desc], frame: &[u8]) -> Option<u32> {
    // virtio_net_hdr_v1: no checksum or GSO, num_buffers = 1.
    let mut hdr = [0u8; HDR_LEN];
    hdr[10] = 1;
    let total = HDR_LEN + frame.len();
    let room = descs.iter().try_fold(0usize, |acc, d| {
        if d.writable { acc.checked_add(usize::try_from(d.len).ok()?) } else { None }
    })?;
    if room < total {
        return None;
    }
    let mut pos = 0usize;
    for d in descs {
        let mut addr = d.addr;
        let mut left = usize::try_from(d.len).ok()?.min(total - pos);
        while left > 0 {
            let src = if pos < HDR_LEN { hdr.get(pos..)? } else { frame.get(pos - HDR_LEN..)? };
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
    u32::try_from(total).ok()
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
