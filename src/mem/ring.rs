// SPDX-License-Identifier: GPL-2.0

//! A virtqueue's rings reached through pinned pages, from any thread.

use super::{
    page::PinnedPage,
    pins::{
        PinBufError,
        VmPins, //
    }, //
};
use crate::{
    kvm::{
        self,
        GuestMap, //
    },
    pvcore::{
        memmap::{
            Access,
            PAGE_SIZE, //
        },
        pincache::PinToken,
        traits::{
            Fence,
            GuestMemory,
            MemFault, //
        },
        translate, //
    }, //
};

const OFFSET_MASK: u64 = PAGE_SIZE - 1;

/// Most pages one ring area spans (a 256-entry descriptor table is 4 KiB,
/// on at most two pages).
pub(super) const RING_PAGES: usize = 4;

/// One ring area (descriptor table, available or used ring), pinned.
struct Area {
    gpa: u64,
    len: u64,
    host: u64,
    tok: PinToken,
}

/// A virtqueue's three areas, pinned while the queue runs: the ring's memory
/// for any thread (`GuestMemory`). All-zero is valid: nothing pinned.
pub(crate) struct RingMem {
    areas: [Area; 3],
}

impl RingMem {
    /// Pin the areas `(gpa, len)` of a queue, checked writable in `map`.
    /// Releases what was pinned before.
    pub(crate) fn pin(
        &mut self,
        pins: &mut VmPins,
        map: &GuestMap,
        areas: [(u64, u64); 3],
    ) -> Result<(), PinBufError> {
        self.release(pins);
        for (a, (gpa, len)) in self.areas.iter_mut().zip(areas) {
            let host = map
                .lookup(gpa, len, Access::Write)
                .map_err(|e| PinBufError::Translate(translate::TranslateError::Map(e)))?;
            if let Err(e) = pins.acquire_range(host, len, &mut a.tok) {
                return Err(PinBufError::Pin(e));
            }
            a.gpa = gpa;
            a.len = len;
            a.host = host;
        }
        Ok(())
    }

    /// Calls `f(gfn)` for each guest page of the used ring (the area the
    /// device writes).
    pub(crate) fn used_gfns(&self, f: impl FnMut(u64)) {
        let Some(a) = self.areas.get(2).filter(|a| !a.tok.is_empty() && a.len > 0) else {
            return;
        };
        (a.gpa / PAGE_SIZE..=(a.gpa + a.len - 1) / PAGE_SIZE).for_each(f);
    }

    /// Unpin the areas (the queue stopped or its memory moved).
    pub(crate) fn release(&mut self, pins: &mut VmPins) {
        for a in self.areas.iter_mut() {
            pins.release_token(&mut a.tok);
            a.len = 0;
        }
    }

    /// Calls `f(page, offset, range in the caller's buffer)` for the pages
    /// that `[gpa, gpa + len)` covers, or fails if an area does not hold it.
    fn each_page(
        &self,
        gpa: u64,
        len: usize,
        mut f: impl FnMut(PinnedPage<'_>, usize, core::ops::Range<usize>),
    ) -> Result<(), MemFault> {
        let a = self
            .areas
            .iter()
            .find(|a| {
                !a.tok.is_empty()
                    && gpa >= a.gpa
                    && gpa
                        .checked_add(len as u64)
                        .is_some_and(|e| e <= a.gpa + a.len)
            })
            .ok_or(MemFault)?;
        let first = a.host & !OFFSET_MASK;
        let mut host = a.host + (gpa - a.gpa);
        let mut done = 0usize;
        while done < len {
            let off = (host & OFFSET_MASK) as usize;
            let n = (PAGE_SIZE as usize - off).min(len - done);
            let idx = ((host & !OFFSET_MASK) - first) / PAGE_SIZE;
            let page = PinnedPage::of(&a.tok, idx as usize).ok_or(MemFault)?;
            f(page, off, done..done + n);
            done += n;
            host += n as u64;
        }
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemFault> {
        self.each_page(gpa, data.len(), |page, off, r| {
            page.write(off, data.get(r).unwrap_or(&[]))
        })
    }
}

impl GuestMemory for RingMem {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        let len = buf.len();
        self.each_page(gpa, len, |page, off, r| {
            if let Some(b) = buf.get_mut(r) {
                page.read(off, b);
            }
        })
    }

    fn write_u16(&self, gpa: u64, val: u16) -> Result<(), MemFault> {
        self.write(gpa, &val.to_le_bytes())
    }

    fn write_u32(&self, gpa: u64, val: u32) -> Result<(), MemFault> {
        self.write(gpa, &val.to_le_bytes())
    }

    fn fence(&self, kind: Fence) {
        kvm::fence(kind);
    }
}
