// SPDX-License-Identifier: GPL-2.0

//! Safe handles over the C glue (glue.c) for the KVM calls pvpass makes.
//!
//! KVM's structures are not in the kernel crate's bindings, so Rust only ever
//! holds opaque pointers: the VM's `struct file` (whose reference keeps the VM
//! and its vendor module alive) and the glue's `struct pvpass_mmio`.

use core::{ffi::c_void, ptr::NonNull};
use kernel::{
    error::from_err_ptr,
    fs::{File, LocalFile},
    prelude::*,
    sync::aref::ARef,
};

// Declared in glue.h. `struct file` is passed as `void *`: it is opaque here,
// and bindgen's `file` type is not FFI-safe by rustc's lint.
extern "C" {
    fn pvpass_file_is_vm(file: *mut c_void) -> bool;
    fn pvpass_mmio_register(vm_file: *mut c_void, gpa: u64, ctx: *mut c_void) -> *mut c_void;
    fn pvpass_mmio_unregister(mmio: *mut c_void);
    fn pvpass_ratelimit() -> bool;
}

/// True if a warning may be printed now. One budget for every message that a
/// guest or a user can trigger, so none of them can flood the log.
pub(crate) fn ratelimit() -> bool {
    // SAFETY: No preconditions: the glue only updates its own static state.
    unsafe { pvpass_ratelimit() }
}

/// A reference to a KVM VM's file, checked to be one.
///
/// Holding the file (not just a `kvm_get_kvm` reference) keeps both the VM
/// and the KVM vendor module loaded, and keeps the VM's irqfds alive.
pub(crate) struct VmFile(ARef<File>);

impl VmFile {
    /// Look up `fd` in the calling process and check that it is a KVM VM.
    /// `EBADF` if `fd` is not open, `EINVAL` if it is not a VM.
    pub(crate) fn from_fd(fd: i32) -> Result<Self> {
        let fd = u32::try_from(fd).map_err(|_| EBADF)?;
        let local = LocalFile::fget(fd)?;
        // SAFETY: Called from an ioctl on another file, which never holds an
        // `fdget_pos` region on this thread.
        let file = unsafe { LocalFile::assume_no_fdget_pos(local) };
        // SAFETY: `file` is a valid file: we hold a reference on it.
        if !unsafe { pvpass_file_is_vm(file.as_ptr().cast()) } {
            return Err(EINVAL);
        }
        Ok(Self(file))
    }

    /// An identity of the VM, stable while the file is held: its VM file.
    /// (`dup` and `pidfd_getfd` share the file, and KVM creates one per VM.)
    pub(crate) fn key(&self) -> usize {
        self.0.as_ptr() as usize
    }
}

/// The device's window, registered on a VM's MMIO bus. Dropping it takes the
/// window off the bus and waits until no MMIO callback for it is running.
pub(crate) struct MmioWindow {
    raw: NonNull<c_void>,
}

// SAFETY: The handle is only passed to `pvpass_mmio_unregister`, which may be
// called from any thread.
unsafe impl Send for MmioWindow {}
// SAFETY: `&MmioWindow` allows nothing at all.
unsafe impl Sync for MmioWindow {}

impl MmioWindow {
    /// Register `[gpa, gpa + WINDOW_SIZE)` on the MMIO bus of `vm`.
    ///
    /// `EEXIST` if the window overlaps guest RAM, `ENOSPC` if the bus is full.
    ///
    /// # Safety
    ///
    /// `ctx` must point to a `device::Device` that stays valid until the
    /// returned `MmioWindow` has been dropped, and `vm` must outlive it too:
    /// the glue calls `device::pvpass_rs_mmio_{read,write}` with `ctx` until
    /// then.
    pub(crate) unsafe fn register(vm: &VmFile, gpa: u64, ctx: *const c_void) -> Result<Self> {
        // SAFETY: `vm` holds a reference on a file that is a KVM VM (checked
        // in `VmFile::from_fd`); the caller keeps `ctx` valid as required.
        let raw = from_err_ptr(unsafe { pvpass_mmio_register(vm.0.as_ptr().cast(), gpa, ctx.cast_mut()) })?;
        Ok(Self {
            raw: NonNull::new(raw).ok_or(ENOMEM)?,
        })
    }
}

impl Drop for MmioWindow {
    fn drop(&mut self) {
        // SAFETY: `raw` came from a successful `pvpass_mmio_register` and is
        // unregistered exactly once, here. We are not inside an MMIO callback
        // (those never drop attachments), so waiting for kvm->srcu is fine.
        unsafe { pvpass_mmio_unregister(self.raw.as_ptr()) };
    }
}
