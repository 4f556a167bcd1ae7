//! Which local ports application sockets hold, and Linux's rules for sharing them
//! (`inet_csk_bind_conflict`): two sockets on one port conflict when their addresses overlap
//! (equal, or either is the wildcard) and their address families overlap, unless both set
//! SO_REUSEPORT under the same uid, or both set SO_REUSEADDR and the socket already holding
//! the port is not listening (the newcomer's own state does not matter: two SO_REUSEADDR
//! sockets may share a port, and the first of them may then listen, but not the second).
//!
//! The TCP layer checks 4-tuples; this table is the socket layer's view of bind(), which the
//! kernel keeps in its bind hash: bound, listening and connected sockets all hold their port.

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Linux's default `ip_local_port_range`.
pub const EPHEMERAL_FIRST: u16 = 32768;
pub const EPHEMERAL_LAST: u16 = 60999;

/// Which address families a binding covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// An AF_INET socket, or an AF_INET6 socket bound to a v4-mapped address.
    V4,
    /// An AF_INET6 socket with IPV6_V6ONLY bound to `::`.
    V6Only,
    /// An AF_INET6 socket without IPV6_V6ONLY bound to `::`: IPv4 and IPv6.
    Dual,
}

impl Span {
    fn overlaps(self, other: Span) -> bool {
        !matches!(
            (self, other),
            (Span::V4, Span::V6Only) | (Span::V6Only, Span::V4)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The socket holding the port (an index in the socket table).
    pub owner: usize,
    pub ip: Ipv4Addr,
    pub span: Span,
    pub reuseaddr: bool,
    pub reuseport: bool,
    pub uid: u32,
    pub listening: bool,
}

impl Binding {
    /// Whether `self`, already holding the port, keeps `other` from joining it.
    fn conflicts_with(&self, other: &Binding) -> bool {
        if !self.span.overlaps(other.span) {
            return false;
        }
        // Only the v6-only and dual-stack bindings of `::` carry no IPv4 address to compare.
        let ips_overlap = self.span == Span::V6Only
            || other.span == Span::V6Only
            || self.ip == other.ip
            || self.ip.is_unspecified()
            || other.ip.is_unspecified();
        if !ips_overlap {
            return false;
        }
        if self.reuseport && other.reuseport && self.uid == other.uid {
            return false;
        }
        if self.reuseaddr && other.reuseaddr && !self.listening {
            return false;
        }
        true
    }
}

#[derive(Debug, Default)]
pub struct PortTable {
    ports: HashMap<u16, Vec<Binding>>,
    /// Where the next ephemeral search starts (moves on so ports are not reused at once).
    next_ephemeral: u32,
}

impl PortTable {
    pub fn new(seed: u32) -> PortTable {
        PortTable {
            ports: HashMap::new(),
            next_ephemeral: seed,
        }
    }

    /// Whether `binding` could join `port` (ignoring bindings of its own owner).
    pub fn fits(&self, port: u16, binding: &Binding) -> bool {
        self.ports.get(&port).is_none_or(|held| {
            held.iter()
                .filter(|b| b.owner != binding.owner)
                .all(|b| !b.conflicts_with(binding))
        })
    }

    /// Adds (or replaces) the owner's binding on `port`. The caller checked `fits`.
    pub fn insert(&mut self, port: u16, binding: Binding) {
        let held = self.ports.entry(port).or_default();
        held.retain(|b| b.owner != binding.owner);
        held.push(binding);
    }

    pub fn remove(&mut self, port: u16, owner: usize) {
        if let Some(held) = self.ports.get_mut(&port) {
            held.retain(|b| b.owner != owner);
            if held.is_empty() {
                self.ports.remove(&port);
            }
        }
    }

    /// A port from the ephemeral range where `binding` fits. With `unused_only`, a port no
    /// socket holds at all (what connect's autobind wants, so the 4-tuple is surely free).
    pub fn pick_ephemeral(&mut self, binding: &Binding, unused_only: bool) -> Option<u16> {
        let count = u32::from(EPHEMERAL_LAST - EPHEMERAL_FIRST) + 1;
        for i in 0..count {
            let offset = (self.next_ephemeral.wrapping_add(i)) % count;
            let Ok(port) = u16::try_from(u32::from(EPHEMERAL_FIRST) + offset) else {
                continue;
            };
            let ok = if unused_only {
                !self.ports.contains_key(&port)
            } else {
                self.fits(port, binding)
            };
            if ok {
                self.next_ephemeral = offset.wrapping_add(1);
                return Some(port);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(owner: usize, ip: [u8; 4], span: Span) -> Binding {
        Binding {
            owner,
            ip: Ipv4Addr::from(ip),
            span,
            reuseaddr: false,
            reuseport: false,
            uid: 0,
            listening: false,
        }
    }

    #[test]
    fn same_or_wildcard_address_conflicts() {
        let mut table = PortTable::new(0);
        table.insert(80, binding(1, [0, 0, 0, 0], Span::V4));
        assert!(!table.fits(80, &binding(2, [127, 0, 0, 1], Span::V4)));
        assert!(table.fits(81, &binding(2, [127, 0, 0, 1], Span::V4)));
        let mut table = PortTable::new(0);
        table.insert(80, binding(1, [127, 0, 0, 1], Span::V4));
        assert!(table.fits(80, &binding(2, [127, 0, 0, 2], Span::V4)));
        assert!(!table.fits(80, &binding(2, [127, 0, 0, 1], Span::V4)));
        // The owner itself never conflicts (re-binding on listen).
        assert!(table.fits(80, &binding(1, [127, 0, 0, 1], Span::V4)));
    }

    #[test]
    fn reuse_rules_follow_linux() {
        let mut table = PortTable::new(0);
        let mut first = binding(1, [127, 0, 0, 1], Span::V4);
        first.reuseaddr = true;
        table.insert(80, first);
        let mut second = binding(2, [127, 0, 0, 1], Span::V4);
        second.reuseaddr = true;
        assert!(table.fits(80, &second));
        // The newcomer may listen next to a holder that does not (Linux re-checks at
        // listen(); only the holder's state counts).
        second.listening = true;
        assert!(table.fits(80, &second));
        first.listening = true;
        table.insert(80, first);
        second.listening = false;
        assert!(!table.fits(80, &second));

        let mut table = PortTable::new(0);
        let mut first = binding(1, [127, 0, 0, 1], Span::V4);
        first.reuseport = true;
        table.insert(80, first);
        let mut second = binding(2, [127, 0, 0, 1], Span::V4);
        assert!(!table.fits(80, &second));
        second.reuseport = true;
        assert!(table.fits(80, &second));
        second.uid = 1000;
        assert!(!table.fits(80, &second));
    }

    #[test]
    fn families_overlap_like_dual_stack() {
        let mut table = PortTable::new(0);
        table.insert(80, binding(1, [0, 0, 0, 0], Span::Dual));
        assert!(!table.fits(80, &binding(2, [127, 0, 0, 1], Span::V4)));
        let mut table = PortTable::new(0);
        table.insert(80, binding(1, [127, 0, 0, 1], Span::V4));
        assert!(!table.fits(80, &binding(2, [0, 0, 0, 0], Span::Dual)));
        assert!(table.fits(80, &binding(2, [0, 0, 0, 0], Span::V6Only)));
    }

    #[test]
    fn ephemeral_ports_skip_held_ones() {
        let mut table = PortTable::new(0);
        table.insert(EPHEMERAL_FIRST, binding(1, [0, 0, 0, 0], Span::V4));
        let wanted = binding(2, [0, 0, 0, 0], Span::V4);
        assert_eq!(
            table.pick_ephemeral(&wanted, false),
            Some(EPHEMERAL_FIRST + 1)
        );
        let port = table.pick_ephemeral(&wanted, true);
        assert_eq!(port, Some(EPHEMERAL_FIRST + 2));
        table.remove(EPHEMERAL_FIRST, 1);
        assert!(table.fits(EPHEMERAL_FIRST, &wanted));
    }
}
