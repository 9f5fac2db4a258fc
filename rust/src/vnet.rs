//! The virtio-net header (`struct virtio_net_hdr_v1`) that travels with every
//! frame, and the checks a frame from a guest must pass before the switch
//! carries it to another guest or to the host.
//!
//! Offloads are what make TCP fast: a guest that negotiated HOST_TSO4/6 sends
//! 64 KiB TCP segments and leaves the TCP checksum to the device
//! (`NEEDS_CSUM`). The switch forwards such frames unsegmented with their
//! header; a receiver that negotiated GUEST_CSUM / GUEST_TSO4/6 takes them as
//! they are. For a receiver without GUEST_CSUM the checksum is completed here
//! ([`complete_csum`]); a GSO frame for a receiver without GUEST_TSO is
//! dropped (and counted by the caller): segmenting is the job of a host stack,
//! not of this switch.
//!
//! A hostile guest chooses every header field. [`NetHdr::check`] rejects any
//! header whose offsets point outside the frame, any GSO type the sender did
//! not negotiate or that does not match the frame's ethertype, and oversized
//! frames, so that no receiver (a stock guest driver, the host stack) ever
//! sees a header the sender was not allowed to produce. TCP GSO is held to
//! what Linux's own stack accepts: `csum_offset` is TCP's checksum field
//! ([`TCP_CSUM_OFFSET`]) and `gso_size` is at least [`GSO_SIZE_MIN`] (a
//! 64 KiB frame with `gso_size` 1 makes the host stack cut about 8,000
//! segments, once it has raised the size to its own floor of 8).

/// Size of `struct virtio_net_hdr_v1` (VERSION_1 always has `num_buffers`).
pub const HDR_LEN: usize = 12;
/// Length of an Ethernet header without VLAN tag.
pub const ETH_HLEN: usize = 14;
/// Largest frame carried, GSO included: 64 KiB of IP packet plus the Ethernet
/// header and one VLAN tag (Linux's GSO_LEGACY_MAX_SIZE).
pub const FRAME_MAX: usize = 65536 + ETH_HLEN + 4;
/// Largest frame without GSO: MTU 1500 plus Ethernet header and a VLAN tag.
pub const MTU_FRAME_MAX: usize = 1500 + ETH_HLEN + 4;

/// `flags`: the checksum from `csum_start` to the end must be completed.
pub const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksum is known to be valid (receive side only).
pub const F_DATA_VALID: u8 = 2;

/// `gso_type`: not a GSO frame.
pub const GSO_NONE: u8 = 0;
/// `gso_type`: TCP over IPv4 segmentation.
pub const GSO_TCPV4: u8 = 1;
/// `gso_type`: TCP over IPv6 segmentation.
pub const GSO_TCPV6: u8 = 4;
/// `gso_type` flag: TCP ECN (CWR) handling; only with HOST_ECN, never offered.
pub const GSO_ECN: u8 = 0x80;

/// Smallest `gso_size` of a TCP GSO frame: Linux's `TCP_MIN_SND_MSS`, the
/// floor set by the fix for CVE-2019-11479. Smaller segments only make the
/// host stack (or a receiving guest) cut a 64 KiB frame into thousands.
pub const GSO_SIZE_MIN: u16 = 48;
/// `csum_offset` of a TCP GSO frame: the TCP checksum field, 16 bytes into
/// the TCP header (`virtio_net_hdr_to_skb` insists on it too).
pub const TCP_CSUM_OFFSET: u16 = 16;

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// Which offloads a port negotiated, in the direction that matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offloads {
    /// Partial checksums (`NEEDS_CSUM`): CSUM when sending, GUEST_CSUM when
    /// receiving.
    pub csum: bool,
    /// TCPv4 GSO: HOST_TSO4 when sending, GUEST_TSO4 when receiving.
    pub tso4: bool,
    /// TCPv6 GSO: HOST_TSO6 when sending, GUEST_TSO6 when receiving.
    pub tso6: bool,
}

impl Offloads {
    /// Everything (the host port: the host stack handles any frame).
    pub const ALL: Self = Self {
        csum: true,
        tso4: true,
        tso6: true,
    };
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HdrError {
    /// Fewer than [`HDR_LEN`] + [`ETH_HLEN`] bytes.
    TooShort,
    /// Longer than [`FRAME_MAX`], or longer than [`MTU_FRAME_MAX`] without GSO.
    TooLong,
    /// A flag other than `NEEDS_CSUM` / `DATA_VALID`.
    BadFlags,
    /// `NEEDS_CSUM` without CSUM negotiated.
    CsumNotNegotiated,
    /// `csum_start` / `csum_offset` point outside the frame, or before the
    /// end of the Ethernet header.
    CsumOutOfFrame,
    /// An unknown GSO type, the ECN flag, or a type not negotiated.
    BadGsoType,
    /// GSO type does not match the frame's ethertype.
    GsoProtocolMismatch,
    /// GSO without `NEEDS_CSUM`, with `gso_size` zero, with `csum_offset`
    /// other than [`TCP_CSUM_OFFSET`], or with `hdr_len` past the frame.
    BadGsoFields,
    /// GSO with `gso_size` from 1 to below [`GSO_SIZE_MIN`].
    GsoSizeTooSmall,
}

/// A parsed `struct virtio_net_hdr_v1` (little endian on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetHdr {
    /// `F_*` flags.
    pub flags: u8,
    /// `GSO_*` type.
    pub gso_type: u8,
    /// Length of the headers to copy into each segment (a hint).
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where checksumming starts (from the start of the frame).
    pub csum_start: u16,
    /// Where the checksum is stored, from `csum_start`.
    pub csum_offset: u16,
    /// Receive buffers used for the frame (MRG_RXBUF; 1 otherwise).
    pub num_buffers: u16,
}

fn le16(b: &[u8; HDR_LEN], i: usize) -> u16 {
    let lo = b.get(i).copied().unwrap_or(0);
    let hi = b.get(i.wrapping_add(1)).copied().unwrap_or(0);
    u16::from_le_bytes([lo, hi])
}

impl NetHdr {
    /// Decodes a header as the guest wrote it.
    pub fn parse(b: &[u8; HDR_LEN]) -> Self {
        let [flags, gso_type, ..] = *b;
        Self {
            flags,
            gso_type,
            hdr_len: le16(b, 2),
            gso_size: le16(b, 4),
            csum_start: le16(b, 6),
            csum_offset: le16(b, 8),
            num_buffers: le16(b, 10),
        }
    }

    /// Encodes the header for a guest's receive buffer.
    pub fn to_bytes(self) -> [u8; HDR_LEN] {
        let [h0, h1] = self.hdr_len.to_le_bytes();
        let [g0, g1] = self.gso_size.to_le_bytes();
        let [s0, s1] = self.csum_start.to_le_bytes();
        let [o0, o1] = self.csum_offset.to_le_bytes();
        let [n0, n1] = self.num_buffers.to_le_bytes();
        [
            self.flags,
            self.gso_type,
            h0,
            h1,
            g0,
            g1,
            s0,
            s1,
            o0,
            o1,
            n0,
            n1,
        ]
    }

    /// Is this a GSO frame?
    pub fn is_gso(&self) -> bool {
        self.gso_type != GSO_NONE
    }

    /// Checks the header of a frame (`frame`: Ethernet header onwards) that a
    /// port which negotiated `tx` sends. On success the header is safe to hand
    /// to any receiver; `num_buffers` and `DATA_VALID` are cleared (they mean
    /// nothing on transmit).
    pub fn check(&mut self, frame: &[u8], tx: Offloads) -> Result<(), HdrError> {
        self.check_parts(frame, frame.len(), tx)
    }

    /// [`NetHdr::check`] for a frame of `len` bytes of which only the first
    /// are at hand (`head`: at least the Ethernet header, or the whole frame
    /// if shorter): the check reads nothing past the Ethernet header, so the
    /// rest can stay in the sender's buffer and be copied once, later.
    pub fn check_parts(&mut self, head: &[u8], len: usize, tx: Offloads) -> Result<(), HdrError> {
        let frame = head.get(..ETH_HLEN.min(len)).unwrap_or(head);
        if len < ETH_HLEN {
            return Err(HdrError::TooShort);
        }
        if len > FRAME_MAX {
            return Err(HdrError::TooLong);
        }
        self.num_buffers = 0;
        self.flags &= !F_DATA_VALID;
        if self.flags & !F_NEEDS_CSUM != 0 {
            return Err(HdrError::BadFlags);
        }
        if self.flags & F_NEEDS_CSUM != 0 {
            if !tx.csum {
                return Err(HdrError::CsumNotNegotiated);
            }
            let start = usize::from(self.csum_start);
            let field_end = start
                .checked_add(usize::from(self.csum_offset))
                .and_then(|e| e.checked_add(2))
                .ok_or(HdrError::CsumOutOfFrame)?;
            if start < ETH_HLEN || field_end > len {
                return Err(HdrError::CsumOutOfFrame);
            }
        }
        if !self.is_gso() {
            self.gso_size = 0;
            self.hdr_len = 0;
            return if len > MTU_FRAME_MAX {
                Err(HdrError::TooLong)
            } else {
                Ok(())
            };
        }
        let ethertype = match frame {
            [_, _, _, _, _, _, _, _, _, _, _, _, a, b, ..] => u16::from_be_bytes([*a, *b]),
            _ => return Err(HdrError::TooShort),
        };
        match self.gso_type {
            GSO_TCPV4 if tx.tso4 => {
                if ethertype != ETH_P_IPV4 {
                    return Err(HdrError::GsoProtocolMismatch);
                }
            }
            GSO_TCPV6 if tx.tso6 => {
                if ethertype != ETH_P_IPV6 {
                    return Err(HdrError::GsoProtocolMismatch);
                }
            }
            _ => return Err(HdrError::BadGsoType),
        }
        if self.flags & F_NEEDS_CSUM == 0
            || self.gso_size == 0
            || self.csum_offset != TCP_CSUM_OFFSET
            || usize::from(self.hdr_len) > len
        {
            return Err(HdrError::BadGsoFields);
        }
        if self.gso_size < GSO_SIZE_MIN {
            return Err(HdrError::GsoSizeTooSmall);
        }
        Ok(())
    }

    /// Can a port that negotiated `rx` take this (checked) frame as it is?
    /// `Err(true)`: only after [`complete_csum`]; `Err(false)`: not at all
    /// (GSO the receiver cannot take).
    pub fn fits(&self, rx: Offloads) -> Result<(), bool> {
        match self.gso_type {
            GSO_NONE => {}
            GSO_TCPV4 if rx.tso4 && rx.csum => return Ok(()),
            GSO_TCPV6 if rx.tso6 && rx.csum => return Ok(()),
            _ => return Err(false),
        }
        if self.flags & F_NEEDS_CSUM != 0 && !rx.csum {
            return Err(true);
        }
        Ok(())
    }
}

/// Completes a partial checksum (`NEEDS_CSUM`) in `frame`: the one's
/// complement sum of the bytes from `csum_start` to the end, seeded with the
/// pseudo-header sum the sender left in the checksum field, is folded and
/// stored there. Afterwards the header's `NEEDS_CSUM` flag must be cleared.
pub fn complete_csum(frame: &mut [u8], hdr: &NetHdr) -> Result<(), HdrError> {
    let start = usize::from(hdr.csum_start);
    let at = start
        .checked_add(usize::from(hdr.csum_offset))
        .ok_or(HdrError::CsumOutOfFrame)?;
    let end = at.checked_add(2).ok_or(HdrError::CsumOutOfFrame)?;
    if end > frame.len() {
        return Err(HdrError::CsumOutOfFrame);
    }
    let data = frame.get(start..).ok_or(HdrError::CsumOutOfFrame)?;
    let mut sum: u64 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        if let [a, b] = *w {
            sum = sum.wrapping_add(u64::from(u16::from_be_bytes([a, b])));
        }
    }
    if let [last] = *words.remainder() {
        sum = sum.wrapping_add(u64::from(u16::from_be_bytes([last, 0])));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff).wrapping_add(sum >> 16);
    }
    let folded = !u16::try_from(sum).unwrap_or(u16::MAX);
    // UDP uses 0xffff for a computed zero; TCP accepts either form.
    let csum = if folded == 0 { 0xffff } else { folded };
    let field = frame.get_mut(at..end).ok_or(HdrError::CsumOutOfFrame)?;
    field.copy_from_slice(&csum.to_be_bytes());
    Ok(())
}
