//! Wire formats. TODO(H2): ethernet, arp, ipv4, icmpv4, udp; tcp is written by the TCP engine.
pub mod checksum;
