//! Fuzzes the virtqueue chain walker, translation and used ring together.
//!
//! Input layout: byte 0 = log2(queue size) (mod 9), byte 1 = flags (bit 0
//! EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 a read-only slot, bit 3 a second,
//! non-contiguous slot), bytes 2.. = guest memory from GPA 0 (at most 64 KiB).
//! The descriptor table is at 0x0, the avail ring at 0x800, the used ring at
//! 0xc00. Whatever the input, nothing may panic, every popped chain must obey
//! the rules, and every translated segment must lie inside guest memory.
#![no_main]

use core::cell::RefCell;
use libfuzzer_sys::fuzz_target;
use pvpass_core::memmap::{MemMap, Slot, PAGE_SIZE};
use pvpass_core::pincache::{PinCache, PinToken};
use pvpass_core::traits::{Fence, GuestMemory, MemFault, PinFailed, Pinner};
use pvpass_core::translate::{translate, SgList};
use pvpass_core::virtq::{Chain, QueueConfig, Virtqueue};

const MEM: usize = 64 * 1024;
const HOST: u64 = 0x7f00_0000_0000;

struct Mem(RefCell<Vec<u8>>);

/// Counts pins; handles are the page addresses.
struct CountPinner(i64);

impl Pinner for CountPinner {
    fn pin(&mut self, pages: &[u64], handles: &mut [u64]) -> Result<(), PinFailed> {
        assert!(!pages.is_empty() && pages.len() == handles.len());
        handles.copy_from_slice(pages);
        self.0 += pages.len() as i64;
        Ok(())
    }
    fn unpin(&mut self, handles: &[u64]) {
        assert!(!handles.is_empty());
        self.0 -= handles.len() as i64;
        assert!(self.0 >= 0);
    }
}

impl GuestMemory for Mem {
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
    fn fence(&self, _: Fence) {}
}

impl Mem {
    fn write(&self, gpa: u64, b: &[u8]) -> Result<(), MemFault> {
        let mut m = self.0.borrow_mut();
        let s = usize::try_from(gpa).map_err(|_| MemFault)?;
        let e = s.checked_add(b.len()).ok_or(MemFault)?;
        m.get_mut(s..e).ok_or(MemFault)?.copy_from_slice(b);
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let size = 1u16 << (data[0] % 9);
    let flags = data[1];
    let mut bytes = vec![0u8; MEM];
    let body = &data[2..data.len().min(MEM + 2)];
    bytes[..body.len()].copy_from_slice(body);
    let mem = Mem(RefCell::new(bytes));

    let mut map: MemMap = MemMap::new(1);
    let half = (MEM / 2) as u64;
    // First half always writable (rings live there); second half per flags.
    map.insert(Slot {
        gpa: 0,
        size: half,
        host: HOST,
        read_only: false,
    })
    .unwrap();
    let second_host = if flags & 8 != 0 {
        HOST + 0x10_0000
    } else {
        HOST + half
    };
    map.insert(Slot {
        gpa: half,
        size: half,
        host: second_host,
        read_only: flags & 4 != 0,
    })
    .unwrap();

    let cfg = QueueConfig {
        size,
        desc: 0,
        avail: 0x800,
        used: 0xc00,
        event_idx: flags & 1 != 0,
        indirect: flags & 2 != 0,
    };
    let Ok(mut q) = Virtqueue::new(cfg, &map) else {
        return;
    };
    let mut chain: Chain = Chain::new();
    let mut sg: SgList = SgList::new();
    let mut cache: PinCache<16, 32> = PinCache::new(u32::from(flags >> 4));
    let mut pinner = CountPinner(0);
    // Two in-flight buffers at most, released in turn.
    let mut toks = [PinToken::new(), PinToken::new()];
    let mut turn = 0usize;
    for _ in 0..(u32::from(size) + 2) {
        match q.pop(&mem, &map, &mut chain) {
            Ok(true) => {}
            Ok(false) | Err(_) => break,
        }
        assert!(chain.head() < size);
        let descs = chain.descs();
        assert!(!descs.is_empty() && descs.len() <= usize::from(size));
        let mut total = 0u64;
        let mut seen_w = false;
        for d in descs {
            assert!(d.len > 0);
            assert!(!(seen_w && !d.writable));
            seen_w |= d.writable;
            total += u64::from(d.len);
        }
        assert_eq!(total, u64::from(chain.total_len()));
        if translate(&chain, &map, &mut sg).is_ok() {
            let mut sum = 0u64;
            for s in sg.segments() {
                assert!(s.len > 0 && u64::from(s.len) <= PAGE_SIZE);
                let in_first = s.host >= HOST && s.host + u64::from(s.len) <= HOST + half;
                let in_second =
                    s.host >= second_host && s.host + u64::from(s.len) <= second_host + half;
                assert!(in_first || in_second, "segment outside guest memory");
                assert_eq!(
                    s.host / PAGE_SIZE,
                    (s.host + u64::from(s.len) - 1) / PAGE_SIZE
                );
                sum += u64::from(s.len);
            }
            assert_eq!(sum, total);
            let t = &mut toks[turn % 2];
            cache.release(t, &mut pinner);
            if cache.acquire(sg.host_pages(), &mut pinner, t).is_ok() {
                for (h, p) in t.handles().iter().zip(sg.host_pages()) {
                    assert_eq!(*h, p & !(PAGE_SIZE - 1));
                }
            }
            turn += 1;
            assert!(cache.stats().pinned <= u64::from(cache.quota()));
            assert_eq!(cache.stats().pinned as i64, pinner.0);
        }
        let _ = q.push(&mem, chain.head(), 0);
        let _ = q.need_notify(&mem);
    }
    let _ = q.enable_notify(&mem);
    let _ = q.disable_notify(&mem);
    for t in &mut toks {
        cache.release(t, &mut pinner);
    }
    cache.invalidate(&mut pinner);
    assert_eq!(pinner.0, 0, "pins leaked");
});
