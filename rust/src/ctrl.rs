// SPDX-License-Identifier: GPL-2.0
//! The virtio-net control virtqueue (virtio 1.2, 5.1.6.5): what a control
//! command says, and the answer it gets.
//!
//! A control chain is the driver's `struct virtio_net_ctrl`: a
//! device-readable part (`u8 class`, `u8 command`, the command's data) and a
//! device-writable part whose first byte is the `ack` the device writes
//! ([`OK`] or [`ERR`]). The device knows one class, notification coalescing
//! (VIRTIO_NET_F_NOTF_COAL, 5.1.6.5.6), with its two global commands
//! ([`Command`]); anything else, and a command whose data is short or
//! unreadable, is answered [`ERR`] ([`Refused`]). Only a chain without a
//! writable byte cannot be answered at all ([`BadChain`]): the caller treats
//! it as a malformed chain.
//!
//! [`read_request`] reads the chain's readable part once, at most
//! [`READ_MAX`] bytes of it (the longest command it knows), from the local
//! copy of the chain the descriptor engine made ([`super::virtq::Chain`]).
//!
//! [`Coal`] is what the driver asked for and [`Coal::effective`] what the
//! device does with it: no coalescing for `usecs` 0 or `max_packets` up to
//! 1, and never a delay of more than [`USECS_MAX`] (delaying less than the
//! driver's maximum is within the spec: its values are upper bounds).

use super::traits::GuestMemory;
use super::virtq::Chain;

/// `ack`: the command was carried out.
pub const OK: u8 = 0;
/// `ack`: the command was refused (unknown, malformed, unsupported).
pub const ERR: u8 = 1;

/// Class VIRTIO_NET_CTRL_NOTF_COAL.
pub const CLASS_NOTF_COAL: u8 = 6;
/// VIRTIO_NET_CTRL_NOTF_COAL_TX_SET: `{ le32 tx_max_packets; le32 tx_usecs }`.
pub const NOTF_COAL_TX_SET: u8 = 0;
/// VIRTIO_NET_CTRL_NOTF_COAL_RX_SET: `{ le32 rx_max_packets; le32 rx_usecs }`.
pub const NOTF_COAL_RX_SET: u8 = 1;

/// Bytes of the class/command header.
pub const HDR_LEN: usize = 2;
/// Bytes of a coalescing command's data.
pub const COAL_LEN: usize = 8;
/// Readable bytes the device reads of a chain: the header and the longest
/// command data it knows. More is ignored (as QEMU does).
pub const READ_MAX: usize = HDR_LEN + COAL_LEN;
/// The longest delay of a used-buffer notification the device makes (10
/// ms), whatever the driver asks.
pub const USECS_MAX: u32 = 10_000;

/// Notification coalescing parameters of one direction, as the driver set
/// them (`max_packets`, then `usecs`, as in the command's data).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Coal {
    /// Used buffers to complete before a notification.
    pub max_packets: u32,
    /// Microseconds to delay a notification at most.
    pub usecs: u32,
}

impl Coal {
    /// What the device does for these parameters: `None` for no coalescing
    /// (`usecs` 0 or `max_packets` 0 or 1: every notification at once),
    /// else the parameters with `usecs` capped at [`USECS_MAX`].
    pub fn effective(self) -> Option<Coal> {
        if self.usecs == 0 || self.max_packets <= 1 {
            return None;
        }
        Some(Coal {
            max_packets: self.max_packets,
            usecs: self.usecs.min(USECS_MAX),
        })
    }

    /// The parameters in one word (`max_packets` high, `usecs` low), for an
    /// atomic store.
    pub fn to_bits(self) -> u64 {
        (u64::from(self.max_packets) << 32) | u64::from(self.usecs)
    }

    /// The parameters from [`Coal::to_bits`].
    pub fn from_bits(bits: u64) -> Self {
        let [a, b, c, d, e, f, g, h] = bits.to_le_bytes();
        Self {
            max_packets: u32::from_le_bytes([e, f, g, h]),
            usecs: u32::from_le_bytes([a, b, c, d]),
        }
    }
}

/// A control command the device carries out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// NOTF_COAL_TX_SET: coalescing of transmit completions.
    CoalTx(Coal),
    /// NOTF_COAL_RX_SET: coalescing of receive completions.
    CoalRx(Coal),
}

/// Why a command is answered [`ERR`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The readable part is shorter than the class/command header.
    NoHeader,
    /// A class or command the device does not know.
    Unknown {
        /// The class.
        class: u8,
        /// The command.
        cmd: u8,
    },
    /// A known command with less data than it takes (`len` bytes).
    Truncated {
        /// The class.
        class: u8,
        /// The command.
        cmd: u8,
        /// Bytes of data the chain had.
        len: usize,
    },
    /// The readable part is not all in guest memory.
    Unreadable,
}

/// A control chain that cannot be answered: the caller treats it as a
/// malformed chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadChain {
    /// No device-writable byte for the `ack`.
    NoAck,
}

/// One control request: the command (or why it is refused) and where its
/// `ack` goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// What to do, or why not.
    pub cmd: Result<Command, Refused>,
    /// Guest-physical address of the `ack` byte (the first writable byte).
    pub ack: u64,
}

impl Request {
    /// The `ack` for this request once carried out.
    pub fn ack_byte(&self) -> u8 {
        if self.cmd.is_ok() {
            OK
        } else {
            ERR
        }
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at.saturating_add(4)) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

/// The command in `head`, the first bytes (at most [`READ_MAX`]) of a
/// readable part of `len` bytes in all.
pub fn parse(head: &[u8], len: usize) -> Result<Command, Refused> {
    let Some((&[class, cmd], data)) = head.split_first_chunk::<HDR_LEN>() else {
        return Err(Refused::NoHeader);
    };
    if class != CLASS_NOTF_COAL || !matches!(cmd, NOTF_COAL_TX_SET | NOTF_COAL_RX_SET) {
        return Err(Refused::Unknown { class, cmd });
    }
    let have = len.saturating_sub(HDR_LEN).min(data.len());
    if have < COAL_LEN {
        return Err(Refused::Truncated {
            class,
            cmd,
            len: len.saturating_sub(HDR_LEN),
        });
    }
    let c = Coal {
        max_packets: le32(data, 0),
        usecs: le32(data, 4),
    };
    Ok(if cmd == NOTF_COAL_TX_SET {
        Command::CoalTx(c)
    } else {
        Command::CoalRx(c)
    })
}

/// Read the request of control chain `chain` (popped by the descriptor
/// engine: readable buffers first) from `mem`: its readable part up to
/// [`READ_MAX`] bytes, each buffer read once, and where its `ack` goes.
pub fn read_request<M: GuestMemory, const N: usize>(
    mem: &M,
    chain: &Chain<N>,
) -> Result<Request, BadChain> {
    let ack = chain
        .descs()
        .iter()
        .find(|d| d.writable)
        .map(|d| d.addr)
        .ok_or(BadChain::NoAck)?;
    let mut head = [0u8; READ_MAX];
    let mut got = 0usize;
    let mut len = 0usize;
    let mut readable = true;
    for d in chain.descs().iter().take_while(|d| !d.writable) {
        let dlen = usize::try_from(d.len).unwrap_or(usize::MAX);
        len = len.saturating_add(dlen);
        let want = dlen.min(READ_MAX.saturating_sub(got));
        let Some(dst) = head.get_mut(got..got.saturating_add(want)) else {
            break;
        };
        if dst.is_empty() {
            continue;
        }
        if mem.read(d.addr, dst).is_err() {
            readable = false;
            break;
        }
        got = got.saturating_add(want);
    }
    let cmd = if readable {
        parse(head.get(..got).unwrap_or(&[]), len)
    } else {
        Err(Refused::Unreadable)
    };
    Ok(Request { cmd, ack })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn coal_cmd(cmd: u8, max: u32, us: u32) -> [u8; 10] {
        let mut b = [0u8; 10];
        b[0] = CLASS_NOTF_COAL;
        b[1] = cmd;
        b[2..6].copy_from_slice(&max.to_le_bytes());
        b[6..].copy_from_slice(&us.to_le_bytes());
        b
    }

    #[test]
    fn good_commands() {
        let rx = coal_cmd(NOTF_COAL_RX_SET, 8, 2000);
        assert_eq!(
            parse(&rx, rx.len()),
            Ok(Command::CoalRx(Coal {
                max_packets: 8,
                usecs: 2000
            }))
        );
        let tx = coal_cmd(NOTF_COAL_TX_SET, 32, 50);
        assert_eq!(
            parse(&tx, tx.len()),
            Ok(Command::CoalTx(Coal {
                max_packets: 32,
                usecs: 50
            }))
        );
        // More data than the command takes: the rest is ignored.
        assert!(parse(&tx, 100).is_ok());
    }

    #[test]
    fn unknown_class_or_command() {
        for (class, cmd) in [(0u8, 0u8), (1, 0), (4, 0), (5, 0), (6, 2), (6, 3), (255, 1)] {
            let mut b = coal_cmd(0, 1, 1);
            b[0] = class;
            b[1] = cmd;
            assert_eq!(parse(&b, b.len()), Err(Refused::Unknown { class, cmd }));
        }
    }

    #[test]
    fn truncated_data_and_header() {
        let b = coal_cmd(NOTF_COAL_RX_SET, 8, 2000);
        for n in 2..10 {
            assert_eq!(
                parse(&b[..n], n),
                Err(Refused::Truncated {
                    class: CLASS_NOTF_COAL,
                    cmd: NOTF_COAL_RX_SET,
                    len: n - 2
                }),
                "{n}"
            );
        }
        assert_eq!(parse(&b[..1], 1), Err(Refused::NoHeader));
        assert_eq!(parse(&[], 0), Err(Refused::NoHeader));
        // A length that says less than the bytes given wins.
        assert!(matches!(parse(&b, 5), Err(Refused::Truncated { .. })));
    }

    #[test]
    fn effective_parameters() {
        let c = |max_packets, usecs| Coal { max_packets, usecs };
        assert_eq!(c(0, 0).effective(), None);
        assert_eq!(c(8, 0).effective(), None);
        assert_eq!(c(1, 100).effective(), None);
        assert_eq!(c(0, 100).effective(), None);
        assert_eq!(c(2, 100).effective(), Some(c(2, 100)));
        assert_eq!(c(8, 2000).effective(), Some(c(8, 2000)));
        assert_eq!(c(8, USECS_MAX).effective(), Some(c(8, USECS_MAX)));
        assert_eq!(c(8, u32::MAX).effective(), Some(c(8, USECS_MAX)));
        assert_eq!(c(u32::MAX, 10).effective(), Some(c(u32::MAX, 10)));
        for x in [c(0, 0), c(8, 2000), c(u32::MAX, 1), c(1, u32::MAX)] {
            assert_eq!(Coal::from_bits(x.to_bits()), x);
        }
    }

    #[test]
    fn ack_byte() {
        let ok = Request {
            cmd: Ok(Command::CoalRx(Coal::default())),
            ack: 0,
        };
        assert_eq!(ok.ack_byte(), OK);
        let err = Request {
            cmd: Err(Refused::NoHeader),
            ack: 0,
        };
        assert_eq!(err.ack_byte(), ERR);
    }
}
