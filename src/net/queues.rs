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
//! remove or pick a queue pair (one reference is taken under it, and the
//! frame is delivered after it is dropped). The steering table is atomics:
//! transmit never takes the lock.

use kernel::{
    new_spinlock,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        SpinLock, //
    }, //
};

use super::Device;
use crate::{
    backend::{
        Delivery,
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

/// The port of a guest NIC of several queue pairs.
#[pin_data]
pub(crate) struct QueuePort {
    id: u32,
    mac: [u8; 6],
    /// The running queue pairs, by index.
    #[pin]
    members: SpinLock<[Option<Arc<Device>>; MAX_QUEUE_PAIRS]>,
    /// The queue pair that last sent to a peer, by hash of the peer's MAC:
    /// written by each transmitted frame, read by each delivered one, so
    /// lock-free (a stale entry only steers one frame elsewhere).
    steer: [Atomic<u32>; STEER],
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
                members <- new_spinlock!([const { None }; MAX_QUEUE_PAIRS]),
                steer: [const { Atomic::new(0) }; STEER],
            }),
            GFP_KERNEL,
        )
    }

    /// Queue pair `index` runs: frames may go to `dev`.
    pub(crate) fn add(&self, index: usize, dev: Arc<Device>) {
        let mut m = self.members.lock();
        let old = match m.get_mut(index) {
            Some(d) => d.replace(dev),
            None => Some(dev),
        };
        drop(m);
        // A device's last reference is never dropped under the spinlock.
        drop(old);
    }

    /// Queue pair `index` stopped.
    pub(crate) fn remove(&self, index: usize) {
        let old = self.members.lock().get_mut(index).and_then(Option::take);
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

    /// The queue pair for a frame from `src`: the steered one if the guest
    /// posted buffers there, else the first running one that has some, else
    /// the steered one anyway (its backlog holds the frame). One reference,
    /// dropped by the caller after the lock.
    fn pick(&self, src: &[u8]) -> Option<Arc<Device>> {
        let want = self
            .steer
            .get(slot(src))
            .map_or(0, |s| s.load(Relaxed) as usize);
        let m = self.members.lock();
        let steered = m.get(want).and_then(Option::as_ref);
        steered
            .filter(|d| d.rx_posted())
            .or_else(|| m.iter().flatten().find(|d| d.rx_posted()))
            .or(steered)
            .or_else(|| m.iter().flatten().next())
            .cloned()
    }
}

impl Port for QueuePort {
    fn id(&self) -> u32 {
        self.id
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn deliver(&self, hdr: &NetHdr, frame: &Frame<'_>, how: Delivery) {
        let src = frame.head().get(6..12).unwrap_or(&[]);
        if let Some(d) = self.pick(src) {
            d.deliver(hdr, frame, how);
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
                if let Some(s) = self.port.steer.get(slot(dst)) {
                    // Written only when it changes: the cache line stays
                    // shared while one queue pair talks to a peer.
                    if s.load(Relaxed) != u32::from(self.index) {
                        s.store(u32::from(self.index), Relaxed);
                    }
                }
            }
        }
        self.inner.xmit(hdr, frame)
    }

    fn another(&self) -> Result<KBox<dyn Uplink>> {
        self.port
            .uplink(usize::from(self.index), self.inner.another()?)
    }

    fn completed(&mut self) -> u32 {
        self.inner.completed()
    }

    fn flush(&mut self) {
        self.inner.flush();
    }

    fn push(&mut self) {
        self.inner.push();
    }

    fn reclaim(&mut self) -> bool {
        self.inner.reclaim()
    }

    fn rx_service(&mut self) {
        self.inner.rx_service();
    }
}
