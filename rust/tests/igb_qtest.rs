//! The core's igb programming plan (`pvpass_core::igb`) against QEMU's
//! emulated 82576, with no guest OS: the test drives the NIC over qtest
//! through the core's `Nic`, rings and descriptor builder only, and owns the
//! NIC's wire.
//!
//! Configuration used throughout: VMDq on, SR-IOV off; pool 0 is the host's
//! (2 KiB buffers, broadcast, all multicast through the MTA), it is the
//! default pool, so unicast to an unknown MAC is delivered to the host
//! (`VT_CTL.DEF_PL = 0`, `Dis_Def_Pool` clear); VM pools get 2 KiB buffers
//! (1 KiB in the oversize test), a 1514-byte frame limit and their buffers
//! posted 12 bytes into a 4 KiB slot (room for the virtio-net header).
//!
//! Negative checks ("this frame landed nowhere") are made deterministic with
//! a sentinel: the NIC takes frames from the wire in order, so once a
//! unicast sent after the frame has landed in the host pool, the frame has
//! been dealt with; then every posted descriptor and buffer start of the pool
//! is read back.

#[path = "common/qtest.rs"]
mod qtest;

use pvpass_core::igb::desc::{build_tx, RawDesc, TxOffload, TxSeg, TX_MAX_DESCS};
use pvpass_core::igb::pools::{Nic, NicConfig, NicError, PoolRxConfig, RingConfig};
use pvpass_core::igb::regs::{self, Pool};
use pvpass_core::igb::ring::{RxDone, RxRing, TxRing};
use pvpass_core::igb::Regs;
use pvpass_core::vnet::{NetHdr, Offloads, F_NEEDS_CSUM, GSO_TCPV4};
use qtest::{Qemu, RingMem};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const NDESC: u16 = 16;
const SLOT: u64 = 0x1000;
const HDR: u64 = 12;
const CANARY: u8 = 0xee;
const HOST_MAC: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0, 0];
const MAC1: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0, 1];
const MAC2: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0, 2];
const EXT: [u8; 6] = [0x52, 0x54, 0, 0xcc, 0, 1];
const UNKNOWN: [u8; 6] = [0x52, 0x54, 0, 0xbb, 0, 9];
const BCAST: [u8; 6] = [0xff; 6];
const MCAST: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01];
const WAIT: Duration = Duration::from_secs(3);

fn pool(n: u8) -> Pool {
    Pool::new(n).expect("pool")
}

fn rx_ring_base(p: Pool) -> u64 {
    0x10_0000 + u64::from(p.index()) * 0x1000
}
fn tx_ring_base(p: Pool) -> u64 {
    0x18_0000 + u64::from(p.index()) * 0x1000
}
fn rx_slot(p: Pool, i: u16) -> u64 {
    0x20_0000 + u64::from(p.index()) * 0x10_0000 + u64::from(i) * SLOT
}
fn tx_buf(p: Pool, i: u16) -> u64 {
    0x100_0000 + u64::from(p.index()) * 0x10_0000 + u64::from(i) * 0x2_0000
}

fn vm_rx(buf_len: u32, max_frame: u16, broadcast: bool) -> PoolRxConfig {
    PoolRxConfig {
        buf_len,
        max_frame,
        broadcast,
        multicast: false,
        drop_when_empty: true,
    }
}

struct Rig {
    q: Qemu,
    nic: Nic,
    rx: Vec<RxRing<16>>,
    tx: Vec<TxRing<16>>,
    tx_next: Vec<u16>,
    /// Completions reaped but not yet consumed, per pool.
    pending: Vec<VecDeque<RxDone>>,
    tag: u32,
    started: Instant,
}

impl Rig {
    /// QEMU up, NIC reset and initialised, link up, host pool 0 receiving
    /// and transmitting.
    fn start() -> Self {
        let started = Instant::now();
        let mut q = Qemu::start(HOST_MAC);
        let id = q.pci_setup();
        assert_eq!(id, 0x10c9_8086, "PCI function is not an 82576 PF");
        let mut nic = Nic::new();
        nic.reset(&mut q);
        let cfg = NicConfig {
            host_mac: HOST_MAC,
            max_frame: 9000,
            loopback: true,
        };
        let t = Instant::now();
        loop {
            match nic.init(&mut q, &cfg) {
                Ok(()) => break,
                Err(NicError::ResetPending) if t.elapsed() < WAIT => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("init: {e:?}"),
            }
        }
        assert_eq!(
            q.read32(regs::STATUS) & regs::STATUS_IOV_MODE,
            0,
            "SR-IOV is on"
        );
        nic.start_link(&mut q).expect("PHY autonegotiation");
        let t = Instant::now();
        while !nic.link_up(&mut q) {
            assert!(t.elapsed() < Duration::from_secs(5), "link did not come up");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut rig = Self {
            q,
            nic,
            rx: (0..8).map(|_| RxRing::new()).collect(),
            tx: (0..8).map(|_| TxRing::new()).collect(),
            tx_next: vec![0; 8],
            pending: (0..8).map(|_| VecDeque::new()).collect(),
            tag: 0,
            started,
        };
        let host = PoolRxConfig {
            buf_len: 2048,
            max_frame: 2048,
            broadcast: true,
            multicast: true,
            drop_when_empty: false,
        };
        rig.add_pool(Pool::HOST, HOST_MAC, &host, NDESC - 1);
        rig.nic.set_mta_all(&mut rig.q, true);
        rig
    }

    /// A pool on the NIC: receive ring with `buffers` buffers posted,
    /// transmit ring, MAC (VM pools).
    fn add_pool(&mut self, p: Pool, mac: [u8; 6], cfg: &PoolRxConfig, buffers: u16) {
        let i = usize::from(p.index());
        self.nic
            .enable_rx(
                &mut self.q,
                p,
                RingConfig {
                    base: rx_ring_base(p),
                    size: NDESC,
                },
                cfg,
            )
            .expect("enable_rx");
        self.rx[i].reset(NDESC, cfg.buf_len).expect("rx ring");
        self.post(p, buffers);
        self.nic
            .enable_tx(
                &mut self.q,
                p,
                RingConfig {
                    base: tx_ring_base(p),
                    size: NDESC,
                },
            )
            .expect("enable_tx");
        self.tx[i].reset(NDESC).expect("tx ring");
        if !p.is_host() {
            self.nic
                .set_pool_mac(&mut self.q, p, mac)
                .expect("pool mac");
        }
    }

    /// Posts `n` buffers (each 12 bytes into a canary-filled 4 KiB slot)
    /// and writes the tail.
    fn post(&mut self, p: Pool, n: u16) {
        let i = usize::from(p.index());
        for _ in 0..n {
            let at = self.rx[i].tail();
            let slot = rx_slot(p, at);
            self.q.memset(slot, SLOT as usize, CANARY);
            let mut mem = RingMem {
                qemu: &mut self.q,
                base: rx_ring_base(p),
            };
            self.rx[i]
                .post(&mut mem, slot + HDR, (SLOT - HDR) as u32, u64::from(at))
                .expect("post rx buffer");
        }
        let tail = self.rx[i].tail();
        self.nic.write_rx_tail(&mut self.q, p, tail);
    }

    /// The next completion of the pool's ring, if any (faults fail the
    /// test).
    fn reap(&mut self, p: Pool) -> Option<RxDone> {
        let i = usize::from(p.index());
        if let Some(d) = self.pending[i].pop_front() {
            return Some(d);
        }
        let mut mem = RingMem {
            qemu: &mut self.q,
            base: rx_ring_base(p),
        };
        match self.rx[i].reap(&mut mem) {
            Ok(d) => d,
            Err(f) => panic!("pool {}: rx fault {f:?}", p.index()),
        }
    }

    /// Waits for the next frame of pool `p`.
    fn wait_rx(&mut self, p: Pool) -> RxDone {
        let t = Instant::now();
        loop {
            if let Some(d) = self.reap(p) {
                return d;
            }
            assert!(
                t.elapsed() < WAIT,
                "pool {}: no frame within {WAIT:?}\n{}",
                p.index(),
                self.q.stderr()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The frame a completion points at, after checking the 12 bytes before
    /// it and 16 after it were not touched.
    fn frame_of(&mut self, d: &RxDone) -> Vec<u8> {
        let slot = d.addr - HDR;
        assert_eq!(slot % SLOT, 0, "buffer address is not the one posted + 12");
        let raw = self.q.read_mem(slot, HDR as usize + d.len as usize + 16);
        let (pre, rest) = raw.split_at(HDR as usize);
        let (frame, post) = rest.split_at(d.len as usize);
        assert!(
            pre.iter().all(|b| *b == CANARY),
            "NIC wrote into the header room"
        );
        assert!(
            post.iter().all(|b| *b == CANARY),
            "NIC wrote past the frame"
        );
        frame.to_vec()
    }

    /// Returns once every frame injected before has been dealt with: a
    /// tagged unicast to the host lands in pool 0. Returns pool 0's other
    /// frames received meanwhile.
    fn sync(&mut self) -> Vec<Vec<u8>> {
        self.tag += 1;
        let tag = format!("sync-{}", self.tag);
        self.q.inject(&frame(HOST_MAC, 100, &tag));
        let mut other = Vec::new();
        loop {
            let d = self.wait_rx(Pool::HOST);
            let f = self.frame_of(&d);
            self.post(Pool::HOST, 1);
            if contains(&f, tag.as_bytes()) {
                return other;
            }
            other.push(f);
        }
    }

    /// Asserts the pool's posted descriptors and buffers are untouched.
    fn assert_untouched(&mut self, p: Pool, what: &str) {
        let i = usize::from(p.index());
        let ring = &self.rx[i];
        let (head, posted) = (ring.head(), ring.posted());
        for k in 0..posted {
            let at = (head + k) % NDESC;
            let d = self.q.read_mem(rx_ring_base(p) + 16 * u64::from(at), 16);
            assert_eq!(
                d[8] & 1,
                0,
                "{what}: pool {} descriptor {at} written back",
                p.index()
            );
            let b = self.q.read_mem(rx_slot(p, at), 64);
            assert!(
                b.iter().all(|x| *x == CANARY),
                "{what}: pool {} buffer {at} written",
                p.index()
            );
        }
        let rdh = self.q.read32(regs::rx::rdh(p.queue()));
        assert_eq!(rdh, u32::from(head), "{what}: pool {} RDH moved", p.index());
    }

    /// Sends one frame from pool `p`'s transmit queue, built by the core
    /// from `hdr`; the frame is split at `cut` (the first segment is the
    /// host copy of the headers). Returns the offload the core chose.
    fn send(&mut self, p: Pool, hdr: &NetHdr, frame: &[u8], cut: usize) -> TxOffload {
        let i = usize::from(p.index());
        let mut h = *hdr;
        h.check(frame, Offloads::ALL)
            .expect("virtio-net header check");
        let (head, rest) = frame.split_at(cut);
        let mut head = head.to_vec();
        let k = self.tx_next[i];
        self.tx_next[i] = (k + 1) % 8;
        let hb = tx_buf(p, k);
        let pb = hb + 0x1_0000;
        let mut segs = vec![TxSeg {
            addr: hb,
            len: head.len() as u32,
        }];
        // The rest in pieces of at most 1000 bytes.
        let mut at = 0;
        for c in rest.chunks(1000) {
            segs.push(TxSeg {
                addr: pb + at as u64,
                len: c.len() as u32,
            });
            at += c.len();
        }
        let mut out = [RawDesc::default(); TX_MAX_DESCS];
        let built = build_tx(&h, &mut head, &segs, &mut out).expect("build_tx");
        self.q.write_mem(hb, &head);
        self.q.write_mem(pb, rest);
        let mut mem = RingMem {
            qemu: &mut self.q,
            base: tx_ring_base(p),
        };
        self.tx[i]
            .post(&mut mem, &out[..built.descs], u64::from(k))
            .expect("post tx");
        let tail = self.tx[i].tail();
        self.nic.write_tx_tail(&mut self.q, p, tail);
        built.offload
    }

    /// Reaps one transmit completion of pool `p` (QEMU sends synchronously
    /// in the tail write).
    fn tx_done(&mut self, p: Pool) -> bool {
        let mut mem = RingMem {
            qemu: &mut self.q,
            base: tx_ring_base(p),
        };
        self.tx[usize::from(p.index())].reap(&mut mem).is_some()
    }

    fn report(&self, name: &str) {
        eprintln!(
            "{name}: {:.2} s, {} qtest commands",
            self.started.elapsed().as_secs_f64(),
            self.q.commands
        );
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// An Ethernet frame of `len` bytes to `dst` with an experimental ethertype
/// and `tag` at the start of the payload.
fn frame(dst: [u8; 6], len: usize, tag: &str) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&EXT);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.extend_from_slice(tag.as_bytes());
    while f.len() < len {
        f.push((f.len() % 251) as u8);
    }
    f.truncate(len);
    f
}

// ---- checksums (the test's own, independent of the core) --------------------

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        acc += u32::from(w);
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The pseudo-header sum (not complemented) of an L4 segment of `l4len`
/// bytes, as a virtio-net driver leaves it in the checksum field.
fn pseudo(ip: &[u8], v6: bool, proto: u8, l4len: usize) -> u16 {
    let mut acc = 0;
    if v6 {
        acc = sum16(&ip[8..40], acc);
    } else {
        acc = sum16(&ip[12..20], acc);
    }
    acc += u32::from(proto);
    acc += (l4len as u32) >> 16;
    acc += (l4len as u32) & 0xffff;
    fold(acc)
}

/// Verifies the L4 checksum of an IPv4/IPv6 frame (the whole L4 from `l4`).
fn l4_csum_ok(f: &[u8], ipoff: usize, l4: usize, v6: bool, proto: u8) -> bool {
    let ip = &f[ipoff..];
    let p = pseudo(ip, v6, proto, f.len() - l4);
    fold(sum16(&f[l4..], u32::from(p))) == 0xffff
}

fn ipv4_csum_ok(f: &[u8]) -> bool {
    fold(sum16(&f[14..34], 0)) == 0xffff
}

fn ipv4(f: &mut Vec<u8>, proto: u8, l4len: usize) {
    let tot = (20 + l4len) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&tot.to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
    f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    let c = !fold(sum16(&f[14..34], 0));
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

fn ipv6(f: &mut Vec<u8>, proto: u8, l4len: usize) {
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(l4len as u16).to_be_bytes());
    f.extend_from_slice(&[proto, 64]);
    f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
}

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// UDP over IPv4 with the pseudo-header sum in the checksum field (what a
/// guest sends with NEEDS_CSUM), and its header.
fn udp4(dst: [u8; 6], data: &[u8]) -> (Vec<u8>, NetHdr) {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&MAC1);
    f.extend_from_slice(&[0x08, 0x00]);
    let l4len = 8 + data.len();
    ipv4(&mut f, 17, l4len);
    f.extend_from_slice(&[0x30, 0x39, 0x00, 0x35]);
    f.extend_from_slice(&(l4len as u16).to_be_bytes());
    let seed = pseudo(&f[14..34], false, 17, l4len);
    f.extend_from_slice(&seed.to_be_bytes());
    f.extend_from_slice(data);
    let h = NetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 6,
        ..NetHdr::default()
    };
    (f, h)
}

fn tcp_header(f: &mut Vec<u8>, seq: u32) {
    f.extend_from_slice(&[0x04, 0xd2, 0x16, 0x2e]);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 0x50, 0x18, 0x72, 0x10, 0, 0, 0, 0]);
}

/// TCP over IPv6 with NEEDS_CSUM.
fn tcp6(dst: [u8; 6], data: &[u8]) -> (Vec<u8>, NetHdr) {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&MAC1);
    f.extend_from_slice(&[0x86, 0xdd]);
    let l4len = 20 + data.len();
    ipv6(&mut f, 6, l4len);
    tcp_header(&mut f, 1000);
    let seed = pseudo(&f[14..54], true, 6, l4len);
    f[54 + 16..54 + 18].copy_from_slice(&seed.to_be_bytes());
    f.extend_from_slice(data);
    let h = NetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: 54,
        csum_offset: 16,
        ..NetHdr::default()
    };
    (f, h)
}

/// A TCP over IPv4 GSO frame as a Linux guest sends it: one super-frame,
/// the pseudo-header sum over its whole TCP length in the checksum field.
fn tso4(dst: [u8; 6], data: &[u8], mss: u16, seq: u32) -> (Vec<u8>, NetHdr) {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&MAC1);
    f.extend_from_slice(&[0x08, 0x00]);
    let l4len = 20 + data.len();
    ipv4(&mut f, 6, l4len);
    tcp_header(&mut f, seq);
    let seed = pseudo(&f[14..34], false, 6, l4len);
    f[34 + 16..34 + 18].copy_from_slice(&seed.to_be_bytes());
    f.extend_from_slice(data);
    let h = NetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: 54,
        gso_size: mss,
        csum_start: 34,
        csum_offset: 16,
        ..NetHdr::default()
    };
    (f, h)
}

fn no_offload() -> NetHdr {
    NetHdr::default()
}

// ---- the checks ----------------------------------------------------------------

/// (a) Steering: unicast to a pool's MAC lands in that pool's queue only,
/// byte-exact 12 bytes into the buffer; unknown unicast goes to the host
/// (default pool 0); broadcast to every pool that accepts it; multicast to
/// the host only (VMs get multicast from the host, in software); the queue's
/// receive cause is mapped to the vector the core's IVAR plan gave it.
#[test]
fn steering_by_mac() {
    let mut r = Rig::start();
    r.add_pool(pool(1), MAC1, &vm_rx(2048, 1514, true), NDESC - 1);
    r.add_pool(pool(2), MAC2, &vm_rx(2048, 1514, false), NDESC - 1);
    r.nic
        .map_vectors(&mut r.q, pool(1), Some(3), Some(4))
        .expect("ivar");
    let _ = r.q.read32(regs::EICR);

    let f1 = frame(MAC1, 300, "to-pool1");
    r.q.inject(&f1);
    let d = r.wait_rx(pool(1));
    assert!(d.wb.eop());
    assert_eq!(r.frame_of(&d), f1, "pool 1 got other bytes");
    assert!(r.sync().is_empty(), "frame to pool 1 also reached the host");
    r.assert_untouched(pool(2), "unicast to pool 1");
    let eicr = r.q.read32(regs::EICR);
    assert_ne!(
        eicr & (1 << 3),
        0,
        "pool 1's rx cause not on vector 3 (EICR {eicr:#x})"
    );

    let f2 = frame(MAC2, 64, "to-pool2");
    r.q.inject(&f2);
    let d = r.wait_rx(pool(2));
    assert_eq!(r.frame_of(&d), f2);
    assert!(r.sync().is_empty(), "frame to pool 2 also reached the host");
    r.assert_untouched(pool(1), "unicast to pool 2");

    let fu = frame(UNKNOWN, 200, "unknown-unicast");
    r.q.inject(&fu);
    let host = r.sync();
    assert_eq!(host, vec![fu], "unknown unicast is not the host's alone");
    r.assert_untouched(pool(1), "unknown unicast");
    r.assert_untouched(pool(2), "unknown unicast");

    let fb = frame(BCAST, 120, "broadcast");
    r.q.inject(&fb);
    let d = r.wait_rx(pool(1));
    assert_eq!(r.frame_of(&d), fb);
    assert_eq!(r.sync(), vec![fb], "broadcast did not reach the host once");
    r.assert_untouched(pool(2), "broadcast (pool 2 takes none)");

    let fm = frame(MCAST, 90, "multicast");
    r.q.inject(&fm);
    assert_eq!(r.sync(), vec![fm], "multicast did not reach the host once");
    r.assert_untouched(pool(1), "multicast");
    r.assert_untouched(pool(2), "multicast");
    r.report("steering_by_mac");
}

/// (b) A pool with no posted buffers drops its own frames only, and the NIC
/// reports it (ICR.RXO); the other pools still receive; the dropped frame is
/// not delivered later when buffers arrive.
#[test]
fn empty_pool_drops_only_its_own() {
    let mut r = Rig::start();
    r.add_pool(pool(1), MAC1, &vm_rx(2048, 1514, true), NDESC - 1);
    r.add_pool(pool(2), MAC2, &vm_rx(2048, 1514, true), 0);
    let before = r.nic.pool_stats(&mut r.q, pool(2));
    let _ = r.q.read32(regs::ICR);

    r.q.inject(&frame(MAC2, 200, "to-empty-pool2"));
    assert!(r.sync().is_empty());
    let icr = r.q.read32(regs::ICR);
    assert_ne!(
        icr & regs::ICR_RXO,
        0,
        "no receive overrun reported (ICR {icr:#x})"
    );
    let after = r.nic.pool_stats(&mut r.q, pool(2));
    assert_eq!(
        after.rx_packets, before.rx_packets,
        "pool 2 counted a frame it had no buffer for"
    );
    eprintln!(
        "empty pool: ICR.RXO set, RQDPC(2) = {} (QEMU does not count per-queue drops)",
        after.rx_queue_drops
    );

    // Broadcast: pool 2 cannot take it, pools 0 and 1 still do.
    let fb = frame(BCAST, 100, "bcast-while-pool2-empty");
    r.q.inject(&fb);
    let d = r.wait_rx(pool(1));
    assert_eq!(r.frame_of(&d), fb);
    assert_eq!(r.sync(), vec![fb]);
    let f1 = frame(MAC1, 150, "pool1-still-receives");
    r.q.inject(&f1);
    let d = r.wait_rx(pool(1));
    assert_eq!(r.frame_of(&d), f1);

    r.post(pool(2), NDESC - 1);
    assert!(r.sync().is_empty());
    r.assert_untouched(pool(2), "frames sent while pool 2 had no buffers");
    let f2 = frame(MAC2, 150, "pool2-after-posting");
    r.q.inject(&f2);
    let d = r.wait_rx(pool(2));
    assert_eq!(r.frame_of(&d), f2);
    r.report("empty_pool_drops_only_its_own");
}

/// (c) A pool's frame limit keeps every frame in one buffer: with 1 KiB
/// buffers, a 1024-byte frame lands in one descriptor (EOP), 1025- and
/// 1400-byte frames are dropped for that pool (ROC counts them) and touch
/// none of its buffers, while the host pool (2 KiB) still takes 1400 bytes.
#[test]
fn oversize_never_spans_buffers() {
    let mut r = Rig::start();
    r.add_pool(pool(1), MAC1, &vm_rx(1024, 1024, true), NDESC - 1);
    let _ = r.q.read32(regs::ROC);

    let f = frame(MAC1, 1024, "exactly-1024");
    r.q.inject(&f);
    let d = r.wait_rx(pool(1));
    assert!(d.wb.eop() && d.len == 1024);
    assert_eq!(r.frame_of(&d), f);

    for len in [1025usize, 1400] {
        r.q.inject(&frame(MAC1, len, "too-long-for-pool1"));
        assert!(r.sync().is_empty());
        r.assert_untouched(pool(1), &format!("{len}-byte frame over pool 1's limit"));
    }
    let roc = r.q.read32(regs::ROC);
    assert_eq!(roc, 2, "oversize frames not counted (ROC {roc})");

    // Not a NIC-wide limit: the host pool takes 1400 bytes, and of a
    // 1400-byte broadcast only pool 1's copy is dropped.
    let fh = frame(HOST_MAC, 1400, "long-to-host");
    r.q.inject(&fh);
    let d = r.wait_rx(Pool::HOST);
    assert_eq!(r.frame_of(&d), fh);
    r.post(Pool::HOST, 1);
    let fb = frame(BCAST, 1400, "long-broadcast");
    r.q.inject(&fb);
    assert_eq!(r.sync(), vec![fb]);
    r.assert_untouched(pool(1), "1400-byte broadcast");
    r.report("oversize_never_spans_buffers");
}

/// (d) Transmit from a VM queue with descriptors built by the core: a plain
/// frame, UDP/IPv4 and TCP/IPv6 with the checksum inserted, TCPv4 TSO cut
/// into MSS-sized segments, all reach the wire with the right bytes and
/// checksums; frames to another pool's MAC (or the host's) are switched
/// inside the NIC and never reach the wire.
#[test]
fn transmit_offloads_and_internal_switching() {
    let mut r = Rig::start();
    r.add_pool(pool(1), MAC1, &vm_rx(2048, 1514, true), NDESC - 1);
    r.add_pool(pool(2), MAC2, &vm_rx(2048, 1514, true), NDESC - 1);
    let p1 = pool(1);

    // Plain frame, three segments.
    let mut plain = frame(EXT, 1400, "plain-to-wire");
    plain[6..12].copy_from_slice(&MAC1);
    assert_eq!(r.send(p1, &no_offload(), &plain, 60), TxOffload::None);
    assert!(r.tx_done(p1), "no DD on the plain frame");
    let w = r.q.wire_recv(WAIT).expect("plain frame on the wire");
    assert_eq!(w, plain);

    // UDP/IPv4, checksum inserted by the NIC.
    let (f, h) = udp4(EXT, &payload(700, 1));
    assert_eq!(r.send(p1, &h, &f, 42), TxOffload::Csum);
    let w = r.q.wire_recv(WAIT).expect("udp frame on the wire");
    assert_eq!(w.len(), f.len());
    assert_eq!(w[..40], f[..40], "headers changed");
    assert_eq!(w[42..], f[42..], "payload changed");
    assert!(
        l4_csum_ok(&w, 14, 34, false, 17),
        "UDP checksum wrong: {:02x?}",
        &w[40..42]
    );
    assert!(r.tx_done(p1));

    // TCP/IPv6, checksum inserted.
    let (f, h) = tcp6(EXT, &payload(1000, 2));
    assert_eq!(r.send(p1, &h, &f, 74), TxOffload::Csum);
    let w = r.q.wire_recv(WAIT).expect("tcp6 frame on the wire");
    assert_eq!(w.len(), f.len());
    assert_eq!(w[..70], f[..70]);
    assert_eq!(w[72..], f[72..]);
    assert!(l4_csum_ok(&w, 14, 54, true, 6), "TCP/IPv6 checksum wrong");
    assert!(r.tx_done(p1));

    // TSO: 3500 bytes of payload at MSS 1000 -> 4 segments.
    let data = payload(3500, 3);
    let (f, h) = tso4(EXT, &data, 1000, 7000);
    assert_eq!(r.send(p1, &h, &f, 54), TxOffload::Tso);
    let mut got = Vec::new();
    for k in 0..4u32 {
        let w =
            r.q.wire_recv(WAIT)
                .unwrap_or_else(|| panic!("TSO segment {k} missing"));
        let seg = w.len() - 54;
        assert_eq!(seg, if k < 3 { 1000 } else { 500 }, "segment {k} size");
        assert_eq!(w[..14], f[..14], "segment {k} Ethernet header");
        let tot = u16::from_be_bytes([w[16], w[17]]) as usize;
        assert_eq!(tot, 40 + seg, "segment {k} IPv4 total length");
        assert!(ipv4_csum_ok(&w), "segment {k} IPv4 checksum");
        let seq = u32::from_be_bytes([w[38], w[39], w[40], w[41]]);
        assert_eq!(seq, 7000 + 1000 * k, "segment {k} sequence number");
        assert!(l4_csum_ok(&w, 14, 34, false, 6), "segment {k} TCP checksum");
        got.extend_from_slice(&w[54..]);
    }
    assert_eq!(got, data, "TSO payload");
    assert!(
        r.q.wire_recv(Duration::from_millis(50)).is_none(),
        "extra TSO segment"
    );
    assert!(r.tx_done(p1));

    // Pool 1 -> pool 2: switched by the NIC, not sent to the wire.
    let mut vm = frame(MAC2, 300, "vm1-to-vm2");
    vm[6..12].copy_from_slice(&MAC1);
    r.send(p1, &no_offload(), &vm, 14);
    let d = r.wait_rx(pool(2));
    assert_eq!(r.frame_of(&d), vm);
    // Pool 1 -> host.
    let mut th = frame(HOST_MAC, 200, "vm1-to-host");
    th[6..12].copy_from_slice(&MAC1);
    r.send(p1, &no_offload(), &th, 14);
    let d = r.wait_rx(Pool::HOST);
    assert_eq!(r.frame_of(&d), th);
    r.post(Pool::HOST, 1);
    // The wire saw neither: the next frame on it is this one.
    let mut after = frame(EXT, 100, "after-internal");
    after[6..12].copy_from_slice(&MAC1);
    r.send(p1, &no_offload(), &after, 14);
    assert_eq!(
        r.q.wire_recv(WAIT),
        Some(after),
        "an internal frame reached the wire"
    );
    assert!(r.tx_done(p1) && r.tx_done(p1) && r.tx_done(p1));
    r.report("transmit_offloads_and_internal_switching");
}

/// (e) Disabling: after `disable_rx` returns, a frame (unicast or broadcast)
/// for the pool lands in none of its still-posted buffers and the ring can be
/// drained; after `disable_tx` returns, a frame posted on the ring is not
/// sent; after `disable_pool` the pool's MAC is unknown unicast (the
/// host's); the pool can then be enabled again.
#[test]
fn disabled_pool_gets_nothing() {
    let mut r = Rig::start();
    r.add_pool(pool(1), MAC1, &vm_rx(2048, 1514, true), NDESC - 1);
    r.add_pool(pool(2), MAC2, &vm_rx(2048, 1514, true), NDESC - 1);
    let p2 = pool(2);

    let f = frame(MAC2, 100, "before-disable");
    r.q.inject(&f);
    let d = r.wait_rx(p2);
    assert_eq!(r.frame_of(&d), f);

    r.nic.disable_rx(&mut r.q, p2).expect("disable_rx");
    assert_eq!(r.nic.rx_enabled() & p2.bit() as u8, 0);
    r.q.inject(&frame(MAC2, 100, "after-disable"));
    let fb = frame(BCAST, 100, "bcast-after-disable");
    r.q.inject(&fb);
    let d = r.wait_rx(pool(1));
    assert_eq!(r.frame_of(&d), fb);
    assert_eq!(r.sync(), vec![fb]);
    r.assert_untouched(p2, "after disable_rx");
    let mut drained = 0;
    r.rx[2].drain(|_| drained += 1);
    assert_eq!(
        drained,
        NDESC - 2,
        "drain did not return every posted buffer"
    );

    // Transmit: a frame posted after disable_tx is not sent.
    r.nic.disable_tx(&mut r.q, p2).expect("disable_tx");
    let mut out = frame(EXT, 100, "tx-after-disable");
    out[6..12].copy_from_slice(&MAC2);
    r.send(p2, &no_offload(), &out, 14);
    let mut s = frame(EXT, 100, "tx-sentinel");
    s[6..12].copy_from_slice(&MAC1);
    r.send(pool(1), &no_offload(), &s, 14);
    assert_eq!(r.q.wire_recv(WAIT), Some(s), "disabled queue transmitted");
    assert!(!r.tx_done(p2), "disabled queue wrote a completion");
    assert_eq!(
        r.q.read32(regs::tx::tdh(p2.queue())),
        0,
        "disabled queue's head moved"
    );

    // The whole pool: MAC gone, its unicast is the host's now.
    r.nic.disable_pool(&mut r.q, pool(1)).expect("disable_pool");
    let f1 = frame(MAC1, 100, "to-removed-pool1");
    r.q.inject(&f1);
    assert_eq!(
        r.sync(),
        vec![f1],
        "unicast to a removed pool's MAC is not the host's"
    );
    r.assert_untouched(pool(1), "after disable_pool");

    // Pool 2 comes back.
    r.tx[2].drain(|_| {});
    r.add_pool(p2, MAC2, &vm_rx(2048, 1514, true), NDESC - 1);
    let f = frame(MAC2, 100, "re-enabled");
    r.q.inject(&f);
    let d = r.wait_rx(p2);
    assert_eq!(r.frame_of(&d), f);
    r.report("disabled_pool_gets_nothing");
}
