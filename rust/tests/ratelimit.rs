//! Token bucket: starts full, refills at the rate, caps at the burst, wrapping
//! clock, no overflow for any input, and two properties over any schedule.

use proptest::prelude::*;
use pvpass_core::ratelimit::RateLimit;

const HZ: u64 = 1000;

// Usable in a const context (a kernel static, a per-port initialiser).
static _STATIC: RateLimit = RateLimit::new(100, 10);
const _CONST: RateLimit = RateLimit::new(u32::MAX, u32::MAX);

/// How many of `n` calls at `now` are allowed.
fn take(b: &mut RateLimit, now: u64, tps: u64, n: u32) -> u32 {
    (0..n).map(|_| u32::from(b.allow(now, tps))).sum()
}

#[test]
fn fresh_bucket_starts_full() {
    let mut b = RateLimit::new(10, 5);
    assert_eq!((b.rate(), b.burst()), (10, 5));
    assert_eq!(take(&mut b, 12345, HZ, 100), 5);
    // Whatever the clock reads at the first call.
    let mut b = RateLimit::new(10, 5);
    assert_eq!(take(&mut b, u64::MAX - 2, HZ, 100), 5);
}

#[test]
fn refills_at_the_rate() {
    let mut b = RateLimit::new(10, 5); // one token per 100 ticks
    assert_eq!(take(&mut b, 0, HZ, 5), 5);
    assert!(!b.allow(0, HZ));
    assert!(!b.allow(99, HZ));
    assert!(b.allow(100, HZ));
    assert!(!b.allow(100, HZ));
    assert!(!b.allow(199, HZ));
    assert!(b.allow(200, HZ));
    // 350 ticks later: 3.5 tokens, the half is kept.
    assert_eq!(take(&mut b, 550, HZ, 10), 3);
    assert!(!b.allow(599, HZ));
    assert!(b.allow(600, HZ));
}

#[test]
fn fractions_add_up_across_calls() {
    // 3 per second at HZ=1000: a token every 333.3 ticks, called every tick
    // (the bucket never fills up, so no part of a token is lost).
    let mut b = RateLimit::new(3, 2);
    assert_eq!(take(&mut b, 0, HZ, 2), 2);
    let got: Vec<u64> = (1..=3000).filter(|&t| b.allow(t, HZ)).collect();
    assert_eq!(got, [334, 667, 1000, 1334, 1667, 2000, 2334, 2667, 3000]);
}

#[test]
fn idle_time_fills_only_up_to_the_burst() {
    let mut b = RateLimit::new(1000, 8);
    assert_eq!(take(&mut b, 0, HZ, 8), 8);
    assert_eq!(take(&mut b, 1_000_000, HZ, 100), 8);
    // A fraction earned while full is not kept either.
    let mut b = RateLimit::new(1, 1);
    assert!(b.allow(0, HZ));
    assert!(b.allow(1500, HZ)); // full again at 1000
    assert!(!b.allow(2499, HZ)); // 999 ticks since the last refill: nothing
    assert!(b.allow(2500, HZ));
}

#[test]
fn clock_wrap_and_clock_going_back() {
    let t0 = u64::MAX - 49;
    let mut b = RateLimit::new(10, 2);
    assert_eq!(take(&mut b, t0, HZ, 5), 2);
    // 100 ticks later, across the wrap: one token.
    assert_eq!(take(&mut b, t0.wrapping_add(100), HZ, 5), 1);
    // Time going back refills nothing and earns nothing twice.
    assert_eq!(take(&mut b, t0, HZ, 5), 0);
    assert_eq!(take(&mut b, 0, HZ, 5), 0);
    assert_eq!(take(&mut b, t0.wrapping_add(199), HZ, 5), 0);
    assert_eq!(take(&mut b, t0.wrapping_add(200), HZ, 5), 1);
}

#[test]
fn degenerate_parameters() {
    // Rate 0: the burst, then nothing, ever.
    let mut b = RateLimit::new(0, 3);
    assert_eq!(take(&mut b, 0, HZ, 10), 3);
    assert_eq!(take(&mut b, u64::MAX >> 2, HZ, 10), 0);
    // Burst 0, and the all-zero value: nothing.
    let mut b = RateLimit::new(1_000_000, 0);
    assert_eq!(take(&mut b, 0, HZ, 10), 0);
    assert_eq!(take(&mut b, 1 << 40, HZ, 10), 0);
    let mut b = RateLimit::default();
    assert_eq!(b, RateLimit::new(0, 0));
    assert_eq!(take(&mut b, 7, HZ, 10), 0);
    // ticks_per_sec 0: no time passes, so no refill.
    let mut b = RateLimit::new(5, 2);
    assert_eq!(take(&mut b, 0, 0, 10), 2);
    assert_eq!(take(&mut b, 1 << 50, 0, 10), 0);
}

#[test]
fn extreme_values_do_not_overflow() {
    let mut b = RateLimit::new(u32::MAX, u32::MAX);
    assert_eq!(take(&mut b, 0, u64::MAX, 1000), 1000);
    for (now, tps) in [
        (u64::MAX >> 1, u64::MAX),
        (u64::MAX, 1),
        (0, u64::MAX),
        (u64::MAX >> 1, 1),
        (u64::MAX, u64::MAX >> 1),
    ] {
        assert!(b.allow(now, tps));
    }
    // A rate of u32::MAX per second with ticks of 1 s: full after a tick.
    let mut b = RateLimit::new(u32::MAX, 3);
    assert_eq!(take(&mut b, 0, 1, 5), 3);
    assert_eq!(take(&mut b, 1, 1, 5), 3);
    // ns ticks, huge gaps.
    let mut b = RateLimit::new(7, 2);
    assert_eq!(take(&mut b, 0, 1_000_000_000, 5), 2);
    assert_eq!(take(&mut b, (1 << 63) - 1, 1_000_000_000, 5), 2);
    // A second longer than 2^32 ticks: exact fractions still (tps > 2^32).
    let tps = 10_000_000_000u64;
    let mut b = RateLimit::new(4, 1);
    assert!(b.allow(0, tps));
    assert!(!b.allow(2_499_999_999, tps));
    assert!(b.allow(2_500_000_000, tps));
    let mut b = RateLimit::new(u32::MAX, 1);
    let tps = u64::MAX - 1;
    assert!(b.allow(0, tps));
    // u32::MAX tokens per (2^64 - 2) ticks: one per just under 2^32 + 1
    // ticks; what is earned past a full bucket is not kept.
    assert!(!b.allow(1 << 32, tps));
    assert!(b.allow((1 << 32) + 1, tps));
    assert!(!b.allow((2 << 32) + 1, tps));
    assert!(b.allow((2 << 32) + 2, tps));
}

// ---------------------------------------------------------------------------
// Properties.

/// The reference: credit in units of 1/tps token, exact in u128.
struct Model {
    rate: u128,
    cap: u128,
    tps: u128,
    credit: u128,
    last: Option<u64>,
}

impl Model {
    fn new(rate: u32, burst: u32, tps: u64) -> Self {
        assert!(tps > 0);
        let cap = u128::from(burst) * u128::from(tps);
        Model {
            rate: u128::from(rate),
            cap,
            tps: u128::from(tps),
            credit: cap,
            last: None,
        }
    }

    fn allow(&mut self, now: u64) -> bool {
        match self.last {
            None => self.last = Some(now),
            Some(last) => {
                let d = now.wrapping_sub(last);
                if d < 1 << 63 {
                    self.last = Some(now);
                    self.credit = (self.credit + u128::from(d) * self.rate).min(self.cap);
                }
            }
        }
        // One token is tps units.
        if self.credit >= self.tps {
            self.credit -= self.tps;
            true
        } else {
            false
        }
    }
}

fn arb_rate() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..20, 1u32..5000, Just(u32::MAX), any::<u32>()]
}

fn arb_burst() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..6, 1u32..100, Just(u32::MAX)]
}

fn arb_tps() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(1u64),
        Just(100),
        Just(250),
        Just(1000),
        Just(1_000_000_000),
        1u64..100_000,
        (1u64 << 32)..u64::MAX,
        Just(u64::MAX),
    ]
}

/// Gaps between calls: mostly small, at times none or huge (below 2^62, so
/// the clock never seems to go back).
fn arb_gap() -> impl Strategy<Value = u64> {
    prop_oneof![6 => 0u64..50, 3 => 0u64..5000, 1 => 0u64..(1 << 62)]
}

fn arb_start() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(u64::MAX - 1000), any::<u64>()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    /// The bucket decides exactly as the u128 reference, for any schedule,
    /// rate, burst and tick rate, the clock going back included.
    #[test]
    fn matches_the_exact_model(
        rate in arb_rate(), burst in arb_burst(), tps in arb_tps(), start in arb_start(),
        steps in prop::collection::vec((prop_oneof![9 => arb_gap(), 1 => any::<u64>()], 1u32..4), 1..150),
    ) {
        let mut b = RateLimit::new(rate, burst);
        let mut m = Model::new(rate, burst, tps);
        let mut now = start;
        for (gap, n) in steps {
            now = now.wrapping_add(gap);
            for _ in 0..n {
                prop_assert_eq!(b.allow(now, tps), m.allow(now), "at {}", now);
            }
        }
    }

    /// Within any window of T ticks, at most burst + rate * T / tps + 1
    /// calls are allowed.
    #[test]
    fn allowed_per_window_is_bounded(
        rate in arb_rate(), burst in arb_burst(), tps in arb_tps(), start in arb_start(),
        steps in prop::collection::vec((arb_gap(), 1u32..6), 1..150),
    ) {
        let mut b = RateLimit::new(rate, burst);
        let mut t: u128 = 0; // ticks since start, never wrapping
        let mut allowed: Vec<u128> = Vec::new();
        for (gap, n) in steps {
            t += u128::from(gap);
            let now = start.wrapping_add(t as u64);
            for _ in 0..n {
                if b.allow(now, tps) {
                    allowed.push(t);
                }
            }
        }
        for i in 0..allowed.len() {
            for j in i..allowed.len() {
                let window = allowed[j] - allowed[i];
                let bound = u128::from(burst) + u128::from(rate) * window / u128::from(tps) + 1;
                prop_assert!(
                    (j - i + 1) as u128 <= bound,
                    "{} allowed in {} ticks, bound {}", j - i + 1, window, bound
                );
            }
        }
    }

    /// A caller that stays below the rate is never refused: calls at least
    /// tps / rate ticks apart, or bursts of at most `burst` calls at least
    /// burst * tps / rate ticks apart.
    #[test]
    fn below_the_rate_is_never_refused(
        rate in 1u32..=u32::MAX, burst in 1u32..8, tps in arb_tps(), start in arb_start(),
        steps in prop::collection::vec((0u64..1000, 1u32..=8), 1..100),
    ) {
        let mut b = RateLimit::new(rate, burst);
        let spacing = |calls: u32| {
            // ceil(calls * tps / rate), capped below 2^62.
            let need = u128::from(calls) * u128::from(tps);
            need.div_ceil(u128::from(rate)).min(1 << 61) as u64
        };
        let mut now = start;
        for (k, (extra, n)) in steps.into_iter().enumerate() {
            let n = n.min(burst);
            if k > 0 {
                now = now.wrapping_add(spacing(burst) + extra);
            }
            for _ in 0..n {
                prop_assert!(b.allow(now, tps), "refused at {}", now);
            }
        }
        let mut b = RateLimit::new(rate, burst);
        let mut now = start;
        for extra in 0..200u64 {
            prop_assert!(b.allow(now, tps), "refused at {}", now);
            now = now.wrapping_add(spacing(1) + extra % 3);
        }
    }

    /// A caller at exactly the rate (call i at tick ceil(i * tps / rate),
    /// fractions of a tick and all) is never refused once the bucket holds
    /// what one tick earns: burst >= 1 + ceil(rate / tps). (Since the last
    /// time the bucket was full, at call k, calls k..i took i - k + 1 tokens
    /// and (t_i - t_k) * rate / tps >= i - k - rate / tps were earned.)
    #[test]
    fn exactly_at_the_rate_is_never_refused(
        rate in prop_oneof![1u32..20, 1u32..100_000],
        tps in prop_oneof![Just(1u64), Just(100), Just(1000), Just(1_000_000_000), 1u64..(1 << 40)],
        more in 0u32..3, start in arb_start(), calls in 1u64..300,
    ) {
        let burst = 1 + u64::from(rate).div_ceil(tps) as u32 + more;
        let mut b = RateLimit::new(rate, burst);
        for i in 0..calls {
            let t = (u128::from(i) * u128::from(tps)).div_ceil(u128::from(rate)) as u64;
            let now = start.wrapping_add(t);
            prop_assert!(b.allow(now, tps), "call {} at {} refused", i, t);
        }
    }
}
