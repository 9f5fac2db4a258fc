//! Command-line definition.

use crate::acpi::parse_gpa32;
use crate::args::{
    parse_gpa, parse_gsi, parse_mac, parse_netdev_id, parse_queues, parse_rule_tap, parse_switch,
    parse_switch_name, parse_tap_name, Mac,
};
use crate::uapi::PVPASS_DEVICE_PATH;
use crate::vhost_exec::VHOST_DEVICE_PATH;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const LIFETIME: &str = "\
Lifetime of an attachment:
  An attachment belongs to the /dev/pvpass file that made it, i.e. to the
  running `pvpassctl attach` process, which holds it like a vhost-user
  backend. It ends when the VMM process exits, when `pvpassctl attach` gets
  SIGTERM or SIGINT (or is killed), or when root runs `pvpassctl detach <id>`
  from anywhere: the module releases the VM at once, and the owning attach
  process sees its attachment released (its stats say released=1), prints
  `detached id=<id>: <reason>` and exits 0.
  `pvpassctl list` shows every attachment with its id and owner pid;
  `pvpassctl stats <id>` prints its counters (root for another process's).";

#[derive(Debug, Parser)]
#[command(
    name = "pvpassctl",
    version,
    about = "Attach a running KVM VMM (e.g. QEMU) to the pvpass kernel module",
    after_help = LIFETIME
)]
pub struct Cli {
    /// pvpass device node
    #[arg(long, global = true, value_name = "PATH", default_value = PVPASS_DEVICE_PATH)]
    pub device: PathBuf,

    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Print the API version and limits of the loaded pvpass module
    Version,
    /// Attach a VM to pvpass and keep the attachment until the VMM exits,
    /// this process gets SIGTERM/SIGINT, or root runs `pvpassctl detach <id>`
    #[command(after_help = ATTACH_HELP)]
    Attach(AttachArgs),
    /// List every attachment of the module, whichever process made it
    List(ListArgs),
    /// Print every counter of an attachment, one `name value` per line
    /// (root for another process's attachment)
    Stats(StatsArgs),
    /// Detach an attachment made by any process (root); its `pvpassctl
    /// attach` process then sees it released and exits
    Detach(DetachArgs),
    /// Add, delete or list the module's switches (`attach --switch NAME`
    /// makes a device a port of one)
    #[command(subcommand, after_help = SWITCH_HELP)]
    Switch(SwitchCmd),
    /// Add, delete or list vhost rules: the port (MAC, switch) of a
    /// /dev/pvpass-vhost-net file that nobody named, by its tap (libvirt)
    #[command(subcommand, name = "vhost-rule", after_help = VHOST_RULE_HELP)]
    VhostRule(VhostRuleCmd),
    /// Run QEMU with its virtio-net-pci served by pvpass's vhost transport
    /// (/dev/pvpass-vhost-net as QEMU's vhostfd); QEMU replaces this process
    #[command(after_help = VHOST_EXEC_HELP)]
    VhostExec(VhostExecArgs),
    /// Write an ACPI table (SSDT, binary AML) declaring virtio-mmio devices,
    /// for guest kernels that ignore virtio_mmio.device= (QEMU: -acpitable file=)
    #[command(after_help = ACPI_TABLE_HELP)]
    AcpiTable(AcpiTableArgs),
}

const ACPI_TABLE_HELP: &str = "\
For guest kernels built without VIRTIO_MMIO_CMDLINE_DEVICES (Debian 12's 6.1,
for one), which ignore virtio_mmio.device= on their command line: the table
declares each window as an ACPI device that Linux's virtio_mmio driver binds
(_HID \"LNRO0005\", Memory32Fixed window, Interrupt GSI), under \\_SB:
  pvpassctl acpi-table --gpa 0xd0000000 --gsi 7 -o pvpass.aml
  qemu-system-x86_64 -machine q35,kernel-irqchip=on -S -acpitable file=pvpass.aml ...
  pvpassctl attach --pid $QPID --gpa 0xd0000000 --gsi 7 --mac ...
Give attach the same GPA and GSI, and the same --trigger (both default to
auto: level for GSIs 5, 9, 10, 11 and 16+, edge for the others). Several
devices: repeat --gpa and --gsi, in pairs (PVP0, PVP1, ...).";

#[derive(Debug, Args)]
pub struct AcpiTableArgs {
    /// Guest-physical base of a 4 KiB virtio-mmio window, 4 KiB aligned and
    /// below 4 GiB (hex 0x... or decimal); repeat for more devices
    #[arg(long, value_name = "GPA", value_parser = parse_gpa32, required = true)]
    pub gpa: Vec<u32>,

    /// Guest interrupt line (GSI) of the device, > 0: one for each --gpa, in
    /// the same order
    #[arg(long, value_name = "GSI", value_parser = parse_gsi, required = true)]
    pub gsi: Vec<u32>,

    /// How the table declares the GSIs: edge, level, or auto (as `attach
    /// --trigger auto`: level for 5, 9, 10, 11 and 16 and up, else edge);
    /// always active high
    #[arg(long, value_enum, default_value_t = Trigger::Auto)]
    pub trigger: Trigger,

    /// Write the table to FILE; default: stdout, unless it is a terminal
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// A usage error of subcommand `sub` found after parsing: clap's message
/// and the subcommand's usage on stderr, exit code 2.
pub fn usage_error(sub: &str, msg: &str) -> ! {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.build();
    let sub = cmd
        .find_subcommand_mut(sub)
        .expect("usage_error of an existing subcommand");
    sub.error(clap::error::ErrorKind::ValueValidation, msg)
        .exit()
}

const VHOST_EXEC_HELP: &str = "\
Opens /dev/pvpass-vhost-net, makes it a port of the switch with the MAC
(PVPASS_VHOST_SET_PORT), opens a tap, and runs the QEMU command given after
`--` with one option added:
  -netdev tap,id=<ID>,fd=<TAPFD>,vhost=on,vhostfd=<VHOSTFD>
Give the NIC on the QEMU command line yourself, with the same MAC:
  pvpassctl vhost-exec --mac 52:54:00:00:00:03 -- qemu-system-x86_64 \\
      -enable-kvm ... -device virtio-net-pci,netdev=pvpass0,mac=52:54:00:00:00:03
The tap is there only because QEMU's -netdev tap needs one: pvpass carries
no traffic through it (it stays down); the guest's frames go to the switch.
QEMU replaces this process (same pid) and holds both files: the port lives
as long as QEMU. Needs root (CAP_SYS_ADMIN; CAP_NET_ADMIN for a new tap).
--print opens both, prints the command line instead of running it, and exits
(the port goes away with this process).
libvirt's <backend vhost='/dev/pvpass-vhost-net'/> is not supported: libvirt
opens the device itself and so cannot name the port.";

#[derive(Debug, Args)]
pub struct VhostExecArgs {
    /// MAC address of the guest NIC (the mac= of its virtio-net-pci),
    /// unicast and not zero: aa:bb:cc:dd:ee:ff
    #[arg(long, value_parser = parse_mac)]
    pub mac: Mac,

    /// Switch the NIC is a port of (see `pvpassctl switch list`); default:
    /// the module's switch "default"
    #[arg(
        long = "backend",
        visible_alias = "switch",
        value_name = "NAME",
        value_parser = parse_switch,
        default_value = "",
        hide_default_value = true
    )]
    pub backend: String,

    /// id of the -netdev added to the QEMU command line; the NIC names it
    /// with netdev=<ID>
    #[arg(long, value_name = "ID", value_parser = parse_netdev_id, default_value = "pvpass0")]
    pub netdev_id: String,

    /// Queue pairs of the NIC, 1 to 8: a vhost file and a tap queue each
    /// (QEMU's vhostfds= and fds=); the NIC needs mq=on,vectors=2N+2
    #[arg(long, value_name = "N", value_parser = parse_queues, default_value = "1")]
    pub queues: u32,

    /// Name of the tap to open or create (may hold %d); default: the kernel
    /// picks one (tapN)
    #[arg(
        long,
        value_name = "NAME",
        value_parser = parse_tap_name,
        default_value = "",
        hide_default_value = true
    )]
    pub tap: String,

    /// Open both files, then print the fd numbers and the QEMU command line
    /// (shell-quoted) instead of running it
    #[arg(long)]
    pub print: bool,

    /// pvpass vhost device node
    #[arg(long, value_name = "PATH", default_value = VHOST_DEVICE_PATH)]
    pub vhost_device: PathBuf,

    /// The QEMU command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "QEMU")]
    pub qemu: Vec<String>,
}

const SWITCH_HELP: &str = "\
Every device is a port of one switch. The module starts with the switch
\"default\", whose other port is the host interface pvpsw0; it cannot be
deleted. A switch added with `pvpassctl switch add NAME` has no host
interface: the guests attached to it (`pvpassctl attach --switch NAME`) reach
only each other. A switch lives until `switch del` or until the module is
unloaded. Names are 1 to 15 characters of A-Z a-z 0-9 _ . -
`add` and `del` need root (CAP_SYS_ADMIN); `del` refuses a switch that still
has devices attached.";

const VHOST_RULE_HELP: &str = "\
When libvirt (or any VMM manager) opens /dev/pvpass-vhost-net itself, nobody
names the file's port before QEMU takes it. Such a file takes its port at
QEMU's VHOST_NET_SET_BACKEND from the rule of the tap QEMU passes there, by
the tap's interface name (libvirt: <target dev='NAME'/>):
  pvpassctl vhost-rule add --tap pvp-vm1 --mac 52:54:00:12:34:56 [--switch S]
All files of one tap (libvirt's <driver queues='N'/>) are the queue pairs of
one port. The tap carries no frame: they go to the switch. `add` and `del`
need root; a port made from a rule stays until QEMU closes its files.";

#[derive(Debug, Subcommand)]
pub enum VhostRuleCmd {
    /// Add a rule (root)
    Add(VhostRuleAddArgs),
    /// Delete the rule of a tap (root); ports made from it stay
    Del(VhostRuleTapArgs),
    /// List the rules: tap, MAC, switch
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct VhostRuleAddArgs {
    /// Interface name of the tap (1 to 15 bytes, no '/', ':' or whitespace)
    #[arg(long, value_parser = parse_rule_tap)]
    pub tap: String,
    /// The guest's MAC, as given to QEMU's virtio-net-pci (unicast, not zero)
    #[arg(long, value_parser = parse_mac)]
    pub mac: Mac,
    /// Switch the port joins (see `pvpassctl switch list`); default: the
    /// module's default switch
    #[arg(long, default_value = "", value_parser = parse_switch)]
    pub switch: String,
}

#[derive(Debug, Args)]
pub struct VhostRuleTapArgs {
    /// Interface name of the tap
    #[arg(long, value_parser = parse_rule_tap)]
    pub tap: String,
}

#[derive(Debug, Subcommand)]
pub enum SwitchCmd {
    /// Add a switch without host interface (root)
    Add(SwitchNameArgs),
    /// Delete a switch that has no devices attached (root)
    Del(SwitchNameArgs),
    /// List the switches: name, flags (default, host-port) and ports
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct SwitchNameArgs {
    /// Switch name: 1 to 15 characters of A-Z a-z 0-9 _ . -
    #[arg(value_parser = parse_switch_name)]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print a JSON array instead of the table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Attachment id (see `pvpassctl list`)
    pub id: u32,

    /// Print one JSON object instead of `name value` lines
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DetachArgs {
    /// Attachment id (see `pvpassctl list`)
    pub id: u32,
}

const ATTACH_HELP: &str = "\
The guest finds the device through its kernel command line, e.g.
  virtio_mmio.device=4K@0xd0000000:7   (matches --gpa 0xd0000000 --gsi 7)
On QEMU's pc/q35, GSIs 5, 9, 10, 11 and 16+ are level-triggered: --trigger
auto (the default) binds those with KVM's resampling; an edge GSI such as 7
costs one EOI round trip less.
Start the VMM paused (QEMU: -S -machine q35,kernel-irqchip=on), attach, then
resume it (QEMU monitor: cont).

Interrupts: the tool creates an eventfd and passes it in ATTACH; the module
binds it to the GSI with KVM's irqfd, which needs the VMM's in-kernel irqchip.
For a VMM without one, --no-irq attaches without interrupts (the guest must
poll).

Signals: SIGUSR1 prints the current stats; SIGTERM/SIGINT detach and exit.
This process owns the attachment (like a vhost-user backend). Root can also
release it from anywhere with `pvpassctl detach <id>`: this process notices
within a second (its stats say released=1) and exits 0.
On exit the final stats and `detached id=<id>: <reason>` are printed (reason:
the VMM exited, the signal, or \"released by another process (pvpassctl
detach)\").";

/// `attach --trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Trigger {
    Auto,
    Edge,
    Level,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// PID of the VMM process (e.g. QEMU) that owns the KVM VM
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub pid: i32,

    /// Guest-physical base of the 4 KiB virtio-mmio window (hex 0x... or decimal)
    #[arg(long, value_parser = parse_gpa)]
    pub gpa: u64,

    /// Guest interrupt line (GSI) of the device, > 0
    #[arg(long, value_parser = parse_gsi)]
    pub gsi: u32,

    /// Unicast MAC address of the guest NIC, aa:bb:cc:dd:ee:ff
    #[arg(long, value_parser = parse_mac)]
    pub mac: Mac,

    /// Switch the device is a port of (the `backend` of ATTACH; see
    /// `pvpassctl switch list`): 1 to 15 characters of A-Z a-z 0-9 _ . -;
    /// default: the module's switch "default"
    #[arg(
        long = "switch",
        visible_alias = "backend",
        value_name = "NAME",
        value_parser = parse_switch,
        default_value = "",
        hide_default_value = true
    )]
    pub switch: String,

    /// Seconds to wait for the VMM to create its KVM VM fd
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub wait: u64,

    /// After a successful attach, continue in the background (stdout/stderr
    /// are kept only if they are regular files, e.g. `>> attach.log`)
    #[arg(long)]
    pub daemon: bool,

    /// Write the attachment id into this file once attached (removed on detach)
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,

    /// Attach without interrupts (irq_fd = -1), for VMMs without an in-kernel
    /// irqchip; the guest then gets no interrupts and must poll
    #[arg(long, conflicts_with = "trigger")]
    pub no_irq: bool,

    /// How the guest sees the GSI: level (KVM resamples at each EOI and the
    /// line stays up while the device has an interrupt pending; needs
    /// kernel-irqchip=on), edge, or auto: level for GSIs that QEMU's pc and
    /// q35 machines make level-triggered (5, 9, 10, 11, 16 and up), else edge
    #[arg(long, value_enum, default_value_t = Trigger::Auto)]
    pub trigger: Trigger,

    /// Print stats every SECONDS while attached (0 = off)
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub stats_interval: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pvpassctl").chain(args.iter().copied()))
    }

    #[test]
    fn attach_parses() {
        let cli = parse(&ATTACH).unwrap();
        let Cmd::Attach(a) = cli.cmd else {
            panic!("not attach")
        };
        assert_eq!(a.pid, 42);
        assert_eq!(a.gpa, 0xd000_0000);
        assert_eq!(a.gsi, 5);
        assert_eq!(a.switch, "");
        assert_eq!(a.wait, 30);
        assert_eq!(a.stats_interval, 0);
        assert!(!a.daemon);
        assert!(!a.no_irq);
        assert_eq!(cli.device, PathBuf::from("/dev/pvpass"));
    }

    #[test]
    fn attach_no_irq() {
        let cli = parse(&[
            "attach",
            "--pid",
            "42",
            "--gpa",
            "0xd0000000",
            "--gsi",
            "5",
            "--mac",
            "52:54:00:12:34:56",
            "--no-irq",
        ])
        .unwrap();
        let Cmd::Attach(a) = cli.cmd else {
            panic!("not attach")
        };
        assert!(a.no_irq);
    }

    #[test]
    fn list_parses() {
        let cli = parse(&["list"]).unwrap();
        assert!(matches!(cli.cmd, Cmd::List(ListArgs { json: false })));
        let cli = parse(&["list", "--json", "--device", "/tmp/x"]).unwrap();
        assert!(matches!(cli.cmd, Cmd::List(ListArgs { json: true })));
        assert_eq!(cli.device, PathBuf::from("/tmp/x"));
        assert!(parse(&["list", "3"]).is_err());
    }

    #[test]
    fn stats_parses() {
        let cli = parse(&["stats", "7"]).unwrap();
        assert!(matches!(
            cli.cmd,
            Cmd::Stats(StatsArgs { id: 7, json: false })
        ));
        let cli = parse(&["stats", "--json", "4294967295"]).unwrap();
        assert!(matches!(
            cli.cmd,
            Cmd::Stats(StatsArgs {
                id: u32::MAX,
                json: true
            })
        ));
        assert!(parse(&["stats"]).is_err());
        assert!(parse(&["stats", "-1"]).is_err());
        assert!(parse(&["stats", "4294967296"]).is_err());
        assert!(parse(&["stats", "x"]).is_err());
    }

    #[test]
    fn detach_parses() {
        let cli = parse(&["detach", "3"]).unwrap();
        assert!(matches!(cli.cmd, Cmd::Detach(DetachArgs { id: 3 })));
        let e = parse(&["detach"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(parse(&["detach", "1", "2"]).is_err());
        assert!(parse(&["detach", "--json", "1"]).is_err());
    }

    #[test]
    fn help_names_the_new_commands() {
        let help = Cli::command().render_long_help().to_string();
        for w in [
            "list",
            "stats",
            "detach",
            "pvpassctl detach <id>",
            "released=1",
        ] {
            assert!(help.contains(w), "{w:?} not in\n{help}");
        }
        let mut cmd = Cli::command();
        let attach = cmd.find_subcommand_mut("attach").unwrap();
        let help = attach.render_long_help().to_string();
        assert!(help.contains("pvpassctl detach <id>"), "{help}");
    }

    const ATTACH: [&str; 9] = [
        "attach",
        "--pid",
        "42",
        "--gpa",
        "0xd0000000",
        "--gsi",
        "5",
        "--mac",
        "52:54:00:12:34:56",
    ];

    fn attach_with(extra: &[&str]) -> Result<AttachArgs, clap::Error> {
        let mut v = ATTACH.to_vec();
        v.extend_from_slice(extra);
        parse(&v).map(|c| match c.cmd {
            Cmd::Attach(a) => a,
            other => panic!("not attach: {other:?}"),
        })
    }

    /// `--backend` is the same option as `--switch` (both fill ATTACH's
    /// backend), with the header's name rule.
    #[test]
    fn attach_backend() {
        assert_eq!(attach_with(&["--backend", "lab"]).unwrap().switch, "lab");
        assert_eq!(attach_with(&["--switch", "lab.2"]).unwrap().switch, "lab.2");
        assert_eq!(attach_with(&["--backend", ""]).unwrap().switch, "");
        assert_eq!(attach_with(&[]).unwrap().switch, "");
        // Given twice (under either name) is a usage error, not a silent
        // pick of one.
        let e = attach_with(&["--switch", "a", "--backend", "b"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        for bad in ["a b", "sw/0", "abcdefghijklmnop"] {
            let e = attach_with(&["--backend", bad]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
            assert!(
                e.to_string().contains("a switch name is") || e.to_string().contains("at most 15")
            );
        }
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("attach")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(
            help.contains("--switch <NAME>") && help.contains("--backend"),
            "{help}"
        );
    }

    #[test]
    fn switch_parses() {
        let cli = parse(&["switch", "add", "lab"]).unwrap();
        let Cmd::Switch(SwitchCmd::Add(a)) = cli.cmd else {
            panic!("not switch add")
        };
        assert_eq!(a.name, "lab");
        let cli = parse(&["switch", "del", "A-Z_a.z-09"]).unwrap();
        let Cmd::Switch(SwitchCmd::Del(a)) = cli.cmd else {
            panic!("not switch del")
        };
        assert_eq!(a.name, "A-Z_a.z-09");
        let cli = parse(&["switch", "list"]).unwrap();
        assert!(matches!(
            cli.cmd,
            Cmd::Switch(SwitchCmd::List(ListArgs { json: false }))
        ));
        let cli = parse(&["--device", "/tmp/x", "switch", "list", "--json"]).unwrap();
        assert!(matches!(
            cli.cmd,
            Cmd::Switch(SwitchCmd::List(ListArgs { json: true }))
        ));
        assert_eq!(cli.device, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn switch_rejects_bad_usage() {
        use clap::error::ErrorKind;
        let kind = |a: &[&str]| parse(a).unwrap_err().kind();
        assert_eq!(
            kind(&["switch"]),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        assert_eq!(kind(&["switch", "add"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(kind(&["switch", "del"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            kind(&["switch", "add", "a", "b"]),
            ErrorKind::UnknownArgument
        );
        assert_eq!(kind(&["switch", "list", "x"]), ErrorKind::UnknownArgument);
        assert_eq!(
            kind(&["switch", "rename", "x"]),
            ErrorKind::InvalidSubcommand
        );
        for bad in ["", "a b", "x/y", "é", "abcdefghijklmnop"] {
            for op in ["add", "del"] {
                let e = parse(&["switch", op, bad]).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::ValueValidation, "{op} {bad:?}");
                let m = e.to_string();
                assert!(m.contains("A-Z a-z 0-9 _ . -"), "{m}");
            }
        }
    }

    #[test]
    fn switch_help() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("switch"), "{help}");
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("switch")
            .unwrap()
            .render_long_help()
            .to_string();
        for w in ["add", "del", "list", "pvpsw0", "cannot be", "--switch NAME"] {
            assert!(help.contains(w), "{w:?} not in\n{help}");
        }
    }

    #[test]
    fn attach_rejects_bad_values() {
        let base = ["attach", "--pid", "42", "--gpa", "0xd0000000", "--gsi", "5"];
        let with = |extra: &[&str]| {
            let mut v: Vec<&str> = base.to_vec();
            v.extend_from_slice(extra);
            parse(&v)
        };
        assert!(with(&["--mac", "52:54:00:12:34:56"]).is_ok());
        assert!(with(&["--mac", "01:00:5e:00:00:01"]).is_err());
        assert!(with(&[]).is_err());
        assert!(parse(&[
            "attach",
            "--pid",
            "0",
            "--gpa",
            "0",
            "--gsi",
            "5",
            "--mac",
            "02:00:00:00:00:01"
        ])
        .is_err());
        assert!(parse(&[
            "attach",
            "--pid",
            "1",
            "--gpa",
            "0x800",
            "--gsi",
            "5",
            "--mac",
            "02:00:00:00:00:01"
        ])
        .is_err());
        assert!(parse(&[
            "attach",
            "--pid",
            "1",
            "--gpa",
            "0",
            "--gsi",
            "0",
            "--mac",
            "02:00:00:00:00:01"
        ])
        .is_err());
    }

    fn acpi_table(args: &[&str]) -> Result<AcpiTableArgs, clap::Error> {
        let mut v = vec!["acpi-table"];
        v.extend_from_slice(args);
        parse(&v).map(|c| match c.cmd {
            Cmd::AcpiTable(a) => a,
            other => panic!("not acpi-table: {other:?}"),
        })
    }

    #[test]
    fn acpi_table_parses() {
        let a = acpi_table(&["--gpa", "0xd0000000", "--gsi", "7"]).unwrap();
        assert_eq!(a.gpa, [0xd000_0000]);
        assert_eq!(a.gsi, [7]);
        assert_eq!(a.trigger, Trigger::Auto);
        assert_eq!(a.output, None);
        let a = acpi_table(&[
            "--gpa",
            "0xd0000000",
            "--gsi",
            "7",
            "--gpa",
            "3490709504",
            "--gsi",
            "0x10",
            "--trigger",
            "level",
            "-o",
            "/tmp/t.aml",
        ])
        .unwrap();
        assert_eq!(a.gpa, [0xd000_0000, 0xd010_0000]);
        assert_eq!(a.gsi, [7, 16]);
        assert_eq!(a.trigger, Trigger::Level);
        assert_eq!(a.output, Some(PathBuf::from("/tmp/t.aml")));
        let a = acpi_table(&[
            "--output",
            "x",
            "--gsi",
            "5",
            "--gpa",
            "0",
            "--trigger",
            "edge",
        ])
        .unwrap();
        assert_eq!((a.gpa[0], a.gsi[0], a.trigger), (0, 5, Trigger::Edge));
        assert_eq!(a.output, Some(PathBuf::from("x")));
    }

    #[test]
    fn acpi_table_rejects_bad_values() {
        use clap::error::ErrorKind;
        let kind = |a: &[&str]| acpi_table(a).unwrap_err().kind();
        assert_eq!(kind(&["--gsi", "7"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            kind(&["--gpa", "0xd0000000"]),
            ErrorKind::MissingRequiredArgument
        );
        for (gpa, why) in [
            ("0xd0000800", "not 4 KiB aligned"),
            ("0x100000000", "below 4 GiB"),
            ("0xfffff001", "not 4 KiB aligned"),
            ("0xd000000g", "not a number"),
        ] {
            let e = acpi_table(&["--gpa", gpa, "--gsi", "7"]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{gpa}");
            assert!(e.to_string().contains(why), "{gpa}: {e}");
        }
        for gsi in ["0", "-1", "4294967296", "x"] {
            assert!(
                acpi_table(&["--gpa", "0xd0000000", "--gsi", gsi]).is_err(),
                "{gsi}"
            );
        }
        assert_eq!(
            kind(&["--gpa", "0xd0000000", "--gsi", "7", "--trigger", "rising"]),
            ErrorKind::InvalidValue
        );
    }

    const VHOST_EXEC: [&str; 5] = [
        "vhost-exec",
        "--mac",
        "52:54:00:00:00:03",
        "--",
        "qemu-system-x86_64",
    ];

    fn vhost_exec(args: &[&str]) -> Result<VhostExecArgs, clap::Error> {
        parse(args).map(|c| match c.cmd {
            Cmd::VhostExec(a) => a,
            other => panic!("not vhost-exec: {other:?}"),
        })
    }

    #[test]
    fn vhost_exec_parses() {
        let a = vhost_exec(&VHOST_EXEC).unwrap();
        assert_eq!(a.mac, Mac([0x52, 0x54, 0, 0, 0, 3]));
        assert_eq!(a.backend, "");
        assert_eq!(a.netdev_id, "pvpass0");
        assert_eq!(a.queues, 1);
        assert_eq!(a.tap, "");
        assert!(!a.print);
        assert_eq!(a.vhost_device, PathBuf::from("/dev/pvpass-vhost-net"));
        assert_eq!(a.qemu, ["qemu-system-x86_64"]);

        let a = vhost_exec(&[
            "vhost-exec",
            "--mac",
            "02:00:00:00:00:01",
            "--backend",
            "lab",
            "--netdev-id",
            "net1",
            "--queues",
            "1",
            "--tap",
            "pvtap%d",
            "--print",
            "--vhost-device",
            "/tmp/v",
            "--",
            "qemu-system-x86_64",
            "-enable-kvm",
            "--mac",
            "-device",
            "virtio-net-pci,netdev=net1,mac=02:00:00:00:00:01",
            "--",
        ])
        .unwrap();
        assert_eq!(a.backend, "lab");
        assert_eq!(a.netdev_id, "net1");
        assert_eq!(a.tap, "pvtap%d");
        assert!(a.print);
        assert_eq!(a.vhost_device, PathBuf::from("/tmp/v"));
        // Everything after the first `--` is QEMU's, options and `--` too.
        assert_eq!(
            a.qemu,
            [
                "qemu-system-x86_64",
                "-enable-kvm",
                "--mac",
                "-device",
                "virtio-net-pci,netdev=net1,mac=02:00:00:00:00:01",
                "--"
            ]
        );
        assert_eq!(
            vhost_exec(&[
                "vhost-exec",
                "--switch",
                "lab",
                "--mac",
                "02:00:00:00:00:01",
                "--",
                "q"
            ])
            .unwrap()
            .backend,
            "lab"
        );
    }

    #[test]
    fn vhost_exec_needs_mac_and_qemu() {
        use clap::error::ErrorKind;
        let e = vhost_exec(&["vhost-exec", "--", "qemu-system-x86_64"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        assert!(e.to_string().contains("--mac"), "{e}");
        let e = vhost_exec(&VHOST_EXEC[..3]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        let e = vhost_exec(&VHOST_EXEC[..4]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        // QEMU's command goes after `--` only.
        assert!(vhost_exec(&["vhost-exec", "--mac", "02:00:00:00:00:01", "qemu"]).is_err());
    }

    #[test]
    fn vhost_exec_mac_is_unicast_and_not_zero() {
        let with_mac = |mac: &str| {
            let mut v = VHOST_EXEC;
            v[2] = mac;
            vhost_exec(&v)
        };
        assert!(with_mac("02-00-00-00-00-01").is_ok());
        for (bad, why) in [
            ("00:00:00:00:00:00", "all-zero"),
            ("01:00:5e:00:00:01", "multicast"),
            ("ff:ff:ff:ff:ff:ff", "multicast"),
            ("52:54:00:00:03", "six hex bytes"),
            ("52:54:00:00:00:0g", "not a hex byte"),
        ] {
            let e = with_mac(bad).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn vhost_exec_queues() {
        let with = |extra: &[&str]| {
            let mut v = VHOST_EXEC[..3].to_vec();
            v.extend_from_slice(extra);
            v.extend_from_slice(&VHOST_EXEC[3..]);
            vhost_exec(&v)
        };
        assert_eq!(with(&["--queues", "1"]).unwrap().queues, 1);
        assert_eq!(with(&["--queues", "4"]).unwrap().queues, 4);
        for n in ["9", "16"] {
            let e = with(&["--queues", n]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains("at most 8"), "{e}");
        }
        assert!(with(&["--queues", "0"]).is_err());
        for bad in ["1net", "a,b", ""] {
            let e = with(&["--netdev-id", bad]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad:?}");
        }
        for bad in ["a/b", "abcdefghijklmnop"] {
            assert!(with(&["--tap", bad]).is_err(), "{bad:?}");
        }
        assert!(with(&["--backend", "a b"]).is_err());
        let e = with(&["--backend", "a", "--switch", "b"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn vhost_exec_help() {
        let mut cmd = Cli::command();
        let sub = cmd.find_subcommand_mut("vhost-exec").unwrap();
        let usage = sub.render_usage().to_string();
        assert!(
            usage.contains("--mac <MAC>") && usage.contains("-- <QEMU>..."),
            "{usage}"
        );
        let help = sub.render_long_help().to_string();
        for w in [
            "-netdev tap,id=<ID>,fd=<TAPFD>,vhost=on,vhostfd=<VHOSTFD>",
            "virtio-net-pci,netdev=pvpass0",
            "stays down",
            "libvirt",
            "--queues <N>",
            "--tap <NAME>",
            "--netdev-id <ID>",
            "[default: pvpass0]",
        ] {
            assert!(help.contains(w), "{w:?} not in\n{help}");
        }
    }
}
