// SPDX-License-Identifier: GPL-2.0

//! The switch's port into the host network stack: the `pvpsw0` interface,
//! a `net_device` made by hostport.c (Linux 7.2 has no Rust net_device
//! abstraction). Frames the host sends reach `pvpass_rs_host_xmit` from the
//! interface's work item (process context); frames for the host go to
//! `HostPort::deliver`, which copies them once into a new skb (from the
//! sending guest's pinned pages) and hands it to the stack.

use core::ffi::{c_int, c_void};
use core::ptr::NonNull;
use kernel::{error::from_err_ptr, ffi::c_char, prelude::*, sync::Arc};

use crate::{
    pinned::Frame,
    pvcore::vnet::{NetHdr, Offloads, HDR_LEN},
    switch,
};

/// The switch port id of the host port (attachment ids start at 1).
pub(crate) const HOST_PORT_ID: u32 = 0;

// Declared in glue.h.
extern "C" {
    fn pvpass_hostport_create(name: *const c_char) -> *mut c_void;
    fn pvpass_hostport_mac(hp: *mut c_void, mac: *mut u8);
    fn pvpass_hostport_destroy(hp: *mut c_void);
    fn pvpass_hostport_rx_alloc(hp: *mut c_void, len: u32, skb: *mut *mut c_void) -> *mut u8;
    fn pvpass_hostport_rx_commit(hp: *mut c_void, skb: *mut c_void, hdr: *const c_void) -> c_int;
}

/// The host interface; dropping the last reference unregisters it.
pub(crate) struct HostPort {
    hp: NonNull<c_void>,
    mac: [u8; 6],
}

// SAFETY: The C object locks for itself: `pvpass_hostport_rx_*` may be called
// from any thread in process context, concurrently; only `destroy` (in
// `Drop`, with the last reference) ends it.
unsafe impl Send for HostPort {}
// SAFETY: As above: every call takes `&self` and is thread safe in C.
unsafe impl Sync for HostPort {}

impl HostPort {
    fn create(name: &CStr) -> Result<Self> {
        // SAFETY: `name` is a NUL-terminated string that outlives the call.
        let hp = from_err_ptr(unsafe { pvpass_hostport_create(name.as_char_ptr()) })?;
        let hp = NonNull::new(hp).ok_or(ENOMEM)?;
        let mut mac = [0u8; 6];
        // SAFETY: `hp` is a live host port; `mac` has room for 6 bytes.
        unsafe { pvpass_hostport_mac(hp.as_ptr(), mac.as_mut_ptr()) };
        Ok(Self { hp, mac })
    }

    pub(crate) fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Give a frame (with its checked header) to the host stack. False if it
    /// was dropped (interface down, no memory, header refused by the stack).
    pub(crate) fn deliver(&self, hdr: &NetHdr, frame: &Frame<'_>) -> bool {
        let raw = NetHdr {
            num_buffers: 0,
            ..*hdr
        }
        .to_bytes();
        let Ok(len) = u32::try_from(frame.len()) else {
            return false;
        };
        let mut skb = core::ptr::null_mut();
        // SAFETY: `hp` is live while `self` is; `skb` is a valid out pointer.
        let data = unsafe { pvpass_hostport_rx_alloc(self.hp.as_ptr(), len, &mut skb) };
        if data.is_null() {
            return false;
        }
        // SAFETY: On success `data` points to `len` bytes of the new skb's
        // linear area, which nothing else references until the commit.
        let dst = unsafe { core::slice::from_raw_parts_mut(data, frame.len()) };
        frame.copy_to_slice(0, dst);
        // SAFETY: `skb` came from `pvpass_hostport_rx_alloc` on this port and
        // is handed over (consumed); `raw` is a whole virtio_net_hdr_v1.
        let r = unsafe { pvpass_hostport_rx_commit(self.hp.as_ptr(), skb, raw.as_ptr().cast()) };
        r == 0
    }
}

impl Drop for HostPort {
    fn drop(&mut self) {
        // SAFETY: The last reference: the switch no longer has the port, so
        // nothing calls `deliver` any more.
        unsafe { pvpass_hostport_destroy(self.hp.as_ptr()) };
    }
}

/// The host port while it is connected to the switch (owned by the module).
pub(crate) struct HostLink(());

impl HostLink {
    pub(crate) fn create(name: &CStr) -> Result<Self> {
        let port = Arc::new(HostPort::create(name)?, GFP_KERNEL)?;
        pr_info!(
            "host port {} is up, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\n",
            name.to_str().unwrap_or("?"),
            port.mac[0],
            port.mac[1],
            port.mac[2],
            port.mac[3],
            port.mac[4],
            port.mac[5]
        );
        switch::add_port(switch::Port::Host(port))?;
        Ok(Self(()))
    }
}

impl Drop for HostLink {
    fn drop(&mut self) {
        // Disconnecting drops the switch's reference, the last one: the
        // interface is unregistered then, outside the switch's lock.
        switch::remove_port(HOST_PORT_ID);
    }
}

/// Called by hostport.c's work item for each frame the host sent.
///
/// # Safety
///
/// `hdr` points to a `struct virtio_net_hdr_v1` and `data` to `len` readable
/// bytes, both valid for the duration of the call.
#[no_mangle]
unsafe extern "C" fn pvpass_rs_host_xmit(hdr: *const c_void, data: *const c_void, len: u32) {
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
    // The work item sends one frame at a time; its targets are taken for
    // the frame (process context, a kilobyte).
    let Ok(mut targets) = switch::Targets::new() else {
        return;
    };
    switch::forward(HOST_PORT_ID, &hdr, &Frame::kernel(frame), &mut targets);
}
