//! pvpassctl: attach running KVM VMMs to the pvpass kernel module, or start
//! QEMU on its vhost transport (`vhost-exec`), or write an ACPI table that
//! declares virtio-mmio devices (`acpi-table`).

mod acpi;
mod admin;
mod args;
mod attach;
mod cli;
mod device;
mod pidfd;
mod procscan;
mod rules;
mod switches;
mod uapi;
mod vhost_exec;

use anyhow::Result;
use clap::Parser;
use std::process::ExitCode;

/// println! that never panics (stdout may be a closed pipe or terminal).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}

/// eprintln! with the program name, that never panics.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "pvpassctl: {}", format_args!($($arg)*));
    }};
}

fn version(cli: &cli::Cli) -> Result<()> {
    let dev = device::Device::open(&cli.device)?;
    let v = dev.version()?;
    say!("api_version: {}", v.api_version);
    say!(
        "features: {:#x} ({})",
        v.features,
        device::feature_names(v.features)
    );
    say!("window_size: {:#x}", v.window_size);
    say!("max_attach: {}", v.max_attach);
    if v.api_version != uapi::PVPASS_API_VERSION {
        warn!(
            "this tool was built for API version {}",
            uapi::PVPASS_API_VERSION
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse(); // usage errors exit with 2
    let res = match &cli.cmd {
        cli::Cmd::Version => version(&cli),
        cli::Cmd::Attach(a) => attach::run(&cli.device, a),
        cli::Cmd::List(a) => admin::run_list(&cli.device, a.json),
        cli::Cmd::Stats(a) => admin::run_stats(&cli.device, a.id, a.json),
        cli::Cmd::Detach(a) => admin::run_detach(&cli.device, a.id),
        cli::Cmd::Switch(cli::SwitchCmd::Add(a)) => switches::run_add(&cli.device, &a.name),
        cli::Cmd::Switch(cli::SwitchCmd::Del(a)) => switches::run_del(&cli.device, &a.name),
        cli::Cmd::Switch(cli::SwitchCmd::List(a)) => switches::run_list(&cli.device, a.json),
        cli::Cmd::VhostRule(cli::VhostRuleCmd::Add(a)) => {
            rules::run_add(&cli.device, &a.tap, a.mac, &a.switch)
        }
        cli::Cmd::VhostRule(cli::VhostRuleCmd::Del(a)) => rules::run_del(&cli.device, &a.tap),
        cli::Cmd::VhostRule(cli::VhostRuleCmd::List(a)) => rules::run_list(&cli.device, a.json),
        cli::Cmd::VhostExec(a) => vhost_exec::run(&cli.device, a),
        cli::Cmd::AcpiTable(a) => acpi::run(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            warn!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
