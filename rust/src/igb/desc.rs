//! Advanced receive and transmit descriptors of the 82576, as 16-byte
//! little-endian arrays, and the transmit descriptors of one frame built from
//! a checked virtio-net header.
//!
//! Every descriptor the NIC reads is built here from values pvpass checked;
//! nothing a guest wrote is copied into a descriptor. [`build_tx`] refuses
//! what the hardware cannot do (an offload on a frame that is not plain
//! Ethernet + IPv4/IPv6 + TCP/UDP, header lengths outside the context
//! descriptor's fields, too many or too long segments) rather than build a
//! descriptor that makes the NIC checksum or segment the wrong bytes.
//!
//! Receive write-backs come from the device and are decoded without trusting
//! them: [`RxWriteback`] only reads fields; the ring ([`super::ring`]) checks
//! lengths against the buffer it posted.

use super::super::vnet::{
    NetHdr, ETH_HLEN, F_NEEDS_CSUM, GSO_NONE, GSO_TCPV4, GSO_TCPV6, TCP_CSUM_OFFSET,
};

/// Size of every advanced descriptor.
pub const DESC_LEN: usize = 16;
/// One descriptor as the NIC sees it in the ring (little-endian).
pub type RawDesc = [u8; DESC_LEN];

fn put_u32(d: &mut RawDesc, at: usize, v: u32) {
    if let Some(f) = d.get_mut(at..at.wrapping_add(4)) {
        f.copy_from_slice(&v.to_le_bytes());
    }
}

fn put_u64(d: &mut RawDesc, at: usize, v: u64) {
    if let Some(f) = d.get_mut(at..at.wrapping_add(8)) {
        f.copy_from_slice(&v.to_le_bytes());
    }
}

fn get_u16(d: &RawDesc, at: usize) -> u16 {
    let mut b = [0u8; 2];
    if let Some(f) = d.get(at..at.wrapping_add(2)) {
        b.copy_from_slice(f);
    }
    u16::from_le_bytes(b)
}

fn get_u32(d: &RawDesc, at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(f) = d.get(at..at.wrapping_add(4)) {
        b.copy_from_slice(f);
    }
    u32::from_le_bytes(b)
}

fn get_u64(d: &RawDesc, at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(f) = d.get(at..at.wrapping_add(8)) {
        b.copy_from_slice(f);
    }
    u64::from_le_bytes(b)
}

// ---- receive ---------------------------------------------------------------

/// Receive status: descriptor done (written back by the NIC).
pub const RXD_STAT_DD: u32 = 1 << 0;
/// Receive status: last descriptor of the frame.
pub const RXD_STAT_EOP: u32 = 1 << 1;
/// Receive status: the frame had a VLAN tag (stripped into `vlan`).
pub const RXD_STAT_VP: u32 = 1 << 3;
/// Receive status: UDP checksum computed.
pub const RXD_STAT_UDPCS: u32 = 1 << 4;
/// Receive status: TCP (or UDP, with UDPCS) checksum computed.
pub const RXD_STAT_TCPCS: u32 = 1 << 5;
/// Receive status: IPv4 header checksum computed.
pub const RXD_STAT_IPCS: u32 = 1 << 6;
/// Receive error: CRC error.
pub const RXDEXT_ERR_CE: u32 = 1 << 24;
/// Receive error: symbol error.
pub const RXDEXT_ERR_SE: u32 = 1 << 25;
/// Receive error: sequence error.
pub const RXDEXT_ERR_SEQ: u32 = 1 << 26;
/// Receive error: carrier extension error.
pub const RXDEXT_ERR_CXE: u32 = 1 << 28;
/// Receive error: TCP/UDP checksum wrong.
pub const RXDEXT_ERR_TCPE: u32 = 1 << 29;
/// Receive error: IPv4 header checksum wrong.
pub const RXDEXT_ERR_IPE: u32 = 1 << 30;
/// Receive error: RX data error.
pub const RXDEXT_ERR_RXE: u32 = 1 << 31;
/// Errors that make the frame itself bad (not only a checksum verdict).
pub const RXDEXT_ERR_FRAME: u32 =
    RXDEXT_ERR_CE | RXDEXT_ERR_SE | RXDEXT_ERR_SEQ | RXDEXT_ERR_CXE | RXDEXT_ERR_RXE;

/// The receive descriptor in read format, as posted: the packet buffer
/// address and a zero header address (no header split). The zero also clears
/// the status word the NIC writes back over the header address, so a posted
/// descriptor never shows DD.
#[must_use]
pub fn rx_read(pkt_addr: u64) -> RawDesc {
    let mut d = [0u8; DESC_LEN];
    put_u64(&mut d, 0, pkt_addr);
    d
}

/// Decoded receive write-back. Fields as the device wrote them: unchecked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxWriteback {
    /// RSS type (bits 3:0) and packet type.
    pub pkt_info: u16,
    /// Header length (header split only).
    pub hdr_info: u16,
    /// RSS hash, or IP id (low half) and checksum with RXCSUM.PCSD clear.
    pub rss: u32,
    /// Extended status (bits 19:0) and errors (31:20).
    pub status_error: u32,
    /// Bytes written into this descriptor's buffer.
    pub length: u16,
    /// The stripped VLAN tag, if `RXD_STAT_VP`.
    pub vlan: u16,
}

impl RxWriteback {
    /// Decodes a descriptor in write-back format.
    #[must_use]
    pub fn parse(d: &RawDesc) -> Self {
        Self {
            pkt_info: get_u16(d, 0),
            hdr_info: get_u16(d, 2),
            rss: get_u32(d, 4),
            status_error: get_u32(d, 8),
            length: get_u16(d, 12),
            vlan: get_u16(d, 14),
        }
    }

    /// Encodes it (what the device writes; for tests and mocks).
    #[must_use]
    pub fn to_bytes(self) -> RawDesc {
        let mut d = [0u8; DESC_LEN];
        let [a, b] = self.pkt_info.to_le_bytes();
        let [c, e] = self.hdr_info.to_le_bytes();
        put_u32(&mut d, 0, u32::from_le_bytes([a, b, c, e]));
        put_u32(&mut d, 4, self.rss);
        put_u32(&mut d, 8, self.status_error);
        let [l0, l1] = self.length.to_le_bytes();
        let [v0, v1] = self.vlan.to_le_bytes();
        put_u32(&mut d, 12, u32::from_le_bytes([l0, l1, v0, v1]));
        d
    }

    /// The NIC is done with this descriptor.
    #[must_use]
    pub fn done(&self) -> bool {
        self.status_error & RXD_STAT_DD != 0
    }

    /// This descriptor ends its frame.
    #[must_use]
    pub fn eop(&self) -> bool {
        self.status_error & RXD_STAT_EOP != 0
    }

    /// The frame arrived damaged (CRC, symbol, sequence, data error).
    #[must_use]
    pub fn frame_error(&self) -> bool {
        self.status_error & RXDEXT_ERR_FRAME != 0
    }

    /// The NIC verified the TCP/UDP checksum and found it right (the frame
    /// may then be given to a guest with `VIRTIO_NET_HDR_F_DATA_VALID`).
    #[must_use]
    pub fn l4_csum_ok(&self) -> bool {
        self.status_error & RXD_STAT_TCPCS != 0 && self.status_error & RXDEXT_ERR_TCPE == 0
    }

    /// The stripped VLAN tag, if there was one.
    #[must_use]
    pub fn vlan_tag(&self) -> Option<u16> {
        if self.status_error & RXD_STAT_VP != 0 {
            Some(self.vlan)
        } else {
            None
        }
    }
}

// ---- transmit --------------------------------------------------------------

/// cmd_type_len: advanced context descriptor.
pub const ADVTXD_DTYP_CTXT: u32 = 0x0020_0000;
/// cmd_type_len: advanced data descriptor.
pub const ADVTXD_DTYP_DATA: u32 = 0x0030_0000;
/// cmd_type_len: end of packet.
pub const ADVTXD_DCMD_EOP: u32 = 1 << 24;
/// cmd_type_len: insert the Ethernet FCS.
pub const ADVTXD_DCMD_IFCS: u32 = 1 << 25;
/// cmd_type_len: report status (write DD back).
pub const ADVTXD_DCMD_RS: u32 = 1 << 27;
/// cmd_type_len: descriptor extension (advanced format).
pub const ADVTXD_DCMD_DEXT: u32 = 1 << 29;
/// cmd_type_len: insert a VLAN tag.
pub const ADVTXD_DCMD_VLE: u32 = 1 << 30;
/// cmd_type_len: TCP segmentation.
pub const ADVTXD_DCMD_TSE: u32 = 1 << 31;
/// cmd_type_len: data length field (DTALEN).
pub const ADVTXD_DTALEN_MASK: u32 = 0xffff;
/// olinfo_status: context index shift (pvpass uses context 0).
pub const ADVTXD_IDX_SHIFT: u32 = 4;
/// olinfo_status: insert the IPv4 header checksum.
pub const ADVTXD_POPTS_IXSM: u32 = 1 << 8;
/// olinfo_status: insert the TCP/UDP checksum.
pub const ADVTXD_POPTS_TXSM: u32 = 1 << 9;
/// olinfo_status: payload length shift (18 bits).
pub const ADVTXD_PAYLEN_SHIFT: u32 = 14;
/// Largest PAYLEN.
pub const ADVTXD_PAYLEN_MAX: u32 = 0x3_ffff;
/// Write-back status: descriptor done.
pub const TXD_STAT_DD: u32 = 1 << 0;

/// Context: MACLEN shift in vlan_macip_lens (7 bits).
pub const ADVTXD_MACLEN_SHIFT: u32 = 9;
/// Context: largest MACLEN.
pub const ADVTXD_MACLEN_MAX: usize = 0x7f;
/// Context: largest IPLEN (9 bits).
pub const ADVTXD_IPLEN_MAX: usize = 0x1ff;
/// Context: VLAN tag shift in vlan_macip_lens.
pub const ADVTXD_VLAN_SHIFT: u32 = 16;
/// Context TUCMD: L4 is UDP (zero).
pub const ADVTXD_TUCMD_L4T_UDP: u32 = 0;
/// Context TUCMD: the packet is IPv4.
pub const ADVTXD_TUCMD_IPV4: u32 = 1 << 10;
/// Context TUCMD: L4 is TCP.
pub const ADVTXD_TUCMD_L4T_TCP: u32 = 1 << 11;
/// Context: L4LEN shift in mss_l4len_idx (8 bits).
pub const ADVTXD_L4LEN_SHIFT: u32 = 8;
/// Context: MSS shift in mss_l4len_idx (16 bits).
pub const ADVTXD_MSS_SHIFT: u32 = 16;

/// Most data descriptors pvpass gives one frame (its own cap; QEMU's model
/// drops frames of more than 64).
pub const TX_MAX_DATA_DESCS: usize = 32;
/// Largest frame without TSO, and largest segment TSO may produce: the
/// 82576's 9.5 KiB jumbo limit.
pub const TX_FRAME_MAX: usize = 9728;
/// Most descriptors [`build_tx`] writes for one frame (context + data).
pub const TX_MAX_DESCS: usize = TX_MAX_DATA_DESCS + 1;

/// An advanced transmit data descriptor.
#[must_use]
pub fn tx_data(addr: u64, cmd_type_len: u32, olinfo_status: u32) -> RawDesc {
    let mut d = [0u8; DESC_LEN];
    put_u64(&mut d, 0, addr);
    put_u32(&mut d, 8, cmd_type_len);
    put_u32(&mut d, 12, olinfo_status);
    d
}

/// An advanced transmit context descriptor.
#[must_use]
pub fn tx_context(vlan_macip_lens: u32, type_tucmd_mlhl: u32, mss_l4len_idx: u32) -> RawDesc {
    let mut d = [0u8; DESC_LEN];
    put_u32(&mut d, 0, vlan_macip_lens);
    // seqnum_seed (bytes 4..8) stays zero.
    put_u32(
        &mut d,
        8,
        ADVTXD_DTYP_CTXT | ADVTXD_DCMD_DEXT | type_tucmd_mlhl,
    );
    put_u32(&mut d, 12, mss_l4len_idx);
    d
}

/// Decoded transmit descriptor (read format); for tests and dumps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxDescFields {
    /// Buffer address (data) or vlan_macip_lens + seqnum_seed (context).
    pub addr: u64,
    /// cmd_type_len (data) or type_tucmd_mlhl (context).
    pub cmd_type_len: u32,
    /// olinfo_status (data) or mss_l4len_idx (context).
    pub olinfo_status: u32,
}

impl TxDescFields {
    /// Splits a raw descriptor into its three words.
    #[must_use]
    pub fn parse(d: &RawDesc) -> Self {
        Self {
            addr: get_u64(d, 0),
            cmd_type_len: get_u32(d, 8),
            olinfo_status: get_u32(d, 12),
        }
    }

    /// A context descriptor (`DEXT` with `DTYP` = context).
    #[must_use]
    pub fn is_context(&self) -> bool {
        self.cmd_type_len & (ADVTXD_DCMD_DEXT | ADVTXD_DTYP_DATA)
            == ADVTXD_DCMD_DEXT | ADVTXD_DTYP_CTXT
    }
}

/// Whether the NIC wrote DD back into this transmit descriptor.
#[must_use]
pub fn tx_done(d: &RawDesc) -> bool {
    get_u32(d, 12) & TXD_STAT_DD != 0
}

/// One piece of a frame to transmit: a DMA address and a length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxSeg {
    /// Bus address of the first byte.
    pub addr: u64,
    /// Length in bytes, `1..=65535`.
    pub len: u32,
}

/// Why [`build_tx`] refused a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// No segments.
    NoSegments,
    /// More than [`TX_MAX_DATA_DESCS`] segments.
    TooManySegments,
    /// A segment of length zero.
    ZeroLength,
    /// A segment longer than a descriptor's 16-bit length.
    SegmentTooLong,
    /// A segment's address range wraps around.
    AddressOverflow,
    /// Shorter than an Ethernet header.
    FrameTooShort,
    /// Longer than [`TX_FRAME_MAX`] without TSO, or than PAYLEN allows.
    FrameTooLong,
    /// The output slice cannot hold the descriptors.
    OutputTooSmall,
    /// `head` (the host copy of the headers) or the first segment does not
    /// cover the headers the offload needs.
    HeadersNotInHead,
    /// A flag other than `NEEDS_CSUM`, an unknown GSO type, or GSO without
    /// `NEEDS_CSUM`.
    BadHeader,
    /// Offload on a frame that is not Ethernet (optionally one 802.1Q tag)
    /// + IPv4 or IPv6, or GSO whose type does not match the IP version.
    NotIp,
    /// The IP header disagrees with `csum_start` (IPv4 IHL, IPv6 minimum),
    /// or is longer than the context's IPLEN field.
    BadIpHeader,
    /// `csum_offset` is neither TCP's (16) nor UDP's (6), or the IP protocol
    /// does not match it, or GSO on anything but TCP.
    BadL4,
    /// TCP header length below 20 bytes (data offset < 5).
    BadTcpHeader,
    /// TSO with no payload, MSS zero, or headers + MSS over [`TX_FRAME_MAX`].
    BadSegmentation,
}

/// How the NIC handles a frame, from its checked virtio-net header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxOffload {
    /// Sent as it is.
    None,
    /// TCP/UDP checksum inserted.
    Csum,
    /// TCP segmentation (checksums of every segment inserted).
    Tso,
}

/// What [`build_tx`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxBuilt {
    /// Descriptors written to the front of the output slice (context first).
    pub descs: usize,
    /// Total frame length (sum of the segments).
    pub frame_len: u32,
    /// What the NIC will do.
    pub offload: TxOffload,
}

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const UDP_CSUM_OFFSET: u16 = 6;
const IPV4_HLEN_MIN: usize = 20;
const IPV6_HLEN: usize = 40;
const TCP_HLEN_MIN: usize = 20;

/// `n` as `u32` (every length here is far below 4 GiB).
fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn byte(b: &[u8], i: usize) -> Result<u8, TxError> {
    b.get(i).copied().ok_or(TxError::HeadersNotInHead)
}

fn be16(b: &[u8], i: usize) -> Result<u16, TxError> {
    Ok(u16::from_be_bytes([
        byte(b, i)?,
        byte(b, i.wrapping_add(1))?,
    ]))
}

fn set_be16(b: &mut [u8], i: usize, v: u16) -> Result<(), TxError> {
    let f = b
        .get_mut(i..i.wrapping_add(2))
        .ok_or(TxError::HeadersNotInHead)?;
    f.copy_from_slice(&v.to_be_bytes());
    Ok(())
}

/// One's complement subtraction of `v` from a folded 16-bit sum.
fn csum_sub(sum: u16, v: u32) -> u16 {
    // sum - v == sum + ~v in one's complement; ~v of a 32-bit value as two
    // 16-bit words.
    let mut acc = u32::from(sum)
        .wrapping_add(u32::from(!u16::try_from(v >> 16).unwrap_or(0)))
        .wrapping_add(u32::from(!u16::try_from(v & 0xffff).unwrap_or(0)));
    while acc >> 16 != 0 {
        acc = (acc & 0xffff).wrapping_add(acc >> 16);
    }
    u16::try_from(acc).unwrap_or(0)
}

/// The layers an offload needs, parsed from the host copy of the headers.
struct Layers {
    maclen: usize,
    iplen: usize,
    ipv4: bool,
    tcp: bool,
}

fn parse_layers(hdr: &NetHdr, head: &[u8]) -> Result<Layers, TxError> {
    let mut maclen = ETH_HLEN;
    let mut ethertype = be16(head, 12)?;
    if ethertype == ETH_P_8021Q {
        maclen = ETH_HLEN.wrapping_add(4);
        ethertype = be16(head, 16)?;
    }
    let ipv4 = match ethertype {
        ETH_P_IPV4 => true,
        ETH_P_IPV6 => false,
        _ => return Err(TxError::NotIp),
    };
    let l4 = usize::from(hdr.csum_start);
    let iplen = l4.checked_sub(maclen).ok_or(TxError::BadIpHeader)?;
    if iplen > ADVTXD_IPLEN_MAX {
        return Err(TxError::BadIpHeader);
    }
    let version = byte(head, maclen)? >> 4;
    let proto = if ipv4 {
        let ihl = usize::from(byte(head, maclen)? & 0xf).wrapping_mul(4);
        if version != 4 || ihl < IPV4_HLEN_MIN || ihl != iplen {
            return Err(TxError::BadIpHeader);
        }
        Some(byte(head, maclen.wrapping_add(9))?)
    } else {
        if version != 6 || iplen < IPV6_HLEN {
            return Err(TxError::BadIpHeader);
        }
        // With extension headers the transport protocol is not in the fixed
        // header; the hardware only uses IPLEN, which csum_start gives.
        if iplen == IPV6_HLEN {
            Some(byte(head, maclen.wrapping_add(6))?)
        } else {
            None
        }
    };
    let tcp = match hdr.csum_offset {
        TCP_CSUM_OFFSET => true,
        UDP_CSUM_OFFSET => false,
        _ => return Err(TxError::BadL4),
    };
    let want = if tcp { IPPROTO_TCP } else { IPPROTO_UDP };
    if proto.is_some_and(|p| p != want) {
        return Err(TxError::BadL4);
    }
    Ok(Layers {
        maclen,
        iplen,
        ipv4,
        tcp,
    })
}

/// Builds the transmit descriptors of one frame into `out` (context
/// descriptor first when an offload needs one, then one data descriptor per
/// segment, `EOP | RS` on the last).
///
/// - `hdr`: the frame's virtio-net header, already accepted by
///   [`NetHdr::check`] (this function checks again everything it relies on).
/// - `head`: the host-owned copy of the frame's first bytes, which the first
///   segment points at. It must hold the headers the offload reads (through
///   the IP header for a checksum, through the TCP header for TSO), and the
///   first segment must be at least that long, so the NIC reads exactly the
///   bytes checked here, never guest memory the guest can still change. For
///   TSO the headers are prepared as the hardware wants them (as Linux's
///   `igb_tso` does): IPv4 total length and header checksum zeroed, IPv6
///   payload length zeroed, the TCP length taken out of the pseudo-header
///   checksum the guest left in the TCP checksum field.
/// - `segs`: the frame as (bus address, length) pieces, `segs[0]` at `head`.
///
/// Nothing is written to `out` on error. For `NEEDS_CSUM` the checksum field
/// must hold the pseudo-header sum, as the virtio spec requires.
pub fn build_tx(
    hdr: &NetHdr,
    head: &mut [u8],
    segs: &[TxSeg],
    out: &mut [RawDesc],
) -> Result<TxBuilt, TxError> {
    let first = segs.first().ok_or(TxError::NoSegments)?;
    if segs.len() > TX_MAX_DATA_DESCS {
        return Err(TxError::TooManySegments);
    }
    let mut total: usize = 0;
    for s in segs {
        if s.len == 0 {
            return Err(TxError::ZeroLength);
        }
        if s.len > ADVTXD_DTALEN_MASK {
            return Err(TxError::SegmentTooLong);
        }
        if s.addr.checked_add(u64::from(s.len)).is_none() {
            return Err(TxError::AddressOverflow);
        }
        // At most 32 segments of 64 KiB: no overflow.
        total = total.wrapping_add(s.len as usize);
    }
    if total < ETH_HLEN {
        return Err(TxError::FrameTooShort);
    }
    if hdr.flags & !F_NEEDS_CSUM != 0 {
        return Err(TxError::BadHeader);
    }
    let needs_csum = hdr.flags & F_NEEDS_CSUM != 0;
    let gso_v4 = match hdr.gso_type {
        GSO_NONE => None,
        GSO_TCPV4 => Some(true),
        GSO_TCPV6 => Some(false),
        _ => return Err(TxError::BadHeader),
    };
    if gso_v4.is_some() && !needs_csum {
        return Err(TxError::BadHeader);
    }

    let mut cmd = ADVTXD_DTYP_DATA | ADVTXD_DCMD_DEXT | ADVTXD_DCMD_IFCS;
    let mut olinfo: u32;
    let mut context: Option<RawDesc> = None;
    let offload;

    if !needs_csum {
        if total > TX_FRAME_MAX {
            return Err(TxError::FrameTooLong);
        }
        olinfo = u32_of(total) << ADVTXD_PAYLEN_SHIFT;
        offload = TxOffload::None;
    } else {
        let l = parse_layers(hdr, head)?;
        let l4 = l.maclen.wrapping_add(l.iplen);
        let csum_field = l4.wrapping_add(usize::from(hdr.csum_offset));
        if csum_field.wrapping_add(2) > total {
            return Err(TxError::BadL4);
        }
        let vlan_macip = u32_of(l.iplen) | (u32_of(l.maclen) << ADVTXD_MACLEN_SHIFT);
        let mut tucmd = if l.tcp {
            ADVTXD_TUCMD_L4T_TCP
        } else {
            ADVTXD_TUCMD_L4T_UDP
        };
        if l.ipv4 {
            tucmd |= ADVTXD_TUCMD_IPV4;
        }
        match gso_v4 {
            None => {
                if total > TX_FRAME_MAX {
                    return Err(TxError::FrameTooLong);
                }
                if head.len() < l4 || (first.len as usize) < l4 {
                    return Err(TxError::HeadersNotInHead);
                }
                context = Some(tx_context(vlan_macip, tucmd, 0));
                olinfo = (u32_of(total) << ADVTXD_PAYLEN_SHIFT) | ADVTXD_POPTS_TXSM;
                offload = TxOffload::Csum;
            }
            Some(v4) => {
                if v4 != l.ipv4 {
                    return Err(TxError::NotIp);
                }
                if !l.tcp {
                    return Err(TxError::BadL4);
                }
                let doff = byte(head, l4.wrapping_add(12))? >> 4;
                let l4len = usize::from(doff).wrapping_mul(4);
                if l4len < TCP_HLEN_MIN {
                    return Err(TxError::BadTcpHeader);
                }
                let hdr_total = l4.wrapping_add(l4len);
                if head.len() < hdr_total || (first.len as usize) < hdr_total {
                    return Err(TxError::HeadersNotInHead);
                }
                let paylen = total
                    .checked_sub(hdr_total)
                    .filter(|p| *p > 0)
                    .ok_or(TxError::BadSegmentation)?;
                if u32_of(paylen) > ADVTXD_PAYLEN_MAX {
                    return Err(TxError::FrameTooLong);
                }
                let mss = usize::from(hdr.gso_size);
                if mss == 0 || hdr_total.wrapping_add(mss) > TX_FRAME_MAX {
                    return Err(TxError::BadSegmentation);
                }
                // The headers as the segmentation engine wants them.
                let l4_bytes = u32_of(total.wrapping_sub(l4));
                let seed = be16(head, csum_field)?;
                if l.ipv4 {
                    set_be16(head, l.maclen.wrapping_add(2), 0)?;
                    set_be16(head, l.maclen.wrapping_add(10), 0)?;
                } else {
                    set_be16(head, l.maclen.wrapping_add(4), 0)?;
                }
                set_be16(head, csum_field, csum_sub(seed, l4_bytes))?;
                context = Some(tx_context(
                    vlan_macip,
                    tucmd,
                    (u32_of(mss) << ADVTXD_MSS_SHIFT) | (u32_of(l4len) << ADVTXD_L4LEN_SHIFT),
                ));
                cmd |= ADVTXD_DCMD_TSE;
                olinfo = (u32_of(paylen) << ADVTXD_PAYLEN_SHIFT) | ADVTXD_POPTS_TXSM;
                if l.ipv4 {
                    olinfo |= ADVTXD_POPTS_IXSM;
                }
                offload = TxOffload::Tso;
            }
        }
    }

    let ndesc = segs.len().wrapping_add(usize::from(context.is_some()));
    let out = out.get_mut(..ndesc).ok_or(TxError::OutputTooSmall)?;
    let mut slots = out.iter_mut();
    if let Some(c) = context {
        if let Some(slot) = slots.next() {
            *slot = c;
        }
    }
    let last = segs.len().wrapping_sub(1);
    for (i, (s, slot)) in segs.iter().zip(slots).enumerate() {
        let mut c = cmd | (s.len & ADVTXD_DTALEN_MASK);
        if i == last {
            c |= ADVTXD_DCMD_EOP | ADVTXD_DCMD_RS;
        }
        *slot = tx_data(s.addr, c, olinfo);
        // PAYLEN and POPTS matter in the first data descriptor only.
        olinfo = 0;
    }
    Ok(TxBuilt {
        descs: ndesc,
        frame_len: u32_of(total),
        offload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_read_format() {
        let d = rx_read(0x1122_3344_5566_7788);
        assert_eq!(
            d,
            [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert!(!RxWriteback::parse(&d).done());
    }

    #[test]
    fn rx_writeback_roundtrip() {
        let wb = RxWriteback {
            pkt_info: 0x1234,
            hdr_info: 0x5678,
            rss: 0x9abc_def0,
            status_error: RXD_STAT_DD | RXD_STAT_EOP | RXD_STAT_TCPCS | RXD_STAT_VP,
            length: 1514,
            vlan: 42,
        };
        let d = wb.to_bytes();
        assert_eq!(&d[12..14], &1514u16.to_le_bytes());
        assert_eq!(d[8], 0x2b);
        let back = RxWriteback::parse(&d);
        assert_eq!(back, wb);
        assert!(back.done() && back.eop() && back.l4_csum_ok());
        assert_eq!(back.vlan_tag(), Some(42));
        assert!(!back.frame_error());
        let bad = RxWriteback {
            status_error: RXD_STAT_DD | RXD_STAT_TCPCS | RXDEXT_ERR_TCPE,
            ..wb
        };
        assert!(!bad.l4_csum_ok());
    }

    #[test]
    fn tx_data_layout() {
        let d = tx_data(0x1000, 0xaabb_ccdd, 0x0102_0304);
        assert_eq!(&d[0..8], &0x1000u64.to_le_bytes());
        assert_eq!(&d[8..12], &0xaabb_ccddu32.to_le_bytes());
        assert_eq!(&d[12..16], &0x0102_0304u32.to_le_bytes());
        assert!(!tx_done(&d));
        let mut wb = d;
        wb[12] |= 1;
        assert!(tx_done(&wb));
    }

    #[test]
    fn tx_context_layout() {
        let d = tx_context(20 | (14 << 9), ADVTXD_TUCMD_L4T_TCP, 1448 << 16 | 20 << 8);
        let f = TxDescFields::parse(&d);
        assert!(f.is_context());
        assert_eq!(f.addr, u64::from(20u32 | (14 << 9)));
        assert_eq!(
            f.cmd_type_len,
            ADVTXD_DTYP_CTXT | ADVTXD_DCMD_DEXT | ADVTXD_TUCMD_L4T_TCP
        );
        assert_eq!(f.olinfo_status, 1448 << 16 | 20 << 8);
        assert!(
            !TxDescFields::parse(&tx_data(0, ADVTXD_DTYP_DATA | ADVTXD_DCMD_DEXT, 0)).is_context()
        );
    }

    #[test]
    fn csum_sub_is_ones_complement() {
        // 0x0000 - 1 == 0xfffe (one's complement, -0 is 0xffff).
        assert_eq!(csum_sub(0x0000, 1), 0xfffe);
        assert_eq!(csum_sub(0x1234, 0x0000_0234), 0x1000);
        assert_eq!(csum_sub(0x1234, 0x0001_0000), 0x1233);
    }
}
