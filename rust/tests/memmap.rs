//! Memory map: one test per rejection, plus the accepted cases.

mod common;

use common::HOST;
use pvpass_core::memmap::{Access, MapError, MemMap, Slot};

fn slot(gpa: u64, size: u64, host: u64, read_only: bool) -> Slot {
    Slot {
        gpa,
        size,
        host,
        read_only,
    }
}

/// [0x0000, 0x4000) rw at HOST; [0x4000, 0x6000) rw host-contiguous;
/// [0x6000, 0x8000) rw NOT host-contiguous; [0x8000, 0x9000) read-only,
/// host-contiguous; gap; [0x10000, 0x11000) rw.
fn map() -> MemMap {
    let mut m = MemMap::new(42);
    m.insert(slot(0x6000, 0x2000, HOST + 0x10_0000, false))
        .unwrap();
    m.insert(slot(0x0000, 0x4000, HOST, false)).unwrap();
    m.insert(slot(0x4000, 0x2000, HOST + 0x4000, false))
        .unwrap();
    m.insert(slot(0x8000, 0x1000, HOST + 0x10_2000, true))
        .unwrap();
    m.insert(slot(0x10000, 0x1000, HOST + 0x20_0000, false))
        .unwrap();
    m
}

#[test]
fn slots_are_sorted_and_generation_kept() {
    let m = map();
    let gpas: Vec<u64> = m.slots().iter().map(|s| s.gpa).collect();
    assert_eq!(gpas, [0, 0x4000, 0x6000, 0x8000, 0x10000]);
    assert_eq!(m.generation, 42);
}

#[test]
fn lookup_inside_one_slot() {
    let m = map();
    assert_eq!(m.lookup(0x123, 0x100, Access::Write), Ok(HOST + 0x123));
    assert_eq!(m.lookup(0x6ff0, 0x10, Access::Read), Ok(HOST + 0x10_0ff0));
    assert_eq!(m.lookup(0x10fff, 1, Access::Write), Ok(HOST + 0x20_0fff));
}

#[test]
fn lookup_across_contiguous_slots_is_allowed() {
    let m = map();
    assert_eq!(m.lookup(0x3ff0, 0x20, Access::Write), Ok(HOST + 0x3ff0));
    // 0x6000.. and 0x8000.. are host-contiguous too (read only: read is fine).
    assert_eq!(m.lookup(0x7000, 0x1800, Access::Read), Ok(HOST + 0x10_1000));
}

#[test]
fn reject_zero_length() {
    assert_eq!(
        map().lookup(0x100, 0, Access::Read),
        Err(MapError::ZeroLength)
    );
}

#[test]
fn reject_overflow() {
    let m = map();
    assert_eq!(m.lookup(u64::MAX, 2, Access::Read), Err(MapError::Overflow));
    assert_eq!(
        m.lookup(0x100, u64::MAX, Access::Read),
        Err(MapError::Overflow)
    );
}

#[test]
fn reject_outside_every_slot() {
    let m = map();
    assert_eq!(m.lookup(0x9000, 1, Access::Read), Err(MapError::Unmapped));
    assert_eq!(m.lookup(0x20000, 16, Access::Read), Err(MapError::Unmapped));
    assert_eq!(
        m.lookup(u64::MAX - 1, 1, Access::Read),
        Err(MapError::Unmapped)
    );
    let empty: MemMap = MemMap::new(0);
    assert_eq!(empty.lookup(0, 1, Access::Read), Err(MapError::Unmapped));
}

#[test]
fn reject_range_running_into_a_gap() {
    let m = map();
    assert_eq!(
        m.lookup(0x8ff0, 0x20, Access::Read),
        Err(MapError::Unmapped)
    );
    assert_eq!(
        m.lookup(0x10ff0, 0x20, Access::Read),
        Err(MapError::Unmapped)
    );
}

#[test]
fn reject_straddle_of_non_contiguous_slots() {
    let m = map();
    assert_eq!(
        m.lookup(0x5ff0, 0x20, Access::Read),
        Err(MapError::Straddle)
    );
    // Starts in a contiguous pair, then crosses into the non-contiguous slot.
    assert_eq!(
        m.lookup(0x3000, 0x4000, Access::Read),
        Err(MapError::Straddle)
    );
}

#[test]
fn reject_device_write_into_read_only_slot() {
    let m = map();
    assert_eq!(m.lookup(0x8000, 4, Access::Write), Err(MapError::ReadOnly));
    assert_eq!(
        m.lookup(0x7ff0, 0x20, Access::Write),
        Err(MapError::ReadOnly)
    );
    assert_eq!(m.lookup(0x8000, 4, Access::Read), Ok(HOST + 0x10_2000));
}

#[test]
fn insert_rejects_overlap() {
    let mut m = map();
    assert_eq!(
        m.insert(slot(0x3000, 0x1000, 0, false)),
        Err(MapError::Overlap)
    );
    assert_eq!(
        m.insert(slot(0x9000, 0x8000, 0, false)),
        Err(MapError::Overlap)
    );
    assert_eq!(m.insert(slot(0, 0x1000, 0, false)), Err(MapError::Overlap));
    assert_eq!(m.slots().len(), 5);
}

#[test]
fn insert_rejects_bad_slots() {
    let mut m: MemMap = MemMap::new(0);
    for s in [
        slot(0, 0, 0, false),
        slot(0x10, 0x1000, 0, false),
        slot(0, 0x1001, 0, false),
        slot(0, 0x1000, 0x10, false),
        slot(u64::MAX - 0xfff, 0x2000, 0, false),
        slot(0, 0x2000, u64::MAX - 0xfff, false),
    ] {
        assert_eq!(m.insert(s), Err(MapError::BadSlot), "{s:?}");
    }
}

#[test]
fn insert_rejects_when_full() {
    let mut m: MemMap<2> = MemMap::new(0);
    m.insert(slot(0, 0x1000, 0, false)).unwrap();
    m.insert(slot(0x2000, 0x1000, 0, false)).unwrap();
    assert_eq!(
        m.insert(slot(0x4000, 0x1000, 0, false)),
        Err(MapError::Full)
    );
}

#[test]
fn clear_sets_new_generation() {
    let mut m = map();
    m.clear(43);
    assert!(m.slots().is_empty());
    assert_eq!(m.generation, 43);
}
