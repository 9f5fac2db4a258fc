// SPDX-License-Identifier: GPL-2.0

//! The NIC as a backend: a device attached with `--backend <interface>`
//! (the host pool's interface name, e.g. `pvpnic0`) gets a VMDq pool of its
//! own (pools 1 to 7; pool 0 is the host's): its MAC in the pool's receive
//! address entry, so the NIC steers unicast to it by hardware, a receive
//! and a transmit queue, and the pool's receive on vector 1.
//!
//! Transmit is zero copy: after the source-MAC check, the frame's first
//! `HEAD_COPY` bytes are copied into the pool's own buffer (the headers the
//! NIC acts on are the ones checked here, and cannot change after) and the
//! rest is given to the NIC as the guest's pinned pages, mapped for it; the
//! descriptors are built by the core (`build_tx`) from the checked
//! virtio-net header. The uplink answers `Sent::Pending`, and the device
//! keeps the chain and its pins until `completed` counts the NIC's
//! write-back (or `flush` stopped what reads it). Short frames, and frames
//! the NIC cannot take from guest pages, are copied whole into the pool's
//! buffers.
//!
//! Receive is zero copy too, while the device lends its receive buffers
//! (`Port::lend`: a guest that took MRG_RXBUF, no dirty logging): the
//! pool's ring then holds the guest's own posted buffers, each checked,
//! translated and pinned by the device, the NIC's descriptor pointing past
//! the room for the virtio-net header, which the device writes when the
//! loan comes back (`Port::returned`) with the used entry. A buffer that is
//! not in one piece of a page is posted as the pool's buffer at that ring
//! position and copied in on return (a bounce, `rx_copies`). The pool's
//! frame limit (RLPML, `MAX_FRAME`) is what keeps the NIC inside a lent
//! buffer of `MAX_FRAME` bytes. Before any lent page is unpinned the pool's
//! receive queue is disabled and the disable confirmed (`Uplink::reclaim`,
//! `stop_pool`); if it does not confirm, the pages stay pinned. A device
//! that does not lend gets copies as before: the NIC writes into the pool's
//! buffers and the device copies each frame into the guest's.
//!
//! So every address the NIC is given is one of the pool's own buffers or a
//! page pinned for the VM that owns the pool, from the device's translation
//! of a chain it checked: with no IOMMU, nothing a guest writes can point
//! the NIC anywhere else.
//!
//! Broadcast and multicast reach every pool: the host's pool sets every
//! bit of the 82576's multicast hash (which is shared by all pools and
//! inexact, so it could not filter by group anyway) and each VM pool takes
//! what hits it (ROMPE). A guest gets all multicast, as from a switch; the
//! device offers no receive filter tables (CTRL_RX), so its stack filters
//! the groups it joined.
//!
//! Lifetime: the backend (`NicBackend`) is reference counted and may
//! outlive the binding (an attachment keeps its link). The registers it
//! uses are the bound driver's: `Hw` points into the driver's data and is
//! revoked (`NicPools::revoke`, under every lock that reads it) at unbind
//! before the NIC is quiesced and before that data goes. The pools' DMA
//! memory is the backend's own and is freed with it, after the driver
//! dropped its reference, which it does after the quiesce.
//!
//! Lock order: a device's transmit state (the sender's), `NicPools::state`,
//! then a pool's `rx`, then its `tx`, then the driver's plan. The data path
//! takes one pool's `tx` (a sender) or `rx` (the interrupt thread), never
//! two pools' locks.

use core::ptr::NonNull;
use kernel::{
    device::{
        Bound,
        Device, //
    },
    irq, new_mutex,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex, //
    },
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
        DescRing,
        Dir, //
    },
};
use crate::{
    backend::{
        eaddrinuse,
        Backend,
        Delivery,
        Loan,
        Name,
        Port,
        Returned,
        Sent,
        Uplink, //
    },
    mem::{
        new_zeroed,
        Frame, //
    },
    pvcore::igb::Regs as _,
    pvcore::{
        fdb::is_group,
        igb::{
            desc::{
                build_tx,
                RawDesc,
                TxSeg,
                TX_MAX_DATA_DESCS,
                TX_MAX_DESCS, //
            },
            pools::{
                valid_unicast,
                NicError,
                PoolPath,
                PoolRxConfig,
                RingConfig, //
            },
            regs::{
                self,
                Pool,
                NUM_POOLS, //
            },
            ring::{
                RxFaultKind,
                RxRing,
                TxRing, //
            },
        },
        vnet::{
            NetHdr,
            F_DATA_VALID, //
        },
    },
    uapi, //
};

/// Pools for VMs: 1 to `NUM_POOLS - 1`.
const VM_POOLS: usize = NUM_POOLS as usize - 1;
/// Descriptors per ring (and buffers per direction) of a VM pool.
const RING: u16 = 128;
const RING_N: usize = RING as usize;
/// Buffer size of both directions.
const BUF_LEN: u32 = 2048;
const BUF: usize = BUF_LEN as usize;
/// Largest frame a VM pool receives (without FCS): a 1500-byte MTU and one
/// VLAN tag. The NIC drops longer ones for the pool (RLPML), so no frame
/// spans two buffers.
const MAX_FRAME: u16 = 1518;
/// The MSI-X vector of every VM pool's receive queue.
pub(crate) const VECTOR: u8 = 1;
const VECTOR_MASK: u32 = 1 << VECTOR;
/// Frames one pool gives its port per pass of the interrupt thread.
const RX_BUDGET: u16 = RING;
/// Budgets per pool per run of the interrupt thread (a real-time thread:
/// a flood into one pool must not keep it on its CPU).
const RX_PASSES: u32 = 4;
/// Bytes of a transmitted frame copied into a host buffer before the NIC
/// reads the rest from the guest's pages: Ethernet (with a VLAN tag), IPv4
/// with options or IPv6, and TCP with options fit.
const HEAD_COPY: usize = 128;
/// A flush waits this many times `FLUSH_US` for the NIC's write-backs.
const FLUSH_TRIES: u32 = 1000;
const FLUSH_US: i64 = 10;

/// The header of a received frame: its checksum verified by the NIC, or
/// not known.
fn rx_hdr(csum_ok: bool) -> NetHdr {
    NetHdr {
        flags: if csum_ok { F_DATA_VALID } else { 0 },
        num_buffers: 1,
        ..NetHdr::default()
    }
}

/// How a VM pool receives: into buffers of `BUF_LEN` (or lent ones of
/// `MAX_FRAME`), frames up to `MAX_FRAME`, broadcast, all multicast, and
/// frames dropped when its ring is empty (never held for the other pools).
const RX_CONFIG: PoolRxConfig = PoolRxConfig {
    buf_len: BUF_LEN,
    max_frame: MAX_FRAME,
    broadcast: true,
    multicast: true,
    drop_when_empty: true,
};

/// The bound driver's parts the backend uses: BAR0, the plan and the
/// device (for DMA allocations). Valid while the backend's `state.hw` (or a
/// pool side's) is `Some`, see the module documentation.
#[derive(Clone, Copy)]
struct Hw {
    bar: NonNull<Bar0<'static>>,
    plan: NonNull<Mutex<Plan>>,
    dev: NonNull<Device<Bound>>,
}

// SAFETY: The pointees are the bound driver's and are shared with its other
// threads anyway (BAR accesses are MMIO, the plan is a mutex, the device is
// reference counted); `Hw` is used only while valid (see `Hw`).
unsafe impl Send for Hw {}

impl Hw {
    /// BAR0 as registers.
    fn regs(&self, wait: Wait) -> BarRegs<'_, 'static> {
        // SAFETY: Valid while the `Hw` is reachable (see `Hw`).
        BarRegs::new(unsafe { self.bar.as_ref() }, wait)
    }

    fn plan(&self) -> &Mutex<Plan> {
        // SAFETY: As above.
        unsafe { self.plan.as_ref() }
    }

    fn dev(&self) -> &Device<Bound> {
        // SAFETY: As above.
        unsafe { self.dev.as_ref() }
    }
}

/// A pool's DMA memory, allocated at its first connect and kept until the
/// backend goes (so a queue that would not stop never has its memory
/// freed under it).
struct Mem {
    rx_ring: DescRing,
    tx_ring: DescRing,
    rx_buf: BufArea,
    tx_buf: BufArea,
}

impl Mem {
    fn new(dev: &Device<Bound>) -> Result<Self> {
        Ok(Self {
            rx_ring: DescRing::new(dev, RING)?,
            tx_ring: DescRing::new(dev, RING)?,
            rx_buf: BufArea::new(dev, RING, BUF_LEN)?,
            tx_buf: BufArea::new(dev, RING, BUF_LEN)?,
        })
    }
}

/// A running pool side's registers and memory.
struct On {
    hw: Hw,
    mem: Arc<Mem>,
}

struct RxSide {
    on: Option<On>,
    ring: KBox<RxRing<RING_N>>,
    port: Option<Arc<dyn Port>>,
    /// The ring holds the port's lent buffers (zero-copy receive), and for
    /// loans the NIC cannot write as they are, the pool's buffer at the
    /// loan's ring position; otherwise the pool's own buffers only.
    lent: bool,
    /// Lent pages mapped for the NIC, by ring position (bus address; 0:
    /// none), undone when the loan comes back or the queue stopped.
    maps: KBox<[u64; RING_N]>,
    /// A loan the port could not take back yet: given back first next time.
    held: Option<Held>,
}

/// A loan the NIC is done with (see `RxSide::held`).
#[derive(Clone, Copy)]
struct Held {
    token: u16,
    /// The ring position it was posted at (its bounce buffer).
    pos: u16,
    /// The frame's length and checksum verdict; `None`: nothing usable.
    frame: Option<(u32, bool)>,
    /// Written where the loan said (else into the bounce buffer).
    direct: bool,
}

/// A receive descriptor's cookie: one of the pool's own buffers, or a loan.
#[derive(Clone, Copy)]
enum RxCookie {
    Own(u16),
    Loan { token: u16, pos: u16, direct: bool },
}

const LOAN_BIT: u64 = 1 << 40;
const DIRECT_BIT: u64 = 1 << 41;

impl RxCookie {
    fn encode(self) -> u64 {
        match self {
            RxCookie::Own(b) => u64::from(b),
            RxCookie::Loan { token, pos, direct } => {
                LOAN_BIT
                    | if direct { DIRECT_BIT } else { 0 }
                    | (u64::from(pos) << 16)
                    | u64::from(token)
            }
        }
    }

    fn decode(c: u64) -> Self {
        if c & LOAN_BIT == 0 {
            return RxCookie::Own((c & 0xffff) as u16);
        }
        RxCookie::Loan {
            token: (c & 0xffff) as u16,
            pos: ((c >> 16) & 0xffff) as u16,
            direct: c & DIRECT_BIT != 0,
        }
    }
}

/// Loans asked for at once.
const LEND_BATCH: usize = 32;

impl RxSide {
    /// Forgets every buffer in the ring (after the queue was stopped, or
    /// before it was started): lent pages unmapped. The port's loans are
    /// its own again (it takes them back, `Uplink::reclaim`, or is gone).
    fn drain(&mut self, dev: Option<&Device<Bound>>) {
        self.ring.drain(|_| {});
        for m in self.maps.iter_mut() {
            if *m != 0 {
                if let Some(dev) = dev {
                    super::ring::unmap_page(dev, *m, usize::from(MAX_FRAME), Dir::FromNic);
                }
                *m = 0;
            }
        }
        self.held = None;
    }
}

/// Most senders (queue pairs) of one port.
const UPLINKS: usize = 8;

struct TxSide {
    on: Option<On>,
    ring: KBox<TxRing<RING_N>>,
    /// Guest pages mapped for the NIC, by the ring position of the
    /// descriptor that points at them: (bus address, length; 0: none).
    maps: KBox<[(u64, u32); RING_N]>,
    /// Uplinks in use (bit per index).
    uplinks: u8,
    /// Zero-copy frames each uplink sent that the NIC finished, not yet
    /// counted by its `completed`.
    done: [u32; UPLINKS],
    /// Zero-copy frames each uplink has in the ring.
    in_flight: [u32; UPLINKS],
    /// Frames posted since the tail was last written (`push`).
    unpushed: bool,
}

/// A transmitted frame's cookie: its uplink, first ring position and
/// descriptor count, and whether it points into guest pages.
#[derive(Clone, Copy)]
struct TxCookie {
    uplink: u8,
    first: u16,
    ndesc: u16,
    zero_copy: bool,
}

impl TxCookie {
    fn encode(self) -> u64 {
        (u64::from(self.zero_copy) << 48)
            | (u64::from(self.uplink) << 32)
            | (u64::from(self.first) << 16)
            | u64::from(self.ndesc)
    }

    fn decode(c: u64) -> Self {
        Self {
            zero_copy: (c >> 48) & 1 == 1,
            uplink: ((c >> 32) & 0xff) as u8,
            first: ((c >> 16) & 0xffff) as u16,
            ndesc: (c & 0xffff) as u16,
        }
    }
}

impl TxSide {
    /// The NIC is done with the frame of `cookie`: its guest pages
    /// unmapped, and counted for its uplink if it was zero copy.
    fn finish(&mut self, dev: Option<&Device<Bound>>, cookie: u64) {
        let c = TxCookie::decode(cookie);
        for k in 0..c.ndesc {
            let pos = (usize::from(c.first) + usize::from(k)) % RING_N;
            if let Some(m) = self.maps.get_mut(pos) {
                if m.1 != 0 {
                    if let Some(dev) = dev {
                        super::ring::unmap_page(dev, m.0, m.1 as usize, Dir::ToNic);
                    }
                    *m = (0, 0);
                }
            }
        }
        if c.zero_copy {
            let u = usize::from(c.uplink);
            if let (Some(d), Some(f)) = (self.done.get_mut(u), self.in_flight.get_mut(u)) {
                *d = d.saturating_add(1);
                *f = f.saturating_sub(1);
            }
        }
    }

    /// Takes every frame the NIC wrote back.
    fn reap(&mut self) {
        let Some(on) = self.on.as_ref() else { return };
        let (hw, mem) = (on.hw, on.mem.clone());
        let mut descs = mem.tx_ring.descs();
        while let Some(d) = self.ring.reap(&mut descs) {
            self.finish(Some(hw.dev()), d.cookie);
        }
    }

    /// Forgets every frame in the ring (after the queue was stopped, or
    /// before it was started): unmapped and counted done.
    fn drain(&mut self, dev: Option<&Device<Bound>>) {
        let mut cookies = KVec::new();
        self.ring.drain(|d| {
            let _ = cookies.push(d.cookie, GFP_ATOMIC);
        });
        for c in cookies {
            self.finish(dev, c);
        }
        // Anything left mapped (a cookie list that could not be kept).
        for m in self.maps.iter_mut() {
            if m.1 != 0 {
                if let Some(dev) = dev {
                    super::ring::unmap_page(dev, m.0, m.1 as usize, Dir::ToNic);
                }
                *m = (0, 0);
            }
        }
        self.in_flight = [0; UPLINKS];
        self.unpushed = false;
    }
}

/// A pool's counters, in the order of `POOL_COUNTERS`.
#[derive(Clone, Copy)]
enum Pc {
    TxFrames,
    /// Copied whole (short, or not postable from the guest's pages).
    TxCopies,
    /// Read by the NIC from the guest's pages (the head copy aside).
    TxZeroCopy,
    /// Flushes that had to stop the queue.
    TxStalls,
    /// Refused: the ring full, too long, or an offload the NIC cannot do.
    TxDrops,
    TxSpoofed,
    RxFrames,
    RxCopies,
    /// Written back with an error, or out of range.
    RxErrors,
    /// Written by the NIC straight into a guest's lent buffer.
    RxZeroCopy,
}

/// The names of a pool's counters (debugfs `nic`), in `Pc` order.
pub(crate) const POOL_COUNTERS: [&str; 10] = [
    "tx_frames",
    "tx_copies",
    "tx_zero_copy",
    "tx_stalls",
    "tx_drops",
    "tx_spoofed",
    "rx_frames",
    "rx_copies",
    "rx_errors",
    "rx_zero_copy",
];

struct PoolCounters([Atomic<u64>; POOL_COUNTERS.len()]);

impl PoolCounters {
    const fn new() -> Self {
        Self([const { Atomic::new(0) }; POOL_COUNTERS.len()])
    }

    fn inc(&self, c: Pc) {
        if let Some(a) = self.0.get(c as usize) {
            a.add(1, Relaxed);
        }
    }

    fn get(&self) -> [u64; POOL_COUNTERS.len()] {
        let mut v = [0u64; POOL_COUNTERS.len()];
        for (d, a) in v.iter_mut().zip(&self.0) {
            *d = a.load(Relaxed);
        }
        v
    }
}

/// One VM pool.
#[pin_data]
struct VmPool {
    pool: Pool,
    #[pin]
    rx: Mutex<RxSide>,
    #[pin]
    tx: Mutex<TxSide>,
    counters: PoolCounters,
    /// Its receive queue did not confirm a stop outside `stop_pool`
    /// (`restart_rx`): treated as stuck (`State::stuck`) from then on.
    stuck: Atomic<bool>,
}

impl VmPool {
    /// Its rings' bookkeeping is on the heap: several KiB a side, too much
    /// for the probe's stack once per pool.
    fn new(pool: Pool) -> Result<impl PinInit<Self>> {
        // SAFETY: The all-zero value of each is valid: unconfigured rings
        // (as the core documents) and no mappings.
        let (rx_ring, rx_maps, tx_ring, tx_maps) = unsafe {
            (
                new_zeroed::<RxRing<RING_N>>()?,
                new_zeroed::<[u64; RING_N]>()?,
                new_zeroed::<TxRing<RING_N>>()?,
                new_zeroed::<[(u64, u32); RING_N]>()?,
            )
        };
        Ok(pin_init!(Self {
            pool,
            rx <- new_mutex!(RxSide {
                on: None,
                ring: rx_ring,
                port: None,
                lent: false,
                maps: rx_maps,
                held: None,
            }),
            tx <- new_mutex!(TxSide {
                on: None,
                ring: tx_ring,
                maps: tx_maps,
                uplinks: 0,
                done: [0; UPLINKS],
                in_flight: [0; UPLINKS],
                unpushed: false,
            }),
            counters: PoolCounters::new(),
            stuck: Atomic::new(false),
        }))
    }
}

/// The backend's state: who is on which pool.
struct State {
    hw: Option<Hw>,
    /// The port id on each VM pool (pool `i + 1`).
    ports: [Option<u32>; VM_POOLS],
    mem: [Option<Arc<Mem>>; VM_POOLS],
    /// Pools whose queue did not confirm it stopped: not used again until
    /// the NIC is reset (the next bind).
    stuck: u8,
}

/// The NIC backend of one bound 82576: its name and its VM pools.
pub(crate) struct NicBackend {
    name: Name,
    pools: Arc<NicPools>,
}

impl NicBackend {
    /// The backend named `name` (the host interface's name, NUL-padded) on
    /// `pools`.
    pub(crate) fn new(name: &[u8], pools: Arc<NicPools>) -> Result<Arc<Self>> {
        let mut n = [0u8; uapi::NAME_LEN];
        let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        let src = name.get(..len).ok_or(EINVAL)?;
        n.get_mut(..len).ok_or(EINVAL)?.copy_from_slice(src);
        crate::backend::parse_name(&n)?;
        Ok(Arc::new(Self { name: n, pools }, GFP_KERNEL)?)
    }
}

/// The VM pools of one bound 82576.
#[pin_data]
pub(crate) struct NicPools {
    #[pin]
    state: Mutex<State>,
    pools: KVec<Pin<KBox<VmPool>>>,
}

impl NicPools {
    /// The VM pools of the bound NIC whose BAR0, plan and device these are.
    ///
    /// # Safety
    ///
    /// `bar`, `plan` and `dev` stay valid until [`NicPools::revoke`]
    /// returned.
    pub(crate) unsafe fn new(
        bar: &Bar0<'_>,
        plan: &Mutex<Plan>,
        dev: &Device<Bound>,
    ) -> Result<Arc<Self>> {
        let mut pools = KVec::with_capacity(VM_POOLS, GFP_KERNEL)?;
        for i in 1..NUM_POOLS {
            let pool = Pool::new(i).ok_or(EINVAL)?;
            pools.push(KBox::pin_init(VmPool::new(pool)?, GFP_KERNEL)?, GFP_KERNEL)?;
        }
        let hw = Hw {
            bar: NonNull::from(bar).cast(),
            plan: NonNull::from(plan),
            dev: NonNull::from(dev),
        };
        Arc::pin_init(
            try_pin_init!(Self {
                state <- new_mutex!(State {
                    hw: Some(hw),
                    ports: [None; VM_POOLS],
                    mem: [const { None }; VM_POOLS],
                    stuck: 0,
                }),
                pools,
            }),
            GFP_KERNEL,
        )
    }

    fn pool(&self, i: usize) -> Option<&VmPool> {
        self.pools.get(i).map(|p| &**p)
    }

    /// Unbind: every pool stopped and its port let go, then the registers
    /// forgotten. After it returns nothing of the backend touches the NIC;
    /// the caller quiesces it next. Idempotent.
    pub(crate) fn revoke(&self) {
        let mut gone = KVec::new();
        {
            let mut st = self.state.lock();
            for i in 0..VM_POOLS {
                if let Some(p) = self.stop_pool(&mut st, i) {
                    let _ = gone.push(p, GFP_ATOMIC);
                }
            }
            st.hw = None;
        }
        // The ports' last references outside the locks.
        drop(gone);
    }

    /// Stops VM pool `i` (index into `pools`): nothing more to or from it,
    /// its queues disabled (confirmed, or the pool marked stuck), its MAC
    /// out of the NIC. Returns its port.
    fn stop_pool(&self, st: &mut State, i: usize) -> Option<Arc<dyn Port>> {
        let vp = self.pool(i)?;
        st.ports.get_mut(i)?.take()?;
        let mut rx = vp.rx.lock();
        let mut tx = vp.tx.lock();
        let port = rx.port.take();
        let hw = rx.on.take().map(|o| o.hw);
        tx.reap();
        tx.on = None;
        if let Some(hw) = hw {
            let mut plan = hw.plan().lock();
            let mut r = hw.regs(Wait::Sleep);
            let nic = &mut plan.nic;
            let _ = nic.map_vectors(&mut r, vp.pool, None, None);
            nic.clear_pool_mac(&mut r, vp.pool);
            let rx_ok = nic.disable_rx(&mut r, vp.pool).is_ok();
            let tx_ok = nic.disable_tx(&mut r, vp.pool).is_ok();
            if !(rx_ok && tx_ok) || vp.stuck.load(Relaxed) {
                st.stuck |= vp.pool.bit() as u8;
                pr_err!(
                    "pvpass: NIC pool {} did not stop; kept out of use until the NIC is reset\n",
                    vp.pool.index()
                );
            }
        }
        // The queue is stopped (or the pool stuck, and reset before its
        // memory goes): nothing reads or writes the mapped guest pages any
        // more. A stuck pool's lent pages stay pinned (`reclaim` says so).
        rx.drain(hw.as_ref().map(|h| h.dev()));
        tx.drain(hw.as_ref().map(|h| h.dev()));
        port
    }

    /// Starts VM pool `i` for `port`, under the state lock.
    fn start_pool(&self, st: &mut State, hw: Hw, i: usize, port: &Arc<dyn Port>) -> Result {
        let vp = self.pool(i).ok_or(EINVAL)?;
        let mem = match st.mem.get(i).and_then(|m| m.clone()) {
            Some(m) => m,
            None => {
                let m = Arc::new(Mem::new(hw.dev())?, GFP_KERNEL)?;
                if let Some(slot) = st.mem.get_mut(i) {
                    *slot = Some(m.clone());
                }
                m
            }
        };
        let mut rx = vp.rx.lock();
        let mut tx = vp.tx.lock();
        rx.drain(None);
        rx.ring.reset(RING, BUF_LEN).map_err(|_| EINVAL)?;
        rx.ring.limit(u32::from(MAX_FRAME)).map_err(|_| EINVAL)?;
        rx.lent = false;
        tx.drain(None);
        tx.ring.reset(RING).map_err(|_| EINVAL)?;
        let mut descs = mem.rx_ring.descs();
        for b in 0..RING.saturating_sub(1) {
            let addr = mem.rx_buf.dma(b).ok_or(EINVAL)?;
            rx.ring
                .post(&mut descs, addr, BUF_LEN, u64::from(b))
                .map_err(|_| EINVAL)?;
        }
        let mut plan = hw.plan().lock();
        if plan.quiesced {
            return Err(ENODEV);
        }
        let mut r = hw.regs(Wait::Sleep);
        let nic = &mut plan.nic;
        let pool = vp.pool;
        let cfg = RX_CONFIG;
        let started = (|| {
            nic.set_pool_mac(&mut r, pool, port.mac())?;
            nic.enable_rx(
                &mut r,
                pool,
                RingConfig {
                    base: mem.rx_ring.base(),
                    size: mem.rx_ring.size(),
                },
                &cfg,
            )?;
            PoolPath::new(pool).write_rx_tail(&mut r, rx.ring.tail());
            nic.enable_tx(
                &mut r,
                pool,
                RingConfig {
                    base: mem.tx_ring.base(),
                    size: mem.tx_ring.size(),
                },
            )?;
            nic.map_vectors(&mut r, pool, Some(VECTOR), None)?;
            nic.set_interval(&mut r, VECTOR, 0)?;
            nic.enable_vectors(&mut r, VECTOR_MASK);
            Ok(())
        })();
        if let Err(e) = started {
            let _ = nic.map_vectors(&mut r, pool, None, None);
            nic.clear_pool_mac(&mut r, pool);
            let ok = nic.disable_rx(&mut r, pool).is_ok() & nic.disable_tx(&mut r, pool).is_ok();
            if !ok {
                st.stuck |= pool.bit() as u8;
            }
            rx.ring.drain(|_| {});
            return Err(match e {
                NicError::MacInUse => eaddrinuse(),
                _ => EIO,
            });
        }
        rx.on = Some(On {
            hw,
            mem: mem.clone(),
        });
        rx.port = Some(port.clone());
        tx.on = Some(On { hw, mem });
        Ok(())
    }

    /// The interrupt thread: every running pool's received frames to its
    /// port, up to `RX_PASSES` budgets each. If a pool still has frames,
    /// the vector is raised again (EICS): the thread runs once more, after
    /// the other interrupts of this CPU.
    fn service(&self) {
        for pass in 1..=RX_PASSES {
            let mut more = false;
            for vp in self.pools.iter() {
                more |= self.service_pool(vp, pass == RX_PASSES);
            }
            if !more {
                return;
            }
        }
    }

    /// Up to `RX_BUDGET` frames of one pool; whether it may have more. On
    /// the `last` pass, a pool with more raises the vector again.
    fn service_pool(&self, vp: &VmPool, last: bool) -> bool {
        self.service_pool_with(vp, last, true)
    }

    /// `service_pool`; without `reap` (the port's own thread, between its
    /// guest's exits: `rx_service`), only the loan held back is given and
    /// the ring refilled; the interrupt thread, raised, reaps the rest.
    fn service_pool_with(&self, vp: &VmPool, last: bool, reap: bool) -> bool {
        let mut rx = vp.rx.lock();
        let rx = &mut *rx;
        let (Some(on), Some(port)) = (rx.on.as_ref(), rx.port.clone()) else {
            return false;
        };
        let (hw, mem) = (on.hw, on.mem.clone());
        let mut descs = mem.rx_ring.descs();
        let mut reposted = false;
        let mut n = 0u16;
        // A loan the port could not take last time goes back first; while
        // it cannot, the rest waits in the ring (the port asks again).
        let mut blocked = false;
        let mut unblocked = false;
        if let Some(h) = rx.held.take() {
            if Self::give_back(vp, rx, &mem, &*port, h) {
                unblocked = true;
            } else {
                rx.held = Some(h);
                blocked = true;
            }
        }
        while reap && !blocked && n < RX_BUDGET {
            let (cookie, frame) = match rx.ring.reap(&mut descs) {
                Ok(None) => break,
                Ok(Some(d)) if !d.wb.frame_error() => (d.cookie, Some((d.len, d.wb.l4_csum_ok()))),
                Ok(Some(d)) => {
                    vp.counters.inc(Pc::RxErrors);
                    (d.cookie, None)
                }
                Err(f) => {
                    vp.counters.inc(Pc::RxErrors);
                    if f.kind == RxFaultKind::BadLength && crate::kvm::ratelimit() {
                        pr_warn!(
                            "pvpass: NIC pool {} wrote back more than its buffer holds\n",
                            vp.pool.index()
                        );
                    }
                    (f.cookie, None)
                }
            };
            n += 1;
            match RxCookie::decode(cookie) {
                RxCookie::Own(b) => {
                    if let (Some((len, csum)), Some(data)) = (frame, mem.rx_buf.ptr(b)) {
                        if len <= BUF_LEN {
                            // SAFETY: `data` holds `len` bytes the NIC wrote
                            // (DD seen, then the read fence); it does not
                            // write the buffer again until it is reposted
                            // below, after the delivery.
                            let bytes = unsafe {
                                core::slice::from_raw_parts(data.cast_const(), len as usize)
                            };
                            // The pool's RAR entry takes only its own
                            // unicast; group frames reach every pool.
                            let how = match bytes.first_chunk::<6>() {
                                Some(d) if !is_group(d) => Delivery::Unicast,
                                _ => Delivery::Flooded,
                            };
                            port.deliver(&rx_hdr(csum), &Frame::kernel(bytes), how);
                            vp.counters.inc(Pc::RxFrames);
                            vp.counters.inc(Pc::RxCopies);
                        }
                    }
                    // Lending started meanwhile: own buffers are not reposted.
                    if !rx.lent {
                        if let Some(addr) = mem.rx_buf.dma(b) {
                            reposted |= rx
                                .ring
                                .post(&mut descs, addr, BUF_LEN, u64::from(b))
                                .is_ok();
                        }
                    }
                }
                RxCookie::Loan { token, pos, direct } => {
                    let h = Held {
                        token,
                        pos,
                        frame,
                        direct,
                    };
                    if !Self::give_back(vp, rx, &mem, &*port, h) {
                        rx.held = Some(h);
                        blocked = true;
                    }
                }
            }
        }
        if !blocked {
            reposted |= Self::refill(vp, rx, hw, &mem, &*port);
        }
        let more = n == RX_BUDGET;
        let mut r = hw.regs(Wait::Spin);
        if reposted {
            PoolPath::new(vp.pool).write_rx_tail(&mut r, rx.ring.tail());
        }
        if (more && last) || (unblocked && !reap) {
            r.write32(regs::EICS, VECTOR_MASK);
        }
        more
    }

    /// Gives loan `h` back to `port`: its page unmapped (once), the frame
    /// written there or copied from its bounce buffer. False if the port
    /// cannot take it now.
    fn give_back(vp: &VmPool, rx: &mut RxSide, mem: &Mem, port: &dyn Port, h: Held) -> bool {
        if let Some(m) = rx.maps.get_mut(usize::from(h.pos)) {
            if *m != 0 {
                if let Some(on) = rx.on.as_ref() {
                    super::ring::unmap_page(on.hw.dev(), *m, usize::from(MAX_FRAME), Dir::FromNic);
                }
                *m = 0;
            }
        }
        let back = match h.frame {
            Some((len, csum)) if h.direct && len <= u32::from(MAX_FRAME) => {
                Returned::Written(rx_hdr(csum), len)
            }
            Some((len, csum)) if !h.direct && len <= BUF_LEN => match mem.rx_buf.ptr(h.pos) {
                Some(data) => {
                    // SAFETY: The bounce buffer of ring position `pos` holds
                    // `len` bytes the NIC wrote (its descriptor was reaped);
                    // nothing is posted at `pos` again before the loan is
                    // given back (the ring is refilled only after).
                    let bytes =
                        unsafe { core::slice::from_raw_parts(data.cast_const(), len as usize) };
                    let ok =
                        port.returned(h.token, Returned::Copy(rx_hdr(csum), Frame::kernel(bytes)));
                    if ok {
                        vp.counters.inc(Pc::RxFrames);
                        vp.counters.inc(Pc::RxCopies);
                    }
                    return ok;
                }
                None => Returned::Empty,
            },
            _ => Returned::Empty,
        };
        let written = matches!(back, Returned::Written(..));
        let ok = port.returned(h.token, back);
        if ok && written {
            vp.counters.inc(Pc::RxFrames);
            vp.counters.inc(Pc::RxZeroCopy);
        }
        ok
    }

    /// Fills the free descriptors of a pool's ring: with the port's loans
    /// while it lends, with the pool's own buffers otherwise; switching
    /// between the two as the port says (`Port::lend`). Whether anything
    /// was posted.
    fn refill(vp: &VmPool, rx: &mut RxSide, hw: Hw, mem: &Mem, port: &dyn Port) -> bool {
        let mut loans = [Loan {
            token: 0,
            direct: None,
        }; LEND_BATCH];
        if !rx.lent {
            // Own buffers: does the port lend now? Then the queue is
            // restarted empty (its own buffers out) and takes loans.
            if port.lend(usize::from(MAX_FRAME), &mut []).is_none() {
                return false;
            }
            if !Self::restart_rx(vp, rx, hw, mem) {
                return false;
            }
            rx.lent = true;
        }
        let mut descs = mem.rx_ring.descs();
        let dev = hw.dev();
        let mut posted = false;
        loop {
            let want = usize::from(rx.ring.free()).min(LEND_BATCH);
            if want == 0 {
                break;
            }
            let got = match port.lend(
                usize::from(MAX_FRAME),
                loans.get_mut(..want).unwrap_or(&mut []),
            ) {
                Some(k) => k,
                None => {
                    // The port stopped lending (it took its loans back):
                    // own buffers again, once the ring holds no loan.
                    if rx.ring.posted() == 0 {
                        rx.lent = false;
                        return Self::post_own(rx, mem) || posted;
                    }
                    break;
                }
            };
            let mut failed = None;
            for (k, l) in loans.iter().take(got).enumerate() {
                let pos = rx.ring.tail();
                let mapped = l.direct.and_then(|(page, off)| {
                    super::ring::map_page(
                        dev,
                        page.as_ptr().cast(),
                        off,
                        usize::from(MAX_FRAME),
                        Dir::FromNic,
                    )
                });
                let (addr, len, direct) = match mapped {
                    Some(a) => (a, u32::from(MAX_FRAME), true),
                    None => (mem.rx_buf.dma(pos).unwrap_or(0), BUF_LEN, false),
                };
                let cookie = RxCookie::Loan {
                    token: l.token,
                    pos,
                    direct,
                };
                if rx.ring.post(&mut descs, addr, len, cookie.encode()).is_ok() {
                    if direct {
                        if let Some(m) = rx.maps.get_mut(usize::from(pos)) {
                            *m = addr;
                        }
                    }
                    posted = true;
                } else {
                    // Cannot happen (a free descriptor was counted, the
                    // address is the pool's or a mapping).
                    if direct {
                        super::ring::unmap_page(dev, addr, usize::from(MAX_FRAME), Dir::FromNic);
                    }
                    vp.counters.inc(Pc::RxErrors);
                    failed = Some(k);
                    break;
                }
            }
            if let Some(k) = failed {
                // This loan and the later ones of the batch go back unused,
                // newest first (so each is the port's newest then).
                for l in loans.iter().take(got).skip(k).rev() {
                    let _ = port.returned(l.token, Returned::Empty);
                }
                break;
            }
            if got < want {
                break;
            }
        }
        posted
    }

    /// Posts the pool's own buffers on an empty ring.
    fn post_own(rx: &mut RxSide, mem: &Mem) -> bool {
        let mut descs = mem.rx_ring.descs();
        let mut posted = false;
        for b in 0..RING.saturating_sub(1) {
            if let Some(addr) = mem.rx_buf.dma(b) {
                posted |= rx
                    .ring
                    .post(&mut descs, addr, BUF_LEN, u64::from(b))
                    .is_ok();
            }
        }
        posted
    }

    /// Stops a pool's receive queue (confirmed), forgets its ring and starts
    /// it again empty. False if it did not stop (the pool is then left
    /// stopped, its buffers in place: nothing is unpinned under it).
    fn restart_rx(vp: &VmPool, rx: &mut RxSide, hw: Hw, mem: &Mem) -> bool {
        let mut plan = hw.plan().lock();
        if plan.quiesced {
            return false;
        }
        let mut r = hw.regs(Wait::Sleep);
        let nic = &mut plan.nic;
        if nic.disable_rx(&mut r, vp.pool).is_err() {
            vp.counters.inc(Pc::RxErrors);
            // Stuck: the pool is not used again until the NIC is reset, and
            // its ring (with the loans) stays as it is for `stop_pool`.
            vp.stuck.store(true, Relaxed);
            pr_err!(
                "pvpass: NIC pool {} receive did not stop; its lent buffers stay pinned\n",
                vp.pool.index()
            );
            return false;
        }
        rx.drain(Some(hw.dev()));
        let ok = rx.ring.reset(RING, BUF_LEN).is_ok()
            && rx.ring.limit(u32::from(MAX_FRAME)).is_ok()
            && nic
                .enable_rx(
                    &mut r,
                    vp.pool,
                    RingConfig {
                        base: mem.rx_ring.base(),
                        size: mem.rx_ring.size(),
                    },
                    &RX_CONFIG,
                )
                .is_ok();
        if !ok {
            // Stopped and emptied (so nothing is written any more), but not
            // receiving: logged, the pool goes on without receive.
            vp.counters.inc(Pc::RxErrors);
            pr_err!(
                "pvpass: NIC pool {} receive did not start again\n",
                vp.pool.index()
            );
        }
        true
    }

    /// `Uplink::reclaim` of port `id` on VM pool `i`: the pool's receive
    /// queue restarted empty, so no loan of the port is written any more.
    /// True if that is confirmed (also if the port is no longer on the
    /// pool: stopping the pool confirmed it then, unless the pool is stuck).
    fn reclaim(&self, i: usize, id: u32) -> bool {
        // `state` and the pool's `rx` held together: the port cannot leave
        // the pool in between (`stop_pool` takes both).
        let st = self.state.lock();
        let Some(vp) = self.pool(i) else {
            return true;
        };
        let stuck = st.stuck & (1u8 << (i + 1)) != 0 || vp.stuck.load(Relaxed);
        let mut rx = vp.rx.lock();
        let rx = &mut *rx;
        if rx.port.as_ref().map(|p| p.id()) != Some(id) {
            // Stopped for this port already (`stop_pool`, confirmed unless
            // the pool is stuck), or never started: none of its loans is in
            // the ring.
            return !stuck;
        }
        if stuck {
            return false;
        }
        if !rx.lent {
            // Its own buffers only: no loan in the ring.
            return true;
        }
        let Some(on) = rx.on.as_ref() else {
            return false;
        };
        let (hw, mem) = (on.hw, on.mem.clone());
        Self::restart_rx(vp, rx, hw, &mem)
    }

    /// `Uplink::rx_service` of port `id` on VM pool `i`.
    fn rx_service(&self, i: usize, id: u32) {
        if self.state.lock().ports.get(i).copied().flatten() != Some(id) {
            return;
        }
        if let Some(vp) = self.pool(i) {
            self.service_pool_with(vp, true, false);
        }
    }

    /// Transmit one frame on VM pool `i` for uplink `up` of the port whose
    /// MAC is `mac`: zero copy (`Sent::Pending`) if it has bytes past the
    /// head copy in guest pages, else copied whole.
    fn xmit(&self, i: usize, up: u8, mac: &[u8; 6], hdr: &NetHdr, frame: &Frame<'_>) -> Sent {
        let Some(vp) = self.pool(i) else {
            return Sent::NotAPort;
        };
        // The NIC model checks no source MAC: pvpass does.
        if frame.head().get(6..12) != Some(&mac[..]) {
            vp.counters.inc(Pc::TxSpoofed);
            return Sent::Spoofed;
        }
        // No frame longer than a pool takes leaves a pool (a segmented one
        // is cut to its MSS by the NIC): the frame limit that keeps the
        // NIC inside lent receive buffers is then not the only guard
        // against one pool's frame reaching another's.
        if !hdr.is_gso() && frame.len() > usize::from(MAX_FRAME) {
            vp.counters.inc(Pc::TxDrops);
            return Sent::Done;
        }
        let mut tx = vp.tx.lock();
        let tx = &mut *tx;
        tx.reap();
        let Some(on) = tx.on.as_ref() else {
            return Sent::NotAPort;
        };
        let (hw, mem) = (on.hw, on.mem.clone());
        if tx.unpushed && usize::from(tx.ring.free()) <= TX_MAX_DESCS {
            // A batch that fills the ring: what it holds goes now.
            Self::push_locked(vp, tx);
            tx.reap();
        }
        let sent = if frame.len() > HEAD_COPY {
            Self::post_zero_copy(vp, tx, hw, &mem, up, hdr, frame)
        } else {
            None
        };
        let sent = match sent {
            Some(s) => Some(s),
            None => Self::post_copy(vp, tx, &mem, hdr, frame),
        };
        if sent.is_some() {
            // The tail is written at the batch's end (`push`).
            tx.unpushed = true;
            vp.counters.inc(Pc::TxFrames);
        } else {
            vp.counters.inc(Pc::TxDrops);
        }
        // A dropped frame is done with, as a sent one would be.
        sent.unwrap_or(Sent::Done)
    }

    /// Posts the frame copied whole into the buffers of the ring positions
    /// its descriptors take (from the tail on: free while those
    /// descriptors are). `None` if it cannot be sent.
    fn post_copy(
        vp: &VmPool,
        tx: &mut TxSide,
        mem: &Mem,
        hdr: &NetHdr,
        frame: &Frame<'_>,
    ) -> Option<Sent> {
        let len = frame.len();
        let nbuf = len.div_ceil(BUF);
        // One descriptor per buffer and a context descriptor.
        if nbuf == 0 || nbuf > TX_MAX_DATA_DESCS || usize::from(tx.ring.free()) < nbuf + 1 {
            return None;
        }
        let first = tx.ring.tail();
        let mut segs = [TxSeg::default(); TX_MAX_DATA_DESCS];
        let mut head: Option<&mut [u8]> = None;
        for (k, seg) in segs.iter_mut().enumerate().take(nbuf) {
            let pos = ((usize::from(first) + k) % RING_N) as u16;
            let (ptr, addr) = (mem.tx_buf.ptr(pos)?, mem.tx_buf.dma(pos)?);
            let at = k * BUF;
            let n = (len - at).min(BUF);
            // SAFETY: Buffer `pos` has `BUF` bytes, which the NIC does not
            // read now (its descriptor is free) and nothing else references.
            let dst = unsafe { core::slice::from_raw_parts_mut(ptr, n) };
            frame.copy_from(at, dst);
            *seg = TxSeg {
                addr,
                len: n as u32,
            };
            if k == 0 {
                head = Some(dst);
            }
        }
        let mut out: [RawDesc; TX_MAX_DESCS] = [[0; 16]; TX_MAX_DESCS];
        let b = build_tx(hdr, head?, segs.get(..nbuf)?, &mut out).ok()?;
        let cookie = TxCookie {
            uplink: 0,
            first,
            ndesc: b.descs as u16,
            zero_copy: false,
        };
        let mut descs = mem.tx_ring.descs();
        tx.ring
            .post(&mut descs, out.get(..b.descs)?, cookie.encode())
            .ok()?;
        vp.counters.inc(Pc::TxCopies);
        Some(Sent::Done)
    }

    /// Posts the frame zero copy: its first `HEAD_COPY` bytes (every header
    /// an offload needs) copied into the host buffer of the first ring
    /// position, so the headers the NIC acts on are the ones checked here
    /// and cannot change after; the rest read by the NIC from the guest's
    /// pinned pages, mapped for it until its write-back. `None` if it
    /// cannot be sent that way (then it is copied).
    fn post_zero_copy(
        vp: &VmPool,
        tx: &mut TxSide,
        hw: Hw,
        mem: &Mem,
        up: u8,
        hdr: &NetHdr,
        frame: &Frame<'_>,
    ) -> Option<Sent> {
        let len = frame.len();
        let first = tx.ring.tail();
        let ptr = mem.tx_buf.ptr(first)?;
        let addr = mem.tx_buf.dma(first)?;
        // SAFETY: As in `post_copy`: the buffer of a free ring position.
        let head = unsafe { core::slice::from_raw_parts_mut(ptr, HEAD_COPY) };
        frame.copy_from(0, head);
        let mut segs = [TxSeg::default(); TX_MAX_DATA_DESCS];
        let mut maps = [(0u64, 0u32); TX_MAX_DATA_DESCS];
        let mut nseg = 1usize;
        if let Some(s) = segs.get_mut(0) {
            *s = TxSeg {
                addr,
                len: HEAD_COPY as u32,
            };
        }
        let dev = hw.dev();
        let mut ok = true;
        let mut seen = 0usize;
        frame.segments(|seg| {
            let (s_len, s_at) = (seg.len(), seen);
            seen += s_len;
            // The part of this segment past the head copy.
            let skip = HEAD_COPY.saturating_sub(s_at);
            if skip >= s_len {
                return true;
            }
            let crate::mem::Segment::Page(page, off, _) = seg else {
                // Bytes in kernel memory past the head copy: not here.
                ok = false;
                return false;
            };
            let n = s_len - skip;
            let (Some(s), Some(m)) = (segs.get_mut(nseg), maps.get_mut(nseg)) else {
                ok = false;
                return false;
            };
            match super::ring::map_page(dev, page.as_raw().cast(), off + skip, n, Dir::ToNic) {
                Some(a) => {
                    *s = TxSeg {
                        addr: a,
                        len: n as u32,
                    };
                    *m = (a, n as u32);
                    nseg += 1;
                    true
                }
                None => {
                    ok = false;
                    false
                }
            }
        });
        let unmap_all = |maps: &[(u64, u32)]| {
            for m in maps.iter().filter(|m| m.1 != 0) {
                super::ring::unmap_page(dev, m.0, m.1 as usize, Dir::ToNic);
            }
        };
        if !ok || seen != len || usize::from(tx.ring.free()) < nseg + 1 {
            unmap_all(&maps);
            return None;
        }
        let mut out: [RawDesc; TX_MAX_DESCS] = [[0; 16]; TX_MAX_DESCS];
        let built = segs
            .get(..nseg)
            .and_then(|segs| build_tx(hdr, head, segs, &mut out).ok());
        let Some(b) = built else {
            unmap_all(&maps);
            return None;
        };
        let cookie = TxCookie {
            uplink: up,
            first,
            ndesc: b.descs as u16,
            zero_copy: true,
        };
        let mut descs = mem.tx_ring.descs();
        let posted = out
            .get(..b.descs)
            .and_then(|d| tx.ring.post(&mut descs, d, cookie.encode()).ok());
        if posted.is_none() {
            unmap_all(&maps);
            return None;
        }
        // The data descriptors are the last `nseg`: record each mapping at
        // its descriptor's position, undone at the frame's write-back.
        let data0 = usize::from(first) + b.descs - nseg;
        for (k, m) in maps.iter().enumerate().take(nseg).skip(1) {
            if let Some(slot) = tx.maps.get_mut((data0 + k) % RING_N) {
                *slot = *m;
            }
        }
        if let Some(f) = tx.in_flight.get_mut(usize::from(up)) {
            *f = f.saturating_add(1);
        }
        vp.counters.inc(Pc::TxZeroCopy);
        Some(Sent::Pending)
    }

    /// Writes pool `i`'s transmit tail if frames were posted since it was
    /// last written (`Uplink::push`).
    fn push(&self, i: usize) {
        if let Some(vp) = self.pool(i) {
            Self::push_locked(vp, &mut vp.tx.lock());
        }
    }

    fn push_locked(vp: &VmPool, tx: &mut TxSide) {
        if !core::mem::take(&mut tx.unpushed) {
            return;
        }
        if let Some(on) = tx.on.as_ref() {
            let mut r = on.hw.regs(Wait::Spin);
            PoolPath::new(vp.pool).write_tx_tail(&mut r, tx.ring.tail());
        }
    }

    /// Zero-copy frames of uplink `up` of pool `i` the NIC finished since
    /// the last call.
    fn completed(&self, i: usize, up: u8) -> u32 {
        let Some(vp) = self.pool(i) else { return 0 };
        let mut tx = vp.tx.lock();
        tx.reap();
        tx.done.get_mut(usize::from(up)).map_or(0, core::mem::take)
    }

    /// Waits (bounded) for uplink `up`'s zero-copy frames; if the NIC does
    /// not finish them, stops the pool's transmit queue (confirmed), forgets
    /// what was in it and starts it again empty. Afterwards none of the
    /// uplink's frames is read by the NIC.
    fn flush(&self, i: usize, up: u8) {
        let Some(vp) = self.pool(i) else { return };
        let mut tx = vp.tx.lock();
        Self::flush_locked(vp, &mut tx, up);
        // The sender counts every frame it holds as completed now: nothing
        // is left to count for it.
        if let Some(d) = tx.done.get_mut(usize::from(up)) {
            *d = 0;
        }
    }

    fn flush_locked(vp: &VmPool, tx: &mut TxSide, up: u8) {
        Self::push_locked(vp, tx);
        let left = |tx: &TxSide| tx.in_flight.get(usize::from(up)).copied().unwrap_or(0);
        for _ in 0..FLUSH_TRIES {
            tx.reap();
            if left(tx) == 0 || tx.on.is_none() {
                return;
            }
            kernel::time::delay::udelay(kernel::time::Delta::from_micros(FLUSH_US));
        }
        vp.counters.inc(Pc::TxStalls);
        let Some(on) = tx.on.as_ref() else { return };
        let (hw, mem) = (on.hw, on.mem.clone());
        let mut plan = hw.plan().lock();
        let mut r = hw.regs(Wait::Spin);
        let nic = &mut plan.nic;
        if nic.disable_tx(&mut r, vp.pool).is_err() {
            pr_err!(
                "pvpass: NIC pool {} transmit did not stop for a flush\n",
                vp.pool.index()
            );
        }
        tx.drain(Some(hw.dev()));
        let restarted = tx.ring.reset(RING).is_ok()
            && nic
                .enable_tx(
                    &mut r,
                    vp.pool,
                    RingConfig {
                        base: mem.tx_ring.base(),
                        size: mem.tx_ring.size(),
                    },
                )
                .is_ok();
        if !restarted {
            tx.on = None;
        }
    }

    /// A new uplink index of pool `i`; ENOSPC past `UPLINKS`.
    fn new_uplink(&self, i: usize) -> Result<u8> {
        let vp = self.pool(i).ok_or(EINVAL)?;
        let mut tx = vp.tx.lock();
        let free = (0..UPLINKS as u8)
            .find(|u| tx.uplinks & (1 << u) == 0)
            .ok_or(ENOSPC)?;
        tx.uplinks |= 1 << free;
        if let Some(d) = tx.done.get_mut(usize::from(free)) {
            *d = 0;
        }
        Ok(free)
    }

    fn drop_uplink(&self, i: usize, up: u8) {
        if let Some(vp) = self.pool(i) {
            vp.tx.lock().uplinks &= !(1u8 << up);
        }
    }

    /// Each pool's counters, for debugfs: `f(pool, port id, counters)`.
    pub(crate) fn for_each_pool(
        &self,
        mut f: impl FnMut(u8, Option<u32>, [u64; POOL_COUNTERS.len()]),
    ) {
        let ports = self.state.lock().ports;
        for (vp, id) in self.pools.iter().zip(ports) {
            f(vp.pool.index(), id, vp.counters.get());
        }
    }
}

impl NicPools {
    fn connect(self: &Arc<Self>, port: Arc<dyn Port>) -> Result<KBox<dyn Uplink>> {
        let mac = port.mac();
        if !valid_unicast(&mac) {
            return Err(EINVAL);
        }
        let mut st = self.state.lock();
        let hw = st.hw.ok_or(ENODEV)?;
        let id = port.id();
        if st.ports.contains(&Some(id)) {
            return Err(EEXIST);
        }
        let stuck = st.stuck;
        let i = st
            .ports
            .iter()
            .enumerate()
            .position(|(i, p)| p.is_none() && stuck & (1u8 << (i + 1)) == 0)
            .ok_or(ENOSPC)?;
        // The uplink first: nothing to undo if it cannot be made.
        let up = NicUplink::make(self, i, mac, id)?;
        self.start_pool(&mut st, hw, i, &port)?;
        if let Some(p) = st.ports.get_mut(i) {
            *p = Some(id);
        }
        Ok(up)
    }

    fn disconnect(&self, id: u32) {
        let port = {
            let mut st = self.state.lock();
            let Some(i) = st.ports.iter().position(|p| *p == Some(id)) else {
                return;
            };
            self.stop_pool(&mut st, i)
        };
        drop(port);
    }
}

impl Backend for NicBackend {
    fn name(&self) -> &Name {
        &self.name
    }

    fn connect(&self, port: Arc<dyn Port>) -> Result<KBox<dyn Uplink>> {
        self.pools.connect(port)
    }

    fn disconnect(&self, id: u32) {
        self.pools.disconnect(id);
    }

    fn info(&self) -> uapi::Switch {
        let ports = self.pools.state.lock().ports.iter().flatten().count();
        uapi::Switch {
            name: self.name,
            flags: uapi::SWITCH_NIC,
            ports: u32::try_from(ports).unwrap_or(u32::MAX),
            ..Default::default()
        }
    }

    /// A NIC's backend goes with its driver binding, not by SWITCH_DEL.
    fn close_if_unused(&self) -> bool {
        false
    }

    fn write_queues(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = self.name.iter().position(|&b| b == 0).unwrap_or(0);
        let name = core::str::from_utf8(self.name.get(..name).unwrap_or(&[])).unwrap_or("?");
        let mut r = Ok(());
        self.pools.for_each_pool(|pool, id, values| {
            if r.is_err() {
                return;
            }
            r = (|| {
                write!(f, "backend={} pool={}", name, pool)?;
                match id {
                    Some(id) => write!(f, " id={}", id)?,
                    None => write!(f, " id=-")?,
                }
                for (n, v) in POOL_COUNTERS.iter().zip(values) {
                    write!(f, " {}={}", n, v)?;
                }
                writeln!(f)
            })();
        });
        r
    }
}

/// A port's way into its pool.
struct NicUplink {
    pools: Arc<NicPools>,
    pool: usize,
    /// Its index among the pool's uplinks (whose completions it counts).
    up: u8,
    mac: [u8; 6],
    /// Its port's id.
    id: u32,
}

impl NicUplink {
    fn make(pools: &Arc<NicPools>, pool: usize, mac: [u8; 6], id: u32) -> Result<KBox<dyn Uplink>> {
        let up = pools.new_uplink(pool)?;
        let u = NicUplink {
            pools: pools.clone(),
            pool,
            up,
            mac,
            id,
        };
        let b: KBox<dyn Uplink> = KBox::new(u, GFP_KERNEL)?;
        Ok(b)
    }
}

impl Drop for NicUplink {
    fn drop(&mut self) {
        self.pools.drop_uplink(self.pool, self.up);
    }
}

impl Uplink for NicUplink {
    fn borrows_rx(&self) -> bool {
        true
    }

    fn reclaim(&mut self) -> bool {
        self.pools.reclaim(self.pool, self.id)
    }

    fn rx_service(&mut self) {
        self.pools.rx_service(self.pool, self.id);
    }

    fn xmit(&mut self, hdr: &NetHdr, frame: &Frame<'_>) -> Sent {
        self.pools.xmit(self.pool, self.up, &self.mac, hdr, frame)
    }

    fn another(&self) -> Result<KBox<dyn Uplink>> {
        NicUplink::make(&self.pools, self.pool, self.mac, self.id)
    }

    fn completed(&mut self) -> u32 {
        self.pools.completed(self.pool, self.up)
    }

    fn flush(&mut self) {
        self.pools.flush(self.pool, self.up);
    }

    fn push(&mut self) {
        self.pools.push(self.pool);
    }
}

/// The VM pools' interrupt (vector 1): the thread gives every pool's
/// received frames to its port.
pub(crate) struct VmIrq(pub(crate) Arc<NicPools>);

impl irq::ThreadedHandler for VmIrq {
    fn handle_threaded(&self, _dev: &Device<Bound>) -> irq::IrqReturn {
        self.0.service();
        irq::IrqReturn::Handled
    }
}
