//! IPv4 identification values.
//!
//! RFC 6864 only asks that an ID not repeat between fragmented datagrams of the same
//! (src, dst, protocol) within the reassembly lifetime. Like Linux's `ip_idents`, we keep a
//! table of counters and pick the counter by a keyed hash of (src, dst, protocol): each flow
//! gets a sequence of its own, and an observer cannot use a global counter to count our
//! traffic to others (the "idle scan"). Counters start at seeded random values.

use std::hash::Hasher;
use std::net::Ipv4Addr;

use siphasher::sip::SipHasher13;

/// Number of counters (Linux uses 2048 per CPU too).
const BUCKETS: usize = 2048;

#[derive(Debug)]
pub(crate) struct IdentGenerator {
    counters: Vec<u16>,
    key: (u64, u64),
}

impl IdentGenerator {
    pub(crate) fn new(seed: u64) -> Self {
        let key = (seed, seed.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15);
        let counters = (0..BUCKETS as u64)
            .map(|bucket| {
                let mut h = SipHasher13::new_with_keys(key.1, key.0);
                h.write_u64(bucket);
                h.finish() as u16
            })
            .collect();
        IdentGenerator { counters, key }
    }

    /// The next identification for a datagram from `src` to `dst` carrying `protocol`.
    pub(crate) fn next(&mut self, src: Ipv4Addr, dst: Ipv4Addr, protocol: u8) -> u16 {
        self.next_block(src, dst, protocol, 1)
    }

    /// The first of `count` consecutive identifications, for a super-frame whose segments
    /// the device numbers ID, ID+1, ... (as Linux's `tcp_gso_segment` does).
    pub(crate) fn next_block(
        &mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        count: u16,
    ) -> u16 {
        let mut h = SipHasher13::new_with_keys(self.key.0, self.key.1);
        h.write(&src.octets());
        h.write(&dst.octets());
        h.write_u8(protocol);
        let bucket = (h.finish() as usize) % BUCKETS;
        match self.counters.get_mut(bucket) {
            Some(counter) => {
                let id = *counter;
                *counter = counter.wrapping_add(count.max(1));
                id
            }
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
    const B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

    #[test]
    fn one_flow_counts_up() {
        let mut ids = IdentGenerator::new(7);
        let first = ids.next(A, B, 1);
        assert_eq!(ids.next(A, B, 1), first.wrapping_add(1));
        assert_eq!(ids.next(A, B, 1), first.wrapping_add(2));
        assert_eq!(ids.next_block(A, B, 1, 44), first.wrapping_add(3));
        assert_eq!(ids.next(A, B, 1), first.wrapping_add(47));
    }

    #[test]
    fn seeds_are_reproducible_and_distinct() {
        let take = |seed| {
            let mut ids = IdentGenerator::new(seed);
            (ids.next(A, B, 1), ids.next(A, B, 17), ids.next(B, A, 6))
        };
        assert_eq!(take(1), take(1));
        assert_ne!(take(1), take(2));
    }
}
