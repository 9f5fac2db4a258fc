// SPDX-License-Identifier: GPL-2.0

//! The host's pool (VMDq pool 0) of a NIC: one receive and one transmit
//! ring, the host's interface on them (`pvpnic<n>`, a `net_device` made by
//! glue/nic.c) and the NIC's interrupt.
//!
//! Every descriptor the NIC sees is built here, by the core's ring
//! bookkeeping, from buffers of this pool's own coherent areas: a frame is
//! copied out of its receive buffer into a new skb, and a queued skb into a
//! free transmit buffer (one copy each way).
//!
//! The data path (`Path`: the ring state) runs in the interface's NAPI poll
//! only, one poll at a time, and in open/stop, which the glue calls with
//! NAPI disabled: it has no lock. The plan's state is behind `plan`, a mutex
//! taken in process context only (open, stop, the driver's quiesce). Lock
//! order: the interface's RTNL (open, stop), then `plan`.
//!
//! The interrupt (MSI-X vector 0: pool 0's receive and transmit causes and
//! the link) only schedules the poll. QEMU's model does not auto-mask
//! vectors and pvpass masks none while the pool runs: a cause that arrives
//! during a poll interrupts again, which NAPI folds into one more poll.

use core::{
    cell::UnsafeCell,
    ffi::{
        c_int,
        c_void, //
    },
    ptr::NonNull,
};
use kernel::{
    device::{
        Bound,
        Device, //
    },
    error::{
        from_err_ptr,
        to_result, //
    },
    irq,
    new_mutex,
    pci,
    prelude::*,
    sync::Mutex, //
};

use super::{
    bar::{
        Bar0,
        BarRegs,
        Wait, //
    },
    driver::Plan,
    ring::{
        BufArea,
        DescRing, //
    },
};
use crate::{
    glue,
    pvcore::{
        igb::{
            desc::{
                build_tx,
                RawDesc,
                TxSeg,
                TX_MAX_DATA_DESCS,
                TX_MAX_DESCS, //
            },
            pools::{
                Nic,
                NicError,
                PoolPath,
                PoolRxConfig,
                RingConfig, //
            },
            regs::Pool,
            ring::{
                RxRing,
                TxRing, //
            },
        },
        vnet::{
            NetHdr,
            HDR_LEN, //
        },
    }, //
};

/// Descriptors per ring (and buffers per direction).
const RING: u16 = 128;
const RING_N: usize = RING as usize;
/// Receive buffer size (SRRCTL.BSIZEPKT) and transmit buffer size.
const BUF_LEN: u32 = 2048;
/// Largest frame of the host pool (without FCS): a 1500-byte MTU and one
/// VLAN tag. Longer frames are dropped by the NIC for this pool.
const MAX_FRAME: u16 = 1518;
/// The MSI-X vector of the host pool (and of the link).
const VECTOR: u8 = 0;
const VECTOR_MASK: u32 = 1 << VECTOR;

/// The ring state of the running pool.
struct Path {
    rx: RxRing<RING_N>,
    tx: TxRing<RING_N>,
    running: bool,
}

/// The host pool's rings, buffers and the plan.
#[pin_data]
pub(crate) struct HostPool<'a> {
    bar: &'a Bar0<'a>,
    #[pin]
    pub(super) plan: Mutex<Plan>,
    rx_ring: DescRing,
    tx_ring: DescRing,
    rx_buf: BufArea,
    tx_buf: BufArea,
    /// Only the NAPI poll, and open/stop with NAPI disabled, reach it.
    path: UnsafeCell<Path>,
}

// SAFETY: Shared between the threads that open, stop and poll the
// interface: `plan` is a mutex; `path` is reached by one of them at a time
// (the NAPI poll runs on one CPU at a time and never beside open or stop,
// see `path`); the rest is read-only after creation.
unsafe impl Sync for HostPool<'_> {}

fn nic_errno(e: NicError) -> Error {
    match e {
        NicError::QueueBusy | NicError::RxStuck(_) | NicError::TxStuck(_) => EBUSY,
        NicError::NotReady => ENODEV,
        _ => EINVAL,
    }
}

impl<'a> HostPool<'a> {
    fn new(dev: &Device<Bound>, bar: &'a Bar0<'a>, nic: Nic) -> impl PinInit<Self, Error> + 'a {
        let rings = (|| -> Result<_> {
            Ok((
                DescRing::new(dev, RING)?,
                DescRing::new(dev, RING)?,
                BufArea::new(dev, RING, BUF_LEN)?,
                BufArea::new(dev, RING, BUF_LEN)?,
            ))
        })();
        pin_init::pin_init_scope(move || {
            let (rx_ring, tx_ring, rx_buf, tx_buf) = rings?;
            Ok(try_pin_init!(Self {
                bar,
                plan <- new_mutex!(Plan {
                    nic,
                    quiesced: false,
                }),
                rx_ring,
                tx_ring,
                rx_buf,
                tx_buf,
                path: UnsafeCell::new(Path {
                    rx: RxRing::new(),
                    tx: TxRing::new(),
                    running: false,
                }),
            }))
        })
    }

    /// The ring state.
    ///
    /// # Safety
    ///
    /// The caller is the interface's NAPI poll, or open/stop with the poll
    /// disabled (`napi_disable` waited for a running poll and none starts
    /// before `napi_enable`): nothing else holds the returned reference.
    #[expect(clippy::mut_from_ref, reason = "exclusive by the NAPI contract above")]
    unsafe fn path(&self) -> &mut Path {
        // SAFETY: Exclusive per the function's contract.
        unsafe { &mut *self.path.get() }
    }

    /// ndo_open: starts the pool (receive ring filled, both queues enabled,
    /// all multicast to the host, vector 0 unmasked). Whether the link is up.
    fn open(&self) -> Result<bool> {
        let mut plan = self.plan.lock();
        if plan.quiesced {
            return Err(ENODEV);
        }
        // SAFETY: ndo_open calls this before napi_enable.
        let path = unsafe { self.path() };
        let mut r = BarRegs::new(self.bar, Wait::Sleep);
        path.rx.reset(RING, BUF_LEN).map_err(|_| EINVAL)?;
        path.tx.reset(RING).map_err(|_| EINVAL)?;
        let mut rx = self.rx_ring.descs();
        for i in 0..RING.saturating_sub(1) {
            let addr = self.rx_buf.dma(i).ok_or(EINVAL)?;
            path.rx
                .post(&mut rx, addr, self.rx_buf.len(), u64::from(i))
                .map_err(|_| EINVAL)?;
        }
        let pool = Pool::HOST;
        let nic = &mut plan.nic;
        let rx_cfg = PoolRxConfig {
            buf_len: BUF_LEN,
            max_frame: MAX_FRAME,
            broadcast: true,
            multicast: true,
            drop_when_empty: false,
        };
        let started = (|| {
            nic.enable_rx(
                &mut r,
                pool,
                RingConfig {
                    base: self.rx_ring.base(),
                    size: self.rx_ring.size(),
                },
                &rx_cfg,
            )?;
            PoolPath::new(pool).write_rx_tail(&mut r, path.rx.tail());
            nic.enable_tx(
                &mut r,
                pool,
                RingConfig {
                    base: self.tx_ring.base(),
                    size: self.tx_ring.size(),
                },
            )?;
            nic.set_mta_all(&mut r, true);
            nic.map_vectors(&mut r, pool, Some(VECTOR), Some(VECTOR))?;
            nic.map_misc_vector(&mut r, VECTOR)?;
            nic.set_interval(&mut r, VECTOR, 0)?;
            nic.enable_vectors(&mut r, VECTOR_MASK);
            Ok(())
        })();
        if let Err(e) = started {
            Self::stop_queues(nic, &mut r);
            path.rx.drain(|_| {});
            path.tx.drain(|_| {});
            return Err(nic_errno(e));
        }
        path.running = true;
        Ok(nic.link_up(&mut r))
    }

    /// Vector masked, both queues disabled and confirmed stopped (if a
    /// queue is stuck the plan keeps it marked running: it cannot be opened
    /// again, and the driver's quiesce resets the NIC before the buffers go).
    fn stop_queues(nic: &mut Nic, r: &mut BarRegs<'_, '_>) {
        nic.disable_vectors(r, VECTOR_MASK);
        let _ = nic.map_vectors(r, Pool::HOST, None, None);
        let _ = nic.disable_rx(r, Pool::HOST);
        let _ = nic.disable_tx(r, Pool::HOST);
    }

    /// ndo_stop: stops the pool; its buffers are the driver's again.
    fn stop(&self) {
        let mut plan = self.plan.lock();
        // SAFETY: ndo_stop calls this after napi_disable.
        let path = unsafe { self.path() };
        let mut r = BarRegs::new(self.bar, Wait::Sleep);
        if !plan.quiesced {
            Self::stop_queues(&mut plan.nic, &mut r);
        }
        path.running = false;
        // The buffers are this pool's own memory, freed with it after the
        // driver's quiesce: nothing to give back.
        path.rx.drain(|_| {});
        path.tx.drain(|_| {});
    }

    /// The NAPI poll: transmit completions, up to `budget` received frames
    /// to the stack, then queued frames into free transmit buffers. Returns
    /// the frames received.
    fn poll(&self, port: *mut glue::NicPort, budget: i32) -> i32 {
        // SAFETY: Called from the NAPI poll only.
        let path = unsafe { self.path() };
        if !path.running {
            return 0;
        }
        let mut r = BarRegs::new(self.bar, Wait::Spin);
        let q = PoolPath::new(Pool::HOST);
        let mut tx = self.tx_ring.descs();
        for _ in 0..RING {
            if path.tx.reap(&mut tx).is_none() {
                break;
            }
        }

        let mut rx = self.rx_ring.descs();
        let mut done = 0i32;
        let mut reposted = false;
        while done < budget {
            let buf = match path.rx.reap(&mut rx) {
                Ok(None) => break,
                Ok(Some(d)) => {
                    let i = u16::try_from(d.cookie).unwrap_or(u16::MAX);
                    match self.rx_buf.ptr(i) {
                        Some(data) if d.len <= self.rx_buf.len() => {
                            // SAFETY: `port` is the live interface this poll
                            // belongs to; `data` holds `d.len` bytes the NIC
                            // wrote (DD seen, then the read fence), which it
                            // does not touch again until reposted.
                            unsafe {
                                glue::pvpass_nicport_rx(
                                    port,
                                    data.cast_const().cast(),
                                    d.len,
                                    d.wb.l4_csum_ok(),
                                )
                            };
                        }
                        // SAFETY: `port` is live.
                        _ => unsafe { glue::pvpass_nicport_rx_error(port) },
                    }
                    i
                }
                Err(f) => {
                    // SAFETY: `port` is live.
                    unsafe { glue::pvpass_nicport_rx_error(port) };
                    u16::try_from(f.cookie).unwrap_or(u16::MAX)
                }
            };
            done = done.saturating_add(1);
            // Give the buffer back to the NIC at once: the frame was copied.
            if let Some(addr) = self.rx_buf.dma(buf) {
                if path
                    .rx
                    .post(&mut rx, addr, self.rx_buf.len(), u64::from(buf))
                    .is_ok()
                {
                    reposted = true;
                }
            }
        }
        if reposted {
            q.write_rx_tail(&mut r, path.rx.tail());
        }

        let mut sent = false;
        let buf_len = self.tx_buf.len();
        let max = u32::from(MAX_FRAME).min(buf_len);
        // A TSO frame: at most 32 data descriptors, one buffer each.
        let max_gso = u32::try_from(TX_MAX_DATA_DESCS)
            .unwrap_or(0)
            .saturating_mul(buf_len);
        for _ in 0..RING {
            // Room for a context descriptor and a data descriptor per
            // buffer. A frame's buffers are those of the ring positions of
            // its descriptors (from its first on), free while those are.
            let room = usize::from(path.tx.free().saturating_sub(1)).min(TX_MAX_DATA_DESCS);
            if room == 0 {
                break;
            }
            let first = path.tx.tail();
            let mut bufs = [core::ptr::null_mut::<c_void>(); TX_MAX_DATA_DESCS];
            let mut segs = [TxSeg::default(); TX_MAX_DATA_DESCS];
            let mut n = 0usize;
            for (k, (b, sg)) in bufs.iter_mut().zip(segs.iter_mut()).take(room).enumerate() {
                let slot = (usize::from(first) + k) % RING_N;
                let slot = u16::try_from(slot).unwrap_or(0);
                let (Some(ptr), Some(addr)) = (self.tx_buf.ptr(slot), self.tx_buf.dma(slot)) else {
                    break;
                };
                *b = ptr.cast();
                *sg = TxSeg { addr, len: buf_len };
                n += 1;
            }
            if n == 0 {
                break;
            }
            let mut raw = [0u8; HDR_LEN];
            // SAFETY: `port` is live; `bufs` holds `n` buffers of `buf_len`
            // bytes each that the NIC does not own (their descriptors are
            // free); `raw` holds a virtio_net_hdr_v1.
            let len = unsafe {
                glue::pvpass_nicport_tx_next(
                    port,
                    bufs.as_ptr(),
                    n as u32,
                    buf_len,
                    max,
                    max_gso,
                    raw.as_mut_ptr().cast(),
                )
            };
            if len == 0 {
                break;
            }
            // The buffers the frame filled, the last one in part.
            let used = len.div_ceil(buf_len) as usize;
            let (Some(last), Some(head_ptr)) = (segs.get_mut(used.wrapping_sub(1)), bufs.first())
            else {
                break;
            };
            last.len = len - (used as u32 - 1) * buf_len;
            // SAFETY: The glue copied the frame's first `min(len, buf_len)`
            // bytes into the first buffer (of `buf_len` bytes), which nothing
            // else references now.
            let head = unsafe {
                core::slice::from_raw_parts_mut(head_ptr.cast::<u8>(), len.min(buf_len) as usize)
            };
            let mut descs: [RawDesc; TX_MAX_DESCS] = [[0; 16]; TX_MAX_DESCS];
            let posted = segs
                .get(..used)
                .and_then(|segs| build_tx(&NetHdr::parse(&raw), head, segs, &mut descs).ok())
                .and_then(|b| {
                    let d = descs.get(..b.descs)?;
                    path.tx.post(&mut tx, d, u64::from(first)).ok()
                });
            if posted.is_some() {
                sent = true;
            } else {
                // SAFETY: `port` is live.
                unsafe { glue::pvpass_nicport_tx_error(port) };
            }
        }
        if sent {
            q.write_tx_tail(&mut r, path.tx.tail());
        }
        // SAFETY: `port` is live.
        unsafe { glue::pvpass_nicport_tx_done(port) };
        done
    }

    /// After a poll that completed: the vector stays unmasked.
    fn unmask(&self) {
        let mut r = BarRegs::new(self.bar, Wait::Spin);
        PoolPath::new(Pool::HOST).unmask(&mut r, VECTOR_MASK);
    }
}

/// The host pool's interface (glue/nic.c).
struct Port(NonNull<glue::NicPort>);

// SAFETY: The C object may be used from any thread; its registration
// changes only through `HostIf::unregister`, under RTNL in C.
unsafe impl Send for Port {}
// SAFETY: As above.
unsafe impl Sync for Port {}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: The interface is unregistered (`HostIf::unregister`, or it
        // never was registered) and its interrupt freed (`HostIf` drops
        // `irq` first): nothing uses it any more.
        unsafe { glue::pvpass_nicport_free(self.0.as_ptr()) };
    }
}

/// The interrupt handler: schedules the interface's poll.
struct NicIrq(NonNull<glue::NicPort>);

// SAFETY: `pvpass_nicport_irq` may be called from any CPU, in hard
// interrupt context.
unsafe impl Send for NicIrq {}
// SAFETY: As above.
unsafe impl Sync for NicIrq {}

impl irq::Handler for NicIrq {
    fn handle(&self, _dev: &Device<Bound>) -> irq::IrqReturn {
        // SAFETY: The interface outlives the handler's registration
        // (`HostIf` frees `irq` before `port`).
        unsafe { glue::pvpass_nicport_irq(self.0.as_ptr()) };
        irq::IrqReturn::Handled
    }
}

/// The host pool with its interface and interrupt. Dropped in field order:
/// the interrupt freed, then the interface, then the rings and buffers (the
/// NIC must have been quiesced before).
#[pin_data]
pub(crate) struct HostIf<'a> {
    #[pin]
    irq: irq::Registration<NicIrq>,
    port: Port,
    pool: Pin<KBox<HostPool<'a>>>,
}

impl<'a> HostIf<'a> {
    /// Rings and buffers, the interface (registered last), MSI-X vector 0
    /// (`vector`) and its handler, around the plan of a NIC that was set up
    /// (`nic`).
    pub(crate) fn new(
        pdev: &'a pci::Device<Bound>,
        bar: &'a Bar0<'a>,
        nic: Nic,
        mac: [u8; 6],
        vector: pci::IrqVector<'a>,
    ) -> impl PinInit<Self, Error> + 'a {
        pin_init::pin_init_scope(move || {
            let pool = KBox::pin_init(HostPool::new(pdev.as_ref(), bar, nic), GFP_KERNEL)?;
            let ctx = core::ptr::from_ref::<HostPool<'_>>(&pool)
                .cast_mut()
                .cast::<c_void>();
            let raw_pdev = core::ptr::from_ref(pdev).cast_mut().cast::<glue::PciDev>();
            // SAFETY: `raw_pdev` is the bound function (`pci::Device` wraps
            // `struct pci_dev` transparently); `mac` has 6 bytes; `ctx` is
            // the pool, which outlives the interface (`HostIf` drops `port`
            // before `pool`).
            let p =
                from_err_ptr(unsafe { glue::pvpass_nicport_create(raw_pdev, mac.as_ptr(), ctx) })?;
            let port = Port(NonNull::new(p).ok_or(ENOMEM)?);
            let raw = port.0;
            Ok(try_pin_init!(HostIf {
                irq <- pdev.request_irq(vector, irq::Flags::TRIGGER_NONE, c"pvpass", Ok::<_, Error>(NicIrq(raw))),
                port,
                pool,
                _: {
                    // SAFETY: `raw` is the interface made above, not yet
                    // registered; its interrupt handler is in place.
                    to_result(unsafe { glue::pvpass_nicport_register(raw.as_ptr()) })?;
                },
            }))
        })
    }

    /// The plan, for the driver's quiesce.
    pub(crate) fn plan(&self) -> &Mutex<Plan> {
        &self.pool.plan
    }

    /// Unregisters the interface (closing it stops the pool). Idempotent;
    /// process context, without the plan's lock held.
    pub(crate) fn unregister(&self) {
        // SAFETY: The interface is live while `self` is.
        unsafe { glue::pvpass_nicport_unregister(self.port.0.as_ptr()) };
    }

    /// The interface's name.
    pub(crate) fn name(&self) -> [u8; 16] {
        let mut name = [0u8; 16];
        // SAFETY: The interface is live; `name` has IFNAMSIZ bytes.
        unsafe { glue::pvpass_nicport_name(self.port.0.as_ptr(), name.as_mut_ptr().cast()) };
        name
    }
}

/// ndo_open.
///
/// # Safety
///
/// `ctx` is the `HostPool` of a live interface; called before napi_enable.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_nic_open(ctx: *mut c_void) -> c_int {
    // SAFETY: Per the function's contract.
    let pool = unsafe { &*ctx.cast::<HostPool<'_>>() };
    match pool.open() {
        Ok(link) => c_int::from(link),
        Err(e) => e.to_errno(),
    }
}

/// ndo_stop.
///
/// # Safety
///
/// `ctx` is the `HostPool` of a live interface; called after napi_disable.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_nic_stop(ctx: *mut c_void) {
    // SAFETY: Per the function's contract.
    let pool = unsafe { &*ctx.cast::<HostPool<'_>>() };
    pool.stop();
}

/// The NAPI poll.
///
/// # Safety
///
/// `ctx` is the `HostPool` of the live interface `p`; called from its NAPI
/// poll only.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_nic_poll(
    ctx: *mut c_void,
    p: *mut glue::NicPort,
    budget: c_int,
) -> c_int {
    // SAFETY: Per the function's contract.
    let pool = unsafe { &*ctx.cast::<HostPool<'_>>() };
    pool.poll(p, budget)
}

/// After a completed poll: unmask the vector.
///
/// # Safety
///
/// `ctx` is the `HostPool` of a live interface.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_nic_unmask(ctx: *mut c_void) {
    // SAFETY: Per the function's contract.
    let pool = unsafe { &*ctx.cast::<HostPool<'_>>() };
    pool.unmask();
}
