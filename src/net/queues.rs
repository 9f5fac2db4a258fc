// SPDX-License-Identifier: GPL-2.0

//! A port of several queue pairs (vhost multiqueue: QEMU opens one vhost
//! file a queue pair): one MAC on its backend, each queue pair a device of
//! its own with its own uplink, and frames for the guest spread over the
//! queue pairs that run.
//!
//! Receive steering, as virtio-net asks of a multiqueue device without RSS:
//! a frame from a peer goes to the queue pair that last sent to that peer
//! (its uplink records it, by a hash of the peer's MAC), if the guest
//! posted receive buffers there; else to the first queue pair that has
//! some. A guest that uses fewer queue pairs than QEMU started (`ethtool
//! -L`) posts buffers only on those it uses.
//!
//! Locking: `QueuePort::members` is a spinlock and a leaf: taken to add,
//! remove or pick a queue pair (references are taken under it, and the
//! frame is delivered after it is dropped).

use kernel::{
    new_spinlock,
    prelude::*,
    sync::{
        Arc,
        SpinLock, //
    }, //
};

use super::Device;
use crate::{
    backend::{
        Port,
        Sent,
        Uplink, //
    },
    mem::Frame,
    pvcore::{
        fdb::is_group,
        vnet::NetHdr, //
    }, //
};

/// Queue pairs one port may have.
pub(crate) const MAX_QUEUE_PAIRS: usize = 8;
/// Entries of the steering table (peers hashed into it).
const STEER: usize = 64;

struct Members {
    /// The running queue pairs, by index.
    devs: [Option<Arc<Device>>; MAX_QUEUE_PAIRS],
    /// The queue pair that last sent to a peer, by hash of the peer's MAC.
    steer: [u8; STEER],
}

/// The port of a guest NIC of several queue pairs.
#[pin_data]
pub(crate) struct QueuePort {
    id: u32,
    mac: [u8; 6],
    #[pin]
    members: SpinLock<Members>,
}

fn slot(mac: &[u8]) -> usize {
    let h = mac
        .iter()
        .fold(0u32, |h, &b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    (h as usize) % STEER
}

impl QueuePort {
    pub(crate) fn new(id: u32, mac: [u8; 6]) -> Result<Arc<Self>> {
        Arc::pin_init(
            try_pin_init!(Self {
                id,
                mac,
                members <- new_spinlock!(Members {
                    devs: [const { None }; MAX_QUEUE_PAIRS],
                    steer: [0; STEER],
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// Queue pair `index` runs: frames may go to `dev`.
    pub(crate) fn add(&self, index: usize, dev: Arc<Device>) {
        let mut m = self.members.lock();
        let old = match m.devs.get_mut(index) {
            Some(d) => d.replace(dev),
            None => Some(dev),
        };
        drop(m);
        // A device's last reference is never dropped under the spinlock.
        drop(old);
    }

    /// Queue pair `index` stopped.
    pub(crate) fn remove(&self, index: usize) {
        let old = self
            .members
            .lock()
            .devs
            .get_mut(index)
            .and_then(Option::take);
        drop(old);
    }

    /// An uplink for queue pair `index`, over `inner` (an uplink of this
    /// port): it records where the guest sends from, for the steering.
    pub(crate) fn uplink(
        self: &Arc<Self>,
        index: usize,
        inner: KBox<dyn Uplink>,
    ) -> Result<KBox<dyn Uplink>> {
        let up: KBox<dyn Uplink> = KBox::new(
            QueueUplink {
                port: self.clone(),
                index: u8::try_from(index).map_err(|_| EINVAL)?,
                inner,
            },
            GFP_KERNEL,
        )?;
        Ok(up)
    }

    /// The queue pair for a frame from `src`, and the first running one
    /// after it with receive buffers, as references.
    fn pick(&self, src: &[u8]) -> (Option<Arc<Device>>, Option<Arc<Device>>) {
        let m = self.members.lock();
        let want = m.steer.get(slot(src)).map_or(0, |&i| usize::from(i));
        let first = m.devs.get(want).and_then(Option::clone);
        let other = m
            .devs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != want)
            .find_map(|(_, d)| d.as_ref().filter(|d| d.rx_posted()).cloned());
        (first, other)
    }
}

impl Port for QueuePort {
    fn id(&self) -> u32 {
        self.id
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn deliver(&self, hdr: &NetHdr, frame: &Frame<'_>) {
        let src = frame.head().get(6..12).unwrap_or(&[]);
        let (first, other) = self.pick(src);
        // The references are dropped after the lock (in `pick`).
        let dev = match first {
            Some(d) if d.rx_posted() => Some(d),
            Some(d) => other.or(Some(d)),
            None => other,
        };
        if let Some(d) = dev {
            d.deliver(hdr, frame);
        }
    }
}

/// A queue pair's uplink: the port's, recording the queue pair each unicast
/// destination was last sent from.
struct QueueUplink {
    port: Arc<QueuePort>,
    index: u8,
    inner: KBox<dyn Uplink>,
}

impl Uplink for QueueUplink {
    fn xmit(&mut self, hdr: &NetHdr, frame: &Frame<'_>) -> Sent {
        if let Some(dst) = frame.head().first_chunk::<6>() {
            if !is_group(dst) {
                if let Some(s) = self.port.members.lock().steer.get_mut(slot(dst)) {
                    *s = self.index;
                }
            }
        }
        self.inner.xmit(hdr, frame)
    }

    fn another(&self) -> Result<KBox<dyn Uplink>> {
        self.port
            .uplink(usize::from(self.index), self.inner.another()?)
    }
}
