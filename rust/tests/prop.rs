//! Property tests: random memory maps, chains and pin sequences against simple
//! reference models written here.

mod common;

use common::*;
use proptest::prelude::*;
use pvpass_core::memmap::{Access, MapError, MemMap, Slot};
use pvpass_core::pincache::{PinCache, PinError, PinToken};
use pvpass_core::traits::{PinFailed, Pinner};
use pvpass_core::translate::{translate, SgList, TranslateError};
use pvpass_core::virtq::*;
use std::collections::{HashMap, HashSet, VecDeque};

const PAGE: u64 = 4096;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Memory map model: a list of slots, looked up page by page.

#[derive(Clone, Debug)]
struct ModelMap {
    slots: Vec<Slot>,
}

impl ModelMap {
    fn slot_of(&self, gpa: u64) -> Option<&Slot> {
        self.slots
            .iter()
            .find(|s| gpa >= s.gpa && gpa - s.gpa < s.size)
    }

    fn host_of(&self, gpa: u64) -> Option<u64> {
        self.slot_of(gpa).map(|s| s.host + (gpa - s.gpa))
    }

    fn insert_ok(&self, s: &Slot) -> Result<(), MapError> {
        if s.size == 0 || (s.gpa | s.size | s.host) % PAGE != 0 {
            return Err(MapError::BadSlot);
        }
        if s.gpa.checked_add(s.size).is_none() || s.host.checked_add(s.size).is_none() {
            return Err(MapError::BadSlot);
        }
        if self.slots.len() >= 32 {
            return Err(MapError::Full);
        }
        let overlaps = self
            .slots
            .iter()
            .any(|o| s.gpa < o.gpa + o.size && o.gpa < s.gpa + s.size);
        if overlaps {
            return Err(MapError::Overlap);
        }
        Ok(())
    }

    fn lookup(&self, gpa: u64, len: u64, access: Access) -> Result<u64, MapError> {
        if len == 0 {
            return Err(MapError::ZeroLength);
        }
        let end = gpa.checked_add(len).ok_or(MapError::Overflow)?;
        // Points to check: the start, and the first byte of every page after it.
        // The slots cover at most 12 * 5 pages: a range over more pages than
        // that has an unmapped page (pigeonhole), so do not list them all.
        if (end - gpa) / PAGE > 100 {
            return Err(MapError::Unmapped);
        }
        let mut points = vec![gpa];
        let mut p = (u128::from(gpa) / 4096 + 1) * 4096;
        while p < u128::from(end) {
            points.push(p as u64);
            p += 4096;
        }
        let mut hosts = Vec::new();
        for &p in &points {
            hosts.push(self.host_of(p).ok_or(MapError::Unmapped)?);
        }
        for (w, pts) in hosts.windows(2).zip(points.windows(2)) {
            if w[1] != w[0] + (pts[1] - pts[0]) {
                return Err(MapError::Straddle);
            }
        }
        let ro = points.iter().any(|&p| self.slot_of(p).unwrap().read_only);
        if ro && access == Access::Write {
            return Err(MapError::ReadOnly);
        }
        Ok(hosts[0])
    }
}

fn arb_slot() -> impl Strategy<Value = Slot> {
    (0u64..48, 1u64..6, 0u64..6, any::<bool>(), 0u8..20).prop_map(|(gp, np, hp, ro, odd)| {
        let mut s = Slot {
            gpa: gp * PAGE,
            size: np * PAGE,
            // Few host bases, so that neighbors are often host-contiguous.
            host: HOST + (hp * 8 + gp) * PAGE,
            read_only: ro,
        };
        match odd {
            0 => s.gpa += 1,
            1 => s.size = 0,
            2 => s.gpa = u64::MAX - PAGE + 1,
            _ => {}
        }
        s
    })
}

fn arb_query() -> impl Strategy<Value = (u64, u64, bool)> {
    prop_oneof![
        (0u64..56 * PAGE, 0u64..4 * PAGE + 2, any::<bool>()),
        (
            u64::MAX - 3 * PAGE..=u64::MAX,
            0u64..5 * PAGE,
            any::<bool>()
        ),
        (
            0u64..56 * PAGE,
            prop_oneof![Just(u64::MAX), Just(u64::MAX / 2)],
            any::<bool>()
        ),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn memmap_matches_model(
        slots in prop::collection::vec(arb_slot(), 0..12),
        queries in prop::collection::vec(arb_query(), 1..40),
    ) {
        let mut map: MemMap = MemMap::new(1);
        let mut model = ModelMap { slots: Vec::new() };
        for s in slots {
            let want = model.insert_ok(&s);
            prop_assert_eq!(map.insert(s), want);
            if want.is_ok() {
                model.slots.push(s);
            }
        }
        for (gpa, len, w) in queries {
            let a = if w { Access::Write } else { Access::Read };
            prop_assert_eq!(map.lookup(gpa, len, a), model.lookup(gpa, len, a), "gpa {:#x} len {:#x}", gpa, len);
        }
    }
}

// ---------------------------------------------------------------------------
// Chain walker model: the virtio rules, written straight, with a visited set.

#[derive(Clone, Copy, Debug)]
struct D {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

fn arb_desc(max_next: u16) -> impl Strategy<Value = D> {
    let addr = prop_oneof![
        4 => Just(BUF),
        2 => Just(INDIRECT),
        1 => Just(MEM_SIZE as u64 - 16),
        1 => Just(u64::MAX - 7),
        2 => 0u64..MEM_SIZE as u64,
    ];
    let len = prop_oneof![
        4 => 1u32..2000,
        1 => Just(0u32),
        2 => prop_oneof![Just(16u32), Just(32), Just(48), Just(64), Just(24)],
        1 => Just(0x8000_0000u32),
        1 => Just(u32::MAX),
    ];
    let flags = prop_oneof![
        6 => prop_oneof![Just(1u16), Just(3), Just(0), Just(2)],
        2 => Just(4u16),
        1 => 0u16..8,
    ];
    (addr, len, flags, 0..max_next).prop_map(|(addr, len, flags, next)| D {
        addr,
        len,
        flags,
        next,
    })
}

fn read_model_desc(mem: &[u8], gpa: u64) -> D {
    let s = gpa as usize;
    let b = &mem[s..s + 16];
    D {
        addr: u64::from_le_bytes(b[0..8].try_into().unwrap()),
        len: u32::from_le_bytes(b[8..12].try_into().unwrap()),
        flags: u16::from_le_bytes(b[12..14].try_into().unwrap()),
        next: u16::from_le_bytes(b[14..16].try_into().unwrap()),
    }
}

fn model_walk(
    mem: &[u8],
    size: u16,
    head: u16,
    indirect_ok: bool,
    cap: usize,
) -> Result<Vec<Desc>, QueueError> {
    if head >= size {
        return Err(QueueError::HeadOutOfRange);
    }
    let mut out = Vec::new();
    let mut visited = HashSet::new();
    let (mut table, mut n, mut ns) = (DESC, u64::from(size), 0);
    let mut idx = u64::from(head);
    let mut total = 0u64;
    let mut seen_w = false;
    loop {
        if !visited.insert((ns, idx)) {
            return Err(QueueError::Loop);
        }
        let d = read_model_desc(mem, table + 16 * idx);
        if d.flags & 4 != 0 {
            if ns == 1 {
                return Err(QueueError::NestedIndirect);
            }
            if !indirect_ok {
                return Err(QueueError::IndirectNotNegotiated);
            }
            if d.flags & 1 != 0 {
                return Err(QueueError::IndirectWithNext);
            }
            if d.len == 0 || d.len % 16 != 0 {
                return Err(QueueError::IndirectBadLength);
            }
            let end = u128::from(d.addr) + u128::from(d.len);
            if end > MEM_SIZE as u128 {
                return Err(QueueError::IndirectOutsideMemory);
            }
            table = d.addr;
            n = u64::from(d.len / 16);
            ns = 1;
            idx = 0;
            continue;
        }
        if out.len() + 1 > usize::from(size) {
            return Err(QueueError::ChainTooLong);
        }
        if d.len == 0 {
            return Err(QueueError::ZeroLength);
        }
        let w = d.flags & 2 != 0;
        if seen_w && !w {
            return Err(QueueError::ReadAfterWrite);
        }
        seen_w |= w;
        total += u64::from(d.len);
        if total > u64::from(u32::MAX) {
            return Err(QueueError::LengthOverflow);
        }
        if out.len() == cap {
            return Err(QueueError::ChainCapacity);
        }
        out.push(Desc {
            addr: d.addr,
            len: d.len,
            writable: w,
        });
        if d.flags & 1 == 0 {
            return Ok(out);
        }
        idx = u64::from(d.next);
        if idx >= n {
            return Err(QueueError::NextOutOfRange);
        }
    }
}

fn arb_queue() -> impl Strategy<Value = (u16, Vec<D>, Vec<D>, u16, bool)> {
    (0u32..5).prop_flat_map(|log| {
        let size = 1u16 << log;
        (
            Just(size),
            prop::collection::vec(arb_desc(size + 2), usize::from(size)),
            prop::collection::vec(arb_desc(10), 8),
            0..size + 1,
            any::<bool>(),
        )
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn chain_walker_matches_model((size, table, ind, head, indirect_ok) in arb_queue()) {
        let mut r = Rig::with(QueueConfig { indirect: indirect_ok, ..cfg(size) });
        for (i, d) in table.iter().enumerate() {
            r.desc(i as u16, d.addr, d.len, d.flags, d.next);
        }
        for (i, d) in ind.iter().enumerate() {
            r.desc_at(INDIRECT, i as u16, d.addr, d.len, d.flags, d.next);
        }
        r.offer(head);
        let snapshot = r.mem.bytes.borrow().clone();
        let want = model_walk(&snapshot, size, head, indirect_ok, 8);
        let mut c: Chain<8> = Chain::new();
        let got = r.q.pop(&r.mem, &r.map, &mut c);
        match want {
            Ok(descs) => {
                prop_assert_eq!(got, Ok(true));
                prop_assert_eq!(c.descs(), &descs[..]);
                prop_assert_eq!(c.head(), head);
                prop_assert_eq!(u64::from(c.total_len()), descs.iter().map(|d| u64::from(d.len)).sum::<u64>());
                prop_assert!(!r.q.is_broken());
            }
            Err(e) => {
                prop_assert_eq!(got, Err(e));
                prop_assert!(r.q.is_broken());
            }
        }
        // No descriptor was fetched twice.
        let log = r.mem.log.borrow();
        let mut seen = HashSet::new();
        for ev in log.iter() {
            if let Event::Read(a, 16) = ev {
                prop_assert!(seen.insert(*a), "descriptor at {:#x} read twice", a);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Translation model: byte by byte, through the map model.

fn translate_map() -> (MemMap, ModelMap) {
    let slots = [
        // Rings and buffers live in the first slot.
        Slot {
            gpa: 0,
            size: 0x20000,
            host: HOST,
            read_only: false,
        },
        Slot {
            gpa: 0x20000,
            size: 0x4000,
            host: HOST + 0x20000,
            read_only: false,
        },
        Slot {
            gpa: 0x24000,
            size: 0x4000,
            host: HOST + 0x100000,
            read_only: false,
        },
        Slot {
            gpa: 0x28000,
            size: 0x4000,
            host: HOST + 0x104000,
            read_only: true,
        },
    ];
    let mut m: MemMap = MemMap::new(5);
    for s in slots {
        m.insert(s).unwrap();
    }
    (
        m,
        ModelMap {
            slots: slots.to_vec(),
        },
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn translate_matches_model(
        bufs in prop::collection::vec((0x1e000u64..0x2d000, 1u32..3 * 4096 + 10, any::<bool>()), 1..8)
    ) {
        // Readable buffers first, then writable ones, so that the chain is valid.
        let mut bufs = bufs;
        bufs.sort_by_key(|b| b.2);
        let mut r = Rig::new(16);
        let (map, model) = translate_map();
        r.map = map;
        for (i, &(addr, len, w)) in bufs.iter().enumerate() {
            let mut flags = if w { VIRTQ_DESC_F_WRITE } else { 0 };
            if i + 1 < bufs.len() { flags |= VIRTQ_DESC_F_NEXT; }
            r.desc(i as u16, addr, len, flags, i as u16 + 1);
        }
        r.offer(0);
        let mut c: Chain = Chain::new();
        prop_assert_eq!(r.q.pop(&r.mem, &r.map, &mut c), Ok(true));

        // Model: every byte to its host address; a segment is a maximal run of
        // bytes of one buffer on one host page.
        let mut want: Result<Vec<(u64, u32, bool, u64)>, TranslateError> = Ok(Vec::new());
        for &(addr, len, w) in &bufs {
            let a = if w { Access::Write } else { Access::Read };
            if let Err(e) = model.lookup(addr, u64::from(len), a) {
                want = Err(TranslateError::Map(e));
                break;
            }
            let segs = want.as_mut().unwrap();
            let mut cur: Option<(u64, u32, bool, u64)> = None;
            for b in 0..u64::from(len) {
                let h = model.host_of(addr + b).unwrap();
                match cur.as_mut() {
                    Some(s) if s.0 / PAGE == h / PAGE => s.1 += 1,
                    _ => {
                        if let Some(s) = cur.take() { segs.push(s); }
                        cur = Some((h, 1, w, (addr + b) / PAGE));
                    }
                }
            }
            segs.extend(cur);
        }
        let mut sg: SgList<64> = SgList::new();
        let got = translate(&c, &r.map, &mut sg);
        match want {
            Ok(segs) if segs.len() > 64 => prop_assert_eq!(got, Err(TranslateError::TooManySegments)),
            Ok(segs) => {
                prop_assert_eq!(got, Ok(()));
                let g: Vec<_> = sg.segments().iter().map(|s| (s.host, s.len, s.writable, s.gfn)).collect();
                prop_assert_eq!(&g, &segs);
                let mut pages: Vec<u64> = segs.iter().map(|s| s.0 / PAGE * PAGE).collect();
                pages.dedup();
                prop_assert_eq!(sg.host_pages(), &pages[..]);
                prop_assert_eq!(sg.gfns().len(), pages.len());
            }
            Err(e) => prop_assert_eq!(got, Err(e)),
        }
    }
}

// ---------------------------------------------------------------------------
// Pin cache model: entries in a Vec, LRU as a VecDeque.

#[derive(Default)]
struct CountingPinner {
    pinned: HashMap<u64, u64>,
    next: u64,
    fail: bool,
}

impl Pinner for CountingPinner {
    fn pin(&mut self, pages: &[u64], handles: &mut [u64]) -> Result<(), PinFailed> {
        assert!(!pages.is_empty());
        if self.fail {
            return Err(PinFailed);
        }
        for (p, h) in pages.iter().zip(handles) {
            self.next += 1;
            *h = self.next;
            self.pinned.insert(self.next, *p);
        }
        Ok(())
    }
    fn unpin(&mut self, handles: &[u64]) {
        assert!(!handles.is_empty());
        for h in handles {
            assert!(self.pinned.remove(h).is_some(), "unpin of unknown handle");
        }
    }
}

struct ModelEntry {
    page: u64,
    refs: u32,
    stale: bool,
}

#[derive(Default)]
struct ModelCache {
    quota: usize,
    entries: HashMap<usize, ModelEntry>,
    next_id: usize,
    by_page: HashMap<u64, usize>,
    lru: VecDeque<usize>,
    hits: u64,
    misses: u64,
    evictions: u64,
    waits: u64,
}

impl ModelCache {
    fn acquire(&mut self, pages: &[u64], fail: bool) -> Result<Vec<usize>, PinError> {
        let mut misses: Vec<u64> = Vec::new();
        let mut hit_ids: Vec<usize> = Vec::new();
        for p in pages {
            match self.by_page.get(p) {
                Some(&id) => {
                    if !hit_ids.contains(&id) {
                        hit_ids.push(id)
                    }
                }
                None => {
                    if !misses.contains(p) {
                        misses.push(*p)
                    }
                }
            }
        }
        let need = misses.len();
        let free = self.quota.saturating_sub(self.entries.len());
        if need > free {
            if need + hit_ids.len() > self.quota {
                return Err(PinError::OverQuota);
            }
            let evictable: Vec<usize> = self
                .lru
                .iter()
                .copied()
                .filter(|id| !hit_ids.contains(id))
                .collect();
            if need - free > evictable.len() {
                self.waits += 1;
                return Err(PinError::WouldBlock);
            }
            for id in evictable.into_iter().take(need - free) {
                self.lru.retain(|&x| x != id);
                let e = self.entries.remove(&id).unwrap();
                self.by_page.remove(&e.page);
                self.evictions += 1;
            }
        }
        if need > 0 && fail {
            return Err(PinError::PinFailed);
        }
        for p in misses {
            let id = self.next_id;
            self.next_id += 1;
            self.entries.insert(
                id,
                ModelEntry {
                    page: p,
                    refs: 0,
                    stale: false,
                },
            );
            self.by_page.insert(p, id);
        }
        let mut tok = Vec::new();
        for p in pages {
            let id = self.by_page[p];
            self.lru.retain(|&x| x != id);
            self.entries.get_mut(&id).unwrap().refs += 1;
            tok.push(id);
        }
        self.misses += need as u64;
        self.hits += (pages.len() - need) as u64;
        Ok(tok)
    }

    fn release(&mut self, tok: Vec<usize>) {
        for id in tok {
            let e = self.entries.get_mut(&id).unwrap();
            e.refs -= 1;
            if e.refs == 0 {
                if e.stale {
                    self.entries.remove(&id);
                } else {
                    self.lru.push_back(id);
                }
            }
        }
    }

    fn invalidate(&mut self) {
        self.by_page.clear();
        self.lru.clear();
        self.entries.retain(|_, e| {
            e.stale = true;
            e.refs > 0
        });
    }
}

#[derive(Clone, Debug)]
enum Op {
    Acquire(Vec<u64>),
    AcquireFailing(Vec<u64>),
    Release(usize),
    Invalidate,
}

fn arb_op() -> impl Strategy<Value = Op> {
    arb_op_on(14, 7)
}

/// Ops on pages `0..npages`, `1..maxlen` pages per acquire.
fn arb_op_on(npages: u64, maxlen: usize) -> impl Strategy<Value = Op> {
    let pages = prop::collection::vec(0u64..npages, 1..maxlen);
    prop_oneof![
        8 => pages.clone().prop_map(Op::Acquire),
        1 => pages.prop_map(Op::AcquireFailing),
        6 => any::<usize>().prop_map(Op::Release),
        1 => Just(Op::Invalidate),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn pincache_matches_model(quota in 1usize..10, ops in prop::collection::vec(arb_op(), 1..80)) {
        run_pincache_model(quota, ops)?;
    }

    /// Few pages, short requests: mostly the same page again (the hit path
    /// that leaves the most recent idle entry on the LRU list), mixed with
    /// evictions, invalidations and pin failures.
    #[test]
    fn pincache_matches_model_on_few_pages(
        quota in 1usize..5,
        ops in prop::collection::vec(arb_op_on(5, 3), 1..120),
    ) {
        run_pincache_model(quota, ops)?;
    }
}

fn run_pincache_model(quota: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    {
        let mut cache: PinCache<16, 16> = PinCache::new(quota as u32);
        let mut pinner = CountingPinner::default();
        let mut model = ModelCache {
            quota,
            ..ModelCache::default()
        };
        let mut live: Vec<(PinToken, Vec<usize>, Vec<u64>)> = Vec::new();
        for op in ops {
            match op {
                Op::Acquire(ref p) | Op::AcquireFailing(ref p) => {
                    let fail = matches!(op, Op::AcquireFailing(_));
                    let pages: Vec<u64> = p.iter().map(|n| HOST + n * PAGE).collect();
                    pinner.fail = fail;
                    let mut tok = PinToken::new();
                    let got = cache.acquire(&pages, &mut pinner, &mut tok).map(|()| tok);
                    pinner.fail = false;
                    let want = model.acquire(&pages, fail);
                    match (got, want) {
                        (Ok(t), Ok(ids)) => {
                            for (h, page) in t.handles().iter().zip(&pages) {
                                prop_assert_eq!(pinner.pinned.get(h), Some(page));
                            }
                            live.push((t, ids, pages));
                        }
                        (Err(g), Err(w)) => prop_assert_eq!(g, w),
                        (g, w) => prop_assert!(
                            false,
                            "got {:?}, model {:?}",
                            g.map(|_| ()),
                            w.map(|_| ())
                        ),
                    }
                }
                Op::Release(i) => {
                    if !live.is_empty() {
                        let (mut t, ids, _) = live.remove(i % live.len());
                        cache.release(&mut t, &mut pinner);
                        model.release(ids);
                    }
                }
                Op::Invalidate => {
                    cache.invalidate(&mut pinner);
                    model.invalidate();
                }
            }
            let s = cache.stats();
            prop_assert_eq!(s.pinned as usize, model.entries.len());
            prop_assert_eq!(pinner.pinned.len(), model.entries.len());
            prop_assert!(model.entries.len() <= quota);
            prop_assert_eq!(
                (s.hits, s.misses, s.evictions, s.waits),
                (model.hits, model.misses, model.evictions, model.waits)
            );
            prop_assert_eq!(cache.idle() as usize, model.lru.len());
            // The very pages of the model are pinned (so eviction followed the
            // model's exact LRU order), each once.
            let mut want: Vec<u64> = model.entries.values().map(|e| e.page).collect();
            let mut got: Vec<u64> = pinner.pinned.values().copied().collect();
            want.sort_unstable();
            got.sort_unstable();
            prop_assert_eq!(got, want);
            // Every page of every live buffer is still pinned.
            for (t, _, pages) in &live {
                for (h, page) in t.handles().iter().zip(pages) {
                    prop_assert_eq!(pinner.pinned.get(h), Some(page));
                }
            }
        }
        for (mut t, ids, _) in live {
            cache.release(&mut t, &mut pinner);
            model.release(ids);
        }
        cache.invalidate(&mut pinner);
        prop_assert!(pinner.pinned.is_empty(), "pins leaked");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Forwarding database model: a HashMap, every rule spelled out directly.

use pvpass_core::fdb::{Fdb, FdbEntry, FdbError, Learn, Mac};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ModelFdbEntry {
    port: u32,
    seen: u64,
    is_static: bool,
}

struct ModelFdb {
    cap: usize,
    map: HashMap<Mac, ModelFdbEntry>,
}

fn model_age(seen: u64, now: u64) -> u64 {
    let d = now.wrapping_sub(seen);
    if d >= 1 << 63 {
        0
    } else {
        d
    }
}

impl ModelFdb {
    fn live(e: &ModelFdbEntry, now: u64, max_age: u64) -> bool {
        e.is_static || model_age(e.seen, now) <= max_age
    }

    /// The oldest dynamic entry; ties: the smallest MAC.
    fn oldest(&self, now: u64) -> Option<Mac> {
        self.oldest_where(now, |_| true)
    }

    fn oldest_where(&self, now: u64, ok: impl Fn(&ModelFdbEntry) -> bool) -> Option<Mac> {
        self.map
            .iter()
            .filter(|(_, e)| !e.is_static && ok(e))
            .max_by_key(|(m, e)| (model_age(e.seen, now), std::cmp::Reverse(**m)))
            .map(|(m, _)| *m)
    }

    fn learn(&mut self, mac: Mac, port: u32, now: u64, max_age: u64, limit: u32) -> Learn {
        if mac[0] & 1 != 0 {
            return Learn::Group;
        }
        if mac == [0; 6] {
            return Learn::Zero;
        }
        let cur = self.map.get(&mac).copied();
        if let Some(e) = cur {
            if e.is_static {
                return if e.port == port {
                    Learn::Static
                } else {
                    Learn::Spoofed { owner: e.port }
                };
            }
            if e.port == port && Self::live(&e, now, max_age) {
                self.map.get_mut(&mac).unwrap().seen = now;
                return Learn::Refreshed;
            }
        }
        let count = self
            .map
            .values()
            .filter(|e| !e.is_static && e.port == port && Self::live(e, now, max_age))
            .count();
        if count as u64 >= u64::from(limit) {
            return Learn::PortLimit;
        }
        let new = ModelFdbEntry {
            port,
            seen: now,
            is_static: false,
        };
        if let Some(e) = cur {
            self.map.insert(mac, new);
            return if Self::live(&e, now, max_age) {
                Learn::Moved { from: e.port }
            } else {
                Learn::Added
            };
        }
        if self.map.len() < self.cap {
            self.map.insert(mac, new);
            return Learn::Added;
        }
        // Full: only an aged-out entry, or one of this port, may make room.
        let Some(v) = self.oldest_where(now, |e| e.port == port || !Self::live(e, now, max_age))
        else {
            return Learn::Full;
        };
        let old = self.map.remove(&v).unwrap();
        self.map.insert(mac, new);
        if Self::live(&old, now, max_age) {
            Learn::Evicted {
                mac: v,
                port: old.port,
            }
        } else {
            Learn::Added
        }
    }

    fn add_static(&mut self, mac: Mac, port: u32, now: u64) -> Result<(), FdbError> {
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(FdbError::BadMac);
        }
        let new = ModelFdbEntry {
            port,
            seen: now,
            is_static: true,
        };
        match self.map.get(&mac) {
            Some(e) if e.is_static && e.port != port => Err(FdbError::Exists { port: e.port }),
            Some(e) if e.is_static => Ok(()),
            Some(_) => {
                self.map.insert(mac, new);
                Ok(())
            }
            None => {
                if self.map.len() >= self.cap {
                    let v = self.oldest(now).ok_or(FdbError::Full)?;
                    self.map.remove(&v);
                }
                self.map.insert(mac, new);
                Ok(())
            }
        }
    }

    fn lookup(&self, mac: Mac, now: u64, max_age: u64) -> Option<u32> {
        let e = self.map.get(&mac)?;
        Self::live(e, now, max_age).then_some(e.port)
    }
}

#[derive(Clone, Debug)]
enum FdbOp {
    Learn(usize, u32),
    AddStatic(usize, u32),
    Remove(usize),
    RemovePort(u32),
    Age,
}

/// MAC number `i` of the pool: the zero address, two group addresses, unicast
/// addresses that differ in one byte (the switch's usual case) or in several.
fn pool_mac(i: usize) -> Mac {
    match i {
        0 => [0; 6],
        1 => [0xff; 6],
        2 => [0x01, 0x00, 0x5e, 0, 0, 0x01],
        _ if i % 3 == 0 => [0x52, 0x54, 0, 0x12, 0x34, i as u8],
        _ => [0x02, i as u8, 0x10, i as u8 ^ 0x5a, 0, 0x77],
    }
}

const FDB_POOL: usize = 18;

fn arb_fdb_op() -> impl Strategy<Value = (FdbOp, i64)> {
    let op = prop_oneof![
        10 => (0..FDB_POOL, 0u32..4).prop_map(|(m, p)| FdbOp::Learn(m, p)),
        2 => (0..FDB_POOL, 0u32..4).prop_map(|(m, p)| FdbOp::AddStatic(m, p)),
        1 => (0..FDB_POOL).prop_map(FdbOp::Remove),
        1 => (0u32..4).prop_map(FdbOp::RemovePort),
        2 => Just(FdbOp::Age),
    ];
    // Time steps: mostly forward, sometimes still, now and then backward.
    (op, prop_oneof![8 => 0i64..12, 1 => -3i64..0])
}

fn arb_fdb_start() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(u64::MAX - 40), any::<u64>()]
}

fn arb_fdb_limit() -> impl Strategy<Value = u32> {
    prop_oneof![Just(u32::MAX), 0u32..8]
}

fn fdb_matches_model<const N: usize, const H: usize>(
    start: u64,
    max_age: u64,
    limit: u32,
    ops: &[(FdbOp, i64)],
) -> Result<(), TestCaseError> {
    let mut f: Fdb<N, H> = Fdb::new();
    let mut m = ModelFdb {
        cap: N,
        map: HashMap::new(),
    };
    let mut now = start;
    let mut went_back = false;
    for (op, dt) in ops {
        now = now.wrapping_add_signed(*dt);
        went_back |= *dt < 0;
        match *op {
            FdbOp::Learn(i, p) => {
                let mac = pool_mac(i);
                let others: Vec<FdbEntry> = f
                    .iter()
                    .filter(|e| {
                        e.port != p
                            && e.mac != mac
                            && (e.is_static || model_age(e.seen, now) <= max_age)
                    })
                    .copied()
                    .collect();
                let got = f.learn(mac, p, now, max_age, limit);
                for e in &others {
                    prop_assert!(
                        f.iter().any(|x| x == e),
                        "port {} learning {:x?} evicted {:?}",
                        p,
                        mac,
                        e
                    );
                }
                prop_assert_eq!(
                    got,
                    m.learn(mac, p, now, max_age, limit),
                    "learn {:x?}",
                    mac
                );
            }
            FdbOp::AddStatic(i, p) => {
                let mac = pool_mac(i);
                prop_assert_eq!(f.add_static(mac, p, now), m.add_static(mac, p, now));
            }
            FdbOp::Remove(i) => {
                let mac = pool_mac(i);
                prop_assert_eq!(f.remove(mac), m.map.remove(&mac).is_some());
            }
            FdbOp::RemovePort(p) => {
                let before = m.map.len();
                m.map.retain(|_, e| e.port != p);
                prop_assert_eq!(f.remove_port(p), before - m.map.len());
            }
            FdbOp::Age => {
                let before = m.map.len();
                m.map.retain(|_, e| ModelFdb::live(e, now, max_age));
                prop_assert_eq!(f.age(now, max_age), before - m.map.len());
            }
        }
        prop_assert_eq!(f.len(), m.map.len());
        prop_assert!(f.len() <= N);
        let got: HashMap<Mac, ModelFdbEntry> = f
            .iter()
            .map(|e: &FdbEntry| {
                (
                    e.mac,
                    ModelFdbEntry {
                        port: e.port,
                        seen: e.seen,
                        is_static: e.is_static,
                    },
                )
            })
            .collect();
        prop_assert_eq!(got.len(), f.len(), "duplicate MACs");
        prop_assert_eq!(&got, &m.map);
        for i in 0..FDB_POOL {
            let mac = pool_mac(i);
            for age in [max_age, 0, u64::MAX] {
                prop_assert_eq!(f.lookup(mac, now, age), m.lookup(mac, now, age));
            }
        }
        // The per-port limit holds while time goes forward (going back in
        // time revives aged-out entries).
        if limit != u32::MAX && !went_back {
            for p in 0..4 {
                let live = m
                    .map
                    .values()
                    .filter(|e| !e.is_static && e.port == p && ModelFdb::live(e, now, max_age))
                    .count();
                prop_assert!(live as u64 <= u64::from(limit));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fdb_dense_matches_model(
        start in arb_fdb_start(),
        max_age in 0u64..30,
        limit in arb_fdb_limit(),
        ops in prop::collection::vec(arb_fdb_op(), 1..120),
    ) {
        fdb_matches_model::<7, 8>(start, max_age, limit, &ops)?;
    }

    #[test]
    fn fdb_sparse_matches_model(
        start in arb_fdb_start(),
        max_age in 0u64..30,
        limit in arb_fdb_limit(),
        ops in prop::collection::vec(arb_fdb_op(), 1..120),
    ) {
        fdb_matches_model::<5, 16>(start, max_age, limit, &ops)?;
    }
}

// ---------------------------------------------------------------------------
// Held used entries: any mix of `push`, `push_held` and `publish` leaves the
// used ring as the guest would see it from a model: entries in push order
// at consecutive slots, the index at the count published, and an index the
// guest can see never points at an entry not yet written.

#[derive(Clone, Copy, Debug)]
enum UsedOp {
    Push(u16),
    Hold(u16),
    Publish,
}

fn arb_used_op() -> impl Strategy<Value = UsedOp> {
    prop_oneof![
        (0u16..8).prop_map(UsedOp::Push),
        (0u16..8).prop_map(UsedOp::Hold),
        Just(UsedOp::Publish),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn held_and_published_entries_match_model(ops in prop::collection::vec(arb_used_op(), 1..40)) {
        let mut r = Rig::new(8);
        // Model: every entry written so far (id, len), and how many the
        // guest may see.
        let mut written: Vec<(u16, u32)> = Vec::new();
        let mut visible = 0usize;
        for (n, op) in ops.iter().enumerate() {
            let len = n as u32;
            match *op {
                UsedOp::Push(id) => {
                    // At most a queue's worth in flight: the guest would
                    // not have more chains.
                    if written.len() - visible >= 8 { continue; }
                    r.q.push(&r.mem, id, len).unwrap();
                    written.push((id, len));
                    visible = written.len();
                }
                UsedOp::Hold(id) => {
                    if written.len() - visible >= 8 { continue; }
                    r.q.push_held(&r.mem, id, len).unwrap();
                    written.push((id, len));
                }
                UsedOp::Publish => {
                    let any = r.q.publish(&r.mem).unwrap();
                    prop_assert_eq!(any, visible < written.len());
                    visible = written.len();
                }
            }
            prop_assert_eq!(usize::from(r.mem.peek_u16(USED + 2)), visible % 65536);
            prop_assert_eq!(usize::from(r.q.used_idx()), visible);
            prop_assert_eq!(usize::from(r.q.held()), written.len() - visible);
            // The last 8 written entries are in their slots (older ones were
            // overwritten by the wrap).
            for (i, &(id, l)) in written.iter().enumerate().rev().take(8) {
                let slot = (i % 8) as u64;
                prop_assert_eq!(r.mem.peek_u32(USED + 4 + 8 * slot), u32::from(id));
                prop_assert_eq!(r.mem.peek_u32(USED + 8 + 8 * slot), l);
            }
        }
    }
}
