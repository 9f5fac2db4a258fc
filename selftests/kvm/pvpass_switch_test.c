// SPDX-License-Identifier: GPL-2.0
/*
 * pvpass named switches and the named counter list: SWITCH_ADD/DEL/LIST and
 * their errors, ATTACH to a named switch, isolation between switches (guests
 * that drive their own virtqueues, each vCPU on a thread of its own, all
 * running at the same time), GET_COUNTERS against GET_STATS, and SWITCH_DEL
 * racing ATTACH/DETACH.
 *
 * Every switch a test makes goes through sw_add(), which records its name in
 * the fixture. The fixture's teardown runs in the parent process once the
 * test process is gone (its /dev/pvpass files closed, so its devices
 * detached) and deletes them, also after a failed assertion; a switch it
 * cannot delete fails the test.
 */
#include "pvpass_util.h"

#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/wait.h>

#define QSZ		8
#define HDR		12
#define FRAME_LEN	60
#define BUF_LEN		2048
#define TX_SLOT		128	/* one transmit buffer per descriptor */
#define RACE_ITER	200	/* ATTACH rounds of del_races_attach */

DEFINE_RING(ring, QSZ);
_Static_assert(offsetof(struct ring, used) == USED_OFF(QSZ), "ring layout");

/* What the host tells each guest. */
static struct params {
	u64 base;
	u64 ring_gpa[2];	/* 0: receive, 1: transmit */
	u64 rxbuf_gpa, txbuf_gpa;
	u8 me[6];
} params;

/* Written by the host before a run: the frames to send in it. */
static struct cmd {
	u32 n;
	u8 dst[QSZ][6];
	u8 tag[QSZ];
} cmd;

static struct ring rings[2];
static u8 rxbuf[QSZ * BUF_LEN] __aligned(4096);
static u8 txbuf[QSZ * TX_SLOT] __aligned(4096);

static const u8 mac_c[6] = { 0x52, 0x54, 0x00, 0xcc, 0x00, 0x03 };
static const u8 bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static void queue_up(u64 base, int q)
{
	u64 r = params.ring_gpa[q];

	mmio_wr32(base, R_QUEUE_SEL, q);
	mmio_wr32(base, R_QUEUE_NUM, QSZ);
	wr64(base, R_QUEUE_DESC, r);
	wr64(base, R_QUEUE_DRIVER, r + offsetof(struct ring, avail));
	wr64(base, R_QUEUE_DEVICE, r + USED_OFF(QSZ));
	mmio_wr32(base, R_QUEUE_READY, 1);
}

static void post(struct ring *r, u16 head)
{
	r->avail.ring[r->avail.idx % QSZ] = head;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	WRITE_ONCE(r->avail.idx, r->avail.idx + 1);
}

/* Payload byte @i (from 15) of the frame tagged @tag. */
static u8 payload(int i, u8 tag)
{
	return (u8)(i * 3) ^ tag;
}

/*
 * Brings the device up, posts QSZ receive buffers, then on every run: sends
 * the frames cmd asks for (each completed inside its notify), reads
 * InterruptStatus (which delivers what waits in the backlog) and reports
 * its receive queue's used index.
 */
static void guest_main(void)
{
	u64 base = params.base;
	struct ring *rx = &rings[0], *tx = &rings[1];
	u32 i, j;

	mmio_wr32(base, R_STATUS, 1 | 2);
	mmio_wr32(base, R_DRV_FEAT_SEL, 1);
	mmio_wr32(base, R_DRV_FEAT, 1);			/* VERSION_1 */
	mmio_wr32(base, R_DRV_FEAT_SEL, 0);
	mmio_wr32(base, R_DRV_FEAT, 1u << 5);		/* MAC */
	mmio_wr32(base, R_STATUS, 1 | 2 | 8);
	GUEST_ASSERT(mmio_rd32(base, R_STATUS) & 8);
	queue_up(base, 0);
	queue_up(base, 1);
	mmio_wr32(base, R_STATUS, 1 | 2 | 8 | 4);
	for (i = 0; i < QSZ; i++) {
		rx->desc[i] = (struct desc){ params.rxbuf_gpa + i * BUF_LEN, BUF_LEN, F_WRITE, 0 };
		post(rx, i);
	}
	mmio_wr32(base, R_QUEUE_NOTIFY, 0);
	GUEST_SYNC(0);
	for (;;) {
		u32 n = READ_ONCE(cmd.n), st;

		for (j = 0; j < n && j < QSZ; j++) {
			u16 head = tx->avail.idx % QSZ;
			u8 *f = txbuf + head * TX_SLOT;

			memset(f, 0, HDR);
			f += HDR;
			for (i = 0; i < 6; i++) {
				f[i] = cmd.dst[j][i];
				f[6 + i] = params.me[i];
			}
			f[12] = 0x88;
			f[13] = 0xb5;		/* local experimental ethertype */
			f[14] = cmd.tag[j];
			for (i = 15; i < FRAME_LEN; i++)
				f[i] = payload(i, cmd.tag[j]);
			tx->desc[head] = (struct desc){ params.txbuf_gpa + head * TX_SLOT,
							HDR + FRAME_LEN, 0, 0 };
			post(tx, head);
			mmio_wr32(base, R_QUEUE_NOTIFY, 1);
			/* Served inside the exit: completed. */
			GUEST_ASSERT_EQ(READ_ONCE(tx->used.idx), tx->avail.idx);
		}
		WRITE_ONCE(cmd.n, 0);
		st = mmio_rd32(base, R_INT_STATUS);
		if (st)
			mmio_wr32(base, R_INT_ACK, st);
		GUEST_SYNC(READ_ONCE(rx->used.idx));
	}
}

/* ---- host side ------------------------------------------------------------ */

FIXTURE(sw) {
	int n;
	char made[4 * PVPASS_MAX_SWITCHES][PVPASS_NAME_LEN];
};

FIXTURE_SETUP(sw)
{
	struct pvpass_version v = { 0 };
	int pv = pvpass_open();
	u32 need = PVPASS_FEAT_SWITCHES | PVPASS_FEAT_COUNTERS;

	ASSERT_EQ(0, ioctl(pv, PVPASS_GET_VERSION, &v));
	close(pv);
	if ((v.features & need) != need)
		SKIP(return, "module without named switches or GET_COUNTERS (features %#x)",
		     v.features);
}

/* In the parent, after the test process exited: delete what it made. */
FIXTURE_TEARDOWN_PARENT(sw)
{
	int pv = open(PVPASS_DEVICE_PATH, O_RDWR | O_CLOEXEC), i, tries;

	if (pv < 0)
		return;
	for (i = 0; i < self->n; i++) {
		struct pvpass_switch s = { 0 };
		int err = 0;

		memcpy(s.name, self->made[i], PVPASS_NAME_LEN);
		for (tries = 0; tries < 100; tries++) {
			err = ioctl(pv, PVPASS_SWITCH_DEL, &s) ? errno : 0;
			if (err != EBUSY)
				break;
			usleep(20000);	/* a device still going away */
		}
		if (err && err != ENOENT) {
			ksft_print_msg("teardown: SWITCH_DEL %.16s: %s\n", s.name, strerror(err));
			_metadata->exit_code = KSFT_FAIL;
		}
	}
	close(pv);
}

/* @name as the UAPI holds it: NUL-padded to PVPASS_NAME_LEN. */
static void pad_name(char out[PVPASS_NAME_LEN], const char *name)
{
	size_t len = strlen(name);

	memset(out, 0, PVPASS_NAME_LEN);
	memcpy(out, name, len < PVPASS_NAME_LEN ? len : PVPASS_NAME_LEN);
}

static bool name_is(const char name[PVPASS_NAME_LEN], const char *want)
{
	char p[PVPASS_NAME_LEN];

	pad_name(p, want);
	return !memcmp(name, p, PVPASS_NAME_LEN);
}

/* SWITCH_ADD/DEL of the request @s: 0 or -errno. */
static int sw_req(int pv, unsigned long op, const struct pvpass_switch *s)
{
	return ioctl(pv, op, s) ? -errno : 0;
}

static int sw_op(int pv, unsigned long op, const char *name)
{
	struct pvpass_switch s = { 0 };

	pad_name(s.name, name);
	return sw_req(pv, op, &s);
}

/* SWITCH_ADD @name, recorded for the teardown if made: 0 or -errno. */
static int sw_add(FIXTURE_DATA(sw) *self, int pv, const char *name)
{
	int e = sw_op(pv, PVPASS_SWITCH_ADD, name), i;

	if (e)
		return e;
	for (i = 0; i < self->n && !name_is(self->made[i], name); i++)
		;
	if (i == self->n && self->n < (int)ARRAY_SIZE(self->made))
		pad_name(self->made[self->n++], name);
	return 0;
}

static int sw_del(int pv, const char *name)
{
	return sw_op(pv, PVPASS_SWITCH_DEL, name);
}

/* SWITCH_LIST with room @room: the total (count out), or -errno. */
static int sw_list(int pv, struct pvpass_switch *out, u32 room)
{
	struct pvpass_switch_list l = { .count = room, .entries = (u64)(unsigned long)out };

	if (ioctl(pv, PVPASS_SWITCH_LIST, &l))
		return -errno;
	return l.count;
}

/* The switch @name as SWITCH_LIST reports it now, or NULL. */
static const struct pvpass_switch *sw_get(int pv, const char *name)
{
	static struct pvpass_switch all[2 * PVPASS_MAX_SWITCHES];
	int n = sw_list(pv, all, ARRAY_SIZE(all)), i;

	TEST_ASSERT(n >= 0, "SWITCH_LIST: %s", strerror(-n));
	for (i = 0; i < n && i < (int)ARRAY_SIZE(all); i++)
		if (name_is(all[i].name, name))
			return &all[i];
	return NULL;
}

/* Ports of switch @name now, -1 if it does not exist. */
static int sw_ports(int pv, const char *name)
{
	const struct pvpass_switch *s = sw_get(pv, name);

	return s ? (int)s->ports : -1;
}

/* The attachment @id as LIST reports it; false if it is not listed. */
static bool listed(int pv, int id, struct pvpass_info *out)
{
	static struct pvpass_info info[PVPASS_MAX_ATTACH];
	struct pvpass_list l = { .count = PVPASS_MAX_ATTACH, .entries = (u64)(unsigned long)info };
	u32 i;

	TEST_ASSERT(!ioctl(pv, PVPASS_LIST, &l), "LIST: %s", strerror(errno));
	for (i = 0; i < l.count && i < PVPASS_MAX_ATTACH; i++) {
		if ((int)info[i].id == id) {
			*out = info[i];
			return true;
		}
	}
	return false;
}

/* ATTACH (no guest code needed) at @gpa/@gsi with @mac on switch @sw. */
static int attach_to(int pv, struct kvm_vm *vm, u64 gpa, u32 gsi, const u8 *mac, const char *sw)
{
	struct pvpass_attach a = attach_req(vm->fd, gpa, gsi, mac);

	pad_name(a.backend, sw);
	return do_attach(pv, &a);
}

static int detach(int pv, int id)
{
	struct pvpass_detach d = { .id = id };

	return ioctl(pv, PVPASS_DETACH, &d) ? -errno : 0;
}

/* A VM running guest_main(), its vCPU and its attachment. */
struct guest {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	int id;
	u64 used;		/* its receive queue's used index at its last sync */
};

static void start(int pv, struct guest *g, const char *sw, const u8 *me)
{
	g->vm = vm_create_with_one_vcpu(&g->vcpu, guest_main);
	virt_map(g->vm, WIN_GPA, WIN_GPA, 1);
	params = (struct params){ .base = WIN_GPA };
	params.ring_gpa[0] = addr_gva2gpa(g->vm, (gva_t)&rings[0]);
	params.ring_gpa[1] = addr_gva2gpa(g->vm, (gva_t)&rings[1]);
	params.rxbuf_gpa = addr_gva2gpa(g->vm, (gva_t)rxbuf);
	params.txbuf_gpa = addr_gva2gpa(g->vm, (gva_t)txbuf);
	memcpy(params.me, me, 6);
	sync_global_to_guest(g->vm, params);
	g->id = attach_to(pv, g->vm, WIN_GPA, 5, me, sw);
	TEST_ASSERT(g->id > 0, "ATTACH to %s: %s", sw, strerror(-g->id));
	g->used = 0;
}

/* Ask @g to send a frame to @dst tagged @tag in its next run. */
static void queue_frame(struct guest *g, const u8 *dst, u8 tag)
{
	struct cmd *c = addr_gva2hva(g->vm, (gva_t)&cmd);

	TEST_ASSERT(c->n < QSZ, "too many frames queued");
	memcpy(c->dst[c->n], dst, 6);
	c->tag[c->n] = tag;
	c->n++;
}

static void *run_one(void *arg)
{
	struct guest *g = arg;

	g->used = sync_vcpu(g->vcpu);
	return NULL;
}

/* One run of every guest in @gs, each vCPU on its own thread, all at once. */
static void run_together(struct guest **gs, int n)
{
	pthread_t t[4];
	int i;

	TEST_ASSERT(n <= 4, "too many guests");
	for (i = 0; i < n; i++)
		TEST_ASSERT(!pthread_create(&t[i], NULL, run_one, gs[i]), "pthread_create");
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

/* The @k-th frame @g received (the Ethernet frame, after the header), or
 * NULL if its length is not HDR + FRAME_LEN. */
static const u8 *received(struct guest *g, u32 k)
{
	struct ring *rx = addr_gva2hva(g->vm, (gva_t)&rings[0]);
	const u8 *buf = addr_gva2hva(g->vm, (gva_t)rxbuf);
	u32 id = rx->used.ring[k % QSZ].id;

	if (id >= QSZ || rx->used.ring[k % QSZ].len != HDR + FRAME_LEN)
		return NULL;
	return buf + id * BUF_LEN + HDR;
}

/* Is @f (an Ethernet frame) the test frame @tag from @src to @dst, intact? */
static bool frame_is(const u8 *f, const u8 *dst, const u8 *src, u8 tag)
{
	int i;

	if (!f || memcmp(f, dst, 6) || memcmp(f + 6, src, 6) || f[12] != 0x88 ||
	    f[13] != 0xb5 || f[14] != tag)
		return false;
	for (i = 15; i < FRAME_LEN; i++)
		if (f[i] != payload(i, tag))
			return false;
	return true;
}

/* rx_packets + rx_dropped of pvpsw0: frames the switch handed to the host. */
static u64 host_rx(void)
{
	static const char *const files[] = { "rx_packets", "rx_dropped" };
	u64 sum = 0;
	int i;

	for (i = 0; i < 2; i++) {
		char path[96];
		unsigned long long v = 0;
		FILE *f;

		snprintf(path, sizeof(path), "/sys/class/net/pvpsw0/statistics/%s", files[i]);
		f = fopen(path, "r");
		TEST_ASSERT(f, "%s: %s", path, strerror(errno));
		TEST_ASSERT(fscanf(f, "%llu", &v) == 1, "%s unreadable", path);
		fclose(f);
		sum += v;
	}
	return sum;
}

/* ---- 1. SWITCH_ADD / SWITCH_DEL / SWITCH_LIST ------------------------------ */

TEST_F(sw, switch_add_list_del)
{
	struct pvpass_switch all[2 * PVPASS_MAX_SWITCHES], pat[4], s;
	const struct pvpass_switch *d, *s1;
	int pv = pvpass_open(), total, i, n, status;
	char name[PVPASS_NAME_LEN + 1];
	pid_t child;

	ASSERT_EQ(0, sw_add(self, pv, "sw1"));
	n = sw_list(pv, all, ARRAY_SIZE(all));
	ASSERT_GE(n, 2);
	d = sw_get(pv, "default");
	ASSERT_NE(NULL, d) TH_LOG("no switch \"default\"");
	EXPECT_EQ(PVPASS_SWITCH_DEFAULT | PVPASS_SWITCH_HOST_PORT, d->flags);
	EXPECT_GE(d->ports, 1);				/* pvpsw0 */
	EXPECT_EQ(0, d->reserved[0] | d->reserved[1]);
	s1 = sw_get(pv, "sw1");
	ASSERT_NE(NULL, s1) TH_LOG("sw1 not listed after SWITCH_ADD");
	EXPECT_EQ(0, s1->flags);
	EXPECT_EQ(0, s1->ports);
	EXPECT_EQ(0, s1->reserved[0] | s1->reserved[1]);

	EXPECT_EQ(-EEXIST, sw_add(self, pv, "sw1"));
	EXPECT_EQ(-EEXIST, sw_add(self, pv, "default"));

	/* Bad names and fields, for ADD and DEL alike. */
#define BAD_REQ(errno_, ...) do {						\
		memset(&s, 0, sizeof(s));					\
		strcpy(s.name, "sw1");						\
		__VA_ARGS__;							\
		EXPECT_EQ(-(errno_), sw_req(pv, PVPASS_SWITCH_ADD, &s))		\
			TH_LOG("ADD case: %s", #__VA_ARGS__);			\
		EXPECT_EQ(-(errno_), sw_req(pv, PVPASS_SWITCH_DEL, &s))		\
			TH_LOG("DEL case: %s", #__VA_ARGS__);			\
	} while (0)
	BAD_REQ(EINVAL, memset(s.name, 0, sizeof(s.name)));		/* empty */
	BAD_REQ(EINVAL, memset(s.name, 'a', sizeof(s.name)));		/* no NUL */
	BAD_REQ(EINVAL, strcpy(s.name, "a b"));
	BAD_REQ(EINVAL, strcpy(s.name, "a/b"));
	BAD_REQ(EINVAL, strcpy(s.name, "sw\xc3\xa9"));			/* not ASCII */
	BAD_REQ(EINVAL, s.name[5] = 'x');		/* "sw1\0\0x": after the NUL */
	BAD_REQ(EINVAL, s.name[15] = 1);
	BAD_REQ(EINVAL, s.flags = 1);
	BAD_REQ(EINVAL, s.flags = 1u << 31);
	BAD_REQ(EINVAL, s.ports = 1);
	BAD_REQ(EINVAL, s.reserved[0] = 1);
	BAD_REQ(EINVAL, s.reserved[1] = 1ull << 63);
#undef BAD_REQ
	/* None of that touched sw1. */
	s1 = sw_get(pv, "sw1");
	ASSERT_NE(NULL, s1);
	EXPECT_EQ(0, s1->ports);

	EXPECT_EQ(-ENOENT, sw_del(pv, "nosuch"));
	EXPECT_EQ(-EBUSY, sw_del(pv, "default"));
	EXPECT_NE(NULL, sw_get(pv, "default"));

	/* LIST with room 0: the total, nothing written; room 1: one entry. */
	total = sw_list(pv, all, ARRAY_SIZE(all));
	ASSERT_GE(total, 2);
	memset(pat, 0xa5, sizeof(pat));
	memcpy(all, pat, sizeof(pat));
	EXPECT_EQ(total, sw_list(pv, all, 0));
	EXPECT_EQ(0, memcmp(all, pat, sizeof(pat))) TH_LOG("SWITCH_LIST with room 0 wrote entries");
	EXPECT_EQ(total, sw_list(pv, NULL, 0));
	EXPECT_EQ(total, sw_list(pv, all, 1));
	EXPECT_NE(0, memcmp(&all[0], &pat[0], sizeof(all[0])));
	EXPECT_EQ(0, memcmp(&all[1], &pat[1], 3 * sizeof(all[0])))
		TH_LOG("SWITCH_LIST with room 1 wrote more than one entry");
	{
		struct pvpass_switch_list l = { .count = 1, .flags = 1,
						.entries = (u64)(unsigned long)all };

		EXPECT_EQ(-1, ioctl(pv, PVPASS_SWITCH_LIST, &l));
		EXPECT_EQ(EINVAL, errno);
		l.flags = 0;
		l.entries = 8;					/* bad pointer */
		EXPECT_EQ(-1, ioctl(pv, PVPASS_SWITCH_LIST, &l));
		EXPECT_EQ(EFAULT, errno);
	}

	/* Fill up to PVPASS_MAX_SWITCHES (default and sw1 included), with a
	 * name of the longest length and every allowed kind of character. */
	for (i = total; i < PVPASS_MAX_SWITCHES; i++) {
		if (i == total)
			strcpy(name, "Az09_.-longest.");	/* 15 characters */
		else
			snprintf(name, sizeof(name), "fill%d", i);
		ASSERT_EQ(0, sw_add(self, pv, name)) TH_LOG("ADD %s (switch %d)", name, i + 1);
	}
	EXPECT_EQ(PVPASS_MAX_SWITCHES, sw_list(pv, all, ARRAY_SIZE(all)));
	EXPECT_NE(NULL, sw_get(pv, "Az09_.-longest."));
	EXPECT_EQ(-ENOSPC, sw_add(self, pv, "over"));
	EXPECT_EQ(PVPASS_MAX_SWITCHES, sw_list(pv, all, ARRAY_SIZE(all)));
	EXPECT_EQ(NULL, sw_get(pv, "over"));
	/* A deletion makes room again. */
	EXPECT_EQ(0, sw_del(pv, "Az09_.-longest."));
	EXPECT_EQ(0, sw_add(self, pv, "over"));
	EXPECT_EQ(-ENOSPC, sw_add(self, pv, "over2"));

	/* Not root: ADD and DEL refused (EPERM before any other check), LIST
	 * allowed, on a file opened as root. */
	child = fork();
	ASSERT_GE(child, 0);
	if (child == 0) {
		struct pvpass_switch_list l = { 0 };

		if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(10);
		if (sw_op(pv, PVPASS_SWITCH_ADD, "user") != -EPERM)
			_exit(1);
		if (sw_op(pv, PVPASS_SWITCH_DEL, "sw1") != -EPERM)
			_exit(2);
		if (sw_op(pv, PVPASS_SWITCH_DEL, "nosuch") != -EPERM)
			_exit(3);
		if (sw_op(pv, PVPASS_SWITCH_ADD, "") != -EPERM)
			_exit(4);
		if (ioctl(pv, PVPASS_SWITCH_LIST, &l) || l.count != PVPASS_MAX_SWITCHES)
			_exit(5);
		_exit(0);
	}
	ASSERT_EQ(child, waitpid(child, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status))
		TH_LOG("unprivileged child: 10 setresuid failed, 1 ADD, 2 DEL, 3 DEL of a "
		       "missing switch, 4 ADD of a bad name not EPERM, 5 LIST failed");
	EXPECT_NE(NULL, sw_get(pv, "sw1"));
	EXPECT_EQ(NULL, sw_get(pv, "user"));

	/* Delete everything this test made: back to where it started. */
	for (i = 0; i < self->n; i++) {
		char n0[PVPASS_NAME_LEN + 1] = { 0 };

		memcpy(n0, self->made[i], PVPASS_NAME_LEN);
		if (sw_get(pv, n0))
			EXPECT_EQ(0, sw_del(pv, n0)) TH_LOG("DEL %s", n0);
	}
	EXPECT_EQ(total - 1, sw_list(pv, all, ARRAY_SIZE(all)));
	EXPECT_EQ(NULL, sw_get(pv, "sw1"));
	EXPECT_EQ(-ENOENT, sw_del(pv, "sw1"));
	close(pv);
}

/* ---- 2. ATTACH to a named switch -------------------------------------------- */

TEST_F(sw, attach_to_named_switch)
{
	struct kvm_vm *vm = vm_create_barebones();
	int pv = pvpass_open(), id1, id2, id3, def0;
	struct pvpass_info info;
	u8 host_mac[6];

	{
		struct ifreq ifr = { 0 };
		int ctl = socket(AF_INET, SOCK_DGRAM, 0);

		strcpy(ifr.ifr_name, "pvpsw0");
		ASSERT_EQ(0, ioctl(ctl, SIOCGIFHWADDR, &ifr)) TH_LOG("pvpsw0 MAC: %s", strerror(errno));
		close(ctl);
		memcpy(host_mac, ifr.ifr_hwaddr.sa_data, 6);
	}
	ASSERT_EQ(0, sw_add(self, pv, "sw1"));
	def0 = sw_ports(pv, "default");
	ASSERT_GE(def0, 1);

	id1 = attach_to(pv, vm, WIN_GPA, 5, mac_a, "sw1");
	ASSERT_GT(id1, 0) TH_LOG("ATTACH to sw1: %s", strerror(-id1));
	ASSERT_TRUE(listed(pv, id1, &info));
	EXPECT_TRUE(name_is(info.backend, "sw1")) TH_LOG("LIST backend \"%.16s\"", info.backend);
	EXPECT_EQ(0, info.flags);
	EXPECT_EQ(1, sw_ports(pv, "sw1"));
	EXPECT_EQ(def0, sw_ports(pv, "default"));	/* not a port of default */

	/* The same MAC on another switch ("" is default) is fine; twice on one
	 * switch is not. */
	id2 = attach_to(pv, vm, WIN2_GPA, 6, mac_a, "");
	ASSERT_GT(id2, 0) TH_LOG("same MAC on default: %s", strerror(-id2));
	ASSERT_TRUE(listed(pv, id2, &info));
	EXPECT_TRUE(name_is(info.backend, "default")) TH_LOG("LIST backend \"%.16s\"", info.backend);
	EXPECT_EQ(def0 + 1, sw_ports(pv, "default"));
	EXPECT_EQ(1, sw_ports(pv, "sw1"));
	EXPECT_EQ(-EADDRINUSE, attach_to(pv, vm, WIN_GPA + 0x2000, 7, mac_a, "sw1"));
	EXPECT_EQ(-EADDRINUSE, attach_to(pv, vm, WIN_GPA + 0x2000, 7, mac_a, "default"));
	/* The host port's MAC is taken on default only. */
	EXPECT_EQ(-EADDRINUSE, attach_to(pv, vm, WIN_GPA + 0x2000, 7, host_mac, "default"));
	id3 = attach_to(pv, vm, WIN_GPA + 0x2000, 7, host_mac, "sw1");
	EXPECT_GT(id3, 0) TH_LOG("pvpsw0's MAC on sw1: %s", strerror(-id3));
	EXPECT_EQ(id3 > 0 ? 2 : 1, sw_ports(pv, "sw1"));
	if (id3 > 0)
		EXPECT_EQ(0, detach(pv, id3));
	EXPECT_EQ(1, sw_ports(pv, "sw1"));
	EXPECT_EQ(def0 + 1, sw_ports(pv, "default"));

	/* A switch with a device cannot go; once it is detached it can. */
	EXPECT_EQ(-EBUSY, sw_del(pv, "sw1"));
	EXPECT_EQ(1, sw_ports(pv, "sw1"));
	ASSERT_TRUE(listed(pv, id1, &info));
	EXPECT_TRUE(name_is(info.backend, "sw1"));
	EXPECT_EQ(0, detach(pv, id1));
	EXPECT_EQ(0, sw_ports(pv, "sw1"));
	EXPECT_EQ(0, sw_del(pv, "sw1"));
	EXPECT_EQ(-1, sw_ports(pv, "sw1"));
	/* Gone: ATTACH to its name finds no switch, and made nothing. */
	EXPECT_EQ(-ENODEV, attach_to(pv, vm, WIN_GPA, 5, mac_b, "sw1"));
	EXPECT_EQ(-1, sw_ports(pv, "sw1"));
	/* The window is free again (the refused ATTACH reserved nothing). */
	id1 = attach_to(pv, vm, WIN_GPA, 5, mac_b, "default");
	EXPECT_GT(id1, 0) TH_LOG("ATTACH after ENODEV: %s", strerror(-id1));
	EXPECT_EQ(def0 + 2, sw_ports(pv, "default"));
	if (id1 > 0)
		EXPECT_EQ(0, detach(pv, id1));
	EXPECT_EQ(0, detach(pv, id2));
	EXPECT_EQ(def0, sw_ports(pv, "default"));
	kvm_vm_free(vm);
	close(pv);
}

/* ---- 3. isolation -------------------------------------------------------------- */

/*
 * A1 and A2 on "sw1", B1 on "default" (with the host port pvpsw0). A1's
 * broadcast, its unicast to A2 and its unicast to B1's MAC (unknown on sw1:
 * flooded) reach A2 only; B1's broadcast and its unicast to A1's MAC
 * (unknown on default: flooded) reach the host port only.
 */
TEST_F_TIMEOUT(sw, switches_are_isolated, 120)
{
	int pv = pvpass_open(), ifindex, hfd, i;
	struct guest a1, a2, b1;
	struct guest *all[] = { &a1, &a2, &b1 };
	struct pvpass_stats s;
	u8 got[2048];
	u64 h0;
	ssize_t n;

	ASSERT_EQ(0, sw_add(self, pv, "sw1"));
	hfd = host_port_socket(_metadata, &ifindex);
	while (recv(hfd, got, sizeof(got), MSG_DONTWAIT) > 0)
		;
	start(pv, &a1, "sw1", mac_a);
	start(pv, &a2, "sw1", mac_b);
	start(pv, &b1, "default", mac_c);
	EXPECT_EQ(2, sw_ports(pv, "sw1"));
	run_together(all, 3);				/* devices up, buffers posted */
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, all[i]->used);
	h0 = host_rx();

	/* A1 sends; everyone runs at the same time, then once more to take
	 * what waits in a backlog. */
	queue_frame(&a1, bcast, 1);
	queue_frame(&a1, mac_b, 2);
	queue_frame(&a1, mac_c, 3);
	run_together(all, 3);
	run_together(all, 3);
	s = stats(pv, a1.id);
	EXPECT_EQ(3, s.tx_frames);
	EXPECT_EQ(3 * FRAME_LEN, s.tx_bytes);
	EXPECT_EQ(0, s.drop_tx_spoofed + s.drop_tx_storm + s.drop_tx_bad_chain + s.drop_tx_bad_buffer);
	EXPECT_EQ(0, s.rx_frames);			/* its own broadcast is not echoed */
	EXPECT_EQ(0, a1.used);
	s = stats(pv, a2.id);
	EXPECT_EQ(3, s.rx_frames);
	EXPECT_EQ(3 * FRAME_LEN, s.rx_bytes);
	EXPECT_EQ(0, s.drop_rx_no_buffer + s.drop_rx_too_small);
	ASSERT_EQ(3, a2.used);
	EXPECT_TRUE(frame_is(received(&a2, 0), bcast, mac_a, 1)) TH_LOG("A2 frame 0: not A1's broadcast");
	EXPECT_TRUE(frame_is(received(&a2, 1), mac_b, mac_a, 2)) TH_LOG("A2 frame 1: not A1's unicast");
	EXPECT_TRUE(frame_is(received(&a2, 2), mac_c, mac_a, 3))
		TH_LOG("A2 frame 2: not A1's frame to B1's MAC");
	s = stats(pv, b1.id);
	EXPECT_EQ(0, s.rx_frames) TH_LOG("a frame of sw1 reached B1 on default");
	EXPECT_EQ(0, s.rx_bytes + s.drop_rx_no_buffer + s.rx_deferred);
	EXPECT_EQ(0, b1.used);
	usleep(100000);					/* anything for the host is there by now */
	EXPECT_EQ(h0, host_rx()) TH_LOG("a frame of sw1 reached pvpsw0");
	n = recv(hfd, got, sizeof(got), MSG_DONTWAIT);
	EXPECT_EQ(-1, n) TH_LOG("pvpsw0 received %zd bytes from sw1", n);

	/* B1 sends: the host port gets both, sw1's guests nothing. */
	queue_frame(&b1, bcast, 4);
	queue_frame(&b1, mac_a, 5);
	run_together(all, 3);
	run_together(all, 3);
	s = stats(pv, b1.id);
	EXPECT_EQ(2, s.tx_frames);
	EXPECT_EQ(0, s.drop_tx_spoofed + s.drop_tx_storm);
	EXPECT_EQ(0, s.rx_frames);
	EXPECT_EQ(0, stats(pv, a1.id).rx_frames) TH_LOG("B1's frame reached A1 on sw1");
	EXPECT_EQ(3, stats(pv, a2.id).rx_frames) TH_LOG("B1's frame reached A2 on sw1");
	EXPECT_EQ(0, a1.used);
	EXPECT_EQ(3, a2.used);
	for (i = 0; i < 2; i++) {
		struct pollfd p = { .fd = hfd, .events = POLLIN };

		n = poll(&p, 1, 2000) == 1 ? recv(hfd, got, sizeof(got), MSG_DONTWAIT) : -1;
		ASSERT_EQ(FRAME_LEN, n) TH_LOG("pvpsw0: B1's frame %d not received", i);
		EXPECT_TRUE(frame_is(got, i ? mac_a : bcast, mac_c, 4 + i))
			TH_LOG("pvpsw0: frame %d is not B1's", i);
	}
	EXPECT_EQ(h0 + 2, host_rx());
	EXPECT_EQ(-1, recv(hfd, got, sizeof(got), MSG_DONTWAIT));

	for (i = 0; i < 3; i++)
		detach_and_free(pv, all[i]->id, all[i]->vm);
	EXPECT_EQ(0, sw_ports(pv, "sw1"));
	EXPECT_EQ(0, sw_del(pv, "sw1"));
	close(hfd);
	close(pv);
}

/* ---- 4. GET_COUNTERS ----------------------------------------------------------- */

/* The fields of struct pvpass_stats after id and flags, in its order. */
#define STAT(f) { #f, offsetof(struct pvpass_stats, f) }
static const struct {
	const char *name;
	size_t off;
} stat_fields[] = {
	STAT(mmio_reads), STAT(mmio_writes), STAT(mmio_bad), STAT(notifies),
	STAT(interrupts), STAT(tx_frames), STAT(tx_bytes), STAT(rx_frames),
	STAT(rx_bytes), STAT(drop_tx_bad_chain), STAT(drop_tx_bad_buffer),
	STAT(drop_rx_no_buffer), STAT(drop_rx_too_small), STAT(released),
	STAT(drop_tx_bad_hdr), STAT(drop_rx_no_offload), STAT(tx_gso_frames),
	STAT(rx_gso_frames), STAT(rx_csum_completed), STAT(drop_tx_spoofed),
	STAT(pages_pinned), STAT(pin_hits), STAT(pin_misses), STAT(rx_direct),
	STAT(rx_deferred), STAT(drop_rx_pin_failed), STAT(map_rereads),
	STAT(irq_resamples), STAT(tx_yields), STAT(drop_tx_storm),
	STAT(drop_rx_scattered),
};
#undef STAT
#define NSTATS	((int)ARRAY_SIZE(stat_fields))
#define RELEASED_AT	13

static u64 stat_of(const struct pvpass_stats *s, int i)
{
	return *(const u64 *)((const u8 *)s + stat_fields[i].off);
}

/* GET_COUNTERS of @id with room @room into @out: 0 or -errno; count out in *@count. */
static int counters(int pv, u32 id, u32 flags, u32 room, struct pvpass_counter *out, u32 *count)
{
	struct pvpass_counters c = { .id = id, .flags = flags, .count = room,
				     .entries = (u64)(unsigned long)out };

	if (ioctl(pv, PVPASS_GET_COUNTERS, &c))
		return -errno;
	*count = c.count;
	return 0;
}

/* The counters with these names are exactly GET_STATS's fields, in order,
 * and have its values. */
static void expect_counters_are_stats(struct __test_metadata *_metadata,
				      const struct pvpass_counter *c, u32 n,
				      const struct pvpass_stats *s)
{
	int i;

	ASSERT_GE(n, NSTATS);
	for (i = 0; i < NSTATS; i++) {
		char want[PVPASS_COUNTER_NAME_LEN] = { 0 };

		strcpy(want, stat_fields[i].name);
		EXPECT_EQ(0, memcmp(c[i].name, want, sizeof(want)))
			TH_LOG("counter %d is \"%.32s\", not %s (NUL-padded)", i, c[i].name,
			       stat_fields[i].name);
		EXPECT_EQ(stat_of(s, i), c[i].value)
			TH_LOG("counter %d (%s): GET_COUNTERS %llu, GET_STATS %llu", i,
			       stat_fields[i].name, (unsigned long long)c[i].value,
			       (unsigned long long)stat_of(s, i));
	}
}

TEST_F_TIMEOUT(sw, get_counters, 120)
{
	int pv = pvpass_open(), pv2 = pvpass_open(), i, j;
	struct pvpass_counter buf[128], pat[128];
	struct pvpass_counters c;
	struct guest a, b;
	struct guest *both[] = { &a, &b };
	struct pvpass_stats s;
	u32 n = 0, k = 0;

	/* The offsets say the table above is struct pvpass_stats, in order. */
	for (i = 0; i < NSTATS; i++) {
		ASSERT_EQ(8 + 8 * i, stat_fields[i].off)
			TH_LOG("field %d out of place", i);
	}
	ASSERT_EQ(8 + 8 * NSTATS, sizeof(struct pvpass_stats));

	/* A device that has sent two frames and received one. */
	start(pv, &a, "default", mac_a);
	start(pv, &b, "default", mac_b);
	run_together(both, 2);
	queue_frame(&a, mac_b, 1);
	queue_frame(&a, mac_b, 2);
	queue_frame(&b, mac_a, 3);
	run_together(both, 2);
	run_together(both, 2);
	ASSERT_EQ(1, a.used);
	ASSERT_EQ(2, b.used);
	/* From here on both vCPUs stay in userspace: the devices are idle. */

	memset(pat, 0x5a, sizeof(pat));
	memcpy(buf, pat, sizeof(buf));
	ASSERT_EQ(0, counters(pv, a.id, 0, 0, buf, &n));
	EXPECT_GE(n, NSTATS);
	ASSERT_LE(n, ARRAY_SIZE(buf) - 4);
	EXPECT_EQ(0, memcmp(buf, pat, sizeof(buf))) TH_LOG("room 0 wrote entries");
	ASSERT_EQ(0, counters(pv, a.id, 0, 0, NULL, &k));
	EXPECT_EQ(n, k);

	/* Room 3: exactly the first three. */
	ASSERT_EQ(0, counters(pv, a.id, 0, 3, buf, &k));
	EXPECT_EQ(n, k);
	for (i = 0; i < 3; i++)
		EXPECT_STREQ(stat_fields[i].name, buf[i].name);
	EXPECT_EQ(0, memcmp(&buf[3], &pat[3], sizeof(buf) - 3 * sizeof(buf[0])))
		TH_LOG("room 3 wrote more than 3 entries");

	/* Room for all and more: n entries, names and values as GET_STATS. */
	memcpy(buf, pat, sizeof(buf));
	ASSERT_EQ(0, counters(pv, a.id, 0, n + 4, buf, &k));
	s = stats(pv, a.id);
	EXPECT_EQ(n, k);
	EXPECT_EQ(0, memcmp(&buf[n], &pat[n], 4 * sizeof(buf[0]))) TH_LOG("wrote past the count");
	expect_counters_are_stats(_metadata, buf, n, &s);
	/* It is a device that has done something. */
	EXPECT_EQ(2, buf[5].value);			/* tx_frames */
	EXPECT_EQ(1, buf[7].value);			/* rx_frames */
	EXPECT_GT(buf[0].value, 0);			/* mmio_reads */
	EXPECT_GT(buf[3].value, 0);			/* notifies */
	EXPECT_EQ(0, buf[RELEASED_AT].value);
	/* Newer counters (if any) have names of their own, NUL-terminated. */
	for (i = NSTATS; i < (int)n; i++) {
		EXPECT_NE(0, buf[i].name[0]) TH_LOG("counter %d has no name", i);
		EXPECT_EQ(0, buf[i].name[PVPASS_COUNTER_NAME_LEN - 1]);
		for (j = 0; j < i; j++)
			EXPECT_NE(0, strncmp(buf[i].name, buf[j].name, PVPASS_COUNTER_NAME_LEN))
				TH_LOG("counters %d and %d are both \"%.32s\"", j, i, buf[i].name);
	}
	/* The other order (GET_STATS first), and the other device. */
	s = stats(pv, b.id);
	ASSERT_EQ(0, counters(pv, b.id, 0, n, buf, &k));
	EXPECT_EQ(n, k);
	expect_counters_are_stats(_metadata, buf, n, &s);
	EXPECT_EQ(2, buf[7].value);			/* rx_frames */

	/* Bad requests. */
	c = (struct pvpass_counters){ .id = a.id, .count = 1, .entries = (u64)(unsigned long)buf };
	c.reserved = 1;
	EXPECT_EQ(-1, ioctl(pv, PVPASS_GET_COUNTERS, &c));
	EXPECT_EQ(EINVAL, errno);
	c.reserved = 0;
	c.flags = 2;
	EXPECT_EQ(-1, ioctl(pv, PVPASS_GET_COUNTERS, &c));
	EXPECT_EQ(EINVAL, errno);
	c.flags = 1u << 31;
	EXPECT_EQ(-1, ioctl(pv, PVPASS_GET_COUNTERS, &c));
	EXPECT_EQ(EINVAL, errno);
	c.flags = 0;
	c.entries = 8;					/* bad pointer */
	EXPECT_EQ(-1, ioctl(pv, PVPASS_GET_COUNTERS, &c));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-ENOENT, counters(pv, 0, 0, n, buf, &k));
	EXPECT_EQ(-ENOENT, counters(pv, a.id + b.id + 1000, 0, n, buf, &k));
	EXPECT_EQ(-ENOENT, counters(pv, a.id + b.id + 1000, PVPASS_F_ANY_FILE, n, buf, &k));
	/* Another file: ENOENT without PVPASS_F_ANY_FILE, the counters with it. */
	EXPECT_EQ(-ENOENT, counters(pv2, a.id, 0, n, buf, &k));
	s = stats(pv, a.id);
	ASSERT_EQ(0, counters(pv2, a.id, PVPASS_F_ANY_FILE, n, buf, &k));
	EXPECT_EQ(n, k);
	expect_counters_are_stats(_metadata, buf, n, &s);

	/* released, at its place: B detached by another file is a husk. */
	{
		struct pvpass_detach d = { .id = b.id, .flags = PVPASS_F_ANY_FILE };

		ASSERT_EQ(0, ioctl(pv2, PVPASS_DETACH, &d));
	}
	ASSERT_EQ(0, counters(pv, b.id, 0, n, buf, &k));
	s = stats(pv, b.id);
	EXPECT_EQ(1, s.released);
	EXPECT_EQ(1, buf[RELEASED_AT].value);
	expect_counters_are_stats(_metadata, buf, n, &s);

	/* Detached: gone. */
	detach_and_free(pv, a.id, a.vm);
	detach_and_free(pv, b.id, b.vm);
	EXPECT_EQ(-ENOENT, counters(pv, a.id, 0, n, buf, &k));
	EXPECT_EQ(-ENOENT, counters(pv, b.id, 0, n, buf, &k));
	close(pv2);
	close(pv);
}

/* ---- 5. SWITCH_DEL racing ATTACH ----------------------------------------------- */

/*
 * Every ADD, DEL, ATTACH and DETACH logs a line: the rounds are few hundred,
 * and the deleter makes at most one attempt per ATTACH round, so that the
 * bed's kernel log (128 KiB, checked for the detectors' reports of every
 * program) keeps its earlier lines.
 */
struct race {
	struct kvm_vm *vm;
	int pv_a, pv_d;		/* the attacher's file, the administrator's */
	volatile int rounds;	/* ATTACH rounds begun */
	volatile int round_us;	/* how long the last attached round took */
	volatile int done;
	/* attacher */
	int attached, nodev, other, first_err;
	int bad_backend, del_not_busy, ports_wrong, detach_failed;
	/* deleter */
	int dels, deleted, busy, bad_del, bad_add, first_del_err, first_add_err;
};

static void *attacher(void *arg)
{
	struct race *r = arg;
	int i;

	for (i = 0; i < RACE_ITER; i++) {
		struct pvpass_info info;
		struct timespec t0, t1;
		int id, e;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		r->rounds = i + 1;
		id = attach_to(r->pv_a, r->vm, WIN_GPA, 5, mac_a, "sw2");
		if (id == -ENODEV) {
			r->nodev++;
			usleep(50);	/* the deleter puts sw2 back */
			continue;
		}
		if (id <= 0) {
			if (!r->other++)
				r->first_err = -id;
			continue;
		}
		r->attached++;
		if (!listed(r->pv_a, id, &info) || !name_is(info.backend, "sw2") || info.flags)
			r->bad_backend++;
		/* While the device is on it, sw2 cannot be deleted, by anyone. */
		e = sw_del(r->pv_a, "sw2");
		if (e != -EBUSY)
			r->del_not_busy++;
		if (sw_ports(r->pv_a, "sw2") != 1)
			r->ports_wrong++;
		usleep(2000);	/* attached a while: the deleter's DEL may come now */
		if (detach(r->pv_a, id))
			r->detach_failed++;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		r->round_us = (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
	}
	r->done = 1;
	return NULL;
}

/* Once per ATTACH round, at a random moment of it (as long as the last
 * attached round took): DEL sw2, ADD it again. */
static void *deleter(void *arg)
{
	struct race *r = arg;
	unsigned int seed = 1;
	int seen = 0;

	while (!r->done) {
		int e;

		if (r->rounds == seen) {
			usleep(20);
			continue;
		}
		seen = r->rounds;
		usleep(rand_r(&seed) % (r->round_us > 100 ? r->round_us : 100));
		e = sw_del(r->pv_d, "sw2");
		r->dels++;
		if (e == -EBUSY) {
			r->busy++;
			continue;
		}
		if (e) {
			if (!r->bad_del++)
				r->first_del_err = -e;
			continue;
		}
		r->deleted++;
		if (rand_r(&seed) % 2)
			sched_yield();	/* gone a moment longer */
		e = sw_op(r->pv_d, PVPASS_SWITCH_ADD, "sw2");
		if (e && !r->bad_add++)
			r->first_add_err = -e;
	}
	return NULL;
}

TEST_F_TIMEOUT(sw, del_races_attach, 300)
{
	struct kvm_vm *vm = vm_create_barebones();
	static struct pvpass_info info[PVPASS_MAX_ATTACH];
	struct pvpass_list l = { .count = PVPASS_MAX_ATTACH, .entries = (u64)(unsigned long)info };
	struct race r = { .vm = vm };
	pthread_t ta, td;
	u32 i;
	int id;

	r.pv_a = pvpass_open();
	r.pv_d = pvpass_open();
	ASSERT_EQ(0, sw_add(self, r.pv_a, "sw2"));
	ASSERT_EQ(0, pthread_create(&td, NULL, deleter, &r));
	ASSERT_EQ(0, pthread_create(&ta, NULL, attacher, &r));
	pthread_join(ta, NULL);
	pthread_join(td, NULL);
	ksft_print_msg("%d ATTACH: %d attached, %d ENODEV, %d other; %d DEL: %d deleted, %d EBUSY; "
		       "last round %d us\n", RACE_ITER, r.attached, r.nodev, r.other, r.dels,
		       r.deleted, r.busy, r.round_us);

	EXPECT_EQ(0, r.other) TH_LOG("%d ATTACHes failed otherwise, first: %s", r.other,
				     strerror(r.first_err));
	EXPECT_GT(r.attached, 0);
	EXPECT_EQ(0, r.bad_backend) TH_LOG("attached, but LIST did not say sw2");
	EXPECT_EQ(0, r.del_not_busy) TH_LOG("SWITCH_DEL of sw2 with a device on it not EBUSY");
	EXPECT_EQ(0, r.ports_wrong) TH_LOG("sw2 with the device on it did not list 1 port");
	EXPECT_EQ(0, r.detach_failed);
	EXPECT_EQ(0, r.bad_del) TH_LOG("%d DELs neither succeeded nor got EBUSY, first: %s",
				       r.bad_del, strerror(r.first_del_err));
	EXPECT_EQ(0, r.bad_add) TH_LOG("%d re-ADDs failed, first: %s", r.bad_add,
				       strerror(r.first_add_err));
	EXPECT_GT(r.deleted, 0);

	/* At the end: every device is on a switch SWITCH_LIST has, and sw2
	 * (put back after every DEL) has no port left. */
	ASSERT_EQ(0, ioctl(r.pv_a, PVPASS_LIST, &l));
	for (i = 0; i < l.count && i < PVPASS_MAX_ATTACH; i++) {
		char n0[PVPASS_NAME_LEN + 1] = { 0 };

		if (info[i].flags & PVPASS_INFO_RELEASED)
			continue;
		memcpy(n0, info[i].backend, PVPASS_NAME_LEN);
		EXPECT_NE(NULL, sw_get(r.pv_a, n0))
			TH_LOG("device %u is on switch \"%s\", which SWITCH_LIST lacks", info[i].id, n0);
	}
	EXPECT_EQ(0, sw_ports(r.pv_a, "sw2")) TH_LOG("sw2 missing, or ports with nothing attached");
	/* sw2 still works after all that. */
	id = attach_to(r.pv_a, vm, WIN_GPA, 5, mac_a, "sw2");
	ASSERT_GT(id, 0) TH_LOG("ATTACH to sw2 after the race: %s", strerror(-id));
	EXPECT_EQ(1, sw_ports(r.pv_a, "sw2"));
	EXPECT_EQ(-EBUSY, sw_del(r.pv_d, "sw2"));
	EXPECT_EQ(0, detach(r.pv_a, id));
	EXPECT_EQ(0, sw_del(r.pv_d, "sw2"));
	EXPECT_EQ(-ENODEV, attach_to(r.pv_a, vm, WIN_GPA, 5, mac_a, "sw2"));
	kvm_vm_free(vm);
	close(r.pv_a);
	close(r.pv_d);
}

TEST_HARNESS_MAIN
