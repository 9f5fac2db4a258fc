//! Rust mirror of `include/uapi/linux/pvpass.h`.
//!
//! The layouts are checked at compile time against the sizes and offsets of
//! the C header; `tests` additionally compiles the real header with `cc` (when
//! a C compiler is available) and compares every number.

#![allow(dead_code)] // the whole contract is mirrored, the tool uses part of it

use nix::{request_code_read, request_code_readwrite, request_code_write};
use std::mem::{offset_of, size_of};

pub const PVPASS_API_VERSION: u32 = 1;
pub const PVPASS_DEVICE_PATH: &str = "/dev/pvpass";
pub const PVPASS_WINDOW_SIZE: u64 = 0x1000;
pub const PVPASS_MAX_ATTACH: u32 = 64;
pub const PVPASS_NAME_LEN: usize = 16;

pub const PVPASS_FEAT_MMIO_ID: u32 = 1 << 0;
pub const PVPASS_FEAT_CONFIG: u32 = 1 << 1;
pub const PVPASS_FEAT_SWITCH: u32 = 1 << 2;
pub const PVPASS_FEAT_RESAMPLE: u32 = 1 << 3;
/// Named switches: SWITCH_ADD, SWITCH_DEL, SWITCH_LIST.
pub const PVPASS_FEAT_SWITCHES: u32 = 1 << 4;
/// GET_COUNTERS: every counter of an attachment, by name.
pub const PVPASS_FEAT_COUNTERS: u32 = 1 << 5;
/// The vhost transport: /dev/pvpass-vhost-net and PVPASS_VHOST_SET_PORT.
pub const PVPASS_FEAT_VHOST: u32 = 1 << 6;
/// Vhost rules: VHOST_RULE_ADD, VHOST_RULE_DEL, VHOST_RULE_LIST (ports of
/// vhost files that nobody named, by tap name: libvirt).
pub const PVPASS_FEAT_VHOST_RULES: u32 = 1 << 7;
/// Most vhost rules the module keeps.
pub const PVPASS_MAX_VHOST_RULES: u32 = 64;

/// ATTACH flag: the GSI is level-triggered; `resample_fd` is an eventfd KVM
/// signals at the guest's EOI (the module then re-asserts the line while the
/// device's InterruptStatus is not zero).
pub const PVPASS_ATTACH_F_RESAMPLE: u32 = 1 << 0;

pub const PVPASS_IOCTL_MAGIC: u8 = 0xBC;
pub const PVPASS_NR_GET_VERSION: u8 = 0x00;
pub const PVPASS_NR_ATTACH: u8 = 0x01;
pub const PVPASS_NR_DETACH: u8 = 0x02;
pub const PVPASS_NR_GET_STATS: u8 = 0x03;
pub const PVPASS_NR_LIST: u8 = 0x04;
pub const PVPASS_NR_SWITCH_ADD: u8 = 0x05;
pub const PVPASS_NR_SWITCH_DEL: u8 = 0x06;
pub const PVPASS_NR_SWITCH_LIST: u8 = 0x07;
pub const PVPASS_NR_GET_COUNTERS: u8 = 0x08;
pub const PVPASS_NR_VHOST_RULE_ADD: u8 = 0x09;
pub const PVPASS_NR_VHOST_RULE_DEL: u8 = 0x0a;
pub const PVPASS_NR_VHOST_RULE_LIST: u8 = 0x0b;
/// On a /dev/pvpass-vhost-net file only.
pub const PVPASS_NR_VHOST_SET_PORT: u8 = 0x10;

/// Flag of DETACH and GET_STATS: the id may belong to another file's
/// attachment (CAP_SYS_ADMIN only, else EPERM).
pub const PVPASS_F_ANY_FILE: u32 = 1 << 0;
/// `PvpassInfo::flags`: the VMM is gone or the attachment was detached from
/// another file; what is left is a husk that its owner still has to DETACH.
pub const PVPASS_INFO_RELEASED: u32 = 1 << 0;
pub const PVPASS_INFO_VHOST: u32 = 1 << 1;
pub const PVPASS_VHOST_F_JOIN: u32 = 1 << 0;

/// Most switches the module has, "default" included.
pub const PVPASS_MAX_SWITCHES: u32 = 16;
/// `PvpassSwitch::flags` (out): the module's own switch, "default".
pub const PVPASS_SWITCH_DEFAULT: u32 = 1 << 0;
/// `PvpassSwitch::flags` (out): the switch has the host interface (pvpsw0).
pub const PVPASS_SWITCH_HOST_PORT: u32 = 1 << 1;
/// `PvpassSwitch::flags` (out): a NIC bound to pvpass, a VMDq pool per device.
pub const PVPASS_SWITCH_NIC: u32 = 1 << 2;
/// Size of `PvpassCounter::name`, NUL included.
pub const PVPASS_COUNTER_NAME_LEN: usize = 32;

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PvpassVersion {
    pub api_version: u32,
    pub features: u32,
    pub window_size: u32,
    pub max_attach: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PvpassAttach {
    pub flags: u32,
    pub vm_fd: i32,
    pub irq_fd: i32,
    pub gsi: u32,
    pub gpa: u64,
    pub mac: [u8; 6],
    pub reserved0: u16,
    pub backend: [u8; PVPASS_NAME_LEN],
    pub id: u32,
    pub resample_fd: i32,
    pub reserved: [u32; 6],
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PvpassDetach {
    pub id: u32,
    pub flags: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PvpassStats {
    pub id: u32,
    pub flags: u32,
    pub mmio_reads: u64,
    pub mmio_writes: u64,
    pub mmio_bad: u64,
    pub notifies: u64,
    pub interrupts: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub drop_tx_bad_chain: u64,
    pub drop_tx_bad_buffer: u64,
    pub drop_rx_no_buffer: u64,
    pub drop_rx_too_small: u64,
    /// 1 once the VMM exited and the module let the VM go.
    pub released: u64,
    pub drop_tx_bad_hdr: u64,
    pub drop_rx_no_offload: u64,
    pub tx_gso_frames: u64,
    pub rx_gso_frames: u64,
    pub rx_csum_completed: u64,
    /// Source MAC refused: another port's own MAC, a group address or all
    /// zeros.
    pub drop_tx_spoofed: u64,
    pub pages_pinned: u64,
    pub pin_hits: u64,
    pub pin_misses: u64,
    pub rx_direct: u64,
    pub rx_deferred: u64,
    pub drop_rx_pin_failed: u64,
    pub map_rereads: u64,
    pub irq_resamples: u64,
    /// Exits that left transmit work for a later one (budget spent).
    pub tx_yields: u64,
    /// Broadcast/multicast over the port's rate limit.
    pub drop_tx_storm: u64,
    /// Frame would need more page pins than one frame's budget.
    pub drop_rx_scattered: u64,
}

/// One attachment as PVPASS_LIST reports it.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PvpassInfo {
    pub id: u32,
    /// `PVPASS_INFO_*`
    pub flags: u32,
    /// Process (tgid) that made the attachment.
    pub owner_pid: i32,
    pub gsi: u32,
    pub gpa: u64,
    pub mac: [u8; 6],
    pub reserved0: u16,
    /// Switch name, NUL-padded.
    pub backend: [u8; PVPASS_NAME_LEN],
    pub reserved: [u64; 3],
}

/// PVPASS_LIST: `count` is the room of `entries` in, the number of
/// attachments out (possibly more than the room; then only the first
/// count-in entries are written).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PvpassList {
    pub count: u32,
    pub flags: u32,
    /// User pointer to `PvpassInfo[count]`.
    pub entries: u64,
}

/// One switch: the name for SWITCH_ADD and SWITCH_DEL, an entry of
/// SWITCH_LIST.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PvpassSwitch {
    /// 1 to 15 characters of `[A-Za-z0-9_.-]`, NUL-padded.
    pub name: [u8; PVPASS_NAME_LEN],
    /// In: 0. Out (LIST): `PVPASS_SWITCH_*`.
    pub flags: u32,
    /// Out (LIST): ports now (devices, host interface).
    pub ports: u32,
    pub reserved: [u64; 2],
}

/// PVPASS_SWITCH_LIST: `count` and `entries` as for `PvpassList`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PvpassSwitchList {
    pub count: u32,
    pub flags: u32,
    /// User pointer to `PvpassSwitch[count]`.
    pub entries: u64,
}

/// One counter of PVPASS_GET_COUNTERS: NUL-terminated name and value.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PvpassCounter {
    pub name: [u8; PVPASS_COUNTER_NAME_LEN],
    pub value: u64,
}

/// PVPASS_GET_COUNTERS: `count` is the room of `entries` in, the number of
/// counters the module has out (possibly more than the room; then only the
/// first count-in entries are written).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PvpassCounters {
    pub id: u32,
    /// 0 or `PVPASS_F_ANY_FILE`.
    pub flags: u32,
    pub count: u32,
    pub reserved: u32,
    /// User pointer to `PvpassCounter[count]`.
    pub entries: u64,
}

/// PVPASS_VHOST_SET_PORT, on a /dev/pvpass-vhost-net file before it is
/// handed to QEMU: which switch and which MAC (the guest's) its port has.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PvpassVhostPort {
    /// Switch name, NUL-padded; all zero = "default".
    pub backend: [u8; PVPASS_NAME_LEN],
    /// Unicast, not zero.
    pub mac: [u8; 6],
    /// Must be 0.
    pub pad: [u8; 2],
    /// Must be 0.
    pub flags: u32,
    /// Out: the device id (as in the kernel log).
    pub id: u32,
}

/// PVPASS_VHOST_RULE_ADD/DEL, and an entry of VHOST_RULE_LIST: the port of
/// the unnamed vhost files whose tap is `tap`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PvpassVhostRule {
    /// Interface name, NUL-padded.
    pub tap: [u8; PVPASS_NAME_LEN],
    /// Switch name, NUL-padded; all zero = "default".
    pub backend: [u8; PVPASS_NAME_LEN],
    /// The guest's MAC: unicast, not zero.
    pub mac: [u8; 6],
    pub pad: [u8; 2],
    pub flags: u32,
    pub reserved: u32,
}

/// PVPASS_VHOST_RULE_LIST: `count` and `entries` as for `PvpassList`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PvpassVhostRuleList {
    pub count: u32,
    pub flags: u32,
    /// User pointer to `PvpassVhostRule[count]`.
    pub entries: u64,
}

// Sizes from the C header (x86_64 and every other 64-bit Linux ABI).
const _: () = assert!(size_of::<PvpassVersion>() == 16);
const _: () = assert!(size_of::<PvpassAttach>() == 80);
const _: () = assert!(size_of::<PvpassDetach>() == 8);
const _: () = assert!(size_of::<PvpassStats>() == 256);
const _: () = assert!(size_of::<PvpassInfo>() == 72);
const _: () = assert!(size_of::<PvpassList>() == 16);
const _: () = assert!(size_of::<PvpassSwitch>() == 40);
const _: () = assert!(size_of::<PvpassSwitchList>() == 16);
const _: () = assert!(size_of::<PvpassCounter>() == 40);
const _: () = assert!(size_of::<PvpassCounters>() == 24);
const _: () = assert!(size_of::<PvpassVhostPort>() == 32);
const _: () = assert!(size_of::<PvpassVhostRule>() == 48);
const _: () = assert!(size_of::<PvpassVhostRuleList>() == 16);
const _: () = assert!(offset_of!(PvpassVhostRule, backend) == 16);
const _: () = assert!(offset_of!(PvpassVhostRule, mac) == 32);
const _: () = assert!(offset_of!(PvpassVhostRule, pad) == 38);
const _: () = assert!(offset_of!(PvpassVhostRule, flags) == 40);
const _: () = assert!(offset_of!(PvpassVhostRule, reserved) == 44);
const _: () = assert!(offset_of!(PvpassVhostRuleList, entries) == 8);

const _: () = assert!(offset_of!(PvpassAttach, vm_fd) == 4);
const _: () = assert!(offset_of!(PvpassAttach, irq_fd) == 8);
const _: () = assert!(offset_of!(PvpassAttach, gsi) == 12);
const _: () = assert!(offset_of!(PvpassAttach, gpa) == 16);
const _: () = assert!(offset_of!(PvpassAttach, mac) == 24);
const _: () = assert!(offset_of!(PvpassAttach, reserved0) == 30);
const _: () = assert!(offset_of!(PvpassAttach, backend) == 32);
const _: () = assert!(offset_of!(PvpassAttach, id) == 48);
const _: () = assert!(offset_of!(PvpassAttach, resample_fd) == 52);
const _: () = assert!(offset_of!(PvpassAttach, reserved) == 56);
const _: () = assert!(offset_of!(PvpassStats, mmio_reads) == 8);
const _: () = assert!(offset_of!(PvpassStats, mmio_writes) == 16);
const _: () = assert!(offset_of!(PvpassStats, mmio_bad) == 24);
const _: () = assert!(offset_of!(PvpassStats, notifies) == 32);
const _: () = assert!(offset_of!(PvpassStats, interrupts) == 40);
const _: () = assert!(offset_of!(PvpassStats, tx_frames) == 48);
const _: () = assert!(offset_of!(PvpassStats, tx_bytes) == 56);
const _: () = assert!(offset_of!(PvpassStats, rx_frames) == 64);
const _: () = assert!(offset_of!(PvpassStats, rx_bytes) == 72);
const _: () = assert!(offset_of!(PvpassStats, drop_tx_bad_chain) == 80);
const _: () = assert!(offset_of!(PvpassStats, drop_tx_bad_buffer) == 88);
const _: () = assert!(offset_of!(PvpassStats, drop_rx_no_buffer) == 96);
const _: () = assert!(offset_of!(PvpassStats, drop_rx_too_small) == 104);
const _: () = assert!(offset_of!(PvpassStats, released) == 112);
const _: () = assert!(offset_of!(PvpassStats, drop_tx_bad_hdr) == 120);
const _: () = assert!(offset_of!(PvpassStats, drop_rx_no_offload) == 128);
const _: () = assert!(offset_of!(PvpassStats, tx_gso_frames) == 136);
const _: () = assert!(offset_of!(PvpassStats, rx_gso_frames) == 144);
const _: () = assert!(offset_of!(PvpassStats, rx_csum_completed) == 152);
const _: () = assert!(offset_of!(PvpassStats, drop_tx_spoofed) == 160);
const _: () = assert!(offset_of!(PvpassStats, pages_pinned) == 168);
const _: () = assert!(offset_of!(PvpassStats, pin_hits) == 176);
const _: () = assert!(offset_of!(PvpassStats, pin_misses) == 184);
const _: () = assert!(offset_of!(PvpassStats, rx_direct) == 192);
const _: () = assert!(offset_of!(PvpassStats, rx_deferred) == 200);
const _: () = assert!(offset_of!(PvpassStats, drop_rx_pin_failed) == 208);
const _: () = assert!(offset_of!(PvpassStats, map_rereads) == 216);
const _: () = assert!(offset_of!(PvpassStats, irq_resamples) == 224);
const _: () = assert!(offset_of!(PvpassStats, tx_yields) == 232);
const _: () = assert!(offset_of!(PvpassStats, drop_tx_storm) == 240);
const _: () = assert!(offset_of!(PvpassStats, drop_rx_scattered) == 248);
const _: () = assert!(offset_of!(PvpassInfo, flags) == 4);
const _: () = assert!(offset_of!(PvpassInfo, owner_pid) == 8);
const _: () = assert!(offset_of!(PvpassInfo, gsi) == 12);
const _: () = assert!(offset_of!(PvpassInfo, gpa) == 16);
const _: () = assert!(offset_of!(PvpassInfo, mac) == 24);
const _: () = assert!(offset_of!(PvpassInfo, reserved0) == 30);
const _: () = assert!(offset_of!(PvpassInfo, backend) == 32);
const _: () = assert!(offset_of!(PvpassInfo, reserved) == 48);
const _: () = assert!(offset_of!(PvpassList, flags) == 4);
const _: () = assert!(offset_of!(PvpassList, entries) == 8);
const _: () = assert!(offset_of!(PvpassSwitch, name) == 0);
const _: () = assert!(offset_of!(PvpassSwitch, flags) == 16);
const _: () = assert!(offset_of!(PvpassSwitch, ports) == 20);
const _: () = assert!(offset_of!(PvpassSwitch, reserved) == 24);
const _: () = assert!(offset_of!(PvpassSwitchList, flags) == 4);
const _: () = assert!(offset_of!(PvpassSwitchList, entries) == 8);
const _: () = assert!(offset_of!(PvpassCounter, name) == 0);
const _: () = assert!(offset_of!(PvpassCounter, value) == 32);
const _: () = assert!(offset_of!(PvpassCounters, flags) == 4);
const _: () = assert!(offset_of!(PvpassCounters, count) == 8);
const _: () = assert!(offset_of!(PvpassCounters, reserved) == 12);
const _: () = assert!(offset_of!(PvpassCounters, entries) == 16);
const _: () = assert!(offset_of!(PvpassVhostPort, backend) == 0);
const _: () = assert!(offset_of!(PvpassVhostPort, mac) == 16);
const _: () = assert!(offset_of!(PvpassVhostPort, pad) == 22);
const _: () = assert!(offset_of!(PvpassVhostPort, flags) == 24);
const _: () = assert!(offset_of!(PvpassVhostPort, id) == 28);

/// Request numbers, built exactly as the header does (_IOR/_IOWR/_IOW).
pub const PVPASS_GET_VERSION: u32 = request_code_read!(
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_GET_VERSION,
    size_of::<PvpassVersion>()
) as u32;
pub const PVPASS_ATTACH: u32 = request_code_readwrite!(
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_ATTACH,
    size_of::<PvpassAttach>()
) as u32;
pub const PVPASS_DETACH: u32 = request_code_write!(
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_DETACH,
    size_of::<PvpassDetach>()
) as u32;
pub const PVPASS_GET_STATS: u32 = request_code_readwrite!(
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_GET_STATS,
    size_of::<PvpassStats>()
) as u32;
pub const PVPASS_LIST: u32 =
    request_code_readwrite!(PVPASS_IOCTL_MAGIC, PVPASS_NR_LIST, size_of::<PvpassList>()) as u32;
pub const PVPASS_SWITCH_ADD: u32 = request_code_write!(
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_SWITCH_ADD,
    size_of::<PvpassSwitch>()
) as u32;
pub const PVPASS_SWITCH_DEL: u32 = request_code_write!(
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_SWITCH_DEL,
    size_of::<PvpassSwitch>()
) as u32;
pub const PVPASS_SWITCH_LIST: u32 = request_code_readwrite!(
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_SWITCH_LIST,
    size_of::<PvpassSwitchList>()
) as u32;
pub const PVPASS_GET_COUNTERS: u32 = request_code_readwrite!(
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_GET_COUNTERS,
    size_of::<PvpassCounters>()
) as u32;
pub const PVPASS_VHOST_RULE_ADD: u32 = request_code_write!(
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_VHOST_RULE_ADD,
    size_of::<PvpassVhostRule>()
) as u32;
pub const PVPASS_VHOST_RULE_DEL: u32 = request_code_write!(
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_VHOST_RULE_DEL,
    size_of::<PvpassVhostRule>()
) as u32;
pub const PVPASS_VHOST_RULE_LIST: u32 = request_code_readwrite!(
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_VHOST_RULE_LIST,
    size_of::<PvpassVhostRuleList>()
) as u32;
pub const PVPASS_VHOST_SET_PORT: u32 = request_code_readwrite!(
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_VHOST_SET_PORT,
    size_of::<PvpassVhostPort>()
) as u32;

nix::ioctl_read!(
    pvpass_get_version,
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_GET_VERSION,
    PvpassVersion
);
nix::ioctl_readwrite!(
    pvpass_attach,
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_ATTACH,
    PvpassAttach
);
nix::ioctl_write_ptr!(
    pvpass_detach,
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_DETACH,
    PvpassDetach
);
nix::ioctl_readwrite!(
    pvpass_get_stats,
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_GET_STATS,
    PvpassStats
);
nix::ioctl_readwrite!(pvpass_list, PVPASS_IOCTL_MAGIC, PVPASS_NR_LIST, PvpassList);
nix::ioctl_write_ptr!(
    pvpass_switch_add,
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_SWITCH_ADD,
    PvpassSwitch
);
nix::ioctl_write_ptr!(
    pvpass_switch_del,
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_SWITCH_DEL,
    PvpassSwitch
);
nix::ioctl_readwrite!(
    pvpass_switch_list,
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_SWITCH_LIST,
    PvpassSwitchList
);
nix::ioctl_readwrite!(
    pvpass_get_counters,
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_GET_COUNTERS,
    PvpassCounters
);
nix::ioctl_write_ptr!(
    pvpass_vhost_rule_add,
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_VHOST_RULE_ADD,
    PvpassVhostRule
);
nix::ioctl_write_ptr!(
    pvpass_vhost_rule_del,
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_VHOST_RULE_DEL,
    PvpassVhostRule
);
nix::ioctl_readwrite!(
    pvpass_vhost_rule_list,
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_VHOST_RULE_LIST,
    PvpassVhostRuleList
);
nix::ioctl_readwrite!(
    pvpass_vhost_set_port,
    PVPASS_IOCTL_MAGIC,
    PVPASS_NR_VHOST_SET_PORT,
    PvpassVhostPort
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    /// Linux asm-generic _IOC: dir<<30 | size<<16 | type<<8 | nr,
    /// with _IOC_WRITE = 1 and _IOC_READ = 2.
    const fn ioc(dir: u32, ty: u32, nr: u32, size: u32) -> u32 {
        (dir << 30) | (size << 16) | (ty << 8) | nr
    }

    #[test]
    fn ioctl_numbers_match_hand_encoding() {
        assert_eq!(PVPASS_GET_VERSION, ioc(2, 0xBC, 0, 16));
        assert_eq!(PVPASS_ATTACH, ioc(3, 0xBC, 1, 80));
        assert_eq!(PVPASS_DETACH, ioc(1, 0xBC, 2, 8));
        assert_eq!(PVPASS_GET_STATS, ioc(3, 0xBC, 3, 256));
        assert_eq!(PVPASS_LIST, ioc(3, 0xBC, 4, 16));
        assert_eq!(PVPASS_SWITCH_ADD, ioc(1, 0xBC, 5, 40));
        assert_eq!(PVPASS_SWITCH_DEL, ioc(1, 0xBC, 6, 40));
        assert_eq!(PVPASS_SWITCH_LIST, ioc(3, 0xBC, 7, 16));
        assert_eq!(PVPASS_GET_COUNTERS, ioc(3, 0xBC, 8, 24));
        assert_eq!(PVPASS_VHOST_SET_PORT, ioc(3, 0xBC, 0x10, 32));
        assert_eq!(PVPASS_VHOST_RULE_ADD, ioc(1, 0xBC, 0x09, 48));
        assert_eq!(PVPASS_VHOST_RULE_DEL, ioc(1, 0xBC, 0x0a, 48));
        assert_eq!(PVPASS_VHOST_RULE_LIST, ioc(3, 0xBC, 0x0b, 16));
        // And the literal values, worked out on paper.
        assert_eq!(PVPASS_GET_VERSION, 0x8010_BC00);
        assert_eq!(PVPASS_ATTACH, 0xC050_BC01);
        assert_eq!(PVPASS_DETACH, 0x4008_BC02);
        assert_eq!(PVPASS_GET_STATS, 0xC100_BC03);
        assert_eq!(PVPASS_LIST, 0xC010_BC04);
        assert_eq!(PVPASS_SWITCH_ADD, 0x4028_BC05);
        assert_eq!(PVPASS_SWITCH_DEL, 0x4028_BC06);
        assert_eq!(PVPASS_SWITCH_LIST, 0xC010_BC07);
        assert_eq!(PVPASS_GET_COUNTERS, 0xC018_BC08);
        assert_eq!(PVPASS_VHOST_SET_PORT, 0xC020_BC10);
        assert_eq!(PVPASS_VHOST_RULE_ADD, 0x4030_BC09);
        assert_eq!(PVPASS_VHOST_RULE_LIST, 0xC010_BC0B);
    }

    fn header_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../include/uapi")
    }

    /// Compile a tiny C program against the real header and compare every
    /// number it prints with the Rust mirror. Skipped (with a note) when the
    /// header or a C compiler is not there.
    #[test]
    fn matches_c_header() {
        let inc = header_dir();
        if !inc.join("linux/pvpass.h").exists() {
            eprintln!("skipped: {} not found", inc.display());
            return;
        }
        let dir = std::env::temp_dir().join(format!("pvpassctl-uapi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("probe.c");
        let bin = dir.join("probe");
        std::fs::write(
            &src,
            r#"#include <stdio.h>
#include <stddef.h>
#include <linux/pvpass.h>
#define P(x) printf(#x " %llu\n", (unsigned long long)(x))
int main(void) {
    P(PVPASS_API_VERSION); P(PVPASS_WINDOW_SIZE); P(PVPASS_MAX_ATTACH);
    P(PVPASS_NAME_LEN); P(PVPASS_FEAT_MMIO_ID); P(PVPASS_FEAT_CONFIG);
    P(PVPASS_FEAT_SWITCH); P(PVPASS_F_ANY_FILE); P(PVPASS_INFO_RELEASED); P(PVPASS_INFO_VHOST); P(PVPASS_VHOST_F_JOIN);
    P(PVPASS_FEAT_RESAMPLE); P(PVPASS_ATTACH_F_RESAMPLE);
    P(PVPASS_GET_VERSION); P(PVPASS_ATTACH); P(PVPASS_DETACH); P(PVPASS_GET_STATS);
    P(PVPASS_LIST);
    P(sizeof(struct pvpass_version)); P(sizeof(struct pvpass_attach));
    P(sizeof(struct pvpass_detach)); P(sizeof(struct pvpass_stats));
    P(sizeof(struct pvpass_info)); P(sizeof(struct pvpass_list));
    P(offsetof(struct pvpass_attach, gpa)); P(offsetof(struct pvpass_attach, mac));
    P(offsetof(struct pvpass_attach, backend)); P(offsetof(struct pvpass_attach, id));
    P(offsetof(struct pvpass_attach, vm_fd)); P(offsetof(struct pvpass_attach, irq_fd));
    P(offsetof(struct pvpass_attach, gsi)); P(offsetof(struct pvpass_attach, reserved0));
    P(offsetof(struct pvpass_attach, resample_fd));
    P(offsetof(struct pvpass_attach, reserved));
    P(offsetof(struct pvpass_stats, flags)); P(offsetof(struct pvpass_stats, mmio_reads));
    P(offsetof(struct pvpass_stats, mmio_writes)); P(offsetof(struct pvpass_stats, mmio_bad));
    P(offsetof(struct pvpass_stats, notifies)); P(offsetof(struct pvpass_stats, interrupts));
    P(offsetof(struct pvpass_stats, tx_frames)); P(offsetof(struct pvpass_stats, tx_bytes));
    P(offsetof(struct pvpass_stats, rx_frames)); P(offsetof(struct pvpass_stats, rx_bytes));
    P(offsetof(struct pvpass_stats, drop_tx_bad_chain));
    P(offsetof(struct pvpass_stats, drop_tx_bad_buffer));
    P(offsetof(struct pvpass_stats, drop_rx_no_buffer));
    P(offsetof(struct pvpass_stats, drop_rx_too_small));
    P(offsetof(struct pvpass_stats, released));
    P(offsetof(struct pvpass_stats, drop_tx_bad_hdr));
    P(offsetof(struct pvpass_stats, drop_rx_no_offload));
    P(offsetof(struct pvpass_stats, tx_gso_frames));
    P(offsetof(struct pvpass_stats, rx_gso_frames));
    P(offsetof(struct pvpass_stats, rx_csum_completed));
    P(offsetof(struct pvpass_stats, drop_tx_spoofed));
    P(offsetof(struct pvpass_stats, pages_pinned));
    P(offsetof(struct pvpass_stats, pin_hits));
    P(offsetof(struct pvpass_stats, pin_misses));
    P(offsetof(struct pvpass_stats, rx_direct));
    P(offsetof(struct pvpass_stats, rx_deferred));
    P(offsetof(struct pvpass_stats, drop_rx_pin_failed));
    P(offsetof(struct pvpass_stats, map_rereads));
    P(offsetof(struct pvpass_stats, irq_resamples));
    P(offsetof(struct pvpass_stats, tx_yields));
    P(offsetof(struct pvpass_stats, drop_tx_storm));
    P(offsetof(struct pvpass_stats, drop_rx_scattered));
    P(offsetof(struct pvpass_info, flags)); P(offsetof(struct pvpass_info, owner_pid));
    P(offsetof(struct pvpass_info, gsi)); P(offsetof(struct pvpass_info, gpa));
    P(offsetof(struct pvpass_info, mac)); P(offsetof(struct pvpass_info, reserved0));
    P(offsetof(struct pvpass_info, backend)); P(offsetof(struct pvpass_info, reserved));
    P(offsetof(struct pvpass_list, flags)); P(offsetof(struct pvpass_list, entries));
    P(sizeof(((struct pvpass_info *)0)->reserved));
    P(PVPASS_FEAT_SWITCHES); P(PVPASS_FEAT_COUNTERS); P(PVPASS_MAX_SWITCHES);
    P(PVPASS_SWITCH_DEFAULT); P(PVPASS_SWITCH_HOST_PORT); P(PVPASS_SWITCH_NIC); P(PVPASS_COUNTER_NAME_LEN);
    P(PVPASS_SWITCH_ADD); P(PVPASS_SWITCH_DEL); P(PVPASS_SWITCH_LIST);
    P(PVPASS_GET_COUNTERS);
    P(sizeof(struct pvpass_switch)); P(sizeof(struct pvpass_switch_list));
    P(sizeof(struct pvpass_counter)); P(sizeof(struct pvpass_counters));
    P(offsetof(struct pvpass_switch, name)); P(offsetof(struct pvpass_switch, flags));
    P(offsetof(struct pvpass_switch, ports)); P(offsetof(struct pvpass_switch, reserved));
    P(offsetof(struct pvpass_switch_list, count));
    P(offsetof(struct pvpass_switch_list, flags));
    P(offsetof(struct pvpass_switch_list, entries));
    P(offsetof(struct pvpass_counter, name)); P(offsetof(struct pvpass_counter, value));
    P(offsetof(struct pvpass_counters, id)); P(offsetof(struct pvpass_counters, flags));
    P(offsetof(struct pvpass_counters, count));
    P(offsetof(struct pvpass_counters, reserved));
    P(offsetof(struct pvpass_counters, entries));
    P(sizeof(((struct pvpass_switch *)0)->name));
    P(sizeof(((struct pvpass_switch *)0)->reserved));
    P(sizeof(((struct pvpass_counter *)0)->name));
    P(PVPASS_FEAT_VHOST); P(PVPASS_VHOST_SET_PORT); P(sizeof(struct pvpass_vhost_port));
    P(offsetof(struct pvpass_vhost_port, backend));
    P(offsetof(struct pvpass_vhost_port, mac));
    P(offsetof(struct pvpass_vhost_port, pad));
    P(offsetof(struct pvpass_vhost_port, flags));
    P(offsetof(struct pvpass_vhost_port, id));
    P(sizeof(((struct pvpass_vhost_port *)0)->backend));
    P(PVPASS_FEAT_VHOST_RULES); P(PVPASS_MAX_VHOST_RULES);
    P(PVPASS_VHOST_RULE_ADD); P(PVPASS_VHOST_RULE_DEL); P(PVPASS_VHOST_RULE_LIST);
    P(sizeof(struct pvpass_vhost_rule)); P(sizeof(struct pvpass_vhost_rule_list));
    P(offsetof(struct pvpass_vhost_rule, tap));
    P(offsetof(struct pvpass_vhost_rule, backend));
    P(offsetof(struct pvpass_vhost_rule, mac));
    P(offsetof(struct pvpass_vhost_rule, pad));
    P(offsetof(struct pvpass_vhost_rule, flags));
    P(offsetof(struct pvpass_vhost_rule, reserved));
    P(offsetof(struct pvpass_vhost_rule_list, count));
    P(offsetof(struct pvpass_vhost_rule_list, flags));
    P(offsetof(struct pvpass_vhost_rule_list, entries));
    return 0;
}
"#,
        )
        .unwrap();
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let status = Command::new(&cc)
            .arg("-I")
            .arg(&inc)
            .arg("-o")
            .arg(&bin)
            .arg(&src)
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => {
                eprintln!("skipped: could not compile the header with {cc}: {other:?}");
                let _ = std::fs::remove_dir_all(&dir);
                return;
            }
        }
        let out = Command::new(&bin).output().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8(out.stdout).unwrap();
        let expect: &[(&str, u64)] = &[
            ("PVPASS_API_VERSION", PVPASS_API_VERSION.into()),
            ("PVPASS_WINDOW_SIZE", PVPASS_WINDOW_SIZE),
            ("PVPASS_MAX_ATTACH", PVPASS_MAX_ATTACH.into()),
            ("PVPASS_NAME_LEN", PVPASS_NAME_LEN as u64),
            ("PVPASS_FEAT_MMIO_ID", PVPASS_FEAT_MMIO_ID.into()),
            ("PVPASS_FEAT_CONFIG", PVPASS_FEAT_CONFIG.into()),
            ("PVPASS_FEAT_SWITCH", PVPASS_FEAT_SWITCH.into()),
            ("PVPASS_F_ANY_FILE", PVPASS_F_ANY_FILE.into()),
            ("PVPASS_INFO_RELEASED", PVPASS_INFO_RELEASED.into()),
            ("PVPASS_INFO_VHOST", PVPASS_INFO_VHOST.into()),
            ("PVPASS_VHOST_F_JOIN", PVPASS_VHOST_F_JOIN.into()),
            ("PVPASS_FEAT_RESAMPLE", PVPASS_FEAT_RESAMPLE.into()),
            ("PVPASS_ATTACH_F_RESAMPLE", PVPASS_ATTACH_F_RESAMPLE.into()),
            ("PVPASS_GET_VERSION", PVPASS_GET_VERSION.into()),
            ("PVPASS_ATTACH", PVPASS_ATTACH.into()),
            ("PVPASS_DETACH", PVPASS_DETACH.into()),
            ("PVPASS_GET_STATS", PVPASS_GET_STATS.into()),
            ("PVPASS_LIST", PVPASS_LIST.into()),
            (
                "sizeof(struct pvpass_version)",
                size_of::<PvpassVersion>() as u64,
            ),
            (
                "sizeof(struct pvpass_attach)",
                size_of::<PvpassAttach>() as u64,
            ),
            (
                "sizeof(struct pvpass_detach)",
                size_of::<PvpassDetach>() as u64,
            ),
            (
                "sizeof(struct pvpass_stats)",
                size_of::<PvpassStats>() as u64,
            ),
            ("sizeof(struct pvpass_info)", size_of::<PvpassInfo>() as u64),
            ("sizeof(struct pvpass_list)", size_of::<PvpassList>() as u64),
            (
                "offsetof(struct pvpass_attach, gpa)",
                offset_of!(PvpassAttach, gpa) as u64,
            ),
            (
                "offsetof(struct pvpass_attach, mac)",
                offset_of!(PvpassAttach, mac) as u64,
            ),
            (
                "offsetof(struct pvpass_attach, backend)",
                offset_of!(PvpassAttach, backend) as u64,
            ),
            (
                "offsetof(struct pvpass_attach, id)",
                offset_of!(PvpassAttach, id) as u64,
            ),
        ];
        // Offsets are listed by field name and expanded below, so every
        // field of the mirror is compared with the C header.
        macro_rules! offsets {
            ($ty:ident, $c:literal: $($f:ident),+) => {
                [$((concat!("offsetof(struct ", $c, ", ", stringify!($f), ")"),
                    offset_of!($ty, $f) as u64)),+]
            };
        }
        let attach_offsets = offsets!(PvpassAttach, "pvpass_attach":
            vm_fd, irq_fd, gsi, reserved0, resample_fd, reserved);
        let stats_offsets = offsets!(PvpassStats, "pvpass_stats":
            flags, mmio_reads, mmio_writes, mmio_bad, notifies, interrupts,
            tx_frames, tx_bytes, rx_frames, rx_bytes, drop_tx_bad_chain,
            drop_tx_bad_buffer, drop_rx_no_buffer, drop_rx_too_small, released,
            drop_tx_bad_hdr, drop_rx_no_offload, tx_gso_frames, rx_gso_frames,
            rx_csum_completed, drop_tx_spoofed, pages_pinned, pin_hits, pin_misses,
            rx_direct, rx_deferred, drop_rx_pin_failed, map_rereads, irq_resamples,
            tx_yields, drop_tx_storm, drop_rx_scattered);
        let info_offsets = offsets!(PvpassInfo, "pvpass_info":
            flags, owner_pid, gsi, gpa, mac, reserved0, backend, reserved);
        let list_offsets = offsets!(PvpassList, "pvpass_list": flags, entries);
        let reserved_size = [(
            "sizeof(((struct pvpass_info *)0)->reserved)",
            std::mem::size_of_val(&PvpassInfo::default().reserved) as u64,
        )];
        let new_numbers: [(&str, u64); 15] = [
            ("PVPASS_FEAT_SWITCHES", PVPASS_FEAT_SWITCHES.into()),
            ("PVPASS_FEAT_COUNTERS", PVPASS_FEAT_COUNTERS.into()),
            ("PVPASS_MAX_SWITCHES", PVPASS_MAX_SWITCHES.into()),
            ("PVPASS_SWITCH_DEFAULT", PVPASS_SWITCH_DEFAULT.into()),
            ("PVPASS_SWITCH_HOST_PORT", PVPASS_SWITCH_HOST_PORT.into()),
            ("PVPASS_SWITCH_NIC", PVPASS_SWITCH_NIC.into()),
            ("PVPASS_COUNTER_NAME_LEN", PVPASS_COUNTER_NAME_LEN as u64),
            ("PVPASS_SWITCH_ADD", PVPASS_SWITCH_ADD.into()),
            ("PVPASS_SWITCH_DEL", PVPASS_SWITCH_DEL.into()),
            ("PVPASS_SWITCH_LIST", PVPASS_SWITCH_LIST.into()),
            ("PVPASS_GET_COUNTERS", PVPASS_GET_COUNTERS.into()),
            (
                "sizeof(struct pvpass_switch)",
                size_of::<PvpassSwitch>() as u64,
            ),
            (
                "sizeof(struct pvpass_switch_list)",
                size_of::<PvpassSwitchList>() as u64,
            ),
            (
                "sizeof(struct pvpass_counter)",
                size_of::<PvpassCounter>() as u64,
            ),
            (
                "sizeof(struct pvpass_counters)",
                size_of::<PvpassCounters>() as u64,
            ),
        ];
        let switch_offsets = offsets!(PvpassSwitch, "pvpass_switch": name, flags, ports, reserved);
        let switch_list_offsets =
            offsets!(PvpassSwitchList, "pvpass_switch_list": count, flags, entries);
        let counter_offsets = offsets!(PvpassCounter, "pvpass_counter": name, value);
        let counters_offsets =
            offsets!(PvpassCounters, "pvpass_counters": id, flags, count, reserved, entries);
        let array_sizes = [
            (
                "sizeof(((struct pvpass_switch *)0)->name)",
                std::mem::size_of_val(&PvpassSwitch::default().name) as u64,
            ),
            (
                "sizeof(((struct pvpass_switch *)0)->reserved)",
                std::mem::size_of_val(&PvpassSwitch::default().reserved) as u64,
            ),
            (
                "sizeof(((struct pvpass_counter *)0)->name)",
                std::mem::size_of_val(&PvpassCounter::default().name) as u64,
            ),
        ];
        let vhost_numbers = [
            ("PVPASS_FEAT_VHOST", PVPASS_FEAT_VHOST.into()),
            ("PVPASS_VHOST_SET_PORT", PVPASS_VHOST_SET_PORT.into()),
            (
                "sizeof(struct pvpass_vhost_port)",
                size_of::<PvpassVhostPort>() as u64,
            ),
        ];
        let vhost_offsets =
            offsets!(PvpassVhostPort, "pvpass_vhost_port": backend, mac, pad, flags, id);
        let vhost_sizes = [(
            "sizeof(((struct pvpass_vhost_port *)0)->backend)",
            std::mem::size_of_val(&PvpassVhostPort::default().backend) as u64,
        )];
        let rule_numbers = [
            ("PVPASS_FEAT_VHOST_RULES", PVPASS_FEAT_VHOST_RULES.into()),
            ("PVPASS_MAX_VHOST_RULES", PVPASS_MAX_VHOST_RULES.into()),
            ("PVPASS_VHOST_RULE_ADD", PVPASS_VHOST_RULE_ADD.into()),
            ("PVPASS_VHOST_RULE_DEL", PVPASS_VHOST_RULE_DEL.into()),
            ("PVPASS_VHOST_RULE_LIST", PVPASS_VHOST_RULE_LIST.into()),
            (
                "sizeof(struct pvpass_vhost_rule)",
                size_of::<PvpassVhostRule>() as u64,
            ),
            (
                "sizeof(struct pvpass_vhost_rule_list)",
                size_of::<PvpassVhostRuleList>() as u64,
            ),
        ];
        let rule_offsets = offsets!(
            PvpassVhostRule,
            "pvpass_vhost_rule": tap,
            backend,
            mac,
            pad,
            flags,
            reserved
        );
        let rule_list_offsets =
            offsets!(PvpassVhostRuleList, "pvpass_vhost_rule_list": count, flags, entries);
        let expect: Vec<(&str, u64)> = expect
            .iter()
            .copied()
            .chain(attach_offsets)
            .chain(stats_offsets)
            .chain(info_offsets)
            .chain(list_offsets)
            .chain(reserved_size)
            .chain(new_numbers)
            .chain(switch_offsets)
            .chain(switch_list_offsets)
            .chain(counter_offsets)
            .chain(counters_offsets)
            .chain(array_sizes)
            .chain(vhost_numbers)
            .chain(vhost_offsets)
            .chain(vhost_sizes)
            .chain(rule_numbers)
            .chain(rule_offsets)
            .chain(rule_list_offsets)
            .collect();
        let lines: Vec<(&str, u64)> = text
            .lines()
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k, v.parse().ok()?))
            })
            .collect();
        assert_eq!(lines.len(), expect.len(), "probe output:\n{text}");
        for ((ck, cv), (rk, rv)) in lines.iter().zip(&expect) {
            assert_eq!(ck, rk);
            assert_eq!(cv, rv, "{ck}: C says {cv:#x}, Rust says {rv:#x}");
        }
    }
}
