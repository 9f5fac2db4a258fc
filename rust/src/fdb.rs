//! Forwarding database of the L2 switch: which port each unicast MAC is behind.
//!
//! [`Fdb::learn`] records the source MAC of every frame a port sends;
//! [`Fdb::lookup`] tells the port of a destination MAC (`None`: flood). Entries
//! are *dynamic* (learned, they age) or *static* (registered with
//! [`Fdb::add_static`]: a port's own configured MAC; they never age and
//! learning never moves them, so a guest cannot steal another port's MAC by
//! sending frames with it as source).
//!
//! Time is whatever monotonic `u64` counter the caller passes as `now`
//! (jiffies, ms, ...; the table never reads a clock), and `max_age` is in the
//! same unit. A dynamic entry is *live* while its age is at most `max_age`;
//! an aged-out entry counts as absent everywhere (lookup, learning, limits)
//! and is dropped by [`Fdb::age`] or reused by learning. Ages are wrapping
//! differences read like the kernel's `time_after` ([`elapsed`]), so the
//! counter may wrap; a timestamp ahead of `now` has age 0.
//!
//! Hostile guests: learning refuses group and all-zero source MACs, never
//! moves a static entry ([`Learn::Spoofed`]), gives each port at most
//! `max_per_port` live dynamic entries ([`Learn::PortLimit`]), and never
//! evicts another port's live entry. When the table is full a new entry
//! takes the place of the oldest aged-out entry (of any port) or, if there is
//! none, of the learning port's own oldest dynamic entry (reported as
//! [`Learn::Evicted`]); otherwise it is refused ([`Learn::Full`]). So guests
//! spraying source MACs, however many collude, cannot flush the entries of
//! other ports (the stations the host port learned, say); with the switch's
//! limits ([`MAX_PORTS`] ports, [`MAX_LEARNED_PER_PORT`] each) and
//! [`DefaultFdb`], which holds all of them, they are not even refused.
//! A station that really moves (its live dynamic entry is learned on another
//! port) still moves, as in a Linux bridge without locked ports.
//!
//! Layout: `N` entries at most, stored in place in an `H`-slot open-addressing
//! table (`H` a power of two, `H > N`; `H = 2N` keeps probes short), linear
//! probing on a multiplicative hash of the MAC, backward-shift deletion. No
//! allocation. A lookup or a refresh of a known MAC probes a few slots; a
//! probe never visits more than `H` slots, so crafted colliding MACs can make
//! it no worse than a linear scan. Learning a *new* MAC (or moving one) scans
//! the table once, to count the port's entries and pick a victim. An empty
//! slot holds the all-zero MAC, which is never stored, so the all-zero value
//! is a valid empty table.

/// A MAC address.
pub type Mac = [u8; 6];

const ZERO: Mac = [0; 6];

/// Ports on the switch: 64 attachments and the host port.
pub const MAX_PORTS: usize = 65;
/// Live learned (dynamic) entries a port may hold, besides its static MAC.
pub const MAX_LEARNED_PER_PORT: u32 = 16;

/// Entries of [`DefaultFdb`]: every port's static MAC and its
/// [`MAX_LEARNED_PER_PORT`] learned ones.
// Widening u32 -> usize; clippy's truncation lint does not apply.
pub const DEFAULT_ENTRIES: usize = MAX_PORTS * (MAX_LEARNED_PER_PORT as usize + 1);
/// Slots of [`DefaultFdb`]: the power of two above 1.5 x
/// [`DEFAULT_ENTRIES`], so a full table is about half full (short probes).
pub const DEFAULT_SLOTS: usize = 2048;

const _: () = assert!(
    DEFAULT_ENTRIES >= MAX_PORTS * (MAX_LEARNED_PER_PORT as usize + 1)
        && DEFAULT_SLOTS == (DEFAULT_ENTRIES + DEFAULT_ENTRIES / 2).next_power_of_two(),
    "DefaultFdb must hold MAX_PORTS x (MAX_LEARNED_PER_PORT + 1) entries"
);

/// A forwarding database of a size that suits the switch:
/// [`DEFAULT_ENTRIES`] (1,105) entries in [`DEFAULT_SLOTS`] (2,048) slots,
/// about 48 KiB. It holds every port's static MAC and learned MACs up to the
/// limit at once, so learning within the limits is never refused.
pub type DefaultFdb = Fdb<DEFAULT_ENTRIES, DEFAULT_SLOTS>;

/// What [`Fdb::learn`] did with a source MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learn {
    /// Known live on this port: its time is now.
    Refreshed,
    /// New entry (in a free slot, or in place of an aged-out entry).
    Added,
    /// The station moved: its live entry was on port `from`, now on this one.
    Moved {
        /// The port the MAC was on.
        from: u32,
    },
    /// The table was full: new entry in place of this port's own oldest
    /// dynamic entry, which was still live (never another port's).
    Evicted {
        /// The MAC that was dropped.
        mac: Mac,
        /// Its port.
        port: u32,
    },
    /// The MAC is a static entry of this very port: nothing to learn.
    Static,
    /// Refused: a group (multicast or broadcast) address is never a source.
    Group,
    /// Refused: the all-zero address.
    Zero,
    /// Refused: the MAC is a static entry of another port (the frame claims
    /// another port's address).
    Spoofed {
        /// The port the MAC belongs to.
        owner: u32,
    },
    /// Refused: the port already has `max_per_port` live dynamic entries.
    PortLimit,
    /// Refused: the table is full, and none of its entries is aged out or a
    /// dynamic entry of this port (the others' live entries are kept).
    Full,
}

/// Why [`Fdb::add_static`] failed. Whatever the reason, nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdbError {
    /// A group or all-zero address.
    BadMac,
    /// The MAC is already a static entry of another port.
    Exists {
        /// That port.
        port: u32,
    },
    /// The table is full of static entries.
    Full,
}

/// One entry of an [`Fdb`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdbEntry {
    /// The station's address.
    pub mac: Mac,
    /// The port it is behind.
    pub port: u32,
    /// When it was last learned (the caller's time unit); for a static entry,
    /// when it was added.
    pub seen: u64,
    /// Registered with [`Fdb::add_static`]: never ages, never moves.
    pub is_static: bool,
}

const EMPTY: FdbEntry = FdbEntry {
    mac: ZERO,
    port: 0,
    seen: 0,
    is_static: false,
};

/// Is `mac` a group (multicast or broadcast) address?
#[must_use]
#[inline]
pub fn is_group(mac: &Mac) -> bool {
    mac.first().is_some_and(|b| b & 1 != 0)
}

/// Age at `now` of a timestamp `seen`: the wrapping difference, or 0 when
/// `seen` is ahead of `now` (difference of 2^63 or more, as `time_after`).
#[must_use]
#[inline]
pub fn elapsed(seen: u64, now: u64) -> u64 {
    let d = now.wrapping_sub(seen);
    if d > u64::MAX >> 1 {
        0
    } else {
        d
    }
}

/// Result of one scan for [`Fdb::learn`] and [`Fdb::add_static`].
struct Scan {
    /// Live dynamic entries of the port.
    port_live: usize,
    /// The oldest dynamic entry.
    victim: Option<usize>,
}

/// The forwarding database. See the module documentation.
///
/// About `24 * H` bytes: keep it in a `static` (`new` is `const`) or build it
/// in place; the all-zero value is a valid empty table.
#[derive(Clone, Debug)]
pub struct Fdb<const N: usize, const H: usize> {
    slots: [FdbEntry; H],
    len: usize,
}

impl<const N: usize, const H: usize> Default for Fdb<N, H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const H: usize> Fdb<N, H> {
    const VALID: () = assert!(
        H.is_power_of_two() && H > N,
        "Fdb: H must be a power of two > N"
    );

    /// An empty table.
    #[must_use]
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::VALID;
        Self {
            slots: [EMPTY; H],
            len: 0,
        }
    }

    /// Number of entries (live, aged-out but not yet dropped, and static).
    #[must_use]
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Is the table empty?
    #[must_use]
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry, in table order (for dumps).
    pub fn iter(&self) -> impl Iterator<Item = &FdbEntry> + '_ {
        self.slots.iter().filter(|e| e.mac != ZERO)
    }

    #[inline]
    fn home(mac: &Mac) -> usize {
        let [a, b, c, d, e, f] = *mac;
        let k = u64::from_le_bytes([a, b, c, d, e, f, 0, 0]);
        // Fibonacci hashing: the top bits of the product depend on every byte.
        let h = (k ^ (k >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let shift = 64u32.wrapping_sub(H.trailing_zeros());
        usize::try_from(h.checked_shr(shift).unwrap_or(0)).unwrap_or(0) & H.wrapping_sub(1)
    }

    #[inline]
    fn next_slot(i: usize) -> usize {
        i.wrapping_add(1) & H.wrapping_sub(1)
    }

    /// Slot of `mac`.
    #[inline]
    fn find(&self, mac: &Mac) -> Option<usize> {
        if *mac == ZERO {
            return None;
        }
        let mut i = Self::home(mac);
        for _ in 0..H {
            let e = self.slots.get(i)?;
            if e.mac == *mac {
                return Some(i);
            }
            if e.mac == ZERO {
                return None;
            }
            i = Self::next_slot(i);
        }
        None
    }

    /// Stores `e` (whose MAC is absent) in a free slot. Fails only when every
    /// slot is taken, which `len < N < H` rules out.
    fn insert(&mut self, e: FdbEntry) -> bool {
        if self.len >= N {
            return false;
        }
        let mut i = Self::home(&e.mac);
        for _ in 0..H {
            match self.slots.get_mut(i) {
                Some(s) if s.mac == ZERO => {
                    *s = e;
                    self.len = self.len.wrapping_add(1);
                    return true;
                }
                Some(_) => i = Self::next_slot(i),
                None => return false,
            }
        }
        false
    }

    /// Empties slot `p` (linear probing, backward shift).
    fn remove_at(&mut self, mut p: usize) {
        match self.slots.get_mut(p) {
            Some(s) if s.mac != ZERO => *s = EMPTY,
            _ => return,
        }
        self.len = self.len.saturating_sub(1);
        let mut j = p;
        for _ in 0..H {
            j = Self::next_slot(j);
            let Some(e) = self.slots.get(j).copied() else {
                return;
            };
            if e.mac == ZERO {
                return;
            }
            let home = Self::home(&e.mac);
            let stays = if p <= j {
                p < home && home <= j
            } else {
                p < home || home <= j
            };
            if !stays {
                if let Some(s) = self.slots.get_mut(p) {
                    *s = e;
                }
                if let Some(s) = self.slots.get_mut(j) {
                    *s = EMPTY;
                }
                p = j;
            }
        }
    }

    /// Drops every entry for which `drop` holds; returns how many.
    fn remove_where(&mut self, drop: impl Fn(&FdbEntry) -> bool) -> usize {
        let mut n = 0usize;
        for i in 0..H {
            // A backward shift can bring a later entry into slot `i` (checked
            // again) or after it (checked later); an entry it moves before `i`
            // comes from before `i`, so was kept. With `H > N` a slot other
            // than the one being vacated is always empty, so the shift never
            // wraps round to slot `i`.
            for _ in 0..H {
                match self.slots.get(i) {
                    Some(e) if e.mac != ZERO && drop(e) => {
                        self.remove_at(i);
                        n = n.wrapping_add(1);
                    }
                    _ => break,
                }
            }
        }
        n
    }

    /// One pass over the table: live dynamic entries of `port` (if
    /// `count`), and the oldest dynamic entry (ties: the smallest MAC) that
    /// may be dropped: any (`any_port`), or only an aged-out one or one of
    /// `port`.
    fn scan(&self, port: u32, now: u64, max_age: u64, count: bool, any_port: bool) -> Scan {
        let mut s = Scan {
            port_live: 0,
            victim: None,
        };
        let mut oldest = (0u64, ZERO);
        for (i, e) in self.slots.iter().enumerate() {
            if e.mac == ZERO || e.is_static {
                continue;
            }
            let age = elapsed(e.seen, now);
            let own = e.port == port;
            if count && own && age <= max_age {
                s.port_live = s.port_live.wrapping_add(1);
            }
            if !(any_port || own || age > max_age) {
                continue;
            }
            if s.victim.is_none() || age > oldest.0 || (age == oldest.0 && e.mac < oldest.1) {
                s.victim = Some(i);
                oldest = (age, e.mac);
            }
        }
        s
    }

    /// Learns that `mac` is behind `port` at time `now` (see [`Learn`] for
    /// the outcomes). `max_age` says which entries are aged out; a port may
    /// hold at most `max_per_port` live dynamic entries (`u32::MAX`: no limit).
    pub fn learn(
        &mut self,
        mac: Mac,
        port: u32,
        now: u64,
        max_age: u64,
        max_per_port: u32,
    ) -> Learn {
        if is_group(&mac) {
            return Learn::Group;
        }
        if mac == ZERO {
            return Learn::Zero;
        }
        // `reuse`: the slot of this MAC's entry, when it moves or was aged out.
        let mut reuse = None;
        if let Some(i) = self.find(&mac) {
            let Some(e) = self.slots.get_mut(i) else {
                return Learn::Full;
            };
            if e.is_static {
                return if e.port == port {
                    Learn::Static
                } else {
                    Learn::Spoofed { owner: e.port }
                };
            }
            if e.port == port && elapsed(e.seen, now) <= max_age {
                e.seen = now;
                return Learn::Refreshed;
            }
            reuse = Some((i, *e));
        }
        let limited = usize::try_from(max_per_port).is_ok_and(|m| m <= N);
        let need_victim = reuse.is_none() && self.len >= N;
        let scan = if limited || need_victim {
            self.scan(port, now, max_age, limited, false)
        } else {
            Scan {
                port_live: 0,
                victim: None,
            }
        };
        if limited && usize::try_from(max_per_port).is_ok_and(|m| scan.port_live >= m) {
            return Learn::PortLimit;
        }
        if let Some((i, old)) = reuse {
            if let Some(e) = self.slots.get_mut(i) {
                e.port = port;
                e.seen = now;
            }
            return if elapsed(old.seen, now) <= max_age {
                Learn::Moved { from: old.port }
            } else {
                Learn::Added
            };
        }
        let new = FdbEntry {
            mac,
            port,
            seen: now,
            is_static: false,
        };
        if self.len < N {
            return if self.insert(new) {
                Learn::Added
            } else {
                Learn::Full
            };
        }
        let Some(v) = scan.victim else {
            return Learn::Full;
        };
        let old = self.slots.get(v).copied().unwrap_or(EMPTY);
        self.remove_at(v);
        if !self.insert(new) {
            return Learn::Full;
        }
        if elapsed(old.seen, now) <= max_age {
            Learn::Evicted {
                mac: old.mac,
                port: old.port,
            }
        } else {
            Learn::Added
        }
    }

    /// The port of unicast `mac`, if it has a static entry or a live one
    /// (age at most `max_age` at `now`).
    #[must_use]
    pub fn lookup(&self, mac: Mac, now: u64, max_age: u64) -> Option<u32> {
        let e = self.slots.get(self.find(&mac)?)?;
        (e.is_static || elapsed(e.seen, now) <= max_age).then_some(e.port)
    }

    /// Registers `mac` as a static entry of `port` (a port's own address);
    /// `now` is only used to pick the oldest dynamic entry to drop when the
    /// table is full. A dynamic entry of `mac` (on any port) becomes the
    /// static one; adding the same static entry again does nothing.
    pub fn add_static(&mut self, mac: Mac, port: u32, now: u64) -> Result<(), FdbError> {
        if is_group(&mac) || mac == ZERO {
            return Err(FdbError::BadMac);
        }
        if let Some(i) = self.find(&mac) {
            let Some(e) = self.slots.get_mut(i) else {
                return Err(FdbError::Full);
            };
            if e.is_static && e.port != port {
                return Err(FdbError::Exists { port: e.port });
            }
            if !e.is_static {
                *e = FdbEntry {
                    mac,
                    port,
                    seen: now,
                    is_static: true,
                };
            }
            return Ok(());
        }
        if self.len >= N {
            let v = self
                .scan(port, now, 0, false, true)
                .victim
                .ok_or(FdbError::Full)?;
            self.remove_at(v);
        }
        let new = FdbEntry {
            mac,
            port,
            seen: now,
            is_static: true,
        };
        if self.insert(new) {
            Ok(())
        } else {
            Err(FdbError::Full)
        }
    }

    /// Drops the entry of `mac` (static or not); was there one?
    pub fn remove(&mut self, mac: Mac) -> bool {
        match self.find(&mac) {
            Some(i) => {
                self.remove_at(i);
                true
            }
            None => false,
        }
    }

    /// Drops every entry of `port`, static ones too; returns how many.
    pub fn remove_port(&mut self, port: u32) -> usize {
        self.remove_where(|e| e.port == port)
    }

    /// Drops every dynamic entry older than `max_age` at `now`; returns how many.
    pub fn age(&mut self, now: u64, max_age: u64) -> usize {
        self.remove_where(|e| !e.is_static && elapsed(e.seen, now) > max_age)
    }
}
