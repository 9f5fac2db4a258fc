//! `pvpassctl acpi-table`: an ACPI SSDT that declares pvpass virtio-mmio
//! windows, for guest kernels built without `VIRTIO_MMIO_CMDLINE_DEVICES`
//! (Debian 12's 6.1, for one), which ignore `virtio_mmio.device=` on their
//! command line. Linux's virtio_mmio driver also matches the ACPI id
//! "LNRO0005" and takes its window (memory resource 0) and interrupt
//! (interrupt resource 0) from the device's `_CRS`; QEMU hands the table to
//! the guest with `-acpitable file=<table>`.
//!
//! The AML is encoded here by hand. For each device, in ASL:
//!
//! ```text
//! Scope (\_SB) {
//!     Device (PVP0) {
//!         Name (_HID, "LNRO0005")
//!         Name (_UID, 0)
//!         Name (_CRS, ResourceTemplate () {
//!             Memory32Fixed (ReadWrite, 0xd0000000, 0x1000)
//!             Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 7 }
//!         })
//!     }
//! }
//! ```

use crate::attach::level_triggered_gsi;
use crate::cli::{AcpiTableArgs, Trigger};
use crate::uapi::PVPASS_WINDOW_SIZE;
use anyhow::{bail, Context, Result};
use std::io::{IsTerminal, Write};

/// The ACPI id Linux's virtio_mmio driver matches (drivers/virtio/virtio_mmio.c).
pub const VIRTIO_MMIO_HID: &str = "LNRO0005";

/// Table header fields (ACPI 6.5, 5.2.6).
const SIGNATURE: &[u8; 4] = b"SSDT";
/// 2: integers are 64-bit (none here is wider than 32).
const REVISION: u8 = 2;
const OEM_ID: &[u8; 6] = b"PVPASS";
const OEM_TABLE_ID: &[u8; 8] = b"PVPASS  ";
const OEM_REVISION: u32 = 1;
const CREATOR_ID: &[u8; 4] = b"PVPC";
const CREATOR_REVISION: u32 = 1;
const HEADER_LEN: usize = 36;

/// Device names: PVP0 .. PVP9, then PVPA .. PVPZ.
const NAME_CHARS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
pub const MAX_DEVICES: usize = NAME_CHARS.len();

/// AML opcodes (ACPI 6.5, 20.3).
const ZERO_OP: u8 = 0x00;
const ONE_OP: u8 = 0x01;
const NAME_OP: u8 = 0x08;
const BYTE_PREFIX: u8 = 0x0a;
const WORD_PREFIX: u8 = 0x0b;
const DWORD_PREFIX: u8 = 0x0c;
const STRING_PREFIX: u8 = 0x0d;
const SCOPE_OP: u8 = 0x10;
const BUFFER_OP: u8 = 0x11;
const EXT_OP_PREFIX: u8 = 0x5b;
const DEVICE_OP: u8 = 0x82;
const ROOT_CHAR: u8 = b'\\';

/// Resource descriptors (ACPI 6.5, 6.4).
const MEMORY32_FIXED: u8 = 0x86;
const EXTENDED_INTERRUPT: u8 = 0x89;
const END_TAG: u8 = 0x79;
/// Extended Interrupt flags: bit 0 consumer, bit 1 edge (else level),
/// bit 2 active low (else high), bit 3 shared (else exclusive).
const IRQ_CONSUMER: u8 = 1 << 0;
const IRQ_EDGE: u8 = 1 << 1;

/// One virtio-mmio device of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioDevice {
    /// Base of the 4 KiB window, below 4 GiB.
    pub gpa: u32,
    pub gsi: u32,
    /// Level-triggered (else edge); always active high, as QEMU's pc and q35
    /// machines route their level GSIs.
    pub level: bool,
}

/// `--gpa` of `acpi-table`: 4 KiB aligned, and the whole window below 4 GiB
/// (a Memory32Fixed descriptor).
pub fn parse_gpa32(s: &str) -> Result<u32, String> {
    let gpa = crate::args::parse_gpa(s)?;
    if gpa + PVPASS_WINDOW_SIZE > 1 << 32 {
        return Err(format!(
            "the 4 KiB window at {gpa:#x} is not below 4 GiB (the table declares it \
             with a 32-bit Memory32Fixed descriptor)"
        ));
    }
    Ok(gpa as u32)
}

/// Whether `--trigger` makes `gsi` level-triggered: `auto` follows the rule
/// of `pvpassctl attach --trigger auto`, so the guest and the attachment agree.
pub fn is_level(trigger: Trigger, gsi: u32) -> bool {
    match trigger {
        Trigger::Level => true,
        Trigger::Edge => false,
        Trigger::Auto => level_triggered_gsi(gsi).is_some(),
    }
}

/// The devices of the command line: the n-th `--gpa` with the n-th `--gsi`.
/// A usage error (as text) for unpaired, overlapping or too many devices.
pub fn plan(gpas: &[u32], gsis: &[u32], trigger: Trigger) -> Result<Vec<MmioDevice>, String> {
    if gpas.len() != gsis.len() {
        return Err(format!(
            "{} --gpa but {} --gsi: give one --gsi for each --gpa, in the same order",
            gpas.len(),
            gsis.len()
        ));
    }
    if gpas.len() > MAX_DEVICES {
        return Err(format!(
            "{} devices: a table declares at most {MAX_DEVICES} (PVP0 .. PVPZ)",
            gpas.len()
        ));
    }
    let mut devs: Vec<MmioDevice> = Vec::with_capacity(gpas.len());
    for (&gpa, &gsi) in gpas.iter().zip(gsis) {
        // Windows are 4 KiB aligned and 4 KiB long: two overlap when equal.
        if devs.iter().any(|d| d.gpa == gpa) {
            return Err(format!("the window at {gpa:#x} is given twice"));
        }
        if devs.iter().any(|d| d.gsi == gsi) {
            return Err(format!(
                "GSI {gsi} is given twice (pvpass gives each device of a VM its own GSI)"
            ));
        }
        devs.push(MmioDevice {
            gpa,
            gsi,
            level: is_level(trigger, gsi),
        });
    }
    Ok(devs)
}

/// The PkgLength encoding (ACPI 6.5, 20.2.4) of a package whose contents
/// after the PkgLength are `len` bytes: the encoded length counts the
/// PkgLength's own bytes too. One byte holds up to 63; otherwise bits 7-6 of
/// the first byte say how many bytes follow, its bits 3-0 are the low nibble
/// and each following byte the next 8 bits.
pub fn pkg_length(len: usize) -> Vec<u8> {
    if len < 0x3f {
        return vec![(len + 1) as u8];
    }
    for extra in 1..=3usize {
        let total = len + 1 + extra;
        if total < 1 << (4 + 8 * extra) {
            let mut out = vec![((extra as u8) << 6) | (total & 0xf) as u8];
            out.extend((0..extra).map(|i| (total >> (4 + 8 * i)) as u8));
            return out;
        }
    }
    panic!("AML package of {len} bytes is too long for a PkgLength");
}

/// An integer as the shortest AML constant.
fn integer(v: u32) -> Vec<u8> {
    match v {
        0 => vec![ZERO_OP],
        1 => vec![ONE_OP],
        2..=0xff => vec![BYTE_PREFIX, v as u8],
        0x100..=0xffff => {
            let mut o = vec![WORD_PREFIX];
            o.extend((v as u16).to_le_bytes());
            o
        }
        _ => {
            let mut o = vec![DWORD_PREFIX];
            o.extend(v.to_le_bytes());
            o
        }
    }
}

/// `op` followed by a PkgLength and `body`.
fn package(op: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = op.to_vec();
    out.extend(pkg_length(body.len()));
    out.extend_from_slice(body);
    out
}

/// `Name (seg, <data>)`.
fn name(seg: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = vec![NAME_OP];
    out.extend_from_slice(seg);
    out.extend_from_slice(data);
    out
}

/// A String constant (ASCII, NUL-terminated).
fn string(s: &str) -> Vec<u8> {
    let mut out = vec![STRING_PREFIX];
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    out
}

/// `Buffer (len) { bytes }`, as a ResourceTemplate compiles to.
fn buffer(bytes: &[u8]) -> Vec<u8> {
    let mut body = integer(bytes.len() as u32);
    body.extend_from_slice(bytes);
    package(&[BUFFER_OP], &body)
}

/// The device's resources: Memory32Fixed (read-write, the 4 KiB window),
/// Extended Interrupt (consumer, edge or level, active high, exclusive, one
/// GSI) and the end tag, whose checksum makes the bytes of the template add
/// up to zero.
pub fn resource_template(dev: &MmioDevice) -> Vec<u8> {
    let mut t = vec![MEMORY32_FIXED];
    t.extend(9u16.to_le_bytes()); // length of the data after this field
    t.push(1); // ReadWrite
    t.extend(dev.gpa.to_le_bytes());
    t.extend((PVPASS_WINDOW_SIZE as u32).to_le_bytes());

    t.push(EXTENDED_INTERRUPT);
    t.extend(6u16.to_le_bytes()); // flags, count and one 32-bit interrupt
    t.push(IRQ_CONSUMER | if dev.level { 0 } else { IRQ_EDGE });
    t.push(1); // interrupt table length
    t.extend(dev.gsi.to_le_bytes());

    t.push(END_TAG);
    t.push(checksum(&t));
    t
}

/// `Device (PVPn) { _HID, _UID, _CRS }`.
fn device(index: usize, dev: &MmioDevice) -> Vec<u8> {
    let mut body = device_name(index).to_vec();
    body.extend(name(b"_HID", &string(VIRTIO_MMIO_HID)));
    body.extend(name(b"_UID", &integer(index as u32)));
    body.extend(name(b"_CRS", &buffer(&resource_template(dev))));
    package(&[EXT_OP_PREFIX, DEVICE_OP], &body)
}

/// "PVP0" .. "PVP9", "PVPA" .. "PVPZ".
pub fn device_name(index: usize) -> [u8; 4] {
    [b'P', b'V', b'P', NAME_CHARS[index]]
}

/// The byte that makes `bytes` plus itself add up to zero (mod 256).
fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |s, &b| s.wrapping_add(b))
        .wrapping_neg()
}

/// The whole SSDT: header, then `Scope (\_SB) { Device (PVP0) ... }`.
pub fn ssdt(devs: &[MmioDevice]) -> Vec<u8> {
    assert!(devs.len() <= MAX_DEVICES);
    let mut scope = vec![ROOT_CHAR];
    scope.extend_from_slice(b"_SB_");
    for (i, d) in devs.iter().enumerate() {
        scope.extend(device(i, d));
    }
    let aml = package(&[SCOPE_OP], &scope);

    let len = HEADER_LEN + aml.len();
    let mut t = Vec::with_capacity(len);
    t.extend_from_slice(SIGNATURE);
    t.extend((len as u32).to_le_bytes());
    t.push(REVISION);
    t.push(0); // checksum, below
    t.extend_from_slice(OEM_ID);
    t.extend_from_slice(OEM_TABLE_ID);
    t.extend(OEM_REVISION.to_le_bytes());
    t.extend_from_slice(CREATOR_ID);
    t.extend(CREATOR_REVISION.to_le_bytes());
    debug_assert_eq!(t.len(), HEADER_LEN);
    t.extend(aml);
    t[9] = checksum(&t);
    t
}

/// One line per device, for the summary.
fn describe(devs: &[MmioDevice]) -> String {
    devs.iter()
        .enumerate()
        .map(|(i, d)| {
            format!(
                "{} gpa={:#x} gsi={} trigger={}",
                String::from_utf8_lossy(&device_name(i)),
                d.gpa,
                d.gsi,
                if d.level { "level" } else { "edge" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn run(args: &AcpiTableArgs) -> Result<()> {
    let devs = match plan(&args.gpa, &args.gsi, args.trigger) {
        Ok(d) => d,
        Err(msg) => crate::cli::usage_error("acpi-table", &msg),
    };
    let table = ssdt(&devs);
    match &args.output {
        Some(path) => {
            std::fs::write(path, &table)
                .with_context(|| format!("cannot write {}", path.display()))?;
            crate::say!(
                "wrote SSDT of {} bytes to {}: {} (QEMU: -acpitable file={})",
                table.len(),
                path.display(),
                describe(&devs),
                path.display()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            if out.is_terminal() {
                bail!("the table is binary AML: give -o FILE or redirect stdout");
            }
            out.write_all(&table)
                .and_then(|()| out.flush())
                .context("cannot write the table to stdout")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PVP0: MmioDevice = MmioDevice {
        gpa: 0xd000_0000,
        gsi: 7,
        level: false,
    };

    /// `pvpassctl acpi-table --gpa 0xd0000000 --gsi 7`, byte by byte
    /// (worked out from the ACPI 6.5 encodings; see the comments).
    #[rustfmt::skip]
    const PVP0_TABLE: [u8; 104] = [
        // Header: "SSDT", length 104, revision 2, checksum, "PVPASS",
        // "PVPASS  ", OEM revision 1, "PVPC", creator revision 1.
        b'S', b'S', b'D', b'T', 0x68, 0x00, 0x00, 0x00, 0x02, 0xb3,
        b'P', b'V', b'P', b'A', b'S', b'S',
        b'P', b'V', b'P', b'A', b'S', b'S', b' ', b' ',
        0x01, 0x00, 0x00, 0x00, b'P', b'V', b'P', b'C', 0x01, 0x00, 0x00, 0x00,
        // ScopeOp, PkgLength 67 in two bytes (0x40 | 3, 67 >> 4), \_SB_
        0x10, 0x43, 0x04, b'\\', b'_', b'S', b'B', b'_',
        // ExtOpPrefix DeviceOp, PkgLength 58, PVP0
        0x5b, 0x82, 0x3a, b'P', b'V', b'P', b'0',
        // Name (_HID, "LNRO0005")
        0x08, b'_', b'H', b'I', b'D', 0x0d,
        b'L', b'N', b'R', b'O', b'0', b'0', b'0', b'5', 0x00,
        // Name (_UID, Zero)
        0x08, b'_', b'U', b'I', b'D', 0x00,
        // Name (_CRS, Buffer: PkgLength 26, size BytePrefix 23)
        0x08, b'_', b'C', b'R', b'S', 0x11, 0x1a, 0x0a, 0x17,
        // Memory32Fixed: tag, length 9, ReadWrite, base 0xd0000000, length 0x1000
        0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x10, 0x00, 0x00,
        // Extended Interrupt: tag, length 6, consumer|edge, 1 entry, GSI 7
        0x89, 0x06, 0x00, 0x03, 0x01, 0x07, 0x00, 0x00, 0x00,
        // End tag, checksum of the template
        0x79, 0x7d,
    ];

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |s, &x| s.wrapping_add(x))
    }

    #[test]
    fn known_table_bytes() {
        let t = ssdt(&[PVP0]);
        assert_eq!(t, PVP0_TABLE, "{t:02x?}");
        assert_eq!(sum(&t), 0);
        assert_eq!(sum(&resource_template(&PVP0)), 0);
    }

    #[test]
    fn level_device_bytes() {
        let d = MmioDevice {
            gpa: 0xfeb0_0000,
            gsi: 16,
            level: true,
        };
        let r = resource_template(&d);
        assert_eq!(
            r,
            [
                0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0xb0, 0xfe, 0x00, 0x10, 0x00, 0x00, //
                0x89, 0x06, 0x00, 0x01, 0x01, 0x10, 0x00, 0x00, 0x00, //
                0x79, 0x98,
            ]
        );
        assert_eq!(sum(&r), 0);
        let t = ssdt(&[d]);
        assert_eq!(sum(&t), 0);
        assert_eq!(t.len(), 104);
    }

    #[test]
    fn several_devices() {
        let devs: Vec<MmioDevice> = (0..MAX_DEVICES as u32)
            .map(|i| MmioDevice {
                gpa: 0xd000_0000 + i * 0x1000,
                gsi: 5 + i,
                level: i % 2 == 1,
            })
            .collect();
        let t = ssdt(&devs);
        assert_eq!(sum(&t), 0);
        assert_eq!(
            u32::from_le_bytes(t[4..8].try_into().unwrap()) as usize,
            t.len()
        );
        // PVP0 and PVP1 have _UID Zero and One (one byte each), the others
        // BytePrefix n (two): 60, 60, then 61 bytes a device.
        let scope = &t[HEADER_LEN..];
        let body = 5 + 2 * 60 + 34 * 61;
        assert_eq!(scope.len(), 1 + 2 + body);
        assert_eq!(
            scope[..3],
            [
                0x10,
                0x40 | ((body + 2) & 0xf) as u8,
                ((body + 2) >> 4) as u8
            ]
        );
        let second = &scope[8 + 60..8 + 120];
        assert_eq!(second[..7], [0x5b, 0x82, 0x3a, b'P', b'V', b'P', b'1']);
        assert_eq!(second[7 + 15..7 + 21], [0x08, b'_', b'U', b'I', b'D', 0x01]);
        let third = &scope[8 + 120..8 + 181];
        assert_eq!(third[..7], [0x5b, 0x82, 0x3b, b'P', b'V', b'P', b'2']);
        assert_eq!(third[22..29], [0x08, b'_', b'U', b'I', b'D', 0x0a, 0x02]);
        assert_eq!(device_name(10), *b"PVPA");
        assert_eq!(device_name(35), *b"PVPZ");
        assert!(t.windows(4).any(|w| w == b"PVPZ"));
    }

    #[test]
    fn pkg_length_encodings() {
        // One byte: the length counts itself, up to 63.
        assert_eq!(pkg_length(0), [0x01]);
        assert_eq!(pkg_length(57), [0x3a]);
        assert_eq!(pkg_length(62), [0x3f]);
        // Two bytes: 0x40 | low nibble, then bits 11-4.
        assert_eq!(pkg_length(63), [0x41, 0x04]); // 65
        assert_eq!(pkg_length(65), [0x43, 0x04]); // 67
        assert_eq!(pkg_length(0xffd), [0x4f, 0xff]); // 0xfff
                                                     // Three and four bytes.
        assert_eq!(pkg_length(0xffe), [0x81, 0x00, 0x01]); // 0x1001
        assert_eq!(pkg_length(0xffffc), [0x8f, 0xff, 0xff]); // 0xfffff
        assert_eq!(pkg_length(0xffffd), [0xc1, 0x00, 0x00, 0x01]); // 0x100001
    }

    #[test]
    fn integers() {
        assert_eq!(integer(0), [0x00]);
        assert_eq!(integer(1), [0x01]);
        assert_eq!(integer(2), [0x0a, 0x02]);
        assert_eq!(integer(0xff), [0x0a, 0xff]);
        assert_eq!(integer(0x100), [0x0b, 0x00, 0x01]);
        assert_eq!(integer(0x1_0000), [0x0c, 0x00, 0x00, 0x01, 0x00]);
    }

    #[test]
    fn gpa_must_be_aligned_and_below_4g() {
        assert_eq!(parse_gpa32("0xd0000000"), Ok(0xd000_0000));
        assert_eq!(parse_gpa32("0xfffff000"), Ok(0xffff_f000));
        assert_eq!(parse_gpa32("4096"), Ok(0x1000));
        assert!(parse_gpa32("0xfffff800")
            .unwrap_err()
            .contains("4 KiB aligned"));
        assert!(parse_gpa32("0x100000000")
            .unwrap_err()
            .contains("below 4 GiB"));
        assert!(parse_gpa32("0x1d0000000")
            .unwrap_err()
            .contains("below 4 GiB"));
        assert!(parse_gpa32("x").is_err());
    }

    #[test]
    fn auto_trigger_agrees_with_attach() {
        use crate::uapi::PVPASS_FEAT_RESAMPLE;
        for gsi in 1..64 {
            let (attach_level, _) =
                crate::attach::level_mode(Trigger::Auto, gsi, true, PVPASS_FEAT_RESAMPLE).unwrap();
            assert_eq!(is_level(Trigger::Auto, gsi), attach_level, "GSI {gsi}");
            assert!(is_level(Trigger::Level, gsi));
            assert!(!is_level(Trigger::Edge, gsi));
        }
        for gsi in [5, 9, 10, 11, 16, 23, 100] {
            assert!(is_level(Trigger::Auto, gsi), "{gsi}");
        }
        for gsi in [1, 3, 4, 6, 7, 8, 12, 15] {
            assert!(!is_level(Trigger::Auto, gsi), "{gsi}");
        }
    }

    #[test]
    fn plan_pairs_and_checks() {
        let d = plan(&[0xd000_0000, 0xd000_1000], &[7, 16], Trigger::Auto).unwrap();
        assert_eq!(
            d,
            [
                PVP0,
                MmioDevice {
                    gpa: 0xd000_1000,
                    gsi: 16,
                    level: true
                }
            ]
        );
        let d = plan(&[0xd000_0000], &[7], Trigger::Level).unwrap();
        assert!(d[0].level);
        assert!(plan(&[0xd000_0000], &[7, 8], Trigger::Auto)
            .unwrap_err()
            .contains("1 --gpa but 2 --gsi"));
        assert!(plan(&[0xd000_0000, 0xd000_0000], &[7, 8], Trigger::Auto)
            .unwrap_err()
            .contains("given twice"));
        assert!(plan(&[0xd000_0000, 0xd000_1000], &[7, 7], Trigger::Auto)
            .unwrap_err()
            .contains("GSI 7 is given twice"));
        let gpas: Vec<u32> = (0..37).map(|i| i * 0x1000).collect();
        let gsis: Vec<u32> = (1..38).collect();
        assert!(plan(&gpas, &gsis, Trigger::Auto)
            .unwrap_err()
            .contains("at most 36"));
        assert_eq!(
            plan(&gpas[..36], &gsis[..36], Trigger::Auto).unwrap().len(),
            36
        );
    }

    /// Disassembles a table with ACPICA's `iasl -d` (not installed
    /// everywhere): `cargo test -- --ignored iasl_disassembles`.
    #[test]
    #[ignore]
    fn iasl_disassembles_the_table() {
        let dir = std::env::temp_dir().join(format!("pvpass-acpi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let aml = dir.join("pvpass.aml");
        let devs = plan(&[0xd000_0000, 0xd000_1000], &[7, 16], Trigger::Auto).unwrap();
        std::fs::write(&aml, ssdt(&devs)).unwrap();
        let out = std::process::Command::new("iasl")
            .arg("-d")
            .arg(&aml)
            .current_dir(&dir)
            .output()
            .expect("run iasl (ACPICA's acpica-tools)");
        assert!(out.status.success(), "{out:?}");
        let dsl = std::fs::read_to_string(dir.join("pvpass.dsl")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        // In this order (whitespace and iasl's comments aside).
        let dsl: String = dsl.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut at = 0;
        for want in [
            "DefinitionBlock (\"\", \"SSDT\", 2, \"PVPASS\", \"PVPASS",
            "Scope (\\_SB)",
            "Device (PVP0)",
            "Name (_HID, \"LNRO0005\")",
            "Name (_UID, Zero)",
            "Name (_CRS, ResourceTemplate ()",
            "Memory32Fixed (ReadWrite,",
            "0xD0000000,",
            "0x00001000,",
            "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive,",
            "0x00000007,",
            "Device (PVP1)",
            "Name (_UID, One)",
            "Memory32Fixed (ReadWrite,",
            "0xD0001000,",
            "Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive,",
            "0x00000010,",
        ] {
            match dsl[at..].find(want) {
                Some(n) => at += n + want.len(),
                None => panic!("{want:?} not found after byte {at} of\n{dsl}"),
            }
        }
    }
}
