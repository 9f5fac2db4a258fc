// SPDX-License-Identifier: GPL-2.0
/*
 * pvpass selftests: KVM VMs whose guest code drives the pvpass device window
 * directly, and the ATTACH/DETACH contract of /dev/pvpass.
 *
 * Built with the in-tree KVM selftest library (see selftests/Makefile) and
 * run as root in the test bed with pvpass.ko loaded. Each TEST runs in its
 * own child process (kselftest harness), so a failure in one cannot hide
 * another.
 *
 * "Served in the kernel" is proven by counting exits: the guest makes
 * hundreds of accesses and then one ucall; the host sees exactly one exit
 * from KVM_RUN, the ucall, and the module's counters match the accesses.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <sys/wait.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/pvpass.h>

#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"
#include "kselftest_harness.h"
#include "pvpass_util.h"

/* Reads the identification and feature registers ROUNDS times. */
static void guest_id(u64 base)
{
	int i;

	for (i = 0; i < ROUNDS; i++) {
		GUEST_ASSERT_EQ(mmio_rd32(base, R_MAGIC), VIRTIO_MAGIC);
		GUEST_ASSERT_EQ(mmio_rd32(base, R_VERSION), 2);
		GUEST_ASSERT_EQ(mmio_rd32(base, R_DEVICE_ID), 1);
		GUEST_ASSERT_EQ(mmio_rd32(base, R_VENDOR_ID), PVPASS_VENDOR);
		mmio_wr32(base, R_DEV_FEAT_SEL, 1);
		/* VIRTIO_F_VERSION_1 is bit 32 */
		GUEST_ASSERT_EQ(mmio_rd32(base, R_DEV_FEAT) & 1, 1);
		mmio_wr32(base, R_DEV_FEAT_SEL, 0);
		/* VIRTIO_NET_F_MTU (3), _MAC (5) and _STATUS (16) */
		/* CSUM, GUEST_CSUM, MTU, MAC, GUEST_TSO4/6, HOST_TSO4/6,
		 * MRG_RXBUF, STATUS, CTRL_VQ, EVENT_IDX. */
		GUEST_ASSERT_EQ(mmio_rd32(base, R_DEV_FEAT),
				(1u << 0) | (1u << 1) | (1u << 3) | (1u << 5) |
				(1u << 7) | (1u << 8) | (1u << 11) | (1u << 12) |
				(1u << 15) | (1u << 16) | (1u << 17) | (1u << 29));
	}
	GUEST_DONE();
}
#define ID_READS	(ROUNDS * 6)
#define ID_WRITES	(ROUNDS * 2)

/* Reads the MAC from config space and hands it to the host. */
static void guest_mac(u64 base)
{
	u64 mac = 0;
	int i;

	for (i = 0; i < 6; i++)
		mac |= (u64)READ_ONCE(*(volatile u8 *)(base + R_CONFIG + i)) << (8 * i);
	GUEST_SYNC(mac);
	GUEST_DONE();
}

/* Hostile but harmless accesses: bad widths, read-only registers, config writes. */
static void guest_bad(u64 base)
{
	GUEST_ASSERT_EQ(READ_ONCE(*(volatile u16 *)(base + R_MAGIC)), 0);
	GUEST_ASSERT_EQ(READ_ONCE(*(volatile u8 *)(base + R_VERSION + 1)), 0);
	GUEST_ASSERT_EQ(mmio_rd32(base, 0x018), 0);	/* no register there */
	GUEST_ASSERT_EQ(mmio_rd32(base, 0xffc), 0);	/* config tail, zero */
	mmio_wr32(base, R_MAGIC, 0xdeadbeef);		/* read-only */
	WRITE_ONCE(*(volatile u8 *)(base + R_CONFIG), 0xff); /* config is RO */
	WRITE_ONCE(*(volatile u64 *)(base + R_STATUS), ~0ull); /* 8-byte write */
	GUEST_ASSERT_EQ(mmio_rd32(base, R_MAGIC), VIRTIO_MAGIC);
	GUEST_ASSERT_EQ(READ_ONCE(*(volatile u8 *)(base + R_CONFIG)), mac_a[0]);
	GUEST_DONE();
}

/* Spins on the magic value until it stops being served by pvpass. */
static void guest_spin(u64 base)
{
	for (;;)
		GUEST_ASSERT_EQ(mmio_rd32(base, R_MAGIC), VIRTIO_MAGIC);
}

TEST(version)
{
	struct pvpass_version v = { 0 };
	int pv = pvpass_open();

	ASSERT_EQ(0, ioctl(pv, PVPASS_GET_VERSION, &v));
	EXPECT_EQ(PVPASS_API_VERSION, v.api_version);
	EXPECT_EQ(PVPASS_WINDOW_SIZE, v.window_size);
	EXPECT_EQ(PVPASS_MAX_ATTACH, v.max_attach);
	EXPECT_NE(0, v.features & PVPASS_FEAT_MMIO_ID);
	EXPECT_NE(0, v.features & PVPASS_FEAT_RESAMPLE);
	close(pv);
}

/* Control: without pvpass the window exits to userspace. */
TEST(window_exits_without_attach)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = vm_with_window(&vcpu, guest_id, WIN_GPA);

	vcpu_run(vcpu);
	EXPECT_EQ(KVM_EXIT_MMIO, vcpu->run->exit_reason);
	EXPECT_EQ(WIN_GPA + R_MAGIC, vcpu->run->mmio.phys_addr);
	kvm_vm_free(vm);
}

TEST(id_registers_served_in_kernel)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = vm_with_window(&vcpu, guest_id, WIN_GPA);
	struct pvpass_stats s;
	struct ucall uc;
	int pv = pvpass_open();
	int id = attach(pv, vm, WIN_GPA, 5, mac_a);

	ASSERT_GT(id, 0) TH_LOG("attach: %s", strerror(-id));
	/* One KVM_RUN, one exit: the final ucall. No access reached userspace. */
	ASSERT_EQ(UCALL_DONE, run_to_ucall(vcpu, &uc));
	s = stats(pv, id);
	EXPECT_EQ(ID_READS, s.mmio_reads);
	EXPECT_EQ(ID_WRITES, s.mmio_writes);
	EXPECT_EQ(0, s.mmio_bad);
	ASSERT_EQ(0, ioctl(pv, PVPASS_DETACH, &(struct pvpass_detach){ .id = id }));
	kvm_vm_free(vm);
	close(pv);
}

TEST(hostile_accesses_are_answered_and_counted)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = vm_with_window(&vcpu, guest_bad, WIN_GPA);
	struct pvpass_stats s;
	struct ucall uc;
	int pv = pvpass_open();
	int id = attach(pv, vm, WIN_GPA, 5, mac_a);

	ASSERT_GT(id, 0);
	ASSERT_EQ(UCALL_DONE, run_to_ucall(vcpu, &uc));
	s = stats(pv, id);
	/* 2-byte magic, 1-byte version, no register at 0x18, RO magic, config write, 8-byte status */
	EXPECT_EQ(6, s.mmio_bad);
	kvm_vm_free(vm);
	close(pv);
}

/* Two VMs on one file, each sees its own MAC in config space. */
TEST(two_vms)
{
	struct kvm_vcpu *vcpu_a, *vcpu_b;
	struct kvm_vm *vm_a = vm_with_window(&vcpu_a, guest_mac, WIN_GPA);
	struct kvm_vm *vm_b = vm_with_window(&vcpu_b, guest_mac, WIN_GPA);
	struct ucall uc;
	u64 want_a = 0, want_b = 0;
	int pv = pvpass_open();
	int i, id_a, id_b;

	for (i = 0; i < 6; i++) {
		want_a |= (u64)mac_a[i] << (8 * i);
		want_b |= (u64)mac_b[i] << (8 * i);
	}
	/* The same GPA and GSI in two different VMs is fine. */
	id_a = attach(pv, vm_a, WIN_GPA, 5, mac_a);
	id_b = attach(pv, vm_b, WIN_GPA, 5, mac_b);
	ASSERT_GT(id_a, 0);
	ASSERT_GT(id_b, 0);
	ASSERT_NE(id_a, id_b);
	ASSERT_EQ(UCALL_SYNC, run_to_ucall(vcpu_a, &uc));
	EXPECT_EQ(want_a, uc.args[1]);
	ASSERT_EQ(UCALL_SYNC, run_to_ucall(vcpu_b, &uc));
	EXPECT_EQ(want_b, uc.args[1]);
	EXPECT_EQ(6, stats(pv, id_a).mmio_reads);
	EXPECT_EQ(6, stats(pv, id_b).mmio_reads);
	kvm_vm_free(vm_a);
	kvm_vm_free(vm_b);
	close(pv);
}

/* Every malformed ATTACH gets its errno, and nothing is left attached. */
TEST(attach_bad_arguments)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = vm_with_window(&vcpu, guest_id, WIN_GPA);
	struct pvpass_attach a;
	int pv = pvpass_open();
	int null_fd = open("/dev/null", O_RDWR);
	int kvm_fd = open("/dev/kvm", O_RDWR);
	int efd = eventfd(0, EFD_CLOEXEC);
	int id;

#define BAD(errno_, ...) do {						\
		a = attach_req(vm->fd, WIN_GPA, 5, mac_a);		\
		__VA_ARGS__;						\
		EXPECT_EQ(-(errno_), do_attach(pv, &a))			\
			TH_LOG("case: %s", #__VA_ARGS__);		\
	} while (0)

	BAD(EBADF, a.vm_fd = -1);
	BAD(EBADF, a.vm_fd = 4000);
	BAD(EINVAL, a.vm_fd = null_fd);			/* not KVM */
	BAD(EINVAL, a.vm_fd = kvm_fd);			/* /dev/kvm, not a VM */
	BAD(EINVAL, a.vm_fd = pv);			/* ourselves */
	BAD(EINVAL, a.gpa = WIN_GPA + 8);		/* misaligned */
	BAD(EINVAL, a.gpa = ~0xfffULL);			/* wraps */
	BAD(EEXIST, a.gpa = 0);				/* guest RAM */
	BAD(EINVAL, memset(a.mac, 0, 6));		/* zero MAC */
	BAD(EINVAL, a.mac[0] = 0x01);			/* multicast */
	BAD(EINVAL, a.gsi = 0);
	BAD(EINVAL, a.gsi = 100000);
	BAD(EINVAL, a.flags = 2);			/* unknown flag */
	BAD(EINVAL, a.flags = PVPASS_ATTACH_F_RESAMPLE);	/* without irq_fd */
	BAD(EINVAL, a.resample_fd = efd);		/* without the flag */
	BAD(EINVAL, a.irq_fd = efd; a.flags = PVPASS_ATTACH_F_RESAMPLE;
	    a.resample_fd = -1);
	BAD(EINVAL, a.irq_fd = efd; a.flags = PVPASS_ATTACH_F_RESAMPLE;
	    a.resample_fd = null_fd);			/* not an eventfd */
	BAD(EBADF, a.irq_fd = efd; a.flags = PVPASS_ATTACH_F_RESAMPLE;
	    a.resample_fd = 4000);			/* not open */
	BAD(EINVAL, a.reserved0 = 1);
	BAD(EINVAL, a.reserved[5] = 1);
	BAD(EINVAL, a.id = 7);
	BAD(EINVAL, a.irq_fd = -2);
	BAD(EINVAL, a.irq_fd = null_fd);		/* not an eventfd */
	BAD(EBADF, a.irq_fd = 4000);			/* not open */
	BAD(ENODEV, strcpy(a.backend, "nosuchswitch"));
	BAD(EINVAL, memset(a.backend, 'x', sizeof(a.backend)));	/* no NUL */
	EXPECT_EQ(-1, ioctl(pv, PVPASS_ATTACH, (void *)8));	/* bad pointer */
	EXPECT_EQ(EFAULT, errno);

	/* A good attach, then conflicts with it. */
	id = attach(pv, vm, WIN_GPA, 5, mac_a);
	ASSERT_GT(id, 0);
	BAD(EEXIST);					/* same window */
	BAD(EBUSY, a.gpa = WIN2_GPA);			/* same GSI */
	BAD(EEXIST, a.gsi = 6);			/* same window, other GSI */

	/* DETACH/STATS of ids this file does not have. */
	EXPECT_EQ(-1, ioctl(pv, PVPASS_DETACH, &(struct pvpass_detach){ .id = id + 1000 }));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(-1, ioctl(pv, PVPASS_DETACH, &(struct pvpass_detach){ .id = id, .flags = 2 }));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(pv, _IO(PVPASS_IOCTL_MAGIC, 0x7f)));
	EXPECT_EQ(ENOTTY, errno);
	{
		int pv2 = pvpass_open();
		struct pvpass_stats s = { .id = id };

		EXPECT_EQ(-1, ioctl(pv2, PVPASS_GET_STATS, &s));
		EXPECT_EQ(ENOENT, errno);
		EXPECT_EQ(-1, ioctl(pv2, PVPASS_DETACH, &(struct pvpass_detach){ .id = id }));
		EXPECT_EQ(ENOENT, errno);
		/* Another file cannot take the same window of the same VM either. */
		a = attach_req(vm->fd, WIN_GPA, 9, mac_b);
		EXPECT_EQ(-EEXIST, do_attach(pv2, &a));
		/* Nor give another device the same MAC on the switch. */
		a = attach_req(vm->fd, WIN2_GPA, 9, mac_a);
		EXPECT_EQ(-EADDRINUSE, do_attach(pv2, &a));
		close(pv2);
	}
	/* After all that, the good attachment still works. */
	{
		struct ucall uc;

		ASSERT_EQ(UCALL_DONE, run_to_ucall(vcpu, &uc));
		EXPECT_EQ(ID_READS, stats(pv, id).mmio_reads);
	}
	EXPECT_EQ(0, ioctl(pv, PVPASS_DETACH, &(struct pvpass_detach){ .id = id }));
	/* Detached: the window is free again, for a new attach. */
	id = attach(pv, vm, WIN_GPA, 5, mac_a);
	EXPECT_GT(id, 0);
#undef BAD
	close(null_fd);
	close(kvm_fd);
	kvm_vm_free(vm);
	close(pv);
}

struct spin_ctx {
	struct kvm_vcpu *vcpu;
	volatile int exited;
};

static void *vcpu_thread(void *arg)
{
	struct spin_ctx *ctx = arg;

	vcpu_run(ctx->vcpu);
	ctx->exited = 1;
	return NULL;
}

/* DETACH while a vCPU hammers the window: it falls back to userspace exits. */
TEST(detach_while_vcpu_runs)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = vm_with_window(&vcpu, guest_spin, WIN_GPA);
	struct spin_ctx ctx = { .vcpu = vcpu };
	pthread_t t;
	int pv = pvpass_open();
	int id = attach(pv, vm, WIN_GPA, 5, mac_a);
	int waited;

	ASSERT_GT(id, 0);
	ASSERT_EQ(0, pthread_create(&t, NULL, vcpu_thread, &ctx));
	/* Wait until the guest is demonstrably reading through pvpass. */
	for (waited = 0; stats(pv, id).mmio_reads < 1000 && waited < 60000; waited += 10)
		usleep(10000);
	ASSERT_GE(stats(pv, id).mmio_reads, 1000);
	EXPECT_EQ(0, ctx.exited);
	ASSERT_EQ(0, ioctl(pv, PVPASS_DETACH, &(struct pvpass_detach){ .id = id }));
	pthread_join(t, NULL);
	EXPECT_EQ(KVM_EXIT_MMIO, vcpu->run->exit_reason);
	EXPECT_EQ(WIN_GPA + R_MAGIC, vcpu->run->mmio.phys_addr);
	kvm_vm_free(vm);
	close(pv);
}

/* Closing /dev/pvpass without DETACH takes every attachment of the file down. */
TEST(close_without_detach)
{
	struct kvm_vcpu *vcpu_a, *vcpu_b;
	struct kvm_vm *vm_a = vm_with_window(&vcpu_a, guest_id, WIN_GPA);
	struct kvm_vm *vm_b = vm_with_window(&vcpu_b, guest_id, WIN2_GPA);
	int pv = pvpass_open();

	ASSERT_GT(attach(pv, vm_a, WIN_GPA, 5, mac_a), 0);
	ASSERT_GT(attach(pv, vm_b, WIN2_GPA, 5, mac_b), 0);
	close(pv);
	vcpu_run(vcpu_a);
	EXPECT_EQ(KVM_EXIT_MMIO, vcpu_a->run->exit_reason);
	vcpu_run(vcpu_b);
	EXPECT_EQ(KVM_EXIT_MMIO, vcpu_b->run->exit_reason);
	EXPECT_EQ(WIN2_GPA, vcpu_b->run->mmio.phys_addr);
	/* And a new file can attach the same windows again. */
	pv = pvpass_open();
	EXPECT_GT(attach(pv, vm_a, WIN_GPA, 5, mac_a), 0);
	close(pv);
	kvm_vm_free(vm_a);
	kvm_vm_free(vm_b);
}

/* The VMM closes its VM fd first: the attachment keeps the VM alive until it goes. */
TEST(vm_fd_closed_while_attached)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = vm_with_window(&vcpu, guest_id, WIN_GPA);
	struct ucall uc;
	int pv = pvpass_open();
	int id = attach(pv, vm, WIN_GPA, 5, mac_a);

	ASSERT_GT(id, 0);
	ASSERT_EQ(UCALL_DONE, run_to_ucall(vcpu, &uc));
	kvm_vm_free(vm);
	EXPECT_EQ(ID_READS, stats(pv, id).mmio_reads);
	EXPECT_EQ(0, ioctl(pv, PVPASS_DETACH, &(struct pvpass_detach){ .id = id }));
	close(pv);
}

/* Attach many, up to the module-wide limit, and one more. */
TEST(attach_limit)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = vm_with_window(&vcpu, guest_id, WIN_GPA);
	int pv = pvpass_open();
	int i, id;

	__u8 mac[6];

	memcpy(mac, mac_a, 6);
	for (i = 0; i < PVPASS_MAX_ATTACH; i++) {
		mac[5] = i;	/* one MAC per port of the switch */
		id = attach(pv, vm, WIN_GPA + (__u64)i * PVPASS_WINDOW_SIZE, 1 + i, mac);
		ASSERT_GT(id, 0) TH_LOG("attach %d: %s", i, strerror(-id));
	}
	mac[5] = i;
	id = attach(pv, vm, WIN_GPA + (__u64)i * PVPASS_WINDOW_SIZE, 1 + i, mac);
	EXPECT_EQ(-ENOSPC, id);
	close(pv);
	kvm_vm_free(vm);
}

static int count_vms(void)
{
	/* KVM makes a debugfs directory "<pid>-<fd>" per live VM. */
	DIR *d = opendir("/sys/kernel/debug/kvm");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] >= '1' && e->d_name[0] <= '9' && strchr(e->d_name, '-');
	closedir(d);
	return n;
}

/*
 * The VMM exits while the /dev/pvpass file that attached its VM stays open
 * (here: in the parent, like a stuck attach tool): within a second pvpass
 * lets the VM go, and KVM destroys it.
 */
TEST(vmm_exit_releases_vm)
{
	int pv = pvpass_open();
	int vms_before, p[2], id = 0, waited;
	struct pvpass_stats s;
	pid_t child;

	if (access("/sys/kernel/debug/kvm", F_OK))
		mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	vms_before = count_vms();
	ASSERT_GE(vms_before, 0) TH_LOG("no /sys/kernel/debug/kvm");
	ASSERT_EQ(0, pipe(p));
	child = fork();
	ASSERT_GE(child, 0);
	if (child == 0) {
		/* The VMM: make a VM, attach it through the shared file, exit. */
		struct kvm_vcpu *vcpu;
		struct kvm_vm *vm = vm_with_window(&vcpu, guest_id, WIN_GPA);

		id = attach(pv, vm, WIN_GPA, 5, mac_a);
		if (write(p[1], &id, sizeof(id)) != sizeof(id))
			_exit(2);
		_exit(0);	/* no kvm_vm_free: the process just goes */
	}
	close(p[1]);
	ASSERT_EQ(sizeof(id), read(p[0], &id, sizeof(id)));
	ASSERT_GT(id, 0);
	waitpid(child, NULL, 0);
	for (waited = 0; waited < 3000; waited += 50) {
		s = stats(pv, id);
		if (s.released)
			break;
		usleep(50000);
	}
	EXPECT_EQ(1, s.released);
	EXPECT_LE(waited, 1000) TH_LOG("released after %d ms", waited);
	/* KVM destroyed the VM: its debugfs directory is gone. */
	for (waited = 0; count_vms() != vms_before && waited < 3000; waited += 50)
		usleep(50000);
	EXPECT_EQ(vms_before, count_vms());
	/* The husk still answers, and DETACH removes it. */
	EXPECT_EQ(0, ioctl(pv, PVPASS_DETACH, &(struct pvpass_detach){ .id = id }));
	close(pv);
}

/*
 * DETACH from the attaching process takes its eventfd off the GSI: the same
 * eventfd can be attached again (KVM refuses an eventfd that is still bound
 * to an irqfd with EBUSY). From another process the irqfd stays bound.
 */
TEST(detach_unbinds_irqfd)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = vm_with_window(&vcpu, guest_id, WIN_GPA);
	struct pvpass_attach a = attach_req(vm->fd, WIN_GPA, 5, mac_a);
	int pv = pvpass_open();
	int efd = eventfd(0, EFD_CLOEXEC);
	int id, round;

	ASSERT_GE(efd, 0);
	a.irq_fd = efd;
	for (round = 0; round < 3; round++) {
		a.id = 0;
		id = do_attach(pv, &a);
		ASSERT_GT(id, 0) TH_LOG("round %d: %s", round, strerror(-id));
		ASSERT_EQ(0, ioctl(pv, PVPASS_DETACH, &(struct pvpass_detach){ .id = id }));
	}
	/* Still bound (no DETACH): a second attachment cannot take it. */
	a.id = 0;
	id = do_attach(pv, &a);
	ASSERT_GT(id, 0);
	a.gpa = WIN_GPA + 0x1000;
	a.gsi = 6;
	a.id = 0;
	memcpy(a.mac, mac_b, 6);
	EXPECT_EQ(-EBUSY, do_attach(pv, &a));
	close(pv);
	close(efd);
	kvm_vm_free(vm);
}

/* VmLck of this process, in kB (-1 if unreadable). */
static long vmlck_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[128];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Drop CAP_IPC_LOCK from this process's effective set. */
static int drop_cap_ipc_lock(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return -1;
	d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
	return syscall(SYS_capset, &h, d);
}

/*
 * Pins are charged to the VMM's locked memory, as vfio charges its DMA
 * mappings: ATTACH charges the attachment's pin quota (1024 receive + 256
 * transmit pages) to the VM's mm, DETACH gives it back, and a process
 * without CAP_IPC_LOCK whose RLIMIT_MEMLOCK cannot hold the quota gets
 * ENOMEM instead of pinning the host's memory away.
 */
TEST(pins_charged_to_locked_memory)
{
	int pv = pvpass_open();
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = vm_with_window(&vcpu, guest_id, WIN_GPA);
	long before = vmlck_kb();
	int id, status;
	pid_t child;

	ASSERT_GE(before, 0);
	id = attach(pv, vm, WIN_GPA, 5, mac_a);
	ASSERT_GT(id, 0);
	EXPECT_EQ(before + (1024 + 256) * 4, vmlck_kb());
	EXPECT_EQ(0, ioctl(pv, PVPASS_DETACH, &(struct pvpass_detach){ .id = id }));
	EXPECT_EQ(before, vmlck_kb());

	child = fork();
	ASSERT_GE(child, 0);
	if (child == 0) {
		/* Not the VMM, like pvpassctl: its limit and capabilities count. */
		struct rlimit rl = { 1 << 20, 1 << 20 };
		int r;

		if (setrlimit(RLIMIT_MEMLOCK, &rl) || drop_cap_ipc_lock())
			_exit(2);
		r = attach(pv, vm, WIN_GPA, 5, mac_a);
		_exit(r == -ENOMEM ? 0 : r > 0 ? 3 : 4);
	}
	ASSERT_EQ(child, waitpid(child, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("2: setup, 3: attached anyway, 4: other error");
	EXPECT_EQ(before, vmlck_kb());
	kvm_vm_free(vm);
	close(pv);
}

/* A VM without an in-kernel irqchip cannot take an irqfd: ENXIO, distinctly. */
TEST(attach_irqfd_without_irqchip)
{
	struct kvm_vm *vm = vm_create_barebones();	/* no KVM_CREATE_IRQCHIP */
	struct pvpass_attach a = attach_req(vm->fd, WIN_GPA, 5, mac_a);
	int pv = pvpass_open();
	int efd = eventfd(0, EFD_CLOEXEC);

	ASSERT_GE(efd, 0);
	a.irq_fd = efd;
	EXPECT_EQ(-ENXIO, do_attach(pv, &a));
	/* Nothing was left reserved: without the irqfd it attaches. */
	a = attach_req(vm->fd, WIN_GPA, 5, mac_a);
	EXPECT_GT(do_attach(pv, &a), 0);
	close(pv);
	close(efd);
	kvm_vm_free(vm);
}

/*
 * A level-triggered GSI (resampled) needs KVM's own IOAPIC: a VM whose
 * irqchip is split (the IOAPIC in the VMM) gets ENXIO, and nothing is left
 * reserved.
 */
TEST(attach_resample_needs_full_irqchip)
{
	struct kvm_vm *vm = vm_create_barebones();
	struct pvpass_attach a = attach_req(vm->fd, WIN_GPA, 5, mac_a);
	int pv = pvpass_open();
	int efd = eventfd(0, EFD_CLOEXEC), rfd = eventfd(0, EFD_CLOEXEC);

	ASSERT_GE(efd, 0);
	ASSERT_GE(rfd, 0);
	vm_enable_cap(vm, KVM_CAP_SPLIT_IRQCHIP, 24);
	a.irq_fd = efd;
	a.flags = PVPASS_ATTACH_F_RESAMPLE;
	a.resample_fd = rfd;
	EXPECT_EQ(-ENXIO, do_attach(pv, &a));
	/* Edge-triggered, the split irqchip is enough. */
	a = attach_req(vm->fd, WIN_GPA, 5, mac_a);
	a.irq_fd = efd;
	EXPECT_GT(do_attach(pv, &a), 0);
	close(pv);
	close(efd);
	close(rfd);
	kvm_vm_free(vm);
}

/* ATTACH with an eventfd: the module binds it to the GSI with KVM's irqfd. */
TEST(attach_with_irqfd)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = vm_with_window(&vcpu, guest_id, WIN_GPA);
	struct pvpass_attach a = attach_req(vm->fd, WIN_GPA, 5, mac_a);
	int pv = pvpass_open();
	int efd = eventfd(0, EFD_CLOEXEC);

	ASSERT_GE(efd, 0);
	a.irq_fd = efd;
	EXPECT_GT(do_attach(pv, &a), 0);
	close(pv);
	close(efd);
	kvm_vm_free(vm);
}


/*
 * LIST shows every attachment of every file; another file reaches one only
 * with PVPASS_F_ANY_FILE (root); DETACH from there releases the VM and leaves
 * the owner a husk.
 */
TEST(list_and_any_file_access)
{
	int pv1 = pvpass_open(), pv2 = pvpass_open();
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm = vm_with_window(&vcpu, guest_spin, WIN_GPA);
	struct pvpass_info info[PVPASS_MAX_ATTACH];
	struct pvpass_list l = { .count = PVPASS_MAX_ATTACH, .entries = (__u64)(unsigned long)info };
	struct pvpass_stats st = { 0 };
	struct pvpass_detach d = { 0 };
	int id = attach(pv1, vm, WIN_GPA, 5, mac_a);
	int i, found = -1;

	ASSERT_GT(id, 0);
	ASSERT_EQ(0, ioctl(pv2, PVPASS_LIST, &l));
	ASSERT_GE(l.count, 1);
	for (i = 0; i < (int)l.count && i < PVPASS_MAX_ATTACH; i++)
		if ((int)info[i].id == id)
			found = i;
	ASSERT_GE(found, 0);
	EXPECT_EQ(getpid(), info[found].owner_pid);
	EXPECT_EQ(5, info[found].gsi);
	EXPECT_EQ(WIN_GPA, info[found].gpa);
	EXPECT_EQ(0, memcmp(info[found].mac, mac_a, 6));
	EXPECT_STREQ("default", info[found].backend);
	EXPECT_EQ(0, info[found].flags);

	/* count 0: only the total; unknown flags refused. */
	l.count = 0;
	ASSERT_EQ(0, ioctl(pv2, PVPASS_LIST, &l));
	EXPECT_GE(l.count, 1);
	l.flags = 1;
	EXPECT_EQ(-1, ioctl(pv2, PVPASS_LIST, &l));
	EXPECT_EQ(EINVAL, errno);

	/* Another file: ENOENT without the flag, the counters with it. */
	st.id = id;
	EXPECT_EQ(-1, ioctl(pv2, PVPASS_GET_STATS, &st));
	EXPECT_EQ(ENOENT, errno);
	st.flags = PVPASS_F_ANY_FILE;
	EXPECT_EQ(0, ioctl(pv2, PVPASS_GET_STATS, &st));
	st.flags = 2;
	EXPECT_EQ(-1, ioctl(pv2, PVPASS_GET_STATS, &st));
	EXPECT_EQ(EINVAL, errno);

	d.id = id;
	EXPECT_EQ(-1, ioctl(pv2, PVPASS_DETACH, &d));
	EXPECT_EQ(ENOENT, errno);
	d.flags = PVPASS_F_ANY_FILE;
	EXPECT_EQ(0, ioctl(pv2, PVPASS_DETACH, &d));
	/* The owner keeps a released husk until it detaches. */
	EXPECT_EQ(1, stats(pv1, id).released);
	l.count = PVPASS_MAX_ATTACH;
	l.flags = 0;
	ASSERT_EQ(0, ioctl(pv2, PVPASS_LIST, &l));
	for (i = 0, found = -1; i < (int)l.count && i < PVPASS_MAX_ATTACH; i++)
		if ((int)info[i].id == id)
			found = i;
	ASSERT_GE(found, 0);
	EXPECT_EQ(PVPASS_INFO_RELEASED, info[found].flags);
	d.flags = 0;
	EXPECT_EQ(0, ioctl(pv1, PVPASS_DETACH, &d));
	l.count = PVPASS_MAX_ATTACH;
	ASSERT_EQ(0, ioctl(pv2, PVPASS_LIST, &l));
	for (i = 0; i < (int)l.count && i < PVPASS_MAX_ATTACH; i++)
		EXPECT_NE(id, (int)info[i].id);
	kvm_vm_free(vm);
	close(pv1);
	close(pv2);
}

TEST_HARNESS_MAIN
