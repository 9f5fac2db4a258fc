// SPDX-License-Identifier: GPL-2.0

//! Transports: how a guest reaches a device (its registers, its kicks) and
//! how the device interrupts it.
//!
//! - `mmio`: virtio-mmio, served in the kernel on the vCPU thread. Its
//!   register accesses drive the device through [`mmio::MmioOps`], and its
//!   InterruptStatus read is when the device goes on with deferred work
//!   (the guest's interrupt handler is running: the drain trigger).
//!
//! The data path (`net`) sees a transport only through [`Transport`]: raise
//! the used-buffer interrupt, kick the guest, report a broken device. A
//! vhost-protocol transport implements the same with a call eventfd per
//! queue (MSI-X, no InterruptStatus), and triggers the drain from its kick
//! eventfd instead.

pub(crate) mod mmio;

/// The interrupt side of a transport, usable from any thread.
pub(crate) trait Transport: Send + Sync {
    /// Used buffers for the driver: raise the used-buffer interrupt, and
    /// with `inject` signal it now (not needed while the guest is in its
    /// handler).
    fn used_buffers(&self, inject: bool);
    /// Signal the guest's interrupt (counted) with nothing new raised: its
    /// handler comes back, and with it the device's deferred work.
    fn kick(&self);
    /// The device found a queue malformed: the driver must reset it (the
    /// transport reports DEVICE_NEEDS_RESET at its next register access and
    /// raises the configuration interrupt).
    fn needs_reset(&self);
    /// Interrupts signalled so far.
    fn interrupts(&self) -> u64;
    /// Interrupts signalled again after an EOI (level-triggered lines).
    fn resamples(&self) -> u64;
}
