//! Translation of a checked chain into a page-split scatter list.
//!
//! Every buffer of a [`Chain`] is looked up in the [`MemMap`] (device-writable
//! buffers need a writable slot) and split at 4 KiB boundaries into
//! [`Segment`]s of host addresses. The pages to pin are listed once per run of
//! consecutive segments on the same page. Fixed capacity: a chain needing more
//! segments is rejected, never truncated.

use super::memmap::{Access, MapError, MemMap, PAGE_SIZE};
use super::virtq::Chain;

/// Default number of segments of an [`SgList`].
pub const DEFAULT_SEGMENTS: usize = 128;

/// A piece of a buffer that lies within one 4 KiB page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Host (userspace) address of the first byte.
    pub host: u64,
    /// Guest page frame number (for dirty tracking of writable segments).
    pub gfn: u64,
    /// Length in bytes, `1..=4096`.
    pub len: u32,
    /// The device writes this segment.
    pub writable: bool,
}

impl Segment {
    /// Page-aligned host address of the page holding this segment.
    #[must_use]
    #[inline]
    pub fn host_page(&self) -> u64 {
        self.host & !PAGE_SIZE.wrapping_sub(1)
    }
}

/// Why a chain could not be translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranslateError {
    /// A buffer failed the memory map check.
    Map(MapError),
    /// The chain needs more segments than the [`SgList`] holds.
    TooManySegments,
}

/// A scatter list: segments in chain order plus the host pages to pin.
///
/// Fixed capacity `S`. The all-zero value is a valid empty list.
#[derive(Clone, Debug)]
pub struct SgList<const S: usize = DEFAULT_SEGMENTS> {
    segs: [Segment; S],
    nsegs: usize,
    pages: [u64; S],
    gfns: [u64; S],
    npages: usize,
}

impl<const S: usize> Default for SgList<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const S: usize> SgList<S> {
    /// An empty list.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            segs: [Segment {
                host: 0,
                gfn: 0,
                len: 0,
                writable: false,
            }; S],
            nsegs: 0,
            pages: [0; S],
            gfns: [0; S],
            npages: 0,
        }
    }

    /// The segments, in chain order.
    #[must_use]
    #[inline]
    pub fn segments(&self) -> &[Segment] {
        self.segs.get(..self.nsegs).unwrap_or(&[])
    }

    /// Page-aligned host addresses of the pages to pin (consecutive duplicates
    /// removed; a page may still appear twice if the chain comes back to it).
    #[must_use]
    #[inline]
    pub fn host_pages(&self) -> &[u64] {
        self.pages.get(..self.npages).unwrap_or(&[])
    }

    /// Guest page frame numbers of [`SgList::host_pages`], index for index.
    #[must_use]
    #[inline]
    pub fn gfns(&self) -> &[u64] {
        self.gfns.get(..self.npages).unwrap_or(&[])
    }

    fn clear(&mut self) {
        self.nsegs = 0;
        self.npages = 0;
    }

    #[inline]
    fn push(&mut self, seg: Segment) -> Result<(), TranslateError> {
        let slot = self
            .segs
            .get_mut(self.nsegs)
            .ok_or(TranslateError::TooManySegments)?;
        *slot = seg;
        self.nsegs = self.nsegs.wrapping_add(1);
        let page = seg.host_page();
        let last = self
            .npages
            .checked_sub(1)
            .and_then(|i| self.pages.get(i))
            .copied();
        if last != Some(page) {
            // npages <= nsegs <= S, so both slots exist.
            if let (Some(p), Some(g)) = (
                self.pages.get_mut(self.npages),
                self.gfns.get_mut(self.npages),
            ) {
                *p = page;
                *g = seg.gfn;
                self.npages = self.npages.wrapping_add(1);
            }
        }
        Ok(())
    }
}

/// Translates `chain` into `sg` (cleared first). On error `sg` holds a partial
/// list that must not be used.
pub fn translate<const N: usize, const M: usize, const S: usize>(
    chain: &Chain<N>,
    map: &MemMap<M>,
    sg: &mut SgList<S>,
) -> Result<(), TranslateError> {
    sg.clear();
    let offset_mask = PAGE_SIZE.wrapping_sub(1);
    for d in chain.descs() {
        let access = if d.writable {
            Access::Write
        } else {
            Access::Read
        };
        let host = map
            .lookup(d.addr, u64::from(d.len), access)
            .map_err(TranslateError::Map)?;
        // The lookup proved that neither range overflows.
        if (d.addr & offset_mask).wrapping_add(u64::from(d.len)) <= PAGE_SIZE {
            // Common case: the buffer lies within one page.
            sg.push(Segment {
                host,
                gfn: d.addr / PAGE_SIZE,
                len: d.len,
                writable: d.writable,
            })?;
            continue;
        }
        let mut gpa = d.addr;
        let mut h = host;
        let mut left = u64::from(d.len);
        while left > 0 {
            let room = PAGE_SIZE.wrapping_sub(gpa & offset_mask);
            let n = left.min(room);
            sg.push(Segment {
                host: h,
                gfn: gpa / PAGE_SIZE,
                len: u32::try_from(n).unwrap_or(0),
                writable: d.writable,
            })?;
            gpa = gpa.wrapping_add(n);
            h = h.wrapping_add(n);
            left = left.wrapping_sub(n);
        }
    }
    Ok(())
}
