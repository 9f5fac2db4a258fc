// SPDX-License-Identifier: GPL-2.0
//! A token bucket, for per-port broadcast/multicast storm control.
//!
//! A [`RateLimit`] holds up to `burst` tokens and earns `rate_per_sec` tokens
//! a second; [`RateLimit::allow`] takes one if there is one. A fresh bucket
//! is full. The bucket never reads a clock: the caller passes `now`, a
//! monotonic tick counter that may wrap (jiffies), and how many ticks make a
//! second (HZ). Differences are wrapping and read like the kernel's
//! `time_after`: a `now` that is 2^63 ticks or more "after" the last call is
//! taken as earlier than it, and earns nothing (a clock that goes back gives
//! no tokens, twice or at all).
//!
//! The arithmetic is exact and integer-only, with no overflow for any input
//! (rates and bursts up to `u32::MAX`, ticks per second and gaps up to
//! `u64::MAX`), and uses 64-bit operations only (no `u128`, whose division
//! the kernel does not provide). So over any schedule of calls, within any
//! window of `T` ticks at most `burst + rate * T / ticks_per_sec + 1` calls
//! are allowed (the `+ 1` is a token earned in part before the window), and
//! a caller that stays below the rate is never refused.
//!
//! The all-zero value is `new(0, 0)`, a bucket that allows nothing: a port
//! left without a configured limit drops its group traffic, visibly.

/// A token bucket. See the module documentation.
///
/// 32 bytes; `new` is `const`, so it can live in a `static` or in a
/// per-port structure built in place.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens earned per second.
    rate: u32,
    /// Size of the bucket.
    burst: u32,
    /// Tokens missing from a full bucket (`<= burst`).
    used: u32,
    /// Has a call set `last` yet?
    started: bool,
    /// Part of the next token earned so far, in units of one
    /// `1 / ticks_per_sec` token (so below `ticks_per_sec`); 0 when full.
    acc: u64,
    /// Tick of the last call that earned tokens.
    last: u64,
}

/// `(a + b) mod m` and whether it wrapped past `m`, for `a, b < m`.
#[inline]
fn add_mod(a: u64, b: u64, m: u64) -> (u64, bool) {
    // `m - b >= 1`; if `a >= m - b`, `a - (m - b) = a + b - m < m`;
    // otherwise `a + b < m`. Neither wraps.
    let room = m.wrapping_sub(b);
    if a >= room {
        (a.wrapping_sub(room), true)
    } else {
        (a.wrapping_add(b), false)
    }
}

/// `((acc + r * rate) / m, (acc + r * rate) % m)` for `acc, r < m`, exact,
/// in 64-bit arithmetic. The quotient is at most `rate`.
fn mul_add_divmod(r: u64, rate: u32, acc: u64, m: u64) -> (u64, u64) {
    if let Some(x) = r
        .checked_mul(u64::from(rate))
        .and_then(|p| p.checked_add(acc))
    {
        return (x.checked_div(m).unwrap_or(0), x.checked_rem(m).unwrap_or(0));
    }
    // Double and add over the bits of `rate`, keeping `q * m + x` equal to
    // `r * (the bits of rate seen so far)` with `x < m`. The quotient stays
    // below the bits seen so far (`r < m`), so below 2^32: no overflow.
    let (mut q, mut x) = (0u64, 0u64);
    for bit in (0..32u32).rev() {
        let (x2, c) = add_mod(x, x, m);
        q = q.wrapping_shl(1).wrapping_add(u64::from(c));
        x = x2;
        if rate.checked_shr(bit).unwrap_or(0) & 1 != 0 {
            let (x2, c) = add_mod(x, r, m);
            q = q.wrapping_add(u64::from(c));
            x = x2;
        }
    }
    let (x2, c) = add_mod(x, acc, m);
    (q.wrapping_add(u64::from(c)), x2)
}

impl RateLimit {
    /// A full bucket of `burst` tokens that earns `rate_per_sec` a second.
    #[must_use]
    pub const fn new(rate_per_sec: u32, burst: u32) -> Self {
        Self {
            rate: rate_per_sec,
            burst,
            used: 0,
            started: false,
            acc: 0,
            last: 0,
        }
    }

    /// Tokens earned per second.
    #[must_use]
    pub const fn rate(&self) -> u32 {
        self.rate
    }

    /// Size of the bucket.
    #[must_use]
    pub const fn burst(&self) -> u32 {
        self.burst
    }

    /// Whole tokens in the bucket as of the last call.
    #[must_use]
    pub const fn tokens(&self) -> u32 {
        self.burst.saturating_sub(self.used)
    }

    /// Takes a token at tick `now` (`ticks_per_sec` ticks a second, the same
    /// at every call; 0 earns nothing): true if there was one, false if the
    /// caller is over its rate and burst (drop and count).
    pub fn allow(&mut self, now: u64, ticks_per_sec: u64) -> bool {
        if !self.started {
            self.started = true;
            self.last = now;
        } else {
            let d = now.wrapping_sub(self.last);
            if d <= u64::MAX >> 1 {
                self.last = now;
                self.earn(d, ticks_per_sec);
            }
        }
        if self.used < self.burst {
            self.used = self.used.wrapping_add(1);
            true
        } else {
            false
        }
    }

    /// Adds what `d` ticks earn.
    fn earn(&mut self, d: u64, tps: u64) {
        if self.used == 0 {
            // Full: nothing earned while full is kept.
            self.acc = 0;
            return;
        }
        if tps == 0 || self.rate == 0 {
            return;
        }
        // `tps` might have changed since `acc` was earned: keep it below.
        let acc = self.acc.min(tps.wrapping_sub(1));
        // d * rate / tps tokens: whole seconds first, then the rest exactly.
        let secs = d.checked_div(tps).unwrap_or(0);
        let rest = d.checked_rem(tps).unwrap_or(0);
        let (part, acc) = mul_add_divmod(rest, self.rate, acc, tps);
        let earned = secs
            .saturating_mul(u64::from(self.rate))
            .saturating_add(part);
        match u32::try_from(earned) {
            Ok(k) if k < self.used => {
                self.used = self.used.wrapping_sub(k);
                self.acc = acc;
            }
            _ => {
                self.used = 0;
                self.acc = 0;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    fn reference(r: u64, rate: u32, acc: u64, m: u64) -> (u64, u64) {
        let x = u128::from(r) * u128::from(rate) + u128::from(acc);
        ((x / u128::from(m)) as u64, (x % u128::from(m)) as u64)
    }

    #[test]
    fn mul_add_divmod_is_exact() {
        let ms = [
            1u64,
            2,
            3,
            1000,
            (1 << 32) - 1,
            1 << 32,
            (1 << 32) + 1,
            10_000_000_007,
            1 << 63,
            u64::MAX - 1,
            u64::MAX,
        ];
        let rates = [0u32, 1, 2, 3, 7, 1000, 0x8000_0000, u32::MAX - 1, u32::MAX];
        for &m in &ms {
            for &rate in &rates {
                for r in [0, 1, m / 3, m / 2, m - 1] {
                    for acc in [0, 1.min(m - 1), m / 2, m - 1] {
                        assert_eq!(
                            mul_add_divmod(r, rate, acc, m),
                            reference(r, rate, acc, m),
                            "r {r} rate {rate} acc {acc} m {m}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn add_mod_edges() {
        assert_eq!(add_mod(0, 0, 1), (0, false));
        assert_eq!(
            add_mod(u64::MAX - 1, u64::MAX - 1, u64::MAX),
            (u64::MAX - 2, true)
        );
        assert_eq!(add_mod(5, 4, 10), (9, false));
        assert_eq!(add_mod(5, 5, 10), (0, true));
    }

    #[test]
    fn size() {
        assert_eq!(core::mem::size_of::<RateLimit>(), 32);
    }
}
