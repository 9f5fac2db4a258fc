//! The VM's memory map: guest-physical slots backed by host (userspace) memory.
//!
//! A [`MemMap`] mirrors the KVM memslots of one VM at one memslot generation. It
//! answers one question: is the guest range `[gpa, gpa + len)` entirely backed by
//! guest memory that the device may access this way, and at which host address
//! does it start? Fixed capacity, no allocation.

/// Page size used for slot alignment (4 KiB).
pub const PAGE_SIZE: u64 = 4096;

/// Default number of slots of a [`MemMap`].
pub const DEFAULT_SLOTS: usize = 32;

/// One memory slot: `size` bytes at guest address `gpa`, backed at host address `host`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    /// First guest-physical address of the slot (page-aligned).
    pub gpa: u64,
    /// Size in bytes (page-aligned, non-zero).
    pub size: u64,
    /// Host (userspace) address backing `gpa` (page-aligned).
    pub host: u64,
    /// The device must not write into this slot.
    pub read_only: bool,
}

/// Direction of a device access to guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The device reads guest memory (driver-to-device buffer).
    Read,
    /// The device writes guest memory (device-to-driver buffer, used ring).
    Write,
}

/// Why a range or a slot was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The range has length zero.
    ZeroLength,
    /// `gpa + len` overflows `u64`.
    Overflow,
    /// Some byte of the range is outside every slot.
    Unmapped,
    /// The range crosses from one slot into the next one and the two are not
    /// contiguous in host memory.
    Straddle,
    /// A device write into a read-only slot.
    ReadOnly,
    /// Adding a slot: the map is full.
    Full,
    /// Adding a slot: it overlaps an existing slot.
    Overlap,
    /// Adding a slot: zero size, not page-aligned, or its end overflows.
    BadSlot,
}

/// Fixed-capacity memory map of one VM, slots kept sorted by guest address.
///
/// The all-zero value is a valid empty map of generation 0.
#[derive(Clone, Debug)]
pub struct MemMap<const N: usize = DEFAULT_SLOTS> {
    slots: [Slot; N],
    len: usize,
    /// KVM memslot generation this map was built from; compare it with the
    /// current one before trusting the map.
    pub generation: u64,
}

impl<const N: usize> Default for MemMap<N> {
    fn default() -> Self {
        Self::new(0)
    }
}

#[inline]
fn slot_end(s: &Slot) -> u64 {
    // Slots are validated on insert: this cannot overflow.
    s.gpa.saturating_add(s.size)
}

impl<const N: usize> MemMap<N> {
    /// An empty map for memslot generation `generation`.
    #[must_use]
    pub const fn new(generation: u64) -> Self {
        Self {
            slots: [Slot {
                gpa: 0,
                size: 0,
                host: 0,
                read_only: false,
            }; N],
            len: 0,
            generation,
        }
    }

    /// Removes every slot and sets a new generation (works in place).
    pub fn clear(&mut self, generation: u64) {
        self.len = 0;
        self.generation = generation;
    }

    /// The slots, sorted by guest address.
    #[must_use]
    #[inline]
    pub fn slots(&self) -> &[Slot] {
        self.slots.get(..self.len).unwrap_or(&[])
    }

    /// Adds a slot. It must be page-aligned, non-empty, not overflow, and not
    /// overlap another slot.
    pub fn insert(&mut self, slot: Slot) -> Result<(), MapError> {
        let mask = PAGE_SIZE.wrapping_sub(1);
        if slot.size == 0 || (slot.gpa | slot.size | slot.host) & mask != 0 {
            return Err(MapError::BadSlot);
        }
        let end = slot.gpa.checked_add(slot.size).ok_or(MapError::BadSlot)?;
        slot.host.checked_add(slot.size).ok_or(MapError::BadSlot)?;
        if self.len >= N {
            return Err(MapError::Full);
        }
        // Position of the first slot starting at or after `slot.gpa`.
        let pos = self.slots().partition_point(|s| s.gpa < slot.gpa);
        if let Some(prev) = pos.checked_sub(1).and_then(|p| self.slots().get(p)) {
            if slot_end(prev) > slot.gpa {
                return Err(MapError::Overlap);
            }
        }
        if let Some(next) = self.slots().get(pos) {
            if next.gpa < end {
                return Err(MapError::Overlap);
            }
        }
        let new_len = self.len.checked_add(1).ok_or(MapError::Full)?;
        let tail = self.slots.get_mut(pos..new_len).ok_or(MapError::Full)?;
        tail.rotate_right(1);
        if let Some(first) = tail.first_mut() {
            *first = slot;
        }
        self.len = new_len;
        Ok(())
    }

    /// Checks that `[gpa, gpa + len)` is fully backed and accessible with
    /// `access`, and returns the host address of `gpa`.
    ///
    /// The range may cross slot boundaries only where the slots are contiguous
    /// both in guest and in host address space. When several rules are broken
    /// the first of this order is reported: `ZeroLength`, `Overflow`, `Unmapped`,
    /// `Straddle`, `ReadOnly`.
    #[inline]
    pub fn lookup(&self, gpa: u64, len: u64, access: Access) -> Result<u64, MapError> {
        if len == 0 {
            return Err(MapError::ZeroLength);
        }
        let end = gpa.checked_add(len).ok_or(MapError::Overflow)?;
        let slots = self.slots();
        // Last slot starting at or below gpa.
        let idx = slots
            .partition_point(|s| s.gpa <= gpa)
            .checked_sub(1)
            .ok_or(MapError::Unmapped)?;
        let first = slots.get(idx).ok_or(MapError::Unmapped)?;
        let mut cur_end = slot_end(first);
        if gpa >= cur_end {
            return Err(MapError::Unmapped);
        }
        let host = first.host.saturating_add(gpa.wrapping_sub(first.gpa));
        let mut read_only = first.read_only;
        let mut straddle = false;
        let mut cur = first;
        let mut rest = slots.get(idx.saturating_add(1)..).unwrap_or(&[]).iter();
        while end > cur_end {
            let next = match rest.next() {
                Some(n) if n.gpa == cur_end => n,
                _ => return Err(MapError::Unmapped),
            };
            if cur.host.checked_add(cur.size) != Some(next.host) {
                straddle = true;
            }
            read_only |= next.read_only;
            cur_end = slot_end(next);
            cur = next;
        }
        if straddle {
            return Err(MapError::Straddle);
        }
        if read_only && access == Access::Write {
            return Err(MapError::ReadOnly);
        }
        Ok(host)
    }
}
