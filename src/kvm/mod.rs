// SPDX-License-Identifier: GPL-2.0

//! Safe handles over the C glue (glue/kvm.c) for the KVM calls pvpass makes.
//!
//! KVM's structures are not in the kernel crate's bindings, so Rust only ever
//! holds opaque pointers: the VM's `struct file` (whose reference keeps the VM
//! and its vendor module alive) and the glue's `struct pvpass_mmio`.

use core::{
    cell::Cell,
    ffi::c_void,
    marker::PhantomData,
    ptr::NonNull, //
};
use kernel::{
    bindings,
    error::from_err_ptr,
    fs::{
        File,
        LocalFile, //
    },
    mm::Mm,
    prelude::*,
    sync::{
        aref::ARef,
        barrier::{
            smp_mb,
            smp_rmb,
            smp_wmb, //
        }, //
    },
};

use crate::{
    glue,
    pvcore::{
        memmap::{
            MemMap,
            Slot, //
        },
        traits::Fence, //
    }, //
};

/// Most memory slots of a VM that pvpass maps (QEMU uses a handful).
pub(crate) const MAX_SLOTS: usize = 32;
/// The VM's memory map as the descriptor engine sees it.
pub(crate) type GuestMap = MemMap<MAX_SLOTS>;

/// The calling process's id (its thread group id).
pub(crate) fn current_tgid() -> i32 {
    // SAFETY: Reads the current task's tgid; no preconditions.
    unsafe { glue::pvpass_current_tgid() }
}

/// Whether the calling thread runs in `mm` (a thread of that VMM).
pub(crate) fn current_mm_is(mm: &Mm) -> bool {
    // SAFETY: Reads `current->mm`; no preconditions.
    let cur = unsafe { glue::pvpass_current_mm() };
    cur.cast::<bindings::mm_struct>() == mm.as_raw()
}

/// The 64-bit jiffies counter (never wraps in practice).
pub(crate) fn jiffies() -> u64 {
    // SAFETY: `jiffies_64` is a global that lives forever; on 64-bit a
    // volatile load of it is a whole value (what get_jiffies_64() reads).
    unsafe { core::ptr::read_volatile(&raw const bindings::jiffies_64) }
}

/// The reaper (a delayed work item in glue/kvm.c) calls `pvpass_rs_reap` (in
/// `attachment`) every 250 ms while this guard lives.
pub(crate) struct Reaper(());

impl Reaper {
    pub(crate) fn start() -> Self {
        // SAFETY: Starts the glue's static work item; `Drop` stops it.
        unsafe { glue::pvpass_reaper_start() };
        Self(())
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // SAFETY: Waits for a running reap and keeps it from re-arming.
        unsafe { glue::pvpass_reaper_stop() };
    }
}

/// True if a warning may be printed now. One budget for every message that a
/// guest or a user can trigger, so none of them can flood the log.
pub(crate) fn ratelimit() -> bool {
    // SAFETY: No preconditions: the glue only updates its own static state.
    unsafe { glue::pvpass_ratelimit() }
}

/// Take KVM's functions of the patch series (patches/) if this kernel has
/// it: `EOPNOTSUPP` if kvm.ko is not loaded or was built without it (then
/// only the vhost transport works, which needs nothing from KVM). Once
/// taken they stay until the module goes ([`KvmSymbols`]).
pub(crate) fn take_kvm() -> Result {
    // SAFETY: No preconditions; process context (an ioctl, the module
    // initialiser).
    let r = unsafe { glue::pvpass_kvm_get() };
    if r < 0 {
        Err(Error::from_errno(r))
    } else {
        Ok(())
    }
}

/// Gives KVM's functions back when dropped, at module exit, after every
/// virtio-mmio device (their only users) is gone.
pub(crate) struct KvmSymbols;

impl Drop for KvmSymbols {
    fn drop(&mut self) {
        // SAFETY: Dropped at module exit after the attachments and the
        // reaper: nothing calls into KVM any more.
        unsafe { glue::pvpass_kvm_release() };
    }
}

/// A reference to a KVM VM's file, checked to be one.
///
/// Holding the file (not just a `kvm_get_kvm` reference) keeps both the VM
/// and the KVM vendor module loaded, and keeps the VM's irqfds alive.
pub(crate) struct VmFile(ARef<File>);

impl VmFile {
    /// Look up `fd` in the calling process and check that it is a KVM VM.
    /// `EBADF` if `fd` is not open, `EOPNOTSUPP` on a KVM without the patch
    /// series, `EINVAL` if it is not a VM.
    pub(crate) fn from_fd(fd: i32) -> Result<Self> {
        let fd = u32::try_from(fd).map_err(|_| EBADF)?;
        let local = LocalFile::fget(fd)?;
        // SAFETY: Called from an ioctl on another file, which never holds an
        // `fdget_pos` region on this thread.
        let file = unsafe { LocalFile::assume_no_fdget_pos(local) };
        take_kvm().inspect_err(|_| {
            if ratelimit() {
                pr_info!("attach: this KVM lacks the pvpass patch series (patches/); virtio-mmio is unavailable, /dev/pvpass-vhost-net works\n");
            }
        })?;
        // SAFETY: `file` is a valid file: we hold a reference on it; KVM's
        // functions are taken (above).
        if !unsafe { glue::pvpass_file_is_kvm(file.as_ptr().cast()) } {
            return Err(EINVAL);
        }
        Ok(Self(file))
    }

    /// An identity of the VM, stable while the file is held: its VM file.
    /// (`dup` and `pidfd_getfd` share the file, and KVM creates one per VM.)
    pub(crate) fn key(&self) -> usize {
        self.0.as_ptr() as usize
    }

    /// Another reference on the same VM file.
    pub(crate) fn clone_ref(&self) -> Self {
        Self(self.0.clone())
    }

    /// The `struct file *`, for glue calls (valid while `self` lives).
    pub(crate) fn as_raw(&self) -> *mut glue::File {
        self.0.as_ptr().cast()
    }

    /// The VMM's address space (KVM's `kvm->mm`), which KVM keeps (mmgrab)
    /// while the VM exists: valid while `self` lives. Its users may be gone
    /// (`Mm::mmget_not_zero`).
    pub(crate) fn mm(&self) -> &Mm {
        // SAFETY: `self` holds a reference on a KVM VM file.
        let mm = unsafe { glue::pvpass_vm_mm(self.as_raw()) };
        // SAFETY: KVM holds `mm_count` on its `mm` until the VM is destroyed,
        // which the file reference held by `self` prevents.
        unsafe { Mm::from_raw(mm.cast::<bindings::mm_struct>()) }
    }

    /// The VM's current memslot generation, from any thread.
    pub(crate) fn generation(&self) -> u64 {
        // SAFETY: `self` holds a reference on a KVM VM file; the glue takes
        // the VM's srcu itself.
        unsafe { glue::pvpass_vm_generation(self.as_raw()) }
    }

    /// False once the VMM process that owns the VM has exited.
    pub(crate) fn vmm_alive(&self) -> bool {
        // SAFETY: `self` holds a reference on a KVM VM file.
        unsafe { glue::pvpass_vm_mm_alive(self.as_raw()) }
    }
}

/// An mmu notifier on the VMM's address space (see glue/kvm.c): every change
/// under guest memory calls `net::ffi::pvpass_rs_mm_changed`, and the VMM's
/// exit runs the reaper at once. Dropping it unregisters the notifier and
/// waits until no callback runs.
pub(crate) struct MmWatch {
    raw: NonNull<glue::Watch>,
    // Keeps the VM (whose memslots the callbacks walk) until unregistered.
    _vm: VmFile,
}

// SAFETY: The handle is only passed to `pvpass_mm_unwatch`, which may be
// called from any thread.
unsafe impl Send for MmWatch {}
// SAFETY: `&MmWatch` allows nothing at all.
unsafe impl Sync for MmWatch {}

impl MmWatch {
    /// Watch the address space of `vm`'s VMM. `ESRCH` if it has exited.
    ///
    /// # Safety
    ///
    /// `ctx` must point to a `net::Device` that stays valid until the
    /// returned `MmWatch` has been dropped: the glue calls
    /// `net::ffi::pvpass_rs_mm_changed` with it until then.
    pub(crate) unsafe fn register(vm: &VmFile, ctx: *const c_void) -> Result<Self> {
        // SAFETY: `vm` holds a reference on a KVM VM file; we hold no mm lock;
        // the caller keeps `ctx` valid as required.
        let raw = from_err_ptr(unsafe { glue::pvpass_mm_watch(vm.as_raw(), ctx.cast_mut()) })?;
        Ok(Self {
            raw: NonNull::new(raw).ok_or(ENOMEM)?,
            _vm: vm.clone_ref(),
        })
    }
}

impl Drop for MmWatch {
    fn drop(&mut self) {
        // SAFETY: `raw` came from a successful `pvpass_mm_watch` and is
        // unregistered exactly once, here, before `_vm` is dropped. We are
        // not in one of its callbacks (they only touch atomics).
        unsafe { glue::pvpass_mm_unwatch(self.raw.as_ptr()) };
    }
}

/// Resampling of a level-triggered irqfd (see glue/kvm.c): after each EOI of
/// the device's GSI, `net::ffi::pvpass_rs_resample` runs in process context.
/// Dropping it stops the watch and waits for a running callback.
pub(crate) struct ResampleWatch {
    raw: NonNull<glue::Resample>,
}

// SAFETY: The handle is only passed to `pvpass_resample_unwatch`, which may
// be called from any thread.
unsafe impl Send for ResampleWatch {}
// SAFETY: `&ResampleWatch` allows nothing at all.
unsafe impl Sync for ResampleWatch {}

impl ResampleWatch {
    /// Watch eventfd `fd` of the calling process. `EBADF` if it is not
    /// open, `EINVAL` if it is not an eventfd.
    ///
    /// # Safety
    ///
    /// `ctx` must point to a `net::Device` that stays valid until the
    /// returned `ResampleWatch` has been dropped: the glue calls
    /// `net::ffi::pvpass_rs_resample` with it until then.
    pub(crate) unsafe fn register(fd: i32, ctx: *const c_void) -> Result<Self> {
        // SAFETY: `fd` is only looked up in the caller's fd table; the caller
        // keeps `ctx` valid as required.
        let raw = from_err_ptr(unsafe { glue::pvpass_resample_watch(fd, ctx.cast_mut()) })?;
        Ok(Self {
            raw: NonNull::new(raw).ok_or(ENOMEM)?,
        })
    }
}

impl Drop for ResampleWatch {
    fn drop(&mut self) {
        // SAFETY: `raw` came from a successful `pvpass_resample_watch` and is
        // released exactly once, here, never from its own callback (which
        // only runs `Device::resample`).
        unsafe { glue::pvpass_resample_unwatch(self.raw.as_ptr()) };
    }
}

/// The device's window, registered on a VM's MMIO bus. Dropping it takes the
/// window off the bus and waits until no MMIO callback for it is running.
pub(crate) struct MmioWindow {
    raw: NonNull<glue::Mmio>,
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
    /// `ctx` must point to a `net::Device` that stays valid until the
    /// returned `MmioWindow` has been dropped, and `vm` must outlive it too:
    /// the glue calls `net::ffi::pvpass_rs_mmio_{read,write}` with `ctx` until
    /// then.
    pub(crate) unsafe fn register(vm: &VmFile, gpa: u64, ctx: *const c_void) -> Result<Self> {
        // SAFETY: `vm` holds a reference on a file that is a KVM VM (checked
        // in `VmFile::from_fd`); the caller keeps `ctx` valid as required.
        let raw =
            from_err_ptr(unsafe { glue::pvpass_mmio_register(vm.as_raw(), gpa, ctx.cast_mut()) })?;
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
        unsafe { glue::pvpass_mmio_unregister(self.raw.as_ptr()) };
    }
}

/// Proof that the code runs inside one of the window's MMIO ops, or a
/// transmit poll that KVM runs as task work before re-entering the guest
/// (`transport::poll`): on the VM's vCPU thread, inside KVM_RUN of that vCPU,
/// with `kvm->srcu` read-held and `current->mm` the VM's own mm. Only there may guest memory be read and written through
/// its user addresses, and the memslots be walked. Not `Send`: it cannot leave
/// the thread.
///
/// One `InVcpu` lives for one exit, so it is also where the exit's dirty-log
/// marks are counted: each page is marked once (the used ring is written for
/// every frame), and no more than the vCPU's dirty ring can take.
pub(crate) struct InVcpu {
    mmio: NonNull<glue::Mmio>,
    vcpu: NonNull<glue::Vcpu>,
    /// The pages marked dirty last in this exit (0: none yet; gfn + 1).
    recent: Cell<[u64; RECENT_MARKS]>,
    next: Cell<usize>,
    _not_send: PhantomData<*mut ()>,
}

/// The vCPU thread a virtio-mmio transmit poll runs on (`transport::poll`):
/// the window and vCPU of the MMIO op that armed it.
pub(crate) type PollTarget = (NonNull<glue::Mmio>, NonNull<glue::Vcpu>);

/// Marked pages an exit remembers, to mark each once.
const RECENT_MARKS: usize = 16;

impl InVcpu {
    /// # Safety
    ///
    /// Only in an MMIO op of the glue (or a poll run of glue/poll.c), with
    /// the `struct pvpass_mmio` it was called for and the `struct kvm_vcpu`
    /// it runs on; the value must not outlive the op.
    pub(crate) unsafe fn new(mmio: NonNull<glue::Mmio>, vcpu: NonNull<glue::Vcpu>) -> Self {
        Self {
            mmio,
            vcpu,
            recent: Cell::new([0; RECENT_MARKS]),
            next: Cell::new(0),
            _not_send: PhantomData,
        }
    }

    /// The window and vCPU of this op, for a poll that must run on this
    /// same thread inside KVM_RUN of this same vCPU (`transport::poll`).
    pub(crate) fn target(&self) -> PollTarget {
        (self.mmio, self.vcpu)
    }

    /// Pages this exit may still mark dirty (`u32::MAX` when KVM logs into
    /// a bitmap): what the vCPU's dirty ring takes before it must be
    /// harvested (see `pvpass_dirty_room`).
    pub(crate) fn dirty_room(&self) -> u32 {
        // SAFETY: By the type invariant `vcpu` is the vCPU this MMIO op runs
        // on, alive for the op.
        unsafe { glue::pvpass_dirty_room(self.vcpu.as_ptr()) }
    }

    /// The current memslot generation (KVM bumps it on every change).
    pub(crate) fn generation(&self) -> u64 {
        // SAFETY: By the type invariant we are in an MMIO op of `mmio`, so
        // kvm->srcu is held as `pvpass_memslots_generation` requires.
        unsafe { glue::pvpass_memslots_generation(self.mmio.as_ptr()) }
    }

    /// Mark guest page `gfn` dirty in KVM's dirty log (the device wrote it),
    /// once per exit for the pages marked last.
    pub(crate) fn mark_dirty(&self, gfn: u64) {
        let key = gfn.wrapping_add(1);
        let mut recent = self.recent.get();
        if recent.contains(&key) {
            return;
        }
        let i = self.next.get() % RECENT_MARKS;
        if let Some(r) = recent.get_mut(i) {
            *r = key;
        }
        self.recent.set(recent);
        self.next.set(i + 1);
        // SAFETY: By the type invariant we are in an MMIO op of `mmio`, on the
        // VM's own vCPU thread with kvm->srcu held, as the glue requires.
        unsafe { glue::pvpass_mark_dirty(self.mmio.as_ptr(), gfn) };
    }

    /// Refill `map` with the VM's memory slots. `ENOSPC` if it has more than
    /// `MAX_SLOTS`, `EINVAL` if KVM reports slots the map rejects. Returns
    /// whether KVM is logging writes to any slot (live migration).
    pub(crate) fn snapshot(&self, map: &mut GuestMap) -> Result<bool> {
        let mut raw = [glue::RawSlot::default(); MAX_SLOTS];
        let mut generation = 0u64;
        // SAFETY: By the type invariant we are in an MMIO op of `mmio`, so
        // kvm->srcu is held as `pvpass_memslots` requires; `raw` has room for
        // `MAX_SLOTS` entries.
        let n = unsafe {
            glue::pvpass_memslots(
                self.mmio.as_ptr(),
                raw.as_mut_ptr(),
                MAX_SLOTS as i32,
                &mut generation,
            )
        };
        let n = usize::try_from(n).map_err(|_| ENOSPC)?;
        map.clear(generation);
        let mut dirty_log = false;
        for r in raw.iter().take(n) {
            map.insert(Slot {
                gpa: r.gpa,
                size: r.size,
                host: r.hva,
                read_only: r.read_only != 0,
            })
            .map_err(|_| EINVAL)?;
            dirty_log |= r.dirty_log != 0;
        }
        Ok(dirty_log)
    }
}

/// The barrier the core asks for, between the device and a guest's vCPUs.
pub(crate) fn fence(kind: Fence) {
    match kind {
        Fence::Read => smp_rmb(),
        Fence::Write => smp_wmb(),
        Fence::Full => smp_mb(),
    }
}

/// An eventfd bound by KVM's irqfd to the device's GSI: signalling it injects
/// the guest interrupt, from any thread. Remembers the fd number and GSI it
/// was bound with, for `unbind`.
///
/// An edge-triggered GSI (no resampling) is injected on the signalling
/// thread itself when that thread may (process context, no spinlock held):
/// KVM's irqfd injects an IOAPIC route from a work item, a kworker wake-up
/// and a context switch per interrupt. A level-triggered one always goes
/// through the irqfd, whose resampler lowers the line at the EOI.
pub(crate) struct IrqFd {
    ctx: NonNull<glue::EventfdCtx>,
    fd: i32,
    gsi: u32,
    /// The VM, to inject into directly (edge-triggered, `inline_irq`).
    inline: Option<VmFile>,
}

// SAFETY: `eventfd_signal` and `eventfd_ctx_put` may be called from any thread.
unsafe impl Send for IrqFd {}
// SAFETY: Signalling through `&IrqFd` is safe from several threads at once.
unsafe impl Sync for IrqFd {}

impl IrqFd {
    /// Bind eventfd `fd` of the calling process to `gsi` of `vm`, level-
    /// triggered with KVM's resampling if `resample_fd` is given (see
    /// `ResampleWatch`). `EINVAL` if an fd is not an eventfd, `ENXIO` if the
    /// VM has no in-kernel irqchip (to resample: only a split one).
    pub(crate) fn bind(vm: &VmFile, fd: i32, gsi: u32, resample_fd: Option<i32>) -> Result<Self> {
        let rs = resample_fd.unwrap_or(-1);
        let inline = (resample_fd.is_none() && crate::tuning::inline_irq()).then(|| vm.clone_ref());
        // SAFETY: `vm` holds a reference on a KVM VM file; `fd` and `rs` are
        // only looked up in the caller's fd table.
        let raw = from_err_ptr(unsafe { glue::pvpass_irqfd_bind(vm.as_raw(), fd, gsi, rs) })?;
        Ok(Self {
            ctx: NonNull::new(raw).ok_or(EINVAL)?,
            fd,
            gsi,
            inline,
        })
    }

    pub(crate) fn signal(&self) {
        if let Some(vm) = &self.inline {
            // SAFETY: `vm` holds a reference on a KVM VM file; the glue
            // checks that this thread may take the IOAPIC's lock.
            if unsafe { glue::pvpass_irq_inject(vm.as_raw(), self.gsi) } != EAGAIN.to_errno() {
                return;
            }
        }
        // SAFETY: We hold a reference on the eventfd context.
        unsafe { glue::pvpass_irqfd_signal(self.ctx.as_ptr()) };
    }

    /// Take the irqfd off `vm`'s GSI. KVM finds it by fd number in the
    /// calling process, so this works from the attaching process while it
    /// still has the eventfd open under the same number (`EBADF` otherwise:
    /// the irqfd then stays bound, silent, until the VM goes away).
    pub(crate) fn unbind(&self, vm: &VmFile) -> Result {
        // SAFETY: `vm` holds a reference on a KVM VM file, and we hold a
        // reference on the eventfd context the glue compares with.
        let r =
            unsafe { glue::pvpass_irqfd_unbind(vm.as_raw(), self.fd, self.gsi, self.ctx.as_ptr()) };
        if r == 0 {
            Ok(())
        } else {
            Err(Error::from_errno(r))
        }
    }
}

impl Drop for IrqFd {
    fn drop(&mut self) {
        // SAFETY: Drops the reference taken by `pvpass_irqfd_bind`, once.
        unsafe { glue::pvpass_irqfd_put(self.ctx.as_ptr()) };
    }
}
