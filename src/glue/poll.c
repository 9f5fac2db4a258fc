// SPDX-License-Identifier: GPL-2.0
/*
 * pvpass C glue for transmit polling: the timer that brings a device back to
 * its own thread after it left the guest's transmit notifications off, and
 * the task work that timer queues on a vCPU thread.
 *
 * Why C: the work is a task_work callback_head found with container_of on a
 * thread that KVM runs it on just before re-entering the guest
 * (kernel/entry/virt.c, xfer_to_guest_mode_handle_work), and the run must
 * hold the VM's srcu and check that the vCPU it serves is the one loaded
 * there (kvm_get_running_vcpu): the kernel crate wraps no task work, and
 * struct kvm is not in its bindings. The timer sits beside the task work it
 * queues, in the same refcounted struct. All policy is Rust
 * (src/transport/poll.rs, src/net/tx.rs).
 *
 * virtio-mmio: pvpass_poll_arm, on the vCPU thread inside an MMIO op (or a
 * poll run), records that thread and vCPU and starts the timer on this CPU.
 * At expiry the timer adds the task work to that thread (TWA_RESUME: the
 * thread is kicked out of the guest if it runs; a preempted one runs the
 * work when it next enters the guest) and re-arms itself as a watchdog: a
 * halted vCPU runs no task work, so if the work has not run by the next
 * expiry, Rust is told to interrupt the guest instead (pvpass_rs_poll_due),
 * whose handler then polls. The work calls pvpass_rs_poll_run only inside
 * KVM_RUN of the recorded vCPU; anywhere else (the thread went back to its
 * VMM for an exit, or is exiting) it falls back to the interrupt too.
 *
 * vhost transport: there is no vCPU; the timer calls pvpass_rs_poll_due,
 * which queues the device's work (task work on the interrupted thread if it
 * is the VMM's, else a worker; see vhost.c).
 *
 * Beside it, one plain timer a queue (0: receive, 1: transmit) for
 * notification coalescing (src/net/coal.rs): armed from any thread when a
 * used-buffer interrupt is held back, it calls pvpass_rs_coal_due in hard
 * interrupt context at expiry, which raises what is still held. It shares
 * the poll's lifetime (stop cancels it), so its context is the same.
 *
 * Lifetime: as vhost.c's pvpass_vwork: the Rust owner holds one reference,
 * a queued task work one more. pvpass_poll_stop refuses new arms, cancels
 * the timer and clears ctx under p->run (which every run holds while it
 * calls Rust), so no callback reaches Rust after it returns. A task work
 * cannot be cancelled by a module: unload waits for every pvpass_poll to be
 * freed (pvpass_poll_wait_all).
 */
#include <linux/hrtimer.h>
#include <linux/kvm_host.h>
#include <linux/mutex.h>
#include <linux/refcount.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/task_work.h>
#include <linux/wait_bit.h>

#include "glue.h"
#include "internal.h"

/* pvpass_polls not yet freed (module unload waits for 0). */
static atomic_t pvpass_polls = ATOMIC_INIT(0);

struct pvpass_coal {
	struct hrtimer timer;
	struct pvpass_poll *p;
	u32 q;
};

struct pvpass_poll {
	struct hrtimer timer;
	struct pvpass_coal coal[2];	/* notification coalescing, by queue */
	struct callback_head twork;
	spinlock_t lock;		/* task, vcpu, mmio, period, dead */
	struct task_struct *task;	/* referenced; NULL: vhost */
	struct kvm_vcpu *vcpu;
	struct pvpass_mmio *mmio;
	u64 period_ns;
	bool dead;
	struct mutex run;	/* held by a task-work run while it calls Rust, and by stop */
	void *ctx;		/* NULL once stopped */
	atomic_t queued;	/* the task work is queued and has not run */
	refcount_t ref;
};

static void poll_put(struct pvpass_poll *p)
{
	if (!refcount_dec_and_test(&p->ref))
		return;
	if (p->task)
		put_task_struct(p->task);
	kfree(p);
	if (atomic_dec_and_test(&pvpass_polls))
		wake_up_var(&pvpass_polls);
}

/* Hard interrupt context. */
static enum hrtimer_restart poll_timer(struct hrtimer *t)
{
	struct pvpass_poll *p = container_of(t, struct pvpass_poll, timer);
	enum hrtimer_restart ret = HRTIMER_NORESTART;
	unsigned long flags;
	bool due = false;

	spin_lock_irqsave(&p->lock, flags);
	if (p->dead) {
		/* Stop is waiting for this callback: nothing more. */
	} else if (!p->task) {
		due = true;
	} else if (atomic_read(&p->queued)) {
		/* The work queued at the last expiry has not run: halted. */
		due = true;
	} else {
		atomic_set(&p->queued, 1);
		refcount_inc(&p->ref);
		if (task_work_add(p->task, &p->twork, TWA_RESUME)) {
			/* The thread is exiting. */
			atomic_set(&p->queued, 0);
			refcount_dec(&p->ref);	/* never the last: the owner's */
			due = true;
		} else {
			hrtimer_forward_now(t, ns_to_ktime(p->period_ns));
			ret = HRTIMER_RESTART;
		}
	}
	spin_unlock_irqrestore(&p->lock, flags);
	if (due)
		pvpass_rs_poll_due(p->ctx);
	return ret;
}

/* Hard interrupt context. */
static enum hrtimer_restart coal_timer(struct hrtimer *t)
{
	struct pvpass_coal *c = container_of(t, struct pvpass_coal, timer);
	struct pvpass_poll *p = c->p;
	unsigned long flags;
	bool dead;

	spin_lock_irqsave(&p->lock, flags);
	dead = p->dead;
	spin_unlock_irqrestore(&p->lock, flags);
	/* Once dead, stop waits for this callback (hrtimer_cancel). */
	if (!dead)
		pvpass_rs_coal_due(p->ctx, c->q);
	return HRTIMER_NORESTART;
}

/* On the recorded thread, process context, no lock held. */
static void poll_task_fn(struct callback_head *cb)
{
	struct pvpass_poll *p = container_of(cb, struct pvpass_poll, twork);
	struct pvpass_mmio *mmio;
	struct kvm_vcpu *vcpu;
	int idx;

	atomic_set(&p->queued, 0);
	smp_mb__after_atomic();
	/* The watchdog: this is the run it waited for. */
	hrtimer_try_to_cancel(&p->timer);
	mutex_lock(&p->run);
	if (p->ctx) {
		spin_lock_irq(&p->lock);
		vcpu = p->vcpu;
		mmio = p->mmio;
		spin_unlock_irq(&p->lock);
		if (vcpu && mmio && !(current->flags & PF_EXITING) &&
		    pvpass_kvm.get_running_vcpu() == vcpu) {
			idx = srcu_read_lock(&mmio->kvm->srcu);
			pvpass_rs_poll_run(p->ctx, mmio, vcpu);
			srcu_read_unlock(&mmio->kvm->srcu, idx);
		} else {
			pvpass_rs_poll_due(p->ctx);
		}
	}
	mutex_unlock(&p->run);
	poll_put(p);
}

struct pvpass_poll *pvpass_poll_create(void *ctx)
{
	struct pvpass_poll *p;
	int i;

	p = kzalloc(sizeof(*p), GFP_KERNEL_ACCOUNT);
	if (!p)
		return ERR_PTR(-ENOMEM);
	for (i = 0; i < ARRAY_SIZE(p->coal); i++) {
		p->coal[i].p = p;
		p->coal[i].q = i;
		hrtimer_setup(&p->coal[i].timer, coal_timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL);
	}
	p->ctx = ctx;
	spin_lock_init(&p->lock);
	mutex_init(&p->run);
	refcount_set(&p->ref, 1);
	hrtimer_setup(&p->timer, poll_timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL_PINNED);
	init_task_work(&p->twork, poll_task_fn);
	atomic_inc(&pvpass_polls);
	return p;
}

/*
 * Poll in @ns nanoseconds. On virtio-mmio (@mmio and @vcpu set): on the vCPU
 * thread of @vcpu, inside its MMIO op or a poll run (kvm->srcu held); the
 * poll will run on this thread. On the vhost transport both are NULL.
 */
void pvpass_poll_arm(struct pvpass_poll *p, struct pvpass_mmio *mmio, struct kvm_vcpu *vcpu, u64 ns)
{
	struct task_struct *old = NULL;
	unsigned long flags;

	spin_lock_irqsave(&p->lock, flags);
	if (p->dead)
		goto out;
	if (vcpu && p->task != current) {
		old = p->task;
		p->task = get_task_struct(current);
	}
	p->vcpu = vcpu;
	p->mmio = mmio;
	p->period_ns = ns;
	/* A queued work will run and poll anyway: no earlier expiry needed. */
	if (!atomic_read(&p->queued))
		hrtimer_start(&p->timer, ns_to_ktime(ns), HRTIMER_MODE_REL_PINNED);
out:
	spin_unlock_irqrestore(&p->lock, flags);
	if (old)
		put_task_struct(old);
}

/* No poll is owed any more (the guest notifies again). Any context. */
void pvpass_poll_cancel(struct pvpass_poll *p)
{
	hrtimer_try_to_cancel(&p->timer);
}

/*
 * Coalescing of queue @q (0 or 1): call pvpass_rs_coal_due in @ns
 * nanoseconds (an armed timer is moved). Any context; refused once stopped.
 */
void pvpass_poll_coal_arm(struct pvpass_poll *p, u32 q, u64 ns)
{
	unsigned long flags;

	if (q >= ARRAY_SIZE(p->coal))
		return;
	spin_lock_irqsave(&p->lock, flags);
	if (!p->dead)
		hrtimer_start(&p->coal[q].timer, ns_to_ktime(ns), HRTIMER_MODE_REL);
	spin_unlock_irqrestore(&p->lock, flags);
}

/* Nothing held back on queue @q any more. Any context (never waits). */
void pvpass_poll_coal_cancel(struct pvpass_poll *p, u32 q)
{
	if (q < ARRAY_SIZE(p->coal))
		hrtimer_try_to_cancel(&p->coal[q].timer);
}

void pvpass_poll_stop(struct pvpass_poll *p)
{
	int i;

	spin_lock_irq(&p->lock);
	p->dead = true;
	spin_unlock_irq(&p->lock);
	hrtimer_cancel(&p->timer);
	for (i = 0; i < ARRAY_SIZE(p->coal); i++)
		hrtimer_cancel(&p->coal[i].timer);
	mutex_lock(&p->run);
	p->ctx = NULL;
	mutex_unlock(&p->run);
}

void pvpass_poll_put(struct pvpass_poll *p)
{
	poll_put(p);
}

void pvpass_poll_wait_all(void)
{
	wait_var_event(&pvpass_polls, !atomic_read(&pvpass_polls));
	/* The last put's wake_up_var has returned into this module's text. */
	synchronize_rcu();
}
