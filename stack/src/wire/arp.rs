//! ARP for IPv4 over Ethernet (RFC 826): the only hardware/protocol pair ustack speaks.
//!
//! Parsing uses etherparse's `ArpPacketSlice` (it checks that the slice holds the addresses the
//! length fields announce); we then insist on Ethernet/IPv4 sizes. Emitting writes the fixed
//! 28-byte packet in place.

use std::net::Ipv4Addr;

use super::ethernet::EthernetAddress;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// Hardware type 1 (Ethernet), RFC 826 "ar$hrd".
pub const HARDWARE_ETHERNET: u16 = 1;
/// Protocol type 0x0800 (IPv4), RFC 826 "ar$pro".
pub const PROTOCOL_IPV4: u16 = 0x0800;

/// Byte ranges of an Ethernet/IPv4 ARP packet's fields.
pub mod field {
    pub type Field = core::ops::Range<usize>;
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// The ARP opcode ("ar$op").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(value: u16) -> Self {
        match value {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(value: ArpOperation) -> Self {
        match value {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(other) => other,
        }
    }
}

/// Why an ARP packet was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpError {
    /// Shorter than its own length fields say.
    Truncated,
    /// Not Ethernet/IPv4 (hardware type, protocol type or address sizes differ).
    Unsupported,
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub sender_hardware_addr: EthernetAddress,
    pub sender_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: EthernetAddress,
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Parses an ARP packet (the Ethernet payload; trailing padding is ignored).
    pub fn parse(bytes: &[u8]) -> Result<ArpRepr, ArpError> {
        let packet =
            etherparse::ArpPacketSlice::from_slice(bytes).map_err(|_| ArpError::Truncated)?;
        // RFC 826: "?Do I have the hardware type in ar$hrd? ... ?Do I speak the protocol in
        // ar$pro?" — if not, discard.
        if packet.hw_addr_type() != etherparse::ArpHardwareId::ETHERNET
            || packet.proto_addr_type() != etherparse::EtherType::IPV4
            || packet.hw_addr_size() != 6
            || packet.proto_addr_size() != 4
        {
            return Err(ArpError::Unsupported);
        }
        let mac = |b: &[u8]| EthernetAddress::from_bytes(b).ok_or(ArpError::Truncated);
        let ip = |b: &[u8]| {
            <[u8; 4]>::try_from(b)
                .map(Ipv4Addr::from)
                .map_err(|_| ArpError::Truncated)
        };
        Ok(ArpRepr {
            operation: ArpOperation::from(packet.operation().0),
            sender_hardware_addr: mac(packet.sender_hw_addr())?,
            sender_protocol_addr: ip(packet.sender_protocol_addr())?,
            target_hardware_addr: mac(packet.target_hw_addr())?,
            target_protocol_addr: ip(packet.target_protocol_addr())?,
        })
    }

    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// A gratuitous ARP announces the sender's own binding: sender and target protocol
    /// addresses are equal (RFC 5227 section 3 calls the request form an "ARP Announcement").
    pub fn is_gratuitous(&self) -> bool {
        self.sender_protocol_addr == self.target_protocol_addr
    }

    /// Writes the packet into the first 28 bytes of `buf`.
    ///
    /// Panics if `buf` is shorter than [`PACKET_LEN`] (a sizing bug in ustack, never input).
    pub fn emit(&self, buf: &mut [u8]) {
        buf[field::HTYPE].copy_from_slice(&HARDWARE_ETHERNET.to_be_bytes());
        buf[field::PTYPE].copy_from_slice(&PROTOCOL_IPV4.to_be_bytes());
        buf[field::HLEN] = 6;
        buf[field::PLEN] = 4;
        buf[field::OPER].copy_from_slice(&u16::from(self.operation).to_be_bytes());
        buf[field::SHA].copy_from_slice(&self.sender_hardware_addr.0);
        buf[field::SPA].copy_from_slice(&self.sender_protocol_addr.octets());
        buf[field::THA].copy_from_slice(&self.target_hardware_addr.0);
        buf[field::TPA].copy_from_slice(&self.target_protocol_addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::HEADER_LEN;
    use crate::wire::fixtures;

    const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

    #[test]
    fn deconstruct_captured_request() {
        let repr = ArpRepr::parse(&fixtures::ARP_REQUEST[HEADER_LEN..]).unwrap();
        assert_eq!(repr.operation, ArpOperation::Request);
        assert_eq!(
            repr.sender_hardware_addr,
            EthernetAddress(fixtures::PEER_MAC)
        );
        assert_eq!(repr.sender_protocol_addr, PEER_IP);
        assert_eq!(repr.target_hardware_addr, EthernetAddress::UNSPECIFIED);
        assert_eq!(repr.target_protocol_addr, HOST_IP);
        assert!(!repr.is_gratuitous());
    }

    #[test]
    fn deconstruct_captured_reply() {
        let repr = ArpRepr::parse(&fixtures::ARP_REPLY[HEADER_LEN..]).unwrap();
        assert_eq!(repr.operation, ArpOperation::Reply);
        assert_eq!(
            repr.sender_hardware_addr,
            EthernetAddress(fixtures::HOST_MAC)
        );
        assert_eq!(repr.sender_protocol_addr, HOST_IP);
        assert_eq!(
            repr.target_hardware_addr,
            EthernetAddress(fixtures::PEER_MAC)
        );
        assert_eq!(repr.target_protocol_addr, PEER_IP);
    }

    #[test]
    fn deconstruct_captured_gratuitous() {
        let repr = ArpRepr::parse(&fixtures::GRATUITOUS_ARP[HEADER_LEN..]).unwrap();
        assert_eq!(repr.operation, ArpOperation::Request);
        assert!(repr.is_gratuitous());
        assert_eq!(repr.sender_protocol_addr, PEER_IP);
    }

    #[test]
    fn construct_matches_captured_reply() {
        let repr = ArpRepr {
            operation: ArpOperation::Reply,
            sender_hardware_addr: EthernetAddress(fixtures::HOST_MAC),
            sender_protocol_addr: HOST_IP,
            target_hardware_addr: EthernetAddress(fixtures::PEER_MAC),
            target_protocol_addr: PEER_IP,
        };
        let mut buf = [0xa5u8; PACKET_LEN];
        repr.emit(&mut buf);
        assert_eq!(&buf[..], &fixtures::ARP_REPLY[HEADER_LEN..]);
    }

    #[test]
    fn parse_emit_roundtrip_of_every_captured_arp() {
        for frame in [
            &fixtures::ARP_REQUEST[..],
            &fixtures::ARP_REPLY,
            &fixtures::GRATUITOUS_ARP,
            &fixtures::PEER_UNICAST_PROBE,
            &fixtures::HOST_UNICAST_PROBE_REPLY,
        ] {
            let repr = ArpRepr::parse(&frame[HEADER_LEN..]).unwrap();
            let mut buf = [0u8; PACKET_LEN];
            repr.emit(&mut buf);
            assert_eq!(&buf[..], &frame[HEADER_LEN..HEADER_LEN + PACKET_LEN]);
        }
    }

    #[test]
    fn truncated_packets_are_rejected() {
        let body = &fixtures::ARP_REQUEST[HEADER_LEN..];
        for len in 0..PACKET_LEN {
            assert_eq!(
                ArpRepr::parse(&body[..len]),
                Err(ArpError::Truncated),
                "len {len}"
            );
        }
    }

    #[test]
    fn other_hardware_or_protocol_is_unsupported() {
        let body = &fixtures::ARP_REQUEST[HEADER_LEN..];
        for (index, value) in [(1usize, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut packet = body.to_vec();
            packet[index] = value;
            // A larger announced address size may make the packet too short instead.
            let result = ArpRepr::parse(&packet);
            assert!(
                matches!(
                    result,
                    Err(ArpError::Unsupported) | Err(ArpError::Truncated)
                ),
                "byte {index}: {result:?}"
            );
        }
        let mut packet = body.to_vec();
        packet[7] = 9;
        assert_eq!(
            ArpRepr::parse(&packet).unwrap().operation,
            ArpOperation::Unknown(9)
        );
    }
}
