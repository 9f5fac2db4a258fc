// SPDX-License-Identifier: GPL-2.0

//! The in-kernel L2 switch that every attached device and the host port
//! (`pvpsw0`) are ports of.
//!
//! A frame is forwarded on the sender's thread (run to completion: a guest's
//! vCPU thread, or the host port's work item): unicast to the port its
//! destination MAC lives behind, flooded to every other port for broadcast,
//! multicast and unknown unicast. Where a MAC lives is the forwarding
//! database (`pvcore::fdb`): each port's own MAC is a static entry, other
//! source MACs are learned (at most `MAX_PER_PORT` per port, so a guest
//! spraying random source MACs cannot flush the table) and age out after
//! `MAX_AGE_MS`. A frame whose source MAC is another port's own MAC is
//! dropped (a guest cannot impersonate its neighbour or the host).
//!
//! A frame (`pinned::Frame`) is its checked Ethernet header in kernel memory
//! plus the rest still in the sender's pinned transmit buffer. A guest port
//! gets it copied once, straight into its guest's pinned receive buffers,
//! with an interrupt (see `device.rs`); only if it has no buffer posted does
//! it get a copy in its backlog and a kick. The host port gets it copied
//! once into a new skb. A port whose guest posts no receive buffers fills its
//! own backlog and drops its own traffic (counted); senders never wait for
//! it.
//!
//! Lock order: a sender's `Device::state`, then `SWITCH`, then a receiver's
//! `Device::rx`, then its `Device::backlog` (a leaf). No port is dropped
//! under `SWITCH` (the host port's last reference unregisters a net_device).

use kernel::{prelude::*, sync::global_lock, sync::Arc, time::msecs_to_jiffies};

use crate::{
    device::Device,
    hostport::{HostPort, HOST_PORT_ID},
    kvm,
    pinned::Frame,
    pvcore::{
        fdb::{DefaultFdb, Learn},
        vnet::NetHdr,
    },
};

/// Learned entries age out after five minutes without a frame (as Linux's
/// bridge does).
const MAX_AGE_MS: u32 = 300_000;
/// Learned MACs one port may hold (its own static MAC not counted).
const MAX_PER_PORT: u32 = 16;
/// How often `forward` sweeps aged entries out of the table.
const SWEEP_MS: u32 = 10_000;

/// What `forward` did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forwarded {
    /// Delivered to, or flooded among, the other ports.
    Sent,
    /// Dropped: the source MAC is another port's own.
    Spoofed,
}

/// A port of the switch.
pub(crate) enum Port {
    Vm(Arc<Device>),
    Host(Arc<HostPort>),
}

impl Port {
    fn id(&self) -> u32 {
        match self {
            Port::Vm(d) => d.id,
            Port::Host(_) => HOST_PORT_ID,
        }
    }

    fn mac(&self) -> [u8; 6] {
        match self {
            Port::Vm(d) => d.mac(),
            Port::Host(h) => h.mac(),
        }
    }

    fn deliver(&self, hdr: &NetHdr, frame: &Frame<'_>) {
        match self {
            Port::Vm(d) => d.receive(hdr, frame),
            Port::Host(h) => {
                h.deliver(hdr, frame);
            }
        }
    }
}

struct Switch {
    ports: KVec<Port>,
    fdb: DefaultFdb,
    last_sweep: u64,
}

global_lock! {
    // SAFETY: Initialised by `init` in the module initialiser, before the misc
    // device and the host port (the only ways in) exist.
    unsafe(uninit) static SWITCH: Mutex<Switch> =
        Switch { ports: KVec::new(), fdb: DefaultFdb::new(), last_sweep: 0 };
}

/// EADDRINUSE (not among the kernel crate's named error codes).
fn eaddrinuse() -> Error {
    Error::from_errno(-(kernel::bindings::EADDRINUSE as i32))
}

fn max_age() -> u64 {
    msecs_to_jiffies(MAX_AGE_MS) as u64
}

/// Called once, from the module initialiser.
pub(crate) fn init() {
    // SAFETY: Called exactly once, before any other use of `SWITCH`.
    unsafe { SWITCH.init() };
}

/// Connect a port to the switch. EADDRINUSE if another port has its MAC.
pub(crate) fn add_port(port: Port) -> Result {
    let mut sw = SWITCH.lock();
    sw.ports.reserve(1, GFP_KERNEL)?;
    // The port's own MAC is static: never aged, never moved by learning.
    sw.fdb
        .add_static(port.mac(), port.id(), kvm::jiffies())
        .map_err(|_| eaddrinuse())?;
    sw.ports.push_within_capacity(port).map_err(|_| ENOMEM)?;
    Ok(())
}

/// Disconnect port `id`. Frames already in other ports' backlogs stay there;
/// nothing new reaches or leaves the port. The port is dropped after the
/// lock is released.
pub(crate) fn remove_port(id: u32) {
    let removed = {
        let mut sw = SWITCH.lock();
        sw.fdb.remove_port(id);
        let i = sw.ports.iter().position(|p| p.id() == id);
        i.and_then(|i| sw.ports.remove(i).ok())
    };
    drop(removed);
}

fn is_group(mac: &[u8]) -> bool {
    mac.first().is_some_and(|b| b & 1 != 0)
}

/// Forward `frame` (an Ethernet frame; `hdr` its checked virtio-net header)
/// sent by port `from`.
pub(crate) fn forward(from: u32, hdr: &NetHdr, frame: &Frame<'_>) -> Forwarded {
    let eth = frame.head();
    let (Some(dst), Some(src)) = (eth.first_chunk::<6>(), eth.get(6..12)) else {
        return Forwarded::Sent;
    };
    let src: [u8; 6] = src.try_into().unwrap_or_default();
    let now = kvm::jiffies();
    let age = max_age();
    let mut sw = SWITCH.lock();
    if let Learn::Spoofed { .. } = sw.fdb.learn(src, from, now, age, MAX_PER_PORT) {
        return Forwarded::Spoofed;
    }
    if now.wrapping_sub(sw.last_sweep) > msecs_to_jiffies(SWEEP_MS) as u64 {
        sw.last_sweep = now;
        sw.fdb.age(now, age);
    }
    if !is_group(dst) {
        if let Some(to) = sw.fdb.lookup(*dst, now, age) {
            if to != from {
                if let Some(p) = sw.ports.iter().find(|p| p.id() == to) {
                    p.deliver(hdr, frame);
                }
            }
            return Forwarded::Sent;
        }
    }
    for p in sw.ports.iter().filter(|p| p.id() != from) {
        p.deliver(hdr, frame);
    }
    Forwarded::Sent
}
