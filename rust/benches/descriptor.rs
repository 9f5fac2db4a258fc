//! Cost per descriptor of the checked path (pop + check + translate + pin
//! cache hit + release) against a baseline that only reads the same
//! descriptors from the same mock memory.
//!
//! `cargo bench --bench descriptor -- --warm-up-time 1 --measurement-time 3`
//! runs criterion, then a side-by-side summary that prints ns/descriptor and
//! the ratio and writes it to ../bench/results/descriptor-engine.md.

use criterion::{black_box, BenchmarkId, Criterion};
use pvpass_core::memmap::{MemMap, Slot};
use pvpass_core::pincache::{PinCache, PinError, PinToken};
use pvpass_core::traits::{Fence, GuestMemory, MemFault, PinFailed, Pinner};
use pvpass_core::translate::{translate, SgList};
use pvpass_core::virtq::{Chain, QueueConfig, Virtqueue, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use std::cell::RefCell;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

const HOST: u64 = 0x7f00_0000_0000;
const MEM: usize = 1 << 20;
const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x2000;
const USED: u64 = 0x3000;
const BUF: u64 = 0x10000;
const QSIZE: u16 = 256;
const SIZES: [u16; 3] = [1, 4, 16];

/// Flat guest memory: what a kernel implementation would do with one
/// bounds-checked copy per access.
struct BenchMem(RefCell<Vec<u8>>);

impl GuestMemory for BenchMem {
    #[inline]
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        let m = self.0.borrow();
        let s = usize::try_from(gpa).map_err(|_| MemFault)?;
        let e = s.checked_add(buf.len()).ok_or(MemFault)?;
        buf.copy_from_slice(m.get(s..e).ok_or(MemFault)?);
        Ok(())
    }
    fn write_u16(&self, gpa: u64, val: u16) -> Result<(), MemFault> {
        self.write(gpa, &val.to_le_bytes())
    }
    fn write_u32(&self, gpa: u64, val: u32) -> Result<(), MemFault> {
        self.write(gpa, &val.to_le_bytes())
    }
    #[inline]
    fn fence(&self, kind: Fence) {
        match kind {
            Fence::Read => fence(Ordering::Acquire),
            Fence::Write => fence(Ordering::Release),
            Fence::Full => fence(Ordering::SeqCst),
        }
    }
}

impl BenchMem {
    fn write(&self, gpa: u64, b: &[u8]) -> Result<(), MemFault> {
        let mut m = self.0.borrow_mut();
        let s = gpa as usize;
        m.get_mut(s..s + b.len())
            .ok_or(MemFault)?
            .copy_from_slice(b);
        Ok(())
    }

    /// The guest makes one more chain (always head 0) available.
    #[inline]
    fn guest_offer(&self) {
        let mut m = self.0.borrow_mut();
        let a = AVAIL as usize + 2;
        let idx = u16::from_le_bytes([m[a], m[a + 1]]).wrapping_add(1);
        m[a..a + 2].copy_from_slice(&idx.to_le_bytes());
    }
}

struct NoPinner;

impl Pinner for NoPinner {
    fn pin(&mut self, pages: &[u64], handles: &mut [u64]) -> Result<(), PinFailed> {
        handles.copy_from_slice(pages);
        Ok(())
    }
    fn unpin(&mut self, _: &[u64]) {}
}

struct Setup {
    mem: BenchMem,
    map: MemMap,
    q: Virtqueue,
    cache: Box<PinCache<1024, 2048>>,
    pinner: NoPinner,
    chain: Chain,
    sg: SgList,
    tok: PinToken,
}

/// A queue whose avail ring holds head 0 everywhere, with a chain of `n`
/// descriptors 0 -> 1 -> ... (1500-byte buffers, each on its own page; the
/// last half device-writable), pages already in the pin cache.
fn setup(n: u16) -> Setup {
    let mem = BenchMem(RefCell::new(vec![0; MEM]));
    for i in 0..n {
        let mut flags = if i + 1 < n { VIRTQ_DESC_F_NEXT } else { 0 };
        if n > 1 && i >= n / 2 {
            flags |= VIRTQ_DESC_F_WRITE;
        }
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&(BUF + 0x1000 * u64::from(i) + 64).to_le_bytes());
        d[8..12].copy_from_slice(&1500u32.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..16].copy_from_slice(&(i + 1).to_le_bytes());
        mem.write(DESC + 16 * u64::from(i), &d).unwrap();
    }
    let mut map: MemMap = MemMap::new(1);
    map.insert(Slot {
        gpa: 0,
        size: MEM as u64,
        host: HOST,
        read_only: false,
    })
    .unwrap();
    let cfg = QueueConfig {
        size: QSIZE,
        desc: DESC,
        avail: AVAIL,
        used: USED,
        event_idx: true,
        indirect: true,
    };
    let q = Virtqueue::new(cfg, &map).unwrap();
    let mut s = Setup {
        mem,
        map,
        q,
        cache: Box::new(PinCache::new(1024)),
        pinner: NoPinner,
        chain: Chain::new(),
        sg: SgList::new(),
        tok: PinToken::new(),
    };
    // Warm the pin cache: the measured path is the hit path.
    engine(&mut s);
    assert_eq!(s.cache.stats().misses, u64::from(n));
    s
}

/// Checked path for one chain.
#[inline(never)]
fn engine(s: &mut Setup) -> u64 {
    s.mem.guest_offer();
    match s.q.pop(&s.mem, &s.map, &mut s.chain) {
        Ok(true) => {}
        other => panic!("pop: {other:?}"),
    }
    translate(&s.chain, &s.map, &mut s.sg).unwrap();
    match s
        .cache
        .acquire(s.sg.host_pages(), &mut s.pinner, &mut s.tok)
    {
        Ok(()) => {}
        Err(PinError::WouldBlock) => panic!("would block"),
        Err(e) => panic!("{e:?}"),
    }
    let h = s.tok.handles().first().copied().unwrap_or(0);
    s.cache.release(&mut s.tok, &mut s.pinner);
    h ^ u64::from(s.chain.total_len())
}

/// Baseline: read the avail index, the ring entry and every descriptor of the
/// chain from the same memory, no checks.
#[inline(never)]
fn baseline(s: &mut Setup, last: &mut u16) -> u64 {
    s.mem.guest_offer();
    let idx = s.mem.read_u16(AVAIL + 2).unwrap();
    let slot = u64::from(*last % QSIZE);
    *last = last.wrapping_add(1);
    let _ = idx;
    let mut i = s.mem.read_u16(AVAIL + 4 + 2 * slot).unwrap();
    let mut acc = 0u64;
    loop {
        let mut d = [0u8; 16];
        s.mem.read(DESC + 16 * u64::from(i), &mut d).unwrap();
        let addr = u64::from_le_bytes(d[..8].try_into().unwrap());
        let len = u32::from_le_bytes(d[8..12].try_into().unwrap());
        let flags = u16::from_le_bytes([d[12], d[13]]);
        acc = acc.wrapping_add(addr ^ u64::from(len));
        if flags & VIRTQ_DESC_F_NEXT == 0 {
            return acc;
        }
        i = u16::from_le_bytes([d[14], d[15]]);
    }
}

fn time_per_chain(n: u16, use_engine: bool, budget: Duration) -> f64 {
    let mut s = setup(n);
    let mut last = 1u16;
    let mut iters = 0u64;
    let mut sink = 0u64;
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..1000 {
            sink ^= if use_engine {
                engine(&mut s)
            } else {
                baseline(&mut s, &mut last)
            };
        }
        iters += 1000;
    }
    black_box(sink);
    start.elapsed().as_nanos() as f64 / iters as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn summary() {
    let mut rows = Vec::new();
    for n in SIZES {
        // Interleave the two loops so both see the same machine state.
        let (mut e, mut b) = (Vec::new(), Vec::new());
        for _ in 0..7 {
            e.push(time_per_chain(n, true, Duration::from_millis(150)));
            b.push(time_per_chain(n, false, Duration::from_millis(150)));
        }
        let (e, b) = (median(e), median(b));
        rows.push((n, e / f64::from(n), b / f64::from(n), e / b));
    }
    let mut md = String::new();
    md.push_str("# Descriptor engine: cost per descriptor\n\n");
    md.push_str(
        "Checked path = `Virtqueue::pop` (avail index, ring entry, every descriptor read \
         once and checked) + `translate` (memory map lookup, 4 KiB split) + \
         `PinCache::acquire` on the hit path + `release`. Baseline = reading the same \
         avail index, ring entry and descriptors from the same mock memory, no checks. \
         Chains of 1500-byte buffers, one page each, queue size 256, EVENT_IDX on. \
         Median of 7 interleaved runs of 150 ms each, produced by \
         `cargo bench --bench descriptor -- --warm-up-time 1 --measurement-time 3` \
         in rust/.\n\n",
    );
    md.push_str(
        "| descriptors/chain | checked ns/desc | baseline ns/desc | ratio | <= 20 ns | <= 1.2x |\n",
    );
    md.push_str("| ---: | ---: | ---: | ---: | :---: | :---: |\n");
    println!("\nsummary (median of 7 interleaved runs):");
    println!(
        "{:>6} {:>16} {:>17} {:>7}",
        "descs", "checked ns/desc", "baseline ns/desc", "ratio"
    );
    for (n, e, b, r) in &rows {
        println!("{n:>6} {e:>16.2} {b:>17.2} {r:>6.2}x");
        md.push_str(&format!(
            "| {n} | {e:.2} | {b:.2} | {r:.2}x | {} | {} |\n",
            if *e <= 20.0 { "yes" } else { "no" },
            if *r <= 1.2 { "yes" } else { "no" }
        ));
    }
    md.push_str(&format!(
        "\nTargets: <= 20 ns per descriptor and <= 1.2x the baseline. Machine: {} cores, \
         {}; bench profile with `lto = \"fat\"`, `codegen-units = 1` (the kernel module \
         compiles the core into its own crate, so LLVM sees across the boundary the same \
         way). Numbers are from a shared 2-core VM: compare ratios, not absolute values, \
         across machines.\n\n\
         Why the ratio is far from 1.2x: the baseline is three plain loads per chain plus \
         one 16-byte copy per descriptor (about 2 ns). The checked path adds, per \
         descriptor, the chain rules (loop, length, flag and order checks), a memory map \
         lookup, page splitting into the scatter list, a hash lookup plus refcount \
         update in the pin cache and the matching release with its LRU update (none \
         for a buffer that comes back to the most recently released page); per chain \
         it adds the \
         avail index check and the read barrier. Those are the work the engine exists to \
         do, so a 1.2x bound against a bare read loop is not reachable without dropping \
         checks; the absolute cost per descriptor is the number to watch.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::consts::ARCH
    ));
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/results");
    if std::fs::create_dir_all(dir).is_ok() {
        let path = format!("{dir}/descriptor-engine.md");
        match std::fs::write(&path, md) {
            Ok(()) => println!("wrote {path}"),
            Err(e) => println!("could not write {path}: {e}"),
        }
    }
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("descriptor");
    for n in SIZES {
        g.throughput(criterion::Throughput::Elements(u64::from(n)));
        g.bench_with_input(BenchmarkId::new("checked", n), &n, |bch, &n| {
            let mut s = setup(n);
            bch.iter(|| black_box(engine(&mut s)));
        });
        g.bench_with_input(BenchmarkId::new("baseline", n), &n, |bch, &n| {
            let mut s = setup(n);
            let mut last = 1u16;
            bch.iter(|| black_box(baseline(&mut s, &mut last)));
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    benches(&mut c);
    c.final_summary();
    // PVPASS_NO_SUMMARY=1 skips the side-by-side summary (for profiling).
    if std::env::var_os("PVPASS_NO_SUMMARY").is_none() {
        summary();
    }
}
