// SPDX-License-Identifier: GPL-2.0

//! The virtio-net device: what a guest's driver sees behind its transport,
//! and how its frames reach its backend.
//!
//! - `device`: one attached device, its state and how it follows the VM's
//!   memory map; what the transport drives (`OnVcpu`);
//! - `tx`: the transmit queue, on the guest's vCPU thread;
//! - `rx`: the receive queue, from any thread, and the backlog;
//! - `lend`: zero-copy receive, the guest's buffers lent to the backend;
//! - `coal`: the control queue (virtio-mmio) and notification coalescing;
//! - `queues`: a port of several queue pairs (vhost multiqueue);
//! - `stats`: the counter table;
//! - `ffi`: the entry points the C glue calls.

mod coal;
mod device;
mod ffi;
mod lend;
pub(crate) mod queues;
mod rx;
pub(crate) mod stats;
mod tx;

pub(crate) use device::{
    Device,
    ShutdownOnDrop,
    StopPollOnDrop, //
};
