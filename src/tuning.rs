// SPDX-License-Identifier: GPL-2.0

//! The module's parameters (`insmod pvpass.ko tx_poll_us=50 tx_poll_adapt=1
//! tx_hold_used=0 inline_irq=1 rx_lend=1`),
//! read once at load: the data path's tunables, for measuring one design
//! against another in the same boot (bench/README.md).

use crate::module_parameters;

/// Most microseconds a transmit poll may be deferred (a larger value is
/// taken as this): a guest's frame waits at most about twice this long.
const TX_POLL_US_MAX: u32 = 10_000;

/// After serving transmit frames, the device leaves the guest's transmit
/// notifications off and polls the ring again within this many nanoseconds
/// (`net::tx`); 0: the guest notifies for every frame, as before.
pub(crate) fn tx_poll_ns() -> u64 {
    u64::from((*module_parameters::tx_poll_us.value()).min(TX_POLL_US_MAX)) * 1000
}

/// The transmit poll period adapts to the guest's rate and a deferred ring
/// is notified after a burst (`pvcore::txpolicy`; the default since the
/// same-run A/B of bench/results/run-2026-12-02); 0: the fixed period,
/// notifications fully off while deferred.
pub(crate) fn tx_poll_adapt() -> bool {
    *module_parameters::tx_poll_adapt.value() != 0
}

/// A transmit service that leaves a poll owed holds the used entries of
/// what it sent until the poll, or the device's next exit, publishes them
/// (`net::tx`); 0: every service publishes before it returns.
pub(crate) fn tx_hold_used() -> bool {
    *module_parameters::tx_hold_used.value() != 0
}

/// Edge-triggered GSIs are injected on the raising thread when it may
/// (`kvm::IrqFd`).
pub(crate) fn inline_irq() -> bool {
    *module_parameters::inline_irq.value() != 0
}

/// A device lends its receive buffers to a backend that asks (a NIC pool:
/// zero-copy receive, `net::lend`); 0: the backend copies into them.
pub(crate) fn rx_lend() -> bool {
    *module_parameters::rx_lend.value() != 0
}
