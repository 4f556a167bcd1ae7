//! Counters of the link and network layers: traffic in and out, and one counter per reason a
//! frame or datagram is dropped, so every discarded packet is accounted for somewhere.
//!
//! [`Stats::counters`] lists every counter with a stable snake_case name (the field name);
//! `ustack stats` prints them and tests look them up by name. Names are part of the interface:
//! add new ones, never rename.

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident, )*) => {
        /// Monotonic event counters (they only ever increase; wrap-around is not a concern at
        /// 64 bits).
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Stats {
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl Stats {
            /// The name of every counter, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),*];

            /// Every counter with its stable name, in declaration order.
            pub fn counters(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name)),*]
            }

            /// The counter called `name`, if there is one.
            pub fn get(&self, name: &str) -> Option<u64> {
                match name {
                    $(stringify!($name) => Some(self.$name),)*
                    _ => None,
                }
            }
        }
    };
}

counters! {
    // --- Ethernet ---
    /// Frames handed to `Interface::receive_frame`.
    frames_in,
    /// Wire frames the device accepted in `Interface::transmit` (a TCP super-frame counts as
    /// the segments it becomes).
    frames_out,
    /// TCP super-frames handed to a device that segments them (`Interface::transmit_offload`).
    tso_frames_out,
    /// Frames shorter than an Ethernet header.
    eth_truncated,
    /// Frames whose destination is neither our MAC nor broadcast (or whose source is not a
    /// unicast station address).
    eth_not_for_us,
    /// Frames with an EtherType other than IPv4 and ARP.
    eth_unknown_ethertype,

    // --- ARP ---
    /// ARP packets received (all kinds).
    arp_in,
    /// ARP packets shorter than their length fields announce.
    arp_truncated,
    /// ARP packets for another hardware/protocol pair than Ethernet/IPv4.
    arp_unsupported,
    /// ARP packets with a group (multicast/broadcast) or zero sender MAC, or a sender IP that
    /// cannot be a host.
    arp_bad_sender,
    /// ARP packets from another station claiming our own IPv4 address.
    arp_address_conflict,
    /// ARP packets with an opcode other than request and reply.
    arp_unknown_operation,
    /// ARP requests received (for any target).
    arp_requests_in,
    /// ARP replies received.
    arp_replies_in,
    /// ARP requests sent: resolutions, re-validation probes and the gratuitous announcement.
    arp_requests_out,
    /// ARP replies sent (answers to requests for our address).
    arp_replies_out,
    /// Neighbour resolutions that completed (an incomplete entry got its MAC).
    arp_resolved,
    /// Neighbour resolutions or re-validations that got no answer; each failed resolution
    /// counts once, however many datagrams were waiting.
    arp_timeout,
    /// Datagrams dropped because the queue waiting for resolution was full.
    arp_queue_full,
    /// Datagrams waiting for resolution that were dropped because resolution failed.
    arp_queue_dropped,
    /// Sends refused because the neighbour cache was full of entries still resolving.
    arp_cache_full,

    // --- IPv4 ---
    /// IPv4 datagrams received (from the link and from the loopback).
    ipv4_in,
    /// Datagrams shorter than their header or their total length field says.
    ipv4_truncated,
    /// Datagrams whose version field is not 4.
    ipv4_bad_version,
    /// Datagrams whose IHL is below 5.
    ipv4_bad_ihl,
    /// Datagrams whose total length field is smaller than their header.
    ipv4_bad_length,
    /// Datagrams whose header checksum does not verify.
    ipv4_bad_checksum,
    /// Datagrams from the link with a source that cannot be a remote host (our own address,
    /// 127/8, multicast, broadcast, 0.0.0.0 unless sent to broadcast).
    ipv4_martian_source,
    /// Datagrams from the link addressed to 127/8.
    ipv4_martian_destination,
    /// Datagrams whose options cannot be walked (a length byte missing, too small or too
    /// large).
    ipv4_bad_options,
    /// Datagrams with a loose or strict source route option (dropped, as a Linux host does
    /// with `accept_source_route=0`).
    ipv4_source_routed,
    /// Unicast datagrams that arrived in a link-layer broadcast frame (RFC 1122 3.3.6).
    ipv4_unicast_in_link_broadcast,
    /// Datagrams addressed to neither our address nor a broadcast address (we do not forward).
    ipv4_not_for_us,
    /// Datagrams received with TTL 0. Accepted anyway: RFC 1122 3.2.1.7 forbids a host to
    /// discard a datagram because of a low TTL.
    ipv4_ttl_zero_in,
    /// Datagrams for a protocol we do not implement (answered with protocol unreachable).
    ipv4_unknown_protocol,
    /// Datagrams handed to ICMP, UDP or TCP (after reassembly).
    ipv4_delivered,
    /// Fragments received.
    ipv4_fragments_in,
    /// Datagrams completed by reassembly.
    ipv4_reassembled,
    /// Partial datagrams discarded because their reassembly time ran out.
    ipv4_reassembly_timeout,
    /// Fragments dropped because reassembly memory or the number of partial datagrams was at
    /// its bound.
    ipv4_reassembly_overflow,
    /// Partial datagrams discarded because a fragment partly overlapped received data.
    ipv4_reassembly_overlap,
    /// Fragments ignored because they duplicated data already received.
    ipv4_reassembly_duplicate,
    /// Partial datagrams discarded because they would exceed 65535 bytes.
    ipv4_reassembly_oversize,
    /// Partial datagrams discarded because fragments disagreed about the end of the datagram
    /// or a fragment was empty.
    ipv4_reassembly_inconsistent,
    /// Datagrams sent (before fragmentation; loopback included).
    ipv4_out,
    /// Fragments created by fragmentation on send.
    ipv4_fragments_out,
    /// Datagrams sent fragmented.
    ipv4_fragmented,
    /// Sends refused because the datagram was larger than the MTU and DF was set.
    ipv4_fragmentation_needed,
    /// Sends refused because no route matched (off-link and no gateway).
    ipv4_no_route,
    /// Sends refused for an invalid source, destination or TTL, or a datagram over 65535.
    ipv4_out_invalid,
    /// Sends refused because the device queue was full.
    tx_queue_full,

    // --- Loopback ---
    /// Datagrams queued on the stack's own loopback.
    loopback_out,
    /// Datagrams taken off the loopback and processed.
    loopback_in,
    /// Sends refused because the loopback queue was full.
    loopback_queue_full,

    // --- ICMP ---
    /// ICMP messages received.
    icmp_in,
    /// ICMP messages shorter than 8 bytes.
    icmp_truncated,
    /// ICMP messages whose checksum does not verify.
    icmp_bad_checksum,
    /// Echo requests received.
    icmp_echo_requests_in,
    /// Echo replies received.
    icmp_echo_replies_in,
    /// Destination unreachable messages received.
    icmp_dest_unreachable_in,
    /// Time exceeded messages received.
    icmp_time_exceeded_in,
    /// Parameter problem messages received.
    icmp_parameter_problem_in,
    /// Source quench messages received (ignored, RFC 6633).
    icmp_source_quench_in,
    /// Redirect messages received (ignored: we keep one static route).
    icmp_redirect_in,
    /// ICMP messages of any other type (timestamp, router discovery, ...; ignored).
    icmp_other_in,
    /// Echo requests to a broadcast address, ignored (Linux icmp_echo_ignore_broadcasts=1).
    icmp_echo_broadcast_ignored,
    /// ICMP errors whose quoted datagram is too short or was not sent by us.
    icmp_error_bad_quote,
    /// ICMP errors handed to the transport.
    icmp_errors_delivered,
    /// Echo replies sent.
    icmp_echo_replies_out,
    /// Destination unreachable messages sent (protocol/port to peers, host unreachable to
    /// ourselves when ARP fails).
    icmp_dest_unreachable_out,
    /// Time exceeded (reassembly) messages sent.
    icmp_time_exceeded_out,
    /// ICMP errors not sent because RFC 1122 3.2.2 forbids them (about an ICMP error, a
    /// broadcast, a non-first fragment, or a source that is not a host).
    icmp_error_suppressed,
    /// ICMP errors not sent because of the rate limit.
    icmp_rate_limited,

    // --- UDP ---
    /// UDP datagrams received (before validation).
    udp_in,
    /// UDP datagrams shorter than 8 bytes.
    udp_truncated,
    /// UDP datagrams whose length field is below 8 or beyond the IP payload.
    udp_bad_length,
    /// UDP datagrams whose checksum does not verify.
    udp_bad_checksum,
    /// UDP datagrams no socket wanted.
    udp_no_port,

    // --- TCP ---
    /// TCP segments handed to the transport.
    tcp_in,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_unique() {
        let names = Stats::NAMES;
        for required in [
            "ipv4_bad_checksum",
            "frames_in",
            "frames_out",
            "icmp_echo_replies_out",
        ] {
            assert!(names.contains(&required), "{required}");
        }
        let mut sorted = names.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        assert!(names.iter().all(|n| n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')));
    }

    #[test]
    fn counters_and_get_see_the_fields() {
        let stats = Stats {
            ipv4_bad_checksum: 3,
            frames_out: 7,
            ..Stats::default()
        };
        let listed = stats.counters();
        assert_eq!(listed.len(), Stats::NAMES.len());
        assert!(listed.contains(&("ipv4_bad_checksum", 3)));
        assert_eq!(stats.get("frames_out"), Some(7));
        assert_eq!(stats.get("frames_in"), Some(0));
        assert_eq!(stats.get("no_such_counter"), None);
    }
}
