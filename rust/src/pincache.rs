//! Pin cache: keeps guest pages pinned across buffers, within a per-VM quota.
//!
//! Pages are named by page-aligned host address. [`PinCache::acquire`] takes the
//! pages of one buffer (see `translate::SgList::host_pages`), pins the missing
//! ones in one [`Pinner::pin`] batch, takes a reference on every page and returns
//! a [`PinToken`] with one handle per page. [`PinCache::release`] drops the
//! references when the buffer completes; a page nobody references stays pinned
//! (cached) on an LRU list and is unpinned, in one [`Pinner::unpin`] batch, when
//! its room is needed. When the quota is full and nothing is idle, `acquire`
//! fails with [`PinError::WouldBlock`] and changes nothing: a buffer is never
//! handed out unpinned. Fixed capacity: `N` entries, an `H`-slot hash index
//! (`H` a power of two, `H >= N`); no allocation.

use super::memmap::PAGE_SIZE;
use super::traits::Pinner;

/// Most pages one [`PinCache::acquire`] can take.
pub const MAX_BATCH: usize = 64;

/// Highest reference count an acquire may start from (leaves room for one batch).
const REF_LIMIT: u32 = u32::MAX - 64;

/// A pin cache of a size that suits one VM (1024 pages = 4 MiB pinned at most).
pub type DefaultPinCache = PinCache<1024, 2048>;

/// Why an acquire failed. Whatever the reason, no reference was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinError {
    /// Quota full and not enough idle pins to evict: retry after a release.
    WouldBlock,
    /// The request has more distinct pages than the whole quota: it can never
    /// be served.
    OverQuota,
    /// More than [`MAX_BATCH`] pages in one request.
    TooManyPages,
    /// The [`Pinner`] failed to pin the batch.
    PinFailed,
    /// A page's reference count would overflow.
    RefOverflow,
    /// The token passed to `acquire` still holds pins: release it first.
    TokenInUse,
}

/// Counters of a [`PinCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinStats {
    /// Pages of successful acquires that were already pinned.
    pub hits: u64,
    /// Pages pinned by successful acquires.
    pub misses: u64,
    /// Idle pins unpinned to make room.
    pub evictions: u64,
    /// Acquires refused with [`PinError::WouldBlock`].
    pub waits: u64,
    /// Pages pinned now (cached, in use, or stale and still in use).
    pub pinned: u64,
}

/// The pins of one in-flight buffer: filled by [`PinCache::acquire`], emptied
/// by [`PinCache::release`] of the same cache when the buffer completes. Keep
/// one per in-flight buffer and reuse it (no copy of the arrays per packet).
#[derive(Debug)]
pub struct PinToken {
    n: usize,
    entries: [u32; MAX_BATCH],
    handles: [u64; MAX_BATCH],
}

impl Default for PinToken {
    fn default() -> Self {
        Self::new()
    }
}

impl PinToken {
    /// An empty token.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            n: 0,
            entries: [0; MAX_BATCH],
            handles: [0; MAX_BATCH],
        }
    }

    /// Does this token hold no pins?
    #[must_use]
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// One pin handle per page of the request, in request order.
    #[must_use]
    #[inline]
    pub fn handles(&self) -> &[u64] {
        self.handles.get(..self.n).unwrap_or(&[])
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Free,
    /// Pinned and findable through the index.
    Cached,
    /// Pinned, invalidated: unpinned as soon as its last reference goes.
    Stale,
}

/// Links are entry index + 1; 0 is "none" (so all-zero is a valid state).
///
/// LRU list: every idle entry (`Cached`, `refs == 0`) is on it, in release
/// order, least recently used at the head. An idle entry that gets referenced
/// again stays where it is (`in_lru` with `refs > 0`): it is not idle,
/// eviction skips (and unlinks) it, and its last release moves it to the tail
/// unless it is still the tail. The idle entries keep the exact LRU order of
/// an eager list; a hit costs no list operation (a buffer that comes back to
/// the most recent page costs none at all), and a failed acquire undoes its
/// references without having moved anything.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    key: u64,
    handle: u64,
    refs: u32,
    prev: u32,
    next: u32,
    in_lru: bool,
    state: State,
}

const EMPTY_ENTRY: Entry = Entry {
    key: 0,
    handle: 0,
    refs: 0,
    prev: 0,
    next: 0,
    in_lru: false,
    state: State::Free,
};

/// Per-VM pin cache. See the module documentation.
///
/// Large: put it in the heap. The all-zero value is a valid empty cache with
/// quota 0; [`PinCache::reset`] sets it up in place.
#[derive(Debug)]
pub struct PinCache<const N: usize, const H: usize> {
    entries: [Entry; N],
    index: [u32; H],
    high_water: u32,
    free_head: u32,
    lru_head: u32,
    lru_tail: u32,
    /// Idle entries (`Cached`, `refs == 0`); all on the LRU list.
    idle: u32,
    pinned: u32,
    quota: u32,
    stats: PinStats,
    miss_keys: [u64; MAX_BATCH],
    miss_handles: [u64; MAX_BATCH],
    unpin_buf: [u64; MAX_BATCH],
}

#[inline]
fn link(i: usize) -> u32 {
    u32::try_from(i).map_or(0, |v| v.wrapping_add(1))
}

#[inline]
fn unlink(l: u32) -> Option<usize> {
    l.checked_sub(1).and_then(|v| usize::try_from(v).ok())
}

impl<const N: usize, const H: usize> PinCache<N, H> {
    const VALID: () = assert!(
        H.is_power_of_two() && H >= N && N < u32::MAX as usize,
        "PinCache: H must be a power of two >= N"
    );

    /// An empty cache that pins at most `quota` pages (capped at `N`).
    #[must_use]
    pub fn new(quota: u32) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::VALID;
        let mut c = Self {
            entries: [EMPTY_ENTRY; N],
            index: [0; H],
            high_water: 0,
            free_head: 0,
            lru_head: 0,
            lru_tail: 0,
            idle: 0,
            pinned: 0,
            quota: 0,
            stats: PinStats {
                hits: 0,
                misses: 0,
                evictions: 0,
                waits: 0,
                pinned: 0,
            },
            miss_keys: [0; MAX_BATCH],
            miss_handles: [0; MAX_BATCH],
            unpin_buf: [0; MAX_BATCH],
        };
        c.quota = c.cap_quota(quota);
        c
    }

    fn cap_quota(&self, quota: u32) -> u32 {
        quota.min(u32::try_from(N).unwrap_or(u32::MAX))
    }

    /// Forgets every entry and counter and sets a new quota, in place. Only for
    /// a cache that holds no pins (fresh, or after [`PinCache::invalidate`] with
    /// every token released): it does not unpin anything.
    pub fn reset(&mut self, quota: u32) {
        #[allow(clippy::let_unit_value)]
        let () = Self::VALID;
        self.entries.fill(EMPTY_ENTRY);
        self.index.fill(0);
        self.high_water = 0;
        self.free_head = 0;
        self.lru_head = 0;
        self.lru_tail = 0;
        self.idle = 0;
        self.pinned = 0;
        self.stats = PinStats::default();
        self.quota = self.cap_quota(quota);
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> PinStats {
        PinStats {
            pinned: u64::from(self.pinned),
            ..self.stats
        }
    }

    /// The quota in pages.
    #[must_use]
    pub fn quota(&self) -> u32 {
        self.quota
    }

    /// Number of idle (unreferenced, evictable) pins.
    #[must_use]
    pub fn idle(&self) -> u32 {
        self.idle
    }

    #[inline]
    fn home(key: u64) -> usize {
        let mut h = (key / PAGE_SIZE).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
        let mask = u64::try_from(H.wrapping_sub(1)).unwrap_or(0);
        usize::try_from(h & mask).unwrap_or(0)
    }

    #[inline]
    fn next_slot(i: usize) -> usize {
        i.wrapping_add(1) & H.wrapping_sub(1)
    }

    /// (index slot, entry) of a cached key.
    #[inline]
    fn find(&self, key: u64) -> Option<(usize, usize)> {
        let mut i = Self::home(key);
        for _ in 0..H {
            let e = unlink(*self.index.get(i)?)?;
            if self.entries.get(e)?.key == key {
                return Some((i, e));
            }
            i = Self::next_slot(i);
        }
        None
    }

    fn index_insert(&mut self, key: u64, e: usize) -> bool {
        let mut i = Self::home(key);
        for _ in 0..H {
            match self.index.get_mut(i) {
                Some(s) if *s == 0 => {
                    *s = link(e);
                    return true;
                }
                Some(_) => i = Self::next_slot(i),
                None => return false,
            }
        }
        false
    }

    /// Removes slot `p` from the index (linear probing, backward shift).
    fn index_remove(&mut self, mut p: usize) {
        if let Some(s) = self.index.get_mut(p) {
            *s = 0;
        }
        let mut j = p;
        for _ in 0..H {
            j = Self::next_slot(j);
            let v = self.index.get(j).copied().unwrap_or(0);
            let Some(e) = unlink(v) else { return };
            let home = self.entries.get(e).map_or(j, |x| Self::home(x.key));
            let stays = if p <= j {
                p < home && home <= j
            } else {
                p < home || home <= j
            };
            if !stays {
                if let Some(s) = self.index.get_mut(p) {
                    *s = v;
                }
                if let Some(s) = self.index.get_mut(j) {
                    *s = 0;
                }
                p = j;
            }
        }
    }

    #[inline]
    fn lru_remove(&mut self, e: usize) {
        let Some(x) = self.entries.get_mut(e) else {
            return;
        };
        if !x.in_lru {
            return;
        }
        x.in_lru = false;
        let (prev, next) = (x.prev, x.next);
        x.prev = 0;
        x.next = 0;
        match unlink(prev).and_then(|p| self.entries.get_mut(p)) {
            Some(p) => p.next = next,
            None => self.lru_head = next,
        }
        match unlink(next).and_then(|n| self.entries.get_mut(n)) {
            Some(n) => n.prev = prev,
            None => self.lru_tail = prev,
        }
    }

    #[inline]
    fn lru_push_tail(&mut self, e: usize) {
        let tail = self.lru_tail;
        let Some(x) = self.entries.get_mut(e) else {
            return;
        };
        if x.in_lru {
            return;
        }
        x.in_lru = true;
        x.prev = tail;
        x.next = 0;
        match unlink(tail).and_then(|t| self.entries.get_mut(t)) {
            Some(t) => t.next = link(e),
            None => self.lru_head = link(e),
        }
        self.lru_tail = link(e);
    }

    fn alloc(&mut self) -> Option<usize> {
        if let Some(e) = unlink(self.free_head) {
            self.free_head = self.entries.get(e)?.next;
            return Some(e);
        }
        let e = usize::try_from(self.high_water).ok()?;
        if e >= N {
            return None;
        }
        self.high_water = self.high_water.wrapping_add(1);
        Some(e)
    }

    /// Returns entry `e` (off the index and the LRU list) to the free list.
    fn free(&mut self, e: usize) {
        let head = self.free_head;
        if let Some(x) = self.entries.get_mut(e) {
            *x = EMPTY_ENTRY;
            x.next = head;
            self.free_head = link(e);
            self.pinned = self.pinned.saturating_sub(1);
        }
    }

    /// Pins (or finds pinned) every page of `pages` (host addresses, rounded
    /// down to their page), takes one reference per page and records them in
    /// `tok`, which must be empty. All or nothing: on error `tok` stays empty
    /// and no reference is taken.
    pub fn acquire<P: Pinner>(
        &mut self,
        pages: &[u64],
        pinner: &mut P,
        tok: &mut PinToken,
    ) -> Result<(), PinError> {
        if !tok.is_empty() {
            return Err(PinError::TokenInUse);
        }
        if pages.len() > MAX_BATCH {
            return Err(PinError::TooManyPages);
        }
        let mask = !PAGE_SIZE.wrapping_sub(1);
        let mut nmiss = 0usize;
        // Pass 1: take a reference on every hit at once (entry + 1 in
        // tok.entries; an idle hit stays on the LRU list, see `Entry`, so
        // undoing it restores the exact state), collect distinct misses.
        for (i, &p) in pages.iter().enumerate() {
            let key = p & mask;
            let (Some(slot), Some(h)) = (tok.entries.get_mut(i), tok.handles.get_mut(i)) else {
                break; // unreachable: pages.len() <= MAX_BATCH
            };
            let hit = self
                .find(key)
                .and_then(|(_, e)| Some((e, self.entries.get_mut(e)?)));
            if let Some((e, x)) = hit {
                if x.refs > REF_LIMIT {
                    self.undo_refs(tok, i);
                    return Err(PinError::RefOverflow);
                }
                if x.refs == 0 {
                    self.idle = self.idle.saturating_sub(1);
                }
                x.refs = x.refs.wrapping_add(1);
                *h = x.handle;
                *slot = link(e);
            } else {
                *slot = 0;
                let known = self.miss_keys.get(..nmiss).unwrap_or(&[]);
                if !known.contains(&key) {
                    if let Some(m) = self.miss_keys.get_mut(nmiss) {
                        *m = key;
                        nmiss = nmiss.wrapping_add(1);
                    }
                }
            }
        }
        if nmiss > 0 {
            if let Err(e) = self.serve_misses(pages, nmiss, pinner, tok) {
                self.undo_refs(tok, pages.len());
                return Err(e);
            }
        }
        let misses = u64::try_from(nmiss).unwrap_or(0);
        let total = u64::try_from(pages.len()).unwrap_or(0);
        self.stats.misses = self.stats.misses.wrapping_add(misses);
        self.stats.hits = self.stats.hits.wrapping_add(total.saturating_sub(misses));
        tok.n = pages.len();
        Ok(())
    }

    /// Drops the references pass 1 of `acquire` took on the first `n` pages.
    /// Their entries never left the LRU list, so idle ones are idle again at
    /// their old place.
    fn undo_refs(&mut self, tok: &PinToken, n: usize) {
        for &l in tok.entries.get(..n).unwrap_or(&[]) {
            let Some(x) = unlink(l).and_then(|e| self.entries.get_mut(e)) else {
                continue;
            };
            x.refs = x.refs.saturating_sub(1);
            if x.refs == 0 {
                self.idle = self.idle.saturating_add(1);
            }
        }
    }

    /// Acquire's slow path: makes room, pins the `nmiss` misses in one batch
    /// and takes their references (the hits hold theirs already).
    fn serve_misses<P: Pinner>(
        &mut self,
        pages: &[u64],
        nmiss: usize,
        pinner: &mut P,
        tok: &mut PinToken,
    ) -> Result<(), PinError> {
        let free = self.quota.saturating_sub(self.pinned);
        let need = u32::try_from(nmiss).unwrap_or(u32::MAX);
        if need > free {
            let hits = tok.entries.get(..pages.len()).unwrap_or(&[]);
            self.make_room(hits, need, free, pinner)?;
        }
        self.pin_misses(nmiss, pinner)?;
        let mask = !PAGE_SIZE.wrapping_sub(1);
        // Pass 2: every missed page now has an entry; take the references.
        for (i, &p) in pages.iter().enumerate() {
            let (Some(slot), Some(h)) = (tok.entries.get_mut(i), tok.handles.get_mut(i)) else {
                break;
            };
            if *slot != 0 {
                continue;
            }
            let Some((_, e)) = self.find(p & mask) else {
                continue; // unreachable: misses were just inserted
            };
            if let Some(x) = self.entries.get_mut(e) {
                x.refs = x.refs.saturating_add(1);
                *h = x.handle;
                *slot = link(e);
            }
        }
        Ok(())
    }

    /// Evicts idle pins so that `need` new pins fit. `hits` are this request's
    /// hits, which hold their references already (so none of them is idle).
    fn make_room<P: Pinner>(
        &mut self,
        hits: &[u32],
        need: u32,
        free: u32,
        pinner: &mut P,
    ) -> Result<(), PinError> {
        // Distinct entries this request hits.
        let mut distinct = 0u32;
        for (i, &l) in hits.iter().enumerate() {
            if l != 0 && !hits.get(..i).is_some_and(|before| before.contains(&l)) {
                distinct = distinct.saturating_add(1);
            }
        }
        if need.saturating_add(distinct) > self.quota {
            return Err(PinError::OverQuota);
        }
        let evict = need.saturating_sub(free);
        if evict > self.idle {
            self.stats.waits = self.stats.waits.wrapping_add(1);
            return Err(PinError::WouldBlock);
        }
        let mut k = 0usize;
        let mut cur = self.lru_head;
        let mut left = evict;
        while left > 0 {
            let Some(e) = unlink(cur) else { break };
            let Some(x) = self.entries.get(e).copied() else {
                break;
            };
            cur = x.next;
            if x.refs > 0 {
                // In use, left on the list by a hit: not idle. Unlink it now,
                // unless this request holds it (its undo must find it in place).
                if !hits.contains(&link(e)) {
                    self.lru_remove(e);
                }
                continue;
            }
            self.lru_remove(e);
            self.idle = self.idle.saturating_sub(1);
            if let Some((slot, _)) = self.find(x.key) {
                self.index_remove(slot);
            }
            if let Some(b) = self.unpin_buf.get_mut(k) {
                *b = x.handle;
                k = k.wrapping_add(1);
            }
            self.free(e);
            left = left.saturating_sub(1);
        }
        if k > 0 {
            pinner.unpin(self.unpin_buf.get(..k).unwrap_or(&[]));
            let n = u64::try_from(k).unwrap_or(0);
            self.stats.evictions = self.stats.evictions.wrapping_add(n);
        }
        Ok(())
    }

    /// Pins the first `nmiss` keys of `miss_keys` in one batch and caches them.
    fn pin_misses<P: Pinner>(&mut self, nmiss: usize, pinner: &mut P) -> Result<(), PinError> {
        let (Some(keys), Some(handles)) = (
            self.miss_keys.get(..nmiss),
            self.miss_handles.get_mut(..nmiss),
        ) else {
            return Err(PinError::TooManyPages);
        };
        pinner.pin(keys, handles).map_err(|_| PinError::PinFailed)?;
        for j in 0..nmiss {
            let key = self.miss_keys.get(j).copied().unwrap_or(0);
            let handle = self.miss_handles.get(j).copied().unwrap_or(0);
            let inserted = match self.alloc() {
                Some(e) => {
                    if let Some(x) = self.entries.get_mut(e) {
                        *x = Entry {
                            key,
                            handle,
                            state: State::Cached,
                            ..EMPTY_ENTRY
                        };
                    }
                    self.pinned = self.pinned.saturating_add(1);
                    if self.index_insert(key, e) {
                        true
                    } else {
                        self.free(e);
                        false
                    }
                }
                None => false,
            };
            if !inserted {
                // Cannot happen while quota <= N <= H; undo rather than leak.
                self.rollback(j, nmiss, pinner);
                return Err(PinError::PinFailed);
            }
        }
        Ok(())
    }

    /// Undoes a partly inserted miss batch: entries `..done` were inserted.
    fn rollback<P: Pinner>(&mut self, done: usize, nmiss: usize, pinner: &mut P) {
        for j in 0..done {
            let key = self.miss_keys.get(j).copied().unwrap_or(0);
            if let Some((slot, e)) = self.find(key) {
                self.index_remove(slot);
                self.free(e);
            }
        }
        pinner.unpin(self.miss_handles.get(..nmiss).unwrap_or(&[]));
    }

    /// Drops the references of a completed buffer and empties `token` (a
    /// second release of it does nothing). Pages whose last reference goes
    /// become idle (most recently used), or are unpinned if stale.
    pub fn release<P: Pinner>(&mut self, token: &mut PinToken, pinner: &mut P) {
        let n = core::mem::replace(&mut token.n, 0);
        let mut k = 0usize;
        for &l in token.entries.get(..n).unwrap_or(&[]) {
            let Some(e) = unlink(l) else { continue };
            let Some(x) = self.entries.get_mut(e) else {
                continue;
            };
            if x.state == State::Free || x.refs == 0 {
                continue; // not a live token of this cache
            }
            x.refs = x.refs.wrapping_sub(1);
            if x.refs > 0 {
                continue;
            }
            if x.state == State::Stale {
                let handle = x.handle;
                self.queue_unpin(&mut k, handle, pinner);
                self.free(e);
            } else {
                let in_lru = x.in_lru;
                self.idle = self.idle.saturating_add(1);
                if !in_lru {
                    self.lru_push_tail(e);
                } else if self.lru_tail != link(e) {
                    self.lru_remove(e);
                    self.lru_push_tail(e);
                }
            }
        }
        if k > 0 {
            pinner.unpin(self.unpin_buf.get(..k).unwrap_or(&[]));
        }
    }

    /// Adds `handle` to the unpin batch (`k` entries so far), unpinning the
    /// batch first when it is full. The caller unpins the last `k` itself.
    fn queue_unpin<P: Pinner>(&mut self, k: &mut usize, handle: u64, pinner: &mut P) {
        if *k == MAX_BATCH {
            pinner.unpin(&self.unpin_buf);
            *k = 0;
        }
        if let Some(b) = self.unpin_buf.get_mut(*k) {
            *b = handle;
            *k = k.wrapping_add(1);
        }
    }

    /// Drops every pin (memory map changed, VM going away): idle pins are
    /// unpinned now in batches, pins in use become stale and are unpinned on
    /// their last release. Later acquires pin afresh.
    pub fn invalidate<P: Pinner>(&mut self, pinner: &mut P) {
        let mut k = 0usize;
        let hw = usize::try_from(self.high_water).unwrap_or(0).min(N);
        for e in 0..hw {
            let Some(x) = self.entries.get(e).copied() else {
                continue;
            };
            if x.state != State::Cached {
                continue;
            }
            if let Some((slot, _)) = self.find(x.key) {
                self.index_remove(slot);
            }
            // Stale or free entries are never on the LRU list.
            self.lru_remove(e);
            if x.refs > 0 {
                if let Some(y) = self.entries.get_mut(e) {
                    y.state = State::Stale;
                }
                continue;
            }
            self.idle = self.idle.saturating_sub(1);
            self.queue_unpin(&mut k, x.handle, pinner);
            self.free(e);
        }
        if k > 0 {
            pinner.unpin(self.unpin_buf.get(..k).unwrap_or(&[]));
        }
    }
}
