// SPDX-License-Identifier: GPL-2.0

//! Registration of /dev/pvpass with `.owner` set in its file operations.
//!
//! The 7.2 `miscdevice` abstraction builds `file_operations` without
//! `.owner` (Rust-for-Linux issue 1182), so an open /dev/pvpass would not pin
//! the module and `rmmod` could unload code that open files still call. This
//! keeps the abstraction's vtable (the `MiscDevice` trait does open, release
//! and ioctl) and registers a copy of it with `.owner` set, as Rust binder
//! does for its own fops. With that, `rmmod pvpass` fails with EBUSY while a
//! file is open, and every attachment is gone before the module can go.

use core::marker::PhantomData;
use kernel::{
    bindings,
    error::to_result,
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions, //
    },
    prelude::*,
    types::Opaque, //
};

/// A registered misc device whose open files hold a module reference.
///
/// # Invariants
///
/// `inner` is a `struct miscdevice` registered with `misc_register`, whose
/// `fops` points at `fops`; it is deregistered exactly once, in `drop`.
/// `inner` is the first field and the struct is `repr(C)`, so a pointer to
/// `inner` is also a valid pointer to a `MiscDeviceRegistration<T>`
/// (`repr(transparent)` over `Opaque<miscdevice>`), which is what the
/// abstraction's `open` casts `file->private_data` to.
#[repr(C)]
#[pin_data(PinnedDrop)]
pub(crate) struct Registration<T> {
    #[pin]
    inner: Opaque<bindings::miscdevice>,
    #[pin]
    fops: Opaque<bindings::file_operations>,
    _t: PhantomData<T>,
}

// SAFETY: `misc_deregister` may be called on any thread.
unsafe impl<T> Send for Registration<T> {}
// SAFETY: `&Registration` gives no access to anything mutable.
unsafe impl<T> Sync for Registration<T> {}

impl<T: MiscDevice> Registration<T> {
    /// Register `/dev/<name>`; open files pin `module`.
    pub(crate) fn register(
        name: &'static CStr,
        module: &'static ThisModule,
    ) -> impl PinInit<Self, Error> {
        let init = move |slot: *mut Self| -> Result {
            let mut raw = MiscDeviceOptions { name }.into_raw::<T>();
            // SAFETY: `into_raw` sets `fops` to the abstraction's vtable, a
            // `'static` constant.
            let mut fops = unsafe { raw.fops.read() };
            fops.owner = module.as_ptr();
            // SAFETY: `slot` is valid for writes (`pin_init_from_closure`).
            let fops_slot = unsafe { &raw mut (*slot).fops }.cast::<bindings::file_operations>();
            // SAFETY: `fops_slot` points into `slot`, valid for writes;
            // `Opaque<T>` has the layout of `T`.
            unsafe { fops_slot.write(fops) };
            raw.fops = fops_slot;
            // SAFETY: As above, for the `inner` field.
            let misc = unsafe { &raw mut (*slot).inner }.cast::<bindings::miscdevice>();
            // SAFETY: `misc` points into `slot`, valid for writes.
            unsafe { misc.write(raw) };
            // SAFETY: `misc` is a fully initialised miscdevice in pinned
            // memory that stays put until `drop` deregisters it; its `fops`
            // lives in the same allocation.
            to_result(unsafe { bindings::misc_register(misc) })
        };
        // SAFETY: On `Ok`, both fields were written and `_t` is a ZST, so the
        // slot holds a valid `Self`, registered per the invariants. On `Err`
        // nothing was registered and the fields need no drop.
        unsafe { pin_init::pin_init_from_closure(init) }
    }
}

#[pinned_drop]
impl<T> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Registered per the type invariants, deregistered only here.
        unsafe { bindings::misc_deregister(self.inner.get()) };
    }
}
