// SPDX-License-Identifier: GPL-2.0
/*
 * pvpass's vhost transport: /dev/pvpass-vhost-net driven as QEMU drives
 * /dev/vhost-net, with no VM. The test process is the VMM: it mmaps
 * anonymous memory as guest memory, gives it to the device with
 * VHOST_SET_MEM_TABLE (guest-physical 0 upwards), lays out split virtqueues
 * in it (ring 0 receive, ring 1 transmit; their addresses passed as user
 * addresses in VHOST_SET_VRING_ADDR, as QEMU does), kicks by writing the
 * kick eventfds and waits on the call and error eventfds.
 *
 * Every device of a test is a port of the switch SW, which the fixture makes
 * and its teardown (in the parent, once the test process and its files are
 * gone) deletes.
 *
 * Guest memory of one device (MEM_SIZE, guest-physical):
 *   RING_GPA(0)  receive ring     RING_GPA(1)  transmit ring
 *   RXBUF_GPA    QSZ receive buffers of BUF_LEN (one descriptor each)
 *   TXBUF_GPA    TXQ transmit slots of BUF_LEN: header, then frame, as a
 *                chain of two descriptors (2k -> 2k + 1)
 */
#include "pvpass_util.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <linux/if_tun.h>
#include <linux/vhost.h>

#define VHOST_PATH	"/dev/pvpass-vhost-net"
#define SW		"vhtest"

#define QSZ		256
#define TXQ		(QSZ / 2)	/* transmit chains in flight at most */
#define HDR		12		/* virtio_net_hdr_mrg_rxbuf (VERSION_1) */
#define BUF_LEN		2048
#define FRAME_MIN	60
#define FRAME_MAX	1514
#define MEM_SIZE	(2UL << 20)
#define RING_GPA(q)	((u64)(q) * 0x4000)
#define RXBUF_GPA	0x10000UL
#define TXBUF_GPA	(RXBUF_GPA + QSZ * BUF_LEN)
#define MAX_REG		40
#define WAIT_MS		5000

/* Feature bits (virtio) as VHOST_GET_FEATURES reports them. */
#define F_MRG_RXBUF	(1ULL << 15)
#define F_LOG_ALL	(1ULL << 26)
#define F_EVENT_IDX	(1ULL << 29)
#define F_VERSION_1	(1ULL << 32)
/* What QEMU negotiates for a Linux guest. */
#define FEAT_DEFAULT	(F_VERSION_1 | F_MRG_RXBUF | F_EVENT_IDX)

DEFINE_RING(ring, QSZ);
_Static_assert(offsetof(struct ring, used) == USED_OFF(QSZ), "ring layout");
_Static_assert(sizeof(struct ring) <= RING_GPA(1), "rings overlap");
_Static_assert(TXBUF_GPA + TXQ * BUF_LEN <= MEM_SIZE, "memory layout");

static const u8 mac_c[6] = { 0x52, 0x54, 0x00, 0xcc, 0x00, 0x03 };
static const u8 mac_d[6] = { 0x52, 0x54, 0x00, 0xdd, 0x00, 0x04 };
static const u8 bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/* ---- frames ------------------------------------------------------------------ */

/* The length of the frame numbered @seq: 60 to 1514 bytes. */
static u32 frame_len(u32 seq)
{
	return FRAME_MIN + (seq * 97) % (FRAME_MAX - FRAME_MIN + 1);
}

static u8 pattern(u32 seq, u32 i)
{
	return (u8)(seq * 7 + i * 13 + (seq >> 8));
}

static void fill_frame(u8 *f, const u8 *dst, const u8 *src, u32 seq, u32 len)
{
	u32 i;

	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x88;
	f[13] = 0xb5;		/* local experimental ethertype */
	memcpy(f + 14, &seq, 4);
	for (i = 18; i < len; i++)
		f[i] = pattern(seq, i);
}

/* Is the @len bytes at @f the frame @seq from @src to @dst? Why not, in @why. */
static bool frame_ok(const u8 *f, u32 len, const u8 *dst, const u8 *src, u32 seq, char *why)
{
	u32 got, i;

	if (len < 18) {
		sprintf(why, "frame of %u bytes", len);
		return false;
	}
	memcpy(&got, f + 14, 4);
	if (memcmp(f, dst, 6) || memcmp(f + 6, src, 6) || f[12] != 0x88 || f[13] != 0xb5) {
		sprintf(why, "frame %u: wrong Ethernet header (dst %02x:..:%02x src ..:%02x)",
			got, f[0], f[5], f[11]);
		return false;
	}
	if (got != seq) {
		sprintf(why, "frame %u where %u was due", got, seq);
		return false;
	}
	if (len != frame_len(seq)) {
		sprintf(why, "frame %u: %u bytes, sent %u", seq, len, frame_len(seq));
		return false;
	}
	for (i = 18; i < len; i++) {
		if (f[i] != pattern(seq, i)) {
			sprintf(why, "frame %u: byte %u is %#x, sent %#x", seq, i, f[i],
				pattern(seq, i));
			return false;
		}
	}
	return true;
}

/* ---- a device: its file, memory, rings and eventfds ------------------------- */

struct vdev {
	int fd;				/* the /dev/pvpass-vhost-net file */
	int tap;			/* any open file: NET_SET_BACKEND's fd */
	int kick[2], call[2], err[2];	/* eventfds, per ring */
	u8 mac[6];
	u64 features;
	u8 *mem;			/* MEM_SIZE of anonymous memory */
	struct vhost_memory_region reg[MAX_REG];
	u32 nreg;
	u16 avail[2];			/* next avail index to publish */
	u16 seen[2];			/* used entries consumed */
	u32 seq;			/* next transmit frame number */
	u32 id;				/* SET_PORT's device id */
};

static int vioc(int fd, unsigned long req, const void *arg)
{
	return ioctl(fd, req, arg) ? -errno : 0;
}

static int set_port(int fd, const char *sw, const u8 *mac, u32 *id)
{
	struct pvpass_vhost_port p = { 0 };
	int e;

	memcpy(p.backend, sw, strnlen(sw, sizeof(p.backend)));
	memcpy(p.mac, mac, 6);
	e = vioc(fd, PVPASS_VHOST_SET_PORT, &p);
	if (!e && id)
		*id = p.id;
	return e;
}

/* SET_MEM_TABLE of @n regions at @r, saying there are @claim. */
static int set_mem_claim(int fd, const struct vhost_memory_region *r, u32 n, u32 claim)
{
	size_t sz = sizeof(struct vhost_memory) + n * sizeof(*r);
	struct vhost_memory *m = calloc(1, sz);
	int e;

	TEST_ASSERT(m, "calloc");
	m->nregions = claim;
	memcpy(m->regions, r, n * sizeof(*r));
	e = vioc(fd, VHOST_SET_MEM_TABLE, m);
	free(m);
	return e;
}

static int set_mem(int fd, const struct vhost_memory_region *r, u32 n)
{
	return set_mem_claim(fd, r, n, n);
}

static int ring_op(int fd, unsigned long req, u32 index, u32 num)
{
	struct vhost_vring_state s = { .index = index, .num = num };

	return vioc(fd, req, &s);
}

static int ring_fd(int fd, unsigned long req, u32 index, int efd)
{
	struct vhost_vring_file f = { .index = index, .fd = efd };

	return vioc(fd, req, &f);
}

static int get_base(int fd, u32 index, u32 *base)
{
	struct vhost_vring_state s = { .index = index, .num = 0xdeadbeef };
	int e = vioc(fd, VHOST_GET_VRING_BASE, &s);

	*base = s.num;
	return e;
}

static void *gpa2hva(struct vdev *d, u64 gpa)
{
	u32 i;

	for (i = 0; i < d->nreg; i++)
		if (gpa >= d->reg[i].guest_phys_addr &&
		    gpa - d->reg[i].guest_phys_addr < d->reg[i].memory_size)
			return (void *)(unsigned long)(d->reg[i].userspace_addr + gpa -
						       d->reg[i].guest_phys_addr);
	TEST_FAIL("gpa %#llx outside the memory table", (unsigned long long)gpa);
	return NULL;
}

static struct ring *ring(struct vdev *d, int q)
{
	return gpa2hva(d, RING_GPA(q));
}

static int set_addr(int fd, u32 q, u64 desc, u64 avail, u64 used, u32 flags)
{
	struct vhost_vring_addr a = {
		.index = q,
		.flags = flags,
		.desc_user_addr = desc,
		.avail_user_addr = avail,
		.used_user_addr = used,
	};

	return vioc(fd, VHOST_SET_VRING_ADDR, &a);
}

static int set_ring_addr(struct vdev *d, int q)
{
	struct ring *r = ring(d, q);

	return set_addr(d->fd, q, (u64)(unsigned long)r->desc, (u64)(unsigned long)&r->avail,
			(u64)(unsigned long)&r->used, 0);
}

/* Memory (one region: guest-physical 0 -> d->mem), eventfds; no file yet. */
static void vdev_new(struct vdev *d, const u8 *mac)
{
	int q;

	memset(d, 0, sizeof(*d));
	d->fd = -1;
	memcpy(d->mac, mac, 6);
	d->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	TEST_ASSERT(d->mem != MAP_FAILED, "mmap: %s", strerror(errno));
	/* As QEMU does for guest RAM a device reaches: a forked child gets
	 * none of it (no copy-on-write under the device's pins). */
	TEST_ASSERT(!madvise(d->mem, MEM_SIZE, MADV_DONTFORK), "MADV_DONTFORK");
	d->reg[0] = (struct vhost_memory_region){
		.guest_phys_addr = 0,
		.memory_size = MEM_SIZE,
		.userspace_addr = (u64)(unsigned long)d->mem,
	};
	d->nreg = 1;
	for (q = 0; q < 2; q++) {
		d->kick[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		d->call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		d->err[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		TEST_ASSERT(d->kick[q] >= 0 && d->call[q] >= 0 && d->err[q] >= 0, "eventfd");
	}
	d->tap = open("/dev/null", O_RDWR | O_CLOEXEC);
	TEST_ASSERT(d->tap >= 0, "/dev/null");
}

/* Guest memory as 32 regions of 64 KiB in reverse host order: guest-physical
 * 64 KiB * i -> d->mem + 64 KiB * (31 - i). */
static void vdev_scatter(struct vdev *d)
{
	u32 i, n = 32, sz = MEM_SIZE / 32;

	for (i = 0; i < n; i++)
		d->reg[i] = (struct vhost_memory_region){
			.guest_phys_addr = (u64)i * sz,
			.memory_size = sz,
			.userspace_addr = (u64)(unsigned long)d->mem + (u64)(n - 1 - i) * sz,
		};
	d->nreg = n;
}

static int vdev_open(struct vdev *d, const char *sw)
{
	d->fd = open(VHOST_PATH, O_RDWR | O_CLOEXEC);
	if (d->fd < 0)
		return -errno;
	return set_port(d->fd, sw, d->mac, &d->id);
}

/* Ring @q's size, addresses, base 0, and (if @fds) its eventfds. */
static int vdev_ring(struct vdev *d, int q, bool fds, const char **step)
{
	int e;

#define STEP(what, call) do { *step = what; e = (call); if (e) return e; } while (0)
	STEP("SET_VRING_NUM", ring_op(d->fd, VHOST_SET_VRING_NUM, q, QSZ));
	STEP("SET_VRING_ADDR", set_ring_addr(d, q));
	STEP("SET_VRING_BASE", ring_op(d->fd, VHOST_SET_VRING_BASE, q, 0));
	if (fds) {
		STEP("SET_VRING_KICK", ring_fd(d->fd, VHOST_SET_VRING_KICK, q, d->kick[q]));
		STEP("SET_VRING_CALL", ring_fd(d->fd, VHOST_SET_VRING_CALL, q, d->call[q]));
		STEP("SET_VRING_ERR", ring_fd(d->fd, VHOST_SET_VRING_ERR, q, d->err[q]));
	}
	return 0;
}

/* SET_OWNER, features, memory table, both rings: everything but the backend. */
static int vdev_own(struct vdev *d, u64 features, const char **step)
{
	int e, q;

	d->features = features;
	STEP("SET_OWNER", vioc(d->fd, VHOST_SET_OWNER, NULL));
	STEP("SET_FEATURES", vioc(d->fd, VHOST_SET_FEATURES, &features));
	STEP("SET_MEM_TABLE", set_mem(d->fd, d->reg, d->nreg));
	for (q = 0; q < 2; q++) {
		e = vdev_ring(d, q, true, step);
		if (e)
			return e;
	}
	return 0;
}

static int vdev_start(struct vdev *d, const char **step)
{
	int e;

	STEP("NET_SET_BACKEND 0", ring_fd(d->fd, VHOST_NET_SET_BACKEND, 0, d->tap));
	STEP("NET_SET_BACKEND 1", ring_fd(d->fd, VHOST_NET_SET_BACKEND, 1, d->tap));
	return 0;
}

static int vdev_stop(struct vdev *d, const char **step)
{
	int e;

	STEP("NET_SET_BACKEND 0 -1", ring_fd(d->fd, VHOST_NET_SET_BACKEND, 0, -1));
	STEP("NET_SET_BACKEND 1 -1", ring_fd(d->fd, VHOST_NET_SET_BACKEND, 1, -1));
	return 0;
}

/* Open, port on @sw, owner, features, table, rings, start. */
static int vdev_up(struct vdev *d, const char *sw, u64 features, const char **step)
{
	int e;

	STEP("open+SET_PORT", vdev_open(d, sw));
	e = vdev_own(d, features, step);
	if (e)
		return e;
	return vdev_start(d, step);
}
#undef STEP

#define UP(d, feat) do {							\
		const char *_step = "?";					\
		int _e = vdev_up(d, SW, feat, &_step);				\
		ASSERT_EQ(0, _e) TH_LOG("bringing up %s: %s: %s", #d, _step,	\
					strerror(-_e));				\
	} while (0)

static void vdev_close(struct vdev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

/* The rest: eventfds, tap, memory (after the file: the device may still
 * be writing until its release). */
static void vdev_free(struct vdev *d)
{
	int q;

	vdev_close(d);
	for (q = 0; q < 2; q++) {
		close(d->kick[q]);
		close(d->call[q]);
		close(d->err[q]);
	}
	close(d->tap);
	munmap(d->mem, MEM_SIZE);
}

static u16 used_idx(struct vdev *d, int q)
{
	return __atomic_load_n(&ring(d, q)->used.idx, __ATOMIC_ACQUIRE);
}

static void publish(struct vdev *d, int q)
{
	__atomic_store_n(&ring(d, q)->avail.idx, d->avail[q], __ATOMIC_RELEASE);
}

/* With EVENT_IDX: ask for an interrupt at the next used entry of ring @q. */
static void arm(struct vdev *d, int q)
{
	__atomic_store_n(&ring(d, q)->avail.used_event, d->seen[q], __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void kick(struct vdev *d, int q)
{
	u64 one = 1;

	TEST_ASSERT(write(d->kick[q], &one, 8) == 8, "kick: %s", strerror(errno));
}

/* Post @n receive buffers of @len bytes (zeroed) on @d, one descriptor each. */
static void rx_post_len(struct vdev *d, int n, u32 len)
{
	struct ring *r = ring(d, 0);
	int i;

	TEST_ASSERT((u16)(d->avail[0] - d->seen[0]) + n <= QSZ, "receive ring overfilled");
	for (i = 0; i < n; i++) {
		u16 s = d->avail[0] % QSZ;
		u64 b = RXBUF_GPA + (u64)s * BUF_LEN;

		memset(gpa2hva(d, b), 0, BUF_LEN);
		r->desc[s] = (struct desc){ b, len, F_WRITE, 0 };
		r->avail.ring[s] = s;
		d->avail[0]++;
	}
	publish(d, 0);
}

static void rx_post(struct vdev *d, int n)
{
	rx_post_len(d, n, BUF_LEN);
}

/* Transmit chains @d may add now. */
static int tx_room(struct vdev *d)
{
	return TXQ - (u16)(d->avail[1] - used_idx(d, 1));
}

/* Add (not publish) a transmit chain: header, then frame @seq to @dst. */
static void tx_add(struct vdev *d, const u8 *dst, u32 seq, u32 len)
{
	struct ring *r = ring(d, 1);
	u16 k = d->avail[1] % TXQ;
	u64 b = TXBUF_GPA + (u64)k * BUF_LEN;
	u8 *h = gpa2hva(d, b);

	memset(h, 0, HDR);
	fill_frame(h + HDR, dst, d->mac, seq, len);
	r->desc[2 * k] = (struct desc){ b, HDR, F_NEXT, 2 * k + 1 };
	r->desc[2 * k + 1] = (struct desc){ b + HDR, len, 0, 0 };
	r->avail.ring[d->avail[1] % QSZ] = 2 * k;
	d->avail[1]++;
}

/* Used index of ring @q reached @want (within @ms)? */
static bool wait_used(struct vdev *d, int q, u16 want, int ms)
{
	int i;

	for (i = 0; i <= ms; i++) {
		if ((u16)(used_idx(d, q) - want) < 0x8000)
			return true;
		usleep(1000);
	}
	return false;
}

/* Did eventfd @fd fire within @ms? (Its count is read: it is re-armed.) */
static bool fired(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	u64 v;

	if (poll(&p, 1, ms) != 1)
		return false;
	return read(fd, &v, 8) == 8 && v > 0;
}

/*
 * Take the next used entry of @d's receive ring: the frame @seq from @src to
 * @dst, in a buffer of @d's, with a header that says one buffer (MRG_RXBUF)
 * and no GSO. False with why in @why.
 */
static bool rx_take(struct vdev *d, const u8 *dst, const u8 *src, u32 seq, char *why)
{
	struct ring *r = ring(d, 0);
	u16 k = d->seen[0];
	u32 id, len;
	u8 *b;

	if (used_idx(d, 0) == k) {
		sprintf(why, "receive used ring has no entry %u", k);
		return false;
	}
	id = r->used.ring[k % QSZ].id;
	len = r->used.ring[k % QSZ].len;
	d->seen[0]++;
	if (id >= QSZ) {
		sprintf(why, "used entry %u: id %u", k, id);
		return false;
	}
	if (len < HDR || len > BUF_LEN) {
		sprintf(why, "used entry %u: length %u", k, len);
		return false;
	}
	b = gpa2hva(d, RXBUF_GPA + (u64)id * BUF_LEN);
	if ((d->features & F_MRG_RXBUF) && (b[10] | b[11] << 8) != 1) {
		sprintf(why, "used entry %u: num_buffers %u", k, b[10] | b[11] << 8);
		return false;
	}
	if (b[1] != 0) {
		sprintf(why, "used entry %u: gso_type %u", k, b[1]);
		return false;
	}
	return frame_ok(b + HDR, len - HDR, dst, src, seq, why);
}

/*
 * One round of traffic, usable from any thread: @b posts @n buffers, @a
 * sends @n frames to @b, @b checks them (in order). 0, or -1 with @why.
 */
static int exchange(struct vdev *a, struct vdev *b, int n, char *why)
{
	u32 first = a->seq;
	int i, t;

	rx_post(b, n);
	arm(b, 0);
	kick(b, 0);
	for (i = 0; i < n; i++) {
		for (t = 0; !tx_room(a); t++) {
			if (t > WAIT_MS) {
				sprintf(why, "transmit ring full for %d ms (used %u, avail %u)",
					WAIT_MS, used_idx(a, 1), a->avail[1]);
				return -1;
			}
			kick(a, 1);
			usleep(1000);
		}
		tx_add(a, b->mac, a->seq, frame_len(a->seq));
		a->seq++;
	}
	publish(a, 1);
	arm(a, 1);
	kick(a, 1);
	if (!wait_used(b, 0, b->seen[0] + n, WAIT_MS)) {
		sprintf(why, "receiver got %u of %d frames in %d ms", (u16)(used_idx(b, 0) - b->seen[0]),
			n, WAIT_MS);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (!rx_take(b, b->mac, a->mac, first + i, why))
			return -1;
	if (!wait_used(a, 1, a->avail[1], WAIT_MS)) {
		sprintf(why, "sender's used ring at %u, %u chains made available", used_idx(a, 1),
			a->avail[1]);
		return -1;
	}
	a->seen[1] = a->avail[1];
	return 0;
}

#define EXCHANGE(a, b, n) do {							\
		char _why[160] = "";						\
		ASSERT_EQ(0, exchange(a, b, n, _why)) TH_LOG("%s -> %s: %s", #a, #b, _why); \
	} while (0)

/* A thread that runs exchange() rounds until told to stop. */
struct traffic {
	pthread_t t;
	struct vdev *a, *b;
	int n;
	volatile int stop;
	volatile int rounds, bad;
	char why[160];
};

static void *traffic_main(void *arg)
{
	struct traffic *tr = arg;

	while (!tr->stop && !tr->bad) {
		if (exchange(tr->a, tr->b, tr->n, tr->why))
			tr->bad++;
		else
			tr->rounds++;
	}
	return NULL;
}

static void traffic_start(struct traffic *tr, struct vdev *a, struct vdev *b, int n)
{
	memset(tr, 0, sizeof(*tr));
	tr->a = a;
	tr->b = b;
	tr->n = n;
	TEST_ASSERT(!pthread_create(&tr->t, NULL, traffic_main, tr), "pthread_create");
}

static void traffic_stop(struct traffic *tr)
{
	tr->stop = 1;
	pthread_join(tr->t, NULL);
}

/* pinned_pages once it is @want, polled for up to 5 s (a release may be late). */
static long pinned_settled(long want)
{
	long n = pinned_pages();
	int i;

	for (i = 0; i < 500 && n != want; i++) {
		usleep(10000);
		n = pinned_pages();
	}
	return n;
}

/* Ports of switch SW now, -1 if it is not listed. */
static int sw_ports(void)
{
	static struct pvpass_switch all[2 * PVPASS_MAX_SWITCHES];
	struct pvpass_switch_list l = { .count = ARRAY_SIZE(all),
					.entries = (u64)(unsigned long)all };
	int pv = pvpass_open(), r = -1;
	u32 i;

	TEST_ASSERT(!ioctl(pv, PVPASS_SWITCH_LIST, &l), "SWITCH_LIST: %s", strerror(errno));
	for (i = 0; i < l.count && i < ARRAY_SIZE(all); i++)
		if (!strncmp(all[i].name, SW, PVPASS_NAME_LEN))
			r = all[i].ports;
	close(pv);
	return r;
}

/* Ports of SW once they are @want, polled for up to 5 s. */
static int sw_ports_settled(int want)
{
	int n = sw_ports(), i;

	for (i = 0; i < 500 && n != want; i++) {
		usleep(10000);
		n = sw_ports();
	}
	return n;
}

/* ---- the fixture: switch SW ------------------------------------------------- */

FIXTURE(vh) {
	int unused;
};

FIXTURE_SETUP(vh)
{
	struct pvpass_version v = { 0 };
	struct pvpass_switch s = { 0 };
	int pv = pvpass_open(), e;

	ASSERT_EQ(0, ioctl(pv, PVPASS_GET_VERSION, &v));
	if (!(v.features & PVPASS_FEAT_VHOST)) {
		close(pv);
		SKIP(return, "module without the vhost transport (features %#x)", v.features);
	}
	if (access(VHOST_PATH, R_OK | W_OK)) {
		close(pv);
		SKIP(return, "%s: %s", VHOST_PATH, strerror(errno));
	}
	strcpy(s.name, SW);
	e = ioctl(pv, PVPASS_SWITCH_ADD, &s) ? errno : 0;
	ASSERT_TRUE(e == 0 || e == EEXIST) TH_LOG("SWITCH_ADD %s: %s", SW, strerror(e));
	close(pv);
}

/* In the parent, after the test process exited (its files closed). */
FIXTURE_TEARDOWN_PARENT(vh)
{
	struct pvpass_switch s = { 0 };
	int pv = open(PVPASS_DEVICE_PATH, O_RDWR | O_CLOEXEC), tries, err = 0;

	if (pv < 0)
		return;
	strcpy(s.name, SW);
	for (tries = 0; tries < 250; tries++) {
		err = ioctl(pv, PVPASS_SWITCH_DEL, &s) ? errno : 0;
		if (err != EBUSY)
			break;
		usleep(20000);	/* a device still going away */
	}
	if (err && err != ENOENT) {
		ksft_print_msg("teardown: SWITCH_DEL %s: %s\n", SW, strerror(err));
		_metadata->exit_code = KSFT_FAIL;
	}
	close(pv);
}

/* ---- 1. protocol errors -------------------------------------------------------- */

TEST_F(vh, protocol_errors)
{
	struct pvpass_vhost_port p;
	struct vdev d;
	u64 feat = 0, v, want = F_VERSION_1;
	int fd, e, closed, q, status;
	u32 id = 0, id2 = 0, base;
	pid_t child;

	vdev_new(&d, mac_a);
	fd = d.fd = open(VHOST_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	/* A descriptor number nothing in this process uses. */
	for (closed = 1000; fcntl(closed, F_GETFD) != -1 || errno != EBADF; closed++)
		;

	/* No port, no owner (a file without a port may be owned: see
	 * unnamed_files_take_their_port_from_the_tap_rule). */
	EXPECT_EQ(-EPERM, set_mem(fd, d.reg, 1)) TH_LOG("SET_MEM_TABLE before SET_OWNER");
	EXPECT_EQ(-EPERM, ring_op(fd, VHOST_SET_VRING_NUM, 0, QSZ));
	EXPECT_EQ(-EPERM, set_ring_addr(&d, 0)) TH_LOG("SET_VRING_ADDR before SET_OWNER");
	EXPECT_EQ(-EPERM, ring_op(fd, VHOST_SET_VRING_BASE, 0, 0));
	EXPECT_EQ(-EPERM, get_base(fd, 0, &base));
	EXPECT_EQ(-EPERM, ring_fd(fd, VHOST_SET_VRING_KICK, 0, d.kick[0]));
	EXPECT_EQ(-EPERM, ring_fd(fd, VHOST_SET_VRING_CALL, 0, d.call[0]));
	EXPECT_EQ(-EPERM, ring_fd(fd, VHOST_SET_VRING_ERR, 0, d.err[0]));
	EXPECT_EQ(-EPERM, ring_fd(fd, VHOST_NET_SET_BACKEND, 0, d.tap));
	EXPECT_EQ(-EPERM, vioc(fd, VHOST_SET_FEATURES, &want));
	EXPECT_EQ(-EPERM, vioc(fd, VHOST_RESET_OWNER, NULL));
	v = 0;
	EXPECT_EQ(-EPERM, vioc(fd, VHOST_SET_LOG_BASE, &v));

	/* What needs no owner. */
	ASSERT_EQ(0, vioc(fd, VHOST_GET_FEATURES, &feat));
	EXPECT_TRUE(feat & F_VERSION_1) TH_LOG("features %#llx without VERSION_1", (unsigned long long)feat);
	EXPECT_TRUE(feat & F_EVENT_IDX) TH_LOG("features %#llx without EVENT_IDX", (unsigned long long)feat);
	EXPECT_TRUE(feat & F_MRG_RXBUF) TH_LOG("features %#llx without MRG_RXBUF", (unsigned long long)feat);
	EXPECT_TRUE(feat & F_LOG_ALL) TH_LOG("features %#llx without LOG_ALL", (unsigned long long)feat);
	v = ~0ULL;
	EXPECT_EQ(0, vioc(fd, VHOST_GET_BACKEND_FEATURES, &v));
	EXPECT_EQ(0, v);
	v = 1;
	EXPECT_EQ(-EOPNOTSUPP, vioc(fd, VHOST_SET_BACKEND_FEATURES, &v));
	v = 1ULL << 63;
	EXPECT_EQ(-EOPNOTSUPP, vioc(fd, VHOST_SET_BACKEND_FEATURES, &v));
	v = 0;
	EXPECT_EQ(0, vioc(fd, VHOST_SET_BACKEND_FEATURES, &v));

	/* SET_PORT errors. */
	EXPECT_EQ(-ENODEV, set_port(fd, "nosuch", mac_a, NULL));
	EXPECT_EQ(-EINVAL, set_port(fd, "a b", mac_a, NULL));
#define BAD_PORT(errno_, ...) do {						\
		memset(&p, 0, sizeof(p));					\
		strcpy(p.backend, SW);						\
		memcpy(p.mac, mac_a, 6);					\
		__VA_ARGS__;							\
		EXPECT_EQ(-(errno_), vioc(fd, PVPASS_VHOST_SET_PORT, &p))	\
			TH_LOG("SET_PORT case: %s", #__VA_ARGS__);		\
	} while (0)
	BAD_PORT(EINVAL, memset(p.mac, 0, 6));				/* zero MAC */
	BAD_PORT(EINVAL, memcpy(p.mac, bcast, 6));			/* broadcast */
	BAD_PORT(EINVAL, p.mac[0] = 0x01);				/* multicast */
	BAD_PORT(EINVAL, p.mac[0] = 0x53);				/* group bit */
	BAD_PORT(EINVAL, p.flags = 2);
	BAD_PORT(EINVAL, p.flags = 1u << 31);
	BAD_PORT(ENOENT, p.flags = PVPASS_VHOST_F_JOIN);		/* no port with id 0 */
	BAD_PORT(EINVAL, p.pad[0] = 1);
	BAD_PORT(EINVAL, p.pad[1] = 0x80);
	BAD_PORT(EINVAL, p.backend[sizeof(SW) + 1] = 'x');		/* after the NUL */
	BAD_PORT(EINVAL, memset(p.backend, 'a', sizeof(p.backend)));	/* no NUL */
#undef BAD_PORT
	/* A port may be named again until SET_OWNER (a new port: the old one
	 * goes, with its id). */
	ASSERT_EQ(0, set_port(fd, SW, mac_b, &id));
	EXPECT_NE(0, id);
	ASSERT_EQ(0, set_port(fd, SW, mac_a, &id2));
	EXPECT_NE(id, id2);
	ASSERT_EQ(0, vioc(fd, VHOST_SET_OWNER, NULL));
	EXPECT_EQ(-EBUSY, set_port(fd, SW, mac_a, NULL)) TH_LOG("SET_PORT after SET_OWNER");
	EXPECT_EQ(-EBUSY, vioc(fd, VHOST_SET_OWNER, NULL)) TH_LOG("second SET_OWNER");

	/* Features. */
	v = F_VERSION_1 | F_LOG_ALL;
	EXPECT_EQ(0, vioc(fd, VHOST_SET_FEATURES, &v)) TH_LOG("SET_FEATURES with LOG_ALL");
	v = F_VERSION_1 | (1ULL << 40);
	EXPECT_EQ(-EOPNOTSUPP, vioc(fd, VHOST_SET_FEATURES, &v)) TH_LOG("SET_FEATURES bit 40");
	v = FEAT_DEFAULT;
	EXPECT_EQ(0, vioc(fd, VHOST_SET_FEATURES, &v));
	v = 0x1000;
	EXPECT_EQ(0, vioc(fd, VHOST_SET_LOG_BASE, &v)) TH_LOG("SET_LOG_BASE");
	EXPECT_EQ(0, vioc(fd, VHOST_SET_LOG_FD, &d.call[0])) TH_LOG("SET_LOG_FD");
	{
		int bad = -1;

		EXPECT_EQ(0, vioc(fd, VHOST_SET_LOG_FD, &bad)) TH_LOG("SET_LOG_FD -1");
		bad = d.tap;
		EXPECT_EQ(-EINVAL, vioc(fd, VHOST_SET_LOG_FD, &bad)) TH_LOG("SET_LOG_FD not an eventfd");
	}

	/* Ring index 2 and beyond: ENOBUFS, whatever the ioctl. */
	for (q = 2; q <= 3; q++) {
		u32 i = q == 2 ? 2 : 0xffffffffu;

		EXPECT_EQ(-ENOBUFS, ring_op(fd, VHOST_SET_VRING_NUM, i, QSZ)) TH_LOG("index %u", i);
		EXPECT_EQ(-ENOBUFS, set_addr(fd, i, (u64)(unsigned long)d.mem,
					     (u64)(unsigned long)d.mem + 4096,
					     (u64)(unsigned long)d.mem + 8192, 0));
		EXPECT_EQ(-ENOBUFS, ring_op(fd, VHOST_SET_VRING_BASE, i, 0));
		EXPECT_EQ(-ENOBUFS, get_base(fd, i, &base));
		EXPECT_EQ(-ENOBUFS, ring_fd(fd, VHOST_SET_VRING_KICK, i, d.kick[0]));
		EXPECT_EQ(-ENOBUFS, ring_fd(fd, VHOST_SET_VRING_CALL, i, d.call[0]));
		EXPECT_EQ(-ENOBUFS, ring_fd(fd, VHOST_SET_VRING_ERR, i, d.err[0]));
		EXPECT_EQ(-ENOBUFS, ring_fd(fd, VHOST_NET_SET_BACKEND, i, d.tap));
	}

	/* Ring sizes: a power of two, 1 to 32768. */
	EXPECT_EQ(-EINVAL, ring_op(fd, VHOST_SET_VRING_NUM, 0, 0));
	EXPECT_EQ(-EINVAL, ring_op(fd, VHOST_SET_VRING_NUM, 0, 3));
	EXPECT_EQ(-EINVAL, ring_op(fd, VHOST_SET_VRING_NUM, 1, 384));
	EXPECT_EQ(-EINVAL, ring_op(fd, VHOST_SET_VRING_NUM, 0, 65536));
	EXPECT_EQ(-EINVAL, ring_op(fd, VHOST_SET_VRING_NUM, 1, 0x80000000u));
	EXPECT_EQ(0, ring_op(fd, VHOST_SET_VRING_NUM, 0, 32768));
	EXPECT_EQ(0, ring_op(fd, VHOST_SET_VRING_NUM, 0, 1));
	EXPECT_EQ(0, ring_op(fd, VHOST_SET_VRING_NUM, 0, QSZ));
	/* Bases: 16 bits. */
	EXPECT_EQ(-EINVAL, ring_op(fd, VHOST_SET_VRING_BASE, 0, 0x10000));
	EXPECT_EQ(0, ring_op(fd, VHOST_SET_VRING_BASE, 0, 0xffff));
	EXPECT_EQ(0, get_base(fd, 0, &base));
	EXPECT_EQ(0xffff, base);
	EXPECT_EQ(0, ring_op(fd, VHOST_SET_VRING_BASE, 0, 0));

	/* Ring addresses: desc 16-, avail 2-, used 4-aligned; no logging. */
	{
		u64 r = (u64)(unsigned long)d.mem, a = r + 4096, u = r + 8192;

		EXPECT_EQ(-EINVAL, set_addr(fd, 0, r + 8, a, u, 0)) TH_LOG("desc 8-aligned");
		EXPECT_EQ(-EINVAL, set_addr(fd, 0, r + 1, a, u, 0)) TH_LOG("desc odd");
		EXPECT_EQ(-EINVAL, set_addr(fd, 0, r, a + 1, u, 0)) TH_LOG("avail odd");
		EXPECT_EQ(-EINVAL, set_addr(fd, 1, r, a, u + 2, 0)) TH_LOG("used 2-aligned");
		EXPECT_EQ(0, set_addr(fd, 0, r, a, u, 1u << VHOST_VRING_F_LOG))
			TH_LOG("SET_VRING_ADDR with VHOST_VRING_F_LOG");
		EXPECT_EQ(-EINVAL, set_addr(fd, 0, r, a, u, 2))
			TH_LOG("SET_VRING_ADDR with an unknown flag");
		EXPECT_EQ(0, set_addr(fd, 0, r, a, u, 0));
		EXPECT_EQ(0, set_addr(fd, 1, r + 16, a + 2, u + 4, 0));
	}

	/* Eventfds: not an eventfd EINVAL, closed EBADF, below -1 EINVAL, -1 unbinds. */
	{
		static const unsigned long reqs[] = {
			VHOST_SET_VRING_KICK, VHOST_SET_VRING_CALL, VHOST_SET_VRING_ERR,
		};
		static const char *const names[] = { "KICK", "CALL", "ERR" };
		int i, pipefd[2];

		ASSERT_EQ(0, pipe(pipefd));
		for (i = 0; i < 3; i++) {
			EXPECT_EQ(-EINVAL, ring_fd(fd, reqs[i], 0, d.tap))
				TH_LOG("SET_VRING_%s with /dev/null", names[i]);
			EXPECT_EQ(-EINVAL, ring_fd(fd, reqs[i], 1, pipefd[0]))
				TH_LOG("SET_VRING_%s with a pipe", names[i]);
			EXPECT_EQ(-EBADF, ring_fd(fd, reqs[i], 0, closed))
				TH_LOG("SET_VRING_%s with a closed fd", names[i]);
			EXPECT_EQ(-EINVAL, ring_fd(fd, reqs[i], 0, -2))
				TH_LOG("SET_VRING_%s with fd -2", names[i]);
			EXPECT_EQ(0, ring_fd(fd, reqs[i], 0, d.kick[1]));
			EXPECT_EQ(0, ring_fd(fd, reqs[i], 0, -1));
		}
		close(pipefd[0]);
		close(pipefd[1]);
	}
	EXPECT_EQ(-EBADF, ring_fd(fd, VHOST_NET_SET_BACKEND, 0, closed))
		TH_LOG("NET_SET_BACKEND with a closed fd");
	EXPECT_EQ(0, ring_fd(fd, VHOST_NET_SET_BACKEND, 0, -1));
	EXPECT_EQ(-ENOTTY, vioc(fd, _IO(VHOST_VIRTIO, 0x7f), NULL)) TH_LOG("unknown ioctl");

	/* RESET_OWNER: the file may be owned again (the port stays). */
	EXPECT_EQ(0, vioc(fd, VHOST_RESET_OWNER, NULL));
	EXPECT_EQ(-EPERM, ring_op(fd, VHOST_SET_VRING_NUM, 0, QSZ)) TH_LOG("after RESET_OWNER");
	EXPECT_EQ(0, vioc(fd, VHOST_SET_OWNER, NULL)) TH_LOG("SET_OWNER after RESET_OWNER");
	EXPECT_EQ(0, ring_op(fd, VHOST_SET_VRING_NUM, 0, QSZ));

	/* SET_PORT needs CAP_SYS_ADMIN: a child without it, on a file of its own. */
	child = fork();
	ASSERT_GE(child, 0);
	if (!child) {
		int f = open(VHOST_PATH, O_RDWR | O_CLOEXEC);

		if (f < 0 || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(100);
		e = set_port(f, SW, mac_c, NULL);
		_exit(e == -EPERM ? 0 : e < 0 ? -e : 101);
	}
	ASSERT_EQ(child, waitpid(child, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("SET_PORT without CAP_SYS_ADMIN: status %#x (errno or 101: success)", status);
	vdev_free(&d);
}

/* ---- 2. ownership ---------------------------------------------------------------- */

static void *owner_thread_ioctl(void *arg)
{
	struct vdev *d = arg;

	return (void *)(long)ring_op(d->fd, VHOST_SET_VRING_NUM, 0, QSZ);
}

TEST_F(vh, other_process_gets_eperm)
{
	static const char *const what[] = {
		"SET_MEM_TABLE", "SET_VRING_NUM", "SET_VRING_ADDR", "SET_VRING_BASE",
		"SET_VRING_KICK", "SET_FEATURES", "NET_SET_BACKEND", "RESET_OWNER",
		"SET_OWNER (EBUSY)",
	};
	int want[ARRAY_SIZE(what)] = {
		-EPERM, -EPERM, -EPERM, -EPERM, -EPERM, -EPERM, -EPERM, -EPERM, -EBUSY,
	};
	int got[ARRAY_SIZE(what)], pfd[2], status;
	const char *step = "?";
	struct vdev d;
	pthread_t t;
	void *ret;
	u64 f = FEAT_DEFAULT;
	pid_t child;
	u32 i;

	vdev_new(&d, mac_a);
	ASSERT_EQ(0, vdev_open(&d, SW));
	ASSERT_EQ(0, vdev_own(&d, FEAT_DEFAULT, &step)) TH_LOG("%s", step);
	ASSERT_EQ(0, pipe(pfd));
	child = fork();
	ASSERT_GE(child, 0);
	if (!child) {
		/* Another mm: the file's memory table would be the wrong one. */
		got[0] = set_mem(d.fd, d.reg, d.nreg);
		got[1] = ring_op(d.fd, VHOST_SET_VRING_NUM, 0, QSZ);
		got[2] = set_ring_addr(&d, 1);
		got[3] = ring_op(d.fd, VHOST_SET_VRING_BASE, 0, 0);
		got[4] = ring_fd(d.fd, VHOST_SET_VRING_KICK, 0, d.kick[0]);
		got[5] = vioc(d.fd, VHOST_SET_FEATURES, &f);
		got[6] = ring_fd(d.fd, VHOST_NET_SET_BACKEND, 0, d.tap);
		got[7] = vioc(d.fd, VHOST_RESET_OWNER, NULL);
		got[8] = vioc(d.fd, VHOST_SET_OWNER, NULL);
		_exit(write(pfd[1], got, sizeof(got)) == sizeof(got) ? 0 : 1);
	}
	close(pfd[1]);
	ASSERT_EQ(sizeof(got), read(pfd[0], got, sizeof(got)));
	ASSERT_EQ(child, waitpid(child, &status, 0));
	for (i = 0; i < ARRAY_SIZE(what); i++) {
		EXPECT_EQ(want[i], got[i]) TH_LOG("another process's %s: %s", what[i],
						  strerror(-got[i]));
	}
	close(pfd[0]);

	/* Another thread of the owner is the owner. */
	ASSERT_EQ(0, pthread_create(&t, NULL, owner_thread_ioctl, &d));
	pthread_join(t, &ret);
	EXPECT_EQ(0, (long)ret) TH_LOG("owner's other thread: %s", strerror(-(long)ret));

	/* The file still works for its owner: a device that starts and sends. */
	{
		struct vdev b;

		vdev_new(&b, mac_b);
		UP(&b, FEAT_DEFAULT);
		ASSERT_EQ(0, vdev_start(&d, &step)) TH_LOG("%s", step);
		EXCHANGE(&d, &b, 8);
		vdev_free(&b);
	}
	vdev_free(&d);
}

/* ---- 3. bad memory tables ---------------------------------------------------------- */

TEST_F_TIMEOUT(vh, bad_memory_tables_keep_the_previous_one, 120)
{
	struct vhost_memory_region r[MAX_REG];
	long base = pinned_pages();
	const char *step = "?";
	struct vdev a, b;
	u64 decoy, far;
	u8 *dmem;
	int i;

	ASSERT_GE(base, 0);
	vdev_new(&a, mac_a);
	vdev_new(&b, mac_b);
	vdev_scatter(&a);		/* the good table: 32 regions */
	UP(&b, FEAT_DEFAULT);
	ASSERT_EQ(0, vdev_open(&a, SW));
	ASSERT_EQ(0, vdev_own(&a, FEAT_DEFAULT, &step)) TH_LOG("%s", step);

	/* Memory a bad table's good regions point at: if the module took any
	 * of a bad table, A's rings would be there (empty) or outside it. */
	dmem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, dmem);
	decoy = (u64)(unsigned long)dmem;
	far = decoy + MEM_SIZE;

#define REG(i, g, s, u) r[i] = (struct vhost_memory_region){ .guest_phys_addr = (g),	\
		.memory_size = (s), .userspace_addr = (u) }
#define BAD_TABLE(errno_, n, what) EXPECT_EQ(-(errno_), set_mem(a.fd, r, n)) TH_LOG(what)
	/* 33 regions (each fine alone): E2BIG. */
	for (i = 0; i < 33; i++)
		REG(i, (u64)i * 4096, 4096, decoy + (u64)i * 4096);
	BAD_TABLE(E2BIG, 33, "33 regions");
	EXPECT_EQ(-E2BIG, set_mem_claim(a.fd, r, 1, 0xffffffffu)) TH_LOG("2^32 - 1 regions");
	/* The rest: a good first region, then a bad one. */
	REG(0, 0, MEM_SIZE / 2, decoy);
	REG(1, MEM_SIZE / 4, MEM_SIZE / 2, far);
	BAD_TABLE(EINVAL, 2, "overlapping regions");
	REG(1, MEM_SIZE / 2 - 4096, 8192, far);
	BAD_TABLE(EINVAL, 2, "regions overlapping by a page");
	REG(1, 0, MEM_SIZE / 2, far);
	BAD_TABLE(EINVAL, 2, "two regions at the same address");
	REG(1, 0xfffffffffff00000ULL, 0x200000, far);
	BAD_TABLE(EINVAL, 2, "guest-physical end wraps around");
	REG(1, MEM_SIZE, 0x200000, 0xfffffffffff00000ULL);
	BAD_TABLE(EINVAL, 2, "user address end wraps around");
	REG(1, MEM_SIZE, 0xffffffffffffe000ULL, far);
	BAD_TABLE(EINVAL, 2, "size wraps guest-physical around");
	REG(1, MEM_SIZE + 0x800, 0x10000, far);
	BAD_TABLE(EINVAL, 2, "guest-physical address not page aligned");
	REG(1, MEM_SIZE, 0x10800, far);
	BAD_TABLE(EINVAL, 2, "size not page aligned");
	REG(1, MEM_SIZE, 0x10000, far + 0x800);
	BAD_TABLE(EINVAL, 2, "user address not page aligned");
	REG(1, MEM_SIZE, 0, far);
	BAD_TABLE(EINVAL, 2, "zero size");
	REG(0, 0, 0, decoy);
	BAD_TABLE(EINVAL, 1, "zero size alone");

	/* The 32-region table is in force: the rings are where it says, and
	 * frames cross it both ways. */
	ASSERT_EQ(0, vdev_start(&a, &step)) TH_LOG("start after bad tables: %s: %s", step,
						   strerror(errno));
	EXCHANGE(&a, &b, 32);
	EXCHANGE(&b, &a, 32);

	/* While running too. */
	REG(0, 0, MEM_SIZE / 2, decoy);
	REG(1, MEM_SIZE / 4, MEM_SIZE / 2, far);
	BAD_TABLE(EINVAL, 2, "overlapping regions, running");
	REG(1, MEM_SIZE, 0, far);
	BAD_TABLE(EINVAL, 2, "zero size, running");
	EXCHANGE(&a, &b, 32);
	EXCHANGE(&b, &a, 32);
#undef BAD_TABLE
#undef REG
	vdev_free(&a);
	vdev_free(&b);
	munmap(dmem, MEM_SIZE);
	EXPECT_EQ(base, pinned_settled(base));
}

/* ---- 4. rings outside the table ------------------------------------------------------ */

TEST_F_TIMEOUT(vh, rings_outside_the_memory_table, 120)
{
	long base = pinned_pages();
	const char *step = "?";
	struct vdev a, b, x;
	struct ring *fr;
	u64 m, end, fu;
	u8 *far;
	u32 n = 0;

	ASSERT_GE(base, 0);
	vdev_new(&a, mac_a);
	vdev_new(&b, mac_b);
	UP(&b, F_VERSION_1);
	far = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, far);
	fr = (struct ring *)far;
	fu = (u64)(unsigned long)far;

	/* Both rings with a backend before any memory table: EINVAL. */
	ASSERT_EQ(0, vdev_open(&a, SW));
	ASSERT_EQ(0, vioc(a.fd, VHOST_SET_OWNER, NULL));
	a.features = F_VERSION_1;
	ASSERT_EQ(0, vioc(a.fd, VHOST_SET_FEATURES, &a.features));
	ASSERT_EQ(0, vdev_ring(&a, 0, true, &step)) TH_LOG("%s", step);
	ASSERT_EQ(0, vdev_ring(&a, 1, true, &step)) TH_LOG("%s", step);
	EXPECT_EQ(0, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 0, a.tap));
	EXPECT_EQ(-EINVAL, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 1, a.tap))
		TH_LOG("start before SET_MEM_TABLE");
	EXPECT_EQ(1, sw_ports()) TH_LOG("a device that did not start is a port of the switch");

	/* Three quarters of the memory in the table (guest-physical 0 -> a.mem). */
	a.reg[0].memory_size = MEM_SIZE / 4 * 3;
	ASSERT_EQ(0, set_mem(a.fd, a.reg, 1));
	m = (u64)(unsigned long)a.mem;
	end = m + a.reg[0].memory_size;

	/* The transmit ring in memory of the process that no region maps. */
	EXPECT_EQ(0, set_addr(a.fd, 1, fu, fu + offsetof(struct ring, avail),
			      fu + offsetof(struct ring, used), 0));
	EXPECT_EQ(-EFAULT, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 1, a.tap))
		TH_LOG("transmit ring outside every region");
	/* The receive ring's too (both set again). */
	EXPECT_EQ(0, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 1, -1));
	EXPECT_EQ(0, set_ring_addr(&a, 1));
	EXPECT_EQ(0, set_addr(a.fd, 0, fu, (u64)(unsigned long)&fr->avail,
			      (u64)(unsigned long)&fr->used, 0));
	EXPECT_EQ(0, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 0, a.tap));
	EXPECT_EQ(-EFAULT, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 1, a.tap))
		TH_LOG("receive ring outside every region");
	/* Only its used ring outside: EFAULT. */
	EXPECT_EQ(0, set_addr(a.fd, 0, m + RING_GPA(0), m + RING_GPA(0) + 4096, fu, 0));
	EXPECT_EQ(-EFAULT, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 1, a.tap))
		TH_LOG("receive used ring outside every region");
	/* A used ring straddling the region's end: EFAULT. */
	EXPECT_EQ(0, set_addr(a.fd, 0, m + RING_GPA(0), m + RING_GPA(0) + 4096, end - 2048, 0));
	EXPECT_EQ(-EFAULT, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 1, a.tap))
		TH_LOG("receive used ring across the end of the region");
	/* A descriptor table straddling it. */
	EXPECT_EQ(0, set_ring_addr(&a, 0));
	EXPECT_EQ(0, set_addr(a.fd, 1, end - 4096 + 16, m + RING_GPA(1) + 4096,
			      m + RING_GPA(1) + 8192 - 2052, 0));
	EXPECT_EQ(-EFAULT, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 1, a.tap))
		TH_LOG("descriptor table across the end of the region");
	EXPECT_EQ(1, sw_ports()) TH_LOG("a device that did not start is a port of the switch");

	/* A used ring ending right at the region's end (8 * 256 + 4 bytes
	 * without EVENT_IDX) is fine; the device starts and works. */
	EXPECT_EQ(0, set_addr(a.fd, 1, m + RING_GPA(1), m + RING_GPA(1) + 4096, end - 2052, 0));
	EXPECT_EQ(0, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 1, a.tap))
		TH_LOG("used ring ending at the region's end");
	EXPECT_EQ(2, sw_ports());
	/* Running: no ring changes. */
	EXPECT_EQ(-EBUSY, ring_op(a.fd, VHOST_SET_VRING_NUM, 1, QSZ));
	EXPECT_EQ(-EBUSY, ring_op(a.fd, VHOST_SET_VRING_BASE, 1, 0));
	EXPECT_EQ(-EBUSY, set_ring_addr(&a, 1));
	/* Stopped: the base is still 0; the proper used ring back. */
	ASSERT_EQ(0, vdev_stop(&a, &step)) TH_LOG("%s", step);
	EXPECT_EQ(1, sw_ports()) TH_LOG("a stopped device is still a port of the switch");
	EXPECT_EQ(0, get_base(a.fd, 1, &n));
	EXPECT_EQ(0, n);
	EXPECT_EQ(0, set_ring_addr(&a, 1));
	ASSERT_EQ(0, vdev_start(&a, &step)) TH_LOG("%s: %s", step, strerror(errno));
	EXCHANGE(&a, &b, 16);
	EXCHANGE(&b, &a, 16);

	/* A MAC another port has: the start fails, the other port is left alone. */
	vdev_new(&x, mac_b);
	{
		int e = vdev_up(&x, SW, F_VERSION_1, &step);

		EXPECT_EQ(-EADDRINUSE, e) TH_LOG("start with B's MAC: %s: %s", step, strerror(-e));
	}
	EXPECT_EQ(2, sw_ports());
	vdev_free(&x);
	EXCHANGE(&a, &b, 16);

	vdev_free(&a);
	vdev_free(&b);
	munmap(far, MEM_SIZE);
	EXPECT_EQ(0, sw_ports_settled(0));
	EXPECT_EQ(base, pinned_settled(base));
}

/* ---- 5. data path ------------------------------------------------------------------------- */

#define N_FRAMES	32

static void data_path(struct __test_metadata *_metadata, u64 feat)
{
	long base = pinned_pages();
	struct vdev a, b;
	char why[160];
	int i;

	ASSERT_GE(base, 0);
	vdev_new(&a, mac_a);
	vdev_new(&b, mac_b);
	UP(&b, feat);
	UP(&a, feat);
	EXPECT_EQ(2, sw_ports());

	rx_post(&b, N_FRAMES + 1);
	arm(&b, 0);
	kick(&b, 0);
	for (i = 0; i < N_FRAMES; i++)
		tx_add(&a, mac_b, i, frame_len(i));
	publish(&a, 1);
	arm(&a, 1);
	kick(&a, 1);

	EXPECT_TRUE(fired(b.call[0], WAIT_MS)) TH_LOG("B's receive call eventfd did not fire");
	EXPECT_TRUE(wait_used(&b, 0, N_FRAMES, WAIT_MS));
	EXPECT_EQ(N_FRAMES, used_idx(&b, 0)) TH_LOG("B's receive used index");
	for (i = 0; i < N_FRAMES; i++)
		EXPECT_TRUE(rx_take(&b, mac_b, mac_a, i, why)) TH_LOG("B's frame %d: %s", i, why);
	EXPECT_TRUE(wait_used(&a, 1, N_FRAMES, WAIT_MS));
	EXPECT_EQ(N_FRAMES, used_idx(&a, 1)) TH_LOG("A's transmit used index");
	for (i = 0; i < N_FRAMES; i++) {
		struct ring *r = ring(&a, 1);

		EXPECT_EQ(2 * (i % TXQ), r->used.ring[i].id) TH_LOG("A's used entry %d", i);
	}
	EXPECT_TRUE(fired(a.call[1], WAIT_MS)) TH_LOG("A's transmit call eventfd did not fire");
	a.seen[1] = N_FRAMES;
	EXPECT_FALSE(fired(a.call[0], 0)) TH_LOG("A's receive call eventfd fired (nothing for A)");
	EXPECT_FALSE(fired(b.call[1], 0)) TH_LOG("B's transmit call eventfd fired (B sent nothing)");
	EXPECT_FALSE(fired(a.err[0], 0) || fired(a.err[1], 0) || fired(b.err[0], 0) ||
		     fired(b.err[1], 0)) TH_LOG("an error eventfd fired");

	/* A broadcast from A reaches B (and not A). */
	tx_add(&a, bcast, N_FRAMES, frame_len(N_FRAMES));
	publish(&a, 1);
	arm(&a, 1);
	arm(&b, 0);
	kick(&a, 1);
	EXPECT_TRUE(fired(b.call[0], WAIT_MS)) TH_LOG("B's call eventfd, broadcast");
	ASSERT_TRUE(wait_used(&b, 0, N_FRAMES + 1, WAIT_MS)) TH_LOG("B got no broadcast");
	EXPECT_TRUE(rx_take(&b, bcast, mac_a, N_FRAMES, why)) TH_LOG("broadcast: %s", why);
	EXPECT_TRUE(wait_used(&a, 1, N_FRAMES + 1, WAIT_MS));
	EXPECT_TRUE(fired(a.call[1], WAIT_MS)) TH_LOG("A's transmit call eventfd, broadcast");
	a.seen[1] = N_FRAMES + 1;
	a.seq = N_FRAMES + 1;

	/* And the other way. */
	EXCHANGE(&b, &a, 4);
	EXPECT_TRUE(fired(a.call[0], WAIT_MS)) TH_LOG("A's receive call eventfd");
	/* Frames sent before A posts buffers wait in its backlog until A's
	 * kick of its receive ring. */
	for (i = 0; i < 4; i++)
		tx_add(&b, mac_a, b.seq + i, frame_len(b.seq + i));
	publish(&b, 1);
	kick(&b, 1);
	ASSERT_TRUE(wait_used(&b, 1, b.avail[1], WAIT_MS)) TH_LOG("B's 4 chains not returned");
	b.seen[1] = b.avail[1];
	usleep(20000);
	EXPECT_EQ(a.seen[0], used_idx(&a, 0)) TH_LOG("A received without a buffer");
	rx_post(&a, 4);
	arm(&a, 0);
	kick(&a, 0);
	EXPECT_TRUE(wait_used(&a, 0, a.seen[0] + 4, WAIT_MS)) TH_LOG("backlog not delivered at A's kick");
	for (i = 0; i < 4; i++)
		EXPECT_TRUE(rx_take(&a, mac_a, mac_b, b.seq + i, why)) TH_LOG("A's frame %d: %s", i, why);
	b.seq += 4;
	EXCHANGE(&b, &a, 8);

	/* QEMU swaps a running queue's call eventfd (MSI-X mask and unmask)
	 * and its kick eventfd (ioeventfd changes): the new ones count. */
	{
		int oldcall = b.call[0], oldkick = a.kick[1];

		b.call[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		a.kick[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		ASSERT_EQ(0, ring_fd(b.fd, VHOST_SET_VRING_CALL, 0, b.call[0]));
		ASSERT_EQ(0, ring_fd(a.fd, VHOST_SET_VRING_KICK, 1, a.kick[1]));
		EXCHANGE(&a, &b, 8);
		EXPECT_TRUE(fired(b.call[0], WAIT_MS)) TH_LOG("B's new call eventfd did not fire");
		EXPECT_FALSE(fired(oldcall, 0)) TH_LOG("B's old call eventfd fired after the swap");
		/* No call eventfd: frames still arrive, nothing fires. */
		ASSERT_EQ(0, ring_fd(b.fd, VHOST_SET_VRING_CALL, 0, -1));
		EXCHANGE(&a, &b, 8);
		EXPECT_FALSE(fired(b.call[0], 0) || fired(oldcall, 0))
			TH_LOG("a call eventfd fired after SET_VRING_CALL -1");
		ASSERT_EQ(0, ring_fd(b.fd, VHOST_SET_VRING_CALL, 0, b.call[0]));
		EXCHANGE(&a, &b, 8);
		EXPECT_TRUE(fired(b.call[0], WAIT_MS)) TH_LOG("B's call eventfd, given back");
		close(oldcall);
		close(oldkick);
	}

	vdev_free(&a);
	vdev_free(&b);
	EXPECT_EQ(0, sw_ports_settled(0));
	EXPECT_EQ(base, pinned_settled(base));
}

TEST_F_TIMEOUT(vh, data_path_event_idx_mrg_rxbuf, 120)
{
	data_path(_metadata, FEAT_DEFAULT);
}

TEST_F_TIMEOUT(vh, data_path_no_event_idx, 120)
{
	data_path(_metadata, F_VERSION_1);
}


/* ---- 5b. receive buffers smaller than a frame ---------------------------------------- */

/*
 * The frame in used entry @k of @d's receive ring (and, with MRG_RXBUF,
 * the num_buffers - 1 entries after it), gathered along each chain's
 * descriptors into @out (header dropped). Its length, or -1 with @why.
 */
static int gather(struct vdev *d, u8 *out, u16 *nbufs, char *why)
{
	struct ring *r = ring(d, 0);
	u32 total = 0, want = 1, e;
	bool mrg = d->features & F_MRG_RXBUF;

	for (e = 0; e < want; e++) {
		u16 k = d->seen[0];
		u32 id, len, got = 0, hops = 0;

		if (used_idx(d, 0) == k) {
			sprintf(why, "no used entry %u (buffer %u of %u)", k, e, want);
			return -1;
		}
		id = r->used.ring[k % QSZ].id;
		len = r->used.ring[k % QSZ].len;
		d->seen[0]++;
		while (got < len) {
			struct desc *dd;
			u32 n;
			u8 *p;

			if (id >= QSZ || hops++ > 8) {
				sprintf(why, "used entry %u: chain runs out at %u of %u bytes", k, got,
					len);
				return -1;
			}
			dd = &r->desc[id];
			n = len - got < dd->len ? len - got : dd->len;
			p = gpa2hva(d, dd->addr);
			if (e == 0 && got == 0) {
				if (n < HDR) {
					sprintf(why, "first buffer of %u bytes", n);
					return -1;
				}
				if (mrg)
					want = p[10] | p[11] << 8;
				memcpy(out + total, p + HDR, n - HDR);
				total += n - HDR;
			} else {
				memcpy(out + total, p, n);
				total += n;
			}
			got += n;
			if (!(dd->flags & F_NEXT))
				break;
			id = dd->next;
		}
		if (got != len) {
			sprintf(why, "used entry %u: %u bytes, its chain holds %u", k, len, got);
			return -1;
		}
		if (want < 1 || want > 64) {
			sprintf(why, "num_buffers %u", want);
			return -1;
		}
	}
	*nbufs = want;
	return total;
}

/* A frame of frame_len() 1418 (1430 bytes with its header). */
#define BIG_SEQ(i)	(14 + 15 * (i))
_Static_assert(FRAME_MIN + (14 * 97) % (FRAME_MAX - FRAME_MIN + 1) == 1418, "BIG_SEQ");

TEST_F_TIMEOUT(vh, small_receive_buffers_mrg_rxbuf_and_chains, 120)
{
	long base = pinned_pages();
	struct vdev a, b, a2, b2;
	u8 out[4096];
	char why[160];
	struct ring *r;
	u16 nb;
	int i, len;

	ASSERT_GE(base, 0);
	/* MRG_RXBUF: 512-byte buffers; 1418-byte frames take 3 (512, 512,
	 * 406), 60-byte ones 1. */
	vdev_new(&a, mac_a);
	vdev_new(&b, mac_b);
	UP(&b, FEAT_DEFAULT);
	UP(&a, FEAT_DEFAULT);
	rx_post_len(&b, 16, 512);
	kick(&b, 0);
	for (i = 0; i < 3; i++)
		tx_add(&a, mac_b, BIG_SEQ(i), frame_len(BIG_SEQ(i)));
	tx_add(&a, mac_b, 0, frame_len(0));
	publish(&a, 1);
	kick(&a, 1);
	ASSERT_TRUE(wait_used(&b, 0, 10, WAIT_MS)) TH_LOG("B's used index %u, 10 buffers due",
							  used_idx(&b, 0));
	r = ring(&b, 0);
	for (i = 0; i < 3; i++) {
		u16 k = b.seen[0];

		EXPECT_EQ(512, r->used.ring[k % QSZ].len);
		EXPECT_EQ(512, r->used.ring[(k + 1) % QSZ].len);
		EXPECT_EQ(HDR + 1418 - 1024, r->used.ring[(k + 2) % QSZ].len);
		len = gather(&b, out, &nb, why);
		ASSERT_GT(len, 0) TH_LOG("frame %d: %s", i, why);
		EXPECT_EQ(3, nb) TH_LOG("frame %d: num_buffers", i);
		EXPECT_TRUE(frame_ok(out, len, mac_b, mac_a, BIG_SEQ(i), why)) TH_LOG("%s", why);
	}
	len = gather(&b, out, &nb, why);
	ASSERT_GT(len, 0) TH_LOG("small frame: %s", why);
	EXPECT_EQ(1, nb);
	EXPECT_TRUE(frame_ok(out, len, mac_b, mac_a, 0, why)) TH_LOG("%s", why);
	EXPECT_EQ(10, used_idx(&b, 0));
	vdev_free(&a);
	vdev_free(&b);

	/* No MRG_RXBUF: one chain of three 512-byte descriptors takes a
	 * 1418-byte frame; a lone 512-byte buffer does not (the frame is
	 * dropped, the next one that fits arrives). */
	vdev_new(&a2, mac_a);
	vdev_new(&b2, mac_b);
	UP(&b2, F_VERSION_1);
	UP(&a2, F_VERSION_1);
	r = ring(&b2, 0);
	for (i = 0; i < 3; i++) {
		u64 g = RXBUF_GPA + (u64)i * BUF_LEN;

		memset(gpa2hva(&b2, g), 0, BUF_LEN);
		r->desc[i] = (struct desc){ g, 512, F_WRITE | (i < 2 ? F_NEXT : 0), i + 1 };
	}
	r->avail.ring[0] = 0;
	b2.avail[0] = 1;
	publish(&b2, 0);
	kick(&b2, 0);
	tx_add(&a2, mac_b, BIG_SEQ(0), frame_len(BIG_SEQ(0)));
	publish(&a2, 1);
	kick(&a2, 1);
	ASSERT_TRUE(wait_used(&b2, 0, 1, WAIT_MS)) TH_LOG("nothing in B's 3-descriptor chain");
	EXPECT_EQ(0, r->used.ring[0].id);
	EXPECT_EQ(HDR + 1418, r->used.ring[0].len);
	len = gather(&b2, out, &nb, why);
	ASSERT_GT(len, 0) TH_LOG("chained buffer: %s", why);
	EXPECT_TRUE(frame_ok(out, len, mac_b, mac_a, BIG_SEQ(0), why)) TH_LOG("%s", why);

	/* Lone 512-byte buffers (slots 4, 5): the big frame, then a small one. */
	for (i = 4; i < 6; i++) {
		u64 g = RXBUF_GPA + (u64)i * BUF_LEN;

		memset(gpa2hva(&b2, g), 0, BUF_LEN);
		r->desc[i] = (struct desc){ g, 512, F_WRITE, 0 };
		r->avail.ring[b2.avail[0] % QSZ] = i;
		b2.avail[0]++;
	}
	publish(&b2, 0);
	kick(&b2, 0);
	tx_add(&a2, mac_b, BIG_SEQ(1), frame_len(BIG_SEQ(1)));
	tx_add(&a2, mac_b, 0, frame_len(0));
	publish(&a2, 1);
	kick(&a2, 1);
	ASSERT_TRUE(wait_used(&a2, 1, 3, WAIT_MS)) TH_LOG("A's chains not returned");
	/* Whether the too-small buffer comes back empty or stays posted, the
	 * small frame is the only one B sees. */
	for (i = 0; i < 1000 && used_idx(&b2, 0) == b2.seen[0]; i++)
		usleep(1000);
	while (used_idx(&b2, 0) != b2.seen[0] && !r->used.ring[b2.seen[0] % QSZ].len)
		b2.seen[0]++;
	ASSERT_NE(used_idx(&b2, 0), b2.seen[0]) TH_LOG("the small frame did not arrive");
	len = gather(&b2, out, &nb, why);
	ASSERT_GT(len, 0) TH_LOG("after the drop: %s", why);
	EXPECT_TRUE(frame_ok(out, len, mac_b, mac_a, 0, why)) TH_LOG("after the drop: %s", why);
	vdev_free(&a2);
	vdev_free(&b2);
	EXPECT_EQ(base, pinned_settled(base));
}

/* ---- 5c. kicks from another process --------------------------------------------------- */

/*
 * A kick eventfd written by a process that is not the owner (another mm:
 * the device's work goes to a worker in the owner's address space).
 */
TEST_F_TIMEOUT(vh, kick_from_another_process_is_served, 120)
{
	long base = pinned_pages();
	struct vdev a, b;
	char why[160];
	int i, round, status;
	pid_t child;

	ASSERT_GE(base, 0);
	vdev_new(&a, mac_a);
	vdev_new(&b, mac_b);
	UP(&b, FEAT_DEFAULT);
	UP(&a, FEAT_DEFAULT);
	for (round = 0; round < 4; round++) {
		rx_post(&b, 8);
		for (i = 0; i < 8; i++)
			tx_add(&a, mac_b, a.seq + i, frame_len(a.seq + i));
		/* The child kicks both: B's receive ring, A's transmit ring. */
		publish(&a, 1);
		arm(&a, 1);
		arm(&b, 0);
		child = fork();
		ASSERT_GE(child, 0);
		if (!child) {
			u64 one = 1;

			_exit(write(b.kick[0], &one, 8) != 8 || write(a.kick[1], &one, 8) != 8);
		}
		ASSERT_EQ(child, waitpid(child, &status, 0));
		ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
		EXPECT_TRUE(wait_used(&b, 0, b.seen[0] + 8, WAIT_MS))
			TH_LOG("round %d: another process's kick not served (B got %u of 8)", round,
			       (u16)(used_idx(&b, 0) - b.seen[0]));
		for (i = 0; i < 8; i++)
			EXPECT_TRUE(rx_take(&b, mac_b, mac_a, a.seq + i, why)) TH_LOG("%s", why);
		a.seq += 8;
		EXPECT_TRUE(wait_used(&a, 1, a.avail[1], WAIT_MS));
		a.seen[1] = a.avail[1];
		EXPECT_TRUE(fired(a.call[1], WAIT_MS)) TH_LOG("round %d: A's call eventfd", round);
		EXPECT_TRUE(fired(b.call[0], WAIT_MS)) TH_LOG("round %d: B's call eventfd", round);
	}
	vdev_free(&a);
	vdev_free(&b);
	EXPECT_EQ(base, pinned_settled(base));
}

/* ---- 6. kicks before setup -------------------------------------------------------------- */

TEST_F_TIMEOUT(vh, kicks_before_setup_are_served_at_start, 120)
{
	long base = pinned_pages();
	const char *step = "?";
	struct vdev a, b;
	char why[160];
	int i, k = 8;

	ASSERT_GE(base, 0);
	vdev_new(&a, mac_a);
	vdev_new(&b, mac_b);
	UP(&b, FEAT_DEFAULT);
	rx_post(&b, k);
	kick(&b, 0);

	/* A: owner and rings, no kick eventfd, no table, no backend yet. */
	ASSERT_EQ(0, vdev_open(&a, SW));
	ASSERT_EQ(0, vioc(a.fd, VHOST_SET_OWNER, NULL));
	a.features = FEAT_DEFAULT;
	ASSERT_EQ(0, vioc(a.fd, VHOST_SET_FEATURES, &a.features));
	ASSERT_EQ(0, vdev_ring(&a, 0, false, &step)) TH_LOG("%s", step);
	ASSERT_EQ(0, vdev_ring(&a, 1, false, &step)) TH_LOG("%s", step);
	for (i = 0; i < k; i++)
		tx_add(&a, mac_b, i, frame_len(i));
	publish(&a, 1);
	a.seq = k;
	/* Kicked before the kick eventfd is given, and after. */
	kick(&a, 1);
	ASSERT_EQ(0, ring_fd(a.fd, VHOST_SET_VRING_KICK, 1, a.kick[1]));
	ASSERT_EQ(0, ring_fd(a.fd, VHOST_SET_VRING_KICK, 0, a.kick[0]));
	kick(&a, 1);
	kick(&a, 0);
	ASSERT_EQ(0, ring_fd(a.fd, VHOST_SET_VRING_CALL, 1, a.call[1]));
	ASSERT_EQ(0, ring_fd(a.fd, VHOST_SET_VRING_CALL, 0, a.call[0]));
	usleep(20000);
	/* Before the table, and before the second backend. */
	ASSERT_EQ(0, set_mem(a.fd, a.reg, a.nreg));
	kick(&a, 1);
	ASSERT_EQ(0, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 1, a.tap));
	kick(&a, 1);
	usleep(50000);
	EXPECT_EQ(0, used_idx(&a, 1)) TH_LOG("transmit served before the device started");
	EXPECT_EQ(0, used_idx(&b, 0)) TH_LOG("B received before A started");

	/* Started: what was made available is served without another kick. */
	ASSERT_EQ(0, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 0, a.tap)) TH_LOG("start: %s",
									   strerror(errno));
	EXPECT_TRUE(wait_used(&a, 1, k, WAIT_MS)) TH_LOG("A's %d chains not served after start "
							 "(used %u)", k, used_idx(&a, 1));
	EXPECT_TRUE(wait_used(&b, 0, k, WAIT_MS)) TH_LOG("B got %u of %d", used_idx(&b, 0), k);
	for (i = 0; i < k; i++)
		EXPECT_TRUE(rx_take(&b, mac_b, mac_a, i, why)) TH_LOG("B's frame %d: %s", i, why);
	EXPECT_TRUE(fired(a.call[1], WAIT_MS)) TH_LOG("A's transmit call eventfd");
	a.seen[1] = k;
	EXCHANGE(&a, &b, 16);

	vdev_free(&a);
	vdev_free(&b);
	EXPECT_EQ(base, pinned_settled(base));
}

/* ---- 7. a hostile queue next to working ones ------------------------------------------ */

TEST_F_TIMEOUT(vh, descriptor_loop_signals_err_and_spares_neighbours, 120)
{
	long base = pinned_pages();
	const char *step = "?";
	struct vdev a, b, c;
	struct traffic tr;
	struct ring *r;
	char why[160];
	int before, i;
	u32 n = 0xdead;

	ASSERT_GE(base, 0);
	vdev_new(&a, mac_a);
	vdev_new(&b, mac_b);
	vdev_new(&c, mac_c);
	UP(&b, FEAT_DEFAULT);
	UP(&a, FEAT_DEFAULT);
	UP(&c, FEAT_DEFAULT);
	EXPECT_EQ(3, sw_ports());

	traffic_start(&tr, &a, &b, 16);
	for (i = 0; i < 200 && tr.rounds < 3 && !tr.bad; i++)
		usleep(10000);

	/* C: a transmit chain whose descriptor's next is itself. */
	r = ring(&c, 1);
	memset(gpa2hva(&c, TXBUF_GPA), 0, HDR);
	fill_frame(gpa2hva(&c, TXBUF_GPA) + HDR, mac_b, mac_c, 0, FRAME_MIN);
	r->desc[0] = (struct desc){ TXBUF_GPA, HDR + FRAME_MIN, F_NEXT, 0 };
	r->avail.ring[0] = 0;
	c.avail[1] = 1;
	publish(&c, 1);
	kick(&c, 1);
	EXPECT_TRUE(fired(c.err[1], WAIT_MS) | fired(c.err[0], 0))
		TH_LOG("C's error eventfd did not fire for a descriptor loop");
	EXPECT_EQ(0, used_idx(&c, 1)) TH_LOG("the looping chain was completed");
	kick(&c, 1);		/* broken: kicks are ignored */
	kick(&c, 0);

	/* A -> B went on, and goes on. */
	before = tr.rounds;
	for (i = 0; i < 500 && tr.rounds < before + 3 && !tr.bad; i++)
		usleep(10000);
	traffic_stop(&tr);
	EXPECT_EQ(0, tr.bad) TH_LOG("A -> B while C looped: %s", tr.why);
	EXPECT_GE(tr.rounds, before + 3) TH_LOG("A -> B rounds: %d before C's error, %d in all",
						before, tr.rounds);
	EXPECT_FALSE(fired(a.err[1], 0) || fired(b.err[0], 0)) TH_LOG("a neighbour's error eventfd");

	/* C as QEMU recovers it: stop, the base (0: the looping chain is the
	 * first), the chain fixed, start: the chain is served. */
	ASSERT_EQ(0, vdev_stop(&c, &step)) TH_LOG("%s", step);
	EXPECT_EQ(0, get_base(c.fd, 1, &n));
	EXPECT_EQ(0, n) TH_LOG("C's transmit base after the loop");
	r->desc[0] = (struct desc){ TXBUF_GPA, HDR + FRAME_MIN, 0, 0 };
	c.seq = 1;
	rx_post(&b, 1);
	kick(&b, 0);
	ASSERT_EQ(0, ring_op(c.fd, VHOST_SET_VRING_BASE, 1, n));
	ASSERT_EQ(0, vdev_start(&c, &step)) TH_LOG("restart of C: %s: %s", step, strerror(errno));
	kick(&c, 1);
	EXPECT_TRUE(wait_used(&c, 1, 1, WAIT_MS)) TH_LOG("C's fixed chain not served");
	EXPECT_TRUE(wait_used(&b, 0, b.seen[0] + 1, WAIT_MS));
	EXPECT_TRUE(rx_take(&b, mac_b, mac_c, 0, why)) TH_LOG("C's frame at B: %s", why);
	c.seen[1] = 1;
	EXCHANGE(&c, &b, 8);
	EXCHANGE(&a, &b, 8);

	vdev_free(&c);
	vdev_free(&a);
	vdev_free(&b);
	EXPECT_EQ(0, sw_ports_settled(0));
	EXPECT_EQ(base, pinned_settled(base));
}


/*
 * A hostile receiver: D's receive chain loops. The sender C finds it (on
 * C's thread): D's error eventfd fires, C's chain completes, C is fine,
 * A -> B goes on meanwhile; D, stopped and given a proper ring, receives.
 */
TEST_F_TIMEOUT(vh, receive_descriptor_loop_breaks_only_the_receiver, 120)
{
	long base = pinned_pages();
	const char *step = "?";
	struct vdev a, b, c, d;
	struct traffic tr;
	struct ring *r;
	char why[160];
	int before, i;
	u32 n = 0xdead;

	ASSERT_GE(base, 0);
	vdev_new(&a, mac_a);
	vdev_new(&b, mac_b);
	vdev_new(&c, mac_c);
	vdev_new(&d, mac_d);
	UP(&b, FEAT_DEFAULT);
	UP(&a, FEAT_DEFAULT);
	UP(&c, FEAT_DEFAULT);
	UP(&d, FEAT_DEFAULT);
	traffic_start(&tr, &a, &b, 16);
	for (i = 0; i < 200 && tr.rounds < 3 && !tr.bad; i++)
		usleep(10000);
	/* D posts a receive chain whose next is itself. */
	r = ring(&d, 0);
	r->desc[0] = (struct desc){ RXBUF_GPA, BUF_LEN, F_WRITE | F_NEXT, 0 };
	r->avail.ring[0] = 0;
	d.avail[0] = 1;
	publish(&d, 0);
	kick(&d, 0);
	tx_add(&c, mac_d, c.seq, frame_len(c.seq));
	c.seq++;
	publish(&c, 1);
	kick(&c, 1);
	EXPECT_TRUE(fired(d.err[0], WAIT_MS) | fired(d.err[1], 0))
		TH_LOG("D's error eventfd did not fire for a receive descriptor loop");
	EXPECT_TRUE(wait_used(&c, 1, c.avail[1], WAIT_MS)) TH_LOG("C's chain not returned");
	c.seen[1] = c.avail[1];
	EXPECT_FALSE(fired(c.err[0], 0) || fired(c.err[1], 0)) TH_LOG("the sender's error eventfd");
	EXPECT_EQ(0, used_idx(&d, 0)) TH_LOG("D's looping chain was used");

	before = tr.rounds;
	for (i = 0; i < 500 && tr.rounds < before + 3 && !tr.bad; i++)
		usleep(10000);
	traffic_stop(&tr);
	EXPECT_EQ(0, tr.bad) TH_LOG("A -> B while D's ring looped: %s", tr.why);
	EXPECT_GE(tr.rounds, before + 3);

	/* D recovers as QEMU makes it: stop, the base (0: the looping chain
	 * is the first), the ring fixed, start: D receives. */
	ASSERT_EQ(0, vdev_stop(&d, &step)) TH_LOG("%s", step);
	EXPECT_EQ(0, get_base(d.fd, 0, &n));
	EXPECT_EQ(0, n) TH_LOG("D's receive base after the loop");
	r->desc[0] = (struct desc){ RXBUF_GPA, BUF_LEN, F_WRITE, 0 };
	ASSERT_EQ(0, ring_op(d.fd, VHOST_SET_VRING_BASE, 0, n));
	ASSERT_EQ(0, vdev_start(&d, &step)) TH_LOG("restart of D: %s: %s", step, strerror(errno));
	kick(&d, 0);
	tx_add(&c, mac_d, c.seq, frame_len(c.seq));
	publish(&c, 1);
	kick(&c, 1);
	EXPECT_TRUE(wait_used(&d, 0, 1, WAIT_MS)) TH_LOG("D received nothing after its restart");
	EXPECT_TRUE(rx_take(&d, mac_d, mac_c, c.seq, why)) TH_LOG("%s", why);
	c.seq++;
	EXCHANGE(&c, &d, 8);

	vdev_free(&d);
	vdev_free(&c);
	vdev_free(&a);
	vdev_free(&b);
	EXPECT_EQ(0, sw_ports_settled(0));
	EXPECT_EQ(base, pinned_settled(base));
}


/* ---- 7b. GET_VRING_BASE of a broken queue --------------------------------------------- */

/*
 * A queue the device broke, stopped: GET_VRING_BASE says, as vhost-net,
 * the next avail index (the bad chain's), not the base the queue started
 * from. QEMU stops a device and restarts it from that base (VM stop and
 * cont, its own restart path): from a stale one, the device would send
 * again what it sent, and write receive buffers the guest has back.
 * Three ways to break, each after 8 (or 32) good chains.
 */
TEST_F_TIMEOUT(vh, vring_base_of_a_broken_queue, 120)
{
	long base = pinned_pages();
	const char *step = "?";
	struct vhost_memory_region reg;
	struct vdev b, c, d, a;
	struct ring *r;
	u32 n = 0xdead, n0 = 0xdead;
	int i;

	ASSERT_GE(base, 0);
	vdev_new(&b, mac_b);
	UP(&b, FEAT_DEFAULT);

	/* 1. Transmit: C sends 8, then a chain whose next is itself (avail
	 * entry 8, head 16). */
	vdev_new(&c, mac_c);
	UP(&c, FEAT_DEFAULT);
	EXCHANGE(&c, &b, 8);
	r = ring(&c, 1);
	memset(gpa2hva(&c, TXBUF_GPA + 8 * BUF_LEN), 0, HDR);
	fill_frame(gpa2hva(&c, TXBUF_GPA + 8 * BUF_LEN) + HDR, mac_b, mac_c, c.seq, FRAME_MIN);
	r->desc[16] = (struct desc){ TXBUF_GPA + 8 * BUF_LEN, HDR + FRAME_MIN, F_NEXT, 16 };
	r->avail.ring[8] = 16;
	c.avail[1] = 9;
	publish(&c, 1);
	kick(&c, 1);
	EXPECT_TRUE(fired(c.err[1], WAIT_MS) | fired(c.err[0], 0)) TH_LOG("C's error eventfd");
	ASSERT_EQ(0, vdev_stop(&c, &step)) TH_LOG("%s", step);
	EXPECT_EQ(0, get_base(c.fd, 1, &n));
	EXPECT_EQ(8, n) TH_LOG("transmit: GET_VRING_BASE after 8 chains and a loop");
	/* As QEMU: that base back, the chain fixed, started. */
	r->desc[16].flags = 0;
	rx_post(&b, 16);
	kick(&b, 0);
	ASSERT_EQ(0, ring_op(c.fd, VHOST_SET_VRING_BASE, 1, n));
	ASSERT_EQ(0, vdev_start(&c, &step)) TH_LOG("%s: %s", step, strerror(errno));
	kick(&c, 1);
	EXPECT_TRUE(wait_used(&c, 1, 9, WAIT_MS)) TH_LOG("C's fixed chain not served");
	usleep(50000);
	EXPECT_EQ(9, used_idx(&c, 1)) TH_LOG("transmit: used index after the restart, 9 chains "
					     "made available in all");
	EXPECT_EQ((u16)(b.seen[0] + 1), used_idx(&b, 0))
		TH_LOG("transmit: B got %u frames after the restart, 1 due",
		       (u16)(used_idx(&b, 0) - b.seen[0]));
	vdev_free(&c);
	b.seen[0] = b.avail[0] = used_idx(&b, 0);

	/* 2. Receive: D receives 8, then posts a chain whose next is itself
	 * (avail entry 8, descriptor 8); B's frame to D finds it. */
	vdev_new(&d, mac_d);
	UP(&d, FEAT_DEFAULT);
	EXCHANGE(&b, &d, 8);
	r = ring(&d, 0);
	r->desc[8] = (struct desc){ RXBUF_GPA + 8 * BUF_LEN, BUF_LEN, F_WRITE | F_NEXT, 8 };
	r->avail.ring[8] = 8;
	d.avail[0] = 9;
	publish(&d, 0);
	kick(&d, 0);
	tx_add(&b, mac_d, b.seq, frame_len(b.seq));
	b.seq++;
	publish(&b, 1);
	kick(&b, 1);
	EXPECT_TRUE(fired(d.err[0], WAIT_MS) | fired(d.err[1], 0)) TH_LOG("D's error eventfd");
	ASSERT_TRUE(wait_used(&b, 1, b.avail[1], WAIT_MS));
	b.seen[1] = b.avail[1];
	ASSERT_EQ(0, vdev_stop(&d, &step)) TH_LOG("%s", step);
	EXPECT_EQ(0, get_base(d.fd, 0, &n));
	EXPECT_EQ(8, n) TH_LOG("receive: GET_VRING_BASE after 8 buffers and a loop");
	/* As QEMU: that base back, the ring fixed, started; buffers 0-7,
	 * which D has back, marked. */
	r->desc[8].flags = F_WRITE;
	for (i = 0; i < 8; i++)
		memset(gpa2hva(&d, RXBUF_GPA + (u64)i * BUF_LEN), 0xee, BUF_LEN);
	ASSERT_EQ(0, ring_op(d.fd, VHOST_SET_VRING_BASE, 0, n));
	ASSERT_EQ(0, vdev_start(&d, &step)) TH_LOG("%s: %s", step, strerror(errno));
	kick(&d, 0);
	tx_add(&b, mac_d, b.seq, frame_len(b.seq));
	b.seq++;
	publish(&b, 1);
	kick(&b, 1);
	EXPECT_TRUE(wait_used(&d, 0, 9, WAIT_MS)) TH_LOG("D received nothing after the restart");
	EXPECT_EQ(8, r->used.ring[8].id) TH_LOG("receive: the frame after the restart went to "
						"buffer %u, not 8", r->used.ring[8].id);
	for (i = 0; i < 8; i++) {
		u8 *p = gpa2hva(&d, RXBUF_GPA + (u64)i * BUF_LEN);

		EXPECT_TRUE(p[0] == 0xee && p[HDR] == 0xee)
			TH_LOG("receive: buffer %d, which D had back, written after the restart", i);
	}
	ASSERT_TRUE(wait_used(&b, 1, b.avail[1], WAIT_MS));
	b.seen[1] = b.avail[1];
	vdev_free(&d);

	/* 3. The memory table loses the rings: A, after 32 frames each way. */
	vdev_new(&a, mac_a);
	UP(&a, FEAT_DEFAULT);
	EXCHANGE(&a, &b, 32);
	EXCHANGE(&b, &a, 32);
	reg = (struct vhost_memory_region){
		.guest_phys_addr = 0x10000,
		.memory_size = MEM_SIZE - 0x10000,
		.userspace_addr = (u64)(unsigned long)a.mem + 0x10000,
	};
	if (!set_mem(a.fd, &reg, 1)) {
		kick(&a, 1);
		EXPECT_TRUE(fired(a.err[1], WAIT_MS) | fired(a.err[0], 0)) TH_LOG("A's error eventfd");
		ASSERT_EQ(0, vdev_stop(&a, &step)) TH_LOG("%s", step);
		EXPECT_EQ(0, get_base(a.fd, 1, &n));
		EXPECT_EQ(0, get_base(a.fd, 0, &n0));
		EXPECT_EQ(32, n) TH_LOG("rings lost: transmit GET_VRING_BASE after 32 chains");
		EXPECT_EQ(32, n0) TH_LOG("rings lost: receive GET_VRING_BASE after 32 buffers");
	}
	vdev_free(&a);
	vdev_free(&b);
	EXPECT_EQ(0, sw_ports_settled(0));
	EXPECT_EQ(base, pinned_settled(base));
}

/* ---- 8. reset while traffic flows ----------------------------------------------------- */

struct kicker {
	pthread_t t;
	struct vdev *a;
	const u8 *dst;
	volatile int stop;
	volatile int add;	/* add chains (else only kick) */
	volatile u32 added, kicks;
};

static void *kicker_main(void *arg)
{
	struct kicker *k = arg;
	u64 one = 1;

	while (!k->stop) {
		if (k->add && tx_room(k->a) > 1) {
			tx_add(k->a, k->dst, k->a->seq, FRAME_MIN + k->a->seq % 64);
			k->a->seq++;
			publish(k->a, 1);
			k->added++;
		}
		/* The eventfd outlives the vhost file (the test closes it last). */
		if (write(k->a->kick[1], &one, 8) == 8)
			k->kicks++;
		if (k->kicks % 8 == 0)
			usleep(50);
	}
	return NULL;
}

TEST_F_TIMEOUT(vh, reset_while_traffic_flows, 180)
{
	long base = pinned_pages();
	const char *step = "?";
	struct kicker k = { 0 };
	struct vdev a, b;
	u32 txb, rxb, i, round;
	u16 used, used2;

	ASSERT_GE(base, 0);
	vdev_new(&a, mac_a);
	vdev_new(&b, mac_b);
	UP(&b, FEAT_DEFAULT);
	UP(&a, FEAT_DEFAULT);
	rx_post(&b, QSZ);
	kick(&b, 0);

	k.a = &a;
	k.dst = mac_b;
	k.add = 1;
	ASSERT_EQ(0, pthread_create(&k.t, NULL, kicker_main, &k));
	for (round = 0; round < 6; round++) {
		u32 last = used_idx(&a, 1);

		/* Running, and consuming. */
		EXPECT_TRUE(wait_used(&a, 1, last + 20, WAIT_MS))
			TH_LOG("round %u: A's transmit used index stuck at %u (%u added)", round,
			       used_idx(&a, 1), k.added);
		EXPECT_EQ(-EBUSY, ring_op(a.fd, VHOST_SET_VRING_BASE, 1, 0));
		/* Stop (as QEMU: both backends -1), then the bases. */
		ASSERT_EQ(0, vdev_stop(&a, &step)) TH_LOG("round %u: %s", round, step);
		ASSERT_EQ(0, get_base(a.fd, 1, &txb));
		ASSERT_EQ(0, get_base(a.fd, 0, &rxb));
		used = used_idx(&a, 1);
		EXPECT_EQ(used, txb) TH_LOG("round %u: GET_VRING_BASE(tx) %u, used index %u, "
					    "%u chains added", round, txb, used, a.avail[1]);
		EXPECT_EQ(used_idx(&a, 0), rxb) TH_LOG("round %u: GET_VRING_BASE(rx)", round);
		/* Stopped means stopped, whatever the kicks. */
		usleep(30000);
		used2 = used_idx(&a, 1);
		EXPECT_EQ(used, used2) TH_LOG("round %u: %u chains served while stopped", round,
					      (u16)(used2 - used));
		EXPECT_EQ(0, get_base(a.fd, 1, &i));
		EXPECT_EQ(txb, i) TH_LOG("round %u: a second GET_VRING_BASE differs", round);
		/* Back as it was, and on. */
		ASSERT_EQ(0, ring_op(a.fd, VHOST_SET_VRING_BASE, 1, txb));
		ASSERT_EQ(0, ring_op(a.fd, VHOST_SET_VRING_BASE, 0, rxb));
		ASSERT_EQ(0, vdev_start(&a, &step)) TH_LOG("round %u: restart: %s: %s", round,
							   step, strerror(errno));
	}
	ksft_print_msg("pinned pages: %ld before, %ld while running\n", base, pinned_pages());
	/* After the last restart: everything made available is served. */
	k.add = 0;
	usleep(1000);
	EXPECT_TRUE(wait_used(&a, 1, a.avail[1], WAIT_MS))
		TH_LOG("A's used index %u, %u chains made available", used_idx(&a, 1), a.avail[1]);
	EXPECT_FALSE(fired(a.err[1], 0)) TH_LOG("A's error eventfd fired");
	EXPECT_GT(used_idx(&b, 0), 0) TH_LOG("B received nothing");

	/* Close both files while the kicker still kicks (and adds). */
	k.add = 1;
	usleep(20000);
	vdev_close(&a);
	usleep(20000);
	vdev_close(&b);
	usleep(20000);
	k.stop = 1;
	pthread_join(k.t, NULL);
	ksft_print_msg("kicker: %u chains, %u kicks\n", k.added, k.kicks);
	vdev_free(&a);
	vdev_free(&b);
	EXPECT_EQ(0, sw_ports_settled(0));
	EXPECT_EQ(base, pinned_settled(base));
}


/* ---- 8b. RESET_OWNER while running, a new memory table while running -------------- */

TEST_F_TIMEOUT(vh, reset_owner_while_traffic_flows, 120)
{
	long base = pinned_pages();
	const char *step = "?";
	struct kicker k = { 0 };
	struct vdev a, b;
	int i;

	ASSERT_GE(base, 0);
	vdev_new(&a, mac_a);
	vdev_new(&b, mac_b);
	UP(&b, FEAT_DEFAULT);
	UP(&a, FEAT_DEFAULT);
	rx_post(&b, QSZ);
	kick(&b, 0);
	k.a = &a;
	k.dst = mac_b;
	k.add = 1;
	ASSERT_EQ(0, pthread_create(&k.t, NULL, kicker_main, &k));
	for (i = 0; i < 3; i++) {
		u16 used = used_idx(&a, 1);

		EXPECT_TRUE(wait_used(&a, 1, used + 20, WAIT_MS)) TH_LOG("round %d: not running", i);
		ASSERT_EQ(0, vioc(a.fd, VHOST_RESET_OWNER, NULL)) TH_LOG("round %d", i);
		EXPECT_EQ(1, sw_ports()) TH_LOG("round %d: A still a port after RESET_OWNER", i);
		EXPECT_EQ(-EPERM, ring_op(a.fd, VHOST_SET_VRING_NUM, 1, QSZ));
		used = used_idx(&a, 1);
		usleep(20000);
		EXPECT_EQ(used, used_idx(&a, 1)) TH_LOG("round %d: served after RESET_OWNER", i);
		/* Owned again, resumed where the used ring is. */
		ASSERT_EQ(0, vdev_own(&a, FEAT_DEFAULT, &step)) TH_LOG("round %d: %s", i, step);
		ASSERT_EQ(0, ring_op(a.fd, VHOST_SET_VRING_BASE, 1, used));
		ASSERT_EQ(0, vdev_start(&a, &step)) TH_LOG("round %d: %s: %s", i, step,
							  strerror(errno));
	}
	k.add = 0;
	usleep(1000);
	EXPECT_TRUE(wait_used(&a, 1, a.avail[1], WAIT_MS))
		TH_LOG("A's used index %u, %u chains made available", used_idx(&a, 1), a.avail[1]);
	EXPECT_FALSE(fired(a.err[1], 0)) TH_LOG("A's error eventfd fired");
	ASSERT_EQ(0, vioc(a.fd, VHOST_RESET_OWNER, NULL));
	k.stop = 1;
	pthread_join(k.t, NULL);
	EXPECT_EQ(1, sw_ports());
	vdev_free(&a);
	vdev_free(&b);
	EXPECT_EQ(0, sw_ports_settled(0));
	EXPECT_EQ(base, pinned_settled(base));
}

TEST_F_TIMEOUT(vh, memory_table_changed_while_running, 120)
{
	long base = pinned_pages();
	const char *step = "?";
	struct vhost_memory_region r[2];
	struct vdev a, b;
	int e, i;

	ASSERT_GE(base, 0);
	vdev_new(&a, mac_a);
	vdev_new(&b, mac_b);
	UP(&b, FEAT_DEFAULT);
	UP(&a, FEAT_DEFAULT);
	EXCHANGE(&a, &b, 16);
	EXCHANGE(&b, &a, 16);

	/* The same memory as two regions: both ways still work. */
	for (i = 0; i < 2; i++)
		r[i] = (struct vhost_memory_region){
			.guest_phys_addr = (u64)i * MEM_SIZE / 2,
			.memory_size = MEM_SIZE / 2,
			.userspace_addr = (u64)(unsigned long)a.mem + (u64)i * MEM_SIZE / 2,
		};
	ASSERT_EQ(0, set_mem(a.fd, r, 2));
	EXCHANGE(&a, &b, 16);
	EXCHANGE(&b, &a, 16);

	/* A table without the rings' first 64 KiB: refused at once, or the
	 * device breaks at its next kick and says so on its error eventfd;
	 * B is not affected either way. */
	r[0] = (struct vhost_memory_region){
		.guest_phys_addr = 0x10000,
		.memory_size = MEM_SIZE - 0x10000,
		.userspace_addr = (u64)(unsigned long)a.mem + 0x10000,
	};
	e = set_mem(a.fd, r, 1);
	if (!e) {
		kick(&a, 1);
		kick(&a, 0);
		EXPECT_TRUE(fired(a.err[1], WAIT_MS) | fired(a.err[0], 0))
			TH_LOG("A's rings left the memory table, no error eventfd");
	} else {
		EXPECT_EQ(-EFAULT, e) TH_LOG("SET_MEM_TABLE without the rings: %s", strerror(-e));
		EXCHANGE(&a, &b, 8);
	}
	EXPECT_FALSE(fired(b.err[0], 0) || fired(b.err[1], 0)) TH_LOG("B's error eventfd");

	/* Stopped, the full table back, the bases where the rings are
	 * (vring_base_of_a_broken_queue checks GET_VRING_BASE), started: A
	 * works again. */
	ASSERT_EQ(0, vdev_stop(&a, &step)) TH_LOG("%s", step);
	ASSERT_EQ(0, set_mem(a.fd, a.reg, a.nreg));
	ASSERT_EQ(0, ring_op(a.fd, VHOST_SET_VRING_BASE, 1, used_idx(&a, 1)));
	ASSERT_EQ(0, ring_op(a.fd, VHOST_SET_VRING_BASE, 0, used_idx(&a, 0)));
	ASSERT_EQ(0, vdev_start(&a, &step)) TH_LOG("%s: %s", step, strerror(errno));
	EXCHANGE(&a, &b, 16);
	EXCHANGE(&b, &a, 16);
	vdev_free(&a);
	vdev_free(&b);
	EXPECT_EQ(base, pinned_settled(base));
}

/* ---- 9. the owner exits with its files open ------------------------------------------- */

#define CHILD_FRAMES	64

/* The child: C on SW, sending to B until told to go (then _exit(0), or killed). */
static void child_vmm(int out, int cmd)
{
	const char *step = "?";
	struct kicker k = { 0 };
	struct vdev c;
	int e;
	char x;

	vdev_new(&c, mac_c);
	e = vdev_up(&c, SW, FEAT_DEFAULT, &step);
	if (write(out, &e, sizeof(e)) != sizeof(e) || e)
		_exit(1);
	k.a = &c;
	k.dst = mac_b;
	k.add = 0;
	if (pthread_create(&k.t, NULL, kicker_main, &k))
		_exit(2);
	/* CHILD_FRAMES frames, 1 ms apart, the kicker kicking all along;
	 * told to go, go at once: files open, kicker running. */
	for (e = 0; e < CHILD_FRAMES; e++) {
		struct pollfd p = { .fd = cmd, .events = POLLIN };

		if (poll(&p, 1, 0) == 1)
			_exit(0);
		while (tx_room(&c) < 2)
			usleep(1000);
		tx_add(&c, mac_b, c.seq, frame_len(c.seq));
		c.seq++;
		publish(&c, 1);
		usleep(1000);
	}
	if (read(cmd, &x, 1) != 1)
		_exit(3);
	_exit(0);
}

static void owner_exits(struct __test_metadata *_metadata, bool kill_it)
{
	long base = pinned_pages(), p1;
	int out[2], cmd[2], e = -1, status, i;
	struct vdev b, p, c2;
	char why[160];
	pid_t child;
	u16 got;

	ASSERT_GE(base, 0);
	vdev_new(&b, mac_b);
	vdev_new(&p, mac_a);
	UP(&b, FEAT_DEFAULT);
	UP(&p, FEAT_DEFAULT);
	/* Every receive buffer of B and transmit slot of P pinned once. */
	for (i = 0; i < QSZ / 32; i++)
		EXCHANGE(&p, &b, 32);
	p1 = pinned_pages();
	ksft_print_msg("pinned pages: %ld before, %ld with B and P\n", base, p1);
	rx_post(&b, 2 * CHILD_FRAMES);
	kick(&b, 0);

	ASSERT_EQ(0, pipe(out));
	ASSERT_EQ(0, pipe(cmd));
	child = fork();
	ASSERT_GE(child, 0);
	if (!child) {
		close(out[0]);
		close(cmd[1]);
		child_vmm(out[1], cmd[0]);
	}
	close(out[1]);
	close(cmd[0]);
	ASSERT_EQ(sizeof(e), read(out[0], &e, sizeof(e)));
	ASSERT_EQ(0, e) TH_LOG("child's device: %s", strerror(-e));
	EXPECT_EQ(3, sw_ports());
	/* Mid-traffic. */
	EXPECT_TRUE(wait_used(&b, 0, b.seen[0] + 8, WAIT_MS)) TH_LOG("B got nothing from the child");
	if (kill_it)
		kill(child, SIGKILL);
	else
		EXPECT_EQ(1, write(cmd[1], "x", 1));
	for (i = 0; i < 1000 && waitpid(child, &status, WNOHANG) != child; i++)
		usleep(10000);
	ASSERT_LT(i, 1000) TH_LOG("child did not exit in 10 s");
	if (kill_it) {
		EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	} else {
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) TH_LOG("status %#x",
										  status);
	}

	/* The child's port and pins are gone; B and P stay. */
	EXPECT_EQ(2, sw_ports_settled(2)) TH_LOG("the exited process's device is still a port");
	EXPECT_LE(pinned_settled(p1), p1) TH_LOG("pins: %ld with the child, %ld now", p1,
						 pinned_pages());
	usleep(20000);
	got = used_idx(&b, 0) - b.seen[0];
	EXPECT_LE(got, CHILD_FRAMES);
	for (i = 0; i < got; i++)
		EXPECT_TRUE(rx_take(&b, mac_b, mac_c, i, why)) TH_LOG("child's frame %d: %s", i, why);
	ksft_print_msg("B received %u frames from the child\n", got);

	/* The module goes on: P -> B, and the child's MAC is free again. */
	EXCHANGE(&p, &b, 16);
	vdev_new(&c2, mac_c);
	UP(&c2, FEAT_DEFAULT);
	EXCHANGE(&c2, &b, 16);
	EXCHANGE(&b, &c2, 16);
	vdev_free(&c2);
	vdev_free(&p);
	vdev_free(&b);
	close(out[0]);
	close(cmd[1]);
	EXPECT_EQ(0, sw_ports_settled(0));
	EXPECT_EQ(base, pinned_settled(base));
}

TEST_F_TIMEOUT(vh, owner_exits_with_files_open, 120)
{
	owner_exits(_metadata, false);
}

TEST_F_TIMEOUT(vh, owner_killed_with_files_open, 120)
{
	owner_exits(_metadata, true);
}

/*
 * Live migration's dirty log: with LOG_ALL negotiated and a log base set on
 * B, every page the device writes into B's memory (the receive buffers it
 * fills, B's receive used ring) has its bit set in the log (one bit a 4 KiB
 * guest page, as QEMU reads it), the log eventfd fires, and pages it did not
 * write stay clear; frames still arrive intact. Turning LOG_ALL on while the
 * device runs (as QEMU does when a migration starts) takes effect for the
 * next frames.
 */
TEST_F_TIMEOUT(vh, dirty_log_marks_every_page_written, 120)
{
	static u8 log[MEM_SIZE / 4096 / 8] __aligned(64);
	u64 base = (u64)(unsigned long)log, feat;
	struct vdev a, b;
	char why[160];
	int logfd, i;

	vdev_new(&a, mac_a);
	vdev_new(&b, mac_b);
	UP(&b, FEAT_DEFAULT);
	UP(&a, FEAT_DEFAULT);
	logfd = eventfd(0, EFD_NONBLOCK);
	ASSERT_GE(logfd, 0);

	/* QEMU's order when a migration starts: log base, LOG_ALL, then the
	 * rings' addresses again with VHOST_VRING_F_LOG, all while running. */
	memset(log, 0, sizeof(log));
	ASSERT_EQ(0, vioc(b.fd, VHOST_SET_LOG_BASE, &base));
	ASSERT_EQ(0, vioc(b.fd, VHOST_SET_LOG_FD, &logfd));
	feat = FEAT_DEFAULT | F_LOG_ALL;
	ASSERT_EQ(0, vioc(b.fd, VHOST_SET_FEATURES, &feat));
	for (i = 0; i < 2; i++) {
		struct ring *r = ring(&b, i);

		ASSERT_EQ(0, set_addr(b.fd, i, (u64)(unsigned long)r->desc,
				      (u64)(unsigned long)&r->avail,
				      (u64)(unsigned long)&r->used, 1u << VHOST_VRING_F_LOG));
	}
	/* Other ring addresses while running: refused. */
	EXPECT_EQ(-EBUSY, set_addr(b.fd, 0, (u64)(unsigned long)b.mem + 0x100000,
				   (u64)(unsigned long)b.mem + 0x101000,
				   (u64)(unsigned long)b.mem + 0x102000, 0));

	rx_post(&b, 4);
	arm(&b, 0);
	kick(&b, 0);
	for (i = 0; i < 4; i++)
		tx_add(&a, mac_b, i, frame_len(i));
	publish(&a, 1);
	arm(&a, 1);
	kick(&a, 1);
	EXPECT_TRUE(wait_used(&b, 0, 4, WAIT_MS)) TH_LOG("B got %u of 4 frames", used_idx(&b, 0));
	for (i = 0; i < 4; i++)
		EXPECT_TRUE(rx_take(&b, mac_b, mac_a, i, why)) TH_LOG("B's frame %d: %s", i, why);
	EXPECT_TRUE(fired(logfd, WAIT_MS)) TH_LOG("the log eventfd did not fire");

	/* Each receive buffer used (entries 0..3: ids 0..3) and the used ring. */
	for (i = 0; i < 4; i++) {
		u64 gfn = (RXBUF_GPA + (u64)i * BUF_LEN) / 4096;
		u64 last = (RXBUF_GPA + (u64)i * BUF_LEN + HDR + frame_len(i) - 1) / 4096;

		for (; gfn <= last; gfn++) {
			EXPECT_TRUE(log[gfn / 8] & (1u << (gfn % 8)))
				TH_LOG("receive buffer %d: page %llu not in the log", i,
				       (unsigned long long)gfn);
		}
	}
	{
		u64 used = (RING_GPA(0) + USED_OFF(QSZ)) / 4096;

		EXPECT_TRUE(log[used / 8] & (1u << (used % 8)))
			TH_LOG("B's receive used ring (page %llu) not in the log",
			       (unsigned long long)used);
	}
	/* Never written by the device: the transmit buffers' pages (A's frames
	 * are read from A, and B's own are untouched), the top of memory. */
	{
		u64 top = MEM_SIZE / 4096 - 1, tx = TXBUF_GPA / 4096;

		EXPECT_FALSE(log[top / 8] & (1u << (top % 8))) TH_LOG("page %llu logged",
								      (unsigned long long)top);
		EXPECT_FALSE(log[tx / 8] & (1u << (tx % 8))) TH_LOG("B's transmit page logged");
	}
	/* A logs nothing: it has no log. B stops and restarts (QEMU's end of
	 * a migration on the source) with its bases. */
	{
		const char *step = "?";
		u32 rb;

		ASSERT_EQ(0, vdev_stop(&b, &step)) TH_LOG("%s", step);
		ASSERT_EQ(0, get_base(b.fd, 0, &rb));
		EXPECT_EQ(4, rb);
	}
	close(logfd);
	vdev_free(&a);
	vdev_free(&b);
}

/*
 * Multiqueue: a second file joins A's port as its next queue pair
 * (PVPASS_VHOST_F_JOIN with A's id): one port on the switch, frames sent
 * on either queue pair reach B, and B's reply comes back on the queue pair
 * that last sent to B (receive steering). A JOIN with another MAC, or an
 * unknown id, is refused.
 */
TEST_F_TIMEOUT(vh, multiqueue_join_one_port, 120)
{
	struct pvpass_vhost_port p = { 0 };
	struct vdev a, a2, b;
	char why[160];
	int i;

	vdev_new(&a, mac_a);
	vdev_new(&a2, mac_a);
	vdev_new(&b, mac_b);
	UP(&a, FEAT_DEFAULT);
	UP(&b, FEAT_DEFAULT);
	EXPECT_EQ(2, sw_ports());

	a2.fd = open(VHOST_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_GE(a2.fd, 0);
	memcpy(p.backend, SW, strlen(SW));
	memcpy(p.mac, mac_b, 6);
	p.flags = PVPASS_VHOST_F_JOIN;
	p.id = a.id;
	EXPECT_EQ(-EINVAL, vioc(a2.fd, PVPASS_VHOST_SET_PORT, &p)) TH_LOG("JOIN with another MAC");
	memcpy(p.mac, mac_a, 6);
	p.id = 12345;
	EXPECT_EQ(-ENOENT, vioc(a2.fd, PVPASS_VHOST_SET_PORT, &p)) TH_LOG("JOIN of an unknown id");
	p.id = a.id;
	ASSERT_EQ(0, vioc(a2.fd, PVPASS_VHOST_SET_PORT, &p));
	EXPECT_NE(a.id, p.id) TH_LOG("the queue pair's device id");
	a2.id = p.id;
	{
		const char *step = "?";
		int e;

		e = vdev_own(&a2, FEAT_DEFAULT, &step);
		ASSERT_EQ(0, e) TH_LOG("%s: %s", step, strerror(-e));
		e = vdev_start(&a2, &step);
		ASSERT_EQ(0, e) TH_LOG("%s: %s", step, strerror(-e));
	}
	/* Still one port for A's two queue pairs. */
	EXPECT_EQ(2, sw_ports());

	rx_post(&b, 8);
	arm(&b, 0);
	kick(&b, 0);
	/* Frames 0, 1 from queue pair 1 (a2), then 2, 3 from queue pair 0. */
	for (i = 0; i < 2; i++)
		tx_add(&a2, mac_b, i, frame_len(i));
	a2.seq = 2;
	publish(&a2, 1);
	kick(&a2, 1);
	EXPECT_TRUE(wait_used(&b, 0, 2, WAIT_MS));
	/* B answers: back on queue pair 1, which last sent to B. */
	rx_post(&a, 4);
	rx_post(&a2, 4);
	kick(&a, 0);
	kick(&a2, 0);
	tx_add(&b, mac_a, 100, frame_len(100));
	publish(&b, 1);
	kick(&b, 1);
	EXPECT_TRUE(wait_used(&a2, 0, 1, WAIT_MS)) TH_LOG("B's reply not on queue pair 1");
	EXPECT_TRUE(rx_take(&a2, mac_a, mac_b, 100, why)) TH_LOG("%s", why);
	EXPECT_EQ(0, used_idx(&a, 0)) TH_LOG("B's reply also on queue pair 0");
	for (i = 2; i < 4; i++)
		tx_add(&a, mac_b, i, frame_len(i));
	publish(&a, 1);
	kick(&a, 1);
	EXPECT_TRUE(wait_used(&b, 0, 4, WAIT_MS));
	for (i = 0; i < 4; i++)
		EXPECT_TRUE(rx_take(&b, mac_b, mac_a, i, why)) TH_LOG("B's frame %d: %s", i, why);
	/* Now queue pair 0 sent last: the next reply goes there. */
	tx_add(&b, mac_a, 101, frame_len(101));
	publish(&b, 1);
	kick(&b, 1);
	EXPECT_TRUE(wait_used(&a, 0, 1, WAIT_MS)) TH_LOG("B's second reply not on queue pair 0");
	EXPECT_TRUE(rx_take(&a, mac_a, mac_b, 101, why)) TH_LOG("%s", why);

	/* The first queue pair stops: the port stays (queue pair 1 runs). */
	{
		const char *step = "?";

		ASSERT_EQ(0, vdev_stop(&a, &step)) TH_LOG("%s", step);
		EXPECT_EQ(2, sw_ports());
		ASSERT_EQ(0, vdev_stop(&a2, &step)) TH_LOG("%s", step);
		EXPECT_EQ(1, sw_ports_settled(1)) TH_LOG("A's port left when both stopped");
	}
	vdev_free(&a2);
	vdev_free(&a);
	vdev_free(&b);
}

/* ---- vhost rules: files nobody named (libvirt) -------------------------------- */

/* A tap named @name (multi-queue if @mq: each open is one more queue). */
static int tap_open(const char *name, bool mq)
{
	struct ifreq ifr = { 0 };
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC), e;

	if (fd < 0)
		return -errno;
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (mq ? IFF_MULTI_QUEUE : 0);
	if (ioctl(fd, TUNSETIFF, &ifr)) {
		e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

static int rule_ioctl(unsigned long req, const struct pvpass_vhost_rule *r)
{
	int pv = pvpass_open(), e;

	e = vioc(pv, req, r);
	close(pv);
	return e;
}

static int rule_op(unsigned long req, const char *tap, const char *sw, const u8 *mac)
{
	struct pvpass_vhost_rule r = { 0 };

	memcpy(r.tap, tap, strnlen(tap, sizeof(r.tap)));
	memcpy(r.backend, sw, strnlen(sw, sizeof(r.backend)));
	memcpy(r.mac, mac, 6);
	return rule_ioctl(req, &r);
}

/* The rule of @tap as VHOST_RULE_LIST gives it; false if none. */
static bool rule_listed(const char *tap, struct pvpass_vhost_rule *out)
{
	static struct pvpass_vhost_rule all[PVPASS_MAX_VHOST_RULES];
	struct pvpass_vhost_rule_list l = { .count = PVPASS_MAX_VHOST_RULES,
					    .entries = (u64)(unsigned long)all };
	int pv = pvpass_open();
	bool found = false;
	u32 i;

	TEST_ASSERT(!ioctl(pv, PVPASS_VHOST_RULE_LIST, &l), "VHOST_RULE_LIST: %s", strerror(errno));
	close(pv);
	for (i = 0; i < l.count && i < PVPASS_MAX_VHOST_RULES; i++)
		if (!strncmp(all[i].tap, tap, PVPASS_NAME_LEN)) {
			*out = all[i];
			found = true;
		}
	return found;
}

/* Bring @d up as QEMU does when libvirt opened the file: no SET_PORT,
 * the tap @tap given at NET_SET_BACKEND. */
static int vdev_up_unnamed(struct vdev *d, int tap, const char **step)
{
	int e;

	d->fd = open(VHOST_PATH, O_RDWR | O_CLOEXEC);
	if (d->fd < 0)
		return -errno;
	e = vdev_own(d, FEAT_DEFAULT, step);
	if (e)
		return e;
	close(d->tap);
	d->tap = dup(tap);
	return vdev_start(d, step);
}

/*
 * libvirt opens /dev/pvpass-vhost-net itself and hands it to QEMU, so no
 * one names the file's port; `pvpassctl vhost-rule add` names it by tap:
 * the file takes the rule's MAC and switch at NET_SET_BACKEND, every file
 * of that tap joins the same port, and a file whose fd is not a tap, or
 * whose tap has no rule, gets an errno and joins nothing.
 */
TEST_F_TIMEOUT(vh, unnamed_files_take_their_port_from_the_tap_rule, 120)
{
	static const char tap_a[] = "pvpvh-a", tap_x[] = "pvpvh-x";
	struct pvpass_vhost_rule r, got;
	long base = pinned_pages();
	const char *step = "?";
	struct vdev a, a2, a3, b;
	int t1, t2, tx, ports0, e;

	ASSERT_GE(base, 0);
	rule_op(PVPASS_VHOST_RULE_DEL, tap_a, "", mac_a);	/* a crashed run's */

	/* Rules: every field checked. */
#define BAD_RULE(errno_, ...) do {						\
		memset(&r, 0, sizeof(r));					\
		strcpy(r.tap, tap_a);						\
		strcpy(r.backend, SW);						\
		memcpy(r.mac, mac_a, 6);					\
		__VA_ARGS__;							\
		EXPECT_EQ(-(errno_), rule_ioctl(PVPASS_VHOST_RULE_ADD, &r))	\
			TH_LOG("VHOST_RULE_ADD case: %s", #__VA_ARGS__);	\
	} while (0)
	BAD_RULE(EINVAL, memset(r.tap, 0, sizeof(r.tap)));		/* empty */
	BAD_RULE(EINVAL, strcpy(r.tap, "a/b"));
	BAD_RULE(EINVAL, strcpy(r.tap, "a:b"));
	BAD_RULE(EINVAL, strcpy(r.tap, "a b"));
	BAD_RULE(EINVAL, strcpy(r.tap, ".."));
	BAD_RULE(EINVAL, memset(r.tap, 'a', sizeof(r.tap)));		/* no NUL */
	BAD_RULE(EINVAL, r.tap[12] = 'x');				/* after the NUL */
	BAD_RULE(EINVAL, memset(r.mac, 0, 6));
	BAD_RULE(EINVAL, r.mac[0] = 0x01);				/* multicast */
	BAD_RULE(EINVAL, r.pad[1] = 1);
	BAD_RULE(EINVAL, r.flags = 1);
	BAD_RULE(EINVAL, r.reserved = 1u << 31);
	BAD_RULE(ENODEV, strcpy(r.backend, "nosuch"));
#undef BAD_RULE
	EXPECT_FALSE(rule_listed(tap_a, &got)) TH_LOG("a refused rule was kept");
	ASSERT_EQ(0, rule_op(PVPASS_VHOST_RULE_ADD, tap_a, SW, mac_a));
	EXPECT_EQ(-EEXIST, rule_op(PVPASS_VHOST_RULE_ADD, tap_a, SW, mac_b));
	EXPECT_EQ(-ENOENT, rule_op(PVPASS_VHOST_RULE_DEL, tap_x, "", mac_a));
	ASSERT_TRUE(rule_listed(tap_a, &got));
	EXPECT_EQ(0, memcmp(got.mac, mac_a, 6));
	EXPECT_STREQ(SW, got.backend);

	t1 = tap_open(tap_a, true);
	t2 = tap_open(tap_a, true);
	tx = tap_open(tap_x, false);
	ASSERT_GE(t1, 0) TH_LOG("tap %s: %s", tap_a, strerror(-t1));
	ASSERT_GE(t2, 0) TH_LOG("tap %s, second queue: %s", tap_a, strerror(-t2));
	ASSERT_GE(tx, 0) TH_LOG("tap %s: %s", tap_x, strerror(-tx));

	vdev_new(&b, mac_b);
	UP(&b, FEAT_DEFAULT);
	ports0 = sw_ports();
	EXPECT_EQ(1, ports0);

	/* An unnamed file may be owned and set up; its backend must be a
	 * tap with a rule. */
	vdev_new(&a, mac_a);
	a.fd = open(VHOST_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_GE(a.fd, 0);
	e = vdev_own(&a, FEAT_DEFAULT, &step);
	ASSERT_EQ(0, e) TH_LOG("unnamed file: %s: %s", step, strerror(-e));
	EXPECT_EQ(-EINVAL, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 0, a.tap)) TH_LOG("not a tap");
	EXPECT_EQ(-ENOENT, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 0, tx)) TH_LOG("tap without rule");
	EXPECT_EQ(-EBADF, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 0, 1000));
	EXPECT_EQ(ports0, sw_ports()) TH_LOG("a refused backend joined the switch");
	ASSERT_EQ(0, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 0, t1));
	ASSERT_EQ(0, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 1, t1));
	EXPECT_EQ(ports0 + 1, sw_ports());
	/* Its port is the rule's MAC: frames both ways. */
	EXCHANGE(&a, &b, 16);
	EXCHANGE(&b, &a, 16);
	/* A port made for one tap takes no other. */
	EXPECT_EQ(-EINVAL, ring_fd(a.fd, VHOST_NET_SET_BACKEND, 1, tx));
	EXCHANGE(&a, &b, 4);

	/* The tap's second queue: a second file, the same port. */
	vdev_new(&a2, mac_a);
	e = vdev_up_unnamed(&a2, t2, &step);
	ASSERT_EQ(0, e) TH_LOG("second queue pair: %s: %s", step, strerror(-e));
	EXPECT_EQ(ports0 + 1, sw_ports()) TH_LOG("the tap's second file made a port of its own");
	EXCHANGE(&a2, &b, 8);
	EXCHANGE(&b, &a2, 8);

	/* Without the rule, a new file of the tap joins nothing; the port
	 * stays with its files. */
	ASSERT_EQ(0, rule_op(PVPASS_VHOST_RULE_DEL, tap_a, "", mac_a));
	EXPECT_FALSE(rule_listed(tap_a, &got));
	vdev_new(&a3, mac_a);
	e = vdev_up_unnamed(&a3, t1, &step);
	EXPECT_EQ(-ENOENT, e) TH_LOG("after the rule's DEL: %s: %s", step, strerror(-e));
	EXCHANGE(&a2, &b, 4);

	vdev_close(&a3);
	vdev_close(&a);
	vdev_close(&a2);
	EXPECT_EQ(ports0, sw_ports_settled(ports0)) TH_LOG("the port outlived its files");
	vdev_close(&b);
	EXPECT_EQ(base, pinned_settled(base));
	vdev_free(&a3);
	vdev_free(&a2);
	vdev_free(&a);
	vdev_free(&b);
	close(t1);
	close(t2);
	close(tx);
}

TEST_HARNESS_MAIN
