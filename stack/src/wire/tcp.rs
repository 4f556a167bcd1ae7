//! TCP segment format (RFC 9293 3.1) with the options ustack speaks: MSS (RFC 6691), window
//! scale and timestamps (RFC 7323), SACK-permitted and SACK blocks (RFC 2018).
//!
//! Two levels, as in the other wire modules:
//! - [`TcpPacket`]: a checked view of received bytes. Once [`TcpPacket::new_checked`] has
//!   accepted a buffer, no accessor can panic: every field lies inside the checked header.
//! - [`TcpHeader`]: the parsed header, with [`TcpHeader::parse`] (lengths, data offset,
//!   checksum) and [`TcpHeader::emit`] (header, options, payload and checksum into a buffer).
//!
//! Options are read like Linux's `tcp_parse_options`: unknown kinds are skipped by their length
//! byte, and a malformed length (below 2 or past the end) ends option parsing without rejecting
//! the segment. Options are written in Linux's order and padding, so our SYNs look like the
//! kernel's on the wire: `MSS, SACK-permitted, TS, NOP, WS`.

use core::fmt;
use std::net::Ipv4Addr;

use crate::tcp::seq::SeqNumber;
use crate::wire::checksum;

/// IP protocol number of TCP.
pub const PROTOCOL: u8 = 6;
/// Length of the header without options.
pub const HEADER_LEN: usize = 20;
/// Most option bytes a header can carry (data offset 15 words).
pub const MAX_OPTIONS_LEN: usize = 40;
/// Most SACK blocks one option can carry (RFC 2018 3: 4, or 3 alongside timestamps).
pub const MAX_SACK_BLOCKS: usize = 4;

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const OFFSET_FLAGS: Range<usize> = 12..14;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

mod option_kind {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// Why a received segment was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpParseError {
    /// Shorter than 20 bytes, or shorter than its data offset says.
    Truncated,
    /// Data offset below 5 words.
    BadDataOffset,
    /// The checksum over pseudo-header and segment does not verify.
    BadChecksum,
}

impl fmt::Display for TcpParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpParseError::Truncated => write!(f, "truncated TCP segment"),
            TcpParseError::BadDataOffset => write!(f, "TCP data offset below 5"),
            TcpParseError::BadChecksum => write!(f, "bad TCP checksum"),
        }
    }
}

impl std::error::Error for TcpParseError {}

/// The output buffer is too small for the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall;

/// The control bits (RFC 9293 3.1, RFC 3168 for ECE/CWR). The NS bit is not kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(u8);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const URG: TcpFlags = TcpFlags(0x20);
    pub const ECE: TcpFlags = TcpFlags(0x40);
    pub const CWR: TcpFlags = TcpFlags(0x80);
    pub const NONE: TcpFlags = TcpFlags(0);

    pub const fn from_bits(bits: u8) -> Self {
        TcpFlags(bits)
    }
    pub const fn bits(self) -> u8 {
        self.0
    }
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn insert(&mut self, other: TcpFlags) {
        self.0 |= other.0;
    }
    pub fn remove(&mut self, other: TcpFlags) {
        self.0 &= !other.0;
    }
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }
    pub const fn psh(self) -> bool {
        self.contains(Self::PSH)
    }
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
    pub const fn urg(self) -> bool {
        self.contains(Self::URG)
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl fmt::Debug for TcpFlags {
    /// Prints like tcpdump's letters joined by `|`, e.g. `SYN|ACK`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(TcpFlags, &str); 8] = [
            (TcpFlags::FIN, "FIN"),
            (TcpFlags::SYN, "SYN"),
            (TcpFlags::RST, "RST"),
            (TcpFlags::PSH, "PSH"),
            (TcpFlags::ACK, "ACK"),
            (TcpFlags::URG, "URG"),
            (TcpFlags::ECE, "ECE"),
            (TcpFlags::CWR, "CWR"),
        ];
        let mut first = true;
        for (flag, name) in NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// The timestamps option (RFC 7323 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timestamps {
    pub tsval: u32,
    pub tsecr: u32,
}

/// Up to four SACK blocks, each `[left, right)` in sequence space (RFC 2018 3).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct SackBlocks {
    blocks: [(SeqNumber, SeqNumber); MAX_SACK_BLOCKS],
    len: u8,
}

impl SackBlocks {
    pub const fn new() -> Self {
        SackBlocks {
            blocks: [(SeqNumber(0), SeqNumber(0)); MAX_SACK_BLOCKS],
            len: 0,
        }
    }

    /// Appends a block; returns false (and keeps the blocks) when four are already held.
    pub fn push(&mut self, left: SeqNumber, right: SeqNumber) -> bool {
        match self.blocks.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = (left, right);
                self.len += 1;
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[(SeqNumber, SeqNumber)] {
        self.blocks.get(..self.len()).unwrap_or(&[])
    }

    pub fn iter(&self) -> impl Iterator<Item = (SeqNumber, SeqNumber)> + '_ {
        self.as_slice().iter().copied()
    }
}

impl fmt::Debug for SackBlocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(l, r)| l.0..r.0))
            .finish()
    }
}

/// The options ustack reads and writes. Absent options are `None`/`false`/empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpOptions {
    /// Maximum segment size the sender can receive (meaningful on SYNs only).
    pub mss: Option<u16>,
    /// Shift count as sent; the receiver clamps it to 14 (RFC 7323 2.3).
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamps: Option<Timestamps>,
    pub sack: SackBlocks,
}

impl TcpOptions {
    /// Parses the option bytes of a header. Never fails: see the module doc.
    pub fn parse(mut bytes: &[u8]) -> TcpOptions {
        let mut options = TcpOptions::default();
        while let Some((&kind, rest)) = bytes.split_first() {
            match kind {
                option_kind::END => break,
                option_kind::NOP => {
                    bytes = rest;
                    continue;
                }
                _ => {}
            }
            let Some(&len) = rest.first() else { break };
            let len = usize::from(len);
            if len < 2 || len > bytes.len() {
                break;
            }
            let (option, tail) = bytes.split_at(len);
            let data = option.get(2..).unwrap_or(&[]);
            match (kind, data) {
                (option_kind::MSS, &[a, b]) => options.mss = Some(u16::from_be_bytes([a, b])),
                (option_kind::WINDOW_SCALE, &[shift]) => options.window_scale = Some(shift),
                (option_kind::SACK_PERMITTED, &[]) => options.sack_permitted = true,
                (option_kind::TIMESTAMPS, &[v0, v1, v2, v3, e0, e1, e2, e3]) => {
                    options.timestamps = Some(Timestamps {
                        tsval: u32::from_be_bytes([v0, v1, v2, v3]),
                        tsecr: u32::from_be_bytes([e0, e1, e2, e3]),
                    })
                }
                (option_kind::SACK, blocks) if blocks.len() % 8 == 0 => {
                    for block in blocks.chunks_exact(8) {
                        if let [l0, l1, l2, l3, r0, r1, r2, r3] = *block {
                            options.sack.push(
                                SeqNumber(u32::from_be_bytes([l0, l1, l2, l3])),
                                SeqNumber(u32::from_be_bytes([r0, r1, r2, r3])),
                            );
                        }
                    }
                }
                // Unknown kinds, and known kinds with a wrong length, are skipped (Linux
                // ignores such options too).
                _ => {}
            }
            bytes = tail;
        }
        options
    }

    /// Bytes these options take on the wire, padded to a multiple of 4 (Linux's layout).
    pub fn wire_len(&self) -> usize {
        let mut len = 0;
        if self.mss.is_some() {
            len += 4;
        }
        if self.timestamps.is_some() {
            len += 12; // SACK-permitted rides in the two padding bytes when both are present
        } else if self.sack_permitted {
            len += 4;
        }
        if self.window_scale.is_some() {
            len += 4;
        }
        if !self.sack.is_empty() {
            len += 4 + 8 * self.sack.len();
        }
        len
    }

    /// Writes the options into `out` (exactly `wire_len()` bytes), Linux's order:
    /// MSS; SACK-permitted + timestamps (or NOP NOP + timestamps, or NOP NOP + SACK-permitted);
    /// NOP + window scale; NOP NOP + SACK blocks.
    fn emit(&self, out: &mut [u8]) -> Result<(), BufferTooSmall> {
        let mut writer = Writer { out, at: 0 };
        if let Some(mss) = self.mss {
            writer.put(&[option_kind::MSS, 4])?;
            writer.put(&mss.to_be_bytes())?;
        }
        match (self.timestamps, self.sack_permitted) {
            (Some(ts), sack_permitted) => {
                if sack_permitted {
                    writer.put(&[option_kind::SACK_PERMITTED, 2])?;
                } else {
                    writer.put(&[option_kind::NOP, option_kind::NOP])?;
                }
                writer.put(&[option_kind::TIMESTAMPS, 10])?;
                writer.put(&ts.tsval.to_be_bytes())?;
                writer.put(&ts.tsecr.to_be_bytes())?;
            }
            (None, true) => writer.put(&[
                option_kind::NOP,
                option_kind::NOP,
                option_kind::SACK_PERMITTED,
                2,
            ])?,
            (None, false) => {}
        }
        if let Some(shift) = self.window_scale {
            writer.put(&[option_kind::NOP, option_kind::WINDOW_SCALE, 3, shift])?;
        }
        if !self.sack.is_empty() {
            let len = 2 + 8 * self.sack.len();
            writer.put(&[
                option_kind::NOP,
                option_kind::NOP,
                option_kind::SACK,
                len as u8,
            ])?;
            for (left, right) in self.sack.iter() {
                writer.put(&left.0.to_be_bytes())?;
                writer.put(&right.0.to_be_bytes())?;
            }
        }
        Ok(())
    }
}

struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), BufferTooSmall> {
        let end = self.at + bytes.len();
        self.out
            .get_mut(self.at..end)
            .ok_or(BufferTooSmall)?
            .copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }
}

/// A checked view of a TCP segment's bytes.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Accepts `buffer` if it holds a whole header: at least 20 bytes, a data offset of at
    /// least 5 words, and no more header than bytes. The checksum is not checked here.
    pub fn new_checked(buffer: T) -> Result<Self, TcpParseError> {
        let bytes = buffer.as_ref();
        let Some(&offset_byte) = bytes.get(field::OFFSET_FLAGS.start) else {
            return Err(TcpParseError::Truncated);
        };
        if bytes.len() < HEADER_LEN {
            return Err(TcpParseError::Truncated);
        }
        let header_len = usize::from(offset_byte >> 4) * 4;
        if header_len < HEADER_LEN {
            return Err(TcpParseError::BadDataOffset);
        }
        if header_len > bytes.len() {
            return Err(TcpParseError::Truncated);
        }
        Ok(TcpPacket { buffer })
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn u16_at(&self, range: core::ops::Range<usize>) -> u16 {
        match self.bytes().get(range) {
            Some(&[a, b]) => u16::from_be_bytes([a, b]),
            _ => 0,
        }
    }

    fn u32_at(&self, range: core::ops::Range<usize>) -> u32 {
        match self.bytes().get(range) {
            Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
            _ => 0,
        }
    }

    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }
    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(self.u32_at(field::SEQ))
    }
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(self.u32_at(field::ACK))
    }
    pub fn header_len(&self) -> usize {
        usize::from(self.u16_at(field::OFFSET_FLAGS) >> 12) * 4
    }
    pub fn flags(&self) -> TcpFlags {
        TcpFlags((self.u16_at(field::OFFSET_FLAGS) & 0xff) as u8)
    }
    pub fn window_len(&self) -> u16 {
        self.u16_at(field::WINDOW)
    }
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }
    pub fn urgent_pointer(&self) -> u16 {
        self.u16_at(field::URGENT)
    }
    pub fn options(&self) -> &[u8] {
        self.bytes()
            .get(HEADER_LEN..self.header_len())
            .unwrap_or(&[])
    }
    pub fn payload(&self) -> &[u8] {
        self.bytes().get(self.header_len()..).unwrap_or(&[])
    }

    /// True when the checksum over the IPv4 pseudo-header and the whole segment verifies.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        checksum::transport_checksum(src, dst, PROTOCOL, self.bytes()) == 0
    }
}

/// A parsed TCP header. `ack` is meaningful only when `flags` has ACK; `urgent` only with URG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpHeader {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNumber,
    pub ack: SeqNumber,
    pub flags: TcpFlags,
    /// The raw window field (not yet scaled).
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions,
}

impl TcpHeader {
    /// Parses a received segment: length and data-offset checks, then the checksum against the
    /// IPv4 pseudo-header. Returns the header and the payload.
    pub fn parse(
        segment: &[u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<(TcpHeader, &[u8]), TcpParseError> {
        let packet = TcpPacket::new_checked(segment)?;
        if !packet.verify_checksum(src, dst) {
            return Err(TcpParseError::BadChecksum);
        }
        Ok((
            Self::from_packet(&packet),
            packet_payload(segment, packet.header_len()),
        ))
    }

    /// Like [`TcpHeader::parse`] without the checksum, for a segment whose checksum is known
    /// good (see `Ipv4Meta::checksum_trusted`).
    pub fn parse_trusted(segment: &[u8]) -> Result<(TcpHeader, &[u8]), TcpParseError> {
        let packet = TcpPacket::new_checked(segment)?;
        Ok((
            Self::from_packet(&packet),
            packet_payload(segment, packet.header_len()),
        ))
    }

    /// Reads the header fields of an already checked packet (no checksum verification).
    pub fn from_packet<T: AsRef<[u8]>>(packet: &TcpPacket<T>) -> TcpHeader {
        TcpHeader {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq: packet.seq_number(),
            ack: packet.ack_number(),
            flags: packet.flags(),
            window: packet.window_len(),
            urgent: packet.urgent_pointer(),
            options: TcpOptions::parse(packet.options()),
        }
    }

    /// Header length including padded options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.wire_len()
    }

    /// Sequence space the segment occupies: payload plus one for each of SYN and FIN.
    pub fn segment_len(&self, payload_len: usize) -> usize {
        payload_len + usize::from(self.flags.syn()) + usize::from(self.flags.fin())
    }

    /// Writes header, options and `payload` into `out` with the checksum for `src`/`dst`;
    /// returns the number of bytes written. The options must fit in 40 bytes.
    pub fn emit(
        &self,
        payload: &[u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        out: &mut [u8],
    ) -> Result<usize, BufferTooSmall> {
        let total = self.emit_unchecksummed(payload, out)?;
        let out = out.get_mut(..total).ok_or(BufferTooSmall)?;
        let sum = checksum::transport_checksum(src, dst, PROTOCOL, out);
        out.get_mut(field::CHECKSUM)
            .ok_or(BufferTooSmall)?
            .copy_from_slice(&sum.to_be_bytes());
        Ok(total)
    }

    /// Like [`TcpHeader::emit`] with the checksum field left 0, for a segment whose checksum
    /// the device computes (segmentation offload, or the software segmentation standing in
    /// for it) or nobody verifies (the stack's own loopback).
    pub fn emit_unchecksummed(
        &self,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, BufferTooSmall> {
        let header_len = self.header_len();
        if header_len > HEADER_LEN + MAX_OPTIONS_LEN {
            return Err(BufferTooSmall);
        }
        let total = header_len + payload.len();
        let out = out.get_mut(..total).ok_or(BufferTooSmall)?;
        let (header, body) = out.split_at_mut(header_len);
        let (fixed, options) = header.split_at_mut(HEADER_LEN);
        let mut writer = Writer { out: fixed, at: 0 };
        writer.put(&self.src_port.to_be_bytes())?;
        writer.put(&self.dst_port.to_be_bytes())?;
        writer.put(&self.seq.0.to_be_bytes())?;
        writer.put(&self.ack.0.to_be_bytes())?;
        writer.put(&[((header_len / 4) as u8) << 4, self.flags.bits()])?;
        writer.put(&self.window.to_be_bytes())?;
        writer.put(&[0, 0])?;
        writer.put(&self.urgent.to_be_bytes())?;
        self.options.emit(options)?;
        body.copy_from_slice(payload);
        Ok(total)
    }

    /// The segment as a new byte vector (header, options, payload, checksum).
    pub fn to_bytes(&self, payload: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let mut out = vec![0; self.header_len() + payload.len()];
        match self.emit(payload, src, dst, &mut out) {
            Ok(len) => out.truncate(len),
            // Only options over 40 bytes can fail; the callers never build such headers.
            Err(BufferTooSmall) => out.clear(),
        }
        out
    }
}

fn packet_payload(segment: &[u8], header_len: usize) -> &[u8] {
    segment.get(header_len..).unwrap_or(&[])
}

/// Ports and sequence number from the first 8 bytes of a TCP header, as quoted in an ICMP
/// error (RFC 792 quotes only 64 bits of the original datagram's payload).
pub fn quoted_ports_and_seq(quoted: &[u8]) -> Option<(u16, u16, SeqNumber)> {
    match quoted.get(..8) {
        Some(&[s0, s1, d0, d1, q0, q1, q2, q3]) => Some((
            u16::from_be_bytes([s0, s1]),
            u16::from_be_bytes([d0, d1]),
            SeqNumber(u32::from_be_bytes([q0, q1, q2, q3])),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A connection between two kernel namespaces over veth (10.99.0.1:46186 -> 10.99.0.2:5001),
    // captured with tcpdump: `printf 'hello ustack\n' | nc -q 1 10.99.0.2 5001`. tcpdump
    // reported every checksum correct. The TCP bytes only (after the 20-byte IPv4 header).
    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

    /// SYN: seq 1578461849, win 64240, [mss 1460,sackOK,TS val 2693996720 ecr 0,nop,wscale 10]
    const SYN: [u8; 40] = [
        0xb4, 0x6a, 0x13, 0x89, 0x5e, 0x15, 0x6a, 0x99, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0xe6, 0x5d, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0xa0, 0x93,
        0x20, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
    ];
    /// SYN-ACK: seq 1764133335, ack 1578461850, win 65160, [mss 1460,sackOK,TS val 833111566
    /// ecr 2693996720,nop,wscale 10]
    const SYN_ACK: [u8; 40] = [
        0x13, 0x89, 0xb4, 0x6a, 0x69, 0x26, 0x89, 0xd7, 0x5e, 0x15, 0x6a, 0x9a, 0xa0, 0x12, 0xfe,
        0x88, 0x78, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x31, 0xa8,
        0x46, 0x0e, 0xa0, 0x93, 0x20, 0xb0, 0x01, 0x03, 0x03, 0x0a,
    ];
    /// ACK: ack 1764133336, win 63, [nop,nop,TS val 2693996720 ecr 833111566]
    const ACK: [u8; 32] = [
        0xb4, 0x6a, 0x13, 0x89, 0x5e, 0x15, 0x6a, 0x9a, 0x69, 0x26, 0x89, 0xd8, 0x80, 0x10, 0x00,
        0x3f, 0xa5, 0x19, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0xa0, 0x93, 0x20, 0xb0, 0x31, 0xa8,
        0x46, 0x0e,
    ];
    /// PSH|ACK with "hello ustack\n".
    const DATA: [u8; 45] = [
        0xb4, 0x6a, 0x13, 0x89, 0x5e, 0x15, 0x6a, 0x9a, 0x69, 0x26, 0x89, 0xd8, 0x80, 0x18, 0x00,
        0x3f, 0x09, 0xd2, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0xa0, 0x93, 0x20, 0xb0, 0x31, 0xa8,
        0x46, 0x0e, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x75, 0x73, 0x74, 0x61, 0x63, 0x6b, 0x0a,
    ];
    /// FIN|ACK from the client: seq 1578461863.
    const FIN: [u8; 32] = [
        0xb4, 0x6a, 0x13, 0x89, 0x5e, 0x15, 0x6a, 0xa7, 0x69, 0x26, 0x89, 0xd8, 0x80, 0x11, 0x00,
        0x3f, 0xa5, 0x0b, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0xa0, 0x93, 0x20, 0xb0, 0x31, 0xa8,
        0x46, 0x0e,
    ];
    /// A duplicate ACK with one SACK block, from a kernel receiver behind a lossy nft rule
    /// (10.99.1.2:5001 -> 10.99.1.1:42442): ack 2161543382 (rel. 5793), sack {7241:8689}.
    const SACK_ACK: [u8; 44] = [
        0x13, 0x89, 0xa5, 0xca, 0x5d, 0xd8, 0x19, 0x4c, 0x80, 0xd6, 0x98, 0xd6, 0xb0, 0x10, 0x00,
        0x4c, 0x01, 0x92, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0xe6, 0x0a, 0x2c, 0xbc, 0xf0, 0x49,
        0x96, 0x77, 0x01, 0x01, 0x05, 0x0a, 0x80, 0xd6, 0x9e, 0x7e, 0x80, 0xd6, 0xa4, 0x26,
    ];
    const SACK_SRC: Ipv4Addr = Ipv4Addr::new(10, 99, 1, 2);
    const SACK_DST: Ipv4Addr = Ipv4Addr::new(10, 99, 1, 1);

    fn syn_header() -> TcpHeader {
        TcpHeader {
            src_port: 46186,
            dst_port: 5001,
            seq: SeqNumber(1578461849),
            ack: SeqNumber(0),
            flags: TcpFlags::SYN,
            window: 64240,
            urgent: 0,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(10),
                sack_permitted: true,
                timestamps: Some(Timestamps {
                    tsval: 2693996720,
                    tsecr: 0,
                }),
                sack: SackBlocks::new(),
            },
        }
    }

    #[test]
    fn deconstruct_syn() {
        let packet = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!(packet.src_port(), 46186);
        assert_eq!(packet.dst_port(), 5001);
        assert_eq!(packet.seq_number(), SeqNumber(1578461849));
        assert_eq!(packet.header_len(), 40);
        assert_eq!(packet.flags(), TcpFlags::SYN);
        assert_eq!(packet.window_len(), 64240);
        assert_eq!(packet.checksum(), 0xe65d);
        assert!(packet.verify_checksum(CLIENT, SERVER));
        assert!(!packet.verify_checksum(SERVER, Ipv4Addr::new(10, 99, 0, 3)));
        assert!(packet.payload().is_empty());
        let (header, payload) = TcpHeader::parse(&SYN, CLIENT, SERVER).unwrap();
        assert_eq!(header, syn_header());
        assert!(payload.is_empty());
    }

    #[test]
    fn construct_syn_matches_kernel_bytes() {
        let mut out = [0xa5u8; 64];
        let len = syn_header().emit(&[], CLIENT, SERVER, &mut out).unwrap();
        assert_eq!(len, 40);
        assert_eq!(&out[..40], &SYN[..]);
        assert_eq!(out[40], 0xa5, "emit wrote past the segment");
    }

    #[test]
    fn every_captured_segment_roundtrips_byte_for_byte() {
        let cases: [(&[u8], Ipv4Addr, Ipv4Addr); 6] = [
            (&SYN, CLIENT, SERVER),
            (&SYN_ACK, SERVER, CLIENT),
            (&ACK, CLIENT, SERVER),
            (&DATA, CLIENT, SERVER),
            (&FIN, CLIENT, SERVER),
            (&SACK_ACK, SACK_SRC, SACK_DST),
        ];
        for (bytes, src, dst) in cases {
            let (header, payload) = TcpHeader::parse(bytes, src, dst).unwrap();
            assert_eq!(header.to_bytes(payload, src, dst), bytes, "{header:?}");
        }
    }

    #[test]
    fn deconstruct_syn_ack_ack_data_fin() {
        let (syn_ack, _) = TcpHeader::parse(&SYN_ACK, SERVER, CLIENT).unwrap();
        assert_eq!(syn_ack.flags, TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!(syn_ack.ack, SeqNumber(1578461850));
        assert_eq!(
            syn_ack.options.timestamps,
            Some(Timestamps {
                tsval: 833111566,
                tsecr: 2693996720
            })
        );
        let (ack, _) = TcpHeader::parse(&ACK, CLIENT, SERVER).unwrap();
        assert_eq!(ack.flags, TcpFlags::ACK);
        assert_eq!(ack.window, 63);
        assert_eq!(ack.options.mss, None);
        assert_eq!(ack.options.window_scale, None);
        assert!(!ack.options.sack_permitted);
        let (data, payload) = TcpHeader::parse(&DATA, CLIENT, SERVER).unwrap();
        assert_eq!(data.flags, TcpFlags::PSH | TcpFlags::ACK);
        assert_eq!(payload, b"hello ustack\n");
        assert_eq!(data.segment_len(payload.len()), 13);
        let (fin, payload) = TcpHeader::parse(&FIN, CLIENT, SERVER).unwrap();
        assert!(fin.flags.fin() && fin.flags.ack());
        assert_eq!(fin.seq, SeqNumber(1578461863));
        assert_eq!(fin.segment_len(payload.len()), 1);
    }

    #[test]
    fn deconstruct_sack_block() {
        let (header, _) = TcpHeader::parse(&SACK_ACK, SACK_SRC, SACK_DST).unwrap();
        assert_eq!(header.ack, SeqNumber(0x80d698d6));
        let blocks: Vec<_> = header.options.sack.iter().collect();
        assert_eq!(blocks, vec![(SeqNumber(0x80d69e7e), SeqNumber(0x80d6a426))]);
        // Relative to the ack, the block is 7241-5793 .. 8689-5793, as tcpdump printed.
        assert_eq!(blocks[0].0.since(header.ack), 7241 - 5793);
        assert_eq!(blocks[0].1.since(header.ack), 8689 - 5793);
    }

    #[test]
    fn truncated_and_bad_offset_are_rejected() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                TcpPacket::new_checked(&SYN[..len]).unwrap_err(),
                TcpParseError::Truncated
            );
        }
        // Data offset 10 words but only 39 bytes.
        assert_eq!(
            TcpHeader::parse(&SYN[..39], CLIENT, SERVER).unwrap_err(),
            TcpParseError::Truncated
        );
        for offset in 0..5u8 {
            let mut bytes = ACK;
            bytes[12] = offset << 4;
            assert_eq!(
                TcpPacket::new_checked(&bytes[..]).unwrap_err(),
                TcpParseError::BadDataOffset
            );
        }
    }

    #[test]
    fn any_flipped_bit_fails_the_checksum() {
        for byte in 0..DATA.len() {
            let mut bytes = DATA;
            bytes[byte] ^= 0x04;
            match TcpHeader::parse(&bytes, CLIENT, SERVER) {
                Err(TcpParseError::BadChecksum) => {}
                // Flipping a data-offset bit may make the header invalid first.
                Err(TcpParseError::Truncated) | Err(TcpParseError::BadDataOffset) => {
                    assert_eq!(byte, 12)
                }
                Ok(_) => panic!("corruption at byte {byte} not detected"),
            }
        }
    }

    #[test]
    fn malformed_and_unknown_options_are_skipped_safely() {
        // Unknown kind 30 (MPTCP) with length 4, then MSS: MSS is still read.
        let options = TcpOptions::parse(&[30, 4, 0xaa, 0xbb, 2, 4, 0x05, 0xb4]);
        assert_eq!(options.mss, Some(1460));
        // Length 0 would loop forever if trusted: parsing stops.
        assert_eq!(
            TcpOptions::parse(&[30, 0, 2, 4, 5, 0xb4]),
            TcpOptions::default()
        );
        // Length past the end: stops.
        assert_eq!(TcpOptions::parse(&[2, 9, 5, 0xb4]), TcpOptions::default());
        // Kind with no length byte at the end.
        assert_eq!(TcpOptions::parse(&[1, 1, 2]), TcpOptions::default());
        // A wrong length for a known kind is skipped, the rest is read.
        let options = TcpOptions::parse(&[2, 3, 5, 4, 2]);
        assert_eq!(options.mss, None);
        assert!(options.sack_permitted);
        // End of list stops parsing.
        assert_eq!(TcpOptions::parse(&[0, 4, 2]), TcpOptions::default());
        // SACK with a length not a multiple of 8 is ignored.
        assert!(TcpOptions::parse(&[5, 6, 1, 2, 3, 4]).sack.is_empty());
    }

    #[test]
    fn emit_option_layouts() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let mut header = TcpHeader {
            flags: TcpFlags::ACK,
            ..TcpHeader::default()
        };
        header.options.sack_permitted = true;
        header.options.window_scale = Some(7);
        let bytes = header.to_bytes(b"xy", src, dst);
        assert_eq!(&bytes[20..28], &[1, 1, 4, 2, 1, 3, 3, 7]);
        header.options = TcpOptions::default();
        header.options.timestamps = Some(Timestamps { tsval: 1, tsecr: 2 });
        for i in 0..4u32 {
            header
                .options
                .sack
                .push(SeqNumber(i * 10), SeqNumber(i * 10 + 5));
        }
        assert!(!header.options.sack.push(SeqNumber(0), SeqNumber(1)));
        // 12 + 4 + 32 = 48 > 40: refused.
        let mut out = [0u8; 100];
        assert_eq!(header.emit(&[], src, dst, &mut out), Err(BufferTooSmall));
        let mut three = SackBlocks::new();
        for i in 0..3u32 {
            three.push(SeqNumber(i * 10), SeqNumber(i * 10 + 5));
        }
        header.options.sack = three;
        let bytes = header.to_bytes(&[], src, dst);
        assert_eq!(bytes.len(), 60);
        let (parsed, _) = TcpHeader::parse(&bytes, src, dst).unwrap();
        assert_eq!(parsed, header);
        // Too small an output buffer is an error, not a panic.
        assert_eq!(
            header.emit(&[], src, dst, &mut out[..59]),
            Err(BufferTooSmall)
        );
    }

    #[test]
    fn quoted_header_from_icmp() {
        assert_eq!(
            quoted_ports_and_seq(&SYN[..8]),
            Some((46186, 5001, SeqNumber(1578461849)))
        );
        assert_eq!(quoted_ports_and_seq(&SYN[..7]), None);
    }

    #[test]
    fn flags_debug() {
        assert_eq!(format!("{:?}", TcpFlags::SYN | TcpFlags::ACK), "SYN|ACK");
        assert_eq!(format!("{:?}", TcpFlags::NONE), "-");
    }
}
