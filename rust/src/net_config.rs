// SPDX-License-Identifier: GPL-2.0
//! The virtio-net device type (virtio 1.2, section 5.1), whatever the
//! transport: its device id and queues, its feature bits and the
//! dependencies between them ([`feature::DEPENDS`]), and its config space
//! ([`NetConfig`]: the MAC address, the link status, the MTU).

/// virtio device id of a network card.
pub const DEVICE_ID_NET: u32 = 1;
/// Number of virtqueues: one receive queue (0), one transmit queue (1) and
/// the control queue (2), which exists for the driver only once it accepted
/// NET_F_CTRL_VQ (see [`super::virtio_mmio`]).
pub const NUM_QUEUES: usize = 3;
/// Index of the control virtqueue with one queue pair (virtio 1.2, 5.1.2).
pub const CTRL_QUEUE: u16 = 2;

/// Feature bits this device knows by name: the virtio-net ones and, for one
/// place to name them all, the device-independent ones.
pub mod feature {
    pub use super::super::virtio_dev::feature::{RING_EVENT_IDX, VERSION_1};

    /// Device completes partial checksums of transmitted frames.
    pub const NET_F_CSUM: u64 = 1 << 0;
    /// Driver takes received frames with partial checksums.
    pub const NET_F_GUEST_CSUM: u64 = 1 << 1;
    /// Config space has the device's MTU, the largest the driver may use.
    pub const NET_F_MTU: u64 = 1 << 3;
    /// Device has a MAC address in config space.
    pub const NET_F_MAC: u64 = 1 << 5;
    /// Driver takes TCPv4 GSO frames.
    pub const NET_F_GUEST_TSO4: u64 = 1 << 7;
    /// Driver takes TCPv6 GSO frames.
    pub const NET_F_GUEST_TSO6: u64 = 1 << 8;
    /// Device takes TCPv4 GSO frames from the driver.
    pub const NET_F_HOST_TSO4: u64 = 1 << 11;
    /// Device takes TCPv6 GSO frames from the driver.
    pub const NET_F_HOST_TSO6: u64 = 1 << 12;
    /// Driver can merge receive buffers (`num_buffers` in the header).
    pub const NET_F_MRG_RXBUF: u64 = 1 << 15;
    /// Config space has a link status field.
    pub const NET_F_STATUS: u64 = 1 << 16;
    /// The device has a control virtqueue (queue 2 with one queue pair).
    pub const NET_F_CTRL_VQ: u64 = 1 << 17;
    /// The device coalesces its used-buffer notifications as the driver
    /// asks through the control queue (`VIRTIO_NET_CTRL_NOTF_COAL`).
    pub const NET_F_NOTF_COAL: u64 = 1 << 53;

    /// Features that need another one (virtio 1.2, 5.1.3.1): each pair is
    /// (feature, what it requires).
    pub const DEPENDS: [(u64, u64); 5] = [
        (NET_F_GUEST_TSO4, NET_F_GUEST_CSUM),
        (NET_F_GUEST_TSO6, NET_F_GUEST_CSUM),
        (NET_F_HOST_TSO4, NET_F_CSUM),
        (NET_F_HOST_TSO6, NET_F_CSUM),
        (NET_F_NOTF_COAL, NET_F_CTRL_VQ),
    ];
}

/// virtio-net config space: link is up.
pub const NET_S_LINK_UP: u16 = 1;
/// MTU reported in config space when NET_F_MTU is offered.
pub const NET_MTU: u16 = 1500;

/// The config space of one virtio-net device (`struct virtio_net_config`),
/// read-only for the driver: `mac` at 0, `status` at 6 (with
/// NET_F_STATUS), `mtu` at 10 (with NET_F_MTU), every other byte zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    mac: [u8; 6],
    link_up: bool,
}

impl NetConfig {
    /// The config space of a device with MAC address `mac`, link up.
    pub fn new(mac: [u8; 6]) -> Self {
        Self { mac, link_up: true }
    }

    /// The MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Whether the link status says up.
    pub fn link_up(&self) -> bool {
        self.link_up
    }

    /// Set the link state. Returns true if it changed: the caller moves the
    /// config generation on and raises the config interrupt
    /// ([`super::virtio_dev::VirtioDevice::config_changed`]).
    pub fn set_link(&mut self, up: bool) -> bool {
        let changed = self.link_up != up;
        self.link_up = up;
        changed
    }

    /// Byte `i` of the config space of a device offering `device_features`
    /// (fields of features not offered read as zero).
    pub fn config_byte(&self, device_features: u64, i: usize) -> u8 {
        let link = if self.link_up { NET_S_LINK_UP } else { 0 }.to_le_bytes();
        let mtu = NET_MTU.to_le_bytes();
        let has = |f: u64| device_features & f != 0;
        match i {
            0..=5 => self.mac.get(i).copied().unwrap_or(0),
            6 if has(feature::NET_F_STATUS) => link[0],
            7 if has(feature::NET_F_STATUS) => link[1],
            // 8..=9: max_virtqueue_pairs, only with MQ (not offered).
            10 if has(feature::NET_F_MTU) => mtu[0],
            11 if has(feature::NET_F_MTU) => mtu[1],
            _ => 0,
        }
    }

    /// Fill `data` with the config space from byte `offset` on, at any width.
    pub fn read(&self, device_features: u64, offset: usize, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = self.config_byte(device_features, offset.saturating_add(i));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::virtio_dev::{self, status, DeviceEvent, VirtioDevice};
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    fn read(c: &NetConfig, features: u64, offset: usize, len: usize) -> [u8; 16] {
        let mut b = [0xffu8; 16];
        c.read(features, offset, &mut b[..len]);
        b
    }

    #[test]
    fn config_space_mtu_only_when_offered() {
        let c = NetConfig::new(MAC);
        let mac_status = feature::NET_F_MAC | feature::NET_F_STATUS;
        assert_eq!(read(&c, mac_status, 10, 2)[..2], [0, 0]);
        let mtu = read(&c, feature::NET_F_MAC | feature::NET_F_MTU, 10, 2);
        assert_eq!(u16::from_le_bytes([mtu[0], mtu[1]]), 1500);
        assert_eq!(NET_MTU, 1500);
    }

    #[test]
    fn config_space_layout() {
        let mut c = NetConfig::new(MAC);
        let all = feature::NET_F_MAC | feature::NET_F_STATUS | feature::NET_F_MTU;
        let b = read(&c, all, 0, 16);
        assert_eq!(b[..6], MAC);
        assert_eq!(u16::from_le_bytes([b[6], b[7]]), NET_S_LINK_UP);
        assert_eq!(b[8..10], [0, 0]); // max_virtqueue_pairs: no MQ
        assert_eq!(u16::from_le_bytes([b[10], b[11]]), NET_MTU);
        assert_eq!(b[12..], [0; 4]);
        // The MAC is there whatever the features; status only with STATUS.
        let b = read(&c, 0, 0, 16);
        assert_eq!(b[..6], MAC);
        assert_eq!(b[6..], [0; 10]);
        // Any offset and width, far past the fields and at the very end.
        assert_eq!(read(&c, all, 5, 3)[..3], [0x56, 1, 0]);
        assert_eq!(read(&c, all, 0xef8, 8)[..8], [0; 8]);
        assert_eq!(read(&c, all, usize::MAX, 2)[..2], [0; 2]);
        assert_eq!(c.config_byte(all, 6), 1);
        // Link down reads as 0.
        assert!(c.link_up());
        assert!(c.set_link(false));
        assert!(!c.link_up());
        assert_eq!(read(&c, all, 6, 2)[..2], [0, 0]);
        assert_eq!(c.mac(), MAC);
    }

    #[test]
    fn set_link_reports_only_a_change() {
        let mut c = NetConfig::new(MAC);
        assert!(!c.set_link(true));
        assert!(c.set_link(false));
        assert!(!c.set_link(false));
        assert!(c.set_link(true));
        assert!(c.link_up());
    }

    #[test]
    fn feature_names_include_the_device_independent_bits() {
        assert_eq!(feature::VERSION_1, virtio_dev::feature::VERSION_1);
        assert_eq!(feature::RING_EVENT_IDX, virtio_dev::feature::RING_EVENT_IDX);
        let net = [
            feature::NET_F_CSUM,
            feature::NET_F_GUEST_CSUM,
            feature::NET_F_MTU,
            feature::NET_F_MAC,
            feature::NET_F_GUEST_TSO4,
            feature::NET_F_GUEST_TSO6,
            feature::NET_F_HOST_TSO4,
            feature::NET_F_HOST_TSO6,
            feature::NET_F_MRG_RXBUF,
            feature::NET_F_STATUS,
            feature::NET_F_CTRL_VQ,
            feature::NET_F_NOTF_COAL,
        ];
        // Each one bit, all distinct, none of them a device-independent one.
        let all = net.iter().fold(0u64, |acc, &f| {
            assert_eq!(f.count_ones(), 1);
            assert_eq!(acc & f, 0);
            acc | f
        });
        assert_eq!(all & (feature::VERSION_1 | feature::RING_EVENT_IDX), 0);
    }

    #[test]
    fn negotiation_enforces_feature_dependencies() {
        use feature::*;
        let offered =
            NET_F_MAC | NET_F_CSUM | NET_F_GUEST_CSUM | NET_F_HOST_TSO4 | NET_F_GUEST_TSO6;
        for (want, sticks) in [
            (NET_F_HOST_TSO4, false),
            (NET_F_HOST_TSO4 | NET_F_CSUM, true),
            (NET_F_GUEST_TSO6, false),
            (NET_F_GUEST_TSO6 | NET_F_GUEST_CSUM, true),
        ] {
            let mut d = VirtioDevice::<NUM_QUEUES>::new(offered);
            d.set_status(status::ACKNOWLEDGE | status::DRIVER, &DEPENDS);
            d.set_driver_features(0, u32::try_from(want).unwrap());
            d.set_driver_features(1, 1);
            d.set_status(0x3 | status::FEATURES_OK, &DEPENDS);
            assert_eq!(d.status() & status::FEATURES_OK != 0, sticks, "{want:#x}");
        }
        // Every rule of the table, both ways, with everything offered.
        let offered = DEPENDS
            .iter()
            .fold(0, |acc, &(what, needs)| acc | what | needs);
        for &(what, needs) in &DEPENDS {
            for (want, sticks) in [(what, false), (what | needs, true), (needs, true)] {
                let mut d = VirtioDevice::<NUM_QUEUES>::new(offered);
                d.set_driver_features(0, u32::try_from(want & 0xffff_ffff).unwrap());
                d.set_driver_features(1, u32::try_from(want >> 32).unwrap() | 1);
                let event = d.set_status(0x3 | status::FEATURES_OK | status::DRIVER_OK, &DEPENDS);
                let expect = if sticks {
                    DeviceEvent::DriverOk
                } else {
                    DeviceEvent::NeedsReset
                };
                assert_eq!(event, expect, "{want:#x}");
            }
        }
    }
}
