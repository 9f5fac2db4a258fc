// SPDX-License-Identifier: GPL-2.0

//! A frame on its way from a sender to a backend port.

use super::{
    page::PinnedPage,
    pins::Buf, //
};

/// A frame on its way through the switch: its first bytes in kernel memory
/// (where they were checked and routed), the rest, if any, still in the
/// sender's pinned transmit buffer, so that each receiver gets it in one
/// copy.
pub(crate) struct Frame<'a> {
    head: &'a [u8],
    tail: Option<(&'a Buf, usize)>,
    len: usize,
}

impl<'a> Frame<'a> {
    /// A frame wholly in kernel memory (the host port, the backlog).
    pub(crate) fn kernel(bytes: &'a [u8]) -> Self {
        Self {
            head: bytes,
            tail: None,
            len: bytes.len(),
        }
    }

    /// A frame of `len` bytes: `head`, then buffer bytes from `tail_at` on.
    pub(crate) fn pinned(head: &'a [u8], buf: &'a Buf, tail_at: usize, len: usize) -> Self {
        Self {
            head,
            tail: Some((buf, tail_at)),
            len,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The bytes in kernel memory (at least the Ethernet header of a
    /// checked frame).
    pub(crate) fn head(&self) -> &[u8] {
        self.head
    }

    /// Copy frame bytes `[pos, pos + n)` into pinned page `page` at `off`.
    pub(super) fn copy_to_page(&self, pos: usize, page: &PinnedPage<'_>, off: usize, n: usize) {
        let n = n.min(self.len.saturating_sub(pos));
        let mut done = 0usize;
        if let Some(h) = self.head.get(pos..) {
            let k = h.len().min(n);
            page.write(off, h.get(..k).unwrap_or(&[]));
            done = k;
        }
        if done < n {
            if let Some((buf, at)) = self.tail {
                buf.copy_to_page(
                    at + pos + done - self.head.len(),
                    page,
                    off + done,
                    n - done,
                );
            }
        }
    }

    /// Calls `f` for the frame's pieces in order, while it returns true:
    /// the bytes in kernel memory, then the pinned pages of the rest (the
    /// frame as a scatterlist, for a backend that DMAs or copies it).
    pub(crate) fn segments(&self, mut f: impl FnMut(Segment<'_>) -> bool) {
        let head = self
            .head
            .get(..self.len.min(self.head.len()))
            .unwrap_or(&[]);
        if !head.is_empty() && !f(Segment::Kernel(head)) {
            return;
        }
        let rest = self.len - head.len();
        if let Some((buf, at)) = self.tail.filter(|_| rest > 0) {
            buf.pieces(at, rest, |page, off, len, _| {
                f(Segment::Page(page, off, len))
            });
        }
    }

    /// Copy the frame's bytes into `dst` (as many as fit).
    pub(crate) fn copy_to(&self, dst: &mut [u8]) {
        self.copy_from(0, dst);
    }

    /// Copy the frame's bytes from `pos` on into `dst` (as many as fit).
    pub(crate) fn copy_from(&self, pos: usize, dst: &mut [u8]) {
        // `seen`: frame bytes before the current segment; `at`: bytes of
        // `dst` written.
        let mut seen = 0usize;
        let mut at = 0usize;
        self.segments(|seg| {
            let len = seg.len();
            let end = seen + len;
            if end > pos + at {
                let skip = pos + at - seen;
                let n = (len - skip).min(dst.len() - at);
                match (seg, dst.get_mut(at..at + n)) {
                    (Segment::Kernel(b), Some(d)) => {
                        if let Some(b) = b.get(skip..skip + n) {
                            d.copy_from_slice(b);
                        }
                    }
                    (Segment::Page(page, off, _), Some(d)) => page.read(off + skip, d),
                    (_, None) => {}
                }
                at += n;
            }
            seen = end;
            at < dst.len()
        });
    }
}

/// One piece of a frame (see `Frame::segments`).
pub(crate) enum Segment<'a> {
    /// Bytes in kernel memory.
    Kernel(&'a [u8]),
    /// `len` bytes of a pinned guest page at an offset.
    Page(PinnedPage<'a>, usize, usize),
}

impl Segment<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Segment::Kernel(b) => b.len(),
            Segment::Page(_, _, len) => *len,
        }
    }
}
