//! `pvpass-core`: the pure, `no_std` logic of pvpass.
//!
//! This crate decides whether a guest's DMA request is safe and where it goes. It
//! never allocates, never panics on guest input, contains no `unsafe`, and uses only
//! `core`. The kernel module includes the module files directly through a `#[path]`
//! module block, so this file holds nothing but crate attributes, docs and `mod`
//! lines; every module refers to its siblings through `super::`.
//!
//! - [`virtio_dev`]: the transport-independent state of a virtio device: status
//!   and reset, feature negotiation, queue registers, interrupt status.
//! - [`net_config`]: the virtio-net device type: feature bits and their
//!   dependencies, the config space (MAC, link status, MTU).
//! - [`virtio_mmio`]: the virtio-mmio v2 register file of one virtio-net device.
//! - [`ctrl`]: the virtio-net control queue's commands (notification
//!   coalescing) and their answers.
//! - [`traits`]: what the environment provides (guest memory access, page pinning).
//! - [`memmap`]: the VM's memory slots and checked GPA range lookup.
//! - [`virtq`]: the split virtqueue (virtio 1.x): setup checks, chain walking,
//!   used ring, notification suppression.
//! - [`translate`]: a checked chain becomes a page-split scatter list.
//! - [`txpolicy`]: when a device polls a transmit ring instead of being notified.
//! - [`pincache`]: per-VM pin quota, LRU of idle pins, refcounts of in-flight buffers.
//! - [`vnet`]: the virtio-net header: checks of what a guest sends, checksum completion.
//! - [`backlog`]: a port's queue of frames waiting for receive buffers.
//! - [`fdb`]: the L2 switch's MAC learning table: ageing, static (pinned) entries,
//!   per-port limits.
//! - [`ratelimit`]: a token bucket (per-port broadcast/multicast storm control).
//! - [`igb`]: the Intel 82576 as a shared NIC: VMDq pools without SR-IOV
//!   (register plan, descriptors, rings).

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::float_arithmetic,
    clippy::cast_possible_truncation,
    clippy::todo,
    clippy::unimplemented,
    clippy::unreachable
)]

pub mod backlog;
pub mod ctrl;
pub mod fdb;
pub mod igb;
pub mod memmap;
pub mod net_config;
pub mod pincache;
pub mod ratelimit;
pub mod traits;
pub mod translate;
pub mod txpolicy;
pub mod virtio_dev;
pub mod virtio_mmio;
pub mod virtq;
pub mod vnet;
