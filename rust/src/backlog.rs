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
//!
//! Flooded frames (broadcast, multicast, unknown unicast: a frame the switch
//! sent to every port) take at most half of the backlog, in frames and in
//! bytes; the other half is kept for frames addressed to the port. A
//! neighbour's flood, even at its storm limit and with the receiver
//! descheduled, then cannot make the receiver lose the frames sent to it.

use super::vnet::NetHdr;

/// Where one waiting frame lies in the byte ring (the backlog's second
/// storage: the caller provides a slice of them, one per frame it may hold).
#[derive(Debug, Clone, Copy, Default)]
pub struct Entry {
    off: usize,
    len: usize,
    hdr: NetHdr,
    flooded: bool,
}

/// How a frame reached a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Addressed to the port (its MAC, or one learned behind it).
    Unicast,
    /// Sent to every port: broadcast, multicast or unknown unicast.
    Flooded,
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
    /// A flooded frame, and flooded frames fill their half of the backlog.
    FloodShare,
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
    /// Flooded frames queued, and their bytes.
    flood_frames: usize,
    flood_bytes: usize,
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
            flood_frames: 0,
            flood_bytes: 0,
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

    /// Flooded frames queued now.
    pub fn flooded(&self) -> usize {
        self.flood_frames
    }

    /// Queues a copy of `frame` with `hdr`, addressed to the port. Returns
    /// whether the backlog was empty before (the receiver needs a kick).
    pub fn push(&mut self, hdr: NetHdr, frame: &[u8]) -> Result<bool, BacklogError> {
        self.push_with(hdr, frame.len(), Delivery::Unicast, |dst| {
            dst.copy_from_slice(frame)
        })
    }

    /// Queues a frame of `len` bytes with `hdr`, which reached the port as
    /// `how`, written in place by `fill` (which gets exactly `len` bytes; a
    /// frame whose bytes are scattered is gathered straight into the
    /// backlog). Returns whether the backlog was empty before. `fill` is not
    /// called if the frame is refused. A flooded frame is refused once
    /// flooded frames would hold more than half the entries or bytes.
    pub fn push_with(
        &mut self,
        hdr: NetHdr,
        len: usize,
        how: Delivery,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<bool, BacklogError> {
        if len == 0 || len > self.cap() {
            return Err(BacklogError::BadLength);
        }
        let flooded = how == Delivery::Flooded;
        if flooded
            && (self.flood_frames >= self.entries.as_ref().len() / 2
                || self.flood_bytes.saturating_add(len) > self.cap() / 2)
        {
            return Err(BacklogError::FloodShare);
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
            *e = Entry {
                off,
                len,
                hdr,
                flooded,
            };
        }
        if flooded {
            self.flood_frames = self.flood_frames.saturating_add(1);
            self.flood_bytes = self.flood_bytes.saturating_add(len);
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
            if let Some(e) = self.entries.as_ref().get(self.head) {
                if e.flooded {
                    self.flood_frames = self.flood_frames.saturating_sub(1);
                    self.flood_bytes = self.flood_bytes.saturating_sub(e.len);
                }
            }
            self.head = self.slot(1);
            self.count = self.count.saturating_sub(1);
        }
    }

    /// Drops every frame.
    pub fn clear(&mut self) {
        self.count = 0;
        self.head = 0;
        self.tail = 0;
        self.flood_frames = 0;
        self.flood_bytes = 0;
    }
}
