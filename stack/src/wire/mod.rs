//! Wire formats: one module per protocol, two levels each.
//!
//! * **Parsing** turns untrusted bytes into a `Repr` (or a checked view such as
//!   [`ipv4::Ipv4Packet`]). Parsers check every length before they read, verify checksums
//!   where the protocol has one, and return an error enum whose variants map one-to-one onto
//!   drop counters in [`crate::stats::Stats`]. Once a parse has succeeded, no accessor of the
//!   result can panic: that is the contract every module here keeps. Unknown values (an
//!   EtherType, an IP protocol, an ICMP type, an ARP opcode) are data (`Unknown(n)`
//!   variants), never errors. etherparse does the header reading where it fits.
//! * **Emitting** writes a `Repr` in place into a buffer the caller sized with
//!   `buffer_len()`, so a frame is built directly in the device buffer it will be sent from.
//!   Emitting into a buffer that is too short panics: that is a sizing bug in ustack, never a
//!   property of the network input.
//!
//! Byte offsets of each header's fields are named in a `field` module per protocol.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod ipv4;
pub mod tcp;
pub mod udp;

pub use arp::{ArpOperation, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetRepr};
pub use icmpv4::Icmpv4Repr;
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use udp::UdpRepr;

/// Frames captured from the Linux kernel, shared with the integration tests.
#[cfg(test)]
#[path = "../../tests/frames_fixtures/mod.rs"]
pub(crate) mod fixtures;
