//! End-to-end checks of the binary that need no pvpass module.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pvpassctl"))
        .args(args)
        .output()
        .expect("run pvpassctl")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runtime errors: exit code 1, one clean line, no panic or backtrace.
fn assert_runtime_error(o: &Output, want: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {e}");
    assert!(e.contains(want), "expected {want:?} in {e:?}");
    assert!(e.starts_with("pvpassctl: error: "), "{e:?}");
    assert!(!e.contains("panicked") && !e.contains("backtrace"), "{e:?}");
    assert_eq!(e.lines().count(), 1, "{e:?}");
}

const ATTACH_OK: [&str; 9] = [
    "attach",
    "--pid",
    "1",
    "--gpa",
    "0xd0000000",
    "--gsi",
    "5",
    "--mac",
    "52:54:00:12:34:56",
];

#[test]
fn help_explains_detach() {
    let o = run(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("SIGTERM") && out.contains("detach"), "{out}");
    assert!(out.contains("pvpassctl detach <id>"), "{out}");
    let o = run(&["detach", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("root"), "{out}");
    let o = run(&["attach", "--help"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("virtio_mmio.device=4K@0xd0000000:7"), "{out}");
    assert!(
        out.contains("level-triggered") && out.contains("resampling"),
        "{out}"
    );
    assert!(out.contains("SIGUSR1"), "{out}");
    assert!(out.contains("--no-irq") && out.contains("irqfd"), "{out}");
}

#[test]
fn usage_errors_exit_2() {
    let mut bad_mac = ATTACH_OK.to_vec();
    bad_mac[8] = "ff:ff:ff:ff:ff:ff";
    let o = run(&bad_mac);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("multicast"));

    let mut bad_gpa = ATTACH_OK.to_vec();
    bad_gpa[4] = "0xd0000100";
    let o = run(&bad_gpa);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("4 KiB aligned"));

    let mut bad_gsi = ATTACH_OK.to_vec();
    bad_gsi[6] = "0";
    assert_eq!(run(&bad_gsi).status.code(), Some(2));

    let mut long_switch = ATTACH_OK.to_vec();
    long_switch.extend(["--switch", "a-very-long-switch-name"]);
    assert_eq!(run(&long_switch).status.code(), Some(2));

    let mut bad_backend = ATTACH_OK.to_vec();
    bad_backend.extend(["--backend", "my switch"]);
    let o = run(&bad_backend);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("A-Z a-z 0-9 _ . -"), "{}", stderr(&o));

    assert_eq!(run(&["detach"]).status.code(), Some(2));
    assert_eq!(run(&[]).status.code(), Some(2));
}

#[test]
fn module_not_loaded() {
    let o = run(&["--device", "/nonexistent/pvpass", "version"]);
    assert_runtime_error(&o, "pvpass module not loaded: insmod pvpass.ko");
    let mut a = vec!["--device", "/nonexistent/pvpass"];
    a.extend(ATTACH_OK);
    assert_runtime_error(&run(&a), "pvpass module not loaded: insmod pvpass.ko");
}

#[test]
fn not_a_pvpass_device() {
    let o = run(&["--device", "/dev/null", "version"]);
    assert_runtime_error(&o, "/dev/null does not answer PVPASS_GET_VERSION");
    for cmd in [&["list"][..], &["stats", "1"], &["detach", "1"]] {
        let mut a = vec!["--device", "/dev/null"];
        a.extend(cmd);
        assert_runtime_error(&run(&a), "/dev/null does not answer PVPASS_GET_VERSION");
    }
}

#[test]
fn admin_commands_without_module() {
    for cmd in [
        &["list"][..],
        &["list", "--json"],
        &["stats", "1"],
        &["stats", "1", "--json"],
        &["detach", "1"],
    ] {
        let mut a = vec!["--device", "/nonexistent/pvpass"];
        a.extend(cmd);
        assert_runtime_error(&run(&a), "pvpass module not loaded: insmod pvpass.ko");
    }
}

#[test]
fn admin_usage_errors_exit_2() {
    assert_eq!(run(&["stats"]).status.code(), Some(2));
    assert_eq!(run(&["stats", "abc"]).status.code(), Some(2));
    assert_eq!(run(&["detach", "-3"]).status.code(), Some(2));
    assert_eq!(run(&["list", "extra"]).status.code(), Some(2));
}

#[test]
fn missing_pid() {
    let mut a = ATTACH_OK.to_vec();
    a[2] = "999999999";
    assert_runtime_error(&run(&a), "process 999999999 does not exist");
}

/// As an unprivileged user, a root-only device gives the root message.
#[test]
fn not_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !std::path::Path::new("/dev/kvm").exists() {
        eprintln!("skipped: needs root and a root-only device node");
        return;
    }
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_pvpassctl"))
        .args(["--device", "/dev/kvm", "version"])
        .output();
    match o {
        Ok(o) if !stderr(&o).contains("setpriv:") => {
            assert_runtime_error(&o, "pvpassctl must run as root")
        }
        _ => eprintln!("skipped: setpriv not usable"),
    }
}

#[test]
fn switch_usage_errors_exit_2() {
    for a in [
        &["switch"][..],
        &["switch", "add"],
        &["switch", "del"],
        &["switch", "add", "a", "b"],
        &["switch", "list", "x"],
        &["switch", "rename", "a"],
    ] {
        assert_eq!(run(a).status.code(), Some(2), "{a:?}");
    }
    for name in ["", "a b", "lab/1", "abcdefghijklmnop"] {
        for op in ["add", "del"] {
            let o = run(&["switch", op, name]);
            assert_eq!(o.status.code(), Some(2), "{op} {name:?}");
            let e = stderr(&o);
            assert!(
                e.contains("a switch name") || e.contains("at most 15"),
                "{e}"
            );
        }
    }
}

#[test]
fn switch_commands_without_module() {
    for cmd in [
        &["switch", "add", "lab"][..],
        &["switch", "del", "lab"],
        &["switch", "list"],
        &["switch", "list", "--json"],
    ] {
        let mut a = vec!["--device", "/nonexistent/pvpass"];
        a.extend(cmd);
        assert_runtime_error(&run(&a), "pvpass module not loaded: insmod pvpass.ko");
        let mut a = vec!["--device", "/dev/null"];
        a.extend(cmd);
        assert_runtime_error(&run(&a), "/dev/null does not answer PVPASS_GET_VERSION");
    }
}

#[test]
fn attach_takes_backend() {
    let mut a = vec!["--device", "/nonexistent/pvpass"];
    a.extend(ATTACH_OK);
    a.extend(["--backend", "lab-1"]);
    // Parsed fine; fails only at the device.
    assert_runtime_error(&run(&a), "pvpass module not loaded: insmod pvpass.ko");
}

/// `vhost-exec` arguments that draw no warning: the NIC names the netdev
/// and has the port's MAC.
const VHOST_OK: [&str; 6] = [
    "--mac",
    "52:54:00:00:00:03",
    "--",
    "qemu-system-x86_64",
    "-device",
    "virtio-net-pci,netdev=pvpass0,mac=52:54:00:00:00:03",
];

fn vhost_exec(pre: &[&str]) -> Output {
    let mut a = vec!["vhost-exec"];
    a.extend(pre);
    a.extend(VHOST_OK);
    run(&a)
}

#[test]
fn vhost_exec_usage_errors_exit_2() {
    let o = vhost_exec(&["--queues", "9"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("at most 8"), "{}", stderr(&o));
    for (mac, why) in [
        ("00:00:00:00:00:00", "all-zero"),
        ("33:33:00:00:00:01", "multicast"),
    ] {
        let o = run(&["vhost-exec", "--mac", mac, "--", "qemu-system-x86_64"]);
        assert_eq!(o.status.code(), Some(2), "{mac}");
        assert!(stderr(&o).contains(why), "{}", stderr(&o));
    }
    let o = run(&["vhost-exec", "--", "qemu-system-x86_64"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--mac <MAC>"), "{}", stderr(&o));
    assert_eq!(
        run(&["vhost-exec", "--mac", "52:54:00:00:00:03"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(vhost_exec(&["--netdev-id", "a,b"]).status.code(), Some(2));
    assert_eq!(vhost_exec(&["--tap", "a/b"]).status.code(), Some(2));
    assert_eq!(vhost_exec(&["--backend", "a b"]).status.code(), Some(2));
}

#[test]
fn vhost_exec_without_module() {
    let o = vhost_exec(&[
        "--device",
        "/nonexistent/pvpass",
        "--vhost-device",
        "/nonexistent/pvpass-vhost-net",
        "--print",
    ]);
    assert_runtime_error(&o, "cannot open /nonexistent/pvpass-vhost-net");
    assert!(stderr(&o).contains("insmod pvpass.ko"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
}

#[test]
fn vhost_exec_on_another_device() {
    let o = vhost_exec(&["--vhost-device", "/dev/null", "--backend", "lab"]);
    assert_runtime_error(&o, "/dev/null does not answer PVPASS_VHOST_SET_PORT");
}

#[test]
fn vhost_exec_warns_about_the_nic() {
    let o = run(&[
        "vhost-exec",
        "--vhost-device",
        "/dev/null",
        "--mac",
        "52:54:00:00:00:03",
        "--",
        "qemu-system-x86_64",
        "-device",
        "virtio-net-pci,netdev=net0",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("pvpassctl: warning: the QEMU arguments have no netdev=pvpass0: add -device virtio-net-pci,netdev=pvpass0,mac=52:54:00:00:00:03"),
        "{e}"
    );
    assert!(e.contains("pvpassctl: error: "), "{e}");
}
