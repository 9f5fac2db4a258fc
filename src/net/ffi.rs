// SPDX-License-Identifier: GPL-2.0

//! The entry points glue/kvm.c calls for a device: guest accesses to its
//! window (handed to its transport), the resample watch's EOI and the mmu
//! notifier.

use core::ffi::{
    c_int,
    c_void, //
};
use core::ptr::NonNull;
use kernel::sync::atomic::{
    Full,
    Relaxed, //
};

use super::{
    device::{
        Device,
        Locked,
        OnVcpu, //
    },
    stats::C, //
};
use crate::{
    glue,
    kvm::InVcpu,
    transport::{
        Irq,
        Transport, //
    }, //
};

impl Device {
    fn mmio_read(&self, cpu: &InVcpu, offset: u64, data: &mut [u8]) {
        self.counters.inc(C::MmioReads);
        let Some(mmio) = self.transport.mmio() else {
            return;
        };
        let mut locked = self.state.lock();
        let Locked { regs, st } = &mut *locked;
        let Some(regs) = regs.as_mut() else { return };
        let mut ops = OnVcpu { dev: self, cpu, st };
        if mmio.read(regs, &mut ops, offset, data).is_err() {
            drop(locked);
            self.bad_access(offset, data.len(), false);
        }
    }

    fn mmio_write(&self, cpu: &InVcpu, offset: u64, data: &[u8]) {
        self.counters.inc(C::MmioWrites);
        let Some(mmio) = self.transport.mmio() else {
            return;
        };
        let mut locked = self.state.lock();
        let Locked { regs, st } = &mut *locked;
        let Some(regs) = regs.as_mut() else { return };
        let mut ops = OnVcpu { dev: self, cpu, st };
        if mmio.write(regs, &mut ops, offset, data).is_err() {
            drop(locked);
            self.bad_access(offset, data.len(), true);
        }
    }
}

impl Device {
    /// The poll timer's task work, on the vCPU thread that armed it, inside
    /// KVM_RUN of its vCPU: poll the transmit ring as an exit of this
    /// device would, and deliver what waits in the backlog.
    fn poll_run(&self, cpu: &InVcpu) {
        self.counters.inc(C::TxPolls);
        let mut locked = self.state.lock();
        let st = &mut locked.st;
        if self.refresh(cpu, st) {
            if st.tx_deferred || st.tx_more {
                st.tx_timer = true;
                self.process_tx(cpu, st, false);
            }
            self.drain_rx(cpu, st, true);
        }
    }

    /// A poll is owed and cannot run from the timer's task work (any
    /// context, hard interrupt included): virtio-mmio interrupts the guest
    /// (the used-buffer bit: its handler's InterruptStatus read polls, and
    /// finds the chains it completes), vhost queues the device's work.
    fn poll_due(&self) {
        self.poll_irq.store(1, Relaxed);
        match &self.transport {
            Irq::Mmio(m) => {
                self.counters.inc(C::TxPollIrqs);
                m.used_buffers(1, true);
            }
            Irq::Vhost(v) => v.kick(),
        }
    }
}

/// The device and the in-vCPU token of one MMIO op (`None` for null
/// handles, which the glue never passes).
///
/// # Safety
///
/// As for [`pvpass_rs_mmio_read`]; the returned references live no longer
/// than the op.
unsafe fn in_op<'a>(
    ctx: *const c_void,
    mmio: *mut glue::Mmio,
    vcpu: *mut glue::Vcpu,
) -> Option<(&'a Device, InVcpu)> {
    // SAFETY: Per the function's contract, `ctx` is a live `Device`.
    let dev = unsafe { &*ctx.cast::<Device>() };
    let (mmio, vcpu) = (NonNull::new(mmio)?, NonNull::new(vcpu)?);
    // SAFETY: We are in the MMIO op of `mmio` on `vcpu`, and the caller
    // drops the token before the op returns.
    Some((dev, unsafe { InVcpu::new(mmio, vcpu) }))
}

/// Called by glue/kvm.c for a guest read of `len` bytes at `offset` in the window.
///
/// # Safety
///
/// Called only from the glue's MMIO read op for window `mmio`, on `vcpu`. `ctx` is the
/// `Device` the window was registered with (see `kvm::MmioWindow::register`),
/// and `val` points to `len` writable bytes; the glue guarantees
/// `1 <= len <= 8` and `offset + len <= WINDOW_SIZE`.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_mmio_read(
    ctx: *const c_void,
    mmio: *mut glue::Mmio,
    vcpu: *mut glue::Vcpu,
    offset: u64,
    len: c_int,
    val: *mut c_void,
) -> c_int {
    // SAFETY: Per the function's contract.
    let Some((dev, cpu)) = (unsafe { in_op(ctx, mmio, vcpu) }) else {
        return 0;
    };
    let len = usize::try_from(len).unwrap_or(0);
    // SAFETY: Per the function's contract, `val` points to `len` writable bytes
    // that nothing else accesses during this call.
    let data = unsafe { core::slice::from_raw_parts_mut(val.cast::<u8>(), len) };
    dev.mmio_read(&cpu, offset, data);
    0
}

/// Called by glue/kvm.c for a guest write of `len` bytes at `offset` in the window.
///
/// # Safety
///
/// As for [`pvpass_rs_mmio_read`], with `val` pointing to `len` readable bytes.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_mmio_write(
    ctx: *const c_void,
    mmio: *mut glue::Mmio,
    vcpu: *mut glue::Vcpu,
    offset: u64,
    len: c_int,
    val: *const c_void,
) -> c_int {
    // SAFETY: Per the function's contract.
    let Some((dev, cpu)) = (unsafe { in_op(ctx, mmio, vcpu) }) else {
        return 0;
    };
    let len = usize::try_from(len).unwrap_or(0);
    // SAFETY: Per the function's contract, `val` points to `len` readable bytes.
    let data = unsafe { core::slice::from_raw_parts(val.cast::<u8>(), len) };
    dev.mmio_write(&cpu, offset, data);
    0
}

/// Called by glue/poll.c: a transmit poll, from task work on the vCPU thread
/// that armed it, inside KVM_RUN of `vcpu`, with `kvm->srcu` read-held.
///
/// # Safety
///
/// `ctx` is the `Device` the poll was created with (see
/// `transport::poll::TxPoll::new`), and `mmio` and `vcpu` are those of the
/// MMIO op that armed it; the glue calls this only on that vCPU's thread
/// with it loaded, and the window is still registered (the device stops
/// its poll first).
#[no_mangle]
unsafe extern "C" fn pvpass_rs_poll_run(
    ctx: *const c_void,
    mmio: *mut glue::Mmio,
    vcpu: *mut glue::Vcpu,
) {
    // SAFETY: Per the function's contract: the same guarantees as an MMIO
    // op of the window on that vCPU.
    let Some((dev, cpu)) = (unsafe { in_op(ctx, mmio, vcpu) }) else {
        return;
    };
    dev.poll_run(&cpu);
}

/// Called by glue/poll.c when a poll is owed and cannot run as task work (a
/// halted vCPU, the vhost transport). Any context.
///
/// # Safety
///
/// `ctx` is the `Device` the poll was created with, valid until the poll is
/// stopped.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_poll_due(ctx: *const c_void) {
    // SAFETY: Per the function's contract, `ctx` is a live `Device`.
    let dev = unsafe { &*ctx.cast::<Device>() };
    dev.poll_due();
}

/// Called by glue/poll.c when the notification coalescing timer of queue
/// `q` expires (hard interrupt context): raise what is held back.
///
/// # Safety
///
/// `ctx` is the `Device` the poll was created with, valid until the poll is
/// stopped (which cancels this timer and waits for its callback).
#[no_mangle]
unsafe extern "C" fn pvpass_rs_coal_due(ctx: *const c_void, q: u32) {
    // SAFETY: Per the function's contract, `ctx` is a live `Device`.
    let dev = unsafe { &*ctx.cast::<Device>() };
    if let Ok(q) = u16::try_from(q) {
        dev.coal_due(q);
    }
}

/// The guest ended an interrupt of a level-triggered GSI (the glue's resample
/// watch, process context): KVM has de-asserted the line; assert it again
/// while InterruptStatus is not zero.
///
/// # Safety
///
/// `ctx` is the `Device` the watch was registered with (see
/// `kvm::ResampleWatch::register`), valid until the watch is dropped.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_resample(ctx: *const c_void) {
    // SAFETY: Per the function's contract, `ctx` is a live `Device`.
    let dev = unsafe { &*ctx.cast::<Device>() };
    // Never waits for the vCPU thread (see `MmioIrq::resample`).
    let Some(mmio) = dev.transport.mmio() else {
        return;
    };
    let locked = dev.state.try_lock();
    mmio.resample(locked.as_ref().and_then(|l| l.regs.as_ref()));
}

/// Called by glue/kvm.c's mmu notifier when the VMM changed what backs guest
/// memory (or exited): pins and map are stale.
///
/// # Safety
///
/// `ctx` is the `Device` the watch was registered with (see
/// `kvm::MmWatch::register`), valid until the watch is dropped.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_mm_changed(ctx: *const c_void) {
    // SAFETY: Per the function's contract, `ctx` is a live `Device`.
    let dev = unsafe { &*ctx.cast::<Device>() };
    dev.mm_seq.fetch_add(1, Full);
}
