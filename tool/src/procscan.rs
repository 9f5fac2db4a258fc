//! Find a file descriptor of a process by the target of its /proc link.

use std::ffi::OsStr;
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

/// Link target of the file descriptor KVM_CREATE_VM returns.
pub const KVM_VM_LINK: &str = "anon_inode:kvm-vm";

/// The `/proc/<pid>/fd` directory of a process.
pub fn proc_fd_dir(pid: i32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/fd"))
}

/// Scan a `/proc/<pid>/fd` directory for the lowest-numbered descriptor whose
/// link target is exactly `target`.
///
/// Descriptors that close while the directory is read are skipped. An error
/// is returned only when the directory itself cannot be read (process gone:
/// `NotFound`; no right to look: `PermissionDenied`).
pub fn find_fd_by_target(fd_dir: &Path, target: &str) -> io::Result<Option<RawFd>> {
    let want = OsStr::new(target);
    let mut found: Option<RawFd> = None;
    for entry in std::fs::read_dir(fd_dir)? {
        let Ok(entry) = entry else { continue };
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        // The fd may be closed between readdir and readlink: skip it.
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if link.as_os_str() == want && found.is_none_or(|f| fd < f) {
            found = Some(fd);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::eventfd::EventFd;
    use std::os::fd::AsRawFd;

    #[test]
    fn finds_own_eventfd() {
        let efd = EventFd::new().unwrap();
        let fd = efd.as_raw_fd();
        let got = find_fd_by_target(Path::new("/proc/self/fd"), "anon_inode:[eventfd]").unwrap();
        // Other tests run in parallel threads and may own eventfds too, so
        // the lowest match is at most ours.
        let got = got.expect("own eventfd not found");
        assert!(got <= fd, "found {got}, ours is {fd}");
        let link = std::fs::read_link(format!("/proc/self/fd/{got}")).unwrap();
        assert_eq!(link.as_os_str(), "anon_inode:[eventfd]");
    }

    #[test]
    fn finds_exact_file_target() {
        let path = std::env::temp_dir().join(format!("pvpassctl-scan-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let target = std::fs::canonicalize(&path).unwrap();
        let got = find_fd_by_target(Path::new("/proc/self/fd"), target.to_str().unwrap()).unwrap();
        assert_eq!(got, Some(file.as_raw_fd()));
        drop(file);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn no_match_is_none() {
        let got = find_fd_by_target(Path::new("/proc/self/fd"), KVM_VM_LINK).unwrap();
        assert_eq!(got, None);
    }

    #[test]
    fn missing_process_is_not_found() {
        let err = find_fd_by_target(Path::new("/proc/999999999/fd"), KVM_VM_LINK).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn proc_dir_path() {
        assert_eq!(proc_fd_dir(42), PathBuf::from("/proc/42/fd"));
    }
}
