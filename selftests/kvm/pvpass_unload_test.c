// SPDX-License-Identifier: GPL-2.0
/*
 * pvpass module unload: refused while a /dev/pvpass file (and so possibly an
 * attachment) exists, clean once everything is gone, and the module loads
 * again afterwards. Needs the path of pvpass.ko in $PVPASS_KO. Run last.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/pvpass.h>

#include "kvm_util.h"
#include "processor.h"
#include "kselftest_harness.h"

#define WIN_GPA 0xd0000000ULL

static int delete_module(const char *name)
{
	return syscall(__NR_delete_module, name, O_NONBLOCK);
}

static int load_module(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -1;
	ret = syscall(__NR_finit_module, fd, "", 0);
	close(fd);
	return ret;
}

static void guest_nop(void)
{
	GUEST_DONE();
}

TEST(unload_with_attached_vm)
{
	const char *ko = getenv("PVPASS_KO");
	struct pvpass_attach a = { .irq_fd = -1, .gsi = 5, .gpa = WIN_GPA,
				   .mac = { 0x52, 0x54, 0, 1, 2, 3 } };
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int pv;

	if (!ko)
		SKIP(return, "PVPASS_KO not set");
	vm = vm_create_with_one_vcpu(&vcpu, guest_nop);
	pv = open(PVPASS_DEVICE_PATH, O_RDWR);
	ASSERT_GE(pv, 0);
	a.vm_fd = vm->fd;
	ASSERT_EQ(0, ioctl(pv, PVPASS_ATTACH, &a));

	/* An open file with a VM attached pins the module. */
	EXPECT_EQ(-1, delete_module("pvpass"));
	EXPECT_TRUE(errno == EWOULDBLOCK || errno == EBUSY) TH_LOG("errno %d", errno);
	/* The attachment is still served after the refused unload. */
	EXPECT_EQ(0, ioctl(pv, PVPASS_GET_STATS, &(struct pvpass_stats){ .id = a.id }));

	/* Everything gone: the module unloads and /dev/pvpass disappears. */
	close(pv);
	kvm_vm_free(vm);
	ASSERT_EQ(0, delete_module("pvpass")) TH_LOG("delete_module: %s", strerror(errno));
	EXPECT_EQ(-1, access(PVPASS_DEVICE_PATH, F_OK));

	/* And it loads again. */
	ASSERT_EQ(0, load_module(ko)) TH_LOG("finit_module(%s): %s", ko, strerror(errno));
	pv = open(PVPASS_DEVICE_PATH, O_RDWR);
	EXPECT_GE(pv, 0);
	close(pv);
}

TEST_HARNESS_MAIN
