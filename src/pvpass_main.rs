// SPDX-License-Identifier: GPL-2.0

//! pvpass: many KVM guests and the host share one network device.
//!
//! Guests see a stock virtio-net device on the virtio-mmio transport. The
//! module registers the device window on each attached VM's MMIO bus, so the
//! guest's register accesses are served here, in the kernel, on the vCPU
//! thread, without an exit to userspace.
//!
//! Folders, one concept each; dependencies point down this list (a module
//! uses only those below it, and the core):
//! - `control`: the /dev/pvpass file and its ioctls, attachments and their
//!   reaper, debugfs.
//! - `net`: the virtio-net device: its state, transmit, receive, counters.
//! - `backend`: the `Backend`/`Port`/`Uplink` traits a device is connected
//!   through, and the backends: switches, the host port.
//! - `nic`: the Intel 82576 (igb) that pvpass drives itself, a PCI driver
//!   that binds only a function whose driver_override names pvpass.
//! - `transport`: the `Transport` trait and virtio-mmio (registers served on
//!   the vCPU thread, interrupts through an irqfd).
//! - `mem`: pinned guest memory (pins, pages, rings, frames).
//! - `kvm`: safe handles over the C glue (VM file, MMIO window, the in-vCPU
//!   token and guest memory access, irqfd and its resampling, the mmu
//!   notifier on the VMM's mm, the reaper's timer).
//! - `glue/`: the C that touches `struct kvm`, memslots, `kvm_io_device`,
//!   mmu notifiers and `net_device` (each file says why it is C).
//! - `uapi`: the ioctl contract, mirrored from include/uapi/linux/pvpass.h.
//!
//! The pure logic (the virtio device and its mmio registers, the descriptor engine, the
//! virtio-net header checks, the switch's MAC table, backlog and rate limit)
//! is the no_std core in ../rust/src, included below and tested in userspace
//! with `cargo test`.

use kernel::{
    prelude::*,
    sync::Arc, //
};

mod backend;
mod control;
mod glue;
mod kvm;
mod mem;
mod net;
mod nic;
mod transport;
mod tuning;
mod uapi;

/// The no_std core shared with the userspace tests (../rust/src): the same
/// files that `cargo test` runs, compiled into the module. Keep this list in
/// step with rust/src/lib.rs. Its items are `pub` for the userspace crate, and
/// not all are called from the module yet (the data path will).
#[path = "../rust/src"]
#[expect(
    dead_code,
    unreachable_pub,
    reason = "the core's API is public for its userspace tests; the module uses part of it"
)]
mod pvcore {
    pub(crate) mod backlog;
    pub(crate) mod ctrl;
    pub(crate) mod fdb;
    pub(crate) mod igb;
    pub(crate) mod memmap;
    pub(crate) mod net_config;
    pub(crate) mod pincache;
    pub(crate) mod ratelimit;
    pub(crate) mod traits;
    pub(crate) mod translate;
    pub(crate) mod txpolicy;
    pub(crate) mod virtio_dev;
    pub(crate) mod virtio_mmio;
    pub(crate) mod virtq;
    pub(crate) mod vnet;
}

/// Make the default switch, with the host port pvpsw0 on it.
fn default_switch() -> Result<backend::hostport::HostLink> {
    let mut name = [0u8; uapi::NAME_LEN];
    for (d, s) in name.iter_mut().zip(backend::DEFAULT) {
        *d = *s;
    }
    let sw: Arc<dyn backend::Backend> = backend::switch::Switch::new(name, 1)?;
    backend::add(sw.clone())?;
    backend::hostport::HostLink::create(c"pvpsw0", &sw).inspect_err(|_| backend::clear())
}

module! {
    type: PvpassModule,
    name: "pvpass",
    authors: ["pvpass developers"],
    description: "Share one network device between KVM guests (virtio-net over virtio-mmio, served in the kernel)",
    license: "GPL",
    params: {
        tx_poll_us: u32 {
            default: 50,
            description: "Transmit polling: after serving frames, leave the guest's transmit notifications off and poll the ring again within this many microseconds (0: notify per frame, no polling)",
        },
        tx_poll_adapt: u32 {
            default: 1,
            description: "Transmit polling (virtio-mmio): the poll period adapts to how fast the guest adds frames, from tx_poll_us up to 32 times it (at most 2 ms), and a deferred ring is notified once the guest added 32 frames (1, the default); 0: the fixed period, notifications off while deferred",
        },
        tx_hold_used: u32 {
            default: 0,
            description: "Transmit (virtio-mmio): a service that leaves a poll owed holds the used entries of the frames it sent until that poll (or the next exit) publishes them, as vhost-net completes after the guest's kick returned (1); 0: published at once",
        },
        inline_irq: u32 {
            default: 1,
            description: "Inject an edge-triggered GSI's interrupt on the thread that raises it (1) instead of through KVM's irqfd work item (0)",
        },
        rx_lend: u32 {
            default: 1,
            description: "Zero-copy receive on a NIC: lend a guest's receive buffers to its VMDq pool (1) instead of copying each frame from the pool's buffers (0)",
        },
    },
}

#[pin_data]
struct PvpassModule {
    #[pin]
    dev: control::miscdev::Registration<control::file::PvpassFile>,
    // /dev/pvpass-vhost-net; its open files pin the module too.
    #[pin]
    vhost: control::miscdev::Registration<control::vhost::VhostFile>,
    // After both devices: waits for the vhost transport's and the transmit
    // polls' task work, which nothing can cancel (it runs soon on a thread
    // going back to its guest).
    _vwork: VWorkWait,
    // The PCI driver of the 82576 (probes nothing unless a function's
    // driver_override names pvpass); unregistering it unbinds and quiesces
    // every NIC it drives.
    #[pin]
    _nic: nic::Registration,
    // The host port (pvpsw0) on the default switch; after `dev`, before the
    // reaper.
    _host: backend::hostport::HostLink,
    // Every switch; after the host port, which is on the default one.
    _backends: Backends,
    // Dropped after `dev`: by then no file is open (each pins the module),
    // so there is nothing left to reap.
    _reaper: kvm::Reaper,
    // KVM's functions of the patch series, if taken; after the reaper,
    // when no virtio-mmio device is left.
    _kvm: kvm::KvmSymbols,
    // /sys/kernel/debug/pvpass; last: it reads the attachment list.
    #[pin]
    _debugfs: control::debugfs::Debugfs,
}

/// Removes every backend when dropped (module unload: no device is
/// attached any more, the host port is off its switch).
struct Backends;

struct VWorkWait;

impl Drop for VWorkWait {
    fn drop(&mut self) {
        transport::vhost::VWork::wait_all();
        transport::poll::TxPoll::wait_all();
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        backend::clear();
    }
}

impl kernel::InPlaceModule for PvpassModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        backend::init();
        control::attachment::init();
        control::vhost::init();
        pr_info!("loaded, /dev/pvpass (API version {})\n", uapi::API_VERSION);
        if kvm::take_kvm().is_err() {
            pr_info!("KVM has no pvpass patch series (patches/) or is not loaded: virtio-mmio ATTACH unavailable, the vhost transport works\n");
        }
        try_pin_init!(Self {
            dev <- control::miscdev::Registration::register(c"pvpass", module),
            vhost <- control::miscdev::Registration::register(c"pvpass-vhost-net", module),
            _vwork: VWorkWait,
            _nic <- nic::Registration::new(c"pvpass", module),
            _host: default_switch()?,
            _backends: Backends,
            _reaper: kvm::Reaper::start(),
            _kvm: kvm::KvmSymbols,
            _debugfs <- control::debugfs::Debugfs::new(),
        })
    }
}
