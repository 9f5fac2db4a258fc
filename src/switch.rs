// SPDX-License-Identifier: GPL-2.0

//! The in-kernel L2 switch that every attached device is a port of.
//!
//! A frame a guest transmits is forwarded on the sender's vCPU thread (run to
//! completion): unicast to the port whose MAC it is addressed to, flooded to
//! every other port for broadcast, multicast and unknown unicast. Forwarding
//! copies the frame into the receiving port's backlog, a fixed ring of frame
//! slots, and kicks the receiver's interrupt; the receiver's own vCPU thread
//! then copies it into a receive buffer of its guest (see `device.rs`). A port
//! whose guest posts no receive buffers fills its own backlog and drops its
//! own traffic (counted); senders never wait for it.
//!
//! Lock order: a sender's `Device::state`, then `PORTS`, then a receiver's
//! `Device::backlog` (a leaf).

use kernel::{prelude::*, sync::global_lock, sync::Arc};

use crate::device::Device;

global_lock! {
    // SAFETY: Initialised by `init` in the module initialiser, before the misc
    // device (the only way in) is registered.
    unsafe(uninit) static PORTS: Mutex<KVec<Arc<Device>>> = KVec::new();
}

/// Called once, from the module initialiser.
pub(crate) fn init() {
    // SAFETY: Called exactly once, before any other use of `PORTS`.
    unsafe { PORTS.init() };
}

/// Connect `dev` to the switch.
pub(crate) fn add_port(dev: Arc<Device>) -> Result {
    PORTS.lock().push(dev, GFP_KERNEL)?;
    Ok(())
}

/// Disconnect the port of device `id`. Frames already in other ports'
/// backlogs stay there; nothing new reaches or leaves the port.
pub(crate) fn remove_port(id: u32) {
    PORTS.lock().retain(|p| p.id != id);
}

fn is_group(mac: &[u8]) -> bool {
    mac.first().is_some_and(|b| b & 1 != 0)
}

/// Forward `frame` (an Ethernet frame, no virtio header) sent by port `from`.
pub(crate) fn forward(from: u32, frame: &[u8]) {
    let Some(dst) = frame.get(..6) else {
        return;
    };
    let ports = PORTS.lock();
    if !is_group(dst) {
        if let Some(p) = ports.iter().find(|p| p.id != from && p.mac() == dst) {
            p.receive(frame);
            return;
        }
    }
    for p in ports.iter().filter(|p| p.id != from) {
        p.receive(frame);
    }
}
