//! Descriptor ring bookkeeping: which descriptors the NIC owns, what buffer
//! each one carries, and the checks on what the NIC writes back.
//!
//! A ring of `size` descriptors (a multiple of 8, at most `N`) is shared with
//! the NIC through head and tail registers: the NIC owns the descriptors from
//! its head up to (not including) the tail pvpass writes. pvpass keeps one
//! descriptor unused so that a full ring never looks empty (tail == head),
//! so at most `size - 1` are in flight.
//!
//! The descriptor memory itself is behind [`DescMem`] (coherent DMA memory in
//! the kernel, guest RAM over qtest in the test). Everything read back from it
//! is treated as untrusted: a write-back that does not fit the buffer that was
//! posted at that position is a [`RxFaultKind`], never a panic or an index
//! outside the ring.

use super::super::traits::Fence;
use super::desc::{rx_read, tx_done, RawDesc, RxWriteback};

/// Largest ring the 82576 takes (RDLEN/TDLEN up to 4096 descriptors).
pub const RING_MAX: u16 = 4096;
/// Ring sizes must be a multiple of this (RDLEN/TDLEN: multiples of 128 bytes).
pub const RING_ALIGN_DESCS: u16 = 8;

/// Access to one ring's descriptor memory.
pub trait DescMem {
    /// Reads descriptor `i` (`i < size`).
    fn read(&mut self, i: u16) -> RawDesc;
    /// Writes descriptor `i` (`i < size`).
    fn write(&mut self, i: u16, d: &RawDesc);
    /// Memory barrier: `Fence::Read` between reading a DD bit and the rest of
    /// the write-back (`dma_rmb`), `Fence::Write` between writing descriptors
    /// and the tail register write that hands them over (`dma_wmb`; MMIO
    /// writes on x86 are ordered anyway).
    fn fence(&mut self, kind: Fence);
}

/// Why a ring operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// Size zero, not a multiple of 8, over 4096, or over the capacity `N`.
    BadSize,
    /// No free descriptor (or not enough for the whole frame).
    Full,
    /// A receive buffer shorter than the queue's buffer size (the NIC fills up
    /// to the buffer size whatever the frame) or, on a ring with a frame
    /// limit ([`RxRing::limit`]), than that limit; at address 0 (the NIC
    /// would skip it), or whose range wraps.
    BadBuffer,
    /// A transmit frame of no descriptors, or of more than the ring holds.
    BadFrame,
    /// A head index from the NIC outside the ring or outside the in-flight
    /// descriptors.
    BadHead,
}

/// What is wrong with a receive write-back. The descriptor is consumed (the
/// buffer is the caller's again: recycle it); the frame is not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxFaultKind {
    /// Written length zero or over the buffer size.
    BadLength,
    /// The frame did not end in this buffer (EOP clear): it spans buffers,
    /// which pvpass's per-pool length limit must prevent.
    SpansBuffers,
    /// The rest of a frame that spanned buffers.
    Continuation,
    /// The NIC flagged the frame as damaged (CRC, symbol, data error).
    FrameError,
}

/// A receive write-back that could not be delivered, with the buffer it
/// consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxFault {
    /// The caller's cookie of the buffer.
    pub cookie: u64,
    /// What was wrong.
    pub kind: RxFaultKind,
}

/// A received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxDone {
    /// The caller's cookie of the buffer.
    pub cookie: u64,
    /// The bus address the frame was written at.
    pub addr: u64,
    /// Frame length (`1..=` buffer size).
    pub len: u32,
    /// The decoded write-back (status, checksum verdict, VLAN).
    pub wb: RxWriteback,
}

/// One receive descriptor's buffer, as posted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxSlot {
    /// Bus address given to the NIC.
    pub addr: u64,
    /// Its length as posted.
    pub len: u32,
    /// The caller's cookie (a pin token, a virtio head, ...).
    pub cookie: u64,
}

fn check_size(size: u16, cap: usize) -> Result<(), RingError> {
    if size == 0 || size % RING_ALIGN_DESCS != 0 || size > RING_MAX || usize::from(size) > cap {
        Err(RingError::BadSize)
    } else {
        Ok(())
    }
}

fn wrap_add(i: u16, n: u16, size: u16) -> u16 {
    // i < size <= 4096 and n <= size: no overflow in u32.
    let s = u32::from(i).wrapping_add(u32::from(n));
    let size = u32::from(size);
    let r = if s >= size { s.wrapping_sub(size) } else { s };
    u16::try_from(r).unwrap_or(0)
}

/// A receive ring of up to `N` descriptors. The all-zero value (size 0) is a
/// valid, unconfigured ring.
#[derive(Clone, Debug)]
pub struct RxRing<const N: usize> {
    size: u16,
    buf_len: u32,
    /// Shortest buffer `post` takes: the buffer size, or the frame limit.
    min_len: u32,
    next_to_use: u16,
    next_to_clean: u16,
    posted: u16,
    discarding: bool,
    slots: [RxSlot; N],
}

impl<const N: usize> RxRing<N> {
    /// An unconfigured ring.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            size: 0,
            buf_len: 0,
            min_len: 0,
            next_to_use: 0,
            next_to_clean: 0,
            posted: 0,
            discarding: false,
            slots: [RxSlot {
                addr: 0,
                len: 0,
                cookie: 0,
            }; N],
        }
    }

    /// Configures an empty ring of `size` descriptors for buffers of
    /// `buf_len` bytes (the queue's SRRCTL buffer size). Any buffers still
    /// recorded are forgotten: call [`RxRing::drain`] first.
    pub fn reset(&mut self, size: u16, buf_len: u32) -> Result<(), RingError> {
        check_size(size, N)?;
        if buf_len == 0 {
            return Err(RingError::BadBuffer);
        }
        self.size = size;
        self.buf_len = buf_len;
        self.min_len = buf_len;
        self.next_to_use = 0;
        self.next_to_clean = 0;
        self.posted = 0;
        self.discarding = false;
        Ok(())
    }

    /// The NIC writes no frame longer than `frame_max` into this ring (the
    /// queue's pool drops longer ones: RLPML, with the CRC stripped), so a
    /// buffer of `frame_max` bytes may be posted even if it is shorter than
    /// the buffer size: a guest's receive buffer lent as it is. A write-back
    /// longer than the buffer posted at its position is refused
    /// ([`RxFaultKind::BadLength`]). Only lowers the minimum.
    pub fn limit(&mut self, frame_max: u32) -> Result<(), RingError> {
        if frame_max == 0 {
            return Err(RingError::BadBuffer);
        }
        self.min_len = self.min_len.min(frame_max);
        Ok(())
    }

    /// Ring size in descriptors (0: unconfigured).
    #[must_use]
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Buffers the NIC currently holds.
    #[must_use]
    pub fn posted(&self) -> u16 {
        self.posted
    }

    /// Buffers that can still be posted.
    #[must_use]
    pub fn free(&self) -> u16 {
        self.size.saturating_sub(1).saturating_sub(self.posted)
    }

    /// The value for RDT: one past the last posted descriptor.
    #[must_use]
    pub fn tail(&self) -> u16 {
        self.next_to_use
    }

    /// The next descriptor [`RxRing::reap`] looks at (where the NIC's head
    /// RDH is once it has written back everything before it).
    #[must_use]
    pub fn head(&self) -> u16 {
        self.next_to_clean
    }

    /// Posts a buffer at the next free descriptor. `len` is the buffer's
    /// usable length from `addr`; it must hold the queue's whole buffer size
    /// (or the ring's frame limit, [`RxRing::limit`]).
    /// Write the tail ([`RxRing::tail`]) to RDT after a batch.
    pub fn post<M: DescMem>(
        &mut self,
        mem: &mut M,
        addr: u64,
        len: u32,
        cookie: u64,
    ) -> Result<(), RingError> {
        if self.free() == 0 {
            return Err(RingError::Full);
        }
        if addr == 0 || len < self.min_len || addr.checked_add(u64::from(len)).is_none() {
            return Err(RingError::BadBuffer);
        }
        let i = self.next_to_use;
        let slot = self
            .slots
            .get_mut(usize::from(i))
            .ok_or(RingError::BadSize)?;
        *slot = RxSlot { addr, len, cookie };
        mem.write(i, &rx_read(addr));
        self.next_to_use = wrap_add(i, 1, self.size);
        self.posted = self.posted.wrapping_add(1);
        Ok(())
    }

    /// Takes the next completed descriptor, if the NIC wrote one back.
    ///
    /// `Ok(None)`: nothing new. `Err(fault)`: the descriptor was consumed
    /// but its frame must not be delivered (the fault says why and gives the
    /// buffer back). A frame that spans buffers is refused as a whole: its
    /// first buffer is [`RxFaultKind::SpansBuffers`], the following ones up to
    /// and including its last are [`RxFaultKind::Continuation`].
    pub fn reap<M: DescMem>(&mut self, mem: &mut M) -> Result<Option<RxDone>, RxFault> {
        if self.posted == 0 {
            return Ok(None);
        }
        let i = self.next_to_clean;
        let Some(slot) = self.slots.get(usize::from(i)).copied() else {
            return Ok(None);
        };
        if !RxWriteback::parse(&mem.read(i)).done() {
            return Ok(None);
        }
        mem.fence(Fence::Read);
        let wb = RxWriteback::parse(&mem.read(i));
        self.next_to_clean = wrap_add(i, 1, self.size);
        self.posted = self.posted.wrapping_sub(1);
        let fault = |kind| RxFault {
            cookie: slot.cookie,
            kind,
        };
        if self.discarding {
            self.discarding = !wb.eop();
            return Err(fault(RxFaultKind::Continuation));
        }
        if !wb.eop() {
            self.discarding = true;
            return Err(fault(RxFaultKind::SpansBuffers));
        }
        let len = u32::from(wb.length);
        if len == 0 || len > self.buf_len || len > slot.len {
            return Err(fault(RxFaultKind::BadLength));
        }
        if wb.frame_error() {
            return Err(fault(RxFaultKind::FrameError));
        }
        Ok(Some(RxDone {
            cookie: slot.cookie,
            addr: slot.addr,
            len,
            wb,
        }))
    }

    /// Forgets every posted buffer, handing each to `f` (to unpin or free
    /// it). Only after the queue was disabled and the disable confirmed
    /// ([`super::pools::Nic::disable_rx`] returned `Ok`): until then the NIC
    /// may still write into them.
    pub fn drain(&mut self, mut f: impl FnMut(RxSlot)) {
        let mut i = self.next_to_clean;
        for _ in 0..self.posted {
            if let Some(s) = self.slots.get(usize::from(i)) {
                f(*s);
            }
            i = wrap_add(i, 1, self.size);
        }
        self.posted = 0;
        self.next_to_clean = self.next_to_use;
        self.discarding = false;
    }
}

impl<const N: usize> Default for RxRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// One transmitted frame, recorded at its first descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct TxSlot {
    cookie: u64,
    ndesc: u16,
}

/// A transmitted frame the NIC is done with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxDone {
    /// The caller's cookie of the frame.
    pub cookie: u64,
}

/// A transmit ring of up to `N` descriptors. The all-zero value is a valid,
/// unconfigured ring.
#[derive(Clone, Debug)]
pub struct TxRing<const N: usize> {
    size: u16,
    next_to_use: u16,
    next_to_clean: u16,
    in_flight: u16,
    slots: [TxSlot; N],
}

impl<const N: usize> TxRing<N> {
    /// An unconfigured ring.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            size: 0,
            next_to_use: 0,
            next_to_clean: 0,
            in_flight: 0,
            slots: [TxSlot {
                cookie: 0,
                ndesc: 0,
            }; N],
        }
    }

    /// Configures an empty ring of `size` descriptors (call
    /// [`TxRing::drain`] first if frames are recorded).
    pub fn reset(&mut self, size: u16) -> Result<(), RingError> {
        check_size(size, N)?;
        self.size = size;
        self.next_to_use = 0;
        self.next_to_clean = 0;
        self.in_flight = 0;
        Ok(())
    }

    /// Ring size in descriptors (0: unconfigured).
    #[must_use]
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Descriptors the NIC currently holds.
    #[must_use]
    pub fn in_flight(&self) -> u16 {
        self.in_flight
    }

    /// Descriptors that can still be posted.
    #[must_use]
    pub fn free(&self) -> u16 {
        self.size.saturating_sub(1).saturating_sub(self.in_flight)
    }

    /// The value for TDT: one past the last posted descriptor.
    #[must_use]
    pub fn tail(&self) -> u16 {
        self.next_to_use
    }

    /// Posts one frame's descriptors (from [`super::desc::build_tx`], the
    /// last with `EOP | RS`), all or nothing. Write the tail
    /// ([`TxRing::tail`]) to TDT after a batch.
    pub fn post<M: DescMem>(
        &mut self,
        mem: &mut M,
        descs: &[RawDesc],
        cookie: u64,
    ) -> Result<(), RingError> {
        let n = u16::try_from(descs.len()).map_err(|_| RingError::BadFrame)?;
        if n == 0 || n >= self.size {
            return Err(RingError::BadFrame);
        }
        if n > self.free() {
            return Err(RingError::Full);
        }
        let first = self.next_to_use;
        let slot = self
            .slots
            .get_mut(usize::from(first))
            .ok_or(RingError::BadSize)?;
        *slot = TxSlot { cookie, ndesc: n };
        let mut i = first;
        for d in descs {
            mem.write(i, d);
            i = wrap_add(i, 1, self.size);
        }
        self.next_to_use = i;
        self.in_flight = self.in_flight.wrapping_add(n);
        Ok(())
    }

    /// Takes the oldest frame if the NIC wrote DD into its last descriptor.
    pub fn reap<M: DescMem>(&mut self, mem: &mut M) -> Option<TxDone> {
        if self.in_flight == 0 {
            return None;
        }
        let first = self.next_to_clean;
        let slot = self.slots.get(usize::from(first)).copied()?;
        if slot.ndesc == 0 || slot.ndesc > self.in_flight {
            // Not a frame start: cannot happen with in_flight > 0 unless
            // the state was corrupted; refuse rather than walk the ring.
            return None;
        }
        let last = wrap_add(first, slot.ndesc.wrapping_sub(1), self.size);
        if !tx_done(&mem.read(last)) {
            return None;
        }
        mem.fence(Fence::Read);
        self.next_to_clean = wrap_add(last, 1, self.size);
        self.in_flight = self.in_flight.wrapping_sub(slot.ndesc);
        Some(TxDone {
            cookie: slot.cookie,
        })
    }

    /// Takes every frame that lies wholly before `head`, the NIC's head
    /// index (TDH, or a head write-back), handing each cookie to `f`. A head
    /// outside the ring, or not inside the in-flight descriptors, is
    /// [`RingError::BadHead`] and changes nothing.
    pub fn reap_to_head(&mut self, head: u32, mut f: impl FnMut(TxDone)) -> Result<(), RingError> {
        let head = u16::try_from(head).map_err(|_| RingError::BadHead)?;
        if head >= self.size {
            return Err(RingError::BadHead);
        }
        // Distance from next_to_clean to head, along the ring.
        let done = wrap_add(head, self.size.wrapping_sub(self.next_to_clean), self.size);
        if done > self.in_flight {
            return Err(RingError::BadHead);
        }
        let mut left = done;
        while left > 0 {
            let Some(slot) = self.slots.get(usize::from(self.next_to_clean)).copied() else {
                return Err(RingError::BadHead);
            };
            if slot.ndesc == 0 || slot.ndesc > left {
                // The head is inside a frame: the frame is not done yet.
                break;
            }
            f(TxDone {
                cookie: slot.cookie,
            });
            self.next_to_clean = wrap_add(self.next_to_clean, slot.ndesc, self.size);
            self.in_flight = self.in_flight.wrapping_sub(slot.ndesc);
            left = left.wrapping_sub(slot.ndesc);
        }
        Ok(())
    }

    /// Forgets every frame in flight, handing each cookie to `f`. Only after
    /// [`super::pools::Nic::disable_tx`] returned `Ok`.
    pub fn drain(&mut self, mut f: impl FnMut(TxDone)) {
        while self.in_flight > 0 {
            let Some(slot) = self.slots.get(usize::from(self.next_to_clean)).copied() else {
                break;
            };
            if slot.ndesc == 0 || slot.ndesc > self.in_flight {
                break;
            }
            f(TxDone {
                cookie: slot.cookie,
            });
            self.next_to_clean = wrap_add(self.next_to_clean, slot.ndesc, self.size);
            self.in_flight = self.in_flight.wrapping_sub(slot.ndesc);
        }
        self.in_flight = 0;
        self.next_to_clean = self.next_to_use;
    }
}

impl<const N: usize> Default for TxRing<N> {
    fn default() -> Self {
        Self::new()
    }
}
