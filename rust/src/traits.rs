//! What the environment provides to the core: guest memory access and page pinning.
//!
//! The kernel module implements these with copy_from_user/put_user on the VM's
//! memslots and with `pin_user_pages`; the tests implement them with mocks.

/// A guest memory access failed (address not backed, copy fault, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemFault;

/// Kind of memory barrier requested by the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fence {
    /// Order earlier reads before later reads (`smp_rmb`): after reading an index
    /// published by the guest and before reading what it covers.
    Read,
    /// Order earlier writes before later writes (`smp_wmb`): after writing a used
    /// element and before publishing the used index.
    Write,
    /// Full barrier (`smp_mb`): between publishing an index and reading the other
    /// side's event index or flags.
    Full,
}

/// Access to the memory of one guest, addressed by guest-physical address (GPA).
///
/// All multi-byte values are little-endian in guest memory (virtio 1.x); the
/// default methods decode them through [`GuestMemory::read`].
pub trait GuestMemory {
    /// Copies `buf.len()` bytes starting at `gpa` into `buf`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemFault>;

    /// Writes `val` (little-endian) at `gpa`.
    fn write_u16(&self, gpa: u64, val: u16) -> Result<(), MemFault>;

    /// Writes `val` (little-endian) at `gpa`.
    fn write_u32(&self, gpa: u64, val: u32) -> Result<(), MemFault>;

    /// Issues a memory barrier of the given kind.
    fn fence(&self, kind: Fence);

    /// Reads a little-endian `u16` at `gpa`.
    fn read_u16(&self, gpa: u64) -> Result<u16, MemFault> {
        let mut b = [0u8; 2];
        self.read(gpa, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a little-endian `u32` at `gpa`.
    fn read_u32(&self, gpa: u64) -> Result<u32, MemFault> {
        let mut b = [0u8; 4];
        self.read(gpa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian `u64` at `gpa`.
    fn read_u64(&self, gpa: u64) -> Result<u64, MemFault> {
        let mut b = [0u8; 8];
        self.read(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// Pinning failed; nothing of the batch is left pinned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinFailed;

/// Pins and unpins host pages in batches.
///
/// Pages are named by their page-aligned host (userspace) address. A handle is
/// what the implementation needs to address and later unpin the page (for the
/// kernel: a `struct page` pointer or a physical address, as an integer).
pub trait Pinner {
    /// Pins every page of `pages`, writing one handle per page into
    /// `handles[..pages.len()]` (`handles` is exactly as long as `pages`).
    ///
    /// All or nothing: on error the implementation must have unpinned whatever
    /// part of the batch it had pinned.
    fn pin(&mut self, pages: &[u64], handles: &mut [u64]) -> Result<(), PinFailed>;

    /// Unpins the pages behind `handles` (handles returned by [`Pinner::pin`]).
    fn unpin(&mut self, handles: &[u64]);
}
