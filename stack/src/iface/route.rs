//! Routing for a host with one interface (RFC 1122 3.3.1): a destination is ours (loopback),
//! a broadcast, a multicast group, on the attached subnet, or reached through the gateway.
//! Source address selection follows Linux's local routes: 127.0.0.1 towards 127/8, the
//! interface address otherwise.

use std::net::Ipv4Addr;

use super::{InterfaceConfig, SendError};
use crate::wire::EthernetAddress;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// 127/8 or our own address: the stack's loopback, never the device.
    Loopback,
    /// Out of the device. `link_dst` is known for broadcast and multicast destinations;
    /// otherwise `next_hop` must be resolved with ARP.
    Link {
        next_hop: Ipv4Addr,
        link_dst: Option<EthernetAddress>,
    },
}

pub(crate) fn route(config: &InterfaceConfig, dst: Ipv4Addr) -> Result<Route, SendError> {
    if dst.is_unspecified() {
        return Err(SendError::InvalidDestination);
    }
    if config.is_local(dst) {
        return Ok(Route::Loopback);
    }
    if config.is_broadcast(dst) {
        return Ok(Route::Link {
            next_hop: dst,
            link_dst: Some(EthernetAddress::BROADCAST),
        });
    }
    if dst.is_multicast() {
        // RFC 1112 6.4: multicast needs no ARP, the group maps onto an Ethernet group address.
        return Ok(Route::Link {
            next_hop: dst,
            link_dst: Some(EthernetAddress::ipv4_multicast(dst)),
        });
    }
    if config.is_on_link(dst) {
        return Ok(Route::Link {
            next_hop: dst,
            link_dst: None,
        });
    }
    match config.gateway {
        Some(gateway) => Ok(Route::Link {
            next_hop: gateway,
            link_dst: None,
        }),
        None => Err(SendError::NoRoute),
    }
}

/// The source address for a datagram on `route` to `dst`, given what the transport asked for.
pub(crate) fn select_source(
    config: &InterfaceConfig,
    route: Route,
    dst: Ipv4Addr,
    requested: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, SendError> {
    match (route, requested) {
        (Route::Loopback, None) if dst.is_loopback() => Ok(Ipv4Addr::LOCALHOST),
        (Route::Loopback, None) => Ok(dst),
        (Route::Loopback, Some(src)) if config.is_local(src) => Ok(src),
        (Route::Link { .. }, None) => Ok(config.addr),
        // RFC 1122 3.2.1.3: 127/8 "MUST NOT appear outside a host".
        (Route::Link { .. }, Some(src)) if src == config.addr => Ok(src),
        _ => Err(SendError::InvalidSource),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> InterfaceConfig {
        InterfaceConfig {
            gateway: Some(Ipv4Addr::new(10, 77, 0, 1)),
            ..InterfaceConfig::new(
                EthernetAddress([2, 0, 0, 0, 0, 2]),
                Ipv4Addr::new(10, 77, 0, 2),
                24,
            )
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn routes() {
        let c = config();
        assert_eq!(route(&c, ip("127.0.0.1")), Ok(Route::Loopback));
        assert_eq!(route(&c, ip("127.9.9.9")), Ok(Route::Loopback));
        assert_eq!(route(&c, ip("10.77.0.2")), Ok(Route::Loopback));
        assert_eq!(
            route(&c, ip("10.77.0.9")),
            Ok(Route::Link {
                next_hop: ip("10.77.0.9"),
                link_dst: None
            })
        );
        assert_eq!(
            route(&c, ip("192.0.2.1")),
            Ok(Route::Link {
                next_hop: ip("10.77.0.1"),
                link_dst: None
            })
        );
        for b in ["255.255.255.255", "10.77.0.255"] {
            assert_eq!(
                route(&c, ip(b)),
                Ok(Route::Link {
                    next_hop: ip(b),
                    link_dst: Some(EthernetAddress::BROADCAST)
                })
            );
        }
        assert!(matches!(
            route(&c, ip("224.0.0.251")),
            Ok(Route::Link { link_dst: Some(mac), .. }) if mac.0 == [1, 0, 0x5e, 0, 0, 251]
        ));
        assert_eq!(route(&c, ip("0.0.0.0")), Err(SendError::InvalidDestination));
        let no_gateway = InterfaceConfig {
            gateway: None,
            ..config()
        };
        assert_eq!(route(&no_gateway, ip("192.0.2.1")), Err(SendError::NoRoute));
    }

    #[test]
    fn prefix_edges() {
        let c = InterfaceConfig {
            prefix_len: 32,
            gateway: None,
            ..config()
        };
        assert_eq!(route(&c, ip("10.77.0.1")), Err(SendError::NoRoute));
        assert_eq!(c.subnet_broadcast(), None);
        let c = InterfaceConfig {
            prefix_len: 0,
            ..config()
        };
        assert!(c.is_on_link(ip("192.0.2.1")));
        let c = InterfaceConfig {
            prefix_len: 31,
            ..config()
        };
        assert_eq!(c.subnet_broadcast(), None);
        assert!(c.is_on_link(ip("10.77.0.3")));
    }

    #[test]
    fn sources() {
        let c = config();
        let lo = Route::Loopback;
        let link = route(&c, ip("10.77.0.1")).unwrap();
        assert_eq!(
            select_source(&c, lo, ip("127.0.0.5"), None),
            Ok(ip("127.0.0.1"))
        );
        assert_eq!(
            select_source(&c, lo, ip("10.77.0.2"), None),
            Ok(ip("10.77.0.2"))
        );
        assert_eq!(
            select_source(&c, lo, ip("10.77.0.2"), Some(ip("127.0.0.1"))),
            Ok(ip("127.0.0.1"))
        );
        assert_eq!(
            select_source(&c, link, ip("10.77.0.1"), None),
            Ok(ip("10.77.0.2"))
        );
        assert_eq!(
            select_source(&c, link, ip("10.77.0.1"), Some(ip("127.0.0.1"))),
            Err(SendError::InvalidSource)
        );
        assert_eq!(
            select_source(&c, link, ip("10.77.0.1"), Some(ip("10.77.0.3"))),
            Err(SendError::InvalidSource)
        );
        assert_eq!(
            select_source(&c, lo, ip("127.0.0.1"), Some(ip("1.2.3.4"))),
            Err(SendError::InvalidSource)
        );
    }
}
