//! The Intel 82576 (igb) as a shared NIC backend: VMDq pools without SR-IOV.
//!
//! pvpass owns the PCI function and gives every VM a VMDq pool of its own:
//! the VM's MAC in a receive address (RAR) entry pointing at the pool, the
//! pool's receive queue filled with the VM's own (pinned, translated) receive
//! buffers, its transmit queue fed from the VM's transmit chains. Pool 0 is
//! the host's: it also gets unicast that matches no pool (the default pool)
//! and, if asked, all multicast. Pool `n` owns queue `n`; with 8 pools the
//! host and up to 7 VMs share the NIC.
//!
//! This module is the programming plan only, as pure code over two small
//! traits the environment implements: [`Regs`] (the NIC's registers: a PCI
//! BAR in the kernel, qtest in the test) and [`ring::DescMem`] (descriptor
//! ring memory). It never waits on its own: a reset is started by
//! [`pools::Nic::reset`] and checked by [`pools::Nic::init`]; queue
//! disables poll the enable bit a bounded number of times through
//! [`Regs::delay_us`] and fail rather than hang.
//!
//! - [`regs`]: register offsets and bits, per-queue addressing (the split at
//!   queue 4), RAR/VMOLR/VT_CTL/IVAR helpers.
//! - [`desc`]: advanced receive/transmit descriptors, and [`desc::build_tx`],
//!   the transmit descriptors of one frame from its checked virtio-net header.
//! - [`ring`]: receive/transmit ring bookkeeping with bounds-checked reaping.
//! - [`pools`]: [`pools::Nic`], reset and VMDq setup, pool MACs, queue
//!   enable/disable (the disable is the isolation boundary: after it
//!   returns `Ok` the NIC no longer touches the pool's buffers).
//!
//! Isolation rules the plan enforces (there is no IOMMU): every descriptor is
//! built here from checked values; a pool's frame limit (`VMOLR.LPE|RLPML`)
//! never exceeds its buffer size, so no frame spans two buffers; VM queues
//! always drop when empty (`SRRCTL.DROP_EN`); the default pool is the host's;
//! a MAC can be in one pool only; the unicast hash table stays empty.

pub mod desc;
pub mod pools;
pub mod regs;
pub mod ring;

/// The NIC's registers (BAR0, 32-bit accesses at byte offsets).
pub trait Regs {
    /// Reads the register at `off`.
    fn read32(&mut self, off: u32) -> u32;
    /// Writes `val` to the register at `off`.
    fn write32(&mut self, off: u32, val: u32);
    /// Waits about `us` microseconds (`udelay` in atomic context,
    /// `usleep_range` where sleeping is allowed). Called only between the
    /// reads of a bounded poll.
    fn delay_us(&mut self, us: u32);
}
