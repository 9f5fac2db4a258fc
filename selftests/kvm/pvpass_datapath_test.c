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

#include <sys/eventfd.h>
#include <sys/mman.h>

#define QSZ		8
#define HDR		12
#define FRAME_LEN	60
#define BUF_LEN		2048
/* A port's backlog holds BACKLOG_FRAMES frames (src/device.rs). */
#define BACKLOG_FRAMES	256
#define SEND_MANY	300	/* more than a port's backlog */
#define STORM		20000

#define S_NEEDS_RESET	64

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
	M_SEND_HDR,	/* transmit params.frame_len bytes with header params.hdr */
	M_RECV_BUFS,	/* post params.rx_bufs buffers, then params.rx_more */
	M_RECV_AT,	/* post a buffer at params.slot_gpa (never touched by the guest) */
	M_TX_WRITABLE,	/* transmit chain with a device-writable buffer */
	M_TX_SCATTER,	/* transmit chain of more pieces than a buffer may have */
	M_RECV_SCATTER,	/* receive chain of more pieces than a buffer may have */
	M_ACK_RACE,	/* a frame arrives between InterruptStatus read and ACK */
	M_RESAMPLE,	/* post a buffer; later read InterruptStatus and ACK */
	M_MERGE,	/* post three buffers; take frames only when told */
	M_SEND_PAIR,	/* transmit two frames to params.dst, a notify each */
	M_SEND_TWO,	/* transmit one frame to params.dst, then one to params.dst2 */
	M_RX_BAD,	/* post a malformed receive queue (params.rx_attack) */
	M_RX_STOP,	/* receive one frame, then QueueReady=0 on the receive queue */
	M_QNUM,		/* QueueReady=1 with each QueueNum of qnums[] */
	M_NO_FEATURES_OK, /* DRIVER_OK without (accepted) FEATURES_OK, then transmit */
	M_SEND_SRCS,	/* transmit params.nsrcs frames, sources params.srcs[] */
	M_RECV_TINY,	/* 256-entry receive queue of chains in 1-byte pieces */
	M_SEND_SEQ,	/* transmit params.nframes frames, numbered */
	M_RECV_PAGES,	/* 256 receive buffers, one a page, then InterruptStatus reads */
	M_SEND_QUIET,	/* params.nframes frames, notifying only when avail_event asks */
	M_SEND_HANDLER,	/* params.nframes pairs of frames, the second reaped in the handler */
	M_SEND_BATCH,	/* params.nframes (<= QSZ) frames made available at once, one notify */
	M_COAL,		/* control queue commands, then QSZ receive buffers, twice */
	M_CTRL_BAD,	/* a coalescing command, then a control chain without an ack byte */
};

/* M_RX_BAD: what is wrong with the receive queue. */
enum rx_attack {
	RA_BAD_HEAD,	/* head index >= queue size */
	RA_LOOP,	/* descriptor chain that loops */
	RA_AVAIL_JUMP,	/* avail index jumps by more than the queue size */
	RA_ZERO_LEN,	/* zero-length descriptor */
	RA_OUTSIDE,	/* buffer outside every memslot */
	RA_READONLY,	/* buffer not device-writable */
	RA_TOO_LONG,	/* chain longer than the queue (all of it, then again) */
};

/* M_RECV_TINY: a receive queue of QueueNumMax entries. */
#define BIGQ		256
#define TINY_CHAINS	8
#define TINY_PIECES	32	/* per chain: 31 of one byte, then TINY_LAST */
#define TINY_LAST	220
#define TINY_PAGES	(TINY_CHAINS * TINY_PIECES)	/* one page per piece */

/* M_RECV_PAGES: BIGQ buffers of PAGE_BUF bytes, buffer i at the start of
 * page i of the slot at params.slot_gpa; at most PAGE_READS reads. */
#define PAGE_BUF	2048
#define PAGE_READS	32

/* M_QNUM: refused sizes (above QueueNumMax, zero, not a power of two), then a good one. */
static const u32 qnums[] = { 512, 0, 12, QSZ };
#define R_QUEUE_NUM_MAX	0x034

/* Driver feature bits (low word) beyond MAC. */
#define NF_CSUM		(1u << 0)
#define NF_GUEST_CSUM	(1u << 1)
#define NF_GUEST_TSO4	(1u << 7)
#define NF_HOST_TSO4	(1u << 11)
#define NF_MRG_RXBUF	(1u << 15)
#define NF_CTRL_VQ	(1u << 17)
#define NF_EVENT_IDX	(1u << 29)
/* High word: VIRTIO_NET_F_NOTF_COAL is feature bit 53. */
#define NF_HI_NOTF_COAL	(1u << (53 - 32))
/* The control queue (virtio-net with one queue pair). */
#define CTRLQ		2
#define CLASS_NOTF_COAL	6
#define COAL_TX_SET	0
#define COAL_RX_SET	1
/* M_SEND_QUIET: pause loops a frame may wait for the device (far above one poll period). */
#define QUIET_SPINS	400000000ULL
#define BIG		16384

/* What the host tells each guest; guest-physical addresses of its own rings. */
static struct params {
	u64 base;
	u64 ring_gpa[2];	/* 0: receive, 1: transmit */
	u64 buf_gpa[2];
	u64 big_gpa[2];
	int mode;
	u8 me[6], dst[6];
	u32 feat;		/* driver features, low word (MAC always) */
	u8 hdr[HDR];		/* M_SEND_HDR: the virtio_net_hdr sent */
	u32 frame_len;		/* M_SEND_HDR: Ethernet frame length */
	u16 ethertype;		/* M_SEND_HDR */
	u32 rx_bufs, rx_more, rx_buf_len;	/* M_RECV_BUFS */
	u8 forged[6];		/* if set: source MAC of M_SEND's frame */
	u64 slot_gpa;		/* M_RECV_AT */
	u32 split;		/* M_SEND_HDR: 3 descriptors, across pages */
	u8 dst2[6];		/* M_SEND_TWO: destination of the second frame */
	u32 rx_attack;		/* M_RX_BAD */
	u32 nsrcs;		/* M_SEND_SRCS */
	u8 srcs[4][6];
	u64 bigq_gpa;		/* M_RECV_TINY: guest-physical address of bigq */
	u32 nframes;		/* M_SEND_SEQ */
	u32 feat_hi;		/* driver features, high word (VERSION_1 always) */
	u64 ctrl_gpa;		/* if set: the control queue's ring (queue 2) */
	u64 cbuf_gpa;		/* M_COAL: the command buffer */
	u32 coal_max, coal_us;	/* M_COAL: RX_SET's rx_max_packets, rx_usecs */
} params;

static struct ring rings[2];
static struct ring ctrl_ring;
/* A control command: class, cmd at 0; data at 8; ack at 16. */
static u8 cbuf[64] __aligned(64);
static u8 bufs[2][BUF_LEN] __aligned(4096);
static u8 big[2][BIG] __aligned(4096);	/* 0: receive area, 1: transmit */

static struct bigring {
	struct desc desc[BIGQ];
	struct {
		u16 flags, idx, ring[BIGQ], used_event;
	} avail;
	struct {
		u16 flags, idx;
		struct {
			u32 id, len;
		} ring[BIGQ];
		u16 avail_event;
	} used __aligned(4);
} bigq __aligned(4096);

static void kick(u64 base, int q, u16 head);

/* Driver features: high word VERSION_1 (if @v1) + params.feat_hi, low word MAC + params.feat. */
static void write_features(u64 base, bool v1)
{
	mmio_wr32(base, R_DRV_FEAT_SEL, 1);
	mmio_wr32(base, R_DRV_FEAT, (v1 ? 1 : 0) | params.feat_hi);	/* VERSION_1 + */
	mmio_wr32(base, R_DRV_FEAT_SEL, 0);
	mmio_wr32(base, R_DRV_FEAT, (1u << 5) | params.feat);	/* MAC + */
}

static void setup_queues(u64 base)
{
	int q;

	for (q = 0; q < 2; q++) {
		u64 r = params.ring_gpa[q];

		if (params.mode == M_QUEUE_OUTSIDE && q == 1)
			r = 0xe0000000ULL;	/* not RAM, not our window */
		mmio_wr32(base, R_QUEUE_SEL, q);
		if (q == 0 && params.bigq_gpa) {
			r = params.bigq_gpa;
			mmio_wr32(base, R_QUEUE_NUM, BIGQ);
			wr64(base, R_QUEUE_DESC, r);
			wr64(base, R_QUEUE_DRIVER, r + offsetof(struct bigring, avail));
			wr64(base, R_QUEUE_DEVICE, r + offsetof(struct bigring, used));
		} else {
			mmio_wr32(base, R_QUEUE_NUM, QSZ);
			wr64(base, R_QUEUE_DESC, r);
			wr64(base, R_QUEUE_DRIVER, r + offsetof(struct ring, avail));
			wr64(base, R_QUEUE_DEVICE, r + offsetof(struct ring, used));
		}
		mmio_wr32(base, R_QUEUE_READY, 1);
	}
	if (params.ctrl_gpa) {
		u64 r = params.ctrl_gpa;

		mmio_wr32(base, R_QUEUE_SEL, CTRLQ);
		GUEST_ASSERT_EQ(mmio_rd32(base, R_QUEUE_NUM_MAX), 256);
		mmio_wr32(base, R_QUEUE_NUM, QSZ);
		wr64(base, R_QUEUE_DESC, r);
		wr64(base, R_QUEUE_DRIVER, r + offsetof(struct ring, avail));
		wr64(base, R_QUEUE_DEVICE, r + offsetof(struct ring, used));
		mmio_wr32(base, R_QUEUE_READY, 1);
		GUEST_ASSERT_EQ(mmio_rd32(base, R_QUEUE_READY), 1);
	}
}

/*
 * One control command as Linux's virtnet_send_command lays it out (header,
 * data, ack: three descriptors), notified; the device answers inside the
 * notify. Returns the ack.
 */
static u8 ctrl_cmd(u64 base, u8 class, u8 cmd, u32 a, u32 b)
{
	struct ring *c = &ctrl_ring;
	u64 g = params.cbuf_gpa;
	u16 idx = c->avail.idx;

	cbuf[0] = class;
	cbuf[1] = cmd;
	memcpy(&cbuf[8], &a, 4);
	memcpy(&cbuf[12], &b, 4);
	cbuf[16] = 0xff;
	c->desc[0] = (struct desc){ g, 2, F_NEXT, 1 };
	c->desc[1] = (struct desc){ g + 8, 8, F_NEXT, 2 };
	c->desc[2] = (struct desc){ g + 16, 1, F_WRITE, 0 };
	c->avail.ring[idx % QSZ] = 0;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	WRITE_ONCE(c->avail.idx, idx + 1);
	mmio_wr32(base, R_QUEUE_NOTIFY, CTRLQ);
	GUEST_ASSERT_EQ(READ_ONCE(c->used.idx), (u16)(idx + 1));
	GUEST_ASSERT_EQ(c->used.ring[idx % QSZ].id, 0);
	GUEST_ASSERT_EQ(c->used.ring[idx % QSZ].len, 1);
	return READ_ONCE(cbuf[16]);
}

/* M_COAL: post QSZ receive buffers of 1024 bytes (one notify each). */
static void post_rx_all(u64 base)
{
	int i;

	for (i = 0; i < QSZ; i++) {
		rings[0].desc[i] = (struct desc){ params.big_gpa[0] + i * 1024, 1024, F_WRITE, 0 };
		kick(base, 0, i);
	}
}

static void setup_device(u64 base)
{
	mmio_wr32(base, R_STATUS, 1 | 2);
	write_features(base, true);
	mmio_wr32(base, R_STATUS, 1 | 2 | 8);
	GUEST_ASSERT(mmio_rd32(base, R_STATUS) & 8);
	setup_queues(base);
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

static void fill_frame_from(u8 *f, const u8 *src)
{
	int i;

	memset(f, 0, HDR);
	f += HDR;
	for (i = 0; i < 6; i++) {
		f[i] = params.dst[i];
		f[6 + i] = src[i];
	}
	f[12] = 0x88;
	f[13] = 0xb5;		/* local experimental ethertype */
	for (i = 14; i < FRAME_LEN; i++)
		f[i] = (u8)i;
}

static void fill_frame(u8 *f)
{
	fill_frame_from(f, params.forged[0] ? params.forged : params.me);
}

/* Transmit one fill_frame_from() frame; its chain is the @n-th (from 0). */
static void send_one(u64 base, struct ring *tx, const u8 *src, int n)
{
	u16 head = n % QSZ;

	fill_frame_from(bufs[1], src);
	tx->desc[head] = (struct desc){ params.buf_gpa[1], HDR + FRAME_LEN, 0, 0 };
	kick(base, 1, head);
	GUEST_ASSERT_EQ(READ_ONCE(tx->used.idx), n + 1);
}

/* M_RX_BAD: make the malformed receive queue params.rx_attack available. */
static void post_bad_rx(u64 base, struct ring *rx)
{
	u64 buf = params.buf_gpa[0];
	int i;

	switch (params.rx_attack) {
	case RA_BAD_HEAD:
		rx->desc[0] = (struct desc){ buf, BUF_LEN, F_WRITE, 0 };
		kick(base, 0, QSZ + 3);
		break;
	case RA_LOOP:
		rx->desc[0] = (struct desc){ buf, 1024, F_WRITE | F_NEXT, 1 };
		rx->desc[1] = (struct desc){ buf + 1024, 1024, F_WRITE | F_NEXT, 0 };
		kick(base, 0, 0);
		break;
	case RA_AVAIL_JUMP:
		rx->desc[0] = (struct desc){ buf, BUF_LEN, F_WRITE, 0 };
		WRITE_ONCE(rx->avail.idx, QSZ + 5);
		mmio_wr32(base, R_QUEUE_NOTIFY, 0);
		break;
	case RA_ZERO_LEN:
		rx->desc[0] = (struct desc){ buf, 0, F_WRITE, 0 };
		kick(base, 0, 0);
		break;
	case RA_OUTSIDE:
		rx->desc[0] = (struct desc){ 0xfff00000000ULL, BUF_LEN, F_WRITE, 0 };
		kick(base, 0, 0);
		break;
	case RA_READONLY:
		rx->desc[0] = (struct desc){ buf, BUF_LEN, 0, 0 };
		kick(base, 0, 0);
		break;
	case RA_TOO_LONG:
		/* 0 -> 1 -> ... -> QSZ-1 -> 0 -> ...: no chain ends. */
		for (i = 0; i < QSZ; i++)
			rx->desc[i] = (struct desc){ buf + i * (BUF_LEN / QSZ), BUF_LEN / QSZ,
						     F_WRITE | F_NEXT, (i + 1) % QSZ };
		kick(base, 0, 0);
		break;
	}
}

/*
 * After a refused first transmit chain (head 0): the frame was dropped, the
 * chain completed, and the queue goes on: a good frame completes too.
 */
static void then_good_frame(u64 base, struct ring *tx)
{
	GUEST_ASSERT_EQ(READ_ONCE(tx->used.idx), 1);
	fill_frame(bufs[1]);
	tx->desc[1] = (struct desc){ params.buf_gpa[1], HDR + FRAME_LEN, 0, 0 };
	kick(base, 1, 1);
	GUEST_ASSERT_EQ(READ_ONCE(tx->used.idx), 2);
	GUEST_SYNC(mmio_rd32(base, R_STATUS));
}

/*
 * Frame @i of a stream into transmit descriptor i % QSZ, made available
 * without a notify (fences as virtio_net's: the ring entry before the index,
 * the index before the guest reads what the device asked for). Returns the
 * avail index before it.
 */
static u16 add_tx_frame(struct ring *tx, int i)
{
	u16 head = i % QSZ, old = tx->avail.idx;

	tx->desc[head] = (struct desc){ params.buf_gpa[1], HDR + FRAME_LEN, 0, 0 };
	tx->avail.ring[old % QSZ] = head;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	WRITE_ONCE(tx->avail.idx, old + 1);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return old;
}

static void guest_main(void)
{
	u64 base = params.base;
	struct ring *tx = &rings[1], *rx = &rings[0];
	int i;

	if (params.mode != M_QNUM && params.mode != M_NO_FEATURES_OK)
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
		then_good_frame(base, tx);
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
	case M_SEND_HDR: {
		u8 *f = params.split ? big[1] + 4000 : big[1];
		u64 gpa = params.big_gpa[1] + (f - big[1]);

		memcpy(f, params.hdr, HDR);
		for (i = 0; i < 6; i++) {
			f[HDR + i] = params.dst[i];
			f[HDR + 6 + i] = params.me[i];
		}
		f[HDR + 12] = params.ethertype >> 8;
		f[HDR + 13] = params.ethertype & 0xff;
		for (i = 14; i < (int)params.frame_len; i++)
			f[HDR + i] = (u8)(i * 7);
		if (params.split) {
			/* Header, 100 bytes, the rest: over page boundaries. */
			tx->desc[0] = (struct desc){ gpa, HDR, F_NEXT, 1 };
			tx->desc[1] = (struct desc){ gpa + HDR, 100, F_NEXT, 2 };
			tx->desc[2] = (struct desc){ gpa + HDR + 100, params.frame_len - 100, 0, 0 };
		} else {
			tx->desc[0] = (struct desc){ gpa, HDR + params.frame_len, 0, 0 };
		}
		kick(base, 1, 0);
		GUEST_ASSERT_EQ(READ_ONCE(tx->used.idx), 1);
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	}
	case M_RECV_BUFS:
		for (i = 0; i < (int)(params.rx_bufs + params.rx_more); i++)
			rx->desc[i] = (struct desc){ params.big_gpa[0] + i * params.rx_buf_len,
						     params.rx_buf_len, F_WRITE, 0 };
		for (i = 0; i < (int)params.rx_bufs; i++)
			kick(base, 0, i);
		GUEST_SYNC(0);	/* the host runs the sender now */
		mmio_rd32(base, R_INT_STATUS);
		GUEST_SYNC(READ_ONCE(rx->used.idx));
		for (; i < (int)(params.rx_bufs + params.rx_more); i++)
			kick(base, 0, i);
		GUEST_SYNC(READ_ONCE(rx->used.idx));
		break;
	case M_ACK_RACE:
		for (i = 0; i < 2; i++)
			rx->desc[i] = (struct desc){ params.big_gpa[0] + i * 1024, 1024, F_WRITE, 0 };
		kick(base, 0, 0);
		kick(base, 0, 1);
		GUEST_SYNC(0);		/* the host sends frame 1 */
		/* The interrupt handler: read, (frame 2 arrives), acknowledge. */
		GUEST_SYNC(mmio_rd32(base, R_INT_STATUS) & 1);
		mmio_wr32(base, R_INT_ACK, 1);
		/* Frame 2's interrupt must still be pending. */
		GUEST_SYNC(mmio_rd32(base, R_INT_STATUS) & 1);
		GUEST_SYNC(READ_ONCE(rx->used.idx));
		break;
	case M_MERGE:
		for (i = 0; i < 3; i++) {
			rx->desc[i] = (struct desc){ params.big_gpa[0] + i * 1024, 1024,
						     F_WRITE, 0 };
			kick(base, 0, i);
		}
		GUEST_SYNC(0);		/* the host sends frames 1 and 2 */
		/* The handler of their interrupt: read, acknowledge, the ring. */
		GUEST_SYNC(mmio_rd32(base, R_INT_STATUS) & 1);
		mmio_wr32(base, R_INT_ACK, 1);
		GUEST_SYNC(READ_ONCE(rx->used.idx));	/* the host sends frame 3 */
		GUEST_SYNC(mmio_rd32(base, R_INT_STATUS) & 1);
		mmio_wr32(base, R_INT_ACK, 1);
		GUEST_SYNC(READ_ONCE(rx->used.idx));
		break;
	case M_RESAMPLE:
		rx->desc[0] = (struct desc){ params.big_gpa[0], 1024, F_WRITE, 0 };
		kick(base, 0, 0);
		GUEST_SYNC(0);		/* the host sends a frame, EOIs */
		GUEST_SYNC(mmio_rd32(base, R_INT_STATUS) & 1);
		mmio_wr32(base, R_INT_ACK, 1);
		GUEST_SYNC(mmio_rd32(base, R_INT_STATUS));
		break;
	case M_RECV_AT:
		rx->desc[0] = (struct desc){ params.slot_gpa, BUF_LEN, F_WRITE, 0 };
		kick(base, 0, 0);
		GUEST_SYNC(0);	/* the host changes the memory map, runs a sender */
		mmio_rd32(base, R_INT_STATUS);
		GUEST_SYNC(READ_ONCE(rx->used.idx));
		GUEST_SYNC(rx->used.ring[0].len);
		break;
	case M_TX_SCATTER:
	case M_RECV_SCATTER: {
		/* QSZ descriptors of 32000 bytes over both big arrays, each on
		 * 8 or 9 pages: more than the 48 page pieces one buffer may
		 * have (the pin batch is bounded), far less than guest RAM. */
		struct ring *q = params.mode == M_TX_SCATTER ? tx : rx;
		u16 w = params.mode == M_TX_SCATTER ? 0 : F_WRITE;

		for (i = 0; i < QSZ; i++)
			q->desc[i] = (struct desc){ params.big_gpa[0] + 1, 32000,
						    w | (i < QSZ - 1 ? F_NEXT : 0), i + 1 };
		if (params.mode == M_RECV_SCATTER) {
			kick(base, 0, 0);
			GUEST_SYNC(0);	/* the host runs a sender now */
			mmio_rd32(base, R_INT_STATUS);
			GUEST_SYNC(READ_ONCE(rx->used.idx));
			GUEST_SYNC(rx->used.ring[0].len);
			break;
		}
		kick(base, 1, 0);
		then_good_frame(base, tx);
		break;
	}
	case M_TX_WRITABLE:
		fill_frame(bufs[1]);
		tx->desc[0] = (struct desc){ params.buf_gpa[1], HDR + FRAME_LEN, F_WRITE, 0 };
		kick(base, 1, 0);
		then_good_frame(base, tx);
		break;
	case M_ZERO_LEN:
		tx->desc[0] = (struct desc){ params.buf_gpa[1], 0, 0, 0 };
		kick(base, 1, 0);
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	case M_SEND_PAIR:
		send_one(base, tx, params.me, 0);
		send_one(base, tx, params.me, 1);
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	case M_SEND_TWO:
		send_one(base, tx, params.me, 0);
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		memcpy(params.dst, params.dst2, 6);
		send_one(base, tx, params.me, 1);
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	case M_RX_BAD:
		post_bad_rx(base, rx);
		GUEST_SYNC(0);	/* the host runs the sender now */
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		mmio_rd32(base, R_INT_STATUS);
		GUEST_SYNC(READ_ONCE(rx->used.idx));
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	case M_RX_STOP:
		for (i = 0; i < 2; i++)
			rx->desc[i] = (struct desc){ params.big_gpa[0] + i * 1024, 1024, F_WRITE, 0 };
		kick(base, 0, 0);
		kick(base, 0, 1);
		GUEST_SYNC(0);	/* the host sends frame 1 */
		mmio_rd32(base, R_INT_STATUS);
		GUEST_SYNC(READ_ONCE(rx->used.idx));
		mmio_wr32(base, R_QUEUE_SEL, 0);
		mmio_wr32(base, R_QUEUE_READY, 0);
		GUEST_SYNC(mmio_rd32(base, R_QUEUE_READY));	/* the host sends frame 2 */
		mmio_rd32(base, R_INT_STATUS);
		mmio_wr32(base, R_QUEUE_NOTIFY, 0);
		GUEST_SYNC(READ_ONCE(rx->used.idx));
		break;
	case M_QNUM:
		for (i = 0; i < (int)ARRAY_SIZE(qnums); i++) {
			u32 v;

			mmio_wr32(base, R_STATUS, 0);
			mmio_wr32(base, R_STATUS, 1 | 2);
			write_features(base, true);
			mmio_wr32(base, R_STATUS, 1 | 2 | 8);
			GUEST_ASSERT(mmio_rd32(base, R_STATUS) & 8);
			mmio_wr32(base, R_QUEUE_SEL, 0);
			GUEST_ASSERT_EQ(mmio_rd32(base, R_QUEUE_NUM_MAX), 256);
			mmio_wr32(base, R_QUEUE_NUM, qnums[i]);
			wr64(base, R_QUEUE_DESC, params.ring_gpa[0]);
			wr64(base, R_QUEUE_DRIVER, params.ring_gpa[0] + offsetof(struct ring, avail));
			wr64(base, R_QUEUE_DEVICE, params.ring_gpa[0] + offsetof(struct ring, used));
			mmio_wr32(base, R_QUEUE_READY, 1);
			v = mmio_rd32(base, R_QUEUE_READY) << 16;
			GUEST_SYNC(v | mmio_rd32(base, R_STATUS));
		}
		break;
	case M_NO_FEATURES_OK:
		/* 0: FEATURES_OK never written; 1: refused (no VERSION_1). */
		for (i = 0; i < 2; i++) {
			memset(rings, 0, sizeof(rings));
			mmio_wr32(base, R_STATUS, 0);
			mmio_wr32(base, R_STATUS, 1 | 2);
			write_features(base, i == 0);
			if (i == 1) {
				mmio_wr32(base, R_STATUS, 1 | 2 | 8);
				GUEST_ASSERT_EQ(mmio_rd32(base, R_STATUS) & 8, 0);
			}
			setup_queues(base);
			mmio_wr32(base, R_STATUS, i == 0 ? 1 | 2 | 4 : 1 | 2 | 8 | 4);
			GUEST_SYNC(mmio_rd32(base, R_STATUS));
			fill_frame(bufs[1]);
			tx->desc[0] = (struct desc){ params.buf_gpa[1], HDR + FRAME_LEN, 0, 0 };
			kick(base, 1, 0);
			GUEST_SYNC(READ_ONCE(tx->used.idx));
		}
		break;
	case M_SEND_SRCS:
		for (i = 0; i < (int)params.nsrcs; i++)
			send_one(base, tx, params.srcs[i], i);
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	case M_RECV_TINY: {
		/* TINY_CHAINS chains of TINY_PIECES descriptors, every one on a
		 * page of its own in the slot at params.slot_gpa: 31 of one
		 * byte, then one of TINY_LAST bytes. */
		int c, j;

		for (c = 0; c < TINY_CHAINS; c++) {
			for (j = 0; j < TINY_PIECES; j++) {
				int d = c * TINY_PIECES + j;
				bool last = j == TINY_PIECES - 1;

				bigq.desc[d] = (struct desc){
					params.slot_gpa + (u64)d * 4096 + (last ? 0 : (j * 61) % 4000),
					last ? TINY_LAST : 1,
					F_WRITE | (last ? 0 : F_NEXT), d + 1 };
			}
			bigq.avail.ring[c] = c * TINY_PIECES;
		}
		__atomic_thread_fence(__ATOMIC_RELEASE);
		WRITE_ONCE(bigq.avail.idx, TINY_CHAINS);
		mmio_wr32(base, R_QUEUE_NOTIFY, 0);
		GUEST_SYNC(0);	/* the host runs the sender now */
		mmio_rd32(base, R_INT_STATUS);
		GUEST_SYNC(READ_ONCE(bigq.used.idx));
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	}
	case M_SEND_SEQ:
		/* Frame i carries i in its first two payload bytes. */
		for (i = 0; i < (int)params.nframes; i++) {
			u16 head = i % QSZ;

			fill_frame_from(bufs[1], params.me);
			bufs[1][HDR + 14] = (u8)i;
			bufs[1][HDR + 15] = (u8)(i >> 8);
			tx->desc[head] = (struct desc){ params.buf_gpa[1], HDR + FRAME_LEN, 0, 0 };
			kick(base, 1, head);
			GUEST_ASSERT_EQ(READ_ONCE(tx->used.idx), (u16)(i + 1));
		}
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	case M_SEND_QUIET: {
		/*
		 * As virtio_net with EVENT_IDX: notify only when the device's
		 * avail_event says so, and wait (running, no exit) for each
		 * frame to complete before the next. GUEST_SYNC: the notifies.
		 */
		u32 kicks = 0;

		fill_frame(bufs[1]);
		for (i = 0; i < (int)params.nframes; i++) {
			u16 old = add_tx_frame(tx, i);
			u64 spins = 0;

			if ((u16)(old + 1 - READ_ONCE(tx->used.avail_event) - 1) < 1) {
				mmio_wr32(base, R_QUEUE_NOTIFY, 1);
				kicks++;
			}
			while (READ_ONCE(tx->used.idx) != (u16)(i + 1)) {
				GUEST_ASSERT(++spins < QUIET_SPINS);
				asm volatile("pause");
			}
		}
		GUEST_SYNC(kicks);
		break;
	}
	case M_SEND_HANDLER: {
		/*
		 * No EVENT_IDX: notify unless the device set NO_NOTIFY. Each
		 * round adds frame A and waits for it, then adds frame B; if
		 * the device asks for no notify (it owes a poll), the guest
		 * does what virtio_mmio's interrupt handler does first: reads
		 * InterruptStatus, which is where a poll owed runs. While
		 * waiting it reads InterruptStatus now and then too (a poll
		 * owed that had to raise an interrupt, from outside the
		 * guest, is served there). GUEST_SYNC: the rounds in which B
		 * was found used right after that read.
		 */
		u32 in_read = 0;

		fill_frame(bufs[1]);
		for (i = 0; i < 2 * (int)params.nframes; i++) {
			u64 spins = 0;

			add_tx_frame(tx, i);
			if (!(READ_ONCE(tx->used.flags) & 1)) {
				mmio_wr32(base, R_QUEUE_NOTIFY, 1);
			} else if (i % 2 && READ_ONCE(tx->used.idx) != (u16)(i + 1)) {
				mmio_rd32(base, R_INT_STATUS);
				in_read += READ_ONCE(tx->used.idx) == (u16)(i + 1);
			}
			while (READ_ONCE(tx->used.idx) != (u16)(i + 1)) {
				GUEST_ASSERT(++spins < QUIET_SPINS);
				if (spins % 100000 == 0)
					mmio_rd32(base, R_INT_STATUS);
				asm volatile("pause");
			}
		}
		GUEST_SYNC(in_read);
		break;
	}
	case M_SEND_BATCH:
		fill_frame(bufs[1]);
		for (i = 0; i < (int)params.nframes; i++) {
			tx->desc[i] = (struct desc){ params.buf_gpa[1], HDR + FRAME_LEN, 0, 0 };
			tx->avail.ring[i] = i;
		}
		__atomic_thread_fence(__ATOMIC_RELEASE);
		WRITE_ONCE(tx->avail.idx, params.nframes);
		mmio_wr32(base, R_QUEUE_NOTIFY, 1);
		GUEST_ASSERT_EQ(READ_ONCE(tx->used.idx), params.nframes);
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	case M_COAL: {
		u32 isr;

		/* RX_SET, a TX_SET of no coalescing, then an unknown class. */
		GUEST_SYNC(ctrl_cmd(base, CLASS_NOTF_COAL, COAL_RX_SET,
				    params.coal_max, params.coal_us));
		GUEST_SYNC(ctrl_cmd(base, CLASS_NOTF_COAL, COAL_TX_SET, 1, 0));
		GUEST_SYNC(ctrl_cmd(base, 0x42, 0, 0, 0));
		post_rx_all(base);
		GUEST_SYNC(0);		/* the host sends QSZ frames */
		isr = mmio_rd32(base, R_INT_STATUS);
		mmio_wr32(base, R_INT_ACK, isr);
		GUEST_SYNC(READ_ONCE(rx->used.idx) | (u64)isr << 32);
		post_rx_all(base);
		GUEST_SYNC(0);		/* the host sends fewer */
		isr = mmio_rd32(base, R_INT_STATUS);
		mmio_wr32(base, R_INT_ACK, isr);
		GUEST_SYNC(READ_ONCE(rx->used.idx) | (u64)isr << 32);
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		break;
	}
	case M_CTRL_BAD: {
		struct ring *c = &ctrl_ring;

		/* Without NOTF_COAL negotiated: refused. */
		GUEST_SYNC(ctrl_cmd(base, CLASS_NOTF_COAL, COAL_RX_SET, 8, 100));
		/* Header and data, nothing device-writable. */
		c->desc[0] = (struct desc){ params.cbuf_gpa, 2, F_NEXT, 1 };
		c->desc[1] = (struct desc){ params.cbuf_gpa + 8, 8, 0, 0 };
		c->avail.ring[c->avail.idx % QSZ] = 0;
		__atomic_thread_fence(__ATOMIC_RELEASE);
		WRITE_ONCE(c->avail.idx, c->avail.idx + 1);
		mmio_wr32(base, R_QUEUE_NOTIFY, CTRLQ);
		GUEST_SYNC(mmio_rd32(base, R_STATUS));
		GUEST_SYNC(READ_ONCE(c->used.idx));
		break;
	}
	case M_RECV_PAGES:
		for (i = 0; i < BIGQ; i++) {
			bigq.desc[i] = (struct desc){ params.slot_gpa + (u64)i * 4096, PAGE_BUF,
						      F_WRITE, 0 };
			bigq.avail.ring[i] = i;
		}
		__atomic_thread_fence(__ATOMIC_RELEASE);
		WRITE_ONCE(bigq.avail.idx, BIGQ);
		mmio_wr32(base, R_QUEUE_NOTIFY, 0);
		GUEST_SYNC(READ_ONCE(bigq.used.idx));	/* the host runs the sender now */
		/* The interrupt handler, again and again: each read delivers
		 * what waits (as much as the exit may). */
		for (i = 0; i < PAGE_READS; i++) {
			u32 isr = mmio_rd32(base, R_INT_STATUS);

			if (isr)
				mmio_wr32(base, R_INT_ACK, isr);
			GUEST_SYNC(READ_ONCE(bigq.used.idx));
		}
		break;
	}
	GUEST_DONE();
}

struct guest {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	int id;
};

/* Settings for the next start(); reset to zero by it. */
static struct params next;
/* Interrupt eventfds for the next start()'s ATTACH (-1: none). */
static int next_irq_fd = -1, next_resample_fd = -1;
/* Dirty ring size in bytes for the next start()'s VM (0: none). */
static u32 next_dirty_ring;

/* Receive buffers are lent to a NIC (PVPASS_TEST_MRG on a NIC backend). */
static bool lent_to_nic(void)
{
	return getenv("PVPASS_TEST_MRG") && getenv("PVPASS_TEST_BACKEND");
}

static struct guest start(int pv, int mode, const u8 *me, const u8 *dst)
{
	struct guest g;
	int i;

	if (next_dirty_ring) {
		/* The ring must be enabled before the vCPU exists. */
		g.vm = __vm_create(VM_SHAPE_DEFAULT, 1, 0);
		vm_enable_dirty_ring(g.vm, next_dirty_ring);
		g.vcpu = vm_vcpu_add(g.vm, 0, guest_main);
		kvm_arch_vm_finalize_vcpus(g.vm);
		vcpu_map_dirty_ring(g.vcpu);
		next_dirty_ring = 0;
	} else {
		g.vm = vm_create_with_one_vcpu(&g.vcpu, guest_main);
	}
	virt_map(g.vm, WIN_GPA, WIN_GPA, 1);
	params = next;
	next = (struct params){ 0 };
	/*
	 * $PVPASS_TEST_MRG: every device takes MRG_RXBUF, so that on a NIC's
	 * pools (PVPASS_TEST_BACKEND) its receive buffers are lent to the NIC
	 * (zero-copy receive) and the receive attacks hit that path.
	 */
	if (getenv("PVPASS_TEST_MRG"))
		params.feat |= NF_MRG_RXBUF;
	params.base = WIN_GPA;
	params.mode = mode;
	for (i = 0; i < 2; i++) {
		params.ring_gpa[i] = addr_gva2gpa(g.vm, (gva_t)&rings[i]);
		params.buf_gpa[i] = addr_gva2gpa(g.vm, (gva_t)bufs[i]);
		params.big_gpa[i] = addr_gva2gpa(g.vm, (gva_t)big[i]);
	}
	if (params.bigq_gpa)
		params.bigq_gpa = addr_gva2gpa(g.vm, (gva_t)&bigq);
	if (params.ctrl_gpa) {
		params.ctrl_gpa = addr_gva2gpa(g.vm, (gva_t)&ctrl_ring);
		params.cbuf_gpa = addr_gva2gpa(g.vm, (gva_t)cbuf);
	}
	memcpy(params.me, me, 6);
	memcpy(params.dst, dst, 6);
	sync_global_to_guest(g.vm, params);
	{
		struct pvpass_attach a = attach_req(g.vm->fd, WIN_GPA, 5, me);

		a.irq_fd = next_irq_fd;
		if (next_resample_fd >= 0) {
			a.flags = PVPASS_ATTACH_F_RESAMPLE;
			a.resample_fd = next_resample_fd;
		}
		g.id = do_attach(pv, &a);
	}
	next_irq_fd = next_resample_fd = -1;
	TEST_ASSERT(g.id > 0, "attach: %s", strerror(-g.id));
	return g;
}

/* Detach a guest's device (its MAC is free for the next) and free the VM. */
static void finish(int pv, struct guest *g)
{
	detach_and_free(pv, g->id, g->vm);
}

/* Run to the guest's next GUEST_SYNC and return its value. */
static u64 sync_value(struct guest *g)
{
	return sync_vcpu(g->vcpu);
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
	finish(pv, &a);
	finish(pv, &b);
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
	finish(pv, &a);
	finish(pv, &b);
	close(pv);
}

/*
 * Frames are written straight into B's pinned buffers on the senders'
 * threads (B's vCPU is not running); B's rings and buffer page stay pinned,
 * and the second frame, into another buffer on the same page, is a pin-cache
 * hit. Everything is unpinned when B is detached: the module's pinned-page
 * count returns to where it was.
 */
TEST(frames_written_into_pinned_buffers_and_unpinned_on_detach)
{
	int pv = pvpass_open();
	long base = pinned_pages();
	struct guest b, a, c;
	struct pvpass_stats s0, sb;

	ASSERT_GE(base, 0);
	next.rx_bufs = 2;
	next.rx_buf_len = 1024;			/* two buffers, one page */
	b = start(pv, M_RECV_BUFS, mac_b, mac_a);
	a = start(pv, M_SEND, mac_a, mac_b);
	c = start(pv, M_SEND, mac_c, mac_b);
	ASSERT_EQ(0, sync_value(&b));			/* B posted its buffers */
	s0 = stats(pv, b.id);
	EXPECT_GE(s0.pages_pinned, 1);			/* its receive rings */
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);
	EXPECT_EQ(0, sync_value(&c) & S_NEEDS_RESET);
	sb = stats(pv, b.id);
	EXPECT_EQ(2, sb.rx_direct);			/* written on A's and C's threads */
	EXPECT_EQ(0, sb.rx_deferred);
	if (lent_to_nic()) {
		/* Lent to the NIC when B posted them: pinned then (once for
		 * the page), and the frames, written by the NIC, pin nothing. */
		EXPECT_LE(2, s0.pages_pinned);
		EXPECT_EQ(0, sb.pin_misses - s0.pin_misses);
		EXPECT_EQ(s0.pages_pinned, sb.pages_pinned);
	} else {
		EXPECT_EQ(1, sb.pin_misses - s0.pin_misses);	/* the buffers' page, once */
		EXPECT_EQ(1, sb.pin_hits - s0.pin_hits);	/* then found pinned */
		EXPECT_EQ(s0.pages_pinned + 1, sb.pages_pinned);
	}
	/* Each sender pinned its receive ring page and its transmit page, and
	 * keeps them pinned (cached). */
	EXPECT_EQ(2, stats(pv, a.id).pin_misses);
	EXPECT_EQ(2, stats(pv, a.id).pages_pinned);
	EXPECT_EQ(base + (long)(sb.pages_pinned + stats(pv, a.id).pages_pinned +
				stats(pv, c.id).pages_pinned), pinned_pages());
	EXPECT_EQ(2, sync_value(&b));			/* B finds both */
	finish(pv, &a);
	finish(pv, &c);
	finish(pv, &b);
	EXPECT_EQ(base, pinned_pages());
	close(pv);
}

/*
 * Live migration: while KVM logs the receiver's writes (KVM_MEM_LOG_DIRTY_
 * PAGES), frames for it are written by its own vCPU thread (they wait in its
 * backlog instead of being written by the sender), which marks every page
 * it writes dirty: the receive buffer's page shows up in KVM_GET_DIRTY_LOG
 * although the guest itself never wrote it.
 */
TEST(dirty_logged_receiver_gets_its_pages_marked)
{
	int pv = pvpass_open();
	struct guest b, a, c;
	struct pvpass_stats sb;
	unsigned long *log = calloc(1, 1 << 20);	/* 8M pages: all of slot 0 */
	u64 gfn;

	ASSERT_NE(NULL, log);
	next.rx_bufs = 2;
	next.rx_more = 1;
	next.rx_buf_len = 1024;
	b = start(pv, M_RECV_BUFS, mac_b, mac_a);
	ASSERT_EQ(0, sync_value(&b));			/* two buffers posted */
	vm_mem_region_set_flags(b.vm, 0, KVM_MEM_LOG_DIRTY_PAGES);
	a = start(pv, M_SEND, mac_a, mac_b);
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);
	EXPECT_EQ(1, sync_value(&b));			/* delivered by B's thread */
	c = start(pv, M_SEND, mac_c, mac_b);
	EXPECT_EQ(0, sync_value(&c) & S_NEEDS_RESET);	/* B has seen the log on */
	sb = stats(pv, b.id);
	EXPECT_EQ(0, sb.rx_direct);
	EXPECT_EQ(2, sb.rx_deferred);
	EXPECT_EQ(2, sync_value(&b));			/* its next notify delivers */
	kvm_vm_get_dirty_log(b.vm, 0, log);
	gfn = addr_gva2gpa(b.vm, (gva_t)big[0]) >> 12;
	EXPECT_TRUE((log[gfn / 64] >> (gfn % 64)) & 1) TH_LOG("receive buffer page %#llx not in the dirty log",
					      (unsigned long long)gfn);
	finish(pv, &a);
	finish(pv, &c);
	finish(pv, &b);
	free(log);
	close(pv);
}

/*
 * A flood into a receiver that has few buffers: the first frames go
 * straight into its buffers, the next wait in its backlog (full at 256
 * frames: the rest are dropped and counted, the sender never waits), and
 * when it posts more buffers the waiting frames flow into them in order.
 */
TEST(flood_fills_buffers_then_backlog_then_flows_again)
{
	int pv = pvpass_open();
	struct guest b, a;
	struct pvpass_stats sb;
	struct ring *r;

	next.rx_bufs = 2;
	next.rx_more = QSZ - 2;
	next.rx_buf_len = 1024;
	b = start(pv, M_RECV_BUFS, mac_b, mac_a);
	a = start(pv, M_SEND_MANY, mac_a, mac_b);
	ASSERT_EQ(0, sync_value(&b));
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);
	sb = stats(pv, b.id);
	EXPECT_EQ(2, sb.rx_direct);
	EXPECT_EQ(BACKLOG_FRAMES, sb.rx_deferred);
	EXPECT_EQ(SEND_MANY - 2 - BACKLOG_FRAMES, sb.drop_rx_no_buffer);
	EXPECT_EQ(2, sync_value(&b));		/* the interrupt: nothing more fits */
	EXPECT_EQ(QSZ, sync_value(&b));		/* new buffers: filled from the backlog */
	sb = stats(pv, b.id);
	EXPECT_EQ(QSZ, sb.rx_frames);
	/* In order: the guest's used ring lists its buffers 0..QSZ-1. */
	r = addr_gva2hva(b.vm, (gva_t)&rings[0]);
	for (int i = 0; i < QSZ; i++)
		EXPECT_EQ(i, r->used.ring[i].id);
	finish(pv, &a);
	finish(pv, &b);
	close(pv);
}

#define EXTRA_GPA	0xc0000000ULL
#define EXTRA_SLOT	10

/* ---- dirty logging: a drain into many pages (review finding F3) ---------- */

/* B's dirty ring: 4096 bytes, 256 entries (soft limit 192 on SVM). */
#define RING_BYTES	4096
#define RING_ENTRIES	(RING_BYTES / sizeof(struct kvm_dirty_gfn))
/* Frames A sends: within a port's backlog and B's BIGQ buffers, and more
 * pages than one exit may mark into the ring. */
#define RING_FRAMES	250
/* KVM_EXIT_DIRTY_RING_FULL exits B may take in the whole test. */
#define RING_FULL_EXITS	64
/* run_logged(): the vCPU cannot run again. */
#define STUCK		(~0ULL)

/* What a VMM migrating B has harvested from B's vCPU's dirty ring. */
struct harvest {
	u32 fetch;		/* next entry to look at */
	u32 batches, most;	/* harvests that found entries; most in one */
	u32 full_exits;		/* KVM_EXIT_DIRTY_RING_FULL seen */
	u32 foreign;		/* entries for no page of B */
	u64 slot0_pages;
	u8 *slot0;		/* per page of slot 0: harvested */
	u8 extra[BIGQ];		/* per page of the buffer slot: harvested */
};

/* Collect every entry KVM published, then KVM_RESET_DIRTY_RINGS; returns the count. */
static u32 harvest(struct __test_metadata *_metadata, struct guest *g, struct harvest *h)
{
	struct kvm_dirty_gfn *ring = vcpu_map_dirty_ring(g->vcpu);
	u32 n = 0;

	while (n < RING_ENTRIES) {
		struct kvm_dirty_gfn *e = &ring[h->fetch % RING_ENTRIES];
		u32 slot;

		if (__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) != KVM_DIRTY_GFN_F_DIRTY)
			break;
		slot = e->slot & 0xffff;	/* address space 0 */
		if (slot == 0 && e->offset < h->slot0_pages)
			h->slot0[e->offset] = 1;
		else if (slot == EXTRA_SLOT && e->offset < BIGQ)
			h->extra[e->offset] = 1;
		else
			h->foreign++;
		__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
		h->fetch++;
		n++;
	}
	kvm_vm_reset_dirty_ring(g->vm);
	if (n) {
		h->batches++;
		h->most = n > h->most ? n : h->most;
	}
	/* KVM leaves the vCPU room to exit before its ring fills (the soft
	 * limit, then reserved entries): a full ring has been, or is about
	 * to be, written over (kvm_dirty_ring_push's WARN). */
	EXPECT_LT(n, RING_ENTRIES)
		TH_LOG("harvest %u found all %zu entries of the ring unharvested: it overflowed",
		       h->batches, RING_ENTRIES);
	return n;
}

/*
 * Run B to its next GUEST_SYNC and return its value. With a dirty ring, a
 * migrating VMM: harvest after every exit, and on KVM_EXIT_DIRTY_RING_FULL
 * harvest and run again. STUCK (a failure) if the vCPU stays full although
 * its ring was harvested: it can never run again.
 */
static u64 run_logged(struct __test_metadata *_metadata, struct guest *g, struct harvest *h)
{
	struct ucall uc;

	for (;;) {
		vcpu_run(g->vcpu);
		if (h) {
			u32 n = harvest(_metadata, g, h);

			if (g->vcpu->run->exit_reason == KVM_EXIT_DIRTY_RING_FULL) {
				h->full_exits++;
				EXPECT_NE(0, n) TH_LOG("KVM_EXIT_DIRTY_RING_FULL with nothing to harvest: "
						       "the ring's count is past what it holds, the vCPU is stuck");
				ASSERT_LE(h->full_exits, RING_FULL_EXITS);
				if (!n)
					return STUCK;
				continue;
			}
		}
		ASSERT_EQ(KVM_EXIT_IO, g->vcpu->run->exit_reason)
			TH_LOG("exit reason %u (%s)", g->vcpu->run->exit_reason,
			       exit_reason_str(g->vcpu->run->exit_reason));
		switch (get_ucall(g->vcpu, &uc)) {
		case UCALL_SYNC:
			return uc.args[1];
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
			break;
		default:
			break;
		}
		ASSERT_EQ(UCALL_SYNC, uc.cmd);
	}
}

/* Was guest page @gpa of B (slot 0 or the buffer slot) marked dirty? */
static bool logged(struct guest *g, struct harvest *h, unsigned long *log0,
		   unsigned long *log_extra, u64 gpa)
{
	u64 gfn;

	if (gpa >= EXTRA_GPA && gpa < EXTRA_GPA + (u64)BIGQ * 4096) {
		gfn = (gpa - EXTRA_GPA) >> 12;
		return h ? h->extra[gfn] : (log_extra[gfn / 64] >> (gfn % 64)) & 1;
	}
	gfn = (gpa - memslot2region(g->vm, 0)->region.guest_phys_addr) >> 12;
	return h ? h->slot0[gfn] : (log0[gfn / 64] >> (gfn % 64)) & 1;
}

/*
 * Live migration of B with KVM logging its writes into a dirty ring (@ring)
 * or a bitmap. B has BIGQ receive buffers, each on a page of its own; A sends
 * RING_FRAMES numbered frames, which wait in B's backlog (a dirty-logged
 * receiver is written only by its own vCPU thread, which marks the pages).
 * B then reads InterruptStatus until all have arrived. With a ring, one exit
 * may not push more marks than the ring holds: the drain stops at what it
 * has room for, KVM sends the vCPU to the VMM (KVM_EXIT_DIRTY_RING_FULL),
 * which harvests, and B's next read goes on. Every frame arrives, in order,
 * intact, and every page the device wrote (each buffer page, the used ring)
 * is among the pages the VMM harvested: none is missing from the migration.
 */
static void receive_drain_dirty_logged(struct __test_metadata *_metadata, bool ring)
{
	int pv = pvpass_open();
	struct harvest *h = NULL;
	unsigned long *log0 = NULL, log_extra[BIGQ / 64] = { 0 };
	struct pvpass_stats sa, sb;
	struct bigring *q;
	struct guest a, b;
	u64 used = 0, used_gpa, gpa;
	u32 reads = 0, missing = 0, bad = 0;
	int i, j;

	if (ring && !kvm_has_cap(KVM_CAP_DIRTY_LOG_RING) &&
	    !kvm_has_cap(KVM_CAP_DIRTY_LOG_RING_ACQ_REL))
		SKIP(return, "KVM has no dirty ring");
	next.slot_gpa = EXTRA_GPA;
	next.bigq_gpa = 1;	/* start() fills in bigq's address */
	next_dirty_ring = ring ? RING_BYTES : 0;
	b = start(pv, M_RECV_PAGES, mac_b, mac_a);
	vm_userspace_mem_region_add(b.vm, VM_MEM_SRC_ANONYMOUS, EXTRA_GPA, EXTRA_SLOT, BIGQ,
				    KVM_MEM_LOG_DIRTY_PAGES);
	if (ring) {
		h = calloc(1, sizeof(*h));
		ASSERT_NE(NULL, h);
		h->slot0_pages = memslot2region(b.vm, 0)->region.memory_size >> 12;
		h->slot0 = calloc(h->slot0_pages, 1);
		ASSERT_NE(NULL, h->slot0);
	} else {
		log0 = calloc(1, (memslot2region(b.vm, 0)->region.memory_size >> 12) / 8 + 8);
		ASSERT_NE(NULL, log0);
	}
	q = addr_gva2hva(b.vm, (gva_t)&bigq);
	used_gpa = addr_gva2gpa(b.vm, (gva_t)&bigq.used);
	ASSERT_EQ(0, run_logged(_metadata, &b, h));	/* B posted its buffers */
	vm_mem_region_set_flags(b.vm, 0, KVM_MEM_LOG_DIRTY_PAGES);

	next.nframes = RING_FRAMES;
	a = start(pv, M_SEND_SEQ, mac_a, mac_b);
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);
	sa = stats(pv, a.id);
	sb = stats(pv, b.id);
	EXPECT_EQ(RING_FRAMES, sa.tx_frames);
	EXPECT_EQ(RING_FRAMES, sb.rx_deferred);		/* all wait for B's thread */
	EXPECT_EQ(0, sb.rx_direct);
	EXPECT_EQ(0, sb.drop_rx_no_buffer);

	/* The migration starts from here: what was dirty before is sent. */
	if (ring) {
		harvest(_metadata, &b, h);
		memset(h->slot0, 0, h->slot0_pages);
		memset(h->extra, 0, sizeof(h->extra));
		h->batches = h->most = 0;
	} else {
		kvm_vm_get_dirty_log(b.vm, 0, log0);
		kvm_vm_get_dirty_log(b.vm, EXTRA_SLOT, log_extra);
		memset(log_extra, 0, sizeof(log_extra));
	}
	while (used < RING_FRAMES && reads < PAGE_READS) {
		u64 v = run_logged(_metadata, &b, h);	/* one InterruptStatus read */

		reads++;
		if (v == STUCK) {
			/* What the device wrote before, and what the VMM has of it. */
			used = READ_ONCE(q->used.idx);
			break;
		}
		used = (u16)v;
		if (reads == 1 && h)
			TH_LOG("first read: %llu frames delivered, %u KVM_EXIT_DIRTY_RING_FULL",
			       (unsigned long long)used, h->full_exits);
	}
	if (!ring) {
		kvm_vm_get_dirty_log(b.vm, 0, log0);
		kvm_vm_get_dirty_log(b.vm, EXTRA_SLOT, log_extra);
	}
	sb = stats(pv, b.id);
	TH_LOG("%u InterruptStatus reads for %llu frames; %u KVM_EXIT_DIRTY_RING_FULL, "
	       "harvests %u, at most %u entries",
	       reads, (unsigned long long)used, h ? h->full_exits : 0, h ? h->batches : 0,
	       h ? h->most : 0);
	EXPECT_EQ(RING_FRAMES, used);
	EXPECT_EQ(RING_FRAMES, sb.rx_frames);
	EXPECT_EQ(0, sb.drop_rx_no_buffer + sb.drop_rx_too_small + sb.drop_rx_pin_failed);
	if (ring)
		EXPECT_LE(1, h->full_exits);	/* the drain did not fit in one ring */

	/* In order and intact: buffer i holds frame i. */
	for (i = 0; i < (int)used && i < BIGQ; i++) {
		u8 *f = addr_gpa2hva(b.vm, EXTRA_GPA + (u64)i * 4096);
		bool ok = q->used.ring[i].id == (u32)i && q->used.ring[i].len == HDR + FRAME_LEN &&
			  !memcmp(f + HDR, mac_b, 6) && !memcmp(f + HDR + 6, mac_a, 6) &&
			  f[HDR + 14] == (u8)i && f[HDR + 15] == (u8)(i >> 8);

		for (j = 16; ok && j < FRAME_LEN; j++)
			ok = f[HDR + j] == (u8)j;
		if (!ok && bad++ < 4)
			TH_LOG("used entry %d: id %u len %u, frame %u", i, q->used.ring[i].id,
			       q->used.ring[i].len, f[HDR + 14] | f[HDR + 15] << 8);
	}
	EXPECT_EQ(0, bad);

	/* Every page the device wrote is dirty for the VMM. */
	for (i = 0; i < (int)used && i < BIGQ; i++) {
		if (logged(&b, h, log0, log_extra, EXTRA_GPA + (u64)i * 4096))
			continue;
		if (missing++ < 4)
			TH_LOG("buffer page %d (gpa %#llx) written, not in the dirty log", i,
			       EXTRA_GPA + (unsigned long long)i * 4096);
	}
	for (gpa = used_gpa & ~4095ULL; gpa < used_gpa + sizeof(q->used); gpa += 4096) {
		if (logged(&b, h, log0, log_extra, gpa))
			continue;
		missing++;
		TH_LOG("used ring page (gpa %#llx) written, not in the dirty log",
		       (unsigned long long)gpa);
	}
	EXPECT_EQ(0, missing);
	if (h)
		EXPECT_EQ(0, h->foreign);	/* every entry is a page of B */

	finish(pv, &a);
	finish(pv, &b);
	if (h)
		free(h->slot0);
	free(h);
	free(log0);
	close(pv);
}

TEST(receive_drain_never_overflows_the_dirty_ring)
{
	receive_drain_dirty_logged(_metadata, true);
}

/* The same with a dirty bitmap: nothing to bound, every page marked. */
TEST(receive_drain_into_a_dirty_bitmap_marks_every_page)
{
	receive_drain_dirty_logged(_metadata, false);
}

/*
 * The receiver's memory map changes while it has a buffer posted and is not
 * running: the sender must not use the stale map, so the frame waits
 * (rx_deferred) and lands once the receiver's own thread has re-read the
 * map (at its next register access), intact.
 */
TEST(memslot_change_defers_frame_until_receiver_rereads_map)
{
	int pv = pvpass_open();
	struct guest b = start(pv, M_RECV, mac_b, mac_a);
	struct guest a;
	struct pvpass_stats sb;

	ASSERT_EQ(0, sync_value(&b));			/* B posted a buffer */
	vm_userspace_mem_region_add(b.vm, VM_MEM_SRC_ANONYMOUS, EXTRA_GPA, EXTRA_SLOT, 4, 0);
	a = start(pv, M_SEND, mac_a, mac_b);
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);
	sb = stats(pv, b.id);
	EXPECT_EQ(0, sb.rx_direct);
	EXPECT_EQ(1, sb.rx_deferred);
	EXPECT_EQ(0, sb.rx_frames);
	EXPECT_EQ(HDR + FRAME_LEN, sync_value(&b));	/* delivered, intact */
	sb = stats(pv, b.id);
	EXPECT_EQ(1, sb.rx_frames);
	EXPECT_LE(1, sb.map_rereads);			/* B re-read its map */
	EXPECT_EQ(0, sb.drop_rx_no_buffer + sb.drop_rx_too_small + sb.drop_rx_pin_failed);
	finish(pv, &a);
	finish(pv, &b);
	close(pv);
}

/*
 * Memslot removed in flight: the receiver posted a buffer in a memslot that
 * the VMM then deletes. The frame for it is refused against the new map
 * (the buffer comes back empty, counted), nothing is written to the freed
 * memory, no pin of the old slot survives, and the neighbours go on.
 */
TEST(memslot_removed_under_posted_buffer)
{
	int pv = pvpass_open();
	long base = pinned_pages();
	struct guest b, a;
	struct pvpass_stats s0, sb;

	next.slot_gpa = EXTRA_GPA;
	b = start(pv, M_RECV_AT, mac_b, mac_a);
	vm_userspace_mem_region_add(b.vm, VM_MEM_SRC_ANONYMOUS, EXTRA_GPA, EXTRA_SLOT, 4, 0);
	ASSERT_EQ(0, sync_value(&b));			/* B posted the buffer */
	s0 = stats(pv, b.id);
	vm_mem_region_delete(b.vm, EXTRA_SLOT);
	a = start(pv, M_SEND, mac_a, mac_b);
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);
	EXPECT_EQ(1, stats(pv, b.id).rx_deferred);
	EXPECT_EQ(1, sync_value(&b));			/* the buffer came back */
	EXPECT_EQ(0, sync_value(&b));			/* empty */
	sb = stats(pv, b.id);
	EXPECT_EQ(0, sb.rx_frames);
	EXPECT_EQ(1, sb.drop_rx_too_small);
	/* Only the ring page was pinned again (for the new map), nothing of
	 * the old slot. */
	EXPECT_EQ(1, sb.pin_misses - s0.pin_misses);
	EXPECT_EQ(s0.pages_pinned, sb.pages_pinned);
	finish(pv, &a);
	finish(pv, &b);
	EXPECT_EQ(base, pinned_pages());
	neighbours_exchange_a_frame(_metadata, pv);
	close(pv);
}

/* A frame from fill_frame() addressed to B, at @f (virtio-net header first)? */
static bool frame_for_b_at(const u8 *f)
{
	int i;

	if (memcmp(f + HDR, mac_b, 6))
		return false;
	for (i = 14; i < FRAME_LEN; i++)
		if (f[HDR + i] != (u8)i)
			return false;
	return true;
}

/*
 * The VMM discards a guest page that pvpass holds pinned and cached, as a
 * balloon does (madvise(MADV_DONTNEED)); the guest then uses the same
 * address again and gets a fresh page. A cache hit would write the next
 * frame into the discarded page, where nobody sees it. The mmu notifier
 * makes the device drop its pins: the frame waits for the receiver, which
 * re-pins, and lands in the page that is now behind the address (read here
 * through the VMM's own mapping).
 */
TEST(vmm_discards_pinned_receive_page)
{
	int pv = pvpass_open();
	long base = pinned_pages();
	struct pvpass_stats s0, sb;
	struct guest b, a, c;
	u8 *hva;

	ASSERT_GE(base, 0);
	next.rx_bufs = 2;
	next.rx_buf_len = 1024;			/* two buffers, one page */
	b = start(pv, M_RECV_BUFS, mac_b, mac_a);
	a = start(pv, M_SEND, mac_a, mac_b);
	c = start(pv, M_SEND, mac_c, mac_b);
	hva = addr_gpa2hva(b.vm, addr_gva2gpa(b.vm, (gva_t)big[0]));
	ASSERT_EQ(0, sync_value(&b));			/* B posted its buffers */
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);	/* into buffer 0 */
	EXPECT_TRUE(frame_for_b_at(hva));
	s0 = stats(pv, b.id);
	EXPECT_EQ(1, s0.rx_direct);

	ASSERT_EQ(0, madvise(hva, getpagesize(), MADV_DONTNEED))
		TH_LOG("madvise(%p): %s", hva, strerror(errno));
	EXPECT_FALSE(frame_for_b_at(hva));		/* a fresh page now */
	EXPECT_EQ(0, sync_value(&c) & S_NEEDS_RESET);	/* for buffer 1 */
	sb = stats(pv, b.id);
	EXPECT_EQ(1, sb.rx_direct);			/* not into the old page */
	EXPECT_EQ(1, sb.rx_deferred - s0.rx_deferred);
	EXPECT_EQ(2, sync_value(&b));			/* B finds both used */
	EXPECT_TRUE(frame_for_b_at(hva + 1024));	/* in the page it sees */
	sb = stats(pv, b.id);
	EXPECT_EQ(2, sb.rx_frames);
	EXPECT_LE(1, sb.map_rereads - s0.map_rereads);	/* pins dropped */
	EXPECT_EQ(0, sb.drop_rx_no_buffer + sb.drop_rx_too_small + sb.drop_rx_pin_failed);
	finish(pv, &a);
	finish(pv, &c);
	finish(pv, &b);
	EXPECT_EQ(base, pinned_pages());		/* the old page too */
	close(pv);
}

/*
 * A frame written while the guest's interrupt handler is between its
 * InterruptStatus read and its InterruptACK: the ACK clears only what the
 * guest read, so the new frame's interrupt is still there at the next read.
 * (Cleared with the rest, the guest's next interrupt would find the status
 * 0 and leave the frame in the used ring until something else interrupts
 * it: a receiver that waits for data then waits for ever.)
 */
/*
 * Transmit polling: after a notify, the device leaves EVENT_IDX's
 * avail_event behind (the guest stops notifying) and polls the ring itself,
 * from task work that KVM runs on the guest's vCPU thread before it
 * re-enters the guest. A guest that notifies only when avail_event asks,
 * as virtio_net does, then sends frames without a notify while the device
 * owes it a poll. How many it saves depends on how fast the guest adds
 * frames against the poll period (a poll that comes before the guest added
 * its next frame finds the ring empty and turns notifications back on, as
 * it should for a guest gone quiet): under TCG that varies from run to run
 * (one make check run had all 20 notified, with 5 polls), so the saving is
 * measured by the benchmark (notifies per frame), and this test checks
 * what does not depend on the clock: the device deferred and polled, every
 * frame went out, and every notify the guest made was counted. Needs the
 * module's default tx_poll_us (not 0).
 */
TEST(transmit_ring_is_polled_after_a_notify)
{
	int pv = pvpass_open();
	static const u8 nobody[6] = { 0x52, 0x54, 0x00, 0xee, 0xee, 0xee };
	struct pvpass_stats sa;
	struct guest a;
	u64 kicks;

	next.feat = NF_EVENT_IDX;
	next.nframes = 20;
	a = start(pv, M_SEND_QUIET, mac_a, nobody);
	kicks = sync_value(&a);
	sa = stats(pv, a.id);
	EXPECT_EQ(20, sa.tx_frames);
	EXPECT_EQ(kicks, sa.notifies);
	EXPECT_GE(20, kicks);
	EXPECT_LE(1, counter(pv, a.id, "tx_polls"));
	EXPECT_LE(1, counter(pv, a.id, "tx_deferrals"));
	TH_LOG("%llu notifies for 20 frames, %llu polls", (unsigned long long)kicks,
	       (unsigned long long)counter(pv, a.id, "tx_polls"));
	EXPECT_EQ(0, sa.drop_tx_bad_chain + sa.drop_tx_bad_buffer);
	finish(pv, &a);
	close(pv);
}

/*
 * A poll owed that runs in the guest's interrupt handler (its
 * InterruptStatus read) and completes frames signals them through the
 * status that read returns: no interrupt of its own, which would only bring
 * the handler back for another status read and an ACK (two exits) with
 * nothing new. Every other service that completes a frame interrupts the
 * guest (no EVENT_IDX, NO_INTERRUPT clear): so the interrupts are the
 * frames less those completed in the handler, plus the interrupts owed
 * polls raised instead of running (tx_poll_irqs), less those an interrupt
 * signalled before the guest's next register access covered (merged_irqs),
 * plus at most one a frame the guest received (none is sent to it).
 * Whether a round's poll runs in the handler or from the timer depends on
 * the clock: the test needs one such round (SKIP otherwise) and checks the
 * count exactly.
 */
TEST(transmit_poll_in_the_handler_raises_no_interrupt)
{
	int pv = pvpass_open();
	int irq = eventfd(0, EFD_CLOEXEC);
	static const u8 nobody[6] = { 0x52, 0x54, 0x00, 0xee, 0xee, 0xee };
	u64 in_read, handled, polls, poll_irqs, merged, i0, r0, irqs, rx, want;
	struct pvpass_stats sa;
	struct guest a;

	ASSERT_GE(irq, 0);
	next.nframes = 40;
	next_irq_fd = irq;
	a = start(pv, M_SEND_HANDLER, mac_a, nobody);
	sa = stats(pv, a.id);
	i0 = sa.interrupts;
	r0 = sa.rx_frames;
	in_read = sync_value(&a);
	/*
	 * A poll the last frame left owed fires within 2 ms, with the vCPU
	 * out of its guest: an interrupt and a tx_poll_irqs. Let it come
	 * before the counters are read, or it could fall between two reads.
	 */
	usleep(50000);
	sa = stats(pv, a.id);
	irqs = sa.interrupts - i0;
	rx = sa.rx_frames - r0;
	handled = counter(pv, a.id, "tx_handler_completions");
	polls = counter(pv, a.id, "tx_polls");
	poll_irqs = counter(pv, a.id, "tx_poll_irqs");
	merged = counter(pv, a.id, "merged_irqs");
	TH_LOG("80 frames: %llu interrupts, %llu services in the handler (%llu found in the read), %llu poll interrupts, %llu merged into an earlier one, %llu frames received",
	       (unsigned long long)irqs, (unsigned long long)handled,
	       (unsigned long long)in_read, (unsigned long long)poll_irqs,
	       (unsigned long long)merged, (unsigned long long)rx);
	EXPECT_EQ(80, sa.tx_frames);
	EXPECT_EQ(0, sa.drop_tx_bad_chain + sa.drop_tx_bad_buffer);
	/* The poll timer's task work may complete B between the guest's
	 * look at the used ring and its read (an exit in between). */
	EXPECT_LE(in_read, handled + polls);
	/* A frame the host port floods to the guest (IPv6 on pvpsw0, say)
	 * interrupts it at most once: so within rx of exact. */
	want = 80 - handled + poll_irqs - merged;
	EXPECT_LE(want, irqs);
	EXPECT_GE(want + rx, irqs);
	finish(pv, &a);
	close(irq);
	close(pv);
	if (!handled)
		SKIP(return, "no poll ran in the handler (the timer came first every round)");
}

/* Poll a counter of device @id for up to 5 s until it reaches @want. */
static u64 counter_reaches(int pv, int id, const char *name, u64 want)
{
	u64 v = 0;
	int i;

	for (i = 0; i < 500; i++) {
		v = counter(pv, id, name);
		if (v >= want)
			break;
		usleep(10000);
	}
	return v;
}

/*
 * Notification coalescing (VIRTIO_NET_F_NOTF_COAL over the control queue,
 * as `ethtool -C eth0 rx-frames 8 rx-usecs 2000` sends it): B's eight
 * frames raise one interrupt, not eight; three frames still raise theirs,
 * from the coalescing timer, within the usecs. Unknown commands get
 * VIRTIO_NET_ERR.
 */
TEST(receive_interrupts_are_coalesced)
{
	int pv = pvpass_open();
	int irq = eventfd(0, EFD_CLOEXEC);
	struct pvpass_stats sb;
	struct guest a, b, c;
	u64 i0, v;

	ASSERT_GE(irq, 0);
	next.feat = NF_CTRL_VQ;
	next.feat_hi = NF_HI_NOTF_COAL;
	next.ctrl_gpa = 1;
	next.coal_max = QSZ;
	next.coal_us = 2000;
	next_irq_fd = irq;
	b = start(pv, M_COAL, mac_b, mac_a);
	EXPECT_EQ(0, sync_value(&b));		/* RX_SET: VIRTIO_NET_OK */
	EXPECT_EQ(0, sync_value(&b));		/* TX_SET: VIRTIO_NET_OK */
	EXPECT_EQ(1, sync_value(&b));		/* unknown class: VIRTIO_NET_ERR */
	EXPECT_EQ(2, counter(pv, b.id, "ctrl_commands"));
	EXPECT_EQ(1, counter(pv, b.id, "ctrl_errors"));
	EXPECT_EQ(0, counter(pv, b.id, "drop_ctrl_bad_chain"));
	ASSERT_EQ(0, sync_value(&b));		/* QSZ buffers posted */
	i0 = stats(pv, b.id).interrupts;

	next.nframes = QSZ;
	a = start(pv, M_SEND_BATCH, mac_a, mac_b);
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);
	sb = stats(pv, b.id);
	EXPECT_EQ(QSZ, sb.rx_direct);
	EXPECT_EQ(i0 + 1, sb.interrupts);	/* one, not QSZ */
	EXPECT_EQ(QSZ - 1, counter(pv, b.id, "coalesced_irqs"));
	EXPECT_EQ(0, counter(pv, b.id, "coal_timer_irqs"));
	v = sync_value(&b);
	EXPECT_EQ(QSZ, (u16)v);			/* all in the used ring */
	EXPECT_EQ(1, (v >> 32) & 1);		/* the used-buffer bit */
	ASSERT_EQ(0, sync_value(&b));		/* QSZ buffers posted again */
	i0 = stats(pv, b.id).interrupts;

	/* Three frames: the timer raises their interrupt (generous bound). */
	next.nframes = 3;
	c = start(pv, M_SEND_BATCH, mac_c, mac_b);
	EXPECT_EQ(0, sync_value(&c) & S_NEEDS_RESET);
	EXPECT_EQ(1, counter_reaches(pv, b.id, "coal_timer_irqs", 1));
	sb = stats(pv, b.id);
	EXPECT_EQ(i0 + 1, sb.interrupts);
	EXPECT_EQ(QSZ - 1 + 3, counter(pv, b.id, "coalesced_irqs"));
	v = sync_value(&b);
	EXPECT_EQ(QSZ + 3, (u16)v);
	EXPECT_EQ(1, (v >> 32) & 1);
	EXPECT_EQ(0, sync_value(&b) & S_NEEDS_RESET);
	EXPECT_EQ(QSZ + 3, stats(pv, b.id).rx_frames);
	finish(pv, &a);
	finish(pv, &c);
	finish(pv, &b);
	close(irq);
	close(pv);
}

/*
 * The control queue of a driver that took CTRL_VQ but not NOTF_COAL: a
 * coalescing command is refused (VIRTIO_NET_ERR); a chain without a
 * device-writable byte cannot be answered: the device needs a reset.
 */
TEST(control_chain_without_ack_breaks_the_device)
{
	int pv = pvpass_open();
	struct guest b;

	next.feat = NF_CTRL_VQ;
	next.ctrl_gpa = 1;
	b = start(pv, M_CTRL_BAD, mac_b, mac_a);
	EXPECT_EQ(1, sync_value(&b));			/* VIRTIO_NET_ERR */
	EXPECT_EQ(1, counter(pv, b.id, "ctrl_errors"));
	EXPECT_EQ(0, counter(pv, b.id, "ctrl_commands"));
	EXPECT_NE(0, sync_value(&b) & S_NEEDS_RESET);
	EXPECT_EQ(1, sync_value(&b));			/* only the first answered */
	EXPECT_EQ(1, counter(pv, b.id, "drop_ctrl_bad_chain"));
	finish(pv, &b);
	close(pv);
}

TEST(interrupt_raised_between_status_read_and_ack_is_kept)
{
	int pv = pvpass_open();
	struct guest b = start(pv, M_ACK_RACE, mac_b, mac_a);
	struct guest a = start(pv, M_SEND, mac_a, mac_b);
	struct guest c = start(pv, M_SEND, mac_c, mac_b);

	ASSERT_EQ(0, sync_value(&b));			/* B posted two buffers */
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);	/* frame 1, direct */
	EXPECT_EQ(1, sync_value(&b));			/* B's handler reads it */
	EXPECT_EQ(0, sync_value(&c) & S_NEEDS_RESET);	/* frame 2, before the ACK */
	EXPECT_EQ(1, sync_value(&b));			/* still raised after it */
	EXPECT_EQ(2, sync_value(&b));
	EXPECT_EQ(2, stats(pv, b.id).rx_direct);
	finish(pv, &a);
	finish(pv, &c);
	finish(pv, &b);
	close(pv);
}

/*
 * virtio-mmio has one interrupt line for all queues, and the guest's handler
 * reads InterruptStatus before it looks at any ring. So a used-buffer
 * interrupt signalled since the guest's last register access covers every
 * frame completed after it (for a few milliseconds: a signal the guest lost
 * would hold up no frame longer than that): frames 1 and 2, which A sends to
 * B with a notify each while B's vCPU makes no register access, raise one
 * interrupt, not two; frame 3, after B's handler read the status, raises
 * its own.
 */
TEST(interrupts_before_the_handler_reads_status_are_merged)
{
	int pv = pvpass_open();
	int irq = eventfd(0, EFD_CLOEXEC);
	struct guest a, b, c;
	struct pvpass_stats s;

	ASSERT_GE(irq, 0);
	next_irq_fd = irq;
	b = start(pv, M_MERGE, mac_b, mac_a);
	a = start(pv, M_SEND_PAIR, mac_a, mac_b);
	c = start(pv, M_SEND, mac_c, mac_b);
	ASSERT_EQ(0, sync_value(&b));			/* B posted three buffers */
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);	/* frames 1 and 2 */
	s = stats(pv, b.id);
	EXPECT_EQ(2, s.rx_direct);
	EXPECT_EQ(1, s.interrupts) TH_LOG("frame 2 raised an interrupt of its own");
	EXPECT_EQ(1, counter(pv, b.id, "merged_irqs"));
	EXPECT_EQ(1, sync_value(&b));			/* the handler: the bit */
	EXPECT_EQ(2, sync_value(&b));			/* both frames in the ring */
	EXPECT_EQ(0, sync_value(&c) & S_NEEDS_RESET);	/* frame 3 */
	s = stats(pv, b.id);
	EXPECT_EQ(3, s.rx_direct);
	EXPECT_EQ(2, s.interrupts);
	EXPECT_EQ(1, sync_value(&b));
	EXPECT_EQ(3, sync_value(&b));
	finish(pv, &a);
	finish(pv, &c);
	finish(pv, &b);
	close(irq);
	close(pv);
}

/* Poll B's irq_resamples (the re-assert runs in a work item) for up to 2 s. */
static struct pvpass_stats resampled(int pv, int id, u64 want)
{
	struct pvpass_stats s;
	int i;

	for (i = 0; i < 200; i++) {
		s = stats(pv, id);
		if (s.irq_resamples >= want)
			break;
		usleep(10000);
	}
	return s;
}

/*
 * A level-triggered GSI (PVPASS_ATTACH_F_RESAMPLE): KVM signals the resample
 * eventfd at the guest's EOI after de-asserting the line; pvpass asserts it
 * again exactly while InterruptStatus is not zero. The test writes the
 * resample eventfd itself, as KVM does at an EOI.
 */
TEST(level_triggered_line_is_raised_again_at_eoi_while_status_is_set)
{
	int pv = pvpass_open();
	int irq = eventfd(0, EFD_CLOEXEC), rs = eventfd(0, EFD_CLOEXEC);
	u64 one = 1;
	struct pvpass_stats s;
	struct guest a, b;

	ASSERT_GE(irq, 0);
	ASSERT_GE(rs, 0);
	next_irq_fd = irq;
	next_resample_fd = rs;
	b = start(pv, M_RESAMPLE, mac_b, mac_a);
	a = start(pv, M_SEND, mac_a, mac_b);
	ASSERT_EQ(0, sync_value(&b));			/* B posted a buffer */
	/* An EOI with nothing pending: the line stays down. */
	ASSERT_EQ(8, write(rs, &one, 8));
	usleep(300000);
	s = stats(pv, b.id);
	EXPECT_EQ(0, s.irq_resamples);
	EXPECT_EQ(0, s.interrupts);
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);	/* the frame; B interrupted */
	EXPECT_EQ(1, stats(pv, b.id).interrupts);
	/* An EOI before B's handler acknowledged it: asserted again. */
	ASSERT_EQ(8, write(rs, &one, 8));
	s = resampled(pv, b.id, 1);
	EXPECT_EQ(1, s.irq_resamples);
	EXPECT_EQ(2, s.interrupts);
	EXPECT_EQ(1, sync_value(&b));			/* the handler reads 1 */
	EXPECT_EQ(0, sync_value(&b));			/* and acknowledges it */
	/* An EOI after the ACK: the line stays down. */
	ASSERT_EQ(8, write(rs, &one, 8));
	usleep(300000);
	s = stats(pv, b.id);
	EXPECT_EQ(1, s.irq_resamples);
	EXPECT_EQ(2, s.interrupts);
	EXPECT_EQ(1, s.rx_frames);
	finish(pv, &a);
	finish(pv, &b);
	close(pv);
	close(irq);
	close(rs);
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
	/* And the other ports still exchange frames (C still attached). */
	finish(pv, &a);
	neighbours_exchange_a_frame(_metadata, pv);
	finish(pv, &c);
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
	finish(pv, &bad);
	close(pv);
}

TEST(head_index_out_of_range) { hostile(_metadata, M_BAD_HEAD, true); }
TEST(descriptor_loop) { hostile(_metadata, M_LOOP, true); }
TEST(avail_index_jump) { hostile(_metadata, M_AVAIL_JUMP, true); }
TEST(zero_length_descriptor) { hostile(_metadata, M_ZERO_LEN, true); }
TEST(buffer_outside_guest_memory) { hostile(_metadata, M_BAD_ADDR, false); }
TEST(transmit_buffer_device_writable) { hostile(_metadata, M_TX_WRITABLE, false); }
TEST(transmit_buffer_too_scattered_to_pin) { hostile(_metadata, M_TX_SCATTER, false); }

/*
 * A receive buffer of more page pieces than one pin batch may hold (the
 * bound that keeps a guest from pinning without limit): the frame is
 * dropped and counted, the buffer comes back empty, the queue goes on.
 */
TEST(receive_buffer_too_scattered_to_pin)
{
	int pv = pvpass_open();
	struct guest b = start(pv, M_RECV_SCATTER, mac_b, mac_a);
	struct guest a = start(pv, M_SEND, mac_a, mac_b);
	struct pvpass_stats sb;

	ASSERT_EQ(0, sync_value(&b));
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);
	EXPECT_EQ(1, sync_value(&b));		/* the buffer came back */
	EXPECT_EQ(0, sync_value(&b));		/* empty */
	sb = stats(pv, b.id);
	EXPECT_EQ(1, sb.drop_rx_too_small);
	EXPECT_EQ(0, sb.rx_frames);
	finish(pv, &a);
	finish(pv, &b);
	neighbours_exchange_a_frame(_metadata, pv);
	close(pv);
}

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
	finish(pv, &g);
	close(pv);
}

TEST(rings_outside_guest_memory)
{
	int pv = pvpass_open();
	struct guest g = start(pv, M_QUEUE_OUTSIDE, mac_a, mac_b);

	EXPECT_NE(0, sync_value(&g) & S_NEEDS_RESET);
	finish(pv, &g);
	close(pv);
}


/* ---- virtio_net_hdr checks and offloads ---------------------------------- */

struct vhdr {
	u8 flags, gso_type;
	u16 hdr_len, gso_size, csum_start, csum_offset, num_buffers;
} __packed;

/* A sends one frame with header @h; returns A's stats. The frame goes to
 * C, which never runs. */
static struct pvpass_stats send_with_hdr(struct __test_metadata *_metadata, int pv,
					 u32 feat, struct vhdr h, u32 len, u16 ethertype)
{
	struct guest c = start(pv, M_SEND, mac_c, mac_a);
	struct guest a;
	struct pvpass_stats s;

	next.feat = feat;
	memcpy(next.hdr, &h, HDR);
	next.frame_len = len;
	next.ethertype = ethertype;
	a = start(pv, M_SEND_HDR, mac_a, mac_c);
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);	/* queue goes on */
	s = stats(pv, a.id);
	finish(pv, &a);
	finish(pv, &c);
	return s;
}

#define NEEDS_CSUM 1

/* Checksum offsets pointing past the frame: dropped, counted, queue fine. */
TEST(hdr_csum_outside_frame)
{
	int pv = pvpass_open();
	struct vhdr h = { .flags = NEEDS_CSUM, .csum_start = 40, .csum_offset = 30 };
	struct pvpass_stats s;

	s = send_with_hdr(_metadata, pv, NF_CSUM, h, FRAME_LEN, 0x0800);
	EXPECT_EQ(1, s.drop_tx_bad_hdr);
	EXPECT_EQ(0, s.tx_frames);
	h.csum_start = 0xffff;
	h.csum_offset = 0xffff;
	s = send_with_hdr(_metadata, pv, NF_CSUM, h, FRAME_LEN, 0x0800);
	EXPECT_EQ(1, s.drop_tx_bad_hdr);
	neighbours_exchange_a_frame(_metadata, pv);
	close(pv);
}

/* NEEDS_CSUM without CSUM negotiated, GSO without HOST_TSO4, GSO not matching
 * the ethertype, GSO with gso_size 0, unknown flags: all refused. */
TEST(hdr_not_negotiated_or_inconsistent)
{
	int pv = pvpass_open();
	struct vhdr csum = { .flags = NEEDS_CSUM, .csum_start = 34, .csum_offset = 16 };
	struct vhdr gso = { .flags = NEEDS_CSUM, .gso_type = 1, .hdr_len = 54,
			    .gso_size = 1448, .csum_start = 34, .csum_offset = 16 };
	struct vhdr bad;

	EXPECT_EQ(1, send_with_hdr(_metadata, pv, 0, csum, FRAME_LEN, 0x0800).drop_tx_bad_hdr);
	EXPECT_EQ(1, send_with_hdr(_metadata, pv, NF_CSUM, gso, 3000, 0x0800).drop_tx_bad_hdr);
	EXPECT_EQ(1, send_with_hdr(_metadata, pv, NF_CSUM | NF_HOST_TSO4, gso, 3000, 0x86dd).drop_tx_bad_hdr);
	bad = gso;
	bad.gso_size = 0;
	EXPECT_EQ(1, send_with_hdr(_metadata, pv, NF_CSUM | NF_HOST_TSO4, bad, 3000, 0x0800).drop_tx_bad_hdr);
	bad = gso;
	bad.gso_type = 0x81;	/* TCPV4 | ECN: ECN never offered */
	EXPECT_EQ(1, send_with_hdr(_metadata, pv, NF_CSUM | NF_HOST_TSO4, bad, 3000, 0x0800).drop_tx_bad_hdr);
	bad = csum;
	bad.flags = 0x80;
	EXPECT_EQ(1, send_with_hdr(_metadata, pv, NF_CSUM, bad, FRAME_LEN, 0x0800).drop_tx_bad_hdr);
	/* Over the MTU without GSO. */
	EXPECT_EQ(1, send_with_hdr(_metadata, pv, NF_CSUM, csum, 3000, 0x0800).drop_tx_bad_hdr);
	/* And a consistent GSO frame passes. */
	EXPECT_EQ(0, send_with_hdr(_metadata, pv, NF_CSUM | NF_HOST_TSO4, gso, 3000, 0x0800).drop_tx_bad_hdr);
	neighbours_exchange_a_frame(_metadata, pv);
	close(pv);
}

/* B posts buffers (first @bufs, later @more) of @buf_len; A sends. */
struct pair {
	struct guest a, b;
	u64 used_first, used_later;
};

static struct pair exchange(int pv, u32 feat_a, u32 feat_b, struct vhdr h, u32 len,
			    u32 bufs, u32 more, u32 buf_len)
{
	struct pair p;
	u32 split = next.split;	/* for the sender */

	next.split = 0;
	next.feat = feat_b;
	next.rx_bufs = bufs;
	next.rx_more = more;
	next.rx_buf_len = buf_len;
	p.b = start(pv, M_RECV_BUFS, mac_b, mac_a);
	next.feat = feat_a;
	memcpy(next.hdr, &h, HDR);
	next.frame_len = len;
	next.ethertype = 0x0800;
	next.split = split;
	p.a = start(pv, M_SEND_HDR, mac_a, mac_b);
	TEST_ASSERT_EQ(sync_value(&p.b), 0);
	TEST_ASSERT_EQ(sync_value(&p.a) & S_NEEDS_RESET, 0);
	p.used_first = sync_value(&p.b);
	p.used_later = sync_value(&p.b);
	return p;
}

/* RFC 1071 sum over @len bytes, seeded with @seed (host order). */
static u16 csum_ref(const u8 *d, u32 len, u32 seed)
{
	u32 sum = seed, i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (d[i] << 8) | d[i + 1];
	if (len & 1)
		sum += d[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (u16)~sum;
}

/* A receiver without GUEST_CSUM gets the checksum completed by pvpass. */
TEST(csum_completed_for_receiver_without_guest_csum)
{
	int pv = pvpass_open();
	struct vhdr h = { .flags = NEEDS_CSUM, .csum_start = 34, .csum_offset = 16 };
	struct pair p = exchange(pv, NF_CSUM, 0, h, FRAME_LEN, 1, 0, 2048);
	u8 *rx = addr_gva2hva(p.b.vm, (gva_t)big[0]);
	u8 want[FRAME_LEN];
	u16 got, ref;
	int i;

	EXPECT_EQ(1, p.used_first);
	EXPECT_EQ(1, stats(pv, p.b.id).rx_csum_completed);
	EXPECT_EQ(0, rx[0] & NEEDS_CSUM);	/* flag cleared */
	/* The frame as A built it, checksum field (offset 50) zero. */
	for (i = 14; i < FRAME_LEN; i++)
		want[i] = (u8)(i * 7);
	/* The sender's seed sits in the field; sum it like any other word. */
	ref = csum_ref(want + 34, FRAME_LEN - 34, 0);
	got = (rx[HDR + 50] << 8) | rx[HDR + 51];
	EXPECT_EQ(ref ? ref : 0xffff, got);
	for (i = 34; i < FRAME_LEN; i++)
		if (i != 50 && i != 51)
			EXPECT_EQ((u8)(i * 7), rx[HDR + i]);
	finish(pv, &p.a);
	finish(pv, &p.b);
	close(pv);
}

/*
 * A frame scattered over three transmit descriptors that cross page
 * boundaries, into receive buffers that cross one too: copied page to page
 * on the sender's thread, it arrives byte for byte.
 */
TEST(frame_scattered_over_pages_arrives_intact)
{
	int pv = pvpass_open();
	struct vhdr h = { .flags = NEEDS_CSUM, .gso_type = 1, .hdr_len = 54,
			  .gso_size = 1448, .csum_start = 34, .csum_offset = 16 };
	u32 feat_b = NF_GUEST_CSUM | NF_GUEST_TSO4 | NF_MRG_RXBUF;
	struct pvpass_stats sa;
	struct pair p;
	struct ring *r;
	u8 *rx;
	int i, bad = 0;

	next.split = 1;
	p = exchange(pv, NF_CSUM | NF_HOST_TSO4, feat_b, h, 5000, 4, 0, 1400);
	r = addr_gva2hva(p.b.vm, (gva_t)&rings[0]);
	rx = addr_gva2hva(p.b.vm, (gva_t)big[0]);
	EXPECT_EQ(4, p.used_first);
	EXPECT_EQ(HDR + 5000 - 3 * 1400, r->used.ring[3].len);
	for (i = 14; i < 5000; i++)
		bad += rx[HDR + i] != (u8)(i * 7);
	EXPECT_EQ(0, bad);
	EXPECT_EQ(1, stats(pv, p.b.id).rx_direct);
	sa = stats(pv, p.a.id);
	TH_LOG("sender: pin_misses %llu pin_hits %llu pages_pinned %llu",
	       (unsigned long long)sa.pin_misses, (unsigned long long)sa.pin_hits,
	       (unsigned long long)sa.pages_pinned);
	EXPECT_EQ(4, sa.pin_misses);	/* its receive ring page, 3 transmit pages */
	finish(pv, &p.a);
	finish(pv, &p.b);
	close(pv);
}

/* A GSO frame for a receiver without GUEST_TSO4 is dropped and counted. */
TEST(gso_for_receiver_without_tso)
{
	int pv = pvpass_open();
	struct vhdr h = { .flags = NEEDS_CSUM, .gso_type = 1, .hdr_len = 54,
			  .gso_size = 1448, .csum_start = 34, .csum_offset = 16 };
	struct pair p = exchange(pv, NF_CSUM | NF_HOST_TSO4, NF_GUEST_CSUM, h, 3000, 4, 0, 2048);

	EXPECT_EQ(1, stats(pv, p.a.id).tx_gso_frames);
	EXPECT_EQ(0, p.used_first);
	EXPECT_EQ(1, stats(pv, p.b.id).drop_rx_no_offload);
	finish(pv, &p.a);
	finish(pv, &p.b);
	neighbours_exchange_a_frame(_metadata, pv);
	close(pv);
}

/*
 * MRG_RXBUF: a 3000-byte GSO frame over 1024-byte buffers. With two posted it
 * waits (nothing consumed); with a third it lands in three, num_buffers 3,
 * header and bytes intact.
 */
TEST(gso_frame_across_mergeable_buffers)
{
	int pv = pvpass_open();
	struct vhdr h = { .flags = NEEDS_CSUM, .gso_type = 1, .hdr_len = 54,
			  .gso_size = 1448, .csum_start = 34, .csum_offset = 16 };
	u32 feat_b = NF_GUEST_CSUM | NF_GUEST_TSO4 | NF_MRG_RXBUF;
	struct pair p = exchange(pv, NF_CSUM | NF_HOST_TSO4, feat_b, h, 3000, 2, 1, 1024);
	struct ring *r = addr_gva2hva(p.b.vm, (gva_t)&rings[0]);
	u8 *rx = addr_gva2hva(p.b.vm, (gva_t)big[0]);
	struct vhdr got;
	int i, bad = 0;

	EXPECT_EQ(0, p.used_first);	/* two buffers are not enough: waits */
	EXPECT_EQ(3, p.used_later);
	memcpy(&got, rx, HDR);
	EXPECT_EQ(3, got.num_buffers);
	EXPECT_EQ(1, got.gso_type);
	EXPECT_EQ(1448, got.gso_size);
	EXPECT_EQ(NEEDS_CSUM, got.flags);
	EXPECT_EQ(34, got.csum_start);
	EXPECT_EQ(1024, r->used.ring[0].len);
	EXPECT_EQ(1024, r->used.ring[1].len);
	EXPECT_EQ(HDR + 3000 - 2048, r->used.ring[2].len);
	for (i = 0; i < 3; i++)
		EXPECT_EQ(i, r->used.ring[i].id);
	/* The buffers are contiguous here, so the frame reads straight on. */
	for (i = 14; i < 3000; i++)
		bad += rx[HDR + i] != (u8)(i * 7);
	EXPECT_EQ(0, bad);
	EXPECT_EQ(1, stats(pv, p.b.id).rx_gso_frames);
	finish(pv, &p.a);
	finish(pv, &p.b);
	close(pv);
}

/* A guest sending with its neighbour's MAC as source: dropped, counted. */
TEST(spoofed_source_mac_dropped)
{
	int pv = pvpass_open();
	struct guest b = start(pv, M_RECV, mac_b, mac_a);
	struct guest x;
	struct pvpass_stats s;

	memcpy(next.forged, mac_b, 6);	/* X's frames claim to come from B */
	x = start(pv, M_SEND, mac_c, mac_a);
	EXPECT_EQ(0, sync_value(&x) & S_NEEDS_RESET);
	s = stats(pv, x.id);
	EXPECT_EQ(1, s.drop_tx_spoofed);
	EXPECT_EQ(0, s.tx_frames);
	finish(pv, &x);
	finish(pv, &b);
	neighbours_exchange_a_frame(_metadata, pv);
	close(pv);
}

/* ---- the host port (pvpsw0) ---------------------------------------------- */

/* A guest's frame to an unknown MAC floods to the host port, intact. */
TEST(guest_frame_reaches_host_port)
{
	static const u8 nobody[6] = { 0x02, 0, 0, 0, 0, 0x99 };
	int pv = pvpass_open(), ifindex, fd = host_port_socket(_metadata, &ifindex);
	struct guest a = start(pv, M_SEND, mac_a, nobody);
	u8 got[2048];
	ssize_t n;
	int i;

	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);
	n = recv(fd, got, sizeof(got), MSG_DONTWAIT);
	ASSERT_EQ(FRAME_LEN, n) TH_LOG("recv: %s", strerror(errno));
	EXPECT_EQ(0, memcmp(got, nobody, 6));
	EXPECT_EQ(0, memcmp(got + 6, mac_a, 6));
	for (i = 14; i < FRAME_LEN; i++)
		EXPECT_EQ((u8)i, got[i]);
	finish(pv, &a);
	close(fd);
	close(pv);
}

/* A frame the host sends on pvpsw0 to a guest's MAC reaches that guest. */
TEST(host_frame_reaches_guest)
{
	int pv = pvpass_open(), ifindex, fd = host_port_socket(_metadata, &ifindex);
	struct guest b;
	struct sockaddr_ll to = { 0 };
	u8 f[FRAME_LEN];
	int i;

	next.rx_bufs = 1;
	next.rx_buf_len = 2048;
	b = start(pv, M_RECV_BUFS, mac_b, mac_a);
	ASSERT_EQ(0, sync_value(&b));		/* B posted its buffer */
	memcpy(f, mac_b, 6);
	/* A raw socket sends the frame as it is: the source is pvpsw0's MAC
	 * (an all-zero source would be dropped, as the bridge does). */
	{
		struct ifreq ifr = { 0 };
		int ctl = socket(AF_INET, SOCK_DGRAM, 0);

		strcpy(ifr.ifr_name, "pvpsw0");
		ASSERT_EQ(0, ioctl(ctl, SIOCGIFHWADDR, &ifr)) TH_LOG("pvpsw0 MAC: %s", strerror(errno));
		close(ctl);
		memcpy(f + 6, ifr.ifr_hwaddr.sa_data, 6);
	}
	f[12] = 0x88;
	f[13] = 0xb5;
	for (i = 14; i < FRAME_LEN; i++)
		f[i] = (u8)(i * 7);
	to.sll_family = AF_PACKET;
	to.sll_ifindex = ifindex;
	to.sll_halen = 6;
	memcpy(to.sll_addr, mac_b, 6);
	ASSERT_EQ(FRAME_LEN, sendto(fd, f, FRAME_LEN, 0, (struct sockaddr *)&to, sizeof(to)));
	/* The host port's work item forwards it: wait until it took the
	 * frame (tx_packets counts just before the switch call), plus a margin. */
	for (i = 0; i < 500; i++) {
		FILE *st = fopen("/sys/class/net/pvpsw0/statistics/tx_packets", "r");
		unsigned long sent = 0;

		if (st) {
			if (fscanf(st, "%lu", &sent) != 1)
				sent = 0;
			fclose(st);
		}
		if (sent >= 1)
			break;
		usleep(10000);
	}
	usleep(100000);
	EXPECT_EQ(1, sync_value(&b));		/* delivered on its InterruptStatus read */
	{
		u8 *rx = addr_gva2hva(b.vm, (gva_t)big[0]);

		for (i = 14; i < FRAME_LEN; i++)
			EXPECT_EQ((u8)(i * 7), rx[HDR + i]);
	}
	finish(pv, &b);
	close(fd);
	close(pv);
}

/* ---- virtio rules and bridge rules (issue 18, item 10) ------------------- */

/*
 * QueueReady=1 with a QueueNum the device cannot serve (above QueueNumMax,
 * zero, not a power of two) is refused at once: QueueReady reads back 0 and
 * the device says it needs a reset. A good size after a reset works.
 */
TEST(queue_num_above_max_is_refused)
{
	int pv = pvpass_open();
	struct guest g = start(pv, M_QNUM, mac_a, mac_b);
	int i;

	for (i = 0; i < (int)ARRAY_SIZE(qnums); i++) {
		u64 v = sync_value(&g);
		bool good = qnums[i] == QSZ;

		EXPECT_EQ(good ? 1 : 0, v >> 16) TH_LOG("QueueNum %u: QueueReady reads %llu",
						       qnums[i], (unsigned long long)(v >> 16));
		EXPECT_EQ(good ? 0 : S_NEEDS_RESET, v & S_NEEDS_RESET)
			TH_LOG("QueueNum %u: status %#llx", qnums[i], (unsigned long long)(v & 0xffff));
	}
	finish(pv, &g);
	close(pv);
}

/*
 * QueueReady=0 on a running receive queue: the device stops it and unpins
 * its rings; a frame sent to it afterwards is not written into the buffer
 * the guest has taken back (the used index does not move, the bytes stay).
 */
TEST(receive_queue_ready_0_stops_delivery)
{
	int pv = pvpass_open();
	struct guest b = start(pv, M_RX_STOP, mac_b, mac_a);
	struct guest a = start(pv, M_SEND, mac_a, mac_b);
	struct guest c = start(pv, M_SEND, mac_c, mac_b);
	struct ring *r = addr_gva2hva(b.vm, (gva_t)&rings[0]);
	u8 *rx = addr_gva2hva(b.vm, (gva_t)big[0]);
	struct pvpass_stats s0, s1;
	int i, changed = 0;

	memset(rx, 0x5a, 2048);
	ASSERT_EQ(0, sync_value(&b));			/* two buffers posted */
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);	/* frame 1 */
	EXPECT_EQ(1, sync_value(&b));			/* B got it */
	EXPECT_TRUE(frame_for_b_at(rx));
	s0 = stats(pv, b.id);
	EXPECT_EQ(0, sync_value(&b));			/* QueueReady=0, reads 0 */
	s1 = stats(pv, b.id);
	EXPECT_LT(s1.pages_pinned, s0.pages_pinned)
		TH_LOG("pages_pinned %llu before QueueReady=0, %llu after",
		       (unsigned long long)s0.pages_pinned, (unsigned long long)s1.pages_pinned);
	EXPECT_EQ(0, sync_value(&c) & S_NEEDS_RESET);	/* frame 2 */
	EXPECT_EQ(1, READ_ONCE(r->used.idx));		/* not delivered */
	for (i = 1024; i < 2048; i++)
		changed += rx[i] != 0x5a;
	EXPECT_EQ(0, changed);				/* buffer 1 untouched */
	EXPECT_EQ(1, sync_value(&b));			/* nor at B's next accesses */
	for (i = 1024, changed = 0; i < 2048; i++)
		changed += rx[i] != 0x5a;
	EXPECT_EQ(0, changed);
	EXPECT_EQ(1, stats(pv, b.id).rx_frames);
	finish(pv, &a);
	finish(pv, &c);
	finish(pv, &b);
	close(pv);
}

#define S_DRIVER_OK	4

/*
 * DRIVER_OK without FEATURES_OK (never written, or written and refused):
 * the device needs a reset, DRIVER_OK does not stick, the queues do not run.
 */
TEST(driver_ok_without_features_ok_is_refused)
{
	int pv = pvpass_open();
	struct guest g = start(pv, M_NO_FEATURES_OK, mac_a, mac_b);
	int i;

	for (i = 0; i < 2; i++) {
		u64 st = sync_value(&g);

		EXPECT_EQ(S_NEEDS_RESET, st & S_NEEDS_RESET) TH_LOG("case %d: status %#llx", i,
								    (unsigned long long)st);
		EXPECT_EQ(0, st & S_DRIVER_OK) TH_LOG("case %d: status %#llx", i,
						      (unsigned long long)st);
		EXPECT_EQ(0, sync_value(&g)) TH_LOG("case %d: transmit chain used", i);
	}
	EXPECT_EQ(0, stats(pv, g.id).tx_frames);
	finish(pv, &g);
	close(pv);
}

/*
 * Frames whose source MAC is broadcast, multicast or all zeros are dropped
 * (as Linux's bridge does), counted, reach nobody; the port's next frame
 * with its own source goes through.
 */
TEST(group_or_zero_source_mac_dropped)
{
	static const u8 bad[3][6] = {
		{ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },
		{ 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 },
		{ 0 },
	};
	int pv = pvpass_open();
	struct guest b, x;
	struct pvpass_stats s;
	u8 *rx;

	next.rx_bufs = 4;
	next.rx_buf_len = 1024;
	b = start(pv, M_RECV_BUFS, mac_b, mac_a);
	memcpy(next.srcs, bad, sizeof(bad));
	memcpy(next.srcs[3], mac_c, 6);
	next.nsrcs = 4;
	x = start(pv, M_SEND_SRCS, mac_c, mac_b);
	rx = addr_gva2hva(b.vm, (gva_t)big[0]);
	ASSERT_EQ(0, sync_value(&b));			/* B posted its buffers */
	EXPECT_EQ(0, sync_value(&x) & S_NEEDS_RESET);
	s = stats(pv, x.id);
	EXPECT_EQ(3, s.drop_tx_spoofed);
	EXPECT_EQ(1, s.tx_frames);
	EXPECT_EQ(1, sync_value(&b));			/* only the good one */
	EXPECT_EQ(0, memcmp(rx + HDR + 6, mac_c, 6));
	EXPECT_EQ(1, stats(pv, b.id).rx_frames);
	finish(pv, &x);
	finish(pv, &b);
	neighbours_exchange_a_frame(_metadata, pv);
	close(pv);
}

/*
 * TCP GSO with a gso_size below 48 (a 3000-byte frame cut into thousands of
 * segments by the host stack) or a checksum offset that is not TCP's: dropped
 * as a bad header. gso_size 48 and 1448 pass.
 */
TEST(tso_with_tiny_gso_size_dropped)
{
	int pv = pvpass_open();
	u32 feat = NF_CSUM | NF_HOST_TSO4;
	struct vhdr gso = { .flags = NEEDS_CSUM, .gso_type = 1, .hdr_len = 54,
			    .gso_size = 1448, .csum_start = 34, .csum_offset = 16 };
	struct vhdr h;
	struct pvpass_stats s;

	h = gso;
	h.gso_size = 1;
	s = send_with_hdr(_metadata, pv, feat, h, 3000, 0x0800);
	EXPECT_EQ(1, s.drop_tx_bad_hdr) TH_LOG("gso_size 1");
	EXPECT_EQ(0, s.tx_frames);
	h.gso_size = 47;
	EXPECT_EQ(1, send_with_hdr(_metadata, pv, feat, h, 3000, 0x0800).drop_tx_bad_hdr)
		TH_LOG("gso_size 47");
	h = gso;
	h.csum_offset = 6;	/* UDP's */
	EXPECT_EQ(1, send_with_hdr(_metadata, pv, feat, h, 3000, 0x0800).drop_tx_bad_hdr)
		TH_LOG("csum_offset 6");
	h = gso;
	h.gso_size = 48;
	s = send_with_hdr(_metadata, pv, feat, h, 3000, 0x0800);
	EXPECT_EQ(0, s.drop_tx_bad_hdr) TH_LOG("gso_size 48");
	EXPECT_EQ(1, s.tx_gso_frames);
	s = send_with_hdr(_metadata, pv, feat, gso, 3000, 0x0800);
	EXPECT_EQ(0, s.drop_tx_bad_hdr) TH_LOG("gso_size 1448");
	EXPECT_EQ(1, s.tx_gso_frames);
	close(pv);
}

/* ---- hostile receive queues, while another VM sends to them -------------- */

/*
 * B's receive queue is malformed (@attack); A sends to B, then to C. B's
 * device ends up needing a reset (@breaks) or the frame is dropped with a
 * counted reason (a bad buffer); B's buffer is never written; A's vCPU
 * returns, A is not marked broken, and C still gets A's next frame. No pin
 * outlives the attachments.
 */
static void rx_hostile(struct __test_metadata *_metadata, int attack, bool breaks)
{
	int pv = pvpass_open();
	long base = pinned_pages();
	struct guest b, c, a;
	struct pvpass_stats sa, sb;
	u64 st, st2, used;
	u8 *buf;
	int i, changed = 0;

	next.rx_attack = attack;
	b = start(pv, M_RX_BAD, mac_b, mac_a);
	c = start(pv, M_RECV, mac_c, mac_a);
	memcpy(next.dst2, mac_c, 6);
	a = start(pv, M_SEND_TWO, mac_a, mac_b);
	buf = addr_gva2hva(b.vm, (gva_t)bufs[0]);
	memset(buf, 0x5a, BUF_LEN);
	ASSERT_EQ(0, sync_value(&b));			/* B posted its bad queue */
	ASSERT_EQ(0, sync_value(&c));			/* C posted a buffer */
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);	/* A sent to B, returned */
	st = sync_value(&b);
	used = sync_value(&b);
	st2 = sync_value(&b);
	sb = stats(pv, b.id);
	TH_LOG("B: status %#llx then %#llx, used idx %llu, too_small %llu pin_failed %llu",
	       (unsigned long long)st, (unsigned long long)st2, (unsigned long long)used,
	       (unsigned long long)sb.drop_rx_too_small, (unsigned long long)sb.drop_rx_pin_failed);
	EXPECT_EQ(0, sb.rx_frames);
	if (breaks) {
		EXPECT_EQ(S_NEEDS_RESET, (st | st2) & S_NEEDS_RESET);
	} else if (!((st | st2) & S_NEEDS_RESET)) {
		/* Not broken: then dropped, counted, the buffer back empty. */
		EXPECT_EQ(1, sb.drop_rx_too_small + sb.drop_rx_pin_failed);
		EXPECT_EQ(1, used);
	}
	for (i = 0; i < BUF_LEN; i++)
		changed += buf[i] != 0x5a;
	EXPECT_EQ(0, changed);				/* nothing written */
	sa = stats(pv, a.id);
	EXPECT_EQ(1, sa.tx_frames);
	EXPECT_EQ(0, sa.drop_tx_bad_chain + sa.drop_tx_bad_buffer);
	/* A is fine: its next frame reaches C. */
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);
	EXPECT_EQ(HDR + FRAME_LEN, sync_value(&c));
	EXPECT_EQ(2, stats(pv, a.id).tx_frames);
	EXPECT_EQ(1, stats(pv, c.id).rx_frames);
	finish(pv, &a);
	finish(pv, &c);
	finish(pv, &b);
	EXPECT_EQ(base, pinned_pages());
	close(pv);
}

TEST(receive_head_index_out_of_range) { rx_hostile(_metadata, RA_BAD_HEAD, true); }
TEST(receive_descriptor_loop) { rx_hostile(_metadata, RA_LOOP, true); }
TEST(receive_avail_index_jump) { rx_hostile(_metadata, RA_AVAIL_JUMP, true); }
TEST(receive_zero_length_descriptor) { rx_hostile(_metadata, RA_ZERO_LEN, true); }
TEST(receive_buffer_outside_guest_memory) { rx_hostile(_metadata, RA_OUTSIDE, false); }
TEST(receive_buffer_read_only) { rx_hostile(_metadata, RA_READONLY, false); }
TEST(receive_chain_longer_than_queue) { rx_hostile(_metadata, RA_TOO_LONG, true); }

/*
 * Receive chains of one-byte pieces, each on a page of its own (MRG_RXBUF):
 * an MTU frame would need more than 200 page pins (7 chains of 32 pages)
 * where it spans 2 pages. Dropped (drop_rx_scattered) before it costs that:
 * B's pin misses stay far below.
 */
TEST(receive_buffer_of_tiny_pieces_is_bounded)
{
	int pv = pvpass_open();
	long base = pinned_pages();
	struct vhdr h = { 0 };
	struct pvpass_stats s0, sb, sa;
	struct guest b, a;

	next.feat = NF_MRG_RXBUF;
	next.slot_gpa = EXTRA_GPA;
	next.bigq_gpa = 1;	/* start() fills in bigq's address */
	b = start(pv, M_RECV_TINY, mac_b, mac_a);
	vm_userspace_mem_region_add(b.vm, VM_MEM_SRC_ANONYMOUS, EXTRA_GPA, EXTRA_SLOT,
				    TINY_PAGES, 0);
	memcpy(next.hdr, &h, HDR);
	next.frame_len = 1514;
	next.ethertype = 0x0800;
	a = start(pv, M_SEND_HDR, mac_a, mac_b);
	ASSERT_EQ(0, sync_value(&b));			/* B posted its chains */
	s0 = stats(pv, b.id);
	EXPECT_EQ(0, sync_value(&a) & S_NEEDS_RESET);
	sa = stats(pv, a.id);
	EXPECT_EQ(1, sa.tx_frames);
	sync_value(&b);					/* B's InterruptStatus read */
	EXPECT_EQ(0, sync_value(&b) & S_NEEDS_RESET);
	sb = stats(pv, b.id);
	TH_LOG("B: pin_misses %llu, pin_hits %llu for the frame; rx_frames %llu",
	       (unsigned long long)(sb.pin_misses - s0.pin_misses),
	       (unsigned long long)(sb.pin_hits - s0.pin_hits), (unsigned long long)sb.rx_frames);
	EXPECT_EQ(1, sb.drop_rx_scattered);
	EXPECT_EQ(0, sb.rx_frames);
	EXPECT_LT(sb.pin_misses - s0.pin_misses, 100);
	finish(pv, &a);
	finish(pv, &b);
	EXPECT_EQ(base, pinned_pages());
	close(pv);
}

TEST_HARNESS_MAIN
