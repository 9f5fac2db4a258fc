// SPDX-License-Identifier: GPL-2.0

//! The vhost transport's signals: the call eventfd of each queue (QEMU binds
//! it to the queue's MSI-X vector as a KVM irqfd, so signalling it injects
//! the interrupt at once: no status read, no ACK), the error eventfd, and
//! the device's work, which kicks start (see glue/vhost.c for where it
//! runs). The vhost-net ioctls that set them up are `control::vhost`.
//!
//! Safe handles over glue/vhost.c: `VWork` (the work, refcounted in C),
//! `KickWatch` (a wait-queue entry on a kick eventfd) and `EventFd` (a
//! reference on an eventfd context to signal).

use core::ptr::NonNull;
use kernel::{
    error::from_err_ptr,
    new_spinlock,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        SpinLock, //
    }, //
};

use super::Transport;
use crate::glue;

/// A reference on an eventfd context, to signal from any thread.
pub(crate) struct EventFd(NonNull<glue::EventfdCtx>);

// SAFETY: `eventfd_signal` and `eventfd_ctx_put` may be called from any thread.
unsafe impl Send for EventFd {}
// SAFETY: Signalling through `&EventFd` is safe from several threads at once.
unsafe impl Sync for EventFd {}

impl EventFd {
    /// The eventfd `fd` of the calling process. `EBADF` if not open,
    /// `EINVAL` if not an eventfd.
    pub(crate) fn from_fd(fd: i32) -> Result<Self> {
        // SAFETY: `fd` is only looked up in the caller's fd table.
        let ctx = from_err_ptr(unsafe { glue::pvpass_eventfd_get(fd) })?;
        NonNull::new(ctx).map(Self).ok_or(EINVAL)
    }

    pub(crate) fn signal(&self) {
        // SAFETY: We hold a reference on the context. (`pvpass_irqfd_signal`
        // is a plain `eventfd_signal`.)
        unsafe { glue::pvpass_irqfd_signal(self.0.as_ptr()) };
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: Drops the reference taken in `from_fd`, once.
        unsafe { glue::pvpass_irqfd_put(self.0.as_ptr()) };
    }
}

/// The work kicks start: `pvpass_rs_vhost_run(ctx)` in the VMM's address
/// space (see glue/vhost.c). One reference on the C object.
pub(crate) struct VWork(NonNull<glue::VWork>);

// SAFETY: The C object is refcounted and its calls take their own locks;
// `pvpass_vwork_queue` may be called from any context.
unsafe impl Send for VWork {}
// SAFETY: As above.
unsafe impl Sync for VWork {}

impl VWork {
    /// Work in the calling process's address space (`EINVAL` for a kernel
    /// thread) that calls `pvpass_rs_vhost_run(ctx)`.
    ///
    /// # Safety
    ///
    /// `ctx` must stay valid for `pvpass_rs_vhost_run` until [`VWork::stop`]
    /// has returned.
    pub(crate) unsafe fn new(ctx: *const core::ffi::c_void) -> Result<Self> {
        // SAFETY: No preconditions beyond the caller's on `ctx`.
        let w = from_err_ptr(unsafe { glue::pvpass_vwork_create(ctx.cast_mut()) })?;
        NonNull::new(w).map(Self).ok_or(ENOMEM)
    }

    /// Run the work soon: on this thread before it goes back to its guest or
    /// user mode if `here` and it is one of the VMM's threads, else in a
    /// worker. Any context.
    pub(crate) fn queue(&self, here: bool) {
        // SAFETY: We hold a reference on the work.
        unsafe { glue::pvpass_vwork_queue(self.0.as_ptr(), here) };
    }

    /// No run reaches `ctx` after this returns (one running now is waited
    /// for). Process context, with none of the locks a run takes held.
    pub(crate) fn stop(&self) {
        // SAFETY: We hold a reference on the work.
        unsafe { glue::pvpass_vwork_stop(self.0.as_ptr()) };
    }

    /// Module unload: wait until every work's last reference is gone (task
    /// work cannot be cancelled; it runs soon, on a thread on its way back
    /// to its guest or to user mode).
    pub(crate) fn wait_all() {
        // SAFETY: No preconditions.
        unsafe { glue::pvpass_vwork_wait_all() };
    }
}

impl Drop for VWork {
    fn drop(&mut self) {
        // SAFETY: Drops the reference taken in `new`, once.
        unsafe { glue::pvpass_vwork_put(self.0.as_ptr()) };
    }
}

/// A kick eventfd watched: each signal queues `work`. Dropping it removes
/// the watch (no wake-up runs after that).
pub(crate) struct KickWatch(NonNull<glue::Kick>);

// SAFETY: Unwatching may be done from any thread in process context.
unsafe impl Send for KickWatch {}
// SAFETY: `&KickWatch` gives no access to anything.
unsafe impl Sync for KickWatch {}

impl KickWatch {
    /// Watch eventfd `fd` of the calling process. `EBADF`/`EINVAL` if it is
    /// not an open eventfd.
    ///
    /// # Safety
    ///
    /// `work` must outlive the watch.
    pub(crate) unsafe fn new(fd: i32, work: &VWork) -> Result<Self> {
        // SAFETY: `fd` is looked up in the caller's fd table; `work` outlives
        // the watch per the caller.
        let k = from_err_ptr(unsafe { glue::pvpass_kick_watch(fd, work.0.as_ptr()) })?;
        NonNull::new(k).map(Self).ok_or(ENOMEM)
    }
}

impl Drop for KickWatch {
    fn drop(&mut self) {
        // SAFETY: Created by `pvpass_kick_watch`, unwatched once.
        unsafe { glue::pvpass_kick_unwatch(self.0.as_ptr()) };
    }
}

/// What the vhost transport shares between the vhost file (which sets it
/// up) and the device (which signals through it).
#[pin_data]
pub(crate) struct Signals {
    /// The call eventfd of each queue (0: receive, 1: transmit).
    #[pin]
    calls: SpinLock<[Option<EventFd>; 2]>,
    /// Signalled when the device finds a queue malformed.
    #[pin]
    err: SpinLock<[Option<EventFd>; 2]>,
    work: VWork,
    interrupts: Atomic<u64>,
}

impl Signals {
    /// # Safety
    ///
    /// As for [`VWork::new`].
    pub(crate) unsafe fn new(ctx: *const core::ffi::c_void) -> Result<Arc<Self>> {
        // SAFETY: Per the function's contract.
        let work = unsafe { VWork::new(ctx) }?;
        Arc::pin_init(
            try_pin_init!(Self {
                calls <- new_spinlock!([None, None]),
                err <- new_spinlock!([None, None]),
                work,
                interrupts: Atomic::new(0),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn work(&self) -> &VWork {
        &self.work
    }

    /// VHOST_SET_VRING_CALL (`None`: -1, no interrupt).
    pub(crate) fn set_call(&self, q: usize, fd: Option<EventFd>) {
        let old = self
            .calls
            .lock()
            .get_mut(q)
            .map(|s| core::mem::replace(s, fd));
        // Dropped outside the spinlock.
        drop(old);
    }

    /// VHOST_SET_VRING_ERR (`None`: -1).
    pub(crate) fn set_err(&self, q: usize, fd: Option<EventFd>) {
        let old = self
            .err
            .lock()
            .get_mut(q)
            .map(|s| core::mem::replace(s, fd));
        drop(old);
    }
}

/// The device's side of the vhost transport.
pub(crate) struct VhostIrq(pub(crate) Arc<Signals>);

impl Transport for VhostIrq {
    fn used_buffers(&self, q: u16, _inject: bool) {
        let calls = self.0.calls.lock();
        if let Some(Some(call)) = calls.get(usize::from(q)) {
            self.0.interrupts.add(1, Relaxed);
            call.signal();
        }
    }

    fn kick(&self) {
        // Not here: a sender's thread is not the VMM's, and the device's own
        // thread asks for this when it must give its guest the CPU back.
        self.0.work.queue(false);
    }

    fn needs_reset(&self) {
        // The device stopped its queues; QEMU learns it from the error
        // eventfds (and the guest only from QEMU).
        let err = self.0.err.lock();
        for e in err.iter().flatten() {
            e.signal();
        }
    }

    fn interrupts(&self) -> u64 {
        self.0.interrupts.load(Relaxed)
    }

    fn resamples(&self) -> u64 {
        0
    }
}
