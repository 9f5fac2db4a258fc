// SPDX-License-Identifier: GPL-2.0
/*
 * pvpass C glue for the vhost transport: kicks and the work they start.
 *
 * Why C: waiting on a kick eventfd is a wait_queue_entry whose wake function
 * finds its owner with container_of, added through a poll_table callback
 * (vfs_poll), and the work a kick starts is a task_work callback_head or a
 * work_struct, embedded structs with callbacks; the kernel crate wraps none
 * of these (7.2: no wait-queue-entry, task_work or kthread_use_mm
 * abstraction). All policy is Rust (src/transport/vhost.rs): this file only
 * calls pvpass_rs_vhost_run(ctx) in the owner's address space. Also here:
 * the dirty log's atomic bit set in a user page (kmap and set_bit on a
 * pinned page, which the kernel crate's Page does not offer for user pages),
 * and the name of the tap QEMU passes (pvpass_tap_name: tun's show_fdinfo
 * through a seq_file; struct tun_file is private to drivers/net/tun.c).
 *
 * Where the work runs: a kick is QEMU's ioeventfd, signalled inside the
 * guest's MMIO exit on its vCPU thread, in atomic context (the eventfd's
 * wait-queue lock is held). If the kicking thread is one of the owner's
 * (its mm is the owner's), the work is added to it as task work
 * (TWA_RESUME), which KVM runs on that same thread, in process context,
 * just before it re-enters the guest (kernel/entry/virt.c,
 * xfer_to_guest_mode_handle_work), or any thread runs on its way back to
 * user mode. Any other kick, and the work's own requeue after it spent its
 * budget, goes to a worker that takes the owner's mm (kthread_use_mm), as
 * vhost's worker does.
 *
 * Lifetime: a pvpass_vwork is refcounted: the Rust owner holds one
 * reference, each queued task work or work item one more. pvpass_vwork_stop
 * clears ctx under w->lock (which every run holds while it calls Rust), so
 * no run reaches Rust after it returns; queued work still runs and only
 * drops its reference. A task work cannot be cancelled by a module, so
 * module unload waits for every pvpass_vwork to be freed
 * (pvpass_vwork_wait_all).
 */
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/highmem.h>
#include <linux/if.h>
#include <linux/mm.h>
#include <linux/kthread.h>
#include <linux/miscdevice.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/refcount.h>
#include <linux/sched/mm.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/task_work.h>
#include <linux/wait_bit.h>
#include <linux/workqueue.h>

#include "glue.h"

/* pvpass_vworks not yet freed (module unload waits for 0). */
static atomic_t pvpass_vworks = ATOMIC_INIT(0);

struct pvpass_vwork {
	struct callback_head twork;
	struct work_struct work;
	struct mm_struct *mm;	/* mmgrab'd at create */
	struct mutex lock;	/* held by a run while it calls Rust, and by stop */
	void *ctx;		/* NULL once stopped */
	atomic_t queued;	/* a task work or work item is pending */
	refcount_t ref;
};

static void vwork_put(struct pvpass_vwork *w)
{
	if (!refcount_dec_and_test(&w->ref))
		return;
	mmdrop(w->mm);
	kfree(w);
	if (atomic_dec_and_test(&pvpass_vworks))
		wake_up_var(&pvpass_vworks);
}

/* In the owner's mm, process context. */
static void vwork_run(struct pvpass_vwork *w)
{
	/* Kicks from now on queue again: this run may miss them. */
	atomic_set(&w->queued, 0);
	smp_mb__after_atomic();
	mutex_lock(&w->lock);
	if (w->ctx)
		pvpass_rs_vhost_run(w->ctx);
	mutex_unlock(&w->lock);
}

static void vwork_fn(struct work_struct *work)
{
	struct pvpass_vwork *w = container_of(work, struct pvpass_vwork, work);

	if (mmget_not_zero(w->mm)) {
		kthread_use_mm(w->mm);
		vwork_run(w);
		kthread_unuse_mm(w->mm);
		mmput(w->mm);
	} else {
		atomic_set(&w->queued, 0);
	}
	vwork_put(w);
}

static void vwork_to_worker(struct pvpass_vwork *w)
{
	/* The reference the caller took goes with the work item. */
	if (!queue_work(system_dfl_wq, &w->work))
		vwork_put(w);
}

static void vwork_task_fn(struct callback_head *cb)
{
	struct pvpass_vwork *w = container_of(cb, struct pvpass_vwork, twork);

	/* At exit (exit_task_work runs after exit_mm) the mm is gone. */
	if (current->mm == w->mm) {
		vwork_run(w);
		vwork_put(w);
	} else {
		vwork_to_worker(w);
	}
}

struct pvpass_vwork *pvpass_vwork_create(void *ctx)
{
	struct pvpass_vwork *w;

	if (!current->mm)
		return ERR_PTR(-EINVAL);
	w = kzalloc(sizeof(*w), GFP_KERNEL_ACCOUNT);
	if (!w)
		return ERR_PTR(-ENOMEM);
	mmgrab(current->mm);
	w->mm = current->mm;
	w->ctx = ctx;
	mutex_init(&w->lock);
	refcount_set(&w->ref, 1);
	INIT_WORK(&w->work, vwork_fn);
	init_task_work(&w->twork, vwork_task_fn);
	atomic_inc(&pvpass_vworks);
	return w;
}

/* Any context. */
void pvpass_vwork_queue(struct pvpass_vwork *w, bool here)
{
	if (atomic_xchg(&w->queued, 1))
		return;
	refcount_inc(&w->ref);
	if (here && current->mm == w->mm &&
	    !(current->flags & (PF_KTHREAD | PF_EXITING)) &&
	    !task_work_add(current, &w->twork, TWA_RESUME))
		return;
	vwork_to_worker(w);
}

void pvpass_vwork_stop(struct pvpass_vwork *w)
{
	mutex_lock(&w->lock);
	w->ctx = NULL;
	mutex_unlock(&w->lock);
	if (cancel_work_sync(&w->work))
		vwork_put(w);
}

void pvpass_vwork_put(struct pvpass_vwork *w)
{
	vwork_put(w);
}

void pvpass_vwork_wait_all(void)
{
	wait_var_event(&pvpass_vworks, !atomic_read(&pvpass_vworks));
	/* The last put's wake_up_var has returned into this module's text. */
	synchronize_rcu();
}

struct pvpass_kick {
	wait_queue_entry_t wait;
	poll_table pt;
	wait_queue_head_t *wqh;
	struct file *file;
	struct pvpass_vwork *w;
};

/* The eventfd was signalled: atomic context, its wait-queue lock held. */
static int kick_wake(wait_queue_entry_t *wait, unsigned int mode, int sync, void *key)
{
	struct pvpass_kick *k = container_of(wait, struct pvpass_kick, wait);

	if (key_to_poll(key) & EPOLLIN)
		pvpass_vwork_queue(k->w, true);
	return 0;
}

static void kick_ptable(struct file *file, wait_queue_head_t *wqh, poll_table *pt)
{
	struct pvpass_kick *k = container_of(pt, struct pvpass_kick, pt);

	k->wqh = wqh;
	add_wait_queue(wqh, &k->wait);
}

struct pvpass_kick *pvpass_kick_watch(int fd, struct pvpass_vwork *w)
{
	struct pvpass_kick *k;
	struct file *file;
	__poll_t mask;

	file = eventfd_fget(fd);
	if (IS_ERR(file))
		return ERR_CAST(file);
	k = kzalloc(sizeof(*k), GFP_KERNEL_ACCOUNT);
	if (!k) {
		fput(file);
		return ERR_PTR(-ENOMEM);
	}
	k->file = file;
	k->w = w;
	init_waitqueue_func_entry(&k->wait, kick_wake);
	init_poll_funcptr(&k->pt, kick_ptable);
	mask = vfs_poll(file, &k->pt);
	if (!k->wqh) {
		fput(file);
		kfree(k);
		return ERR_PTR(-EINVAL);
	}
	/* Kicks that came before the watch. */
	if (mask & EPOLLIN)
		pvpass_vwork_queue(w, true);
	return k;
}

void pvpass_kick_unwatch(struct pvpass_kick *k)
{
	/* Takes the wait-queue lock: no kick_wake runs after this. */
	remove_wait_queue(k->wqh, &k->wait);
	fput(k->file);
	kfree(k);
}

/*
 * Set bit @nr (0..7) of the byte at user address @uaddr of current's mm: a
 * page of the vhost dirty log, as vhost's set_bit_to_user() (atomic: QEMU
 * clears bits with atomic exchanges while the device sets them).
 */
int pvpass_log_set_bit(u64 uaddr, u32 nr)
{
	struct page *page;
	void *base;
	int r;

	r = pin_user_pages_fast(uaddr, 1, FOLL_WRITE, &page);
	if (r < 0)
		return r;
	if (r != 1)
		return -EFAULT;
	base = kmap_local_page(page);
	set_bit(nr + (uaddr & ~PAGE_MASK) * 8, base);
	kunmap_local(base);
	unpin_user_pages_dirty_lock(&page, 1, true);
	return 0;
}

struct eventfd_ctx *pvpass_eventfd_get(int fd)
{
	return eventfd_ctx_fdget(fd);
}

/*
 * The interface name of the tap behind @fd in the calling process, as
 * /proc/PID/fdinfo/FD shows it (tun's show_fdinfo prints "iff:\t<name>"),
 * into @name (IFNAMSIZ bytes, NUL padded). -EBADF if @fd is not open;
 * -EINVAL if it is not a /dev/net/tun file, or a queue attached to no
 * interface. Process context (tun takes the RTNL).
 */
int pvpass_tap_name(int fd, u8 *name)
{
	char buf[64] = {};
	struct seq_file m = { .buf = buf, .size = sizeof(buf) - 1 };
	struct inode *inode;
	char *end;
	size_t len;

	CLASS(fd, f)(fd);
	if (fd_empty(f))
		return -EBADF;
	inode = file_inode(fd_file(f));
	if (!S_ISCHR(inode->i_mode) || imajor(inode) != MISC_MAJOR ||
	    iminor(inode) != TUN_MINOR || !fd_file(f)->f_op->show_fdinfo)
		return -EINVAL;
	fd_file(f)->f_op->show_fdinfo(&m, fd_file(f));
	if (seq_has_overflowed(&m) || strncmp(buf, "iff:\t", 5))
		return -EINVAL;
	end = strchrnul(buf + 5, '\n');
	len = end - (buf + 5);
	if (len == 0 || len >= IFNAMSIZ)
		return -EINVAL;
	memset(name, 0, IFNAMSIZ);
	memcpy(name, buf + 5, len);
	return 0;
}
