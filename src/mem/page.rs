// SPDX-License-Identifier: GPL-2.0

//! `PinnedPage`: one pinned guest page, borrowed from the `PinToken` that
//! holds its pin.
//!
//! A pin handle is a `struct page *` (as the core's `u64`). Handles exist
//! only in the `PinToken`s of a `VmPins` cache, filled by its pinner; a token
//! is emptied only by `VmPins::release` (which needs it `&mut`). A
//! `PinnedPage<'a>` is made only from a token borrowed for `'a`, so it is a
//! pinned page for as long as it lives: its copies need no further proof.

use core::marker::PhantomData;

use crate::{
    glue,
    pvcore::{
        memmap::PAGE_SIZE,
        pincache::PinToken, //
    }, //
};

const PAGE: usize = PAGE_SIZE as usize;

/// A pinned page, valid while the token it came from is borrowed.
#[derive(Clone, Copy)]
pub(crate) struct PinnedPage<'a> {
    raw: u64,
    _tok: PhantomData<&'a PinToken>,
}

impl<'a> PinnedPage<'a> {
    /// Page `idx` of the pins `tok` holds.
    pub(crate) fn of(tok: &'a PinToken, idx: usize) -> Option<Self> {
        tok.handles().get(idx).map(|&raw| Self {
            raw,
            _tok: PhantomData,
        })
    }

    /// The `struct page *` (for a scatterlist or a DMA mapping).
    pub(crate) fn as_raw(&self) -> *mut glue::Page {
        self.raw as usize as *mut glue::Page
    }

    /// Write `data` into the page at `off`; nothing past the page's end.
    pub(crate) fn write(&self, off: usize, data: &[u8]) {
        if off + data.len() > PAGE {
            return;
        }
        // SAFETY: `raw` is pinned while `self` lives (see the module
        // documentation); the range is inside the page.
        unsafe {
            glue::pvpass_page_write(
                self.as_raw(),
                off as u32,
                data.as_ptr().cast(),
                data.len() as u32,
            )
        };
    }

    /// Read the page at `off` into `buf`; nothing past the page's end.
    pub(crate) fn read(&self, off: usize, buf: &mut [u8]) {
        if off + buf.len() > PAGE {
            return;
        }
        // SAFETY: As for `write`.
        unsafe {
            glue::pvpass_page_read(
                self.as_raw(),
                off as u32,
                buf.as_mut_ptr().cast(),
                buf.len() as u32,
            )
        };
    }

    /// Copy `len` bytes of `src` at `soff` into this page at `doff` (page to
    /// page: the one copy of a frame's body).
    pub(crate) fn copy_from(&self, doff: usize, src: &PinnedPage<'_>, soff: usize, len: usize) {
        if doff + len > PAGE || soff + len > PAGE {
            return;
        }
        // SAFETY: Both pages are pinned while borrowed; both ranges lie
        // inside their page.
        unsafe {
            glue::pvpass_page_copy(
                self.as_raw(),
                doff as u32,
                src.as_raw(),
                soff as u32,
                len as u32,
            )
        };
    }
}
