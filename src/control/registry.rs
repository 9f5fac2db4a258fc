// SPDX-License-Identifier: GPL-2.0

//! Every attachment of the module, whichever /dev/pvpass file made it: ids,
//! and the conflict checks that span files (one window or GSI per VM used by
//! one device only, a module-wide limit).
//!
//! Lock order: a file's `attachments` lock may be held when `REGISTRY` is
//! taken, never the other way round. `REGISTRY` is never held while calling
//! into KVM.

use kernel::{prelude::*, sync::global_lock};

use crate::uapi;

struct Entry {
    id: u32,
    vm: usize,
    gpa: u64,
    gsi: u32,
}

struct Registry {
    entries: KVec<Entry>,
    next_id: u32,
}

global_lock! {
    // SAFETY: Initialised by `init` in the module initialiser, before the misc
    // device (the only way in) is registered.
    unsafe(uninit) static REGISTRY: Mutex<Registry> = Registry { entries: KVec::new(), next_id: 1 };
}

/// Called once, from the module initialiser.
pub(crate) fn init() {
    // SAFETY: Called exactly once, before any other use of `REGISTRY`.
    unsafe { REGISTRY.init() };
}

/// A reserved id and (VM, window, GSI). Dropping it releases the reservation.
pub(crate) struct Reservation {
    id: u32,
}

impl Reservation {
    pub(crate) fn id(&self) -> u32 {
        self.id
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut reg = REGISTRY.lock();
        reg.entries.retain(|e| e.id != self.id);
    }
}

/// Reserve a device for VM `vm` at `gpa` with `gsi`.
///
/// `ENOSPC` past `MAX_ATTACH`, `EEXIST` if the VM has a pvpass window that
/// overlaps this one, `EBUSY` if the VM has a pvpass device on this GSI.
pub(crate) fn reserve(vm: usize, gpa: u64, gsi: u32) -> Result<Reservation> {
    let mut guard = REGISTRY.lock();
    let reg = &mut *guard;
    if reg.entries.len() >= uapi::MAX_ATTACH {
        return Err(ENOSPC);
    }
    for e in reg.entries.iter().filter(|e| e.vm == vm) {
        // Windows are WINDOW_SIZE long and aligned, so overlap means equal.
        if e.gpa == gpa {
            return Err(EEXIST);
        }
        if e.gsi == gsi {
            return Err(EBUSY);
        }
    }
    // Ids are unique among live attachments; zero is never used.
    let mut id = reg.next_id;
    while id == 0 || reg.entries.iter().any(|e| e.id == id) {
        id = id.wrapping_add(1);
    }
    reg.next_id = id.wrapping_add(1);
    reg.entries.push(Entry { id, vm, gpa, gsi }, GFP_KERNEL)?;
    Ok(Reservation { id })
}
