/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the pvpass selftests: the window's registers, guest MMIO
 * accessors, and host helpers around /dev/pvpass and the KVM selftest library.
 */
#ifndef PVPASS_UTIL_H
#define PVPASS_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/pvpass.h>

#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"
#include "kselftest_harness.h"

/* Above the selftest VM's RAM, below 4 GiB, identity-mapped in the guest. */
#define WIN_GPA		0xd0000000ULL
#define WIN2_GPA	0xd0001000ULL
#define ROUNDS		200

#define VIRTIO_MAGIC	0x74726976
#define PVPASS_VENDOR	0x53505650

/* virtio-mmio register offsets */
#define R_MAGIC		0x000
#define R_VERSION	0x004
#define R_DEVICE_ID	0x008
#define R_VENDOR_ID	0x00c
#define R_DEV_FEAT	0x010
#define R_DEV_FEAT_SEL	0x014
#define R_STATUS	0x070
#define R_DRV_FEAT	0x020
#define R_DRV_FEAT_SEL	0x024
#define R_QUEUE_SEL	0x030
#define R_QUEUE_NUM	0x038
#define R_QUEUE_READY	0x044
#define R_QUEUE_NOTIFY	0x050
#define R_INT_STATUS	0x060
#define R_INT_ACK	0x064
#define R_QUEUE_DESC	0x080
#define R_QUEUE_DRIVER	0x090
#define R_QUEUE_DEVICE	0x0a0
#define R_CONFIG	0x100

static const __u8 __maybe_unused mac_a[6] = { 0x52, 0x54, 0x00, 0xaa, 0x00, 0x01 };
static const __u8 __maybe_unused mac_b[6] = { 0x52, 0x54, 0x00, 0xbb, 0x00, 0x02 };

static inline u32 mmio_rd32(u64 base, u64 off)
{
	return READ_ONCE(*(volatile u32 *)(base + off));
}

static inline void mmio_wr32(u64 base, u64 off, u32 v)
{
	WRITE_ONCE(*(volatile u32 *)(base + off), v);
}

/* A 64-bit register as two 32-bit writes (low word first). */
static inline void wr64(u64 base, u64 off, u64 v)
{
	mmio_wr32(base, off, (u32)v);
	mmio_wr32(base, off + 4, (u32)(v >> 32));
}

/* Split virtqueues, as the guests' own drivers lay them out. */
#define F_NEXT		1
#define F_WRITE		2

struct desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

/* A split virtqueue of @n entries, laid out as the virtio spec places it. */
#define DEFINE_RING(name, n)						\
	struct name {							\
		struct desc desc[n];					\
		struct {						\
			u16 flags, idx, ring[n], used_event;		\
		} avail;						\
		struct {						\
			u16 flags, idx;					\
			struct {					\
				u32 id, len;				\
			} ring[n];					\
			u16 avail_event;				\
		} used __aligned(4);					\
	} __aligned(4096)

/* Where the used ring of an @n-entry queue is (after avail, 4-aligned). */
#define USED_OFF(n)	(((n) * sizeof(struct desc) + 6 + 2 * (n) + 3) & ~3UL)

static inline int pvpass_open(void)
{
	int fd = open(PVPASS_DEVICE_PATH, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		ksft_exit_skip("%s: %s (is pvpass.ko loaded?)\n", PVPASS_DEVICE_PATH,
			       strerror(errno));
	return fd;
}

/*
 * An ATTACH request. $PVPASS_TEST_BACKEND names the backend (the NIC bed
 * runs the data path's tests on a NIC's pools: scripts/guest-nic-vms.sh);
 * unset, the default switch.
 */
static inline struct pvpass_attach attach_req(int vm_fd, __u64 gpa, __u32 gsi, const __u8 *mac)
{
	struct pvpass_attach a = {
		.vm_fd = vm_fd,
		.irq_fd = -1,
		.gsi = gsi,
		.gpa = gpa,
	};
	const char *backend = getenv("PVPASS_TEST_BACKEND");

	memcpy(a.mac, mac, 6);
	if (backend)
		strncpy(a.backend, backend, sizeof(a.backend) - 1);
	return a;
}

/* ATTACH; returns the id, or -errno. */
static inline int do_attach(int pv, struct pvpass_attach *a)
{
	if (ioctl(pv, PVPASS_ATTACH, a))
		return -errno;
	return a->id;
}

static inline int attach(int pv, struct kvm_vm *vm, __u64 gpa, __u32 gsi, const __u8 *mac)
{
	struct pvpass_attach a = attach_req(vm->fd, gpa, gsi, mac);

	return do_attach(pv, &a);
}

static inline struct pvpass_stats stats(int pv, __u32 id)
{
	struct pvpass_stats s = { .id = id };

	TEST_ASSERT(!ioctl(pv, PVPASS_GET_STATS, &s), "GET_STATS(%u): %s", id, strerror(errno));
	return s;
}

/*
 * Counter @name of attachment @id, by name (GET_COUNTERS, @flags 0 or
 * PVPASS_F_ANY_FILE); fails if absent.
 */
static inline __u64 counter_of(int pv, __u32 id, __u32 flags, const char *name)
{
	struct pvpass_counter e[64];
	struct pvpass_counters c = { .id = id, .flags = flags, .count = 64,
				     .entries = (__u64)(unsigned long)e };
	__u32 i;

	TEST_ASSERT(!ioctl(pv, PVPASS_GET_COUNTERS, &c), "GET_COUNTERS(%u): %s", id,
		    strerror(errno));
	for (i = 0; i < c.count && i < 64; i++)
		if (!strcmp(e[i].name, name))
			return e[i].value;
	TEST_FAIL("no counter %s", name);
	return 0;
}

/* Counter @name of attachment @id of this file. */
static inline __u64 counter(int pv, __u32 id, const char *name)
{
	return counter_of(pv, id, 0, name);
}

static inline struct kvm_vm *vm_with_window(struct kvm_vcpu **vcpu, void *guest_code, __u64 gpa)
{
	struct kvm_vm *vm = vm_create_with_one_vcpu(vcpu, guest_code);

	virt_map(vm, gpa, gpa, 1);
	vcpu_args_set(*vcpu, 1, gpa);
	return vm;
}

/* Run until the next exit to userspace; return the ucall, failing on anything else. */
static inline u64 run_to_ucall(struct kvm_vcpu *vcpu, struct ucall *uc)
{
	vcpu_run(vcpu);
	TEST_ASSERT(vcpu->run->exit_reason == KVM_EXIT_IO,
		    "exit to userspace that was not a ucall: reason %u (%s), mmio addr 0x%llx",
		    vcpu->run->exit_reason, exit_reason_str(vcpu->run->exit_reason),
		    vcpu->run->exit_reason == KVM_EXIT_MMIO ? vcpu->run->mmio.phys_addr : 0);
	switch (get_ucall(vcpu, uc)) {
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(*uc);
		break;
	default:
		break;
	}
	return uc->cmd;
}

/* DETACH attachment @id (its MAC is free for the next) and free its VM. */
static inline void detach_and_free(int pv, int id, struct kvm_vm *vm)
{
	struct pvpass_detach d = { .id = id };

	TEST_ASSERT(!ioctl(pv, PVPASS_DETACH, &d), "DETACH(%d): %s", id, strerror(errno));
	kvm_vm_free(vm);
}

/* Run @vcpu (nothing else is racing it) to its next GUEST_SYNC; its value. */
static inline u64 sync_vcpu(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	TEST_ASSERT_EQ(run_to_ucall(vcpu, &uc), UCALL_SYNC);
	return uc.args[1];
}

/* The module's count of pinned guest pages (-1 without debugfs). */
static inline long pinned_pages(void)
{
	FILE *f = fopen("/sys/kernel/debug/pvpass/pinned_pages", "r");
	long n = -1;

	if (f) {
		if (fscanf(f, "%ld", &n) != 1)
			n = -1;
		fclose(f);
	}
	return n;
}

/* A raw socket on pvpsw0 (the host port) for ethertype 0x88b5, the
 * interface brought up first. */
static inline int host_port_socket(struct __test_metadata *_metadata, int *ifindex)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_ll sll = { 0 };
	int ctl = socket(AF_INET, SOCK_DGRAM, 0), fd;

	strcpy(ifr.ifr_name, "pvpsw0");
	TEST_ASSERT(!ioctl(ctl, SIOCGIFFLAGS, &ifr), "pvpsw0: %s", strerror(errno));
	ifr.ifr_flags |= IFF_UP;
	TEST_ASSERT(!ioctl(ctl, SIOCSIFFLAGS, &ifr), "pvpsw0 up: %s", strerror(errno));
	TEST_ASSERT(!ioctl(ctl, SIOCGIFINDEX, &ifr), "pvpsw0 index: %s", strerror(errno));
	close(ctl);
	*ifindex = ifr.ifr_ifindex;
	fd = socket(AF_PACKET, SOCK_RAW, htons(0x88b5));
	TEST_ASSERT(fd >= 0, "AF_PACKET: %s", strerror(errno));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(0x88b5);
	sll.sll_ifindex = *ifindex;
	TEST_ASSERT(!bind(fd, (struct sockaddr *)&sll, sizeof(sll)), "bind: %s", strerror(errno));
	return fd;
}

#endif
