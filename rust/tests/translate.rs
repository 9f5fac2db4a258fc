//! Translation: page splitting, pages to pin, rejections.

mod common;

use common::*;
use pvpass_core::memmap::{MapError, MemMap, Slot};
use pvpass_core::translate::*;
use pvpass_core::virtq::{Chain, QueueError, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};

fn chain_of(r: &mut Rig, descs: &[(u64, u32, bool)]) -> Result<Chain, QueueError> {
    for (i, &(addr, len, w)) in descs.iter().enumerate() {
        let mut flags = if w { VIRTQ_DESC_F_WRITE } else { 0 };
        if i + 1 < descs.len() {
            flags |= VIRTQ_DESC_F_NEXT;
        }
        r.desc(i as u16, addr, len, flags, i as u16 + 1);
    }
    r.offer(0);
    let mut c = Chain::new();
    assert!(r.q.pop(&r.mem, &r.map, &mut c)?);
    Ok(c)
}

#[test]
fn splits_at_page_boundaries() {
    let mut r = Rig::new(8);
    let c = chain_of(&mut r, &[(0x10ff0, 0x20, false), (0x12000, 0x2001, true)]).unwrap();
    let mut sg: SgList = SgList::new();
    translate(&c, &r.map, &mut sg).unwrap();
    let got: Vec<(u64, u32, bool, u64)> = sg
        .segments()
        .iter()
        .map(|s| (s.host, s.len, s.writable, s.gfn))
        .collect();
    assert_eq!(
        got,
        [
            (HOST + 0x10ff0, 0x10, false, 0x10),
            (HOST + 0x11000, 0x10, false, 0x11),
            (HOST + 0x12000, 0x1000, true, 0x12),
            (HOST + 0x13000, 0x1000, true, 0x13),
            (HOST + 0x14000, 1, true, 0x14),
        ]
    );
    assert_eq!(
        sg.host_pages(),
        [
            HOST + 0x10000,
            HOST + 0x11000,
            HOST + 0x12000,
            HOST + 0x13000,
            HOST + 0x14000
        ]
    );
    assert_eq!(sg.gfns(), [0x10, 0x11, 0x12, 0x13, 0x14]);
}

#[test]
fn consecutive_segments_on_one_page_pin_it_once() {
    let mut r = Rig::new(8);
    let c = chain_of(&mut r, &[(0x10000, 12, false), (0x1000c, 1500, true)]).unwrap();
    let mut sg: SgList = SgList::new();
    translate(&c, &r.map, &mut sg).unwrap();
    assert_eq!(sg.segments().len(), 2);
    assert_eq!(sg.host_pages(), [HOST + 0x10000]);
}

#[test]
fn reject_more_segments_than_capacity() {
    let mut r = Rig::new(8);
    // 5 pages into a list of 4: rejected, not truncated.
    let c = chain_of(&mut r, &[(0x10000, 5 * 4096, false)]).unwrap();
    let mut sg: SgList<4> = SgList::new();
    assert_eq!(
        translate(&c, &r.map, &mut sg),
        Err(TranslateError::TooManySegments)
    );
    let mut sg: SgList<5> = SgList::new();
    assert_eq!(translate(&c, &r.map, &mut sg), Ok(()));
}

#[test]
fn reject_buffer_outside_guest_memory() {
    let mut r = Rig::new(8);
    let c = chain_of(&mut r, &[(MEM_SIZE as u64 - 8, 16, false)]).unwrap();
    let mut sg: SgList = SgList::new();
    assert_eq!(
        translate(&c, &r.map, &mut sg),
        Err(TranslateError::Map(MapError::Unmapped))
    );
}

#[test]
fn reject_buffer_address_overflow() {
    let mut r = Rig::new(8);
    let c = chain_of(&mut r, &[(u64::MAX - 4, 16, false)]).unwrap();
    let mut sg: SgList = SgList::new();
    assert_eq!(
        translate(&c, &r.map, &mut sg),
        Err(TranslateError::Map(MapError::Overflow))
    );
}

fn two_slot_rig(contiguous: bool, second_ro: bool) -> Rig {
    let mut r = Rig::new(8);
    let mut m: MemMap = MemMap::new(3);
    m.insert(Slot {
        gpa: 0,
        size: 0x20000,
        host: HOST,
        read_only: false,
    })
    .unwrap();
    let host = if contiguous {
        HOST + 0x20000
    } else {
        HOST + 0x100_0000
    };
    m.insert(Slot {
        gpa: 0x20000,
        size: 0x20000,
        host,
        read_only: second_ro,
    })
    .unwrap();
    r.map = m;
    r
}

#[test]
fn buffer_across_contiguous_slots() {
    let mut r = two_slot_rig(true, false);
    let c = chain_of(&mut r, &[(0x1f800, 0x1000, true)]).unwrap();
    let mut sg: SgList = SgList::new();
    translate(&c, &r.map, &mut sg).unwrap();
    let hosts: Vec<u64> = sg.segments().iter().map(|s| s.host).collect();
    assert_eq!(hosts, [HOST + 0x1f800, HOST + 0x20000]);
}

#[test]
fn reject_buffer_straddling_slots() {
    let mut r = two_slot_rig(false, false);
    let c = chain_of(&mut r, &[(0x1f800, 0x1000, false)]).unwrap();
    let mut sg: SgList = SgList::new();
    assert_eq!(
        translate(&c, &r.map, &mut sg),
        Err(TranslateError::Map(MapError::Straddle))
    );
}

#[test]
fn reject_writable_buffer_in_read_only_slot() {
    let mut r = two_slot_rig(true, true);
    let c = chain_of(&mut r, &[(0x10000, 64, false), (0x21000, 64, true)]).unwrap();
    let mut sg: SgList = SgList::new();
    assert_eq!(
        translate(&c, &r.map, &mut sg),
        Err(TranslateError::Map(MapError::ReadOnly))
    );
}
