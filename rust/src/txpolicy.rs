// SPDX-License-Identifier: GPL-2.0
//! When a device polls a transmit ring instead of having the guest notify
//! it, adaptively (the module's `net::tx` applies it).
//!
//! Leaving the guest's transmit notifications off pays when the guest adds
//! frames faster than the poll period: each poll then sends a batch, with no
//! exit of its own where a notify would have cost one a frame. It costs
//! when the guest sends one frame and goes quiet (request/response): the
//! poll finds nothing, and on a halted vCPU it takes an interrupt. So:
//!
//! - a poll from the timer that finds frames keeps notifications off (a
//!   hit); one that finds nothing turns them back on and skips the
//!   deferral for the next `backoff` notified services, doubling
//!   `backoff` (up to `BACKOFF_MAX`) at each miss in a row, as KVM's halt
//!   polling grows and shrinks its window: request/response traffic ends
//!   up notified nearly every time, as without polling;
//! - a poll on an exit the guest made anyway (its interrupt handler, a
//!   receive notify or kick) is free: if it finds frames the poll stays
//!   owed (its timer restarted); if not, the guest is not streaming now (a
//!   reply came, say) and notifications go back on, so that its next frame
//!   is served at once: request/response traffic never waits for the
//!   timer;
//! - (the last two only where the device asks for them: the module's
//!   `tx_poll_adapt`, on by default) the poll period
//!   adapts to how fast the guest adds frames: from the
//!   device's base period (`tx_poll_us`) it doubles at each timer poll
//!   that finds nothing or a single frame (the guest is slower than the
//!   period: a poll per frame saves no exit), up to `PERIOD_SHIFT_MAX`
//!   doublings, and halves at each one that finds `BATCH` or more. On
//!   hardware, where a streaming guest adds frames microseconds apart, it
//!   stays at the base; under emulation, where a frame takes a
//!   millisecond, it grows until a poll finds several;
//! - while deferred, a guest that adds `KICK_AFTER` frames before any poll
//!   came notifies anyway (with EVENT_IDX, `avail_event` set that far
//!   ahead, `Virtqueue::notify_after`): a burst never waits for the timer.

/// Most notified services a miss may skip the deferral for.
const BACKOFF_MAX: u16 = 64;

/// Most doublings of the poll period: 32 times the base (1.6 ms at the
/// default 50 µs), so a frame waits at most about twice that.
pub const PERIOD_SHIFT_MAX: u8 = 5;

/// The period grows no further than this (or the base, if that is longer).
pub const PERIOD_MAX_NS: u64 = 2_000_000;

/// A timer poll finding this many frames or more halves the period.
pub const BATCH: u32 = 4;

/// A deferred ring is notified anyway once the guest added this many
/// frames (EVENT_IDX only).
pub const KICK_AFTER: u16 = 32;

/// Why the transmit ring is served.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TxWhy {
    /// The guest notified (or, on the vhost transport, kicked with no poll
    /// owed), or the last exit's budget left work.
    Notify,
    /// An exit of the device the guest made anyway, with a poll owed.
    Piggyback,
    /// The poll timer: its task work, or the interrupt it raised instead.
    Timer,
}

/// What a service that found the ring empty does: leave notifications off
/// (`Defer`: a poll is owed, the timer armed from now) or turn them back on
/// (`Notify`, with the re-check for a frame added meanwhile).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AtEmpty {
    /// Leave notifications off: a poll is owed.
    Defer,
    /// Turn notifications back on.
    Notify,
}

/// The adaptive part of a device's transmit state.
#[derive(Debug)]
pub struct TxPolicy {
    /// Notified services left that do not defer.
    skip: u16,
    /// What the next miss sets `skip` to.
    backoff: u16,
    /// The poll period is the base period times 2^`shift`.
    shift: u8,
}

impl Default for TxPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl TxPolicy {
    /// A device's policy at queue start: defer at the first chance.
    pub const fn new() -> Self {
        Self {
            skip: 0,
            backoff: 1,
            shift: 0,
        }
    }

    /// The poll period for a device whose base period is `base_ns`.
    pub fn period_ns(&self, base_ns: u64) -> u64 {
        (base_ns << self.shift).min(PERIOD_MAX_NS.max(base_ns))
    }

    /// A timer poll found `frames`: the period follows (see the module's
    /// text).
    fn adapt(&mut self, frames: u32) {
        if frames <= 1 {
            self.shift = self.shift.saturating_add(1).min(PERIOD_SHIFT_MAX);
        } else if frames >= BATCH {
            self.shift = self.shift.saturating_sub(1);
        }
    }

    /// A service for `why` found the ring empty after sending `frames`
    /// (`polling`: a poll period is set).
    pub fn at_empty(&mut self, why: TxWhy, frames: u32, polling: bool) -> AtEmpty {
        if !polling {
            return AtEmpty::Notify;
        }
        match (why, frames) {
            (TxWhy::Notify, 0) => AtEmpty::Notify,
            (TxWhy::Notify, _) if self.skip > 0 => {
                self.skip = self.skip.saturating_sub(1);
                AtEmpty::Notify
            }
            (TxWhy::Notify, _) => AtEmpty::Defer,
            // The guest made an exit and sent nothing new meanwhile: it is
            // not streaming now (a reply came, say), so its next frame is
            // notified and served at once.
            (TxWhy::Piggyback, 0) => AtEmpty::Notify,
            (TxWhy::Piggyback, _) => AtEmpty::Defer,
            (TxWhy::Timer, 0) => {
                self.adapt(0);
                self.skip = self.backoff;
                self.backoff = self.backoff.saturating_mul(2).min(BACKOFF_MAX);
                AtEmpty::Notify
            }
            (TxWhy::Timer, n) => {
                self.adapt(n);
                self.backoff = 1;
                AtEmpty::Defer
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_without_a_poll_period() {
        let mut p = TxPolicy::new();
        for why in [TxWhy::Notify, TxWhy::Piggyback, TxWhy::Timer] {
            assert_eq!(p.at_empty(why, 5, false), AtEmpty::Notify);
        }
    }

    #[test]
    fn a_notify_that_sent_frames_defers_one_that_sent_none_does_not() {
        let mut p = TxPolicy::new();
        assert_eq!(p.at_empty(TxWhy::Notify, 1, true), AtEmpty::Defer);
        assert_eq!(p.at_empty(TxWhy::Notify, 0, true), AtEmpty::Notify);
    }

    #[test]
    fn a_free_poll_keeps_a_stream_and_ends_a_quiet_one() {
        let mut p = TxPolicy::new();
        assert_eq!(p.at_empty(TxWhy::Piggyback, 3, true), AtEmpty::Defer);
        assert_eq!(p.at_empty(TxWhy::Piggyback, 0, true), AtEmpty::Notify);
        // Neither moves the backoff: the next notify defers.
        assert_eq!(p.at_empty(TxWhy::Notify, 1, true), AtEmpty::Defer);
    }

    /// Request/response: each notify sends one frame, each timer poll finds
    /// nothing. The deferrals thin out to one in `BACKOFF_MAX + 1`.
    #[test]
    fn request_response_backs_off_to_one_deferral_in_65() {
        let mut p = TxPolicy::new();
        let mut deferrals = 0;
        let services = 2000;
        for _ in 0..services {
            if p.at_empty(TxWhy::Notify, 1, true) == AtEmpty::Defer {
                deferrals += 1;
                assert_eq!(p.at_empty(TxWhy::Timer, 0, true), AtEmpty::Notify);
            }
        }
        // 1, 2, 4, ..., 64 skipped after the first misses, then 64 each time.
        assert!(deferrals <= services / 65 + 8, "{deferrals} deferrals");
        assert!(deferrals >= services / 65, "{deferrals} deferrals");
    }

    #[test]
    fn a_timer_hit_resets_the_backoff() {
        let mut p = TxPolicy::new();
        for _ in 0..10 {
            assert_eq!(p.at_empty(TxWhy::Timer, 0, true), AtEmpty::Notify);
        }
        assert_eq!(p.at_empty(TxWhy::Timer, 4, true), AtEmpty::Defer);
        // One miss now skips one notified service only.
        assert_eq!(p.at_empty(TxWhy::Timer, 0, true), AtEmpty::Notify);
        assert_eq!(p.at_empty(TxWhy::Notify, 1, true), AtEmpty::Notify);
        assert_eq!(p.at_empty(TxWhy::Notify, 1, true), AtEmpty::Defer);
    }

    #[test]
    fn the_period_grows_while_polls_find_a_frame_or_none_and_shrinks_on_batches() {
        let mut p = TxPolicy::new();
        assert_eq!(p.period_ns(50_000), 50_000);
        assert_eq!(p.at_empty(TxWhy::Timer, 1, true), AtEmpty::Defer);
        assert_eq!(p.period_ns(50_000), 100_000);
        assert_eq!(p.at_empty(TxWhy::Timer, 0, true), AtEmpty::Notify);
        assert_eq!(p.period_ns(50_000), 200_000);
        // Two or three frames a poll: the period stays.
        assert_eq!(p.at_empty(TxWhy::Timer, 3, true), AtEmpty::Defer);
        assert_eq!(p.period_ns(50_000), 200_000);
        for _ in 0..20 {
            p.at_empty(TxWhy::Timer, 1, true);
        }
        assert_eq!(p.period_ns(50_000), 50_000 << PERIOD_SHIFT_MAX);
        // A long base grows no further than PERIOD_MAX_NS, or not at all.
        assert_eq!(p.period_ns(1_000_000), PERIOD_MAX_NS);
        assert_eq!(p.period_ns(5_000_000), 5_000_000);
        for _ in 0..20 {
            p.at_empty(TxWhy::Timer, BATCH, true);
        }
        assert_eq!(p.period_ns(50_000), 50_000);
        // Notifies and free polls leave it alone.
        p.at_empty(TxWhy::Notify, 1, true);
        p.at_empty(TxWhy::Piggyback, 0, true);
        assert_eq!(p.period_ns(50_000), 50_000);
    }

    /// A stream the timer keeps finding frames in stays deferred.
    #[test]
    fn a_stream_stays_deferred() {
        let mut p = TxPolicy::new();
        assert_eq!(p.at_empty(TxWhy::Notify, 1, true), AtEmpty::Defer);
        for n in 1..100 {
            assert_eq!(p.at_empty(TxWhy::Timer, n % 7 + 1, true), AtEmpty::Defer);
        }
    }
}
