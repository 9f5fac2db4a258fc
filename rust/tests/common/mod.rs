//! Mocks shared by the integration tests.
#![allow(dead_code)]

use pvpass_core::memmap::{MemMap, Slot};
use pvpass_core::traits::{Fence, GuestMemory, MemFault, PinFailed, Pinner};
use pvpass_core::virtq::{QueueConfig, Virtqueue};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// Host address backing GPA 0 in the default map.
pub const HOST: u64 = 0x7f00_0000_0000;
/// Guest memory size of the default rig.
pub const MEM_SIZE: usize = 1 << 20;
pub const DESC: u64 = 0x1000;
pub const AVAIL: u64 = 0x2000;
pub const USED: u64 = 0x3000;
pub const BUF: u64 = 0x10000;
pub const INDIRECT: u64 = 0x8000;

/// What happened to guest memory, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Read(u64, usize),
    Write(u64, Vec<u8>),
    Fence(Fence),
}

type Hook = Box<dyn FnMut(u64, usize, &mut Vec<u8>)>;

/// Flat guest memory from GPA 0, with an event log and an optional hook that
/// runs after every read (to play a guest rewriting memory behind our back).
pub struct MockMem {
    pub bytes: RefCell<Vec<u8>>,
    pub log: RefCell<Vec<Event>>,
    pub hook: RefCell<Option<Hook>>,
    pub fail_at: Cell<Option<u64>>,
}

impl MockMem {
    pub fn new(size: usize) -> Self {
        Self {
            bytes: RefCell::new(vec![0; size]),
            log: RefCell::new(Vec::new()),
            hook: RefCell::new(None),
            fail_at: Cell::new(None),
        }
    }

    pub fn poke(&self, gpa: u64, b: &[u8]) {
        let s = gpa as usize;
        self.bytes.borrow_mut()[s..s + b.len()].copy_from_slice(b);
    }

    pub fn peek(&self, gpa: u64, n: usize) -> Vec<u8> {
        let s = gpa as usize;
        self.bytes.borrow()[s..s + n].to_vec()
    }

    pub fn peek_u16(&self, gpa: u64) -> u16 {
        u16::from_le_bytes(self.peek(gpa, 2).try_into().unwrap())
    }

    pub fn peek_u32(&self, gpa: u64) -> u32 {
        u32::from_le_bytes(self.peek(gpa, 4).try_into().unwrap())
    }

    pub fn reads_of(&self, gpa: u64) -> usize {
        self.log
            .borrow()
            .iter()
            .filter(|e| matches!(e, Event::Read(a, _) if *a == gpa))
            .count()
    }

    fn write(&self, gpa: u64, b: &[u8]) -> Result<(), MemFault> {
        let s = usize::try_from(gpa).map_err(|_| MemFault)?;
        let e = s.checked_add(b.len()).ok_or(MemFault)?;
        let mut m = self.bytes.borrow_mut();
        m.get_mut(s..e).ok_or(MemFault)?.copy_from_slice(b);
        self.log.borrow_mut().push(Event::Write(gpa, b.to_vec()));
        Ok(())
    }
}

impl GuestMemory for MockMem {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        if self.fail_at.get() == Some(gpa) {
            return Err(MemFault);
        }
        let s = usize::try_from(gpa).map_err(|_| MemFault)?;
        let e = s.checked_add(buf.len()).ok_or(MemFault)?;
        {
            let m = self.bytes.borrow();
            buf.copy_from_slice(m.get(s..e).ok_or(MemFault)?);
        }
        self.log.borrow_mut().push(Event::Read(gpa, buf.len()));
        if let Some(h) = self.hook.borrow_mut().as_mut() {
            h(gpa, buf.len(), &mut self.bytes.borrow_mut());
        }
        Ok(())
    }

    fn write_u16(&self, gpa: u64, val: u16) -> Result<(), MemFault> {
        self.write(gpa, &val.to_le_bytes())
    }

    fn write_u32(&self, gpa: u64, val: u32) -> Result<(), MemFault> {
        self.write(gpa, &val.to_le_bytes())
    }

    fn fence(&self, kind: Fence) {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        self.log.borrow_mut().push(Event::Fence(kind));
    }
}

/// One writable slot covering the whole mock memory.
pub fn flat_map() -> MemMap {
    let mut m = MemMap::new(7);
    m.insert(Slot {
        gpa: 0,
        size: MEM_SIZE as u64,
        host: HOST,
        read_only: false,
    })
    .unwrap();
    m
}

pub fn cfg(size: u16) -> QueueConfig {
    QueueConfig {
        size,
        desc: DESC,
        avail: AVAIL,
        used: USED,
        event_idx: false,
        indirect: true,
    }
}

pub fn desc_bytes(addr: u64, len: u32, flags: u16, next: u16) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&addr.to_le_bytes());
    b[8..12].copy_from_slice(&len.to_le_bytes());
    b[12..14].copy_from_slice(&flags.to_le_bytes());
    b[14..16].copy_from_slice(&next.to_le_bytes());
    b
}

/// A queue with its memory and map.
pub struct Rig {
    pub mem: MockMem,
    pub map: MemMap,
    pub q: Virtqueue,
    pub avail_idx: u16,
}

impl Rig {
    pub fn new(size: u16) -> Self {
        Self::with(cfg(size))
    }

    pub fn with(c: QueueConfig) -> Self {
        let map = flat_map();
        let q = Virtqueue::new(c, &map).unwrap();
        Self {
            mem: MockMem::new(MEM_SIZE),
            map,
            q,
            avail_idx: 0,
        }
    }

    /// Writes descriptor `i` of the main table.
    pub fn desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        self.mem.poke(
            DESC + 16 * u64::from(i),
            &desc_bytes(addr, len, flags, next),
        );
    }

    /// Writes entry `i` of a table at `table`.
    pub fn desc_at(&self, table: u64, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        self.mem.poke(
            table + 16 * u64::from(i),
            &desc_bytes(addr, len, flags, next),
        );
    }

    /// Makes `head` available and publishes the new avail index.
    pub fn offer(&mut self, head: u16) {
        let size = self.q.config().size;
        let slot = self.avail_idx % size;
        self.mem
            .poke(AVAIL + 4 + 2 * u64::from(slot), &head.to_le_bytes());
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem.poke(AVAIL + 2, &self.avail_idx.to_le_bytes());
    }

    pub fn set_avail_idx(&mut self, idx: u16) {
        self.avail_idx = idx;
        self.mem.poke(AVAIL + 2, &idx.to_le_bytes());
    }
}

/// Pinner mock: hands out handles, checks that nothing is pinned twice or
/// unpinned unpinned, and counts batches.
#[derive(Default)]
pub struct MockPinner {
    pub pinned: HashMap<u64, u64>, // handle -> page
    pub next_handle: u64,
    pub pin_calls: usize,
    pub unpin_calls: usize,
    pub fail: bool,
    pub batches: Vec<Vec<u64>>,
}

impl MockPinner {
    pub fn is_pinned(&self, page: u64) -> bool {
        self.pinned.values().any(|&p| p == page)
    }
}

impl Pinner for MockPinner {
    fn pin(&mut self, pages: &[u64], handles: &mut [u64]) -> Result<(), PinFailed> {
        assert_eq!(pages.len(), handles.len());
        assert!(!pages.is_empty(), "empty pin batch");
        self.pin_calls += 1;
        if self.fail {
            return Err(PinFailed);
        }
        self.batches.push(pages.to_vec());
        for (p, h) in pages.iter().zip(handles.iter_mut()) {
            assert_eq!(p % 4096, 0, "unaligned page");
            assert!(!self.is_pinned(*p), "page {p:#x} pinned twice");
            self.next_handle += 1;
            let handle = 0xffff_0000_0000_0000 | (self.next_handle << 12);
            self.pinned.insert(handle, *p);
            *h = handle;
        }
        Ok(())
    }

    fn unpin(&mut self, handles: &[u64]) {
        assert!(!handles.is_empty(), "empty unpin batch");
        self.unpin_calls += 1;
        for h in handles {
            assert!(self.pinned.remove(h).is_some(), "unpin of unknown handle");
        }
    }
}
