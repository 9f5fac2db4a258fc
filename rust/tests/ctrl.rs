//! The control queue: chains as a driver lays them out, popped by the
//! descriptor engine and read by `ctrl::read_request`.

mod common;

use common::*;
use proptest::prelude::*;
use pvpass_core::ctrl::*;
use pvpass_core::virtq::*;

const N: u16 = VIRTQ_DESC_F_NEXT;
const W: u16 = VIRTQ_DESC_F_WRITE;
const HDR_AT: u64 = BUF;
const DATA_AT: u64 = BUF + 0x100;
const ACK_AT: u64 = BUF + 0x200;

fn pop(r: &mut Rig) -> Chain<8> {
    let mut c = Chain::new();
    assert!(r.q.pop(&r.mem, &r.map, &mut c).unwrap(), "queue empty");
    c
}

/// Linux's layout: header, data, ack (three descriptors).
fn linux_chain(r: &mut Rig, class: u8, cmd: u8, data: &[u8]) -> Chain<8> {
    r.mem.poke(HDR_AT, &[class, cmd]);
    r.mem.poke(DATA_AT, data);
    r.desc(0, HDR_AT, 2, N, 1);
    r.desc(1, DATA_AT, data.len() as u32, N, 2);
    r.desc(2, ACK_AT, 1, W, 0);
    r.offer(0);
    pop(r)
}

fn coal(max: u32, us: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&max.to_le_bytes());
    b[4..].copy_from_slice(&us.to_le_bytes());
    b
}

#[test]
fn rx_and_tx_set_as_linux_sends_them() {
    let mut r = Rig::new(8);
    let c = linux_chain(&mut r, CLASS_NOTF_COAL, NOTF_COAL_RX_SET, &coal(8, 2000));
    let req = read_request(&r.mem, &c).unwrap();
    assert_eq!(req.ack, ACK_AT);
    assert_eq!(
        req.cmd,
        Ok(Command::CoalRx(Coal {
            max_packets: 8,
            usecs: 2000
        }))
    );
    assert_eq!(req.ack_byte(), OK);
    // Every readable buffer read once, the ack not at all.
    assert_eq!(r.mem.reads_of(HDR_AT), 1);
    assert_eq!(r.mem.reads_of(DATA_AT), 1);
    assert_eq!(r.mem.reads_of(ACK_AT), 0);
    let c = linux_chain(&mut r, CLASS_NOTF_COAL, NOTF_COAL_TX_SET, &coal(1, 0));
    assert_eq!(
        read_request(&r.mem, &c).unwrap().cmd,
        Ok(Command::CoalTx(Coal {
            max_packets: 1,
            usecs: 0
        }))
    );
}

#[test]
fn one_buffer_and_byte_pieces_read_the_same() {
    let mut r = Rig::new(8);
    let mut all = vec![CLASS_NOTF_COAL, NOTF_COAL_RX_SET];
    all.extend_from_slice(&coal(3, 7));
    r.mem.poke(HDR_AT, &all);
    r.desc(0, HDR_AT, 10, N, 1);
    r.desc(1, ACK_AT, 4, W, 0);
    r.offer(0);
    let c = pop(&mut r);
    let want = Ok(Command::CoalRx(Coal {
        max_packets: 3,
        usecs: 7,
    }));
    assert_eq!(read_request(&r.mem, &c).unwrap().cmd, want);
    // The same bytes in pieces: one byte each of the header, then four
    // buffers of two bytes.
    let mut at = HDR_AT;
    for (i, l) in [1u32, 1, 2, 2, 2, 2].into_iter().enumerate() {
        r.desc(i as u16, at, l, N, i as u16 + 1);
        at += u64::from(l);
    }
    r.desc(6, ACK_AT, 1, W, 0);
    r.offer(0);
    let c = pop(&mut r);
    assert_eq!(c.descs().len(), 7);
    assert_eq!(read_request(&r.mem, &c).unwrap().cmd, want);
}

#[test]
fn unknown_class_and_command_get_err() {
    let mut r = Rig::new(8);
    for (class, cmd) in [(0u8, 0u8), (1, 1), (2, 0), (6, 2), (6, 3), (200, 200)] {
        let c = linux_chain(&mut r, class, cmd, &coal(8, 8));
        let req = read_request(&r.mem, &c).unwrap();
        assert_eq!(req.cmd, Err(Refused::Unknown { class, cmd }));
        assert_eq!(req.ack_byte(), ERR);
        assert_eq!(req.ack, ACK_AT);
    }
}

#[test]
fn truncated_data_gets_err() {
    let mut r = Rig::new(8);
    let c = linux_chain(&mut r, CLASS_NOTF_COAL, NOTF_COAL_RX_SET, &coal(8, 8)[..7]);
    let req = read_request(&r.mem, &c).unwrap();
    assert_eq!(
        req.cmd,
        Err(Refused::Truncated {
            class: CLASS_NOTF_COAL,
            cmd: NOTF_COAL_RX_SET,
            len: 7
        })
    );
    // Header only, no data descriptor at all.
    r.mem.poke(HDR_AT, &[CLASS_NOTF_COAL, NOTF_COAL_TX_SET]);
    r.desc(0, HDR_AT, 2, N, 1);
    r.desc(1, ACK_AT, 1, W, 0);
    r.offer(0);
    let c = pop(&mut r);
    assert!(matches!(
        read_request(&r.mem, &c).unwrap().cmd,
        Err(Refused::Truncated { len: 0, .. })
    ));
    // Not even a header: only the ack.
    r.desc(0, ACK_AT, 1, W, 0);
    r.offer(0);
    let c = pop(&mut r);
    let req = read_request(&r.mem, &c).unwrap();
    assert_eq!(req.cmd, Err(Refused::NoHeader));
    assert_eq!(req.ack_byte(), ERR);
}

#[test]
fn unreadable_data_gets_err() {
    let mut r = Rig::new(8);
    r.mem.fail_at.set(Some(DATA_AT));
    let c = linux_chain(&mut r, CLASS_NOTF_COAL, NOTF_COAL_RX_SET, &coal(8, 8));
    let req = read_request(&r.mem, &c).unwrap();
    assert_eq!(req.cmd, Err(Refused::Unreadable));
    assert_eq!(req.ack, ACK_AT);
}

#[test]
fn no_writable_byte_is_a_bad_chain() {
    let mut r = Rig::new(8);
    r.mem.poke(HDR_AT, &[CLASS_NOTF_COAL, NOTF_COAL_RX_SET]);
    r.mem.poke(DATA_AT, &coal(8, 8));
    r.desc(0, HDR_AT, 2, N, 1);
    r.desc(1, DATA_AT, 8, 0, 0);
    r.offer(0);
    let c = pop(&mut r);
    assert_eq!(read_request(&r.mem, &c), Err(BadChain::NoAck));
    // Nothing of it was read.
    assert_eq!(r.mem.reads_of(HDR_AT), 0);
}

proptest! {
    /// Any chain the engine accepts gets an answer or `NoAck`, and never
    /// more than READ_MAX bytes are read.
    #[test]
    fn any_chain_is_answered(
        bytes in proptest::collection::vec(any::<u8>(), 0..32),
        lens in proptest::collection::vec(1u32..16, 1..6),
        writable in 0usize..7,
    ) {
        let mut r = Rig::new(8);
        r.mem.poke(HDR_AT, &bytes);
        let n = lens.len();
        let mut at = HDR_AT;
        for (i, &l) in lens.iter().enumerate() {
            let w = if i >= writable { W } else { 0 };
            let next = if i + 1 < n { N } else { 0 };
            r.desc(i as u16, at, l, w | next, (i + 1) as u16);
            at += u64::from(l);
        }
        r.offer(0);
        let c = pop(&mut r);
        let before = r.mem.log.borrow().len();
        match read_request(&r.mem, &c) {
            Ok(req) => {
                prop_assert!(writable < n);
                let readable: u64 = lens.iter().take(writable).map(|&l| u64::from(l)).sum();
                prop_assert_eq!(req.ack, HDR_AT + readable);
            }
            Err(BadChain::NoAck) => prop_assert!(writable >= n),
        }
        let read: usize = r.mem.log.borrow()[before..]
            .iter()
            .map(|e| if let Event::Read(_, l) = e { *l } else { 0 })
            .sum();
        prop_assert!(read <= READ_MAX);
    }
}
