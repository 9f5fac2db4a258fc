// SPDX-License-Identifier: GPL-2.0

//! The NIC's registers: BAR0 through the kernel crate's `pci::Bar`, seen by
//! the core's programming plan as its [`Regs`].
//!
//! Offsets come from the plan at run time, so every access goes through the
//! bar's bounds-checked `try_read32`/`try_write32` (an offset outside the
//! 128 KiB window reads as all ones and writes nothing; the plan only forms
//! offsets of registers that exist).

use kernel::{
    io::Io,
    pci,
    time::{
        delay::{
            fsleep,
            udelay, //
        },
        Delta, //
    }, //
};

use crate::pvcore::igb::Regs;

/// Size of the 82576's BAR0: 128 KiB of memory space.
pub(crate) const BAR0_SIZE: usize = 0x2_0000;

/// BAR0, mapped for the time the driver is bound.
pub(crate) type Bar0<'a> = pci::Bar<'a, BAR0_SIZE>;

/// How the plan's bounded polls wait between two reads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Process context: `fsleep`.
    Sleep,
    /// Atomic context (the interrupt handler, NAPI): `udelay`.
    Spin,
}

/// BAR0 as the plan's registers.
pub(crate) struct BarRegs<'r, 'a> {
    bar: &'r Bar0<'a>,
    wait: Wait,
}

impl<'r, 'a> BarRegs<'r, 'a> {
    pub(crate) fn new(bar: &'r Bar0<'a>, wait: Wait) -> Self {
        Self { bar, wait }
    }
}

impl Regs for BarRegs<'_, '_> {
    fn read32(&mut self, off: u32) -> u32 {
        let Ok(off) = usize::try_from(off) else {
            return u32::MAX;
        };
        self.bar.try_read32(off).unwrap_or(u32::MAX)
    }

    fn write32(&mut self, off: u32, val: u32) {
        if let Ok(off) = usize::try_from(off) {
            let _ = self.bar.try_write32(val, off);
        }
    }

    fn delay_us(&mut self, us: u32) {
        let d = Delta::from_micros(i64::from(us));
        match self.wait {
            Wait::Sleep => fsleep(d),
            // The plan's polls wait 10 us at a time.
            Wait::Spin => udelay(d),
        }
    }
}
