// SPDX-License-Identifier: GPL-2.0
/*
 * pvpass data path: guests that drive the virtqueues themselves (a minimal
 * virtio-mmio driver in guest code), frames across the in-kernel switch, and
 * hostile guests from the brief's attack list. Interrupts are not used: the
 * guest reads InterruptStatus, which is where the device moves waiting
 * frames into its receive buffers, and polls the used rings.
 *
 * Every queue notify is served synchronously inside the guest's MMIO exit,
 * so when the guest's notify instruction retires the device has already
 * walked the queue: the guest checks the used ring right after it.
 */
#include "pvpass_util.h"

#define QSZ		8
#define HDR		12
#define FRAME_LEN	60
#define BUF_LEN		2048
/* A port's backlog holds BACKLOG_FRAMES frames (src/device.rs). */
#define BACKLOG_FRAMES	256
#define SEND_MANY	300	/* more than a port's backlog */
#define STORM		20000

#define R_DRV_FEAT	0x020
#define R_DRV_FEAT_SEL	0x024
#define R_QUEUE_SEL	0x030
#define R_QUEUE_NUM	0x038
#define R_QUEUE_READY	0x044
#define R_QUEUE_NOTIFY	0x050
#define R_INT_STATUS	0x060
#define R_QUEUE_DESC	0x080
#define R_QUEUE_DRIVER	0x090
#define R_QUEUE_DEVICE	0x0a0

#define F_NEXT		1
#define F_WRITE		2
#define S_NEEDS_RESET	64

struct desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

struct ring {
	struct desc desc[QSZ];
	struct {
		u16 flags, idx, ring[QSZ], used_event;
	} avail;
	struct {
		u16 flags, idx;
		struct {
			u32 id, len;
		} ring[QSZ];
		u16 avail_event;
	} used __aligned(4);
} __aligned(4096);

enum mode {
	M_SEND,		/* transmit one frame to params.dst */
	M_SEND_MANY,	/* transmit SEND_MANY frames to params.dst */
	M_RECV,		/* post a receive buffer, wait, check the frame */
	M_BAD_HEAD,	/* head index >= queue size */
	M_LOOP,		/* descriptor chain that loops */
	M_BAD_ADDR,	/* buffer outside every memslot */
	M_AVAIL_JUMP,	/* avail index jumps by more than the queue size */
	M_ZERO_LEN,	/* zero-length descriptor */
	M_QUEUE_OUTSIDE, /* rings outside guest memory */
	M_NOTIFY_STORM,	/* STORM notifies with nothing new, on every queue */
};

/* What the host tells each guest; guest-physical addresses of its own rings. */
static struct params {
	u64 base;
	u64 ring_gpa[2];	/* 0: receive, 1: transmit */
	u64 buf_gpa[2];
	int mode;
	u8 me[6], dst[6];
} params;

static struct ring rings[2];
static u8 bufs[2][BUF_LEN] __aligned(4096);

static void wr64(u64 base, u64 off, u64 v)
{
	mmio_wr32(base, off, (u32)v);
	mmio_wr32(base, off + 4, (u32)(v >> 32));
}

static void setup_device(u64 base)
{
	int q;

	mmio_wr32(base, R_STATUS, 1 | 2);
	mmio_wr32(base, R_DRV_FEAT_SEL, 1);
	mmio_wr32(base, R_DRV_FEAT, 1);			/* VERSION_1 */
	mmio_wr32(base, R_DRV_FEAT_SEL, 0);
	mmio_wr32(base, R_DRV_FEAT, 1u << 5);		/* MAC */
	mmio_wr32(base, R_STATUS, 1 | 2 | 8);
	GUEST_ASSERT(mmio_rd32(base, R_STATUS) & 8);
	for (q = 0; q < 2; q++) {
		u64 r = params.ring_gpa[q];

		if (params.mode == M_QUEUE_OUTSIDE && q == 1)
			r = 0xe0000000ULL;	/* not RAM, not our window */
		mmio_wr32(base, R_QUEUE_SEL, q);
		mmio_wr32(base, R_QUEUE_NUM, QSZ);
		wr64(base, R_QUEUE_DESC, r);
		wr64(base, R_QUEUE_DRIVER, r + offsetof(struct ring, avail));
		wr64(base, R_QUEUE_DEVICE, r + offsetof(struct ring, used));
		mmio_wr32(base, R_QUEUE_READY, 1);
	}
	mmio_wr32(base, R_STATUS, 1 | 2 | 8 | 4);
}

/* Make head @head available on queue @q and notify. */
static void kick(u64 base, int q, u16 head)
{
	struct ring *r = &rings[q];

	r->avail.ring[r->avail.idx % QSZ] = head;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	WRITE_ONCE(r->avail.idx, r->avail.idx + 1);
	mmio_wr32(base, R_QUEUE_NOTIFY, q);
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

static void guest_main(void)
{
	u64 base = params.base;
	struct ring *tx = &rings[1], *rx = &rings[0];
	int i;

	setup_device(base);
	switch (params.mode) {
	case M_QUEUE_OUTSIDE:
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	case M_SEND:
		fill_frame(bufs[1]);
		tx->desc[0] = (struct desc){ params.buf_gpa[1], HDR + FRAME_LEN, 0, 0 };
		kick(base, 1, 0);
		GUEST_ASSERT_EQ(READ_ONCE(tx->used.idx), 1);
		GUEST_ASSERT_EQ(tx->used.ring[0].id, 0);
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	case M_SEND_MANY:
		fill_frame(bufs[1]);
		tx->desc[0] = (struct desc){ params.buf_gpa[1], HDR + FRAME_LEN, 0, 0 };
		for (i = 0; i < SEND_MANY; i++) {
			kick(base, 1, 0);
			GUEST_ASSERT_EQ(READ_ONCE(tx->used.idx), i + 1);
		}
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	case M_RECV:
		rx->desc[0] = (struct desc){ params.buf_gpa[0], BUF_LEN, F_WRITE, 0 };
		kick(base, 0, 0);
		GUEST_ASSERT_EQ(READ_ONCE(rx->used.idx), 0);
		GUEST_SYNC(0);	/* the host runs the sender now */
		/* As an interrupt handler would: this delivers what waits. */
		GUEST_ASSERT_EQ(mmio_rd32(base, R_INT_STATUS) & 1, 1);
		GUEST_ASSERT_EQ(READ_ONCE(rx->used.idx), 1);
		GUEST_ASSERT_EQ(rx->used.ring[0].len, HDR + FRAME_LEN);
		GUEST_ASSERT_EQ(bufs[0][10], 1);	/* num_buffers */
		for (i = 0; i < 6; i++)
			GUEST_ASSERT_EQ(bufs[0][HDR + i], params.me[i]);
		for (i = 14; i < FRAME_LEN; i++)
			GUEST_ASSERT_EQ(bufs[0][HDR + i], (u8)i);
		GUEST_SYNC(rx->used.ring[0].len);
		break;
	case M_BAD_HEAD:
		tx->desc[0] = (struct desc){ params.buf_gpa[1], 64, 0, 0 };
		kick(base, 1, QSZ + 3);
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	case M_LOOP:
		tx->desc[0] = (struct desc){ params.buf_gpa[1], 64, F_NEXT, 1 };
		tx->desc[1] = (struct desc){ params.buf_gpa[1], 64, F_NEXT, 0 };
		kick(base, 1, 0);
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	case M_BAD_ADDR:
		tx->desc[0] = (struct desc){ 0xfff00000000ULL, 64, 0, 0 };
		kick(base, 1, 0);
		/* The frame is dropped, the queue goes on. */
		GUEST_ASSERT_EQ(READ_ONCE(tx->used.idx), 1);
		fill_frame(bufs[1]);
		tx->desc[1] = (struct desc){ params.buf_gpa[1], HDR + FRAME_LEN, 0, 0 };
		kick(base, 1, 1);
		GUEST_ASSERT_EQ(READ_ONCE(tx->used.idx), 2);
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	case M_AVAIL_JUMP:
		tx->desc[0] = (struct desc){ params.buf_gpa[1], 64, 0, 0 };
		WRITE_ONCE(tx->avail.idx, QSZ + 5);
		mmio_wr32(base, R_QUEUE_NOTIFY, 1);
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	case M_NOTIFY_STORM:
		for (i = 0; i < STORM; i++)
			mmio_wr32(base, R_QUEUE_NOTIFY, i % 4);	/* incl. queues 2, 3 */
		/* The device still works afterwards. */
		fill_frame(bufs[1]);
		tx->desc[0] = (struct desc){ params.buf_gpa[1], HDR + FRAME_LEN, 0, 0 };
		kick(base, 1, 0);
		GUEST_ASSERT_EQ(READ_ONCE(tx->used.idx), 1);
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	case M_ZERO_LEN:
		tx->desc[0] = (struct desc){ params.buf_gpa[1], 0, 0, 0 };
		kick(base, 1, 0);
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	}
	GUEST_DONE();
}

struct guest {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	int id;
};

static struct guest start(int pv, int mode, const u8 *me, const u8 *dst)
{
	struct guest g;
	int i;

	g.vm = vm_create_with_one_vcpu(&g.vcpu, guest_main);
	virt_map(g.vm, WIN_GPA, WIN_GPA, 1);
	params = (struct params){ .base = WIN_GPA, .mode = mode };
	for (i = 0; i < 2; i++) {
		params.ring_gpa[i] = addr_gva2gpa(g.vm, (gva_t)&rings[i]);
		params.buf_gpa[i] = addr_gva2gpa(g.vm, (gva_t)bufs[i]);
	}
	memcpy(params.me, me, 6);
	memcpy(params.dst, dst, 6);
	sync_global_to_guest(g.vm, params);
	g.id = attach(pv, g.vm, WIN_GPA, 5, me);
	TEST_ASSERT(g.id > 0, "attach: %s", strerror(-g.id));
	return g;
}

/* Run to the guest's next GUEST_SYNC and return its value. */
static u64 sync_value(struct guest *g)
{
	struct ucall uc;

	TEST_ASSERT_EQ(run_to_ucall(g->vcpu, &uc), UCALL_SYNC);
	return uc.args[1];
}

static const u8 mac_c[6] = { 0x52, 0x54, 0x00, 0xcc, 0x00, 0x03 };

/* Two fresh guests, A and B, on the same switch: A's frame reaches B intact. */
static void neighbours_exchange_a_frame(struct __test_metadata *_metadata, int pv)
{
	struct guest b = start(pv, M_RECV, mac_b, mac_a);
	struct guest a = start(pv, M_SEND, mac_a, mac_b);

	ASSERT_EQ(0, sync_value(&b));				/* B posted a buffer */
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);		/* A sent */
	EXPECT_EQ(HDR + FRAME_LEN, sync_value(&b));		/* B got it, intact */
	kvm_vm_free(a.vm);
	kvm_vm_free(b.vm);
}

/* A frame from A reaches B through the switch, each on its own vCPU thread. */
TEST(frame_between_two_vms)
{
	int pv = pvpass_open();
	struct guest b = start(pv, M_RECV, mac_b, mac_a);
	struct guest a = start(pv, M_SEND, mac_a, mac_b);
	struct pvpass_stats sa, sb;

	ASSERT_EQ(0, sync_value(&b));			/* B posted a buffer */
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);	/* A sent */
	EXPECT_EQ(HDR + FRAME_LEN, sync_value(&b));	/* B got it, intact */
	sa = stats(pv, a.id);
	sb = stats(pv, b.id);
	EXPECT_EQ(1, sa.tx_frames);
	EXPECT_EQ(FRAME_LEN, sa.tx_bytes);
	EXPECT_EQ(1, sb.rx_frames);
	EXPECT_EQ(FRAME_LEN, sb.rx_bytes);
	EXPECT_EQ(0, sa.drop_tx_bad_chain + sa.drop_tx_bad_buffer + sb.drop_rx_no_buffer);
	kvm_vm_free(a.vm);
	kvm_vm_free(b.vm);
	close(pv);
}

/* A port that posts no receive buffers drops its own traffic only. */
TEST(port_without_buffers_drops_its_own_traffic)
{
	int pv = pvpass_open();
	/* C never runs, so it never posts a receive buffer. */
	struct guest c = start(pv, M_SEND, mac_c, mac_a);
	struct guest a = start(pv, M_SEND_MANY, mac_a, mac_c);
	struct pvpass_stats s;

	/* A is never held up: every frame completes at once. */
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);
	EXPECT_EQ(SEND_MANY, stats(pv, a.id).tx_frames);
	s = stats(pv, c.id);
	EXPECT_EQ(SEND_MANY - BACKLOG_FRAMES, s.drop_rx_no_buffer);
	EXPECT_EQ(0, s.rx_frames);
	/* And the other ports still exchange frames. */
	neighbours_exchange_a_frame(_metadata, pv);
	kvm_vm_free(a.vm);
	kvm_vm_free(c.vm);
	close(pv);
}

/*
 * Hostile transmit queues: the queue is marked broken (DEVICE_NEEDS_RESET),
 * the reason counted, the host survives, and a neighbour pair keeps passing
 * frames afterwards.
 */
static void hostile(struct __test_metadata *_metadata, int mode, bool breaks)
{
	int pv = pvpass_open();
	struct guest bad = start(pv, mode, mac_c, mac_b);
	struct pvpass_stats s;
	u64 status = sync_value(&bad);

	s = stats(pv, bad.id);
	if (breaks) {
		EXPECT_NE(0, status & S_NEEDS_RESET);
		EXPECT_EQ(1, s.drop_tx_bad_chain);
		EXPECT_EQ(0, s.tx_frames);
	} else {
		EXPECT_EQ(0, status & S_NEEDS_RESET);
		EXPECT_EQ(1, s.drop_tx_bad_buffer);
		EXPECT_EQ(1, s.tx_frames);
	}
	neighbours_exchange_a_frame(_metadata, pv);
	kvm_vm_free(bad.vm);
	close(pv);
}

TEST(head_index_out_of_range) { hostile(_metadata, M_BAD_HEAD, true); }
TEST(descriptor_loop) { hostile(_metadata, M_LOOP, true); }
TEST(avail_index_jump) { hostile(_metadata, M_AVAIL_JUMP, true); }
TEST(zero_length_descriptor) { hostile(_metadata, M_ZERO_LEN, true); }
TEST(buffer_outside_guest_memory) { hostile(_metadata, M_BAD_ADDR, false); }

/* A notify storm is absorbed on the guest's own vCPU thread; nothing breaks. */
TEST(notify_storm)
{
	int pv = pvpass_open();
	struct guest g = start(pv, M_NOTIFY_STORM, mac_c, mac_b);
	struct pvpass_stats s;

	EXPECT_EQ(0, sync_value(&g) & S_NEEDS_RESET);
	s = stats(pv, g.id);
	/* Notifies of queues 2 and 3 (which do not exist) are not counted. */
	EXPECT_EQ(STORM / 2 + 1, s.notifies);
	EXPECT_EQ(1, s.tx_frames);
	neighbours_exchange_a_frame(_metadata, pv);
	kvm_vm_free(g.vm);
	close(pv);
}

TEST(rings_outside_guest_memory)
{
	int pv = pvpass_open();
	struct guest g = start(pv, M_QUEUE_OUTSIDE, mac_a, mac_b);

	EXPECT_NE(0, sync_value(&g) & S_NEEDS_RESET);
	kvm_vm_free(g.vm);
	close(pv);
}

TEST_HARNESS_MAIN
