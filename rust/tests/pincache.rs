//! Pin cache: hits, misses, batching, LRU eviction, backpressure, all-or-nothing.

mod common;

use common::MockPinner;
use pvpass_core::pincache::*;

type Cache = PinCache<16, 32>;

fn acq(c: &mut Cache, pages: &[u64], p: &mut MockPinner) -> Result<PinToken, PinError> {
    let mut t = PinToken::new();
    c.acquire(pages, p, &mut t)?;
    Ok(t)
}

#[test]
fn token_must_be_empty_and_release_empties_it() {
    let mut c = Cache::new(8);
    let mut p = MockPinner::default();
    let mut t = PinToken::new();
    c.acquire(&[pg(1)], &mut p, &mut t).unwrap();
    assert_eq!(
        c.acquire(&[pg(2)], &mut p, &mut t),
        Err(PinError::TokenInUse)
    );
    c.release(&mut t, &mut p);
    assert!(t.is_empty());
    c.release(&mut t, &mut p); // no-op
    assert_eq!(c.idle(), 1);
    let mut busy = PinToken::new();
    c.acquire(&[pg(1)], &mut p, &mut busy).unwrap();
    assert_eq!(
        c.idle(),
        0,
        "double release must not have dropped a reference"
    );
    c.release(&mut busy, &mut p);
}

fn pg(n: u64) -> u64 {
    0x7f00_0000_0000 + n * 4096
}

#[test]
fn miss_then_hit() {
    let mut c = Cache::new(8);
    let mut p = MockPinner::default();
    let mut t = acq(&mut c, &[pg(1), pg(2)], &mut p).unwrap();
    assert_eq!(t.handles().len(), 2);
    assert_eq!(p.pin_calls, 1);
    c.release(&mut t, &mut p);
    let mut t = acq(&mut c, &[pg(2), pg(1)], &mut p).unwrap();
    assert_eq!(p.pin_calls, 1, "hits must not pin");
    let s = c.stats();
    assert_eq!(
        (s.hits, s.misses, s.pinned, s.evictions, s.waits),
        (2, 2, 2, 0, 0)
    );
    c.release(&mut t, &mut p);
    assert_eq!(c.idle(), 2);
}

#[test]
fn handles_match_pinned_pages() {
    let mut c = Cache::new(8);
    let mut p = MockPinner::default();
    let pages = [pg(3), pg(4), pg(3)];
    let mut t = acq(&mut c, &pages, &mut p).unwrap();
    for (h, page) in t.handles().iter().zip(pages) {
        assert_eq!(p.pinned[h], page);
    }
    // Unaligned addresses name their page.
    let mut t2 = acq(&mut c, &[pg(4) + 123], &mut p).unwrap();
    assert_eq!(t2.handles()[0], t.handles()[1]);
    c.release(&mut t, &mut p);
    c.release(&mut t2, &mut p);
}

#[test]
fn misses_are_pinned_in_one_batch_with_duplicates_removed() {
    let mut c = Cache::new(8);
    let mut p = MockPinner::default();
    let mut t = acq(&mut c, &[pg(1), pg(2), pg(1), pg(3)], &mut p).unwrap();
    assert_eq!(p.pin_calls, 1);
    assert_eq!(p.batches[0], vec![pg(1), pg(2), pg(3)]);
    assert_eq!(c.stats().pinned, 3);
    assert_eq!(c.stats().misses, 3);
    assert_eq!(c.stats().hits, 1);
    c.release(&mut t, &mut p);
    assert_eq!(c.idle(), 3);
}

#[test]
fn evicts_least_recently_used_idle_pins_in_one_batch() {
    let mut c = Cache::new(4);
    let mut p = MockPinner::default();
    for n in 1..=4 {
        let mut t = acq(&mut c, &[pg(n)], &mut p).unwrap();
        c.release(&mut t, &mut p);
    }
    // Touch 1 so that 2 and 3 are the least recently used.
    let mut t = acq(&mut c, &[pg(1)], &mut p).unwrap();
    c.release(&mut t, &mut p);
    let mut t = acq(&mut c, &[pg(5), pg(6)], &mut p).unwrap();
    assert_eq!(p.unpin_calls, 1);
    assert!(!p.is_pinned(pg(2)) && !p.is_pinned(pg(3)));
    assert!(p.is_pinned(pg(1)) && p.is_pinned(pg(4)));
    assert_eq!(c.stats().evictions, 2);
    assert_eq!(c.stats().pinned, 4);
    c.release(&mut t, &mut p);
}

#[test]
fn never_evicts_pins_in_use() {
    let mut c = Cache::new(2);
    let mut p = MockPinner::default();
    let mut busy = acq(&mut c, &[pg(1)], &mut p).unwrap();
    let mut t = acq(&mut c, &[pg(2)], &mut p).unwrap();
    c.release(&mut t, &mut p);
    let mut t = acq(&mut c, &[pg(3)], &mut p).unwrap();
    assert!(p.is_pinned(pg(1)));
    assert!(!p.is_pinned(pg(2)));
    c.release(&mut t, &mut p);
    c.release(&mut busy, &mut p);
}

#[test]
fn quota_exhausted_waits_and_changes_nothing() {
    let mut c = Cache::new(2);
    let mut p = MockPinner::default();
    let mut a = acq(&mut c, &[pg(1), pg(2)], &mut p).unwrap();
    let before = c.stats();
    let calls = (p.pin_calls, p.unpin_calls);
    assert_eq!(
        acq(&mut c, &[pg(1), pg(3)], &mut p).unwrap_err(),
        PinError::WouldBlock
    );
    assert_eq!((p.pin_calls, p.unpin_calls), calls);
    let after = c.stats();
    assert_eq!(after.waits, 1);
    assert_eq!(
        (after.hits, after.misses, after.pinned),
        (before.hits, before.misses, before.pinned)
    );
    // Refcounts unchanged: one release makes both pages idle (not held twice).
    c.release(&mut a, &mut p);
    assert_eq!(c.idle(), 2);
    let mut b = acq(&mut c, &[pg(1), pg(3)], &mut p).unwrap();
    assert!(p.is_pinned(pg(1)) && p.is_pinned(pg(3)) && !p.is_pinned(pg(2)));
    c.release(&mut b, &mut p);
}

#[test]
fn idle_hits_of_the_same_request_are_not_evicted_for_it() {
    let mut c = Cache::new(2);
    let mut p = MockPinner::default();
    let mut t = acq(&mut c, &[pg(1), pg(2)], &mut p).unwrap();
    c.release(&mut t, &mut p);
    // Needs 1 new pin: must evict pg(2), not pg(1) that it also uses.
    let mut t = acq(&mut c, &[pg(1), pg(3)], &mut p).unwrap();
    assert!(p.is_pinned(pg(1)) && !p.is_pinned(pg(2)));
    c.release(&mut t, &mut p);
    // Needs 2 new pins with only 1 evictable outside the request.
    let mut busy = acq(&mut c, &[pg(1)], &mut p).unwrap();
    assert_eq!(
        acq(&mut c, &[pg(4), pg(5)], &mut p).unwrap_err(),
        PinError::WouldBlock
    );
    c.release(&mut busy, &mut p);
}

#[test]
fn request_bigger_than_quota_is_over_quota_not_a_wait() {
    let mut c = Cache::new(2);
    let mut p = MockPinner::default();
    assert_eq!(
        acq(&mut c, &[pg(1), pg(2), pg(3)], &mut p).unwrap_err(),
        PinError::OverQuota
    );
    assert_eq!(c.stats().waits, 0);
    assert_eq!(p.pin_calls, 0);
}

#[test]
fn too_many_pages() {
    let mut c = Cache::new(16);
    let mut p = MockPinner::default();
    let pages: Vec<u64> = (0..MAX_BATCH as u64 + 1).map(pg).collect();
    assert_eq!(
        acq(&mut c, &pages, &mut p).unwrap_err(),
        PinError::TooManyPages
    );
}

#[test]
fn pin_failure_leaves_refcounts_unchanged() {
    let mut c = Cache::new(4);
    let mut p = MockPinner::default();
    let mut t = acq(&mut c, &[pg(1)], &mut p).unwrap();
    p.fail = true;
    assert_eq!(
        acq(&mut c, &[pg(1), pg(2)], &mut p).unwrap_err(),
        PinError::PinFailed
    );
    p.fail = false;
    assert_eq!(c.stats().pinned, 1);
    c.release(&mut t, &mut p);
    assert_eq!(c.idle(), 1, "pg(1) must be idle after its only release");
}

#[test]
fn invalidate_unpins_idle_now_and_busy_on_release() {
    let mut c = Cache::new(8);
    let mut p = MockPinner::default();
    let mut busy = acq(&mut c, &[pg(1)], &mut p).unwrap();
    let mut t = acq(&mut c, &[pg(2), pg(3)], &mut p).unwrap();
    c.release(&mut t, &mut p);
    c.invalidate(&mut p);
    assert!(p.is_pinned(pg(1)) && !p.is_pinned(pg(2)) && !p.is_pinned(pg(3)));
    assert_eq!(c.stats().pinned, 1);
    // A new acquire of the stale page pins it afresh: the mock would panic on a
    // double pin, so do it after the release.
    c.release(&mut busy, &mut p);
    assert!(!p.is_pinned(pg(1)));
    assert_eq!(c.stats().pinned, 0);
    let mut t = acq(&mut c, &[pg(1)], &mut p).unwrap();
    assert_eq!(c.stats().misses, 4);
    c.release(&mut t, &mut p);
}

#[test]
fn stale_pin_counts_against_quota() {
    let mut c = Cache::new(1);
    let mut p = MockPinner::default();
    let mut busy = acq(&mut c, &[pg(1)], &mut p).unwrap();
    c.invalidate(&mut p);
    assert_eq!(
        acq(&mut c, &[pg(2)], &mut p).unwrap_err(),
        PinError::WouldBlock
    );
    c.release(&mut busy, &mut p);
    let mut t = acq(&mut c, &[pg(2)], &mut p).unwrap();
    c.release(&mut t, &mut p);
}

#[test]
fn quota_is_capped_at_capacity_and_reset_works_in_place() {
    let mut c = Cache::new(1000);
    assert_eq!(c.quota(), 16);
    c.reset(3);
    assert_eq!(c.quota(), 3);
    assert_eq!(c.stats(), PinStats::default());
}

#[test]
fn many_pages_churn_through_small_cache() {
    let mut c = Cache::new(16);
    let mut p = MockPinner::default();
    for round in 0..2000u64 {
        let pages: Vec<u64> = (0..4).map(|i| pg((round * 7 + i * 13) % 97)).collect();
        let mut t = acq(&mut c, &pages, &mut p).unwrap();
        c.release(&mut t, &mut p);
        assert!(c.stats().pinned <= 16);
        assert_eq!(p.pinned.len() as u64, c.stats().pinned);
    }
}

#[test]
fn reacquired_most_recent_pin_is_in_use_not_evictable_and_keeps_lru_order() {
    let mut c = Cache::new(3);
    let mut p = MockPinner::default();
    for n in 1..=3 {
        let mut t = acq(&mut c, &[pg(n)], &mut p).unwrap();
        c.release(&mut t, &mut p);
    }
    // pg(3) is the most recently used idle pin: take it again and hold it.
    let mut held = acq(&mut c, &[pg(3)], &mut p).unwrap();
    assert_eq!(c.idle(), 2);
    assert_eq!(c.stats().hits, 1);
    // Needs two evictions but only pg(1) and pg(2) are idle.
    let mut t = acq(&mut c, &[pg(4), pg(5)], &mut p).unwrap();
    assert!(p.is_pinned(pg(3)), "a pin in use must never be evicted");
    assert!(!p.is_pinned(pg(1)) && !p.is_pinned(pg(2)));
    assert_eq!(c.idle(), 0);
    // Nothing idle left: the next miss waits and changes nothing.
    assert_eq!(
        acq(&mut c, &[pg(6)], &mut p).unwrap_err(),
        PinError::WouldBlock
    );
    c.release(&mut t, &mut p); // 4, 5 idle, in this order
    c.release(&mut held, &mut p); // then 3
    assert_eq!(c.idle(), 3);
    // LRU order is 4, 5, 3.
    let mut t = acq(&mut c, &[pg(6)], &mut p).unwrap();
    assert!(!p.is_pinned(pg(4)) && p.is_pinned(pg(5)) && p.is_pinned(pg(3)));
    c.release(&mut t, &mut p);
    let mut t = acq(&mut c, &[pg(7)], &mut p).unwrap();
    assert!(!p.is_pinned(pg(5)) && p.is_pinned(pg(3)));
    c.release(&mut t, &mut p);
    assert_eq!(c.stats().pinned, 3);
}

#[test]
fn same_page_hits_keep_exact_refcounts_across_invalidate() {
    let mut c = Cache::new(2);
    let mut p = MockPinner::default();
    let mut t = acq(&mut c, &[pg(1)], &mut p).unwrap();
    c.release(&mut t, &mut p);
    for _ in 0..100 {
        let mut t = acq(&mut c, &[pg(1)], &mut p).unwrap();
        c.release(&mut t, &mut p);
        assert_eq!(c.idle(), 1);
    }
    // Two holders of the most recent page, then the map changes.
    let mut a = acq(&mut c, &[pg(1)], &mut p).unwrap();
    let mut b = acq(&mut c, &[pg(1), pg(1)], &mut p).unwrap();
    assert_eq!(c.idle(), 0);
    c.invalidate(&mut p);
    assert!(p.is_pinned(pg(1)), "stale but in use");
    assert_eq!(c.idle(), 0, "a stale pin is never idle");
    c.release(&mut a, &mut p);
    assert!(p.is_pinned(pg(1)), "b still holds two references");
    c.release(&mut b, &mut p);
    assert!(
        !p.is_pinned(pg(1)),
        "stale pin unpinned on its last release"
    );
    assert_eq!(c.stats().pinned, 0);
    assert_eq!(c.idle(), 0);
    // The page pins afresh, and is then the most recent idle pin again.
    let mut n = acq(&mut c, &[pg(1)], &mut p).unwrap();
    assert_eq!(c.stats().misses, 2);
    c.release(&mut n, &mut p);
    assert_eq!(c.idle(), 1);
}

#[test]
fn failed_acquire_gives_back_its_hits_in_their_lru_place() {
    let mut c = Cache::new(3);
    let mut p = MockPinner::default();
    for n in 1..=3 {
        let mut t = acq(&mut c, &[pg(n)], &mut p).unwrap();
        c.release(&mut t, &mut p);
    }
    // LRU order 1, 2, 3. Hits 1 and 3, misses 4: evicts 2, then pinning fails.
    p.fail = true;
    assert_eq!(
        acq(&mut c, &[pg(1), pg(4), pg(3)], &mut p).unwrap_err(),
        PinError::PinFailed
    );
    p.fail = false;
    assert!(!p.is_pinned(pg(2)));
    assert_eq!(c.idle(), 2, "the hits are idle again");
    assert_eq!(c.stats().hits, 0);
    // Over quota and would-block failures give their hits back too.
    assert_eq!(
        acq(&mut c, &[pg(1), pg(3), pg(5), pg(6)], &mut p).unwrap_err(),
        PinError::OverQuota
    );
    let mut held = acq(&mut c, &[pg(3)], &mut p).unwrap();
    let mut held2 = acq(&mut c, &[pg(7)], &mut p).unwrap();
    assert_eq!(
        acq(&mut c, &[pg(3), pg(8), pg(9)], &mut p).unwrap_err(),
        PinError::WouldBlock
    );
    assert_eq!(c.idle(), 1);
    c.release(&mut held, &mut p);
    c.release(&mut held2, &mut p);
    // Still 1 first (it kept its place), then 3, then 7.
    assert_eq!(c.idle(), 3);
    let mut t = acq(&mut c, &[pg(11)], &mut p).unwrap();
    assert!(!p.is_pinned(pg(1)) && p.is_pinned(pg(3)) && p.is_pinned(pg(7)));
    c.release(&mut t, &mut p);
    let mut t = acq(&mut c, &[pg(10)], &mut p).unwrap();
    assert!(!p.is_pinned(pg(3)) && p.is_pinned(pg(7)));
    c.release(&mut t, &mut p);
}
