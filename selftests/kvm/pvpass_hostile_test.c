// SPDX-License-Identifier: GPL-2.0
/*
 * pvpass under concurrent attack: hostile guests and VMMs whose vCPUs run at
 * the same time as their neighbours', each vCPU on its own pthread, and VMMs
 * in processes of their own (fork: the child makes its VM and opens
 * /dev/pvpass itself, so another VM's thread delivers into it through the
 * remote pin path). Each test checks that the host thread under attack comes
 * back within a bound, that an unrelated neighbour keeps passing traffic,
 * that the counters name the reason, and that the module's pinned-page count
 * returns to where it was.
 *
 * Every wait is bounded (timed joins of "jobs", pthreads that run one host
 * call and record how long it took), so a module that does not bound its
 * work fails here instead of hanging the bed; whatever holds the host up is
 * released (stop flag, fault resolved) before the test goes on.
 */
#include "pvpass_util.h"

#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <linux/userfaultfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define QSZ		8
#define SQSZ		256	/* transmit queue of the storms: QueueNumMax */
#define HDR		12
#define FRAME_LEN	60
#define BUF_LEN		2048
#define GSO_LEN		60000	/* storm frames: TCP segments for the host port */

#define NF_CSUM		(1u << 0)
#define NF_HOST_TSO4	(1u << 11)

#define EXTRA_GPA	0xc0000000ULL
#define EXTRA_SLOT	10
#define OUTSIDE_GPA	0xe0000000ULL	/* in no memslot */
#define S_DRIVER_OK	4
#define S_NEEDS_RESET	64

DEFINE_RING(ring, QSZ);
DEFINE_RING(sring, SQSZ);	/* two pages */

_Static_assert(offsetof(struct ring, used) == USED_OFF(QSZ), "ring layout");
_Static_assert(offsetof(struct sring, used) == USED_OFF(SQSZ), "sring layout");

enum mode {
	M_TX_ROUNDS,	/* each run: params.burst frames to params.dst, QSZ per notify */
	M_RX_POST,	/* post params.rx_bufs buffers; each run: read InterruptStatus */
	M_RX_LOOP,	/* post QSZ buffers; take frames and repost until ctl.stop */
	M_STORM,	/* 256-entry transmit queue, head 0 made available for ever */
	M_ATTACH_SPIN,	/* bring the device up whenever the window answers */
	M_RX_REWRITE,	/* vCPU 0: post QSZ buffers, read InterruptStatus (and reset
			 * the device when it needs it) until ctl.stop; vCPU 1:
			 * rewrite the receive descriptors and avail ring meanwhile */
	M_RX_CHURN,	/* post QSZ buffers at rxbuf_gpa (never touched by the
			 * guest), repost each one used; GUEST_SYNC every
			 * sync_every rounds; reset the device if it needs it */
	M_TX_QUIET,	/* frames for ever, notifying only when avail_event asks
			 * (EVENT_IDX), each waited for: the device polls */
};

#define NF_EVENT_IDX	(1u << 29)

/* What the host tells each guest. */
static struct params {
	u64 base;
	u64 ring_gpa[2], ring_gva[2];	/* 0: receive, 1: transmit */
	u32 qnum[2];
	u64 rxbuf_gpa, txbuf_gpa, gsobuf_gpa;
	u32 feat;		/* driver features, low word (MAC always) */
	int mode;
	u8 me[6], dst[6], peer[6];
	u32 rx_bufs;		/* M_RX_POST */
	u32 burst;		/* M_TX_ROUNDS */
	u32 guest_producer;	/* M_STORM: vCPU 0 is the producer */
	u32 sync_every;		/* M_RX_LOOP, M_RX_CHURN: GUEST_SYNC every so many rounds */
	u64 ro_gpa;		/* M_RX_REWRITE: a read-only memslot */
} params;

/* Written by both sides at run time (the host through addr_gva2hva). */
static struct ctl {
	u32 go, stop;
	u64 produced;		/* M_STORM: chains made available */
	u64 from_peer, group, other;	/* M_RX_LOOP: frames by source */
	u64 ups;		/* M_ATTACH_SPIN: bring-ups served by pvpass */
	u32 hold, held;		/* M_RX_REWRITE: vCPU 0 asks vCPU 1 to pause */
	u64 rewrites, resets;	/* M_RX_REWRITE, M_RX_CHURN */
	u64 taken;		/* M_RX_CHURN: used buffers reposted */
} ctl;

static struct ring rings[2];
static struct sring storm_ring;
static u8 rxbuf[QSZ * BUF_LEN] __aligned(4096);
static u8 txbuf[BUF_LEN] __aligned(4096);
static u8 gsobuf[16 * 4096] __aligned(4096);

static const u8 mac_c[6] = { 0x52, 0x54, 0x00, 0xcc, 0x00, 0x03 };
static const u8 mac_d[6] = { 0x52, 0x54, 0x00, 0xdd, 0x00, 0x04 };
static const u8 nobody[6] = { 0x02, 0, 0, 0, 0, 0x99 };
static const u8 bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static void queue_up(u64 base, int q)
{
	u64 r = params.ring_gpa[q];
	u32 n = params.qnum[q];

	mmio_wr32(base, R_QUEUE_SEL, q);
	mmio_wr32(base, R_QUEUE_NUM, n);
	wr64(base, R_QUEUE_DESC, r);
	wr64(base, R_QUEUE_DRIVER, r + n * sizeof(struct desc));
	/* used ring: after avail (flags, idx, ring[n], used_event), 4-aligned */
	wr64(base, R_QUEUE_DEVICE, r + USED_OFF(n));
	mmio_wr32(base, R_QUEUE_READY, 1);
}

static void setup_device(u64 base)
{
	mmio_wr32(base, R_STATUS, 1 | 2);
	mmio_wr32(base, R_DRV_FEAT_SEL, 1);
	mmio_wr32(base, R_DRV_FEAT, 1);			/* VERSION_1 */
	mmio_wr32(base, R_DRV_FEAT_SEL, 0);
	mmio_wr32(base, R_DRV_FEAT, (1u << 5) | params.feat);	/* MAC + */
	mmio_wr32(base, R_STATUS, 1 | 2 | 8);
	GUEST_ASSERT(mmio_rd32(base, R_STATUS) & 8);
	queue_up(base, 0);
	queue_up(base, 1);
	mmio_wr32(base, R_STATUS, 1 | 2 | 8 | 4);
}

/* Make head @head available on the QSZ ring @r (no notify). */
static void post(struct ring *r, u16 head)
{
	r->avail.ring[r->avail.idx % QSZ] = head;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	WRITE_ONCE(r->avail.idx, r->avail.idx + 1);
}

static void fill_frame(u8 *f)
{
	int i;

	memset(f, 0, HDR);
	f += HDR;
	for (i = 0; i < 6; i++) {
		f[i] = params.dst[i];
		f[6 + i] = params.me[i];
	}
	f[12] = 0x88;
	f[13] = 0xb5;		/* local experimental ethertype */
	for (i = 14; i < FRAME_LEN; i++)
		f[i] = (u8)i;
}

/*
 * A 60000-byte TCP segment (GSO, partial checksum) to params.dst: each one
 * costs the device an skb and a 60 KB copy at the host port, so a storm of
 * them does not end just because the producer misses a few milliseconds.
 */
static void fill_gso_frame(u8 *f)
{
	static const u8 hdr[HDR] = { 1, 1, 54, 0, 1448 & 0xff, 1448 >> 8, 34, 0, 16, 0 };
	int i;

	memcpy(f, hdr, HDR);
	f += HDR;
	for (i = 0; i < 6; i++) {
		f[i] = params.dst[i];
		f[6 + i] = params.me[i];
	}
	f[12] = 0x08;
	f[13] = 0x00;
	for (i = 14; i < GSO_LEN; i++)
		f[i] = (u8)(i * 7);
}

static bool same_mac(const u8 *a, const u8 *b)
{
	int i;

	for (i = 0; i < 6; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

/*
 * The producer of F1: keep head 0 available whenever the device has caught
 * up with fewer than SQSZ chains outstanding. The device completes each
 * chain right after forwarding it, so the avail index never runs more than
 * the queue size ahead: the queue is never "broken", it just never ends.
 */
static void storm_producer(struct sring *tx)
{
	while (!READ_ONCE(ctl.go))
		cpu_relax();
	while (!READ_ONCE(ctl.stop)) {
		u16 a = tx->avail.idx;

		if ((u16)(a - READ_ONCE(tx->used.idx)) >= SQSZ)
			continue;
		tx->avail.ring[a % SQSZ] = 0;
		__atomic_thread_fence(__ATOMIC_RELEASE);
		WRITE_ONCE(tx->avail.idx, a + 1);
		WRITE_ONCE(ctl.produced, ctl.produced + 1);
	}
	GUEST_SYNC(ctl.produced);
	GUEST_DONE();
}

/*
 * F5's racing guest: whenever the window answers in the kernel (a read of
 * the magic register is served by pvpass), bring the device all the way up
 * and hold it at DRIVER_OK while the window lives. Accesses to a window
 * nobody serves exit to the host, which answers reads with 0.
 */
static void attach_spin(u64 base)
{
	while (!READ_ONCE(ctl.stop)) {
		if (mmio_rd32(base, R_MAGIC) != VIRTIO_MAGIC)
			continue;
		mmio_wr32(base, R_STATUS, 0);
		mmio_wr32(base, R_STATUS, 1 | 2);
		mmio_wr32(base, R_DRV_FEAT_SEL, 1);
		mmio_wr32(base, R_DRV_FEAT, 1);
		mmio_wr32(base, R_DRV_FEAT_SEL, 0);
		mmio_wr32(base, R_DRV_FEAT, 1u << 5);
		mmio_wr32(base, R_STATUS, 1 | 2 | 8);
		queue_up(base, 0);	/* the receive queue: its rings get pinned */
		mmio_wr32(base, R_STATUS, 1 | 2 | 8 | 4);
		WRITE_ONCE(ctl.ups, ctl.ups + 1);
		while (!READ_ONCE(ctl.stop) && mmio_rd32(base, R_MAGIC) == VIRTIO_MAGIC)
			cpu_relax();
	}
	GUEST_DONE();
}

/* Make every receive descriptor a good buffer and post them all. */
static void post_all(struct ring *rx)
{
	u32 i;

	for (i = 0; i < QSZ; i++) {
		rx->desc[i] = (struct desc){ params.rxbuf_gpa + i * BUF_LEN, BUF_LEN, F_WRITE, 0 };
		post(rx, i);
	}
}

/* Reset the device, bring it up again on clean rings, post all buffers. */
static void restart_device(u64 base, struct ring *rx, struct ring *tx)
{
	mmio_wr32(base, R_STATUS, 0);
	memset(rx, 0, sizeof(*rx));
	memset(tx, 0, sizeof(*tx));
	setup_device(base);
	post_all(rx);
	mmio_wr32(base, R_QUEUE_NOTIFY, 0);
}

static u64 xorshift(u64 *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * A bad descriptor address for buffer @i. A frame the device wrongly writes
 * there lands in B's own buffers, rings or read-only slot, never in other
 * guest data (B's code would go with it).
 */
static u64 rewrite_addr(u64 r, u32 i)
{
	u64 good = params.rxbuf_gpa + i * BUF_LEN;
	u64 ring = params.ring_gpa[0];

	switch (r % 8) {
	case 0:
		return OUTSIDE_GPA + (r >> 3) % 4096;	/* in no memslot */
	case 1:
		return 1ULL << 46;			/* far above RAM */
	case 2:
		return params.ro_gpa + (r >> 3) % 2048;	/* read-only memslot */
	case 3:
		return good + 1;			/* odd */
	case 4:					/* odd, into the next buffer */
		return params.rxbuf_gpa + (i % (QSZ - 1) + 1) * BUF_LEN - 1;
	case 5:
		return ~0ULL - 15;			/* addr + len overflows */
	case 6:
		return ring;				/* over its own ring */
	default:					/* across into the next ring */
		return ring + sizeof(struct ring) - 8;
	}
}

/*
 * vCPU 1 of M_RX_REWRITE: while the device delivers into the receive queue
 * (on the sender's thread, or vCPU 0's), rewrite its descriptors field by
 * field and its avail ring entries, and make more heads available whenever
 * fewer than QSZ are outstanding. Pauses while vCPU 0 resets the device.
 */
static void rewriter(struct ring *rx)
{
	static const u32 lens[] = { 0, 1, 11, 64, BUF_LEN, 65536, 0xffffffff };
	u64 s = 0x9e3779b97f4a7c15ULL;

	while (!READ_ONCE(ctl.stop)) {
		u64 r = xorshift(&s);
		u32 i = r & (QSZ - 1);
		volatile struct desc *d = &rx->desc[i];
		u64 addr = params.rxbuf_gpa + i * BUF_LEN;
		u32 len = BUF_LEN;
		u16 flags = F_WRITE, next = 0, a;

		if (READ_ONCE(ctl.hold)) {
			WRITE_ONCE(ctl.held, 1);
			while (READ_ONCE(ctl.hold) && !READ_ONCE(ctl.stop))
				cpu_relax();
			continue;
		}
		r >>= 3;
		switch (r % 8) {
		case 0: case 1: case 2:
			break;					/* a good one */
		case 3:
			addr = rewrite_addr(r >> 3, i);
			break;
		case 4:
			len = lens[(r >> 3) % 7];
			break;
		case 5:
			flags = (r >> 3) & 7;			/* NEXT, WRITE, INDIRECT */
			next = (r >> 6) & 15;			/* half out of range */
			break;
		default:
			addr = rewrite_addr(r >> 3, i);
			len = lens[(r >> 10) % 7];
			flags = (r >> 14) & 7;
			next = (r >> 17) & 15;
		}
		/* Field by field: the device may see any mix. */
		d->addr = addr;
		d->len = len;
		d->flags = flags;
		d->next = next;

		r = xorshift(&s);
		/* An avail entry: 1 in 4 may be a head out of range. */
		WRITE_ONCE(rx->avail.ring[r & (QSZ - 1)],
			   (r >> 3) % 4 ? (r >> 5) & (QSZ - 1) : (r >> 5) & 15);
		a = rx->avail.idx;
		if ((r >> 9) % 4 == 0 && (u16)(a - READ_ONCE(rx->used.idx)) < QSZ) {
			__atomic_thread_fence(__ATOMIC_RELEASE);
			WRITE_ONCE(rx->avail.idx, a + 1);
		}
		WRITE_ONCE(ctl.rewrites, ctl.rewrites + 1);
	}
	GUEST_SYNC(ctl.rewrites);
	GUEST_DONE();
}

static void guest_main(u64 cpu)
{
	u64 base = params.base;
	struct ring *rx = (struct ring *)params.ring_gva[0];
	struct ring *tx = (struct ring *)params.ring_gva[1];
	struct sring *stx = (struct sring *)params.ring_gva[1];
	u16 seen = 0;
	u32 i;

	if (params.mode == M_STORM && params.guest_producer && cpu == 0)
		storm_producer(stx);
	if (params.mode == M_ATTACH_SPIN)
		attach_spin(base);
	if (params.mode == M_RX_REWRITE && cpu == 1)
		rewriter(rx);
	setup_device(base);
	switch (params.mode) {
	case M_TX_ROUNDS:
		fill_frame(txbuf);
		for (i = 0; i < QSZ; i++)
			tx->desc[i] = (struct desc){ params.txbuf_gpa, HDR + FRAME_LEN, 0, 0 };
		GUEST_SYNC(0);
		for (;;) {
			for (i = 0; i < params.burst; i++) {
				post(tx, i % QSZ);
				if ((i + 1) % QSZ && i + 1 < params.burst)
					continue;
				mmio_wr32(base, R_QUEUE_NOTIFY, 1);
				/* Served inside the exit: all completed. */
				GUEST_ASSERT_EQ(READ_ONCE(tx->used.idx), tx->avail.idx);
			}
			GUEST_SYNC(READ_ONCE(tx->used.idx));
		}
	case M_TX_QUIET:
		fill_frame(txbuf);
		GUEST_SYNC(0);
		for (i = 0;; i++) {
			u16 old = tx->avail.idx;

			tx->desc[i % QSZ] = (struct desc){ params.txbuf_gpa, HDR + FRAME_LEN, 0, 0 };
			post(tx, i % QSZ);
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			if ((u16)(old - READ_ONCE(tx->used.avail_event)) < 1)
				mmio_wr32(base, R_QUEUE_NOTIFY, 1);
			while (READ_ONCE(tx->used.idx) != (u16)(old + 1))
				asm volatile("pause");
			WRITE_ONCE(ctl.produced, ctl.produced + 1);
		}
	case M_RX_POST:
		for (i = 0; i < params.rx_bufs; i++) {
			rx->desc[i] = (struct desc){ params.rxbuf_gpa + i * BUF_LEN, BUF_LEN,
						     F_WRITE, 0 };
			post(rx, i);
		}
		mmio_wr32(base, R_QUEUE_NOTIFY, 0);
		GUEST_SYNC(0);
		for (;;) {
			/* As an interrupt handler would: delivers what waits. */
			mmio_rd32(base, R_INT_STATUS);
			GUEST_SYNC(READ_ONCE(rx->used.idx));
		}
	case M_RX_LOOP:
		for (i = 0; i < QSZ; i++) {
			rx->desc[i] = (struct desc){ params.rxbuf_gpa + i * BUF_LEN, BUF_LEN,
						     F_WRITE, 0 };
			post(rx, i);
		}
		mmio_wr32(base, R_QUEUE_NOTIFY, 0);
		GUEST_SYNC(0);
		while (!READ_ONCE(ctl.stop)) {
			u32 st;
			u16 u;

			if (params.sync_every && !(++i % params.sync_every))
				GUEST_SYNC(ctl.from_peer);
			st = mmio_rd32(base, R_INT_STATUS);
			if (st)
				mmio_wr32(base, R_INT_ACK, st);
			u = READ_ONCE(rx->used.idx);
			if (u == seen)
				continue;
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			for (; seen != u; seen++) {
				u32 id = rx->used.ring[seen % QSZ].id;
				const u8 *f;

				GUEST_ASSERT(id < QSZ);
				f = rxbuf + id * BUF_LEN + HDR;
				if (same_mac(f + 6, params.peer))
					WRITE_ONCE(ctl.from_peer, ctl.from_peer + 1);
				else if (f[0] & 1)
					WRITE_ONCE(ctl.group, ctl.group + 1);
				else
					WRITE_ONCE(ctl.other, ctl.other + 1);
				post(rx, id);
			}
			mmio_wr32(base, R_QUEUE_NOTIFY, 0);
		}
		GUEST_SYNC(ctl.from_peer);
		break;
	case M_RX_REWRITE:		/* vCPU 0 */
		post_all(rx);
		mmio_wr32(base, R_QUEUE_NOTIFY, 0);
		GUEST_SYNC(0);
		while (!READ_ONCE(ctl.stop)) {
			u32 st = mmio_rd32(base, R_INT_STATUS);	/* drains */

			if (st)
				mmio_wr32(base, R_INT_ACK, st);
			if (!(mmio_rd32(base, R_STATUS) & S_NEEDS_RESET))
				continue;
			WRITE_ONCE(ctl.hold, 1);
			while (!READ_ONCE(ctl.held) && !READ_ONCE(ctl.stop))
				cpu_relax();
			restart_device(base, rx, tx);
			WRITE_ONCE(ctl.resets, ctl.resets + 1);
			WRITE_ONCE(ctl.held, 0);
			WRITE_ONCE(ctl.hold, 0);
		}
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		/* After the attack (vCPU 1 stopped): a clean restart. */
		restart_device(base, rx, tx);
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		for (;;) {
			mmio_rd32(base, R_INT_STATUS);
			GUEST_SYNC(READ_ONCE(rx->used.idx));
		}
	case M_RX_CHURN:
		post_all(rx);
		mmio_wr32(base, R_QUEUE_NOTIFY, 0);
		GUEST_SYNC(0);
		for (i = 1;; i++) {
			u32 st = mmio_rd32(base, R_INT_STATUS);
			u16 u;

			if (st)
				mmio_wr32(base, R_INT_ACK, st);
			if (mmio_rd32(base, R_STATUS) & S_NEEDS_RESET) {
				restart_device(base, rx, tx);
				WRITE_ONCE(ctl.resets, ctl.resets + 1);
				seen = 0;
			}
			u = READ_ONCE(rx->used.idx);
			if (u != seen) {
				__atomic_thread_fence(__ATOMIC_ACQUIRE);
				for (; seen != u; seen++) {
					u32 id = rx->used.ring[seen % QSZ].id;

					GUEST_ASSERT(id < QSZ);
					post(rx, id);	/* its contents are not read */
					WRITE_ONCE(ctl.taken, ctl.taken + 1);
				}
				mmio_wr32(base, R_QUEUE_NOTIFY, 0);
			}
			if (!(i % params.sync_every))
				GUEST_SYNC(ctl.taken);
		}
	case M_STORM:
		fill_gso_frame(gsobuf);
		stx->desc[0] = (struct desc){ params.gsobuf_gpa, HDR + GSO_LEN, 0, 0 };
		GUEST_SYNC(0);		/* the host starts the producer */
		mmio_wr32(base, R_QUEUE_NOTIFY, 1);	/* the one notify */
		GUEST_SYNC(READ_ONCE(stx->used.idx));
		/* Then an ordinary busy sender's notifies, until told to stop. */
		while (!READ_ONCE(ctl.stop))
			mmio_wr32(base, R_QUEUE_NOTIFY, 1);
		GUEST_SYNC(0);
		break;
	}
	GUEST_DONE();
}

/* ---- host side ------------------------------------------------------------ */

static u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static long ms_since(u64 t0)
{
	return (long)((now_ns() - t0) / 1000000);
}


/* pinned_pages once it is @want, polled for up to 2 s (teardown may be async). */
static long pinned_pages_settled(long want)
{
	long n = pinned_pages();
	int i;

	for (i = 0; i < 200 && n != want; i++) {
		usleep(10000);
		n = pinned_pages();
	}
	return n;
}

/*
 * A job: one host call (a KVM_RUN, a DETACH, ...) on a pthread of its own,
 * so that the test can wait for it with a bound and measure it.
 */
struct job {
	pthread_t t;
	bool running;		/* started, not joined */
	void (*fn)(struct job *j);
	struct kvm_vcpu *vcpu;
	int fd;
	struct pvpass_detach det;
	int rounds;		/* vcpu_rounds: runs to do, 0: until stop */
	int pause_us;		/* vcpu_rounds: sleep between runs */
	int stop;
	void *ptr;
	/* results */
	int done;
	u64 t0, t1, max_ns;
	int rc, err, runs;
	u32 exit_reason;
	pid_t tid;		/* the job's thread, for the stack of one that is stuck */
	bool in_guest;		/* stuck, running its guest (see dump_stuck) */
	u64 cmd, arg;
	struct ucall uc;
};

static void *job_main(void *arg)
{
	struct job *j = arg;

	WRITE_ONCE(j->tid, gettid());
	j->fn(j);
	j->t1 = now_ns();
	__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void job_start(struct job *j, void (*fn)(struct job *))
{
	TEST_ASSERT(!j->running, "job restarted while it runs");
	j->fn = fn;
	j->done = 0;
	j->max_ns = 0;
	j->runs = 0;
	j->t0 = now_ns();
	TEST_ASSERT(!pthread_create(&j->t, NULL, job_main, j), "pthread_create");
	j->running = true;
}

/* utime + guest time and stime of thread @tid, in ticks (proc(5) stat). */
static bool thread_times(pid_t tid, unsigned long *user, unsigned long *sys, char *state)
{
	char path[64], buf[1024], *p;
	int fd, n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	p = strrchr(buf, ')');		/* the name may hold spaces */
	return p && sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			   state, user, sys) == 3;
}

/*
 * A job that did not come back: log where its thread spends its time over
 * half a second. Mostly user time (a vCPU's guest time counts as user time)
 * means the vCPU keeps running its guest (@j->in_guest), not a thread stuck
 * in the kernel (in pvpass or KVM).
 */
static void dump_stuck(struct job *j)
{
	unsigned long u0, s0, u1, s1;
	char st0, st1;
	pid_t tid = READ_ONCE(j->tid);

	if (!thread_times(tid, &u0, &s0, &st0))
		return;
	usleep(500000);
	if (!thread_times(tid, &u1, &s1, &st1))
		return;
	j->in_guest = st1 == 'R' && u1 - u0 > 2 * (s1 - s0);
	fprintf(stderr, "# stuck job (thread %d): state %c, over 0.5 s %lu ticks in user/guest, %lu in the kernel%s\n",
		tid, st1, u1 - u0, s1 - s0, j->in_guest ? ": it runs its guest" : "");
}

/* Wait up to @ms for the job; true (and joined) if it is done. */
static bool job_wait(struct job *j, int ms)
{
	struct timespec end;

	if (!j->running)	/* never started, or joined already */
		return true;
	clock_gettime(CLOCK_REALTIME, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	if (pthread_timedjoin_np(j->t, NULL, &end)) {
		dump_stuck(j);
		return false;
	}
	j->running = false;
	return true;
}

static long job_ms(struct job *j)
{
	return __atomic_load_n(&j->done, __ATOMIC_ACQUIRE) ? (long)((j->t1 - j->t0) / 1000000) : -1;
}

/* One KVM_RUN (EINTR retried) to the next exit to userspace. */
static void vcpu_step(struct job *j)
{
	struct kvm_vcpu *vcpu = j->vcpu;
	int r;

	do {
		r = __vcpu_run(vcpu);
	} while (r == -1 && errno == EINTR);
	j->rc = r;
	j->err = r ? errno : 0;
	j->exit_reason = vcpu->run->exit_reason;
	j->cmd = UCALL_NONE;
	if (!r && j->exit_reason == KVM_EXIT_IO) {
		j->cmd = get_ucall(vcpu, &j->uc);
		j->arg = j->uc.args[1];
	}
}

/* KVM_RUN to the guest's next GUEST_SYNC, j->rounds times (0: until
 * j->stop), keeping the longest. */
static void vcpu_rounds(struct job *j)
{
	while (j->rounds ? j->runs < j->rounds : !READ_ONCE(j->stop)) {
		u64 t = now_ns();

		vcpu_step(j);
		t = now_ns() - t;
		if (t > j->max_ns)
			j->max_ns = t;
		if (j->cmd != UCALL_SYNC)
			break;
		j->runs++;
		if (j->pause_us)
			usleep(j->pause_us);
	}
}

static void detach_step(struct job *j)
{
	j->rc = ioctl(j->fd, PVPASS_DETACH, &j->det);
	j->err = j->rc ? errno : 0;
}

/* A finished run job stopped at a GUEST_SYNC (a guest assert is reported). */
#define EXPECT_SYNCED(j, who) do {						\
	if ((j)->cmd == UCALL_ABORT)						\
		REPORT_GUEST_ASSERT((j)->uc);					\
	EXPECT_EQ(UCALL_SYNC, (j)->cmd)						\
		TH_LOG("%s: exit reason %u (%s), KVM_RUN rc %d errno %d", who,	\
		       (j)->exit_reason, exit_reason_str((j)->exit_reason),	\
		       (j)->rc, (j)->err);					\
} while (0)

struct guest {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu[2];
	int id;
};

/* Settings for the next start(); reset to zero by it. */
static struct params next;
/* If set: the next start() puts the transmit ring in this (shared) memory. */
static void *next_shared;

static struct guest start(int pv, int mode, const u8 *me, const u8 *dst, int nr_vcpus)
{
	struct guest g = { 0 };
	int i;

	g.vm = vm_create_with_vcpus(nr_vcpus, guest_main, g.vcpu);
	virt_map(g.vm, WIN_GPA, WIN_GPA, 1);
	for (i = 0; i < nr_vcpus; i++)
		vcpu_args_set(g.vcpu[i], 1, i);
	params = next;
	next = (struct params){ 0 };
	params.base = WIN_GPA;
	params.mode = mode;
	for (i = 0; i < 2; i++) {
		params.ring_gva[i] = (u64)&rings[i];
		params.qnum[i] = QSZ;
	}
	if (mode == M_STORM) {
		params.ring_gva[1] = (u64)&storm_ring;
		params.qnum[1] = SQSZ;
	}
	for (i = 0; i < 2; i++)
		params.ring_gpa[i] = addr_gva2gpa(g.vm, params.ring_gva[i]);
	if (next_shared) {
		vm_set_user_memory_region(g.vm, EXTRA_SLOT, 0, EXTRA_GPA, sizeof(struct sring),
					  next_shared);
		virt_map(g.vm, EXTRA_GPA, EXTRA_GPA, sizeof(struct sring) / 4096);
		params.ring_gva[1] = params.ring_gpa[1] = EXTRA_GPA;
		next_shared = NULL;
	}
	if (!params.rxbuf_gpa)		/* else where the test put them */
		params.rxbuf_gpa = addr_gva2gpa(g.vm, (gva_t)rxbuf);
	params.txbuf_gpa = addr_gva2gpa(g.vm, (gva_t)txbuf);
	params.gsobuf_gpa = addr_gva2gpa(g.vm, (gva_t)gsobuf);
	if (mode == M_STORM)
		params.feat |= NF_CSUM | NF_HOST_TSO4;
	memcpy(params.me, me, 6);
	memcpy(params.dst, dst, 6);
	sync_global_to_guest(g.vm, params);
	g.id = attach(pv, g.vm, WIN_GPA, 5, me);
	TEST_ASSERT(g.id > 0, "attach: %s", strerror(-g.id));
	return g;
}

static void finish(int pv, struct guest *g)
{
	detach_and_free(pv, g->id, g->vm);
}

static struct ctl *ctl_of(struct guest *g)
{
	return addr_gva2hva(g->vm, (gva_t)&ctl);
}

/* Reap @pid within @ms. */
static bool reap(pid_t pid, int ms, int *status)
{
	u64 t0 = now_ns();

	do {
		if (waitpid(pid, status, WNOHANG) == pid)
			return true;
		usleep(5000);
	} while (ms_since(t0) < ms);
	return false;
}

/* Read an int from a child within @ms: false on timeout or EOF. */
static bool read_int(int fd, int *v, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && read(fd, v, sizeof(*v)) == sizeof(*v);
}

/* Is @id listed (any file) and not a released husk? */
static bool listed_live(int pv, int id)
{
	struct pvpass_info info[PVPASS_MAX_ATTACH];
	struct pvpass_list l = { .count = PVPASS_MAX_ATTACH,
				 .entries = (__u64)(unsigned long)info };
	u32 i;

	TEST_ASSERT(!ioctl(pv, PVPASS_LIST, &l), "LIST: %s", strerror(errno));
	for (i = 0; i < l.count && i < PVPASS_MAX_ATTACH; i++)
		if ((int)info[i].id == id)
			return !(info[i].flags & PVPASS_INFO_RELEASED);
	return false;
}

static struct pvpass_stats any_stats(int pv, int id)
{
	struct pvpass_stats s = { .id = id, .flags = PVPASS_F_ANY_FILE };

	TEST_ASSERT(!ioctl(pv, PVPASS_GET_STATS, &s), "GET_STATS(%d): %s", id, strerror(errno));
	return s;
}

/* Bring pvpsw0 (the host port) up, so that frames flooded to it cost an skb. */
static void host_port_up(void)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	strcpy(ifr.ifr_name, "pvpsw0");
	TEST_ASSERT(s >= 0 && !ioctl(s, SIOCGIFFLAGS, &ifr), "pvpsw0: %s", strerror(errno));
	ifr.ifr_flags |= IFF_UP;
	TEST_ASSERT(!ioctl(s, SIOCSIFFLAGS, &ifr), "pvpsw0 up: %s", strerror(errno));
	close(s);
}

/* ---- F1: a transmit storm inside one exit ---------------------------------- */

/*
 * F1. Guest A has two vCPUs: vCPU 0 keeps head 0 available on its 256-entry
 * transmit queue for as long as the host lets it, vCPU 1 notifies once.
 * The frames (60 KB TCP segments) go to an unknown MAC: flooded, to the host
 * port. Must hold: the notify's KVM_RUN comes back within 1 s while the
 * producer still runs, having left work for later (tx_yields); a DETACH
 * from another thread (an admin tool: another file, PVPASS_F_ANY_FILE) while
 * A keeps storming completes within 1 s; no pin outlives the device.
 */
TEST(tx_producer_storm_exit_is_bounded)
{
	int pv = pvpass_open(), admin = pvpass_open();
	long base = pinned_pages();
	struct job prod = { 0 }, dev = { 0 }, more = { 0 }, det = { 0 };
	struct pvpass_stats sa;
	struct sring *ring;
	struct guest a;
	struct ctl *ca;
	bool back, gone;
	u64 t0;

	ASSERT_GE(base, 0);
	host_port_up();
	next.guest_producer = 1;
	a = start(pv, M_STORM, mac_a, nobody, 2);
	ca = ctl_of(&a);
	ring = addr_gva2hva(a.vm, (gva_t)&storm_ring);
	ASSERT_EQ(0, sync_vcpu(a.vcpu[1]));		/* A's device is up */

	prod.vcpu = a.vcpu[0];
	job_start(&prod, vcpu_step);
	WRITE_ONCE(ca->go, 1);
	for (t0 = now_ns(); READ_ONCE(ring->avail.idx) < SQSZ && ms_since(t0) < 3000;)
		usleep(1000);
	EXPECT_EQ(SQSZ, READ_ONCE(ring->avail.idx)) TH_LOG("the producer did not start");

	dev.vcpu = a.vcpu[1];
	job_start(&dev, vcpu_step);			/* the one notify */
	back = job_wait(&dev, 2000);
	EXPECT_TRUE(back) TH_LOG("the notify's KVM_RUN had not returned after 2 s (%llu chains made available so far)",
				 (unsigned long long)READ_ONCE(ca->produced));
	if (back) {
		EXPECT_LT(job_ms(&dev), 1000);
		EXPECT_SYNCED(&dev, "notifier");
		EXPECT_FALSE(READ_ONCE(prod.done)) TH_LOG("the producer stopped");
		TH_LOG("the notify returned after %ld ms", job_ms(&dev));
		/* A keeps notifying, as a busy sender does, while it is detached. */
		more.vcpu = a.vcpu[1];
		job_start(&more, vcpu_step);
		usleep(100000);
		/*
		 * Detach only once it stormed past one exit's budget: on a busy
		 * machine the producer vCPU may have made fewer chains by now
		 * (a CI run under load saw 171 frames sent at the DETACH).
		 */
		for (t0 = now_ns(); stats(pv, a.id).tx_frames <= 256 && ms_since(t0) < 5000;)
			usleep(10000);
	}
	det.fd = admin;
	det.det = (struct pvpass_detach){ .id = a.id, .flags = PVPASS_F_ANY_FILE };
	job_start(&det, detach_step);
	gone = job_wait(&det, 1500);
	EXPECT_TRUE(gone) TH_LOG("DETACH had not returned after 1.5 s");
	if (gone) {
		EXPECT_LT(job_ms(&det), 1000);
		EXPECT_EQ(0, det.rc) TH_LOG("DETACH: %s", strerror(det.err));
	}
	EXPECT_FALSE(READ_ONCE(prod.done)) TH_LOG("the producer stopped");

	/* Release the guest, then everything must come back. */
	WRITE_ONCE(ca->stop, 1);
	ASSERT_TRUE(job_wait(&prod, 5000));
	ASSERT_TRUE(job_wait(&dev, 5000));
	ASSERT_TRUE(job_wait(&more, 5000));
	ASSERT_TRUE(job_wait(&det, 5000));
	if (!back)
		TH_LOG("the notify returned %ld ms after it began, only once the producer stopped",
		       job_ms(&dev));
	if (!gone)
		TH_LOG("DETACH took %ld ms", job_ms(&det));
	EXPECT_SYNCED(&prod, "producer");
	if (more.t0) {	/* after the DETACH the window belongs to the VMM */
		EXPECT_EQ(KVM_EXIT_MMIO, more.exit_reason);
	}
	sa = stats(pv, a.id);
	TH_LOG("A: %llu chains made available, tx_frames %llu, tx_yields %llu, bad headers %llu",
	       (unsigned long long)ca->produced, (unsigned long long)sa.tx_frames,
	       (unsigned long long)sa.tx_yields, (unsigned long long)sa.drop_tx_bad_hdr);
	EXPECT_GE(sa.tx_yields, 1);
	EXPECT_LT(256, sa.tx_frames);			/* it did storm */
	EXPECT_EQ(1, sa.released);
	EXPECT_EQ(0, sa.drop_tx_bad_chain + sa.drop_tx_bad_hdr);
	finish(pv, &a);
	EXPECT_EQ(base, pinned_pages_settled(base));
	close(admin);
	close(pv);
}

/* Keeps head 0 available on a transmit ring the process shares with a VM. */
static void host_producer(struct job *j)
{
	struct sring *r = j->ptr;

	while (!READ_ONCE(j->stop)) {
		u16 a = r->avail.idx;

		if ((u16)(a - __atomic_load_n(&r->used.idx, __ATOMIC_ACQUIRE)) >= SQSZ)
			continue;
		r->avail.ring[a % SQSZ] = 0;
		__atomic_store_n(&r->avail.idx, a + 1, __ATOMIC_RELEASE);
		j->runs++;
	}
}

/*
 * A VMM in a process of its own: fork, the child runs @vmm(report fd,
 * command fd) and exits; the parent keeps @out[0] (the child's reports) and
 * @cmd[1] (commands to it). The child dies with the parent.
 */
static pid_t fork_vmm(void (*vmm)(int out, int cmd), int out[2], int cmd[2])
{
	pid_t child;

	TEST_ASSERT(!pipe(out) && !pipe(cmd), "pipe: %s", strerror(errno));
	child = fork();
	TEST_ASSERT(child >= 0, "fork: %s", strerror(errno));
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(out[0]);
		close(cmd[1]);
		vmm(out[1], cmd[0]);
		_exit(5);
	}
	close(out[1]);
	close(cmd[0]);
	return child;
}

/* The child of sigkill_of_storming_vmm_is_prompt: a VMM whose guest storms. */
/* Its transmit ring, shared with the test (set before the fork). */
static struct sring *storm_shared;

static void storming_vmm(int out, int cmd)
{
	void *shared = storm_shared;

	int pv = open(PVPASS_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	struct guest g;

	if (pv < 0)
		_exit(2);
	next_shared = shared;
	g = start(pv, M_STORM, mac_a, nobody, 1);
	if (sync_vcpu(g.vcpu[0]) != 0)		/* device up */
		_exit(3);
	if (write(out, &g.id, sizeof(g.id)) != sizeof(g.id))
		_exit(4);
	for (;;)				/* notify, then notify for ever */
		vcpu_run(g.vcpu[0]);
}

/*
 * The storm of F1 in a VMM of its own (forked), with its transmit ring in
 * memory it shares with another process (as with a vhost-user backend): the
 * other process keeps the ring full, so the VMM's death does not end the
 * storm, only pvpass noticing the fatal signal does. The frames (60 KB TCP
 * segments) go to an unknown MAC (flooded, to the host port). Must hold: a
 * neighbour pair (C to D, in this process) passes a frame during the storm,
 * within 1 s; after SIGKILL the VMM is gone within 2 s, its attachment
 * within 2 s more, and every pin with it.
 */
TEST(sigkill_of_storming_vmm_is_prompt)
{
	struct sring *shared = mmap(NULL, sizeof(struct sring), PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct job prod = { 0 }, jc = { 0 }, jd = { 0 };
	int p[2], cmd[2], id = 0, status = 0, pv, i;
	bool reaped, listed = true, c_back;
	struct guest c, d;
	long base = pinned_pages();
	pid_t child;
	u16 u0;
	u64 t0;

	ASSERT_GE(base, 0);
	ASSERT_NE(MAP_FAILED, shared);
	host_port_up();
	storm_shared = shared;
	child = fork_vmm(storming_vmm, p, cmd);
	pv = pvpass_open();
	next.rx_bufs = 1;
	d = start(pv, M_RX_POST, mac_d, mac_c, 1);
	next.burst = 1;
	c = start(pv, M_TX_ROUNDS, mac_c, mac_d, 1);
	ASSERT_EQ(0, sync_vcpu(d.vcpu[0]));
	ASSERT_EQ(0, sync_vcpu(c.vcpu[0]));
	if (!read_int(p[0], &id, 20000)) {
		kill(child, SIGKILL);
		reap(child, 5000, &status);
		ASSERT_TRUE(false) TH_LOG("the child VMM did not come up (status %#x)", status);
	}
	ASSERT_GT(id, 0);
	prod.ptr = shared;
	job_start(&prod, host_producer);
	u0 = READ_ONCE(shared->used.idx);
	for (t0 = now_ns(); READ_ONCE(shared->used.idx) == u0 && ms_since(t0) < 3000;)
		usleep(1000);
	usleep(300000);
	u0 = READ_ONCE(shared->used.idx);
	usleep(100000);
	EXPECT_NE(u0, READ_ONCE(shared->used.idx)) TH_LOG("the child's guest is not storming");

	/* The neighbours meanwhile. */
	jc.vcpu = c.vcpu[0];
	job_start(&jc, vcpu_step);
	c_back = job_wait(&jc, 1500);
	EXPECT_TRUE(c_back) TH_LOG("C's KVM_RUN (a frame to D) had not returned after 1.5 s");
	if (c_back) {
		EXPECT_LT(job_ms(&jc), 1000);
		EXPECT_SYNCED(&jc, "C");
		jd.vcpu = d.vcpu[0];
		job_start(&jd, vcpu_step);
		EXPECT_TRUE(job_wait(&jd, 1500));
		EXPECT_SYNCED(&jd, "D");
		EXPECT_EQ(1, jd.arg) TH_LOG("D did not get C's frame");
	}
	u0 = READ_ONCE(shared->used.idx);

	ASSERT_EQ(0, kill(child, SIGKILL));
	t0 = now_ns();
	reaped = reap(child, 2000, &status);
	EXPECT_TRUE(reaped) TH_LOG("the SIGKILLed VMM was still there after 2 s, its ring still moving: %s",
				   READ_ONCE(shared->used.idx) != u0 ? "yes" : "no");
	if (reaped)
		TH_LOG("reaped %ld ms after SIGKILL", ms_since(t0));
	WRITE_ONCE(prod.stop, 1);
	ASSERT_TRUE(job_wait(&prod, 5000));
	ASSERT_TRUE(job_wait(&jc, 5000));
	ASSERT_TRUE(job_wait(&jd, 5000));
	if (!reaped) {
		reaped = reap(child, 10000, &status);
		TH_LOG("reaped %ld ms after SIGKILL, once the ring stopped being refilled",
		       ms_since(t0));
		ASSERT_TRUE(reaped);
	}
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		TH_LOG("child status %#x", status);
	for (t0 = now_ns(), i = 0; ms_since(t0) < 2000; i++) {
		listed = listed_live(pv, id);
		if (!listed)
			break;
		usleep(10000);
	}
	EXPECT_FALSE(listed) TH_LOG("attachment %d still live in LIST 2 s after the VMM was reaped", id);
	finish(pv, &c);
	finish(pv, &d);
	EXPECT_EQ(base, pinned_pages_settled(base));
	close(p[0]);
	close(cmd[1]);
	close(pv);
	munmap(shared, sizeof(struct sring));
}

/* The child of vmm_killed_with_a_transmit_poll_owed: its guest sends quietly. */
static void quiet_vmm(int out, int cmd)
{
	int pv = open(PVPASS_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	struct guest g;

	if (pv < 0)
		_exit(2);
	next.feat = NF_EVENT_IDX;
	g = start(pv, M_TX_QUIET, mac_a, nobody, 1);
	if (sync_vcpu(g.vcpu[0]) != 0)		/* device up */
		_exit(3);
	if (write(out, &g.id, sizeof(g.id)) != sizeof(g.id))
		_exit(4);
	for (;;)				/* the guest never exits to us again */
		vcpu_run(g.vcpu[0]);
}

/*
 * A VMM (forked) whose guest sends without notifying, so that its device
 * always owes it a transmit poll (a timer armed, task work queued on the
 * VMM's vCPU thread), is SIGKILLed. Must hold: the VMM is gone within 2 s,
 * its attachment within 2 s more, every pin with it; a neighbour pair (C
 * to D) passes frames before and after. The unload test, after this
 * program, then unloads the module (whose exit waits for any task work).
 */
TEST(vmm_killed_with_a_transmit_poll_owed)
{
	struct job jc = { 0 }, jd = { 0 };
	int p[2], cmd[2], id = 0, status = 0, pv, i;
	long base = pinned_pages();
	bool reaped, listed = true;
	struct guest c, d;
	u64 polls = 0, t0;
	pid_t child;

	ASSERT_GE(base, 0);
	host_port_up();
	child = fork_vmm(quiet_vmm, p, cmd);
	pv = pvpass_open();
	next.rx_bufs = 2;
	d = start(pv, M_RX_POST, mac_d, mac_c, 1);
	next.burst = 1;
	c = start(pv, M_TX_ROUNDS, mac_c, mac_d, 1);
	ASSERT_EQ(0, sync_vcpu(d.vcpu[0]));
	ASSERT_EQ(0, sync_vcpu(c.vcpu[0]));
	if (!read_int(p[0], &id, 20000)) {
		kill(child, SIGKILL);
		reap(child, 5000, &status);
		ASSERT_TRUE(false) TH_LOG("the child VMM did not come up (status %#x)", status);
	}
	ASSERT_GT(id, 0);
	for (t0 = now_ns(); ms_since(t0) < 5000; usleep(10000)) {
		polls = counter_of(pv, id, PVPASS_F_ANY_FILE, "tx_polls");
		if (polls >= 20)
			break;
	}
	EXPECT_LE(20, polls) TH_LOG("the child's device was not polling");
	/* How many notifies remain is the policy's business (it backs off
	 * when its polls miss); that polls were owed is this test's. */
	EXPECT_LE(1, counter_of(pv, id, PVPASS_F_ANY_FILE, "tx_deferrals"));

	jc.vcpu = c.vcpu[0];
	job_start(&jc, vcpu_step);
	EXPECT_TRUE(job_wait(&jc, 1500));
	EXPECT_SYNCED(&jc, "C");
	ASSERT_EQ(0, kill(child, SIGKILL));
	t0 = now_ns();
	reaped = reap(child, 2000, &status);
	EXPECT_TRUE(reaped) TH_LOG("the SIGKILLed VMM was still there after 2 s");
	if (!reaped) {
		ASSERT_TRUE(reap(child, 10000, &status));
	}
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		TH_LOG("child status %#x", status);
	for (t0 = now_ns(), i = 0; ms_since(t0) < 2000; i++) {
		listed = listed_live(pv, id);
		if (!listed)
			break;
		usleep(10000);
	}
	EXPECT_FALSE(listed) TH_LOG("attachment %d still live in LIST 2 s after the VMM was reaped", id);
	/* C's second frame reaches D after the death too. */
	memset(&jc, 0, sizeof(jc));
	jc.vcpu = c.vcpu[0];
	job_start(&jc, vcpu_step);
	EXPECT_TRUE(job_wait(&jc, 1500));
	EXPECT_SYNCED(&jc, "C");
	jd.vcpu = d.vcpu[0];
	job_start(&jd, vcpu_step);
	EXPECT_TRUE(job_wait(&jd, 1500));
	EXPECT_SYNCED(&jd, "D");
	EXPECT_EQ(2, jd.arg) TH_LOG("D did not get both of C's frames");
	finish(pv, &c);
	finish(pv, &d);
	EXPECT_EQ(base, pinned_pages_settled(base));
	close(p[0]);
	close(cmd[1]);
	close(pv);
}

/* ---- F2: a receiver whose pages fault for ever ----------------------------- */

/*
 * A userfaultfd on @addr (MISSING) after the page is dropped: every access to
 * it faults and waits for a handler that never answers. Privileged mode
 * (root): kernel-mode faults (pin_user_pages) wait too. -errno on failure.
 */
static int uffd_missing(void *addr, size_t len)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { .start = (u64)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	int fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK), e;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) || madvise(addr, len, MADV_DONTNEED) ||
	    ioctl(fd, UFFDIO_REGISTER, &reg)) {
		e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static void uffd_resolve(int fd, void *addr, size_t len)
{
	struct uffdio_zeropage z = { .range = { .start = (u64)addr, .len = len } };

	ioctl(fd, UFFDIO_ZEROPAGE, &z);		/* EEXIST if already there */
	close(fd);
}

/*
 * Senders A (to B) and C (to D) started while B's own vCPU thread is in its
 * unresolved fault: both are back within 1 s, each at its GUEST_SYNC.
 */
static void expect_back_in_1s(struct __test_metadata *_metadata, struct job *ja, struct job *jc)
{
	bool c_back = job_wait(jc, 1000), a_back = job_wait(ja, 1000);

	EXPECT_TRUE(a_back && c_back)
		TH_LOG("with B's thread in its fault: A %s, C %s after 1 s",
		       a_back ? "back" : "not back", c_back ? "back" : "not back");
	if (a_back) {
		EXPECT_LT(job_ms(ja), 1000);
		EXPECT_SYNCED(ja, "A");
	}
	if (c_back) {
		EXPECT_LT(job_ms(jc), 1000);
		EXPECT_SYNCED(jc, "C");
	}
}

/*
 * F2. B's receive buffer page is registered with userfaultfd and never
 * resolved while the test runs, so pinning it blocks in the fault (all VMs
 * are in this process: the sender pins B's page as its own, and may wait
 * for the fault). A sends to B; meanwhile C sends to D, an unrelated pair; then B's own vCPU reads
 * InterruptStatus (draining its backlog: that may block, in B's own fault)
 * while A and C send again. Must hold: A's and C's KVM_RUNs return within
 * 1 s each, D gets C's frame meanwhile, A's frames wait in B's backlog
 * (rx_deferred) and land once the fault is resolved; no pin is left.
 */
TEST(receiver_with_unresolved_userfault_stalls_nobody)
{
	int pv = pvpass_open(), uffd;
	long base = pinned_pages();
	struct job ja = { 0 }, jc = { 0 }, jd = { 0 }, jb = { 0 };
	struct pvpass_stats sa, sb, sc, sd;
	struct guest a, b, c, d;
	bool a_back, c_back, d_back;
	size_t pg = getpagesize();
	u64 used = 0;
	u8 *page;

	ASSERT_GE(base, 0);
	next.rx_bufs = 1;
	b = start(pv, M_RX_POST, mac_b, mac_a, 1);
	next.rx_bufs = 1;
	d = start(pv, M_RX_POST, mac_d, mac_c, 1);
	next.burst = 1;
	a = start(pv, M_TX_ROUNDS, mac_a, mac_b, 1);
	next.burst = 1;
	c = start(pv, M_TX_ROUNDS, mac_c, mac_d, 1);
	ASSERT_EQ(0, sync_vcpu(b.vcpu[0]));		/* buffers posted */
	ASSERT_EQ(0, sync_vcpu(d.vcpu[0]));
	ASSERT_EQ(0, sync_vcpu(a.vcpu[0]));		/* senders set up */
	ASSERT_EQ(0, sync_vcpu(c.vcpu[0]));
	/* From here on nothing may touch B's buffer page until it is resolved. */
	page = addr_gva2hva(b.vm, (gva_t)rxbuf);
	uffd = uffd_missing(page, pg);
	if (uffd == -ENOSYS)
		SKIP(goto out, "no userfaultfd in this kernel");
	ASSERT_GE(uffd, 0) TH_LOG("userfaultfd: %s", strerror(-uffd));
	/* B's thread sees the changed map (nothing waits: its buffer page is
	 * not touched), so A's frame goes for B's buffer straight away. */
	ASSERT_EQ(0, sync_vcpu(b.vcpu[0]));

	ja.vcpu = a.vcpu[0];
	job_start(&ja, vcpu_step);			/* A -> B */
	usleep(200000);
	jc.vcpu = c.vcpu[0];
	job_start(&jc, vcpu_step);			/* C -> D */
	c_back = job_wait(&jc, 1500);
	EXPECT_TRUE(c_back) TH_LOG("C's KVM_RUN (a frame to D) had not returned after 1.5 s");
	if (c_back) {
		EXPECT_LT(job_ms(&jc), 1000);
		EXPECT_SYNCED(&jc, "C");
		jd.vcpu = d.vcpu[0];
		job_start(&jd, vcpu_step);		/* D reads InterruptStatus */
		d_back = job_wait(&jd, 1500);
		EXPECT_TRUE(d_back) TH_LOG("D's KVM_RUN had not returned after 1.5 s");
		if (d_back) {
			EXPECT_SYNCED(&jd, "D");
			EXPECT_EQ(1, jd.arg) TH_LOG("D did not get C's frame");
		}
	}
	a_back = job_wait(&ja, 1000);
	EXPECT_TRUE(a_back) TH_LOG("A's KVM_RUN (a frame to B) had not returned after 1.2 s");
	if (a_back) {
		EXPECT_LT(job_ms(&ja), 1000);
		EXPECT_SYNCED(&ja, "A");
	}
	if (a_back && c_back) {
		/* B's own thread takes what waits for it: into the fault. */
		jb.vcpu = b.vcpu[0];
		job_start(&jb, vcpu_step);
		usleep(200000);
		job_start(&ja, vcpu_step);
		job_start(&jc, vcpu_step);
		expect_back_in_1s(_metadata, &ja, &jc);
		TH_LOG("B's InterruptStatus read %s", READ_ONCE(jb.done) ? "returned" : "blocks (in its own fault)");
	}

	uffd_resolve(uffd, page, pg);
	ASSERT_TRUE(job_wait(&ja, 5000));
	ASSERT_TRUE(job_wait(&jc, 5000));
	ASSERT_TRUE(job_wait(&jd, 5000));
	ASSERT_TRUE(job_wait(&jb, 5000));
	if (jb.t0) {
		EXPECT_SYNCED(&jb, "B");
		used = jb.arg;
	}
	if (!used)			/* B's next InterruptStatus read */
		used = sync_vcpu(b.vcpu[0]);
	EXPECT_EQ(1, used) TH_LOG("B's buffer was not filled once its page came");
	sa = stats(pv, a.id);
	sb = stats(pv, b.id);
	sc = stats(pv, c.id);
	sd = stats(pv, d.id);
	TH_LOG("A tx %llu; B rx %llu direct %llu deferred %llu pin_failed %llu dropped %llu; C tx %llu; D rx %llu",
	       (unsigned long long)sa.tx_frames, (unsigned long long)sb.rx_frames,
	       (unsigned long long)sb.rx_direct, (unsigned long long)sb.rx_deferred,
	       (unsigned long long)sb.drop_rx_pin_failed, (unsigned long long)sb.drop_rx_no_buffer,
	       (unsigned long long)sc.tx_frames, (unsigned long long)sd.rx_frames);
	EXPECT_LE(1, sb.rx_deferred);		/* A's frames waited for B */
	EXPECT_EQ(1, sb.rx_frames);
	EXPECT_EQ(1, sd.rx_frames);
out:
	finish(pv, &a);
	finish(pv, &c);
	finish(pv, &b);
	finish(pv, &d);
	EXPECT_EQ(base, pinned_pages_settled(base));
	close(pv);
}

/*
 * The child of receiver_in_another_process_with_unresolved_userfault: B's
 * VMM. Its buffer page faults for ever (its own userfaultfd, never read);
 * on a byte from @cmd its vCPU reads InterruptStatus, which may block in
 * that fault until the process is killed.
 */
static void faulting_vmm(int out, int cmd)
{
	int pv = open(PVPASS_DEVICE_PATH, O_RDWR | O_CLOEXEC), uffd;
	struct guest b;
	char go;

	if (pv < 0)
		_exit(2);
	next.rx_bufs = 1;
	b = start(pv, M_RX_POST, mac_b, mac_a, 1);
	if (sync_vcpu(b.vcpu[0]) != 0)		/* buffer posted */
		_exit(3);
	uffd = uffd_missing(addr_gva2hva(b.vm, (gva_t)rxbuf), getpagesize());
	if (uffd < 0) {
		if (write(out, &uffd, sizeof(uffd)) != sizeof(uffd))
			_exit(4);
		_exit(0);
	}
	if (sync_vcpu(b.vcpu[0]) != 0)		/* B has seen its new map */
		_exit(3);
	if (write(out, &b.id, sizeof(b.id)) != sizeof(b.id))
		_exit(4);
	if (read(cmd, &go, 1) != 1)
		_exit(0);
	sync_vcpu(b.vcpu[0]);			/* into the fault */
	for (;;)
		pause();
}

/*
 * F2 across processes: B's VMM is a process of its own whose buffer page
 * faults for ever, so a sender reaches it through the remote pin path; then
 * B's own vCPU thread blocks in the fault while draining what waits for it.
 * A sends to B meanwhile, C to D. Must hold: A's and C's KVM_RUNs return
 * within 1 s each, D gets C's frame, B's VMM can be killed (reaped within
 * 2 s) while stuck in its fault, and no pin is left.
 */
TEST(receiver_in_another_process_with_unresolved_userfault_stalls_nobody)
{
	struct job ja = { 0 }, jc = { 0 }, jd = { 0 };
	int out[2], cmd[2], id = 0, status = 0, pv;
	long base = pinned_pages();
	bool a_back, c_back, reaped;
	struct pvpass_stats sb;
	struct guest a, c, d;
	pid_t child;

	ASSERT_GE(base, 0);
	child = fork_vmm(faulting_vmm, out, cmd);
	pv = pvpass_open();
	next.rx_bufs = 1;
	d = start(pv, M_RX_POST, mac_d, mac_c, 1);
	next.burst = 1;
	a = start(pv, M_TX_ROUNDS, mac_a, mac_b, 1);
	next.burst = 1;
	c = start(pv, M_TX_ROUNDS, mac_c, mac_d, 1);
	ASSERT_EQ(0, sync_vcpu(d.vcpu[0]));
	ASSERT_EQ(0, sync_vcpu(a.vcpu[0]));
	ASSERT_EQ(0, sync_vcpu(c.vcpu[0]));
	if (!read_int(out[0], &id, 20000)) {
		kill(child, SIGKILL);
		reap(child, 5000, &status);
		ASSERT_TRUE(false) TH_LOG("the child VMM did not come up (status %#x)", status);
	}
	if (id == -ENOSYS) {
		reap(child, 5000, &status);
		SKIP(goto out, "no userfaultfd in this kernel");
	}
	ASSERT_GT(id, 0) TH_LOG("child: userfaultfd: %s", strerror(-id));

	ja.vcpu = a.vcpu[0];
	job_start(&ja, vcpu_step);			/* A -> B, another mm */
	usleep(200000);
	jc.vcpu = c.vcpu[0];
	job_start(&jc, vcpu_step);			/* C -> D */
	c_back = job_wait(&jc, 1500);
	a_back = job_wait(&ja, 1000);
	EXPECT_TRUE(a_back && c_back) TH_LOG("A %s, C %s after 1.2 s", a_back ? "back" : "not back",
					     c_back ? "back" : "not back");
	if (a_back && c_back) {
		EXPECT_LT(job_ms(&ja), 1000);
		EXPECT_LT(job_ms(&jc), 1000);
		EXPECT_SYNCED(&ja, "A");
		EXPECT_SYNCED(&jc, "C");
		jd.vcpu = d.vcpu[0];
		job_start(&jd, vcpu_step);
		EXPECT_TRUE(job_wait(&jd, 1500));
		EXPECT_SYNCED(&jd, "D");
		EXPECT_EQ(1, jd.arg) TH_LOG("D did not get C's frame");
		sb = any_stats(pv, id);
		TH_LOG("B: rx %llu direct %llu deferred %llu pin_failed %llu",
		       (unsigned long long)sb.rx_frames, (unsigned long long)sb.rx_direct,
		       (unsigned long long)sb.rx_deferred, (unsigned long long)sb.drop_rx_pin_failed);
		EXPECT_EQ(0, sb.rx_frames);
		EXPECT_EQ(1, sb.rx_deferred);		/* A's frame waits for B */

		/* B's thread drains: into its fault. A and C send again. */
		ASSERT_EQ(1, write(cmd[1], "g", 1));
		usleep(300000);
		job_start(&ja, vcpu_step);
		job_start(&jc, vcpu_step);
		expect_back_in_1s(_metadata, &ja, &jc);
	}
	/* Kill B's VMM, stuck in its fault or not. */
	ASSERT_EQ(0, kill(child, SIGKILL));
	reaped = reap(child, 2000, &status);
	EXPECT_TRUE(reaped) TH_LOG("B's VMM not reaped 2 s after SIGKILL");
	ASSERT_TRUE(job_wait(&ja, 5000));
	ASSERT_TRUE(job_wait(&jc, 5000));
	ASSERT_TRUE(job_wait(&jd, 5000));
	if (!reaped)
		ASSERT_TRUE(reap(child, 10000, &status));
out:
	finish(pv, &a);
	finish(pv, &c);
	finish(pv, &d);
	EXPECT_EQ(base, pinned_pages_settled(base));
	close(out[0]);
	close(cmd[1]);
	close(pv);
}

/* ---- F5: a failing ATTACH racing the guest --------------------------------- */

/* Runs G's vCPU until j->stop; reads of a window nobody serves return 0. */
static void spin_vcpu(struct job *j)
{
	struct kvm_run *run = j->vcpu->run;

	while (!READ_ONCE(j->stop)) {
		if (__vcpu_run(j->vcpu)) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (run->exit_reason == KVM_EXIT_MMIO) {
			if (!run->mmio.is_write)
				memset(run->mmio.data, 0, sizeof(run->mmio.data));
			continue;
		}
		if (run->exit_reason != KVM_EXIT_INTR)
			break;
	}
	j->exit_reason = run->exit_reason;
}

/*
 * F5. X owns a MAC; G's guest, on its own vCPU thread, brings its device up
 * (queues, DRIVER_OK: pvpass pins the receive rings) whenever its window
 * answers, while the host ATTACHes G again and again with X's MAC: each
 * ATTACH fails with EADDRINUSE, some only after the window was live and the
 * guest had started its queues. Must hold: every one fails so, and
 * pinned_pages is back at its baseline afterwards.
 */
TEST(failed_attach_leaks_no_pins)
{
	int pv = pvpass_open(), i, inuse = 0, rose = 0;
	long base = pinned_pages(), before;
	struct kvm_vm *x = vm_create_barebones();
	struct job spin = { 0 };
	struct guest g = { 0 };
	struct pvpass_attach req;
	struct ctl *cg;
	int xid;

	ASSERT_GE(base, 0);
	xid = attach(pv, x, WIN_GPA, 5, mac_b);
	ASSERT_GT(xid, 0);
	g.vm = vm_create_with_one_vcpu(&g.vcpu[0], guest_main);
	virt_map(g.vm, WIN_GPA, WIN_GPA, 1);
	vcpu_args_set(g.vcpu[0], 1, 0);
	params = (struct params){ .base = WIN_GPA, .mode = M_ATTACH_SPIN, .qnum = { QSZ, QSZ } };
	params.ring_gva[0] = (u64)&rings[0];
	params.ring_gpa[0] = addr_gva2gpa(g.vm, (gva_t)&rings[0]);
	sync_global_to_guest(g.vm, params);
	cg = ctl_of(&g);
	spin.vcpu = g.vcpu[0];
	job_start(&spin, spin_vcpu);
	for (i = 0; i < 100; i++) {
		int r;

		before = pinned_pages();
		req = attach_req(g.vm->fd, WIN_GPA, 5, mac_b);
		r = do_attach(pv, &req);
		inuse += r == -EADDRINUSE;
		if (r > 0)
			ioctl(pv, PVPASS_DETACH, &(struct pvpass_detach){ .id = r });
		rose += pinned_pages() > before;
	}
	WRITE_ONCE(cg->stop, 1);
	WRITE_ONCE(spin.stop, 1);
	ASSERT_TRUE(job_wait(&spin, 5000));
	TH_LOG("the guest brought the device up %llu times; pinned_pages rose after %d of 100 ATTACHes",
	       (unsigned long long)READ_ONCE(cg->ups), rose);
	EXPECT_EQ(100, inuse);
	EXPECT_EQ(0, ioctl(pv, PVPASS_DETACH, &(struct pvpass_detach){ .id = xid }));
	kvm_vm_free(g.vm);
	kvm_vm_free(x);
	EXPECT_EQ(base, pinned_pages_settled(base));
	close(pv);
}

/* ---- storms of broadcasts -------------------------------------------------- */

#define BCAST_ROUNDS	8
#define BCAST_BURST	512	/* frames per round, QSZ per notify */
#define UNI_ROUNDS	25
#define UNI_BURST	QSZ

/*
 * A sends 4096 broadcast frames as fast as it can (8 chains per notify)
 * while C sends 200 unicast frames to B, which takes every frame it gets
 * on its own vCPU thread. Must hold: A's broadcasts over the port's rate
 * limit are dropped (drop_tx_storm), and B gets all of C's frames.
 */
TEST(broadcast_storm_is_rate_limited)
{
	int pv = pvpass_open();
	long base = pinned_pages();
	struct job ja = { 0 }, jb = { 0 }, jc = { 0 };
	struct pvpass_stats sa, sb;
	struct guest a, b, c;
	struct ctl *cb;
	bool a_back, c_back;

	ASSERT_GE(base, 0);
	memcpy(next.peer, mac_c, 6);
	b = start(pv, M_RX_LOOP, mac_b, mac_a, 1);
	next.burst = BCAST_BURST;
	a = start(pv, M_TX_ROUNDS, mac_a, bcast, 1);
	next.burst = UNI_BURST;
	c = start(pv, M_TX_ROUNDS, mac_c, mac_b, 1);
	cb = ctl_of(&b);
	ASSERT_EQ(0, sync_vcpu(b.vcpu[0]));
	ASSERT_EQ(0, sync_vcpu(a.vcpu[0]));
	ASSERT_EQ(0, sync_vcpu(c.vcpu[0]));

	jb.vcpu = b.vcpu[0];
	job_start(&jb, vcpu_step);			/* B receives until stopped */
	ja.vcpu = a.vcpu[0];
	ja.rounds = BCAST_ROUNDS;
	job_start(&ja, vcpu_rounds);
	usleep(20000);
	jc.vcpu = c.vcpu[0];
	jc.rounds = UNI_ROUNDS;
	job_start(&jc, vcpu_rounds);
	a_back = job_wait(&ja, 15000);
	c_back = job_wait(&jc, 15000);
	EXPECT_TRUE(a_back && c_back);
	usleep(200000);					/* B takes the rest */
	WRITE_ONCE(cb->stop, 1);
	ASSERT_TRUE(job_wait(&jb, 5000));
	ASSERT_TRUE(job_wait(&ja, 5000));
	ASSERT_TRUE(job_wait(&jc, 5000));
	EXPECT_SYNCED(&ja, "A");
	EXPECT_SYNCED(&jc, "C");
	EXPECT_SYNCED(&jb, "B");
	EXPECT_EQ(BCAST_ROUNDS, ja.runs);
	EXPECT_EQ(UNI_ROUNDS, jc.runs);
	sa = stats(pv, a.id);
	sb = stats(pv, b.id);
	TH_LOG("A: %ld ms for %d broadcasts, tx_frames %llu, drop_tx_storm %llu; B got %llu of C's %d, %llu broadcasts, %llu other, dropped %llu",
	       job_ms(&ja), BCAST_ROUNDS * BCAST_BURST, (unsigned long long)sa.tx_frames,
	       (unsigned long long)sa.drop_tx_storm, (unsigned long long)cb->from_peer,
	       UNI_ROUNDS * UNI_BURST, (unsigned long long)cb->group,
	       (unsigned long long)cb->other, (unsigned long long)sb.drop_rx_no_buffer);
	EXPECT_LT(0, sa.drop_tx_storm);
	EXPECT_EQ(UNI_ROUNDS * UNI_BURST, cb->from_peer);
	EXPECT_EQ(UNI_ROUNDS * UNI_BURST, stats(pv, c.id).tx_frames);
	finish(pv, &a);
	finish(pv, &c);
	finish(pv, &b);
	EXPECT_EQ(base, pinned_pages_settled(base));
	close(pv);
}

/* Frames a port's backlog holds (src/net/rx.rs BACKLOG_FRAMES). */
#define BACKLOG_FRAMES	256
#define FLOOD_UNI_ROUNDS 12

/*
 * B has posted its QSZ receive buffers, and then its vCPU does not run (a
 * descheduled VM: its backlog is not drained). A broadcasts at its port's
 * full storm limit until more frames have passed the limit than B's buffers
 * and backlog hold; then C sends 96 unicast frames to B, and B runs again.
 * Must hold: B gets all of C's frames. A neighbour's flood may fill B's
 * buffers and its share of B's backlog (its drops counted as drop_rx_flood),
 * never the room that frames addressed to B need.
 */
TEST(flood_leaves_room_for_unicast)
{
	int pv = pvpass_open(), rounds = 0;
	long base = pinned_pages();
	struct job ja = { 0 }, jb = { 0 }, jc = { 0 };
	struct pvpass_stats sa, sb;
	struct guest a, b, c;
	struct ctl *cb;

	ASSERT_GE(base, 0);
	memcpy(next.peer, mac_c, 6);
	b = start(pv, M_RX_LOOP, mac_b, mac_a, 1);
	next.burst = BCAST_BURST;
	a = start(pv, M_TX_ROUNDS, mac_a, bcast, 1);
	next.burst = UNI_BURST;
	c = start(pv, M_TX_ROUNDS, mac_c, mac_b, 1);
	cb = ctl_of(&b);
	ASSERT_EQ(0, sync_vcpu(b.vcpu[0]));		/* buffers posted */
	ASSERT_EQ(0, sync_vcpu(a.vcpu[0]));
	ASSERT_EQ(0, sync_vcpu(c.vcpu[0]));

	/* A floods until B's buffers and whole backlog could be full. */
	ja.vcpu = a.vcpu[0];
	do {
		ja.rounds = ++rounds;
		vcpu_rounds(&ja);
		EXPECT_SYNCED(&ja, "A");
		sa = stats(pv, a.id);
	} while (sa.tx_frames < QSZ + BACKLOG_FRAMES + 32 && rounds < 64);
	ASSERT_LE(QSZ + BACKLOG_FRAMES + 32, sa.tx_frames);
	jc.vcpu = c.vcpu[0];
	jc.rounds = FLOOD_UNI_ROUNDS;
	vcpu_rounds(&jc);
	EXPECT_SYNCED(&jc, "C");
	EXPECT_EQ(FLOOD_UNI_ROUNDS * UNI_BURST, stats(pv, c.id).tx_frames);

	jb.vcpu = b.vcpu[0];
	job_start(&jb, vcpu_step);			/* B takes what waits */
	usleep(500000);
	WRITE_ONCE(cb->stop, 1);
	ASSERT_TRUE(job_wait(&jb, 5000));
	EXPECT_SYNCED(&jb, "B");
	sb = stats(pv, b.id);
	TH_LOG("A: %llu broadcasts passed its limit (%d rounds); B got %llu of C's %d, %llu broadcasts, %llu other; B dropped %llu (drop_rx_no_buffer)",
	       (unsigned long long)sa.tx_frames, rounds, (unsigned long long)cb->from_peer,
	       FLOOD_UNI_ROUNDS * UNI_BURST, (unsigned long long)cb->group,
	       (unsigned long long)cb->other, (unsigned long long)sb.drop_rx_no_buffer);
	EXPECT_EQ(FLOOD_UNI_ROUNDS * UNI_BURST, cb->from_peer);
	EXPECT_EQ(0, sb.drop_rx_no_buffer);
	/*
	 * The flood got B's buffers and at most its half of the backlog (a
	 * few group frames from the host's pvpsw0 may come on top).
	 */
	EXPECT_LE(cb->group, QSZ + BACKLOG_FRAMES / 2 + 8);
	EXPECT_LT(0, counter(pv, b.id, "drop_rx_flood"));
	TH_LOG("B: %llu flooded frames dropped (drop_rx_flood)",
	       (unsigned long long)counter(pv, b.id, "drop_rx_flood"));
	finish(pv, &a);
	finish(pv, &c);
	finish(pv, &b);
	EXPECT_EQ(base, pinned_pages_settled(base));
	close(pv);
}

/* ---- a receiver's VMM dies under a flood ----------------------------------- */

/* The child of vmm_killed_while_neighbour_delivers_into_it: B's VMM. */
static void receiving_vmm(int out)
{
	int pv = open(PVPASS_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	struct guest b;

	if (pv < 0)
		_exit(2);
	memcpy(next.peer, mac_a, 6);
	b = start(pv, M_RX_LOOP, mac_b, mac_a, 1);
	if (sync_vcpu(b.vcpu[0]) != 0)		/* buffers posted */
		_exit(3);
	if (write(out, &b.id, sizeof(b.id)) != sizeof(b.id))
		_exit(4);
	for (;;)
		vcpu_run(b.vcpu[0]);		/* takes frames until killed */
}

#define FLOOD_BURST	64

/*
 * B's VMM is a process of its own: A's thread writes A's frames into B's
 * memory through the remote pin path. A floods B, and B's VMM is SIGKILLed
 * in the middle. Must hold: every one of A's KVM_RUNs (64 frames) returns
 * within 1 s, before, during and after B goes, none of A's frames is lost
 * on A's side, B's VMM is reaped within 2 s, and no pin survives.
 */
TEST(vmm_killed_while_neighbour_delivers_into_it)
{
	struct job ja = { 0 };
	struct pvpass_stats sa, sb;
	int p[2], id = 0, status = 0, pv;
	long base = pinned_pages(), reap_ms = -1;
	struct guest a;
	bool reaped;
	pid_t child;
	u64 t0;

	ASSERT_GE(base, 0);
	ASSERT_EQ(0, pipe(p));
	child = fork();
	ASSERT_GE(child, 0);
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(p[0]);
		receiving_vmm(p[1]);
		_exit(5);
	}
	close(p[1]);
	pv = pvpass_open();
	next.burst = FLOOD_BURST;
	a = start(pv, M_TX_ROUNDS, mac_a, mac_b, 1);
	ASSERT_EQ(0, sync_vcpu(a.vcpu[0]));
	if (!read_int(p[0], &id, 20000)) {
		kill(child, SIGKILL);
		reap(child, 5000, &status);
		ASSERT_TRUE(false) TH_LOG("the child VMM did not come up");
	}
	ASSERT_GT(id, 0);

	ja.vcpu = a.vcpu[0];
	job_start(&ja, vcpu_rounds);			/* A floods B */
	usleep(500000);
	sb = any_stats(pv, id);
	EXPECT_LT(0, sb.rx_frames) TH_LOG("B got nothing before it was killed");
	ASSERT_EQ(0, kill(child, SIGKILL));
	t0 = now_ns();
	reaped = reap(child, 2000, &status);
	EXPECT_TRUE(reaped) TH_LOG("B's VMM not reaped 2 s after SIGKILL");
	if (reaped)
		reap_ms = ms_since(t0);
	usleep(500000);					/* A goes on flooding */
	WRITE_ONCE(ja.stop, 1);
	EXPECT_TRUE(job_wait(&ja, 2000)) TH_LOG("A's last round had not returned after 2 s");
	if (!reaped)
		reaped = reap(child, 10000, &status);
	ASSERT_TRUE(job_wait(&ja, 10000));
	ASSERT_TRUE(reaped);
	TH_LOG("B reaped after %ld ms, had %llu frames (%llu direct); A: %d rounds, longest KVM_RUN %llu ms",
	       reap_ms, (unsigned long long)sb.rx_frames, (unsigned long long)sb.rx_direct,
	       ja.runs, (unsigned long long)(ja.max_ns / 1000000));
	EXPECT_SYNCED(&ja, "A");
	EXPECT_LT(ja.max_ns, 1000000000ULL);
	sa = stats(pv, a.id);
	EXPECT_EQ((u64)ja.runs * FLOOD_BURST, sa.tx_frames);
	finish(pv, &a);
	EXPECT_EQ(base, pinned_pages_settled(base));
	close(p[0]);
	close(pv);
}

/* ---- receive descriptors rewritten while frames are delivered ------------- */

#define REWRITE_MS	2000
#define REWRITE_BURST	64

/* KVM_RUN @vcpu to its next exit on job @j, waited for up to @ms. */
static bool step_within(struct job *j, struct kvm_vcpu *vcpu, int ms)
{
	j->vcpu = vcpu;
	job_start(j, vcpu_step);
	return job_wait(j, ms);
}

/*
 * The receive queue rewritten under the device's feet. B has two vCPUs:
 * vCPU 0 posts its buffers and then keeps reading InterruptStatus (which
 * drains what waits for B), resetting and restarting the device whenever it
 * says DEVICE_NEEDS_RESET; vCPU 1 meanwhile rewrites B's receive descriptors
 * field by field (addresses good, in no memslot, far above RAM, in a
 * read-only memslot, odd, overflowing, over the ring itself; lengths 0, 1,
 * 11, 64, 2048, 64 KiB, 4 GiB - 1; NEXT/WRITE/INDIRECT and next indices
 * half out of range) and its avail ring entries (heads out of range), and
 * makes more heads available, for 2 s. A floods B (64 frames a run) from
 * its own thread, C sends to D (8 frames every 10 ms), which takes every
 * frame. Must hold: every KVM_RUN of A, C and D returns within 1 s; A's
 * queue works throughout (its guest checks each notify completed
 * everything) and all its frames are counted sent; D gets every frame C
 * sent; B ends working or saying NEEDS_RESET, and after a reset works
 * again (takes A's frames); no pin is left once all are gone.
 */
TEST(receive_descriptors_rewritten_during_delivery)
{
	int pv = pvpass_open();
	long base = pinned_pages();
	struct job jb0 = { 0 }, jb1 = { 0 }, ja = { 0 }, jc = { 0 }, jd = { 0 };
	bool b0_back, b1_back, a_back, c_back, d_back;
	struct pvpass_stats sa, sb, sc, sd;
	int a_runs;
	struct guest a, b, c, d;
	struct ctl *cb, *cd;
	u64 st;

	ASSERT_GE(base, 0);
	next.ro_gpa = EXTRA_GPA;
	b = start(pv, M_RX_REWRITE, mac_b, mac_a, 2);
	vm_userspace_mem_region_add(b.vm, VM_MEM_SRC_ANONYMOUS, EXTRA_GPA, EXTRA_SLOT, 1,
				    KVM_MEM_READONLY);
	memcpy(next.peer, mac_c, 6);
	next.sync_every = 64;
	d = start(pv, M_RX_LOOP, mac_d, mac_c, 1);
	next.burst = REWRITE_BURST;
	a = start(pv, M_TX_ROUNDS, mac_a, mac_b, 1);
	next.burst = QSZ;
	c = start(pv, M_TX_ROUNDS, mac_c, mac_d, 1);
	cb = ctl_of(&b);
	cd = ctl_of(&d);
	ASSERT_EQ(0, sync_vcpu(b.vcpu[0]));		/* B's buffers posted */
	ASSERT_EQ(0, sync_vcpu(d.vcpu[0]));
	ASSERT_EQ(0, sync_vcpu(a.vcpu[0]));
	ASSERT_EQ(0, sync_vcpu(c.vcpu[0]));

	jb0.vcpu = b.vcpu[0];
	job_start(&jb0, vcpu_step);			/* B drains until stopped */
	jb1.vcpu = b.vcpu[1];
	job_start(&jb1, vcpu_step);			/* B rewrites until stopped */
	jd.vcpu = d.vcpu[0];
	job_start(&jd, vcpu_rounds);
	ja.vcpu = a.vcpu[0];
	job_start(&ja, vcpu_rounds);			/* A floods B */
	jc.vcpu = c.vcpu[0];
	jc.pause_us = 10000;				/* at a pace D keeps up with */
	job_start(&jc, vcpu_rounds);			/* C -> D */
	usleep(REWRITE_MS * 1000);
	WRITE_ONCE(cb->stop, 1);
	b1_back = job_wait(&jb1, 3000);
	b0_back = job_wait(&jb0, 3000);
	WRITE_ONCE(ja.stop, 1);
	WRITE_ONCE(jc.stop, 1);
	a_back = job_wait(&ja, 2000);
	c_back = job_wait(&jc, 2000);
	usleep(300000);					/* D takes the rest */
	WRITE_ONCE(jd.stop, 1);
	d_back = job_wait(&jd, 2000);
	/*
	 * The bed (QEMU TCG emulating nested SVM) now and then gives a vCPU a
	 * stale view of guest memory under this load: B's vCPU 0 was seen
	 * spinning on flags that the host and B's vCPU 1 see set, and guests
	 * die with SHUTDOWN (triple fault) or INTERNAL_ERROR, with the module
	 * of before the split too (docs/reliability.md, "Known bed problem").
	 * Then the test cannot finish its checks: it says so with a skip, not
	 * a pass, unless something else failed. A vCPU stuck in the kernel
	 * (in pvpass or KVM) is a failure.
	 */
	struct job *all[] = { &ja, &jc, &jd, &jb0, &jb1 };
	bool back[] = { a_back, c_back, d_back, b0_back, b1_back };
	bool bed = false, kernel_stuck = false;

	for (int k = 0; k < 5; k++) {
		if (!back[k] && all[k]->in_guest)
			bed = true;
		else if (!back[k])
			kernel_stuck = true;
		else if (all[k]->cmd != UCALL_SYNC &&
			 (all[k]->exit_reason == KVM_EXIT_SHUTDOWN ||
			  all[k]->exit_reason == KVM_EXIT_INTERNAL_ERROR))
			bed = true;
	}
	if (bed && !kernel_stuck && _metadata->exit_code == KSFT_PASS)
		SKIP(return, "the bed killed or froze a guest (A %d/%u C %d/%u D %d/%u B0 %d/%u B1 %d/%u: back/exit reason): not a pass",
		     a_back, ja.exit_reason, c_back, jc.exit_reason, d_back, jd.exit_reason,
		     b0_back, jb0.exit_reason, b1_back, jb1.exit_reason);
	if (!(a_back && c_back && d_back && b0_back && b1_back)) {
		/* What a guest that does not come back sees of its own state. */
		struct params *pd = addr_gva2hva(d.vm, (gva_t)&params);
		struct params *pb = addr_gva2hva(b.vm, (gva_t)&params);

		TH_LOG("D's params: mode %d (want %d) sync_every %u (want 64) stop %u; B's params: mode %d (want %d) qnum %u/%u",
		       pd->mode, M_RX_LOOP, pd->sync_every, READ_ONCE(cd->stop), pb->mode,
		       M_RX_REWRITE, pb->qnum[0], pb->qnum[1]);
	}
	EXPECT_TRUE(a_back && c_back && d_back && b0_back && b1_back)
		TH_LOG("not back after stop: A %d C %d D %d B0 %d B1 %d; B's ctl as the host sees it: stop %u hold %u held %u (ctl at gva %p, rxbuf %p..%p, rings %p)",
		       a_back, c_back, d_back, b0_back, b1_back, READ_ONCE(cb->stop),
		       READ_ONCE(cb->hold), READ_ONCE(cb->held), (void *)&ctl, (void *)rxbuf,
		       (void *)(rxbuf + sizeof(rxbuf)), (void *)rings);
	ASSERT_TRUE(job_wait(&jb1, 10000));
	ASSERT_TRUE(job_wait(&jb0, 10000));
	ASSERT_TRUE(job_wait(&ja, 10000));
	ASSERT_TRUE(job_wait(&jc, 10000));
	ASSERT_TRUE(job_wait(&jd, 10000));
	EXPECT_SYNCED(&ja, "A");
	EXPECT_SYNCED(&jc, "C");
	EXPECT_SYNCED(&jd, "D");
	EXPECT_SYNCED(&jb1, "B's rewriter");
	EXPECT_SYNCED(&jb0, "B's drainer");
	st = jb0.arg;
	a_runs = ja.runs;
	sb = stats(pv, b.id);
	TH_LOG("B: %llu rewrites, %llu resets, status %#llx at the end; rx %llu (direct %llu, deferred %llu), too small %llu, pin failed %llu, no buffer %llu, scattered %llu",
	       (unsigned long long)cb->rewrites, (unsigned long long)cb->resets,
	       (unsigned long long)st, (unsigned long long)sb.rx_frames,
	       (unsigned long long)sb.rx_direct, (unsigned long long)sb.rx_deferred,
	       (unsigned long long)sb.drop_rx_too_small, (unsigned long long)sb.drop_rx_pin_failed,
	       (unsigned long long)sb.drop_rx_no_buffer, (unsigned long long)sb.drop_rx_scattered);
	TH_LOG("longest KVM_RUN: A %llu ms (%d runs), C %llu ms (%d runs), D %llu ms (%d runs)",
	       (unsigned long long)(ja.max_ns / 1000000), ja.runs,
	       (unsigned long long)(jc.max_ns / 1000000), jc.runs,
	       (unsigned long long)(jd.max_ns / 1000000), jd.runs);
	EXPECT_LT(0, cb->rewrites);
	EXPECT_LT(0, ja.runs);
	EXPECT_LT(0, jc.runs);
	EXPECT_LT(ja.max_ns, 1000000000ULL);
	EXPECT_LT(jc.max_ns, 1000000000ULL);
	EXPECT_LT(jd.max_ns, 1000000000ULL);
	/* Working, or saying it needs a reset: both are fine. */
	EXPECT_TRUE((st & S_NEEDS_RESET) || (st & S_DRIVER_OK)) TH_LOG("B's status %#llx",
								       (unsigned long long)st);

	/* After a reset, B works again: it takes A's next frames. */
	ASSERT_TRUE(step_within(&jb0, b.vcpu[0], 3000));
	EXPECT_SYNCED(&jb0, "B restarted");
	EXPECT_EQ(S_DRIVER_OK, jb0.arg & (S_DRIVER_OK | S_NEEDS_RESET));
	a_back = step_within(&ja, a.vcpu[0], 2000);
	EXPECT_TRUE(a_back) TH_LOG("A's KVM_RUN after B's restart had not returned after 2 s");
	ASSERT_TRUE(job_wait(&ja, 10000));
	EXPECT_SYNCED(&ja, "A");
	EXPECT_LT(job_ms(&ja), 1000);
	ASSERT_TRUE(step_within(&jb0, b.vcpu[0], 3000));
	EXPECT_SYNCED(&jb0, "B");
	EXPECT_LE(1, jb0.arg) TH_LOG("B took none of A's frames after its restart");

	sa = stats(pv, a.id);
	sc = stats(pv, c.id);
	sd = stats(pv, d.id);
	TH_LOG("A sent %llu (%d runs of %d), C sent %llu, D got %llu of C's (dropped %llu)",
	       (unsigned long long)sa.tx_frames, a_runs + 1, REWRITE_BURST,
	       (unsigned long long)sc.tx_frames, (unsigned long long)cd->from_peer,
	       (unsigned long long)sd.drop_rx_no_buffer);
	EXPECT_EQ((u64)(a_runs + 1) * REWRITE_BURST, sa.tx_frames);	/* A is not broken */
	EXPECT_EQ(0, sa.drop_tx_bad_chain + sa.drop_tx_bad_buffer);
	EXPECT_EQ((u64)jc.runs * QSZ, sc.tx_frames);
	EXPECT_EQ(sc.tx_frames, cd->from_peer);
	EXPECT_EQ(0, sd.drop_rx_no_buffer);
	finish(pv, &a);
	finish(pv, &c);
	finish(pv, &d);
	finish(pv, &b);
	EXPECT_EQ(base, pinned_pages_settled(base));
	close(pv);
}

/* ---- F4: a memslot deleted and its host range reused under a flood -------- */

#define CHURN_MS	2000
#define CHURN_BURST	64
#define CHURN_PAUSE_US	2000	/* between A's runs: more than B takes */
#define SLOT_BYTES	(QSZ * BUF_LEN)
#define SENTINEL	0xa5

/* What B's VMM (the child) reports. */
struct churn {
	struct kvm_vm *vm;
	u8 *hva;
	u32 cycles, replaced, corrupted, live_frames, errors;
	int err_op, err;		/* the first error: which step, errno */
	long bad_off;			/* the first sentinel byte changed */
	u8 bad[32];			/* what was there */
	u64 max_op_ns;			/* longest memslot ioctl */
	/* B's vCPU */
	bool churn_back, b_back;
	int b_runs, b_cmd;
	u32 b_exit, b_suberror;
	u64 b_rip, b_data[4];		/* why B's KVM_RUN stopped, if not a sync */
	u64 b_max_ns, taken, resets;
	struct pvpass_stats sb;
};

static void churn_error(struct churn *c, int op)
{
	if (!c->errors++) {
		c->err_op = op;
		c->err = errno;
	}
}

/* A frame for B in one of the live slot's buffers? */
static bool frame_in_slot(const u8 *hva)
{
	int i;

	for (i = 0; i < QSZ; i++)
		if (!memcmp(hva + i * BUF_LEN + HDR, mac_b, 6))
			return true;
	return false;
}

/*
 * The churn of F4, on a thread of B's VMM, for CHURN_MS: delete the slot of
 * B's receive buffers, unmap its range (or, every other cycle, map over it
 * at once: no hole in between), map a sentinel there filled with a pattern,
 * look at it again after a short sleep (a frame must never land in it),
 * unmap it and give the slot fresh anonymous memory at the same range.
 */
static void churn_slot(struct job *j)
{
	struct churn *c = j->ptr;
	u64 t0 = now_ns(), t;
	void *p;
	int i;

	while (ms_since(t0) < CHURN_MS && !READ_ONCE(j->stop)) {
		bool replace = c->cycles & 1;

		if (frame_in_slot(c->hva))
			c->live_frames++;
		t = now_ns();
		if (__vm_set_user_memory_region(c->vm, EXTRA_SLOT, 0, EXTRA_GPA, 0, NULL)) {
			churn_error(c, 1);
			break;
		}
		t = now_ns() - t;
		if (t > c->max_op_ns)
			c->max_op_ns = t;
		if (!replace && munmap(c->hva, SLOT_BYTES)) {
			churn_error(c, 2);
			break;
		}
		p = mmap(c->hva, SLOT_BYTES, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | (replace ? MAP_FIXED : MAP_FIXED_NOREPLACE),
			 -1, 0);
		if (p != c->hva) {		/* the range was taken meanwhile */
			churn_error(c, 3);
			break;
		}
		c->replaced += replace;
		memset(p, SENTINEL, SLOT_BYTES);
		usleep(1000 + (c->cycles % 3) * 1000);
		for (i = 0; i < SLOT_BYTES; i++) {
			if (c->hva[i] == SENTINEL)
				continue;
			if (!c->corrupted++) {
				c->bad_off = i;
				memcpy(c->bad, c->hva + (i & ~31), sizeof(c->bad));
			}
			break;
		}
		if (munmap(c->hva, SLOT_BYTES)) {
			churn_error(c, 4);
			break;
		}
		p = mmap(c->hva, SLOT_BYTES, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p != c->hva) {
			churn_error(c, 5);
			break;
		}
		t = now_ns();
		if (__vm_set_user_memory_region(c->vm, EXTRA_SLOT, 0, EXTRA_GPA, SLOT_BYTES,
						c->hva)) {
			churn_error(c, 6);
			break;
		}
		t = now_ns() - t;
		if (t > c->max_op_ns)
			c->max_op_ns = t;
		c->cycles++;
		usleep(2000);		/* B reposts; A's frames land in the new memory */
	}
}

/* Read @len bytes from @fd within @ms. */
static bool read_exact(int fd, void *buf, size_t len, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	u64 t0 = now_ns();
	size_t got = 0;

	while (got < len) {
		ssize_t n;
		int left = ms - (int)ms_since(t0);

		if (left <= 0 || poll(&p, 1, left) != 1)
			return false;
		n = read(fd, (u8 *)buf + got, len - got);
		if (n <= 0)
			return false;
		got += n;
	}
	return true;
}

/*
 * The child of memslot_deleted_and_its_range_reused_during_delivery: B's
 * VMM, whose receive buffers are in slot EXTRA_SLOT, anonymous memory of its
 * own. On a byte from @cmd its vCPU takes and reposts buffers while a
 * thread churns the slot; then it reports a struct churn on @out.
 */
static void churning_vmm(int out, int cmd)
{
	int pv = open(PVPASS_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	struct job jb = { 0 }, jch = { 0 };
	static struct churn c;
	struct guest b;
	char go;

	if (pv < 0)
		_exit(2);
	c.hva = mmap(NULL, SLOT_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c.hva == MAP_FAILED)
		_exit(2);
	next.rxbuf_gpa = EXTRA_GPA;
	next.sync_every = 32;
	b = start(pv, M_RX_CHURN, mac_b, mac_a, 1);
	c.vm = b.vm;
	vm_set_user_memory_region(b.vm, EXTRA_SLOT, 0, EXTRA_GPA, SLOT_BYTES, c.hva);
	if (sync_vcpu(b.vcpu[0]) != 0)		/* buffers posted */
		_exit(3);
	if (write(out, &b.id, sizeof(b.id)) != sizeof(b.id))
		_exit(4);
	if (!read_exact(cmd, &go, 1, 30000))
		_exit(0);
	jb.vcpu = b.vcpu[0];
	job_start(&jb, vcpu_rounds);		/* takes and reposts */
	jch.ptr = &c;
	job_start(&jch, churn_slot);
	c.churn_back = job_wait(&jch, CHURN_MS + 8000);
	WRITE_ONCE(jb.stop, 1);
	c.b_back = job_wait(&jb, 3000);
	c.b_runs = jb.runs;
	c.b_cmd = jb.cmd;
	c.b_exit = jb.exit_reason;
	if (c.b_back && jb.cmd != UCALL_SYNC) {
		struct kvm_regs regs;

		vcpu_regs_get(b.vcpu[0], &regs);
		c.b_rip = regs.rip;
		if (c.b_exit == KVM_EXIT_INTERNAL_ERROR) {
			c.b_suberror = b.vcpu[0]->run->internal.suberror;
			memcpy(c.b_data, b.vcpu[0]->run->internal.data, sizeof(c.b_data));
		}
	}
	c.b_max_ns = jb.max_ns;
	c.taken = ctl_of(&b)->taken;
	c.resets = ctl_of(&b)->resets;
	c.sb = stats(pv, b.id);
	if (write(out, &c, sizeof(c)) != sizeof(c))
		_exit(4);
	if (!c.churn_back || !c.b_back)
		for (;;)
			pause();		/* the parent kills us */
	finish(pv, &b);
	munmap(c.hva, SLOT_BYTES);
	close(pv);
	_exit(0);
}

/*
 * F4. B's VMM is a process of its own (so A's thread pins B's pages through
 * the remote path, under B's mmap lock), B's receive buffers in a memslot of
 * anonymous memory. A thread of B's VMM deletes that memslot, unmaps its
 * range, maps a sentinel at the same address (what a VMM's heap might
 * reuse it for), checks it after a short sleep, and gives the slot fresh
 * memory again, cycle after cycle for 2 s, while A floods B and B keeps
 * reposting its buffers. Must hold: the sentinel is never written; every
 * KVM_RUN of A and B and every memslot ioctl returns within 1 s; all A's
 * frames are counted sent; no pin is left once B's VMM has exited. (A race:
 * the cycles and whether frames reached the live slot are logged.)
 */
TEST(memslot_deleted_and_its_range_reused_during_delivery)
{
	int out[2], cmd[2], id = 0, status = 0, pv;
	long base = pinned_pages();
	struct job ja = { 0 };
	struct churn c = { 0 };
	struct pvpass_stats sa;
	bool got, a_back, reaped, bed_killed_b = false;
	struct guest a;
	pid_t child;

	ASSERT_GE(base, 0);
	child = fork_vmm(churning_vmm, out, cmd);
	pv = pvpass_open();
	next.burst = CHURN_BURST;
	a = start(pv, M_TX_ROUNDS, mac_a, mac_b, 1);
	ASSERT_EQ(0, sync_vcpu(a.vcpu[0]));
	if (!read_int(out[0], &id, 20000)) {
		kill(child, SIGKILL);
		reap(child, 5000, &status);
		ASSERT_TRUE(false) TH_LOG("the child VMM did not come up (status %#x)", status);
	}
	ASSERT_GT(id, 0);

	ja.vcpu = a.vcpu[0];
	ja.pause_us = CHURN_PAUSE_US;
	job_start(&ja, vcpu_rounds);			/* A floods B */
	ASSERT_EQ(1, write(cmd[1], "g", 1));
	got = read_exact(out[0], &c, sizeof(c), CHURN_MS + 15000);
	WRITE_ONCE(ja.stop, 1);
	a_back = job_wait(&ja, 2000);
	reaped = reap(child, 5000, &status);
	if (!reaped) {
		kill(child, SIGKILL);
		reaped = reap(child, 10000, &status);
	}
	ASSERT_TRUE(job_wait(&ja, 10000));
	EXPECT_TRUE(got) TH_LOG("B's VMM reported nothing (status %#x)", status);
	EXPECT_TRUE(a_back) TH_LOG("A's last KVM_RUN had not returned 2 s after stop");
	ASSERT_TRUE(reaped);
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status)) TH_LOG("child status %#x", status);
	if (got) {
		TH_LOG("%u delete/reuse cycles (%u mapped over without a hole), %u with frames in the live slot; sentinel changed in %u",
		       c.cycles, c.replaced, c.live_frames, c.corrupted);
		if (c.corrupted)
			TH_LOG("first change at offset %ld: %02x %02x %02x %02x %02x %02x %02x %02x %02x %02x %02x %02x %02x %02x %02x %02x ...",
			       c.bad_off, c.bad[0], c.bad[1], c.bad[2], c.bad[3], c.bad[4],
			       c.bad[5], c.bad[6], c.bad[7], c.bad[8], c.bad[9], c.bad[10],
			       c.bad[11], c.bad[12], c.bad[13], c.bad[14], c.bad[15]);
		TH_LOG("B: %d runs (longest %llu ms), %llu buffers reposted, %llu resets; rx %llu (direct %llu, deferred %llu), too small %llu, pin failed %llu, no buffer %llu, map rereads %llu; longest memslot ioctl %llu ms",
		       c.b_runs, (unsigned long long)(c.b_max_ns / 1000000),
		       (unsigned long long)c.taken, (unsigned long long)c.resets,
		       (unsigned long long)c.sb.rx_frames, (unsigned long long)c.sb.rx_direct,
		       (unsigned long long)c.sb.rx_deferred,
		       (unsigned long long)c.sb.drop_rx_too_small,
		       (unsigned long long)c.sb.drop_rx_pin_failed,
		       (unsigned long long)c.sb.drop_rx_no_buffer,
		       (unsigned long long)c.sb.map_rereads,
		       (unsigned long long)(c.max_op_ns / 1000000));
		EXPECT_EQ(0, c.corrupted) TH_LOG("a frame landed in the VMM's memory after its memslot was deleted");
		EXPECT_EQ(0, c.errors) TH_LOG("churn step %d failed: %s", c.err_op, strerror(c.err));
		EXPECT_TRUE(c.churn_back) TH_LOG("the churn thread had not finished");
		EXPECT_TRUE(c.b_back) TH_LOG("B's KVM_RUN had not returned 3 s after stop");
		/*
		 * The bed (QEMU TCG emulating nested SVM) now and then kills a
		 * guest under a long flood, with or without pvpass changes and
		 * without memslot churn (docs/reliability.md, "Known bed
		 * problem"): then the test could not finish its check, and says
		 * so with a skip instead of a pass (below), unless something
		 * else failed too.
		 */
		bed_killed_b = c.b_cmd != UCALL_SYNC &&
			       (c.b_exit == KVM_EXIT_SHUTDOWN || c.b_exit == KVM_EXIT_INTERNAL_ERROR);
		if (bed_killed_b)
			TH_LOG("B: exit reason %u (%s), rip %#llx, suberror %u: the bed killed B",
			       c.b_exit, exit_reason_str(c.b_exit),
			       (unsigned long long)c.b_rip, c.b_suberror);
		if (!bed_killed_b) {
			EXPECT_EQ(UCALL_SYNC, c.b_cmd)
				TH_LOG("B: exit reason %u (%s), ucall %d, rip %#llx, suberror %u data %#llx %#llx %#llx %#llx",
				       c.b_exit, exit_reason_str(c.b_exit), c.b_cmd,
				       (unsigned long long)c.b_rip, c.b_suberror,
				       (unsigned long long)c.b_data[0], (unsigned long long)c.b_data[1],
				       (unsigned long long)c.b_data[2], (unsigned long long)c.b_data[3]);
		}
		EXPECT_LT(0, c.cycles);
		EXPECT_LT(c.max_op_ns, 1000000000ULL);
		EXPECT_LT(c.b_max_ns, 1000000000ULL);
	}
	TH_LOG("A: %d runs of %d, longest KVM_RUN %llu ms", ja.runs, CHURN_BURST,
	       (unsigned long long)(ja.max_ns / 1000000));
	EXPECT_SYNCED(&ja, "A");
	EXPECT_LT(0, ja.runs);
	EXPECT_LT(ja.max_ns, 1000000000ULL);
	sa = stats(pv, a.id);
	EXPECT_EQ((u64)ja.runs * CHURN_BURST, sa.tx_frames);
	finish(pv, &a);
	EXPECT_EQ(base, pinned_pages_settled(base));
	close(out[0]);
	close(cmd[1]);
	close(pv);
	if (bed_killed_b && _metadata->exit_code == KSFT_PASS)
		SKIP(return, "the bed killed B after %u cycles (sentinel intact in all): not a pass",
		     c.cycles);
}

TEST_HARNESS_MAIN
