// SPDX-License-Identifier: GPL-2.0

//! Pinned guest memory: the pin cache of one VM (`pvcore::pincache`) bound to
//! the kernel's page pinning, pinned buffers (a translated chain plus its
//! pins) and the receive ring reached through pinned pages.
//!
//! Pinned pages can be written from any thread (with `kmap_local_page`), not
//! only from the VM's own vCPU thread the way its user addresses can: this is
//! what lets a sender's vCPU thread put a frame straight into a receiver's
//! buffers and used ring. Pages are pinned with FOLL_LONGTERM through the
//! glue (`pin_user_pages_fast` on the VM's own thread, the remote variant
//! anywhere else), stay pinned while cached, and are unpinned when evicted,
//! when the memory map changes (`VmPins::invalidate`) and when the device is
//! detached (`VmPins::shutdown`).
//!
//! Every pin handle is a `struct page *` as an integer. Handles only exist in
//! `PinToken`s of a `VmPins`' cache, filled by `KernelPinner::pin`; a token
//! is emptied only by `release` (which needs it `&mut`), so a handle read from
//! a token borrowed `&` is a pinned page for as long as that borrow lasts.

use core::ptr::NonNull;
use kernel::{
    alloc::flags::__GFP_ZERO,
    bindings,
    mm::{
        Mm,
        MmWithUser, //
    },
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Acquire,
            Atomic,
            Relaxed, //
        },
        Arc,
    }, //
};

use super::{
    frame::Frame,
    page::PinnedPage,
    ring::RING_PAGES, //
};
use crate::{
    glue,
    kvm::{
        self,
        GuestMap,
        VmFile, //
    },
    pvcore::{
        memmap::PAGE_SIZE,
        pincache::{
            DefaultPinCache,
            PinError,
            PinStats,
            PinToken, //
        },
        traits::{
            PinFailed,
            Pinner, //
        },
        translate::{
            self,
            SgList, //
        },
        virtq::{
            Chain,
            QueueError, //
        }, //
    }, //
};

/// Whose memory a device's pages are: the address space they are pinned
/// from, and the generation of the guest's memory map in it.
pub(crate) enum Owner {
    /// A KVM VM (virtio-mmio): its VMM's address space, its memslot
    /// generation.
    Vm(VmFile),
    /// A vhost owner: the address space that called `VHOST_SET_OWNER`
    /// (grabbed), and the generation of its memory table, bumped by every
    /// `VHOST_SET_MEM_TABLE`.
    Mm {
        mm: ARef<Mm>,
        generation: Arc<Atomic<u64>>,
    },
}

impl Owner {
    /// The VMM's address space (its users may be gone: `mmget_not_zero`).
    pub(crate) fn mm(&self) -> &Mm {
        match self {
            Self::Vm(vm) => vm.mm(),
            Self::Mm { mm, .. } => mm,
        }
    }

    /// The guest memory map's generation now, from any thread.
    pub(crate) fn generation(&self) -> u64 {
        match self {
            Self::Vm(vm) => vm.generation(),
            Self::Mm { generation, .. } => generation.load(Acquire),
        }
    }

    /// Another reference on the same owner.
    pub(crate) fn clone_ref(&self) -> Self {
        match self {
            Self::Vm(vm) => Self::Vm(vm.clone_ref()),
            Self::Mm { mm, generation } => Self::Mm {
                mm: mm.clone(),
                generation: generation.clone(),
            },
        }
    }
}

/// Pin the pages at user addresses `addrs` of `owner`'s address space (for writing if
/// `write`), FOLL_LONGTERM (they stay pinned in the pin cache), into
/// `handles` (`struct page *` as integers). All or nothing: on error nothing
/// stays pinned; the errno is returned.
///
/// On a thread of the VMM itself (the VM's own vCPU thread, inside an MMIO
/// op) `pin_user_pages_fast` works on `current->mm`; anywhere else (another
/// VMM's vCPU delivering a frame, the host port's work item) the remote
/// variant, with the mm held and its mmap lock read-held.
///
/// `nofault`: a thread that is not the VM's own (a sender delivering into
/// this VM) must never wait for what this VM's VMM controls: a page fault
/// that userfaultfd, FUSE or swap can hold for as long as they like, or an
/// mmap lock that VMM holds. Then no page is faulted in (FOLL_NOFAULT) and
/// the mmap lock is only tried: EFAULT or EAGAIN, and the caller leaves the
/// frame to the VM's own thread, which pins with faults allowed. ESRCH once
/// the VMM has exited.
fn pin_pages(
    owner: &Owner,
    addrs: &[u64],
    handles: &mut [u64],
    write: bool,
    nofault: bool,
) -> Result<(), Error> {
    let mm = owner.mm();
    let mut flags = bindings::FOLL_LONGTERM;
    if write {
        flags |= bindings::FOLL_WRITE;
    }
    if nofault {
        flags |= bindings::FOLL_NOFAULT;
    }
    let own = kvm::current_mm_is(mm);
    let remote = if own {
        None
    } else {
        // Dropped with `mmput_async`: the last reference would otherwise
        // tear the mm down on this thread.
        Some(MmWithUser::into_mmput_async(
            mm.mmget_not_zero().ok_or(ESRCH)?,
        ))
    };
    let guard = match &remote {
        None => None,
        Some(user) if nofault => Some(user.mmap_read_trylock().ok_or(EAGAIN)?),
        Some(user) => Some(user.mmap_read_lock()),
    };
    let mut done = 0usize;
    let mut err = Ok(());
    for (&addr, h) in addrs.iter().zip(handles.iter_mut()) {
        let Ok(addr) = usize::try_from(addr) else {
            err = Err(EFAULT);
            break;
        };
        let mut page: *mut bindings::page = core::ptr::null_mut();
        let r = if guard.is_some() {
            // SAFETY: `mm` has users (`remote` holds one) and its mmap lock
            // is read-held (`guard`); `page` has room for one pointer.
            (unsafe {
                bindings::pin_user_pages_remote(
                    mm.as_raw(),
                    addr,
                    1,
                    flags,
                    &mut page,
                    core::ptr::null_mut(),
                )
            }) as i64
        } else {
            // SAFETY: `addr` is a user address of `current->mm`, which is the
            // VM's; `page` has room for one pointer.
            i64::from(unsafe { bindings::pin_user_pages_fast(addr, 1, flags, &mut page) })
        };
        if r != 1 {
            err = Err(if r < 0 {
                Error::from_errno(r as i32)
            } else {
                EFAULT
            });
            break;
        }
        *h = page as u64;
        done += 1;
    }
    drop(guard);
    drop(remote);
    if err.is_err() {
        unpin_pages(handles.get(..done).unwrap_or(&[]), false);
    }
    err
}

/// Unpin pages pinned by `pin_pages`; `dirty`: the device wrote them.
fn unpin_pages(handles: &[u64], dirty: bool) {
    for &h in handles {
        let mut page = h as usize as *mut bindings::page;
        // SAFETY: `h` is a page `pin_pages` pinned and nobody unpins it
        // twice (the pin cache hands each handle back once).
        unsafe { bindings::unpin_user_pages_dirty_lock(&mut page, 1, dirty) };
    }
}

/// Charge (or uncharge) `pages` to the VMM's locked memory (RLIMIT_MEMLOCK,
/// as vfio does), with the caller's credentials: ATTACH charges the
/// attachment's pin quota up front, so pins made later on any thread never
/// fail on the limit. ENOMEM over the limit. Uncharging a VMM that has
/// exited is a no-op.
fn account_pins(owner: &Owner, pages: u64, charge: bool) -> Result {
    let Some(user) = owner.mm().mmget_not_zero() else {
        return if charge { Err(ESRCH) } else { Ok(()) };
    };
    let user = MmWithUser::into_mmput_async(user);
    let pages = usize::try_from(pages).map_err(|_| ENOMEM)?;
    // SAFETY: `user` holds a user of the mm, which is therefore valid.
    let r = unsafe { bindings::account_locked_vm(user.as_raw(), pages, charge) };
    if r == 0 {
        Ok(())
    } else {
        Err(Error::from_errno(r))
    }
}

/// A zeroed heap allocation of a `T`, never built on the stack (kernel
/// stacks are 16 KiB; the receive side's scratch is about 8 KiB).
///
/// # Safety
///
/// The all-zero bit pattern must be a valid `T`.
pub(crate) unsafe fn new_zeroed<T>() -> Result<KBox<T>> {
    let b = KBox::<T>::new_uninit(GFP_KERNEL | __GFP_ZERO)?;
    // SAFETY: The allocator zeroed it, which the caller says is a valid `T`.
    Ok(unsafe { b.assume_init() })
}

/// Pages pinned by the whole module now (debugfs `pinned_pages`).
pub(crate) static PINNED_PAGES: Atomic<u64> = Atomic::new(0);

/// Pages one device may keep pinned for receiving (4 MiB): its receive
/// rings, the buffers being filled, and the cache of recently used buffer
/// pages. Charged to the VMM's locked memory at ATTACH, with `TX_QUOTA`.
pub(crate) const RX_QUOTA: u32 = 1024;
/// Pages one device may keep pinned for transmitting (1 MiB): the frame
/// being sent (a 64 KiB frame spans 17 pages) and recently used pages.
pub(crate) const TX_QUOTA: u32 = 256;

/// Segments of one pinned buffer: a 64 KiB receive chain ("big packets"
/// mode) takes 17 to 19; mergeable buffers 1 or 2.
const SEGS: usize = 48;
const OFFSET_MASK: u64 = PAGE_SIZE - 1;

/// `Pinner` of the VM behind a VM file, for writing (receive buffers,
/// rings) or for reading (transmit buffers).
struct KernelPinner<'a> {
    vm: &'a Owner,
    write: bool,
    /// Fault nothing in, only try the mmap lock: for a thread that is not
    /// the VM's own (see `pvpass_pin_pages`).
    nofault: bool,
    /// The errno of the last refused pin (the core's `PinFailed` has none).
    errno: i32,
}

impl<'a> KernelPinner<'a> {
    fn new(vm: &'a Owner, write: bool, nofault: bool) -> Self {
        Self {
            vm,
            write,
            nofault,
            errno: 0,
        }
    }
}

impl Pinner for KernelPinner<'_> {
    fn pin(&mut self, pages: &[u64], handles: &mut [u64]) -> Result<(), PinFailed> {
        if handles.len() < pages.len() {
            return Err(PinFailed);
        }
        if let Err(e) = pin_pages(self.vm, pages, handles, self.write, self.nofault) {
            self.errno = e.to_errno();
            return Err(PinFailed);
        }
        PINNED_PAGES.add(pages.len() as u64, Relaxed);
        Ok(())
    }

    fn unpin(&mut self, handles: &[u64]) {
        // The cache hands back only handles `pin` returned and never unpins
        // one twice.
        unpin_pages(handles, self.write);
        PINNED_PAGES.fetch_sub(handles.len() as u64, Relaxed);
    }
}

/// A pinned buffer: a chain translated to host segments, and the pins of
/// their pages (empty when not acquired). All-zero is a valid empty buffer.
pub(crate) struct Buf<const S: usize = SEGS> {
    sg: SgList<S>,
    tok: PinToken,
}

impl<const S: usize> Buf<S> {
    /// An empty buffer (not acquired).
    pub(crate) const fn new() -> Self {
        Self {
            sg: SgList::new(),
            tok: PinToken::new(),
        }
    }

    /// Bytes the buffer holds (0 when not acquired).
    pub(crate) fn len(&self) -> usize {
        if self.tok.is_empty() {
            return 0;
        }
        self.sg.segments().iter().map(|s| s.len as usize).sum()
    }

    /// Write the stream `hdr ++ frame`, from stream position `from` on, into
    /// the buffer as far as it reaches. Returns the bytes written.
    pub(crate) fn write(&self, hdr: &[u8], frame: &Frame<'_>, from: usize) -> usize {
        let total = hdr.len() + frame.len();
        let mut pos = from;
        self.pieces(0, usize::MAX, |page, off, len, _| {
            let mut off = off;
            let mut left = len.min(total.saturating_sub(pos));
            while left > 0 {
                let n = if let Some(h) = hdr.get(pos..).filter(|h| !h.is_empty()) {
                    let n = h.len().min(left);
                    page.write(off, h.get(..n).unwrap_or(&[]));
                    n
                } else {
                    frame.copy_to_page(pos - hdr.len(), &page, off, left);
                    left
                };
                off += n;
                pos += n;
                left -= n;
            }
            pos < total
        });
        pos - from
    }

    /// Copy bytes `[pos, pos + dst.len())` of the buffer into `dst`. Returns
    /// the bytes copied (fewer if the buffer ends first).
    pub(crate) fn read(&self, pos: usize, dst: &mut [u8]) -> usize {
        let mut done = 0usize;
        self.pieces(pos, dst.len(), |page, off, len, at| {
            if let Some(d) = dst.get_mut(at..at + len) {
                page.read(off, d);
                done += len;
            }
            true
        });
        done
    }

    /// Copy bytes `[pos, pos + n)` of the buffer into pinned page `dst` at
    /// `doff` (page to page: the one copy of a frame's body).
    pub(super) fn copy_to_page(&self, pos: usize, dst: &PinnedPage<'_>, doff: usize, n: usize) {
        if doff + n > PAGE_SIZE as usize {
            return;
        }
        self.pieces(pos, n, |page, off, len, at| {
            dst.copy_from(doff + at, &page, off, len);
            true
        });
    }

    /// The pinned page and the offset in it of bytes `[pos, pos + n)` of the
    /// buffer, if they lie in one piece of one page (for a device to write
    /// them itself); valid while the buffer stays acquired.
    pub(crate) fn page_at(&self, pos: usize, n: usize) -> Option<(NonNull<glue::Page>, usize)> {
        let mut at = None;
        self.pieces(pos, n, |page, off, len, _| {
            if len == n {
                at = NonNull::new(page.as_raw()).map(|p| (p, off));
            }
            false
        });
        at
    }

    /// Guest pages of the buffer (when acquired; for dirty logging).
    pub(crate) fn gfn_count(&self) -> usize {
        if self.tok.is_empty() {
            0
        } else {
            self.sg.gfns().len()
        }
    }

    /// Calls `f(gfn)` for each guest page of the buffer (when acquired).
    pub(crate) fn gfns(&self, f: impl FnMut(u64)) {
        if !self.tok.is_empty() {
            self.sg.gfns().iter().copied().for_each(f);
        }
    }

    /// Calls `f(page, offset in page, len, offset from pos)` for the pieces
    /// of bytes `[pos, pos + n)` of the buffer, in order, while it returns
    /// true.
    pub(super) fn pieces(
        &self,
        pos: usize,
        n: usize,
        mut f: impl FnMut(PinnedPage<'_>, usize, usize, usize) -> bool,
    ) {
        let end = pos.saturating_add(n);
        let mut idx = 0usize;
        let mut last = None;
        let mut at = 0usize; // buffer offset of the segment
        for s in self.sg.segments() {
            let page = s.host_page();
            if last.is_some_and(|l| l != page) {
                idx += 1;
            }
            last = Some(page);
            let len = s.len as usize;
            let (lo, hi) = (pos.max(at), end.min(at + len));
            if lo < hi {
                let Some(h) = PinnedPage::of(&self.tok, idx) else {
                    return;
                };
                let off = (s.host & OFFSET_MASK) as usize + (lo - at);
                if !f(h, off, hi - lo, lo - pos) {
                    return;
                }
            }
            at += len;
            if at >= end {
                return;
            }
        }
    }
}

/// Why a buffer could not be pinned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PinBufError {
    /// The chain fails the memory map (outside guest RAM, read-only, too
    /// many segments): the guest's fault.
    Translate(translate::TranslateError),
    /// Quota full for now, or the kernel refused to pin (VMM gone, memory
    /// that cannot be pinned long-term).
    Pin(PinError),
    /// A receive chain with a device-readable buffer, or a transmit chain
    /// with a device-writable one.
    WrongDirection,
    /// The queue itself is malformed.
    Queue(QueueError),
    /// A thread that is not the VM's own would have had to fault a page in
    /// or wait for the VMM's mmap lock (`nofault`): not pinned; the VM's own
    /// thread can pin it.
    WouldFault,
    /// A receive buffer of tiny pieces on many pages: more than
    /// `max_pages(len)` pages for its bytes. Refused before any pin.
    Scattered,
}

/// Most pages a receive buffer of `len` bytes may span: two per page of
/// data plus two, which any buffer a driver carves out of pages (whole
/// pages, page fragments, a header descriptor on a page of its own) stays
/// under, while buffers of one-byte pieces on distinct pages (about 1,500
/// pins for one MTU frame) do not.
pub(crate) fn max_pages(len: usize) -> usize {
    2 * len.div_ceil(PAGE_SIZE as usize) + 2
}

/// The pin cache of one device's VM.
pub(crate) struct VmPins {
    cache: KBox<DefaultPinCache>,
    /// Whose pages they are; `None` once shut down.
    vm: Option<Owner>,
    /// Pages charged to the VMM's locked memory.
    charged: u64,
    /// Pinned for writing (receive) or reading (transmit).
    write: bool,
}

impl VmPins {
    /// An empty cache for `vm`, its quota charged to the VMM's locked memory
    /// (`ENOMEM` over RLIMIT_MEMLOCK without CAP_IPC_LOCK).
    pub(crate) fn new(vm: Owner, quota: u32, write: bool) -> Result<Self> {
        // SAFETY: The all-zero value is a valid (empty, quota 0) pin cache,
        // as `PinCache` documents.
        let mut cache = unsafe { new_zeroed::<DefaultPinCache>() }?;
        cache.reset(quota);
        let charged = u64::from(quota);
        if let Err(e) = account_pins(&vm, charged, true) {
            if kvm::ratelimit() {
                pr_info!(
                    "ATTACH rejected ({}): {} KiB of pins exceed the locked-memory limit (RLIMIT_MEMLOCK, or CAP_IPC_LOCK)\n",
                    e.to_errno(),
                    charged * 4
                );
            }
            return Err(e);
        }
        Ok(Self {
            cache,
            vm: Some(vm),
            charged,
            write,
        })
    }

    /// The memslot generation of the VM now (`None` after shutdown).
    pub(crate) fn generation(&self) -> Option<u64> {
        self.vm.as_ref().map(Owner::generation)
    }

    /// Translate `chain` against `map` and pin its pages into `buf`, which
    /// must have been released. Its buffers must all be device-writable
    /// for a cache that pins for writing, all device-readable otherwise.
    ///
    /// `nofault`: the caller is not the VM's own thread (a sender writing
    /// into this VM's buffers): a page that is not present, or an mmap lock
    /// the VMM holds, gives `WouldFault` instead of a wait (see
    /// `pvpass_pin_pages`). A receive buffer spread over more pages than
    /// `max_pages` of its length is refused (`Scattered`) before anything is
    /// pinned, so a frame's pin cost is bounded by its length.
    pub(crate) fn acquire<const S: usize>(
        &mut self,
        chain: &Chain<64>,
        map: &GuestMap,
        buf: &mut Buf<S>,
        nofault: bool,
    ) -> Result<(), PinBufError> {
        if chain.descs().iter().any(|d| d.writable != self.write) {
            return Err(PinBufError::WrongDirection);
        }
        translate::translate(chain, map, &mut buf.sg).map_err(PinBufError::Translate)?;
        let pages = buf.sg.host_pages();
        if self.write {
            let len = buf.sg.segments().iter().map(|s| s.len as usize).sum();
            if pages.len() > max_pages(len) {
                return Err(PinBufError::Scattered);
            }
        }
        let Some(vm) = self.vm.as_ref() else {
            return Err(PinBufError::Pin(PinError::PinFailed));
        };
        let mut pinner = KernelPinner::new(vm, self.write, nofault);
        match self.cache.acquire(pages, &mut pinner, &mut buf.tok) {
            Ok(()) => Ok(()),
            Err(PinError::PinFailed)
                if nofault
                    && [EFAULT, EAGAIN]
                        .iter()
                        .any(|e| e.to_errno() == pinner.errno) =>
            {
                Err(PinBufError::WouldFault)
            }
            Err(e) => Err(PinBufError::Pin(e)),
        }
    }

    /// Pin the pages of `len` bytes at host address `host` into `tok`.
    pub(super) fn acquire_range(
        &mut self,
        host: u64,
        len: u64,
        tok: &mut PinToken,
    ) -> Result<(), PinError> {
        let mut pages = [0u64; RING_PAGES];
        let first = host & !OFFSET_MASK;
        let last = host
            .checked_add(len.max(1) - 1)
            .ok_or(PinError::TooManyPages)?
            & !OFFSET_MASK;
        let n = ((last - first) / PAGE_SIZE + 1) as usize;
        let pages = pages.get_mut(..n).ok_or(PinError::TooManyPages)?;
        for (i, p) in pages.iter_mut().enumerate() {
            *p = first + i as u64 * PAGE_SIZE;
        }
        let vm = self.vm.as_ref().ok_or(PinError::PinFailed)?;
        self.cache
            .acquire(pages, &mut KernelPinner::new(vm, self.write, false), tok)
    }

    /// Drop `buf`'s pins (its pages stay cached for the next buffer).
    pub(crate) fn release<const S: usize>(&mut self, buf: &mut Buf<S>) {
        self.release_token(&mut buf.tok);
    }

    pub(super) fn release_token(&mut self, tok: &mut PinToken) {
        match self.vm.as_ref() {
            Some(vm) => self
                .cache
                .release(tok, &mut KernelPinner::new(vm, self.write, false)),
            // After shutdown everything was unpinned already.
            None => *tok = PinToken::new(),
        }
    }

    /// The memory map changed: drop every pin (pins in use go when released).
    pub(crate) fn invalidate(&mut self) {
        if let Some(vm) = self.vm.as_ref() {
            self.cache
                .invalidate(&mut KernelPinner::new(vm, self.write, false));
        }
    }

    /// Counters of the cache.
    pub(crate) fn stats(&self) -> PinStats {
        self.cache.stats()
    }

    /// The device is being detached: unpin everything (the caller has
    /// released every buffer and the ring), uncharge, let go of the VM.
    pub(crate) fn shutdown(&mut self) {
        self.invalidate();
        if let Some(vm) = self.vm.take() {
            let _ = account_pins(&vm, self.charged, false);
        }
    }
}

impl Drop for VmPins {
    fn drop(&mut self) {
        self.shutdown();
    }
}
