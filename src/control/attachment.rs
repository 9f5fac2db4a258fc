// SPDX-License-Identifier: GPL-2.0

//! One VM attached to pvpass, and the reaper that lets it go when its VMM
//! exits.
//!
//! An `Attachment` is owned by the /dev/pvpass file that made it (see
//! `file.rs`). Its live part (the backend link, the MMIO window, the VM file
//! reference and the registry reservation) is dropped on DETACH, on close,
//! or by the reaper once the VMM process has exited, whichever comes first:
//! a VM is never kept alive by pvpass after its VMM is gone, even when the
//! process that attached it is stuck. What remains is a husk whose counters
//! can still be read (GET_STATS reports it as released) until DETACH or close.
//!
//! Every attachment, live or husk, is also on `ALL` (for LIST, and for
//! DETACH/GET_STATS with PVPASS_F_ANY_FILE) until its file lets it go.
//!
//! Lock order: a file's `attachments`, then `ALL`, then `LIVE`, then
//! `Attachment::live`.
//! The live part is always dropped with no lock held (dropping the window
//! waits for the VM's srcu).

use kernel::{
    new_mutex,
    prelude::*,
    sync::{global_lock, Arc, Mutex},
};

use super::registry::Reservation;
use crate::{
    backend::{self, Link},
    kvm::{self, MmWatch, MmioWindow, ResampleWatch, VmFile},
    net::{Device, ShutdownOnDrop},
    uapi,
};

/// What an attachment holds while the VM is served. Field order is drop
/// order: the port leaves its backend and the window leaves the bus first (no
/// new frames, no guest access), then the VMM's address space and the
/// resample eventfd are no longer watched, then the device unpins its
/// pages, then the VM file is released, then the registry entry (window,
/// GSI) is freed.
pub(crate) struct Live {
    pub(crate) _link: Link,
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

global_lock! {
    // SAFETY: Initialised by `init` in the module initialiser, before the misc
    // device (the only way in) is registered.
    unsafe(uninit) static LIVE: Mutex<KVec<Arc<Attachment>>> = KVec::new();
}

global_lock! {
    // SAFETY: Initialised by `init` in the module initialiser, before the misc
    // device (the only way in) is registered.
    unsafe(uninit) static ALL: Mutex<KVec<Arc<Attachment>>> = KVec::new();
}

/// Called once, from the module initialiser.
pub(crate) fn init() {
    // SAFETY: Called exactly once, before any other use of `LIVE`.
    unsafe { LIVE.init() };
    // SAFETY: Called exactly once, before any other use of `ALL`.
    unsafe { ALL.init() };
}

/// The attachment `id`, whichever file made it.
pub(crate) fn find_any(id: u32) -> Option<Arc<Attachment>> {
    ALL.lock().iter().find(|a| a.dev.id == id).cloned()
}

/// Call `f` for every attachment, in attach order.
pub(crate) fn for_each(mut f: impl FnMut(&Attachment)) {
    for a in ALL.lock().iter() {
        f(a);
    }
}

impl Attachment {
    /// Wrap a live device and put it under the reaper's watch.
    pub(crate) fn new(dev: Arc<Device>, owner_pid: i32, gsi: u32, live: Live) -> Result<Arc<Self>> {
        let backend = *live._link.backend().name();
        let att = Arc::pin_init(
            pin_init!(Self { dev, owner_pid, gsi, backend, live <- new_mutex!(Some(live)) }),
            GFP_KERNEL,
        )?;
        ALL.lock().push(att.clone(), GFP_KERNEL)?;
        if let Err(e) = LIVE.lock().push(att.clone(), GFP_KERNEL) {
            att.forget();
            return Err(e.into());
        }
        Ok(att)
    }

    /// The owning file lets the attachment go (after `release`).
    pub(crate) fn forget(&self) {
        let gone = {
            let mut all = ALL.lock();
            let i = all.iter().position(|a| a.dev.id == self.dev.id);
            i.and_then(|i| all.remove(i).ok())
        };
        drop(gone);
    }

    /// False once the reaper let the VM go.
    pub(crate) fn is_live(&self) -> bool {
        self.live.lock().is_some()
    }

    /// Stop serving the VM: drop the live part (if still there) and stop
    /// watching it. Called on DETACH and close.
    pub(crate) fn release(&self) {
        LIVE.lock().retain(|a| a.dev.id != self.dev.id);
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
}

/// Called by the glue's reaper every 250 ms: release every attachment whose
/// VMM has exited.
#[no_mangle]
extern "C" fn pvpass_rs_reap() {
    let mut gone = KVec::new();
    {
        let mut live = LIVE.lock();
        let mut i = 0;
        while i < live.len() {
            let dead = live
                .get(i)
                .is_some_and(|a| a.live.lock().as_ref().is_some_and(|l| !l.vm.vmm_alive()));
            if !dead {
                i += 1;
                continue;
            }
            match live.remove(i) {
                // Released below. Should `gone` fail to grow, the file's
                // reference still holds the attachment, which is then
                // released at DETACH or close instead.
                Ok(a) => {
                    let _ = gone.push(a, GFP_KERNEL);
                }
                Err(_) => break,
            }
        }
    }
    for a in gone.iter() {
        let live = a.live.lock().take();
        drop(live);
        pr_info!("device {} released: its VMM exited\n", a.dev.id);
    }
}

impl Attachment {
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
