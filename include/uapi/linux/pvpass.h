/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * pvpass: share one network device between KVM guests at near-passthrough
 * speed. This header is the contract between the pvpass module, the
 * pvpassctl tool and the tests.
 *
 * The module exposes /dev/pvpass. A process opens it and ATTACHes running
 * VMs: it passes a KVM VM file descriptor (for example one taken from QEMU
 * with pidfd_getfd), a 4 KiB guest-physical window where the guest's stock
 * virtio-mmio driver finds a virtio-net device, the GSI and the MAC. Every
 * guest access to the window is then served by the module, in the kernel, on
 * the vCPU thread. An attachment lives until DETACH, until the /dev/pvpass
 * file that made it is closed, or until the module is unloaded (it cannot be
 * while a /dev/pvpass file is open).
 *
 * Versioning: PVPASS_GET_VERSION returns PVPASS_API_VERSION. Structures only
 * grow at their end into reserved fields, which callers must zero; the module
 * rejects non-zero reserved fields and unknown flags with EINVAL so that a
 * newer tool fails loudly on an older module.
 */
#ifndef _UAPI_LINUX_PVPASS_H
#define _UAPI_LINUX_PVPASS_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define PVPASS_API_VERSION	1
#define PVPASS_DEVICE_PATH	"/dev/pvpass"

/* Size of the guest-physical MMIO window of one device (virtio-mmio). */
#define PVPASS_WINDOW_SIZE	0x1000
/* Most attachments one module instance serves (all files together). */
#define PVPASS_MAX_ATTACH	64
#define PVPASS_NAME_LEN		16

/* What a struct pvpass_version::features bit says the module can do. */
#define PVPASS_FEAT_MMIO_ID	(1U << 0)	/* identification registers */
#define PVPASS_FEAT_CONFIG	(1U << 1)	/* virtio-net config space  */
#define PVPASS_FEAT_SWITCH	(1U << 2)	/* queues, switch, irqfd    */
#define PVPASS_FEAT_RESAMPLE	(1U << 3)	/* PVPASS_ATTACH_F_RESAMPLE */
#define PVPASS_FEAT_SWITCHES	(1U << 4)	/* named switches: SWITCH_ADD/DEL/LIST */
#define PVPASS_FEAT_COUNTERS	(1U << 5)	/* GET_COUNTERS: named counter list */
#define PVPASS_FEAT_VHOST	(1U << 6)	/* /dev/pvpass-vhost-net, VHOST_SET_PORT */
#define PVPASS_FEAT_VHOST_RULES	(1U << 7)	/* VHOST_RULE_ADD/DEL/LIST: ports by tap name */

struct pvpass_version {
	__u32 api_version;	/* out: PVPASS_API_VERSION */
	__u32 features;		/* out: PVPASS_FEAT_* */
	__u32 window_size;	/* out: PVPASS_WINDOW_SIZE */
	__u32 max_attach;	/* out: PVPASS_MAX_ATTACH */
};

/*
 * ATTACH errors:
 *   EBADF   vm_fd is not an open file descriptor
 *   EINVAL  vm_fd is not a KVM VM; gpa not 4 KiB aligned or window wraps;
 *           mac is zero or multicast; unknown flags; reserved fields set;
 *           backend not NUL-terminated, not zero after its NUL or not a
 *           name of [A-Za-z0-9_.-]; PVPASS_ATTACH_F_RESAMPLE without
 *           irq_fd, or resample_fd not an eventfd
 *   EEXIST  the window overlaps guest RAM (a memslot) or another pvpass
 *           window of the same VM
 *   EBUSY   the GSI is already used by another pvpass device of this VM
 *   ENOSPC  PVPASS_MAX_ATTACH attachments exist, or the VM's MMIO bus is full
 *           (also: irq_fd is not an eventfd, or the VM has no in-kernel
 *           irqchip / the GSI cannot be routed)
 *   ENODEV  backend names a switch that does not exist (see SWITCH_ADD)
 *   EADDRINUSE  another port of the switch (a device or the host port) has
 *           this MAC
 *   ENXIO   irq_fd given, but the VM has no in-kernel irqchip (yet: a VMM
 *           creates it just after the VM, so a tool may retry briefly); with
 *           PVPASS_ATTACH_F_RESAMPLE also: the irqchip is split (the IOAPIC
 *           is in the VMM, KVM cannot resample)
 */
/*
 * ATTACH flag: the GSI is level-triggered in the guest (on QEMU's pc and q35
 * machines: ISA IRQs 5, 9, 10, 11 and every GSI from 16). The module binds
 * irq_fd with KVM_IRQFD_FLAG_RESAMPLE and resample_fd: the line stays
 * asserted until the guest's EOI, and at the EOI the module asserts it again
 * if InterruptStatus is still not zero. Without it an interrupt signalled
 * while the previous one is in service (remote IRR set) is lost.
 * Needs irq_fd and an in-kernel IOAPIC (not kernel-irqchip=split).
 */
#define PVPASS_ATTACH_F_RESAMPLE	(1U << 0)

struct pvpass_attach {
	__u32 flags;		/* in: 0 or PVPASS_ATTACH_F_RESAMPLE */
	__s32 vm_fd;		/* in: KVM VM file descriptor */
	__s32 irq_fd;		/* in: eventfd the module binds to gsi with KVM's
				 * irqfd, or -1 for none (no interrupts: the
				 * guest must poll) */
	__u32 gsi;		/* in: guest interrupt line of the device */
	__u64 gpa;		/* in: base of the PVPASS_WINDOW_SIZE window */
	__u8  mac[6];		/* in: the device's MAC address */
	__u16 reserved0;	/* in: must be 0 */
	char  backend[PVPASS_NAME_LEN];	/* in: name of the switch the device
				 * is a port of; "" = "default" */
	__u32 id;		/* out: attachment id, unique while loaded */
	__s32 resample_fd;	/* in: with PVPASS_ATTACH_F_RESAMPLE, an eventfd
				 * KVM signals at the guest's EOI; else 0 */
	__u32 reserved[6];	/* in: must be 0 */
};

/*
 * Flag of DETACH and GET_STATS: the id may belong to an attachment made on
 * another /dev/pvpass file (CAP_SYS_ADMIN only, else EPERM). DETACH of
 * another file's attachment releases the VM at once; the owning file keeps a
 * released husk (stats.released = 1) until it detaches or closes.
 */
#define PVPASS_F_ANY_FILE	(1U << 0)

struct pvpass_detach {
	__u32 id;		/* in: id returned by ATTACH on this file */
	__u32 flags;		/* in: 0 or PVPASS_F_ANY_FILE */
};

/*
 * Counters of one attachment; all count since ATTACH. This structure is full
 * (no reserved words are left) and frozen: counters added later are only in
 * PVPASS_GET_COUNTERS, which reports every counter by name.
 */
struct pvpass_stats {
	__u32 id;		/* in: attachment id on this file */
	__u32 flags;		/* in: 0 or PVPASS_F_ANY_FILE */
	__u64 mmio_reads;	/* out: guest reads served in the kernel */
	__u64 mmio_writes;	/* out: guest writes served in the kernel */
	__u64 mmio_bad;		/* out: accesses with a bad size or offset */
	__u64 notifies;		/* out: queue notifies */
	__u64 interrupts;	/* out: interrupts injected through the irqfd */
	__u64 tx_frames;	/* out: frames the guest sent */
	__u64 tx_bytes;
	__u64 rx_frames;	/* out: frames put in the guest's receive buffers */
	__u64 rx_bytes;
	/* drops, by reason */
	__u64 drop_tx_bad_chain;	/* malformed transmit chain: device needs reset */
	__u64 drop_tx_bad_buffer;	/* buffer outside guest RAM, writable, too big or short */
	__u64 drop_rx_no_buffer;	/* backlog full: the guest posted no receive buffers */
	__u64 drop_rx_too_small;	/* receive buffer smaller than the frame */
	__u64 released;		/* out: 1 once the VMM exited and pvpass let the
				 * VM go (within a second); the counters stay
				 * readable until DETACH or close */
	__u64 drop_tx_bad_hdr;		/* virtio_net_hdr refused (offsets outside
					 * the frame, GSO not negotiated or not
					 * matching the frame, unknown flags) */
	__u64 drop_rx_no_offload;	/* GSO frame for a guest that did not
					 * negotiate GUEST_TSO4/6 */
	__u64 tx_gso_frames;	/* out: of tx_frames, GSO (TSO) frames */
	__u64 rx_gso_frames;	/* out: of rx_frames, GSO (TSO) frames */
	__u64 rx_csum_completed;	/* out: partial checksums completed by
					 * pvpass for a guest without GUEST_CSUM */
	__u64 drop_tx_spoofed;	/* source MAC refused: another port's own
				 * MAC, a group address or all zeros */
	/* pinning: frames are copied from the sender's pinned transmit pages
	 * into the receiver's pinned receive pages */
	__u64 pages_pinned;	/* out: guest pages pinned now: receive rings
				 * and cached receive buffer pages (at most
				 * 1024), cached transmit pages (at most 256) */
	__u64 pin_hits;		/* out: pages found pinned already */
	__u64 pin_misses;	/* out: pages pinned afresh */
	__u64 rx_direct;	/* out: of rx_frames, written by the sender's
				 * thread straight into the buffers: one copy
				 * of the frame in all */
	__u64 rx_deferred;	/* out: frames that waited in the backlog for
				 * this guest's own thread (no buffer posted
				 * yet, checksum to complete, memory map
				 * change): two copies */
	__u64 drop_rx_pin_failed;	/* receive buffer could not be pinned */
	__u64 map_rereads;	/* out: memory map read again because the
				 * memslots changed or the VMM changed what
				 * backs guest memory (mmu notifier): every
				 * pin dropped, taken again as needed */
	__u64 irq_resamples;	/* out: with PVPASS_ATTACH_F_RESAMPLE, EOIs
				 * after which the line was asserted again
				 * (InterruptStatus still not zero) */
	__u64 tx_yields;	/* out: exits that left transmit work for a
				 * later exit because one exit's budget (256
				 * frames or 512 KiB) was spent; the device
				 * raises an interrupt so the guest comes back */
	__u64 drop_tx_storm;	/* broadcast/multicast over the port's rate
				 * limit (see README, reliability) */
	__u64 drop_rx_scattered;	/* frame would need more page pins than
					 * one frame's budget (receive buffers
					 * in tiny pieces on many pages) */
};

/* One attachment as PVPASS_LIST reports it. */
#define PVPASS_INFO_RELEASED	(1U << 0)	/* VMM gone or detached: a husk */
#define PVPASS_INFO_VHOST	(1U << 1)	/* on /dev/pvpass-vhost-net: gsi, gpa 0 */
struct pvpass_info {
	__u32 id;
	__u32 flags;		/* PVPASS_INFO_* */
	__s32 owner_pid;	/* process (tgid) that made the attachment */
	__u32 gsi;
	__u64 gpa;
	__u8  mac[6];
	__u16 reserved0;
	char  backend[PVPASS_NAME_LEN];	/* name of the device's switch */
	__u64 reserved[3];
};

/*
 * LIST: every attachment of the module, whichever file made it (any user may
 * list). count in: room in entries; out: number of attachments, which may be
 * larger than the room (then only the first count-in entries are written).
 */
struct pvpass_list {
	__u32 count;		/* in/out */
	__u32 flags;		/* in: must be 0 */
	__u64 entries;		/* in: user pointer to struct pvpass_info[count] */
};

/*
 * Switches. Every device is a port of one switch, named at ATTACH. The
 * module starts with the switch "default", whose other port is the host
 * interface pvpsw0; it cannot be deleted. SWITCH_ADD makes another one
 * (CAP_SYS_ADMIN): its ports are the devices attached to it and no host
 * interface, so its guests reach only each other. A switch lives until
 * SWITCH_DEL or until the module is unloaded, whichever file made it.
 *
 * Names: 1 to PVPASS_NAME_LEN - 1 characters of [A-Za-z0-9_.-], NUL-terminated,
 * the rest of the array zero.
 *
 * SWITCH_ADD errors: EPERM not CAP_SYS_ADMIN; EINVAL bad name, flags or
 * reserved fields not zero; EEXIST a switch of that name exists; ENOSPC
 * PVPASS_MAX_SWITCHES switches exist.
 * SWITCH_DEL errors: EPERM; EINVAL as above; ENOENT no such switch; EBUSY
 * the switch has devices attached (detach them first), or it is "default".
 */
#define PVPASS_MAX_SWITCHES	16
#define PVPASS_SWITCH_DEFAULT	(1U << 0)	/* out: the module's own switch */
#define PVPASS_SWITCH_HOST_PORT	(1U << 1)	/* out: has the host interface */
#define PVPASS_SWITCH_NIC	(1U << 2)	/* out: a NIC bound to pvpass (a VMDq pool per
					 * device); named after its host interface,
					 * it goes with the binding (DEL: EBUSY) */

struct pvpass_switch {
	char  name[PVPASS_NAME_LEN];	/* in (ADD, DEL), out (LIST) */
	__u32 flags;		/* in: must be 0; out (LIST): PVPASS_SWITCH_* */
	__u32 ports;		/* out (LIST): ports now (devices, host interface) */
	__u64 reserved[2];	/* in: must be 0 */
};

/* SWITCH_LIST: count and entries as for struct pvpass_list. */
struct pvpass_switch_list {
	__u32 count;		/* in/out */
	__u32 flags;		/* in: must be 0 */
	__u64 entries;		/* in: user pointer to struct pvpass_switch[count] */
};

/*
 * GET_COUNTERS: every counter of one attachment, by name, so that counters
 * can be added without a new structure. Each entry is a NUL-terminated name
 * (the field names of struct pvpass_stats for the counters it has, in its
 * order, then the newer ones) and its value. count in: room in entries; out:
 * number of counters the module has, which may be larger than the room (then
 * only the first count-in entries are written). Names are never reused for
 * another meaning; a counter may be added at the end of the list.
 * Errors as GET_STATS: ENOENT, EPERM, EINVAL (flags or reserved not zero),
 * EFAULT.
 */
#define PVPASS_COUNTER_NAME_LEN	32
struct pvpass_counter {
	char  name[PVPASS_COUNTER_NAME_LEN];
	__u64 value;
};

struct pvpass_counters {
	__u32 id;		/* in: attachment id on this file */
	__u32 flags;		/* in: 0 or PVPASS_F_ANY_FILE */
	__u32 count;		/* in/out */
	__u32 reserved;		/* in: must be 0 */
	__u64 entries;		/* in: user pointer to struct pvpass_counter[count] */
};

/*
 * The vhost transport (PVPASS_FEAT_VHOST): /dev/pvpass-vhost-net speaks the
 * vhost-net ioctl protocol (<linux/vhost.h>), so QEMU drives it as it drives
 * /dev/vhost-net (-netdev tap,...,vhost=on,vhostfd=N). Before the file is
 * handed to QEMU, its opener names the port with PVPASS_VHOST_SET_PORT on
 * it: which backend (switch) and which MAC (the guest's, as given to
 * QEMU's virtio-net-pci). A file without a port takes one from a vhost
 * rule at its first VHOST_NET_SET_BACKEND (below). Needs CAP_SYS_ADMIN.
 */
/*
 * Multiqueue (QEMU's vhostfds=, one file a queue pair): the first file makes
 * the port; each other file joins it with PVPASS_VHOST_F_JOIN and `id` set
 * to the first file's id (same MAC and switch; ENOENT if that port is gone,
 * ENOSPC beyond 8 queue pairs). Each queue pair is a device of its own
 * (its own id and counters); the port on the switch is the first's id.
 */
#define PVPASS_VHOST_F_JOIN	(1U << 0)
struct pvpass_vhost_port {
	char  backend[PVPASS_NAME_LEN];	/* switch name, zero padded; "" = default */
	__u8  mac[6];			/* unicast, not zero */
	__u8  pad[2];			/* must be 0 */
	__u32 flags;			/* 0 or PVPASS_VHOST_F_JOIN */
	__u32 id;			/* in (JOIN): the port's first queue pair;
					 * out: this queue pair's device id */
};

/*
 * Vhost rules (PVPASS_FEAT_VHOST_RULES), for a /dev/pvpass-vhost-net file
 * that nobody named with PVPASS_VHOST_SET_PORT, as when libvirt opens the
 * device itself (<interface type='ethernet'> with <backend
 * vhost='/dev/pvpass-vhost-net'/> and <target dev='NAME'/>): such a file
 * takes its port at its first VHOST_NET_SET_BACKEND, from the rule of the
 * tap QEMU passes there, found by the tap's interface name. All files with
 * the same tap are the queue pairs of one port (multiqueue: libvirt's
 * <driver queues='N'/>). The tap itself carries nothing: the frames go to
 * the rule's switch.
 *
 * VHOST_RULE_ADD errors: EPERM without CAP_SYS_ADMIN; EINVAL a tap name
 * that is empty, 16 bytes or longer, or has '/', ':' or whitespace, a MAC
 * zero or multicast, flags or reserved not zero; ENODEV no such switch;
 * EEXIST a rule for that tap exists; ENOSPC PVPASS_MAX_VHOST_RULES rules.
 * VHOST_RULE_DEL (by tap; only tap is read): EPERM, EINVAL, ENOENT. Ports
 * made from a rule stay until their files close.
 * On the vhost file, NET_SET_BACKEND of an unnamed file fails with EINVAL
 * when the fd is not a tap and ENOENT when its tap has no rule (a log line
 * says which tap).
 */
#define PVPASS_MAX_VHOST_RULES	64
struct pvpass_vhost_rule {
	char  tap[PVPASS_NAME_LEN];	/* interface name, NUL padded */
	char  backend[PVPASS_NAME_LEN];	/* switch name, NUL padded; "" = default */
	__u8  mac[6];			/* the guest's: unicast, not zero */
	__u8  pad[2];			/* must be 0 */
	__u32 flags;			/* must be 0 */
	__u32 reserved;			/* must be 0 */
};

/* VHOST_RULE_LIST: count and entries as for struct pvpass_list. */
struct pvpass_vhost_rule_list {
	__u32 count;		/* in/out */
	__u32 flags;		/* in: must be 0 */
	__u64 entries;		/* in: user pointer to struct pvpass_vhost_rule[count] */
};

#define PVPASS_IOCTL_MAGIC	0xBC

#define PVPASS_GET_VERSION	_IOR(PVPASS_IOCTL_MAGIC, 0x00, struct pvpass_version)
#define PVPASS_ATTACH		_IOWR(PVPASS_IOCTL_MAGIC, 0x01, struct pvpass_attach)
#define PVPASS_DETACH		_IOW(PVPASS_IOCTL_MAGIC, 0x02, struct pvpass_detach)
#define PVPASS_GET_STATS	_IOWR(PVPASS_IOCTL_MAGIC, 0x03, struct pvpass_stats)
#define PVPASS_LIST		_IOWR(PVPASS_IOCTL_MAGIC, 0x04, struct pvpass_list)
#define PVPASS_SWITCH_ADD	_IOW(PVPASS_IOCTL_MAGIC, 0x05, struct pvpass_switch)
#define PVPASS_SWITCH_DEL	_IOW(PVPASS_IOCTL_MAGIC, 0x06, struct pvpass_switch)
#define PVPASS_SWITCH_LIST	_IOWR(PVPASS_IOCTL_MAGIC, 0x07, struct pvpass_switch_list)
#define PVPASS_GET_COUNTERS	_IOWR(PVPASS_IOCTL_MAGIC, 0x08, struct pvpass_counters)
#define PVPASS_VHOST_RULE_ADD	_IOW(PVPASS_IOCTL_MAGIC, 0x09, struct pvpass_vhost_rule)
#define PVPASS_VHOST_RULE_DEL	_IOW(PVPASS_IOCTL_MAGIC, 0x0a, struct pvpass_vhost_rule)
#define PVPASS_VHOST_RULE_LIST	_IOWR(PVPASS_IOCTL_MAGIC, 0x0b, struct pvpass_vhost_rule_list)
/* On a /dev/pvpass-vhost-net file only. */
#define PVPASS_VHOST_SET_PORT	_IOWR(PVPASS_IOCTL_MAGIC, 0x10, struct pvpass_vhost_port)

#endif /* _UAPI_LINUX_PVPASS_H */
