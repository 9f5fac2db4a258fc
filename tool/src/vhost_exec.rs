//! `pvpassctl vhost-exec`: run a stock QEMU whose virtio-net-pci is served by
//! pvpass's vhost transport.
//!
//! /dev/pvpass-vhost-net speaks the vhost-net ioctl protocol, so QEMU drives
//! it as it drives /dev/vhost-net (`-netdev tap,...,vhost=on,vhostfd=N`).
//! Before the file is handed to QEMU it is made a port of a switch with
//! PVPASS_VHOST_SET_PORT. QEMU's `-netdev tap` also wants a tap fd; the tap
//! carries no traffic (it stays down), the frames go to the pvpass switch.

use crate::args::{backend_field, Mac};
use crate::device::{Device, ROOT_MSG};
use crate::uapi::{self, PvpassVhostPort, PVPASS_FEAT_VHOST};
use crate::{cli::VhostExecArgs, say, warn};
use anyhow::{anyhow, bail, Context as _, Result};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;

/// The node of pvpass's vhost transport (PVPASS_FEAT_VHOST).
pub const VHOST_DEVICE_PATH: &str = "/dev/pvpass-vhost-net";
/// The tun/tap clone device.
pub const TUN_PATH: &str = "/dev/net/tun";
/// TUNSETIFF flags: a tap, no packet-information prefix, with
/// virtio_net_hdr (QEMU's vhost=on needs IFF_VNET_HDR).
pub const TAP_FLAGS: libc::c_int = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;

// TUNSETIFF is declared _IOW(int) but takes a struct ifreq, and the kernel
// writes the interface name back into it.
nix::ioctl_readwrite_bad!(tun_set_iff, libc::TUNSETIFF, libc::ifreq);

/// The `-netdev` value appended to QEMU's command line: one tap fd and one
/// vhost fd a queue pair (`fds=`/`vhostfds=` for more than one).
pub fn netdev_option(id: &str, tap_fds: &[RawFd], vhost_fds: &[RawFd]) -> String {
    let join = |fds: &[RawFd]| {
        fds.iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join(":")
    };
    match (tap_fds, vhost_fds) {
        ([t], [v]) => format!("tap,id={id},fd={t},vhost=on,vhostfd={v}"),
        _ => format!(
            "tap,id={id},fds={},vhost=on,vhostfds={}",
            join(tap_fds),
            join(vhost_fds)
        ),
    }
}

/// What the NIC needs for `queues` queue pairs: QEMU's virtio-net-pci
/// options (MSI-X: a vector for each queue, one for config, one for the
/// control queue).
pub fn mq_hint(queues: u32) -> Option<String> {
    (queues > 1).then(|| format!("mq=on,vectors={}", 2 * queues + 2))
}

/// QEMU's command line with `-netdev <netdev>` appended.
pub fn qemu_argv(qemu: &[String], netdev: &str) -> Vec<String> {
    let mut argv = qemu.to_vec();
    argv.push("-netdev".to_owned());
    argv.push(netdev.to_owned());
    argv
}

/// One word for a POSIX shell: as is when it has only safe characters, else
/// in single quotes (a `'` inside becomes `'\''`).
pub fn shell_quote(s: &str) -> Cow<'_, str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("'{}'", s.replace('\'', r"'\''")))
    }
}

/// A command line a POSIX shell runs as `argv`. The first word is quoted if
/// it has a `=` too, which would make it an assignment.
pub fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 && a.contains('=') {
                Cow::Owned(format!("'{}'", a.replace('\'', r"'\''")))
            } else {
                shell_quote(a)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A QEMU argument that is a device naming the netdev.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nic<'a> {
    /// `driver,netdev=ID,...`, with the value of its `mac=` if it has one.
    Opts(Option<&'a str>),
    /// A JSON device (`{"driver":...,"netdev":"ID"}`); its MAC is not looked at.
    Json,
}

fn nic_of_netdev<'a>(arg: &'a str, id: &str) -> Option<Nic<'a>> {
    if arg.trim_start().starts_with('{') {
        let compact: String = arg.chars().filter(|c| !c.is_whitespace()).collect();
        return compact
            .contains(&format!("\"netdev\":\"{id}\""))
            .then_some(Nic::Json);
    }
    let mut parts = arg.split(',');
    if !parts.clone().any(|p| p.strip_prefix("netdev=") == Some(id)) {
        return None;
    }
    Some(Nic::Opts(parts.find_map(|p| p.strip_prefix("mac="))))
}

/// Hints about the QEMU arguments: no NIC using the netdev, a NIC whose MAC
/// is not the port's (the switch would then drop its frames as spoofed), or
/// a netdev of the same id already.
pub fn qemu_warnings(qemu: &[String], id: &str, mac: Mac) -> Vec<String> {
    let args = qemu.get(1..).unwrap_or_default();
    let nics: Vec<Nic<'_>> = args.iter().filter_map(|a| nic_of_netdev(a, id)).collect();
    let mut out = Vec::new();
    if nics.is_empty() {
        out.push(format!(
            "warning: the QEMU arguments have no netdev={id}: add -device \
             virtio-net-pci,netdev={id},mac={mac} (else the guest has no pvpass NIC)"
        ));
    }
    for nic in nics {
        match nic {
            Nic::Json => {}
            Nic::Opts(None) => out.push(format!(
                "warning: the NIC with netdev={id} has no mac=: QEMU then gives it one of its \
                 own (52:54:00:12:34:56 and up), not the port's; add mac={mac}"
            )),
            Nic::Opts(Some(m)) if crate::args::parse_mac(m) == Ok(mac) => {}
            Nic::Opts(Some(m)) => out.push(format!(
                "warning: the NIC with netdev={id} has mac={m}, but the pvpass port has \
                 {mac} (--mac): they must be the same, else the switch drops the guest's \
                 frames"
            )),
        }
    }
    let same_id = format!("id={id}");
    if let Some(w) = args.windows(2).find(|w| {
        matches!(w[0].as_str(), "-netdev" | "--netdev") && w[1].split(',').any(|p| p == same_id)
    }) {
        out.push(format!(
            "warning: the QEMU arguments have a -netdev {} already: QEMU refuses a second \
             netdev with id {id} (choose another with --netdev-id)",
            w[1]
        ));
    }
    out
}

/// Message for a failed open of the vhost device node. `features` are those
/// of the module behind /dev/pvpass, if it answered.
pub fn vhost_open_error_message(path: &Path, err: &io::Error, features: Option<u32>) -> String {
    match err.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ENOENT | Errno::ENXIO | Errno::ENODEV) => match features {
            Some(f) if f & PVPASS_FEAT_VHOST == 0 => format!(
                "cannot open {} ({err}): the loaded pvpass module has no vhost transport \
                 (PVPASS_FEAT_VHOST is not in its features {f:#x}); load the pvpass.ko built \
                 with this tool",
                path.display()
            ),
            _ => format!(
                "cannot open {} ({err}): pvpass module not loaded: insmod pvpass.ko",
                path.display()
            ),
        },
        Some(Errno::EACCES | Errno::EPERM) => format!(
            "{ROOT_MSG} (cannot open {}: permission denied)",
            path.display()
        ),
        _ => format!("cannot open {}: {err}", path.display()),
    }
}

/// The PVPASS_VHOST_SET_PORT request: pad and flags zero, backend padded.
pub fn vhost_port(backend: &str, mac: Mac) -> Result<PvpassVhostPort, String> {
    Ok(PvpassVhostPort {
        backend: backend_field(backend)?,
        mac: mac.0,
        ..Default::default()
    })
}

/// The switch name as the user reads it: "" is "default".
fn switch_display(backend: &str) -> &str {
    if backend.is_empty() {
        "default"
    } else {
        backend
    }
}

/// Message for a failed PVPASS_VHOST_SET_PORT.
pub fn set_port_error_message(errno: Errno, path: &Path, backend: &str, mac: Mac) -> String {
    match errno {
        Errno::EPERM | Errno::EACCES => {
            format!("PVPASS_VHOST_SET_PORT needs root (CAP_SYS_ADMIN) ({errno:?})")
        }
        Errno::ENODEV if backend.is_empty() => {
            "no such switch: the default switch does not exist (ENODEV)".to_owned()
        }
        Errno::ENODEV => format!(
            "no such switch '{backend}' (ENODEV); `pvpassctl switch add {backend}` makes it"
        ),
        Errno::EINVAL => format!(
            "the module rejected PVPASS_VHOST_SET_PORT (EINVAL): mac {mac} or switch '{}' \
             is malformed, or the module is older than this tool and does not know a flag or \
             field",
            switch_display(backend)
        ),
        Errno::EADDRINUSE => format!(
            "MAC {mac} is already used by another port of switch '{}' (EADDRINUSE)",
            switch_display(backend)
        ),
        Errno::ENOSPC => "no room for another pvpass device (ENOSPC)".to_owned(),
        Errno::ENOTTY => format!(
            "{} does not answer PVPASS_VHOST_SET_PORT (ENOTTY): not pvpass's vhost device \
             (/dev/vhost-net is the kernel's own), or a module of an incompatible version",
            path.display()
        ),
        e => format!("PVPASS_VHOST_SET_PORT failed: {} ({e:?})", e.desc()),
    }
}

/// Message for a failed open of /dev/net/tun.
pub fn tun_open_error_message(err: &io::Error) -> String {
    match err.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ENOENT | Errno::ENXIO | Errno::ENODEV) => {
            format!("cannot open {TUN_PATH} ({err}): modprobe tun")
        }
        Some(Errno::EACCES | Errno::EPERM) => {
            format!("{ROOT_MSG} (cannot open {TUN_PATH}: permission denied)")
        }
        _ => format!("cannot open {TUN_PATH}: {err}"),
    }
}

/// Message for a failed TUNSETIFF; `name` as given ("" = kernel's pick).
pub fn tunsetiff_error_message(errno: Errno, name: &str) -> String {
    let tap = if name.is_empty() {
        "a tap".to_owned()
    } else {
        format!("tap {name}")
    };
    match errno {
        Errno::EPERM | Errno::EACCES => {
            format!("creating {tap} needs root (CAP_NET_ADMIN) ({errno:?})")
        }
        Errno::EBUSY => format!("{tap} is in use by another process (EBUSY)"),
        Errno::EINVAL => format!(
            "cannot open {tap} (EINVAL): an interface of that name exists and is not a tap \
             of the same kind"
        ),
        e => format!("TUNSETIFF for {tap} failed: {} ({e:?})", e.desc()),
    }
}

/// Message for a failed exec of QEMU.
pub fn exec_error_message(program: &str, err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound => {
            format!("cannot run {program}: not found (is QEMU installed? give its path)")
        }
        _ => format!("cannot run {program}: {err}"),
    }
}

/// Clear FD_CLOEXEC, so that `fd` stays open in the exec'd QEMU.
pub fn clear_cloexec(fd: BorrowedFd<'_>) -> Result<()> {
    let flags = FdFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFD)?);
    fcntl(fd, FcntlArg::F_SETFD(flags - FdFlag::FD_CLOEXEC))?;
    Ok(())
}

/// PVPASS_VHOST_SET_PORT on `file`, as the port's next queue pair with
/// `join` (the first queue pair's id); returns the device id.
fn set_port(file: &File, path: &Path, backend: &str, mac: Mac, join: Option<u32>) -> Result<u32> {
    let mut port = vhost_port(backend, mac).map_err(|e| anyhow!(e))?;
    if let Some(first) = join {
        port.flags = uapi::PVPASS_VHOST_F_JOIN;
        port.id = first;
    }
    // SAFETY: the fd is open and `port` is a valid, writable pvpass_vhost_port.
    match unsafe { uapi::pvpass_vhost_set_port(file.as_raw_fd(), &mut port) } {
        Ok(_) => Ok(port.id),
        Err(e) => bail!(set_port_error_message(e, path, backend, mac)),
    }
}

/// Open (or create) a tap with TAP_FLAGS (and IFF_MULTI_QUEUE when
/// `multi`: one fd a queue); returns it and its name.
fn open_tap(name: &str, multi: bool) -> Result<(File, String)> {
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .open(TUN_PATH)
        .map_err(|e| anyhow!(tun_open_error_message(&e)))?;
    // SAFETY: ifreq is plain data (a name and a union of integers, socket
    // addresses and a pointer): all zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    // parse_tap_name keeps the name below IFNAMSIZ: it stays NUL-terminated.
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    let flags = if multi {
        TAP_FLAGS | libc::IFF_MULTI_QUEUE
    } else {
        TAP_FLAGS
    };
    ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: the fd is open and `ifr` is a valid, writable ifreq.
    unsafe { tun_set_iff(tun.as_raw_fd(), &mut ifr) }
        .map_err(|e| anyhow!(tunsetiff_error_message(e, name)))?;
    let got: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Ok((tun, String::from_utf8_lossy(&got).into_owned()))
}

pub fn run(device: &Path, args: &VhostExecArgs) -> Result<()> {
    if !(1..=crate::args::MAX_QUEUE_PAIRS).contains(&args.queues) {
        // parse_queues refuses it already; kept for callers that build args.
        bail!("1 to {} queue pairs", crate::args::MAX_QUEUE_PAIRS);
    }
    for w in qemu_warnings(&args.qemu, &args.netdev_id, args.mac) {
        warn!("{w}");
    }
    if let Some(opts) = mq_hint(args.queues) {
        let _ = writeln!(
            io::stderr(),
            "pvpass: {} queue pairs: give the virtio-net-pci {opts}",
            args.queues
        );
    }

    let path = args.vhost_device.as_path();
    // One vhost file a queue pair: the first makes the port, the others
    // join it.
    let mut vhosts = Vec::new();
    let mut first = None;
    for _ in 0..args.queues {
        let vhost = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| {
                let features = Device::open(device)
                    .and_then(|d| d.version())
                    .ok()
                    .map(|v| v.features);
                anyhow!(vhost_open_error_message(path, &e, features))
            })?;
        let id = set_port(&vhost, path, &args.backend, args.mac, first)?;
        first.get_or_insert(id);
        let _ = writeln!(
            io::stderr(),
            "pvpass vhost device {id} on switch {}, mac {} (queue pair {})",
            switch_display(&args.backend),
            args.mac,
            vhosts.len()
        );
        clear_cloexec(vhost.as_fd()).with_context(|| format!("fcntl on {}", path.display()))?;
        vhosts.push(vhost);
    }
    let multi = args.queues > 1;
    let mut taps = Vec::new();
    let mut tap_name = args.tap.clone();
    for _ in 0..args.queues {
        // The first names the tap (the kernel's pick for ""), the others
        // are its other queues.
        let (tap, name) = open_tap(&tap_name, multi)?;
        tap_name = name;
        clear_cloexec(tap.as_fd()).with_context(|| format!("fcntl on {TUN_PATH}"))?;
        taps.push(tap);
    }

    let raw = |f: &[File]| f.iter().map(AsRawFd::as_raw_fd).collect::<Vec<_>>();
    let netdev = netdev_option(&args.netdev_id, &raw(&taps), &raw(&vhosts));
    let argv = qemu_argv(&args.qemu, &netdev);
    if args.print {
        say!(
            "# vhostfds={:?} tapfds={:?} tap={tap_name}",
            raw(&vhosts),
            raw(&taps)
        );
        say!("{}", shell_join(&argv));
        return Ok(());
    }
    // Only returns on failure; the files stay open until then.
    let err = Command::new(&argv[0]).args(&argv[1..]).exec();
    bail!(exec_error_message(&argv[0], &err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|&s| s.to_owned()).collect()
    }

    const MAC: Mac = Mac([0x52, 0x54, 0, 0, 0, 3]);

    #[test]
    fn netdev_string() {
        assert_eq!(
            netdev_option("pvpass0", &[4], &[3]),
            "tap,id=pvpass0,fd=4,vhost=on,vhostfd=3"
        );
        assert_eq!(
            netdev_option("n0", &[5, 6], &[3, 4]),
            "tap,id=n0,fds=5:6,vhost=on,vhostfds=3:4"
        );
        assert_eq!(mq_hint(1), None);
        assert_eq!(mq_hint(2).as_deref(), Some("mq=on,vectors=6"));
        assert_eq!(
            qemu_argv(&v(&["qemu-system-x86_64", "-m", "1G"]), "tap,id=n,fd=9"),
            v(&["qemu-system-x86_64", "-m", "1G", "-netdev", "tap,id=n,fd=9"])
        );
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_quote("tap,id=a,fd=4"), "tap,id=a,fd=4");
        assert_eq!(
            shell_quote("/usr/bin/qemu-system-x86_64"),
            "/usr/bin/qemu-system-x86_64"
        );
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(
            shell_quote(r#"{"driver":"virtio-net-pci"}"#),
            r#"'{"driver":"virtio-net-pci"}'"#
        );
        assert_eq!(
            shell_join(&v(&["qemu", "-append", "console=ttyS0 quiet", "-S"])),
            "qemu -append 'console=ttyS0 quiet' -S"
        );
        assert_eq!(shell_join(&v(&["A=b", "c=d"])), "'A=b' c=d");
        assert_eq!(shell_join(&[]), "");
    }

    #[test]
    fn warnings_for_the_qemu_arguments() {
        let ok = v(&[
            "qemu",
            "-device",
            "virtio-net-pci,netdev=pvpass0,mac=52:54:00:00:00:03",
        ]);
        assert_eq!(qemu_warnings(&ok, "pvpass0", MAC), Vec::<String>::new());
        let upper = v(&[
            "qemu",
            "-device",
            "virtio-net-pci,mac=52:54:00:00:00:03,netdev=pvpass0",
        ]);
        assert!(qemu_warnings(&upper, "pvpass0", MAC).is_empty());
        let json = v(&[
            "qemu",
            "-device",
            r#"{"driver": "virtio-net-pci", "netdev": "pvpass0"}"#,
        ]);
        assert!(qemu_warnings(&json, "pvpass0", MAC).is_empty());

        let none = v(&["qemu", "-device", "virtio-net-pci,netdev=pvpass00"]);
        let w = qemu_warnings(&none, "pvpass0", MAC);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("no netdev=pvpass0")
                && w[0].contains("-device virtio-net-pci,netdev=pvpass0,mac=52:54:00:00:00:03"),
            "{w:?}"
        );
        // argv[0] is the program, not an argument.
        let w = qemu_warnings(&v(&["netdev=pvpass0"]), "pvpass0", MAC);
        assert!(w[0].contains("no netdev=pvpass0"), "{w:?}");

        let other = v(&[
            "qemu",
            "-device",
            "virtio-net-pci,netdev=n1,mac=52:54:00:00:00:04",
        ]);
        let w = qemu_warnings(&other, "n1", MAC);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("mac=52:54:00:00:00:04") && w[0].contains("must be the same"));

        let no_mac = v(&["qemu", "-device", "virtio-net-pci,netdev=pvpass0"]);
        let w = qemu_warnings(&no_mac, "pvpass0", MAC);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("no mac=") && w[0].contains("add mac=52:54:00:00:00:03"));

        let twice = v(&[
            "qemu",
            "-netdev",
            "user,id=pvpass0",
            "-device",
            "virtio-net-pci,netdev=pvpass0,mac=52:54:00:00:00:03",
        ]);
        let w = qemu_warnings(&twice, "pvpass0", MAC);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("-netdev user,id=pvpass0 already"), "{w:?}");
    }

    #[test]
    fn port_request() {
        let p = vhost_port("lab", MAC).unwrap();
        assert_eq!(&p.backend[..3], b"lab");
        assert!(p.backend[3..].iter().all(|&b| b == 0));
        assert_eq!(p.mac, MAC.0);
        assert_eq!((p.pad, p.flags, p.id), ([0; 2], 0, 0));
        assert_eq!(vhost_port("", MAC).unwrap().backend, [0; 16]);
        assert!(vhost_port("a b", MAC).is_err());
    }

    #[test]
    fn set_port_messages() {
        let p = Path::new(VHOST_DEVICE_PATH);
        assert_eq!(
            set_port_error_message(Errno::EPERM, p, "", MAC),
            "PVPASS_VHOST_SET_PORT needs root (CAP_SYS_ADMIN) (EPERM)"
        );
        assert!(set_port_error_message(Errno::ENODEV, p, "", MAC).starts_with("no such switch"));
        assert_eq!(
            set_port_error_message(Errno::ENODEV, p, "lab", MAC),
            "no such switch 'lab' (ENODEV); `pvpassctl switch add lab` makes it"
        );
        let m = set_port_error_message(Errno::EINVAL, p, "", MAC);
        assert!(
            m.contains("(EINVAL)") && m.contains("52:54:00:00:00:03") && m.contains("'default'"),
            "{m}"
        );
        assert!(set_port_error_message(Errno::EADDRINUSE, p, "lab", MAC)
            .contains("another port of switch 'lab'"));
        let m = set_port_error_message(Errno::ENOTTY, Path::new("/dev/null"), "", MAC);
        assert!(
            m.starts_with("/dev/null does not answer PVPASS_VHOST_SET_PORT"),
            "{m}"
        );
        assert!(set_port_error_message(Errno::EIO, p, "", MAC)
            .starts_with("PVPASS_VHOST_SET_PORT failed"));
    }

    #[test]
    fn open_messages() {
        let p = Path::new(VHOST_DEVICE_PATH);
        let enoent = io::Error::from_raw_os_error(libc::ENOENT);
        let m = vhost_open_error_message(p, &enoent, None);
        assert!(
            m.starts_with("cannot open /dev/pvpass-vhost-net (")
                && m.ends_with("pvpass module not loaded: insmod pvpass.ko"),
            "{m}"
        );
        let m = vhost_open_error_message(p, &enoent, Some(0x3f));
        assert!(
            m.contains("no vhost transport") && m.contains("0x3f"),
            "{m}"
        );
        let m = vhost_open_error_message(p, &enoent, Some(0x7f));
        assert!(m.contains("insmod pvpass.ko"), "{m}");
        let m = vhost_open_error_message(p, &io::Error::from_raw_os_error(libc::EACCES), None);
        assert!(
            m.starts_with(ROOT_MSG) && m.contains(VHOST_DEVICE_PATH),
            "{m}"
        );
        assert!(tun_open_error_message(&enoent).contains("modprobe tun"));
        assert!(tunsetiff_error_message(Errno::EPERM, "").contains("CAP_NET_ADMIN"));
        assert_eq!(
            tunsetiff_error_message(Errno::EBUSY, "tap7"),
            "tap tap7 is in use by another process (EBUSY)"
        );
        let m = exec_error_message("qemu-nope", &io::Error::from_raw_os_error(libc::ENOENT));
        assert!(m.starts_with("cannot run qemu-nope: not found"), "{m}");
    }

    #[test]
    fn cloexec_is_cleared() {
        let f = File::open("/dev/null").unwrap();
        let flags = || FdFlag::from_bits_retain(fcntl(f.as_fd(), FcntlArg::F_GETFD).unwrap());
        assert!(flags().contains(FdFlag::FD_CLOEXEC)); // std opens with O_CLOEXEC
        clear_cloexec(f.as_fd()).unwrap();
        assert!(!flags().contains(FdFlag::FD_CLOEXEC));
    }

    #[test]
    fn tap_flags() {
        assert_eq!(TAP_FLAGS, 0x5002);
        assert_eq!(libc::TUNSETIFF as u32, 0x4004_54ca);
    }

    /// Creates a tap, so it needs CAP_NET_ADMIN and is not run by default;
    /// run it in a network namespace of its own, which leaves the host's
    /// interfaces alone:
    /// `unshare -n cargo test -- --ignored tap_is_a_vnet_hdr_tap`
    #[test]
    #[ignore]
    fn tap_is_a_vnet_hdr_tap() {
        // Declared _IOR(uint) too, but fills a whole struct ifreq.
        nix::ioctl_read_bad!(tun_get_iff, libc::TUNGETIFF, libc::ifreq);
        let (tap, name) = open_tap("pvpt%d", false).unwrap();
        assert!(name.starts_with("pvpt") && name != "pvpt%d", "{name}");
        // SAFETY: plain data, all zero is valid (as in open_tap).
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        // SAFETY: the fd is open and `ifr` is a valid, writable ifreq.
        unsafe { tun_get_iff(tap.as_raw_fd(), &mut ifr) }.unwrap();
        // SAFETY: TUNGETIFF sets the flags member.
        let flags = libc::c_int::from(unsafe { ifr.ifr_ifru.ifru_flags });
        assert_eq!(flags & TAP_FLAGS, TAP_FLAGS, "{flags:#x}");
        let (_held, named) = open_tap("pvpt-x", false).unwrap();
        assert_eq!(named, "pvpt-x");
        assert!(open_tap("pvpt-x", false)
            .unwrap_err()
            .to_string()
            .contains("EBUSY"));
    }
}
