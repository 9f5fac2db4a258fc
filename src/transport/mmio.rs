// SPDX-License-Identifier: GPL-2.0

//! The virtio-mmio transport: the register file (`pvcore::virtio_mmio`) a
//! guest's stock driver reaches in the device's window, served on its vCPU
//! thread, and the interrupt line behind it (an irqfd on the device's GSI).
//!
//! What it decides for the data path:
//! - when deferred work runs: a read of InterruptStatus is the guest's
//!   interrupt handler, which is when transmit work the last exit left and
//!   frames waiting in the backlog are served (`MmioOps::handler`);
//! - how interrupts from other threads reach the registers: a sender raises
//!   the interrupt bit in `pending_isr` (or `failed` for a broken queue),
//!   which the vCPU thread folds into the registers at its next access,
//!   always after the guest's write took effect (an InterruptACK clears only
//!   the bits the guest read; a reset starts from nothing);
//! - resampling: after an EOI of a level-triggered GSI, the line is raised
//!   again while InterruptStatus is not zero;
//! - one signal per handler run: one line serves every queue, and the
//!   guest's handler reads InterruptStatus before it looks at any ring, so a
//!   used-buffer interrupt signalled since the guest's last register access
//!   covers what completes after it (`signalled`). The next one is signalled
//!   only after that access, or `MERGE_MS` after the first (KVM drops an
//!   edge that comes while the guest has the IOAPIC pin masked: a lost
//!   signal then holds the next frames up for that long at most, where
//!   before the next frame's signal came at once). An edge-triggered IOAPIC
//!   would merge the two signals anyway (or, if the first is already in
//!   service, deliver one more that finds nothing new), but each costs the
//!   host an irqfd wake-up (an injection from a work item for an IOAPIC
//!   route); a level-triggered line stays asserted until the EOI, which
//!   `resample` re-raises.

use kernel::{
    sync::atomic::{
        Acquire,
        Atomic,
        Full,
        Relaxed, //
    },
    time::msecs_to_jiffies, //
};

use super::Transport;
use crate::{
    kvm::{
        self,
        IrqFd, //
    },
    pvcore::{
        virtio_mmio::{
            feature,
            reg,
            MmioDevice,
            MmioEvent,
            NUM_QUEUES, //
        },
        virtq::QueueConfig, //
    }, //
};

/// How long a signalled used-buffer interrupt covers later ones while the
/// guest has made no register access (see the module documentation).
const MERGE_MS: u32 = 5;

/// What the device behind the registers does, on the vCPU thread, with the
/// device's state (and so the registers) locked.
pub(crate) trait MmioOps {
    /// The driver notified queue `q`.
    fn notify(&mut self, q: u16);
    /// The guest's interrupt handler reads InterruptStatus: serve deferred
    /// work first, so that what it delivers is seen in this read.
    fn handler(&mut self);
    /// DRIVER_OK: start the queues the driver made ready, with the
    /// negotiated features (`None`: not ready).
    fn start(&mut self, features: u64, queues: [Option<QueueConfig>; NUM_QUEUES]);
    /// The driver took queue `q` back (QueueReady 0 on a live device).
    fn stop(&mut self, q: u16);
    /// Device reset.
    fn reset(&mut self);
    /// A queue was found malformed on another thread: stop the queues this
    /// thread runs (the registers say DEVICE_NEEDS_RESET).
    fn failed(&mut self);
}

/// The interrupt line of a virtio-mmio device, and what other threads raise
/// for its registers.
pub(crate) struct MmioIrq {
    irq: Option<IrqFd>,
    /// The used-buffer interrupt bit (1) when raised by another thread,
    /// folded into the registers at the next register access (only ever
    /// 0 or 1: a broken queue goes through `failed`).
    pending_isr: Atomic<u32>,
    /// When a used-buffer interrupt was signalled since the guest's last
    /// register access (jiffies with bit 0 set; 0: none): the handler it runs
    /// is still to read InterruptStatus, so later used buffers need no signal
    /// of their own (for `MERGE_MS`). Cleared by `fold` before it takes
    /// `pending_isr`, and read after `pending_isr` is set by `used_buffers`
    /// (with full ordering): a sender that finds it set has raised its bit
    /// before the fold that clears it, which the guest's next InterruptStatus
    /// read returns.
    signalled: Atomic<u64>,
    /// Set by a thread that found a queue malformed: the device needs a
    /// reset (folded in like `pending_isr`).
    failed: Atomic<u32>,
    interrupts: Atomic<u64>,
    resamples: Atomic<u64>,
    merged: Atomic<u64>,
}

impl MmioIrq {
    pub(crate) fn new(irq: Option<IrqFd>) -> Self {
        Self {
            irq,
            pending_isr: Atomic::new(0),
            signalled: Atomic::new(0),
            failed: Atomic::new(0),
            interrupts: Atomic::new(0),
            resamples: Atomic::new(0),
            merged: Atomic::new(0),
        }
    }

    pub(crate) fn irqfd(&self) -> Option<&IrqFd> {
        self.irq.as_ref()
    }

    /// The interrupt bit raised but not yet folded (debugfs).
    pub(crate) fn pending(&self) -> u32 {
        self.pending_isr.load(Relaxed)
    }

    /// A guest read at `offset` into `data`. Err for a bad offset or size
    /// (read as zeros).
    pub(crate) fn read(
        &self,
        regs: &mut MmioDevice,
        ops: &mut impl MmioOps,
        offset: u64,
        data: &mut [u8],
    ) -> Result<(), ()> {
        if offset == reg::INTERRUPT_STATUS {
            ops.handler();
        }
        self.fold(regs, ops);
        regs.read(offset, data).map_err(|_| ())
    }

    /// A guest write of `data` at `offset`. Err for a bad offset or size
    /// (ignored).
    pub(crate) fn write(
        &self,
        regs: &mut MmioDevice,
        ops: &mut impl MmioOps,
        offset: u64,
        data: &[u8],
    ) -> Result<(), ()> {
        let r = match regs.write(offset, data) {
            Err(_) => Err(()),
            Ok(MmioEvent::Notify(q)) => {
                ops.notify(q);
                Ok(())
            }
            Ok(MmioEvent::DriverOk) => {
                let f = regs.driver_features();
                let queue = |n: u16| {
                    regs.queue(n)
                        .copied()
                        .filter(|r| r.ready)
                        .map(|r| QueueConfig {
                            size: u16::try_from(r.num).unwrap_or(0),
                            desc: r.desc,
                            avail: r.driver,
                            used: r.device,
                            event_idx: f & feature::RING_EVENT_IDX != 0,
                            indirect: false,
                        })
                };
                let queues = [queue(0), queue(1), queue(2)];
                ops.start(f, queues);
                Ok(())
            }
            Ok(MmioEvent::QueueStopped(q)) => {
                ops.stop(q);
                Ok(())
            }
            // A driver error the registers refused (a bad queue size,
            // DRIVER_OK without FEATURES_OK): they say DEVICE_NEEDS_RESET;
            // tell the driver through its config interrupt.
            Ok(MmioEvent::NeedsReset) => {
                self.kick();
                Ok(())
            }
            Ok(MmioEvent::Reset) => {
                ops.reset();
                self.signalled.xchg(0, Full);
                self.pending_isr.xchg(0, Relaxed);
                self.failed.xchg(0, Relaxed);
                Ok(())
            }
            Ok(_) => Ok(()),
        };
        self.fold(regs, ops);
        r
    }

    /// Fold what other threads raised into the registers.
    fn fold(&self, regs: &mut MmioDevice, ops: &mut impl MmioOps) {
        if self.failed.xchg(0, Relaxed) != 0 {
            ops.failed();
            regs.set_needs_reset();
        }
        // The guest is in its register access: a sender signals again from
        // here on (see `signalled`).
        self.signalled.xchg(0, Full);
        let bits = self.pending_isr.xchg(0, Full);
        if bits != 0 {
            regs.raise_interrupt(bits);
        }
    }

    /// After an EOI of a level-triggered GSI: raise the line again if the
    /// guest has not acknowledged every interrupt bit (one that came while
    /// its handler ran, after it read InterruptStatus). `regs`: `None` if
    /// the registers are busy (the vCPU thread is in a register access, or
    /// stuck in its own VMM's page fault): the line is raised anyway (at
    /// worst a spurious interrupt), never waited for.
    pub(crate) fn resample(&self, regs: Option<&MmioDevice>) {
        let pending = self.pending_isr.load(Relaxed) != 0
            || self.failed.load(Relaxed) != 0
            || regs.is_none_or(|r| r.interrupt_status() != 0);
        if pending {
            self.resamples.add(1, Relaxed);
            self.kick();
        }
    }

    /// Signal the irqfd without counting it (the configuration interrupt of
    /// a broken device).
    fn signal(&self) {
        if let Some(irq) = &self.irq {
            irq.signal();
        }
    }
}

impl Transport for MmioIrq {
    // One interrupt line for all queues.
    fn used_buffers(&self, _q: u16, inject: bool) {
        self.pending_isr.xchg(1, Full);
        if !inject {
            return;
        }
        // One signalled since the guest's last access covers this one.
        let now = kvm::jiffies() | 1;
        let at = self.signalled.load(Acquire);
        if at != 0 && now.wrapping_sub(at) <= msecs_to_jiffies(MERGE_MS) as u64 {
            self.merged.add(1, Relaxed);
        } else {
            self.signalled.xchg(now, Full);
            self.kick();
        }
    }

    fn kick(&self) {
        if let Some(irq) = &self.irq {
            self.interrupts.add(1, Relaxed);
            irq.signal();
        }
    }

    fn needs_reset(&self) {
        // `fold` marks the device broken, which raises the config interrupt.
        self.failed.xchg(1, Relaxed);
        self.signal();
    }

    fn interrupts(&self) -> u64 {
        self.interrupts.load(Relaxed)
    }

    fn resamples(&self) -> u64 {
        self.resamples.load(Relaxed)
    }

    fn merged(&self) -> u64 {
        self.merged.load(Relaxed)
    }
}
