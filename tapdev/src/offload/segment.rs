//! Software fallbacks for what an offloading device does in hardware: cutting a super-frame
//! into wire frames (GSO) and filling in partial checksums.
//!
//! Segmentation follows Linux (`inet_gso_segment`, `tcp_gso_segment`, `__udp_gso_segment`),
//! checked byte for byte against frames the kernel segmented (see the tests): every segment
//! repeats the Ethernet, IP and transport headers (options included); IPv4 total length, IPv4
//! ID (+1 per segment, wrapping) and header checksum, IPv6 payload length, TCP sequence number
//! (+ segment size per segment) or UDP length are rewritten; FIN and PSH stay on the last TCP
//! segment only, CWR on the first only (RFC 3168 §6.1.2); every transport checksum is computed
//! in full, whatever the super-frame's checksum field held.
//!
//! Supported layouts: Ethernet II with at most one 802.1Q tag, IPv4 (options allowed, not a
//! fragment) or IPv6 without extension headers, then TCP or UDP. Anything else is an error,
//! never a panic: these functions also run on frames read from the kernel.

use std::fmt;

use super::checksum::{add_words, fold, pseudo_header_sum_v4, pseudo_header_sum_v6};
use super::{complete_checksum, Checksum, FrameOffload, Gso, GsoKind};

const ETHERNET_HEADER_LEN: usize = 14;
const VLAN_TAG_LEN: usize = 4;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const IPV4_MIN_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const PROTOCOL_TCP: u8 = 6;
const PROTOCOL_UDP: u8 = 17;
const TCP_MIN_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;
/// Offsets of the checksum field inside the transport header.
const TCP_CHECKSUM_OFFSET: u16 = 16;
const UDP_CHECKSUM_OFFSET: u16 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Why a frame could not be segmented or checksummed in software.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackError {
    /// The frame ends inside the named header.
    Truncated(&'static str),
    /// A length or version field disagrees with the frame (named).
    BadHeader(&'static str),
    /// A valid frame we do not segment (named): not IP, a fragment, IPv6 extension headers.
    Unsupported(&'static str),
    /// The segmentation kind does not match the packet (e.g. `TcpV4` on an IPv6 frame).
    KindMismatch(GsoKind),
    /// Segmentation asked for with a segment size of 0.
    ZeroSegmentSize,
    /// The partial checksum field lies outside the frame.
    ChecksumOutsideFrame {
        start: u16,
        offset: u16,
        frame_len: usize,
    },
}

impl fmt::Display for FallbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FallbackError::Truncated(what) => write!(f, "frame ends inside the {what}"),
            FallbackError::BadHeader(what) => write!(f, "inconsistent {what}"),
            FallbackError::Unsupported(what) => write!(f, "cannot segment {what} in software"),
            FallbackError::KindMismatch(kind) => {
                write!(f, "segmentation kind {kind:?} does not match the packet")
            }
            FallbackError::ZeroSegmentSize => write!(f, "segment size 0"),
            FallbackError::ChecksumOutsideFrame {
                start,
                offset,
                frame_len,
            } => write!(
                f,
                "partial checksum at {start}+{offset} lies outside the {frame_len}-byte frame"
            ),
        }
    }
}

impl std::error::Error for FallbackError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IpVersion {
    V4,
    V6,
}

/// Where the headers of a validated frame are. Invariant (checked by [`Layout::parse`]):
/// `l3 < l4 < payload <= end <= frame.len()`, with each header whole in its range.
#[derive(Debug, Clone, Copy)]
struct Layout {
    version: IpVersion,
    l3: usize,
    l4: usize,
    protocol: u8,
    /// First payload byte (end of the transport header).
    payload: usize,
    /// End of the IP packet; anything after it is Ethernet padding.
    end: usize,
}

impl Layout {
    fn parse(frame: &[u8]) -> Result<Layout, FallbackError> {
        let mut l3 = ETHERNET_HEADER_LEN;
        let mut ethertype =
            read_u16(frame, 12).ok_or(FallbackError::Truncated("Ethernet header"))?;
        if ethertype == ETHERTYPE_VLAN {
            ethertype = read_u16(frame, 16).ok_or(FallbackError::Truncated("802.1Q tag"))?;
            l3 += VLAN_TAG_LEN;
        }
        let (version, l4, end, protocol) = match ethertype {
            ETHERTYPE_IPV4 => parse_ipv4(frame, l3)?,
            ETHERTYPE_IPV6 => parse_ipv6(frame, l3)?,
            _ => {
                return Err(FallbackError::Unsupported(
                    "a frame that is not IPv4 or IPv6",
                ))
            }
        };
        let payload = match protocol {
            PROTOCOL_TCP => {
                let offset_byte = *frame
                    .get(l4 + 12)
                    .filter(|_| l4 + TCP_MIN_HEADER_LEN <= end)
                    .ok_or(FallbackError::Truncated("TCP header"))?;
                let header_len = usize::from(offset_byte >> 4) * 4;
                if header_len < TCP_MIN_HEADER_LEN {
                    return Err(FallbackError::BadHeader("TCP data offset"));
                }
                if l4 + header_len > end {
                    return Err(FallbackError::Truncated("TCP options"));
                }
                l4 + header_len
            }
            PROTOCOL_UDP => {
                if l4 + UDP_HEADER_LEN > end {
                    return Err(FallbackError::Truncated("UDP header"));
                }
                l4 + UDP_HEADER_LEN
            }
            _ => {
                return Err(FallbackError::Unsupported(
                    "a protocol other than TCP or UDP",
                ))
            }
        };
        Ok(Layout {
            version,
            l3,
            l4,
            protocol,
            payload,
            end,
        })
    }

    fn transport_checksum_offset(&self) -> u16 {
        if self.protocol == PROTOCOL_TCP {
            TCP_CHECKSUM_OFFSET
        } else {
            UDP_CHECKSUM_OFFSET
        }
    }

    /// The pseudo-header sum for a transport segment of `l4_len` bytes, read from `packet`
    /// (which has this layout's headers).
    fn pseudo_header_sum(&self, packet: &[u8], l4_len: usize) -> Option<u16> {
        match self.version {
            IpVersion::V4 => Some(pseudo_header_sum_v4(
                read_array(packet, self.l3 + 12)?,
                read_array(packet, self.l3 + 16)?,
                self.protocol,
                u16::try_from(l4_len).ok()?,
            )),
            IpVersion::V6 => Some(pseudo_header_sum_v6(
                read_array(packet, self.l3 + 8)?,
                read_array(packet, self.l3 + 24)?,
                self.protocol,
                u32::try_from(l4_len).ok()?,
            )),
        }
    }
}

/// Returns (version, transport offset, end of packet, protocol).
fn parse_ipv4(frame: &[u8], l3: usize) -> Result<(IpVersion, usize, usize, u8), FallbackError> {
    let header = frame
        .get(l3..l3 + IPV4_MIN_HEADER_LEN)
        .ok_or(FallbackError::Truncated("IPv4 header"))?;
    if header[0] >> 4 != 4 {
        return Err(FallbackError::BadHeader("IP version (ethertype says IPv4)"));
    }
    let header_len = usize::from(header[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let fragment = u16::from_be_bytes([header[6], header[7]]);
    if header_len < IPV4_MIN_HEADER_LEN {
        return Err(FallbackError::BadHeader("IPv4 header length"));
    }
    if total_len < header_len || l3 + total_len > frame.len() {
        return Err(FallbackError::BadHeader("IPv4 total length"));
    }
    // More-fragments flag or a fragment offset: only a whole datagram can be segmented.
    if fragment & 0x3fff != 0 {
        return Err(FallbackError::Unsupported("an IPv4 fragment"));
    }
    Ok((IpVersion::V4, l3 + header_len, l3 + total_len, header[9]))
}

fn parse_ipv6(frame: &[u8], l3: usize) -> Result<(IpVersion, usize, usize, u8), FallbackError> {
    let header = frame
        .get(l3..l3 + IPV6_HEADER_LEN)
        .ok_or(FallbackError::Truncated("IPv6 header"))?;
    if header[0] >> 4 != 6 {
        return Err(FallbackError::BadHeader("IP version (ethertype says IPv6)"));
    }
    let payload_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let end = l3 + IPV6_HEADER_LEN + payload_len;
    // Payload length 0 with a payload is a jumbogram (RFC 2675), which needs a hop-by-hop
    // option we do not parse; the plain mismatch is an error.
    if end > frame.len() || (payload_len == 0 && frame.len() > l3 + IPV6_HEADER_LEN) {
        return Err(FallbackError::BadHeader("IPv6 payload length"));
    }
    let next_header = header[6];
    if next_header != PROTOCOL_TCP && next_header != PROTOCOL_UDP {
        return Err(FallbackError::Unsupported(
            "IPv6 with extension headers or an unknown next header",
        ));
    }
    Ok((IpVersion::V6, l3 + IPV6_HEADER_LEN, end, next_header))
}

/// Turns a frame described by `offload` into the wire frames it stands for: the frame itself
/// when it is plain, a copy with its checksum completed for a partial checksum, or the
/// segments of a super-frame.
pub fn segment(frame: &[u8], offload: &FrameOffload) -> Result<Vec<Vec<u8>>, FallbackError> {
    let Some(gso) = offload.gso else {
        let mut copy = frame.to_vec();
        if let Checksum::Partial { start, offset } = offload.checksum {
            complete_checksum(&mut copy, start, offset)?;
        }
        return Ok(vec![copy]);
    };
    match gso.kind {
        GsoKind::TcpV4 => segment_tcp_v4(frame, gso.segment_size),
        GsoKind::TcpV6 => segment_tcp_v6(frame, gso.segment_size),
        GsoKind::UdpL4 => segment_udp(frame, gso.segment_size),
    }
}

/// Cuts an Ethernet + IPv4 + TCP super-frame into segments of at most `segment_size` payload
/// bytes, as Linux GSO does (see the module documentation). A super-frame with no more
/// payload than that gives one segment with fresh checksums.
pub fn segment_tcp_v4(frame: &[u8], segment_size: u16) -> Result<Vec<Vec<u8>>, FallbackError> {
    split(frame, segment_size, GsoKind::TcpV4)
}

/// Like [`segment_tcp_v4`] for Ethernet + IPv6 + TCP.
pub fn segment_tcp_v6(frame: &[u8], segment_size: u16) -> Result<Vec<Vec<u8>>, FallbackError> {
    split(frame, segment_size, GsoKind::TcpV6)
}

/// Cuts an Ethernet + IPv4/IPv6 + UDP super-frame into datagrams of `segment_size` payload
/// bytes each (the last may be shorter), as Linux UDP GSO does.
pub fn segment_udp(frame: &[u8], segment_size: u16) -> Result<Vec<Vec<u8>>, FallbackError> {
    split(frame, segment_size, GsoKind::UdpL4)
}

fn split(frame: &[u8], segment_size: u16, kind: GsoKind) -> Result<Vec<Vec<u8>>, FallbackError> {
    if segment_size == 0 {
        return Err(FallbackError::ZeroSegmentSize);
    }
    let layout = Layout::parse(frame)?;
    let matches = match kind {
        GsoKind::TcpV4 => layout.version == IpVersion::V4 && layout.protocol == PROTOCOL_TCP,
        GsoKind::TcpV6 => layout.version == IpVersion::V6 && layout.protocol == PROTOCOL_TCP,
        GsoKind::UdpL4 => layout.protocol == PROTOCOL_UDP,
    };
    if !matches {
        return Err(FallbackError::KindMismatch(kind));
    }
    let truncated = FallbackError::Truncated("frame");
    let headers = frame.get(..layout.payload).ok_or(truncated)?;
    let payload = frame.get(layout.payload..layout.end).ok_or(truncated)?;
    let first_id = read_u16(frame, layout.l3 + 4).ok_or(truncated)?;
    let (first_seq, flags) = if layout.protocol == PROTOCOL_TCP {
        let seq = read_u32(frame, layout.l4 + 4).ok_or(truncated)?;
        let flags = frame.get(layout.l4 + 13).copied().ok_or(truncated)?;
        (seq, flags)
    } else {
        (0, 0)
    };

    let size = usize::from(segment_size);
    // An empty payload still makes one segment: a bare ACK or FIN passes through.
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        vec![payload]
    } else {
        payload.chunks(size).collect()
    };
    let last = chunks.len() - 1;
    let mut segments = Vec::with_capacity(chunks.len());
    for (index, chunk) in chunks.into_iter().enumerate() {
        let mut segment = Vec::with_capacity(headers.len() + chunk.len());
        segment.extend_from_slice(headers);
        segment.extend_from_slice(chunk);
        let l4_len = segment.len() - layout.l4;
        let fix = Fix {
            index,
            is_last: index == last,
            l4_len,
            first_id,
            first_seq: first_seq.wrapping_add((index * size) as u32),
            flags,
        };
        fix_ip_header(&mut segment, &layout, &fix).ok_or(truncated)?;
        fix_transport(&mut segment, &layout, &fix).ok_or(truncated)?;
        segments.push(segment);
    }
    Ok(segments)
}

/// What differs from one segment to the next.
struct Fix {
    index: usize,
    is_last: bool,
    /// Transport header + this segment's payload.
    l4_len: usize,
    first_id: u16,
    /// This segment's sequence number (already advanced).
    first_seq: u32,
    /// The super-frame's TCP flags.
    flags: u8,
}

fn fix_ip_header(segment: &mut [u8], layout: &Layout, fix: &Fix) -> Option<()> {
    let ip_header_len = layout.l4 - layout.l3;
    match layout.version {
        IpVersion::V4 => {
            let total_len = u16::try_from(ip_header_len + fix.l4_len).ok()?;
            write_u16(segment, layout.l3 + 2, total_len)?;
            // Linux numbers the segments' IDs consecutively from the super-frame's.
            write_u16(
                segment,
                layout.l3 + 4,
                fix.first_id.wrapping_add(fix.index as u16),
            )?;
            write_u16(segment, layout.l3 + 10, 0)?;
            let header = segment.get(layout.l3..layout.l4)?;
            let checksum = !fold(add_words(0, header));
            write_u16(segment, layout.l3 + 10, checksum)
        }
        IpVersion::V6 => {
            let payload_len = u16::try_from(ip_header_len - IPV6_HEADER_LEN + fix.l4_len).ok()?;
            write_u16(segment, layout.l3 + 4, payload_len)
        }
    }
}

fn fix_transport(segment: &mut [u8], layout: &Layout, fix: &Fix) -> Option<()> {
    let l4 = layout.l4;
    if layout.protocol == PROTOCOL_TCP {
        write_u32(segment, l4 + 4, fix.first_seq)?;
        let mut flags = fix.flags;
        if !fix.is_last {
            flags &= !(TCP_FIN | TCP_PSH);
        }
        if fix.index > 0 {
            flags &= !TCP_CWR;
        }
        *segment.get_mut(l4 + 13)? = flags;
    } else {
        write_u16(segment, l4 + 4, u16::try_from(fix.l4_len).ok()?)?;
    }
    let field = l4 + usize::from(layout.transport_checksum_offset());
    write_u16(segment, field, 0)?;
    let pseudo = layout.pseudo_header_sum(segment, fix.l4_len)?;
    let sum = add_words(u64::from(pseudo), segment.get(l4..)?);
    let checksum = match !fold(sum) {
        // RFC 768: a computed UDP checksum of 0 is sent as all ones (0 means "none").
        0 if layout.protocol == PROTOCOL_UDP => 0xffff,
        value => value,
    };
    write_u16(segment, field, checksum)
}

/// Makes a complete TCP or UDP frame one the device segments into `segment_size` pieces: puts
/// the pseudo-header sum in the transport checksum field (whatever it held) and describes the
/// frame. A frame whose payload fits in one segment gets a partial checksum only.
///
/// `frame` must end where its IP packet ends (a partial checksum runs to the end of the frame).
pub fn prepare_segmentation(
    frame: &mut [u8],
    segment_size: u16,
) -> Result<FrameOffload, FallbackError> {
    if segment_size == 0 {
        return Err(FallbackError::ZeroSegmentSize);
    }
    let layout = prepare(frame)?;
    let checksum = Checksum::Partial {
        start: to_u16(layout.l4)?,
        offset: layout.transport_checksum_offset(),
    };
    if layout.end - layout.payload <= usize::from(segment_size) {
        return Ok(FrameOffload {
            gso: None,
            checksum,
        });
    }
    let kind = match (layout.protocol, layout.version) {
        (PROTOCOL_TCP, IpVersion::V4) => GsoKind::TcpV4,
        (PROTOCOL_TCP, IpVersion::V6) => GsoKind::TcpV6,
        _ => GsoKind::UdpL4,
    };
    let ecn = kind != GsoKind::UdpL4
        && frame
            .get(layout.l4 + 13)
            .is_some_and(|flags| flags & TCP_CWR != 0);
    Ok(FrameOffload {
        gso: Some(Gso {
            kind,
            segment_size,
            header_len: to_u16(layout.payload)?,
            ecn,
        }),
        checksum,
    })
}

/// Leaves the transport checksum of a complete TCP or UDP frame to the device: puts the
/// pseudo-header sum in the field and returns the matching partial-checksum offload.
pub fn prepare_partial_checksum(frame: &mut [u8]) -> Result<FrameOffload, FallbackError> {
    let layout = prepare(frame)?;
    Ok(FrameOffload {
        gso: None,
        checksum: Checksum::Partial {
            start: to_u16(layout.l4)?,
            offset: layout.transport_checksum_offset(),
        },
    })
}

fn prepare(frame: &mut [u8]) -> Result<Layout, FallbackError> {
    let layout = Layout::parse(frame)?;
    if layout.end != frame.len() {
        return Err(FallbackError::BadHeader(
            "frame length (bytes after the IP packet)",
        ));
    }
    let l4_len = layout.end - layout.l4;
    let field = layout.l4 + usize::from(layout.transport_checksum_offset());
    let truncated = FallbackError::Truncated("frame");
    let pseudo = layout.pseudo_header_sum(frame, l4_len).ok_or(truncated)?;
    write_u16(frame, field, pseudo).ok_or(truncated)?;
    Ok(layout)
}

fn to_u16(value: usize) -> Result<u16, FallbackError> {
    u16::try_from(value).map_err(|_| FallbackError::BadHeader("header offset"))
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    read_array(bytes, at).map(u16::from_be_bytes)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    read_array(bytes, at).map(u32::from_be_bytes)
}

fn read_array<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn write_u16(bytes: &mut [u8], at: usize, value: u16) -> Option<()> {
    bytes
        .get_mut(at..at.checked_add(2)?)?
        .copy_from_slice(&value.to_be_bytes());
    Some(())
}

fn write_u32(bytes: &mut [u8], at: usize, value: u32) -> Option<()> {
    bytes
        .get_mut(at..at.checked_add(4)?)?
        .copy_from_slice(&value.to_be_bytes());
    Some(())
}

#[cfg(test)]
mod tests;
