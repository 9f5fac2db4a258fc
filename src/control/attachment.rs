// SPDX-License-Identifier: GPL-2.0

//! Attachments: one VM attached to pvpass each, the module's one list of
//! them, and the reaper that lets a VM go when its VMM exits.
//!
//! An `Attachment` is owned by the /dev/pvpass file that made it (see
//! `file.rs`). Its live part (the backend link, the MMIO window, the VM file
//! reference and its entry's reservation) is dropped on DETACH, on close,
//! or by the reaper once the VMM process has exited, whichever comes first:
//! a VM is never kept alive by pvpass after its VMM is gone, even when the
//! process that attached it is stuck. What remains is a husk whose counters
//! can still be read (GET_STATS reports it as released) until DETACH or close.
//!
//! `ATTACHMENTS` is the one list, for every file: an entry is
//! [`State::Reserved`] while ATTACH builds it (its id, window and GSI taken,
//! for the conflict checks that span files), [`State::Live`] while the VM is
//! served (LIST, PVPASS_F_ANY_FILE, the reaper), [`State::Released`] once
//! the live part is gone (its window and GSI free again; listed until its
//! file lets it go), and is removed then.
//!
//! Lock order: a file's `attachments`, then `ATTACHMENTS`, then
//! `Attachment::live`. The live part is always dropped with no lock held
//! (dropping the window waits for the VM's srcu), and `ATTACHMENTS` is never
//! held while calling into KVM.

use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        global_lock,
        Arc,
        Mutex, //
    }, //
};

use crate::{
    backend::{
        self,
        Link, //
    },
    kvm::{
        self,
        MmWatch,
        MmioWindow,
        ResampleWatch,
        VmFile, //
    },
    net::{
        Device,
        ShutdownOnDrop,
        StopPollOnDrop, //
    },
    uapi, //
};

/// What an entry of `ATTACHMENTS` is now (see the module documentation).
enum State {
    Reserved,
    Live(Arc<Attachment>),
    Released(Arc<Attachment>),
}

struct Entry {
    id: u32,
    /// The VM (`VmFile::key`), window and GSI, for the conflict checks.
    vm: usize,
    gpa: u64,
    gsi: u32,
    state: State,
    /// Its file let it go while its live part was being dropped elsewhere
    /// (the reaper): removed, not kept released, when that is done.
    forgotten: bool,
}

impl Entry {
    /// Holds its window and GSI (not released).
    fn holds(&self) -> bool {
        !matches!(self.state, State::Released(_))
    }

    /// The attachment, once published.
    fn attachment(&self) -> Option<&Arc<Attachment>> {
        match &self.state {
            State::Reserved => None,
            State::Live(a) | State::Released(a) => Some(a),
        }
    }
}

struct Table {
    entries: KVec<Entry>,
    next_id: u32,
}

global_lock! {
    // SAFETY: Initialised by `init` in the module initialiser, before the misc
    // device (the only way in) is registered.
    unsafe(uninit) static ATTACHMENTS: Mutex<Table> = Table { entries: KVec::new(), next_id: 1 };
}

/// Called once, from the module initialiser.
pub(crate) fn init() {
    // SAFETY: Called exactly once, before any other use of `ATTACHMENTS`.
    unsafe { ATTACHMENTS.init() };
}

/// An entry taken by ATTACH: its id, VM window and GSI. Dropping it frees
/// the window and GSI (the entry stays, released, while its attachment is
/// listed; an entry never published goes at once).
pub(crate) struct Reservation {
    id: u32,
}

impl Reservation {
    /// Take an id and (VM, window, GSI) for a new attachment.
    ///
    /// `ENOSPC` past `MAX_ATTACH`, `EEXIST` if the VM has a pvpass window
    /// that overlaps this one, `EBUSY` if the VM has a pvpass device on this
    /// GSI.
    pub(crate) fn take(vm: usize, gpa: u64, gsi: u32) -> Result<Self> {
        let mut guard = ATTACHMENTS.lock();
        let t = &mut *guard;
        if t.entries.iter().filter(|e| e.holds()).count() >= uapi::MAX_ATTACH {
            return Err(ENOSPC);
        }
        for e in t.entries.iter().filter(|e| e.holds() && e.vm == vm) {
            // Windows are WINDOW_SIZE long and aligned, so overlap means equal.
            if e.gpa == gpa {
                return Err(EEXIST);
            }
            if e.gsi == gsi {
                return Err(EBUSY);
            }
        }
        // Ids are unique among the entries; zero is never used.
        let mut id = t.next_id;
        while id == 0 || t.entries.iter().any(|e| e.id == id) {
            id = id.wrapping_add(1);
        }
        t.next_id = id.wrapping_add(1);
        t.entries.push(
            Entry {
                id,
                vm,
                gpa,
                gsi,
                state: State::Reserved,
                forgotten: false,
            },
            GFP_KERNEL,
        )?;
        Ok(Self { id })
    }

    pub(crate) fn id(&self) -> u32 {
        self.id
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let gone = {
            let mut t = ATTACHMENTS.lock();
            let Some(i) = t.entries.iter().position(|e| e.id == self.id) else {
                return;
            };
            match t.entries.get_mut(i) {
                // Listed until its file lets it go.
                Some(e) if !e.forgotten && matches!(e.state, State::Live(_)) => {
                    if let State::Live(a) = core::mem::replace(&mut e.state, State::Reserved) {
                        e.state = State::Released(a);
                    }
                    None
                }
                // Never published, or its file let it go already.
                _ => t.entries.remove(i).ok(),
            }
        };
        // The attachment's reference goes outside the lock.
        drop(gone);
    }
}

/// What an attachment holds while the VM is served. Field order is drop
/// order: the port leaves its backend, the device's transmit poll stops
/// (it runs on the window) and the window leaves the bus first (no new
/// frames, no guest access), then the VMM's address space and the
/// resample eventfd are no longer watched, then the device unpins its
/// pages, then the VM file is released, then the entry's window and GSI
/// are freed.
pub(crate) struct Live {
    pub(crate) _link: Link,
    pub(crate) _poll: StopPollOnDrop,
    pub(crate) _window: MmioWindow,
    pub(crate) _watch: MmWatch,
    pub(crate) _resample: Option<ResampleWatch>,
    pub(crate) _shutdown: ShutdownOnDrop,
    pub(crate) vm: VmFile,
    pub(crate) _reservation: Reservation,
}

#[pin_data]
pub(crate) struct Attachment {
    pub(crate) dev: Arc<Device>,
    /// Process (tgid) that attached, and the GSI, for LIST.
    pub(crate) owner_pid: i32,
    pub(crate) gsi: u32,
    /// The name of its backend, for LIST.
    pub(crate) backend: backend::Name,
    #[pin]
    live: Mutex<Option<Live>>,
}

/// The attachment `id`, whichever file made it.
pub(crate) fn find_any(id: u32) -> Option<Arc<Attachment>> {
    let t = ATTACHMENTS.lock();
    t.entries
        .iter()
        .find(|e| e.id == id)
        .and_then(|e| e.attachment().cloned())
}

/// Call `f` for every attachment, live or released, in attach order.
pub(crate) fn for_each(mut f: impl FnMut(&Attachment)) {
    for a in ATTACHMENTS
        .lock()
        .entries
        .iter()
        .filter_map(|e| e.attachment())
    {
        f(a);
    }
}

impl Attachment {
    /// Wrap a live device and publish it: listed, and under the reaper's
    /// watch. Its entry was reserved by `live`'s reservation.
    pub(crate) fn new(dev: Arc<Device>, owner_pid: i32, gsi: u32, live: Live) -> Result<Arc<Self>> {
        let backend = *live._link.backend().name();
        let id = live._reservation.id();
        let att = Arc::pin_init(
            pin_init!(Self { dev, owner_pid, gsi, backend, live <- new_mutex!(Some(live)) }),
            GFP_KERNEL,
        )?;
        let mut t = ATTACHMENTS.lock();
        if let Some(e) = t.entries.iter_mut().find(|e| e.id == id) {
            e.state = State::Live(att.clone());
        }
        drop(t);
        Ok(att)
    }

    /// The owning file lets the attachment go (after `release`): its entry
    /// goes.
    pub(crate) fn forget(&self) {
        let gone = {
            let mut t = ATTACHMENTS.lock();
            let Some(i) = t.entries.iter().position(|e| e.id == self.dev.id) else {
                return;
            };
            match t.entries.get_mut(i) {
                Some(e) if matches!(e.state, State::Released(_)) => t.entries.remove(i).ok(),
                // Its live part is being dropped by the reaper: the entry
                // goes when that is done.
                Some(e) => {
                    e.forgotten = true;
                    None
                }
                None => None,
            }
        };
        drop(gone);
    }

    /// False once the VM was let go.
    pub(crate) fn is_live(&self) -> bool {
        self.live.lock().is_some()
    }

    /// Stop serving the VM: drop the live part (if still there), which
    /// marks the entry released. Called on DETACH and close.
    pub(crate) fn release(&self) {
        let live = self.live.lock().take();
        // In the attaching process its eventfd can be unbound from the GSI
        // (see `IrqFd::unbind`), so that it can be attached again.
        if let Some(l) = live.as_ref() {
            if kvm::current_tgid() == self.owner_pid {
                self.dev.unbind_irq(&l.vm);
            }
        }
        drop(live);
    }

    /// What LIST reports about this attachment.
    pub(crate) fn info(&self) -> uapi::Info {
        uapi::Info {
            id: self.dev.id,
            flags: if self.is_live() {
                0
            } else {
                uapi::INFO_RELEASED
            },
            owner_pid: self.owner_pid,
            gsi: self.gsi,
            gpa: self.dev.gpa,
            mac: self.dev.mac(),
            backend: self.backend,
            ..Default::default()
        }
    }

    /// Every counter of the attachment, `released` included.
    pub(crate) fn counters(&self) -> crate::net::stats::Snapshot {
        let mut s = self.dev.counters();
        s.set(crate::net::stats::C::Released, u64::from(!self.is_live()));
        s
    }
}

/// Called by the glue's reaper every 250 ms: release every attachment whose
/// VMM has exited.
#[no_mangle]
extern "C" fn pvpass_rs_reap() {
    let mut gone = KVec::new();
    {
        let t = ATTACHMENTS.lock();
        for e in t.entries.iter() {
            let State::Live(a) = &e.state else {
                continue;
            };
            if a.live.lock().as_ref().is_some_and(|l| !l.vm.vmm_alive()) {
                // Should `gone` fail to grow, the file's reference still
                // holds the attachment, which is then released at DETACH
                // or close (or at the next reap) instead.
                if gone.push(a.clone(), GFP_KERNEL).is_err() {
                    break;
                }
            }
        }
    }
    for a in gone.iter() {
        let live = a.live.lock().take();
        if live.is_some() {
            pr_info!("device {} released: its VMM exited\n", a.dev.id);
        }
        drop(live);
    }
}
