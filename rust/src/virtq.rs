//! Split virtqueue (virtio 1.x), device side.
//!
//! [`Virtqueue::new`] checks the queue layout against the memory map;
//! [`Virtqueue::pop`] walks one descriptor chain, reading every descriptor
//! exactly once into a local [`Chain`] and rejecting every malformed chain with
//! its own [`QueueError`]; [`Virtqueue::push`] completes a chain in the used ring.
//! Any error caused by the guest (or by a failed guest memory access) marks the
//! queue broken: that call returns the specific error, every later call returns
//! [`QueueError::Broken`] until [`Virtqueue::reset`].

use super::memmap::{Access, MapError, MemMap};
use super::traits::{Fence, GuestMemory, MemFault};

/// Descriptor flag: the chain continues at `next`.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the buffer is device-writable (device-to-driver).
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// Descriptor flag: the buffer holds a table of indirect descriptors.
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;
/// Avail ring flag: the driver asks for no interrupt (without EVENT_IDX).
pub const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Used ring flag: the device asks for no notification (without EVENT_IDX).
pub const VRING_USED_F_NO_NOTIFY: u16 = 1;
/// Largest queue size of a split virtqueue.
pub const MAX_QUEUE_SIZE: u16 = 32768;
/// Default number of descriptors a [`Chain`] holds.
pub const DEFAULT_CHAIN: usize = 64;
/// Size in bytes of one descriptor.
pub const DESC_SIZE: u64 = 16;

/// Why a queue operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The queue is broken by an earlier error; reset it.
    Broken,
    /// Setup: the queue size is not a power of two in `1..=32768`.
    BadSize,
    /// Setup: a table is misaligned (desc 16, avail 2, used 4 bytes).
    Misaligned,
    /// Setup: a table is not entirely inside guest memory (or the used ring
    /// is read-only).
    TableOutsideMemory,
    /// The avail index moved by more than the queue size.
    AvailIndexJump,
    /// The head index from the avail ring is `>=` the queue size.
    HeadOutOfRange,
    /// A `next` index is outside its descriptor table.
    NextOutOfRange,
    /// A descriptor is visited twice in one chain.
    Loop,
    /// The chain has more descriptors than the queue size.
    ChainTooLong,
    /// The chain has more descriptors than the [`Chain`] buffer can hold.
    ChainCapacity,
    /// A buffer descriptor has length zero.
    ZeroLength,
    /// INDIRECT used although VIRTIO_F_INDIRECT_DESC was not negotiated.
    IndirectNotNegotiated,
    /// An indirect table length is zero or not a multiple of 16.
    IndirectBadLength,
    /// An indirect table is not entirely inside guest memory.
    IndirectOutsideMemory,
    /// INDIRECT flag inside an indirect table.
    NestedIndirect,
    /// INDIRECT and NEXT set on the same descriptor.
    IndirectWithNext,
    /// The chain's total length overflows `u32`.
    LengthOverflow,
    /// A device-readable descriptor follows a device-writable one.
    ReadAfterWrite,
    /// `push` with an id `>=` the queue size (a caller bug; does not break the queue).
    BadUsedId,
    /// A guest memory access failed.
    Memory,
}

impl From<MemFault> for QueueError {
    fn from(_: MemFault) -> Self {
        QueueError::Memory
    }
}

/// Where the driver placed a queue, and what was negotiated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueConfig {
    /// Number of descriptors (power of two, `1..=32768`).
    pub size: u16,
    /// GPA of the descriptor table.
    pub desc: u64,
    /// GPA of the avail (driver) ring.
    pub avail: u64,
    /// GPA of the used (device) ring.
    pub used: u64,
    /// VIRTIO_F_EVENT_IDX was negotiated.
    pub event_idx: bool,
    /// VIRTIO_F_INDIRECT_DESC was negotiated.
    pub indirect: bool,
}

/// One buffer of a chain, as read from the guest (a local copy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    /// Guest-physical address of the buffer.
    pub addr: u64,
    /// Length in bytes (never zero in a popped chain).
    pub len: u32,
    /// The device writes this buffer.
    pub writable: bool,
}

/// A popped descriptor chain: local copies of its buffers, in order.
///
/// Fixed capacity `N`; a chain with more buffers is rejected with
/// [`QueueError::ChainCapacity`]. The all-zero value is a valid empty chain.
#[derive(Clone, Debug)]
pub struct Chain<const N: usize = DEFAULT_CHAIN> {
    head: u16,
    len: usize,
    total: u32,
    descs: [Desc; N],
    ids: [u32; N],
}

impl<const N: usize> Default for Chain<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Chain<N> {
    /// An empty chain.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            head: 0,
            len: 0,
            total: 0,
            descs: [Desc {
                addr: 0,
                len: 0,
                writable: false,
            }; N],
            ids: [0; N],
        }
    }

    /// Head index: the id to return in the used ring.
    #[must_use]
    #[inline]
    pub fn head(&self) -> u16 {
        self.head
    }

    /// The buffers, in chain order (device-readable ones first).
    #[must_use]
    #[inline]
    pub fn descs(&self) -> &[Desc] {
        self.descs.get(..self.len).unwrap_or(&[])
    }

    /// Sum of all buffer lengths.
    #[must_use]
    #[inline]
    pub fn total_len(&self) -> u32 {
        self.total
    }

    fn clear(&mut self, head: u16) {
        self.head = head;
        self.len = 0;
        self.total = 0;
    }

    /// Was descriptor `id` of the current table already visited (ids from `from` on)?
    #[inline]
    fn seen(&self, from: usize, id: u32) -> bool {
        self.ids
            .get(from..self.len)
            .is_some_and(|ids| ids.contains(&id))
    }

    #[inline]
    fn push(&mut self, id: u32, d: Desc) -> Result<(), QueueError> {
        let slot = self
            .descs
            .get_mut(self.len)
            .ok_or(QueueError::ChainCapacity)?;
        *slot = d;
        let ids = self
            .ids
            .get_mut(self.len)
            .ok_or(QueueError::ChainCapacity)?;
        *ids = id;
        self.len = self.len.wrapping_add(1);
        Ok(())
    }
}

/// A descriptor exactly as laid out in guest memory.
struct RawDesc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

#[inline]
fn read_desc<M: GuestMemory>(mem: &M, gpa: u64) -> Result<RawDesc, QueueError> {
    let mut b = [0u8; 16];
    mem.read(gpa, &mut b)?;
    let [a0, a1, a2, a3, a4, a5, a6, a7, l0, l1, l2, l3, f0, f1, n0, n1] = b;
    Ok(RawDesc {
        addr: u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        len: u32::from_le_bytes([l0, l1, l2, l3]),
        flags: u16::from_le_bytes([f0, f1]),
        next: u16::from_le_bytes([n0, n1]),
    })
}

/// `vring_need_event`: should the other side be notified, given its event
/// index, the new index and the index at the previous notification check?
#[must_use]
#[inline]
pub fn vring_need_event(event_idx: u16, new_idx: u16, old_idx: u16) -> bool {
    new_idx.wrapping_sub(event_idx).wrapping_sub(1) < new_idx.wrapping_sub(old_idx)
}

/// See [`Virtqueue::indices`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueIndices {
    /// The next avail entry the device will take.
    pub next_avail: u16,
    /// The used index the device published.
    pub used: u16,
    /// The guest's avail index.
    pub guest_avail: u16,
    /// The guest's `used_event` (EVENT_IDX).
    pub used_event: u16,
    /// The `avail_event` the device asked for (EVENT_IDX).
    pub avail_event: u16,
}

/// Device-side state of one split virtqueue. Small; the all-zero value is an
/// unusable queue of size 0 (every op fails) until replaced by [`Virtqueue::new`].
#[derive(Clone, Debug, Default)]
pub struct Virtqueue {
    cfg: QueueConfig,
    last_avail: u16,
    shadow_avail: u16,
    used_idx: u16,
    /// Used entries written after `used_idx` but not yet published
    /// ([`Virtqueue::push_held`]).
    held: u16,
    used_flags: u16,
    in_flight: u16,
    signalled_used: u16,
    signalled_valid: bool,
    broken: bool,
}

/// Byte sizes of (desc, avail, used) for a queue of `size` descriptors.
fn table_sizes(size: u16, event_idx: bool) -> (u64, u64, u64) {
    let n = u64::from(size);
    let hdr = if event_idx { 6 } else { 4 };
    (
        n.wrapping_mul(DESC_SIZE),
        n.wrapping_mul(2).wrapping_add(hdr),
        n.wrapping_mul(8).wrapping_add(hdr),
    )
}

impl Virtqueue {
    /// Checks the layout of a queue and returns it in its initial state.
    pub fn new<const S: usize>(cfg: QueueConfig, map: &MemMap<S>) -> Result<Self, QueueError> {
        if cfg.size == 0 || cfg.size > MAX_QUEUE_SIZE || !cfg.size.is_power_of_two() {
            return Err(QueueError::BadSize);
        }
        if cfg.desc % 16 != 0 || cfg.avail % 2 != 0 || cfg.used % 4 != 0 {
            return Err(QueueError::Misaligned);
        }
        let q = Self {
            cfg,
            ..Self::default()
        };
        q.check_tables(map)?;
        Ok(q)
    }

    /// Checks again that the three tables are inside guest memory (after a
    /// memory map change). Marks the queue broken if not.
    pub fn recheck<const S: usize>(&mut self, map: &MemMap<S>) -> Result<(), QueueError> {
        self.live()?;
        let r = self.check_tables(map);
        self.guard(r)
    }

    fn check_tables<const S: usize>(&self, map: &MemMap<S>) -> Result<(), QueueError> {
        let (d, a, u) = table_sizes(self.cfg.size, self.cfg.event_idx);
        let bad = |_: MapError| QueueError::TableOutsideMemory;
        map.lookup(self.cfg.desc, d, Access::Read).map_err(bad)?;
        map.lookup(self.cfg.avail, a, Access::Read).map_err(bad)?;
        map.lookup(self.cfg.used, u, Access::Write).map_err(bad)?;
        Ok(())
    }

    /// Resumes a queue where another device left it (vhost's
    /// `VHOST_SET_VRING_BASE`): the next chain popped is avail entry
    /// `last_avail`, and used entries go on from `used_idx` (the used ring's
    /// index as the guest sees it). Nothing is in flight: the chains between
    /// the two were completed by whoever ran the queue before.
    pub fn resume(&mut self, last_avail: u16, used_idx: u16) {
        self.last_avail = last_avail;
        self.shadow_avail = last_avail;
        self.used_idx = used_idx;
        self.held = 0;
        self.in_flight = 0;
        self.signalled_valid = false;
    }

    /// Back to the initial state (indices zero, not broken), same layout.
    pub fn reset(&mut self) {
        *self = Self {
            cfg: self.cfg,
            ..Self::default()
        };
    }

    /// The queue configuration.
    #[must_use]
    pub fn config(&self) -> &QueueConfig {
        &self.cfg
    }

    /// Is the queue broken?
    #[must_use]
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Index of the next avail entry the device will consume.
    #[must_use]
    pub fn last_avail(&self) -> u16 {
        self.last_avail
    }

    /// Current used index (as published to the guest).
    #[must_use]
    pub fn used_idx(&self) -> u16 {
        self.used_idx
    }

    /// Used entries written but not published yet ([`Self::push_held`]).
    #[must_use]
    pub fn held(&self) -> u16 {
        self.held
    }

    /// The queue's indices as device and guest see them now, for debugging
    /// (debugfs): nothing is checked, unreadable fields read as 0.
    pub fn indices<M: GuestMemory>(&self, mem: &M) -> QueueIndices {
        let rd = |a: u64| mem.read_u16(a).unwrap_or(0);
        QueueIndices {
            next_avail: self.last_avail,
            used: self.used_idx,
            guest_avail: rd(self.cfg.avail.wrapping_add(2)),
            used_event: rd(self.used_event_addr()),
            avail_event: rd(self.avail_event_addr()),
        }
    }

    /// Number of popped chains not yet pushed back.
    #[must_use]
    pub fn in_flight(&self) -> u16 {
        self.in_flight
    }

    fn live(&self) -> Result<(), QueueError> {
        if self.broken || self.cfg.size == 0 {
            Err(QueueError::Broken)
        } else {
            Ok(())
        }
    }

    fn guard<T>(&mut self, r: Result<T, QueueError>) -> Result<T, QueueError> {
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    fn avail_ring(&self) -> u64 {
        self.cfg.avail.wrapping_add(4)
    }

    fn used_event_addr(&self) -> u64 {
        self.avail_ring()
            .wrapping_add(u64::from(self.cfg.size).wrapping_mul(2))
    }

    fn avail_event_addr(&self) -> u64 {
        self.cfg
            .used
            .wrapping_add(4)
            .wrapping_add(u64::from(self.cfg.size).wrapping_mul(8))
    }

    /// Reads the guest's avail index and checks how far it moved.
    fn refresh_avail<M: GuestMemory>(&mut self, mem: &M) -> Result<u16, QueueError> {
        let idx = mem.read_u16(self.cfg.avail.wrapping_add(2))?;
        let pending = idx.wrapping_sub(self.last_avail);
        if pending > self.cfg.size {
            return Err(QueueError::AvailIndexJump);
        }
        self.shadow_avail = idx;
        Ok(pending)
    }

    /// Pops the next available chain into `chain`.
    ///
    /// Returns `Ok(false)` if the guest has made nothing new available.
    pub fn pop<M: GuestMemory, const S: usize, const N: usize>(
        &mut self,
        mem: &M,
        map: &MemMap<S>,
        chain: &mut Chain<N>,
    ) -> Result<bool, QueueError> {
        self.live()?;
        let r = self.pop_inner(mem, map, chain);
        self.guard(r)
    }

    fn pop_inner<M: GuestMemory, const S: usize, const N: usize>(
        &mut self,
        mem: &M,
        map: &MemMap<S>,
        chain: &mut Chain<N>,
    ) -> Result<bool, QueueError> {
        if self.shadow_avail == self.last_avail {
            if self.refresh_avail(mem)? == 0 {
                return Ok(false);
            }
            // Read the ring entries only after the index that covers them.
            mem.fence(Fence::Read);
        }
        let slot = self.last_avail & self.cfg.size.wrapping_sub(1);
        let head = mem.read_u16(
            self.avail_ring()
                .wrapping_add(u64::from(slot).wrapping_mul(2)),
        )?;
        self.walk(mem, map, head, chain)?;
        self.last_avail = self.last_avail.wrapping_add(1);
        self.in_flight = self.in_flight.wrapping_add(1);
        Ok(true)
    }

    /// Puts the last popped chain back: the next `pop` returns it again (read
    /// afresh). For backpressure, when the chain cannot be served now. Returns
    /// false if nothing is in flight.
    pub fn unpop(&mut self) -> bool {
        if self.broken || self.in_flight == 0 {
            return false;
        }
        self.last_avail = self.last_avail.wrapping_sub(1);
        self.in_flight = self.in_flight.wrapping_sub(1);
        true
    }

    fn walk<M: GuestMemory, const S: usize, const N: usize>(
        &self,
        mem: &M,
        map: &MemMap<S>,
        head: u16,
        chain: &mut Chain<N>,
    ) -> Result<(), QueueError> {
        let size = self.cfg.size;
        if head >= size {
            return Err(QueueError::HeadOutOfRange);
        }
        chain.clear(head);
        let mut table = self.cfg.desc;
        let mut table_len = u32::from(size);
        let mut in_indirect = false;
        let mut ns_start = 0usize;
        let mut idx = u32::from(head);
        let mut count: u32 = 0;
        let mut seen_write = false;
        // Bit `idx % 64` of every index visited in this table: a clear bit
        // proves `idx` is new, so the exact scan runs only on a collision.
        let mut visited: u64 = 0;
        loop {
            let bit = 1u64.rotate_left(idx);
            if visited & bit != 0 && chain.seen(ns_start, idx) {
                return Err(QueueError::Loop);
            }
            visited |= bit;
            let gpa = table.wrapping_add(u64::from(idx).wrapping_mul(DESC_SIZE));
            let d = read_desc(mem, gpa)?;
            if d.flags & VIRTQ_DESC_F_INDIRECT != 0 {
                if in_indirect {
                    return Err(QueueError::NestedIndirect);
                }
                if !self.cfg.indirect {
                    return Err(QueueError::IndirectNotNegotiated);
                }
                if d.flags & VIRTQ_DESC_F_NEXT != 0 {
                    return Err(QueueError::IndirectWithNext);
                }
                if d.len == 0 || u64::from(d.len) % DESC_SIZE != 0 {
                    return Err(QueueError::IndirectBadLength);
                }
                map.lookup(d.addr, u64::from(d.len), Access::Read)
                    .map_err(|_| QueueError::IndirectOutsideMemory)?;
                table = d.addr;
                table_len = d.len / 16;
                in_indirect = true;
                ns_start = chain.len;
                visited = 0;
                idx = 0;
                continue;
            }
            count = count.wrapping_add(1);
            if count > u32::from(size) {
                return Err(QueueError::ChainTooLong);
            }
            if d.len == 0 {
                return Err(QueueError::ZeroLength);
            }
            let writable = d.flags & VIRTQ_DESC_F_WRITE != 0;
            if seen_write && !writable {
                return Err(QueueError::ReadAfterWrite);
            }
            seen_write |= writable;
            chain.total = chain
                .total
                .checked_add(d.len)
                .ok_or(QueueError::LengthOverflow)?;
            chain.push(
                idx,
                Desc {
                    addr: d.addr,
                    len: d.len,
                    writable,
                },
            )?;
            if d.flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(());
            }
            idx = u32::from(d.next);
            if idx >= table_len {
                return Err(QueueError::NextOutOfRange);
            }
        }
    }

    /// Returns chain `id` to the guest with `len` bytes written, and publishes
    /// the new used index (with any entries held before it) after a write
    /// barrier.
    pub fn push<M: GuestMemory>(&mut self, mem: &M, id: u16, len: u32) -> Result<(), QueueError> {
        self.push_held(mem, id, len)?;
        self.publish(mem).map(|_| ())
    }

    /// As [`Self::push`], but the used index is left as it is: the guest
    /// does not see the entry (and may not reuse the chain's descriptors)
    /// until [`Self::publish`]. A device that holds entries must publish
    /// them before it stops serving the queue for good (they are the
    /// guest's chains); one that is reset need not. At most the queue's size
    /// can be held: every chain is popped once.
    pub fn push_held<M: GuestMemory>(
        &mut self,
        mem: &M,
        id: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        self.live()?;
        if id >= self.cfg.size {
            return Err(QueueError::BadUsedId);
        }
        let r = self.write_used(mem, id, len);
        self.guard(r)
    }

    fn write_used<M: GuestMemory>(&mut self, mem: &M, id: u16, len: u32) -> Result<(), QueueError> {
        let slot = self.used_idx.wrapping_add(self.held) & self.cfg.size.wrapping_sub(1);
        let elem = self
            .cfg
            .used
            .wrapping_add(4)
            .wrapping_add(u64::from(slot).wrapping_mul(8));
        mem.write_u32(elem, u32::from(id))?;
        mem.write_u32(elem.wrapping_add(4), len)?;
        self.held = self.held.wrapping_add(1);
        self.in_flight = self.in_flight.saturating_sub(1);
        Ok(())
    }

    /// Publishes the entries held ([`Self::push_held`]): the used index
    /// moves past them after a write barrier. Returns whether there were
    /// any (then [`Self::need_notify`] says whether to interrupt).
    pub fn publish<M: GuestMemory>(&mut self, mem: &M) -> Result<bool, QueueError> {
        if self.held == 0 {
            return Ok(false);
        }
        self.live()?;
        let r = self.publish_inner(mem);
        self.guard(r).map(|()| true)
    }

    fn publish_inner<M: GuestMemory>(&mut self, mem: &M) -> Result<(), QueueError> {
        // The elements must be visible before the index that publishes them.
        mem.fence(Fence::Write);
        let next = self.used_idx.wrapping_add(self.held);
        mem.write_u16(self.cfg.used.wrapping_add(2), next)?;
        self.used_idx = next;
        self.held = 0;
        Ok(())
    }

    /// After pushing: must the guest be interrupted? Honors `used_event`
    /// (EVENT_IDX) or `VRING_AVAIL_F_NO_INTERRUPT` (without EVENT_IDX).
    /// Entries held and not published are not counted: the guest does not
    /// see them yet.
    pub fn need_notify<M: GuestMemory>(&mut self, mem: &M) -> Result<bool, QueueError> {
        self.live()?;
        let r = self.need_notify_inner(mem);
        self.guard(r)
    }

    fn need_notify_inner<M: GuestMemory>(&mut self, mem: &M) -> Result<bool, QueueError> {
        // The used index must be visible before we read the guest's wishes.
        mem.fence(Fence::Full);
        if self.cfg.event_idx {
            let old = self.signalled_used;
            let valid = self.signalled_valid;
            let new = self.used_idx;
            let event = mem.read_u16(self.used_event_addr())?;
            self.signalled_used = new;
            self.signalled_valid = true;
            Ok(!valid || vring_need_event(event, new, old))
        } else {
            let flags = mem.read_u16(self.cfg.avail)?;
            Ok(flags & VRING_AVAIL_F_NO_INTERRUPT == 0)
        }
    }

    /// Asks the guest to notify again when it adds buffers: writes `avail_event`
    /// (EVENT_IDX) or clears `VRING_USED_F_NO_NOTIFY`. Returns true if buffers
    /// are already available (the caller must keep polling, or it may miss them).
    pub fn enable_notify<M: GuestMemory>(&mut self, mem: &M) -> Result<bool, QueueError> {
        self.live()?;
        let r = self.enable_notify_inner(mem);
        self.guard(r)
    }

    /// As [`Self::enable_notify`], for a device that found too few buffers
    /// (a mergeable frame put its chains back with [`Self::unpop`]): returns
    /// true only if the guest added buffers since the device last read the
    /// avail index. Those it has seen already are no reason to retry, and
    /// `avail_event` asks for a notify at the next one it adds.
    pub fn enable_notify_for_more<M: GuestMemory>(&mut self, mem: &M) -> Result<bool, QueueError> {
        self.live()?;
        let seen = self.shadow_avail;
        let r = self
            .enable_notify_inner(mem)
            .map(|_| self.shadow_avail != seen);
        self.guard(r)
    }

    fn enable_notify_inner<M: GuestMemory>(&mut self, mem: &M) -> Result<bool, QueueError> {
        if self.cfg.event_idx {
            mem.write_u16(self.avail_event_addr(), self.shadow_avail)?;
        } else {
            self.used_flags &= !VRING_USED_F_NO_NOTIFY;
            mem.write_u16(self.cfg.used, self.used_flags)?;
        }
        // Publish the wish before checking for buffers added meanwhile.
        mem.fence(Fence::Full);
        Ok(self.refresh_avail(mem)? != 0)
    }

    /// Asks the guest to notify only once it has added `n` buffers past
    /// those the device has seen (EVENT_IDX: `avail_event` at the `n`-th; a
    /// guest adding several at once notifies when it passes it). Without
    /// EVENT_IDX there is no such threshold: as [`Self::disable_notify`].
    /// `n` of 0 is taken as 1.
    pub fn notify_after<M: GuestMemory>(&mut self, mem: &M, n: u16) -> Result<(), QueueError> {
        self.live()?;
        if !self.cfg.event_idx {
            return self.disable_notify(mem);
        }
        let event = self.shadow_avail.wrapping_add(n.saturating_sub(1));
        let r = mem
            .write_u16(self.avail_event_addr(), event)
            .map_err(QueueError::from);
        self.guard(r)
    }

    /// Asks the guest not to notify (without EVENT_IDX: sets
    /// `VRING_USED_F_NO_NOTIFY`; with EVENT_IDX nothing needs writing: the
    /// guest notifies only when it passes `avail_event`).
    pub fn disable_notify<M: GuestMemory>(&mut self, mem: &M) -> Result<(), QueueError> {
        self.live()?;
        if self.cfg.event_idx {
            return Ok(());
        }
        self.used_flags |= VRING_USED_F_NO_NOTIFY;
        let r = mem
            .write_u16(self.cfg.used, self.used_flags)
            .map_err(QueueError::from);
        self.guard(r)
    }
}
