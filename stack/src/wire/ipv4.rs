//! IPv4 headers (RFC 791) with the host checks of RFC 1122 section 3.2.1.
//!
//! [`Ipv4Packet::parse`] validates everything a host must check before it looks at a datagram
//! (version, IHL, total length against the bytes present, header checksum) and returns a
//! checked view whose accessors cannot fail. The fixed part of the header is parsed through
//! etherparse's `Ipv4HeaderSlice`; emitting is our own code that writes a header, options and
//! checksum in place into a device buffer.

use std::net::Ipv4Addr;

use super::checksum;

/// Header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// IHL is four bits of 32-bit words: at most 60 bytes, 40 of them options.
pub const MAX_HEADER_LEN: usize = 60;
/// Most option bytes a header can carry.
pub const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - MIN_HEADER_LEN;
/// The total length field is 16 bits.
pub const MAX_PACKET_LEN: usize = 65_535;
/// RFC 1122 3.2.1.7 / RFC 1700: the recommended default TTL (Linux `ip_default_ttl`).
pub const DEFAULT_TTL: u8 = 64;
/// RFC 791: every host must accept datagrams of 576 bytes; ICMP errors are kept within it.
pub const MIN_REASSEMBLY_BUFFER: usize = 576;
/// RFC 791: the smallest MTU of any link (60-byte header + 8 bytes of fragment data).
pub const MIN_MTU: usize = 68;

/// Byte ranges of the fixed header's fields.
pub mod field {
    pub type Field = core::ops::Range<usize>;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLAGS_FRAG: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC: Field = 12..16;
    pub const DST: Field = 16..20;
}

/// "Don't Fragment" in the flags/fragment-offset word.
const FLAG_DF: u16 = 0x4000;
/// "More Fragments".
const FLAG_MF: u16 = 0x2000;
/// The fragment offset, in 8-byte units.
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// The protocol field. Values we do not speak are kept as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpProtocol {
    Icmp,
    Tcp,
    Udp,
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(value: u8) -> Self {
        match value {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(value: IpProtocol) -> Self {
        match value {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Unknown(other) => other,
        }
    }
}

/// Why a datagram was rejected. Each variant has its own drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Error {
    /// Fewer bytes than the header, or than the total length field, needs.
    Truncated,
    /// Version field is not 4.
    BadVersion(u8),
    /// IHL below 5 words.
    BadHeaderLen(u8),
    /// Total length smaller than the header length.
    BadTotalLen(u16),
    /// Header checksum does not verify (RFC 1122 3.2.1.2: silently discard).
    BadChecksum,
}

/// The fields of an IPv4 header (options are carried as bytes by [`Ipv4Packet`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: IpProtocol,
    /// The whole second byte (DSCP + ECN).
    pub tos: u8,
    pub ident: u16,
    pub dont_fragment: bool,
    pub more_fragments: bool,
    /// Offset of this fragment's data in the original datagram, in bytes (a multiple of 8).
    pub frag_offset: u16,
    pub ttl: u8,
    /// Header length in bytes, options included: 20..=60, a multiple of 4.
    pub header_len: usize,
    /// Bytes after the header, as the total length field says.
    pub payload_len: usize,
}

impl Ipv4Repr {
    /// Total length of the datagram (header + payload).
    pub const fn total_len(&self) -> usize {
        self.header_len + self.payload_len
    }

    /// A fragment is any datagram with MF set or a non-zero offset (RFC 791 3.2).
    pub const fn is_fragment(&self) -> bool {
        self.more_fragments || self.frag_offset != 0
    }

    /// Writes the header into `buf[..header_len]`: the fixed part, then `options`, then zero
    /// (End of Option List) padding up to `header_len`, then the checksum.
    ///
    /// Panics if `buf` is shorter than `header_len`, if `header_len` is not 20..=60 and a
    /// multiple of 4, or if `options` do not fit: all are sizing bugs in ustack, never input.
    pub fn emit(&self, buf: &mut [u8], options: &[u8]) {
        assert!(
            (MIN_HEADER_LEN..=MAX_HEADER_LEN).contains(&self.header_len)
                && self.header_len & 3 == 0
                && options.len() <= self.header_len - MIN_HEADER_LEN,
            "IPv4 header length {} cannot hold {} option bytes",
            self.header_len,
            options.len()
        );
        let header = &mut buf[..self.header_len];
        header[field::VER_IHL] = 0x40 | (self.header_len / 4) as u8;
        header[field::TOS] = self.tos;
        let total = u16::try_from(self.total_len()).unwrap_or(u16::MAX);
        header[field::TOTAL_LEN].copy_from_slice(&total.to_be_bytes());
        header[field::IDENT].copy_from_slice(&self.ident.to_be_bytes());
        let mut flags_frag = (self.frag_offset / 8) & FRAG_OFFSET_MASK;
        if self.dont_fragment {
            flags_frag |= FLAG_DF;
        }
        if self.more_fragments {
            flags_frag |= FLAG_MF;
        }
        header[field::FLAGS_FRAG].copy_from_slice(&flags_frag.to_be_bytes());
        header[field::TTL] = self.ttl;
        header[field::PROTOCOL] = u8::from(self.protocol);
        header[field::CHECKSUM].copy_from_slice(&[0, 0]);
        header[field::SRC].copy_from_slice(&self.src_addr.octets());
        header[field::DST].copy_from_slice(&self.dst_addr.octets());
        let (opts, pad) = header[MIN_HEADER_LEN..].split_at_mut(options.len());
        opts.copy_from_slice(options);
        pad.fill(0);
        let sum = checksum::checksum(header);
        header[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    }
}

/// A datagram whose header passed validation. `header` and `payload` are exactly what the
/// header's IHL and total length fields describe; link-layer padding is cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<'a> {
    pub repr: Ipv4Repr,
    /// The raw header, options included (what ICMP errors quote).
    pub header: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> Ipv4Packet<'a> {
    /// Validates `bytes` as an IPv4 datagram (RFC 1122 3.2.1.1-3.2.1.2 and RFC 791).
    pub fn parse(bytes: &'a [u8]) -> Result<Ipv4Packet<'a>, Ipv4Error> {
        use etherparse::err::ipv4::{HeaderError, HeaderSliceError};
        let header = etherparse::Ipv4HeaderSlice::from_slice(bytes).map_err(|e| match e {
            HeaderSliceError::Len(_) => Ipv4Error::Truncated,
            HeaderSliceError::Content(HeaderError::UnexpectedVersion { version_number }) => {
                Ipv4Error::BadVersion(version_number)
            }
            HeaderSliceError::Content(HeaderError::HeaderLengthSmallerThanHeader { ihl }) => {
                Ipv4Error::BadHeaderLen(ihl)
            }
        })?;
        let raw_header = header.slice();
        // RFC 1122 3.2.1.2: "A host MUST verify the IP header checksum on every received
        // datagram and silently discard every datagram that has a bad checksum."
        if checksum::checksum(raw_header) != 0 {
            return Err(Ipv4Error::BadChecksum);
        }
        let header_len = raw_header.len();
        let total_len = header.total_len();
        if usize::from(total_len) < header_len {
            return Err(Ipv4Error::BadTotalLen(total_len));
        }
        let datagram = bytes
            .get(..usize::from(total_len))
            .ok_or(Ipv4Error::Truncated)?;
        let payload = datagram.get(header_len..).ok_or(Ipv4Error::Truncated)?;
        let repr = Ipv4Repr {
            src_addr: header.source_addr(),
            dst_addr: header.destination_addr(),
            protocol: IpProtocol::from(header.protocol().0),
            tos: raw_header.get(field::TOS).copied().unwrap_or(0),
            ident: header.identification(),
            dont_fragment: header.dont_fragment(),
            more_fragments: header.more_fragments(),
            frag_offset: header.fragments_offset().value() * 8,
            ttl: header.ttl(),
            header_len,
            payload_len: payload.len(),
        };
        Ok(Ipv4Packet {
            repr,
            header: raw_header,
            payload,
        })
    }

    /// The option bytes (between the fixed header and the payload).
    pub fn options(&self) -> &'a [u8] {
        self.header.get(MIN_HEADER_LEN..).unwrap_or(&[])
    }
}

/// Option kinds (RFC 791 3.1). The high bit is the "copied" flag.
pub mod option {
    pub const END_OF_LIST: u8 = 0;
    pub const NO_OPERATION: u8 = 1;
    pub const RECORD_ROUTE: u8 = 7;
    pub const TIMESTAMP: u8 = 68;
    pub const LOOSE_SOURCE_ROUTE: u8 = 131;
    pub const STRICT_SOURCE_ROUTE: u8 = 137;
    /// Options with this bit set are copied into every fragment.
    pub const COPIED_FLAG: u8 = 0x80;
}

/// One option as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOption<'a> {
    pub kind: u8,
    /// The whole option: kind byte, and for multi-byte options the length byte and data.
    pub bytes: &'a [u8],
}

/// The options could not be walked: a length byte is missing, below 2, or runs past the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedOptions;

/// Walks option bytes. Stops at End of Option List; yields one error and stops on malformed
/// input, so no caller can index past the header.
#[derive(Debug, Clone)]
pub struct OptionsIter<'a> {
    rest: &'a [u8],
}

impl<'a> OptionsIter<'a> {
    pub fn new(options: &'a [u8]) -> Self {
        OptionsIter { rest: options }
    }
}

impl<'a> Iterator for OptionsIter<'a> {
    type Item = Result<RawOption<'a>, MalformedOptions>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, after_kind) = self.rest.split_first()?;
        match kind {
            option::END_OF_LIST => {
                self.rest = &[];
                None
            }
            option::NO_OPERATION => {
                let bytes = &self.rest[..1];
                self.rest = after_kind;
                Some(Ok(RawOption { kind, bytes }))
            }
            _ => {
                let len = after_kind.first().map(|&l| usize::from(l));
                match len {
                    Some(len) if len >= 2 && len <= self.rest.len() => {
                        let (bytes, rest) = self.rest.split_at(len);
                        self.rest = rest;
                        Some(Ok(RawOption { kind, bytes }))
                    }
                    _ => {
                        self.rest = &[];
                        Some(Err(MalformedOptions))
                    }
                }
            }
        }
    }
}

/// Copies the options that must appear in every fragment (copied flag set, RFC 791 3.2
/// "Fragmentation") into `out`, padded with End of Option List to a multiple of 4. Returns the
/// number of bytes written. Malformed options end the copy.
pub fn copied_options(options: &[u8], out: &mut [u8; MAX_OPTIONS_LEN]) -> usize {
    let mut len = 0;
    for opt in OptionsIter::new(options) {
        let Ok(opt) = opt else { break };
        if opt.kind & option::COPIED_FLAG == 0 {
            continue;
        }
        let Some(dst) = out.get_mut(len..len + opt.bytes.len()) else {
            break;
        };
        dst.copy_from_slice(opt.bytes);
        len += opt.bytes.len();
    }
    let padded = len.next_multiple_of(4).min(MAX_OPTIONS_LEN);
    out[len..padded].fill(option::END_OF_LIST);
    padded
}

/// Records `addr` in a Record Route option (RFC 791 3.1 "Record Route") if a slot is free:
/// writes it at the pointer and advances the pointer by 4. `rr` is the whole option (kind,
/// length, pointer, slots). Returns false when the option is full or malformed.
pub fn record_route_add(rr: &mut [u8], addr: Ipv4Addr) -> bool {
    let (Some(&len), Some(&pointer)) = (rr.get(1), rr.get(2)) else {
        return false;
    };
    let len = usize::from(len).min(rr.len());
    let pointer = usize::from(pointer);
    // The pointer is 1-based and points at the next free slot; the smallest legal value is 4.
    if pointer < 4 || pointer + 3 > len {
        return false;
    }
    let Some(slot) = rr.get_mut(pointer - 1..pointer + 3) else {
        return false;
    };
    slot.copy_from_slice(&addr.octets());
    rr[2] = u8::try_from(pointer + 4).unwrap_or(u8::MAX);
    true
}

/// True for an address that names one host: not 0.0.0.0, not limited broadcast, not multicast
/// (224/4), not reserved (240/4). RFC 1122 3.2.1.3 lists what may never be a source.
pub fn is_unicast_host(addr: Ipv4Addr) -> bool {
    !(addr.is_unspecified()
        || addr.is_broadcast()
        || addr.is_multicast()
        || addr.octets()[0] >= 240)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::HEADER_LEN as ETH;
    use crate::wire::fixtures;

    const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

    #[test]
    fn deconstruct_captured_echo_request() {
        let packet = Ipv4Packet::parse(&fixtures::ECHO_REQUEST[ETH..]).unwrap();
        let r = packet.repr;
        assert_eq!((r.src_addr, r.dst_addr), (PEER_IP, HOST_IP));
        assert_eq!(r.protocol, IpProtocol::Icmp);
        assert_eq!((r.tos, r.ttl, r.ident), (0, 64, 14226));
        assert!(r.dont_fragment && !r.more_fragments && !r.is_fragment());
        assert_eq!((r.header_len, r.payload_len, r.total_len()), (20, 64, 84));
        assert_eq!(packet.payload, &fixtures::ECHO_REQUEST[ETH + 20..]);
        assert!(packet.options().is_empty());
    }

    #[test]
    fn deconstruct_captured_fragments() {
        let offsets: Vec<(u16, bool, usize)> = [
            &fixtures::FRAG_REQUEST_0[..],
            &fixtures::FRAG_REQUEST_1,
            &fixtures::FRAG_REQUEST_2,
        ]
        .iter()
        .map(|f| {
            let r = Ipv4Packet::parse(&f[ETH..]).unwrap().repr;
            assert_eq!(r.ident, 14227);
            assert!(r.is_fragment() && !r.dont_fragment);
            (r.frag_offset, r.more_fragments, r.payload_len)
        })
        .collect();
        assert_eq!(
            offsets,
            [(0, true, 1480), (1480, true, 1480), (2960, false, 48)]
        );
    }

    #[test]
    fn deconstruct_captured_record_route_options() {
        let packet = Ipv4Packet::parse(&fixtures::RR_ECHO_REQUEST[ETH..]).unwrap();
        assert_eq!(packet.repr.header_len, 60);
        assert_eq!(packet.repr.payload_len, 64);
        let options: Vec<_> = OptionsIter::new(packet.options())
            .map(|o| o.unwrap())
            .collect();
        assert_eq!(options.len(), 2);
        assert_eq!(options[0].kind, option::NO_OPERATION);
        assert_eq!(options[1].kind, option::RECORD_ROUTE);
        assert_eq!(options[1].bytes.len(), 39);
        assert_eq!(options[1].bytes[2], 8, "pointer after one recorded address");
        assert_eq!(&options[1].bytes[3..7], &PEER_IP.octets());

        // The kernel's reply: RR with three addresses (pointer 16), then EOL.
        let reply = Ipv4Packet::parse(&fixtures::RR_ECHO_REPLY[ETH..]).unwrap();
        let options: Vec<_> = OptionsIter::new(reply.options())
            .map(|o| o.unwrap())
            .collect();
        assert_eq!(options.len(), 1);
        assert_eq!(options[0].bytes[2], 16);
    }

    #[test]
    fn construct_matches_captured_reply_header() {
        // The kernel's echo reply header: no DF, TTL 64, id 26292.
        let repr = Ipv4Repr {
            src_addr: HOST_IP,
            dst_addr: PEER_IP,
            protocol: IpProtocol::Icmp,
            tos: 0,
            ident: 26292,
            dont_fragment: false,
            more_fragments: false,
            frag_offset: 0,
            ttl: 64,
            header_len: 20,
            payload_len: 64,
        };
        let mut buf = [0xa5u8; 20];
        repr.emit(&mut buf, &[]);
        assert_eq!(&buf[..], &fixtures::ECHO_REPLY[ETH..ETH + 20]);
        assert_eq!(
            Ipv4Packet::parse(&fixtures::ECHO_REPLY[ETH..])
                .unwrap()
                .repr,
            repr
        );
    }

    #[test]
    fn construct_with_options_and_fragment_fields() {
        for frame in [
            &fixtures::RR_ECHO_REPLY[..],
            &fixtures::FRAG_REPLY_0,
            &fixtures::FRAG_REPLY_1,
            &fixtures::FRAG_REPLY_2,
            &fixtures::ICMP_PORT_UNREACHABLE,
            &fixtures::TCP_RST,
        ] {
            let packet = Ipv4Packet::parse(&frame[ETH..]).unwrap();
            let mut buf = vec![0xa5u8; packet.repr.header_len];
            packet.repr.emit(&mut buf, packet.options());
            assert_eq!(&buf[..], packet.header);
        }
    }

    #[test]
    fn bad_checksum_is_detected() {
        let mut bytes = fixtures::ECHO_REQUEST[ETH..].to_vec();
        bytes[11] ^= 0x01;
        assert_eq!(Ipv4Packet::parse(&bytes), Err(Ipv4Error::BadChecksum));
        // A flipped bit anywhere in the header breaks it too.
        let mut bytes = fixtures::ECHO_REQUEST[ETH..].to_vec();
        bytes[8] = 1; // TTL
        assert_eq!(Ipv4Packet::parse(&bytes), Err(Ipv4Error::BadChecksum));
        // ... but not in the payload (that is ICMP's business).
        let mut bytes = fixtures::ECHO_REQUEST[ETH..].to_vec();
        bytes[40] ^= 0xff;
        assert!(Ipv4Packet::parse(&bytes).is_ok());
    }

    /// Rewrites a header field and fixes the checksum, so the field check itself is reached.
    fn with_field(bytes: &[u8], index: usize, value: u8) -> Vec<u8> {
        let mut bytes = bytes.to_vec();
        bytes[index] = value;
        let ihl = usize::from(bytes[0] & 0x0f) * 4;
        if ihl >= 20 && bytes.len() >= ihl {
            bytes[10] = 0;
            bytes[11] = 0;
            let sum = checksum::checksum(&bytes[..ihl]);
            bytes[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        bytes
    }

    #[test]
    fn version_ihl_and_length_checks() {
        let good = &fixtures::ECHO_REQUEST[ETH..];
        assert_eq!(
            Ipv4Packet::parse(&with_field(good, 0, 0x65)),
            Err(Ipv4Error::BadVersion(6))
        );
        assert_eq!(
            Ipv4Packet::parse(&with_field(good, 0, 0x44)),
            Err(Ipv4Error::BadHeaderLen(4))
        );
        // IHL 15 claims 60 bytes of header: with the checksum fixed over those 60 bytes, the
        // first 40 ICMP bytes are read as options and 24 bytes remain as payload.
        let long_bytes = with_field(good, 0, 0x4f);
        let long_header = Ipv4Packet::parse(&long_bytes).unwrap();
        assert_eq!(
            (long_header.repr.header_len, long_header.payload.len()),
            (60, 24)
        );
        // Total length 19 < header: bad length.
        let short = with_field(&with_field(good, 2, 0), 3, 19);
        assert_eq!(Ipv4Packet::parse(&short), Err(Ipv4Error::BadTotalLen(19)));
        // Total length beyond the bytes present: truncated.
        let long = with_field(good, 3, 85);
        assert_eq!(Ipv4Packet::parse(&long), Err(Ipv4Error::Truncated));
        // Ethernet padding after the datagram is cut off.
        let mut padded = good.to_vec();
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(Ipv4Packet::parse(&padded).unwrap().payload.len(), 64);
    }

    #[test]
    fn truncated_headers_are_rejected() {
        let bytes = &fixtures::RR_ECHO_REQUEST[ETH..];
        for len in 0..bytes.len() {
            assert_eq!(
                Ipv4Packet::parse(&bytes[..len]),
                Err(Ipv4Error::Truncated),
                "len {len}"
            );
        }
    }

    #[test]
    fn malformed_options_stop_the_walk() {
        let cases: [(&[u8], usize); 5] = [
            (&[7], 1),             // kind without length
            (&[7, 1, 0, 0], 1),    // length below 2
            (&[7, 39, 4, 0], 1),   // length past the end
            (&[1, 1, 0, 7, 3], 2), // NOP NOP EOL: stops at EOL
            (&[68, 4, 5, 0], 1),   // a complete timestamp option
        ];
        for (bytes, count) in cases {
            assert_eq!(OptionsIter::new(bytes).count(), count, "{bytes:?}");
        }
        assert!(OptionsIter::new(&[7, 39, 4, 0]).next().unwrap().is_err());
    }

    #[test]
    fn copied_options_keep_only_flagged_ones() {
        // NOP, RR (not copied), LSRR (copied, length 7).
        let options = [1, 7, 7, 4, 0, 0, 0, 0, 131, 7, 4, 10, 0, 0, 1];
        let mut out = [0xa5u8; MAX_OPTIONS_LEN];
        let len = copied_options(&options, &mut out);
        assert_eq!(len, 8);
        assert_eq!(&out[..8], &[131, 7, 4, 10, 0, 0, 1, 0]);
        let rr_request = Ipv4Packet::parse(&fixtures::RR_ECHO_REQUEST[ETH..]).unwrap();
        assert_eq!(copied_options(rr_request.options(), &mut out), 0);
    }

    #[test]
    fn record_route_fills_slots_until_full() {
        let mut rr = [7u8, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(record_route_add(&mut rr, HOST_IP));
        assert!(record_route_add(&mut rr, PEER_IP));
        assert!(!record_route_add(&mut rr, PEER_IP), "two slots only");
        assert_eq!(rr, [7, 11, 12, 10, 77, 0, 2, 10, 77, 0, 1]);
        assert!(!record_route_add(&mut [7, 3, 1], HOST_IP));
        assert!(!record_route_add(&mut [7], HOST_IP));
    }

    #[test]
    fn unicast_host_addresses() {
        assert!(is_unicast_host(PEER_IP));
        assert!(is_unicast_host(Ipv4Addr::LOCALHOST));
        for addr in ["0.0.0.0", "255.255.255.255", "224.0.0.1", "240.0.0.1"] {
            assert!(!is_unicast_host(addr.parse().unwrap()), "{addr}");
        }
    }

    #[test]
    fn protocol_numbers_roundtrip() {
        for n in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(n)), n);
        }
        assert_eq!(IpProtocol::from(17), IpProtocol::Udp);
    }
}
