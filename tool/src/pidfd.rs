//! pidfd_open / pidfd_getfd and finding the VMM's KVM VM file descriptor.

use crate::device::ROOT_MSG;
use crate::procscan::{find_fd_by_target, proc_fd_dir, KVM_VM_LINK};
use anyhow::{bail, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// Interval between two scans of /proc/<pid>/fd while waiting for the VM fd.
pub const SCAN_INTERVAL: Duration = Duration::from_millis(100);

/// pidfd_open(2).
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    let fd = Errno::result(r)?;
    // SAFETY: on success the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// pidfd_getfd(2): a duplicate of `target_fd` of the process behind `pidfd`.
pub fn pidfd_getfd(pidfd: &OwnedFd, target_fd: RawFd) -> Result<OwnedFd, Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target_fd, 0u32) };
    let fd = Errno::result(r)?;
    // SAFETY: on success the kernel returned a new fd (O_CLOEXEC) that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Open a pidfd for `pid` with user-facing errors.
pub fn open_process(pid: i32) -> Result<OwnedFd> {
    match pidfd_open(pid) {
        Ok(fd) => Ok(fd),
        Err(Errno::ESRCH) => bail!("process {pid} does not exist"),
        Err(Errno::EINVAL) => bail!("{pid} is not the pid of a process (a thread id?)"),
        Err(Errno::ENOSYS) => bail!("this kernel has no pidfd_open (Linux 5.3 or newer needed)"),
        Err(e) => bail!("pidfd_open({pid}) failed: {} ({e})", e.desc()),
    }
}

/// Wait up to `timeout` for the process behind `pidfd` to exit.
/// Returns true if it has exited. EINTR counts as "not yet".
pub fn wait_exit(pidfd: &OwnedFd, timeout: Duration) -> Result<bool> {
    let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, ms) {
        Ok(0) | Err(Errno::EINTR) => Ok(false),
        Ok(_) => Ok(true),
        Err(e) => bail!("poll on pidfd failed: {} ({e})", e.desc()),
    }
}

/// Find the fd number of the KVM VM in process `pid`, re-scanning every
/// [`SCAN_INTERVAL`] for up to `wait` (a VMM creates its VM only after
/// machine init). Fails early if the process exits.
pub fn wait_for_fd(pid: i32, pidfd: &OwnedFd, target: &str, wait: Duration) -> Result<RawFd> {
    let dir = proc_fd_dir(pid);
    let deadline = Instant::now() + wait;
    loop {
        match find_fd_by_target(&dir, target) {
            Ok(Some(fd)) => return Ok(fd),
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                bail!("process {pid} exited before it created a KVM VM")
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                bail!(
                    "{ROOT_MSG} (cannot read {}: permission denied)",
                    dir.display()
                )
            }
            Err(e) => bail!("cannot read {}: {e}", dir.display()),
        }
        let now = Instant::now();
        if now >= deadline {
            if target == KVM_VM_LINK {
                bail!(
                    "process {pid} is not a KVM VMM (no {KVM_VM_LINK} fd after {} s)",
                    wait.as_secs_f64()
                );
            }
            bail!(
                "process {pid} has no {target} fd after {} s",
                wait.as_secs_f64()
            );
        }
        if wait_exit(pidfd, SCAN_INTERVAL.min(deadline - now))? {
            bail!("process {pid} exited before it created a KVM VM");
        }
    }
}

/// Take a duplicate of fd `fd` of the process behind `pidfd`.
pub fn take_fd(pid: i32, pidfd: &OwnedFd, fd: RawFd) -> Result<OwnedFd> {
    match pidfd_getfd(pidfd, fd) {
        Ok(f) => Ok(f),
        Err(Errno::EPERM | Errno::EACCES) => bail!(
            "{ROOT_MSG} (pidfd_getfd on process {pid} was refused; \
             root with CAP_SYS_PTRACE is needed, and Yama ptrace_scope must be below 3)"
        ),
        Err(Errno::ESRCH) => bail!("process {pid} exited before its VM fd could be taken"),
        Err(Errno::EBADF) => bail!("process {pid} closed its VM fd {fd} before it could be taken"),
        Err(Errno::ENOSYS) => bail!("this kernel has no pidfd_getfd (Linux 5.6 or newer needed)"),
        Err(e) => bail!("pidfd_getfd({pid}, {fd}) failed: {} ({e})", e.desc()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn sleeper(secs: &str) -> std::process::Child {
        Command::new("sleep")
            .arg(secs)
            .stdin(Stdio::null())
            .spawn()
            .unwrap()
    }

    #[test]
    fn missing_pid() {
        let e = open_process(999_999_999).unwrap_err();
        assert_eq!(e.to_string(), "process 999999999 does not exist");
    }

    #[test]
    fn not_a_vmm_after_wait() {
        let mut child = sleeper("30");
        let pid = child.id() as i32;
        let pidfd = open_process(pid).unwrap();
        let t = Instant::now();
        let e = wait_for_fd(pid, &pidfd, KVM_VM_LINK, Duration::from_millis(350)).unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(350));
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(
            e.to_string(),
            format!("process {pid} is not a KVM VMM (no anon_inode:kvm-vm fd after 0.35 s)")
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn exit_while_waiting() {
        let mut child = sleeper("0.3");
        let pid = child.id() as i32;
        let pidfd = open_process(pid).unwrap();
        let t = Instant::now();
        let e = wait_for_fd(pid, &pidfd, KVM_VM_LINK, Duration::from_secs(20)).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(10));
        assert!(e.to_string().contains("exited"), "{e}");
        child.wait().unwrap();
    }

    #[test]
    fn pidfd_signals_exit() {
        let mut child = sleeper("30");
        let pidfd = open_process(child.id() as i32).unwrap();
        assert!(!wait_exit(&pidfd, Duration::from_millis(10)).unwrap());
        child.kill().unwrap();
        assert!(wait_exit(&pidfd, Duration::from_secs(5)).unwrap());
        child.wait().unwrap();
    }

    /// With /dev/kvm available, create a real VM and check that the scanner
    /// finds it under the exact link name KVM gives it, and that
    /// pidfd_getfd hands out the same kind of file.
    #[test]
    fn finds_real_kvm_vm() {
        use std::os::fd::AsRawFd;
        let Ok(kvm) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
        else {
            eprintln!("skipped: /dev/kvm not available");
            return;
        };
        const KVM_CREATE_VM: libc::c_ulong = 0xAE01; // _IO(KVMIO, 0x01)
                                                     // SAFETY: KVM_CREATE_VM takes an integer machine type (0 = default).
        let r = unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_CREATE_VM, 0) };
        if r < 0 {
            eprintln!(
                "skipped: KVM_CREATE_VM failed: {}",
                io::Error::last_os_error()
            );
            return;
        }
        // SAFETY: the ioctl returned a new fd that we now own.
        let vm = unsafe { OwnedFd::from_raw_fd(r) };
        let pid = std::process::id() as i32;
        let pidfd = open_process(pid).unwrap();
        let fd = wait_for_fd(pid, &pidfd, KVM_VM_LINK, Duration::ZERO).unwrap();
        assert_eq!(fd, vm.as_raw_fd(), "only one VM in this test process");
        let dup = take_fd(pid, &pidfd, fd).unwrap();
        let link = std::fs::read_link(format!("/proc/self/fd/{}", dup.as_raw_fd())).unwrap();
        assert_eq!(link.as_os_str(), KVM_VM_LINK);
    }

    /// Find and take our own eventfd through /proc and pidfd_getfd: the
    /// same path the tool uses for QEMU's anon_inode:kvm-vm. pidfd_getfd
    /// may be refused in unprivileged sandboxes, so only the scan is
    /// required to succeed.
    #[test]
    fn scan_and_take_own_eventfd() {
        use nix::sys::eventfd::EventFd;
        let efd = EventFd::from_value(7).unwrap();
        let pid = std::process::id() as i32;
        let pidfd = open_process(pid).unwrap();
        let fd = wait_for_fd(pid, &pidfd, "anon_inode:[eventfd]", Duration::ZERO).unwrap();
        match pidfd_getfd(&pidfd, fd) {
            Ok(dup) => {
                let link = std::fs::read_link(format!("/proc/self/fd/{}", {
                    use std::os::fd::AsRawFd;
                    dup.as_raw_fd()
                }))
                .unwrap();
                assert_eq!(link.as_os_str(), "anon_inode:[eventfd]");
            }
            Err(e) => eprintln!("pidfd_getfd not permitted here ({e}), scan checked only"),
        }
        drop(efd);
    }
}
