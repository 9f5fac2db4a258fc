// SPDX-License-Identifier: GPL-2.0

//! Counters for people, in debugfs (`pvpassctl stats` reads the same
//! counters through the ioctl):
//!
//! - `/sys/kernel/debug/pvpass/pinned_pages`: guest pages pinned by the whole
//!   module now (each attachment's rings and cached buffer pages). It returns
//!   to its earlier value when a VM goes away.
//! - `/sys/kernel/debug/pvpass/devices`: one line per attachment, `name=value`
//!   pairs: where it is, then every counter by its GET_COUNTERS name, then
//!   the receive side's state.
//! - `/sys/kernel/debug/pvpass/nic`: one line per VMDq pool of each NIC bound
//!   to pvpass: the backend, the pool, the attachment on it, its counters
//!   (frames, CPU copies, drops each way).

use kernel::{
    debugfs::{
        Dir,
        File, //
    },
    prelude::*,
    sync::atomic::Relaxed, //
};

use super::attachment;
use crate::{
    mem::PINNED_PAGES,
    pvcore::virtq::QueueIndices, //
};

#[pin_data]
pub(crate) struct Debugfs {
    #[pin]
    _pinned: File<()>,
    #[pin]
    _devices: File<()>,
    #[pin]
    _nic: File<()>,
    _dir: Dir,
}

fn write_devices(f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let mut r = Ok(());
    attachment::for_each(|a| {
        if r.is_err() {
            return;
        }
        let d = a.dev.rx_state();
        let m = a.dev.mac();
        r = (|| {
            write!(
                f,
                "id={} owner_pid={} gsi={} gpa={:#x} mac={:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                a.dev.id, a.owner_pid, a.gsi, a.dev.gpa, m[0], m[1], m[2], m[3], m[4], m[5],
            )?;
            for (name, value) in a.counters().iter() {
                write!(f, " {}={}", name, value)?;
            }
            writeln!(
                f,
                " backlog={} pending_isr={} rxq={}",
                d.backlog,
                d.pending_isr,
                RxQueue(d.queue)
            )
        })();
    });
    super::vhost::for_each(|l| {
        if r.is_err() {
            return;
        }
        let d = l.dev.rx_state();
        let m = l.dev.mac();
        r = (|| {
            write!(
                f,
                "id={} owner_pid={} transport=vhost mac={:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                l.dev.id, l.owner_pid, m[0], m[1], m[2], m[3], m[4], m[5],
            )?;
            for (name, value) in l.dev.counters().iter() {
                write!(f, " {}={}", name, value)?;
            }
            writeln!(f, " backlog={} rxq={}", d.backlog, RxQueue(d.queue))
        })();
    });
    r
}

impl Debugfs {
    /// The `pvpass` directory and its files; removed when dropped. Without
    /// CONFIG_DEBUG_FS this does nothing.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        let dir = Dir::new(c"pvpass");
        try_pin_init!(Self {
            _pinned <- dir.read_callback_file(c"pinned_pages", (), &|(): &(), f| {
                writeln!(f, "{}", PINNED_PAGES.load(Relaxed))
            }),
            _devices <- dir.read_callback_file(c"devices", (), &|(): &(), f| write_devices(f)),
            _nic <- dir.read_callback_file(c"nic", (), &|(): &(), f| {
                let mut r = Ok(());
                crate::backend::for_each(|b| {
                    if r.is_ok() {
                        r = b.write_queues(f);
                    }
                });
                r
            }),
            _dir: dir,
        }? Error)
    }
}

/// The receive queue's indices as `next_avail/used/avail/used_event/avail_event`.
struct RxQueue(Option<QueueIndices>);

impl core::fmt::Display for RxQueue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(i) => write!(
                f,
                "{}/{}/{}/{}/{}",
                i.next_avail, i.used, i.guest_avail, i.used_event, i.avail_event
            ),
            None => f.write_str("none"),
        }
    }
}
