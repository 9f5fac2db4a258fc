//! `pvpassctl acpi-table` end to end: the file it writes, its stdout and its
//! errors (no module needed).

use std::process::{Command, Output, Stdio};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pvpassctl"))
        .arg("acpi-table")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pvpassctl")
}

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |s, &x| s.wrapping_add(x))
}

#[test]
fn writes_the_table_to_a_file_and_to_stdout() {
    let dir = std::env::temp_dir().join(format!("pvpass-acpi-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pvpass.aml");
    let p = path.to_str().unwrap();
    let o = run(&["--gpa", "0xd0000000", "--gsi", "7", "-o", p]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.trim_end(),
        format!(
            "wrote SSDT of 104 bytes to {p}: PVP0 gpa=0xd0000000 gsi=7 trigger=edge \
             (QEMU: -acpitable file={p})"
        )
    );
    let file = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(file.len(), 104);
    assert_eq!(&file[..4], b"SSDT");
    assert_eq!(sum(&file), 0);

    // Without -o the table goes to stdout (a pipe here), and nothing else.
    let o = run(&["--gpa", "0xd0000000", "--gsi", "7"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(o.stdout, file);
    assert!(o.stderr.is_empty());

    let o = run(&[
        "--gpa",
        "0xd0000000",
        "--gsi",
        "7",
        "--gpa",
        "0xd0001000",
        "--gsi",
        "9",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(sum(&o.stdout), 0);
    assert_eq!(o.stdout.len(), 104 + 60);
    assert!(o.stdout.windows(4).any(|w| w == b"PVP1"));
}

#[test]
fn usage_errors_exit_2() {
    for (args, want) in [
        (&["--gpa", "0xd0000000"][..], "--gsi <GSI>"),
        (&["--gpa", "0x100000000", "--gsi", "7"][..], "below 4 GiB"),
        (
            &["--gpa", "0xd0000004", "--gsi", "7"][..],
            "not 4 KiB aligned",
        ),
        (
            &["--gpa", "0xd0000000", "--gsi", "7", "--gsi", "8"][..],
            "1 --gpa but 2 --gsi",
        ),
        (
            &[
                "--gpa",
                "0xd0000000",
                "--gpa",
                "0xd0000000",
                "--gsi",
                "7",
                "--gsi",
                "8",
            ][..],
            "the window at 0xd0000000 is given twice",
        ),
        (
            &[
                "--gpa",
                "0xd0000000",
                "--gpa",
                "0xd0001000",
                "--gsi",
                "7",
                "--gsi",
                "7",
            ][..],
            "GSI 7 is given twice",
        ),
    ] {
        let o = run(args);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.contains(want), "{args:?}: {want:?} not in {e}");
        assert!(e.starts_with("error: ") && e.contains("--help"), "{e}");
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn cannot_write_is_a_runtime_error() {
    let o = run(&[
        "--gpa",
        "0xd0000000",
        "--gsi",
        "7",
        "-o",
        "/nonexistent/dir/t.aml",
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.starts_with("pvpassctl: error: cannot write /nonexistent/dir/t.aml"),
        "{e}"
    );
}
