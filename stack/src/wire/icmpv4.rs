//! ICMP for IPv4 (RFC 792, with RFC 1191's next-hop MTU and RFC 1122 section 3.2.2).
//!
//! The 8-byte header is read here rather than through etherparse's `Icmpv4Slice`, which
//! rejects timestamp messages whose length is not exactly 20 bytes: a host must treat odd or
//! unknown messages as data ([`Icmpv4Repr::Other`]), never as a parse failure.

use std::net::Ipv4Addr;

use super::checksum;

/// Type, code, checksum and the 4-byte "rest of header".
pub const HEADER_LEN: usize = 8;

/// Message types (RFC 792).
pub mod msg_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
    pub const TIMESTAMP: u8 = 13;
    pub const TIMESTAMP_REPLY: u8 = 14;
}

/// Byte ranges of the header fields.
pub mod field {
    pub type Field = core::ops::Range<usize>;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const REST: Field = 4..8;
    /// Echo: identifier and sequence number.
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQ: Field = 6..8;
    /// Destination unreachable, code 4: the next-hop MTU (RFC 1191 section 4).
    pub const NEXT_HOP_MTU: Field = 6..8;
    /// Parameter problem: the octet where the error was found.
    pub const POINTER: usize = 4;
}

/// True for the ICMP error messages (RFC 1122 3.2.2: an ICMP error is never sent about one of
/// these). Unknown types are not errors.
pub const fn is_error_type(msg_type: u8) -> bool {
    matches!(
        msg_type,
        msg_type::DEST_UNREACHABLE
            | msg_type::SOURCE_QUENCH
            | msg_type::REDIRECT
            | msg_type::TIME_EXCEEDED
            | msg_type::PARAMETER_PROBLEM
    )
}

macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:expr),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            Unknown(u8),
        }

        impl From<u8> for $name {
            fn from(value: u8) -> Self {
                match value {
                    $($value => $name::$variant,)*
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> Self {
                match value {
                    $($name::$variant => $value,)*
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

code_enum! {
    /// Destination unreachable codes (RFC 792, RFC 1122 3.2.2.1, RFC 1812 5.2.7.1).
    DstUnreachable {
        NetUnreachable = 0,
        HostUnreachable = 1,
        ProtocolUnreachable = 2,
        PortUnreachable = 3,
        /// "Fragmentation needed and DF set"; carries the next-hop MTU (RFC 1191).
        FragmentationNeeded = 4,
        SourceRouteFailed = 5,
        NetUnknown = 6,
        HostUnknown = 7,
        SourceHostIsolated = 8,
        NetProhibited = 9,
        HostProhibited = 10,
        NetUnreachableForTos = 11,
        HostUnreachableForTos = 12,
        CommunicationProhibited = 13,
        HostPrecedenceViolation = 14,
        PrecedenceCutoff = 15,
    }
}

code_enum! {
    /// Time exceeded codes (RFC 792).
    TimeExceeded {
        TtlExceeded = 0,
        FragmentReassembly = 1,
    }
}

/// Why an ICMP message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Error {
    /// Shorter than the 8-byte header.
    Truncated,
    /// The checksum over the whole message does not verify (RFC 1122 3.2.2: discard).
    BadChecksum,
}

/// An ICMP message. Error messages carry the quoted datagram (its IP header and at least the
/// first 8 bytes of its payload, as many as the sender included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    DstUnreachable {
        reason: DstUnreachable,
        /// RFC 1191: set with `FragmentationNeeded`, zero otherwise (and from old routers).
        next_hop_mtu: u16,
        quoted: &'a [u8],
    },
    SourceQuench {
        quoted: &'a [u8],
    },
    Redirect {
        code: u8,
        gateway: Ipv4Addr,
        quoted: &'a [u8],
    },
    TimeExceeded {
        reason: TimeExceeded,
        quoted: &'a [u8],
    },
    ParameterProblem {
        code: u8,
        pointer: u8,
        quoted: &'a [u8],
    },
    /// Any other type (timestamp, information, router discovery, unassigned ...).
    Other {
        msg_type: u8,
        code: u8,
        rest_of_header: [u8; 4],
        data: &'a [u8],
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Parses and checksum-verifies one ICMP message (the whole IPv4 payload).
    pub fn parse(bytes: &'a [u8]) -> Result<Icmpv4Repr<'a>, Icmpv4Error> {
        let (header, data) = bytes
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(Icmpv4Error::Truncated)?;
        if checksum::checksum(bytes) != 0 {
            return Err(Icmpv4Error::BadChecksum);
        }
        let [msg_type, code, _, _, r0, r1, r2, r3] = *header;
        let word = |a: u8, b: u8| u16::from_be_bytes([a, b]);
        Ok(match (msg_type, code) {
            (msg_type::ECHO_REQUEST, 0) => Icmpv4Repr::EchoRequest {
                ident: word(r0, r1),
                seq_no: word(r2, r3),
                data,
            },
            (msg_type::ECHO_REPLY, 0) => Icmpv4Repr::EchoReply {
                ident: word(r0, r1),
                seq_no: word(r2, r3),
                data,
            },
            (msg_type::DEST_UNREACHABLE, code) => Icmpv4Repr::DstUnreachable {
                reason: DstUnreachable::from(code),
                next_hop_mtu: word(r2, r3),
                quoted: data,
            },
            (msg_type::SOURCE_QUENCH, 0) => Icmpv4Repr::SourceQuench { quoted: data },
            (msg_type::REDIRECT, code) => Icmpv4Repr::Redirect {
                code,
                gateway: Ipv4Addr::new(r0, r1, r2, r3),
                quoted: data,
            },
            (msg_type::TIME_EXCEEDED, code) => Icmpv4Repr::TimeExceeded {
                reason: TimeExceeded::from(code),
                quoted: data,
            },
            (msg_type::PARAMETER_PROBLEM, code) => Icmpv4Repr::ParameterProblem {
                code,
                pointer: r0,
                quoted: data,
            },
            (msg_type, code) => Icmpv4Repr::Other {
                msg_type,
                code,
                rest_of_header: [r0, r1, r2, r3],
                data,
            },
        })
    }

    pub fn msg_type(&self) -> u8 {
        match self {
            Icmpv4Repr::EchoRequest { .. } => msg_type::ECHO_REQUEST,
            Icmpv4Repr::EchoReply { .. } => msg_type::ECHO_REPLY,
            Icmpv4Repr::DstUnreachable { .. } => msg_type::DEST_UNREACHABLE,
            Icmpv4Repr::SourceQuench { .. } => msg_type::SOURCE_QUENCH,
            Icmpv4Repr::Redirect { .. } => msg_type::REDIRECT,
            Icmpv4Repr::TimeExceeded { .. } => msg_type::TIME_EXCEEDED,
            Icmpv4Repr::ParameterProblem { .. } => msg_type::PARAMETER_PROBLEM,
            Icmpv4Repr::Other { msg_type, .. } => *msg_type,
        }
    }

    pub fn code(&self) -> u8 {
        match self {
            Icmpv4Repr::EchoRequest { .. }
            | Icmpv4Repr::EchoReply { .. }
            | Icmpv4Repr::SourceQuench { .. } => 0,
            Icmpv4Repr::DstUnreachable { reason, .. } => u8::from(*reason),
            Icmpv4Repr::TimeExceeded { reason, .. } => u8::from(*reason),
            Icmpv4Repr::Redirect { code, .. }
            | Icmpv4Repr::ParameterProblem { code, .. }
            | Icmpv4Repr::Other { code, .. } => *code,
        }
    }

    fn rest_of_header(&self) -> [u8; 4] {
        match self {
            Icmpv4Repr::EchoRequest { ident, seq_no, .. }
            | Icmpv4Repr::EchoReply { ident, seq_no, .. } => {
                let [a, b] = ident.to_be_bytes();
                let [c, d] = seq_no.to_be_bytes();
                [a, b, c, d]
            }
            Icmpv4Repr::DstUnreachable { next_hop_mtu, .. } => {
                let [c, d] = next_hop_mtu.to_be_bytes();
                [0, 0, c, d]
            }
            Icmpv4Repr::SourceQuench { .. } | Icmpv4Repr::TimeExceeded { .. } => [0; 4],
            Icmpv4Repr::Redirect { gateway, .. } => gateway.octets(),
            Icmpv4Repr::ParameterProblem { pointer, .. } => [*pointer, 0, 0, 0],
            Icmpv4Repr::Other { rest_of_header, .. } => *rest_of_header,
        }
    }

    /// The bytes after the 8-byte header: echo data, or the quoted datagram of an error.
    pub fn data(&self) -> &'a [u8] {
        match *self {
            Icmpv4Repr::EchoRequest { data, .. }
            | Icmpv4Repr::EchoReply { data, .. }
            | Icmpv4Repr::Other { data, .. } => data,
            Icmpv4Repr::DstUnreachable { quoted, .. }
            | Icmpv4Repr::SourceQuench { quoted }
            | Icmpv4Repr::Redirect { quoted, .. }
            | Icmpv4Repr::TimeExceeded { quoted, .. }
            | Icmpv4Repr::ParameterProblem { quoted, .. } => quoted,
        }
    }

    pub fn is_error(&self) -> bool {
        is_error_type(self.msg_type())
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data().len()
    }

    /// Writes the message (header, data, checksum) into `buf[..buffer_len()]`.
    ///
    /// Panics if `buf` is shorter than `buffer_len()` (a sizing bug in ustack, never input).
    pub fn emit(&self, buf: &mut [u8]) {
        let message = &mut buf[..self.buffer_len()];
        message[field::TYPE] = self.msg_type();
        message[field::CODE] = self.code();
        message[field::CHECKSUM].copy_from_slice(&[0, 0]);
        message[field::REST].copy_from_slice(&self.rest_of_header());
        message[HEADER_LEN..].copy_from_slice(self.data());
        let sum = checksum::checksum(message);
        message[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::HEADER_LEN as ETH;
    use crate::wire::fixtures;
    use crate::wire::ipv4::Ipv4Packet;

    fn icmp_of(frame: &[u8]) -> &[u8] {
        Ipv4Packet::parse(&frame[ETH..]).unwrap().payload
    }

    #[test]
    fn deconstruct_captured_echo_request_and_reply() {
        let request = Icmpv4Repr::parse(icmp_of(&fixtures::ECHO_REQUEST)).unwrap();
        let Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } = request
        else {
            panic!("not an echo request: {request:?}");
        };
        assert_eq!((ident, seq_no, data.len()), (0x1ace, 1, 56));
        let reply = Icmpv4Repr::parse(icmp_of(&fixtures::ECHO_REPLY)).unwrap();
        assert_eq!(
            reply,
            Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data
            }
        );
    }

    #[test]
    fn construct_echo_reply_matches_kernel() {
        let Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } = Icmpv4Repr::parse(icmp_of(&fixtures::ECHO_REQUEST)).unwrap()
        else {
            panic!("not an echo request");
        };
        let reply = Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        let mut buf = vec![0xa5u8; reply.buffer_len()];
        reply.emit(&mut buf);
        assert_eq!(&buf[..], icmp_of(&fixtures::ECHO_REPLY));
    }

    #[test]
    fn deconstruct_captured_port_unreachable() {
        let message = Icmpv4Repr::parse(icmp_of(&fixtures::ICMP_PORT_UNREACHABLE)).unwrap();
        let Icmpv4Repr::DstUnreachable {
            reason,
            next_hop_mtu,
            quoted,
        } = message
        else {
            panic!("not a destination unreachable: {message:?}");
        };
        assert_eq!(reason, DstUnreachable::PortUnreachable);
        assert_eq!(next_hop_mtu, 0);
        assert!(message.is_error());
        // The kernel quotes the whole 31-byte UDP datagram.
        assert_eq!(quoted, &fixtures::UDP_TO_CLOSED_PORT[ETH..]);
        let mut buf = vec![0u8; message.buffer_len()];
        message.emit(&mut buf);
        assert_eq!(&buf[..], icmp_of(&fixtures::ICMP_PORT_UNREACHABLE));
    }

    #[test]
    fn bad_checksum_and_truncation() {
        let mut bytes = icmp_of(&fixtures::ECHO_REQUEST).to_vec();
        bytes[20] ^= 0x40;
        assert_eq!(Icmpv4Repr::parse(&bytes), Err(Icmpv4Error::BadChecksum));
        let bytes = icmp_of(&fixtures::ECHO_REQUEST);
        for len in 0..HEADER_LEN {
            assert_eq!(
                Icmpv4Repr::parse(&bytes[..len]),
                Err(Icmpv4Error::Truncated)
            );
        }
    }

    #[test]
    fn every_error_type_roundtrips() {
        let quoted = &fixtures::UDP_TO_CLOSED_PORT[ETH..];
        let messages = [
            Icmpv4Repr::DstUnreachable {
                reason: DstUnreachable::FragmentationNeeded,
                next_hop_mtu: 1400,
                quoted,
            },
            Icmpv4Repr::SourceQuench { quoted },
            Icmpv4Repr::Redirect {
                code: 1,
                gateway: Ipv4Addr::new(10, 77, 0, 254),
                quoted,
            },
            Icmpv4Repr::TimeExceeded {
                reason: TimeExceeded::FragmentReassembly,
                quoted,
            },
            Icmpv4Repr::ParameterProblem {
                code: 0,
                pointer: 20,
                quoted,
            },
            Icmpv4Repr::Other {
                msg_type: 13,
                code: 0,
                rest_of_header: [1, 2, 3, 4],
                data: &[0; 12],
            },
        ];
        for message in messages {
            let mut buf = vec![0xa5u8; message.buffer_len()];
            message.emit(&mut buf);
            assert_eq!(checksum::checksum(&buf), 0);
            assert_eq!(Icmpv4Repr::parse(&buf), Ok(message));
        }
        assert!(!Icmpv4Repr::Other {
            msg_type: 42,
            code: 0,
            rest_of_header: [0; 4],
            data: &[]
        }
        .is_error());
    }

    #[test]
    fn codes_roundtrip() {
        for n in 0..=255u8 {
            assert_eq!(u8::from(DstUnreachable::from(n)), n);
            assert_eq!(u8::from(TimeExceeded::from(n)), n);
        }
    }
}
