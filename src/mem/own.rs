// SPDX-License-Identifier: GPL-2.0

//! The device's own thread: where its transport runs the device's work, in
//! the address space of the guest's VMM.
//!
//! Only that thread reaches guest memory through the VMM's user addresses
//! (`UserMem`), re-reads the memory map, and marks pages dirty for a
//! migration; every other thread goes through pinned pages. Each transport
//! has its own: virtio-mmio the vCPU thread inside its MMIO exit
//! (`kvm::InVcpu`), the vhost transport the thread its kick runs on (a
//! thread of the VMM, or a worker in the VMM's address space).

use kernel::{
    prelude::*,
    uaccess::{
        UserPtr,
        UserSlice, //
    }, //
};

use crate::{
    kvm::{
        self,
        GuestMap,
        InVcpu,
        PollTarget, //
    },
    pvcore::{
        memmap::Access,
        traits::{
            Fence,
            GuestMemory,
            MemFault, //
        }, //
    }, //
};

/// What the device's own thread offers the data path. Only ever held on
/// that thread, for as long as it serves the device (one exit, one kick).
pub(crate) trait OwnThread {
    /// The generation of the guest's memory map now (it changes with every
    /// change of the map).
    fn generation(&self) -> u64;
    /// Refill `map` with the guest's memory map. Returns whether the VMM
    /// logs the guest's writes (live migration).
    fn snapshot(&self, map: &mut GuestMap) -> Result<bool>;
    /// Mark guest page `gfn` dirty in the VMM's log (the device wrote it).
    fn mark_dirty(&self, gfn: u64);
    /// Pages this thread may still mark dirty before the VMM must harvest
    /// its log (`u32::MAX`: no limit).
    fn dirty_room(&self) -> u32;
    /// Where a transmit poll armed from here runs: on this same vCPU thread
    /// (virtio-mmio), or through the transport's own work (`None`).
    fn poll_target(&self) -> Option<PollTarget> {
        None
    }
}

impl OwnThread for InVcpu {
    fn generation(&self) -> u64 {
        InVcpu::generation(self)
    }

    fn snapshot(&self, map: &mut GuestMap) -> Result<bool> {
        InVcpu::snapshot(self, map)
    }

    fn mark_dirty(&self, gfn: u64) {
        InVcpu::mark_dirty(self, gfn);
    }

    fn dirty_room(&self) -> u32 {
        InVcpu::dirty_room(self)
    }

    fn poll_target(&self) -> Option<PollTarget> {
        Some(self.target())
    }
}

/// Guest memory of the VMM whose own thread this is, through the memory
/// map: every access is checked against the map, then copied with
/// copy_{from,to}_user at the map's user address.
pub(crate) struct UserMem<'a> {
    _own: &'a dyn OwnThread,
    map: &'a GuestMap,
}

impl<'a> UserMem<'a> {
    pub(crate) fn new(own: &'a dyn OwnThread, map: &'a GuestMap) -> Self {
        Self { _own: own, map }
    }

    fn user(&self, gpa: u64, len: usize, access: Access) -> Result<UserSlice, MemFault> {
        let host = self
            .map
            .lookup(gpa, len as u64, access)
            .map_err(|_| MemFault)?;
        let addr = usize::try_from(host).map_err(|_| MemFault)?;
        Ok(UserSlice::new(UserPtr::from_addr(addr), len))
    }

    /// Write `data` at `gpa` (a device-writable buffer).
    pub(crate) fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemFault> {
        self.user(gpa, data.len(), Access::Write)?
            .writer()
            .write_slice(data)
            .map_err(|_| MemFault)
    }
}

impl GuestMemory for UserMem<'_> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        self.user(gpa, buf.len(), Access::Read)?
            .reader()
            .read_slice(buf)
            .map_err(|_| MemFault)
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
