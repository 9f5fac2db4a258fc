// SPDX-License-Identifier: GPL-2.0

//! The ioctl contract, mirrored from include/uapi/linux/pvpass.h.
//!
//! Out-of-tree code cannot add the header to the kernel crate's bindings, so
//! the structures are written out here; the size and field offset
//! assertions below and the selftests (which use the C header) keep the two
//! in step. `pvpass_stats`' field order is checked by the counter table
//! (`net::stats`).

use core::mem::{
    offset_of,
    size_of, //
};
use kernel::{
    ioctl::{
        _IOR,
        _IOW,
        _IOWR, //
    },
    transmute::{
        AsBytes,
        FromBytes, //
    }, //
};

pub(crate) const API_VERSION: u32 = 1;
pub(crate) const WINDOW_SIZE: u64 = 0x1000;
pub(crate) const MAX_ATTACH: usize = 64;
pub(crate) const NAME_LEN: usize = 16;

pub(crate) const FEAT_MMIO_ID: u32 = 1 << 0;
pub(crate) const FEAT_CONFIG: u32 = 1 << 1;
pub(crate) const FEAT_SWITCH: u32 = 1 << 2;
pub(crate) const FEAT_RESAMPLE: u32 = 1 << 3;
pub(crate) const FEAT_SWITCHES: u32 = 1 << 4;
pub(crate) const FEAT_COUNTERS: u32 = 1 << 5;
pub(crate) const FEAT_VHOST: u32 = 1 << 6;
pub(crate) const FEAT_VHOST_RULES: u32 = 1 << 7;
pub(crate) const MAX_SWITCHES: usize = 16;
pub(crate) const COUNTER_NAME_LEN: usize = 32;
/// `pvpass_switch::flags` (out).
pub(crate) const SWITCH_DEFAULT: u32 = 1 << 0;
pub(crate) const SWITCH_HOST_PORT: u32 = 1 << 1;
pub(crate) const SWITCH_NIC: u32 = 1 << 2;
/// `PVPASS_ATTACH_F_RESAMPLE`.
pub(crate) const ATTACH_F_RESAMPLE: u32 = 1 << 0;

const MAGIC: u32 = 0xBC;

pub(crate) const GET_VERSION: u32 = _IOR::<Version>(MAGIC, 0x00);
pub(crate) const ATTACH: u32 = _IOWR::<Attach>(MAGIC, 0x01);
pub(crate) const DETACH: u32 = _IOW::<Detach>(MAGIC, 0x02);
pub(crate) const GET_STATS: u32 = _IOWR::<Stats>(MAGIC, 0x03);
pub(crate) const LIST: u32 = _IOWR::<List>(MAGIC, 0x04);
pub(crate) const SWITCH_ADD: u32 = _IOW::<Switch>(MAGIC, 0x05);
pub(crate) const SWITCH_DEL: u32 = _IOW::<Switch>(MAGIC, 0x06);
pub(crate) const SWITCH_LIST: u32 = _IOWR::<List>(MAGIC, 0x07);
pub(crate) const GET_COUNTERS: u32 = _IOWR::<Counters>(MAGIC, 0x08);
pub(crate) const VHOST_RULE_ADD: u32 = _IOW::<VhostRule>(MAGIC, 0x09);
pub(crate) const VHOST_RULE_DEL: u32 = _IOW::<VhostRule>(MAGIC, 0x0a);
pub(crate) const VHOST_RULE_LIST: u32 = _IOWR::<List>(MAGIC, 0x0b);
/// `PVPASS_MAX_VHOST_RULES`.
pub(crate) const MAX_VHOST_RULES: usize = 64;
pub(crate) const VHOST_SET_PORT: u32 = _IOWR::<VhostPort>(MAGIC, 0x10);
/// `pvpass_vhost_port::flags`: join the port of device `id` as its next
/// queue pair.
pub(crate) const VHOST_F_JOIN: u32 = 1 << 0;

/// DETACH / GET_STATS: the id may be another file's (CAP_SYS_ADMIN).
pub(crate) const F_ANY_FILE: u32 = 1 << 0;
/// `Info::flags`: a device on the vhost transport (no window, no GSI).
pub(crate) const INFO_VHOST: u32 = 1 << 1;
/// `Info::flags`: the VM was let go (husk).
pub(crate) const INFO_RELEASED: u32 = 1 << 0;

/// `struct pvpass_info`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Info {
    pub(crate) id: u32,
    pub(crate) flags: u32,
    pub(crate) owner_pid: i32,
    pub(crate) gsi: u32,
    pub(crate) gpa: u64,
    pub(crate) mac: [u8; 6],
    pub(crate) reserved0: u16,
    pub(crate) backend: [u8; NAME_LEN],
    pub(crate) reserved: [u64; 3],
}

/// `struct pvpass_list`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct List {
    pub(crate) count: u32,
    pub(crate) flags: u32,
    pub(crate) entries: u64,
}

const _: () = assert!(size_of::<Info>() == 72);
const _: () = assert!(offset_of!(Info, owner_pid) == 8);
const _: () = assert!(offset_of!(Info, gpa) == 16);
const _: () = assert!(offset_of!(Info, mac) == 24);
const _: () = assert!(offset_of!(Info, backend) == 32);
const _: () = assert!(offset_of!(Info, reserved) == 48);
// `struct pvpass_list` and `struct pvpass_switch_list` are the same.
const _: () = assert!(size_of::<List>() == 16);
const _: () = assert!(offset_of!(List, entries) == 8);
// SAFETY: `Info` is `repr(C)` of integers and byte arrays without padding
// (72 bytes, asserted above): every byte is initialised.
unsafe impl AsBytes for Info {}
// SAFETY: `List` is `repr(C)`, two `u32`s and a `u64`, no padding: any bit
// pattern is valid.
unsafe impl FromBytes for List {}
// SAFETY: As above: no padding, so every byte is initialised.
unsafe impl AsBytes for List {}

/// `struct pvpass_version`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Version {
    pub(crate) api_version: u32,
    pub(crate) features: u32,
    pub(crate) window_size: u32,
    pub(crate) max_attach: u32,
}

/// `struct pvpass_attach`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Attach {
    pub(crate) flags: u32,
    pub(crate) vm_fd: i32,
    pub(crate) irq_fd: i32,
    pub(crate) gsi: u32,
    pub(crate) gpa: u64,
    pub(crate) mac: [u8; 6],
    pub(crate) reserved0: u16,
    pub(crate) backend: [u8; NAME_LEN],
    pub(crate) id: u32,
    pub(crate) resample_fd: i32,
    pub(crate) reserved: [u32; 6],
}

/// `struct pvpass_detach`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Detach {
    pub(crate) id: u32,
    pub(crate) flags: u32,
}

/// `struct pvpass_stats`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Stats {
    pub(crate) id: u32,
    pub(crate) flags: u32,
    pub(crate) mmio_reads: u64,
    pub(crate) mmio_writes: u64,
    pub(crate) mmio_bad: u64,
    pub(crate) notifies: u64,
    pub(crate) interrupts: u64,
    pub(crate) tx_frames: u64,
    pub(crate) tx_bytes: u64,
    pub(crate) rx_frames: u64,
    pub(crate) rx_bytes: u64,
    pub(crate) drop_tx_bad_chain: u64,
    pub(crate) drop_tx_bad_buffer: u64,
    pub(crate) drop_rx_no_buffer: u64,
    pub(crate) drop_rx_too_small: u64,
    pub(crate) released: u64,
    pub(crate) drop_tx_bad_hdr: u64,
    pub(crate) drop_rx_no_offload: u64,
    pub(crate) tx_gso_frames: u64,
    pub(crate) rx_gso_frames: u64,
    pub(crate) rx_csum_completed: u64,
    pub(crate) drop_tx_spoofed: u64,
    pub(crate) pages_pinned: u64,
    pub(crate) pin_hits: u64,
    pub(crate) pin_misses: u64,
    pub(crate) rx_direct: u64,
    pub(crate) rx_deferred: u64,
    pub(crate) drop_rx_pin_failed: u64,
    pub(crate) map_rereads: u64,
    pub(crate) irq_resamples: u64,
    pub(crate) tx_yields: u64,
    pub(crate) drop_tx_storm: u64,
    pub(crate) drop_rx_scattered: u64,
}

/// `struct pvpass_switch`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Switch {
    pub(crate) name: [u8; NAME_LEN],
    pub(crate) flags: u32,
    pub(crate) ports: u32,
    pub(crate) reserved: [u64; 2],
}

/// `struct pvpass_counter`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Counter {
    pub(crate) name: [u8; COUNTER_NAME_LEN],
    pub(crate) value: u64,
}

/// `struct pvpass_counters`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Counters {
    pub(crate) id: u32,
    pub(crate) flags: u32,
    pub(crate) count: u32,
    pub(crate) reserved: u32,
    pub(crate) entries: u64,
}

const _: () = assert!(size_of::<Version>() == 16);
const _: () = assert!(offset_of!(Version, max_attach) == 12);
const _: () = assert!(size_of::<Attach>() == 80);
const _: () = assert!(offset_of!(Attach, gsi) == 12);
const _: () = assert!(offset_of!(Attach, gpa) == 16);
const _: () = assert!(offset_of!(Attach, mac) == 24);
const _: () = assert!(offset_of!(Attach, reserved0) == 30);
const _: () = assert!(offset_of!(Attach, backend) == 32);
const _: () = assert!(offset_of!(Attach, id) == 48);
const _: () = assert!(offset_of!(Attach, resample_fd) == 52);
const _: () = assert!(offset_of!(Attach, reserved) == 56);
const _: () = assert!(size_of::<Detach>() == 8);
const _: () = assert!(size_of::<Stats>() == 256);
const _: () = assert!(size_of::<Switch>() == 40);
const _: () = assert!(offset_of!(Switch, flags) == 16);
const _: () = assert!(offset_of!(Switch, ports) == 20);
const _: () = assert!(offset_of!(Switch, reserved) == 24);
const _: () = assert!(size_of::<Counter>() == 40);
const _: () = assert!(offset_of!(Counter, value) == 32);
const _: () = assert!(size_of::<Counters>() == 24);
const _: () = assert!(offset_of!(Counters, count) == 8);
const _: () = assert!(offset_of!(Counters, entries) == 16);

// SAFETY: `Switch` is `repr(C)` of a byte array and integers without padding
// (40 bytes, asserted above): any bit pattern is valid.
unsafe impl FromBytes for Switch {}
// SAFETY: As above: no padding, so every byte is initialised.
unsafe impl AsBytes for Switch {}
// SAFETY: `Counter` is a byte array and a `u64` without padding (asserted
// above): every byte is initialised.
unsafe impl AsBytes for Counter {}
// SAFETY: `Counters` is `repr(C)` of integers without padding (asserted
// above): any bit pattern is valid.
unsafe impl FromBytes for Counters {}
// SAFETY: As above: no padding, so every byte is initialised.
unsafe impl AsBytes for Counters {}

// SAFETY: `Version` is `repr(C)` with only integer fields and no padding
// (16 bytes, asserted above), so any bit pattern is valid and every byte is
// initialised.
unsafe impl FromBytes for Version {}
// SAFETY: As above: no padding, integer fields only.
unsafe impl AsBytes for Version {}
// SAFETY: `Attach` is `repr(C)` of integers and byte arrays laid out without
// padding (80 bytes, asserted above): any bit pattern is valid.
unsafe impl FromBytes for Attach {}
// SAFETY: As above: no padding, so every byte is initialised.
unsafe impl AsBytes for Attach {}
// SAFETY: `Detach` is two `u32`s: any bit pattern is valid.
unsafe impl FromBytes for Detach {}
// SAFETY: `Stats` is `repr(C)` of integers without padding (asserted above).
unsafe impl FromBytes for Stats {}
// SAFETY: As above: no padding, so every byte is initialised.
unsafe impl AsBytes for Stats {}

/// `struct pvpass_vhost_port`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct VhostPort {
    pub(crate) backend: [u8; NAME_LEN],
    pub(crate) mac: [u8; 6],
    pub(crate) pad: [u8; 2],
    pub(crate) flags: u32,
    pub(crate) id: u32,
}

const _: () = assert!(size_of::<VhostPort>() == 32);
const _: () = assert!(offset_of!(VhostPort, flags) == 24);

// SAFETY: `VhostPort` is `repr(C)` of byte arrays and integers without
// padding (32 bytes, asserted above): any bit pattern is valid.
unsafe impl FromBytes for VhostPort {}
// SAFETY: As above: no padding, so every byte is initialised.
unsafe impl AsBytes for VhostPort {}

/// `struct pvpass_vhost_rule`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct VhostRule {
    pub(crate) tap: [u8; NAME_LEN],
    pub(crate) backend: [u8; NAME_LEN],
    pub(crate) mac: [u8; 6],
    pub(crate) pad: [u8; 2],
    pub(crate) flags: u32,
    pub(crate) reserved: u32,
}

const _: () = assert!(size_of::<VhostRule>() == 48);
const _: () = assert!(offset_of!(VhostRule, backend) == 16);
const _: () = assert!(offset_of!(VhostRule, mac) == 32);
const _: () = assert!(offset_of!(VhostRule, flags) == 40);
const _: () = assert!(offset_of!(VhostRule, reserved) == 44);

// SAFETY: `VhostRule` is `repr(C)` of byte arrays and integers without
// padding (48 bytes, asserted above): any bit pattern is valid.
unsafe impl FromBytes for VhostRule {}
// SAFETY: As above: no padding, so every byte is initialised.
unsafe impl AsBytes for VhostRule {}

/// The vhost-net ioctl protocol, mirrored from include/uapi/linux/vhost.h
/// and vhost_types.h (not in the kernel crate's bindings either).
pub(crate) mod vhost {
    use core::mem::size_of;
    use kernel::{
        ioctl::{
            _IO,
            _IOR,
            _IOW,
            _IOWR, //
        },
        transmute::{
            AsBytes,
            FromBytes, //
        }, //
    };

    const VIRTIO: u32 = 0xAF;

    pub(crate) const GET_FEATURES: u32 = _IOR::<u64>(VIRTIO, 0x00);
    pub(crate) const SET_FEATURES: u32 = _IOW::<u64>(VIRTIO, 0x00);
    pub(crate) const SET_OWNER: u32 = _IO(VIRTIO, 0x01);
    pub(crate) const RESET_OWNER: u32 = _IO(VIRTIO, 0x02);
    pub(crate) const SET_MEM_TABLE: u32 = _IOW::<Memory>(VIRTIO, 0x03);
    pub(crate) const SET_LOG_BASE: u32 = _IOW::<u64>(VIRTIO, 0x04);
    pub(crate) const SET_LOG_FD: u32 = _IOW::<i32>(VIRTIO, 0x07);
    pub(crate) const SET_VRING_NUM: u32 = _IOW::<VringState>(VIRTIO, 0x10);
    pub(crate) const SET_VRING_ADDR: u32 = _IOW::<VringAddr>(VIRTIO, 0x11);
    pub(crate) const SET_VRING_BASE: u32 = _IOW::<VringState>(VIRTIO, 0x12);
    pub(crate) const GET_VRING_BASE: u32 = _IOWR::<VringState>(VIRTIO, 0x12);
    pub(crate) const SET_VRING_KICK: u32 = _IOW::<VringFile>(VIRTIO, 0x20);
    pub(crate) const SET_VRING_CALL: u32 = _IOW::<VringFile>(VIRTIO, 0x21);
    pub(crate) const SET_VRING_ERR: u32 = _IOW::<VringFile>(VIRTIO, 0x22);
    pub(crate) const SET_VRING_BUSYLOOP_TIMEOUT: u32 = _IOW::<VringState>(VIRTIO, 0x23);
    pub(crate) const GET_VRING_BUSYLOOP_TIMEOUT: u32 = _IOW::<VringState>(VIRTIO, 0x24);
    pub(crate) const SET_BACKEND_FEATURES: u32 = _IOW::<u64>(VIRTIO, 0x25);
    pub(crate) const GET_BACKEND_FEATURES: u32 = _IOR::<u64>(VIRTIO, 0x26);
    pub(crate) const NET_SET_BACKEND: u32 = _IOW::<VringFile>(VIRTIO, 0x30);

    /// `VHOST_VRING_F_LOG` (a bit number): log the used ring's writes.
    pub(crate) const VRING_F_LOG: u32 = 1 << 0;

    /// `struct vhost_memory`'s head; `nregions` regions follow.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    pub(crate) struct Memory {
        pub(crate) nregions: u32,
        pub(crate) padding: u32,
    }

    /// `struct vhost_memory_region`.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    pub(crate) struct MemoryRegion {
        pub(crate) guest_phys_addr: u64,
        pub(crate) memory_size: u64,
        pub(crate) userspace_addr: u64,
        pub(crate) flags_padding: u64,
    }

    /// `struct vhost_vring_state`.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    pub(crate) struct VringState {
        pub(crate) index: u32,
        pub(crate) num: u32,
    }

    /// `struct vhost_vring_file`.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    pub(crate) struct VringFile {
        pub(crate) index: u32,
        pub(crate) fd: i32,
    }

    /// `struct vhost_vring_addr`: the rings at the owner's user addresses.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    pub(crate) struct VringAddr {
        pub(crate) index: u32,
        pub(crate) flags: u32,
        pub(crate) desc_user_addr: u64,
        pub(crate) used_user_addr: u64,
        pub(crate) avail_user_addr: u64,
        pub(crate) log_guest_addr: u64,
    }

    const _: () = assert!(size_of::<Memory>() == 8);
    const _: () = assert!(size_of::<MemoryRegion>() == 32);
    const _: () = assert!(size_of::<VringState>() == 8);
    const _: () = assert!(size_of::<VringFile>() == 8);
    const _: () = assert!(size_of::<VringAddr>() == 40);

    // SAFETY: Each is `repr(C)` of integers without padding (sizes asserted
    // above): any bit pattern is valid, and every byte is initialised.
    unsafe impl FromBytes for Memory {}
    // SAFETY: As above.
    unsafe impl FromBytes for MemoryRegion {}
    // SAFETY: As above.
    unsafe impl FromBytes for VringState {}
    // SAFETY: As above.
    unsafe impl AsBytes for VringState {}
    // SAFETY: As above.
    unsafe impl FromBytes for VringFile {}
    // SAFETY: As above.
    unsafe impl FromBytes for VringAddr {}
}
