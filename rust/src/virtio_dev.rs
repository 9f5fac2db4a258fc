// SPDX-License-Identifier: GPL-2.0
//! The transport-independent state of one virtio device: device status and
//! reset, feature negotiation, the registers of each virtqueue, interrupt
//! status bits and the config generation (virtio 1.2, chapters 2 and 3).
//!
//! [`VirtioDevice`] knows no register offset and no device type. A transport
//! (virtio-mmio in [`super::virtio_mmio`], or one that speaks a vhost-style
//! protocol) decodes the driver's accesses into calls here, keeps its own
//! selector registers, and turns the [`DeviceEvent`]s returned into its own
//! events. The device type (virtio-net in [`super::net_config`]) supplies
//! the features offered, the number of queues (the `QUEUES` parameter), the
//! dependencies between its feature bits and the config space.
//!
//! A hostile driver is held to the spec:
//! - FEATURES_OK sticks only for a subset of the offered features that
//!   includes VERSION_1 and meets every dependency of the device type; the
//!   accepted features are frozen from then on until a reset.
//! - A queue becomes ready only with a size that is a power of two in
//!   `1..=QUEUE_NUM_MAX`; otherwise the queue stays not ready and the device
//!   sets DEVICE_NEEDS_RESET ([`DeviceEvent::NeedsReset`]). The layout of a
//!   ready queue is frozen.
//! - Clearing the ready bit stops the queue; on a live device (DRIVER_OK)
//!   the caller gets [`DeviceEvent::QueueStopped`] and must stop using the
//!   queue's buffers, which the driver may now reuse.
//! - DRIVER_OK is taken only once FEATURES_OK has stuck; before that (never
//!   written, or refused) the bit does not stick, no [`DeviceEvent::DriverOk`]
//!   is returned and the device sets DEVICE_NEEDS_RESET
//!   ([`DeviceEvent::NeedsReset`]).

/// Largest queue size offered to the driver (QueueNumMax).
pub const QUEUE_NUM_MAX: u32 = 256;

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

/// Feature bits of every device type (virtio 1.2, chapter 6).
pub mod feature {
    /// `used_event` / `avail_event` notification suppression.
    pub const RING_EVENT_IDX: u64 = 1 << 29;
    /// Driver and device use the virtio 1.x interface (mandatory here).
    pub const VERSION_1: u64 = 1 << 32;
}

/// Interrupt status bits (virtio-mmio InterruptStatus, the virtio-pci ISR).
pub mod interrupt {
    /// The device used buffers of a queue.
    pub const USED_BUFFER: u32 = 1;
    /// The config space changed, or the device needs a reset.
    pub const CONFIG_CHANGE: u32 = 2;
}

/// What a change of device state asks the caller to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceEvent {
    /// Nothing for the caller to do.
    None,
    /// The driver reset the device (status written with 0): drop all queue
    /// state and in-flight buffers.
    Reset,
    /// The driver set DRIVER_OK, after FEATURES_OK was accepted: the queues
    /// marked ready may be used.
    DriverOk,
    /// The driver marked queue `n` ready (its size is valid).
    QueueReady(u16),
    /// The driver cleared the ready bit of queue `n`, which was ready, on a
    /// live device (DRIVER_OK): stop the queue and release what it holds
    /// (its buffers and pins) before the driver takes them back.
    QueueStopped(u16),
    /// The driver broke a rule of the virtio spec and the device set
    /// DEVICE_NEEDS_RESET (and raised the config-change interrupt bit, see
    /// [`VirtioDevice::set_needs_reset`]): signal the interrupt.
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

impl QueueRegs {
    /// Whether `num` is a size the queue may run with: a split queue's size
    /// is a power of two up to QueueNumMax (virtio 2.7, 4.2.2.2).
    pub fn num_valid(&self) -> bool {
        self.num != 0 && self.num <= QUEUE_NUM_MAX && self.num.is_power_of_two()
    }
}

/// The state of one virtio device with `QUEUES` virtqueues, as the driver
/// sees it through any transport. See the module documentation.
///
/// All its bytes zero is a valid device: nothing offered (not even
/// VERSION_1, so FEATURES_OK never sticks), status 0, no queue set up.
#[derive(Debug, Clone)]
pub struct VirtioDevice<const QUEUES: usize> {
    device_features: u64,
    driver_features: u64,
    queues: [QueueRegs; QUEUES],
    status: u32,
    interrupt_status: u32,
    config_generation: u32,
}

/// `word` with its low (`high` false) or high 32 bits replaced by `value`.
pub fn with_half(word: u64, high: bool, value: u32) -> u64 {
    if high {
        (word & 0xffff_ffff) | (u64::from(value) << 32)
    } else {
        (word & !0xffff_ffff) | u64::from(value)
    }
}

impl<const QUEUES: usize> VirtioDevice<QUEUES> {
    /// A device offering `device_features` (VERSION_1 is always added), in
    /// reset state.
    pub fn new(device_features: u64) -> Self {
        Self {
            device_features: device_features | feature::VERSION_1,
            driver_features: 0,
            queues: [QueueRegs::default(); QUEUES],
            status: 0,
            interrupt_status: 0,
            config_generation: 0,
        }
    }

    /// Features the device offers.
    pub fn device_features(&self) -> u64 {
        self.device_features
    }

    /// 32 bits of the offered features: bits 0..32 for `sel` 0, 32..64 for
    /// `sel` 1, zero for any other `sel`.
    pub fn device_features_word(&self, sel: u32) -> u32 {
        let [a, b, c, d, e, f, g, h] = self.device_features.to_le_bytes();
        match sel {
            0 => u32::from_le_bytes([a, b, c, d]),
            1 => u32::from_le_bytes([e, f, g, h]),
            _ => 0,
        }
    }

    /// Features the driver accepted (meaningful once FEATURES_OK is set).
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    /// The driver writes 32 bits of the features it accepts: bits 0..32 for
    /// `sel` 0, 32..64 for `sel` 1. Ignored for any other `sel`, and once
    /// FEATURES_OK has stuck (the features are frozen until a reset).
    pub fn set_driver_features(&mut self, sel: u32, value: u32) {
        if self.status & status::FEATURES_OK == 0 && sel < 2 {
            self.driver_features = with_half(self.driver_features, sel == 1, value);
        }
    }

    /// Device status.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// Whether the driver set DRIVER_OK: the device is live.
    pub fn is_live(&self) -> bool {
        self.status & status::DRIVER_OK != 0
    }

    /// The driver writes the device status. 0 resets the device
    /// ([`DeviceEvent::Reset`]); otherwise the driver can only add bits (of
    /// the low 8). FEATURES_OK sticks only if the accepted features are a
    /// subset of the offered ones, include VERSION_1 and meet every
    /// `depends` pair (feature, what it requires: one of these bits);
    /// otherwise the bit is dropped and the driver sees the failure when it
    /// reads the status back. DRIVER_OK before FEATURES_OK stuck is refused
    /// with [`DeviceEvent::NeedsReset`].
    pub fn set_status(&mut self, value: u32, depends: &[(u64, u64)]) -> DeviceEvent {
        if value == 0 {
            self.reset();
            return DeviceEvent::Reset;
        }
        let mut value = value & 0xff;
        if value & status::FEATURES_OK != 0
            && self.status & status::FEATURES_OK == 0
            && !self.features_acceptable(depends)
        {
            value &= !status::FEATURES_OK;
        }
        let was_ok = self.is_live();
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
            return DeviceEvent::NeedsReset;
        }
        // The driver may only set bits; NEEDS_RESET is the device's own.
        self.status |= value;
        if !was_ok && self.is_live() {
            DeviceEvent::DriverOk
        } else {
            DeviceEvent::None
        }
    }

    /// Whether the driver's features may be accepted: a subset of ours that
    /// includes VERSION_1, with every dependency met.
    fn features_acceptable(&self, depends: &[(u64, u64)]) -> bool {
        let f = self.driver_features;
        f & !self.device_features == 0
            && f & feature::VERSION_1 != 0
            && depends
                .iter()
                .all(|&(what, needs)| f & what == 0 || f & needs != 0)
    }

    /// Reset: everything the driver set (features, queues, status) and the
    /// interrupt status are cleared; the offered features stay and the
    /// config generation moves on.
    pub fn reset(&mut self) {
        *self = Self {
            config_generation: self.config_generation.wrapping_add(1),
            ..Self::new(self.device_features)
        };
    }

    /// Mark the device broken (DEVICE_NEEDS_RESET) and raise a config
    /// interrupt so the driver notices.
    pub fn set_needs_reset(&mut self) {
        self.status |= status::DEVICE_NEEDS_RESET;
        self.config_changed();
    }

    /// Whether the device set DEVICE_NEEDS_RESET (cleared only by a reset).
    pub fn needs_reset(&self) -> bool {
        self.status & status::DEVICE_NEEDS_RESET != 0
    }

    /// The config generation: it changes whenever the config space may
    /// have changed.
    pub fn config_generation(&self) -> u32 {
        self.config_generation
    }

    /// The device type changed its config space: move the config
    /// generation on and raise the config-change interrupt bit.
    pub fn config_changed(&mut self) {
        self.config_generation = self.config_generation.wrapping_add(1);
        self.interrupt_status |= interrupt::CONFIG_CHANGE;
    }

    /// The interrupt bits the driver has not acknowledged yet. While it is
    /// not zero a level-triggered line stays asserted.
    pub fn interrupt_status(&self) -> u32 {
        self.interrupt_status
    }

    /// Raise interrupt status bits (see [`interrupt`]). Returns true if the
    /// bits were not already pending.
    pub fn raise_interrupt(&mut self, bits: u32) -> bool {
        let new = bits & !self.interrupt_status;
        self.interrupt_status |= bits;
        new != 0
    }

    /// The driver acknowledged the interrupt bits `bits`.
    pub fn ack_interrupt(&mut self, bits: u32) {
        self.interrupt_status &= !bits;
    }

    /// The registers of queue `n`, if it exists.
    pub fn queue(&self, n: u16) -> Option<&QueueRegs> {
        self.queues.get(usize::from(n))
    }

    /// Queue `n` if it exists and its layout may still change: a ready
    /// queue's layout is frozen (virtio 4.2.2.2).
    fn layout_mut(&mut self, n: u16) -> Option<&mut QueueRegs> {
        self.queues.get_mut(usize::from(n)).filter(|q| !q.ready)
    }

    /// The driver sets the size of queue `n` (checked when it marks the
    /// queue ready). Returns false, and changes nothing, if the queue does
    /// not exist or is ready.
    pub fn set_queue_num(&mut self, n: u16, num: u32) -> bool {
        self.layout_mut(n).map(|q| q.num = num).is_some()
    }

    /// The driver sets the address of queue `n`'s descriptor table. Returns
    /// false, and changes nothing, if the queue does not exist or is ready.
    pub fn set_queue_desc(&mut self, n: u16, gpa: u64) -> bool {
        self.layout_mut(n).map(|q| q.desc = gpa).is_some()
    }

    /// The driver sets the address of queue `n`'s available ("driver")
    /// ring. Returns false, and changes nothing, if the queue does not
    /// exist or is ready.
    pub fn set_queue_driver(&mut self, n: u16, gpa: u64) -> bool {
        self.layout_mut(n).map(|q| q.driver = gpa).is_some()
    }

    /// The driver sets the address of queue `n`'s used ("device") ring.
    /// Returns false, and changes nothing, if the queue does not exist or is
    /// ready.
    pub fn set_queue_device(&mut self, n: u16, gpa: u64) -> bool {
        self.layout_mut(n).map(|q| q.device = gpa).is_some()
    }

    /// The driver marks queue `n` ready or not. Ready takes only a valid
    /// size ([`QueueRegs::num_valid`]), else the device needs a reset
    /// ([`DeviceEvent::NeedsReset`]); not ready stops a running queue
    /// ([`DeviceEvent::QueueStopped`] on a live device). Nothing for a queue
    /// that does not exist.
    pub fn set_queue_ready(&mut self, n: u16, ready: bool) -> DeviceEvent {
        let live = self.is_live();
        let Some(q) = self.queues.get_mut(usize::from(n)) else {
            return DeviceEvent::None;
        };
        if !ready {
            // Stopping a queue (virtio 4.2.2.2): a running one must let go
            // of the driver's buffers.
            let was_ready = q.ready;
            q.ready = false;
            if was_ready && live {
                DeviceEvent::QueueStopped(n)
            } else {
                DeviceEvent::None
            }
        } else if !q.num_valid() {
            self.set_needs_reset();
            DeviceEvent::NeedsReset
        } else {
            q.ready = true;
            DeviceEvent::QueueReady(n)
        }
    }

    /// Whether a notification of queue `n` is for a running queue: it
    /// exists, is ready, and the device is live.
    pub fn queue_notifiable(&self, n: u16) -> bool {
        self.is_live() && self.queue(n).is_some_and(|q| q.ready)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The device of the tests: two queues, offering MAC and STATUS of
    /// virtio-net (bits 5 and 16), no dependencies between features.
    type Dev = VirtioDevice<2>;
    const OFFERED: u64 = (1 << 5) | (1 << 16);
    const NO_DEPS: &[(u64, u64)] = &[];
    const ACK_DRIVER: u32 = status::ACKNOWLEDGE | status::DRIVER;

    fn dev() -> Dev {
        Dev::new(OFFERED)
    }

    /// Negotiates VERSION_1 only: ACKNOWLEDGE | DRIVER | FEATURES_OK.
    fn negotiate<const Q: usize>(d: &mut VirtioDevice<Q>) {
        d.set_status(ACK_DRIVER, NO_DEPS);
        d.set_driver_features(1, 1);
        d.set_status(ACK_DRIVER | status::FEATURES_OK, NO_DEPS);
        assert_ne!(d.status() & status::FEATURES_OK, 0);
    }

    #[test]
    fn negotiation_rejects_unoffered_or_legacy_features() {
        let mut d = dev();
        d.set_status(ACK_DRIVER, NO_DEPS);
        // Without VERSION_1: FEATURES_OK does not stick.
        d.set_driver_features(0, 1 << 5);
        d.set_status(0x3 | status::FEATURES_OK, NO_DEPS);
        assert_eq!(d.status() & status::FEATURES_OK, 0);
        // A feature we do not offer (bit 0): does not stick either.
        d.set_driver_features(0, (1 << 5) | 1);
        d.set_driver_features(1, 1);
        d.set_status(0x3 | status::FEATURES_OK, NO_DEPS);
        assert_eq!(d.status() & status::FEATURES_OK, 0);
        // A proper subset: accepted, then frozen.
        d.set_driver_features(0, 1 << 5);
        assert_eq!(
            d.set_status(0x3 | status::FEATURES_OK, NO_DEPS),
            DeviceEvent::None
        );
        assert_ne!(d.status() & status::FEATURES_OK, 0);
        assert_eq!(d.driver_features(), feature::VERSION_1 | (1 << 5));
        d.set_driver_features(0, 0);
        assert_eq!(d.driver_features(), feature::VERSION_1 | (1 << 5));
    }

    #[test]
    fn queue_ready_refuses_a_bad_queue_num() {
        // virtio 1.x: 1..=QueueNumMax and a power of two (split queues).
        for num in [0u32, 3, 6, 100, 255, 257, 512, 1 << 16, u32::MAX] {
            let mut d = dev();
            negotiate(&mut d);
            assert!(d.set_queue_num(1, num));
            assert!(!d.queue(1).unwrap().num_valid(), "num {num}");
            assert_eq!(
                d.set_queue_ready(1, true),
                DeviceEvent::NeedsReset,
                "num {num}"
            );
            assert!(!d.queue(1).unwrap().ready, "num {num}");
            assert!(d.needs_reset(), "num {num}");
            assert_eq!(d.interrupt_status() & 2, 2, "num {num}");
            // Never a live queue: DRIVER_OK does not make it notifiable.
            assert_eq!(
                d.set_status(0xb | status::DRIVER_OK, NO_DEPS),
                DeviceEvent::DriverOk
            );
            assert!(!d.queue_notifiable(1));
        }
        for num in [1u32, 2, 64, 128, QUEUE_NUM_MAX] {
            let mut d = dev();
            d.set_queue_num(0, num);
            assert!(d.queue(0).unwrap().num_valid(), "num {num}");
            assert_eq!(d.set_queue_ready(0, true), DeviceEvent::QueueReady(0));
            assert!(d.queue(0).unwrap().ready);
            assert!(!d.needs_reset(), "num {num}");
        }
    }

    #[test]
    fn queue_ready_zero_stops_a_live_queue() {
        let mut d = dev();
        negotiate(&mut d);
        for n in 0..2 {
            d.set_queue_num(n, 128);
            d.set_queue_ready(n, true);
        }
        assert_eq!(d.set_status(0xf, NO_DEPS), DeviceEvent::DriverOk);
        assert_eq!(d.set_queue_ready(0, false), DeviceEvent::QueueStopped(0));
        assert!(!d.queue(0).unwrap().ready);
        assert!(!d.queue_notifiable(0));
        // Already stopped: nothing more to do.
        assert_eq!(d.set_queue_ready(0, false), DeviceEvent::None);
        // The other queue runs on; no reset needed.
        assert!(d.queue_notifiable(1));
        assert!(!d.needs_reset());
        // The stopped queue's layout is the driver's again.
        assert!(d.set_queue_num(0, 64));
        assert_eq!(d.queue(0).unwrap().num, 64);
        assert_eq!(d.set_queue_ready(0, true), DeviceEvent::QueueReady(0));
        assert_eq!(d.set_queue_ready(1, false), DeviceEvent::QueueStopped(1));
        // Before DRIVER_OK nothing runs, so nothing to stop.
        let mut d = dev();
        d.set_queue_num(0, 128);
        d.set_queue_ready(0, true);
        assert_eq!(d.set_queue_ready(0, false), DeviceEvent::None);
        assert!(!d.queue(0).unwrap().ready);
    }

    #[test]
    fn driver_ok_without_features_ok_is_refused() {
        // Never set: ACKNOWLEDGE | DRIVER, then DRIVER_OK.
        let mut d = dev();
        d.set_status(ACK_DRIVER, NO_DEPS);
        assert_eq!(
            d.set_status(0x3 | status::DRIVER_OK, NO_DEPS),
            DeviceEvent::NeedsReset
        );
        assert_eq!(d.status() & status::DRIVER_OK, 0);
        assert!(!d.is_live());
        assert!(d.needs_reset());
        assert_eq!(d.interrupt_status() & 2, 2);
        // Refused FEATURES_OK (no VERSION_1), then DRIVER_OK.
        let mut d = dev();
        d.set_status(ACK_DRIVER, NO_DEPS);
        d.set_driver_features(0, 1 << 5);
        d.set_status(0x3 | status::FEATURES_OK, NO_DEPS);
        assert_eq!(d.status() & status::FEATURES_OK, 0);
        d.set_queue_num(0, 128);
        d.set_queue_ready(0, true);
        assert_eq!(
            d.set_status(0x3 | status::DRIVER_OK, NO_DEPS),
            DeviceEvent::NeedsReset
        );
        assert_eq!(d.status() & status::DRIVER_OK, 0);
        assert!(d.needs_reset());
        assert!(!d.queue_notifiable(0));
        // Refused within the same write as DRIVER_OK.
        let mut d = dev();
        assert_eq!(d.set_status(0xf, NO_DEPS), DeviceEvent::NeedsReset);
        assert_eq!(d.status() & (status::DRIVER_OK | status::FEATURES_OK), 0);
        assert!(d.needs_reset());
        // Accepted in the same write: fine.
        let mut d = dev();
        d.set_driver_features(1, 1);
        assert_eq!(d.set_status(0xf, NO_DEPS), DeviceEvent::DriverOk);
        assert!(d.is_live());
        assert!(!d.needs_reset());
    }

    #[test]
    fn feature_words_and_driver_feature_halves() {
        let mut d = Dev::new(0xdead_beef | (1 << 40));
        assert_eq!(
            d.device_features(),
            0xdead_beef | (1 << 40) | feature::VERSION_1
        );
        assert_eq!(d.device_features_word(0), 0xdead_beef);
        assert_eq!(d.device_features_word(1), 0x101);
        assert_eq!(d.device_features_word(2), 0);
        assert_eq!(d.device_features_word(u32::MAX), 0);
        d.set_driver_features(1, 0x101);
        d.set_driver_features(0, 0xbeef);
        // Selectors past 1 are ignored.
        d.set_driver_features(2, u32::MAX);
        assert_eq!(d.driver_features(), 0x101_0000_beef);
        d.set_driver_features(0, 0xdead_0000);
        assert_eq!(d.driver_features(), 0x101_dead_0000);
        // A reset forgets the driver's features, not the device's.
        assert_eq!(d.set_status(0, NO_DEPS), DeviceEvent::Reset);
        assert_eq!(d.driver_features(), 0);
        assert_eq!(d.device_features_word(0), 0xdead_beef);
    }

    #[test]
    fn dependency_rules_are_the_device_types() {
        // Bit 40 needs bit 41 or bit 42; bit 43 needs bit 40.
        const DEPS: &[(u64, u64)] = &[(1 << 40, (1 << 41) | (1 << 42)), (1 << 43, 1 << 40)];
        let offered = 0xf << 40;
        for (want, sticks) in [
            (0, true),
            (1 << 40, false),
            (1 << 41, true),
            ((1 << 40) | (1 << 42), true),
            ((1 << 40) | (1 << 41) | (1 << 42), true),
            (1 << 43, false),
            ((1 << 43) | (1 << 40), false),
            ((1 << 43) | (1 << 40) | (1 << 41), true),
        ] {
            let mut d = Dev::new(offered);
            let want = want | feature::VERSION_1;
            d.set_driver_features(0, 0);
            d.set_driver_features(1, u32::try_from(want >> 32).unwrap());
            d.set_status(ACK_DRIVER | status::FEATURES_OK, DEPS);
            assert_eq!(d.status() & status::FEATURES_OK != 0, sticks, "{want:#x}");
            // Without the rules, every subset sticks.
            let mut d = Dev::new(offered);
            d.set_driver_features(1, u32::try_from(want >> 32).unwrap());
            d.set_status(ACK_DRIVER | status::FEATURES_OK, NO_DEPS);
            assert_ne!(d.status() & status::FEATURES_OK, 0, "{want:#x}");
        }
    }

    #[test]
    fn queue_layout_is_frozen_while_ready() {
        let mut d = dev();
        assert!(d.set_queue_num(1, 8));
        assert!(d.set_queue_desc(1, 0x1_0000_1000));
        assert!(d.set_queue_driver(1, 0x2000));
        assert!(d.set_queue_device(1, 0x3000));
        let set = QueueRegs {
            num: 8,
            ready: false,
            desc: 0x1_0000_1000,
            driver: 0x2000,
            device: 0x3000,
        };
        assert_eq!(*d.queue(1).unwrap(), set);
        assert_eq!(d.set_queue_ready(1, true), DeviceEvent::QueueReady(1));
        assert!(!d.set_queue_num(1, 4));
        assert!(!d.set_queue_desc(1, 0));
        assert!(!d.set_queue_driver(1, 0));
        assert!(!d.set_queue_device(1, 0));
        assert_eq!(*d.queue(1).unwrap(), QueueRegs { ready: true, ..set });
        // Ready again (same valid size): QueueReady again.
        assert_eq!(d.set_queue_ready(1, true), DeviceEvent::QueueReady(1));
        // Queues that do not exist: nothing taken, nothing to do.
        assert!(d.queue(2).is_none());
        assert!(!d.set_queue_num(2, 8));
        assert!(!d.set_queue_desc(u16::MAX, 0));
        assert_eq!(d.set_queue_ready(2, true), DeviceEvent::None);
        assert_eq!(d.set_queue_ready(2, false), DeviceEvent::None);
        assert!(!d.queue_notifiable(2));
        assert!(!d.needs_reset());
    }

    #[test]
    fn any_number_of_queues() {
        // A device with three queue pairs, as a multiqueue transport has.
        let mut d = VirtioDevice::<6>::new(0);
        negotiate(&mut d);
        for n in 0..6 {
            assert!(d.set_queue_num(n, 256));
            assert_eq!(d.set_queue_ready(n, true), DeviceEvent::QueueReady(n));
        }
        assert!(d.queue(6).is_none());
        assert!(!d.queue_notifiable(5));
        assert_eq!(d.set_status(0xf, NO_DEPS), DeviceEvent::DriverOk);
        assert!((0..6).all(|n| d.queue_notifiable(n)));
        assert!(!d.queue_notifiable(6));
        assert_eq!(d.set_queue_ready(5, false), DeviceEvent::QueueStopped(5));
        assert!(!d.queue_notifiable(5));
        // No queue at all is a device too.
        let mut d = VirtioDevice::<0>::new(0);
        assert!(d.queue(0).is_none());
        assert_eq!(d.set_queue_ready(0, true), DeviceEvent::None);
    }

    #[test]
    fn reset_keeps_offered_features_and_moves_generation() {
        let mut d = dev();
        negotiate(&mut d);
        d.set_queue_num(0, 64);
        d.set_queue_ready(0, true);
        d.set_status(0xf, NO_DEPS);
        d.raise_interrupt(interrupt::USED_BUFFER);
        d.set_needs_reset();
        let gen = d.config_generation();
        assert_eq!(d.set_status(0, NO_DEPS), DeviceEvent::Reset);
        assert_eq!(d.status(), 0);
        assert!(!d.is_live() && !d.needs_reset());
        assert_eq!(d.interrupt_status(), 0);
        assert_eq!(d.driver_features(), 0);
        assert_eq!(*d.queue(0).unwrap(), QueueRegs::default());
        assert_eq!(d.device_features(), OFFERED | feature::VERSION_1);
        assert_eq!(d.config_generation(), gen.wrapping_add(1));
        // Also when the driver never did anything, and called directly.
        d.reset();
        assert_eq!(d.config_generation(), gen.wrapping_add(2));
        assert_eq!(d.device_features(), OFFERED | feature::VERSION_1);
    }

    #[test]
    fn interrupts_raise_ack_and_config_change() {
        let mut d = dev();
        assert!(d.raise_interrupt(interrupt::USED_BUFFER));
        assert!(!d.raise_interrupt(interrupt::USED_BUFFER));
        assert!(d.raise_interrupt(interrupt::USED_BUFFER | interrupt::CONFIG_CHANGE));
        d.ack_interrupt(interrupt::USED_BUFFER);
        assert_eq!(d.interrupt_status(), interrupt::CONFIG_CHANGE);
        d.ack_interrupt(u32::MAX);
        assert_eq!(d.interrupt_status(), 0);
        let gen = d.config_generation();
        d.config_changed();
        assert_eq!(d.config_generation(), gen.wrapping_add(1));
        assert_eq!(d.interrupt_status(), interrupt::CONFIG_CHANGE);
        // NEEDS_RESET is a config change too, and the driver cannot clear it.
        d.set_needs_reset();
        assert_eq!(d.config_generation(), gen.wrapping_add(2));
        assert!(d.needs_reset());
        d.set_status(status::ACKNOWLEDGE, NO_DEPS);
        assert!(d.needs_reset());
        // The generation wraps.
        let mut d = Dev {
            config_generation: u32::MAX,
            ..dev()
        };
        d.config_changed();
        assert_eq!(d.config_generation(), 0);
    }

    #[test]
    fn all_zero_is_a_device_that_never_negotiates() {
        let mut d = Dev {
            device_features: 0,
            driver_features: 0,
            queues: [QueueRegs::default(); 2],
            status: 0,
            interrupt_status: 0,
            config_generation: 0,
        };
        d.set_status(ACK_DRIVER, NO_DEPS);
        d.set_driver_features(1, 1);
        d.set_status(ACK_DRIVER | status::FEATURES_OK, NO_DEPS);
        assert_eq!(d.status() & status::FEATURES_OK, 0);
        assert_eq!(d.set_status(0xf, NO_DEPS), DeviceEvent::NeedsReset);
    }

    #[test]
    fn halves_of_a_word() {
        assert_eq!(
            with_half(0x1111_2222_3333_4444, false, 0xaaaa_bbbb),
            0x1111_2222_aaaa_bbbb
        );
        assert_eq!(
            with_half(0x1111_2222_3333_4444, true, 0xaaaa_bbbb),
            0xaaaa_bbbb_3333_4444
        );
        assert_eq!(with_half(u64::MAX, true, 0), 0xffff_ffff);
        assert_eq!(with_half(u64::MAX, false, 0), 0xffff_ffff_0000_0000);
    }
}
