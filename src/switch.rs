// SPDX-License-Identifier: GPL-2.0

//! The in-kernel L2 switch that every attached device and the host port
//! (`pvpsw0`) are ports of.
//!
//! A frame is forwarded on the sender's thread (run to completion: a guest's
//! vCPU thread, or the host port's work item): unicast to the port its
//! destination MAC lives behind, flooded to every other port for broadcast,
//! multicast and unknown unicast. A guest port gets a copy in its backlog and
//! an interrupt kick; its own vCPU thread then copies it into a receive
//! buffer of its guest (see `device.rs`). The host port gets an skb at once.
//! A port whose guest posts no receive buffers fills its own backlog and drops
//! its own traffic (counted); senders never wait for it.
//!
//! Lock order: a sender's `Device::state`, then `SWITCH`, then a receiver's
//! `Device::backlog` (a leaf). No port is dropped under `SWITCH` (the host
//! port's last reference unregisters a net_device).

use kernel::{prelude::*, sync::global_lock, sync::Arc};

use crate::{
    device::Device,
    hostport::{HostPort, HOST_PORT_ID},
    pvcore::vnet::NetHdr,
};

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

    fn deliver(&self, hdr: &NetHdr, frame: &[u8]) {
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
}

global_lock! {
    // SAFETY: Initialised by `init` in the module initialiser, before the misc
    // device and the host port (the only ways in) exist.
    unsafe(uninit) static SWITCH: Mutex<Switch> = Switch { ports: KVec::new() };
}

/// Called once, from the module initialiser.
pub(crate) fn init() {
    // SAFETY: Called exactly once, before any other use of `SWITCH`.
    unsafe { SWITCH.init() };
}

/// Connect a port to the switch.
pub(crate) fn add_port(port: Port) -> Result {
    SWITCH.lock().ports.push(port, GFP_KERNEL)?;
    Ok(())
}

/// Disconnect port `id`. Frames already in other ports' backlogs stay there;
/// nothing new reaches or leaves the port. The port is dropped after the
/// lock is released.
pub(crate) fn remove_port(id: u32) {
    let removed = {
        let mut sw = SWITCH.lock();
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
pub(crate) fn forward(from: u32, hdr: &NetHdr, frame: &[u8]) {
    let Some(dst) = frame.get(..6) else {
        return;
    };
    let sw = SWITCH.lock();
    if !is_group(dst) {
        if let Some(p) = sw.ports.iter().find(|p| p.id() != from && p.mac() == dst) {
            p.deliver(hdr, frame);
            return;
        }
    }
    for p in sw.ports.iter().filter(|p| p.id() != from) {
        p.deliver(hdr, frame);
    }
}
