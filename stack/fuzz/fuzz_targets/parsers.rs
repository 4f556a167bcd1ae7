//! Every wire parser on arbitrary bytes: none may panic, and what parses re-emits to bytes
//! that parse to the same thing.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use ustack::wire::ipv4::OptionsIter;
use ustack::wire::{ArpRepr, EthernetRepr, Icmpv4Repr, Ipv4Packet, UdpRepr};

fuzz_target!(|data: &[u8]| {
    let _ = EthernetRepr::parse(data);
    if let Ok(arp) = ArpRepr::parse(data) {
        let mut buf = [0u8; 28];
        arp.emit(&mut buf);
        assert_eq!(ArpRepr::parse(&buf), Ok(arp));
    }
    if let Ok(packet) = Ipv4Packet::parse(data) {
        let _ = OptionsIter::new(packet.options()).count();
        let mut header = vec![0u8; packet.repr.header_len];
        packet.repr.emit(&mut header, packet.options());
        // Equal but for the checksum's representation (0x0000 and 0xffff are both one's
        // complement zero, and either verifies) and the reserved flag bit, which the repr does
        // not carry (RFC 791: must be zero; ignored on receipt).
        let mut received = packet.header.to_vec();
        received[6] &= 0x7f;
        assert_eq!(header[..10], received[..10]);
        assert_eq!(header[12..], packet.header[12..]);
        assert_eq!(ustack::wire::checksum::checksum(&header), 0);
    }
    if let Ok(message) = Icmpv4Repr::parse(data) {
        let mut buf = vec![0u8; message.buffer_len()];
        message.emit(&mut buf);
        assert_eq!(Icmpv4Repr::parse(&buf), Ok(message));
    }
    let (src, dst) = (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2));
    let _ = UdpRepr::parse(data, src, dst);
});
