// SPDX-License-Identifier: GPL-2.0

//! The control plane: what userspace reaches.
//!
//! - `file`: the /dev/pvpass file and its ioctls; `miscdev`: its
//!   registration with `.owner` set; `debugfs`: /sys/kernel/debug/pvpass.
//! - `attachment`: one attached VM (owned by the file that made it), the
//!   module's one list of them with their states (reserved, live,
//!   released), and the reaper that lets a VM go when its VMM exits.
//! - `vhost`: /dev/pvpass-vhost-net, the vhost-net ioctl protocol (a stock
//!   QEMU's `vhostfd=`), one queue pair and one port per file.

pub(crate) mod attachment;
pub(crate) mod debugfs;
pub(crate) mod file;
pub(crate) mod miscdev;
pub(crate) mod vhost;
