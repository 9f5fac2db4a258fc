// SPDX-License-Identifier: GPL-2.0

//! The DMA memory the NIC sees: descriptor rings (the core's
//! `ring::DescMem` over coherent memory) and packet buffer areas (coherent
//! too), allocated and owned by the driver and freed only after the NIC was
//! quiesced (the driver's unbind), so the NIC never writes into memory the
//! kernel reuses; and the mapping of guest pages pinned for a frame or a
//! lent receive buffer (`map_page`), undone before they are unpinned.

use kernel::{
    device::{
        Bound,
        Device, //
    },
    dma::Coherent,
    prelude::*,
    sync::barrier::smp_mb, //
};

use crate::{
    glue,
    pvcore::{
        igb::{
            desc::{
                RawDesc,
                DESC_LEN, //
            },
            ring::DescMem,
        },
        traits::Fence,
    }, //
};

/// One descriptor ring: `size` 16-byte descriptors, two 64-bit words each.
pub(crate) struct DescRing {
    mem: Coherent<[u64]>,
    size: u16,
}

impl DescRing {
    /// A zeroed ring of `size` descriptors (page aligned, so the NIC's
    /// 128-byte alignment holds).
    pub(crate) fn new(dev: &Device<Bound>, size: u16) -> Result<Self> {
        let words = usize::from(size).checked_mul(2).ok_or(EINVAL)?;
        Ok(Self {
            mem: Coherent::zeroed_slice(dev, words, GFP_KERNEL)?,
            size,
        })
    }

    /// Bus address of descriptor 0.
    pub(crate) fn base(&self) -> u64 {
        self.mem.dma_handle()
    }

    /// Number of descriptors.
    pub(crate) fn size(&self) -> u16 {
        self.size
    }

    /// The ring's descriptors, for the core's ring bookkeeping.
    pub(crate) fn descs(&self) -> Descs<'_> {
        Descs(self)
    }

    /// Pointer to the first word of descriptor `i`, if it is in the ring.
    fn word(&self, i: u16) -> Option<*mut u64> {
        let w = usize::from(i).checked_mul(2)?;
        if w.checked_add(1)? >= self.mem.len() {
            return None;
        }
        // SAFETY: `w + 1 < len`: both words of descriptor `i` are inside the
        // allocation.
        Some(unsafe { self.mem.as_mut_ptr().cast::<u64>().add(w) })
    }
}

/// `DescMem` of one ring.
pub(crate) struct Descs<'a>(&'a DescRing);

impl DescMem for Descs<'_> {
    fn read(&mut self, i: u16) -> RawDesc {
        let mut d = [0u8; DESC_LEN];
        let Some(p) = self.0.word(i) else {
            return d;
        };
        // SAFETY: `p` and `p + 1` are inside the ring (`word`). Volatile: the
        // NIC writes descriptors back concurrently (as the kernel crate's
        // `dma_read!` reads coherent memory).
        let (a, b) = unsafe { (p.read_volatile(), p.add(1).read_volatile()) };
        let (lo, hi) = d.split_at_mut(8);
        lo.copy_from_slice(&a.to_ne_bytes());
        hi.copy_from_slice(&b.to_ne_bytes());
        d
    }

    fn write(&mut self, i: u16, d: &RawDesc) {
        let Some(p) = self.0.word(i) else {
            return;
        };
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&d[..8]);
        b.copy_from_slice(&d[8..]);
        // SAFETY: As in `read`; the NIC does not own descriptor `i` (the
        // ring bookkeeping writes only free descriptors), volatile as
        // `dma_write!`.
        unsafe {
            p.write_volatile(u64::from_ne_bytes(a));
            p.add(1).write_volatile(u64::from_ne_bytes(b));
        }
    }

    fn fence(&mut self, kind: Fence) {
        match kind {
            // SAFETY: `dma_rmb` has no preconditions.
            Fence::Read => unsafe { glue::pvpass_dma_rmb() },
            // The tail register write that hands descriptors over is a
            // `writel`, which is ordered after earlier writes to coherent
            // memory.
            Fence::Write => {}
            Fence::Full => smp_mb(),
        }
    }
}

/// `count` packet buffers of `len` bytes each, in one coherent allocation.
pub(crate) struct BufArea {
    mem: Coherent<[u8]>,
    count: u16,
    len: u32,
}

impl BufArea {
    pub(crate) fn new(dev: &Device<Bound>, count: u16, len: u32) -> Result<Self> {
        let bytes = usize::from(count)
            .checked_mul(usize::try_from(len)?)
            .ok_or(EINVAL)?;
        Ok(Self {
            mem: Coherent::zeroed_slice(dev, bytes, GFP_KERNEL)?,
            count,
            len,
        })
    }

    /// Size of each buffer.
    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    fn offset(&self, i: u16) -> Option<usize> {
        if i >= self.count {
            return None;
        }
        usize::from(i).checked_mul(usize::try_from(self.len).ok()?)
    }

    /// Bus address of buffer `i`.
    pub(crate) fn dma(&self, i: u16) -> Option<u64> {
        let off = u64::try_from(self.offset(i)?).ok()?;
        self.mem.dma_handle().checked_add(off)
    }

    /// CPU address of buffer `i` (`len` bytes).
    pub(crate) fn ptr(&self, i: u16) -> Option<*mut u8> {
        let off = self.offset(i)?;
        // SAFETY: `i < count`, so `off + len` is within the allocation of
        // `count * len` bytes.
        Some(unsafe { self.mem.as_mut_ptr().cast::<u8>().add(off) })
    }
}

/// Which way the NIC moves the bytes of a mapped page.
#[derive(Clone, Copy)]
pub(crate) enum Dir {
    /// It reads them (a transmitted frame).
    ToNic,
    /// It writes them (a receive buffer).
    FromNic,
}

impl Dir {
    fn raw(self) -> kernel::bindings::dma_data_direction {
        match self {
            Dir::ToNic => kernel::bindings::dma_data_direction_DMA_TO_DEVICE,
            Dir::FromNic => kernel::bindings::dma_data_direction_DMA_FROM_DEVICE,
        }
    }
}

/// Maps `len` bytes of `page` at `off` for the NIC (a guest page pinned for
/// the frame or the receive buffer that points at it); its bus address, or
/// `None`.
pub(crate) fn map_page(
    dev: &Device<Bound>,
    page: *mut kernel::bindings::page,
    off: usize,
    len: usize,
    dir: Dir,
) -> Option<u64> {
    // `Device` wraps `struct device` transparently.
    let raw = core::ptr::from_ref(dev).cast_mut().cast();
    // SAFETY: `raw` is a bound device; `page` is a live page (pinned by the
    // caller until the mapping is undone), `off + len` within it.
    let addr = unsafe { kernel::bindings::dma_map_page_attrs(raw, page, off, len, dir.raw(), 0) };
    // DMA_MAPPING_ERROR is all ones.
    (addr != u64::MAX).then_some(addr)
}

/// Undoes `map_page` (same device, address, length and direction), once the
/// NIC is done with the page.
pub(crate) fn unmap_page(dev: &Device<Bound>, addr: u64, len: usize, dir: Dir) {
    let raw = core::ptr::from_ref(dev).cast_mut().cast();
    // SAFETY: `addr`/`len` are a live mapping of `map_page` on this device,
    // which the NIC no longer reads (its descriptor was written back, or
    // the queue was stopped).
    unsafe { kernel::bindings::dma_unmap_page_attrs(raw, addr, len, dir.raw(), 0) };
}
