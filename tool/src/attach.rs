//! `pvpassctl attach`: attach, then hold the attachment until the VMM exits
//! or a stop signal arrives.

use crate::cli::{AttachArgs, Trigger};
use crate::device::{AttachRequest, Device};
use crate::pidfd::{open_process, take_fd, wait_for_fd};
use crate::procscan::KVM_VM_LINK;
use crate::uapi::{PvpassStats, PVPASS_API_VERSION, PVPASS_FEAT_RESAMPLE, PVPASS_FEAT_SWITCHES};
use crate::{say, warn};
use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{fork, setsid, ForkResult};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the attach process asks the module whether its attachment was
/// released from elsewhere (`pvpassctl detach`): one GET_STATS a second.
const RELEASE_CHECK: Duration = Duration::from_secs(1);

/// Why the attach process stopped holding the attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    VmmExited(i32),
    Signal(Signal),
    /// The module released the attachment while the VMM still runs: root
    /// detached it from another process (`pvpassctl detach <id>`).
    Released,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::VmmExited(pid) => write!(f, "VMM process {pid} exited"),
            StopReason::Signal(s) => write!(f, "{}", s.as_str()),
            StopReason::Released => {
                write!(f, "released by another process (pvpassctl detach)")
            }
        }
    }
}

/// The one-line stats report of `attach`: every counter as key=value, the
/// drops by reason after `drops:`, and `released=` last.
pub fn stats_line(s: &PvpassStats) -> String {
    format!(
        "stats id={} mmio_reads={} mmio_writes={} mmio_bad={} notifies={} interrupts={} \
         tx_frames={} tx_bytes={} rx_frames={} rx_bytes={} tx_gso_frames={} rx_gso_frames={} \
         rx_csum_completed={} rx_direct={} rx_deferred={} pages_pinned={} pin_hits={} \
         pin_misses={} map_rereads={} irq_resamples={} tx_yields={} drops: tx_bad_chain={} \
         tx_bad_buffer={} tx_bad_hdr={} rx_no_buffer={} rx_too_small={} rx_no_offload={} \
         tx_spoofed={} rx_pin_failed={} tx_storm={} rx_scattered={} released={}",
        s.id,
        s.mmio_reads,
        s.mmio_writes,
        s.mmio_bad,
        s.notifies,
        s.interrupts,
        s.tx_frames,
        s.tx_bytes,
        s.rx_frames,
        s.rx_bytes,
        s.tx_gso_frames,
        s.rx_gso_frames,
        s.rx_csum_completed,
        s.rx_direct,
        s.rx_deferred,
        s.pages_pinned,
        s.pin_hits,
        s.pin_misses,
        s.map_rereads,
        s.irq_resamples,
        s.tx_yields,
        s.drop_tx_bad_chain,
        s.drop_tx_bad_buffer,
        s.drop_tx_bad_hdr,
        s.drop_rx_no_buffer,
        s.drop_rx_too_small,
        s.drop_rx_no_offload,
        s.drop_tx_spoofed,
        s.drop_rx_pin_failed,
        s.drop_tx_storm,
        s.drop_rx_scattered,
        s.released
    )
}

/// Signals that end the attachment, plus SIGUSR1 (print stats).
fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGUSR1,
    ] {
        set.add(s);
    }
    set
}

/// Write `id` to `path` atomically (temp file + rename), so a script polling
/// for the file never reads it half-written.
pub fn write_ready_file(path: &Path, id: u32) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let res = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        writeln!(f, "{id}")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.with_context(|| format!("cannot write ready file {}", path.display()))
}

fn remove_ready_file(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!("cannot remove ready file {}: {e}", path.display()),
    }
}

pub fn run(device: &Path, args: &AttachArgs) -> Result<()> {
    // An absolute path keeps working after --daemon changes to "/".
    let ready_file = match &args.ready_file {
        Some(p) => Some(
            std::path::absolute(p)
                .with_context(|| format!("bad ready file path {}", p.display()))?,
        ),
        None => None,
    };
    if let Some(p) = &ready_file {
        remove_ready_file(p); // never leave a stale id from an earlier run
    }

    let pid = args.pid;
    let pidfd = open_process(pid)?;
    // The interrupt eventfd, which the module binds to the GSI with KVM's
    // irqfd. It is created before the device is opened so that, by reverse
    // drop order, it is closed only after the /dev/pvpass file (and with it
    // any attachment still left) is gone: it stays open for the whole life
    // of the attachment.
    let irq = if args.no_irq {
        None
    } else {
        Some(
            EventFd::from_flags(EfdFlags::EFD_CLOEXEC)
                .map_err(|e| anyhow!("cannot create the interrupt eventfd: {} ({e})", e.desc()))?,
        )
    };
    let dev = Device::open(device)?;
    let version = dev.version()?;
    if version.api_version < PVPASS_API_VERSION {
        bail!(
            "the loaded pvpass module speaks API {}, this tool needs {}",
            version.api_version,
            PVPASS_API_VERSION
        );
    }

    let level = match level_mode(args.trigger, args.gsi, irq.is_some(), version.features)? {
        (level, Some(w)) => {
            warn!("{w}");
            level
        }
        (level, None) => level,
    };
    // KVM signals this one at each EOI of a level-triggered GSI; kept open,
    // like `irq`, for the whole life of the attachment.
    let resample = if level {
        Some(
            EventFd::from_flags(EfdFlags::EFD_CLOEXEC)
                .map_err(|e| anyhow!("cannot create the resample eventfd: {} ({e})", e.desc()))?,
        )
    } else {
        None
    };

    let target_fd = wait_for_fd(pid, &pidfd, KVM_VM_LINK, Duration::from_secs(args.wait))?;
    let vm_fd = take_fd(pid, &pidfd, target_fd)?;

    // Block the signals before ATTACH: from here on they are read from a
    // signalfd, so a Ctrl-C during ATTACH still detaches cleanly.
    let signals = handled_signals();
    signals.thread_block().context("cannot block signals")?;

    let req = AttachRequest {
        pid,
        irq_fd: irq.as_ref().map(|e| e.as_fd()),
        resample_fd: resample.as_ref().map(|e| e.as_fd()),
        gpa: args.gpa,
        gsi: args.gsi,
        mac: args.mac,
        switch: args.switch.clone(),
        named_switches: version.features & PVPASS_FEAT_SWITCHES != 0,
        max_attach: version.max_attach,
        irqchip_wait: Duration::from_secs(args.wait),
    };
    let id = dev.attach(vm_fd.as_fd(), &req)?;
    // The module holds its own reference to the VM; our copy of the VM fd
    // must not keep the VM alive after the VMM exits.
    drop(vm_fd);

    say!(
        "attached id={id} pid={pid} gpa={:#x} gsi={} trigger={} mac={}",
        args.gpa,
        args.gsi,
        match (irq.is_some(), level) {
            (false, _) => "none",
            (true, true) => "level",
            (true, false) => "edge",
        },
        args.mac
    );
    if irq.is_none() {
        warn!("attached without interrupts (--no-irq): the guest must poll the device");
    }
    if let Some(p) = &ready_file {
        if let Err(e) = write_ready_file(p, id) {
            let reason = format!("{e:#}");
            finish(&dev, id, &reason, None);
            bail!(reason);
        }
    }

    if args.daemon {
        if let Some(child) = daemonize()? {
            warn!("running in the background as pid {child}; `kill -TERM {child}` detaches");
            // Our copy of the /dev/pvpass file closes; the child's keeps the
            // attachment.
            return Ok(());
        }
    }

    let sfd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("cannot create signalfd")?;
    let interval = (args.stats_interval > 0).then(|| Duration::from_secs(args.stats_interval));
    let mut warned = false;
    let released = || match dev.get_stats(id, 0) {
        Ok(s) => s.released != 0,
        // The module keeps a released husk until we detach; an id that is
        // gone altogether is released all the more.
        Err(Errno::ENOENT) => true,
        Err(e) => {
            if !std::mem::replace(&mut warned, true) {
                warn!("PVPASS_GET_STATS id={id} failed: {} ({e})", e.desc());
            }
            false
        }
    };
    let hooks = Hooks {
        interval,
        release_check: RELEASE_CHECK,
        on_stats: || print_stats(&dev, id),
        released,
    };
    match hold(pid, &pidfd, &sfd, hooks) {
        Ok(reason) => {
            finish(&dev, id, &reason.to_string(), ready_file.as_deref());
            Ok(())
        }
        Err(e) => {
            finish(&dev, id, &format!("{e:#}"), ready_file.as_deref());
            Err(e)
        }
    }
}

/// Print final stats, detach explicitly and report. After a release (VMM
/// gone, or `pvpassctl detach` from elsewhere) the DETACH frees the husk the
/// module kept for this file.
fn finish(dev: &Device, id: u32, reason: &str, ready_file: Option<&Path>) {
    let released = match dev.stats(id) {
        Ok(s) => {
            say!("{}", stats_line(&s));
            s.released != 0
        }
        Err(e) => {
            warn!("{e:#}");
            false
        }
    };
    match dev.detach_raw(id, 0) {
        Ok(()) => {}
        Err(Errno::ENOENT) if released => {}
        // Closing the file detaches anyway.
        Err(e) => warn!("PVPASS_DETACH id={id} failed: {} ({e})", e.desc()),
    }
    if let Some(p) = ready_file {
        remove_ready_file(p);
    }
    say!("detached id={id}: {reason}");
}

/// What `hold` does besides waiting: periodic stats, and the check whether
/// the module released the attachment.
struct Hooks<S, R> {
    /// Call `on_stats` this often (None: only on SIGUSR1).
    interval: Option<Duration>,
    /// Call `released` this often.
    release_check: Duration,
    on_stats: S,
    /// True once the module released the attachment (stats.released).
    released: R,
}

/// Wait until the VMM exits, a stop signal arrives or the attachment is
/// released from elsewhere, serving SIGUSR1 and the periodic stats in
/// between.
fn hold<S: FnMut(), R: FnMut() -> bool>(
    pid: i32,
    pidfd: &OwnedFd,
    sfd: &SignalFd,
    mut hooks: Hooks<S, R>,
) -> Result<StopReason> {
    let interval = hooks.interval;
    let mut next_stats = interval.map(|i| Instant::now() + i);
    let mut next_check = Instant::now() + hooks.release_check;
    loop {
        let wake = next_stats.map_or(next_check, |t| t.min(next_check));
        let left = wake.saturating_duration_since(Instant::now());
        // Round up so we do not wake a millisecond early and spin.
        let timeout =
            PollTimeout::try_from(left + Duration::from_micros(999)).unwrap_or(PollTimeout::MAX);
        let mut fds = [
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => bail!("poll failed: {} ({e})", e.desc()),
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            return Ok(StopReason::VmmExited(pid));
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            while let Some(info) = sfd.read_signal().context("cannot read signalfd")? {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGUSR1) => (hooks.on_stats)(),
                    Ok(sig) => return Ok(StopReason::Signal(sig)),
                    Err(_) => {}
                }
            }
        }
        let now = Instant::now();
        if let (Some(t), Some(i)) = (next_stats, interval) {
            if now >= t {
                (hooks.on_stats)();
                next_stats = Some(now + i);
            }
        }
        if now >= next_check {
            if (hooks.released)() {
                // The module also releases a VM whose VMM exited; name that
                // reason if the pidfd says so. The module sees the exit when
                // the VMM's memory is torn down, a little before the pidfd
                // turns readable (the exit is not complete yet), so give the
                // pidfd a moment.
                return Ok(if vmm_exited(pidfd, VMM_EXIT_GRACE) {
                    StopReason::VmmExited(pid)
                } else {
                    StopReason::Released
                });
            }
            next_check = now + hooks.release_check;
        }
    }
}

/// Why `gsi` is level-triggered in the guests of QEMU's pc and q35 machines
/// (their ACPI tables make ISA IRQs 5, 9, 10 and 11 level-triggered PCI
/// links, and GSIs 16 and up are PCI interrupts), if it is.
pub(crate) fn level_triggered_gsi(gsi: u32) -> Option<&'static str> {
    match gsi {
        5 | 9 | 10 | 11 => Some("an ISA IRQ the ACPI tables override to level"),
        16.. => Some("a PCI interrupt line"),
        _ => None,
    }
}

/// Whether to attach `gsi` level-triggered (resampled), from `--trigger`,
/// whether there are interrupts at all and the module's features; and a
/// warning if the guest could miss interrupts. An error if `--trigger level`
/// was asked of a module that cannot resample.
pub(crate) fn level_mode(
    trigger: Trigger,
    gsi: u32,
    irq: bool,
    features: u32,
) -> Result<(bool, Option<String>)> {
    let can = features & PVPASS_FEAT_RESAMPLE != 0;
    let why = level_triggered_gsi(gsi);
    Ok(match (irq, trigger, why) {
        (false, ..) => (false, None),
        (true, Trigger::Level, _) if !can => bail!(
            "the loaded pvpass module cannot resample a level-triggered GSI: attach \
             --trigger edge on an edge-triggered GSI such as 7"
        ),
        (true, Trigger::Level, _) => (true, None),
        (true, Trigger::Auto, Some(why)) if !can => (
            false,
            Some(format!(
                "GSI {gsi} is level-triggered on QEMU's pc and q35 machines ({why}), and the \
                 loaded module cannot resample it: the guest can miss interrupts; use an \
                 edge-triggered ISA GSI such as 7"
            )),
        ),
        (true, Trigger::Auto, Some(_)) => (true, None),
        (true, Trigger::Edge, Some(why)) => (
            false,
            Some(format!(
                "GSI {gsi} is level-triggered on QEMU's pc and q35 machines ({why}), but is \
                 attached edge-triggered (--trigger edge): the guest can miss interrupts"
            )),
        ),
        (true, Trigger::Auto | Trigger::Edge, None) => (false, None),
    })
}

/// How long a release may precede the pidfd's exit notification.
const VMM_EXIT_GRACE: Duration = Duration::from_secs(1);

/// Whether the process behind `pidfd` has exited, or does within `wait`.
fn vmm_exited(pidfd: &OwnedFd, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Rounded up to whole milliseconds, as poll counts them.
        let timeout =
            PollTimeout::try_from(left + Duration::from_micros(999)).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(n) if n > 0 => return true,
            Ok(_) | Err(Errno::EINTR) if !left.is_zero() => continue,
            _ => return false,
        }
    }
}

fn print_stats(dev: &Device, id: u32) {
    match dev.stats(id) {
        Ok(s) => say!("{}", stats_line(&s)),
        Err(e) => warn!("{e:#}"),
    }
}

/// Fork into the background. Returns `Some(child pid)` in the parent and
/// `None` in the child, which is a new session leader with stdin on
/// /dev/null. stdout/stderr stay if they are regular files (`>> log`),
/// anything else (terminal, pipe) is replaced by /dev/null so the daemon
/// neither writes to a closed terminal nor holds a caller's pipe open.
fn daemonize() -> Result<Option<i32>> {
    // SAFETY: pvpassctl is single-threaded, so the child may run any code.
    match unsafe { fork() }.context("fork failed")? {
        ForkResult::Parent { child } => Ok(Some(child.as_raw())),
        ForkResult::Child => {
            setsid().context("setsid failed")?;
            std::env::set_current_dir("/").context("chdir / failed")?;
            let null = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .context("cannot open /dev/null")?;
            nix::unistd::dup2_stdin(&null).context("dup2 stdin")?;
            if !is_regular_file(std::io::stdout().as_fd()) {
                nix::unistd::dup2_stdout(&null).context("dup2 stdout")?;
            }
            if !is_regular_file(std::io::stderr().as_fd()) {
                nix::unistd::dup2_stderr(&null).context("dup2 stderr")?;
            }
            Ok(None)
        }
    }
}

fn is_regular_file(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    let Ok(dup) = fd.try_clone_to_owned() else {
        return false;
    };
    File::from(dup)
        .metadata()
        .map(|m| m.file_type().is_file())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        assert_eq!(StopReason::VmmExited(7).to_string(), "VMM process 7 exited");
        assert_eq!(StopReason::Signal(Signal::SIGTERM).to_string(), "SIGTERM");
        assert_eq!(
            StopReason::Released.to_string(),
            "released by another process (pvpassctl detach)"
        );
    }

    #[test]
    fn stats_format() {
        let s = PvpassStats {
            id: 3,
            flags: 0,
            mmio_reads: 10,
            mmio_writes: 20,
            mmio_bad: 1,
            notifies: 4,
            interrupts: 5,
            tx_frames: 6,
            tx_bytes: 7,
            rx_frames: 8,
            rx_bytes: 9,
            drop_tx_bad_chain: 11,
            drop_tx_bad_buffer: 12,
            drop_rx_no_buffer: 13,
            drop_rx_too_small: 14,
            released: 1,
            drop_tx_bad_hdr: 15,
            drop_rx_no_offload: 16,
            tx_gso_frames: 17,
            rx_gso_frames: 18,
            rx_csum_completed: 19,
            drop_tx_spoofed: 20,
            rx_direct: 21,
            rx_deferred: 22,
            pages_pinned: 23,
            pin_hits: 24,
            pin_misses: 25,
            drop_rx_pin_failed: 26,
            map_rereads: 27,
            irq_resamples: 28,
            tx_yields: 29,
            drop_tx_storm: 30,
            drop_rx_scattered: 31,
        };
        assert_eq!(
            stats_line(&s),
            "stats id=3 mmio_reads=10 mmio_writes=20 mmio_bad=1 notifies=4 interrupts=5 \
             tx_frames=6 tx_bytes=7 rx_frames=8 rx_bytes=9 tx_gso_frames=17 rx_gso_frames=18 \
             rx_csum_completed=19 rx_direct=21 rx_deferred=22 pages_pinned=23 pin_hits=24 \
             pin_misses=25 map_rereads=27 irq_resamples=28 tx_yields=29 drops: tx_bad_chain=11 \
             tx_bad_buffer=12 tx_bad_hdr=15 rx_no_buffer=13 rx_too_small=14 rx_no_offload=16 \
             tx_spoofed=20 rx_pin_failed=26 tx_storm=30 rx_scattered=31 released=1"
        );
    }

    fn sleeper(secs: &str) -> (std::process::Child, OwnedFd) {
        let child = std::process::Command::new("sleep")
            .arg(secs)
            .spawn()
            .unwrap();
        let pidfd = crate::pidfd::open_process(child.id() as i32).unwrap();
        (child, pidfd)
    }

    /// Signals are sent to this test thread only (pthread_kill), blocked in
    /// it and read through the signalfd, so other test threads never see
    /// them.
    fn raise_here(sig: Signal) {
        // SAFETY: signalling the calling thread with a blocked signal.
        let r = unsafe { libc::pthread_kill(libc::pthread_self(), sig as libc::c_int) };
        assert_eq!(r, 0);
    }

    fn signalfd() -> SignalFd {
        let set = handled_signals();
        set.thread_block().unwrap();
        SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).unwrap()
    }

    #[test]
    fn hold_usr1_then_term() {
        let (mut child, pidfd) = sleeper("30");
        let sfd = signalfd();
        raise_here(Signal::SIGUSR1);
        raise_here(Signal::SIGTERM);
        let mut n = 0;
        let r = hold(
            child.id() as i32,
            &pidfd,
            &sfd,
            hooks(None, || n += 1, || false),
        )
        .unwrap();
        assert_eq!(r, StopReason::Signal(Signal::SIGTERM));
        assert_eq!(n, 1);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn hold_until_vmm_exits_with_periodic_stats() {
        let (mut child, pidfd) = sleeper("0.5");
        let sfd = signalfd();
        let pid = child.id() as i32;
        let t = Instant::now();
        let mut n = 0;
        let mut checks = 0;
        let h = Hooks {
            interval: Some(Duration::from_millis(100)),
            release_check: Duration::from_millis(30),
            on_stats: || n += 1,
            released: || {
                checks += 1;
                false
            },
        };
        let r = hold(pid, &pidfd, &sfd, h).unwrap();
        assert_eq!(r, StopReason::VmmExited(pid));
        assert!(t.elapsed() >= Duration::from_millis(400));
        assert!((3..=6).contains(&n), "{n} periodic stats in 0.5 s");
        assert!(
            (8..=20).contains(&checks),
            "{checks} release checks in 0.5 s"
        );
        child.wait().unwrap();
    }

    fn hooks<S: FnMut(), R: FnMut() -> bool>(
        interval: Option<Duration>,
        on_stats: S,
        released: R,
    ) -> Hooks<S, R> {
        Hooks {
            interval,
            release_check: Duration::from_millis(20),
            on_stats,
            released,
        }
    }

    /// `pvpassctl detach` from elsewhere: the third check sees released=1
    /// while the VMM still runs.
    #[test]
    fn hold_until_released_from_elsewhere() {
        let (mut child, pidfd) = sleeper("30");
        let sfd = signalfd();
        let mut checks = 0;
        let r = hold(
            child.id() as i32,
            &pidfd,
            &sfd,
            hooks(
                None,
                || {},
                || {
                    checks += 1;
                    checks == 3
                },
            ),
        )
        .unwrap();
        assert_eq!(r, StopReason::Released);
        assert_eq!(checks, 3);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// `hold` reports a release as the VMM's exit if the VMM exits within
    /// the grace period (the module sees the exit first); a VMM that keeps
    /// running means someone else released the attachment.
    #[test]
    fn vmm_exited_allows_a_late_exit() {
        let (mut child, pidfd) = sleeper("0");
        child.wait().unwrap();
        assert!(vmm_exited(&pidfd, Duration::ZERO));
        let (mut late, late_fd) = sleeper("0.3");
        assert!(vmm_exited(&late_fd, Duration::from_secs(10)));
        late.wait().unwrap();
        let (mut live, live_fd) = sleeper("30");
        let t = Instant::now();
        assert!(!vmm_exited(&live_fd, Duration::from_millis(100)));
        assert!(t.elapsed() >= Duration::from_millis(100));
        live.kill().unwrap();
        live.wait().unwrap();
    }

    #[test]
    fn level_triggered_gsis_are_named() {
        for g in [5, 9, 10, 11, 16, 23] {
            assert!(level_triggered_gsi(g).is_some(), "{g}");
        }
        for g in [1, 3, 4, 6, 7, 12, 14, 15] {
            assert!(level_triggered_gsi(g).is_none(), "{g}");
        }
    }

    #[test]
    fn trigger_mode_follows_the_gsi_and_the_module() {
        let can = PVPASS_FEAT_RESAMPLE;
        // auto: level exactly for the GSIs QEMU makes level-triggered.
        assert_eq!(
            level_mode(Trigger::Auto, 5, true, can).unwrap(),
            (true, None)
        );
        assert_eq!(
            level_mode(Trigger::Auto, 16, true, can).unwrap(),
            (true, None)
        );
        assert_eq!(
            level_mode(Trigger::Auto, 7, true, can).unwrap(),
            (false, None)
        );
        // Explicit choices win, with a warning for edge on a level GSI.
        assert_eq!(
            level_mode(Trigger::Level, 7, true, can).unwrap(),
            (true, None)
        );
        let (level, warning) = level_mode(Trigger::Edge, 5, true, can).unwrap();
        assert!(!level);
        assert!(warning.unwrap().contains("--trigger edge"));
        // A module without resampling: auto warns, level is refused.
        let (level, warning) = level_mode(Trigger::Auto, 10, true, 0).unwrap();
        assert!(!level);
        assert!(warning.unwrap().contains("cannot resample"));
        assert!(level_mode(Trigger::Level, 10, true, 0).is_err());
        assert_eq!(
            level_mode(Trigger::Auto, 7, true, 0).unwrap(),
            (false, None)
        );
        // No interrupts at all: nothing to resample, nothing to warn about.
        assert_eq!(
            level_mode(Trigger::Auto, 5, false, can).unwrap(),
            (false, None)
        );
    }

    #[test]
    fn ready_file_roundtrip() {
        let p = std::env::temp_dir().join(format!("pvpassctl-ready-{}", std::process::id()));
        write_ready_file(&p, 42).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "42\n");
        remove_ready_file(&p);
        assert!(!p.exists());
        remove_ready_file(&p); // missing is fine
        assert!(write_ready_file(Path::new("/nonexistent-dir/x"), 1).is_err());
    }
}
