//! Split virtqueue: setup checks, one test per chain rejection, used ring,
//! notification suppression, double fetch.

mod common;

use common::*;
use pvpass_core::memmap::{MemMap, Slot};
use pvpass_core::traits::Fence;
use pvpass_core::virtq::*;

const N: u16 = VIRTQ_DESC_F_NEXT;
const W: u16 = VIRTQ_DESC_F_WRITE;
const I: u16 = VIRTQ_DESC_F_INDIRECT;

fn pop(r: &mut Rig) -> Result<Chain, QueueError> {
    let mut c = Chain::new();
    assert!(r.q.pop(&r.mem, &r.map, &mut c)?, "queue empty");
    Ok(c)
}

/// Pops and expects exactly `e`, then checks the queue stays broken.
fn expect_err(r: &mut Rig, e: QueueError) {
    assert_eq!(pop(r).unwrap_err(), e);
    assert!(r.q.is_broken());
    let mut c: Chain = Chain::new();
    assert_eq!(r.q.pop(&r.mem, &r.map, &mut c), Err(QueueError::Broken));
    assert_eq!(r.q.push(&r.mem, 0, 0), Err(QueueError::Broken));
}

// ---------- setup ----------

#[test]
fn setup_accepts_valid_layout() {
    for size in [1u16, 2, 256, 32768] {
        let mut map: MemMap = MemMap::new(1);
        map.insert(Slot {
            gpa: 0,
            size: 1 << 21,
            host: HOST,
            read_only: false,
        })
        .unwrap();
        let c = QueueConfig {
            size,
            desc: 0x10000,
            avail: 0x90000,
            used: 0xa0000,
            event_idx: true,
            indirect: false,
        };
        Virtqueue::new(c, &map).unwrap();
    }
}

#[test]
fn setup_rejects_bad_size() {
    let map = flat_map();
    for size in [0u16, 3, 6, 100, 32767, 40000] {
        assert_eq!(
            Virtqueue::new(cfg(size), &map).unwrap_err(),
            QueueError::BadSize,
            "size {size}"
        );
    }
}

#[test]
fn setup_rejects_misaligned_tables() {
    let map = flat_map();
    let c = cfg(8);
    for bad in [
        QueueConfig {
            desc: DESC + 8,
            ..c
        },
        QueueConfig {
            avail: AVAIL + 1,
            ..c
        },
        QueueConfig {
            used: USED + 2,
            ..c
        },
    ] {
        assert_eq!(
            Virtqueue::new(bad, &map).unwrap_err(),
            QueueError::Misaligned
        );
    }
    // Minimal legal alignments are accepted.
    let ok = QueueConfig {
        desc: DESC + 16,
        avail: AVAIL + 2,
        used: USED + 4,
        ..c
    };
    Virtqueue::new(ok, &map).unwrap();
}

#[test]
fn setup_rejects_tables_outside_memory() {
    let map = flat_map();
    let end = MEM_SIZE as u64;
    let c = cfg(256);
    for bad in [
        QueueConfig { desc: end, ..c },
        QueueConfig {
            desc: end - 16 * 255,
            ..c
        }, // last 16 descs run off the end
        QueueConfig {
            avail: end - 4,
            ..c
        },
        QueueConfig { used: end - 8, ..c },
        QueueConfig {
            used: u64::MAX - 3,
            ..c
        },
    ] {
        assert_eq!(
            Virtqueue::new(bad, &map).unwrap_err(),
            QueueError::TableOutsideMemory
        );
    }
}

#[test]
fn setup_event_idx_needs_room_for_event_fields() {
    let map = flat_map();
    let end = MEM_SIZE as u64;
    // avail ring of size 8 without EVENT_IDX: 4 + 16 = 20 bytes fits exactly.
    let c = QueueConfig {
        avail: end - 20,
        ..cfg(8)
    };
    Virtqueue::new(c, &map).unwrap();
    let c = QueueConfig {
        event_idx: true,
        ..c
    };
    assert_eq!(
        Virtqueue::new(c, &map).unwrap_err(),
        QueueError::TableOutsideMemory
    );
}

#[test]
fn setup_rejects_used_ring_in_read_only_slot() {
    let mut map: MemMap = MemMap::new(1);
    map.insert(Slot {
        gpa: 0,
        size: 0x3000,
        host: HOST,
        read_only: false,
    })
    .unwrap();
    map.insert(Slot {
        gpa: 0x3000,
        size: 0x1000,
        host: HOST + 0x3000,
        read_only: true,
    })
    .unwrap();
    assert_eq!(
        Virtqueue::new(cfg(8), &map).unwrap_err(),
        QueueError::TableOutsideMemory
    );
}

// ---------- popping valid chains ----------

#[test]
fn pop_empty_queue() {
    let mut r = Rig::new(8);
    let mut c: Chain = Chain::new();
    assert_eq!(r.q.pop(&r.mem, &r.map, &mut c), Ok(false));
    assert!(!r.q.is_broken());
}

#[test]
fn resume_goes_on_from_the_base() {
    let mut r = Rig::new(8);
    r.set_avail_idx(0xfffe);
    r.q.resume(0xfffe, 0xfffe);
    // Nothing new at the base.
    let mut c: Chain = Chain::new();
    assert_eq!(r.q.pop(&r.mem, &r.map, &mut c), Ok(false));
    r.desc(2, BUF, 64, 0, 0);
    r.offer(2);
    r.desc(4, BUF + 0x100, 64, 0, 0);
    r.offer(4);
    // Entries 0xfffe and 0xffff of the avail ring, across the wrap.
    assert_eq!(pop(&mut r).unwrap().head(), 2);
    assert_eq!(pop(&mut r).unwrap().head(), 4);
    assert_eq!(r.q.last_avail(), 0);
    r.q.push(&r.mem, 2, 0).unwrap();
    assert_eq!(r.q.used_idx(), 0xffff);
    assert_eq!(r.mem.peek_u16(USED + 2), 0xffff);
    // The used entry went to slot 0xfffe % 8.
    assert_eq!(r.mem.peek_u32(USED + 4 + 8 * 6), 2);
}

#[test]
fn resume_refuses_a_base_the_guest_is_too_far_from() {
    let mut r = Rig::new(8);
    r.set_avail_idx(20);
    r.q.resume(3, 3);
    assert_eq!(pop(&mut r).unwrap_err(), QueueError::AvailIndexJump);
}

#[test]
fn pop_simple_chain() {
    let mut r = Rig::new(8);
    r.desc(3, BUF, 12, N, 5);
    r.desc(5, BUF + 0x100, 100, N, 1);
    r.desc(1, BUF + 0x1000, 1500, W, 0);
    r.offer(3);
    let c = pop(&mut r).unwrap();
    assert_eq!(c.head(), 3);
    assert_eq!(
        c.descs(),
        &[
            Desc {
                addr: BUF,
                len: 12,
                writable: false
            },
            Desc {
                addr: BUF + 0x100,
                len: 100,
                writable: false
            },
            Desc {
                addr: BUF + 0x1000,
                len: 1500,
                writable: true
            },
        ]
    );
    assert_eq!(c.total_len(), 1612);
    assert_eq!(r.q.last_avail(), 1);
    assert_eq!(r.q.in_flight(), 1);
    let mut c2: Chain = Chain::new();
    assert_eq!(r.q.pop(&r.mem, &r.map, &mut c2), Ok(false));
}

#[test]
fn pop_indirect_chain() {
    let mut r = Rig::new(4);
    r.desc(2, INDIRECT, 48, I, 0);
    r.desc_at(INDIRECT, 0, BUF, 10, N, 2);
    r.desc_at(INDIRECT, 2, BUF + 0x10, 20, N | W, 1);
    r.desc_at(INDIRECT, 1, BUF + 0x20, 30, W, 0);
    r.offer(2);
    let c = pop(&mut r).unwrap();
    assert_eq!(c.head(), 2);
    let lens: Vec<u32> = c.descs().iter().map(|d| d.len).collect();
    assert_eq!(lens, [10, 20, 30]);
    assert_eq!(c.total_len(), 60);
}

#[test]
fn pop_direct_then_indirect() {
    let mut r = Rig::new(8);
    r.desc(0, BUF, 12, N, 1);
    r.desc(1, INDIRECT, 16, I, 0);
    r.desc_at(INDIRECT, 0, BUF + 0x100, 64, W, 0);
    r.offer(0);
    let c = pop(&mut r).unwrap();
    assert_eq!(c.descs().len(), 2);
    assert!(c.descs()[1].writable);
}

#[test]
fn chain_as_long_as_the_queue_is_accepted() {
    let mut r = Rig::new(8);
    for i in 0..8 {
        r.desc(
            i,
            BUF + 0x100 * u64::from(i),
            4,
            if i < 7 { N } else { 0 },
            i + 1,
        );
    }
    r.offer(0);
    assert_eq!(pop(&mut r).unwrap().descs().len(), 8);
}

#[test]
fn little_endian_fields() {
    let mut r = Rig::new(8);
    r.mem.poke(
        DESC,
        &[
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0x04, 0x03, 0x02, 0x00, 0, 0, 0, 0,
        ],
    );
    r.offer(0);
    let c = pop(&mut r).unwrap();
    assert_eq!(c.descs()[0].addr, 0x0102_0304_0506_0708);
    assert_eq!(c.descs()[0].len, 0x0002_0304);
}

// ---------- one test per rejection ----------

#[test]
fn reject_head_out_of_range() {
    let mut r = Rig::new(8);
    r.offer(8);
    expect_err(&mut r, QueueError::HeadOutOfRange);
}

#[test]
fn reject_loop() {
    let mut r = Rig::new(8);
    r.desc(0, BUF, 10, N, 1);
    r.desc(1, BUF, 10, N, 0);
    r.offer(0);
    expect_err(&mut r, QueueError::Loop);
}

#[test]
fn reject_self_loop() {
    let mut r = Rig::new(8);
    r.desc(4, BUF, 10, N, 4);
    r.offer(4);
    expect_err(&mut r, QueueError::Loop);
}

#[test]
fn loop_reads_each_descriptor_once() {
    let mut r = Rig::new(8);
    r.desc(0, BUF, 10, N, 1);
    r.desc(1, BUF, 10, N, 2);
    r.desc(2, BUF, 10, N, 1);
    r.offer(0);
    expect_err(&mut r, QueueError::Loop);
    for i in 0..3 {
        assert_eq!(r.mem.reads_of(DESC + 16 * i), 1, "desc {i}");
    }
}

#[test]
fn reject_loop_in_indirect_table() {
    let mut r = Rig::new(8);
    r.desc(0, INDIRECT, 32, I, 0);
    r.desc_at(INDIRECT, 0, BUF, 10, N, 1);
    r.desc_at(INDIRECT, 1, BUF, 10, N, 0);
    r.offer(0);
    expect_err(&mut r, QueueError::Loop);
}

#[test]
fn reject_chain_longer_than_queue() {
    // Indirect table with 5 entries on a queue of size 4.
    let mut r = Rig::new(4);
    r.desc(0, INDIRECT, 5 * 16, I, 0);
    for i in 0..5 {
        r.desc_at(INDIRECT, i, BUF, 1, if i < 4 { N } else { 0 }, i + 1);
    }
    r.offer(0);
    expect_err(&mut r, QueueError::ChainTooLong);
}

#[test]
fn reject_direct_plus_indirect_longer_than_queue() {
    let mut r = Rig::new(4);
    r.desc(0, BUF, 1, N, 1);
    r.desc(1, BUF, 1, N, 2);
    r.desc(2, INDIRECT, 48, I, 0);
    for i in 0..3 {
        r.desc_at(INDIRECT, i, BUF, 1, if i < 2 { N } else { 0 }, i + 1);
    }
    r.offer(0);
    expect_err(&mut r, QueueError::ChainTooLong);
}

#[test]
fn reject_chain_over_capacity() {
    let mut r = Rig::new(16);
    for i in 0..5 {
        r.desc(i, BUF, 1, if i < 4 { N } else { 0 }, i + 1);
    }
    r.offer(0);
    let mut c: Chain<4> = Chain::new();
    assert_eq!(
        r.q.pop(&r.mem, &r.map, &mut c),
        Err(QueueError::ChainCapacity)
    );
    assert!(r.q.is_broken());
}

#[test]
fn reject_next_out_of_range() {
    let mut r = Rig::new(8);
    r.desc(0, BUF, 10, N, 8);
    r.offer(0);
    expect_err(&mut r, QueueError::NextOutOfRange);
}

#[test]
fn reject_next_out_of_range_in_indirect_table() {
    let mut r = Rig::new(8);
    r.desc(0, INDIRECT, 32, I, 0);
    r.desc_at(INDIRECT, 0, BUF, 10, N, 2);
    r.offer(0);
    expect_err(&mut r, QueueError::NextOutOfRange);
}

#[test]
fn reject_zero_length() {
    let mut r = Rig::new(8);
    r.desc(0, BUF, 10, N, 1);
    r.desc(1, BUF, 0, 0, 0);
    r.offer(0);
    expect_err(&mut r, QueueError::ZeroLength);
}

#[test]
fn reject_zero_length_in_indirect_table() {
    let mut r = Rig::new(8);
    r.desc(0, INDIRECT, 16, I, 0);
    r.desc_at(INDIRECT, 0, BUF, 0, 0, 0);
    r.offer(0);
    expect_err(&mut r, QueueError::ZeroLength);
}

#[test]
fn reject_indirect_not_negotiated() {
    let mut r = Rig::with(QueueConfig {
        indirect: false,
        ..cfg(8)
    });
    r.desc(0, INDIRECT, 16, I, 0);
    r.desc_at(INDIRECT, 0, BUF, 10, 0, 0);
    r.offer(0);
    expect_err(&mut r, QueueError::IndirectNotNegotiated);
}

#[test]
fn reject_indirect_length_not_multiple_of_16() {
    let mut r = Rig::new(8);
    r.desc(0, INDIRECT, 24, I, 0);
    r.offer(0);
    expect_err(&mut r, QueueError::IndirectBadLength);
}

#[test]
fn reject_indirect_length_zero() {
    let mut r = Rig::new(8);
    r.desc(0, INDIRECT, 0, I, 0);
    r.offer(0);
    expect_err(&mut r, QueueError::IndirectBadLength);
}

#[test]
fn reject_indirect_outside_memory() {
    let mut r = Rig::new(8);
    r.desc(0, MEM_SIZE as u64 - 16, 32, I, 0);
    r.offer(0);
    expect_err(&mut r, QueueError::IndirectOutsideMemory);
}

#[test]
fn reject_indirect_table_address_overflow() {
    let mut r = Rig::new(8);
    r.desc(0, u64::MAX - 15, 32, I, 0);
    r.offer(0);
    expect_err(&mut r, QueueError::IndirectOutsideMemory);
}

#[test]
fn reject_nested_indirect() {
    let mut r = Rig::new(8);
    r.desc(0, INDIRECT, 16, I, 0);
    r.desc_at(INDIRECT, 0, INDIRECT + 0x100, 16, I, 0);
    r.offer(0);
    expect_err(&mut r, QueueError::NestedIndirect);
}

#[test]
fn reject_indirect_with_next() {
    let mut r = Rig::new(8);
    r.desc(0, INDIRECT, 16, I | N, 1);
    r.desc(1, BUF, 10, 0, 0);
    r.desc_at(INDIRECT, 0, BUF, 10, 0, 0);
    r.offer(0);
    expect_err(&mut r, QueueError::IndirectWithNext);
}

#[test]
fn reject_total_length_overflow() {
    let mut r = Rig::new(8);
    r.desc(0, BUF, 0x8000_0000, N, 1);
    r.desc(1, BUF, 0x8000_0000, 0, 0);
    r.offer(0);
    expect_err(&mut r, QueueError::LengthOverflow);
}

#[test]
fn reject_readable_after_writable() {
    let mut r = Rig::new(8);
    r.desc(0, BUF, 10, N | W, 1);
    r.desc(1, BUF, 10, 0, 0);
    r.offer(0);
    expect_err(&mut r, QueueError::ReadAfterWrite);
}

#[test]
fn reject_avail_index_jump_and_stay_broken() {
    let mut r = Rig::new(8);
    r.desc(0, BUF, 10, 0, 0);
    r.set_avail_idx(9);
    expect_err(&mut r, QueueError::AvailIndexJump);
    assert_eq!(r.q.need_notify(&r.mem), Err(QueueError::Broken));
    assert_eq!(r.q.enable_notify(&r.mem), Err(QueueError::Broken));
    assert_eq!(r.q.disable_notify(&r.mem), Err(QueueError::Broken));
    // Reset clears the state; a sane avail index works again.
    r.q.reset();
    assert!(!r.q.is_broken());
    r.set_avail_idx(1);
    assert_eq!(pop(&mut r).unwrap().head(), 0);
}

#[test]
fn avail_index_going_backwards_is_a_jump() {
    let mut r = Rig::new(8);
    r.desc(0, BUF, 10, 0, 0);
    r.offer(0);
    pop(&mut r).unwrap();
    r.set_avail_idx(0);
    expect_err(&mut r, QueueError::AvailIndexJump);
}

#[test]
fn avail_index_exactly_queue_size_is_fine() {
    let mut r = Rig::new(8);
    for i in 0..8 {
        r.desc(i, BUF, 10, 0, 0);
        r.offer(i);
    }
    for i in 0..8 {
        assert_eq!(pop(&mut r).unwrap().head(), i);
    }
}

#[test]
fn memory_fault_breaks_queue() {
    let mut r = Rig::new(8);
    r.desc(0, BUF, 10, 0, 0);
    r.offer(0);
    r.mem.fail_at.set(Some(DESC));
    expect_err(&mut r, QueueError::Memory);
}

// ---------- double fetch ----------

#[test]
fn descriptor_rewritten_after_fetch_changes_nothing() {
    let mut r = Rig::new(8);
    r.desc(0, BUF, 100, N, 1);
    r.desc(1, BUF + 0x1000, 200, W, 0);
    r.offer(0);
    // The guest rewrites descriptor 0 right after we read it: huge length,
    // address outside its memory, pointing at a looping next.
    let evil = desc_bytes(0xdead_0000_0000, 0xffff_ffff, N | W, 0);
    *r.mem.hook.borrow_mut() = Some(Box::new(move |gpa, _, bytes| {
        if gpa == DESC {
            bytes[DESC as usize..DESC as usize + 16].copy_from_slice(&evil);
        }
    }));
    let c = pop(&mut r).unwrap();
    assert_eq!(
        c.descs()[0],
        Desc {
            addr: BUF,
            len: 100,
            writable: false
        }
    );
    assert_eq!(c.descs()[1].len, 200);
    assert_eq!(c.total_len(), 300);
    assert_eq!(r.mem.reads_of(DESC), 1);
    assert_eq!(r.mem.reads_of(DESC + 16), 1);
    // Memory really was rewritten.
    assert_eq!(r.mem.peek(DESC, 16), evil.to_vec());
}

#[test]
fn indirect_entry_rewritten_after_fetch_changes_nothing() {
    let mut r = Rig::new(8);
    r.desc(0, INDIRECT, 32, I, 0);
    r.desc_at(INDIRECT, 0, BUF, 10, N, 1);
    r.desc_at(INDIRECT, 1, BUF, 20, W, 0);
    r.offer(0);
    let evil = desc_bytes(BUF, 10, N, 0); // would make a loop
    *r.mem.hook.borrow_mut() = Some(Box::new(move |gpa, _, bytes| {
        if gpa == INDIRECT + 16 {
            let s = INDIRECT as usize;
            bytes[s..s + 16].copy_from_slice(&evil);
        }
    }));
    let c = pop(&mut r).unwrap();
    assert_eq!(c.descs().len(), 2);
    assert_eq!(c.descs()[0].len, 10);
    assert_eq!(r.mem.reads_of(INDIRECT), 1);
    assert_eq!(r.mem.reads_of(INDIRECT + 16), 1);
}

#[test]
fn avail_ring_entry_read_once_per_pop() {
    let mut r = Rig::new(8);
    r.desc(2, BUF, 10, 0, 0);
    r.offer(2);
    pop(&mut r).unwrap();
    assert_eq!(r.mem.reads_of(AVAIL + 4), 1);
    assert_eq!(r.mem.reads_of(DESC + 32), 1);
}

// ---------- ordering, used ring ----------

#[test]
fn read_fence_between_avail_idx_and_ring() {
    let mut r = Rig::new(8);
    r.desc(0, BUF, 10, 0, 0);
    r.offer(0);
    pop(&mut r).unwrap();
    let log = r.mem.log.borrow();
    let idx = log
        .iter()
        .position(|e| *e == Event::Read(AVAIL + 2, 2))
        .unwrap();
    let fence = log
        .iter()
        .position(|e| *e == Event::Fence(Fence::Read))
        .unwrap();
    let ring = log
        .iter()
        .position(|e| *e == Event::Read(AVAIL + 4, 2))
        .unwrap();
    assert!(idx < fence && fence < ring);
}

#[test]
fn push_writes_element_then_fence_then_index() {
    let mut r = Rig::new(8);
    r.q.push(&r.mem, 5, 1234).unwrap();
    assert_eq!(r.mem.peek_u32(USED + 4), 5);
    assert_eq!(r.mem.peek_u32(USED + 8), 1234);
    assert_eq!(r.mem.peek_u16(USED + 2), 1);
    let log = r.mem.log.borrow().clone();
    assert_eq!(
        log,
        vec![
            Event::Write(USED + 4, 5u32.to_le_bytes().to_vec()),
            Event::Write(USED + 8, 1234u32.to_le_bytes().to_vec()),
            Event::Fence(Fence::Write),
            Event::Write(USED + 2, 1u16.to_le_bytes().to_vec()),
        ]
    );
}

#[test]
fn push_wraps_around_the_ring() {
    let mut r = Rig::new(4);
    for i in 0..6u16 {
        r.q.push(&r.mem, i % 4, u32::from(i) * 10).unwrap();
    }
    assert_eq!(r.mem.peek_u16(USED + 2), 6);
    // Elements 4 and 5 overwrote slots 0 and 1.
    let used_len = |slot: u64| r.mem.peek_u32(USED + 8 + 8 * slot);
    assert_eq!(used_len(0), 40);
    assert_eq!(used_len(1), 50);
    assert_eq!(used_len(2), 20);
}

/// Entries held are written where the next published ones go, but the
/// guest sees none of them (the used index stays) until they are published
/// together, after one write barrier; a `push` after held entries
/// publishes them with its own.
#[test]
fn held_entries_are_written_in_order_and_published_together() {
    let mut r = Rig::new(4);
    r.q.push(&r.mem, 3, 30).unwrap();
    r.q.push_held(&r.mem, 1, 10).unwrap();
    r.q.push_held(&r.mem, 2, 20).unwrap();
    assert_eq!(r.q.held(), 2);
    assert_eq!(r.q.used_idx(), 1);
    assert_eq!(r.mem.peek_u16(USED + 2), 1);
    assert_eq!(r.mem.peek_u32(USED + 4 + 8), 1);
    assert_eq!(r.mem.peek_u32(USED + 4 + 16), 2);
    r.mem.log.borrow_mut().clear();
    assert_eq!(r.q.publish(&r.mem), Ok(true));
    assert_eq!(
        *r.mem.log.borrow(),
        vec![
            Event::Fence(Fence::Write),
            Event::Write(USED + 2, 3u16.to_le_bytes().to_vec()),
        ]
    );
    assert_eq!((r.q.used_idx(), r.q.held()), (3, 0));
    // Nothing held: nothing written.
    r.mem.log.borrow_mut().clear();
    assert_eq!(r.q.publish(&r.mem), Ok(false));
    assert!(r.mem.log.borrow().is_empty());
    r.q.push_held(&r.mem, 0, 0).unwrap();
    r.q.push(&r.mem, 1, 0).unwrap();
    assert_eq!(r.mem.peek_u16(USED + 2), 5);
    assert_eq!(r.mem.peek_u32(USED + 4), 1); // slot 4 % 4 = 0: the push
    assert_eq!(r.mem.peek_u32(USED + 4 + 24), 0); // slot 3: the held one
    assert_eq!(r.q.held(), 0);
}

/// With EVENT_IDX the interrupt decision counts only what was published.
#[test]
fn need_notify_does_not_count_held_entries() {
    let mut r = Rig::with(QueueConfig {
        event_idx: true,
        ..cfg(8)
    });
    let used_event = AVAIL + 4 + 2 * 8;
    r.mem.poke(used_event, &1u16.to_le_bytes());
    r.q.push(&r.mem, 0, 0).unwrap(); // used idx 1
    assert_eq!(r.q.need_notify(&r.mem), Ok(true));
    r.q.push_held(&r.mem, 1, 0).unwrap(); // would pass event 1
    assert_eq!(r.q.need_notify(&r.mem), Ok(false));
    assert_eq!(r.q.publish(&r.mem), Ok(true)); // used idx 2: passes it
    assert_eq!(r.q.need_notify(&r.mem), Ok(true));
}

/// A broken queue publishes nothing it held; a resumed one holds nothing.
#[test]
fn held_entries_go_with_a_broken_or_resumed_queue() {
    let mut r = Rig::new(4);
    r.q.push_held(&r.mem, 1, 0).unwrap();
    r.q.resume(7, 9);
    assert_eq!((r.q.held(), r.q.used_idx()), (0, 9));
    assert_eq!(r.q.publish(&r.mem), Ok(false));
    r.q.push_held(&r.mem, 1, 0).unwrap();
    r.mem.poke(AVAIL + 2, &100u16.to_le_bytes()); // an avail jump breaks it
    let mut c: Chain = Chain::new();
    assert!(r.q.pop(&r.mem, &r.map, &mut c).is_err());
    assert_eq!(r.q.publish(&r.mem), Err(QueueError::Broken));
    assert_eq!(r.mem.peek_u16(USED + 2), 0);
}

#[test]
fn push_rejects_bad_id_without_breaking() {
    let mut r = Rig::new(4);
    assert_eq!(r.q.push(&r.mem, 4, 0), Err(QueueError::BadUsedId));
    assert!(!r.q.is_broken());
}

#[test]
fn indices_wrap_at_u16() {
    let mut r = Rig::new(4);
    r.desc(1, BUF, 10, 0, 0);
    let mut c: Chain = Chain::new();
    for n in 0..70_000u32 {
        r.offer(1);
        assert!(r.q.pop(&r.mem, &r.map, &mut c).unwrap(), "pop {n}");
        r.q.push(&r.mem, c.head(), 0).unwrap();
    }
    assert_eq!(r.q.last_avail(), (70_000u32 % 65536) as u16);
    assert_eq!(r.mem.peek_u16(USED + 2), (70_000u32 % 65536) as u16);
    assert_eq!(r.q.in_flight(), 0);
}

#[test]
fn unpop_returns_chain_to_the_queue() {
    let mut r = Rig::new(8);
    r.desc(0, BUF, 10, 0, 0);
    r.offer(0);
    pop(&mut r).unwrap();
    assert!(r.q.unpop());
    assert!(!r.q.unpop());
    assert_eq!(pop(&mut r).unwrap().head(), 0);
}

// ---------- notification suppression ----------

#[test]
fn vring_need_event_matches_virtio_spec() {
    assert!(vring_need_event(0, 1, 0));
    assert!(!vring_need_event(1, 1, 0));
    assert!(vring_need_event(4, 6, 3));
    assert!(!vring_need_event(6, 6, 3));
    assert!(vring_need_event(65535, 1, 65534)); // wraps
}

#[test]
fn need_notify_without_event_idx_honors_no_interrupt() {
    let mut r = Rig::new(8);
    r.q.push(&r.mem, 0, 0).unwrap();
    assert_eq!(r.q.need_notify(&r.mem), Ok(true));
    r.mem.poke(AVAIL, &VRING_AVAIL_F_NO_INTERRUPT.to_le_bytes());
    r.q.push(&r.mem, 0, 0).unwrap();
    assert_eq!(r.q.need_notify(&r.mem), Ok(false));
}

#[test]
fn need_notify_with_event_idx_uses_used_event() {
    let mut r = Rig::with(QueueConfig {
        event_idx: true,
        ..cfg(8)
    });
    let used_event = AVAIL + 4 + 2 * 8;
    // NO_INTERRUPT is ignored with EVENT_IDX.
    r.mem.poke(AVAIL, &VRING_AVAIL_F_NO_INTERRUPT.to_le_bytes());
    r.mem.poke(used_event, &2u16.to_le_bytes());
    r.q.push(&r.mem, 0, 0).unwrap(); // used idx 1
    assert_eq!(r.q.need_notify(&r.mem), Ok(true)); // first check always notifies
    r.q.push(&r.mem, 0, 0).unwrap(); // used idx 2: does not pass event 2
    assert_eq!(r.q.need_notify(&r.mem), Ok(false));
    r.q.push(&r.mem, 0, 0).unwrap(); // used idx 3: passes event 2
    assert_eq!(r.q.need_notify(&r.mem), Ok(true));
    r.q.push(&r.mem, 0, 0).unwrap(); // used idx 4
    assert_eq!(r.q.need_notify(&r.mem), Ok(false));
    let log = r.mem.log.borrow();
    assert!(log.contains(&Event::Fence(Fence::Full)));
}

/// A queue of 8 with EVENT_IDX, and where its `avail_event` lies (after
/// the used ring's flags, index and 8 entries).
fn event_idx_rig() -> Rig {
    Rig::with(QueueConfig {
        event_idx: true,
        ..cfg(8)
    })
}
const AVAIL_EVENT: u64 = USED + 4 + 8 * 8;

#[test]
fn enable_notify_with_event_idx_sets_avail_event() {
    let mut r = event_idx_rig();
    let avail_event = AVAIL_EVENT;
    r.desc(0, BUF, 10, 0, 0);
    r.offer(0);
    r.offer(0);
    pop(&mut r).unwrap();
    // One more is pending: enable_notify must say so.
    assert_eq!(r.q.enable_notify(&r.mem), Ok(true));
    assert_eq!(r.mem.peek_u16(avail_event), 2);
    pop(&mut r).unwrap();
    assert_eq!(r.q.enable_notify(&r.mem), Ok(false));
    assert_eq!(r.mem.peek_u16(avail_event), 2);
    // Full fence between writing avail_event and re-reading the index.
    let log = r.mem.log.borrow();
    let w = log
        .iter()
        .rposition(|e| matches!(e, Event::Write(a, _) if *a == avail_event))
        .unwrap();
    assert_eq!(log[w + 1], Event::Fence(Fence::Full));
    assert_eq!(log[w + 2], Event::Read(AVAIL + 2, 2));
}

/// The guest's side of EVENT_IDX (the driver's `vring_need_event`): it
/// notifies when moving its index from `old` to `new` passes `event`.
fn guest_notifies(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

#[test]
fn notify_after_asks_for_the_nth_buffer() {
    let mut r = event_idx_rig();
    let avail_event = AVAIL_EVENT;
    r.desc(0, BUF, 10, 0, 0);
    r.offer(0);
    pop(&mut r).unwrap();
    let mut c: Chain = Chain::new();
    assert_eq!(r.q.pop(&r.mem, &r.map, &mut c), Ok(false));
    r.q.notify_after(&r.mem, 4).unwrap();
    let event = r.mem.peek_u16(avail_event);
    // The device has seen 1; the guest adding one at a time notifies at
    // its 4th more (index 4 -> 5) only, and adding 5 at once notifies.
    let kicks: Vec<u16> = (1..8u16)
        .filter(|&i| guest_notifies(event, i + 1, i))
        .collect();
    assert_eq!(kicks, [4]);
    assert!(guest_notifies(event, 6, 1));
    assert!(!guest_notifies(event, 4, 1));
    // 0 is 1: the next buffer notifies.
    r.q.notify_after(&r.mem, 0).unwrap();
    assert!(guest_notifies(r.mem.peek_u16(avail_event), 2, 1));
}

#[test]
fn notify_after_without_event_idx_sets_no_notify() {
    let mut r = Rig::with(cfg(8));
    r.q.notify_after(&r.mem, 4).unwrap();
    assert_eq!(r.mem.peek_u16(USED), VRING_USED_F_NO_NOTIFY);
}

#[test]
fn indices_show_both_sides() {
    let mut r = Rig::with(QueueConfig {
        event_idx: true,
        ..cfg(8)
    });
    r.desc(0, BUF, 10, 0, 0);
    r.offer(0);
    r.offer(0);
    r.mem.poke(AVAIL + 4 + 2 * 8, &5u16.to_le_bytes());
    pop(&mut r).unwrap();
    r.q.push(&r.mem, 0, 0).unwrap();
    r.q.enable_notify(&r.mem).unwrap();
    assert_eq!(
        r.q.indices(&r.mem),
        QueueIndices {
            next_avail: 1,
            used: 1,
            guest_avail: 2,
            used_event: 5,
            avail_event: 2,
        }
    );
}

/// A mergeable frame found too few buffers and put them back: they are no
/// reason to retry (the device would spin), but one the guest adds after the
/// device last looked is, and `avail_event` asks for a notify at the next.
#[test]
fn enable_notify_for_more_counts_only_new_buffers() {
    let mut r = event_idx_rig();
    let avail_event = AVAIL_EVENT;
    r.desc(0, BUF, 10, 0, 0);
    r.offer(0);
    r.offer(0);
    pop(&mut r).unwrap();
    pop(&mut r).unwrap();
    assert!(r.q.unpop());
    assert!(r.q.unpop());
    assert_eq!(r.q.enable_notify_for_more(&r.mem), Ok(false));
    assert_eq!(r.mem.peek_u16(avail_event), 2);
    // The plain variant still says buffers are there.
    assert_eq!(r.q.enable_notify(&r.mem), Ok(true));
    // The guest adds one after the device armed the event.
    r.offer(0);
    assert_eq!(r.q.enable_notify_for_more(&r.mem), Ok(true));
    assert_eq!(r.mem.peek_u16(avail_event), 2);
    assert_eq!(r.q.enable_notify_for_more(&r.mem), Ok(false));
    assert_eq!(r.mem.peek_u16(avail_event), 3);
}

#[test]
fn disable_and_enable_notify_without_event_idx_use_used_flags() {
    let mut r = Rig::new(8);
    r.q.disable_notify(&r.mem).unwrap();
    assert_eq!(r.mem.peek_u16(USED), VRING_USED_F_NO_NOTIFY);
    assert_eq!(r.q.enable_notify(&r.mem), Ok(false));
    assert_eq!(r.mem.peek_u16(USED), 0);
}

#[test]
fn enable_notify_detects_avail_jump() {
    let mut r = Rig::new(8);
    r.set_avail_idx(100);
    assert_eq!(r.q.enable_notify(&r.mem), Err(QueueError::AvailIndexJump));
    assert!(r.q.is_broken());
}

#[test]
fn recheck_after_memory_map_change() {
    let mut r = Rig::new(8);
    let mut small: MemMap = MemMap::new(8);
    small
        .insert(Slot {
            gpa: 0,
            size: 0x2000,
            host: HOST,
            read_only: false,
        })
        .unwrap();
    assert_eq!(r.q.recheck(&r.map), Ok(()));
    assert_eq!(r.q.recheck(&small), Err(QueueError::TableOutsideMemory));
    assert!(r.q.is_broken());
}
