//! The receive backlog against a VecDeque model.

use proptest::prelude::*;
use pvpass_core::backlog::{Backlog, BacklogError, Delivery, Entry};
use pvpass_core::vnet::NetHdr;
use std::collections::VecDeque;

fn hdr(n: u16) -> NetHdr {
    NetHdr {
        gso_size: n,
        ..NetHdr::default()
    }
}

#[test]
fn fifo_order_and_kick_on_first() {
    let mut b = Backlog::new(vec![0; 100], [Entry::default(); 4]);
    assert_eq!(b.push(hdr(1), &[1; 10]), Ok(true));
    assert_eq!(b.push(hdr(2), &[2; 20]), Ok(false));
    let (h, f) = b.front().unwrap();
    assert_eq!((h.gso_size, f.len(), f[0]), (1, 10, 1));
    b.pop();
    let (h, f) = b.front().unwrap();
    assert_eq!((h.gso_size, f.len(), f[0]), (2, 20, 2));
    b.pop();
    assert!(b.front().is_none());
    assert!(b.is_empty());
    assert_eq!(b.push(hdr(3), &[3; 5]), Ok(true));
}

#[test]
fn refuses_when_full_by_count_or_bytes() {
    let mut b = Backlog::new(vec![0; 100], [Entry::default(); 2]);
    b.push(hdr(0), &[0; 10]).unwrap();
    b.push(hdr(0), &[0; 10]).unwrap();
    assert_eq!(b.push(hdr(0), &[0; 10]), Err(BacklogError::TooManyFrames));
    let mut b = Backlog::new(vec![0; 100], [Entry::default(); 8]);
    b.push(hdr(0), &[0; 60]).unwrap();
    assert_eq!(b.push(hdr(0), &[0; 41]), Err(BacklogError::NoRoom));
    assert_eq!(b.push(hdr(0), &[0; 40]), Ok(false));
    assert_eq!(b.push(hdr(0), &[0; 101]), Err(BacklogError::BadLength));
    assert_eq!(b.push(hdr(0), &[]), Err(BacklogError::BadLength));
}

#[test]
fn wraps_without_splitting_frames() {
    let mut b = Backlog::new(vec![0; 100], [Entry::default(); 8]);
    b.push(hdr(1), &[1; 40]).unwrap();
    b.push(hdr(2), &[2; 40]).unwrap();
    b.pop();
    // 20 bytes left at the end, 40 free at the start: a 30-byte frame wraps.
    b.push(hdr(3), &[3; 30]).unwrap();
    // Only 10 bytes between the new tail and the head now.
    assert_eq!(b.push(hdr(4), &[4; 11]), Err(BacklogError::NoRoom));
    b.push(hdr(4), &[4; 10]).unwrap();
    for (n, len) in [(2u16, 40usize), (3, 30), (4, 10)] {
        let (h, f) = b.front().unwrap();
        assert_eq!(h.gso_size, n);
        assert_eq!(f.len(), len);
        assert!(f.iter().all(|&x| x == n as u8));
        b.pop();
    }
    assert!(b.is_empty());
}

#[test]
fn clear_empties() {
    let mut b = Backlog::new(vec![0; 64], [Entry::default(); 4]);
    b.push(hdr(0), &[9; 60]).unwrap();
    b.clear();
    assert_eq!(b.len(), 0);
    assert_eq!(b.push(hdr(0), &[9; 64]), Ok(true));
}

#[derive(Debug, Clone)]
enum Op {
    Push(u16, usize, bool),
    Pop,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<u16>(), 1usize..70, any::<bool>()).prop_map(|(n, l, f)| Op::Push(n, l, f)),
        2 => Just(Op::Pop),
    ]
}

fn how(flooded: bool) -> Delivery {
    if flooded {
        Delivery::Flooded
    } else {
        Delivery::Unicast
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every frame that was accepted comes out intact, in order; a refusal
    /// never disturbs what is queued; with the backlog empty any frame that
    /// fits the ring is accepted; flooded frames never hold more than half
    /// the entries (3 of 6) or bytes (100 of 200), and are refused only then.
    #[test]
    fn matches_fifo_model(ops in prop::collection::vec(arb_op(), 1..200)) {
        let mut b = Backlog::new(vec![0; 200], [Entry::default(); 6]);
        let mut model: VecDeque<(u16, Vec<u8>, bool)> = VecDeque::new();
        for op in ops {
            match op {
                Op::Push(n, len, flooded) => {
                    let frame: Vec<u8> = (0..len).map(|i| (i as u16 ^ n) as u8).collect();
                    let was_empty = model.is_empty();
                    let (ff, fb) = model
                        .iter()
                        .filter(|m| m.2)
                        .fold((0, 0), |(c, l), m| (c + 1, l + m.1.len()));
                    let got = b.push_with(hdr(n), len, how(flooded), |d| d.copy_from_slice(&frame));
                    match got {
                        Ok(kick) => { prop_assert_eq!(kick, was_empty); model.push_back((n, frame, flooded)); }
                        Err(BacklogError::FloodShare) => {
                            prop_assert!(flooded && (ff >= 3 || fb + len > 100));
                        }
                        Err(BacklogError::TooManyFrames) => prop_assert_eq!(model.len(), 6),
                        Err(BacklogError::NoRoom) => prop_assert!(!was_empty),
                        Err(e) => prop_assert!(false, "{:?}", e),
                    }
                    if flooded && got.is_err() && got != Err(BacklogError::FloodShare) {
                        prop_assert!(ff < 3 && fb + len <= 100);
                    }
                    let used: usize = model.iter().map(|m| m.1.len()).sum();
                    prop_assert!(used <= 200);
                    let (ff, fb) = model
                        .iter()
                        .filter(|m| m.2)
                        .fold((0, 0), |(c, l), m| (c + 1, l + m.1.len()));
                    prop_assert!(ff <= 3 && fb <= 100);
                    prop_assert_eq!(b.flooded(), ff);
                }
                Op::Pop => { b.pop(); model.pop_front(); }
            }
            prop_assert_eq!(b.len(), model.len());
            match (b.front(), model.front()) {
                (None, None) => {}
                (Some((h, f)), Some((n, want, _))) => {
                    prop_assert_eq!(h.gso_size, *n);
                    prop_assert_eq!(&f[..], &want[..]);
                }
                _ => prop_assert!(false, "front differs"),
            }
        }
    }
}

#[test]
fn push_with_gathers_in_place_and_refuses_without_calling() {
    let mut b = Backlog::new(vec![0; 100], [Entry::default(); 2]);
    assert_eq!(
        b.push_with(hdr(1), 5, Delivery::Unicast, |d| {
            d[..2].copy_from_slice(&[1, 2]);
            d[2..].copy_from_slice(&[3, 4, 5]);
        }),
        Ok(true)
    );
    let (h, f) = b.front().unwrap();
    assert_eq!(*h, hdr(1));
    assert_eq!(f, &[1, 2, 3, 4, 5]);
    let mut called = false;
    assert_eq!(
        b.push_with(hdr(2), 101, Delivery::Unicast, |_| called = true),
        Err(BacklogError::BadLength)
    );
    assert_eq!(
        b.push_with(hdr(3), 10, Delivery::Unicast, |_| {}),
        Ok(false)
    );
    assert_eq!(
        b.push_with(hdr(4), 10, Delivery::Unicast, |_| called = true),
        Err(BacklogError::TooManyFrames)
    );
    assert!(!called);
}

#[test]
fn flooded_frames_leave_half_the_backlog_for_unicast() {
    let mut b = Backlog::new(vec![0; 1000], [Entry::default(); 8]);
    let flood = |b: &mut Backlog<Vec<u8>, [Entry; 8]>, len| {
        b.push_with(hdr(9), len, Delivery::Flooded, |d| d.fill(0xff))
    };
    // Half the entries: four flooded frames, the fifth is refused...
    for _ in 0..4 {
        flood(&mut b, 10).unwrap();
    }
    assert_eq!(flood(&mut b, 10), Err(BacklogError::FloodShare));
    assert_eq!(b.flooded(), 4);
    // ... while the other half takes frames for the port.
    for n in 0..4 {
        b.push(hdr(n), &[n as u8; 10]).unwrap();
    }
    assert_eq!(b.push(hdr(5), &[5; 10]), Err(BacklogError::TooManyFrames));
    // Each flooded frame taken off makes room for one more.
    b.pop();
    assert_eq!(b.flooded(), 3);
    assert_eq!(flood(&mut b, 10), Ok(false));
    assert_eq!(flood(&mut b, 10), Err(BacklogError::FloodShare));
    b.clear();
    assert_eq!(b.flooded(), 0);
    // Half the bytes: 500 of 1000.
    flood(&mut b, 300).unwrap();
    assert_eq!(flood(&mut b, 201), Err(BacklogError::FloodShare));
    flood(&mut b, 200).unwrap();
    assert_eq!(b.push(hdr(1), &[1; 500]), Ok(false));
}
