//! UDP headers (RFC 768, with RFC 1122 section 4.1.3's checksum rules).
//!
//! The header is read through etherparse's `UdpHeaderSlice`; the length and checksum checks
//! against the IPv4 pseudo-header are ours, as is emitting into a device buffer.

use std::net::Ipv4Addr;

use super::checksum;

pub const HEADER_LEN: usize = 8;

/// IPv4 protocol number of UDP, for the pseudo-header.
const PROTOCOL_UDP: u8 = 17;

/// Byte ranges of the header fields.
pub mod field {
    pub type Field = core::ops::Range<usize>;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Why a datagram was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpError {
    /// Shorter than the 8-byte header.
    Truncated,
    /// The length field is below 8 or beyond the bytes the IP layer delivered.
    BadLength,
    /// The checksum is present (non-zero) and does not verify (RFC 1122 4.1.3.4: discard).
    BadChecksum,
}

/// A UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    /// Parses and verifies the datagram in `bytes` (the IPv4 payload). Returns the header and
    /// the datagram cut to its own length field (header + payload).
    pub fn parse(bytes: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> Result<(UdpRepr, &[u8]), UdpError> {
        Self::parse_checking(bytes, Some((src, dst)))
    }

    /// Like [`UdpRepr::parse`] without the checksum, for a datagram whose checksum is known
    /// good (see `Ipv4Meta::checksum_trusted`).
    pub fn parse_trusted(bytes: &[u8]) -> Result<(UdpRepr, &[u8]), UdpError> {
        Self::parse_checking(bytes, None)
    }

    /// Parses; verifies the checksum against the pseudo-header of `addresses` if given.
    fn parse_checking(
        bytes: &[u8],
        addresses: Option<(Ipv4Addr, Ipv4Addr)>,
    ) -> Result<(UdpRepr, &[u8]), UdpError> {
        let header =
            etherparse::UdpHeaderSlice::from_slice(bytes).map_err(|_| UdpError::Truncated)?;
        let length = usize::from(header.length());
        if length < HEADER_LEN {
            return Err(UdpError::BadLength);
        }
        // RFC 768: the length field covers header + data; bytes past it (IP payload longer
        // than the UDP length) are not part of the datagram.
        let datagram = bytes.get(..length).ok_or(UdpError::BadLength)?;
        // RFC 768: an all-zero checksum means the sender computed none.
        if let Some((src, dst)) = addresses {
            if header.checksum() != 0
                && checksum::transport_checksum(src, dst, PROTOCOL_UDP, datagram) != 0
            {
                return Err(UdpError::BadChecksum);
            }
        }
        Ok((
            UdpRepr {
                src_port: header.source_port(),
                dst_port: header.destination_port(),
            },
            datagram,
        ))
    }

    /// Header length plus `payload_len`.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes header, `payload` and checksum into `buf[..buffer_len(payload.len())]`. The
    /// checksum is always computed (RFC 1122 4.1.3.4 "MUST be enabled by default"); a computed
    /// zero is sent as 0xffff (RFC 768).
    ///
    /// Panics if `buf` is too short or `payload` exceeds a UDP datagram (sizing bugs in ustack).
    pub fn emit(&self, buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) {
        let len = self.buffer_len(payload.len());
        let length = u16::try_from(len).expect("UDP datagram longer than 65535 bytes");
        let datagram = &mut buf[..len];
        datagram[field::SRC_PORT].copy_from_slice(&self.src_port.to_be_bytes());
        datagram[field::DST_PORT].copy_from_slice(&self.dst_port.to_be_bytes());
        datagram[field::LENGTH].copy_from_slice(&length.to_be_bytes());
        datagram[field::CHECKSUM].copy_from_slice(&[0, 0]);
        datagram[HEADER_LEN..].copy_from_slice(payload);
        let sum = match checksum::transport_checksum(src, dst, PROTOCOL_UDP, datagram) {
            0 => 0xffff,
            sum => sum,
        };
        datagram[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::HEADER_LEN as ETH;
    use crate::wire::fixtures;

    const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
    const BROADCAST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 255);
    const IP: usize = 20;

    fn udp_of(frame: &[u8]) -> &[u8] {
        &frame[ETH + IP..]
    }

    #[test]
    fn deconstruct_captured_datagram() {
        let (repr, datagram) =
            UdpRepr::parse(udp_of(&fixtures::UDP_TO_CLOSED_PORT), PEER_IP, HOST_IP).unwrap();
        assert_eq!(
            repr,
            UdpRepr {
                src_port: 60517,
                dst_port: 9
            }
        );
        assert_eq!(&datagram[HEADER_LEN..], b"hi\n");
        let (repr, _) =
            UdpRepr::parse(udp_of(&fixtures::BROADCAST_UDP), PEER_IP, BROADCAST).unwrap();
        assert_eq!((repr.src_port, repr.dst_port), (55630, 9));
    }

    #[test]
    fn construct_matches_capture() {
        let repr = UdpRepr {
            src_port: 60517,
            dst_port: 9,
        };
        let mut buf = [0xa5u8; HEADER_LEN + 3];
        repr.emit(&mut buf, PEER_IP, HOST_IP, b"hi\n");
        assert_eq!(&buf[..], udp_of(&fixtures::UDP_TO_CLOSED_PORT));
    }

    #[test]
    fn checksum_uses_the_pseudo_header() {
        let bytes = udp_of(&fixtures::UDP_TO_CLOSED_PORT);
        // Same bytes, other destination address: the pseudo-header no longer matches.
        assert_eq!(
            UdpRepr::parse(bytes, PEER_IP, BROADCAST),
            Err(UdpError::BadChecksum)
        );
        let mut corrupted = bytes.to_vec();
        corrupted[9] ^= 0x01;
        assert_eq!(
            UdpRepr::parse(&corrupted, PEER_IP, HOST_IP),
            Err(UdpError::BadChecksum)
        );
        // A zero checksum means "none" (RFC 768).
        let mut unchecked = corrupted.clone();
        unchecked[6] = 0;
        unchecked[7] = 0;
        assert!(UdpRepr::parse(&unchecked, PEER_IP, HOST_IP).is_ok());
    }

    #[test]
    fn length_field_is_checked() {
        let bytes = udp_of(&fixtures::UDP_TO_CLOSED_PORT);
        for len in 0..HEADER_LEN {
            assert_eq!(
                UdpRepr::parse(&bytes[..len], PEER_IP, HOST_IP),
                Err(UdpError::Truncated)
            );
        }
        // Length field larger than the bytes present.
        assert_eq!(
            UdpRepr::parse(&bytes[..10], PEER_IP, HOST_IP),
            Err(UdpError::BadLength)
        );
        let mut short = bytes.to_vec();
        short[5] = 7;
        assert_eq!(
            UdpRepr::parse(&short, PEER_IP, HOST_IP),
            Err(UdpError::BadLength)
        );
        // Extra bytes after the datagram (IP payload longer than UDP length) are cut off.
        let mut long = bytes.to_vec();
        long.extend_from_slice(&[0xee; 5]);
        let (_, datagram) = UdpRepr::parse(&long, PEER_IP, HOST_IP).unwrap();
        assert_eq!(datagram, bytes);
    }
}
