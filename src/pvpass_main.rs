// SPDX-License-Identifier: GPL-2.0

//! pvpass: many KVM guests and the host share one network device.
//!
//! Guests see a stock virtio-net device on the virtio-mmio transport. The
//! module registers the device window on each attached VM's MMIO bus, so the
//! guest's register accesses are served here, in the kernel, on the vCPU
//! thread, without an exit to userspace.
//!
//! Files:
//! - `file`: the /dev/pvpass file and its ioctls; `miscdev`: its registration
//!   with `.owner` set; `debugfs`: /sys/kernel/debug/pvpass.
//! - `attachment`: one attached VM (owned by the file that made it) and the
//!   reaper that lets it go when its VMM exits; `registry`: every attachment
//!   of the module, for ids and the conflict checks that span files.
//! - `device`: one attached device, its register file, virtqueues and the MMIO
//!   entry points the C glue calls; `pinned`: pinned guest memory (the pin
//!   cache bound to the kernel's pinning, pinned buffers, the receive ring).
//! - `switch`: the in-kernel L2 switch; `hostport`: its port into the host
//!   stack, pvpsw0 (with hostport.c).
//! - `kvm`: safe handles over the C glue in glue.c (VM file, MMIO window, the
//!   in-vCPU token and guest memory access, irqfd and its resampling, the mmu
//!   notifier on the VMM's mm, the reaper's timer); `uapi`: the ioctl
//!   contract, mirrored from include/uapi/linux/pvpass.h.
//!
//! The pure logic (the virtio-mmio register file, the descriptor engine, the
//! virtio-net header checks, the switch's MAC table, backlog and rate limit)
//! is the no_std core in ../rust/src, included below and tested in userspace
//! with `cargo test`.

use kernel::prelude::*;

mod attachment;
mod debugfs;
mod device;
mod file;
mod hostport;
mod kvm;
mod miscdev;
mod pinned;
mod registry;
mod switch;
mod uapi;

/// The no_std core shared with the userspace tests (../rust/src): the same
/// files that `cargo test` runs, compiled into the module. Keep this list in
/// step with rust/src/lib.rs. Its items are `pub` for the userspace crate, and
/// not all are called from the module yet (the data path will).
#[path = "../rust/src"]
#[allow(dead_code, unreachable_pub)]
mod pvcore {
    pub(crate) mod backlog;
    pub(crate) mod fdb;
    pub(crate) mod memmap;
    pub(crate) mod mmio;
    pub(crate) mod pincache;
    pub(crate) mod ratelimit;
    pub(crate) mod traits;
    pub(crate) mod translate;
    pub(crate) mod virtq;
    pub(crate) mod vnet;
}

module! {
    type: PvpassModule,
    name: "pvpass",
    authors: ["pvpass developers"],
    description: "Share one network device between KVM guests (virtio-net over virtio-mmio, served in the kernel)",
    license: "GPL",
}

#[pin_data]
struct PvpassModule {
    #[pin]
    dev: miscdev::Registration<file::PvpassFile>,
    // The host port (pvpsw0); after `dev`, before the reaper.
    _host: hostport::HostLink,
    // Dropped after `dev`: by then no file is open (each pins the module),
    // so there is nothing left to reap.
    _reaper: kvm::Reaper,
    // /sys/kernel/debug/pvpass; last: it reads the attachment list.
    #[pin]
    _debugfs: debugfs::Debugfs,
}

impl kernel::InPlaceModule for PvpassModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        registry::init();
        switch::init();
        attachment::init();
        pr_info!("loaded, /dev/pvpass (API version {})\n", uapi::API_VERSION);
        try_pin_init!(Self {
            dev <- miscdev::Registration::register(c"pvpass", module),
            _host: hostport::HostLink::create(c"pvpsw0")?,
            _reaper: kvm::Reaper::start(),
            _debugfs <- debugfs::Debugfs::new(),
        })
    }
}
