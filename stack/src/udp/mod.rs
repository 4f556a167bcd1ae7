//! UDP sockets (RFC 768; RFC 1122 4.1.3), delivered the way Linux's `udp.c` does it.
//!
//! The layer owns what the kernel keeps per UDP socket below the socket API: the local and
//! (after connect) remote address used to pick the socket for an arriving datagram, the
//! queue of received datagrams bounded like SO_RCVBUF, and the pending error set by ICMP.
//! Who may share a port (SO_REUSEADDR/SO_REUSEPORT) is decided before a socket gets here,
//! by the socket layer's bind table; this layer only delivers. Sending is
//! [`Host::udp_send`](crate::host::Host::udp_send), which needs the interface for the source
//! address and fragmentation.

mod layer;
mod socket;

pub use layer::{UdpHandle, UdpLayer, UdpStats};
pub use socket::{Received, UdpBinding, DEFAULT_RCVBUF};

/// The largest UDP payload over IPv4: 65535 minus the IPv4 and UDP headers (EMSGSIZE beyond).
pub const MAX_PAYLOAD: usize = 65_535 - 20 - 8;
