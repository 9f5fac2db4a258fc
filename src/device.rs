// SPDX-License-Identifier: GPL-2.0

//! One attached device: the virtio-mmio register file a guest sees, and the
//! entry points the C glue calls for every guest access to the window.
//!
//! Lock order: `Device::regs` is a leaf lock. It is taken on the vCPU thread
//! inside KVM_RUN with `kvm->srcu` read-held; nothing that waits for srcu
//! (unregistering the window) may run while it is held.

use core::ffi::{c_int, c_void};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Mutex,
    },
};

use crate::{
    kvm,
    pvcore::mmio::{feature, MmioDevice},
    uapi,
};

/// Features offered until the data path exists: a MAC and a link status.
const DEVICE_FEATURES: u64 = feature::NET_F_MAC | feature::NET_F_STATUS;

/// A virtio-net device attached to one VM.
#[pin_data]
pub(crate) struct Device {
    pub(crate) id: u32,
    pub(crate) gpa: u64,
    #[pin]
    regs: Mutex<MmioDevice>,
    mmio_reads: Atomic<u64>,
    mmio_writes: Atomic<u64>,
    mmio_bad: Atomic<u64>,
}

impl Device {
    pub(crate) fn new(id: u32, gpa: u64, mac: [u8; 6]) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                id,
                gpa,
                regs <- new_mutex!(MmioDevice::new(DEVICE_FEATURES, mac)),
                mmio_reads: Atomic::new(0),
                mmio_writes: Atomic::new(0),
                mmio_bad: Atomic::new(0),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn stats(&self) -> uapi::Stats {
        uapi::Stats {
            id: self.id,
            mmio_reads: self.mmio_reads.load(Relaxed),
            mmio_writes: self.mmio_writes.load(Relaxed),
            mmio_bad: self.mmio_bad.load(Relaxed),
            ..Default::default()
        }
    }

    fn bad_access(&self, offset: u64, len: usize, write: bool) {
        self.mmio_bad.add(1, Relaxed);
        if kvm::ratelimit() {
            pr_warn!(
                "device {}: guest {} of {} bytes at window offset {:#x} ignored\n",
                self.id,
                if write { "write" } else { "read" },
                len,
                offset
            );
        }
    }

    fn mmio_read(&self, offset: u64, data: &mut [u8]) {
        self.mmio_reads.add(1, Relaxed);
        if self.regs.lock().read(offset, data).is_err() {
            self.bad_access(offset, data.len(), false);
        }
    }

    fn mmio_write(&self, offset: u64, data: &[u8]) {
        self.mmio_writes.add(1, Relaxed);
        // The events (notify, reset, DRIVER_OK) drive the data path, which
        // this version does not have yet: the register state is all there is.
        if self.regs.lock().write(offset, data).is_err() {
            self.bad_access(offset, data.len(), true);
        }
    }
}

/// Called by glue.c for a guest read of `len` bytes at `offset` in the window.
///
/// # Safety
///
/// `ctx` is the `Device` the window was registered with (see
/// `kvm::MmioWindow::register`), and `val` points to `len` writable bytes;
/// the glue guarantees `1 <= len <= 8` and `offset + len <= WINDOW_SIZE`.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_mmio_read(
    ctx: *const c_void,
    offset: u64,
    len: c_int,
    val: *mut c_void,
) -> c_int {
    // SAFETY: Per the function's contract, `ctx` is a live `Device`.
    let dev = unsafe { &*ctx.cast::<Device>() };
    let len = usize::try_from(len).unwrap_or(0);
    // SAFETY: Per the function's contract, `val` points to `len` writable bytes
    // that nothing else accesses during this call.
    let data = unsafe { core::slice::from_raw_parts_mut(val.cast::<u8>(), len) };
    dev.mmio_read(offset, data);
    0
}

/// Called by glue.c for a guest write of `len` bytes at `offset` in the window.
///
/// # Safety
///
/// As for [`pvpass_rs_mmio_read`], with `val` pointing to `len` readable bytes.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_mmio_write(
    ctx: *const c_void,
    offset: u64,
    len: c_int,
    val: *const c_void,
) -> c_int {
    // SAFETY: Per the function's contract, `ctx` is a live `Device`.
    let dev = unsafe { &*ctx.cast::<Device>() };
    let len = usize::try_from(len).unwrap_or(0);
    // SAFETY: Per the function's contract, `val` points to `len` readable bytes.
    let data = unsafe { core::slice::from_raw_parts(val.cast::<u8>(), len) };
    dev.mmio_write(offset, data);
    0
}
