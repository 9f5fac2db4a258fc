//! `pvpassctl switch add|del|list`: the module's named switches
//! (PVPASS_SWITCH_ADD, PVPASS_SWITCH_DEL, PVPASS_SWITCH_LIST).

use crate::admin::{backend_name, json_string, open_versioned};
use crate::device::{require_switches, Device, SwitchOp};
use crate::say;
use crate::uapi::{
    PvpassSwitch, PVPASS_SWITCH_DEFAULT, PVPASS_SWITCH_HOST_PORT, PVPASS_SWITCH_NIC,
};
use anyhow::{anyhow, Result};
use std::fmt::Write as _;
use std::path::Path;

/// The FLAGS cell of a switch: `default`, `host-port`, both joined by a
/// comma, unknown bits as hex, or `-` for none.
pub fn switch_flags(flags: u32) -> String {
    let mut names = Vec::new();
    if flags & PVPASS_SWITCH_DEFAULT != 0 {
        names.push("default".to_owned());
    }
    if flags & PVPASS_SWITCH_HOST_PORT != 0 {
        names.push("host-port".to_owned());
    }
    if flags & PVPASS_SWITCH_NIC != 0 {
        names.push("nic".to_owned());
    }
    let unknown = flags & !(PVPASS_SWITCH_DEFAULT | PVPASS_SWITCH_HOST_PORT | PVPASS_SWITCH_NIC);
    if unknown != 0 {
        names.push(format!("{unknown:#x}"));
    }
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(",")
    }
}

/// The `switch list` table: a header line, then one line per switch in the
/// module's order, columns separated by two spaces and padded to the widest
/// cell.
pub fn switch_table(switches: &[PvpassSwitch]) -> String {
    const HEAD: [&str; 3] = ["NAME", "FLAGS", "PORTS"];
    let rows: Vec<[String; 3]> = switches
        .iter()
        .map(|s| {
            [
                backend_name(&s.name),
                switch_flags(s.flags),
                s.ports.to_string(),
            ]
        })
        .collect();
    let mut width = HEAD.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 3]| {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {}",
            cells[0],
            cells[1],
            cells[2],
            w0 = width[0],
            w1 = width[1]
        );
    };
    line(HEAD);
    for r in &rows {
        line(r.each_ref().map(String::as_str));
    }
    out
}

/// `switch list --json`: an array with one object per switch.
pub fn switch_json(switches: &[PvpassSwitch]) -> String {
    let objs: Vec<String> = switches
        .iter()
        .map(|s| {
            format!(
                "{{\"name\":{},\"flags\":{},\"default\":{},\"host_port\":{},\"ports\":{}}}",
                json_string(&backend_name(&s.name)),
                s.flags,
                s.flags & PVPASS_SWITCH_DEFAULT != 0,
                s.flags & PVPASS_SWITCH_HOST_PORT != 0,
                s.ports
            )
        })
        .collect();
    if objs.is_empty() {
        "[]\n".to_owned()
    } else {
        format!("[\n  {}\n]\n", objs.join(",\n  "))
    }
}

/// Open the device and make sure the module has named switches.
fn open(device: &Path) -> Result<Device> {
    let (dev, v) = open_versioned(device)?;
    require_switches(v.features).map_err(|e| anyhow!(e))?;
    Ok(dev)
}

pub fn run_add(device: &Path, name: &str) -> Result<()> {
    open(device)?.switch_op(SwitchOp::Add, name)?;
    say!("added switch {name}");
    Ok(())
}

pub fn run_del(device: &Path, name: &str) -> Result<()> {
    open(device)?.switch_op(SwitchOp::Del, name)?;
    say!("deleted switch {name}");
    Ok(())
}

pub fn run_list(device: &Path, json: bool) -> Result<()> {
    let switches = open(device)?.switch_list()?;
    let text = if json {
        switch_json(&switches)
    } else {
        switch_table(&switches)
    };
    say!("{}", text.trim_end_matches('\n'));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sw(name: &str, flags: u32, ports: u32) -> PvpassSwitch {
        let mut s = PvpassSwitch {
            flags,
            ports,
            ..Default::default()
        };
        s.name[..name.len()].copy_from_slice(name.as_bytes());
        s
    }

    fn fixture() -> Vec<PvpassSwitch> {
        vec![
            sw(
                "default",
                PVPASS_SWITCH_DEFAULT | PVPASS_SWITCH_HOST_PORT,
                3,
            ),
            sw("lab", 0, 2),
            sw("abcdefghijklmno", 0, 0),
        ]
    }

    #[test]
    fn flags() {
        assert_eq!(switch_flags(0), "-");
        assert_eq!(switch_flags(PVPASS_SWITCH_DEFAULT), "default");
        assert_eq!(switch_flags(PVPASS_SWITCH_HOST_PORT), "host-port");
        assert_eq!(switch_flags(3), "default,host-port");
        assert_eq!(switch_flags(PVPASS_SWITCH_NIC), "nic");
        assert_eq!(switch_flags(2 | 8), "host-port,0x8");
    }

    #[test]
    fn table() {
        assert_eq!(
            switch_table(&fixture()),
            "\
NAME             FLAGS              PORTS
default          default,host-port  3
lab              -                  2
abcdefghijklmno  -                  0
"
        );
        assert_eq!(switch_table(&[]), "NAME  FLAGS  PORTS\n");
    }

    #[test]
    fn json() {
        assert_eq!(
            switch_json(&fixture()[..2]),
            "[\n  {\"name\":\"default\",\"flags\":3,\"default\":true,\"host_port\":true,\
             \"ports\":3},\n  \
             {\"name\":\"lab\",\"flags\":0,\"default\":false,\"host_port\":false,\"ports\":2}\n]\n"
        );
        assert_eq!(switch_json(&[]), "[]\n");
    }

    #[test]
    fn commands_without_module() {
        let p = Path::new("/nonexistent/pvpass");
        for e in [
            run_add(p, "lab").unwrap_err(),
            run_del(p, "lab").unwrap_err(),
            run_list(p, false).unwrap_err(),
        ] {
            assert!(e.to_string().starts_with("pvpass module not loaded"), "{e}");
        }
    }
}
