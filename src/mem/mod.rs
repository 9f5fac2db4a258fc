// SPDX-License-Identifier: GPL-2.0

//! Guest memory the data path reaches from any thread: pinned pages.
//!
//! - `pins`: the pin cache of one VM (`pvcore::pincache`) bound to the
//!   kernel's page pinning, and pinned buffers (a translated chain plus its
//!   pins);
//! - `page`: `PinnedPage`, one pinned page borrowed from its pin token;
//! - `ring`: a virtqueue's rings through pinned pages;
//! - `frame`: a frame on its way from a sender to a backend port (checked
//!   head in kernel memory, the rest still in the sender's pinned pages).
//!
//! - `own`: the device's own thread (`OwnThread`), which alone reaches
//!   guest memory through the VMM's user addresses (`UserMem`).

pub(crate) mod frame;
pub(crate) mod own;
pub(crate) mod page;
pub(crate) mod pins;
pub(crate) mod ring;

pub(crate) use frame::{
    Frame,
    Segment, //
};
pub(crate) use own::{
    OwnThread,
    UserMem, //
};
pub(crate) use pins::{
    new_zeroed,
    Buf,
    Owner,
    PinBufError,
    VmPins,
    PINNED_PAGES,
    RX_QUOTA,
    TX_QUOTA, //
};
pub(crate) use ring::RingMem;
