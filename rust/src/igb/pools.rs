//! Programming the 82576 for VMDq with SR-IOV off: reset, NIC-wide setup,
//! one pool per VM (MAC, receive and transmit queue), and the disable path
//! that makes a pool's buffers the host's again.
//!
//! [`Nic`] keeps the little state the plan needs to refuse unsafe requests
//! (a MAC already in another pool, a queue enabled twice, a frame limit over
//! the buffer size) and knows which queues may still be running. Every
//! method takes the registers as `&mut impl Regs`.
//!
//! Order for a VM joining: [`Nic::enable_rx`] (its ring, buffer size, frame
//! limit, broadcast), post buffers and write the tail, [`Nic::enable_tx`],
//! then [`Nic::set_pool_mac`] so frames start to arrive. Leaving:
//! [`Nic::disable_pool`] (MAC removed, receive and transmit stopped and
//! confirmed stopped); only after it returns `Ok` may the pool's pages be
//! unpinned. If it returns [`NicError::RxStuck`] / [`NicError::TxStuck`]
//! the queue may still be doing DMA: reset the whole NIC ([`Nic::reset`]
//! stops all DMA) before unpinning anything.

use super::regs::{self, Pool, Queue};
use super::Regs;

/// Times a queue enable bit is polled before giving up.
pub const QUEUE_POLL_TRIES: u32 = 100;
/// Microseconds between two polls (so a disable waits at most about 1 ms).
pub const QUEUE_POLL_US: u32 = 10;
/// Times MDIC is polled for a PHY write to complete.
pub const MDIC_POLL_TRIES: u32 = 100;
/// Largest frame (without FCS) the NIC is set to take: the 82576's 9.5 KiB
/// jumbo limit less the 4-byte CRC that RLPML counts.
pub const FRAME_LIMIT: u16 = 9724;
/// Smallest per-pool frame limit accepted (a minimum Ethernet frame).
pub const FRAME_MIN: u16 = 64;
/// Ethernet CRC, counted by RLPML but stripped before the buffer.
pub const CRC_LEN: u16 = 4;
/// Smallest receive buffer size (SRRCTL.BSIZEPKT counts KiB).
pub const BUF_MIN: u32 = 1024;
/// Largest receive buffer size pvpass programs.
pub const BUF_MAX: u32 = 16384;

const RXDCTL_THRESH: u32 = (8 << regs::XDCTL_PTHRESH_SHIFT)
    | (8 << regs::XDCTL_HTHRESH_SHIFT)
    | (1 << regs::XDCTL_WTHRESH_SHIFT);
const TXDCTL_THRESH: u32 = (8 << regs::XDCTL_PTHRESH_SHIFT)
    | (1 << regs::XDCTL_HTHRESH_SHIFT)
    | (1 << regs::XDCTL_WTHRESH_SHIFT);

/// Why the NIC refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicError {
    /// [`Nic::init`] has not succeeded since the last [`Nic::reset`].
    NotReady,
    /// The reset has not completed yet (CTRL.RST still set): wait and call
    /// [`Nic::init`] again.
    ResetPending,
    /// A multicast, broadcast or all-zero MAC.
    BadMac,
    /// The MAC is already in another pool's entry (the NIC would give both
    /// pools its frames).
    MacInUse,
    /// Ring base zero, not 128-byte aligned, or wrapping; size not a
    /// multiple of 8 in `8..=4096`.
    BadRing,
    /// Receive buffer size not a multiple of 1 KiB in `1..=16` KiB.
    BadBufLen,
    /// Frame limit below [`FRAME_MIN`], over the buffer size, or over the
    /// NIC's limit.
    BadFrameLimit,
    /// The queue is already enabled (or stuck from a failed disable).
    QueueBusy,
    /// A vector number outside the PF's MSI-X table.
    BadVector,
    /// The PHY did not complete an MDIC operation.
    PhyTimeout,
    /// The receive queue's enable bit did not follow the write within
    /// [`QUEUE_POLL_TRIES`] polls. After a failed disable the queue may still
    /// write into its buffers.
    RxStuck(Pool),
    /// The transmit queue's enable bit did not follow the write.
    TxStuck(Pool),
}

/// NIC-wide settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NicConfig {
    /// The host's MAC (pool 0, RAR entry 0).
    pub host_mac: [u8; 6],
    /// Largest frame the NIC takes at all (without FCS), at most
    /// [`FRAME_LIMIT`]; pools can only lower it.
    pub max_frame: u16,
    /// Switch frames between pools inside the NIC (`DTXSWC.Loopback_en`):
    /// a frame a pool sends to another pool's MAC goes to that pool, not to
    /// the wire.
    pub loopback: bool,
}

/// How a pool receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolRxConfig {
    /// Receive buffer size in bytes (SRRCTL.BSIZEPKT): a multiple of 1024 in
    /// `BUF_MIN..=BUF_MAX`. Every buffer posted must hold this many bytes.
    pub buf_len: u32,
    /// Largest frame delivered to this pool (without FCS), at most `buf_len`
    /// and the NIC's `max_frame`: longer frames are dropped for this pool, so
    /// none spans two buffers.
    pub max_frame: u16,
    /// Accept broadcast (`VMOLR.BAM`).
    pub broadcast: bool,
    /// Accept multicast that hits the shared MTA hash (`VMOLR.ROMPE`). The
    /// hash is inexact (a pool gets groups it did not join), so pvpass sets
    /// this for the host pool only and delivers multicast to VMs in software.
    pub multicast: bool,
    /// Drop frames when the queue has no buffers (`SRRCTL.DROP_EN`). Always
    /// on for VM pools whatever this says: an empty VM queue must not hold
    /// the packet buffer that every pool shares.
    pub drop_when_empty: bool,
}

/// Where a queue's descriptor ring is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingConfig {
    /// Bus address of descriptor 0 (128-byte aligned).
    pub base: u64,
    /// Number of descriptors (a multiple of 8, `8..=4096`).
    pub size: u16,
}

/// A pool's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Good packets received (PVFGPRC, running).
    pub rx_packets: u32,
    /// Good packets transmitted (PVFGPTC, running).
    pub tx_packets: u32,
    /// Frames dropped because the queue had no buffers since the last read
    /// (RQDPC; clears on read; QEMU's model never counts them).
    pub rx_queue_drops: u32,
}

/// Whether `mac` may be a pool's address: unicast and not all zero.
#[must_use]
pub fn valid_unicast(mac: &[u8; 6]) -> bool {
    mac[0] & 1 == 0 && mac.iter().any(|b| *b != 0)
}

/// The MTA word and bit of a multicast address (RCTL.MO = 0: address bits
/// 47:36).
#[must_use]
pub fn mta_bit(mac: &[u8; 6]) -> (u32, u32) {
    let hash = ((u32::from(mac[4]) >> 4) | (u32::from(mac[5]) << 4)) & 0xfff;
    (hash >> 5, hash & 31)
}

fn ring_ok(ring: &RingConfig) -> bool {
    let bytes = u64::from(ring.size).wrapping_mul(16);
    ring.base != 0
        && ring.base % 128 == 0
        && ring.size >= 8
        && ring.size % 8 == 0
        && ring.size <= super::ring::RING_MAX
        && ring.base.checked_add(bytes).is_some()
}

fn split(addr: u64) -> (u32, u32) {
    ((addr & 0xffff_ffff) as u32, (addr >> 32) as u32)
}

/// Polls `off` until `(value & mask == 0) == clear`, at most
/// [`QUEUE_POLL_TRIES`] times.
fn poll<R: Regs>(r: &mut R, off: u32, mask: u32, clear: bool) -> bool {
    for i in 0..QUEUE_POLL_TRIES {
        if (r.read32(off) & mask == 0) == clear {
            return true;
        }
        if i.wrapping_add(1) < QUEUE_POLL_TRIES {
            r.delay_us(QUEUE_POLL_US);
        }
    }
    false
}

/// The register accesses of a running pool's data path: tail writes, the
/// transmit head, unmasking its vectors. They need no plan state, so they
/// can be made where the plan's lock cannot be taken (a NAPI poll, an
/// interrupt handler); the plan ([`Nic`]) enables and disables the queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolPath(Pool);

impl PoolPath {
    /// The data path of `pool`'s queue pair.
    #[must_use]
    pub const fn new(pool: Pool) -> Self {
        Self(pool)
    }

    /// Hands receive descriptors up to (not including) `tail` to the NIC.
    pub fn write_rx_tail<R: Regs>(&self, r: &mut R, tail: u16) {
        r.write32(regs::rx::rdt(self.0.queue()), u32::from(tail));
    }

    /// Hands transmit descriptors up to (not including) `tail` to the NIC.
    pub fn write_tx_tail<R: Regs>(&self, r: &mut R, tail: u16) {
        r.write32(regs::tx::tdt(self.0.queue()), u32::from(tail));
    }

    /// The NIC's transmit head.
    pub fn tx_head<R: Regs>(&self, r: &mut R) -> u32 {
        r.read32(regs::tx::tdh(self.0.queue()))
    }

    /// Unmasks the vectors in `mask` again (after a poll that ran with them
    /// masked); only vectors of the PF's table.
    pub fn unmask<R: Regs>(&self, r: &mut R, mask: u32) {
        let all = (1u32 << regs::NUM_VECTORS).wrapping_sub(1);
        r.write32(regs::EIMS, mask & all);
    }
}

/// The plan's view of one 82576 physical function. The all-zero value
/// ([`Nic::new`]) is a NIC that has not been initialised.
#[derive(Clone, Debug, Default)]
pub struct Nic {
    ready: bool,
    max_frame: u16,
    /// Pools whose receive queue is enabled, or stuck after a failed disable.
    rx_on: u8,
    /// Pools whose transmit queue is enabled, or stuck.
    tx_on: u8,
    /// Pools with a MAC in their RAR entry.
    mac_set: u8,
    macs: [[u8; 6]; regs::NUM_POOLS as usize],
}

impl Nic {
    /// A NIC not yet initialised.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            ready: false,
            max_frame: 0,
            rx_on: 0,
            tx_on: 0,
            mac_set: 0,
            macs: [[0; 6]; regs::NUM_POOLS as usize],
        }
    }

    /// Whether [`Nic::init`] succeeded.
    #[must_use]
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Pools whose receive queue may be running (bit per pool).
    #[must_use]
    pub fn rx_enabled(&self) -> u8 {
        self.rx_on
    }

    /// Pools whose transmit queue may be running (bit per pool).
    #[must_use]
    pub fn tx_enabled(&self) -> u8 {
        self.tx_on
    }

    /// Starts a full reset: masks interrupts, stops receive and transmit,
    /// blocks new bus-master requests and waits (bounded) for the pending
    /// ones, as Linux's `igb_disable_pcie_master` does, then sets CTRL.RST,
    /// which stops all DMA. The NIC needs time to come back (about 1 ms on
    /// hardware; Linux also waits for EECD.AUTO_RD, which QEMU's model never
    /// sets): [`Nic::init`] returns [`NicError::ResetPending`] until it has.
    /// Once it no longer does, no queue runs and every page the NIC was
    /// given may be unpinned.
    pub fn reset<R: Regs>(&mut self, r: &mut R) {
        r.write32(regs::IMC, u32::MAX);
        r.write32(regs::EIMC, u32::MAX);
        r.write32(regs::RCTL, 0);
        r.write32(regs::TCTL, regs::TCTL_PSP);
        let ctrl = r.read32(regs::CTRL);
        r.write32(regs::CTRL, ctrl | regs::CTRL_GIO_MASTER_DISABLE);
        // Reset anyway if requests stay pending (so does Linux).
        let _ = poll(r, regs::STATUS, regs::STATUS_GIO_MASTER_ENABLE, true);
        let ctrl = r.read32(regs::CTRL);
        r.write32(regs::CTRL, ctrl | regs::CTRL_RST);
        *self = Self::new();
    }

    /// NIC-wide setup after a reset: interrupts masked, every queue stopped,
    /// all filters cleared, VMDq on (MRQC), default pool 0 (the host's), no
    /// pool enabled for receive or transmit (VFRE = VFTE = 0), the host MAC
    /// in RAR 0 for pool 0, frames up to `cfg.max_frame`, CRC stripped,
    /// receive checksum offload on, transmit enabled, MSI-X interrupt mode
    /// (causes mapped to vectors through IVAR; none mapped yet).
    pub fn init<R: Regs>(&mut self, r: &mut R, cfg: &NicConfig) -> Result<(), NicError> {
        if r.read32(regs::CTRL) & regs::CTRL_RST != 0 {
            return Err(NicError::ResetPending);
        }
        if !valid_unicast(&cfg.host_mac) {
            return Err(NicError::BadMac);
        }
        if cfg.max_frame < FRAME_MIN || cfg.max_frame > FRAME_LIMIT {
            return Err(NicError::BadFrameLimit);
        }
        *self = Self::new();
        r.write32(regs::IMC, u32::MAX);
        r.write32(regs::EIMC, u32::MAX);
        let _ = r.read32(regs::ICR);
        let _ = r.read32(regs::EICR);
        r.write32(regs::RCTL, 0);
        r.write32(regs::TCTL, regs::TCTL_PSP);
        r.write32(regs::VFRE, 0);
        r.write32(regs::VFTE, 0);
        // Every queue stopped, whatever the reset left on (queue 0 is).
        self.rx_on = 0xff;
        self.tx_on = 0xff;
        for n in 0..regs::NUM_QUEUES {
            let Some(q) = Queue::new(n) else { continue };
            r.write32(regs::rx::rxdctl(q), 0);
            r.write32(regs::tx::txdctl(q), 0);
        }
        for n in 0..regs::NUM_QUEUES {
            let Some(q) = Queue::new(n) else { continue };
            // Queue n + 8 is pool n's second (RSS) queue.
            let stuck = Pool::new(n % regs::NUM_POOLS).unwrap_or(Pool::HOST);
            if !poll(r, regs::rx::rxdctl(q), regs::XDCTL_QUEUE_ENABLE, true) {
                return Err(NicError::RxStuck(stuck));
            }
            if !poll(r, regs::tx::txdctl(q), regs::XDCTL_QUEUE_ENABLE, true) {
                return Err(NicError::TxStuck(stuck));
            }
        }
        self.rx_on = 0;
        self.tx_on = 0;

        // Copper link as Linux sets it up: link forced up at the MAC, speed
        // and duplex from the PHY's autonegotiation ([`Nic::start_link`]).
        let ctrl = r.read32(regs::CTRL) & !(regs::CTRL_FRCSPD | regs::CTRL_FRCDPX);
        r.write32(regs::CTRL, ctrl | regs::CTRL_SLU);
        for n in 0..regs::NUM_RAR {
            if let Some(e) = regs::Rar::new(n) {
                r.write32(regs::rah(e), 0);
                r.write32(regs::ral(e), 0);
            }
        }
        for i in 0..regs::HASH_TABLE_WORDS {
            r.write32(regs::MTA.wrapping_add(i.wrapping_mul(4)), 0);
            r.write32(regs::UTA.wrapping_add(i.wrapping_mul(4)), 0);
        }
        for i in 0..regs::NUM_VLVF {
            r.write32(regs::vlvf(i), 0);
        }
        for n in 0..regs::NUM_POOLS {
            if let Some(p) = Pool::new(n) {
                r.write32(regs::vmolr(p), regs::VMOLR_STRCRC);
                r.write32(regs::vmvir(p), 0);
            }
        }
        r.write32(regs::RPLOLR, regs::RPLOLR_STRCRC);
        r.write32(regs::MRQC, regs::MRQC_ENABLE_VMDQ);
        // Default pool 0 (the host's), replication of broadcast/multicast to
        // every accepting pool.
        r.write32(regs::VT_CTL, regs::VT_CTL_VM_REPL_EN);
        r.write32(
            regs::DTXSWC,
            if cfg.loopback {
                regs::DTXSWC_VMDQ_LOOPBACK_EN
            } else {
                0
            },
        );
        r.write32(regs::QDE, 0);
        for i in 0..8u32 {
            r.write32(regs::IVAR0.wrapping_add(i.wrapping_mul(4)), 0);
        }
        r.write32(regs::IVAR_MISC, 0);
        r.write32(
            regs::GPIE,
            regs::GPIE_MSIX_MODE | regs::GPIE_PBA | regs::GPIE_EIAME | regs::GPIE_NSICR,
        );
        r.write32(regs::EIAC, 0);
        r.write32(regs::RLPML, u32::from(cfg.max_frame).wrapping_add(4));
        r.write32(regs::RXCSUM, regs::RXCSUM_IPOFLD | regs::RXCSUM_TUOFLD);
        r.write32(
            regs::RCTL,
            regs::RCTL_EN | regs::RCTL_BAM | regs::RCTL_SECRC | regs::RCTL_LPE,
        );
        r.write32(
            regs::TCTL,
            regs::TCTL_EN
                | regs::TCTL_PSP
                | regs::TCTL_RTLC
                | (regs::COLLISION_THRESHOLD << regs::TCTL_CT_SHIFT)
                | (regs::COLLISION_DISTANCE << regs::TCTL_COLD_SHIFT),
        );
        self.max_frame = cfg.max_frame;
        self.ready = true;
        self.set_pool_mac(r, Pool::HOST, cfg.host_mac)
    }

    /// Whether a reset started by [`Nic::reset`] has completed (CTRL.RST
    /// reads 0 again).
    pub fn reset_done<R: Regs>(&self, r: &mut R) -> bool {
        r.read32(regs::CTRL) & regs::CTRL_RST == 0
    }

    /// Stops everything that can do DMA or interrupt, for the end of the
    /// driver's life (after [`Nic::reset`] completed, which leaves queue 0's
    /// receive enabled): interrupts masked, receive and transmit off, no pool
    /// enabled, every queue disabled and confirmed stopped. Tries every
    /// queue even if one fails and returns the first error; the plan is not
    /// ready afterwards ([`Nic::init`] again to use the NIC).
    pub fn stop_all<R: Regs>(&mut self, r: &mut R) -> Result<(), NicError> {
        r.write32(regs::IMC, u32::MAX);
        r.write32(regs::EIMC, u32::MAX);
        r.write32(regs::EIAC, 0);
        r.write32(regs::RCTL, 0);
        r.write32(regs::TCTL, regs::TCTL_PSP);
        r.write32(regs::VFRE, 0);
        r.write32(regs::VFTE, 0);
        self.ready = false;
        let mut first = Ok(());
        for n in 0..regs::NUM_QUEUES {
            let Some(q) = Queue::new(n) else { continue };
            r.write32(regs::rx::rxdctl(q), 0);
            r.write32(regs::tx::txdctl(q), 0);
        }
        for n in 0..regs::NUM_QUEUES {
            let Some(q) = Queue::new(n) else { continue };
            let pool = Pool::new(n % regs::NUM_POOLS).unwrap_or(Pool::HOST);
            if !poll(r, regs::rx::rxdctl(q), regs::XDCTL_QUEUE_ENABLE, true) {
                first = first.and(Err(NicError::RxStuck(pool)));
            }
            if !poll(r, regs::tx::txdctl(q), regs::XDCTL_QUEUE_ENABLE, true) {
                first = first.and(Err(NicError::TxStuck(pool)));
            }
        }
        let _ = r.read32(regs::ICR);
        let _ = r.read32(regs::EICR);
        if first.is_ok() {
            self.rx_on = 0;
            self.tx_on = 0;
        }
        first
    }

    /// Whether the NIC is quiet: receive and transmit off, no interrupt
    /// unmasked, no queue enabled (what [`Nic::stop_all`] leaves).
    pub fn quiet<R: Regs>(&self, r: &mut R) -> bool {
        if r.read32(regs::RCTL) & regs::RCTL_EN != 0
            || r.read32(regs::TCTL) & regs::TCTL_EN != 0
            || r.read32(regs::IMS) != 0
            || r.read32(regs::EIMS) != 0
        {
            return false;
        }
        (0..regs::NUM_QUEUES).filter_map(Queue::new).all(|q| {
            (r.read32(regs::rx::rxdctl(q)) | r.read32(regs::tx::txdctl(q)))
                & regs::XDCTL_QUEUE_ENABLE
                == 0
        })
    }

    /// Starts PHY autonegotiation (MDIC write of BMCR). The link comes up
    /// later: poll [`Nic::link_up`].
    pub fn start_link<R: Regs>(&mut self, r: &mut R) -> Result<(), NicError> {
        let bmcr = regs::BMCR_AUTOEN | regs::BMCR_ANRESTART | regs::BMCR_FD | regs::BMCR_SPEED1000;
        r.write32(
            regs::MDIC,
            (bmcr & regs::MDIC_DATA_MASK)
                | (regs::PHY_BMCR << regs::MDIC_REG_SHIFT)
                | (regs::PHY_ADDR << regs::MDIC_PHY_SHIFT)
                | regs::MDIC_OP_WRITE,
        );
        for _ in 0..MDIC_POLL_TRIES {
            let v = r.read32(regs::MDIC);
            if v & regs::MDIC_ERROR != 0 {
                return Err(NicError::PhyTimeout);
            }
            if v & regs::MDIC_READY != 0 {
                return Ok(());
            }
            r.delay_us(QUEUE_POLL_US);
        }
        Err(NicError::PhyTimeout)
    }

    /// Whether the link is up (STATUS.LU). The NIC receives nothing before.
    pub fn link_up<R: Regs>(&self, r: &mut R) -> bool {
        r.read32(regs::STATUS) & regs::STATUS_LU != 0
    }

    /// Puts `mac` into the pool's RAR entry: unicast to it is delivered to
    /// this pool only. Refused if another pool has it.
    pub fn set_pool_mac<R: Regs>(
        &mut self,
        r: &mut R,
        pool: Pool,
        mac: [u8; 6],
    ) -> Result<(), NicError> {
        if !self.ready {
            return Err(NicError::NotReady);
        }
        if !valid_unicast(&mac) {
            return Err(NicError::BadMac);
        }
        for n in 0..regs::NUM_POOLS {
            let taken = self.mac_set & (1 << n) != 0;
            if n != pool.index() && taken && self.macs.get(usize::from(n)) == Some(&mac) {
                return Err(NicError::MacInUse);
            }
        }
        let e = pool.rar();
        let [a, b, c, d, e4, e5] = mac;
        // Invalidate first: the entry never matches half old, half new.
        r.write32(regs::rah(e), 0);
        r.write32(regs::ral(e), u32::from_le_bytes([a, b, c, d]));
        r.write32(
            regs::rah(e),
            u32::from(u16::from_le_bytes([e4, e5]))
                | regs::RAH_AV
                | (pool.bit() << regs::RAH_POOL_SHIFT),
        );
        if let Some(m) = self.macs.get_mut(usize::from(pool.index())) {
            *m = mac;
        }
        self.mac_set |= 1 << pool.index();
        Ok(())
    }

    /// Removes the pool's RAR entry: its MAC becomes unknown unicast (the
    /// host pool's, if that receives).
    pub fn clear_pool_mac<R: Regs>(&mut self, r: &mut R, pool: Pool) {
        let e = pool.rar();
        r.write32(regs::rah(e), 0);
        r.write32(regs::ral(e), 0);
        self.mac_set &= !(1 << pool.index());
    }

    /// Sets or clears every MTA bit: with `multicast` on the host pool
    /// (ROMPE), all multicast goes to the host, which delivers it to VMs
    /// exactly in software.
    pub fn set_mta_all<R: Regs>(&mut self, r: &mut R, on: bool) {
        let v = if on { u32::MAX } else { 0 };
        for i in 0..regs::HASH_TABLE_WORDS {
            r.write32(regs::MTA.wrapping_add(i.wrapping_mul(4)), v);
        }
    }

    /// Sets the MTA bit of one multicast address.
    pub fn add_mta<R: Regs>(&mut self, r: &mut R, mac: &[u8; 6]) {
        let (word, bit) = mta_bit(mac);
        let off = regs::MTA.wrapping_add(word.wrapping_mul(4));
        let v = r.read32(off);
        r.write32(off, v | (1 << bit));
    }

    /// Enables the pool's receive queue on the ring `ring` (empty: post
    /// buffers and write the tail afterwards) with the pool's buffer size,
    /// frame limit and filters, and turns the pool's receive on (VFRE).
    pub fn enable_rx<R: Regs>(
        &mut self,
        r: &mut R,
        pool: Pool,
        ring: RingConfig,
        cfg: &PoolRxConfig,
    ) -> Result<(), NicError> {
        if !self.ready {
            return Err(NicError::NotReady);
        }
        if self.rx_on & (1 << pool.index()) != 0 {
            return Err(NicError::QueueBusy);
        }
        if !ring_ok(&ring) {
            return Err(NicError::BadRing);
        }
        if cfg.buf_len % BUF_MIN != 0 || cfg.buf_len < BUF_MIN || cfg.buf_len > BUF_MAX {
            return Err(NicError::BadBufLen);
        }
        if cfg.max_frame < FRAME_MIN
            || u32::from(cfg.max_frame) > cfg.buf_len
            || cfg.max_frame > self.max_frame
        {
            return Err(NicError::BadFrameLimit);
        }
        let q = pool.queue();
        let rxdctl = regs::rx::rxdctl(q);
        r.write32(rxdctl, 0);
        if !poll(r, rxdctl, regs::XDCTL_QUEUE_ENABLE, true) {
            self.rx_on |= 1 << pool.index();
            return Err(NicError::RxStuck(pool));
        }
        let (lo, hi) = split(ring.base);
        r.write32(regs::rx::rdbal(q), lo);
        r.write32(regs::rx::rdbah(q), hi);
        r.write32(regs::rx::rdlen(q), u32::from(ring.size).wrapping_mul(16));
        r.write32(regs::rx::rdh(q), 0);
        r.write32(regs::rx::rdt(q), 0);
        let mut srrctl = ((cfg.buf_len >> regs::SRRCTL_BSIZEPKT_SHIFT)
            & regs::SRRCTL_BSIZEPKT_MASK)
            | regs::SRRCTL_DESCTYPE_ADV_ONEBUF;
        if cfg.drop_when_empty || !pool.is_host() {
            srrctl |= regs::SRRCTL_DROP_EN;
        }
        r.write32(regs::rx::srrctl(q), srrctl);
        let mut vmolr = regs::VMOLR_STRCRC
            | regs::VMOLR_AUPE
            | regs::VMOLR_LPE
            | (u32::from(cfg.max_frame.wrapping_add(CRC_LEN)) & regs::VMOLR_RLPML_MASK);
        if cfg.broadcast {
            vmolr |= regs::VMOLR_BAM;
        }
        if cfg.multicast {
            vmolr |= regs::VMOLR_ROMPE;
        }
        r.write32(regs::vmolr(pool), vmolr);
        r.write32(rxdctl, regs::XDCTL_QUEUE_ENABLE | RXDCTL_THRESH);
        self.rx_on |= 1 << pool.index();
        if !poll(r, rxdctl, regs::XDCTL_QUEUE_ENABLE, false) {
            return Err(NicError::RxStuck(pool));
        }
        let vfre = r.read32(regs::VFRE);
        r.write32(regs::VFRE, vfre | pool.bit());
        Ok(())
    }

    /// Stops the pool's receive queue: the pool's receive is turned off
    /// (VFRE, so the NIC assigns it no more frames), its filters cleared,
    /// the queue disabled, and the enable bit polled until it reads 0. After
    /// `Ok` the NIC writes nothing more into the pool's buffers or ring
    /// ([`super::ring::RxRing::drain`] may hand them back). On
    /// [`NicError::RxStuck`] it may: reset the NIC before unpinning.
    pub fn disable_rx<R: Regs>(&mut self, r: &mut R, pool: Pool) -> Result<(), NicError> {
        let q = pool.queue();
        let vfre = r.read32(regs::VFRE);
        r.write32(regs::VFRE, vfre & !pool.bit());
        r.write32(regs::vmolr(pool), regs::VMOLR_STRCRC);
        let rxdctl = regs::rx::rxdctl(q);
        let v = r.read32(rxdctl);
        r.write32(rxdctl, v & !regs::XDCTL_QUEUE_ENABLE);
        if !poll(r, rxdctl, regs::XDCTL_QUEUE_ENABLE, true) {
            self.rx_on |= 1 << pool.index();
            return Err(NicError::RxStuck(pool));
        }
        self.rx_on &= !(1 << pool.index());
        Ok(())
    }

    /// Enables the pool's transmit queue on the (empty) ring and turns the
    /// pool's transmit on (VFTE; and the pool's MAC anti-spoofing bit on
    /// hardware that has it: QEMU's model ignores it, so pvpass checks
    /// source MACs in software).
    pub fn enable_tx<R: Regs>(
        &mut self,
        r: &mut R,
        pool: Pool,
        ring: RingConfig,
    ) -> Result<(), NicError> {
        if !self.ready {
            return Err(NicError::NotReady);
        }
        if self.tx_on & (1 << pool.index()) != 0 {
            return Err(NicError::QueueBusy);
        }
        if !ring_ok(&ring) {
            return Err(NicError::BadRing);
        }
        let q = pool.queue();
        let txdctl = regs::tx::txdctl(q);
        r.write32(txdctl, 0);
        if !poll(r, txdctl, regs::XDCTL_QUEUE_ENABLE, true) {
            self.tx_on |= 1 << pool.index();
            return Err(NicError::TxStuck(pool));
        }
        let (lo, hi) = split(ring.base);
        r.write32(regs::tx::tdbal(q), lo);
        r.write32(regs::tx::tdbah(q), hi);
        r.write32(regs::tx::tdlen(q), u32::from(ring.size).wrapping_mul(16));
        r.write32(regs::tx::tdh(q), 0);
        r.write32(regs::tx::tdt(q), 0);
        r.write32(regs::tx::tdwbal(q), 0);
        r.write32(regs::tx::tdwbah(q), 0);
        r.write32(txdctl, regs::XDCTL_QUEUE_ENABLE | TXDCTL_THRESH);
        self.tx_on |= 1 << pool.index();
        if !poll(r, txdctl, regs::XDCTL_QUEUE_ENABLE, false) {
            return Err(NicError::TxStuck(pool));
        }
        if !pool.is_host() {
            let sw = r.read32(regs::DTXSWC);
            r.write32(regs::DTXSWC, sw | pool.bit());
        }
        let vfte = r.read32(regs::VFTE);
        r.write32(regs::VFTE, vfte | pool.bit());
        Ok(())
    }

    /// Stops the pool's transmit queue (VFTE off, queue disabled, enable bit
    /// polled until it reads 0). After `Ok` the NIC reads nothing more from
    /// the pool's buffers or ring; frames not yet sent are abandoned
    /// ([`super::ring::TxRing::drain`]). Wait for [`Nic::tx_idle`] first to
    /// let them go out.
    pub fn disable_tx<R: Regs>(&mut self, r: &mut R, pool: Pool) -> Result<(), NicError> {
        let q = pool.queue();
        let vfte = r.read32(regs::VFTE);
        r.write32(regs::VFTE, vfte & !pool.bit());
        let txdctl = regs::tx::txdctl(q);
        let v = r.read32(txdctl);
        r.write32(txdctl, v & !regs::XDCTL_QUEUE_ENABLE);
        if !poll(r, txdctl, regs::XDCTL_QUEUE_ENABLE, true) {
            self.tx_on |= 1 << pool.index();
            return Err(NicError::TxStuck(pool));
        }
        let sw = r.read32(regs::DTXSWC);
        r.write32(regs::DTXSWC, sw & !pool.bit());
        self.tx_on &= !(1 << pool.index());
        Ok(())
    }

    /// Takes a pool off the NIC: its MAC removed, receive and transmit
    /// stopped and confirmed stopped. Tries every step even if one fails and
    /// returns the first error.
    pub fn disable_pool<R: Regs>(&mut self, r: &mut R, pool: Pool) -> Result<(), NicError> {
        self.clear_pool_mac(r, pool);
        let rx = self.disable_rx(r, pool);
        let tx = self.disable_tx(r, pool);
        rx.and(tx)
    }

    /// Hands receive descriptors up to (not including) `tail` to the NIC.
    pub fn write_rx_tail<R: Regs>(&self, r: &mut R, pool: Pool, tail: u16) {
        r.write32(regs::rx::rdt(pool.queue()), u32::from(tail));
    }

    /// Hands transmit descriptors up to (not including) `tail` to the NIC.
    pub fn write_tx_tail<R: Regs>(&self, r: &mut R, pool: Pool, tail: u16) {
        r.write32(regs::tx::tdt(pool.queue()), u32::from(tail));
    }

    /// The NIC's transmit head (check it with
    /// [`super::ring::TxRing::reap_to_head`]).
    pub fn tx_head<R: Regs>(&self, r: &mut R, pool: Pool) -> u32 {
        r.read32(regs::tx::tdh(pool.queue()))
    }

    /// Whether the pool's transmit queue has sent everything posted.
    pub fn tx_idle<R: Regs>(&self, r: &mut R, pool: Pool) -> bool {
        let q = pool.queue();
        r.read32(regs::tx::tdh(q)) == r.read32(regs::tx::tdt(q))
    }

    /// Maps the pool queue's receive and transmit causes to MSI-X vectors
    /// (`None`: not mapped).
    pub fn map_vectors<R: Regs>(
        &mut self,
        r: &mut R,
        pool: Pool,
        rx: Option<u8>,
        tx: Option<u8>,
    ) -> Result<(), NicError> {
        for (is_tx, vec) in [(false, rx), (true, tx)] {
            let entry = match vec {
                None => 0,
                Some(v) if v < regs::NUM_VECTORS => u32::from(v) | regs::IVAR_VALID,
                Some(_) => return Err(NicError::BadVector),
            };
            let (off, shift) = regs::ivar(pool.queue(), is_tx);
            let old = r.read32(off);
            r.write32(off, (old & !(0xff << shift)) | (entry << shift));
        }
        Ok(())
    }

    /// Maps the "other" causes (link status change) to vector `vec` and
    /// unmasks the link interrupt.
    pub fn map_misc_vector<R: Regs>(&mut self, r: &mut R, vec: u8) -> Result<(), NicError> {
        if vec >= regs::NUM_VECTORS {
            return Err(NicError::BadVector);
        }
        r.write32(regs::IVAR_MISC, (u32::from(vec) | regs::IVAR_VALID) << 8);
        r.write32(regs::IMS, regs::ICR_LSC);
        Ok(())
    }

    /// Unmasks the vectors in `mask` (bit per vector), auto-cleared on
    /// delivery.
    pub fn enable_vectors<R: Regs>(&mut self, r: &mut R, mask: u32) {
        let all = (1u32 << regs::NUM_VECTORS).wrapping_sub(1);
        let eiac = r.read32(regs::EIAC);
        r.write32(regs::EIAC, eiac | (mask & all));
        r.write32(regs::EIMS, mask & all);
    }

    /// Masks the vectors in `mask`.
    pub fn disable_vectors<R: Regs>(&mut self, r: &mut R, mask: u32) {
        r.write32(regs::EIMC, mask);
    }

    /// Sets vector `vec`'s minimum interval between interrupts.
    pub fn set_interval<R: Regs>(&mut self, r: &mut R, vec: u8, us: u16) -> Result<(), NicError> {
        let off = regs::eitr(vec).ok_or(NicError::BadVector)?;
        r.write32(off, regs::eitr_value(us));
        Ok(())
    }

    /// The pool's counters (`rx_queue_drops` clears on read: accumulate it).
    pub fn pool_stats<R: Regs>(&self, r: &mut R, pool: Pool) -> PoolStats {
        PoolStats {
            rx_packets: r.read32(regs::pvfgprc(pool)),
            tx_packets: r.read32(regs::pvfgptc(pool)),
            rx_queue_drops: r.read32(regs::rqdpc(pool.queue())),
        }
    }
}
