//! Ethernet II framing (IEEE 802.3 with an EtherType, RFC 894 for IPv4 over Ethernet).
//!
//! Parsing goes through etherparse's `Ethernet2HeaderSlice` (it checks the length); emitting
//! writes the 14-byte header in place at the front of a device buffer.

use core::fmt;
use core::str::FromStr;

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// ff:ff:ff:ff:ff:ff, every station on the link.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);
    /// 00:00:00:00:00:00, the "unknown" target hardware address of an ARP request.
    pub const UNSPECIFIED: EthernetAddress = EthernetAddress([0; 6]);

    /// The address in `bytes`, which must be exactly six bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Option<EthernetAddress> {
        <[u8; 6]>::try_from(bytes).ok().map(EthernetAddress)
    }

    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// The I/G bit (least significant bit of the first octet) marks group addresses; broadcast
    /// is one of them.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    pub fn is_unspecified(&self) -> bool {
        *self == Self::UNSPECIFIED
    }

    /// An individual station address: neither group (multicast/broadcast) nor all-zero. Only
    /// such addresses may be a frame's source or a neighbour's link address.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && !self.is_unspecified()
    }

    /// The U/L bit: set for locally administered addresses (e.g. 02:..., what TAPs get).
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// The Ethernet group address an IPv4 multicast group maps to (RFC 1112 section 6.4):
    /// 01:00:5e followed by the low 23 bits of the group address.
    pub fn ipv4_multicast(group: std::net::Ipv4Addr) -> EthernetAddress {
        let o = group.octets();
        EthernetAddress([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseEthernetAddressError;

impl fmt::Display for ParseEthernetAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid MAC address (expected six hex octets like 02:00:00:00:00:01)")
    }
}

impl std::error::Error for ParseEthernetAddressError {}

impl FromStr for EthernetAddress {
    type Err = ParseEthernetAddressError;

    /// Accepts `aa:bb:cc:dd:ee:ff` and `aa-bb-cc-dd-ee-ff` (one or two hex digits per octet).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let separator = if s.contains('-') { '-' } else { ':' };
        let mut octets = [0u8; 6];
        let mut parts = s.split(separator);
        for octet in &mut octets {
            let part = parts.next().ok_or(ParseEthernetAddressError)?;
            if part.is_empty() || part.len() > 2 {
                return Err(ParseEthernetAddressError);
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| ParseEthernetAddressError)?;
        }
        if parts.next().is_some() {
            return Err(ParseEthernetAddressError);
        }
        Ok(EthernetAddress(octets))
    }
}

/// The EtherType field. Values we do not speak are kept, not rejected.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum EtherType {
    Ipv4,
    Arp,
    Ipv6,
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(value: u16) -> Self {
        match value {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(value: EtherType) -> Self {
        match value {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Unknown(other) => other,
        }
    }
}

/// Length of an Ethernet II header (no 802.1Q tag, no FCS: TAP devices carry neither).
pub const HEADER_LEN: usize = 14;

/// Byte ranges of the header fields.
pub mod field {
    pub type Field = core::ops::Range<usize>;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
}

/// Why a frame could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EthernetError {
    /// Shorter than the 14-byte header.
    Truncated,
}

/// A parsed Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    pub src: EthernetAddress,
    pub dst: EthernetAddress,
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Parses the header of `frame` and returns it with the payload (everything after the
    /// header, including any padding up to the 60-byte minimum frame).
    pub fn parse(frame: &[u8]) -> Result<(EthernetRepr, &[u8]), EthernetError> {
        let header = etherparse::Ethernet2HeaderSlice::from_slice(frame)
            .map_err(|_| EthernetError::Truncated)?;
        let repr = EthernetRepr {
            src: EthernetAddress(header.source()),
            dst: EthernetAddress(header.destination()),
            ethertype: EtherType::from(header.ether_type().0),
        };
        let payload = frame.get(HEADER_LEN..).ok_or(EthernetError::Truncated)?;
        Ok((repr, payload))
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first 14 bytes of `buf`.
    ///
    /// Panics if `buf` is shorter than [`HEADER_LEN`]: callers size their buffers from
    /// `buffer_len()`, so a short buffer is a bug in ustack, never a property of the input.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[field::DESTINATION].copy_from_slice(&self.dst.0);
        buf[field::SOURCE].copy_from_slice(&self.src.0);
        buf[field::ETHERTYPE].copy_from_slice(&u16::from(self.ethertype).to_be_bytes());
    }
}

/// Rewrites the destination address of an already emitted frame (used when a frame waited for
/// ARP resolution). Frames shorter than a header are left alone.
pub fn set_destination(frame: &mut [u8], dst: EthernetAddress) {
    if let Some(bytes) = frame.get_mut(field::DESTINATION) {
        bytes.copy_from_slice(&dst.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fixtures;

    #[test]
    fn deconstruct_captured_arp_request() {
        let (repr, payload) = EthernetRepr::parse(&fixtures::ARP_REQUEST).unwrap();
        assert_eq!(repr.dst, EthernetAddress::BROADCAST);
        assert_eq!(repr.src, EthernetAddress(fixtures::PEER_MAC));
        assert_eq!(repr.ethertype, EtherType::Arp);
        assert_eq!(payload.len(), 28);
    }

    #[test]
    fn deconstruct_captured_ipv4_frame() {
        let (repr, payload) = EthernetRepr::parse(&fixtures::ECHO_REQUEST).unwrap();
        assert_eq!(repr.dst, EthernetAddress(fixtures::HOST_MAC));
        assert_eq!(repr.src, EthernetAddress(fixtures::PEER_MAC));
        assert_eq!(repr.ethertype, EtherType::Ipv4);
        assert_eq!(payload, &fixtures::ECHO_REQUEST[14..]);
    }

    #[test]
    fn construct_matches_capture() {
        let repr = EthernetRepr {
            src: EthernetAddress(fixtures::HOST_MAC),
            dst: EthernetAddress(fixtures::PEER_MAC),
            ethertype: EtherType::Ipv4,
        };
        // Pre-filled with 0xa5 so a field left unwritten shows up.
        let mut buf = [0xa5u8; HEADER_LEN];
        repr.emit(&mut buf);
        assert_eq!(&buf[..], &fixtures::ECHO_REPLY[..HEADER_LEN]);
    }

    #[test]
    fn truncated_header_is_an_error() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                EthernetRepr::parse(&fixtures::ARP_REQUEST[..len]),
                Err(EthernetError::Truncated)
            );
        }
        let (_, payload) = EthernetRepr::parse(&fixtures::ARP_REQUEST[..HEADER_LEN]).unwrap();
        assert!(payload.is_empty());
    }

    #[test]
    fn unknown_ethertype_is_data() {
        let mut frame = fixtures::ARP_REQUEST;
        frame[12] = 0x88;
        frame[13] = 0xcc; // LLDP
        let (repr, _) = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(repr.ethertype, EtherType::Unknown(0x88cc));
        assert_eq!(u16::from(repr.ethertype), 0x88cc);
    }

    #[test]
    fn address_classes_and_text() {
        let peer = EthernetAddress(fixtures::PEER_MAC);
        assert!(peer.is_unicast() && peer.is_local() && !peer.is_multicast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
        assert!(!EthernetAddress::BROADCAST.is_unicast());
        assert!(!EthernetAddress::UNSPECIFIED.is_unicast());
        assert_eq!(peer.to_string(), "02:00:00:00:00:01");
        assert_eq!("02:00:00:00:00:01".parse::<EthernetAddress>(), Ok(peer));
        assert_eq!("2-0-0-0-0-1".parse::<EthernetAddress>(), Ok(peer));
        assert_eq!(
            "AA:bb:cc:dd:ee:FF".parse::<EthernetAddress>().unwrap().0,
            [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]
        );
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "02:00:00:00:00:1g",
            "020:0:0:0:0:1",
        ] {
            assert!(bad.parse::<EthernetAddress>().is_err(), "{bad:?}");
        }
        assert_eq!(
            EthernetAddress::ipv4_multicast("224.128.1.2".parse().unwrap()).0,
            [0x01, 0x00, 0x5e, 0x00, 0x01, 0x02]
        );
    }
}
