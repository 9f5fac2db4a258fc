// SPDX-License-Identifier: GPL-2.0

//! The default switch's port into the host network stack: the `pvpsw0`
//! interface, a `net_device` made by glue/hostport.c (Linux 7.2 has no Rust
//! net_device abstraction). Frames the host sends reach
//! `pvpass_rs_host_xmit` from the interface's work item (process context)
//! and go through the port's uplink; frames for the host reach
//! `HostPort::deliver`, which copies them once into a new skb (from the
//! sending guest's pinned pages) and hands it to the stack.

use core::ffi::c_void;
use core::ptr::NonNull;
use kernel::{
    error::from_err_ptr,
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    }, //
};

use super::{
    Backend,
    Delivery,
    Link,
    Port,
    Uplink, //
};
use crate::{
    glue,
    mem::Frame,
    pvcore::vnet::{
        NetHdr,
        Offloads,
        HDR_LEN, //
    }, //
};

/// The host port's id on its switch (attachment ids start at 1).
pub(crate) const HOST_PORT_ID: u32 = 0;

/// The interface's sending side: the uplink its work item sends through
/// (one frame at a time; `None` before it is connected and once it is
/// being removed).
#[pin_data]
struct HostTx {
    #[pin]
    uplink: Mutex<Option<KBox<dyn Uplink>>>,
}

/// The host interface; dropping the last reference unregisters it.
struct HostPort {
    hp: NonNull<glue::HostPort>,
    mac: [u8; 6],
    /// The C side's context pointer: kept alive as long as the interface.
    _tx: Arc<HostTx>,
}

// SAFETY: The C object locks for itself: `pvpass_hostport_rx_*` may be called
// from any thread in process context, concurrently; only `destroy` (in
// `Drop`, with the last reference) ends it.
unsafe impl Send for HostPort {}
// SAFETY: As above: every call takes `&self` and is thread safe in C.
unsafe impl Sync for HostPort {}

impl HostPort {
    fn create(name: &CStr, tx: Arc<HostTx>) -> Result<Self> {
        let ctx = Arc::as_ptr(&tx).cast_mut().cast();
        // SAFETY: `name` is a NUL-terminated string that outlives the call;
        // `ctx` stays valid while the interface exists (`_tx` below).
        let hp = from_err_ptr(unsafe { glue::pvpass_hostport_create(name.as_char_ptr(), ctx) })?;
        let hp = NonNull::new(hp).ok_or(ENOMEM)?;
        let mut mac = [0u8; 6];
        // SAFETY: `hp` is a live host port; `mac` has room for 6 bytes.
        unsafe { glue::pvpass_hostport_mac(hp.as_ptr(), mac.as_mut_ptr()) };
        Ok(Self { hp, mac, _tx: tx })
    }
}

impl Port for HostPort {
    fn id(&self) -> u32 {
        HOST_PORT_ID
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Give a frame (with its checked header) to the host stack; dropped
    /// (counted by the interface) if it is down, memory is short or the
    /// stack refuses the header.
    fn deliver(&self, hdr: &NetHdr, frame: &Frame<'_>, _how: Delivery) {
        let raw = NetHdr {
            num_buffers: 0,
            ..*hdr
        }
        .to_bytes();
        let Ok(len) = u32::try_from(frame.len()) else {
            return;
        };
        let mut skb = core::ptr::null_mut();
        // SAFETY: `hp` is live while `self` is; `skb` is a valid out pointer.
        let data = unsafe { glue::pvpass_hostport_rx_alloc(self.hp.as_ptr(), len, &mut skb) };
        if data.is_null() {
            return;
        }
        // SAFETY: On success `data` points to `len` bytes of the new skb's
        // linear area, which nothing else references until the commit.
        let dst = unsafe { core::slice::from_raw_parts_mut(data.cast::<u8>(), frame.len()) };
        frame.copy_to(dst);
        // SAFETY: `skb` came from `pvpass_hostport_rx_alloc` on this port and
        // is handed over (consumed); `raw` is a whole virtio_net_hdr_v1.
        unsafe { glue::pvpass_hostport_rx_commit(self.hp.as_ptr(), skb, raw.as_ptr().cast()) };
    }
}

impl Drop for HostPort {
    fn drop(&mut self) {
        // SAFETY: The last reference: the switch no longer has the port, so
        // nothing calls `deliver` any more.
        unsafe { glue::pvpass_hostport_destroy(self.hp.as_ptr()) };
    }
}

/// The host port while it is connected to its switch (owned by the module).
pub(crate) struct HostLink {
    tx: Arc<HostTx>,
    /// Dropped after the uplink is taken (see `Drop`).
    link: Option<Link>,
}

impl HostLink {
    /// Make the interface `name` and connect it to `backend`.
    pub(crate) fn create(name: &CStr, backend: &Arc<dyn Backend>) -> Result<Self> {
        let tx = Arc::pin_init(pin_init!(HostTx { uplink <- new_mutex!(None) }), GFP_KERNEL)?;
        let port = Arc::new(HostPort::create(name, tx.clone())?, GFP_KERNEL)?;
        let m = port.mac;
        pr_info!(
            "host port {} is up, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\n",
            name.to_str().unwrap_or("?"),
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5]
        );
        let (link, uplink) = Link::connect(backend, port)?;
        *tx.uplink.lock() = Some(uplink);
        Ok(Self {
            tx,
            link: Some(link),
        })
    }
}

impl Drop for HostLink {
    fn drop(&mut self) {
        // The work item sends nothing more (it may be in a send now: the
        // lock waits for it); the uplink's reference on the switch goes.
        let uplink = self.tx.uplink.lock().take();
        drop(uplink);
        // Disconnecting drops the switch's reference on the port, the last
        // one: the interface is unregistered then, outside the switch's lock.
        drop(self.link.take());
    }
}

/// Called by hostport.c's work item for each frame the host sent.
///
/// # Safety
///
/// `ctx` is the context the interface was made with (a `HostTx`, alive
/// while the interface is); `hdr` points to a `struct virtio_net_hdr_v1`
/// and `data` to `len` readable bytes, both valid for the duration of the
/// call.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_host_xmit(
    ctx: *mut c_void,
    hdr: *const c_void,
    data: *const c_void,
    len: u32,
) {
    // SAFETY: Per the function's contract, `ctx` is a live `HostTx`.
    let tx = unsafe { &*ctx.cast::<HostTx>() };
    let Ok(len) = usize::try_from(len) else {
        return;
    };
    // SAFETY: Per the function's contract, `hdr` points to HDR_LEN bytes.
    let raw = unsafe { &*hdr.cast::<[u8; HDR_LEN]>() };
    // SAFETY: Per the function's contract, `data` points to `len` bytes.
    let frame = unsafe { core::slice::from_raw_parts(data.cast::<u8>(), len) };
    let mut hdr = NetHdr::parse(raw);
    // The host stack is trusted, but its frames meet the same rules as a
    // guest's before a guest sees them.
    if hdr.check(frame, Offloads::ALL).is_err() {
        return;
    }
    let mut uplink = tx.uplink.lock();
    if let Some(up) = uplink.as_deref_mut() {
        up.xmit(&hdr, &Frame::kernel(frame));
        up.push();
    }
}
