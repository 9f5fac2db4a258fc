//! The /dev/pvpass file and its ioctls, with errno-to-message mapping.

use crate::args::Mac;
use crate::uapi::{self, PvpassAttach, PvpassDetach, PvpassStats, PvpassVersion};
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
    pub gpa: u64,
    pub gsi: u32,
    pub mac: Mac,
    pub switch: String,
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
        Errno::ENXIO => format!(
            "process {} has no in-kernel irqchip for the interrupt (ENXIO): start QEMU with \
             -machine ...,kernel-irqchip=on, or attach with --no-irq",
            req.pid
        ),
        Errno::EOPNOTSUPP => {
            "the module is too old for interrupt delivery (EOPNOTSUPP); use --no-irq".to_owned()
        }
        Errno::ENODEV if req.switch.is_empty() => {
            "the default switch does not exist (ENODEV)".to_owned()
        }
        Errno::ENODEV => format!("switch '{}' does not exist (ENODEV)", req.switch),
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

    pub fn stats(&self, id: u32) -> Result<PvpassStats> {
        let mut s = PvpassStats {
            id,
            ..Default::default()
        };
        // SAFETY: the fd is open and `s` is a valid pvpass_stats.
        match unsafe { uapi::pvpass_get_stats(self.file.as_raw_fd(), &mut s) } {
            Ok(_) => Ok(s),
            Err(Errno::ENOTTY) => bail!(not_pvpass(&self.path, "PVPASS_GET_STATS")),
            Err(e) => bail!("PVPASS_GET_STATS id={id} failed: {} ({e})", e.desc()),
        }
    }

    pub fn detach(&self, id: u32) -> Result<()> {
        let d = PvpassDetach { id, flags: 0 };
        // SAFETY: the fd is open and `d` is a valid pvpass_detach.
        match unsafe { uapi::pvpass_detach(self.file.as_raw_fd(), &d) } {
            Ok(_) => Ok(()),
            Err(e) => bail!("PVPASS_DETACH id={id} failed: {} ({e})", e.desc()),
        }
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
    let unknown = features
        & !(uapi::PVPASS_FEAT_MMIO_ID | uapi::PVPASS_FEAT_CONFIG | uapi::PVPASS_FEAT_SWITCH);
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
            gpa: 0xd000_0000,
            gsi: 5,
            mac: Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            switch: "sw0".into(),
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
        assert_eq!(attach_error_message(Errno::EPERM, &r), ROOT_MSG);
        assert_eq!(attach_error_message(Errno::EACCES, &r), ROOT_MSG);
        let m = attach_error_message(Errno::EINVAL, &r);
        assert!(m.contains("EINVAL") && !m.contains("irqchip"), "{m}");
        assert!(attach_error_message(Errno::EBADF, &r).contains("process 1234"));
        assert!(attach_error_message(Errno::ENOSPC, &r).contains("64 attachments"));
        assert_eq!(
            attach_error_message(Errno::EOPNOTSUPP, &r),
            "the module is too old for interrupt delivery (EOPNOTSUPP); use --no-irq"
        );
        assert_eq!(
            attach_error_message(Errno::ENODEV, &r),
            "switch 'sw0' does not exist (ENODEV)"
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
    fn features() {
        assert_eq!(feature_names(0), "none");
        assert_eq!(feature_names(3), "mmio-id, config");
        assert_eq!(feature_names(7), "mmio-id, config, switch");
        assert_eq!(feature_names(1 | 8), "mmio-id, unknown 0x8");
    }
}
