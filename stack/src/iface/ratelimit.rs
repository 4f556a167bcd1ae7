//! Rate limiting of the ICMP errors we generate (RFC 1812 4.3.2.8, RFC 1122 3.2.2), shaped
//! like Linux: a token bucket per destination (`icmp_ratelimit` = 1 s per token, burst 6) and
//! a global one (`icmp_msgs_per_sec` = 1000, `icmp_msgs_burst` = 50). Echo replies are not
//! limited, and neither are errors to ourselves (Linux exempts loopback likewise).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::limits;
use crate::time::Instant;

/// A token bucket measured in microseconds of credit: sending costs `cost`, credit accrues
/// one microsecond per microsecond up to `capacity`.
#[derive(Debug, Clone, Copy)]
struct TokenBucket {
    credit: u64,
    last: Instant,
}

impl TokenBucket {
    fn full(capacity: u64, now: Instant) -> Self {
        TokenBucket {
            credit: capacity,
            last: now,
        }
    }

    fn allow(&mut self, now: Instant, cost: u64, capacity: u64) -> bool {
        let elapsed =
            u64::try_from(now.saturating_duration_since(self.last).as_micros()).unwrap_or(u64::MAX);
        self.credit = self.credit.saturating_add(elapsed).min(capacity);
        self.last = self.last.max(now);
        if self.credit >= cost {
            self.credit -= cost;
            true
        } else {
            false
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[derive(Debug)]
pub(crate) struct IcmpRateLimiter {
    global: TokenBucket,
    peers: BTreeMap<Ipv4Addr, TokenBucket>,
}

impl IcmpRateLimiter {
    const GLOBAL_COST: u64 = 1_000_000 / limits::ICMP_GLOBAL_PER_SEC;

    fn peer_cost() -> u64 {
        micros(limits::ICMP_PEER_INTERVAL)
    }

    fn peer_capacity() -> u64 {
        Self::peer_cost() * limits::ICMP_PEER_BURST
    }

    fn global_capacity() -> u64 {
        Self::GLOBAL_COST * limits::ICMP_GLOBAL_BURST
    }

    pub(crate) fn new(now: Instant) -> Self {
        IcmpRateLimiter {
            global: TokenBucket::full(Self::global_capacity(), now),
            peers: BTreeMap::new(),
        }
    }

    /// Whether an ICMP error to `dst` may be sent now; consumes a token if so.
    pub(crate) fn allow(&mut self, now: Instant, dst: Ipv4Addr) -> bool {
        if !self.peers.contains_key(&dst) && self.peers.len() >= limits::ICMP_PEERS {
            // Forget the destination limited least recently.
            if let Some(oldest) = self
                .peers
                .iter()
                .min_by_key(|(_, b)| b.last)
                .map(|(a, _)| *a)
            {
                self.peers.remove(&oldest);
            }
        }
        let peer = self
            .peers
            .entry(dst)
            .or_insert_with(|| TokenBucket::full(Self::peer_capacity(), now));
        // Per destination first, so a limited peer does not use up the global budget.
        if !peer.allow(now, Self::peer_cost(), Self::peer_capacity()) {
            return false;
        }
        self.global
            .allow(now, Self::GLOBAL_COST, Self::global_capacity())
    }

    #[cfg(test)]
    pub(crate) fn tracked_peers(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

    #[test]
    fn burst_of_six_then_one_per_second() {
        let t0 = Instant::from_millis(1000);
        let mut rl = IcmpRateLimiter::new(t0);
        let allowed = (0..10).filter(|_| rl.allow(t0, PEER)).count();
        assert_eq!(allowed, 6);
        assert!(!rl.allow(t0 + Duration::from_millis(999), PEER));
        assert!(rl.allow(t0 + Duration::from_millis(1000), PEER));
        assert!(!rl.allow(t0 + Duration::from_millis(1001), PEER));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(100);
        assert_eq!((0..10).filter(|_| rl.allow(later, PEER)).count(), 6);
    }

    #[test]
    fn global_budget_caps_many_peers() {
        let t0 = Instant::from_millis(1000);
        let mut rl = IcmpRateLimiter::new(t0);
        let allowed = (0..200u32)
            .filter(|i| rl.allow(t0, Ipv4Addr::from(0x0a00_0000 + i)))
            .count();
        assert_eq!(allowed as u64, limits::ICMP_GLOBAL_BURST);
        assert!(rl.tracked_peers() <= limits::ICMP_PEERS);
        // 1000/s: 10 ms later, 10 more.
        let t1 = t0 + Duration::from_millis(10);
        let allowed = (1000..1100u32)
            .filter(|i| rl.allow(t1, Ipv4Addr::from(0x0a00_0000 + i)))
            .count();
        assert_eq!(allowed, 10);
    }

    #[test]
    fn peer_table_is_bounded() {
        let t0 = Instant::ZERO;
        let mut rl = IcmpRateLimiter::new(t0);
        for i in 0..(limits::ICMP_PEERS as u32 * 3) {
            rl.allow(
                t0 + Duration::from_secs(u64::from(i)),
                Ipv4Addr::from(i + 1),
            );
        }
        assert_eq!(rl.tracked_peers(), limits::ICMP_PEERS);
    }
}
