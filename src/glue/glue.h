/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface between pvpass's C glue (kvm.c, hostport.c, vhost.c, poll.c,
 * nic.c)
 * and its Rust
 * code. Rust declares the same functions once, in src/glue/mod.rs, with a
 * typed opaque handle per struct (an out-of-tree module cannot add to the
 * kernel crate's bindings); scripts/check-glue.py, run by make check, fails
 * if the two differ. All structs but pvpass_slot are opaque to Rust.
 */
#ifndef PVPASS_GLUE_H
#define PVPASS_GLUE_H

#include <linux/types.h>

struct file;
struct pvpass_mmio;
struct kvm_vcpu;
struct eventfd_ctx;

/* One guest memory slot as the Rust memory map wants it. */
struct pvpass_slot {
	u64 gpa;
	u64 size;
	u64 hva;
	u32 read_only;
	u32 dirty_log;	/* KVM_MEM_LOG_DIRTY_PAGES: migration is logging writes */
};

/* C, called from Rust (src/kvm); defined in kvm.c. */
int pvpass_kvm_get(void);
void pvpass_kvm_release(void);
bool pvpass_file_is_kvm(struct file *file);
struct pvpass_mmio *pvpass_mmio_register(struct file *vm_file, u64 gpa, void *ctx);
void pvpass_mmio_unregister(struct pvpass_mmio *m);
bool pvpass_ratelimit(void);
int pvpass_memslots(struct pvpass_mmio *m, struct pvpass_slot *out, int max, u64 *generation);
u64 pvpass_memslots_generation(struct pvpass_mmio *m);
void pvpass_mark_dirty(struct pvpass_mmio *m, u64 gfn);
u32 pvpass_dirty_room(struct kvm_vcpu *vcpu);
struct eventfd_ctx *pvpass_irqfd_bind(struct file *vm_file, int fd, u32 gsi, int resample_fd);
void pvpass_irqfd_signal(struct eventfd_ctx *ctx);
int pvpass_irq_inject(struct file *vm_file, u32 gsi);
void pvpass_irqfd_put(struct eventfd_ctx *ctx);
int pvpass_irqfd_unbind(struct file *vm_file, int fd, u32 gsi, struct eventfd_ctx *ctx);
struct mm_struct;
struct mm_struct *pvpass_vm_mm(struct file *vm_file);
struct mm_struct *pvpass_current_mm(void);
int pvpass_current_tgid(void);
bool pvpass_vm_mm_alive(struct file *vm_file);
void pvpass_reaper_start(void);
void pvpass_reaper_stop(void);
struct pvpass_watch;
struct pvpass_watch *pvpass_mm_watch(struct file *vm_file, void *ctx);
void pvpass_mm_unwatch(struct pvpass_watch *w);
struct pvpass_resample;
struct pvpass_resample *pvpass_resample_watch(int fd, void *ctx);
void pvpass_resample_unwatch(struct pvpass_resample *r);

/* C, called from Rust (src/mem); defined in kvm.c. */
struct page;
void pvpass_page_copy(struct page *dst, u32 doff, struct page *src, u32 soff, u32 len);
void pvpass_page_write(struct page *page, u32 off, const void *src, u32 len);
void pvpass_page_read(struct page *page, u32 off, void *dst, u32 len);
u64 pvpass_vm_generation(struct file *vm_file);

/* C, called from Rust (src/backend/hostport.rs); defined in hostport.c. */
struct pvpass_hostport;
struct pvpass_hostport *pvpass_hostport_create(const char *name, void *ctx);
void pvpass_hostport_mac(struct pvpass_hostport *hp, u8 *mac);
void pvpass_hostport_destroy(struct pvpass_hostport *hp);
struct sk_buff;
void *pvpass_hostport_rx_alloc(struct pvpass_hostport *hp, u32 len, struct sk_buff **skbp);
int pvpass_hostport_rx_commit(struct pvpass_hostport *hp, struct sk_buff *skb, const void *hdr);

/* C, called from Rust (src/transport/vhost.rs); defined in vhost.c. */
struct pvpass_vwork;
struct pvpass_kick;
struct pvpass_vwork *pvpass_vwork_create(void *ctx);
void pvpass_vwork_queue(struct pvpass_vwork *w, bool here);
void pvpass_vwork_stop(struct pvpass_vwork *w);
void pvpass_vwork_put(struct pvpass_vwork *w);
void pvpass_vwork_wait_all(void);
struct pvpass_kick *pvpass_kick_watch(int fd, struct pvpass_vwork *w);
void pvpass_kick_unwatch(struct pvpass_kick *k);
struct eventfd_ctx *pvpass_eventfd_get(int fd);
int pvpass_log_set_bit(u64 uaddr, u32 nr);
int pvpass_tap_name(int fd, u8 *name);

/* C, called from Rust (src/transport/poll.rs); defined in poll.c. */
struct pvpass_poll;
struct pvpass_poll *pvpass_poll_create(void *ctx);
void pvpass_poll_arm(struct pvpass_poll *p, struct pvpass_mmio *mmio, struct kvm_vcpu *vcpu, u64 ns);
void pvpass_poll_cancel(struct pvpass_poll *p);
void pvpass_poll_coal_arm(struct pvpass_poll *p, u32 q, u64 ns);
void pvpass_poll_coal_cancel(struct pvpass_poll *p, u32 q);
void pvpass_poll_stop(struct pvpass_poll *p);
void pvpass_poll_put(struct pvpass_poll *p);
void pvpass_poll_wait_all(void);

/* C, called from Rust (src/nic/); defined in nic.c. */
struct pci_dev;
struct pvpass_nicport;
void pvpass_nic_pci_disable(struct pci_dev *pdev);
void pvpass_dma_rmb(void);
struct pvpass_nicport *pvpass_nicport_create(struct pci_dev *pdev, const u8 *mac, void *ctx);
int pvpass_nicport_register(struct pvpass_nicport *p);
void pvpass_nicport_unregister(struct pvpass_nicport *p);
void pvpass_nicport_free(struct pvpass_nicport *p);
void pvpass_nicport_name(struct pvpass_nicport *p, char *name);
void pvpass_nicport_irq(struct pvpass_nicport *p);
u32 pvpass_nicport_tx_next(struct pvpass_nicport *p, void *const *bufs, u32 nbufs, u32 buf_len,
			   u32 max, u32 max_gso, void *hdr);
void pvpass_nicport_tx_error(struct pvpass_nicport *p);
void pvpass_nicport_tx_done(struct pvpass_nicport *p);
int pvpass_nicport_rx(struct pvpass_nicport *p, const void *data, u32 len, bool csum_ok);
void pvpass_nicport_rx_error(struct pvpass_nicport *p);

/* Rust, called from C (src/net/ffi.rs, src/control/attachment.rs, src/backend/hostport.rs,
 * src/transport/poll.rs, src/nic/host.rs). */
int pvpass_rs_mmio_read(void *ctx, struct pvpass_mmio *m, struct kvm_vcpu *vcpu, u64 offset,
			int len, void *val);
int pvpass_rs_mmio_write(void *ctx, struct pvpass_mmio *m, struct kvm_vcpu *vcpu, u64 offset,
			 int len, const void *val);
void pvpass_rs_reap(void);
void pvpass_rs_mm_changed(void *ctx);
void pvpass_rs_resample(void *ctx);
void pvpass_rs_host_xmit(void *ctx, const void *hdr, const void *data, u32 len);
void pvpass_rs_vhost_run(void *ctx);
void pvpass_rs_poll_run(void *ctx, struct pvpass_mmio *m, struct kvm_vcpu *vcpu);
void pvpass_rs_poll_due(void *ctx);
void pvpass_rs_coal_due(void *ctx, u32 q);
int pvpass_rs_nic_open(void *ctx);
void pvpass_rs_nic_stop(void *ctx);
int pvpass_rs_nic_poll(void *ctx, struct pvpass_nicport *p, int budget);
void pvpass_rs_nic_unmask(void *ctx);

#endif
