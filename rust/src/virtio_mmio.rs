// SPDX-License-Identifier: GPL-2.0
//! The virtio-mmio (version 2) register file of one virtio-net device.
//!
//! This is what a guest's stock `virtio_mmio` driver talks to: the register
//! decoding of the 4 KiB window (virtio 1.2, section 4.2.2) on top of the
//! device state of [`super::virtio_dev`] (status and reset, feature
//! negotiation, queue registers, interrupt status) and the virtio-net config
//! space of [`super::net_config`]. Only the selectors (DeviceFeaturesSel,
//! DriverFeaturesSel, QueueSel) and the identification registers are
//! virtio-mmio's own. It is pure logic: the module feeds it the guest's MMIO
//! accesses (at most 8 bytes each) and acts on the [`MmioEvent`] a write
//! returns. Every offset of the window answers: unknown or badly sized
//! accesses read as zero, are ignored on write, and are reported as
//! [`MmioError`] so the caller can count them.
//!
//! A hostile driver is held to the spec (the rules are
//! [`super::virtio_dev`]'s):
//! - QueueReady takes 1 only for a QueueNum that is a power of two in
//!   `1..=QueueNumMax`; otherwise the queue stays not ready and the device
//!   sets DEVICE_NEEDS_RESET ([`MmioEvent::NeedsReset`]).
//! - QueueReady written 0 stops the queue; on a live device (DRIVER_OK) the
//!   caller gets [`MmioEvent::QueueStopped`] and must stop using the queue's
//!   buffers, which the driver may now reuse.
//! - DRIVER_OK is taken only once FEATURES_OK has stuck; before that (never
//!   written, or refused) the bit does not stick, no [`MmioEvent::DriverOk`]
//!   is returned and the device sets DEVICE_NEEDS_RESET
//!   ([`MmioEvent::NeedsReset`]).
//!
//! The control queue ([`CTRL_QUEUE`]) exists for the driver only once
//! FEATURES_OK stuck with NET_F_CTRL_VQ among its features: before that,
//! and for a driver that did not accept it, the window is the two-queue
//! device it always was (QueueNumMax 0, its registers ignored, no notify).

use super::net_config::NetConfig;
use super::virtio_dev::{with_half, DeviceEvent, VirtioDevice};

// Re-exported for the module's imports, and all used here: the kernel
// includes this file in a crate-private module, where an unused `pub use`
// warns. `status` is `super::virtio_dev::status`, `NET_MTU` and
// `NET_S_LINK_UP` are in `super::net_config`.
pub use super::net_config::{feature, CTRL_QUEUE, DEVICE_ID_NET, NUM_QUEUES};
pub use super::virtio_dev::{QueueRegs, QUEUE_NUM_MAX};

/// Size of the MMIO window of one device.
pub const WINDOW_SIZE: u64 = 0x1000;
/// "virt" in little-endian, the virtio-mmio magic value.
pub const MAGIC: u32 = 0x7472_6976;
/// virtio-mmio transport version implemented here.
pub const VERSION: u32 = 2;
/// Vendor id reported to the guest: "PVPS" in little-endian.
pub const VENDOR_ID: u32 = 0x5350_5650;

/// Register offsets (virtio 1.2, section 4.2.2).
pub mod reg {
    /// MagicValue (R).
    pub const MAGIC: u64 = 0x000;
    /// Version (R).
    pub const VERSION: u64 = 0x004;
    /// DeviceID (R).
    pub const DEVICE_ID: u64 = 0x008;
    /// VendorID (R).
    pub const VENDOR_ID: u64 = 0x00c;
    /// DeviceFeatures (R).
    pub const DEVICE_FEATURES: u64 = 0x010;
    /// DeviceFeaturesSel (W).
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    /// DriverFeatures (W).
    pub const DRIVER_FEATURES: u64 = 0x020;
    /// DriverFeaturesSel (W).
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    /// QueueSel (W).
    pub const QUEUE_SEL: u64 = 0x030;
    /// QueueNumMax (R).
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    /// QueueNum (W).
    pub const QUEUE_NUM: u64 = 0x038;
    /// QueueReady (RW).
    pub const QUEUE_READY: u64 = 0x044;
    /// QueueNotify (W).
    pub const QUEUE_NOTIFY: u64 = 0x050;
    /// InterruptStatus (R).
    pub const INTERRUPT_STATUS: u64 = 0x060;
    /// InterruptACK (W).
    pub const INTERRUPT_ACK: u64 = 0x064;
    /// Status (RW).
    pub const STATUS: u64 = 0x070;
    /// QueueDescLow (W).
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    /// QueueDescHigh (W).
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    /// QueueDriverLow (W).
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    /// QueueDriverHigh (W).
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    /// QueueDeviceLow (W).
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    /// QueueDeviceHigh (W).
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    /// ConfigGeneration (R).
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    /// Start of the device-specific config space.
    pub const CONFIG: u64 = 0x100;
}

/// Why an access was not a well-formed register access. The access is still
/// answered (reads return zero, writes are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioError {
    /// Offset past the window.
    OutOfWindow,
    /// A register accessed with a size other than 4 or at a misaligned offset.
    BadWidth,
    /// No register at this offset, or a write to a read-only register.
    NoRegister,
    /// Config space write: the virtio-net config is read-only.
    ReadOnlyConfig,
}

/// What a guest write asks the device to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioEvent {
    /// Nothing for the caller to do.
    None,
    /// The driver notified queue `n` (QueueNotify).
    Notify(u16),
    /// The driver reset the device (Status written with 0): drop all queue
    /// state and in-flight buffers.
    Reset,
    /// The driver set DRIVER_OK, after FEATURES_OK was accepted: the queues
    /// marked ready may be used.
    DriverOk,
    /// The driver marked the selected queue ready (its QueueNum is valid).
    QueueReady(u16),
    /// The driver acknowledged interrupts (the bits written).
    InterruptAck(u32),
    /// The driver wrote 0 to QueueReady of queue `n`, which was ready, on a
    /// live device (DRIVER_OK): stop the queue and release what it holds
    /// (its buffers and pins) before the driver takes them back.
    QueueStopped(u16),
    /// The write broke a rule of the virtio spec and the device set
    /// DEVICE_NEEDS_RESET (and raised the config-change interrupt bit, see
    /// [`MmioDevice::set_needs_reset`]): signal the interrupt.
    NeedsReset,
}

impl From<DeviceEvent> for MmioEvent {
    fn from(e: DeviceEvent) -> Self {
        match e {
            DeviceEvent::None => Self::None,
            DeviceEvent::Reset => Self::Reset,
            DeviceEvent::DriverOk => Self::DriverOk,
            DeviceEvent::QueueReady(n) => Self::QueueReady(n),
            DeviceEvent::QueueStopped(n) => Self::QueueStopped(n),
            DeviceEvent::NeedsReset => Self::NeedsReset,
        }
    }
}

/// The register file of one virtio-net device on virtio-mmio v2.
#[derive(Debug, Clone)]
pub struct MmioDevice {
    dev: VirtioDevice<NUM_QUEUES>,
    net: NetConfig,
    device_features_sel: u32,
    driver_features_sel: u32,
    queue_sel: u32,
}

/// Offset of the config space as an index.
const CONFIG_START: usize = 0x100;

/// Check that `len` bytes at `offset` are a possible access (1 to 8 bytes,
/// wholly inside the window) and return the offset as an index.
fn in_window(offset: u64, len: usize) -> Result<usize, MmioError> {
    let start = usize::try_from(offset).map_err(|_| MmioError::OutOfWindow)?;
    let end = start.checked_add(len).ok_or(MmioError::OutOfWindow)?;
    let window = usize::try_from(WINDOW_SIZE).map_err(|_| MmioError::OutOfWindow)?;
    if len == 0 || len > 8 || end > window {
        return Err(MmioError::OutOfWindow);
    }
    Ok(start)
}

impl MmioDevice {
    /// A device offering `device_features` (VERSION_1 is always added) with
    /// MAC address `mac`, link up.
    pub fn new(device_features: u64, mac: [u8; 6]) -> Self {
        Self {
            dev: VirtioDevice::new(device_features),
            net: NetConfig::new(mac),
            device_features_sel: 0,
            driver_features_sel: 0,
            queue_sel: 0,
        }
    }

    /// Features the device offers.
    pub fn device_features(&self) -> u64 {
        self.dev.device_features()
    }

    /// Features the driver accepted (meaningful once FEATURES_OK is set).
    pub fn driver_features(&self) -> u64 {
        self.dev.driver_features()
    }

    /// Device status register.
    pub fn status(&self) -> u32 {
        self.dev.status()
    }

    /// The registers of queue `n`, if it exists for the driver (see the
    /// module documentation for the control queue).
    pub fn queue(&self, n: u16) -> Option<&QueueRegs> {
        self.dev.queue(n).filter(|_| self.queue_visible(n))
    }

    /// Whether queue `n` exists for the driver: the receive and transmit
    /// queues always, the control queue once FEATURES_OK stuck with
    /// NET_F_CTRL_VQ accepted.
    fn queue_visible(&self, n: u16) -> bool {
        n < CTRL_QUEUE
            || (n == CTRL_QUEUE
                && self.dev.status() & super::virtio_dev::status::FEATURES_OK != 0
                && self.dev.driver_features() & feature::NET_F_CTRL_VQ != 0)
    }

    /// The MAC address in config space.
    pub fn mac(&self) -> [u8; 6] {
        self.net.mac()
    }

    /// InterruptStatus: the bits the driver has not acknowledged yet. While
    /// it is not zero a level-triggered line stays asserted.
    pub fn interrupt_status(&self) -> u32 {
        self.dev.interrupt_status()
    }

    /// Raise interrupt status bits (1: used buffer, 2: config change; see
    /// [`super::virtio_dev::interrupt`]). Returns true if the bits were not
    /// already pending.
    pub fn raise_interrupt(&mut self, bits: u32) -> bool {
        self.dev.raise_interrupt(bits)
    }

    /// Mark the device broken (DEVICE_NEEDS_RESET) and raise a config
    /// interrupt so the driver notices.
    pub fn set_needs_reset(&mut self) {
        self.dev.set_needs_reset();
    }

    /// Change the link state in config space.
    pub fn set_link(&mut self, up: bool) {
        if self.net.set_link(up) {
            self.dev.config_changed();
        }
    }

    /// The queue QueueSel selects, as a queue index (it may not exist).
    fn selected(&self) -> Option<u16> {
        u16::try_from(self.queue_sel).ok()
    }

    fn selected_queue(&self) -> Option<&QueueRegs> {
        self.queue(self.selected()?)
    }

    fn read_reg(&self, offset: u64) -> Result<u32, MmioError> {
        Ok(match offset {
            reg::MAGIC => MAGIC,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => DEVICE_ID_NET,
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => self.dev.device_features_word(self.device_features_sel),
            reg::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |_| QUEUE_NUM_MAX),
            reg::QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready)),
            reg::INTERRUPT_STATUS => self.dev.interrupt_status(),
            reg::STATUS => self.dev.status(),
            reg::CONFIG_GENERATION => self.dev.config_generation(),
            _ => return Err(MmioError::NoRegister),
        })
    }

    /// Serve a guest read of `data.len()` bytes at `offset` in the window.
    /// `data` is always filled (zeros on error).
    pub fn read(&self, offset: u64, data: &mut [u8]) -> Result<(), MmioError> {
        data.fill(0);
        let start = in_window(offset, data.len())?;
        if let Some(cfg) = start.checked_sub(CONFIG_START) {
            self.net.read(self.dev.device_features(), cfg, data);
            return Ok(());
        }
        let len = data.len();
        if len != 4 || offset % 4 != 0 {
            return Err(MmioError::BadWidth);
        }
        let value = self.read_reg(offset)?;
        data.copy_from_slice(&value.to_le_bytes());
        Ok(())
    }

    /// Serve a guest write of `data` at `offset` in the window.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<MmioEvent, MmioError> {
        if in_window(offset, data.len())? >= CONFIG_START {
            return Err(MmioError::ReadOnlyConfig);
        }
        let value = match <[u8; 4]>::try_from(data) {
            Ok(bytes) if offset % 4 == 0 => u32::from_le_bytes(bytes),
            _ => return Err(MmioError::BadWidth),
        };
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::DRIVER_FEATURES => self
                .dev
                .set_driver_features(self.driver_features_sel, value),
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NUM
            | reg::QUEUE_DESC_LOW
            | reg::QUEUE_DESC_HIGH
            | reg::QUEUE_DRIVER_LOW
            | reg::QUEUE_DRIVER_HIGH
            | reg::QUEUE_DEVICE_LOW
            | reg::QUEUE_DEVICE_HIGH => self.write_queue_layout(offset, value),
            reg::QUEUE_READY => {
                let event = self
                    .selected()
                    .filter(|&n| self.queue_visible(n))
                    .map_or(DeviceEvent::None, |n| {
                        self.dev.set_queue_ready(n, value & 1 != 0)
                    });
                return Ok(event.into());
            }
            reg::QUEUE_NOTIFY => {
                // Only queues that exist, are ready, on a live device.
                let [lo, hi, _, _] = value.to_le_bytes();
                let n = u16::from_le_bytes([lo, hi]);
                return Ok(if self.queue_visible(n) && self.dev.queue_notifiable(n) {
                    MmioEvent::Notify(n)
                } else {
                    MmioEvent::None
                });
            }
            reg::INTERRUPT_ACK => {
                self.dev.ack_interrupt(value);
                return Ok(MmioEvent::InterruptAck(value));
            }
            reg::STATUS => return Ok(self.write_status(value)),
            _ => return Err(MmioError::NoRegister),
        }
        Ok(MmioEvent::None)
    }

    /// A write to QueueNum or one half of a queue address, for the selected
    /// queue. The device ignores it for a queue that does not exist or is
    /// ready (its layout is frozen, virtio 4.2.2.2).
    fn write_queue_layout(&mut self, offset: u64, value: u32) {
        let Some(n) = self.selected() else {
            return;
        };
        let Some(q) = self.queue(n).copied() else {
            return;
        };
        let dev = &mut self.dev;
        // Each setter returns false, having changed nothing, for a ready queue.
        match offset {
            reg::QUEUE_NUM => dev.set_queue_num(n, value),
            reg::QUEUE_DESC_LOW => dev.set_queue_desc(n, with_half(q.desc, false, value)),
            reg::QUEUE_DESC_HIGH => dev.set_queue_desc(n, with_half(q.desc, true, value)),
            reg::QUEUE_DRIVER_LOW => dev.set_queue_driver(n, with_half(q.driver, false, value)),
            reg::QUEUE_DRIVER_HIGH => dev.set_queue_driver(n, with_half(q.driver, true, value)),
            reg::QUEUE_DEVICE_LOW => dev.set_queue_device(n, with_half(q.device, false, value)),
            _ => dev.set_queue_device(n, with_half(q.device, true, value)),
        };
    }

    fn write_status(&mut self, value: u32) -> MmioEvent {
        let event = self.dev.set_status(value, &feature::DEPENDS);
        if event == DeviceEvent::Reset {
            // The transport's own registers reset too, and so does the
            // config space (link up again).
            self.device_features_sel = 0;
            self.driver_features_sel = 0;
            self.queue_sel = 0;
            self.net = NetConfig::new(self.net.mac());
        }
        event.into()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::net_config::NET_S_LINK_UP;
    use super::super::virtio_dev::status;
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    fn dev() -> MmioDevice {
        MmioDevice::new(feature::NET_F_MAC | feature::NET_F_STATUS, MAC)
    }

    fn rd(d: &MmioDevice, off: u64) -> u32 {
        let mut b = [0u8; 4];
        d.read(off, &mut b).unwrap();
        u32::from_le_bytes(b)
    }

    fn wr(d: &mut MmioDevice, off: u64, v: u32) -> MmioEvent {
        d.write(off, &v.to_le_bytes()).unwrap()
    }

    #[test]
    fn identification() {
        let d = dev();
        assert_eq!(rd(&d, reg::MAGIC), 0x7472_6976);
        assert_eq!(rd(&d, reg::VERSION), 2);
        assert_eq!(rd(&d, reg::DEVICE_ID), 1);
        assert_eq!(rd(&d, reg::VENDOR_ID), VENDOR_ID);
    }

    #[test]
    fn feature_words_by_selector() {
        let mut d = dev();
        assert_eq!(rd(&d, reg::DEVICE_FEATURES), (1 << 5) | (1 << 16));
        wr(&mut d, reg::DEVICE_FEATURES_SEL, 1);
        assert_eq!(rd(&d, reg::DEVICE_FEATURES), 1); // VERSION_1 is bit 32
        wr(&mut d, reg::DEVICE_FEATURES_SEL, 7);
        assert_eq!(rd(&d, reg::DEVICE_FEATURES), 0);
    }

    #[test]
    fn config_space_mac_and_link_any_width() {
        let mut d = dev();
        let mut six = [0u8; 6];
        d.read(reg::CONFIG, &mut six).unwrap();
        assert_eq!(six, MAC);
        let mut b = [0u8; 1];
        d.read(reg::CONFIG + 5, &mut b).unwrap();
        assert_eq!(b[0], 0x56);
        let mut st = [0u8; 2];
        d.read(reg::CONFIG + 6, &mut st).unwrap();
        assert_eq!(u16::from_le_bytes(st), NET_S_LINK_UP);
        let gen = rd(&d, reg::CONFIG_GENERATION);
        d.set_link(false);
        d.read(reg::CONFIG + 6, &mut st).unwrap();
        assert_eq!(u16::from_le_bytes(st), 0);
        assert_ne!(rd(&d, reg::CONFIG_GENERATION), gen);
        assert_eq!(rd(&d, reg::INTERRUPT_STATUS) & 2, 2);
        assert_eq!(d.write(reg::CONFIG, &[1]), Err(MmioError::ReadOnlyConfig));
    }

    #[test]
    fn every_offset_answers_and_bad_accesses_are_reported() {
        let mut d = dev();
        for off in 0..WINDOW_SIZE {
            for len in [1usize, 2, 4, 8] {
                let mut b = [0xffu8; 8];
                let r = d.read(off, &mut b[..len]);
                if r.is_err() {
                    assert!(b[..len].iter().all(|&x| x == 0), "off {off:#x} len {len}");
                }
                let _ = d.write(off, &[0u8; 8][..len]);
            }
        }
        let mut b = [0u8; 4];
        assert_eq!(d.read(0x1000, &mut b), Err(MmioError::OutOfWindow));
        assert_eq!(d.read(u64::MAX - 1, &mut b), Err(MmioError::OutOfWindow));
        assert_eq!(d.read(0x0ffe, &mut b), Err(MmioError::OutOfWindow));
        let mut b2 = [0u8; 2];
        assert_eq!(d.read(reg::MAGIC, &mut b2), Err(MmioError::BadWidth));
        assert_eq!(d.read(0x001, &mut b), Err(MmioError::BadWidth));
        assert_eq!(d.read(0x018, &mut b), Err(MmioError::NoRegister));
        assert_eq!(d.write(reg::MAGIC, &[0; 4]), Err(MmioError::NoRegister));
        assert_eq!(d.write(reg::STATUS, &[0; 16]), Err(MmioError::OutOfWindow));
    }

    #[test]
    fn queue_setup_notify_and_reset() {
        let mut d = dev();
        wr(&mut d, reg::QUEUE_SEL, 1);
        assert_eq!(rd(&d, reg::QUEUE_NUM_MAX), QUEUE_NUM_MAX);
        wr(&mut d, reg::QUEUE_NUM, 128);
        wr(&mut d, reg::QUEUE_DESC_LOW, 0x1000);
        wr(&mut d, reg::QUEUE_DESC_HIGH, 0x1);
        wr(&mut d, reg::QUEUE_DRIVER_LOW, 0x2000);
        wr(&mut d, reg::QUEUE_DEVICE_LOW, 0x3000);
        assert_eq!(wr(&mut d, reg::QUEUE_READY, 1), MmioEvent::QueueReady(1));
        // Frozen once ready.
        wr(&mut d, reg::QUEUE_NUM, 4);
        let q = *d.queue(1).unwrap();
        assert_eq!(
            (q.num, q.desc, q.driver, q.device),
            (128, 0x1_0000_1000, 0x2000, 0x3000)
        );
        // Notify before DRIVER_OK or for a missing queue does nothing.
        assert_eq!(wr(&mut d, reg::QUEUE_NOTIFY, 1), MmioEvent::None);
        negotiate(&mut d);
        assert_eq!(wr(&mut d, reg::STATUS, 0xf), MmioEvent::DriverOk);
        assert_eq!(wr(&mut d, reg::QUEUE_NOTIFY, 1), MmioEvent::Notify(1));
        assert_eq!(wr(&mut d, reg::QUEUE_NOTIFY, 0), MmioEvent::None);
        assert_eq!(wr(&mut d, reg::QUEUE_NOTIFY, 0xffff), MmioEvent::None);
        // Queue selector out of range: reads zero, writes ignored.
        wr(&mut d, reg::QUEUE_SEL, 9);
        assert_eq!(rd(&d, reg::QUEUE_NUM_MAX), 0);
        wr(&mut d, reg::QUEUE_READY, 1);
        assert_eq!(rd(&d, reg::QUEUE_READY), 0);
        // Reset clears everything but identity.
        assert_eq!(wr(&mut d, reg::STATUS, 0), MmioEvent::Reset);
        assert_eq!(rd(&d, reg::STATUS), 0);
        assert_eq!(*d.queue(1).unwrap(), QueueRegs::default());
        assert_eq!(d.mac(), MAC);
    }

    #[test]
    fn interrupt_status_and_ack() {
        let mut d = dev();
        assert!(d.raise_interrupt(1));
        assert!(!d.raise_interrupt(1));
        assert_eq!(rd(&d, reg::INTERRUPT_STATUS), 1);
        assert_eq!(
            wr(&mut d, reg::INTERRUPT_ACK, 1),
            MmioEvent::InterruptAck(1)
        );
        assert_eq!(rd(&d, reg::INTERRUPT_STATUS), 0);
        assert_eq!(d.interrupt_status(), 0);
        // A partial ACK leaves the other bit: the line stays up.
        d.raise_interrupt(3);
        wr(&mut d, reg::INTERRUPT_ACK, 1);
        assert_eq!(d.interrupt_status(), 2);
        assert_eq!(rd(&d, reg::INTERRUPT_STATUS), 2);
        wr(&mut d, reg::INTERRUPT_ACK, 2);
        assert_eq!(d.interrupt_status(), 0);
        d.set_needs_reset();
        assert_eq!(d.interrupt_status(), 2);
        assert_ne!(rd(&d, reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
        // The driver cannot clear NEEDS_RESET except by reset.
        wr(&mut d, reg::STATUS, 1);
        assert_ne!(rd(&d, reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
    }

    /// Negotiates VERSION_1 only: Status ACKNOWLEDGE | DRIVER | FEATURES_OK.
    fn negotiate(d: &mut MmioDevice) {
        wr(d, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        wr(d, reg::DRIVER_FEATURES_SEL, 1);
        wr(d, reg::DRIVER_FEATURES, 1);
        wr(d, reg::STATUS, 0x3 | status::FEATURES_OK);
        assert_ne!(rd(d, reg::STATUS) & status::FEATURES_OK, 0);
    }

    fn needs_reset(d: &MmioDevice) -> bool {
        rd(d, reg::STATUS) & status::DEVICE_NEEDS_RESET != 0
    }

    #[test]
    fn spec_rules_reach_the_driver_through_registers() {
        // A refused FEATURES_OK (a dependency of the net table not met:
        // HOST_TSO4 without CSUM), then DRIVER_OK: refused, NEEDS_RESET.
        let mut d = MmioDevice::new(feature::NET_F_CSUM | feature::NET_F_HOST_TSO4, MAC);
        wr(&mut d, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        wr(
            &mut d,
            reg::DRIVER_FEATURES,
            u32::try_from(feature::NET_F_HOST_TSO4).unwrap(),
        );
        wr(&mut d, reg::DRIVER_FEATURES_SEL, 1);
        wr(&mut d, reg::DRIVER_FEATURES, 1);
        assert_eq!(wr(&mut d, reg::STATUS, 0xb), MmioEvent::None);
        assert_eq!(rd(&d, reg::STATUS) & status::FEATURES_OK, 0);
        assert_eq!(
            wr(&mut d, reg::STATUS, 0x3 | status::DRIVER_OK),
            MmioEvent::NeedsReset
        );
        assert!(needs_reset(&d));
        assert_eq!(rd(&d, reg::INTERRUPT_STATUS) & 2, 2);
        // A bad QueueNum: QueueReady 1 gives NeedsReset and reads back 0.
        let mut d = dev();
        negotiate(&mut d);
        wr(&mut d, reg::QUEUE_SEL, 1);
        wr(&mut d, reg::QUEUE_NUM, 100);
        assert_eq!(wr(&mut d, reg::QUEUE_READY, 1), MmioEvent::NeedsReset);
        assert_eq!(rd(&d, reg::QUEUE_READY), 0);
        assert!(needs_reset(&d));
        // QueueReady 0 on a live queue: QueueStopped, no more notifies.
        let mut d = dev();
        negotiate(&mut d);
        wr(&mut d, reg::QUEUE_NUM, 64);
        assert_eq!(wr(&mut d, reg::QUEUE_READY, 1), MmioEvent::QueueReady(0));
        assert_eq!(wr(&mut d, reg::STATUS, 0xf), MmioEvent::DriverOk);
        assert_eq!(wr(&mut d, reg::QUEUE_NOTIFY, 0), MmioEvent::Notify(0));
        // QueueNotify takes the low 16 bits as the queue index.
        assert_eq!(
            wr(&mut d, reg::QUEUE_NOTIFY, 0x1_0000),
            MmioEvent::Notify(0)
        );
        assert_eq!(wr(&mut d, reg::QUEUE_READY, 0), MmioEvent::QueueStopped(0));
        assert_eq!(wr(&mut d, reg::QUEUE_NOTIFY, 0), MmioEvent::None);
        // A QueueSel past u16 never aliases a queue.
        wr(&mut d, reg::QUEUE_SEL, 0x1_0000);
        assert_eq!(rd(&d, reg::QUEUE_NUM_MAX), 0);
        wr(&mut d, reg::QUEUE_NUM, 8);
        assert_eq!(d.queue(0).unwrap().num, 64);
    }

    #[test]
    fn queue_addresses_by_halves() {
        let mut d = dev();
        for (lo, hi, field) in [
            (reg::QUEUE_DESC_LOW, reg::QUEUE_DESC_HIGH, 0),
            (reg::QUEUE_DRIVER_LOW, reg::QUEUE_DRIVER_HIGH, 1),
            (reg::QUEUE_DEVICE_LOW, reg::QUEUE_DEVICE_HIGH, 2),
        ] {
            let get = |d: &MmioDevice| {
                let q = d.queue(0).unwrap();
                [q.desc, q.driver, q.device][field]
            };
            wr(&mut d, hi, 0x1234);
            assert_eq!(get(&d), 0x1234_0000_0000);
            wr(&mut d, lo, 0xdead_b000);
            assert_eq!(get(&d), 0x1234_dead_b000);
            wr(&mut d, hi, 0);
            assert_eq!(get(&d), 0xdead_b000);
        }
        // Once ready, no half changes.
        wr(&mut d, reg::QUEUE_NUM, 16);
        wr(&mut d, reg::QUEUE_READY, 1);
        wr(&mut d, reg::QUEUE_DESC_HIGH, 7);
        wr(&mut d, reg::QUEUE_DEVICE_LOW, 0);
        let q = *d.queue(0).unwrap();
        assert_eq!((q.num, q.desc, q.device), (16, 0xdead_b000, 0xdead_b000));
    }

    #[test]
    fn reset_clears_the_transport_registers_too() {
        let mut d = dev();
        wr(&mut d, reg::DEVICE_FEATURES_SEL, 1);
        wr(&mut d, reg::DRIVER_FEATURES_SEL, 1);
        wr(&mut d, reg::QUEUE_SEL, 1);
        let gen = rd(&d, reg::CONFIG_GENERATION);
        assert_eq!(wr(&mut d, reg::STATUS, 0), MmioEvent::Reset);
        // DeviceFeaturesSel is 0 again: the low word is read.
        assert_eq!(rd(&d, reg::DEVICE_FEATURES), (1 << 5) | (1 << 16));
        // QueueSel is 0 again.
        wr(&mut d, reg::QUEUE_NUM, 32);
        assert_eq!(d.queue(0).unwrap().num, 32);
        assert_eq!(d.queue(1).unwrap().num, 0);
        // DriverFeaturesSel is 0 again.
        wr(&mut d, reg::DRIVER_FEATURES, 1 << 5);
        assert_eq!(d.driver_features(), feature::NET_F_MAC);
        // The generation moved; the MAC stays.
        assert_ne!(rd(&d, reg::CONFIG_GENERATION), gen);
        assert_eq!(d.interrupt_status(), 0);
        assert_eq!(d.mac(), MAC);
    }

    /// Sets up queue `n` (8 entries) and returns the QueueReady event.
    fn ready(d: &mut MmioDevice, n: u32) -> MmioEvent {
        let base = [0x1000, 0x2000, 0x3000][n as usize];
        wr(d, reg::QUEUE_SEL, n);
        wr(d, reg::QUEUE_NUM, 8);
        wr(d, reg::QUEUE_DESC_LOW, base);
        wr(d, reg::QUEUE_DRIVER_LOW, base | 0x100);
        wr(d, reg::QUEUE_DEVICE_LOW, base | 0x200);
        wr(d, reg::QUEUE_READY, 1)
    }

    #[test]
    fn control_queue_exists_only_with_ctrl_vq_accepted() {
        let offered = feature::NET_F_MAC | feature::NET_F_CTRL_VQ | feature::NET_F_NOTF_COAL;
        // A driver that does not take CTRL_VQ sees the two-queue device.
        let mut d = MmioDevice::new(offered, MAC);
        negotiate(&mut d);
        assert_eq!(ready(&mut d, 0), MmioEvent::QueueReady(0));
        assert_eq!(ready(&mut d, 1), MmioEvent::QueueReady(1));
        assert_eq!(ready(&mut d, 2), MmioEvent::None);
        assert_eq!(rd(&d, reg::QUEUE_NUM_MAX), 0);
        assert_eq!(rd(&d, reg::QUEUE_READY), 0);
        assert!(d.queue(2).is_none());
        assert_eq!(wr(&mut d, reg::STATUS, 0xf), MmioEvent::DriverOk);
        assert_eq!(wr(&mut d, reg::QUEUE_NOTIFY, 2), MmioEvent::None);
        assert!(!needs_reset(&d));
        // One that does: queue 2 appears once FEATURES_OK stuck.
        assert_eq!(wr(&mut d, reg::STATUS, 0), MmioEvent::Reset);
        wr(&mut d, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        wr(&mut d, reg::DRIVER_FEATURES, (1 << 5) | (1 << 17));
        wr(&mut d, reg::DRIVER_FEATURES_SEL, 1);
        wr(&mut d, reg::DRIVER_FEATURES, 1 | (1 << 21));
        wr(&mut d, reg::QUEUE_SEL, 2);
        assert_eq!(rd(&d, reg::QUEUE_NUM_MAX), 0, "not before FEATURES_OK");
        wr(&mut d, reg::STATUS, 0x3 | status::FEATURES_OK);
        assert_ne!(rd(&d, reg::STATUS) & status::FEATURES_OK, 0);
        assert_eq!(rd(&d, reg::QUEUE_NUM_MAX), QUEUE_NUM_MAX);
        assert_eq!(ready(&mut d, 2), MmioEvent::QueueReady(2));
        assert_eq!(rd(&d, reg::QUEUE_READY), 1);
        assert_eq!(d.queue(2).unwrap().desc, 0x3000);
        assert_eq!(wr(&mut d, reg::QUEUE_NOTIFY, 2), MmioEvent::None);
        assert_eq!(wr(&mut d, reg::STATUS, 0xf), MmioEvent::DriverOk);
        assert_eq!(wr(&mut d, reg::QUEUE_NOTIFY, 2), MmioEvent::Notify(2));
        assert_eq!(wr(&mut d, reg::QUEUE_NOTIFY, 3), MmioEvent::None);
        // NOTF_COAL without CTRL_VQ: FEATURES_OK does not stick.
        assert_eq!(wr(&mut d, reg::STATUS, 0), MmioEvent::Reset);
        wr(&mut d, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        wr(&mut d, reg::DRIVER_FEATURES, 1 << 5);
        wr(&mut d, reg::DRIVER_FEATURES_SEL, 1);
        wr(&mut d, reg::DRIVER_FEATURES, 1 | (1 << 21));
        wr(&mut d, reg::STATUS, 0x3 | status::FEATURES_OK);
        assert_eq!(rd(&d, reg::STATUS) & status::FEATURES_OK, 0);
    }
}
