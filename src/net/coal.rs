// SPDX-License-Identifier: GPL-2.0

//! The control queue and notification coalescing (VIRTIO_NET_F_CTRL_VQ and
//! VIRTIO_NET_F_NOTF_COAL; offered on virtio-mmio only: the vhost
//! transport's control queue is QEMU's).
//!
//! The control queue (2) is served on the vCPU thread inside the guest's
//! notify, as the transmit queue is: every chain popped by the descriptor
//! engine into a small local `Chain`, its readable part read once through
//! `UserMem` and parsed by the core (`pvcore::ctrl`), the `ack` written
//! with `UserMem::write`, the chain completed in the used ring and the
//! used-buffer interrupt raised as EVENT_IDX says. A malformed chain (the
//! engine refuses it, no writable byte, an `ack` outside guest memory)
//! breaks the device like a malformed transmit chain
//! (`drop_ctrl_bad_chain`); a command the device does not know, or one with
//! short data, is answered VIRTIO_NET_ERR (`ctrl_errors`).
//!
//! Coalescing (`Coal`, one per direction: 0 receive, 1 transmit): once the
//! driver set `max_packets` > 1 and `usecs` > 0, a completion that wants an
//! interrupt while none is owed holds it back and starts the queue's
//! coalescing timer (`transport::poll`, `usecs` capped at
//! `ctrl::USECS_MAX`); every completion while one is owed (wanted or not:
//! with EVENT_IDX only the first of a burst is) counts towards
//! `max_packets`. The interrupt goes out when the count reaches
//! `max_packets` or the timer expires, whichever is first
//! (`coalesced_irqs` counts the interrupts held back, `coal_timer_irqs`
//! those the timer raised). The guest in its interrupt handler (an
//! InterruptStatus read that delivers) gets the bit at once.
//!
//! Completions come from any thread (receive: senders' vCPU threads, the
//! host port's softirq) and the timer runs in hard interrupt context, so
//! the state is atomics only, and an interrupt is never lost: whoever
//! raises first takes the count (`xchg` to 0), then raises; a completion
//! counted before that is covered by that interrupt (its used entry is
//! written before it is counted), one counted after starts a new period
//! and arms the timer. A timer that finds nothing held raises nothing.

use kernel::{
    prelude::*,
    sync::atomic::{
        Atomic,
        Full,
        Relaxed, //
    }, //
};

use super::{
    device::{
        ring_areas,
        DevState,
        Device, //
    },
    stats::C, //
};
use crate::{
    mem::{
        OwnThread,
        UserMem, //
    },
    pvcore::{
        ctrl::{
            self,
            Command,
            Refused, //
        },
        memmap::PAGE_SIZE,
        net_config::CTRL_QUEUE, //
    },
    transport::Transport, //
};

/// Control chains one notify answers: a driver has one command in flight
/// (Linux waits for each); a guest whose other vCPUs keep adding more gets
/// the rest at its next notify of the control queue.
const CTRL_BUDGET: u32 = 64;

/// Coalescing of one direction's used-buffer interrupts.
pub(super) struct Coal {
    /// `ctrl::Coal::to_bits` of the driver's parameters (0: none set).
    params: Atomic<u64>,
    /// Completions since an interrupt was first held back (0: none owed).
    held: Atomic<u32>,
}

impl Coal {
    pub(super) const fn new() -> Self {
        Self {
            params: Atomic::new(0),
            held: Atomic::new(0),
        }
    }
}

impl Device {
    /// `frames` used buffers were completed in queue `q` (0: receive, 1:
    /// transmit); `wanted`: the guest asked for an interrupt for them
    /// (EVENT_IDX, or no NO_INTERRUPT flag); `inject`: signal it now (false:
    /// the guest is in its interrupt handler, the bit is enough). Raises the
    /// used-buffer interrupt now, or holds it back (see the module
    /// documentation). Any thread.
    pub(super) fn completed(&self, q: u16, frames: u32, wanted: bool, inject: bool) {
        // A count of 0 would hold an interrupt back that no one raises.
        let frames = frames.max(1);
        let Some(c) = self.coal.get(usize::from(q)) else {
            if wanted {
                self.transport.used_buffers(q, inject);
            }
            return;
        };
        let params = ctrl::Coal::from_bits(c.params.load(Relaxed)).effective();
        let Some(p) = params.filter(|_| inject) else {
            if wanted {
                self.raise(q, inject);
            }
            return;
        };
        let n = if wanted {
            let old = c.held.fetch_add(frames, Full);
            if old == 0 {
                // The first held back: the period starts now.
                self.poll.coal_arm(q, u64::from(p.usecs) * 1000);
            }
            old.saturating_add(frames)
        } else {
            // Not wanted: counts only while an interrupt is owed.
            let mut cur = c.held.load(Relaxed);
            loop {
                if cur == 0 {
                    return;
                }
                match c.held.cmpxchg(cur, cur.saturating_add(frames), Full) {
                    Ok(_) => break cur.saturating_add(frames),
                    Err(now) => cur = now,
                }
            }
        };
        if n >= p.max_packets {
            self.raise(q, true);
        } else if wanted {
            self.counters.inc(C::CoalescedIrqs);
        }
    }

    /// Raise queue `q`'s used-buffer interrupt now, covering what was held
    /// back: the count is taken first, so a completion counted later starts
    /// a new period.
    pub(super) fn raise(&self, q: u16, inject: bool) {
        if let Some(c) = self.coal.get(usize::from(q)) {
            if c.held.load(Relaxed) != 0 && c.held.xchg(0, Full) != 0 {
                self.poll.coal_cancel(q);
            }
        }
        self.transport.used_buffers(q, inject);
    }

    /// The coalescing timer of queue `q` expired (hard interrupt context):
    /// raise what is still held back.
    pub(super) fn coal_due(&self, q: u16) {
        let Some(c) = self.coal.get(usize::from(q)) else {
            return;
        };
        if c.held.xchg(0, Full) != 0 {
            self.counters.inc(C::CoalTimerIrqs);
            self.transport.used_buffers(q, true);
        }
    }

    /// New coalescing parameters for queue `q`: what was held back under
    /// the old ones goes out now.
    fn set_coal(&self, q: u16, p: ctrl::Coal) {
        if let Some(c) = self.coal.get(usize::from(q)) {
            c.params.store(p.to_bits(), Relaxed);
            if c.held.load(Relaxed) != 0 {
                self.raise(q, true);
            }
        }
    }

    /// Queue `q` stopped: nothing is owed for it any more.
    pub(super) fn coal_stop(&self, q: u16) {
        if let Some(c) = self.coal.get(usize::from(q)) {
            c.held.xchg(0, Full);
            self.poll.coal_cancel(q);
        }
    }

    /// Device reset (and shutdown): the coalescing parameters are zero
    /// again (virtio 1.2, 5.1.6.5.6), nothing is owed.
    pub(super) fn coal_reset(&self) {
        for (q, c) in (0u16..).zip(self.coal.iter()) {
            c.params.store(0, Relaxed);
            c.held.xchg(0, Full);
            self.poll.coal_cancel(q);
        }
    }

    /// Carry out one control command; returns its `ack`.
    fn ctrl_command(&self, notf_coal: bool, cmd: Result<Command, Refused>) -> u8 {
        let done = match cmd {
            // Only with the feature negotiated.
            Ok(Command::CoalRx(_) | Command::CoalTx(_)) if !notf_coal => Err(Refused::Unknown {
                class: ctrl::CLASS_NOTF_COAL,
                cmd: 0xff,
            }),
            Ok(Command::CoalRx(p)) => {
                self.set_coal(0, p);
                Ok(())
            }
            Ok(Command::CoalTx(p)) => {
                self.set_coal(1, p);
                Ok(())
            }
            Err(e) => Err(e),
        };
        match done {
            Ok(()) => {
                self.counters.inc(C::CtrlCommands);
                ctrl::OK
            }
            Err(e) => {
                self.counters.inc(C::CtrlErrors);
                self.warn("control command refused (VIRTIO_NET_ERR)", e);
                ctrl::ERR
            }
        }
    }

    /// The driver notified the control queue, on the vCPU thread: answer
    /// what it made available (at most `CTRL_BUDGET` chains).
    pub(super) fn process_ctrl(&self, cpu: &dyn OwnThread, st: &mut DevState) {
        let mut served = 0u32;
        loop {
            let DevState {
                map,
                ctrlq,
                ctrl_chain,
                notf_coal,
                dirty_log,
                ..
            } = &mut *st;
            let Some(q) = ctrlq.as_mut() else { return };
            let mem = UserMem::new(cpu, map);
            if served >= CTRL_BUDGET {
                break;
            }
            match q.pop(&mem, map, ctrl_chain) {
                Ok(true) => {}
                Ok(false) => match q.enable_notify(&mem) {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => return self.broken(st, "control ring", e),
                },
                Err(e) => {
                    self.counters.inc(C::DropCtrlBadChain);
                    return self.broken(st, "malformed control chain", e);
                }
            }
            served += 1;
            let req = match ctrl::read_request(&mem, ctrl_chain) {
                Ok(r) => r,
                Err(e) => {
                    self.counters.inc(C::DropCtrlBadChain);
                    return self.broken(st, "malformed control chain", e);
                }
            };
            let ack = self.ctrl_command(*notf_coal, req.cmd);
            if mem.write(req.ack, &[ack]).is_err() {
                self.counters.inc(C::DropCtrlBadChain);
                return self.broken(st, "control chain's ack outside guest memory", req.ack);
            }
            if *dirty_log {
                cpu.mark_dirty(req.ack / PAGE_SIZE);
            }
            if let Err(e) = q.push(&mem, ctrl_chain.head(), 1) {
                return self.broken(st, "control used ring", e);
            }
        }
        let DevState {
            map,
            ctrlq,
            dirty_log,
            ..
        } = &mut *st;
        let Some(q) = ctrlq.as_mut() else { return };
        if *dirty_log {
            // The used ring (entries, index, avail_event) was written
            // through the VMM's mapping, which KVM does not log.
            let (gpa, len) = ring_areas(q.config())[2];
            (gpa / PAGE_SIZE..=(gpa + len - 1) / PAGE_SIZE).for_each(|g| cpu.mark_dirty(g));
        }
        let mem = UserMem::new(cpu, map);
        if served > 0 && q.need_notify(&mem).unwrap_or(true) {
            self.transport.used_buffers(CTRL_QUEUE, true);
        }
    }
}
