//! Pure parsing and validation of command-line values.
//!
//! These functions are used as clap `value_parser`s, so their error strings
//! are what the user sees after "invalid value '...' for '--x <X>': ".

use crate::uapi::{PVPASS_NAME_LEN, PVPASS_WINDOW_SIZE};
use std::fmt;

/// A unicast, non-zero Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// Parse `aa:bb:cc:dd:ee:ff` (also accepts `-` as separator). Rejects the
/// zero address and multicast/broadcast addresses, which the module refuses.
pub fn parse_mac(s: &str) -> Result<Mac, String> {
    let sep = if s.contains('-') { '-' } else { ':' };
    let parts: Vec<&str> = s.split(sep).collect();
    if parts.len() != 6 {
        return Err("expected six hex bytes like 52:54:00:12:34:56".into());
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(&parts) {
        if part.is_empty() || part.len() > 2 || !part.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "'{part}' is not a hex byte (expected six hex bytes like 52:54:00:12:34:56)"
            ));
        }
        *byte = u8::from_str_radix(part, 16).map_err(|e| e.to_string())?;
    }
    if mac == [0; 6] {
        return Err("the all-zero MAC address cannot be used".into());
    }
    if mac[0] & 1 != 0 {
        return Err(format!(
            "{} is a multicast address (low bit of the first byte set); \
             a NIC needs a unicast address, e.g. 52:54:00:xx:xx:xx",
            Mac(mac)
        ));
    }
    Ok(Mac(mac))
}

/// Parse an unsigned 64-bit number given as `0x...` hex or decimal
/// (underscores allowed as digit separators).
pub fn parse_u64(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let r = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else {
        t.parse::<u64>()
    };
    r.map_err(|e| format!("'{s}' is not a number (hex with 0x, or decimal): {e}"))
}

/// Parse the guest-physical base of the device window: 4 KiB aligned and the
/// whole window below 2^64.
pub fn parse_gpa(s: &str) -> Result<u64, String> {
    let gpa = parse_u64(s)?;
    if gpa % PVPASS_WINDOW_SIZE != 0 {
        return Err(format!("GPA {gpa:#x} is not 4 KiB aligned"));
    }
    if gpa.checked_add(PVPASS_WINDOW_SIZE).is_none() {
        return Err(format!("the 4 KiB window at {gpa:#x} wraps past 2^64"));
    }
    Ok(gpa)
}

/// Parse the guest interrupt line: a positive integer (GSI 0 is the timer).
pub fn parse_gsi(s: &str) -> Result<u32, String> {
    let gsi = parse_u64(s)?;
    if gsi == 0 {
        return Err("GSI must be greater than 0".into());
    }
    u32::try_from(gsi).map_err(|_| format!("GSI {gsi} is too large"))
}

/// What a switch name may be, as the UAPI header says.
pub const SWITCH_NAME_RULE: &str = "1 to 15 characters of A-Z a-z 0-9 _ . -";

/// Validate a switch name as the UAPI header defines it: 1 to
/// `PVPASS_NAME_LEN - 1` (15) characters of `[A-Za-z0-9_.-]`, so that it
/// stays NUL-terminated in the 16-byte field. Used by `switch add` and
/// `switch del`.
pub fn parse_switch_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err(format!(
            "a switch name cannot be empty; it is {SWITCH_NAME_RULE}"
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "switch name '{}' contains {c:?}; a switch name is {SWITCH_NAME_RULE}",
            s.escape_debug()
        ));
    }
    if s.len() >= PVPASS_NAME_LEN {
        return Err(format!(
            "switch name '{s}' is {} characters, at most {} are allowed \
             (a switch name is {SWITCH_NAME_RULE})",
            s.len(),
            PVPASS_NAME_LEN - 1
        ));
    }
    Ok(s.to_owned())
}

/// Validate the switch an attached device becomes a port of (`attach
/// --switch`/`--backend`): a switch name, or empty for the module's default
/// switch.
pub fn parse_switch(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Ok(String::new())
    } else {
        parse_switch_name(s)
    }
}

/// `name` (checked to be shorter than the field) NUL-padded.
fn name_field(name: &str) -> [u8; PVPASS_NAME_LEN] {
    let mut field = [0u8; PVPASS_NAME_LEN];
    field[..name.len()].copy_from_slice(name.as_bytes());
    field
}

/// The NUL-padded name field of `struct pvpass_switch`.
pub fn switch_name_field(name: &str) -> Result<[u8; PVPASS_NAME_LEN], String> {
    parse_switch_name(name).map(|n| name_field(&n))
}

/// A vhost rule's tap: an interface name as `parse_tap_name` checks it,
/// not empty and without `%d` (the rule names one interface).
pub fn parse_rule_tap(s: &str) -> Result<String, String> {
    let name = parse_tap_name(s)?;
    if name.is_empty() || name.contains('%') {
        return Err(format!(
            "a rule's tap is one interface's name, not '{}'",
            s.escape_debug()
        ));
    }
    Ok(name)
}

/// The NUL-padded tap field of `struct pvpass_vhost_rule`.
pub fn tap_field(name: &str) -> Result<[u8; PVPASS_NAME_LEN], String> {
    parse_rule_tap(name).map(|n| name_field(&n))
}

/// The NUL-padded backend field of `struct pvpass_attach`.
pub fn backend_field(name: &str) -> Result<[u8; PVPASS_NAME_LEN], String> {
    parse_switch(name).map(|n| name_field(&n))
}

/// Queue pairs a pvpass vhost port may have (the module's MAX_QUEUE_PAIRS).
pub const MAX_QUEUE_PAIRS: u32 = 8;

/// `vhost-exec --queues`: the number of queue pairs of the NIC, 1 to 8.
pub fn parse_queues(s: &str) -> Result<u32, String> {
    match parse_u64(s)? {
        0 => Err("a NIC has at least 1 queue pair".into()),
        n if n <= u64::from(MAX_QUEUE_PAIRS) => Ok(n as u32),
        _ => Err(format!("at most {MAX_QUEUE_PAIRS} queue pairs")),
    }
}

/// `vhost-exec --netdev-id`: a QEMU id (QEMU's `id_wellformed`): a letter,
/// then letters, digits, `-`, `.` and `_`. It goes into a `-netdev`
/// option, so a comma or `=` must not get in.
pub fn parse_netdev_id(s: &str) -> Result<String, String> {
    const RULE: &str = "a QEMU id is a letter followed by letters, digits, - . _";
    match s.chars().next() {
        None => return Err(format!("the netdev id cannot be empty; {RULE}")),
        Some(c) if !c.is_ascii_alphabetic() => {
            return Err(format!(
                "netdev id '{}' does not start with a letter; {RULE}",
                s.escape_debug()
            ))
        }
        Some(_) => {}
    }
    if let Some(c) = s
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        return Err(format!(
            "netdev id '{}' contains {c:?}; {RULE}",
            s.escape_debug()
        ));
    }
    Ok(s.to_owned())
}

/// Size of a Linux interface name, NUL included.
pub const IFNAMSIZ: usize = 16;

/// `vhost-exec --tap`: a Linux interface name as the kernel accepts it
/// (`dev_valid_name`): at most 15 bytes, not `.` or `..`, no `/`, `:` or
/// white space; it may hold a `%d` for the kernel to fill in. Empty: the
/// kernel picks the name (tapN).
pub fn parse_tap_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Ok(String::new());
    }
    if s.len() >= IFNAMSIZ {
        return Err(format!(
            "interface name '{s}' is {} bytes, at most {} are allowed",
            s.len(),
            IFNAMSIZ - 1
        ));
    }
    if s == "." || s == ".." {
        return Err(format!("'{s}' cannot be an interface name"));
    }
    if let Some(c) = s
        .chars()
        .find(|&c| matches!(c, '/' | ':' | '\0') || c.is_whitespace())
    {
        return Err(format!(
            "interface name '{}' contains {c:?} (no /, : or white space)",
            s.escape_debug()
        ));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_ok() {
        assert_eq!(
            parse_mac("52:54:00:12:34:56"),
            Ok(Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]))
        );
        assert_eq!(
            parse_mac("02-AA-bb-0-1-ff"),
            Ok(Mac([0x02, 0xaa, 0xbb, 0x00, 0x01, 0xff]))
        );
        assert_eq!(
            Mac([0x52, 0x54, 0, 1, 0xa, 0xff]).to_string(),
            "52:54:00:01:0a:ff"
        );
    }

    #[test]
    fn mac_rejects_bad_syntax() {
        for bad in [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:56:78",
            "52:54:00:12:34:5g",
            "52:54:00:12:34:",
            "525:54:00:12:34:56",
            "52:54:00:12:34:+5",
            "52:54-00:12:34:56",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn mac_rejects_zero_and_multicast() {
        assert!(parse_mac("00:00:00:00:00:00").unwrap_err().contains("zero"));
        assert!(parse_mac("01:00:5e:00:00:01")
            .unwrap_err()
            .contains("multicast"));
        assert!(parse_mac("ff:ff:ff:ff:ff:ff")
            .unwrap_err()
            .contains("multicast"));
        assert!(parse_mac("33:33:00:00:00:01")
            .unwrap_err()
            .contains("multicast"));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("0xd0000000"), Ok(0xd000_0000));
        assert_eq!(parse_u64("0XD000_0000"), Ok(0xd000_0000));
        assert_eq!(parse_u64("3489660928"), Ok(0xd000_0000));
        assert!(parse_u64("0x").is_err());
        assert!(parse_u64("-1").is_err());
        assert!(parse_u64("12abc").is_err());
        assert!(parse_u64("0x1_0000_0000_0000_0000").is_err());
    }

    #[test]
    fn gpa() {
        assert_eq!(parse_gpa("0xd0000000"), Ok(0xd000_0000));
        assert_eq!(parse_gpa("4096"), Ok(4096));
        assert_eq!(parse_gpa("0"), Ok(0));
        assert!(parse_gpa("0xd0000800").unwrap_err().contains("aligned"));
        assert!(parse_gpa("4095").unwrap_err().contains("aligned"));
        assert!(parse_gpa("0xfffffffffffff000")
            .unwrap_err()
            .contains("wraps"));
        assert_eq!(parse_gpa("0xffffffffffffe000"), Ok(0xffff_ffff_ffff_e000));
    }

    #[test]
    fn gsi() {
        assert_eq!(parse_gsi("5"), Ok(5));
        assert_eq!(parse_gsi("0x10"), Ok(16));
        assert!(parse_gsi("0").unwrap_err().contains("greater than 0"));
        assert!(parse_gsi("4294967296").unwrap_err().contains("too large"));
        assert!(parse_gsi("five").is_err());
    }

    #[test]
    fn switch_names() {
        assert_eq!(parse_switch("br0"), Ok("br0".into()));
        assert_eq!(parse_switch(""), Ok(String::new()));
        assert_eq!(
            parse_switch("abcdefghijklmno"),
            Ok("abcdefghijklmno".into())
        );
        assert!(parse_switch("abcdefghijklmnop")
            .unwrap_err()
            .contains("at most 15"));
        assert!(parse_switch("a b").is_err());
        assert!(parse_switch("a\0b").is_err());
        assert!(parse_switch("sw\u{e9}").is_err());
    }

    #[test]
    fn switch_names_follow_the_header() {
        for ok in [
            "default",
            "lab",
            "a",
            "A-Z_a.z-09",
            "...",
            "-x",
            "abcdefghijklmno",
        ] {
            assert_eq!(parse_switch_name(ok), Ok(ok.to_owned()), "{ok:?}");
        }
        let e = parse_switch_name("").unwrap_err();
        assert!(
            e.contains("cannot be empty") && e.contains(SWITCH_NAME_RULE),
            "{e}"
        );
        for bad in ["a b", "a/b", "a:b", "x\ty", "sw\u{e9}", "a\0", "a+b", "@"] {
            let e = parse_switch_name(bad).unwrap_err();
            assert!(
                e.contains("contains") && e.contains(SWITCH_NAME_RULE),
                "{bad:?}: {e}"
            );
        }
        let e = parse_switch_name("abcdefghijklmnop").unwrap_err();
        assert!(e.contains("16 characters, at most 15"), "{e}");
        // The character is named before the length: "a very long name" is
        // refused for its space.
        assert!(parse_switch_name("a very long switch name")
            .unwrap_err()
            .contains("' '"));
    }

    #[test]
    fn switch_name_field_is_nul_padded() {
        let f = switch_name_field("lab-1").unwrap();
        assert_eq!(&f[..5], b"lab-1");
        assert!(f[5..].iter().all(|&b| b == 0));
        assert_eq!(switch_name_field("abcdefghijklmno").unwrap()[15], 0);
        assert!(switch_name_field("").is_err());
        assert!(switch_name_field("a b").is_err());
    }

    #[test]
    fn rule_taps() {
        assert_eq!(parse_rule_tap("pvp-vm1").unwrap(), "pvp-vm1");
        assert_eq!(&tap_field("vnet0").unwrap()[..6], b"vnet0\0");
        assert!(parse_rule_tap("abcdefghijklmno").is_ok());
        for bad in [
            "",
            "abcdefghijklmnop",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "tap%d",
        ] {
            assert!(parse_rule_tap(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn backend_is_nul_padded() {
        let f = backend_field("sw0").unwrap();
        assert_eq!(&f[..3], b"sw0");
        assert!(f[3..].iter().all(|&b| b == 0));
        assert_eq!(backend_field("").unwrap(), [0; PVPASS_NAME_LEN]);
        let f = backend_field("abcdefghijklmno").unwrap();
        assert_eq!(f[15], 0);
    }

    #[test]
    fn queues() {
        assert_eq!(parse_queues("1"), Ok(1));
        assert_eq!(parse_queues("0x1"), Ok(1));
        assert_eq!(parse_queues("2"), Ok(2));
        assert_eq!(parse_queues("8"), Ok(8));
        for many in ["9", "0x10", "4294967296"] {
            let e = parse_queues(many).unwrap_err();
            assert!(e.starts_with("at most 8"), "{many}: {e}");
        }
        assert!(parse_queues("0").unwrap_err().contains("at least 1"));
        assert!(parse_queues("one").is_err());
        assert!(parse_queues("-1").is_err());
    }

    #[test]
    fn netdev_ids() {
        for ok in ["pvpass0", "n", "net-0.a_b", "Z9"] {
            assert_eq!(parse_netdev_id(ok), Ok(ok.to_owned()), "{ok:?}");
        }
        assert!(parse_netdev_id("").unwrap_err().contains("cannot be empty"));
        for bad in ["0net", "-net", "_n", ".n"] {
            let e = parse_netdev_id(bad).unwrap_err();
            assert!(e.contains("start with a letter"), "{bad:?}: {e}");
        }
        for bad in ["a,b", "a=b", "a b", "a/b", "n\u{e9}t"] {
            let e = parse_netdev_id(bad).unwrap_err();
            assert!(e.contains("contains"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn tap_names() {
        for ok in ["", "tap0", "pvtap%d", "a.b-c_d", "abcdefghijklmno"] {
            assert_eq!(parse_tap_name(ok), Ok(ok.to_owned()), "{ok:?}");
        }
        assert!(parse_tap_name("abcdefghijklmnop")
            .unwrap_err()
            .contains("at most 15"));
        for bad in [".", ".."] {
            assert!(parse_tap_name(bad).is_err(), "{bad:?}");
        }
        for bad in ["a/b", "a:1", "a b", "a\tb", "a\0"] {
            let e = parse_tap_name(bad).unwrap_err();
            assert!(e.contains("contains"), "{bad:?}: {e}");
        }
    }
}
