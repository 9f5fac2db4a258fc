// SPDX-License-Identifier: GPL-2.0

//! The in-kernel L2 switch: a backend whose ports are devices and, for the
//! "default" switch, the host port (`pvpsw0`). Switches are made by name
//! (SWITCH_ADD); each is an instance with its own table and ports, so the
//! guests of one never see another's frames.
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
//! A frame (`mem::Frame`) is its checked Ethernet header in kernel memory
//! plus the rest still in the sender's pinned transmit buffer. A guest port
//! gets it copied once, straight into its guest's pinned receive buffers,
//! with an interrupt (see `net::rx`); only if it cannot take it now (no
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
//! neighbours, and delivered as `Delivery::Flooded`, which takes at most
//! half of a receiver's backlog (the rest is kept for frames addressed to
//! it); a port being removed forwards nothing more.
//!
//! Locking: `Switch::table` is a spinlock and a leaf. Under it `forward` only
//! learns, looks up and takes references on the target ports
//! (`Targets`); it delivers after dropping it, so no delivery (which pins
//! and copies) ever holds up another sender, ATTACH or DETACH. A port's
//! last reference is therefore dropped outside the lock too (the host
//! port's unregisters a net_device).

use kernel::{
    new_spinlock,
    prelude::*,
    sync::{
        Arc,
        SpinLock, //
    },
    time::msecs_to_jiffies, //
};

use super::{
    eaddrinuse,
    Backend,
    Delivery,
    Name,
    Port,
    Sent,
    Uplink, //
};
use crate::{
    kvm,
    mem::{
        new_zeroed,
        Frame, //
    },
    pvcore::{
        fdb::{
            is_group,
            DefaultFdb,
            Learn,
            MAX_LEARNED_PER_PORT,
            MAX_PORTS, //
        },
        ratelimit::RateLimit,
        vnet::NetHdr, //
    },
    uapi, //
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

// Every attachment and the host port fit in one switch with their limits.
const _: () = assert!(uapi::MAX_ATTACH < MAX_PORTS);

/// One port and its storm control.
struct Slot {
    port: Option<Arc<dyn Port>>,
    storm: RateLimit,
}

/// A switch's ports and MAC table, under `Switch::table`.
struct Table {
    slots: [Slot; MAX_PORTS],
    /// About 64 KiB: on the heap, zeroed (an empty table).
    fdb: KBox<DefaultFdb>,
    last_sweep: u64,
    /// Deleted: takes no more ports.
    closed: bool,
}

impl Table {
    fn slot(&mut self, id: u32) -> Option<&mut Slot> {
        self.slots
            .iter_mut()
            .find(|s| s.port.as_ref().is_some_and(|p| p.id() == id))
    }
}

/// A switch: a backend of up to `MAX_PORTS` ports.
pub(crate) struct Switch {
    name: Name,
    /// Ports that are the switch's own (the host port): not devices, not
    /// counted against deletion.
    own_ports: u32,
    core: Arc<Core>,
}

/// What the switch's uplinks share with it: the table.
#[pin_data]
struct Core {
    #[pin]
    table: SpinLock<Table>,
}

impl Switch {
    /// A new switch named `name` that will have `own_ports` ports of its
    /// own (the default switch's host port), and no devices yet.
    pub(crate) fn new(name: Name, own_ports: u32) -> Result<Arc<Self>> {
        let core = Core::new()?;
        Ok(Arc::new(
            Self {
                name,
                own_ports,
                core,
            },
            GFP_KERNEL,
        )?)
    }

    fn ports(&self) -> usize {
        let t = self.core.table.lock();
        t.slots.iter().filter(|s| s.port.is_some()).count()
    }
}

impl Core {
    fn new() -> Result<Arc<Self>> {
        // SAFETY: The all-zero table is the empty one (`Fdb::new`'s entries
        // are all-zero).
        let fdb = unsafe { new_zeroed::<DefaultFdb>() }?;
        let table = Table {
            slots: [const {
                Slot {
                    port: None,
                    storm: RateLimit::new(STORM_RATE, STORM_BURST),
                }
            }; MAX_PORTS],
            fdb,
            last_sweep: 0,
            closed: false,
        };
        Arc::pin_init(
            try_pin_init!(Self {
                table <- new_spinlock!(table),
            }),
            GFP_KERNEL,
        )
    }

    /// Connect a port. EADDRINUSE if another port has its MAC, ENODEV once
    /// the switch is deleted, ENOSPC if every slot is taken (never with
    /// `MAX_ATTACH` attachments).
    fn add_port(&self, port: Arc<dyn Port>) -> Result {
        let mut t = self.table.lock();
        let Table {
            slots, fdb, closed, ..
        } = &mut *t;
        if *closed {
            return Err(ENODEV);
        }
        let slot = slots.iter_mut().find(|s| s.port.is_none()).ok_or(ENOSPC)?;
        // The port's own MAC is static: never aged, never moved by learning.
        fdb.add_static(port.mac(), port.id(), kvm::jiffies())
            .map_err(|_| eaddrinuse())?;
        slot.storm = RateLimit::new(STORM_RATE, STORM_BURST);
        slot.port = Some(port);
        Ok(())
    }

    /// Disconnect port `id`. Frames already in other ports' backlogs stay
    /// there; nothing new reaches or leaves the port (a sender still inside
    /// `forward` may hold a reference for the frame it is delivering). The
    /// port is dropped after the lock is released.
    fn remove_port(&self, id: u32) {
        let removed = {
            let mut t = self.table.lock();
            t.fdb.remove_port(id);
            t.slot(id).and_then(|s| s.port.take())
        };
        drop(removed);
    }

    /// Forward `frame` (an Ethernet frame; `hdr` its checked virtio-net
    /// header) sent by port `from`, through the sender's `targets`.
    fn forward(&self, from: u32, hdr: &NetHdr, frame: &Frame<'_>, targets: &mut Targets) -> Sent {
        let eth = frame.head();
        let (Some(dst), Some(src)) = (eth.first_chunk::<6>(), eth.get(6..12)) else {
            return Sent::Done;
        };
        let src: [u8; 6] = src.try_into().unwrap_or_default();
        let now = kvm::jiffies();
        let age = max_age();
        let group = is_group(dst);
        let mut how = Delivery::Unicast;
        targets.ports.clear();
        {
            let mut t = self.table.lock();
            let hz = msecs_to_jiffies(1000) as u64;
            let Some(slot) = t.slot(from) else {
                return Sent::NotAPort;
            };
            if group && !slot.storm.allow(now, hz) {
                return Sent::Storm;
            }
            match t.fdb.learn(src, from, now, age, MAX_LEARNED_PER_PORT) {
                Learn::Spoofed { .. } | Learn::Group | Learn::Zero => return Sent::Spoofed,
                _ => {}
            }
            if now.wrapping_sub(t.last_sweep) > msecs_to_jiffies(SWEEP_MS) as u64 {
                t.last_sweep = now;
                t.fdb.age(now, age);
            }
            let to = if group {
                None
            } else {
                t.fdb.lookup(*dst, now, age)
            };
            match to {
                Some(to) if to == from => {}
                Some(to) => {
                    if let Some(p) = t.slot(to).and_then(|s| s.port.as_ref()) {
                        targets.add(p);
                    }
                }
                None => {
                    how = Delivery::Flooded;
                    for p in t.slots.iter().filter_map(|s| s.port.as_ref()) {
                        if p.id() != from {
                            targets.add(p);
                        }
                    }
                }
            }
        }
        for p in targets.ports.iter() {
            p.deliver(hdr, frame, how);
        }
        // The references go here, outside the lock.
        targets.ports.clear();
        Sent::Done
    }
}

impl Backend for Switch {
    fn name(&self) -> &Name {
        &self.name
    }

    fn connect(&self, port: Arc<dyn Port>) -> Result<KBox<dyn Uplink>> {
        // Room for the uplink first: nothing fails once the port is on.
        let up = KBox::new(
            SwitchUplink {
                core: self.core.clone(),
                id: port.id(),
                targets: Targets::new()?,
            },
            GFP_KERNEL,
        )?;
        self.core.add_port(port)?;
        Ok(up)
    }

    fn disconnect(&self, id: u32) {
        self.core.remove_port(id);
    }

    fn info(&self) -> uapi::Switch {
        let mut flags = 0;
        if super::is_default(&self.name) {
            flags |= uapi::SWITCH_DEFAULT;
        }
        if self.own_ports != 0 {
            flags |= uapi::SWITCH_HOST_PORT;
        }
        uapi::Switch {
            name: self.name,
            flags,
            ports: u32::try_from(self.ports()).unwrap_or(u32::MAX),
            ..Default::default()
        }
    }

    fn close_if_unused(&self) -> bool {
        let mut t = self.core.table.lock();
        let ports = t.slots.iter().filter(|s| s.port.is_some()).count();
        if ports > self.own_ports as usize {
            return false;
        }
        t.closed = true;
        true
    }
}

/// A port's uplink into a switch: the switch and the port's `Targets`.
pub(crate) struct SwitchUplink {
    core: Arc<Core>,
    id: u32,
    targets: KBox<Targets>,
}

impl Uplink for SwitchUplink {
    fn xmit(&mut self, hdr: &NetHdr, frame: &Frame<'_>) -> Sent {
        self.core.forward(self.id, hdr, frame, &mut self.targets)
    }

    fn another(&self) -> Result<KBox<dyn Uplink>> {
        let up: KBox<dyn Uplink> = KBox::new(
            SwitchUplink {
                core: self.core.clone(),
                id: self.id,
                targets: Targets::new()?,
            },
            GFP_KERNEL,
        )?;
        Ok(up)
    }
}

/// The ports one frame goes to: references taken under the table's lock,
/// used and dropped after it. Each uplink keeps one for all its frames.
pub(crate) struct Targets {
    ports: KVec<Arc<dyn Port>>,
}

impl Targets {
    fn new() -> Result<KBox<Self>> {
        let ports = KVec::with_capacity(MAX_PORTS, GFP_KERNEL)?;
        Ok(KBox::new(Self { ports }, GFP_KERNEL)?)
    }

    /// Add a port. There is room for every port, so this never allocates
    /// and never drops the new reference under the lock.
    fn add(&mut self, p: &Arc<dyn Port>) {
        let _ = self.ports.push_within_capacity(p.clone());
    }
}

fn max_age() -> u64 {
    msecs_to_jiffies(MAX_AGE_MS) as u64
}
