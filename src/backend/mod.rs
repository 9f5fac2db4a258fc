// SPDX-License-Identifier: GPL-2.0

//! Backends: what a device's frames are handed to, and what hands it the
//! frames it receives.
//!
//! A device is a [`Port`] of one backend, chosen by name at ATTACH
//! (`pvpass_attach::backend`). It sends through the [`Uplink`] the backend
//! gave it when it connected, and the backend delivers to it through
//! [`Port::deliver`]. Neither side names the other's type: the device does
//! not know it is on a switch, the switch does not know its ports are
//! devices (one is the host interface).
//!
//! Today's backends are switches (`switch`), made and deleted by name
//! (SWITCH_ADD/DEL); "default" is made at load, with the host port
//! (`hostport`). The interface is the one a NIC backend needs as well:
//! [`Sent::Pending`] for a transmit the backend completes later (the frame's
//! pins are then kept until its completion), [`Frame::segments`] for the
//! pinned pages of a frame as a scatterlist, [`Port::deliver`] may be
//! called from any thread, without waiting for the receiver, and a backend
//! that writes frames into memory itself (a NIC's receive queue) may borrow
//! the port's posted receive buffers instead ([`Port::lend`], [`Loan`],
//! [`Port::returned`], [`Uplink::reclaim`]).
//!
//! Lock order: `BACKENDS`, then a backend's own locks (a switch's table,
//! which is a leaf). `BACKENDS` is held only to find, add and delete a
//! backend, never while a frame is sent.

use core::ptr::NonNull;
use kernel::{
    prelude::*,
    sync::{
        global_lock,
        Arc, //
    }, //
};

use crate::{
    glue,
    mem::Frame,
    pvcore::vnet::NetHdr,
    uapi, //
};

pub(crate) use crate::pvcore::backlog::Delivery;

pub(crate) mod hostport;
pub(crate) mod switch;

/// The name of a backend: NUL-padded, as in the UAPI.
pub(crate) type Name = [u8; uapi::NAME_LEN];

/// EADDRINUSE, what `Backend::connect` answers for a MAC another port has
/// (not among the kernel crate's named error codes).
pub(crate) fn eaddrinuse() -> Error {
    Error::from_errno(-(kernel::bindings::EADDRINUSE as i32))
}

/// The name of the switch made at load (and of the empty ATTACH name).
pub(crate) const DEFAULT: &[u8] = b"default";

/// One end of a backend: a device, or the host interface.
pub(crate) trait Port: Send + Sync {
    /// The port's id, unique among a backend's ports (an attachment id;
    /// the host port's is `hostport::HOST_PORT_ID`).
    fn id(&self) -> u32;
    /// The port's own MAC.
    fn mac(&self) -> [u8; 6];
    /// A frame for this port (with its checked virtio-net header), on the
    /// sender's thread, with no lock of the backend held, reaching it as
    /// `how` (addressed to it, or flooded to every port). Never waits for
    /// the receiving side: what cannot be delivered now is queued or dropped
    /// (counted by the port); flooded frames may take only part of what a
    /// port queues, so that a flood cannot crowd out its own traffic.
    fn deliver(&self, hdr: &NetHdr, frame: &Frame<'_>, how: Delivery);
    /// Receive buffer provider: lend the backend up to `out.len()` of the
    /// buffers the guest posted, each for one frame of at most `need` bytes,
    /// oldest first; returns how many. The backend returns them in the same
    /// order ([`Port::returned`]), or all at once by [`Uplink::reclaim`],
    /// and writes nothing into one after that. Never waits (any thread).
    /// `Some(0)`: none now (no buffer posted, its receive side busy: the
    /// backend asks again after [`Uplink::rx_service`]); `None`: the port
    /// does not lend (now): the backend delivers copies by `deliver`.
    fn lend(&self, _need: usize, _out: &mut [Loan]) -> Option<usize> {
        None
    }
    /// The backend is done with the port's oldest loan, `token`: `frame`
    /// is in it, or is to be copied into it (`Returned`). False if the port
    /// cannot take it now (its receive side busy): the backend keeps it,
    /// and asks again after the port called [`Uplink::rx_service`]. Never
    /// waits.
    fn returned(&self, _token: u16, _r: Returned<'_>) -> bool {
        true
    }
}

/// A receive buffer a port lends its backend ([`Port::lend`]).
#[derive(Clone, Copy)]
pub(crate) struct Loan {
    /// The port's name for it, given back with [`Port::returned`].
    pub(crate) token: u16,
    /// Where the frame may be written as it is: `need` bytes from `off` in
    /// the pinned page `page`, which stays pinned until the loan is
    /// returned or reclaimed. `None`: the buffer is not in one piece of
    /// host memory (or is too small): the backend writes the frame into
    /// memory of its own and the port copies it ([`Returned::Copy`]).
    pub(crate) direct: Option<(NonNull<glue::Page>, usize)>,
}

/// How a loan comes back ([`Port::returned`]).
pub(crate) enum Returned<'a> {
    /// A frame of `len` bytes was written where the loan said
    /// ([`Loan::direct`]), with the header `hdr`.
    Written(NetHdr, u32),
    /// A frame to copy into the buffer, with its header.
    Copy(NetHdr, Frame<'a>),
    /// Nothing was written (a damaged frame): the buffer goes back empty.
    /// For the newest loan (one the backend could not post), it goes back
    /// unused instead, as if never lent.
    Empty,
}

/// What became of a frame handed to an uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Delivered (every receiver has its copy): the sender may give the
    /// buffer back now.
    Done,
    /// Taken by the backend, which completes it later (a NIC that reads
    /// the frame's pages itself): the sender keeps the buffer and its pins
    /// until [`Uplink::completed`] counts it (or [`Uplink::flush`]
    /// returned).
    Pending,
    /// Dropped: the source MAC is another port's own, a group address or
    /// all zeros.
    Spoofed,
    /// Dropped: a broadcast or multicast over the sender's rate limit.
    Storm,
    /// Dropped: the sender is no longer connected.
    NotAPort,
}

/// A port's way into its backend, used on the sender's thread (a device
/// keeps its own under its transmit lock, so it may keep scratch state).
pub(crate) trait Uplink: Send {
    /// Hand over one frame (`hdr` its checked virtio-net header).
    fn xmit(&mut self, hdr: &NetHdr, frame: &Frame<'_>) -> Sent;
    /// Another uplink of the same port, for another sender of it (a queue
    /// pair of a multiqueue port: each sends on its own thread).
    fn another(&self) -> Result<KBox<dyn Uplink>>;
    /// How many of this uplink's [`Sent::Pending`] frames the backend has
    /// finished with since the last call, oldest first (a backend completes
    /// an uplink's frames in the order they were sent).
    fn completed(&mut self) -> u32 {
        0
    }
    /// Waits (bounded) until the backend no longer reads any of this
    /// uplink's pending frames, stopping what reads them if it must: after
    /// it returns, every pending frame counts as completed (and is not
    /// counted by `completed` again), and their buffers may be unpinned.
    /// Process context.
    fn flush(&mut self) {}
    /// The end of a batch of `xmit`s (one transmit service): a backend that
    /// hands frames to hardware may have held them back until now (a NIC's
    /// tail register written once per batch, not per frame). `flush` and a
    /// later `xmit` that finds its ring full push too.
    fn push(&mut self) {}
    /// The backend stops writing into the port's loans and forgets them
    /// (a NIC: the pool's receive queue disabled and confirmed): after it
    /// returns, none is written or returned, and their pages may be
    /// unpinned. False if that could not be confirmed: the pages must then
    /// stay pinned. Process context, no lock of the port's receive side held.
    fn reclaim(&mut self) -> bool {
        true
    }
    /// Whether the backend borrows the port's receive buffers
    /// ([`Port::lend`]): then the port tells it when its guest posts some
    /// ([`Uplink::rx_service`]).
    fn borrows_rx(&self) -> bool {
        false
    }
    /// The port's receive side was busy or had no buffers when the backend
    /// last asked (`lend`, `returned`), or the guest posted buffers: the
    /// backend asks again now. On the port's own thread, no lock of its
    /// receive side held.
    fn rx_service(&mut self) {}
}

/// A backend: a switch, or a NIC (`nic::vm`).
pub(crate) trait Backend: Send + Sync {
    /// Its name (NUL-padded).
    fn name(&self) -> &Name;
    /// Connect `port`. EADDRINUSE if another port has its MAC, ENODEV if
    /// the backend is being deleted, ENOSPC if it is full.
    fn connect(&self, port: Arc<dyn Port>) -> Result<KBox<dyn Uplink>>;
    /// Disconnect port `id`: nothing reaches it or leaves it any more, once
    /// the senders inside a delivery to it are done. Its last reference is
    /// dropped with no lock held.
    fn disconnect(&self, id: u32);
    /// What SWITCH_LIST reports about it.
    fn info(&self) -> uapi::Switch;
    /// Stop taking ports if no device is connected (ports of its own, such
    /// as a host port, do not count): true if it is now closed, for
    /// deletion.
    fn close_if_unused(&self) -> bool;
    /// A line per hardware queue set with its counters, for debugfs `nic`
    /// (a NIC's pools; nothing for a switch).
    fn write_queues(&self, _f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        Ok(())
    }
}

/// A port while connected; dropping it disconnects the port.
pub(crate) struct Link {
    backend: Arc<dyn Backend>,
    id: u32,
}

impl Link {
    /// Connect `port` to `backend`: the link (for the owner) and the uplink
    /// (for the port's sending side).
    pub(crate) fn connect(
        backend: &Arc<dyn Backend>,
        port: Arc<dyn Port>,
    ) -> Result<(Self, KBox<dyn Uplink>)> {
        let id = port.id();
        let uplink = backend.connect(port)?;
        Ok((
            Self {
                backend: backend.clone(),
                id,
            },
            uplink,
        ))
    }

    pub(crate) fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.backend.disconnect(self.id);
    }
}

global_lock! {
    // SAFETY: Initialised by `init` in the module initialiser, before the misc
    // device (the only way in) is registered.
    unsafe(uninit) static BACKENDS: Mutex<KVec<Arc<dyn Backend>>> = KVec::new();
}

/// Called once, from the module initialiser.
pub(crate) fn init() {
    // SAFETY: Called exactly once, before any other use of `BACKENDS`.
    unsafe { BACKENDS.init() };
}

/// `name` as a NUL-padded UAPI name: 1 to `NAME_LEN - 1` characters of
/// `[A-Za-z0-9_.-]`, NUL-terminated, the rest zero. The empty name is
/// "default". EINVAL otherwise.
pub(crate) fn parse_name(raw: &Name) -> Result<Name> {
    let len = raw.iter().position(|&b| b == 0).ok_or(EINVAL)?;
    if raw.iter().skip(len).any(|&b| b != 0) {
        return Err(EINVAL);
    }
    let mut name = [0u8; uapi::NAME_LEN];
    if len == 0 {
        for (d, s) in name.iter_mut().zip(DEFAULT) {
            *d = *s;
        }
        return Ok(name);
    }
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-';
    if !raw.iter().take(len).all(|&b| ok(b)) {
        return Err(EINVAL);
    }
    name.copy_from_slice(raw);
    Ok(name)
}

/// Is `name` the default switch's?
pub(crate) fn is_default(name: &Name) -> bool {
    name.starts_with(DEFAULT) && name.get(DEFAULT.len()) == Some(&0)
}

/// The backend named `name`.
pub(crate) fn find(name: &Name) -> Option<Arc<dyn Backend>> {
    BACKENDS.lock().iter().find(|b| b.name() == name).cloned()
}

/// Register a new backend. EEXIST if one has its name, ENOSPC past
/// `MAX_SWITCHES`.
pub(crate) fn add(b: Arc<dyn Backend>) -> Result {
    let mut all = BACKENDS.lock();
    if all.iter().any(|o| o.name() == b.name()) {
        return Err(EEXIST);
    }
    if all.len() >= uapi::MAX_SWITCHES {
        return Err(ENOSPC);
    }
    all.push(b, GFP_KERNEL)?;
    Ok(())
}

/// Delete the backend `name`: ENOENT if there is none, EBUSY if it has
/// ports (or is the default switch). Dropped outside the lock.
pub(crate) fn delete(name: &Name) -> Result {
    let gone = {
        let mut all = BACKENDS.lock();
        let i = all.iter().position(|b| b.name() == name).ok_or(ENOENT)?;
        if is_default(name) {
            return Err(EBUSY);
        }
        if !all.get(i).is_some_and(|b| b.close_if_unused()) {
            return Err(EBUSY);
        }
        all.remove(i).map_err(|_| ENOENT)?
    };
    drop(gone);
    Ok(())
}

/// Take the backend `name` out of the list whatever its ports (a NIC's, at
/// unbind: its devices stay attached to it, cut off). Dropped outside the
/// lock.
pub(crate) fn remove(name: &Name) {
    let gone = {
        let mut all = BACKENDS.lock();
        all.iter()
            .position(|b| b.name() == name)
            .and_then(|i| all.remove(i).ok())
    };
    drop(gone);
}

/// Remove every backend (module unload: no device is attached any more).
pub(crate) fn clear() {
    let all = core::mem::take(&mut *BACKENDS.lock());
    drop(all);
}

/// Call `f` for every backend, in the order they were made.
pub(crate) fn for_each(mut f: impl FnMut(&dyn Backend)) {
    for b in BACKENDS.lock().iter() {
        f(&**b);
    }
}
