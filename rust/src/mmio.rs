// SPDX-License-Identifier: GPL-2.0
//! The virtio-mmio (version 2) register file of one virtio-net device.
//!
//! This is the state machine a guest's stock `virtio_mmio` driver talks to:
//! identification, feature negotiation, device status and reset, queue
//! registers, interrupt status/ACK and the virtio-net config space. It is pure
//! logic: the module feeds it the guest's MMIO accesses (at most 8 bytes each)
//! and acts on the [`MmioEvent`] a write returns. Every offset of the 4 KiB
//! window answers: unknown or badly sized accesses read as zero, are ignored
//! on write, and are reported as [`MmioError`] so the caller can count them.
//!
//! A hostile driver is held to the spec:
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

/// Size of the MMIO window of one device.
pub const WINDOW_SIZE: u64 = 0x1000;
/// "virt" in little-endian, the virtio-mmio magic value.
pub const MAGIC: u32 = 0x7472_6976;
/// virtio-mmio transport version implemented here.
pub const VERSION: u32 = 2;
/// virtio device id of a network card.
pub const DEVICE_ID_NET: u32 = 1;
/// Vendor id reported to the guest: "PVPS" in little-endian.
pub const VENDOR_ID: u32 = 0x5350_5650;
/// Number of virtqueues: one receive queue and one transmit queue.
pub const NUM_QUEUES: usize = 2;
/// Largest queue size offered to the driver (QueueNumMax).
pub const QUEUE_NUM_MAX: u32 = 256;

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

/// Device status bits (virtio 1.2, section 2.1).
pub mod status {
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: u32 = 1;
    /// The guest has a driver for it.
    pub const DRIVER: u32 = 2;
    /// The driver is ready.
    pub const DRIVER_OK: u32 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u32 = 8;
    /// The device hit an error and needs a reset.
    pub const DEVICE_NEEDS_RESET: u32 = 64;
    /// The driver gave up on the device.
    pub const FAILED: u32 = 128;
}

/// Feature bits this file knows by name.
pub mod feature {
    /// Device has a MAC address in config space.
    pub const NET_F_MAC: u64 = 1 << 5;
    /// Config space has a link status field.
    pub const NET_F_STATUS: u64 = 1 << 16;
    /// Config space has the device's MTU, the largest the driver may use.
    pub const NET_F_MTU: u64 = 1 << 3;
    /// Driver and device use the virtio 1.x interface (mandatory here).
    pub const VERSION_1: u64 = 1 << 32;
    /// Device completes partial checksums of transmitted frames.
    pub const NET_F_CSUM: u64 = 1 << 0;
    /// Driver takes received frames with partial checksums.
    pub const NET_F_GUEST_CSUM: u64 = 1 << 1;
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
    /// `used_event` / `avail_event` notification suppression.
    pub const RING_EVENT_IDX: u64 = 1 << 29;

    /// Features that need another one (virtio 1.2, 5.1.3.1): each pair is
    /// (feature, what it requires).
    pub const DEPENDS: [(u64, u64); 4] = [
        (NET_F_GUEST_TSO4, NET_F_GUEST_CSUM),
        (NET_F_GUEST_TSO6, NET_F_GUEST_CSUM),
        (NET_F_HOST_TSO4, NET_F_CSUM),
        (NET_F_HOST_TSO6, NET_F_CSUM),
    ];
}

/// virtio-net config space: link is up.
pub const NET_S_LINK_UP: u16 = 1;
/// MTU reported in config space when NET_F_MTU is offered.
pub const NET_MTU: u16 = 1500;

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

/// The registers of one virtqueue as the driver programmed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueRegs {
    /// Queue size chosen by the driver (QueueNum).
    pub num: u32,
    /// QueueReady.
    pub ready: bool,
    /// Guest-physical address of the descriptor table.
    pub desc: u64,
    /// Guest-physical address of the available ("driver") ring.
    pub driver: u64,
    /// Guest-physical address of the used ("device") ring.
    pub device: u64,
}

/// The register file of one virtio-net device on virtio-mmio v2.
#[derive(Debug, Clone)]
pub struct MmioDevice {
    device_features: u64,
    device_features_sel: u32,
    driver_features: u64,
    driver_features_sel: u32,
    queue_sel: u32,
    queues: [QueueRegs; NUM_QUEUES],
    status: u32,
    interrupt_status: u32,
    config_generation: u32,
    mac: [u8; 6],
    link_up: bool,
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

fn set_half(word: &mut u64, high: bool, value: u32) {
    if high {
        *word = (*word & 0xffff_ffff) | (u64::from(value) << 32);
    } else {
        *word = (*word & !0xffff_ffff) | u64::from(value);
    }
}

impl MmioDevice {
    /// A device offering `device_features` (VERSION_1 is always added) with
    /// MAC address `mac`, link up.
    pub fn new(device_features: u64, mac: [u8; 6]) -> Self {
        Self {
            device_features: device_features | feature::VERSION_1,
            device_features_sel: 0,
            driver_features: 0,
            driver_features_sel: 0,
            queue_sel: 0,
            queues: [QueueRegs::default(); NUM_QUEUES],
            status: 0,
            interrupt_status: 0,
            config_generation: 0,
            mac,
            link_up: true,
        }
    }

    /// Features the device offers.
    pub fn device_features(&self) -> u64 {
        self.device_features
    }

    /// Features the driver accepted (meaningful once FEATURES_OK is set).
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    /// Device status register.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// The registers of queue `n`, if it exists.
    pub fn queue(&self, n: u16) -> Option<&QueueRegs> {
        self.queues.get(usize::from(n))
    }

    /// The MAC address in config space.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// InterruptStatus: the bits the driver has not acknowledged yet. While
    /// it is not zero a level-triggered line stays asserted.
    pub fn interrupt_status(&self) -> u32 {
        self.interrupt_status
    }

    /// Raise interrupt status bits (1: used buffer, 2: config change).
    /// Returns true if the bits were not already pending.
    pub fn raise_interrupt(&mut self, bits: u32) -> bool {
        let new = bits & !self.interrupt_status;
        self.interrupt_status |= bits;
        new != 0
    }

    /// Mark the device broken (DEVICE_NEEDS_RESET) and raise a config
    /// interrupt so the driver notices.
    pub fn set_needs_reset(&mut self) {
        self.status |= status::DEVICE_NEEDS_RESET;
        self.config_generation = self.config_generation.wrapping_add(1);
        self.interrupt_status |= 2;
    }

    /// Change the link state in config space.
    pub fn set_link(&mut self, up: bool) {
        if self.link_up != up {
            self.link_up = up;
            self.config_generation = self.config_generation.wrapping_add(1);
            self.interrupt_status |= 2;
        }
    }

    fn reset(&mut self) {
        *self = Self {
            config_generation: self.config_generation.wrapping_add(1),
            ..Self::new(self.device_features, self.mac)
        };
    }

    fn config_byte(&self, i: usize) -> u8 {
        let link = if self.link_up { NET_S_LINK_UP } else { 0 }.to_le_bytes();
        let mtu = NET_MTU.to_le_bytes();
        let has = |f: u64| self.device_features & f != 0;
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

    fn selected_queue(&self) -> Option<&QueueRegs> {
        self.queues.get(usize::try_from(self.queue_sel).ok()?)
    }

    fn read_reg(&self, offset: u64) -> Result<u32, MmioError> {
        let half = |word: u64, sel: u32| {
            let [a, b, c, d, e, f, g, h] = word.to_le_bytes();
            match sel {
                0 => u32::from_le_bytes([a, b, c, d]),
                1 => u32::from_le_bytes([e, f, g, h]),
                _ => 0,
            }
        };
        Ok(match offset {
            reg::MAGIC => MAGIC,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => DEVICE_ID_NET,
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => half(self.device_features, self.device_features_sel),
            reg::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |_| QUEUE_NUM_MAX),
            reg::QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready)),
            reg::INTERRUPT_STATUS => self.interrupt_status,
            reg::STATUS => self.status,
            reg::CONFIG_GENERATION => self.config_generation,
            _ => return Err(MmioError::NoRegister),
        })
    }

    /// Serve a guest read of `data.len()` bytes at `offset` in the window.
    /// `data` is always filled (zeros on error).
    pub fn read(&self, offset: u64, data: &mut [u8]) -> Result<(), MmioError> {
        data.fill(0);
        let start = in_window(offset, data.len())?;
        if let Some(cfg) = start.checked_sub(CONFIG_START) {
            for (i, b) in data.iter_mut().enumerate() {
                *b = self.config_byte(cfg.saturating_add(i));
            }
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
        let sel = usize::try_from(self.queue_sel).unwrap_or(usize::MAX);
        let queue_live = self.status & status::DRIVER_OK != 0;
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::DRIVER_FEATURES => {
                // Feature bits may only change before FEATURES_OK.
                if self.status & status::FEATURES_OK == 0 && self.driver_features_sel < 2 {
                    set_half(
                        &mut self.driver_features,
                        self.driver_features_sel == 1,
                        value,
                    );
                }
            }
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NUM
            | reg::QUEUE_DESC_LOW
            | reg::QUEUE_DESC_HIGH
            | reg::QUEUE_DRIVER_LOW
            | reg::QUEUE_DRIVER_HIGH
            | reg::QUEUE_DEVICE_LOW
            | reg::QUEUE_DEVICE_HIGH => {
                // A queue's layout is frozen once it is ready (virtio 4.2.2.2).
                if let Some(q) = self.queues.get_mut(sel).filter(|q| !q.ready) {
                    match offset {
                        reg::QUEUE_NUM => q.num = value,
                        reg::QUEUE_DESC_LOW => set_half(&mut q.desc, false, value),
                        reg::QUEUE_DESC_HIGH => set_half(&mut q.desc, true, value),
                        reg::QUEUE_DRIVER_LOW => set_half(&mut q.driver, false, value),
                        reg::QUEUE_DRIVER_HIGH => set_half(&mut q.driver, true, value),
                        reg::QUEUE_DEVICE_LOW => set_half(&mut q.device, false, value),
                        _ => set_half(&mut q.device, true, value),
                    }
                }
            }
            reg::QUEUE_READY => {
                if let (Some(q), Ok(n)) = (self.queues.get_mut(sel), u16::try_from(sel)) {
                    if value & 1 == 0 {
                        // Stopping a queue (virtio 4.2.2.2): a running one
                        // must let go of the driver's buffers.
                        let was_ready = q.ready;
                        q.ready = false;
                        if was_ready && queue_live {
                            return Ok(MmioEvent::QueueStopped(n));
                        }
                    } else if q.num == 0 || q.num > QUEUE_NUM_MAX || !q.num.is_power_of_two() {
                        // A split queue's size is a power of two up to
                        // QueueNumMax (virtio 2.7, 4.2.2.2).
                        self.set_needs_reset();
                        return Ok(MmioEvent::NeedsReset);
                    } else {
                        q.ready = true;
                        return Ok(MmioEvent::QueueReady(n));
                    }
                }
            }
            reg::QUEUE_NOTIFY => {
                // Only queues that exist, are ready, on a live device.
                let [lo, hi, _, _] = value.to_le_bytes();
                let n = u16::from_le_bytes([lo, hi]);
                return Ok(match self.queues.get(usize::from(n)) {
                    Some(q) if q.ready && queue_live => MmioEvent::Notify(n),
                    _ => MmioEvent::None,
                });
            }
            reg::INTERRUPT_ACK => {
                self.interrupt_status &= !value;
                return Ok(MmioEvent::InterruptAck(value));
            }
            reg::STATUS => return Ok(self.write_status(value)),
            _ => return Err(MmioError::NoRegister),
        }
        Ok(MmioEvent::None)
    }

    fn write_status(&mut self, value: u32) -> MmioEvent {
        if value == 0 {
            self.reset();
            return MmioEvent::Reset;
        }
        let mut value = value & 0xff;
        if value & status::FEATURES_OK != 0 && self.status & status::FEATURES_OK == 0 {
            // Accept FEATURES_OK only for a subset of our features that
            // includes VERSION_1; otherwise the bit does not stick and the
            // driver sees the failure when it reads Status back.
            let f = self.driver_features;
            let ok = f & !self.device_features == 0
                && f & feature::VERSION_1 != 0
                && feature::DEPENDS
                    .iter()
                    .all(|&(what, needs)| f & what == 0 || f & needs != 0);
            if !ok {
                value &= !status::FEATURES_OK;
            }
        }
        let was_ok = self.status & status::DRIVER_OK != 0;
        if !was_ok
            && value & status::DRIVER_OK != 0
            && (self.status | value) & status::FEATURES_OK == 0
        {
            // DRIVER_OK before features were agreed (never, or refused):
            // the queues would run with offloads nobody negotiated. The bit
            // does not stick and the device needs a reset (virtio 3.1.1).
            value &= !status::DRIVER_OK;
            self.status |= value;
            self.set_needs_reset();
            return MmioEvent::NeedsReset;
        }
        // The driver may only set bits; NEEDS_RESET is the device's own.
        self.status |= value;
        if !was_ok && self.status & status::DRIVER_OK != 0 {
            MmioEvent::DriverOk
        } else {
            MmioEvent::None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
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
    fn config_space_mtu_only_when_offered() {
        let mut mtu = [0u8; 2];
        dev().read(reg::CONFIG + 10, &mut mtu).unwrap();
        assert_eq!(mtu, [0, 0]);
        let d = MmioDevice::new(feature::NET_F_MAC | feature::NET_F_MTU, MAC);
        d.read(reg::CONFIG + 10, &mut mtu).unwrap();
        assert_eq!(u16::from_le_bytes(mtu), 1500);
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
    fn negotiation_rejects_unoffered_or_legacy_features() {
        let mut d = dev();
        wr(&mut d, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        // Without VERSION_1: FEATURES_OK does not stick.
        wr(&mut d, reg::DRIVER_FEATURES_SEL, 0);
        wr(&mut d, reg::DRIVER_FEATURES, 1 << 5);
        wr(&mut d, reg::STATUS, 0x3 | status::FEATURES_OK);
        assert_eq!(rd(&d, reg::STATUS) & status::FEATURES_OK, 0);
        // A feature we do not offer (CSUM, bit 0): does not stick either.
        wr(&mut d, reg::DRIVER_FEATURES, (1 << 5) | 1);
        wr(&mut d, reg::DRIVER_FEATURES_SEL, 1);
        wr(&mut d, reg::DRIVER_FEATURES, 1);
        wr(&mut d, reg::STATUS, 0x3 | status::FEATURES_OK);
        assert_eq!(rd(&d, reg::STATUS) & status::FEATURES_OK, 0);
        // A proper subset: accepted, then frozen.
        wr(&mut d, reg::DRIVER_FEATURES_SEL, 0);
        wr(&mut d, reg::DRIVER_FEATURES, 1 << 5);
        wr(&mut d, reg::STATUS, 0x3 | status::FEATURES_OK);
        assert_ne!(rd(&d, reg::STATUS) & status::FEATURES_OK, 0);
        assert_eq!(d.driver_features(), feature::VERSION_1 | feature::NET_F_MAC);
        wr(&mut d, reg::DRIVER_FEATURES, 0);
        assert_eq!(d.driver_features(), feature::VERSION_1 | feature::NET_F_MAC);
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
            let mut d = MmioDevice::new(offered, [2, 0, 0, 0, 0, 1]);
            wr(&mut d, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
            wr(&mut d, reg::DRIVER_FEATURES_SEL, 0);
            wr(&mut d, reg::DRIVER_FEATURES, u32::try_from(want).unwrap());
            wr(&mut d, reg::DRIVER_FEATURES_SEL, 1);
            wr(&mut d, reg::DRIVER_FEATURES, 1);
            wr(&mut d, reg::STATUS, 0x3 | status::FEATURES_OK);
            assert_eq!(
                rd(&d, reg::STATUS) & status::FEATURES_OK != 0,
                sticks,
                "{want:#x}"
            );
        }
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
    fn queue_ready_refuses_a_bad_queue_num() {
        // virtio 1.x: 1..=QueueNumMax and a power of two (split queues).
        for num in [0u32, 3, 6, 100, 255, 257, 512, 1 << 16, u32::MAX] {
            let mut d = dev();
            negotiate(&mut d);
            wr(&mut d, reg::QUEUE_SEL, 1);
            wr(&mut d, reg::QUEUE_NUM, num);
            assert_eq!(
                wr(&mut d, reg::QUEUE_READY, 1),
                MmioEvent::NeedsReset,
                "num {num}"
            );
            assert_eq!(rd(&d, reg::QUEUE_READY), 0, "num {num}");
            assert!(!d.queue(1).unwrap().ready, "num {num}");
            assert!(needs_reset(&d), "num {num}");
            assert_eq!(d.interrupt_status() & 2, 2, "num {num}");
            // Never a live queue: DRIVER_OK does not make it notifiable.
            wr(&mut d, reg::STATUS, 0xb | status::DRIVER_OK);
            assert_eq!(wr(&mut d, reg::QUEUE_NOTIFY, 1), MmioEvent::None);
        }
        for num in [1u32, 2, 64, 128, QUEUE_NUM_MAX] {
            let mut d = dev();
            wr(&mut d, reg::QUEUE_NUM, num);
            assert_eq!(wr(&mut d, reg::QUEUE_READY, 1), MmioEvent::QueueReady(0));
            assert_eq!(rd(&d, reg::QUEUE_READY), 1);
            assert!(!needs_reset(&d), "num {num}");
        }
    }

    #[test]
    fn queue_ready_zero_stops_a_live_queue() {
        let mut d = dev();
        negotiate(&mut d);
        for n in 0..2 {
            wr(&mut d, reg::QUEUE_SEL, n);
            wr(&mut d, reg::QUEUE_NUM, 128);
            wr(&mut d, reg::QUEUE_READY, 1);
        }
        assert_eq!(wr(&mut d, reg::STATUS, 0xf), MmioEvent::DriverOk);
        wr(&mut d, reg::QUEUE_SEL, 0);
        assert_eq!(wr(&mut d, reg::QUEUE_READY, 0), MmioEvent::QueueStopped(0));
        assert_eq!(rd(&d, reg::QUEUE_READY), 0);
        assert!(!d.queue(0).unwrap().ready);
        assert_eq!(wr(&mut d, reg::QUEUE_NOTIFY, 0), MmioEvent::None);
        // Already stopped: nothing more to do.
        assert_eq!(wr(&mut d, reg::QUEUE_READY, 0), MmioEvent::None);
        // The other queue runs on; no reset needed.
        assert_eq!(wr(&mut d, reg::QUEUE_NOTIFY, 1), MmioEvent::Notify(1));
        assert!(!needs_reset(&d));
        // The stopped queue's layout is the driver's again.
        wr(&mut d, reg::QUEUE_NUM, 64);
        assert_eq!(d.queue(0).unwrap().num, 64);
        assert_eq!(wr(&mut d, reg::QUEUE_READY, 1), MmioEvent::QueueReady(0));
        wr(&mut d, reg::QUEUE_SEL, 1);
        assert_eq!(wr(&mut d, reg::QUEUE_READY, 0), MmioEvent::QueueStopped(1));
        // Before DRIVER_OK nothing runs, so nothing to stop.
        let mut d = dev();
        wr(&mut d, reg::QUEUE_NUM, 128);
        wr(&mut d, reg::QUEUE_READY, 1);
        assert_eq!(wr(&mut d, reg::QUEUE_READY, 0), MmioEvent::None);
        assert_eq!(rd(&d, reg::QUEUE_READY), 0);
    }

    #[test]
    fn driver_ok_without_features_ok_is_refused() {
        // Never set: ACKNOWLEDGE | DRIVER, then DRIVER_OK.
        let mut d = dev();
        wr(&mut d, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        assert_eq!(
            wr(&mut d, reg::STATUS, 0x3 | status::DRIVER_OK),
            MmioEvent::NeedsReset
        );
        assert_eq!(rd(&d, reg::STATUS) & status::DRIVER_OK, 0);
        assert!(needs_reset(&d));
        assert_eq!(d.interrupt_status() & 2, 2);
        // Refused FEATURES_OK (no VERSION_1), then DRIVER_OK.
        let mut d = dev();
        wr(&mut d, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        wr(&mut d, reg::DRIVER_FEATURES, 1 << 5);
        wr(&mut d, reg::STATUS, 0x3 | status::FEATURES_OK);
        assert_eq!(rd(&d, reg::STATUS) & status::FEATURES_OK, 0);
        wr(&mut d, reg::QUEUE_NUM, 128);
        wr(&mut d, reg::QUEUE_READY, 1);
        assert_eq!(
            wr(&mut d, reg::STATUS, 0x3 | status::DRIVER_OK),
            MmioEvent::NeedsReset
        );
        assert_eq!(rd(&d, reg::STATUS) & status::DRIVER_OK, 0);
        assert!(needs_reset(&d));
        assert_eq!(wr(&mut d, reg::QUEUE_NOTIFY, 0), MmioEvent::None);
        // Refused within the same write as DRIVER_OK.
        let mut d = dev();
        assert_eq!(wr(&mut d, reg::STATUS, 0xf), MmioEvent::NeedsReset);
        assert_eq!(
            rd(&d, reg::STATUS) & (status::DRIVER_OK | status::FEATURES_OK),
            0
        );
        assert!(needs_reset(&d));
        // Accepted in the same write: fine.
        let mut d = dev();
        wr(&mut d, reg::DRIVER_FEATURES_SEL, 1);
        wr(&mut d, reg::DRIVER_FEATURES, 1);
        assert_eq!(wr(&mut d, reg::STATUS, 0xf), MmioEvent::DriverOk);
        assert!(!needs_reset(&d));
    }
}
