//! The /dev/pvpass file and its ioctls, with errno-to-message mapping.

use crate::args::Mac;
use crate::uapi::{
    self, PvpassAttach, PvpassCounter, PvpassCounters, PvpassDetach, PvpassInfo, PvpassList,
    PvpassStats, PvpassSwitch, PvpassSwitchList, PvpassVersion, PVPASS_MAX_SWITCHES,
};
use anyhow::{anyhow, bail, Result};
use nix::errno::Errno;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

pub const ROOT_MSG: &str = "pvpassctl must run as root";

/// An open /dev/pvpass. Attachments made through it end when it is dropped.
pub struct Device {
    file: File,
    path: PathBuf,
}

/// What ATTACH is asked to do, kept for error messages.
#[derive(Debug, Clone)]
pub struct AttachRequest<'a> {
    pub pid: i32,
    /// Eventfd the module binds to `gsi` with KVM's irqfd; `None` passes
    /// irq_fd = -1 (no interrupts, the guest must poll).
    pub irq_fd: Option<BorrowedFd<'a>>,
    /// For a level-triggered GSI: the eventfd KVM signals at each EOI
    /// (PVPASS_ATTACH_F_RESAMPLE). Needs `irq_fd`.
    pub resample_fd: Option<BorrowedFd<'a>>,
    pub gpa: u64,
    pub gsi: u32,
    pub mac: Mac,
    pub switch: String,
    /// The module has named switches (PVPASS_FEAT_SWITCHES); without them
    /// only its default switch exists.
    pub named_switches: bool,
    pub max_attach: u32,
    /// How long to retry while the VM has no in-kernel irqchip yet (ENXIO).
    pub irqchip_wait: std::time::Duration,
}

/// Message for a failed open of the device node.
pub fn open_error_message(path: &Path, err: &io::Error) -> String {
    match err.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ENOENT | Errno::ENXIO | Errno::ENODEV) => format!(
            "pvpass module not loaded: insmod pvpass.ko ({}: {err})",
            path.display()
        ),
        Some(Errno::EACCES | Errno::EPERM) => {
            format!(
                "{ROOT_MSG} (cannot open {}: permission denied)",
                path.display()
            )
        }
        _ => format!("cannot open {}: {err}", path.display()),
    }
}

/// Message for an ioctl the device does not know at all.
fn not_pvpass(path: &Path, what: &str) -> String {
    format!(
        "{} does not answer {what}: not a pvpass device, or a module of an incompatible version",
        path.display()
    )
}

/// An ioctl that names one attachment by id on behalf of any process
/// (PVPASS_F_ANY_FILE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdOp {
    Stats,
    /// PVPASS_GET_COUNTERS, the named-counter form of `stats`.
    Counters,
    Detach,
}

impl IdOp {
    fn verb(self) -> &'static str {
        match self {
            IdOp::Stats | IdOp::Counters => "stats",
            IdOp::Detach => "detach",
        }
    }

    fn ioctl(self) -> &'static str {
        match self {
            IdOp::Stats => "PVPASS_GET_STATS",
            IdOp::Counters => "PVPASS_GET_COUNTERS",
            IdOp::Detach => "PVPASS_DETACH",
        }
    }
}

/// Message for a failed GET_STATS or DETACH with PVPASS_F_ANY_FILE.
pub fn id_error_message(op: IdOp, id: u32, errno: Errno, path: &Path) -> String {
    match errno {
        Errno::EPERM | Errno::EACCES => format!(
            "{} of another process's attachment needs root (CAP_SYS_ADMIN) ({errno:?})",
            op.verb()
        ),
        Errno::ENOENT => {
            format!("no attachment with id {id} (ENOENT); `pvpassctl list` shows them")
        }
        // A module with GET_COUNTERS knows PVPASS_F_ANY_FILE.
        Errno::EINVAL if op == IdOp::Counters => format!(
            "the module rejected {} id={id} (EINVAL): a module of another version than this \
             tool (unknown flags or reserved fields)",
            op.ioctl()
        ),
        Errno::EINVAL => format!(
            "the module rejected {} id={id} with PVPASS_F_ANY_FILE (EINVAL): the loaded \
             pvpass module is older than this tool and cannot act on another process's \
             attachment",
            op.ioctl()
        ),
        Errno::ENOTTY => not_pvpass(path, op.ioctl()),
        e => format!("{} id={id} failed: {} ({e:?})", op.ioctl(), e.desc()),
    }
}

/// Message for a failed PVPASS_LIST (the device already answered
/// GET_VERSION, so ENOTTY means an older module).
pub fn list_error_message(errno: Errno) -> String {
    match errno {
        Errno::ENOTTY => "the loaded pvpass module does not know PVPASS_LIST (ENOTTY): it is \
                          older than this tool; load the pvpass.ko built with it"
            .to_owned(),
        Errno::EINVAL => "the module rejected PVPASS_LIST (EINVAL): a module of another \
                          version than this tool"
            .to_owned(),
        Errno::EPERM | Errno::EACCES => format!("{ROOT_MSG} ({errno:?})"),
        e => format!("PVPASS_LIST failed: {} ({e:?})", e.desc()),
    }
}

/// Most entries `list` asks for after the module said how many there are:
/// protects against allocating gigabytes for a nonsensical count.
const LIST_MAX_ROOM: u32 = 1 << 16;

/// Room of the first GET_COUNTERS call: more than the module has today, so
/// one call is enough; a module with more says how many, and is asked again.
pub const COUNTERS_ROOM: u32 = 128;
/// Most counters `stats` asks for after the module said how many there are.
const COUNTERS_MAX_ROOM: u32 = 4096;

/// The error when the module lacks named switches (PVPASS_FEAT_SWITCHES),
/// if it does.
pub fn require_switches(features: u32) -> Result<(), String> {
    if features & uapi::PVPASS_FEAT_SWITCHES != 0 {
        return Ok(());
    }
    Err(format!(
        "the loaded pvpass module has no named switches (PVPASS_FEAT_SWITCHES is not in its \
         features {features:#x}): it is older than this tool and has only its default switch; \
         load the pvpass.ko built with this tool"
    ))
}

/// SWITCH_ADD, SWITCH_DEL or SWITCH_LIST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchOp {
    Add,
    Del,
    List,
}

impl SwitchOp {
    fn verb(self) -> &'static str {
        match self {
            SwitchOp::Add => "switch add",
            SwitchOp::Del => "switch del",
            SwitchOp::List => "switch list",
        }
    }

    fn ioctl(self) -> &'static str {
        match self {
            SwitchOp::Add => "PVPASS_SWITCH_ADD",
            SwitchOp::Del => "PVPASS_SWITCH_DEL",
            SwitchOp::List => "PVPASS_SWITCH_LIST",
        }
    }
}

/// Message for a failed SWITCH_ADD, SWITCH_DEL (`name` the switch) or
/// SWITCH_LIST (`name` empty), one per errno documented in the UAPI header.
pub fn switch_error_message(op: SwitchOp, name: &str, errno: Errno) -> String {
    match (op, errno) {
        (_, Errno::EPERM | Errno::EACCES) => {
            format!("{} needs root (CAP_SYS_ADMIN) ({errno:?})", op.verb())
        }
        (SwitchOp::Add, Errno::EEXIST) => {
            format!("a switch named '{name}' exists already (EEXIST)")
        }
        (SwitchOp::Add, Errno::ENOSPC) => format!(
            "no room for another switch (ENOSPC): the module has its {PVPASS_MAX_SWITCHES} \
             switches (PVPASS_MAX_SWITCHES, \"default\" included); `pvpassctl switch del` \
             one first"
        ),
        (SwitchOp::Del, Errno::ENOENT) => {
            format!("no switch named '{name}' (ENOENT); `pvpassctl switch list` shows them")
        }
        (SwitchOp::Del, Errno::EBUSY) if name == "default" => {
            "the default switch cannot be deleted (EBUSY): it is the module's own, with the \
             host interface pvpsw0"
                .to_owned()
        }
        (SwitchOp::Del, Errno::EBUSY) => format!(
            "switch '{name}' has devices attached (EBUSY): detach them first (`pvpassctl \
             list` shows each device's SWITCH)"
        ),
        (SwitchOp::Add | SwitchOp::Del, Errno::EINVAL) => format!(
            "the module rejected {} '{name}' (EINVAL): a bad name, or a module of another \
             version than this tool (unknown flags or reserved fields)",
            op.ioctl()
        ),
        (SwitchOp::List, Errno::EINVAL) => format!(
            "the module rejected {} (EINVAL): a module of another version than this tool",
            op.ioctl()
        ),
        (_, Errno::ENOTTY) => format!(
            "the loaded pvpass module does not know {} (ENOTTY): it has no named switches and \
             is older than this tool; load the pvpass.ko built with it",
            op.ioctl()
        ),
        (SwitchOp::List, e) => format!("{} failed: {} ({e:?})", op.ioctl(), e.desc()),
        (_, e) => format!("{} '{name}' failed: {} ({e:?})", op.ioctl(), e.desc()),
    }
}

/// The name of a NUL-terminated counter name field (all of it if it has no
/// NUL).
pub fn counter_name(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// The first `count` entries of a GET_COUNTERS buffer as (name, value), in
/// the module's order.
pub fn counters_of(buf: &[PvpassCounter], count: u32) -> Vec<(String, u64)> {
    buf.iter()
        .take(count as usize)
        .map(|c| (counter_name(&c.name), c.value))
        .collect()
}

/// Message for a failed PVPASS_ATTACH, one per errno documented in the UAPI
/// header.
pub fn attach_error_message(errno: Errno, req: &AttachRequest<'_>) -> String {
    match errno {
        Errno::EPERM | Errno::EACCES => ROOT_MSG.to_owned(),
        Errno::EEXIST => format!(
            "the window at {:#x} overlaps guest RAM or another pvpass device of this VM",
            req.gpa
        ),
        Errno::EBUSY => format!(
            "GSI {} is already used by a pvpass device of this VM",
            req.gsi
        ),
        Errno::EADDRINUSE => format!(
            "MAC {} is already used by another port of the switch (EADDRINUSE)",
            req.mac
        ),
        Errno::EINVAL => {
            let mut m = format!(
                "the module rejected the attach request (EINVAL): the fd taken from process {} \
                 is not a KVM VM, or gpa {:#x} / mac {} / switch '{}' is malformed, or the \
                 module is older than this tool and does not know a flag or field",
                req.pid, req.gpa, req.mac, req.switch
            );
            if req.irq_fd.is_some() {
                m.push_str(&format!(
                    "; most likely the interrupt could not be bound: QEMU needs the in-kernel \
                     irqchip (-machine ...,kernel-irqchip=on), or GSI {} cannot be routed \
                     (--no-irq attaches without interrupts)",
                    req.gsi
                ));
            }
            m
        }
        Errno::EBADF => format!(
            "the VM file descriptor taken from process {} is not an open file (EBADF)",
            req.pid
        ),
        Errno::ENOSPC => format!(
            "no room for another device (ENOSPC): the module already serves {} attachments, \
             or the VM's MMIO bus is full",
            req.max_attach
        ),
        Errno::ENXIO if req.resample_fd.is_some() => format!(
            "process {} has no in-kernel IOAPIC to resample the level-triggered GSI {} \
             (ENXIO): start QEMU with -machine ...,kernel-irqchip=on (not split), or use an \
             edge-triggered GSI such as 7 (--trigger edge)",
            req.pid, req.gsi
        ),
        Errno::ENXIO => format!(
            "process {} has no in-kernel irqchip for the interrupt (ENXIO): start QEMU with \
             -machine ...,kernel-irqchip=on, or attach with --no-irq",
            req.pid
        ),
        Errno::EOPNOTSUPP => {
            "this kernel's KVM lacks the pvpass patch series (EOPNOTSUPP): virtio-mmio attach \
             needs the patched kernel (patches/ in the pvpass tree); without it use the vhost \
             transport (pvpassctl vhost-exec, or libvirt with a vhost rule)"
                .to_owned()
        }
        Errno::ENODEV if req.switch.is_empty() => {
            "the default switch does not exist (ENODEV)".to_owned()
        }
        Errno::ENODEV if !req.named_switches => format!(
            "switch '{}' does not exist (ENODEV): the loaded pvpass module has only its \
             default switch (no PVPASS_FEAT_SWITCHES)",
            req.switch
        ),
        Errno::ENODEV => format!(
            "switch '{}' does not exist (ENODEV); `pvpassctl switch add {}` makes it",
            req.switch, req.switch
        ),
        Errno::ENOTTY => "the module does not know PVPASS_ATTACH (ENOTTY): not a pvpass \
                          device, or a module of an incompatible version"
            .to_owned(),
        Errno::ESRCH => format!("process {} exited during attach", req.pid),
        e => format!("attach failed: {} ({e})", e.desc()),
    }
}

impl Device {
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| anyhow!(open_error_message(path, &e)))?;
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }

    pub fn version(&self) -> Result<PvpassVersion> {
        let mut v = PvpassVersion::default();
        // SAFETY: the fd is open and `v` is a valid, writable pvpass_version.
        match unsafe { uapi::pvpass_get_version(self.file.as_raw_fd(), &mut v) } {
            Ok(_) => Ok(v),
            Err(Errno::ENOTTY | Errno::EINVAL) => {
                bail!(not_pvpass(&self.path, "PVPASS_GET_VERSION"))
            }
            Err(Errno::EPERM | Errno::EACCES) => bail!(ROOT_MSG),
            Err(e) => bail!("PVPASS_GET_VERSION failed: {} ({e})", e.desc()),
        }
    }

    /// ATTACH the VM behind `vm_fd`; returns the attachment id.
    pub fn attach(&self, vm_fd: BorrowedFd<'_>, req: &AttachRequest<'_>) -> Result<u32> {
        let backend = crate::args::backend_field(&req.switch).map_err(|e| anyhow!(e))?;
        let mut a = PvpassAttach {
            vm_fd: vm_fd.as_raw_fd(),
            irq_fd: req.irq_fd.map_or(-1, |fd| fd.as_raw_fd()),
            flags: if req.resample_fd.is_some() {
                uapi::PVPASS_ATTACH_F_RESAMPLE
            } else {
                0
            },
            resample_fd: req.resample_fd.map_or(0, |fd| fd.as_raw_fd()),
            gsi: req.gsi,
            gpa: req.gpa,
            mac: req.mac.0,
            backend,
            ..Default::default()
        };
        // The VMM creates its in-kernel irqchip just after the VM fd that we
        // waited for: ENXIO until then. Retry for a while before giving up.
        let deadline = std::time::Instant::now() + req.irqchip_wait;
        loop {
            // SAFETY: the fd is open and `a` is a valid pvpass_attach whose
            // reserved fields and flags are zero.
            match unsafe { uapi::pvpass_attach(self.file.as_raw_fd(), &mut a) } {
                Ok(_) => return Ok(a.id),
                Err(Errno::ENXIO) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => bail!(attach_error_message(e, req)),
            }
        }
    }

    /// GET_STATS with `flags` (0 or PVPASS_F_ANY_FILE), errno as is.
    pub fn get_stats(&self, id: u32, flags: u32) -> Result<PvpassStats, Errno> {
        let mut s = PvpassStats {
            id,
            flags,
            ..Default::default()
        };
        // SAFETY: the fd is open and `s` is a valid pvpass_stats.
        unsafe { uapi::pvpass_get_stats(self.file.as_raw_fd(), &mut s) }.map(|_| s)
    }

    /// Stats of an attachment made on this file.
    pub fn stats(&self, id: u32) -> Result<PvpassStats> {
        match self.get_stats(id, 0) {
            Ok(s) => Ok(s),
            Err(Errno::ENOTTY) => bail!(not_pvpass(&self.path, "PVPASS_GET_STATS")),
            Err(e) => bail!("PVPASS_GET_STATS id={id} failed: {} ({e})", e.desc()),
        }
    }

    /// Stats of any attachment of the module (root for another file's).
    pub fn stats_any(&self, id: u32) -> Result<PvpassStats> {
        self.get_stats(id, uapi::PVPASS_F_ANY_FILE)
            .map_err(|e| anyhow!(id_error_message(IdOp::Stats, id, e, &self.path)))
    }

    /// DETACH with `flags` (0 or PVPASS_F_ANY_FILE), errno as is.
    pub fn detach_raw(&self, id: u32, flags: u32) -> Result<(), Errno> {
        let d = PvpassDetach { id, flags };
        // SAFETY: the fd is open and `d` is a valid pvpass_detach.
        unsafe { uapi::pvpass_detach(self.file.as_raw_fd(), &d) }.map(|_| ())
    }

    /// Detach any attachment of the module (root for another file's): the
    /// module releases the VM at once; the owning file keeps a husk.
    pub fn detach_any(&self, id: u32) -> Result<()> {
        self.detach_raw(id, uapi::PVPASS_F_ANY_FILE)
            .map_err(|e| anyhow!(id_error_message(IdOp::Detach, id, e, &self.path)))
    }

    /// GET_COUNTERS with `flags` (0 or PVPASS_F_ANY_FILE) and room for
    /// `room` counters, errno as is: the counters written and the number the
    /// module has (more than the room if they did not fit).
    pub fn get_counters(
        &self,
        id: u32,
        flags: u32,
        room: u32,
    ) -> Result<(Vec<(String, u64)>, u32), Errno> {
        let mut buf = vec![PvpassCounter::default(); room as usize];
        let mut c = PvpassCounters {
            id,
            flags,
            count: room,
            reserved: 0,
            entries: buf.as_mut_ptr() as u64,
        };
        // SAFETY: the fd is open; `c.entries` points to `room` writable
        // pvpass_counter entries, which is the count passed in.
        unsafe { uapi::pvpass_get_counters(self.file.as_raw_fd(), &mut c) }?;
        Ok((counters_of(&buf, c.count.min(room)), c.count))
    }

    /// Every counter of any attachment of the module, by name, in the
    /// module's order (root for another file's). `None` if the module does
    /// not know GET_COUNTERS (ENOTTY): the caller falls back to GET_STATS.
    pub fn counters_any(&self, id: u32) -> Result<Option<Vec<(String, u64)>>> {
        let mut room = COUNTERS_ROOM;
        for _ in 0..4 {
            match self.get_counters(id, uapi::PVPASS_F_ANY_FILE, room) {
                Ok((counters, count)) if count <= room => return Ok(Some(counters)),
                Ok((_, count)) if count > COUNTERS_MAX_ROOM => bail!(
                    "PVPASS_GET_COUNTERS reports {count} counters, more than this tool accepts \
                     ({COUNTERS_MAX_ROOM})"
                ),
                Ok((_, count)) => room = count,
                Err(Errno::ENOTTY) => return Ok(None),
                Err(e) => bail!(id_error_message(IdOp::Counters, id, e, &self.path)),
            }
        }
        bail!("PVPASS_GET_COUNTERS: the number of counters kept changing; try again")
    }

    /// SWITCH_ADD or SWITCH_DEL of the switch `name` (already validated).
    pub fn switch_op(&self, op: SwitchOp, name: &str) -> Result<()> {
        let sw = PvpassSwitch {
            name: crate::args::switch_name_field(name).map_err(|e| anyhow!(e))?,
            ..Default::default()
        };
        let fd = self.file.as_raw_fd();
        // SAFETY: the fd is open and `sw` is a valid pvpass_switch whose
        // flags and reserved fields are zero.
        let r = match op {
            SwitchOp::Add => unsafe { uapi::pvpass_switch_add(fd, &sw) },
            SwitchOp::Del => unsafe { uapi::pvpass_switch_del(fd, &sw) },
            SwitchOp::List => bail!("switch_op: use switch_list"),
        };
        r.map(|_| ())
            .map_err(|e| anyhow!(switch_error_message(op, name, e)))
    }

    /// The raw fd, for the ioctls of other modules of the tool.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }

    /// Every switch of the module, in the module's order.
    pub fn switch_list(&self) -> Result<Vec<PvpassSwitch>> {
        let mut room = PVPASS_MAX_SWITCHES;
        for _ in 0..4 {
            let mut buf = vec![PvpassSwitch::default(); room as usize];
            let mut l = PvpassSwitchList {
                count: room,
                flags: 0,
                entries: buf.as_mut_ptr() as u64,
            };
            // SAFETY: the fd is open; `l.entries` points to `room` writable
            // pvpass_switch entries, which is the count passed in.
            unsafe { uapi::pvpass_switch_list(self.file.as_raw_fd(), &mut l) }
                .map_err(|e| anyhow!(switch_error_message(SwitchOp::List, "", e)))?;
            if l.count <= room {
                buf.truncate(l.count as usize);
                return Ok(buf);
            }
            if l.count > LIST_MAX_ROOM {
                bail!(
                    "PVPASS_SWITCH_LIST reports {} switches, more than this tool accepts \
                     ({LIST_MAX_ROOM})",
                    l.count
                );
            }
            room = l.count;
        }
        bail!("PVPASS_SWITCH_LIST: the switches kept changing while they were listed; try again")
    }

    /// Every attachment of the module, whichever file made it, by id.
    ///
    /// The first call offers room for `room` entries (callers pass the
    /// module's max_attach); if the module answers that there are more, the
    /// call is repeated with room for all of them (a few times, since
    /// attachments may come and go in between).
    pub fn list(&self, room: u32) -> Result<Vec<PvpassInfo>> {
        let mut room = room.clamp(1, LIST_MAX_ROOM);
        for _ in 0..4 {
            let mut buf = vec![PvpassInfo::default(); room as usize];
            let mut l = PvpassList {
                count: room,
                flags: 0,
                entries: buf.as_mut_ptr() as u64,
            };
            // SAFETY: the fd is open; `l.entries` points to `room` writable
            // pvpass_info entries, which is the count passed in.
            match unsafe { uapi::pvpass_list(self.file.as_raw_fd(), &mut l) } {
                Ok(_) => {}
                Err(e) => bail!(list_error_message(e)),
            }
            if l.count <= room {
                buf.truncate(l.count as usize);
                buf.sort_by_key(|i| i.id);
                return Ok(buf);
            }
            if l.count > LIST_MAX_ROOM {
                bail!(
                    "PVPASS_LIST reports {} attachments, more than this tool accepts ({LIST_MAX_ROOM})",
                    l.count
                );
            }
            room = l.count;
        }
        bail!("PVPASS_LIST: the attachments kept changing while they were listed; try again")
    }
}

/// Human-readable names of the feature bits.
pub fn feature_names(features: u32) -> String {
    let mut names = Vec::new();
    if features & uapi::PVPASS_FEAT_MMIO_ID != 0 {
        names.push("mmio-id".to_owned());
    }
    if features & uapi::PVPASS_FEAT_CONFIG != 0 {
        names.push("config".to_owned());
    }
    if features & uapi::PVPASS_FEAT_SWITCH != 0 {
        names.push("switch".to_owned());
    }
    if features & uapi::PVPASS_FEAT_RESAMPLE != 0 {
        names.push("resample".to_owned());
    }
    if features & uapi::PVPASS_FEAT_SWITCHES != 0 {
        names.push("switches".to_owned());
    }
    if features & uapi::PVPASS_FEAT_COUNTERS != 0 {
        names.push("counters".to_owned());
    }
    if features & uapi::PVPASS_FEAT_VHOST != 0 {
        names.push("vhost".to_owned());
    }
    if features & uapi::PVPASS_FEAT_VHOST_RULES != 0 {
        names.push("vhost-rules".to_owned());
    }
    let unknown = features
        & !(uapi::PVPASS_FEAT_MMIO_ID
            | uapi::PVPASS_FEAT_CONFIG
            | uapi::PVPASS_FEAT_SWITCH
            | uapi::PVPASS_FEAT_RESAMPLE
            | uapi::PVPASS_FEAT_SWITCHES
            | uapi::PVPASS_FEAT_COUNTERS
            | uapi::PVPASS_FEAT_VHOST
            | uapi::PVPASS_FEAT_VHOST_RULES);
    if unknown != 0 {
        names.push(format!("unknown {unknown:#x}"));
    }
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> AttachRequest<'static> {
        AttachRequest {
            pid: 1234,
            irq_fd: None,
            resample_fd: None,
            gpa: 0xd000_0000,
            gsi: 5,
            mac: Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            switch: "sw0".into(),
            named_switches: true,
            max_attach: 64,
            irqchip_wait: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn enxio_names_the_irqchip() {
        let m = attach_error_message(Errno::ENXIO, &req());
        assert!(
            m.contains("kernel-irqchip=on") && m.contains("--no-irq"),
            "{m}"
        );
    }

    #[test]
    fn attach_messages() {
        let r = req();
        assert_eq!(
            attach_error_message(Errno::EEXIST, &r),
            "the window at 0xd0000000 overlaps guest RAM or another pvpass device of this VM"
        );
        assert_eq!(
            attach_error_message(Errno::EBUSY, &r),
            "GSI 5 is already used by a pvpass device of this VM"
        );
        assert_eq!(
            attach_error_message(Errno::EADDRINUSE, &r),
            "MAC 52:54:00:12:34:56 is already used by another port of the switch (EADDRINUSE)"
        );
        assert_eq!(attach_error_message(Errno::EPERM, &r), ROOT_MSG);
        assert_eq!(attach_error_message(Errno::EACCES, &r), ROOT_MSG);
        let m = attach_error_message(Errno::EINVAL, &r);
        assert!(m.contains("EINVAL") && !m.contains("irqchip"), "{m}");
        assert!(attach_error_message(Errno::EBADF, &r).contains("process 1234"));
        assert!(attach_error_message(Errno::ENOSPC, &r).contains("64 attachments"));
        let m = attach_error_message(Errno::EOPNOTSUPP, &r);
        assert!(
            m.contains("lacks the pvpass patch series") && m.contains("vhost-exec"),
            "{m}"
        );
        assert_eq!(
            attach_error_message(Errno::ENODEV, &r),
            "switch 'sw0' does not exist (ENODEV); `pvpassctl switch add sw0` makes it"
        );
        let old = AttachRequest {
            named_switches: false,
            ..r.clone()
        };
        let m = attach_error_message(Errno::ENODEV, &old);
        assert!(
            m.starts_with("switch 'sw0' does not exist (ENODEV)")
                && m.contains("only its default switch"),
            "{m}"
        );
        let mut d = r.clone();
        d.switch.clear();
        assert!(attach_error_message(Errno::ENODEV, &d).contains("default switch"));
        assert!(attach_error_message(Errno::EIO, &r).starts_with("attach failed"));
    }

    #[test]
    fn einval_with_irq_names_the_irqchip() {
        let efd = nix::sys::eventfd::EventFd::new().unwrap();
        let r = AttachRequest {
            irq_fd: Some(std::os::fd::AsFd::as_fd(&efd)),
            resample_fd: None,
            ..req()
        };
        let m = attach_error_message(Errno::EINVAL, &r);
        assert!(m.contains("is not a KVM VM"), "{m}");
        assert!(
            m.contains(
                "QEMU needs the in-kernel irqchip (-machine ...,kernel-irqchip=on), \
                 or GSI 5 cannot be routed"
            ),
            "{m}"
        );
    }

    #[test]
    fn open_messages() {
        let p = Path::new("/dev/pvpass");
        let m = open_error_message(p, &io::Error::from_raw_os_error(libc::ENOENT));
        assert!(
            m.starts_with("pvpass module not loaded: insmod pvpass.ko"),
            "{m}"
        );
        let m = open_error_message(p, &io::Error::from_raw_os_error(libc::EACCES));
        assert!(m.starts_with(ROOT_MSG), "{m}");
        let m = open_error_message(p, &io::Error::from_raw_os_error(libc::EPERM));
        assert!(m.starts_with(ROOT_MSG), "{m}");
    }

    #[test]
    fn id_messages() {
        let p = Path::new("/dev/pvpass");
        assert_eq!(
            id_error_message(IdOp::Detach, 3, Errno::EPERM, p),
            "detach of another process's attachment needs root (CAP_SYS_ADMIN) (EPERM)"
        );
        assert_eq!(
            id_error_message(IdOp::Stats, 3, Errno::EPERM, p),
            "stats of another process's attachment needs root (CAP_SYS_ADMIN) (EPERM)"
        );
        assert!(id_error_message(IdOp::Stats, 3, Errno::EACCES, p).contains("needs root"));
        assert_eq!(
            id_error_message(IdOp::Stats, 7, Errno::ENOENT, p),
            "no attachment with id 7 (ENOENT); `pvpassctl list` shows them"
        );
        let m = id_error_message(IdOp::Detach, 7, Errno::EINVAL, p);
        assert!(
            m.starts_with("the module rejected PVPASS_DETACH id=7 with PVPASS_F_ANY_FILE (EINVAL)")
                && m.contains("older than this tool"),
            "{m}"
        );
        let m = id_error_message(IdOp::Stats, 7, Errno::ENOTTY, p);
        assert!(
            m.starts_with("/dev/pvpass does not answer PVPASS_GET_STATS"),
            "{m}"
        );
        assert_eq!(
            id_error_message(IdOp::Stats, 7, Errno::EIO, p),
            "PVPASS_GET_STATS id=7 failed: I/O error (EIO)"
        );
    }

    #[test]
    fn list_messages() {
        let m = list_error_message(Errno::ENOTTY);
        assert!(
            m.contains("does not know PVPASS_LIST") && m.contains("older than this tool"),
            "{m}"
        );
        assert!(list_error_message(Errno::EINVAL).contains("EINVAL"));
        assert!(list_error_message(Errno::EPERM).starts_with(ROOT_MSG));
        assert_eq!(
            list_error_message(Errno::EFAULT),
            "PVPASS_LIST failed: Bad address (EFAULT)"
        );
    }

    /// Against a file that is no pvpass device, the by-id ioctls and LIST
    /// come back with the right messages (ENOTTY from a regular file).
    #[test]
    fn ioctls_on_a_plain_file() {
        let p = std::env::temp_dir().join(format!("pvpassctl-plain-{}", std::process::id()));
        std::fs::write(&p, b"").unwrap();
        let dev = Device::open(&p).unwrap();
        let e = dev.stats_any(1).unwrap_err().to_string();
        assert!(e.contains("does not answer PVPASS_GET_STATS"), "{e}");
        let e = dev.detach_any(1).unwrap_err().to_string();
        assert!(e.contains("does not answer PVPASS_DETACH"), "{e}");
        let e = dev.list(64).unwrap_err().to_string();
        assert!(e.contains("does not know PVPASS_LIST"), "{e}");
        // GET_COUNTERS unknown: the caller falls back to GET_STATS.
        assert!(dev.counters_any(1).unwrap().is_none());
        let e = dev.switch_list().unwrap_err().to_string();
        assert!(
            e.contains("does not know PVPASS_SWITCH_LIST (ENOTTY)"),
            "{e}"
        );
        for op in [SwitchOp::Add, SwitchOp::Del] {
            let e = dev.switch_op(op, "lab").unwrap_err().to_string();
            assert!(
                e.contains(&format!("does not know {} (ENOTTY)", op.ioctl())),
                "{e}"
            );
        }
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn features() {
        assert_eq!(feature_names(0), "none");
        assert_eq!(feature_names(3), "mmio-id, config");
        assert_eq!(feature_names(7), "mmio-id, config, switch");
        assert_eq!(feature_names(15), "mmio-id, config, switch, resample");
        assert_eq!(feature_names(1 | 256), "mmio-id, unknown 0x100");
        assert_eq!(feature_names(128), "vhost-rules");
        assert_eq!(
            feature_names(0x3f),
            "mmio-id, config, switch, resample, switches, counters"
        );
        assert_eq!(feature_names(16), "switches");
        assert_eq!(feature_names(32), "counters");
        assert_eq!(feature_names(64), "vhost");
        assert_eq!(
            feature_names(0x7f),
            "mmio-id, config, switch, resample, switches, counters, vhost"
        );
    }

    #[test]
    fn switches_feature() {
        assert_eq!(require_switches(uapi::PVPASS_FEAT_SWITCHES | 0xf), Ok(()));
        let e = require_switches(0xf).unwrap_err();
        assert!(
            e.starts_with("the loaded pvpass module has no named switches")
                && e.contains("PVPASS_FEAT_SWITCHES")
                && e.contains("features 0xf"),
            "{e}"
        );
    }

    #[test]
    fn switch_messages() {
        use SwitchOp::*;
        assert_eq!(
            switch_error_message(Add, "lab", Errno::EPERM),
            "switch add needs root (CAP_SYS_ADMIN) (EPERM)"
        );
        assert_eq!(
            switch_error_message(Del, "lab", Errno::EPERM),
            "switch del needs root (CAP_SYS_ADMIN) (EPERM)"
        );
        assert_eq!(
            switch_error_message(Add, "lab", Errno::EEXIST),
            "a switch named 'lab' exists already (EEXIST)"
        );
        let m = switch_error_message(Add, "lab", Errno::ENOSPC);
        assert!(
            m.starts_with("no room for another switch (ENOSPC)") && m.contains("16"),
            "{m}"
        );
        assert_eq!(
            switch_error_message(Del, "lab", Errno::ENOENT),
            "no switch named 'lab' (ENOENT); `pvpassctl switch list` shows them"
        );
        let m = switch_error_message(Del, "lab", Errno::EBUSY);
        assert!(
            m.starts_with("switch 'lab' has devices attached (EBUSY): detach them first"),
            "{m}"
        );
        let m = switch_error_message(Del, "default", Errno::EBUSY);
        assert!(
            m.starts_with("the default switch cannot be deleted (EBUSY)"),
            "{m}"
        );
        let m = switch_error_message(Add, "lab", Errno::EINVAL);
        assert!(
            m.starts_with("the module rejected PVPASS_SWITCH_ADD 'lab' (EINVAL)"),
            "{m}"
        );
        let m = switch_error_message(List, "", Errno::EINVAL);
        assert!(
            m.starts_with("the module rejected PVPASS_SWITCH_LIST (EINVAL)"),
            "{m}"
        );
        for op in [Add, Del, List] {
            let m = switch_error_message(op, "lab", Errno::ENOTTY);
            assert!(
                m.contains(op.ioctl()) && m.contains("(ENOTTY)") && m.contains("no named switches"),
                "{m}"
            );
        }
        assert_eq!(
            switch_error_message(Del, "lab", Errno::EIO),
            "PVPASS_SWITCH_DEL 'lab' failed: I/O error (EIO)"
        );
        assert_eq!(
            switch_error_message(List, "", Errno::EFAULT),
            "PVPASS_SWITCH_LIST failed: Bad address (EFAULT)"
        );
        // The messages contain no run of spaces left by a broken line
        // continuation.
        for op in [Add, Del, List] {
            for e in [
                Errno::EPERM,
                Errno::ENOSPC,
                Errno::EBUSY,
                Errno::EINVAL,
                Errno::ENOTTY,
            ] {
                for name in ["lab", "default"] {
                    let m = switch_error_message(op, name, e);
                    assert!(!m.contains("  "), "{m:?}");
                }
            }
        }
    }

    #[test]
    fn messages_have_no_space_runs() {
        let p = Path::new("/dev/pvpass");
        for e in [Errno::EINVAL, Errno::ENOTTY, Errno::EPERM] {
            assert!(!list_error_message(e).contains("  "), "{e:?}");
            for op in [IdOp::Stats, IdOp::Counters, IdOp::Detach] {
                let m = id_error_message(op, 1, e, p);
                assert!(!m.contains("  "), "{m:?}");
            }
        }
    }

    #[test]
    fn counters_messages() {
        let p = Path::new("/dev/pvpass");
        assert_eq!(
            id_error_message(IdOp::Counters, 3, Errno::EPERM, p),
            "stats of another process's attachment needs root (CAP_SYS_ADMIN) (EPERM)"
        );
        assert_eq!(
            id_error_message(IdOp::Counters, 7, Errno::ENOENT, p),
            "no attachment with id 7 (ENOENT); `pvpassctl list` shows them"
        );
        let m = id_error_message(IdOp::Counters, 7, Errno::EINVAL, p);
        assert!(
            m.starts_with("the module rejected PVPASS_GET_COUNTERS id=7 (EINVAL)"),
            "{m}"
        );
        assert_eq!(
            id_error_message(IdOp::Counters, 7, Errno::EFAULT, p),
            "PVPASS_GET_COUNTERS id=7 failed: Bad address (EFAULT)"
        );
    }

    fn counter(name: &[u8], value: u64) -> PvpassCounter {
        let mut c = PvpassCounter {
            value,
            ..Default::default()
        };
        c.name[..name.len()].copy_from_slice(name);
        c
    }

    #[test]
    fn counter_entries() {
        let buf = [
            counter(b"mmio_reads", 118),
            counter(b"tx_frames", 20),
            counter(&[b'x'; 32], 1),
            counter(b"unused", 9),
        ];
        assert_eq!(
            counters_of(&buf, 3),
            vec![
                ("mmio_reads".to_owned(), 118),
                ("tx_frames".to_owned(), 20),
                // No NUL in the field: all 32 bytes are the name.
                ("x".repeat(32), 1),
            ]
        );
        assert_eq!(counters_of(&buf, 0), vec![]);
        // A count larger than the buffer takes what is there.
        assert_eq!(counters_of(&buf[..1], 5).len(), 1);
        assert_eq!(counter_name(b"a\xffb\0c"), "a\u{fffd}b");
    }
}
