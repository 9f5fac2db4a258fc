//! A port's receive backlog: frames of any size (up to a 64 KiB GSO frame)
//! waiting, in order, until the receiving guest's vCPU thread copies them into
//! its receive buffers.
//!
//! Fixed memory: the frames' bytes live in one caller-provided buffer used as a
//! ring (a frame is never split: one that does not fit at the end starts at
//! offset 0), and at most as many frames as the caller-provided entry storage
//! holds are queued. A full backlog refuses the
//! frame: the sender never waits for a receiver, and a receiver that posts no
//! buffers only loses its own traffic.

use super::vnet::NetHdr;

/// Where one waiting frame lies in the byte ring (the backlog's second
/// storage: the caller provides a slice of them, one per frame it may hold).
#[derive(Debug, Clone, Copy, Default)]
pub struct Entry {
    off: usize,
    len: usize,
    hdr: NetHdr,
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BacklogError {
    /// `E` frames are queued already.
    TooManyFrames,
    /// Not enough contiguous room in the byte ring right now.
    NoRoom,
    /// The frame is empty or larger than the whole ring.
    BadLength,
}

/// Frames waiting for a port, oldest first. `B` is the byte storage (a
/// `KVVec<u8>` in the kernel, a `Vec<u8>` in tests).
#[derive(Debug)]
pub struct Backlog<B, M> {
    data: B,
    entries: M,
    head: usize,
    count: usize,
    /// End of the newest frame's bytes (meaningful when `count > 0`).
    tail: usize,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>, M: AsRef<[Entry]> + AsMut<[Entry]>> Backlog<B, M> {
    /// An empty backlog over `data` (its length is the byte capacity).
    pub fn new(data: B, entries: M) -> Self {
        Self {
            data,
            entries,
            head: 0,
            count: 0,
            tail: 0,
        }
    }

    /// Number of queued frames.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Nothing queued?
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn cap(&self) -> usize {
        self.data.as_ref().len()
    }

    fn slot(&self, i: usize) -> usize {
        // `E > 0` whenever `count > 0`, and `i < count <= E`.
        self.head
            .wrapping_add(i)
            .checked_rem(self.entries.as_ref().len())
            .unwrap_or(0)
    }

    /// Where `len` bytes can go, if anywhere.
    fn place(&self, len: usize) -> Option<usize> {
        let cap = self.cap();
        if self.count == 0 {
            return (len <= cap).then_some(0);
        }
        let head = self.entries.as_ref().get(self.head)?.off;
        let tail = self.tail;
        if tail > head {
            // Free: [tail, cap) and [0, head).
            if tail.checked_add(len)? <= cap {
                Some(tail)
            } else if len <= head {
                Some(0)
            } else {
                None
            }
        } else {
            // Wrapped: free is [tail, head).
            (tail.checked_add(len)? <= head).then_some(tail)
        }
    }

    /// Queues a copy of `frame` with `hdr`. Returns whether the backlog was
    /// empty before (the receiver needs a kick).
    pub fn push(&mut self, hdr: NetHdr, frame: &[u8]) -> Result<bool, BacklogError> {
        self.push_with(hdr, frame.len(), |dst| dst.copy_from_slice(frame))
    }

    /// Queues a frame of `len` bytes with `hdr`, written in place by `fill`
    /// (which gets exactly `len` bytes; a frame whose bytes are scattered is
    /// gathered straight into the backlog). Returns whether the backlog was
    /// empty before. `fill` is not called if the frame is refused.
    pub fn push_with(
        &mut self,
        hdr: NetHdr,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<bool, BacklogError> {
        if len == 0 || len > self.cap() {
            return Err(BacklogError::BadLength);
        }
        if self.count >= self.entries.as_ref().len() {
            return Err(BacklogError::TooManyFrames);
        }
        let off = self.place(len).ok_or(BacklogError::NoRoom)?;
        let end = off.checked_add(len).ok_or(BacklogError::NoRoom)?;
        let slot = self.slot(self.count);
        if slot >= self.entries.as_ref().len() {
            return Err(BacklogError::TooManyFrames);
        }
        fill(
            self.data
                .as_mut()
                .get_mut(off..end)
                .ok_or(BacklogError::NoRoom)?,
        );
        if let Some(e) = self.entries.as_mut().get_mut(slot) {
            *e = Entry { off, len, hdr };
        }
        self.tail = end;
        let was_empty = self.count == 0;
        self.count = self.count.saturating_add(1);
        Ok(was_empty)
    }

    /// The oldest frame: its header and bytes (mutable, so that a checksum can
    /// be completed in place for a receiver without GUEST_CSUM).
    pub fn front(&mut self) -> Option<(&mut NetHdr, &mut [u8])> {
        if self.count == 0 {
            return None;
        }
        let e = self.entries.as_mut().get_mut(self.head)?;
        let end = e.off.checked_add(e.len)?;
        let bytes = self.data.as_mut().get_mut(e.off..end)?;
        Some((&mut e.hdr, bytes))
    }

    /// Drops the oldest frame.
    pub fn pop(&mut self) {
        if self.count > 0 {
            self.head = self.slot(1);
            self.count = self.count.saturating_sub(1);
        }
    }

    /// Drops every frame.
    pub fn clear(&mut self) {
        self.count = 0;
        self.head = 0;
        self.tail = 0;
    }
}
