// SPDX-License-Identifier: GPL-2.0

//! The in-kernel L2 switch that every attached device and the host port
//! (`pvpsw0`) are ports of.
//!
//! A frame is forwarded on the sender's thread (run to completion: a guest's
//! vCPU thread, or the host port's work item): unicast to the port its
//! destination MAC lives behind, flooded to every other port for broadcast,
//! multicast and unknown unicast. Where a MAC lives is the forwarding
//! database (`pvcore::fdb`): each port's own MAC is a static entry, other
//! source MACs are learned (at most `MAX_LEARNED_PER_PORT` per port, so a guest
//! spraying random source MACs cannot flush the table) and age out after
//! `MAX_AGE_MS`. A frame whose source MAC is another port's own MAC is
//! dropped (a guest cannot impersonate its neighbour or the host).
//!
//! A frame (`pinned::Frame`) is its checked Ethernet header in kernel memory
//! plus the rest still in the sender's pinned transmit buffer. A guest port
//! gets it copied once, straight into its guest's pinned receive buffers,
//! with an interrupt (see `device.rs`); only if it cannot take it now (no
//! buffer posted, its own thread busy with its receive side, a page that
//! would have to be faulted in) does it get a copy in its backlog and a
//! kick. The host port gets it copied once into a new skb. A port whose
//! guest posts no receive buffers fills its own backlog and drops its own
//! traffic (counted); senders never wait for it.
//!
//! Hostile guests: the table holds every port's static MAC and learn limit
//! (`fdb::MAX_PORTS`), and learning never evicts another port's live entry,
//! so no group of guests can flush the stations others have learned; a
//! frame from a group or all-zero source MAC is dropped (as Linux's bridge
//! does); broadcast and multicast frames are rate-limited per port
//! (`STORM_*`, counted drops), so one guest's flood cannot saturate its
//! neighbours; a port being removed forwards nothing more.
//!
//! Locking: `SWITCH` is a spinlock and a leaf. Under it `forward` only
//! learns, looks up and takes references on the target ports
//! (`Targets`); it delivers after dropping it, so no delivery (which pins
//! and copies) ever holds up another sender, ATTACH or DETACH. A port's
//! last reference is therefore dropped outside the lock too (the host
//! port's unregisters a net_device).

use kernel::{prelude::*, sync::global_lock, sync::Arc, time::msecs_to_jiffies};

use crate::{
    device::Device,
    hostport::{HostPort, HOST_PORT_ID},
    kvm,
    pinned::Frame,
    pvcore::{
        fdb::{is_group, DefaultFdb, Learn, MAX_LEARNED_PER_PORT, MAX_PORTS},
        ratelimit::RateLimit,
        vnet::NetHdr,
    },
    uapi,
};

/// Learned entries age out after five minutes without a frame (as Linux's
/// bridge does).
const MAX_AGE_MS: u32 = 300_000;
/// How often `forward` sweeps aged entries out of the table.
const SWEEP_MS: u32 = 10_000;
/// Broadcast/multicast frames one port may send per second, on average...
const STORM_RATE: u32 = 1000;
/// ... and in one burst (ARP, DHCP, neighbour discovery need a few).
const STORM_BURST: u32 = 256;

// Every attachment and the host port fit in the table with their limits.
const _: () = assert!(uapi::MAX_ATTACH < MAX_PORTS);

/// What `forward` did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forwarded {
    /// Delivered to, or flooded among, the other ports.
    Sent,
    /// Dropped: the source MAC is another port's own, a group address or
    /// all zeros.
    Spoofed,
    /// Dropped: a broadcast or multicast over the sender's rate limit.
    Storm,
    /// Dropped: the sender is not (or no longer) a port.
    NotAPort,
}

/// A port of the switch.
#[derive(Clone)]
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

/// One port and its storm control.
struct Slot {
    port: Option<Port>,
    storm: RateLimit,
}

struct Switch {
    slots: [Slot; MAX_PORTS],
    fdb: DefaultFdb,
    last_sweep: u64,
}

impl Switch {
    fn slot(&mut self, id: u32) -> Option<&mut Slot> {
        self.slots
            .iter_mut()
            .find(|s| s.port.as_ref().is_some_and(|p| p.id() == id))
    }
}

global_lock! {
    // SAFETY: Initialised by `init` in the module initialiser, before the misc
    // device and the host port (the only ways in) exist.
    unsafe(uninit) static SWITCH: SpinLock<Switch> = Switch {
        slots: [const { Slot { port: None, storm: RateLimit::new(STORM_RATE, STORM_BURST) } };
            MAX_PORTS],
        fdb: DefaultFdb::new(),
        last_sweep: 0,
    };
}

/// The ports one frame goes to: references taken under `SWITCH`, used and
/// dropped after it. A device's transmit side keeps one for all its frames;
/// the host port's work item takes one per frame.
pub(crate) struct Targets {
    ports: KVec<Port>,
}

impl Targets {
    pub(crate) fn new() -> Result<KBox<Self>> {
        let ports = KVec::with_capacity(MAX_PORTS, GFP_KERNEL)?;
        Ok(KBox::new(Self { ports }, GFP_KERNEL)?)
    }

    /// Add a port. There is room for every port, so this never allocates
    /// and never drops the new reference under the lock.
    fn add(&mut self, p: &Port) {
        let _ = self.ports.push_within_capacity(p.clone());
    }
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

/// Connect a port to the switch. EADDRINUSE if another port has its MAC,
/// ENOSPC if every slot is taken (never with `MAX_ATTACH` attachments).
pub(crate) fn add_port(port: Port) -> Result {
    let mut sw = SWITCH.lock();
    let Switch { slots, fdb, .. } = &mut *sw;
    let slot = slots.iter_mut().find(|s| s.port.is_none()).ok_or(ENOSPC)?;
    // The port's own MAC is static: never aged, never moved by learning.
    fdb.add_static(port.mac(), port.id(), kvm::jiffies())
        .map_err(|_| eaddrinuse())?;
    slot.storm = RateLimit::new(STORM_RATE, STORM_BURST);
    slot.port = Some(port);
    Ok(())
}

/// Disconnect port `id`. Frames already in other ports' backlogs stay there;
/// nothing new reaches or leaves the port (a sender still inside `forward`
/// may hold a reference for the frame it is delivering). The port is
/// dropped after the lock is released.
pub(crate) fn remove_port(id: u32) {
    let removed = {
        let mut sw = SWITCH.lock();
        sw.fdb.remove_port(id);
        sw.slot(id).and_then(|s| s.port.take())
    };
    drop(removed);
}

/// Forward `frame` (an Ethernet frame; `hdr` its checked virtio-net header)
/// sent by port `from`, through the sender's `targets`.
pub(crate) fn forward(
    from: u32,
    hdr: &NetHdr,
    frame: &Frame<'_>,
    targets: &mut Targets,
) -> Forwarded {
    let eth = frame.head();
    let (Some(dst), Some(src)) = (eth.first_chunk::<6>(), eth.get(6..12)) else {
        return Forwarded::Sent;
    };
    let src: [u8; 6] = src.try_into().unwrap_or_default();
    let now = kvm::jiffies();
    let age = max_age();
    let group = is_group(dst);
    targets.ports.clear();
    {
        let mut sw = SWITCH.lock();
        let hz = msecs_to_jiffies(1000) as u64;
        let Some(slot) = sw.slot(from) else {
            return Forwarded::NotAPort;
        };
        if group && !slot.storm.allow(now, hz) {
            return Forwarded::Storm;
        }
        match sw.fdb.learn(src, from, now, age, MAX_LEARNED_PER_PORT) {
            Learn::Spoofed { .. } | Learn::Group | Learn::Zero => return Forwarded::Spoofed,
            _ => {}
        }
        if now.wrapping_sub(sw.last_sweep) > msecs_to_jiffies(SWEEP_MS) as u64 {
            sw.last_sweep = now;
            sw.fdb.age(now, age);
        }
        let to = if group {
            None
        } else {
            sw.fdb.lookup(*dst, now, age)
        };
        match to {
            Some(to) if to == from => {}
            Some(to) => {
                if let Some(p) = sw.slot(to).and_then(|s| s.port.as_ref()) {
                    targets.add(p);
                }
            }
            None => {
                for p in sw.slots.iter().filter_map(|s| s.port.as_ref()) {
                    if p.id() != from {
                        targets.add(p);
                    }
                }
            }
        }
    }
    for p in targets.ports.iter() {
        p.deliver(hdr, frame);
    }
    // The references go here, outside the lock.
    targets.ports.clear();
    Forwarded::Sent
}
