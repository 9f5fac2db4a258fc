// SPDX-License-Identifier: GPL-2.0

//! Transmit polling: how a device that left the guest's transmit
//! notifications off comes back to its own thread to look at the ring
//! again (`net::tx` decides when; glue/poll.c does the mechanics).
//!
//! - virtio-mmio: a timer on the vCPU's CPU queues task work on the vCPU
//!   thread that armed it, which KVM runs on that thread just before it
//!   re-enters the guest (process context, no lock held): the poll runs
//!   there as an MMIO op would (`pvpass_rs_poll_run`). A halted vCPU runs no
//!   task work: if the work has not run by the next expiry, the guest is
//!   interrupted instead, and its handler's InterruptStatus read polls.
//! - vhost: the timer queues the device's work (`transport::vhost`).
//!
//! The same C object has one more timer a queue for notification
//! coalescing (`net::coal`): `coal_arm` from any thread, and at expiry
//! `pvpass_rs_coal_due(ctx, q)` in hard interrupt context. Stopping the
//! poll stops them too.

use core::{
    ffi::c_void,
    ptr::NonNull, //
};
use kernel::{
    error::from_err_ptr,
    prelude::*, //
};

use crate::{
    glue,
    kvm::PollTarget, //
};

/// A device's transmit poll timer. One reference on the C object; dropping
/// it stops the poll first.
pub(crate) struct TxPoll(NonNull<glue::Poll>);

// SAFETY: The C object is refcounted and its calls take their own locks;
// `arm` and `cancel` may be called from any thread.
unsafe impl Send for TxPoll {}
// SAFETY: As above.
unsafe impl Sync for TxPoll {}

impl TxPoll {
    /// A stopped timer whose expiries call `pvpass_rs_poll_run(ctx, ..)`,
    /// `pvpass_rs_poll_due(ctx)` or `pvpass_rs_coal_due(ctx, ..)`.
    ///
    /// # Safety
    ///
    /// `ctx` must stay valid for those until [`TxPoll::stop`] has
    /// returned (or the `TxPoll` is dropped).
    pub(crate) unsafe fn new(ctx: *const c_void) -> Result<Self> {
        // SAFETY: No preconditions beyond the caller's on `ctx`.
        let p = from_err_ptr(unsafe { glue::pvpass_poll_create(ctx.cast_mut()) })?;
        NonNull::new(p).map(Self).ok_or(ENOMEM)
    }

    /// Poll in `ns` nanoseconds: on the thread of `target` (virtio-mmio), or
    /// through the transport's work (`None`). Refused once stopped.
    ///
    /// The caller is on the device's own thread; with a target, that is its
    /// vCPU thread inside the op that `target` came from.
    pub(crate) fn arm(&self, target: Option<PollTarget>, ns: u64) {
        let (mmio, vcpu) = target
            .map_or((core::ptr::null_mut(), core::ptr::null_mut()), |(m, v)| {
                (m.as_ptr(), v.as_ptr())
            });
        // SAFETY: We hold a reference on the poll; `mmio` and `vcpu` are
        // null or those of the op we are in (the caller's contract), which
        // the glue only uses inside KVM_RUN of that vCPU, and the window is
        // unregistered only after `stop` (`control::attachment::Live`).
        unsafe { glue::pvpass_poll_arm(self.0.as_ptr(), mmio, vcpu, ns) };
    }

    /// No poll is owed any more. Any context.
    pub(crate) fn cancel(&self) {
        // SAFETY: We hold a reference on the poll.
        unsafe { glue::pvpass_poll_cancel(self.0.as_ptr()) };
    }

    /// Call `pvpass_rs_coal_due(ctx, q)` in `ns` nanoseconds (an armed
    /// coalescing timer of `q` is moved). Any context; refused once stopped.
    pub(crate) fn coal_arm(&self, q: u16, ns: u64) {
        // SAFETY: We hold a reference on the poll; the glue ignores a `q`
        // without a timer.
        unsafe { glue::pvpass_poll_coal_arm(self.0.as_ptr(), u32::from(q), ns) };
    }

    /// Nothing is held back on queue `q` any more. Any context, never waits
    /// (a callback already running still comes, and finds nothing).
    pub(crate) fn coal_cancel(&self, q: u16) {
        // SAFETY: We hold a reference on the poll.
        unsafe { glue::pvpass_poll_coal_cancel(self.0.as_ptr(), u32::from(q)) };
    }

    /// No expiry or run reaches `ctx` after this returns, and `arm` is
    /// refused from now on. Process context, with none of the device's
    /// locks held (a run takes them).
    pub(crate) fn stop(&self) {
        // SAFETY: We hold a reference on the poll.
        unsafe { glue::pvpass_poll_stop(self.0.as_ptr()) };
    }

    /// Module unload: wait until every poll's last reference is gone (a
    /// queued task work cannot be cancelled).
    pub(crate) fn wait_all() {
        // SAFETY: No preconditions.
        unsafe { glue::pvpass_poll_wait_all() };
    }
}

impl Drop for TxPoll {
    fn drop(&mut self) {
        self.stop();
        // SAFETY: Drops the reference taken in `new`, once.
        unsafe { glue::pvpass_poll_put(self.0.as_ptr()) };
    }
}
