/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What pvpass's C files share and Rust never sees: the layout of a device
 * window (kvm.c registers it, poll.c reaches its VM from it).
 */
#ifndef PVPASS_INTERNAL_H
#define PVPASS_INTERNAL_H

#include <linux/kvm_host.h>
#include <kvm/iodev.h>

#define PVPASS_WINDOW_SIZE 0x1000

struct pvpass_mmio {
	struct kvm_io_device iodev;
	struct kvm *kvm;
	gpa_t base;
	/* The Rust device; it outlives the registration (see unregister). */
	void *ctx;
};

#endif
