// SPDX-License-Identifier: GPL-2.0

//! An open /dev/pvpass file: its attachments and its ioctls.
//!
//! Who owns an attachment: the file that made it. It lives until DETACH on
//! that file or until the file is closed (also when the process holding it
//! exits). Only root (CAP_SYS_ADMIN) may attach: the caller hands the module
//! a VM, and the module will pin that VM's memory.
//!
//! Lock order: `PvpassFile::attachments`, then `attachment::ATTACHMENTS`. No lock
//! is held while an attachment is dropped (that waits for the VM's srcu).

use kernel::{
    fs::File,
    ioctl::_IOC_SIZE,
    miscdevice::{
        MiscDevice,
        MiscDeviceRegistration, //
    },
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    }, //
};

use super::{
    attachment::{
        self,
        Attachment,
        Live,
        Reservation, //
    }, //
};
use crate::{
    backend::{
        self,
        switch::Switch,
        Link,
        Port, //
    },
    kvm::{
        self,
        IrqFd,
        MmWatch,
        MmioWindow,
        ResampleWatch,
        VmFile, //
    },
    net::{
        stats,
        Device,
        ShutdownOnDrop,
        StopPollOnDrop, //
    },
    uapi, //
};

/// Largest GSI accepted (KVM_MAX_IRQ_ROUTES on x86). GSI 0 is the timer.
const MAX_GSI: u32 = 4096;

#[pin_data]
pub(crate) struct PvpassFile {
    #[pin]
    attachments: Mutex<KVec<Arc<Attachment>>>,
}

#[vtable]
impl MiscDevice for PvpassFile {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(
            try_pin_init!(Self {
                attachments <- new_mutex!(KVec::new()),
            }),
            GFP_KERNEL,
        )
    }

    fn release(me: Pin<KBox<Self>>, _file: &File) {
        // Take the attachments out under the lock, release them outside it.
        let all = core::mem::take(&mut *me.attachments.lock());
        for a in all.iter() {
            a.release();
            a.forget();
        }
    }

    fn ioctl(me: Pin<&Self>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let user = UserSlice::new(UserPtr::from_addr(arg), _IOC_SIZE(cmd));
        match cmd {
            uapi::GET_VERSION => {
                let v = uapi::Version {
                    api_version: uapi::API_VERSION,
                    features: uapi::FEAT_MMIO_ID
                        | uapi::FEAT_CONFIG
                        | uapi::FEAT_SWITCH
                        | uapi::FEAT_RESAMPLE
                        | uapi::FEAT_SWITCHES
                        | uapi::FEAT_COUNTERS
                        | uapi::FEAT_VHOST
                        | uapi::FEAT_VHOST_RULES,
                    window_size: uapi::WINDOW_SIZE as u32,
                    max_attach: uapi::MAX_ATTACH as u32,
                };
                user.writer().write(&v)?;
            }
            uapi::ATTACH => {
                require_admin()?;
                let (mut reader, mut writer) = user.reader_writer();
                let mut req: uapi::Attach = reader.read()?;
                req.id = me.attach(&req)?;
                writer.write(&req)?;
            }
            uapi::DETACH => {
                let req: uapi::Detach = user.reader().read()?;
                match req.flags {
                    0 => me.detach(req.id)?,
                    uapi::F_ANY_FILE => {
                        require_admin()?;
                        let a = attachment::find_any(req.id).ok_or(ENOENT)?;
                        a.release();
                        pr_info!("device {} detached by an administrator\n", req.id);
                    }
                    _ => return Err(EINVAL),
                }
            }
            uapi::GET_STATS => {
                let (mut reader, mut writer) = user.reader_writer();
                let req: uapi::Stats = reader.read()?;
                let stats_of = |a: &Attachment| a.counters().to_stats(a.dev.id);
                let stats = match req.flags {
                    0 => me.find(req.id, stats_of)?,
                    uapi::F_ANY_FILE => {
                        require_admin()?;
                        match attachment::find_any(req.id) {
                            Some(a) => stats_of(&a),
                            None => super::vhost::find_any(req.id)
                                .ok_or(ENOENT)?
                                .counters()
                                .to_stats(req.id),
                        }
                    }
                    _ => return Err(EINVAL),
                };
                writer.write(&stats)?;
            }
            uapi::LIST => list(user, |f| {
                attachment::for_each(|a| f(a.info()));
                super::vhost::for_each(|l| f(l.info()));
            })?,
            uapi::SWITCH_ADD => {
                require_admin()?;
                let name = switch_name(user.reader().read()?)?;
                backend::add(Switch::new(name, 0)?)?;
                pr_info!("switch {} added\n", shown(&name));
            }
            uapi::SWITCH_DEL => {
                require_admin()?;
                let name = switch_name(user.reader().read()?)?;
                backend::delete(&name)?;
                pr_info!("switch {} deleted\n", shown(&name));
            }
            uapi::SWITCH_LIST => list(user, |f| backend::for_each(|b| f(b.info())))?,
            uapi::VHOST_RULE_ADD => {
                require_admin()?;
                super::vhost::rule_add(&user.reader().read()?)?;
            }
            uapi::VHOST_RULE_DEL => {
                require_admin()?;
                super::vhost::rule_del(&user.reader().read()?)?;
            }
            uapi::VHOST_RULE_LIST => list(user, |f| super::vhost::for_each_rule(f))?,
            uapi::GET_COUNTERS => {
                let (mut reader, mut writer) = user.reader_writer();
                let mut req: uapi::Counters = reader.read()?;
                if req.reserved != 0 {
                    return Err(EINVAL);
                }
                let counters = match req.flags {
                    0 => me.find(req.id, |a| a.counters())?,
                    uapi::F_ANY_FILE => {
                        require_admin()?;
                        match attachment::find_any(req.id) {
                            Some(a) => a.counters(),
                            None => super::vhost::find_any(req.id).ok_or(ENOENT)?.counters(),
                        }
                    }
                    _ => return Err(EINVAL),
                };
                let room = usize::try_from(req.count).map_err(|_| EINVAL)?;
                let len = room
                    .min(stats::NR)
                    .checked_mul(core::mem::size_of::<uapi::Counter>())
                    .ok_or(EINVAL)?;
                let mut out =
                    UserSlice::new(UserPtr::from_addr(req.entries as usize), len).writer();
                for (name, value) in counters.iter().take(room) {
                    out.write(&uapi::Counter {
                        name: stats::uapi_name(name),
                        value,
                    })?;
                }
                req.count = stats::NR as u32;
                writer.write(&req)?;
            }
            _ => return Err(ENOTTY),
        }
        Ok(0)
    }
}

/// A counted list (`struct pvpass_list`, `struct pvpass_switch_list`) of
/// the entries `each` produces: collected first (under whatever lock `each`
/// takes), then copied to userspace without it.
fn list<T: kernel::transmute::AsBytes>(
    user: UserSlice,
    each: impl FnOnce(&mut dyn FnMut(T)),
) -> Result {
    let (mut reader, mut writer) = user.reader_writer();
    let mut req: uapi::List = reader.read()?;
    if req.flags != 0 {
        return Err(EINVAL);
    }
    let room = usize::try_from(req.count).map_err(|_| EINVAL)?;
    let len = room.checked_mul(core::mem::size_of::<T>()).ok_or(EINVAL)?;
    let mut out = UserSlice::new(UserPtr::from_addr(req.entries as usize), len).writer();
    let mut items = KVec::new();
    let mut total = 0u32;
    let mut err = Ok(());
    each(&mut |item| {
        total = total.saturating_add(1);
        if items.len() < room && err.is_ok() {
            err = items.push(item, GFP_KERNEL);
        }
    });
    err?;
    for item in items.iter() {
        out.write(item)?;
    }
    req.count = total;
    writer.write(&req)?;
    Ok(())
}

/// The name of a SWITCH_ADD/DEL request, checked (flags and reserved
/// fields zero, a valid non-empty name).
fn switch_name(req: uapi::Switch) -> Result<backend::Name> {
    if req.flags != 0 || req.ports != 0 || req.reserved.iter().any(|&r| r != 0) {
        return Err(EINVAL);
    }
    if req.name.first() == Some(&0) {
        return Err(EINVAL);
    }
    backend::parse_name(&req.name)
}

/// A NUL-padded name for a log line.
fn shown(name: &backend::Name) -> &kernel::str::BStr {
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    kernel::str::BStr::from_bytes(name.get(..len).unwrap_or(&[]))
}

/// ATTACH hands the module a VM whose memory it will pin: root only.
pub(super) fn require_admin() -> Result {
    // SAFETY: `capable` only reads the current task's credentials.
    if unsafe { kernel::bindings::capable(kernel::bindings::CAP_SYS_ADMIN as i32) } {
        Ok(())
    } else {
        Err(EPERM)
    }
}

/// Check an ATTACH request's fields that need no lookup. On error, says which.
fn validate(req: &uapi::Attach) -> Result<(), (Error, &'static str)> {
    if req.flags & !uapi::ATTACH_F_RESAMPLE != 0 {
        return Err((EINVAL, "unknown flags"));
    }
    if req.flags & uapi::ATTACH_F_RESAMPLE == 0 {
        if req.resample_fd != 0 {
            return Err((EINVAL, "resample_fd set without PVPASS_ATTACH_F_RESAMPLE"));
        }
    } else if req.irq_fd == -1 {
        return Err((EINVAL, "PVPASS_ATTACH_F_RESAMPLE without irq_fd"));
    } else if req.resample_fd < 0 {
        return Err((EINVAL, "resample_fd must be an eventfd"));
    }
    if req.reserved0 != 0 || req.reserved.iter().any(|&r| r != 0) || req.id != 0 {
        return Err((EINVAL, "reserved fields (or id) not zero"));
    }
    if req.gpa % uapi::WINDOW_SIZE != 0 {
        return Err((EINVAL, "gpa not 4 KiB aligned"));
    }
    if req.gpa.checked_add(uapi::WINDOW_SIZE).is_none() {
        return Err((EINVAL, "window wraps the address space"));
    }
    if req.mac.iter().all(|&b| b == 0) {
        return Err((EINVAL, "zero MAC"));
    }
    if req.mac[0] & 1 != 0 {
        return Err((EINVAL, "multicast MAC"));
    }
    if req.gsi == 0 || req.gsi >= MAX_GSI {
        return Err((EINVAL, "gsi out of range (1..4095)"));
    }
    if backend::parse_name(&req.backend).is_err() {
        return Err((
            EINVAL,
            "backend name not NUL-terminated, not zero-padded or not [A-Za-z0-9_.-]",
        ));
    }
    if req.irq_fd < -1 {
        return Err((EINVAL, "irq_fd must be -1 or an eventfd"));
    }
    Ok(())
}

impl PvpassFile {
    // Not inlined into `ioctl`: its frame would then be paid by every ioctl.
    #[inline(never)]
    fn attach(&self, req: &uapi::Attach) -> Result<u32> {
        if let Err((err, why)) = validate(req) {
            if kvm::ratelimit() {
                pr_info!("ATTACH rejected ({}): {}\n", err.to_errno(), why);
            }
            return Err(err);
        }
        let Some(backend) = backend::parse_name(&req.backend)
            .ok()
            .and_then(|n| backend::find(&n))
        else {
            if kvm::ratelimit() {
                pr_info!("ATTACH rejected ({}): no such switch\n", ENODEV.to_errno());
            }
            return Err(ENODEV);
        };
        let vm = VmFile::from_fd(req.vm_fd)?;
        let reservation = Reservation::take(vm.key(), req.gpa, req.gsi)?;
        let resample_fd = (req.flags & uapi::ATTACH_F_RESAMPLE != 0).then_some(req.resample_fd);
        let irq = match req.irq_fd {
            -1 => None,
            fd => Some(IrqFd::bind(&vm, fd, req.gsi, resample_fd).inspect_err(|e| {
                if kvm::ratelimit() {
                    pr_info!(
                        "ATTACH rejected ({}): irq_fd {} cannot be bound to gsi {}{}\n",
                        e.to_errno(),
                        fd,
                        req.gsi,
                        if resample_fd.is_some() {
                            " with resampling (not an eventfd, or no full in-kernel irqchip)"
                        } else {
                            " (not an eventfd, or no in-kernel irqchip)"
                        }
                    );
                }
            })?),
        };
        let dev = Device::new(reservation.id(), req.gpa, req.mac, irq, &vm)?;
        // From here on every failure unpins what the guest made the device
        // pin meanwhile (its queues may start as soon as the window is
        // live): declared before the window, so an early return drops the
        // window first (no MMIO op runs any more), then this.
        let shutdown = ShutdownOnDrop(dev.clone());
        // Room in the list first, so nothing can fail after the window is live.
        self.attachments.lock().reserve(1, GFP_KERNEL)?;
        // SAFETY: The window is stored with `vm` in one `Live`, whose field
        // order drops the window first, inside an `Attachment` that holds
        // `dev` for longer than the `Live`.
        let window = unsafe { MmioWindow::register(&vm, req.gpa, Arc::as_ptr(&dev).cast()) }?;
        // An op may arm the device's transmit poll on the window from now
        // on: declared after it, so stopped before it goes, here and in
        // `Live`.
        let poll = StopPollOnDrop(dev.clone());
        // SAFETY: As for the window: stored in the same `Live`, dropped
        // before its `ShutdownOnDrop`, while the attachment holds `dev`.
        let watch = unsafe { MmWatch::register(&vm, Arc::as_ptr(&dev).cast()) }?;
        // The resample eventfd is looked up by number a second time here
        // (KVM took it in `IrqFd::bind`). A caller that swaps the fd in
        // between only makes its own guest's line edge-like again.
        let resample = match resample_fd {
            // SAFETY: As for the window: stored in the same `Live`, dropped
            // before its `ShutdownOnDrop`, while the attachment holds `dev`.
            Some(fd) => Some(unsafe { ResampleWatch::register(fd, Arc::as_ptr(&dev).cast()) }?),
            None => None,
        };
        let id = dev.id;
        let port: Arc<dyn Port> = dev.clone();
        let (link, uplink) = Link::connect(&backend, port)?;
        dev.set_uplink(uplink);
        let owner = kvm::current_tgid();
        let live = Live {
            _link: link,
            _poll: poll,
            _window: window,
            _watch: watch,
            _resample: resample,
            _shutdown: shutdown,
            vm,
            _reservation: reservation,
        };
        let att = Attachment::new(dev, owner, req.gsi, live)?;
        let mut list = self.attachments.lock();
        if list.push_within_capacity(att.clone()).is_err() {
            // Another ATTACH on this file used the room.
            drop(list);
            att.release();
            att.forget();
            return Err(ENOMEM);
        }
        pr_info!(
            "device {} attached at gpa {:#x}, gsi {}, switch {}\n",
            id,
            req.gpa,
            req.gsi,
            shown(backend.name())
        );
        Ok(id)
    }

    fn detach(&self, id: u32) -> Result {
        let att = {
            let mut list = self.attachments.lock();
            let i = list.iter().position(|a| a.dev.id == id).ok_or(ENOENT)?;
            list.remove(i).map_err(|_| ENOENT)?
        };
        att.release();
        att.forget();
        pr_info!("device {} detached\n", id);
        Ok(())
    }

    fn find<R>(&self, id: u32, f: impl FnOnce(&Attachment) -> R) -> Result<R> {
        let list = self.attachments.lock();
        list.iter()
            .find(|a| a.dev.id == id)
            .map(|a| f(a))
            .ok_or(ENOENT)
    }
}
