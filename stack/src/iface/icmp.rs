//! ICMP input (RFC 792, RFC 1122 3.2.2): echo replies for any size up to the IPv4 maximum
//! (the request may arrive reassembled; the reply is fragmented as needed), and errors about
//! our own datagrams parsed for the transport.

use std::net::Ipv4Addr;

use super::ingress::Inbound;
use super::transport::{IcmpError, IcmpErrorKind, Transport};
use super::Interface;
use crate::time::Instant;
use crate::wire::icmpv4::{DstUnreachable, Icmpv4Error, Icmpv4Repr};
use crate::wire::ipv4::{self, option, IpProtocol, OptionsIter, MAX_OPTIONS_LEN};

impl Interface {
    pub(crate) fn icmp_input(
        &mut self,
        now: Instant,
        inbound: &Inbound<'_>,
        transport: &mut dyn Transport,
    ) {
        let stats = &mut self.egress.stats;
        stats.icmp_in += 1;
        let message = match Icmpv4Repr::parse(inbound.payload) {
            Ok(message) => message,
            Err(Icmpv4Error::Truncated) => {
                stats.icmp_truncated += 1;
                return;
            }
            Err(Icmpv4Error::BadChecksum) => {
                stats.icmp_bad_checksum += 1;
                return;
            }
        };
        let from = inbound.meta.src;
        match message {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => {
                stats.icmp_echo_requests_in += 1;
                self.echo_reply(now, inbound, ident, seq_no, data);
            }
            Icmpv4Repr::EchoReply { .. } => stats.icmp_echo_replies_in += 1,
            Icmpv4Repr::DstUnreachable {
                reason,
                next_hop_mtu,
                quoted,
            } => {
                stats.icmp_dest_unreachable_in += 1;
                let mtu = (reason == DstUnreachable::FragmentationNeeded).then_some(next_hop_mtu);
                let kind = IcmpErrorKind::DstUnreachable(reason);
                self.icmp_error_input(now, from, kind, &message, mtu, quoted, transport);
            }
            Icmpv4Repr::TimeExceeded { reason, quoted } => {
                stats.icmp_time_exceeded_in += 1;
                let kind = IcmpErrorKind::TimeExceeded(reason);
                self.icmp_error_input(now, from, kind, &message, None, quoted, transport);
            }
            Icmpv4Repr::ParameterProblem {
                pointer, quoted, ..
            } => {
                stats.icmp_parameter_problem_in += 1;
                let kind = IcmpErrorKind::ParameterProblem { pointer };
                self.icmp_error_input(now, from, kind, &message, None, quoted, transport);
            }
            // RFC 6633: "hosts MUST silently discard" source quench.
            Icmpv4Repr::SourceQuench { .. } => stats.icmp_source_quench_in += 1,
            Icmpv4Repr::Redirect { .. } => stats.icmp_redirect_in += 1,
            Icmpv4Repr::Other { .. } => stats.icmp_other_in += 1,
        }
    }

    /// RFC 792 / RFC 1122 3.2.2.6: "Every host MUST implement an ICMP Echo server function
    /// that receives Echo Requests and sends corresponding Echo Replies." The data is
    /// returned unchanged; the reply goes back from the address the request was sent to.
    fn echo_reply(
        &mut self,
        now: Instant,
        inbound: &Inbound<'_>,
        ident: u16,
        seq_no: u16,
        data: &[u8],
    ) {
        // RFC 1122 3.2.2.6: an echo request to a broadcast address MAY be silently discarded;
        // Linux does (icmp_echo_ignore_broadcasts=1), and so do we (smurf amplification).
        if inbound.meta.broadcast {
            self.egress.stats.icmp_echo_broadcast_ignored += 1;
            return;
        }
        let reply = Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        self.echo_buffer.clear();
        self.echo_buffer.resize(reply.buffer_len(), 0);
        reply.emit(&mut self.echo_buffer);
        let mut options = [0u8; MAX_OPTIONS_LEN];
        let options_len = reflect_options(inbound.options(), inbound.meta.dst, &mut options);
        let packet = super::Ipv4Send {
            src: Some(inbound.meta.dst),
            dst: inbound.meta.src,
            protocol: IpProtocol::Icmp,
            ttl: ipv4::DEFAULT_TTL,
            // Linux answers with the request's TOS and without DF.
            tos: inbound.meta.tos,
            dont_fragment: false,
            payload: &self.echo_buffer,
        };
        if self
            .egress
            .send_ipv4(now, &packet, &options[..options_len], None)
            .is_ok()
        {
            self.egress.stats.icmp_echo_replies_out += 1;
        }
    }

    /// Parses the datagram quoted by an ICMP error and hands the error to the transport if
    /// the datagram was ours.
    #[allow(clippy::too_many_arguments)]
    fn icmp_error_input(
        &mut self,
        now: Instant,
        from: Ipv4Addr,
        kind: IcmpErrorKind,
        message: &Icmpv4Repr<'_>,
        next_hop_mtu: Option<u16>,
        quoted: &[u8],
        transport: &mut dyn Transport,
    ) {
        // The quote is at least the IP header and 8 bytes (RFC 792); we need the header,
        // and take whatever transport bytes follow. Its checksum is not checked: routers may
        // have rewritten fields (Linux does not check it either).
        let Ok(header) = etherparse::Ipv4HeaderSlice::from_slice(quoted) else {
            self.egress.stats.icmp_error_bad_quote += 1;
            return;
        };
        let src = header.source_addr();
        // Only errors about datagrams we sent concern our transports.
        if !self.egress.config().is_local(src) {
            self.egress.stats.icmp_error_bad_quote += 1;
            return;
        }
        let transport_bytes = quoted.get(header.slice().len()..).unwrap_or(&[]);
        let first_fragment = header.fragments_offset().value() == 0;
        let error = IcmpError::new(
            kind,
            message.msg_type(),
            message.code(),
            from,
            next_hop_mtu,
            IpProtocol::from(header.protocol().0),
            src,
            header.destination_addr(),
            first_fragment,
            transport_bytes,
        );
        self.egress.stats.icmp_errors_delivered += 1;
        transport.icmp_error(now, &error);
    }
}

/// The options of an echo reply. RFC 1122 3.2.2.6: "If a Record Route and/or Time Stamp
/// option is received in an Echo Request, this option (these options) SHOULD be updated to
/// include the current host and included in the IP header of the Echo Reply message". We do
/// Record Route like Linux (`ip_options_echo`): the option is copied with our address
/// recorded on arrival and again on departure, and padded with End of Option List. Timestamp
/// options are not reflected. Returns the number of bytes written (a multiple of 4).
pub(crate) fn reflect_options(
    request: &[u8],
    our_addr: Ipv4Addr,
    out: &mut [u8; MAX_OPTIONS_LEN],
) -> usize {
    let Some(Ok(rr)) =
        OptionsIter::new(request).find(|o| matches!(o, Ok(o) if o.kind == option::RECORD_ROUTE))
    else {
        return 0;
    };
    let len = rr.bytes.len().min(MAX_OPTIONS_LEN);
    let Some(dst) = out.get_mut(..len) else {
        return 0;
    };
    dst.copy_from_slice(&rr.bytes[..len]);
    // Arrival, then departure (Linux records both: `ip_options_compile` on input,
    // `ip_options_build` on output).
    ipv4::record_route_add(dst, our_addr);
    ipv4::record_route_add(dst, our_addr);
    let padded = len.next_multiple_of(4).min(MAX_OPTIONS_LEN);
    out[len..padded].fill(option::END_OF_LIST);
    padded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::HEADER_LEN as ETH;
    use crate::wire::fixtures;
    use crate::wire::Ipv4Packet;

    #[test]
    fn record_route_reflection_matches_the_kernel() {
        let request = Ipv4Packet::parse(&fixtures::RR_ECHO_REQUEST[ETH..]).unwrap();
        let reply = Ipv4Packet::parse(&fixtures::RR_ECHO_REPLY[ETH..]).unwrap();
        let mut out = [0xa5u8; MAX_OPTIONS_LEN];
        let len = reflect_options(request.options(), Ipv4Addr::new(10, 77, 0, 2), &mut out);
        assert_eq!(&out[..len], reply.options());
    }

    #[test]
    fn no_record_route_no_options() {
        let mut out = [0u8; MAX_OPTIONS_LEN];
        assert_eq!(reflect_options(&[], Ipv4Addr::LOCALHOST, &mut out), 0);
        assert_eq!(
            reflect_options(&[1, 1, 1, 0], Ipv4Addr::LOCALHOST, &mut out),
            0
        );
        // Malformed: no panic, nothing reflected.
        assert_eq!(
            reflect_options(&[7, 200, 4], Ipv4Addr::LOCALHOST, &mut out),
            0
        );
    }
}
