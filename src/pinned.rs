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

use core::ffi::c_void;
use kernel::{
    alloc::flags::__GFP_ZERO,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

use crate::{
    kvm::{self, GuestMap, VmFile},
    pvcore::{
        memmap::{Access, PAGE_SIZE},
        pincache::{DefaultPinCache, PinError, PinStats, PinToken},
        traits::{Fence, GuestMemory, MemFault, PinFailed, Pinner},
        translate::{self, SgList},
        virtq::{Chain, QueueError},
    },
};

extern "C" {
    fn pvpass_pin_pages(
        vm_file: *mut c_void,
        addrs: *const u64,
        n: i32,
        pages: *mut u64,
        write: bool,
        nofault: bool,
    ) -> i32;
    fn pvpass_unpin_pages(pages: *const u64, n: i32, dirty: bool);
    fn pvpass_page_copy(dst: u64, doff: u32, src: u64, soff: u32, len: u32);
    fn pvpass_page_write(page: u64, off: u32, src: *const c_void, len: u32);
    fn pvpass_page_read(page: u64, off: u32, dst: *mut c_void, len: u32);
    fn pvpass_account_pins(vm_file: *mut c_void, pages: u64, charge: bool) -> i32;
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
    vm: &'a VmFile,
    write: bool,
    /// Fault nothing in, only try the mmap lock: for a thread that is not
    /// the VM's own (see `pvpass_pin_pages`).
    nofault: bool,
    /// The errno of the last refused pin (the core's `PinFailed` has none).
    errno: i32,
}

impl<'a> KernelPinner<'a> {
    fn new(vm: &'a VmFile, write: bool, nofault: bool) -> Self {
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
        let n = i32::try_from(pages.len()).map_err(|_| PinFailed)?;
        if handles.len() < pages.len() {
            return Err(PinFailed);
        }
        // SAFETY: `self.vm` holds a reference on a KVM VM file; `pages` has
        // `n` addresses and `handles` room for `n` page pointers (u64 on
        // 64-bit).
        let r = unsafe {
            pvpass_pin_pages(
                self.vm.as_raw(),
                pages.as_ptr(),
                n,
                handles.as_mut_ptr(),
                self.write,
                self.nofault,
            )
        };
        if r != 0 {
            self.errno = r;
            return Err(PinFailed);
        }
        PINNED_PAGES.add(pages.len() as u64, Relaxed);
        Ok(())
    }

    fn unpin(&mut self, handles: &[u64]) {
        let Ok(n) = i32::try_from(handles.len()) else {
            return;
        };
        // SAFETY: The cache hands back only handles `pin` returned and never
        // unpins one twice.
        unsafe { pvpass_unpin_pages(handles.as_ptr(), n, self.write) };
        PINNED_PAGES.fetch_sub(handles.len() as u64, Relaxed);
    }
}

/// A pinned buffer: a chain translated to host segments, and the pins of
/// their pages (empty when not acquired). All-zero is a valid empty buffer.
pub(crate) struct Buf {
    sg: SgList<SEGS>,
    tok: PinToken,
}

impl Buf {
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
                    page_write(page, off, h.get(..n).unwrap_or(&[]));
                    n
                } else {
                    frame.copy_to_page(pos - hdr.len(), page, off, left);
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
                page_read(page, off, d);
                done += len;
            }
            true
        });
        done
    }

    /// Copy bytes `[pos, pos + n)` of the buffer into pinned page `dst` at
    /// `doff` (page to page: the one copy of a frame's body).
    fn copy_to_page(&self, pos: usize, dst: u64, doff: usize, n: usize) {
        if doff + n > PAGE_SIZE as usize {
            return;
        }
        self.pieces(pos, n, |page, off, len, at| {
            // SAFETY: `page` is a handle of `self.tok` and `dst` one of a
            // token the caller borrows (see the module documentation): both
            // pinned pages; both ranges lie inside their page.
            unsafe { pvpass_page_copy(dst, (doff + at) as u32, page, off as u32, len as u32) };
            true
        });
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
    fn pieces(&self, pos: usize, n: usize, mut f: impl FnMut(u64, usize, usize, usize) -> bool) {
        let handles = self.tok.handles();
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
                let Some(&h) = handles.get(idx) else { return };
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
    fn copy_to_page(&self, pos: usize, page: u64, off: usize, n: usize) {
        let n = n.min(self.len.saturating_sub(pos));
        let mut done = 0usize;
        if let Some(h) = self.head.get(pos..) {
            let k = h.len().min(n);
            page_write(page, off, h.get(..k).unwrap_or(&[]));
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

    /// Copy frame bytes from `pos` on into `dst` (as many as fit).
    pub(crate) fn copy_to_slice(&self, pos: usize, dst: &mut [u8]) {
        let mut done = 0usize;
        if let Some(h) = self.head.get(pos..) {
            let k = h.len().min(dst.len());
            if let (Some(d), Some(h)) = (dst.get_mut(..k), h.get(..k)) {
                d.copy_from_slice(h);
            }
            done = k;
        }
        let want = self.len.saturating_sub(pos).min(dst.len());
        if done < want {
            if let (Some((buf, at)), Some(d)) = (self.tail, dst.get_mut(done..want)) {
                buf.read(at + pos + done - self.head.len(), d);
            }
        }
    }
}

/// Write `data` into pinned page `page` at `off`.
fn page_write(page: u64, off: usize, data: &[u8]) {
    if off + data.len() > PAGE_SIZE as usize {
        return;
    }
    // SAFETY: `page` is a handle of a token borrowed for this call (see the
    // module documentation), so a pinned page; the range is inside it.
    unsafe { pvpass_page_write(page, off as u32, data.as_ptr().cast(), data.len() as u32) };
}

/// Read pinned page `page` at `off` into `buf`.
fn page_read(page: u64, off: usize, buf: &mut [u8]) {
    if off + buf.len() > PAGE_SIZE as usize {
        return;
    }
    // SAFETY: As for `page_write`.
    unsafe { pvpass_page_read(page, off as u32, buf.as_mut_ptr().cast(), buf.len() as u32) };
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
    /// The VM the pages belong to; `None` once shut down.
    vm: Option<VmFile>,
    /// Pages charged to the VMM's locked memory.
    charged: u64,
    /// Pinned for writing (receive) or reading (transmit).
    write: bool,
}

impl VmPins {
    /// An empty cache for `vm`, its quota charged to the VMM's locked memory
    /// (`ENOMEM` over RLIMIT_MEMLOCK without CAP_IPC_LOCK).
    pub(crate) fn new(vm: VmFile, quota: u32, write: bool) -> Result<Self> {
        // SAFETY: The all-zero value is a valid (empty, quota 0) pin cache,
        // as `PinCache` documents.
        let mut cache = unsafe { new_zeroed::<DefaultPinCache>() }?;
        cache.reset(quota);
        let charged = u64::from(quota);
        // SAFETY: `vm` holds a reference on a KVM VM file.
        let r = unsafe { pvpass_account_pins(vm.as_raw(), charged, true) };
        if r != 0 {
            if kvm::ratelimit() {
                pr_info!(
                    "ATTACH rejected ({}): {} KiB of pins exceed the locked-memory limit (RLIMIT_MEMLOCK, or CAP_IPC_LOCK)\n",
                    r,
                    charged * 4
                );
            }
            return Err(Error::from_errno(r));
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
        self.vm.as_ref().map(VmFile::generation)
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
    pub(crate) fn acquire(
        &mut self,
        chain: &Chain<64>,
        map: &GuestMap,
        buf: &mut Buf,
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
    fn acquire_range(&mut self, host: u64, len: u64, tok: &mut PinToken) -> Result<(), PinError> {
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
    pub(crate) fn release(&mut self, buf: &mut Buf) {
        self.release_token(&mut buf.tok);
    }

    fn release_token(&mut self, tok: &mut PinToken) {
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
            // SAFETY: `vm` holds a reference on a KVM VM file.
            unsafe { pvpass_account_pins(vm.as_raw(), self.charged, false) };
        }
    }
}

impl Drop for VmPins {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Most pages one ring area spans (a 256-entry descriptor table is 4 KiB,
/// on at most two pages).
const RING_PAGES: usize = 4;

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
        mut f: impl FnMut(u64, usize, core::ops::Range<usize>),
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
        let handles = a.tok.handles();
        let first = a.host & !OFFSET_MASK;
        let mut host = a.host + (gpa - a.gpa);
        let mut done = 0usize;
        while done < len {
            let off = (host & OFFSET_MASK) as usize;
            let n = (PAGE_SIZE as usize - off).min(len - done);
            let idx = ((host & !OFFSET_MASK) - first) / PAGE_SIZE;
            let &page = handles.get(idx as usize).ok_or(MemFault)?;
            f(page, off, done..done + n);
            done += n;
            host += n as u64;
        }
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemFault> {
        self.each_page(gpa, data.len(), |page, off, r| {
            page_write(page, off, data.get(r).unwrap_or(&[]))
        })
    }
}

impl GuestMemory for RingMem {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        let len = buf.len();
        self.each_page(gpa, len, |page, off, r| {
            if let Some(b) = buf.get_mut(r) {
                page_read(page, off, b);
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
