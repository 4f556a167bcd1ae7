//! Ephemeral port selection for outgoing connections (RFC 6056).
//!
//! We implement RFC 6056 3.3.4, Algorithm 4 ("Double-Hash Port Selection"), which Linux also
//! follows (`__inet_hash_connect` with its `table_perturb`):
//!
//! ```text
//! offset = F(local_IP, remote_IP, remote_port, secret_key1)
//! index  = G(local_IP, remote_IP, remote_port, secret_key2) % TABLE_LENGTH
//! for each of num_ephemeral candidates:
//!     port = min_ephemeral + (offset + table[index]) % num_ephemeral
//!     table[index]++
//!     if check_suitable_port(port): return port
//! ```
//!
//! Each destination starts at its own secret offset, so port numbers do not reveal how many
//! connections went elsewhere, and consecutive connections to one destination use successive
//! ports, so a port is reused as late as possible (RFC 6056 3.3.4). F and G are SipHash-2-4
//! keyed with the stack's secret, domain-separated. Every port of the range is tried once
//! before giving up, so a free port is always found if one exists.
//!
//! The range is Linux's default `net.ipv4.ip_local_port_range`, 32768..=60999, unless told
//! otherwise. Port 0 is never returned.

use core::fmt;
use core::hash::Hasher;
use core::ops::RangeInclusive;
use std::net::{Ipv4Addr, SocketAddrV4};

use siphasher::sip::SipHasher24;

/// Linux's default `net.ipv4.ip_local_port_range`.
pub const LINUX_EPHEMERAL_RANGE: RangeInclusive<u16> = 32768..=60999;

/// RFC 6056 Algorithm 4 `TABLE_LENGTH`: the number of per-destination-bucket counters.
/// Larger tables make it harder for an observer to link connections to different
/// destinations through a shared counter (Linux grew its table to 65536 for that reason);
/// 4096 counters cost 16 KiB per stack.
pub const TABLE_LENGTH: usize = 4096;

/// Domain separation between F (the offset) and G (the table index).
const OFFSET_DOMAIN: u8 = 1;
const INDEX_DOMAIN: u8 = 2;

/// RFC 6056 Algorithm 4 ephemeral port allocator.
#[derive(Clone)]
pub struct EphemeralPorts {
    /// SipHash key for F and G; chosen at random when the stack starts.
    secret: [u8; 16],
    /// The first port of the range (never 0).
    first_port: u16,
    /// Ports in the range (0 if empty): `first_port + port_count - 1` is the last one.
    port_count: u32,
    /// RFC 6056 Algorithm 4 `table`: per-bucket counters of ports handed out or tried.
    table: Vec<u32>,
}

impl fmt::Debug for EphemeralPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("EphemeralPorts")
            .field("first_port", &self.first_port)
            .field("port_count", &self.port_count)
            .finish_non_exhaustive()
    }
}

impl EphemeralPorts {
    /// An allocator over `range` (port 0 is left out; an empty range never yields a port).
    pub fn new(secret: [u8; 16], range: RangeInclusive<u16>) -> Self {
        let first_port = (*range.start()).max(1);
        let last_port = *range.end();
        let port_count = if last_port >= first_port {
            u32::from(last_port - first_port) + 1
        } else {
            0
        };
        EphemeralPorts {
            secret,
            first_port,
            port_count,
            table: vec![0; TABLE_LENGTH],
        }
    }

    /// The ports this allocator hands out.
    pub fn range(&self) -> Option<RangeInclusive<u16>> {
        let count = u16::try_from(self.port_count.checked_sub(1)?).ok()?;
        Some(self.first_port..=self.first_port.saturating_add(count))
    }

    /// The first port, in the RFC 6056 Algorithm 4 order for this destination, for which
    /// `in_use(port)` is false; `None` if every port of the range is in use (Linux then fails
    /// `connect` with EADDRNOTAVAIL). Each port is offered to `in_use` at most once.
    pub fn pick(
        &mut self,
        local: Ipv4Addr,
        remote: SocketAddrV4,
        mut in_use: impl FnMut(u16) -> bool,
    ) -> Option<u16> {
        if self.port_count == 0 {
            return None;
        }
        let count = u64::from(self.port_count);
        let offset = u64::from(self.keyed_hash(OFFSET_DOMAIN, local, remote) as u32);
        let index = (self.keyed_hash(INDEX_DOMAIN, local, remote) % TABLE_LENGTH as u64) as usize;
        let start = u64::from(self.table.get(index).copied().unwrap_or(0));
        let mut tried: u32 = 0;
        let mut found = None;
        // RFC 6056 Algorithm 4: candidates are offset + table[index] + i for i = 0, 1, ...,
        // which runs through every residue modulo num_ephemeral exactly once.
        for i in 0..count {
            tried += 1;
            let step = (offset + start + i) % count;
            let Some(port) = u16::try_from(step)
                .ok()
                .and_then(|s| self.first_port.checked_add(s))
            else {
                continue;
            };
            if !in_use(port) {
                found = Some(port);
                break;
            }
        }
        // table[index]++ for every candidate tried.
        if let Some(counter) = self.table.get_mut(index) {
            *counter = counter.wrapping_add(tried);
        }
        found
    }

    /// SipHash-2-4 of (domain, local IP, remote IP, remote port) under the secret.
    fn keyed_hash(&self, domain: u8, local: Ipv4Addr, remote: SocketAddrV4) -> u64 {
        let mut hasher = SipHasher24::new_with_key(&self.secret);
        hasher.write_u8(domain);
        hasher.write(&local.octets());
        hasher.write(&remote.ip().octets());
        hasher.write(&remote.port().to_be_bytes());
        hasher.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const KEY: [u8; 16] = *b"ports-secret-key";

    fn local() -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, 2)
    }

    fn remote(last: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, last), port)
    }

    #[test]
    fn consecutive_picks_for_the_same_destination_differ() {
        let mut ports = EphemeralPorts::new(KEY, LINUX_EPHEMERAL_RANGE);
        let dest = remote(1, 80);
        let a = ports.pick(local(), dest, |_| false).unwrap();
        let b = ports.pick(local(), dest, |_| false).unwrap();
        let c = ports.pick(local(), dest, |_| false).unwrap();
        assert_ne!(a, b);
        assert_ne!(b, c);
        for p in [a, b, c] {
            assert!(LINUX_EPHEMERAL_RANGE.contains(&p));
        }
        // Successive within the range (wrapping at its end).
        let next = |p: u16| if p == 60999 { 32768 } else { p + 1 };
        assert_eq!(b, next(a));
        assert_eq!(c, next(b));
    }

    #[test]
    fn destinations_start_at_different_offsets() {
        let mut ports = EphemeralPorts::new(KEY, LINUX_EPHEMERAL_RANGE);
        let firsts: HashSet<u16> = (1..=20)
            .map(|i| ports.pick(local(), remote(i, 443), |_| false).unwrap())
            .collect();
        assert!(firsts.len() >= 18, "{firsts:?}");
        // Another key gives another sequence.
        let mut other = EphemeralPorts::new([9; 16], LINUX_EPHEMERAL_RANGE);
        let mut again = EphemeralPorts::new(KEY, LINUX_EPHEMERAL_RANGE);
        let dest = remote(7, 22);
        let mine = again.pick(local(), dest, |_| false);
        assert_eq!(
            mine,
            EphemeralPorts::new(KEY, LINUX_EPHEMERAL_RANGE).pick(local(), dest, |_| false)
        );
        assert_ne!(mine, other.pick(local(), dest, |_| false));
    }

    #[test]
    fn every_port_is_used_before_failure() {
        let range = 40000..=40099;
        let mut ports = EphemeralPorts::new(KEY, range.clone());
        let mut used = HashSet::new();
        let dest = remote(1, 5201);
        for _ in 0..100 {
            let port = ports.pick(local(), dest, |p| used.contains(&p)).unwrap();
            assert!(range.contains(&port));
            assert!(used.insert(port), "port {port} handed out twice");
        }
        assert_eq!(used.len(), 100);
        let mut offered = Vec::new();
        let none = ports.pick(local(), dest, |p| {
            offered.push(p);
            used.contains(&p)
        });
        assert_eq!(none, None);
        offered.sort_unstable();
        assert_eq!(
            offered,
            range.collect::<Vec<_>>(),
            "each port offered exactly once"
        );
    }

    #[test]
    fn finds_the_only_free_port_wherever_it_is() {
        for free in [32768u16, 45000, 60999] {
            let mut ports = EphemeralPorts::new(KEY, LINUX_EPHEMERAL_RANGE);
            for _ in 0..3 {
                assert_eq!(
                    ports.pick(local(), remote(3, 80), |p| p != free),
                    Some(free)
                );
            }
        }
    }

    #[test]
    fn none_when_all_in_use_and_for_empty_ranges() {
        let mut ports = EphemeralPorts::new(KEY, LINUX_EPHEMERAL_RANGE);
        let mut calls = 0;
        assert_eq!(
            ports.pick(local(), remote(1, 80), |_| {
                calls += 1;
                true
            }),
            None
        );
        assert_eq!(calls, 60999 - 32768 + 1);

        #[allow(clippy::reversed_empty_ranges)]
        let mut empty = EphemeralPorts::new(KEY, 5000..=4000);
        assert_eq!(empty.pick(local(), remote(1, 80), |_| false), None);
        assert_eq!(empty.range(), None);

        // Port 0 is never handed out.
        let mut zero = EphemeralPorts::new(KEY, 0..=0);
        assert_eq!(zero.pick(local(), remote(1, 80), |_| false), None);
        let mut low = EphemeralPorts::new(KEY, 0..=1);
        assert_eq!(low.pick(local(), remote(1, 80), |_| false), Some(1));
        assert_eq!(low.range(), Some(1..=1));

        let mut full = EphemeralPorts::new(KEY, 1..=65535);
        let mut seen = 0u32;
        assert_eq!(
            full.pick(local(), remote(1, 80), |p| {
                assert_ne!(p, 0);
                seen += 1;
                true
            }),
            None
        );
        assert_eq!(seen, 65535);
    }
}
