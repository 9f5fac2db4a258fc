//! `pvpassctl list`, `stats <id>` and `detach <id>`: look at and end
//! attachments, whichever process made them.

use crate::args::Mac;
use crate::device::Device;
use crate::say;
use crate::uapi::{
    PvpassInfo, PvpassStats, PvpassVersion, PVPASS_FEAT_COUNTERS, PVPASS_INFO_RELEASED,
    PVPASS_INFO_VHOST, PVPASS_MAX_ATTACH,
};
use anyhow::Result;
use std::fmt::Write as _;
use std::path::Path;

/// The switch name of a NUL-padded backend field.
pub fn backend_name(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

pub fn state(info: &PvpassInfo) -> &'static str {
    if info.flags & PVPASS_INFO_RELEASED != 0 {
        "released"
    } else {
        "live"
    }
}

/// The cells of one `list` row, in column order.
fn row(i: &PvpassInfo) -> [String; 7] {
    let switch = backend_name(&i.backend);
    let vhost = i.flags & PVPASS_INFO_VHOST != 0;
    [
        i.id.to_string(),
        if i.owner_pid > 0 {
            i.owner_pid.to_string()
        } else {
            "-".to_owned()
        },
        // A vhost device has no window and no GSI: QEMU emulates its PCI
        // function and MSI-X.
        if vhost {
            "vhost".to_owned()
        } else {
            format!("{:#x}", i.gpa)
        },
        if vhost {
            "msi-x".to_owned()
        } else {
            i.gsi.to_string()
        },
        Mac(i.mac).to_string(),
        if switch.is_empty() {
            "-".into()
        } else {
            switch
        },
        state(i).to_owned(),
    ]
}

/// The `list` table: a header line, then one line per attachment, columns
/// separated by two spaces and padded to the widest cell.
pub fn list_table(infos: &[PvpassInfo]) -> String {
    const HEAD: [&str; 7] = ["ID", "OWNER", "GPA", "GSI", "MAC", "SWITCH", "STATE"];
    let rows: Vec<[String; 7]> = infos.iter().map(row).collect();
    let mut width = HEAD.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (k, (c, w)) in cells.iter().zip(width).enumerate() {
            if k + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        out.push_str(&l);
        out.push('\n');
    };
    line(&HEAD);
    for r in &rows {
        line(&r.each_ref().map(String::as_str));
    }
    out
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `list --json`: an array with one object per attachment.
pub fn list_json(infos: &[PvpassInfo]) -> String {
    let objs: Vec<String> = infos
        .iter()
        .map(|i| {
            format!(
                "{{\"id\":{},\"owner_pid\":{},\"gpa\":{},\"gsi\":{},\"mac\":{},\"switch\":{},\
                 \"state\":{}}}",
                i.id,
                i.owner_pid,
                i.gpa,
                i.gsi,
                json_string(&Mac(i.mac).to_string()),
                json_string(&backend_name(&i.backend)),
                json_string(state(i)),
            )
        })
        .collect();
    if objs.is_empty() {
        "[]\n".to_owned()
    } else {
        format!("[\n  {}\n]\n", objs.join(",\n  "))
    }
}

/// Every field of `struct pvpass_stats` but `flags` (an input), by its C
/// name, in the header's order.
pub fn stats_fields(s: &PvpassStats) -> [(&'static str, u64); 32] {
    [
        ("id", s.id.into()),
        ("mmio_reads", s.mmio_reads),
        ("mmio_writes", s.mmio_writes),
        ("mmio_bad", s.mmio_bad),
        ("notifies", s.notifies),
        ("interrupts", s.interrupts),
        ("tx_frames", s.tx_frames),
        ("tx_bytes", s.tx_bytes),
        ("rx_frames", s.rx_frames),
        ("rx_bytes", s.rx_bytes),
        ("drop_tx_bad_chain", s.drop_tx_bad_chain),
        ("drop_tx_bad_buffer", s.drop_tx_bad_buffer),
        ("drop_rx_no_buffer", s.drop_rx_no_buffer),
        ("drop_rx_too_small", s.drop_rx_too_small),
        ("released", s.released),
        ("drop_tx_bad_hdr", s.drop_tx_bad_hdr),
        ("drop_rx_no_offload", s.drop_rx_no_offload),
        ("tx_gso_frames", s.tx_gso_frames),
        ("rx_gso_frames", s.rx_gso_frames),
        ("rx_csum_completed", s.rx_csum_completed),
        ("drop_tx_spoofed", s.drop_tx_spoofed),
        ("pages_pinned", s.pages_pinned),
        ("pin_hits", s.pin_hits),
        ("pin_misses", s.pin_misses),
        ("rx_direct", s.rx_direct),
        ("rx_deferred", s.rx_deferred),
        ("drop_rx_pin_failed", s.drop_rx_pin_failed),
        ("map_rereads", s.map_rereads),
        ("irq_resamples", s.irq_resamples),
        ("tx_yields", s.tx_yields),
        ("drop_tx_storm", s.drop_tx_storm),
        ("drop_rx_scattered", s.drop_rx_scattered),
    ]
}

/// Width of the name column of `stats`: that of the longest name of
/// `struct pvpass_stats` (18), so the lines of those counters are the same
/// whether they come from GET_STATS or GET_COUNTERS. A longer (newer) name
/// is followed by a single space.
pub fn stats_name_width() -> usize {
    stats_fields(&PvpassStats::default())
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(0)
}

/// The `stats` fields from GET_COUNTERS: `id` first (as GET_STATS gives
/// it), then every counter in the module's order. A name seen before (`id`,
/// or one the module repeats) is left out, so that the JSON object has each
/// key once.
pub fn counters_fields(id: u32, counters: &[(String, u64)]) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::with_capacity(counters.len() + 1);
    out.push(("id".to_owned(), id.into()));
    for (n, v) in counters {
        if !out.iter().any(|(seen, _)| seen == n) {
            out.push((n.clone(), *v));
        }
    }
    out
}

/// The `stats` fields from GET_STATS (a module without GET_COUNTERS).
pub fn legacy_fields(s: &PvpassStats) -> Vec<(String, u64)> {
    stats_fields(s)
        .iter()
        .map(|&(n, v)| (n.to_owned(), v))
        .collect()
}

/// `stats <id>`: one `name value` line per field, values aligned.
pub fn fields_text(fields: &[(String, u64)]) -> String {
    let w = stats_name_width();
    fields
        .iter()
        .map(|(n, v)| format!("{n:<w$} {v}\n"))
        .collect()
}

/// `stats <id> --json`: one flat object, no spaces, in the fields' order
/// (scripts/guest-demo.sh matches `"notifies":N,"interrupts":N,...`).
pub fn fields_json(fields: &[(String, u64)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(n, v)| format!("{}:{v}", json_string(n)))
        .collect();
    format!("{{{}}}\n", body.join(","))
}

/// Print without a trailing extra newline (the texts end with one).
fn emit(text: &str) {
    say!("{}", text.trim_end_matches('\n'));
}

/// Open the device and ask GET_VERSION first: a device that is no pvpass at
/// all is named as such before any newer ioctl is tried.
pub fn open_versioned(device: &Path) -> Result<(Device, PvpassVersion)> {
    let dev = Device::open(device)?;
    let v = dev.version()?;
    Ok((dev, v))
}

fn open(device: &Path) -> Result<(Device, u32)> {
    let (dev, v) = open_versioned(device)?;
    Ok((dev, v.max_attach.max(PVPASS_MAX_ATTACH)))
}

pub fn run_list(device: &Path, json: bool) -> Result<()> {
    let (dev, room) = open(device)?;
    let infos = dev.list(room)?;
    emit(&if json {
        list_json(&infos)
    } else {
        list_table(&infos)
    });
    Ok(())
}

/// Every counter of attachment `id`: by name with GET_COUNTERS when the
/// module has it, else the frozen struct of GET_STATS.
fn stats_of(dev: &Device, features: u32, id: u32) -> Result<Vec<(String, u64)>> {
    if features & PVPASS_FEAT_COUNTERS != 0 {
        if let Some(c) = dev.counters_any(id)? {
            return Ok(counters_fields(id, &c));
        }
    }
    Ok(legacy_fields(&dev.stats_any(id)?))
}

pub fn run_stats(device: &Path, id: u32, json: bool) -> Result<()> {
    let (dev, v) = open_versioned(device)?;
    let fields = stats_of(&dev, v.features, id)?;
    emit(&if json {
        fields_json(&fields)
    } else {
        fields_text(&fields)
    });
    Ok(())
}

pub fn run_detach(device: &Path, id: u32) -> Result<()> {
    let (dev, room) = open(device)?;
    // Best effort, to name the owner in the report; DETACH decides.
    let owner = dev
        .list(room)
        .ok()
        .and_then(|l| l.into_iter().find(|i| i.id == id))
        .map(|i| i.owner_pid);
    dev.detach_any(id)?;
    say!("{}", detach_report(id, owner));
    Ok(())
}

/// What `detach` prints: the module released the VM; the owner (a
/// `pvpassctl attach` process) sees released=1, frees the husk and exits.
pub fn detach_report(id: u32, owner: Option<i32>) -> String {
    match owner {
        Some(pid) if pid > 0 => format!("detached id={id} (owner pid {pid})"),
        _ => format!("detached id={id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `stats <id>` from GET_STATS.
    fn stats_text(s: &PvpassStats) -> String {
        fields_text(&legacy_fields(s))
    }

    /// `stats <id> --json` from GET_STATS.
    fn stats_json(s: &PvpassStats) -> String {
        fields_json(&legacy_fields(s))
    }

    fn info(id: u32, pid: i32, gpa: u64, gsi: u32, last: u8, sw: &str, flags: u32) -> PvpassInfo {
        let mut backend = [0u8; 16];
        backend[..sw.len()].copy_from_slice(sw.as_bytes());
        PvpassInfo {
            id,
            flags,
            owner_pid: pid,
            gsi,
            gpa,
            mac: [0x52, 0x54, 0, 0, 0, last],
            backend,
            ..Default::default()
        }
    }

    fn fixture() -> Vec<PvpassInfo> {
        vec![
            info(1, 4242, 0xd000_0000, 5, 1, "default", 0),
            info(2, 4250, 0xd000_1000, 6, 2, "sw-lab", 0),
            info(12, 4301, 0xd000_0000, 5, 3, "default", PVPASS_INFO_RELEASED),
        ]
    }

    #[test]
    fn table() {
        assert_eq!(
            list_table(&fixture()),
            "\
ID  OWNER  GPA         GSI  MAC                SWITCH   STATE
1   4242   0xd0000000  5    52:54:00:00:00:01  default  live
2   4250   0xd0001000  6    52:54:00:00:00:02  sw-lab   live
12  4301   0xd0000000  5    52:54:00:00:00:03  default  released
"
        );
        assert_eq!(list_table(&[]), "ID  OWNER  GPA  GSI  MAC  SWITCH  STATE\n");
        // An empty name and an unknown owner show as "-"; extra flag bits
        // do not change the state.
        let t = list_table(&[info(3, 0, 0x1000, 9, 4, "", 0x4)]);
        assert_eq!(
            t.lines().nth(1).unwrap(),
            "3   -      0x1000  9    52:54:00:00:00:04  -       live"
        );
        // A vhost device: no window, no GSI.
        let t = list_table(&[info(1 << 30, 77, 0, 0, 5, "default", PVPASS_INFO_VHOST)]);
        assert_eq!(
            t.lines().nth(1).unwrap(),
            "1073741824  77     vhost  msi-x  52:54:00:00:00:05  default  live"
        );
    }

    #[test]
    fn json_list() {
        assert_eq!(
            list_json(&fixture()[..2]),
            "[\n  {\"id\":1,\"owner_pid\":4242,\"gpa\":3489660928,\"gsi\":5,\
             \"mac\":\"52:54:00:00:00:01\",\"switch\":\"default\",\"state\":\"live\"},\n  \
             {\"id\":2,\"owner_pid\":4250,\"gpa\":3489665024,\"gsi\":6,\
             \"mac\":\"52:54:00:00:00:02\",\"switch\":\"sw-lab\",\"state\":\"live\"}\n]\n"
        );
        assert_eq!(list_json(&[]), "[]\n");
    }

    #[test]
    fn json_strings() {
        assert_eq!(json_string("sw0"), "\"sw0\"");
        assert_eq!(
            json_string("a\"b\\c\nd\u{1}é"),
            "\"a\\\"b\\\\c\\u000ad\\u0001é\""
        );
    }

    #[test]
    fn backend_names() {
        assert_eq!(backend_name(b"default\0\0\0\0\0\0\0\0\0"), "default");
        assert_eq!(backend_name(b"0123456789abcdef"), "0123456789abcdef");
        assert_eq!(backend_name(&[0; 16]), "");
        assert_eq!(backend_name(b"a\xffb\0"), "a\u{fffd}b");
    }

    fn stats() -> PvpassStats {
        PvpassStats {
            id: 12,
            mmio_reads: 118,
            mmio_writes: 37,
            notifies: 52,
            interrupts: 49,
            tx_frames: 20,
            tx_bytes: 1856,
            rx_frames: 31,
            rx_bytes: 2942,
            drop_rx_no_buffer: 2,
            released: 1,
            tx_gso_frames: 3,
            rx_gso_frames: 4,
            rx_csum_completed: 5,
            ..Default::default()
        }
    }

    #[test]
    fn stats_lines() {
        assert_eq!(
            stats_text(&stats()),
            "\
id                 12
mmio_reads         118
mmio_writes        37
mmio_bad           0
notifies           52
interrupts         49
tx_frames          20
tx_bytes           1856
rx_frames          31
rx_bytes           2942
drop_tx_bad_chain  0
drop_tx_bad_buffer 0
drop_rx_no_buffer  2
drop_rx_too_small  0
released           1
drop_tx_bad_hdr    0
drop_rx_no_offload 0
tx_gso_frames      3
rx_gso_frames      4
rx_csum_completed  5
drop_tx_spoofed    0
pages_pinned       0
pin_hits           0
pin_misses         0
rx_direct          0
rx_deferred        0
drop_rx_pin_failed 0
map_rereads        0
irq_resamples      0
tx_yields          0
drop_tx_storm      0
drop_rx_scattered  0
"
        );
    }

    #[test]
    fn stats_as_json() {
        assert_eq!(
            stats_json(&stats()),
            "{\"id\":12,\"mmio_reads\":118,\"mmio_writes\":37,\"mmio_bad\":0,\"notifies\":52,\
             \"interrupts\":49,\"tx_frames\":20,\"tx_bytes\":1856,\"rx_frames\":31,\
             \"rx_bytes\":2942,\"drop_tx_bad_chain\":0,\"drop_tx_bad_buffer\":0,\
             \"drop_rx_no_buffer\":2,\"drop_rx_too_small\":0,\"released\":1,\
             \"drop_tx_bad_hdr\":0,\"drop_rx_no_offload\":0,\"tx_gso_frames\":3,\
             \"rx_gso_frames\":4,\"rx_csum_completed\":5,\"drop_tx_spoofed\":0,\
             \"pages_pinned\":0,\"pin_hits\":0,\"pin_misses\":0,\"rx_direct\":0,\
             \"rx_deferred\":0,\"drop_rx_pin_failed\":0,\"map_rereads\":0,\"irq_resamples\":0,\
             \"tx_yields\":0,\"drop_tx_storm\":0,\"drop_rx_scattered\":0}\n"
        );
    }

    /// What GET_COUNTERS reports for `stats()`: the struct's counters in its
    /// order (no id), then newer ones.
    fn counters() -> Vec<(String, u64)> {
        let mut c: Vec<(String, u64)> = stats_fields(&stats())[1..]
            .iter()
            .map(|&(n, v)| (n.to_owned(), v))
            .collect();
        c.push(("rx_frames_multicast_filtered".to_owned(), 7));
        c.push(("tx_kicks".to_owned(), 8));
        c
    }

    /// From GET_COUNTERS, the lines of today's counters are those of
    /// GET_STATS, byte for byte; the newer ones follow in the module's order.
    #[test]
    fn counters_text_keeps_the_old_lines() {
        let text = fields_text(&counters_fields(12, &counters()));
        let old = stats_text(&stats());
        assert!(text.starts_with(&old), "{text}");
        assert_eq!(
            &text[old.len()..],
            "rx_frames_multicast_filtered 7\ntx_kicks           8\n"
        );
        assert_eq!(stats_name_width(), 18);
    }

    #[test]
    fn counters_json_keeps_the_old_keys() {
        let json = fields_json(&counters_fields(12, &counters()));
        let old = stats_json(&stats());
        // Same object, two more keys at its end.
        assert_eq!(
            json,
            format!(
                "{},\"rx_frames_multicast_filtered\":7,\"tx_kicks\":8}}\n",
                old.trim_end_matches("}\n")
            )
        );
        // What scripts/guest-demo.sh matches.
        assert!(json.contains(
            "\"notifies\":52,\"interrupts\":49,\"tx_frames\":20,\"tx_bytes\":1856,\
             \"rx_frames\":31,"
        ));
    }

    #[test]
    fn counters_fields_put_id_first_and_drop_repeats() {
        let c = vec![
            ("mmio_reads".to_owned(), 1),
            ("id".to_owned(), 99),
            ("mmio_reads".to_owned(), 2),
            ("new_one".to_owned(), 3),
        ];
        assert_eq!(
            counters_fields(5, &c),
            vec![
                ("id".to_owned(), 5),
                ("mmio_reads".to_owned(), 1),
                ("new_one".to_owned(), 3),
            ]
        );
        assert_eq!(counters_fields(5, &[]), vec![("id".to_owned(), 5)]);
        assert_eq!(fields_json(&counters_fields(5, &[])), "{\"id\":5}\n");
        assert_eq!(
            fields_text(&counters_fields(5, &[])),
            "id                 5\n"
        );
        // A name that would break the JSON is escaped.
        assert_eq!(fields_json(&[("a\"b".to_owned(), 1)]), "{\"a\\\"b\":1}\n");
    }

    /// Every u64 counter of the struct is in `stats_fields`: the struct is
    /// the id/flags header and the listed counters, nothing reserved.
    #[test]
    fn stats_fields_cover_the_struct() {
        let n = stats_fields(&PvpassStats::default()).len();
        assert_eq!(8 + (n - 1) * 8, std::mem::size_of::<PvpassStats>());
    }

    #[test]
    fn detach_reports() {
        assert_eq!(
            detach_report(3, Some(4242)),
            "detached id=3 (owner pid 4242)"
        );
        assert_eq!(detach_report(3, None), "detached id=3");
        assert_eq!(detach_report(3, Some(0)), "detached id=3");
    }
}
