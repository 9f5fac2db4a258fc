// SPDX-License-Identifier: GPL-2.0

//! The C boundary: every function of glue.h, declared once, with a typed
//! opaque handle per kind of C object (an out-of-tree module cannot add
//! glue.h to the kernel crate's bindings). `make check` compares these
//! declarations with glue.h (scripts/check-glue.py): names, parameter and
//! return types, and the `pvpass_rs_*` functions C calls back.
//!
//! What is C, and why: `kvm.c` is what touches `struct kvm`, its memslots,
//! `kvm_io_device` and the mmu notifier on the VMM's mm (none of them are in
//! the bindings, and their helpers are static inlines or macros), plus the
//! ratelimit state (`DEFINE_RATELIMIT_STATE`), the page copies between pinned
//! guest pages (memory the guest writes concurrently, which the kernel
//! crate's page accessors require not to race), the reaper's self-arming
//! work item (the mmu notifier's release kicks it), and `current`'s tgid and
//! mm (the kernel crate's `task_struct` layout does not match C's in this
//! configuration, so its `Task::pid()` and `CurrentTask::mm()` read other
//! fields; see kvm.c). `hostport.c` is the
//! `net_device` (7.2 has no Rust net_device abstraction). `vhost.c` is the
//! vhost transport's kick: a wait-queue entry on an eventfd and the task
//! work or work item it starts (no abstraction for either).

use core::{
    ffi::c_void,
    marker::PhantomData,
    marker::PhantomPinned, //
};
use kernel::ffi::c_char;

/// Declares opaque C types: never built or dereferenced in Rust, only
/// pointed to (as the kernel crate's `Opaque` types for bindgen's).
macro_rules! opaque {
    ($($(#[$m:meta])* $name:ident;)*) => {
        $(
            $(#[$m])*
            #[repr(C)]
            pub(crate) struct $name {
                _data: [u8; 0],
                _marker: PhantomData<(*mut u8, PhantomPinned)>,
            }
        )*
    };
}

opaque! {
    /// `struct file` (bindgen's `file` is not FFI-safe by rustc's lint).
    File;
    /// `struct pvpass_mmio`: a device window on a VM's MMIO bus.
    Mmio;
    /// `struct kvm_vcpu`.
    Vcpu;
    /// `struct eventfd_ctx`.
    EventfdCtx;
    /// `struct pvpass_watch`: an mmu notifier on a VMM's mm.
    Watch;
    /// `struct pvpass_resample`: a watch on a resample eventfd.
    Resample;
    /// `struct page`.
    Page;
    /// `struct pvpass_hostport`: the host interface.
    HostPort;
    /// `struct sk_buff`.
    SkBuff;
    /// `struct mm_struct` (bindgen's is not FFI-safe by rustc's lint either).
    MmStruct;
    /// `struct pvpass_vwork`: the work a vhost device's kicks start.
    VWork;
    /// `struct pvpass_kick`: a watch on a vhost kick eventfd.
    Kick;
    /// `struct pvpass_poll`: a device's transmit poll timer and task work,
    /// and its notification coalescing timers.
    Poll;
    /// `struct pci_dev` (the NIC's function; the kernel crate's
    /// `pci::Device` wraps it transparently).
    PciDev;
    /// `struct pvpass_nicport`: a NIC host pool's interface (pvpnic<n>).
    NicPort;
}

/// `struct pvpass_slot`: one guest memory slot.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct RawSlot {
    pub(crate) gpa: u64,
    pub(crate) size: u64,
    pub(crate) hva: u64,
    pub(crate) read_only: u32,
    pub(crate) dirty_log: u32,
}

// Defined in kvm.c.
extern "C" {
    pub(crate) fn pvpass_kvm_get() -> i32;
    pub(crate) fn pvpass_kvm_release();
    pub(crate) fn pvpass_file_is_kvm(file: *mut File) -> bool;
    pub(crate) fn pvpass_mmio_register(vm_file: *mut File, gpa: u64, ctx: *mut c_void)
        -> *mut Mmio;
    pub(crate) fn pvpass_mmio_unregister(m: *mut Mmio);
    pub(crate) fn pvpass_ratelimit() -> bool;
    pub(crate) fn pvpass_memslots(
        m: *mut Mmio,
        out: *mut RawSlot,
        max: i32,
        generation: *mut u64,
    ) -> i32;
    pub(crate) fn pvpass_memslots_generation(m: *mut Mmio) -> u64;
    pub(crate) fn pvpass_mark_dirty(m: *mut Mmio, gfn: u64);
    pub(crate) fn pvpass_dirty_room(vcpu: *mut Vcpu) -> u32;
    pub(crate) fn pvpass_irqfd_bind(
        vm_file: *mut File,
        fd: i32,
        gsi: u32,
        resample_fd: i32,
    ) -> *mut EventfdCtx;
    pub(crate) fn pvpass_irqfd_signal(ctx: *mut EventfdCtx);
    pub(crate) fn pvpass_irq_inject(vm_file: *mut File, gsi: u32) -> i32;
    pub(crate) fn pvpass_irqfd_put(ctx: *mut EventfdCtx);
    pub(crate) fn pvpass_irqfd_unbind(
        vm_file: *mut File,
        fd: i32,
        gsi: u32,
        ctx: *mut EventfdCtx,
    ) -> i32;
    pub(crate) fn pvpass_vm_mm(vm_file: *mut File) -> *mut MmStruct;
    pub(crate) fn pvpass_current_mm() -> *mut MmStruct;
    pub(crate) fn pvpass_current_tgid() -> i32;
    pub(crate) fn pvpass_vm_mm_alive(vm_file: *mut File) -> bool;
    pub(crate) fn pvpass_reaper_start();
    pub(crate) fn pvpass_reaper_stop();
    pub(crate) fn pvpass_mm_watch(vm_file: *mut File, ctx: *mut c_void) -> *mut Watch;
    pub(crate) fn pvpass_mm_unwatch(w: *mut Watch);
    pub(crate) fn pvpass_resample_watch(fd: i32, ctx: *mut c_void) -> *mut Resample;
    pub(crate) fn pvpass_resample_unwatch(r: *mut Resample);
    pub(crate) fn pvpass_page_copy(dst: *mut Page, doff: u32, src: *mut Page, soff: u32, len: u32);
    pub(crate) fn pvpass_page_write(page: *mut Page, off: u32, src: *const c_void, len: u32);
    pub(crate) fn pvpass_page_read(page: *mut Page, off: u32, dst: *mut c_void, len: u32);
    pub(crate) fn pvpass_vm_generation(vm_file: *mut File) -> u64;
}

// Defined in hostport.c.
extern "C" {
    pub(crate) fn pvpass_hostport_create(name: *const c_char, ctx: *mut c_void) -> *mut HostPort;
    pub(crate) fn pvpass_hostport_mac(hp: *mut HostPort, mac: *mut u8);
    pub(crate) fn pvpass_hostport_destroy(hp: *mut HostPort);
    pub(crate) fn pvpass_hostport_rx_alloc(
        hp: *mut HostPort,
        len: u32,
        skbp: *mut *mut SkBuff,
    ) -> *mut c_void;
    pub(crate) fn pvpass_hostport_rx_commit(
        hp: *mut HostPort,
        skb: *mut SkBuff,
        hdr: *const c_void,
    ) -> i32;
}

// Defined in vhost.c.
extern "C" {
    pub(crate) fn pvpass_vwork_create(ctx: *mut c_void) -> *mut VWork;
    pub(crate) fn pvpass_vwork_queue(w: *mut VWork, here: bool);
    pub(crate) fn pvpass_vwork_stop(w: *mut VWork);
    pub(crate) fn pvpass_vwork_put(w: *mut VWork);
    pub(crate) fn pvpass_vwork_wait_all();
    pub(crate) fn pvpass_kick_watch(fd: i32, w: *mut VWork) -> *mut Kick;
    pub(crate) fn pvpass_kick_unwatch(k: *mut Kick);
    pub(crate) fn pvpass_eventfd_get(fd: i32) -> *mut EventfdCtx;
    pub(crate) fn pvpass_log_set_bit(uaddr: u64, nr: u32) -> i32;
    pub(crate) fn pvpass_tap_name(fd: i32, name: *mut u8) -> i32;
}

// Defined in poll.c.
extern "C" {
    pub(crate) fn pvpass_poll_create(ctx: *mut c_void) -> *mut Poll;
    pub(crate) fn pvpass_poll_arm(p: *mut Poll, mmio: *mut Mmio, vcpu: *mut Vcpu, ns: u64);
    pub(crate) fn pvpass_poll_cancel(p: *mut Poll);
    pub(crate) fn pvpass_poll_coal_arm(p: *mut Poll, q: u32, ns: u64);
    pub(crate) fn pvpass_poll_coal_cancel(p: *mut Poll, q: u32);
    pub(crate) fn pvpass_poll_stop(p: *mut Poll);
    pub(crate) fn pvpass_poll_put(p: *mut Poll);
    pub(crate) fn pvpass_poll_wait_all();
}

// Defined in nic.c.
extern "C" {
    pub(crate) fn pvpass_nic_pci_disable(pdev: *mut PciDev);
    pub(crate) fn pvpass_dma_rmb();
    pub(crate) fn pvpass_nicport_create(
        pdev: *mut PciDev,
        mac: *const u8,
        ctx: *mut c_void,
    ) -> *mut NicPort;
    pub(crate) fn pvpass_nicport_register(p: *mut NicPort) -> i32;
    pub(crate) fn pvpass_nicport_unregister(p: *mut NicPort);
    pub(crate) fn pvpass_nicport_free(p: *mut NicPort);
    pub(crate) fn pvpass_nicport_name(p: *mut NicPort, name: *mut c_char);
    pub(crate) fn pvpass_nicport_irq(p: *mut NicPort);
    pub(crate) fn pvpass_nicport_tx_next(
        p: *mut NicPort,
        bufs: *const *mut c_void,
        nbufs: u32,
        buf_len: u32,
        max: u32,
        max_gso: u32,
        hdr: *mut c_void,
    ) -> u32;
    pub(crate) fn pvpass_nicport_tx_error(p: *mut NicPort);
    pub(crate) fn pvpass_nicport_tx_done(p: *mut NicPort);
    pub(crate) fn pvpass_nicport_rx(
        p: *mut NicPort,
        data: *const c_void,
        len: u32,
        csum_ok: bool,
    ) -> i32;
    pub(crate) fn pvpass_nicport_rx_error(p: *mut NicPort);
}
