//! Register offsets and bits of the Intel 82576 (igb) that pvpass programs.
//!
//! Names follow Linux (`drivers/net/ethernet/intel/igb/e1000_regs.h`,
//! `e1000_defines.h`, `e1000_82575.h`) without the `E1000_` prefix; QEMU's
//! model (`hw/net/igb_regs.h`) uses the same offsets. Offsets are bytes into
//! BAR0 (128 KiB of memory space).
//!
//! Per-queue registers exist for queues 0..=15 and are addressed through a
//! [`Queue`], so an offset can only be formed for a queue that exists. Queues
//! 0..=3 also answer at the legacy 82575 addresses (`0x2800 + 0x100 * n` for
//! receive, `0x3800 + 0x100 * n` for transmit); like Linux, [`rx`] and [`tx`]
//! use those for 0..=3 and the 82576 block (`0xC000 + 0x40 * n`,
//! `0xE000 + 0x40 * n`) from 4 on.

/// Number of receive (and of transmit) queues.
pub const NUM_QUEUES: u8 = 16;
/// Number of VMDq pools; pool `n` owns queue `n` (and `n + 8` with RSS, which
/// pvpass never enables).
pub const NUM_POOLS: u8 = 8;
/// Receive address (RAR) entries of the 82576: 16 at `RA`, 8 more at `RA2`.
pub const NUM_RAR: u8 = 24;
/// 32-bit words of the multicast (MTA) and unicast (UTA) hash tables.
pub const HASH_TABLE_WORDS: u32 = 128;
/// VLAN pool filter entries (VLVF).
pub const NUM_VLVF: u32 = 32;
/// MSI-X vectors of the physical function.
pub const NUM_VECTORS: u8 = 10;

/// A queue number, `0..NUM_QUEUES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Queue(u8);

impl Queue {
    /// Queue `n`, if it exists.
    #[must_use]
    pub const fn new(n: u8) -> Option<Self> {
        if n < NUM_QUEUES {
            Some(Self(n))
        } else {
            None
        }
    }

    /// The queue number.
    #[must_use]
    pub const fn index(self) -> u8 {
        self.0
    }
}

/// A VMDq pool number, `0..NUM_POOLS`; pool 0 is the host's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pool(u8);

impl Pool {
    /// The host's pool (the default pool for unknown unicast).
    pub const HOST: Self = Self(0);

    /// Pool `n`, if it exists.
    #[must_use]
    pub const fn new(n: u8) -> Option<Self> {
        if n < NUM_POOLS {
            Some(Self(n))
        } else {
            None
        }
    }

    /// The pool number.
    #[must_use]
    pub const fn index(self) -> u8 {
        self.0
    }

    /// The pool's bit in VFRE, VFTE, DTXSWC spoof masks and (shifted) RAH.
    #[must_use]
    pub const fn bit(self) -> u32 {
        1u32 << self.0
    }

    /// The queue pair this pool owns (pool `n` <-> queue `n`).
    #[must_use]
    pub const fn queue(self) -> Queue {
        Queue(self.0)
    }

    /// The RAR entry pvpass gives this pool's MAC address (entry `n`).
    #[must_use]
    pub const fn rar(self) -> Rar {
        Rar(self.0)
    }

    /// Whether this is the host's pool.
    #[must_use]
    pub const fn is_host(self) -> bool {
        self.0 == 0
    }
}

/// A receive address entry, `0..NUM_RAR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rar(u8);

impl Rar {
    /// Entry `n`, if it exists.
    #[must_use]
    pub const fn new(n: u8) -> Option<Self> {
        if n < NUM_RAR {
            Some(Self(n))
        } else {
            None
        }
    }
}

// ---- general ---------------------------------------------------------------

/// Device control.
pub const CTRL: u32 = 0x0000;
/// Device status (read only).
pub const STATUS: u32 = 0x0008;
/// Extended device control.
pub const CTRL_EXT: u32 = 0x0018;
/// MDI (PHY) control.
pub const MDIC: u32 = 0x0020;
/// Receive control.
pub const RCTL: u32 = 0x0100;
/// Transmit control.
pub const TCTL: u32 = 0x0400;
/// Receive checksum control.
pub const RXCSUM: u32 = 0x5000;
/// Receive long packet maximum length (NIC-wide, with `RCTL_LPE`).
pub const RLPML: u32 = 0x5004;

/// CTRL: set link up.
pub const CTRL_SLU: u32 = 1 << 6;
/// CTRL: device reset (self-clearing).
pub const CTRL_RST: u32 = 1 << 26;
/// STATUS: link up.
pub const STATUS_LU: u32 = 1 << 1;
/// STATUS: SR-IOV mode (VFs enabled); pvpass never enables it.
pub const STATUS_IOV_MODE: u32 = 1 << 18;

/// MDIC: data field.
pub const MDIC_DATA_MASK: u32 = 0xffff;
/// MDIC: PHY register shift.
pub const MDIC_REG_SHIFT: u32 = 16;
/// MDIC: PHY address shift.
pub const MDIC_PHY_SHIFT: u32 = 21;
/// MDIC: write operation.
pub const MDIC_OP_WRITE: u32 = 1 << 26;
/// MDIC: read operation.
pub const MDIC_OP_READ: u32 = 1 << 27;
/// MDIC: operation complete.
pub const MDIC_READY: u32 = 1 << 28;
/// MDIC: operation failed.
pub const MDIC_ERROR: u32 = 1 << 30;
/// The internal PHY's MDIO address.
pub const PHY_ADDR: u32 = 1;
/// PHY register 0: basic mode control.
pub const PHY_BMCR: u32 = 0;
/// BMCR: restart autonegotiation (self-clearing).
pub const BMCR_ANRESTART: u32 = 1 << 9;
/// BMCR: full duplex.
pub const BMCR_FD: u32 = 1 << 8;
/// BMCR: autonegotiation enable.
pub const BMCR_AUTOEN: u32 = 1 << 12;
/// BMCR: 1000 Mb/s (with autonegotiation: the advertised maximum).
pub const BMCR_SPEED1000: u32 = 1 << 6;

/// RCTL: receiver enable.
pub const RCTL_EN: u32 = 1 << 1;
/// RCTL: store bad packets.
pub const RCTL_SBP: u32 = 1 << 2;
/// RCTL: unicast promiscuous (ignored in VMDq mode by QEMU).
pub const RCTL_UPE: u32 = 1 << 3;
/// RCTL: multicast promiscuous (ignored in VMDq mode by QEMU).
pub const RCTL_MPE: u32 = 1 << 4;
/// RCTL: long packets (frames up to `RLPML`) accepted NIC-wide.
pub const RCTL_LPE: u32 = 1 << 5;
/// RCTL: accept broadcast (per pool in VMDq mode: `VMOLR_BAM`).
pub const RCTL_BAM: u32 = 1 << 15;
/// RCTL: VLAN filter enable.
pub const RCTL_VFE: u32 = 1 << 18;
/// RCTL: strip the Ethernet CRC (no FCS written into buffers).
pub const RCTL_SECRC: u32 = 1 << 26;

/// TCTL: transmitter enable.
pub const TCTL_EN: u32 = 1 << 1;
/// TCTL: pad short packets.
pub const TCTL_PSP: u32 = 1 << 3;
/// TCTL: collision threshold shift.
pub const TCTL_CT_SHIFT: u32 = 4;
/// TCTL: collision distance shift.
pub const TCTL_COLD_SHIFT: u32 = 12;
/// TCTL: retransmit on late collision.
pub const TCTL_RTLC: u32 = 1 << 24;
/// Collision threshold Linux programs.
pub const COLLISION_THRESHOLD: u32 = 15;
/// Collision distance Linux programs (full duplex).
pub const COLLISION_DISTANCE: u32 = 63;

/// RXCSUM: IPv4 header checksum offload.
pub const RXCSUM_IPOFLD: u32 = 1 << 8;
/// RXCSUM: TCP/UDP checksum offload.
pub const RXCSUM_TUOFLD: u32 = 1 << 9;
/// RXCSUM: packet checksum disabled (RSS hash reported instead).
pub const RXCSUM_PCSD: u32 = 1 << 13;

/// Largest value of an RLPML field (14 bits).
pub const RLPML_MAX: u32 = 0x3fff;

// ---- interrupts ------------------------------------------------------------

/// Interrupt cause read (clears on read).
pub const ICR: u32 = 0x00c0;
/// Interrupt cause set.
pub const ICS: u32 = 0x00c8;
/// Interrupt mask set/read.
pub const IMS: u32 = 0x00d0;
/// Interrupt mask clear.
pub const IMC: u32 = 0x00d8;
/// ICR: transmit descriptor written back.
pub const ICR_TXDW: u32 = 1 << 0;
/// ICR: link status change.
pub const ICR_LSC: u32 = 1 << 2;
/// ICR: receive overrun: a frame was dropped because its queue had no free
/// descriptors (the model's only sign of a per-queue drop, see [`rqdpc`]).
pub const ICR_RXO: u32 = 1 << 6;
/// ICR: receive descriptor written back.
pub const ICR_RXDW: u32 = 1 << 7;

/// General purpose interrupt enable.
pub const GPIE: u32 = 0x1514;
/// GPIE: clear ICR on read regardless of INT_ASSERTED.
pub const GPIE_NSICR: u32 = 1 << 0;
/// GPIE: MSI-X mode (EICR bits are vectors, mapped through IVAR).
pub const GPIE_MSIX_MODE: u32 = 1 << 4;
/// GPIE: extended interrupt auto mask enable.
pub const GPIE_EIAME: u32 = 1 << 30;
/// GPIE: PBA support (MSI-X pending bits).
pub const GPIE_PBA: u32 = 1 << 31;
/// Extended interrupt cause set.
pub const EICS: u32 = 0x1520;
/// Extended interrupt mask set/read.
pub const EIMS: u32 = 0x1524;
/// Extended interrupt mask clear.
pub const EIMC: u32 = 0x1528;
/// Extended interrupt auto clear.
pub const EIAC: u32 = 0x152c;
/// Extended interrupt auto mask.
pub const EIAM: u32 = 0x1530;
/// Extended interrupt cause read (clears on read).
pub const EICR: u32 = 0x1580;
/// Interrupt vector allocation, 8 registers (see [`ivar`]).
pub const IVAR0: u32 = 0x1700;
/// Interrupt vector allocation of the "other" causes (link, ...).
pub const IVAR_MISC: u32 = 0x1740;
/// IVAR entry: valid.
pub const IVAR_VALID: u32 = 0x80;
/// EITR: do not reset the counter on write (82576 and later).
pub const EITR_CNT_IGNR: u32 = 1 << 31;
/// EITR: the interval field, bits 14:2, in microseconds (Linux writes
/// `us << 2`; QEMU's model counts the raw value in units of 256 ns, which
/// comes to the same 1.024 us per step).
pub const EITR_INTERVAL_MASK: u32 = 0x7ffc;

/// The EITR value for a minimum interval of `us` microseconds between
/// interrupts of one vector (0: no moderation; capped at the field's 8191 us).
#[must_use]
pub const fn eitr_value(us: u16) -> u32 {
    let us = if us > 0x1fff { 0x1fff } else { us };
    ((us as u32) << 2) & EITR_INTERVAL_MASK | EITR_CNT_IGNR
}

/// Interrupt throttle register of MSI-X vector `v` (`v < NUM_VECTORS`, else
/// `None`).
#[must_use]
pub const fn eitr(v: u8) -> Option<u32> {
    if v < NUM_VECTORS {
        Some(0x1680u32.wrapping_add(4u32.wrapping_mul(v as u32)))
    } else {
        None
    }
}

/// Where queue `q`'s receive (`tx == false`) or transmit cause is mapped: the
/// IVAR register and the bit shift of its 8-bit entry. Queue `n < 8` is in
/// IVAR`n` bytes 0 (rx) and 1 (tx); queue `n + 8` in the same register's
/// bytes 2 and 3.
#[must_use]
pub const fn ivar(q: Queue, tx: bool) -> (u32, u32) {
    let n = q.0 & 7;
    let high = q.0 >= 8;
    let byte = (high as u32).wrapping_mul(2).wrapping_add(tx as u32);
    (
        IVAR0.wrapping_add(4u32.wrapping_mul(n as u32)),
        byte.wrapping_mul(8),
    )
}

// ---- receive address filters and VMDq -------------------------------------

/// Multicast table array (4096-bit hash, [`HASH_TABLE_WORDS`] words).
pub const MTA: u32 = 0x5200;
/// Unicast table array (4096-bit hash); pvpass keeps it zero.
pub const UTA: u32 = 0xa000;
/// Multiple receive queues control.
pub const MRQC: u32 = 0x5818;
/// MRQC: VMDq, one queue per pool, no RSS.
pub const MRQC_ENABLE_VMDQ: u32 = 3;
/// VMDq control (Linux `E1000_VT_CTL`, the datasheet's VMD_CTL).
pub const VT_CTL: u32 = 0x581c;
/// VT_CTL: default pool shift (pool for unicast matching no RAR entry).
pub const VT_CTL_DEFAULT_POOL_SHIFT: u32 = 7;
/// VT_CTL: default pool field.
pub const VT_CTL_DEFAULT_POOL_MASK: u32 = 7 << 7;
/// VT_CTL: ignore MAC address for pool selection.
pub const VT_CTL_IGNORE_MAC: u32 = 1 << 28;
/// VT_CTL: drop unicast matching no pool instead of using the default pool.
pub const VT_CTL_DISABLE_DEF_POOL: u32 = 1 << 29;
/// VT_CTL: replicate broadcast/multicast to every accepting pool.
pub const VT_CTL_VM_REPL_EN: u32 = 1 << 30;
/// Pool receive enables (bit per pool).
pub const VFRE: u32 = 0x0c8c;
/// Pool transmit enables (bit per pool).
pub const VFTE: u32 = 0x0c90;
/// Queue drop enable (alternative to SRRCTL.DROP_EN).
pub const QDE: u32 = 0x2408;
/// DMA transmit switch control.
pub const DTXSWC: u32 = 0x3500;
/// DTXSWC: per-pool MAC anti-spoofing (bits 7:0; QEMU ignores them).
pub const DTXSWC_MAC_SPOOF_MASK: u32 = 0xff;
/// DTXSWC: per-pool VLAN anti-spoofing (bits 15:8; QEMU ignores them).
pub const DTXSWC_VLAN_SPOOF_SHIFT: u32 = 8;
/// DTXSWC: VMDq loopback: frames from a pool to another pool's MAC are
/// switched inside the NIC, not sent to the wire.
pub const DTXSWC_VMDQ_LOOPBACK_EN: u32 = 1 << 31;
/// Replication offload (multicast VLAN stripping etc.).
pub const RPLOLR: u32 = 0x5af0;
/// RPLOLR: strip CRC of replicated frames.
pub const RPLOLR_STRCRC: u32 = 1 << 31;

/// RAH: address valid.
pub const RAH_AV: u32 = 1 << 31;
/// RAH: pool select bits (bit 18 + pool).
pub const RAH_POOL_MASK: u32 = 0x03fc_0000;
/// RAH: pool select shift.
pub const RAH_POOL_SHIFT: u32 = 18;

/// Receive address low of entry `r` (MAC bytes 0..4, little-endian).
#[must_use]
pub const fn ral(r: Rar) -> u32 {
    if r.0 < 16 {
        0x5400u32.wrapping_add(8u32.wrapping_mul(r.0 as u32))
    } else {
        0x54e0u32.wrapping_add(8u32.wrapping_mul((r.0 as u32).wrapping_sub(16)))
    }
}

/// Receive address high of entry `r` (MAC bytes 4..6, `RAH_AV`, pool bits).
#[must_use]
pub const fn rah(r: Rar) -> u32 {
    ral(r).wrapping_add(4)
}

/// Pool offload control of pool `p`.
#[must_use]
pub const fn vmolr(p: Pool) -> u32 {
    0x5ad0u32.wrapping_add(4u32.wrapping_mul(p.0 as u32))
}

/// VMOLR: long packet maximum length (frame + CRC), with `VMOLR_LPE`.
pub const VMOLR_RLPML_MASK: u32 = 0x3fff;
/// VMOLR: long packets up to RLPML accepted (else the 1518-byte limit).
pub const VMOLR_LPE: u32 = 1 << 16;
/// VMOLR: RSS within the pool.
pub const VMOLR_RSSE: u32 = 1 << 17;
/// VMOLR: accept untagged frames (with the VLAN filter on).
pub const VMOLR_AUPE: u32 = 1 << 24;
/// VMOLR: accept multicast matching the MTA hash.
pub const VMOLR_ROMPE: u32 = 1 << 25;
/// VMOLR: accept unicast matching the UTA hash.
pub const VMOLR_ROPE: u32 = 1 << 26;
/// VMOLR: accept broadcast.
pub const VMOLR_BAM: u32 = 1 << 27;
/// VMOLR: multicast promiscuous.
pub const VMOLR_MPME: u32 = 1 << 28;
/// VMOLR: strip VLAN tags.
pub const VMOLR_STRVLAN: u32 = 1 << 30;
/// VMOLR: strip CRC.
pub const VMOLR_STRCRC: u32 = 1 << 31;

/// VLAN pool filter `i` (`i < NUM_VLVF`).
#[must_use]
pub const fn vlvf(i: u32) -> u32 {
    0x5d00u32.wrapping_add(4u32.wrapping_mul(i & (NUM_VLVF - 1)))
}

/// Per-pool default VLAN insertion of pool `p`.
#[must_use]
pub const fn vmvir(p: Pool) -> u32 {
    0x3700u32.wrapping_add(4u32.wrapping_mul(p.0 as u32))
}

// ---- per-queue registers -------------------------------------------------

const fn qreg(legacy: u32, block: u32, q: Queue, off: u32) -> u32 {
    if q.0 < 4 {
        legacy
            .wrapping_add(0x100u32.wrapping_mul(q.0 as u32))
            .wrapping_add(off)
    } else {
        block
            .wrapping_add(0x40u32.wrapping_mul(q.0 as u32))
            .wrapping_add(off)
    }
}

/// Receive queue registers.
pub mod rx {
    use super::{qreg, Queue};

    const LEGACY: u32 = 0x2800;
    const BLOCK: u32 = 0xc000;

    /// Descriptor ring base, low 32 bits (128-byte aligned).
    #[must_use]
    pub const fn rdbal(q: Queue) -> u32 {
        qreg(LEGACY, BLOCK, q, 0x00)
    }
    /// Descriptor ring base, high 32 bits.
    #[must_use]
    pub const fn rdbah(q: Queue) -> u32 {
        qreg(LEGACY, BLOCK, q, 0x04)
    }
    /// Descriptor ring length in bytes (multiple of 128).
    #[must_use]
    pub const fn rdlen(q: Queue) -> u32 {
        qreg(LEGACY, BLOCK, q, 0x08)
    }
    /// Split and replication receive control (buffer size, descriptor type,
    /// drop enable).
    #[must_use]
    pub const fn srrctl(q: Queue) -> u32 {
        qreg(LEGACY, BLOCK, q, 0x0c)
    }
    /// Descriptor head (the NIC's next descriptor to fill).
    #[must_use]
    pub const fn rdh(q: Queue) -> u32 {
        qreg(LEGACY, BLOCK, q, 0x10)
    }
    /// Descriptor tail (one past the last descriptor given to the NIC).
    #[must_use]
    pub const fn rdt(q: Queue) -> u32 {
        qreg(LEGACY, BLOCK, q, 0x18)
    }
    /// Receive descriptor control (queue enable, thresholds).
    #[must_use]
    pub const fn rxdctl(q: Queue) -> u32 {
        qreg(LEGACY, BLOCK, q, 0x28)
    }
}

/// Transmit queue registers.
pub mod tx {
    use super::{qreg, Queue};

    const LEGACY: u32 = 0x3800;
    const BLOCK: u32 = 0xe000;

    /// Descriptor ring base, low 32 bits (128-byte aligned).
    #[must_use]
    pub const fn tdbal(q: Queue) -> u32 {
        qreg(LEGACY, BLOCK, q, 0x00)
    }
    /// Descriptor ring base, high 32 bits.
    #[must_use]
    pub const fn tdbah(q: Queue) -> u32 {
        qreg(LEGACY, BLOCK, q, 0x04)
    }
    /// Descriptor ring length in bytes (multiple of 128).
    #[must_use]
    pub const fn tdlen(q: Queue) -> u32 {
        qreg(LEGACY, BLOCK, q, 0x08)
    }
    /// Descriptor head (the NIC's next descriptor to send).
    #[must_use]
    pub const fn tdh(q: Queue) -> u32 {
        qreg(LEGACY, BLOCK, q, 0x10)
    }
    /// Descriptor tail (one past the last descriptor given to the NIC).
    #[must_use]
    pub const fn tdt(q: Queue) -> u32 {
        qreg(LEGACY, BLOCK, q, 0x18)
    }
    /// Transmit descriptor control (queue enable, thresholds).
    #[must_use]
    pub const fn txdctl(q: Queue) -> u32 {
        qreg(LEGACY, BLOCK, q, 0x28)
    }
    /// Head write-back address, low 32 bits (bit 0: enable); pvpass uses DD
    /// bits instead.
    #[must_use]
    pub const fn tdwbal(q: Queue) -> u32 {
        qreg(LEGACY, BLOCK, q, 0x38)
    }
    /// Head write-back address, high 32 bits.
    #[must_use]
    pub const fn tdwbah(q: Queue) -> u32 {
        qreg(LEGACY, BLOCK, q, 0x3c)
    }
}

/// SRRCTL: packet buffer size in KiB (bits 6:0).
pub const SRRCTL_BSIZEPKT_MASK: u32 = 0x7f;
/// SRRCTL: the buffer size field counts units of 1 << 10 bytes.
pub const SRRCTL_BSIZEPKT_SHIFT: u32 = 10;
/// SRRCTL: advanced descriptors, one buffer (no header split).
pub const SRRCTL_DESCTYPE_ADV_ONEBUF: u32 = 0x0200_0000;
/// SRRCTL: descriptor type field.
pub const SRRCTL_DESCTYPE_MASK: u32 = 0x0e00_0000;
/// SRRCTL: drop a frame when the queue has no descriptors instead of
/// holding the shared packet buffer (QEMU always drops).
pub const SRRCTL_DROP_EN: u32 = 1 << 31;

/// RXDCTL/TXDCTL: queue enable (reads back 1 once the queue runs, 0 once it
/// stopped).
pub const XDCTL_QUEUE_ENABLE: u32 = 1 << 25;
/// RXDCTL/TXDCTL: prefetch threshold shift.
pub const XDCTL_PTHRESH_SHIFT: u32 = 0;
/// RXDCTL/TXDCTL: host threshold shift.
pub const XDCTL_HTHRESH_SHIFT: u32 = 8;
/// RXDCTL/TXDCTL: write-back threshold shift.
pub const XDCTL_WTHRESH_SHIFT: u32 = 16;

// ---- statistics --------------------------------------------------------------

/// Missed packets (NIC-wide).
pub const MPC: u32 = 0x4010;
/// Good packets received (NIC-wide, clears on read).
pub const GPRC: u32 = 0x4074;
/// Good packets transmitted (NIC-wide, clears on read).
pub const GPTC: u32 = 0x4080;
/// Receive no buffers (NIC-wide).
pub const RNBC: u32 = 0x40a0;
/// Receive oversize: frames over every receiving pool's limit (clears on read).
pub const ROC: u32 = 0x40ac;

/// Receive queue drop packet count of queue `q` (clears on read; QEMU's model
/// never counts, see [`ICR_RXO`]).
#[must_use]
pub const fn rqdpc(q: Queue) -> u32 {
    0xc030u32.wrapping_add(0x40u32.wrapping_mul(q.0 as u32))
}

/// Per-pool good packets received (not cleared on read).
#[must_use]
pub const fn pvfgprc(p: Pool) -> u32 {
    0x1_0010u32.wrapping_add(0x100u32.wrapping_mul(p.0 as u32))
}

/// Per-pool good packets transmitted (not cleared on read).
#[must_use]
pub const fn pvfgptc(p: Pool) -> u32 {
    0x1_0014u32.wrapping_add(0x100u32.wrapping_mul(p.0 as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: u8) -> Queue {
        Queue::new(n).unwrap_or(Queue(0))
    }

    #[test]
    fn queue_registers_split_at_four() {
        // Linux's E1000_RDBAL(_n) / E1000_TDT(_n) etc.
        assert_eq!(rx::rdbal(q(0)), 0x2800);
        assert_eq!(rx::rdbal(q(3)), 0x2b00);
        assert_eq!(rx::rdbal(q(4)), 0xc100);
        assert_eq!(rx::rdbal(q(15)), 0xc3c0);
        assert_eq!(rx::rxdctl(q(1)), 0x2928);
        assert_eq!(rx::rxdctl(q(8)), 0xc228);
        assert_eq!(rx::srrctl(q(2)), 0x2a0c);
        assert_eq!(rx::rdt(q(5)), 0xc158);
        assert_eq!(tx::tdbal(q(0)), 0x3800);
        assert_eq!(tx::tdt(q(3)), 0x3b18);
        assert_eq!(tx::tdt(q(4)), 0xe118);
        assert_eq!(tx::txdctl(q(15)), 0xe3e8);
        assert_eq!(tx::tdwbal(q(7)), 0xe1f8);
        assert_eq!(rqdpc(q(1)), 0xc070);
    }

    #[test]
    fn constructors_reject_out_of_range() {
        assert!(Queue::new(15).is_some());
        assert!(Queue::new(16).is_none());
        assert!(Pool::new(7).is_some());
        assert!(Pool::new(8).is_none());
        assert!(Rar::new(23).is_some());
        assert!(Rar::new(24).is_none());
        assert_eq!(eitr(9), Some(0x16a4));
        assert_eq!(eitr(10), None);
    }

    #[test]
    fn rar_addresses() {
        let r = |n| Rar::new(n).unwrap_or(Rar(0));
        assert_eq!(ral(r(0)), 0x5400);
        assert_eq!(rah(r(0)), 0x5404);
        assert_eq!(ral(r(15)), 0x5478);
        assert_eq!(ral(r(16)), 0x54e0);
        assert_eq!(rah(r(23)), 0x551c);
    }

    #[test]
    fn ivar_layout() {
        // QEMU's igb_ivar_entry_rx/tx: byte n*4 (+1 tx) for n < 8,
        // (n-8)*4 + 2 (+1 tx) above.
        assert_eq!(ivar(q(0), false), (0x1700, 0));
        assert_eq!(ivar(q(0), true), (0x1700, 8));
        assert_eq!(ivar(q(3), false), (0x170c, 0));
        assert_eq!(ivar(q(9), false), (0x1704, 16));
        assert_eq!(ivar(q(9), true), (0x1704, 24));
    }

    #[test]
    fn pool_helpers() {
        let p = Pool::new(5).unwrap_or(Pool::HOST);
        assert_eq!(p.bit(), 0x20);
        assert_eq!(p.queue().index(), 5);
        assert_eq!(vmolr(p), 0x5ae4);
        assert_eq!(pvfgprc(p), 0x10510);
        assert!(Pool::HOST.is_host());
    }
}
