/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What pvpass's C files share and Rust never sees: the layout of a device
 * window (kvm.c registers it, poll.c reaches its VM from it), and the KVM
 * functions that the patch series exports to pvpass (kvm.c takes them).
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

/*
 * The KVM symbols of the patch series (patches/), taken with symbol_get by
 * pvpass_kvm_get (kvm.c) so that the module loads on a KVM without the
 * series, serving only its vhost transport. Set once, before the first
 * window is registered, and kept until the module goes: every user is a
 * virtio-mmio device, which exists only after pvpass_kvm_get succeeded.
 */
struct pvpass_kvm_ops {
	typeof(&file_is_kvm) file_is_kvm;
	typeof(&kvm_io_bus_register_dev) io_bus_register_dev;
	typeof(&kvm_io_bus_unregister_dev) io_bus_unregister_dev;
	typeof(&kvm_irqfd) irqfd;
	typeof(&mark_page_dirty_in_slot) mark_page_dirty_in_slot;
	typeof(&kvm_get_running_vcpu) get_running_vcpu;
	typeof(&kvm_set_irq) set_irq;
};
extern struct pvpass_kvm_ops pvpass_kvm;

#endif
