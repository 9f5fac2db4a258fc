// SPDX-License-Identifier: GPL-2.0

//! The control plane: what userspace reaches.
//!
//! - `file`: the /dev/pvpass file and its ioctls; `miscdev`: its
//!   registration with `.owner` set; `debugfs`: /sys/kernel/debug/pvpass.
//! - `attachment`: one attached VM (owned by the file that made it) and the
//!   reaper that lets it go when its VMM exits; `registry`: every
//!   attachment's reservation (id, window, GSI), for the conflict checks
//!   that span files.

pub(crate) mod attachment;
pub(crate) mod debugfs;
pub(crate) mod file;
pub(crate) mod miscdev;
pub(crate) mod registry;
