// SPDX-License-Identifier: GPL-2.0
/*
 * pvpass C glue: the part of the module that must be C.
 *
 * Why C: struct kvm, struct kvm_io_device and the memslot structures are not
 * in the kernel crate's bindings, and an out-of-tree module cannot add them;
 * kvm_iodevice_init(), __kvm_memslots(), kvm_for_each_memslot() and
 * kvm_arch_nr_memslot_as_ids() are static inlines or macros. Rust sees only
 * opaque handles (struct pvpass_mmio *, struct file *) and the functions
 * below; all policy (which windows, which registers, which values) is Rust.
 *
 * Locking: pvpass_mmio_register/unregister take kvm->slots_lock, as
 * kvm_io_bus_{,un}register_dev require. They are never called from the MMIO
 * ops (which run under kvm->srcu: unregistering there would deadlock in
 * synchronize_srcu).
 */
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/highmem.h>
#include <linux/kvm_host.h>
#include <linux/mmu_notifier.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/workqueue.h>
#include <kvm/iodev.h>

#include "glue.h"
#include "internal.h"

/*
 * The patch series' marker (patches/0005): exported to pvpass only where the
 * whole series is applied. Without it the symbols below are exported to
 * KVM's own modules only, and pvpass does not take them.
 */
extern const int kvm_pvpass_exports;
#define PVPASS_KVM_SERIES 5

struct pvpass_kvm_ops pvpass_kvm;
static DEFINE_MUTEX(pvpass_kvm_lock);
static bool pvpass_kvm_taken;

static void pvpass_kvm_put_all(void)
{
#define PUT(field, sym)				\
	do {					\
		if (pvpass_kvm.field)		\
			symbol_put(sym);	\
		pvpass_kvm.field = NULL;	\
	} while (0)
	PUT(file_is_kvm, file_is_kvm);
	PUT(io_bus_register_dev, kvm_io_bus_register_dev);
	PUT(io_bus_unregister_dev, kvm_io_bus_unregister_dev);
	PUT(irqfd, kvm_irqfd);
	PUT(mark_page_dirty_in_slot, mark_page_dirty_in_slot);
	PUT(get_running_vcpu, kvm_get_running_vcpu);
	PUT(set_irq, kvm_set_irq);
#undef PUT
	symbol_put(kvm_pvpass_exports);
}

/*
 * Take the KVM functions of the patch series, once (later calls return what
 * the first success gave). 0, or -EOPNOTSUPP: kvm.ko is not loaded or was
 * built without the series (or an older one). Process context.
 */
int pvpass_kvm_get(void)
{
	const int *series;

	guard(mutex)(&pvpass_kvm_lock);
	if (pvpass_kvm_taken)
		return 0;
	series = symbol_get(kvm_pvpass_exports);
	if (!series)
		return -EOPNOTSUPP;
	if (*series < PVPASS_KVM_SERIES) {
		symbol_put(kvm_pvpass_exports);
		return -EOPNOTSUPP;
	}
	pvpass_kvm.file_is_kvm = symbol_get(file_is_kvm);
	pvpass_kvm.io_bus_register_dev = symbol_get(kvm_io_bus_register_dev);
	pvpass_kvm.io_bus_unregister_dev = symbol_get(kvm_io_bus_unregister_dev);
	pvpass_kvm.irqfd = symbol_get(kvm_irqfd);
	pvpass_kvm.mark_page_dirty_in_slot = symbol_get(mark_page_dirty_in_slot);
	pvpass_kvm.get_running_vcpu = symbol_get(kvm_get_running_vcpu);
	pvpass_kvm.set_irq = symbol_get(kvm_set_irq);
	if (!pvpass_kvm.file_is_kvm || !pvpass_kvm.io_bus_register_dev ||
	    !pvpass_kvm.io_bus_unregister_dev || !pvpass_kvm.irqfd ||
	    !pvpass_kvm.mark_page_dirty_in_slot || !pvpass_kvm.get_running_vcpu ||
	    !pvpass_kvm.set_irq) {
		pvpass_kvm_put_all();
		return -EOPNOTSUPP;
	}
	pvpass_kvm_taken = true;
	return 0;
}

/* At module exit, after every device is gone: give the references back. */
void pvpass_kvm_release(void)
{
	guard(mutex)(&pvpass_kvm_lock);
	if (pvpass_kvm_taken)
		pvpass_kvm_put_all();
	pvpass_kvm_taken = false;
}

/* file_is_kvm() of the series; only after pvpass_kvm_get() succeeded. */
bool pvpass_file_is_kvm(struct file *file)
{
	return pvpass_kvm.file_is_kvm(file);
}

static struct pvpass_mmio *to_pvpass(struct kvm_io_device *dev)
{
	return container_of(dev, struct pvpass_mmio, iodev);
}

/*
 * Runs on the vCPU thread inside KVM_RUN with kvm->srcu held; may sleep.
 * Returning non-zero passes the access on to userspace, which only happens
 * for an access that does not lie wholly inside our window.
 */
static int pvpass_mmio_read(struct kvm_vcpu *vcpu, struct kvm_io_device *dev,
			    gpa_t addr, int len, void *val)
{
	struct pvpass_mmio *m = to_pvpass(dev);

	if (addr < m->base || len <= 0 || len > 8 ||
	    addr - m->base + len > PVPASS_WINDOW_SIZE)
		return -EOPNOTSUPP;
	return pvpass_rs_mmio_read(m->ctx, m, vcpu, addr - m->base, len, val);
}

static int pvpass_mmio_write(struct kvm_vcpu *vcpu, struct kvm_io_device *dev,
			     gpa_t addr, int len, const void *val)
{
	struct pvpass_mmio *m = to_pvpass(dev);

	if (addr < m->base || len <= 0 || len > 8 ||
	    addr - m->base + len > PVPASS_WINDOW_SIZE)
		return -EOPNOTSUPP;
	return pvpass_rs_mmio_write(m->ctx, m, vcpu, addr - m->base, len, val);
}

/*
 * Called by kvm_io_bus_unregister_dev() and by kvm_io_bus_destroy() (VM
 * teardown, or a failed bus shrink). The memory is owned and freed by
 * pvpass_mmio_unregister(), so this does nothing and is safe to run any
 * number of times.
 */
static void pvpass_mmio_destructor(struct kvm_io_device *dev)
{
}

static const struct kvm_io_device_ops pvpass_mmio_ops = {
	.read = pvpass_mmio_read,
	.write = pvpass_mmio_write,
	.destructor = pvpass_mmio_destructor,
};

/* Caller holds kvm->slots_lock. */
static bool pvpass_overlaps_memslot(struct kvm *kvm, gpa_t gpa, u64 len)
{
	gfn_t first = gpa >> PAGE_SHIFT, last = (gpa + len - 1) >> PAGE_SHIFT;
	int i, bkt;

	for (i = 0; i < kvm_arch_nr_memslot_as_ids(kvm); i++) {
		struct kvm_memslots *slots = __kvm_memslots(kvm, i);
		struct kvm_memory_slot *slot;

		kvm_for_each_memslot(slot, bkt, slots)
			if (first < slot->base_gfn + slot->npages &&
			    slot->base_gfn <= last)
				return true;
	}
	return false;
}

/*
 * Register the window [gpa, gpa + PVPASS_WINDOW_SIZE) on the MMIO bus of the
 * VM behind @vm_file (which the caller checked with pvpass_file_is_kvm and
 * holds a reference on). Returns the handle or an ERR_PTR: -EEXIST if the
 * window overlaps guest RAM, -ENOSPC if the bus is full, -ENOMEM.
 */
struct pvpass_mmio *pvpass_mmio_register(struct file *vm_file, u64 gpa, void *ctx)
{
	struct kvm *kvm = vm_file->private_data;
	struct pvpass_mmio *m;
	int ret;

	m = kzalloc(sizeof(*m), GFP_KERNEL_ACCOUNT);
	if (!m)
		return ERR_PTR(-ENOMEM);
	m->kvm = kvm;
	m->base = gpa;
	m->ctx = ctx;
	kvm_iodevice_init(&m->iodev, &pvpass_mmio_ops);

	mutex_lock(&kvm->slots_lock);
	if (pvpass_overlaps_memslot(kvm, gpa, PVPASS_WINDOW_SIZE))
		ret = -EEXIST;
	else
		ret = pvpass_kvm.io_bus_register_dev(kvm, KVM_MMIO_BUS, gpa,
						     PVPASS_WINDOW_SIZE, &m->iodev);
	mutex_unlock(&kvm->slots_lock);
	if (ret) {
		kfree(m);
		return ERR_PTR(ret);
	}
	return m;
}

/*
 * Take the window off the bus and free the handle. When this returns, no
 * MMIO op of this device runs or will run (kvm_io_bus_unregister_dev waits
 * for kvm->srcu readers), so the caller may free ctx. Must not be called
 * from an MMIO op.
 */
void pvpass_mmio_unregister(struct pvpass_mmio *m)
{
	struct kvm *kvm = m->kvm;

	mutex_lock(&kvm->slots_lock);
	pvpass_kvm.io_bus_unregister_dev(kvm, KVM_MMIO_BUS, &m->iodev);
	mutex_unlock(&kvm->slots_lock);
	kfree(m);
}

/*
 * One rate limit for every warning a guest or a user can trigger, so that a
 * hostile guest cannot flood the host log (DEFINE_RATELIMIT_STATE and
 * __ratelimit are macros).
 */
static DEFINE_RATELIMIT_STATE(pvpass_rs, 5 * HZ, 10);

bool pvpass_ratelimit(void)
{
	return __ratelimit(&pvpass_rs);
}

/*
 * Snapshot the VM's guest memory slots (address space 0, where devices DMA)
 * into @out. Only on the vCPU thread inside an MMIO op: kvm->srcu is held
 * there, which __kvm_memslots() requires. Returns the number of slots, or
 * -ENOSPC if there are more than @max. The hva is a user address in the VM's
 * mm, which is current->mm on that thread.
 */
int pvpass_memslots(struct pvpass_mmio *m, struct pvpass_slot *out, int max, u64 *generation)
{
	struct kvm_memslots *slots = __kvm_memslots(m->kvm, 0);
	struct kvm_memory_slot *slot;
	int bkt, n = 0;

	*generation = slots->generation;
	kvm_for_each_memslot(slot, bkt, slots) {
		if (slot->flags & KVM_MEMSLOT_INVALID)
			continue;
		if (n == max)
			return -ENOSPC;
		out[n++] = (struct pvpass_slot) {
			.gpa = slot->base_gfn << PAGE_SHIFT,
			.size = slot->npages << PAGE_SHIFT,
			.hva = slot->userspace_addr,
			.read_only = !!(slot->flags & KVM_MEM_READONLY),
			.dirty_log = !!(slot->flags & KVM_MEM_LOG_DIRTY_PAGES),
		};
	}
	return n;
}

/*
 * Mark guest page @gfn dirty for KVM's dirty log (live migration) after the
 * device wrote it. Only on the VM's own vCPU thread inside an MMIO op, as
 * pvpass_memslots: mark_page_dirty_in_slot() logs into the running vCPU's
 * dirty ring when the VM uses one, and warns if that vCPU is another VM's.
 */
void pvpass_mark_dirty(struct pvpass_mmio *m, u64 gfn)
{
	struct kvm_memory_slot *slot = __gfn_to_memslot(__kvm_memslots(m->kvm, 0), gfn);

	pvpass_kvm.mark_page_dirty_in_slot(m->kvm, slot, gfn);
}

/*
 * Dirty-ring entries the device may still push in this exit of @vcpu (its
 * own vCPU, in an MMIO op), or U32_MAX if the VM logs into a bitmap. A
 * push at the ring's soft limit makes KVM send the vCPU to its VMM to
 * harvest before it re-enters the guest; the entries above it are reserved
 * for what is pushed until then, and a push into a full ring overwrites an
 * unharvested entry (a WARN, and a page missing from the migration). So the
 * device may go past the soft limit by half the reserve, never further.
 */
u32 pvpass_dirty_room(struct kvm_vcpu *vcpu)
{
	struct kvm_dirty_ring *ring = &vcpu->dirty_ring;
	u32 used, limit;

	if (!vcpu->kvm->dirty_ring_size || !ring->size)
		return U32_MAX;
	used = READ_ONCE(ring->dirty_index) - READ_ONCE(ring->reset_index);
	limit = ring->soft_limit + (ring->size - ring->soft_limit) / 2;
	return used >= limit ? 0 : limit - used;
}

/* The generation of the memslots pvpass_memslots() would copy; same context. */
u64 pvpass_memslots_generation(struct pvpass_mmio *m)
{
	return __kvm_memslots(m->kvm, 0)->generation;
}

/*
 * Bind eventfd @fd (in the caller's fd table: ATTACH runs in the tool's
 * process) to @gsi of the VM with KVM's own irqfd, and return a reference to
 * the eventfd for pvpass_irqfd_signal(). KVM refuses the KVM_IRQFD ioctl from
 * a process that is not the VM's, which is why the module does this.
 *
 * With @resample_fd >= 0 the irqfd is a level-triggered one
 * (KVM_IRQFD_FLAG_RESAMPLE): KVM keeps the line asserted until the guest's
 * EOI, then de-asserts it and signals @resample_fd (see
 * pvpass_resample_watch for what the module does then).
 *
 * pvpass_irqfd_unbind undoes it from the attaching process (DETACH, close);
 * elsewhere (the reaper, another process's DETACH) the irqfd stays bound:
 * nothing signals the eventfd any more, and KVM drops the irqfd when the VM
 * goes away.
 */
struct eventfd_ctx *pvpass_irqfd_bind(struct file *vm_file, int fd, u32 gsi, int resample_fd)
{
	struct kvm *kvm = vm_file->private_data;
	struct kvm_irqfd args = { .fd = fd, .gsi = gsi };
	struct eventfd_ctx *ctx, *rs;
	int ret;

	if (resample_fd >= 0) {
		/* Its own errno (EBADF, EINVAL) before KVM's catch-all EINVAL. */
		rs = eventfd_ctx_fdget(resample_fd);
		if (IS_ERR(rs))
			return rs;
		eventfd_ctx_put(rs);
		args.flags = KVM_IRQFD_FLAG_RESAMPLE;
		args.resamplefd = resample_fd;
	}
	ctx = eventfd_ctx_fdget(fd);
	if (IS_ERR(ctx))
		return ctx;
	ret = pvpass_kvm.irqfd(kvm, &args);
	/*
	 * With valid eventfds, kvm_irqfd() fails with -EINVAL only when the VM
	 * has no in-kernel irqchip (yet: QEMU creates it right after the VM fd
	 * appears) or, to resample, only a split one (the IOAPIC is in the
	 * VMM). Say so with an errno of its own.
	 */
	if (ret == -EINVAL)
		ret = -ENXIO;
	if (ret) {
		eventfd_ctx_put(ctx);
		return ERR_PTR(ret);
	}
	return ctx;
}

/* eventfd_signal() is a static inline. Any context. */
void pvpass_irqfd_signal(struct eventfd_ctx *ctx)
{
	eventfd_signal(ctx);
}

/*
 * Raise and lower the edge-triggered @gsi of the VM behind @vm_file, as an
 * irqfd without resampling does from its work item (virt/kvm/eventfd.c,
 * irqfd_inject), but on the calling thread: process context only (it takes
 * the IOAPIC's lock, which no interrupt handler takes). -EAGAIN if this
 * thread cannot (the caller signals the irqfd instead); else what
 * kvm_set_irq returns for the raise: < 0 ignored (masked), 0 coalesced, else
 * the number of vCPUs it went to.
 */
int pvpass_irq_inject(struct file *vm_file, u32 gsi)
{
	struct kvm *kvm = vm_file->private_data;
	int r;

	/*
	 * Not under any spinlock or with bottom halves off either: a lock a
	 * softirq takes, held here around the IOAPIC's, would deadlock with a
	 * thread that holds the IOAPIC's when that softirq comes.
	 */
	if (!IS_ENABLED(CONFIG_PREEMPT_COUNT) || !preemptible())
		return -EAGAIN;
	r = pvpass_kvm.set_irq(kvm, KVM_USERSPACE_IRQ_SOURCE_ID, gsi, 1, false);
	pvpass_kvm.set_irq(kvm, KVM_USERSPACE_IRQ_SOURCE_ID, gsi, 0, false);
	return r;
}

void pvpass_irqfd_put(struct eventfd_ctx *ctx)
{
	eventfd_ctx_put(ctx);
}

/*
 * Undo pvpass_irqfd_bind. KVM's deassign looks the eventfd up by fd number
 * in the calling process, so this only works in the process that attached,
 * while its fd @fd still names @ctx; -EBADF otherwise (the irqfd then stays
 * bound, never signalled, until the VM goes away).
 */
int pvpass_irqfd_unbind(struct file *vm_file, int fd, u32 gsi, struct eventfd_ctx *ctx)
{
	struct kvm *kvm = vm_file->private_data;
	struct kvm_irqfd args = { .fd = fd, .gsi = gsi, .flags = KVM_IRQFD_FLAG_DEASSIGN };
	struct eventfd_ctx *cur;

	if (!current->files)
		return -EBADF;
	cur = eventfd_ctx_fdget(fd);
	if (IS_ERR(cur))
		return PTR_ERR(cur);
	eventfd_ctx_put(cur);
	if (cur != ctx)
		return -EBADF;
	return pvpass_kvm.irqfd(kvm, &args);
}

/*
 * True while the VMM that owns the VM still exists. KVM holds mm_count on
 * kvm->mm, so the mm_struct itself stays valid; mm_users drops to zero when
 * the last task using it (the VMM) has exited, and never rises again.
 */
/*
 * current's tgid and mm. C, not the kernel crate's Task accessors: in this
 * configuration bindgen's struct task_struct does not match C's (pid at
 * 0x428 instead of 0x458, mm at 0x3a8 instead of 0x3d8, 0x980 bytes instead
 * of 0x9c0), so Task::pid() and CurrentTask::mm() read other fields.
 */
int pvpass_current_tgid(void)
{
	return task_tgid_nr(current);
}

struct mm_struct *pvpass_current_mm(void)
{
	return current->mm;
}

/*
 * The VMM's mm (kvm->mm, a KVM internal), which KVM holds (mmgrab) while the
 * VM exists; Rust takes users of it itself (src/mem/pins.rs).
 */
struct mm_struct *pvpass_vm_mm(struct file *vm_file)
{
	struct kvm *kvm = vm_file->private_data;

	return kvm->mm;
}

bool pvpass_vm_mm_alive(struct file *vm_file)
{
	struct kvm *kvm = vm_file->private_data;

	return atomic_read(&kvm->mm->mm_users) > 0;
}

/*
 * The reaper: every 250 ms, let Rust release attachments whose VMM has
 * exited (pvpass_rs_reap), so a VM is let go within a second even if the
 * process that attached it is stuck. A self-arming delayed work item;
 * cancel_delayed_work_sync() stops it for good at module exit.
 */
static void pvpass_reap_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(pvpass_reap_work, pvpass_reap_fn);

static void pvpass_reap_fn(struct work_struct *work)
{
	pvpass_rs_reap();
	schedule_delayed_work(&pvpass_reap_work, HZ / 4);
}

/* Reap now (from the mmu notifier's release: the VMM's mm is going away). */
static void pvpass_reap_soon(void)
{
	mod_delayed_work(system_percpu_wq, &pvpass_reap_work, 0);
}

void pvpass_reaper_start(void)
{
	schedule_delayed_work(&pvpass_reap_work, HZ / 4);
}

void pvpass_reaper_stop(void)
{
	cancel_delayed_work_sync(&pvpass_reap_work);
}

/*
 * Page copies between pinned guest pages and kernel memory (src/mem/page.rs).
 * C because the guest writes these pages concurrently, which the kernel
 * crate's page accessors require not to happen; memcpy through
 * kmap_local_page() is what the kernel does with such memory.
 */

/* Copy @len bytes between two pinned pages (each range inside its page). */
void pvpass_page_copy(struct page *dst, u32 doff, struct page *src, u32 soff, u32 len)
{
	void *s = kmap_local_page(src);
	void *d = kmap_local_page(dst);

	memcpy(d + doff, s + soff, len);
	kunmap_local(d);
	kunmap_local(s);
}

/* Copy @len bytes into pinned @page at @off (off + len <= PAGE_SIZE). */
void pvpass_page_write(struct page *page, u32 off, const void *src, u32 len)
{
	void *p = kmap_local_page(page);

	memcpy(p + off, src, len);
	kunmap_local(p);
}

/* Copy @len bytes out of pinned @page at @off (off + len <= PAGE_SIZE). */
void pvpass_page_read(struct page *page, u32 off, void *dst, u32 len)
{
	void *p = kmap_local_page(page);

	memcpy(dst, p + off, len);
	kunmap_local(p);
}

/*
 * The memslot generation of the VM behind @vm_file, from any thread: takes
 * the VM's srcu itself (nesting inside the caller's own is fine).
 */
u64 pvpass_vm_generation(struct file *vm_file)
{
	struct kvm *kvm = vm_file->private_data;
	int idx = srcu_read_lock(&kvm->srcu);
	u64 gen = __kvm_memslots(kvm, 0)->generation;

	srcu_read_unlock(&kvm->srcu, idx);
	return gen;
}

/*
 * The VMM's address space, watched (why C: the mmu notifier ops are a C
 * vtable over struct mm_struct, and the memslot walk needs KVM's macros).
 *
 * Pins are kept in caches keyed by the VMM's user addresses. When the VMM
 * changes what backs guest memory under a pinned page (madvise(DONTNEED)
 * after ballooning, munmap, a remap, a COW break), the pinned page is no
 * longer the guest's: a cache hit would write into a page the guest cannot
 * see. So every invalidation that overlaps a memslot bumps the device's
 * memory generation (pvpass_rs_mm_changed), at its start and again at its
 * end (a pin taken in between is dropped too), and the device drops all its
 * pins and re-reads the map before its next write, as for a memslot change.
 * Changes of protection only (mprotect, NUMA hinting, soft-dirty) keep the
 * same pages and are ignored.
 *
 * ->release runs when the VMM's mm is torn down (its last thread exited):
 * the reaper runs at once instead of at its next tick, so the VM is let go
 * right away.
 *
 * The callbacks take no lock but the VM's srcu (read side), so they cannot
 * deadlock with a pin made under a device lock.
 */
struct pvpass_watch {
	struct mmu_notifier mn;
	struct kvm *kvm;
	void *ctx;
};

static bool pvpass_range_in_guest(struct kvm *kvm, unsigned long start, unsigned long end)
{
	struct kvm_memory_slot *slot;
	struct kvm_memslots *slots;
	bool hit = false;
	int idx, bkt;

	idx = srcu_read_lock(&kvm->srcu);
	slots = __kvm_memslots(kvm, 0);
	kvm_for_each_memslot(slot, bkt, slots) {
		unsigned long s = slot->userspace_addr;
		unsigned long e = s + (slot->npages << PAGE_SHIFT);

		if (start < e && s < end) {
			hit = true;
			break;
		}
	}
	srcu_read_unlock(&kvm->srcu, idx);
	return hit;
}

static void pvpass_mn_changed(struct mmu_notifier *mn, const struct mmu_notifier_range *range)
{
	struct pvpass_watch *w = container_of(mn, struct pvpass_watch, mn);

	switch (range->event) {
	case MMU_NOTIFY_PROTECTION_VMA:
	case MMU_NOTIFY_PROTECTION_PAGE:
	case MMU_NOTIFY_SOFT_DIRTY:
		return;
	default:
		break;
	}
	if (pvpass_range_in_guest(w->kvm, range->start, range->end))
		pvpass_rs_mm_changed(w->ctx);
}

static int pvpass_mn_start(struct mmu_notifier *mn, const struct mmu_notifier_range *range)
{
	pvpass_mn_changed(mn, range);
	return 0;
}

static void pvpass_mn_end(struct mmu_notifier *mn, const struct mmu_notifier_range *range)
{
	pvpass_mn_changed(mn, range);
}

static void pvpass_mn_release(struct mmu_notifier *mn, struct mm_struct *mm)
{
	struct pvpass_watch *w = container_of(mn, struct pvpass_watch, mn);

	/* Also called by mmu_notifier_unregister() with the VMM alive: the
	 * reaper then finds nothing to do. */
	pvpass_rs_mm_changed(w->ctx);
	pvpass_reap_soon();
}

static const struct mmu_notifier_ops pvpass_mn_ops = {
	.invalidate_range_start = pvpass_mn_start,
	.invalidate_range_end = pvpass_mn_end,
	.release = pvpass_mn_release,
};

/*
 * Watch the address space of the VMM of the VM behind @vm_file, reporting to
 * @ctx (a Rust Device, valid until pvpass_mm_unwatch() returns). Called from
 * ATTACH, in any process, with no mm lock held. -ESRCH if the VMM exited.
 */
struct pvpass_watch *pvpass_mm_watch(struct file *vm_file, void *ctx)
{
	struct kvm *kvm = vm_file->private_data;
	struct pvpass_watch *w;
	int ret;

	w = kzalloc(sizeof(*w), GFP_KERNEL_ACCOUNT);
	if (!w)
		return ERR_PTR(-ENOMEM);
	w->mn.ops = &pvpass_mn_ops;
	w->kvm = kvm;
	w->ctx = ctx;
	/* mmu_notifier_register() wants mm_users held (it may not be ours). */
	if (!mmget_not_zero(kvm->mm)) {
		kfree(w);
		return ERR_PTR(-ESRCH);
	}
	ret = mmu_notifier_register(&w->mn, kvm->mm);
	mmput_async(kvm->mm);
	if (ret) {
		kfree(w);
		return ERR_PTR(ret);
	}
	return w;
}

/*
 * Stop watching; when this returns no callback runs or will run. Sleeps
 * (SRCU); never called from a callback. The registration holds mm_count, as
 * mmu_notifier_unregister() requires, and the caller keeps the VM file (so
 * w->kvm) until this returns.
 */
void pvpass_mm_unwatch(struct pvpass_watch *w)
{
	mmu_notifier_unregister(&w->mn, w->mn.mm);
	kfree(w);
}

/*
 * Resampling: KVM signals the resample eventfd at the guest's EOI of a
 * level-triggered GSI, after it has de-asserted the line. A virtio-mmio
 * device's line is level: it must stay up while InterruptStatus is not zero,
 * so pvpass_rs_resample() asserts it again if the guest has not acknowledged
 * everything (a frame that arrived while the handler ran).
 *
 * Why C: the wait-queue entry on the eventfd (vfs_poll with an own queue
 * function, as KVM's irqfd does) and eventfd_ctx_do_read() are not in the
 * kernel crate. The wakeup runs with the eventfd's wait-queue lock held,
 * inside KVM's eventfd_signal(), where another eventfd_signal() may not nest:
 * the re-assert goes through a work item.
 */
struct pvpass_resample {
	wait_queue_entry_t wait;
	poll_table pt;
	struct eventfd_ctx *ctx;
	struct work_struct work;
	/* The Rust device; valid until pvpass_resample_unwatch() returns. */
	void *dev;
};

static int pvpass_resample_wakeup(wait_queue_entry_t *wait, unsigned int mode, int sync,
				  void *key)
{
	struct pvpass_resample *r = container_of(wait, struct pvpass_resample, wait);
	u64 cnt;

	if (key_to_poll(key) & EPOLLIN) {
		eventfd_ctx_do_read(r->ctx, &cnt);
		schedule_work(&r->work);
	}
	return 0;
}

static void pvpass_resample_queue(struct file *file, wait_queue_head_t *wqh, poll_table *pt)
{
	struct pvpass_resample *r = container_of(pt, struct pvpass_resample, pt);

	add_wait_queue(wqh, &r->wait);
}

static void pvpass_resample_fn(struct work_struct *work)
{
	struct pvpass_resample *r = container_of(work, struct pvpass_resample, work);

	pvpass_rs_resample(r->dev);
}

/*
 * Watch eventfd @fd of the calling process (ATTACH) for resample events and
 * call pvpass_rs_resample(@dev) in process context after each. -EBADF if @fd
 * is not open, -EINVAL if it is not an eventfd.
 */
struct pvpass_resample *pvpass_resample_watch(int fd, void *dev)
{
	struct pvpass_resample *r;
	struct file *file;
	__poll_t events;

	file = fget(fd);
	if (!file)
		return ERR_PTR(-EBADF);
	r = kzalloc(sizeof(*r), GFP_KERNEL_ACCOUNT);
	if (!r) {
		fput(file);
		return ERR_PTR(-ENOMEM);
	}
	r->ctx = eventfd_ctx_fileget(file);
	if (IS_ERR(r->ctx)) {
		long err = PTR_ERR(r->ctx);

		fput(file);
		kfree(r);
		return ERR_PTR(err);
	}
	r->dev = dev;
	INIT_WORK(&r->work, pvpass_resample_fn);
	init_waitqueue_func_entry(&r->wait, pvpass_resample_wakeup);
	init_poll_funcptr(&r->pt, pvpass_resample_queue);
	events = vfs_poll(file, &r->pt);
	fput(file);
	/* An EOI before the watch was up: look once. */
	if (events & EPOLLIN)
		schedule_work(&r->work);
	return r;
}

/*
 * Stop watching; when this returns the wakeup and the work item are done and
 * will not run again. Sleeps; not from the work item itself.
 */
void pvpass_resample_unwatch(struct pvpass_resample *r)
{
	u64 cnt;

	eventfd_ctx_remove_wait_queue(r->ctx, &r->wait, &cnt);
	cancel_work_sync(&r->work);
	eventfd_ctx_put(r->ctx);
	kfree(r);
}
