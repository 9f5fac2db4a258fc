// SPDX-License-Identifier: GPL-2.0

//! A device's counters, from one table (`counters!`): the enum the data path
//! counts with, the names GET_COUNTERS and debugfs report, the fill of the
//! frozen `pvpass_stats` and a check of its field order.
//!
//! Counters in the `stats` part of the table are the fields of `struct
//! pvpass_stats`, in its order (checked at build time: field `i` is at
//! offset `8 + 8 * i`); counters added later go in the `newer` part and
//! are reported only by name (GET_COUNTERS, debugfs). A few entries are not
//! counted but read when a snapshot is taken (`gauge`): the pin caches'
//! numbers and whether the attachment was released.

use kernel::sync::atomic::{
    Atomic,
    Relaxed, //
};

use crate::uapi;

macro_rules! counters {
    (
        stats { $($(#[$sm:meta])* $svar:ident => $sfield:ident,)* }
        newer { $($(#[$nm:meta])* $nvar:ident => $nfield:ident,)* }
    ) => {
        /// A counter of a device (see the module documentation).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum C {
            $($(#[$sm])* $svar,)*
            $($(#[$nm])* $nvar,)*
        }

        /// How many counters there are.
        pub(crate) const NR: usize = [$(C::$svar,)* $(C::$nvar,)*].len();

        /// The counters' names (`pvpass_stats`' field names, then the newer
        /// ones), by `C` index.
        pub(crate) const NAMES: [&str; NR] = [$(stringify!($sfield),)* $(stringify!($nfield),)*];

        impl Snapshot {
            /// The values as `struct pvpass_stats` (the counters it has).
            pub(crate) fn to_stats(&self, id: u32) -> uapi::Stats {
                uapi::Stats {
                    id,
                    $($sfield: self.get(C::$svar),)*
                    ..Default::default()
                }
            }
        }

        // `pvpass_stats` has the `stats` counters, in the table's order.
        const _: () = {
            let mut i = 0usize;
            $(
                assert!(core::mem::offset_of!(uapi::Stats, $sfield) == 8 + 8 * i);
                assert!(C::$svar as usize == i);
                i += 1;
            )*
            assert!(core::mem::size_of::<uapi::Stats>() == 8 + 8 * i);
        };
    };
}

counters! {
    stats {
        MmioReads => mmio_reads,
        MmioWrites => mmio_writes,
        MmioBad => mmio_bad,
        Notifies => notifies,
        /// Gauge: the transport's.
        Interrupts => interrupts,
        TxFrames => tx_frames,
        TxBytes => tx_bytes,
        RxFrames => rx_frames,
        RxBytes => rx_bytes,
        DropTxBadChain => drop_tx_bad_chain,
        DropTxBadBuffer => drop_tx_bad_buffer,
        DropRxNoBuffer => drop_rx_no_buffer,
        DropRxTooSmall => drop_rx_too_small,
        /// Gauge: set by the attachment.
        Released => released,
        DropTxBadHdr => drop_tx_bad_hdr,
        DropRxNoOffload => drop_rx_no_offload,
        TxGso => tx_gso_frames,
        RxGso => rx_gso_frames,
        RxCsumCompleted => rx_csum_completed,
        DropTxSpoofed => drop_tx_spoofed,
        /// Gauge: the pin caches'.
        PagesPinned => pages_pinned,
        /// Gauge: the pin caches'.
        PinHits => pin_hits,
        /// Gauge: the pin caches'.
        PinMisses => pin_misses,
        RxDirect => rx_direct,
        RxDeferred => rx_deferred,
        DropRxPinFailed => drop_rx_pin_failed,
        MapRereads => map_rereads,
        /// Gauge: the transport's.
        Resamples => irq_resamples,
        TxYields => tx_yields,
        DropTxStorm => drop_tx_storm,
        DropRxScattered => drop_rx_scattered,
    }
    newer {
        /// Transmit services that left the guest's notifications off (a
        /// poll owed, `net::tx`).
        TxDeferrals => tx_deferrals,
        /// Polls of the transmit ring the poll timer ran: its task work
        /// (virtio-mmio), or the device's work it queued (vhost).
        TxPolls => tx_polls,
        /// Polls owed that went through a guest interrupt instead (a halted
        /// vCPU, or the thread was not in its guest).
        TxPollIrqs => tx_poll_irqs,
        /// Used-buffer interrupts held back by notification coalescing
        /// (`net::coal`).
        CoalescedIrqs => coalesced_irqs,
        /// Interrupts raised by a coalescing timer (`usecs` passed before
        /// `max_packets` completions).
        CoalTimerIrqs => coal_timer_irqs,
        /// Control queue commands carried out (VIRTIO_NET_OK).
        CtrlCommands => ctrl_commands,
        /// Control queue commands refused (VIRTIO_NET_ERR: unknown, short
        /// data, not negotiated).
        CtrlErrors => ctrl_errors,
        /// Malformed control chains (the device needs a reset).
        DropCtrlBadChain => drop_ctrl_bad_chain,
        /// Frames the backend read from the guest's pages itself and
        /// completed later (a NIC pool: zero copy).
        TxPending => tx_pending,
        /// Waits for the backend to finish with pending frames (the exit's
        /// end with frames still held, or `PENDING` held).
        TxFlushes => tx_flushes,
        /// Receive buffers lent to the backend, which writes frames into
        /// them itself (a NIC pool: `net::lend`).
        RxLent => rx_lent,
        /// Frames the backend wrote straight into a lent buffer (zero copy).
        RxZeroCopy => rx_zero_copy,
        /// Frames copied into a lent buffer that the backend could not take
        /// as it is (not in one piece of host memory): one copy each.
        RxBounced => rx_bounced,
        /// Lent buffers taken back unwritten (queue stop, reset, memory map
        /// change) and made available again.
        RxReclaimed => rx_reclaimed,
        /// Transmit services inside the guest's interrupt handler (its
        /// InterruptStatus read, virtio-mmio) that completed frames: that
        /// read's status signals them, no interrupt of their own.
        TxHandlerCompletions => tx_handler_completions,
        /// Flooded frames (broadcast, multicast, unknown unicast) dropped
        /// because they fill their half of the backlog already; the other
        /// half is kept for frames addressed to the port (`pvcore::backlog`).
        DropRxFlood => drop_rx_flood,
        /// Gauge: the transport's. Used-buffer interrupts not signalled
        /// because one signalled since the guest's last register access
        /// covers them (virtio-mmio, `transport::mmio`).
        MergedIrqs => merged_irqs,
    }
}

/// A device's counters, by `C` index.
pub(crate) struct Counters([Atomic<u64>; NR]);

impl Counters {
    pub(crate) const fn new() -> Self {
        Self([const { Atomic::new(0) }; NR])
    }

    pub(crate) fn add(&self, c: C, n: u64) {
        if let Some(a) = self.0.get(c as usize) {
            a.add(n, Relaxed);
        }
    }

    pub(crate) fn inc(&self, c: C) {
        self.add(c, 1);
    }

    /// Every counter now (gauges zero: the caller sets them).
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot([0; NR]);
        for (v, a) in s.0.iter_mut().zip(self.0.iter()) {
            *v = a.load(Relaxed);
        }
        s
    }
}

/// Counter values at one time, by `C` index.
pub(crate) struct Snapshot([u64; NR]);

impl Snapshot {
    pub(crate) fn get(&self, c: C) -> u64 {
        self.0.get(c as usize).copied().unwrap_or(0)
    }

    pub(crate) fn set(&mut self, c: C, v: u64) {
        if let Some(s) = self.0.get_mut(c as usize) {
            *s = v;
        }
    }

    /// `(name, value)` of every counter, in the table's order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        NAMES.iter().copied().zip(self.0.iter().copied())
    }
}

/// `name` as a NUL-padded `pvpass_counter` name.
pub(crate) fn uapi_name(name: &str) -> [u8; uapi::COUNTER_NAME_LEN] {
    let mut n = [0u8; uapi::COUNTER_NAME_LEN];
    // Names are identifiers far shorter than the field (one byte stays NUL).
    for (d, s) in n
        .iter_mut()
        .take(uapi::COUNTER_NAME_LEN - 1)
        .zip(name.bytes())
    {
        *d = s;
    }
    n
}

// Every name fits with its NUL.
const _: () = {
    let mut i = 0;
    while i < NR {
        assert!(NAMES[i].len() < uapi::COUNTER_NAME_LEN);
        i += 1;
    }
};
