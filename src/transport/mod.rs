// SPDX-License-Identifier: GPL-2.0

//! Transports: how a guest reaches a device (its registers, its kicks) and
//! how the device interrupts it.
//!
//! - `mmio`: virtio-mmio, served in the kernel on the vCPU thread. Its
//!   register accesses drive the device through [`mmio::MmioOps`], and its
//!   InterruptStatus read is when the device goes on with deferred work
//!   (the guest's interrupt handler is running: the drain trigger).
//! - `vhost`: the vhost-net protocol (QEMU's `vhostfd=`): QEMU emulates the
//!   PCI function and MSI-X, the device serves the data queues. A kick
//!   eventfd per queue starts the device's work on the kicking vCPU thread
//!   (task work) or in a worker in the VMM's address space, and a call
//!   eventfd per queue (an MSI-X irqfd) interrupts the guest.
//!
//! - `poll`: the timer that brings a device back to its own thread when it
//!   left the guest's transmit notifications off (`net::tx`).
//!
//! The data path (`net`) sees a transport only through [`Transport`]: raise
//! the used-buffer interrupt, have deferred work run again, report a broken
//! device. Which transport a device has is [`Irq`].

pub(crate) mod mmio;
pub(crate) mod poll;
pub(crate) mod vhost;

/// A device's transport, as the data path signals it.
pub(crate) enum Irq {
    Mmio(mmio::MmioIrq),
    Vhost(vhost::VhostIrq),
}

impl Irq {
    /// The virtio-mmio side, for the register accesses and resampling.
    pub(crate) fn mmio(&self) -> Option<&mmio::MmioIrq> {
        match self {
            Self::Mmio(m) => Some(m),
            Self::Vhost(_) => None,
        }
    }
}

impl Transport for Irq {
    fn used_buffers(&self, q: u16, inject: bool) {
        match self {
            Self::Mmio(m) => m.used_buffers(q, inject),
            Self::Vhost(v) => v.used_buffers(q, inject),
        }
    }

    fn kick(&self) {
        match self {
            Self::Mmio(m) => m.kick(),
            Self::Vhost(v) => v.kick(),
        }
    }

    fn needs_reset(&self) {
        match self {
            Self::Mmio(m) => m.needs_reset(),
            Self::Vhost(v) => v.needs_reset(),
        }
    }

    fn interrupts(&self) -> u64 {
        match self {
            Self::Mmio(m) => m.interrupts(),
            Self::Vhost(v) => v.interrupts(),
        }
    }

    fn resamples(&self) -> u64 {
        match self {
            Self::Mmio(m) => m.resamples(),
            Self::Vhost(v) => v.resamples(),
        }
    }

    fn merged(&self) -> u64 {
        match self {
            Self::Mmio(m) => m.merged(),
            Self::Vhost(v) => v.merged(),
        }
    }
}

/// The interrupt side of a transport, usable from any thread.
pub(crate) trait Transport: Send + Sync {
    /// Used buffers for the driver in queue `q` (0: receive, 1: transmit):
    /// raise the used-buffer interrupt, and with `inject` signal it now (not
    /// needed while the guest is in its handler).
    fn used_buffers(&self, q: u16, inject: bool);
    /// Have the device's deferred work run again on its own thread: on
    /// virtio-mmio by signalling the guest's interrupt (counted) with nothing
    /// new raised, so that its handler comes back; on vhost by queueing the
    /// device's work.
    fn kick(&self);
    /// The device found a queue malformed: the driver must reset it (the
    /// transport reports DEVICE_NEEDS_RESET at its next register access and
    /// raises the configuration interrupt).
    fn needs_reset(&self);
    /// Interrupts signalled so far.
    fn interrupts(&self) -> u64;
    /// Interrupts signalled again after an EOI (level-triggered lines).
    fn resamples(&self) -> u64;
    /// Used-buffer interrupts not signalled because one signalled earlier
    /// covers them (virtio-mmio: the guest has not read InterruptStatus
    /// since).
    fn merged(&self) -> u64 {
        0
    }
}
