//! `pvpassctl vhost-rule add|del|list`: the ports of /dev/pvpass-vhost-net
//! files that nobody named, by tap name (PVPASS_VHOST_RULE_ADD, _DEL,
//! _LIST), for libvirt's `<backend vhost='/dev/pvpass-vhost-net'/>`.

use crate::admin::{backend_name, json_string, open_versioned};
use crate::args::{backend_field, tap_field, Mac};
use crate::device::Device;
use crate::say;
use crate::uapi::{
    self, PvpassVhostRule, PvpassVhostRuleList, PVPASS_FEAT_VHOST_RULES, PVPASS_MAX_VHOST_RULES,
};
use anyhow::{anyhow, bail, Result};
use nix::errno::Errno;
use std::fmt::Write as _;
use std::path::Path;

/// What a rule ioctl was asked, for its error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOp {
    Add,
    Del,
    List,
}

/// Message for a failed VHOST_RULE_ADD/DEL/LIST of tap `tap`, one per
/// errno documented in the UAPI header.
pub fn rule_error_message(op: RuleOp, tap: &str, switch: &str, errno: Errno) -> String {
    let verb = match op {
        RuleOp::Add => "vhost-rule add",
        RuleOp::Del => "vhost-rule del",
        RuleOp::List => "vhost-rule list",
    };
    match (op, errno) {
        (_, Errno::EPERM | Errno::EACCES) => {
            format!("{verb} needs root (CAP_SYS_ADMIN) ({errno:?})")
        }
        (RuleOp::Add, Errno::EEXIST) => format!(
            "tap '{tap}' has a rule already (EEXIST): `pvpassctl vhost-rule del --tap {tap}` first"
        ),
        (RuleOp::Add, Errno::ENOSPC) => format!(
            "no room for another rule (ENOSPC): the module keeps {PVPASS_MAX_VHOST_RULES} \
             (PVPASS_MAX_VHOST_RULES)"
        ),
        (RuleOp::Add, Errno::ENODEV) => {
            format!("no switch named '{switch}' (ENODEV): see `pvpassctl switch list`")
        }
        (RuleOp::Del, Errno::ENOENT) => format!("tap '{tap}' has no rule (ENOENT)"),
        (_, Errno::ENOTTY) => format!(
            "the loaded pvpass module does not know vhost rules ({verb}: ENOTTY); load the \
             pvpass.ko built with this tool"
        ),
        (_, e) => format!("the module rejected {verb} ({e:?}: {})", e.desc()),
    }
}

fn open(device: &Path) -> Result<Device> {
    let (dev, v) = open_versioned(device)?;
    if v.features & PVPASS_FEAT_VHOST_RULES == 0 {
        bail!(
            "the loaded pvpass module has no vhost rules (PVPASS_FEAT_VHOST_RULES is not in its \
             features {:#x}); load the pvpass.ko built with this tool",
            v.features
        );
    }
    Ok(dev)
}

/// Every rule of the module, oldest first.
fn list(dev: &Device) -> Result<Vec<PvpassVhostRule>> {
    let room = PVPASS_MAX_VHOST_RULES;
    let mut buf = vec![PvpassVhostRule::default(); room as usize];
    let mut l = PvpassVhostRuleList {
        count: room,
        flags: 0,
        entries: buf.as_mut_ptr() as u64,
    };
    // SAFETY: the fd is open; `l.entries` points to `room` writable entries,
    // which is the count passed in.
    unsafe { uapi::pvpass_vhost_rule_list(dev.raw_fd(), &mut l) }
        .map_err(|e| anyhow!(rule_error_message(RuleOp::List, "", "", e)))?;
    // The module never keeps more than PVPASS_MAX_VHOST_RULES.
    buf.truncate(l.count.min(room) as usize);
    Ok(buf)
}

/// The `vhost-rule list` table.
pub fn rule_table(rules: &[PvpassVhostRule]) -> String {
    let rows: Vec<[String; 3]> = rules
        .iter()
        .map(|r| [backend_name(&r.tap), Mac(r.mac).to_string(), switch_of(r)])
        .collect();
    let mut width = ["TAP".len(), "MAC".len()];
    for r in &rows {
        width[0] = width[0].max(r[0].len());
        width[1] = width[1].max(r[1].len());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<w0$}  {:<w1$}  SWITCH",
        "TAP",
        "MAC",
        w0 = width[0],
        w1 = width[1]
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {}",
            r[0],
            r[1],
            r[2],
            w0 = width[0],
            w1 = width[1]
        );
    }
    out
}

fn switch_of(r: &PvpassVhostRule) -> String {
    match backend_name(&r.backend) {
        s if s.is_empty() => "default".to_owned(),
        s => s,
    }
}

/// `vhost-rule list --json`.
pub fn rule_json(rules: &[PvpassVhostRule]) -> String {
    let objs: Vec<String> = rules
        .iter()
        .map(|r| {
            format!(
                "{{\"tap\":{},\"mac\":\"{}\",\"switch\":{}}}",
                json_string(&backend_name(&r.tap)),
                Mac(r.mac),
                json_string(&switch_of(r))
            )
        })
        .collect();
    if objs.is_empty() {
        "[]\n".to_owned()
    } else {
        format!("[\n  {}\n]\n", objs.join(",\n  "))
    }
}

pub fn run_add(device: &Path, tap: &str, mac: Mac, switch: &str) -> Result<()> {
    let rule = PvpassVhostRule {
        tap: tap_field(tap).map_err(|e| anyhow!(e))?,
        backend: backend_field(switch).map_err(|e| anyhow!(e))?,
        mac: mac.0,
        ..Default::default()
    };
    let dev = open(device)?;
    // SAFETY: the fd is open and `rule` is a valid pvpass_vhost_rule whose
    // pad, flags and reserved fields are zero.
    unsafe { uapi::pvpass_vhost_rule_add(dev.raw_fd(), &rule) }
        .map_err(|e| anyhow!(rule_error_message(RuleOp::Add, tap, switch, e)))?;
    let shown = if switch.is_empty() { "default" } else { switch };
    say!("vhost rule: tap {tap} is port {mac} of switch {shown}");
    Ok(())
}

pub fn run_del(device: &Path, tap: &str) -> Result<()> {
    let rule = PvpassVhostRule {
        tap: tap_field(tap).map_err(|e| anyhow!(e))?,
        ..Default::default()
    };
    let dev = open(device)?;
    // SAFETY: the fd is open and `rule` is a valid pvpass_vhost_rule.
    unsafe { uapi::pvpass_vhost_rule_del(dev.raw_fd(), &rule) }
        .map_err(|e| anyhow!(rule_error_message(RuleOp::Del, tap, "", e)))?;
    say!("deleted the vhost rule of tap {tap}");
    Ok(())
}

pub fn run_list(device: &Path, json: bool) -> Result<()> {
    let rules = list(&open(device)?)?;
    let text = if json {
        rule_json(&rules)
    } else {
        rule_table(&rules)
    };
    say!("{}", text.trim_end_matches('\n'));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(tap: &str, mac: [u8; 6], switch: &str) -> PvpassVhostRule {
        PvpassVhostRule {
            tap: tap_field(tap).unwrap(),
            backend: backend_field(switch).unwrap(),
            mac,
            ..Default::default()
        }
    }

    #[test]
    fn table_and_json() {
        let rules = [
            rule("pvp-vm1", [0x52, 0x54, 0, 0x12, 0x34, 0x56], ""),
            rule("t", [2, 0, 0, 0, 0, 1], "lab"),
        ];
        assert_eq!(
            rule_table(&rules),
            "\
TAP      MAC                SWITCH
pvp-vm1  52:54:00:12:34:56  default
t        02:00:00:00:00:01  lab
"
        );
        assert_eq!(rule_table(&[]), "TAP  MAC  SWITCH\n");
        assert_eq!(
            rule_json(&rules[1..]),
            "[\n  {\"tap\":\"t\",\"mac\":\"02:00:00:00:00:01\",\"switch\":\"lab\"}\n]\n"
        );
        assert_eq!(rule_json(&[]), "[]\n");
    }

    #[test]
    fn messages() {
        let m = rule_error_message(RuleOp::Add, "pvp-vm1", "", Errno::EEXIST);
        assert!(m.contains("vhost-rule del --tap pvp-vm1"), "{m}");
        let m = rule_error_message(RuleOp::Add, "x", "lab", Errno::ENODEV);
        assert!(m.contains("no switch named 'lab'"), "{m}");
        let m = rule_error_message(RuleOp::Del, "x", "", Errno::ENOENT);
        assert!(m.contains("has no rule"), "{m}");
        let m = rule_error_message(RuleOp::List, "", "", Errno::EPERM);
        assert!(m.contains("needs root"), "{m}");
    }

    #[test]
    fn commands_without_module() {
        let p = Path::new("/nonexistent/pvpass");
        let mac = Mac([2, 0, 0, 0, 0, 1]);
        for e in [
            run_add(p, "t", mac, "").unwrap_err(),
            run_del(p, "t").unwrap_err(),
            run_list(p, false).unwrap_err(),
        ] {
            assert!(e.to_string().starts_with("pvpass module not loaded"), "{e}");
        }
    }
}
