//! The igb plan against mocks: the register sequence of `Nic`, ring
//! bookkeeping against hostile write-backs, and the transmit descriptor
//! builder. (`igb_qtest.rs` runs the same code against QEMU's igb.)

use proptest::prelude::*;
use pvpass_core::igb::desc::*;
use pvpass_core::igb::pools::*;
use pvpass_core::igb::regs::{self, Pool, Queue};
use pvpass_core::igb::ring::*;
use pvpass_core::igb::Regs;
use pvpass_core::traits::Fence;
use pvpass_core::vnet::{NetHdr, F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6};
use std::collections::{HashMap, HashSet};

// ---- a register file ---------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    R(u32),
    W(u32, u32),
    Delay,
}

/// Registers as plain storage, with bits that refuse to clear (a queue that
/// does not stop) and a reset that takes `reset_reads` reads of CTRL.
#[derive(Default)]
struct MockRegs {
    regs: HashMap<u32, u32>,
    sticky: HashMap<u32, u32>,
    log: Vec<Op>,
    reset_reads: u32,
}

impl MockRegs {
    fn get(&self, off: u32) -> u32 {
        self.regs.get(&off).copied().unwrap_or(0)
    }
    fn writes_to(&self, off: u32) -> Vec<u32> {
        self.log
            .iter()
            .filter_map(|o| match o {
                Op::W(a, v) if *a == off => Some(*v),
                _ => None,
            })
            .collect()
    }
    fn pos(&self, op: Op) -> usize {
        self.log
            .iter()
            .position(|o| *o == op)
            .expect("operation in log")
    }
    fn reads_of(&self, off: u32) -> usize {
        self.log.iter().filter(|o| **o == Op::R(off)).count()
    }
}

impl Regs for MockRegs {
    fn read32(&mut self, off: u32) -> u32 {
        self.log.push(Op::R(off));
        if off == regs::CTRL && self.get(off) & regs::CTRL_RST != 0 {
            if self.reset_reads == 0 {
                let v = self.get(off) & !regs::CTRL_RST;
                self.regs.insert(off, v);
            } else {
                self.reset_reads -= 1;
            }
        }
        if off == regs::MDIC {
            return self.get(off) | regs::MDIC_READY;
        }
        self.get(off)
    }
    fn write32(&mut self, off: u32, val: u32) {
        self.log.push(Op::W(off, val));
        let keep = self.sticky.get(&off).copied().unwrap_or(0) & self.get(off);
        self.regs.insert(off, val | keep);
    }
    fn delay_us(&mut self, _us: u32) {
        self.log.push(Op::Delay);
    }
}

const HOST: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0, 0];
const M1: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0, 1];
const M2: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0, 2];

fn cfg() -> NicConfig {
    NicConfig {
        host_mac: HOST,
        max_frame: 9000,
        loopback: true,
    }
}

fn ready() -> (Nic, MockRegs) {
    let mut r = MockRegs::default();
    let mut nic = Nic::new();
    nic.reset(&mut r);
    nic.init(&mut r, &cfg()).expect("init");
    r.log.clear();
    (nic, r)
}

fn p(n: u8) -> Pool {
    Pool::new(n).unwrap()
}

fn q(n: u8) -> Queue {
    Queue::new(n).unwrap()
}

fn ring(base: u64) -> RingConfig {
    RingConfig { base, size: 256 }
}

fn vm(buf_len: u32, max_frame: u16) -> PoolRxConfig {
    PoolRxConfig {
        buf_len,
        max_frame,
        broadcast: true,
        multicast: false,
        drop_when_empty: false,
    }
}

// ---- Nic -----------------------------------------------------------------------

#[test]
fn init_sets_up_vmdq_without_sriov() {
    let mut r = MockRegs::default();
    // Leftovers of an earlier user: a RAR, UTA and VFRE bits.
    r.regs
        .insert(regs::rah(regs::Rar::new(5).unwrap()), 0x8000_1234);
    r.regs.insert(regs::UTA + 8, 0xffff);
    r.regs.insert(regs::VFRE, 0xff);
    let mut nic = Nic::new();
    nic.reset(&mut r);
    assert_ne!(r.get(regs::CTRL) & regs::CTRL_RST, 0);
    nic.init(&mut r, &cfg()).unwrap();
    assert!(nic.ready());
    assert_eq!(r.get(regs::MRQC), regs::MRQC_ENABLE_VMDQ);
    let vt = r.get(regs::VT_CTL);
    assert_eq!(
        vt & regs::VT_CTL_DEFAULT_POOL_MASK,
        0,
        "default pool is not the host's"
    );
    assert_eq!(vt & regs::VT_CTL_DISABLE_DEF_POOL, 0);
    assert_eq!(r.get(regs::VFRE), 0);
    assert_eq!(r.get(regs::VFTE), 0);
    assert_eq!(r.get(regs::DTXSWC), regs::DTXSWC_VMDQ_LOOPBACK_EN);
    assert_eq!(r.get(regs::RLPML), 9004);
    let rctl = r.get(regs::RCTL);
    for b in [
        regs::RCTL_EN,
        regs::RCTL_SECRC,
        regs::RCTL_LPE,
        regs::RCTL_BAM,
    ] {
        assert_ne!(rctl & b, 0);
    }
    assert_eq!(rctl & (regs::RCTL_UPE | regs::RCTL_MPE | regs::RCTL_VFE), 0);
    assert_ne!(r.get(regs::TCTL) & regs::TCTL_EN, 0);
    assert_ne!(r.get(regs::GPIE) & regs::GPIE_MSIX_MODE, 0);
    let rar0 = regs::Rar::new(0).unwrap();
    assert_eq!(r.get(regs::ral(rar0)), 0xaa00_5452);
    assert_eq!(
        r.get(regs::rah(rar0)),
        regs::RAH_AV | (1 << regs::RAH_POOL_SHIFT)
    );
    for n in 1..regs::NUM_RAR {
        assert_eq!(
            r.get(regs::rah(regs::Rar::new(n).unwrap())),
            0,
            "RAR {n} left valid"
        );
    }
    for i in 0..regs::HASH_TABLE_WORDS {
        assert_eq!(r.get(regs::UTA + 4 * i), 0);
    }
    for n in 0..16 {
        assert_eq!(r.get(regs::rx::rxdctl(q(n))) & regs::XDCTL_QUEUE_ENABLE, 0);
        assert_eq!(r.get(regs::tx::txdctl(q(n))) & regs::XDCTL_QUEUE_ENABLE, 0);
    }
    assert_eq!(nic.rx_enabled(), 0);
    assert_eq!(nic.tx_enabled(), 0);
}

#[test]
fn init_waits_for_the_reset() {
    let mut r = MockRegs {
        reset_reads: 3,
        ..MockRegs::default()
    };
    let mut nic = Nic::new();
    nic.reset(&mut r);
    for _ in 0..3 {
        assert_eq!(nic.init(&mut r, &cfg()), Err(NicError::ResetPending));
        assert!(!nic.ready());
    }
    assert_eq!(nic.init(&mut r, &cfg()), Ok(()));
    // Nothing works before init.
    let mut nic = Nic::new();
    assert_eq!(
        nic.enable_rx(&mut r, p(1), ring(0x1000), &vm(2048, 1514)),
        Err(NicError::NotReady)
    );
    assert_eq!(nic.set_pool_mac(&mut r, p(1), M1), Err(NicError::NotReady));
}

#[test]
fn init_rejects_bad_config() {
    let mut r = MockRegs::default();
    let mut nic = Nic::new();
    for (mac, max) in [
        ([0u8; 6], 1514),
        ([0x01, 0, 0x5e, 0, 0, 1], 1514),
        ([0xff; 6], 1514),
        (HOST, 63),
        (HOST, FRAME_LIMIT + 1),
    ] {
        let c = NicConfig {
            host_mac: mac,
            max_frame: max,
            loopback: false,
        };
        assert!(nic.init(&mut r, &c).is_err(), "{mac:?} {max}");
    }
}

#[test]
fn a_queue_that_does_not_stop_fails_init() {
    let mut r = MockRegs::default();
    let off = regs::tx::txdctl(q(6));
    r.regs.insert(off, regs::XDCTL_QUEUE_ENABLE);
    r.sticky.insert(off, regs::XDCTL_QUEUE_ENABLE);
    let mut nic = Nic::new();
    assert_eq!(nic.init(&mut r, &cfg()), Err(NicError::TxStuck(p(6))));
    assert!(!nic.ready());
}

#[test]
fn enable_rx_programs_the_pool_queue() {
    let (mut nic, mut r) = ready();
    let base = 0x1_2345_6780;
    nic.enable_rx(&mut r, p(5), ring(base), &vm(2048, 1514))
        .unwrap();
    let q5 = q(5);
    assert_eq!(regs::rx::rdbal(q5), 0xc140);
    assert_eq!(r.get(regs::rx::rdbal(q5)), 0x2345_6780);
    assert_eq!(r.get(regs::rx::rdbah(q5)), 1);
    assert_eq!(r.get(regs::rx::rdlen(q5)), 256 * 16);
    assert_eq!(r.get(regs::rx::rdh(q5)), 0);
    assert_eq!(r.get(regs::rx::rdt(q5)), 0);
    assert_eq!(
        r.get(regs::rx::srrctl(q5)),
        2 | regs::SRRCTL_DESCTYPE_ADV_ONEBUF | regs::SRRCTL_DROP_EN,
        "VM queues always drop when empty"
    );
    assert_eq!(
        r.get(regs::vmolr(p(5))),
        regs::VMOLR_STRCRC | regs::VMOLR_AUPE | regs::VMOLR_LPE | regs::VMOLR_BAM | 1518
    );
    assert_ne!(r.get(regs::rx::rxdctl(q5)) & regs::XDCTL_QUEUE_ENABLE, 0);
    assert_eq!(r.get(regs::VFRE), 1 << 5);
    // The pool receives only once its queue runs.
    let en = r.writes_to(regs::rx::rxdctl(q5));
    let last = *en.last().unwrap();
    assert!(r.pos(Op::W(regs::rx::rxdctl(q5), last)) < r.pos(Op::W(regs::VFRE, 1 << 5)));
    assert_eq!(nic.rx_enabled(), 1 << 5);
    assert_eq!(
        nic.enable_rx(&mut r, p(5), ring(base), &vm(2048, 1514)),
        Err(NicError::QueueBusy)
    );
}

#[test]
fn the_host_queue_drops_only_if_asked() {
    let (mut nic, mut r) = ready();
    let mut c = vm(4096, 4096);
    c.multicast = true;
    nic.enable_rx(&mut r, Pool::HOST, ring(0x8000), &c).unwrap();
    assert_eq!(
        r.get(regs::rx::srrctl(q(0))),
        4 | regs::SRRCTL_DESCTYPE_ADV_ONEBUF
    );
    assert_ne!(r.get(regs::vmolr(Pool::HOST)) & regs::VMOLR_ROMPE, 0);
    nic.disable_rx(&mut r, Pool::HOST).unwrap();
    c.drop_when_empty = true;
    nic.enable_rx(&mut r, Pool::HOST, ring(0x8000), &c).unwrap();
    assert_ne!(r.get(regs::rx::srrctl(q(0))) & regs::SRRCTL_DROP_EN, 0);
}

#[test]
fn enable_rx_refuses_what_could_overrun_a_buffer() {
    let (mut nic, mut r) = ready();
    let bad_rings = [
        RingConfig { base: 0, size: 256 },
        RingConfig {
            base: 0x1040,
            size: 256,
        },
        RingConfig {
            base: 0x1000,
            size: 12,
        },
        RingConfig {
            base: 0x1000,
            size: 4104,
        },
        RingConfig {
            base: 0x1000,
            size: 0,
        },
        RingConfig {
            base: u64::MAX - 127,
            size: 8,
        },
    ];
    for rc in bad_rings {
        assert_eq!(
            nic.enable_rx(&mut r, p(1), rc, &vm(2048, 1514)),
            Err(NicError::BadRing),
            "{rc:?}"
        );
    }
    for b in [0, 1000, 1536, 32768] {
        assert_eq!(
            nic.enable_rx(&mut r, p(1), ring(0x1000), &vm(b, 600)),
            Err(NicError::BadBufLen),
            "{b}"
        );
    }
    for (b, m) in [(1024, 1025), (2048, 1514 * 2), (2048, 63), (16384, 9001)] {
        assert_eq!(
            nic.enable_rx(&mut r, p(1), ring(0x1000), &vm(b, m)),
            Err(NicError::BadFrameLimit),
            "{b} {m}"
        );
    }
    assert!(
        r.log.iter().all(|o| !matches!(o, Op::W(..))),
        "a refused enable wrote registers"
    );
    assert_eq!(nic.rx_enabled(), 0);
}

#[test]
fn disable_rx_stops_receive_then_waits_for_the_queue() {
    let (mut nic, mut r) = ready();
    nic.enable_rx(&mut r, p(2), ring(0x1000), &vm(2048, 1514))
        .unwrap();
    r.log.clear();
    nic.disable_rx(&mut r, p(2)).unwrap();
    let rxdctl = regs::rx::rxdctl(q(2));
    assert_eq!(r.get(regs::VFRE), 0);
    assert_eq!(
        r.get(regs::vmolr(p(2))),
        regs::VMOLR_STRCRC,
        "broadcast still accepted"
    );
    assert_eq!(r.get(rxdctl) & regs::XDCTL_QUEUE_ENABLE, 0);
    let vfre_at = r.pos(Op::W(regs::VFRE, 0));
    let first_rxdctl_write = r
        .log
        .iter()
        .position(|o| matches!(o, Op::W(a, _) if *a == rxdctl))
        .unwrap();
    assert!(
        vfre_at < first_rxdctl_write,
        "queue stopped before the pool's receive"
    );
    assert_eq!(nic.rx_enabled(), 0);
    // Re-enable works.
    nic.enable_rx(&mut r, p(2), ring(0x1000), &vm(2048, 1514))
        .unwrap();
}

#[test]
fn disable_rx_gives_up_after_a_bounded_wait() {
    let (mut nic, mut r) = ready();
    nic.enable_rx(&mut r, p(3), ring(0x1000), &vm(2048, 1514))
        .unwrap();
    let rxdctl = regs::rx::rxdctl(q(3));
    r.sticky.insert(rxdctl, regs::XDCTL_QUEUE_ENABLE);
    r.log.clear();
    assert_eq!(nic.disable_rx(&mut r, p(3)), Err(NicError::RxStuck(p(3))));
    // One read before the write, then the poll.
    assert_eq!(r.reads_of(rxdctl), 1 + QUEUE_POLL_TRIES as usize);
    let delays = r.log.iter().filter(|o| **o == Op::Delay).count();
    assert_eq!(delays, QUEUE_POLL_TRIES as usize - 1);
    assert_eq!(r.get(regs::VFRE) & (1 << 3), 0, "pool still receives");
    // A stuck queue is never reused until the NIC is reset.
    assert_eq!(nic.rx_enabled(), 1 << 3);
    assert_eq!(
        nic.enable_rx(&mut r, p(3), ring(0x1000), &vm(2048, 1514)),
        Err(NicError::QueueBusy)
    );
    r.sticky.clear();
    nic.reset(&mut r);
    nic.init(&mut r, &cfg()).unwrap();
    nic.enable_rx(&mut r, p(3), ring(0x1000), &vm(2048, 1514))
        .unwrap();
}

#[test]
fn transmit_enable_and_disable() {
    let (mut nic, mut r) = ready();
    nic.enable_tx(&mut r, p(4), ring(0x2000)).unwrap();
    let q4 = q(4);
    assert_eq!(regs::tx::tdbal(q4), 0xe100);
    assert_eq!(r.get(regs::tx::tdbal(q4)), 0x2000);
    assert_eq!(r.get(regs::tx::tdlen(q4)), 4096);
    assert_eq!(r.get(regs::VFTE), 1 << 4);
    assert_eq!(r.get(regs::DTXSWC) & regs::DTXSWC_MAC_SPOOF_MASK, 1 << 4);
    assert_eq!(
        nic.enable_tx(&mut r, p(4), ring(0x2000)),
        Err(NicError::QueueBusy)
    );
    nic.disable_tx(&mut r, p(4)).unwrap();
    assert_eq!(r.get(regs::VFTE), 0);
    assert_eq!(r.get(regs::DTXSWC) & regs::DTXSWC_MAC_SPOOF_MASK, 0);
    assert_eq!(r.get(regs::tx::txdctl(q4)) & regs::XDCTL_QUEUE_ENABLE, 0);

    nic.enable_tx(&mut r, p(4), ring(0x2000)).unwrap();
    r.sticky
        .insert(regs::tx::txdctl(q4), regs::XDCTL_QUEUE_ENABLE);
    assert_eq!(nic.disable_tx(&mut r, p(4)), Err(NicError::TxStuck(p(4))));
    assert_eq!(nic.tx_enabled(), 1 << 4);
}

#[test]
fn disable_pool_tries_every_step() {
    let (mut nic, mut r) = ready();
    nic.enable_rx(&mut r, p(1), ring(0x1000), &vm(2048, 1514))
        .unwrap();
    nic.enable_tx(&mut r, p(1), ring(0x2000)).unwrap();
    nic.set_pool_mac(&mut r, p(1), M1).unwrap();
    r.sticky
        .insert(regs::rx::rxdctl(q(1)), regs::XDCTL_QUEUE_ENABLE);
    assert_eq!(nic.disable_pool(&mut r, p(1)), Err(NicError::RxStuck(p(1))));
    assert_eq!(
        r.get(regs::rah(p(1).rar())) & regs::RAH_AV,
        0,
        "MAC still steered"
    );
    assert_eq!(
        r.get(regs::VFTE),
        0,
        "transmit not stopped after the receive failure"
    );
    assert_eq!(nic.tx_enabled(), 0);
}

#[test]
fn pool_macs_are_exclusive() {
    let (mut nic, mut r) = ready();
    nic.set_pool_mac(&mut r, p(1), M1).unwrap();
    let e = p(1).rar();
    assert_eq!(r.get(regs::ral(e)), 0xaa00_5452);
    assert_eq!(
        r.get(regs::rah(e)),
        0x0100 | regs::RAH_AV | (2 << regs::RAH_POOL_SHIFT)
    );
    // Invalidated before the low half changes.
    let w = r.writes_to(regs::rah(e));
    assert_eq!(w[0], 0);
    assert_eq!(nic.set_pool_mac(&mut r, p(2), M1), Err(NicError::MacInUse));
    assert_eq!(
        nic.set_pool_mac(&mut r, p(2), HOST),
        Err(NicError::MacInUse)
    );
    assert_eq!(
        nic.set_pool_mac(&mut r, p(1), M1),
        Ok(()),
        "same pool, same MAC"
    );
    assert_eq!(
        nic.set_pool_mac(&mut r, p(2), [0x33, 0x33, 0, 0, 0, 1]),
        Err(NicError::BadMac)
    );
    nic.clear_pool_mac(&mut r, p(1));
    assert_eq!(r.get(regs::rah(e)), 0);
    assert_eq!(nic.set_pool_mac(&mut r, p(2), M1), Ok(()));
    assert_eq!(nic.set_pool_mac(&mut r, p(1), M2), Ok(()));
}

#[test]
fn vectors_and_multicast_hash() {
    let (mut nic, mut r) = ready();
    nic.map_vectors(&mut r, p(1), Some(3), Some(4)).unwrap();
    assert_eq!(r.get(regs::IVAR0 + 4), 0x8483);
    nic.map_vectors(&mut r, p(1), None, Some(5)).unwrap();
    assert_eq!(r.get(regs::IVAR0 + 4), 0x8500);
    assert_eq!(
        nic.map_vectors(&mut r, p(1), Some(10), None),
        Err(NicError::BadVector)
    );
    nic.map_misc_vector(&mut r, 9).unwrap();
    assert_eq!(r.get(regs::IVAR_MISC), 0x8900);
    nic.enable_vectors(&mut r, 0xffff_ffff);
    assert_eq!(r.get(regs::EIMS), 0x3ff);
    nic.set_interval(&mut r, 2, 250).unwrap();
    assert_eq!(
        r.get(regs::eitr(2).unwrap()),
        (250 << 2) | regs::EITR_CNT_IGNR
    );
    assert_eq!(nic.set_interval(&mut r, 10, 1), Err(NicError::BadVector));
    // QEMU's igb_receive_assign with RCTL.MO = 0: ((d[5] << 8 | d[4]) >> 4) & 0xfff.
    assert_eq!(mta_bit(&[0x01, 0, 0x5e, 0, 0, 1]), (0, 16));
    assert_eq!(mta_bit(&[0x33, 0x33, 0, 0, 0xf0, 0xff]), (0x7f, 31));
    nic.add_mta(&mut r, &[0x01, 0, 0x5e, 0, 0, 1]);
    assert_eq!(r.get(regs::MTA), 1 << 16);
}

// ---- rings ---------------------------------------------------------------------

/// Descriptor memory as an array; the test plays the NIC by writing
/// write-backs into it.
struct Mem {
    d: Vec<RawDesc>,
    fences: usize,
}

impl Mem {
    fn new(n: usize) -> Self {
        Self {
            d: vec![[0; 16]; n],
            fences: 0,
        }
    }
    fn wb(&mut self, i: usize, status: u32, len: u16) {
        self.d[i] = RxWriteback {
            status_error: status,
            length: len,
            ..RxWriteback::default()
        }
        .to_bytes();
    }
}

impl DescMem for Mem {
    fn read(&mut self, i: u16) -> RawDesc {
        self.d[usize::from(i)]
    }
    fn write(&mut self, i: u16, d: &RawDesc) {
        self.d[usize::from(i)] = *d;
    }
    fn fence(&mut self, _k: Fence) {
        self.fences += 1;
    }
}

const DONE: u32 = RXD_STAT_DD | RXD_STAT_EOP;

#[test]
fn ring_sizes() {
    let mut r: RxRing<64> = RxRing::new();
    for s in [0, 12, 72, 4104] {
        assert_eq!(r.reset(s, 2048), Err(RingError::BadSize), "{s}");
    }
    assert_eq!(r.reset(64, 0), Err(RingError::BadBuffer));
    assert_eq!(r.reset(64, 2048), Ok(()));
    assert_eq!(r.free(), 63);
    let mut t: TxRing<16> = TxRing::new();
    assert_eq!(t.reset(32), Err(RingError::BadSize));
    assert_eq!(t.reset(8), Ok(()));
    // Unconfigured rings do nothing.
    let mut u: RxRing<8> = RxRing::default();
    let mut m = Mem::new(8);
    assert_eq!(u.post(&mut m, 0x1000, 4096, 0), Err(RingError::Full));
    assert_eq!(u.reap(&mut m), Ok(None));
}

#[test]
fn rx_post_and_reap() {
    let mut r: RxRing<8> = RxRing::new();
    r.reset(8, 2048).unwrap();
    let mut m = Mem::new(8);
    for k in 0..3u64 {
        r.post(&mut m, 0x10_000 + k * 0x1000 + 12, 4084, 100 + k)
            .unwrap();
    }
    assert_eq!(r.tail(), 3);
    assert_eq!(r.posted(), 3);
    assert_eq!(m.d[1], rx_read(0x11_00c));
    assert_eq!(r.reap(&mut m), Ok(None));
    m.wb(0, DONE | RXD_STAT_TCPCS, 60);
    m.wb(1, DONE, 2048);
    let d = r.reap(&mut m).unwrap().unwrap();
    assert_eq!((d.cookie, d.addr, d.len), (100, 0x10_00c, 60));
    assert!(d.wb.l4_csum_ok());
    assert_eq!(m.fences, 1, "no read barrier between DD and the write-back");
    let d = r.reap(&mut m).unwrap().unwrap();
    assert_eq!((d.cookie, d.len), (101, 2048));
    assert_eq!(r.reap(&mut m), Ok(None));
    assert_eq!(r.head(), 2);
    assert_eq!(r.posted(), 1);
}

#[test]
fn rx_ring_keeps_one_descriptor_free() {
    let mut r: RxRing<8> = RxRing::new();
    r.reset(8, 1024).unwrap();
    let mut m = Mem::new(8);
    for k in 0..7 {
        r.post(&mut m, 0x1000 * (k + 1), 1024, k).unwrap();
    }
    assert_eq!(r.post(&mut m, 0x9000, 1024, 7), Err(RingError::Full));
    assert_eq!(r.tail(), 7);
    m.wb(0, DONE, 100);
    assert!(r.reap(&mut m).unwrap().is_some());
    r.post(&mut m, 0x9000, 1024, 7).unwrap();
    assert_eq!(r.tail(), 0, "tail wraps");
}

#[test]
fn rx_refuses_buffers_the_nic_could_overrun() {
    let mut r: RxRing<8> = RxRing::new();
    r.reset(8, 2048).unwrap();
    let mut m = Mem::new(8);
    assert_eq!(r.post(&mut m, 0x1000, 2047, 0), Err(RingError::BadBuffer));
    assert_eq!(r.post(&mut m, 0, 4096, 0), Err(RingError::BadBuffer));
    assert_eq!(
        r.post(&mut m, u64::MAX - 100, 2048, 0),
        Err(RingError::BadBuffer)
    );
    assert_eq!(r.posted(), 0);
    assert!(m.d.iter().all(|d| *d == [0; 16]));
}

#[test]
fn rx_write_backs_that_do_not_fit_are_faults() {
    let mut r: RxRing<8> = RxRing::new();
    r.reset(8, 1024).unwrap();
    let mut m = Mem::new(8);
    for k in 0..7 {
        r.post(&mut m, 0x1000 * (k + 1), 1024, k).unwrap();
    }
    m.wb(0, DONE, 1025);
    m.wb(1, DONE, 0);
    m.wb(2, RXD_STAT_DD, 1024);
    m.wb(3, RXD_STAT_DD, 1024);
    m.wb(4, DONE, 100);
    m.wb(5, DONE | RXDEXT_ERR_CE, 100);
    m.wb(6, DONE | RXDEXT_ERR_TCPE | RXD_STAT_TCPCS, 100);
    let f = |cookie, kind| Err(RxFault { cookie, kind });
    assert_eq!(r.reap(&mut m), f(0, RxFaultKind::BadLength));
    assert_eq!(r.reap(&mut m), f(1, RxFaultKind::BadLength));
    assert_eq!(r.reap(&mut m), f(2, RxFaultKind::SpansBuffers));
    assert_eq!(r.reap(&mut m), f(3, RxFaultKind::Continuation));
    assert_eq!(
        r.reap(&mut m),
        f(4, RxFaultKind::Continuation),
        "end of the spanning frame"
    );
    assert_eq!(r.reap(&mut m), f(5, RxFaultKind::FrameError));
    let d = r.reap(&mut m).unwrap().unwrap();
    assert!(!d.wb.l4_csum_ok(), "bad checksum reported as good");
    assert_eq!(r.posted(), 0);
    assert_eq!(r.reap(&mut m), Ok(None), "read past the posted buffers");
}

#[test]
fn a_frame_limit_admits_shorter_buffers_and_refuses_longer_write_backs() {
    // A pool that drops frames over 1518 bytes may be given a guest's
    // 1518-byte buffer on a 2048-byte queue; nothing longer than a slot's
    // own buffer is ever delivered from it.
    let mut r: RxRing<8> = RxRing::new();
    r.reset(8, 2048).unwrap();
    let mut m = Mem::new(8);
    assert_eq!(r.post(&mut m, 0x1000, 1518, 0), Err(RingError::BadBuffer));
    assert_eq!(r.limit(0), Err(RingError::BadBuffer));
    r.limit(1518).unwrap();
    assert_eq!(r.post(&mut m, 0x1000, 1517, 0), Err(RingError::BadBuffer));
    r.post(&mut m, 0x1000, 1518, 1).unwrap();
    r.post(&mut m, 0x2000, 2048, 2).unwrap();
    r.post(&mut m, 0x3000, 1518, 3).unwrap();
    m.wb(0, DONE, 1518);
    m.wb(1, DONE, 2000);
    m.wb(2, DONE, 1519);
    let d = r.reap(&mut m).unwrap().unwrap();
    assert_eq!((d.cookie, d.len), (1, 1518));
    let d = r.reap(&mut m).unwrap().unwrap();
    assert_eq!(
        (d.cookie, d.len),
        (2, 2000),
        "a full buffer takes its length"
    );
    assert_eq!(
        r.reap(&mut m),
        Err(RxFault {
            cookie: 3,
            kind: RxFaultKind::BadLength
        }),
        "a write-back longer than the buffer posted there"
    );
    // A reset forgets the limit.
    r.reset(8, 2048).unwrap();
    assert_eq!(r.post(&mut m, 0x1000, 1518, 0), Err(RingError::BadBuffer));
}

#[test]
fn rx_drain_returns_every_posted_buffer() {
    let mut r: RxRing<8> = RxRing::new();
    r.reset(8, 1024).unwrap();
    let mut m = Mem::new(8);
    for k in 0..5 {
        r.post(&mut m, 0x1000 * (k + 1), 1024, k).unwrap();
    }
    m.wb(0, DONE, 10);
    r.reap(&mut m).unwrap();
    let mut got = Vec::new();
    r.drain(|s| got.push(s.cookie));
    assert_eq!(got, vec![1, 2, 3, 4]);
    assert_eq!(r.posted(), 0);
    assert_eq!(r.reap(&mut m), Ok(None));
    assert_eq!(r.head(), r.tail());
}

fn frame_descs(n: usize, tag: u64) -> Vec<RawDesc> {
    (0..n)
        .map(|i| {
            let mut c = ADVTXD_DTYP_DATA | ADVTXD_DCMD_DEXT | 100;
            if i + 1 == n {
                c |= ADVTXD_DCMD_EOP | ADVTXD_DCMD_RS;
            }
            tx_data(tag, c, 0)
        })
        .collect()
}

fn set_dd(m: &mut Mem, i: usize) {
    m.d[i][12] |= 1;
}

#[test]
fn tx_post_and_reap() {
    let mut t: TxRing<8> = TxRing::new();
    t.reset(8).unwrap();
    let mut m = Mem::new(8);
    t.post(&mut m, &frame_descs(3, 1), 1).unwrap();
    t.post(&mut m, &frame_descs(2, 2), 2).unwrap();
    assert_eq!(t.tail(), 5);
    assert_eq!(t.free(), 2);
    assert_eq!(t.post(&mut m, &frame_descs(3, 3), 3), Err(RingError::Full));
    assert_eq!(t.post(&mut m, &[], 3), Err(RingError::BadFrame));
    assert_eq!(t.reap(&mut m), None);
    set_dd(&mut m, 1);
    assert_eq!(
        t.reap(&mut m),
        None,
        "DD on a middle descriptor completed the frame"
    );
    set_dd(&mut m, 2);
    assert_eq!(t.reap(&mut m), Some(TxDone { cookie: 1 }));
    set_dd(&mut m, 4);
    assert_eq!(t.reap(&mut m), Some(TxDone { cookie: 2 }));
    assert_eq!(t.in_flight(), 0);
    // Wraps.
    t.post(&mut m, &frame_descs(5, 4), 4).unwrap();
    assert_eq!(t.tail(), 2);
    set_dd(&mut m, 1);
    assert_eq!(t.reap(&mut m), Some(TxDone { cookie: 4 }));
    let mut big: TxRing<8> = TxRing::new();
    big.reset(8).unwrap();
    assert_eq!(
        big.post(&mut m, &frame_descs(8, 9), 9),
        Err(RingError::BadFrame)
    );
}

#[test]
fn tx_reap_to_head_checks_the_head() {
    let mut t: TxRing<16> = TxRing::new();
    t.reset(16).unwrap();
    let mut m = Mem::new(16);
    t.post(&mut m, &frame_descs(3, 1), 1).unwrap(); // 0..3
    t.post(&mut m, &frame_descs(4, 2), 2).unwrap(); // 3..7
    let mut got = Vec::new();
    assert_eq!(
        t.reap_to_head(16, |d| got.push(d.cookie)),
        Err(RingError::BadHead)
    );
    assert_eq!(
        t.reap_to_head(1 << 20, |d| got.push(d.cookie)),
        Err(RingError::BadHead)
    );
    assert_eq!(
        t.reap_to_head(9, |d| got.push(d.cookie)),
        Err(RingError::BadHead)
    );
    assert!(got.is_empty());
    assert_eq!(t.in_flight(), 7);
    t.reap_to_head(5, |d| got.push(d.cookie)).unwrap();
    assert_eq!(got, vec![1], "a frame the head is inside of was completed");
    t.reap_to_head(7, |d| got.push(d.cookie)).unwrap();
    assert_eq!(got, vec![1, 2]);
    assert_eq!(t.in_flight(), 0);
    assert_eq!(
        t.reap_to_head(3, |d| got.push(d.cookie)),
        Err(RingError::BadHead)
    );
    t.post(&mut m, &frame_descs(2, 3), 3).unwrap();
    let mut n = 0;
    t.drain(|_| n += 1);
    assert_eq!(n, 1);
    assert_eq!(t.in_flight(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the NIC writes into the ring, reaping never panics, never
    /// hands out a buffer twice or one not posted, and never reports a
    /// length over the buffer size.
    #[test]
    fn hostile_rx_write_backs(
        ops in prop::collection::vec((0u8..3, any::<[u8; 16]>(), 0u16..16), 1..200),
    ) {
        let mut r: RxRing<16> = RxRing::new();
        r.reset(16, 1024).unwrap();
        let mut m = Mem::new(16);
        let mut next = 0u64;
        let mut out: HashSet<u64> = HashSet::new();
        for (op, bytes, at) in ops {
            match op {
                0 => {
                    if r.post(&mut m, 0x1000 + next * 0x1000, 2048, next).is_ok() {
                        out.insert(next);
                    }
                    next += 1;
                }
                1 => m.d[usize::from(at)] = bytes,
                _ => {
                    let got = match r.reap(&mut m) {
                        Ok(Some(d)) => {
                            prop_assert!(d.len >= 1 && d.len <= 1024);
                            prop_assert_eq!(d.addr, 0x1000 + d.cookie * 0x1000);
                            Some(d.cookie)
                        }
                        Ok(None) => None,
                        Err(f) => Some(f.cookie),
                    };
                    if let Some(c) = got {
                        prop_assert!(out.remove(&c), "cookie {} twice or never posted", c);
                    }
                }
            }
            prop_assert!(r.posted() <= 15);
            prop_assert_eq!(usize::from(r.posted()), out.len());
        }
    }

    /// Any header, any head bytes, any segments: no panic, and what is built
    /// is well-formed.
    #[test]
    fn build_tx_never_builds_garbage(
        flags in prop_oneof![Just(0u8), Just(F_NEEDS_CSUM), any::<u8>()],
        gso in prop_oneof![Just(0u8), Just(GSO_TCPV4), Just(GSO_TCPV6), any::<u8>()],
        gso_size in any::<u16>(),
        csum_start in prop_oneof![Just(34u16), Just(54), Just(38), any::<u16>()],
        csum_offset in prop_oneof![Just(16u16), Just(6), any::<u16>()],
        mut head in prop::collection::vec(any::<u8>(), 0..128),
        v4 in any::<bool>(),
        lens in prop::collection::vec(prop_oneof![1u32..2000, 0u32..70000], 0..40),
        out_len in 0usize..40,
    ) {
        if head.len() > 14 {
            let (a, b) = if v4 { (0x08, 0x00) } else { (0x86, 0xdd) };
            head[12] = a;
            head[13] = b;
        }
        let h = NetHdr { flags, gso_type: gso, gso_size, csum_start, csum_offset, ..NetHdr::default() };
        let segs: Vec<TxSeg> = lens.iter().enumerate()
            .map(|(i, l)| TxSeg { addr: 0x10_0000 * (i as u64 + 1), len: *l })
            .collect();
        let mut out = vec![[0u8; 16]; out_len];
        if let Ok(b) = build_tx(&h, &mut head, &segs, &mut out) {
            prop_assert!(b.descs <= out.len());
            let data: Vec<TxDescFields> = out[..b.descs].iter().map(TxDescFields::parse)
                .filter(|f| !f.is_context()).collect();
            prop_assert_eq!(data.len(), segs.len());
            let sum: u32 = data.iter().map(|f| f.cmd_type_len & 0xffff).sum();
            prop_assert_eq!(sum, b.frame_len);
            for (i, f) in data.iter().enumerate() {
                let last = i + 1 == data.len();
                prop_assert_eq!(f.cmd_type_len & ADVTXD_DCMD_EOP != 0, last);
                prop_assert!(f.cmd_type_len & ADVTXD_DCMD_DEXT != 0);
            }
            if b.offload == TxOffload::None {
                prop_assert_eq!(b.descs, segs.len());
                prop_assert!(b.frame_len as usize <= TX_FRAME_MAX);
            } else {
                prop_assert!(TxDescFields::parse(&out[0]).is_context());
            }
        }
    }
}

// ---- transmit descriptors -------------------------------------------------------

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Ethernet + IPv4 (IHL 5) + TCP (20 bytes) headers; `l4len` TCP bytes.
fn tcp4_head(l4len: usize, vlan: bool) -> Vec<u8> {
    let mut f = vec![0x52, 0x54, 0, 0, 0, 2, 0x52, 0x54, 0, 0, 0, 1];
    if vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let tot = (20 + l4len) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&tot.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0xab, 0xcd, 10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(&[
        0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff,
    ]);
    // Pseudo-header sum over the whole TCP length, as a guest leaves it.
    let mut acc = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + l4len as u32;
    acc = u32::from(fold(acc));
    f.extend_from_slice(&(acc as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f
}

fn tcp6_head() -> Vec<u8> {
    let mut f = vec![0x52, 0x54, 0, 0, 0, 2, 0x52, 0x54, 0, 0, 0, 1, 0x86, 0xdd];
    f.extend_from_slice(&[0x60, 0, 0, 0, 0x10, 0x00, 6, 64]);
    f.extend_from_slice(&[0xfd; 32]);
    f.extend_from_slice(&[0; 12]);
    f.push(0x50);
    f.extend_from_slice(&[0; 7]);
    f
}

fn udp4_head() -> Vec<u8> {
    let mut f = tcp4_head(8, false);
    f[23] = 17;
    f.truncate(42);
    f
}

fn seg(addr: u64, len: u32) -> TxSeg {
    TxSeg { addr, len }
}

fn csum_hdr(start: u16, off: u16) -> NetHdr {
    NetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: start,
        csum_offset: off,
        ..NetHdr::default()
    }
}

fn tso_hdr(gso: u8, start: u16, mss: u16) -> NetHdr {
    NetHdr {
        gso_type: gso,
        gso_size: mss,
        hdr_len: start + 20,
        ..csum_hdr(start, 16)
    }
}

#[test]
fn tx_plain_frame() {
    let mut head = vec![0u8; 60];
    let mut out = [[0u8; 16]; 4];
    let b = build_tx(
        &NetHdr::default(),
        &mut head,
        &[seg(0x1000, 60), seg(0x2000, 940)],
        &mut out,
    )
    .unwrap();
    assert_eq!(
        (b.descs, b.frame_len, b.offload),
        (2, 1000, TxOffload::None)
    );
    let d0 = TxDescFields::parse(&out[0]);
    let d1 = TxDescFields::parse(&out[1]);
    let base = ADVTXD_DTYP_DATA | ADVTXD_DCMD_DEXT | ADVTXD_DCMD_IFCS;
    assert_eq!(d0.addr, 0x1000);
    assert_eq!(d0.cmd_type_len, base | 60);
    assert_eq!(d0.olinfo_status, 1000 << ADVTXD_PAYLEN_SHIFT);
    assert_eq!(d1.addr, 0x2000);
    assert_eq!(
        d1.cmd_type_len,
        base | ADVTXD_DCMD_EOP | ADVTXD_DCMD_RS | 940
    );
    assert_eq!(d1.olinfo_status, 0);
    assert_eq!(out[2], [0; 16], "wrote past the frame's descriptors");
    assert!(
        head.iter().all(|b| *b == 0),
        "plain frame's headers changed"
    );
}

#[test]
fn tx_checksum_offload_ipv4_tcp_and_vlan() {
    for vlan in [false, true] {
        let mut head = tcp4_head(20 + 1000, vlan);
        let orig = head.clone();
        let l2 = if vlan { 18 } else { 14 };
        let mut out = [[0u8; 16]; 4];
        let b = build_tx(
            &csum_hdr(l2 + 20, 16),
            &mut head,
            &[seg(0x1000, orig.len() as u32), seg(0x2000, 1000)],
            &mut out,
        )
        .unwrap();
        assert_eq!(b.offload, TxOffload::Csum);
        assert_eq!(b.descs, 3);
        let c = TxDescFields::parse(&out[0]);
        assert!(c.is_context());
        assert_eq!(c.addr & 0xffff_ffff, 20 | (u64::from(l2) << 9));
        assert_eq!(
            c.cmd_type_len,
            ADVTXD_DTYP_CTXT | ADVTXD_DCMD_DEXT | ADVTXD_TUCMD_IPV4 | ADVTXD_TUCMD_L4T_TCP
        );
        assert_eq!(c.olinfo_status, 0);
        let d = TxDescFields::parse(&out[1]);
        assert_eq!(d.olinfo_status, (b.frame_len << 14) | ADVTXD_POPTS_TXSM);
        assert_eq!(d.cmd_type_len & ADVTXD_DCMD_TSE, 0);
        assert_eq!(head, orig, "checksum offload changed the headers");
    }
}

#[test]
fn tx_checksum_offload_ipv6_udp() {
    let mut head = udp4_head();
    let mut out = [[0u8; 16]; 3];
    // UDP over IPv4.
    let b = build_tx(
        &csum_hdr(34, 6),
        &mut head,
        &[seg(0x1000, 42), seg(0x2000, 100)],
        &mut out,
    )
    .unwrap();
    let c = TxDescFields::parse(&out[0]);
    assert_eq!(
        c.cmd_type_len & 0xffff,
        ADVTXD_TUCMD_IPV4 | ADVTXD_TUCMD_L4T_UDP
    );
    assert_eq!(b.offload, TxOffload::Csum);
    // TCP over IPv6.
    let mut head = tcp6_head();
    let b = build_tx(&csum_hdr(54, 16), &mut head, &[seg(0x1000, 74)], &mut out).unwrap();
    let c = TxDescFields::parse(&out[0]);
    assert_eq!(c.addr & 0xffff, 40 | (14 << 9));
    assert_eq!(c.cmd_type_len & 0xffff, ADVTXD_TUCMD_L4T_TCP);
    assert_eq!(b.descs, 2);
}

#[test]
fn tso_ipv4_prepares_headers_like_linux_igb() {
    let payload = 4000usize;
    let mut head = tcp4_head(20 + payload, false);
    let mut out = [[0u8; 16]; 8];
    let segs = [seg(0x1000, 54), seg(0x2000, 2000), seg(0x3000, 2000)];
    let b = build_tx(&tso_hdr(GSO_TCPV4, 34, 1448), &mut head, &segs, &mut out).unwrap();
    assert_eq!(b.offload, TxOffload::Tso);
    assert_eq!(b.frame_len, 54 + 4000);
    let c = TxDescFields::parse(&out[0]);
    assert_eq!(c.olinfo_status, (1448 << 16) | (20 << 8));
    let d = TxDescFields::parse(&out[1]);
    assert_ne!(d.cmd_type_len & ADVTXD_DCMD_TSE, 0);
    assert_eq!(
        d.olinfo_status,
        ((payload as u32) << 14) | ADVTXD_POPTS_TXSM | ADVTXD_POPTS_IXSM
    );
    // Total length and header checksum zeroed, the TCP length out of the seed.
    assert_eq!(&head[16..18], &[0, 0]);
    assert_eq!(&head[24..26], &[0, 0]);
    let seed0 = fold(0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6);
    assert_eq!(u16::from_be_bytes([head[50], head[51]]), seed0);
}

#[test]
fn tso_ipv6() {
    let mut head = tcp6_head();
    let mut out = [[0u8; 16]; 3];
    let b = build_tx(
        &tso_hdr(GSO_TCPV6, 54, 1000),
        &mut head,
        &[seg(0x1000, 74), seg(0x2000, 3000)],
        &mut out,
    )
    .unwrap();
    assert_eq!(b.offload, TxOffload::Tso);
    assert_eq!(&head[18..20], &[0, 0], "IPv6 payload length not zeroed");
    let d = TxDescFields::parse(&out[1]);
    assert_eq!(d.olinfo_status, (3000 << 14) | ADVTXD_POPTS_TXSM);
}

/// A header, the head bytes, the segments, the output size, the error.
type Refusal = (NetHdr, Vec<u8>, Vec<TxSeg>, usize, TxError);

#[test]
fn tx_refuses_what_the_hardware_cannot_do() {
    let h4 = csum_hdr(34, 16);
    let t4 = tso_hdr(GSO_TCPV4, 34, 1448);
    let one = |len| vec![seg(0x1000, len)];
    let cases: Vec<Refusal> = vec![
        (
            NetHdr::default(),
            vec![0; 60],
            vec![],
            4,
            TxError::NoSegments,
        ),
        (
            NetHdr::default(),
            vec![0; 60],
            vec![seg(0x1000, 1); 33],
            40,
            TxError::TooManySegments,
        ),
        (
            NetHdr::default(),
            vec![0; 60],
            vec![seg(0x1000, 60), seg(0x2000, 0)],
            4,
            TxError::ZeroLength,
        ),
        (
            NetHdr::default(),
            vec![0; 60],
            one(65536),
            4,
            TxError::SegmentTooLong,
        ),
        (
            NetHdr::default(),
            vec![0; 60],
            vec![seg(u64::MAX - 10, 60)],
            4,
            TxError::AddressOverflow,
        ),
        (
            NetHdr::default(),
            vec![0; 60],
            one(13),
            4,
            TxError::FrameTooShort,
        ),
        (
            NetHdr::default(),
            vec![0; 13],
            one(60),
            4,
            TxError::HeadersNotInHead,
        ),
        (
            NetHdr::default(),
            vec![0; 60],
            vec![seg(0x1000, 10), seg(0x2000, 50)],
            4,
            TxError::HeadersNotInHead,
        ),
        (
            NetHdr::default(),
            vec![0; 60],
            vec![seg(0x1000, 9000), seg(0x9000, 1000)],
            4,
            TxError::FrameTooLong,
        ),
        (
            NetHdr::default(),
            vec![0; 60],
            one(60),
            0,
            TxError::OutputTooSmall,
        ),
        (
            h4,
            tcp4_head(20, false),
            one(54),
            1,
            TxError::OutputTooSmall,
        ),
        (
            NetHdr {
                flags: 2,
                ..NetHdr::default()
            },
            vec![0; 60],
            one(60),
            4,
            TxError::BadHeader,
        ),
        (
            NetHdr { gso_type: 3, ..t4 },
            tcp4_head(1020, false),
            one(1054),
            4,
            TxError::BadHeader,
        ),
        (
            NetHdr {
                gso_type: GSO_TCPV4 | 0x80,
                ..t4
            },
            tcp4_head(1020, false),
            one(1054),
            4,
            TxError::BadHeader,
        ),
        (
            NetHdr { flags: 0, ..t4 },
            tcp4_head(1020, false),
            one(1054),
            4,
            TxError::BadHeader,
        ),
        (
            h4,
            {
                let mut f = tcp4_head(20, false);
                f[12] = 0x88;
                f[13] = 0xb5;
                f
            },
            one(54),
            4,
            TxError::NotIp,
        ),
        (
            h4,
            {
                let mut f = tcp4_head(20, false);
                f[14] = 0x46;
                f
            },
            one(54),
            4,
            TxError::BadIpHeader,
        ),
        (
            csum_hdr(13, 16),
            tcp4_head(20, false),
            one(54),
            4,
            TxError::BadIpHeader,
        ),
        (csum_hdr(600, 16), vec![0; 700], one(700), 4, TxError::NotIp),
        (
            csum_hdr(34, 10),
            tcp4_head(20, false),
            one(54),
            4,
            TxError::BadL4,
        ),
        (
            csum_hdr(34, 6),
            tcp4_head(20, false),
            one(54),
            4,
            TxError::BadL4,
        ),
        (h4, tcp4_head(20, false), one(40), 4, TxError::BadL4),
        (
            h4,
            tcp4_head(20, false)[..30].to_vec(),
            one(54),
            4,
            TxError::HeadersNotInHead,
        ),
        (
            h4,
            tcp4_head(20, false),
            vec![seg(0x1000, 20), seg(0x2000, 34)],
            4,
            TxError::HeadersNotInHead,
        ),
        (
            t4,
            tcp4_head(1020, false),
            vec![seg(0x1000, 40), seg(0x2000, 1014)],
            4,
            TxError::HeadersNotInHead,
        ),
        (
            t4,
            {
                let mut f = tcp4_head(1020, false);
                f[46] = 0x40;
                f
            },
            one(1054),
            4,
            TxError::BadTcpHeader,
        ),
        (
            t4,
            tcp4_head(20, false),
            one(54),
            4,
            TxError::BadSegmentation,
        ),
        (
            NetHdr { gso_size: 0, ..t4 },
            tcp4_head(1020, false),
            one(1054),
            4,
            TxError::BadSegmentation,
        ),
        (
            NetHdr {
                gso_size: 9700,
                ..t4
            },
            tcp4_head(1020, false),
            one(1054),
            4,
            TxError::BadSegmentation,
        ),
        (
            tso_hdr(GSO_TCPV6, 34, 1448),
            tcp4_head(1020, false),
            one(1054),
            4,
            TxError::NotIp,
        ),
        (
            NetHdr {
                csum_offset: 6,
                ..t4
            },
            {
                let mut f = tcp4_head(1020, false);
                f[23] = 17;
                f
            },
            one(1054),
            4,
            TxError::BadL4,
        ),
    ];
    for (i, (h, mut head, segs, out_len, want)) in cases.into_iter().enumerate() {
        let before = head.clone();
        let mut out = vec![[0xa5u8; 16]; out_len];
        let got = build_tx(&h, &mut head, &segs, &mut out);
        assert_eq!(got, Err(want), "case {i}");
        assert!(
            out.iter().all(|d| *d == [0xa5; 16]),
            "case {i}: wrote descriptors"
        );
        assert_eq!(head, before, "case {i}: changed the headers");
    }
}
