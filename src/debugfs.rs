// SPDX-License-Identifier: GPL-2.0

//! Counters for people, in debugfs (`pvpassctl stats` reads the same
//! counters through the ioctl):
//!
//! - `/sys/kernel/debug/pvpass/pinned_pages`: guest pages pinned by the whole
//!   module now (each attachment's rings and cached buffer pages). It returns
//!   to its earlier value when a VM goes away.
//! - `/sys/kernel/debug/pvpass/devices`: one line per attachment, `name=value`
//!   pairs with the field names of `struct pvpass_stats`.

use kernel::{
    debugfs::{Dir, File},
    prelude::*,
    sync::atomic::Relaxed,
};

use crate::{attachment, pinned::PINNED_PAGES, pvcore::virtq::QueueIndices};

#[pin_data]
pub(crate) struct Debugfs {
    #[pin]
    _pinned: File<()>,
    #[pin]
    _devices: File<()>,
    _dir: Dir,
}

fn write_devices(f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let mut r = Ok(());
    attachment::for_each(|a| {
        if r.is_err() {
            return;
        }
        let s = a.dev.stats();
        let d = a.dev.rx_state();
        let m = a.dev.mac();
        r = writeln!(
            f,
            "id={} owner_pid={} gsi={} gpa={:#x} mac={:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} released={} \
             mmio_reads={} mmio_writes={} mmio_bad={} notifies={} interrupts={} \
             tx_frames={} tx_bytes={} rx_frames={} rx_bytes={} tx_gso_frames={} rx_gso_frames={} \
             rx_csum_completed={} rx_direct={} rx_deferred={} \
             pages_pinned={} pin_hits={} pin_misses={} map_rereads={} irq_resamples={} \
             drop_tx_bad_chain={} drop_tx_bad_buffer={} drop_tx_bad_hdr={} drop_tx_spoofed={} \
             drop_rx_no_buffer={} drop_rx_too_small={} drop_rx_no_offload={} drop_rx_pin_failed={} \
             tx_yields={} drop_tx_storm={} drop_rx_scattered={} \
             backlog={} pending_isr={} rxq={}",
            s.id, a.owner_pid, a.gsi, a.dev.gpa, m[0], m[1], m[2], m[3], m[4], m[5],
            u8::from(!a.is_live()),
            s.mmio_reads, s.mmio_writes, s.mmio_bad, s.notifies, s.interrupts,
            s.tx_frames, s.tx_bytes, s.rx_frames, s.rx_bytes, s.tx_gso_frames, s.rx_gso_frames,
            s.rx_csum_completed, s.rx_direct, s.rx_deferred,
            s.pages_pinned, s.pin_hits, s.pin_misses, s.map_rereads, s.irq_resamples,
            s.drop_tx_bad_chain, s.drop_tx_bad_buffer, s.drop_tx_bad_hdr, s.drop_tx_spoofed,
            s.drop_rx_no_buffer, s.drop_rx_too_small, s.drop_rx_no_offload, s.drop_rx_pin_failed,
            s.tx_yields, s.drop_tx_storm, s.drop_rx_scattered,
            d.backlog, d.pending_isr, RxQueue(d.queue),
        );
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
