//! Initial sequence numbers (RFC 6528) and per-host-pair timestamp offsets.
//!
//! RFC 6528 3: `ISN = M + F(localip, localport, remoteip, remoteport, secretkey)`, where M is
//! a timer ticking every 4 microseconds and F a keyed pseudorandom function. We use SipHash-2-4
//! keyed with the 128-bit secret as F. An off-path attacker cannot predict a connection's ISN,
//! while successive connections on the same 4-tuple still get increasing ISNs (M keeps
//! running), which is what lets a new SYN reuse a TIME-WAIT tuple (RFC 9293 3.4.1).
//!
//! Timestamps (RFC 7323) leak uptime unless randomised; RFC 7323 7.1 recommends a random
//! offset per connection. Linux derives it from the addresses only (`secure_tcp_ts_off`: a
//! keyed hash of source and destination address, since 4.12), so timestamps stay monotonic
//! across connections between the same two hosts, which PAWS and TIME-WAIT reuse rely on.
//! [`IsnGenerator::ts_offset`] does the same, with a domain-separated hash of the same secret.

use core::fmt;
use core::hash::Hasher;
use std::net::SocketAddrV4;

use siphasher::sip::SipHasher24;

use crate::time::Instant;

/// RFC 6528 3: M ticks every 4 microseconds.
pub const ISN_TICK_MICROS: u64 = 4;

/// Domain separation: the ISN and timestamp hashes never hash the same input.
const ISN_DOMAIN: u8 = 1;
const TS_DOMAIN: u8 = 2;

/// Computes RFC 6528 initial sequence numbers and timestamp offsets from a secret key.
#[derive(Clone)]
pub struct IsnGenerator {
    /// The SipHash key (RFC 6528 3: "secretkey"); chosen at random when the stack starts.
    secret: [u8; 16],
}

impl fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("IsnGenerator").finish_non_exhaustive()
    }
}

impl IsnGenerator {
    pub fn new(secret: [u8; 16]) -> Self {
        IsnGenerator { secret }
    }

    /// RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), with M
    /// the 4 µs timer taken from `now` (wrapping at 2^32).
    pub fn isn(&self, now: Instant, local: SocketAddrV4, remote: SocketAddrV4) -> u32 {
        let ticks = now.as_micros() / ISN_TICK_MICROS;
        let m = ticks as u32; // the timer wraps like the sequence space: truncation intended
        m.wrapping_add(self.isn_offset(local, remote))
    }

    /// F(localip, localport, remoteip, remoteport, secretkey): the time-independent part.
    pub fn isn_offset(&self, local: SocketAddrV4, remote: SocketAddrV4) -> u32 {
        let mut hasher = SipHasher24::new_with_key(&self.secret);
        hasher.write_u8(ISN_DOMAIN);
        hasher.write(&local.ip().octets());
        hasher.write(&local.port().to_be_bytes());
        hasher.write(&remote.ip().octets());
        hasher.write(&remote.port().to_be_bytes());
        fold(hasher.finish())
    }

    /// The offset added to our TCP timestamp clock (TSval) for connections between these two
    /// hosts. Ports are ignored, as in Linux (see the module doc).
    pub fn ts_offset(&self, local: SocketAddrV4, remote: SocketAddrV4) -> u32 {
        let mut hasher = SipHasher24::new_with_key(&self.secret);
        hasher.write_u8(TS_DOMAIN);
        hasher.write(&local.ip().octets());
        hasher.write(&remote.ip().octets());
        fold(hasher.finish())
    }
}

/// Folds a 64-bit hash to 32 bits, keeping every input bit's influence.
fn fold(hash: u64) -> u32 {
    ((hash >> 32) ^ (hash & 0xffff_ffff)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addr(a: [u8; 4], port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(a), port)
    }

    const KEY: [u8; 16] = *b"0123456789abcdef";

    #[test]
    fn isn_advances_with_the_4us_timer() {
        let gen = IsnGenerator::new(KEY);
        let local = addr([10, 77, 0, 2], 40000);
        let remote = addr([10, 77, 0, 1], 80);
        let t0 = Instant::from_micros(1_000_000);
        let base = gen.isn(t0, local, remote);
        assert_eq!(
            gen.isn(t0 + std::time::Duration::from_micros(3), local, remote),
            base
        );
        assert_eq!(
            gen.isn(t0 + std::time::Duration::from_micros(4), local, remote),
            base.wrapping_add(1)
        );
        assert_eq!(
            gen.isn(t0 + std::time::Duration::from_secs(1), local, remote),
            base.wrapping_add(250_000)
        );
        // M alone: the offset is what the hash adds on top of the timer.
        assert_eq!(base, 250_000u32.wrapping_add(gen.isn_offset(local, remote)));
    }

    #[test]
    fn isn_depends_on_every_tuple_field_and_the_key() {
        let gen = IsnGenerator::new(KEY);
        let now = Instant::from_micros(123_456_789);
        let local = addr([10, 77, 0, 2], 40000);
        let remote = addr([10, 77, 0, 1], 80);
        let base = gen.isn(now, local, remote);
        let variants = [
            gen.isn(now, addr([10, 77, 0, 3], 40000), remote),
            gen.isn(now, addr([10, 77, 0, 2], 40001), remote),
            gen.isn(now, local, addr([10, 77, 0, 9], 80)),
            gen.isn(now, local, addr([10, 77, 0, 1], 81)),
            // Swapping the ends must not give the same number.
            gen.isn(now, remote, local),
            IsnGenerator::new(*b"0123456789abcdeF").isn(now, local, remote),
        ];
        for v in variants {
            assert_ne!(v, base);
        }
        // Deterministic for a given key.
        assert_eq!(IsnGenerator::new(KEY).isn(now, local, remote), base);
    }

    #[test]
    fn isn_matches_reference_siphash() {
        // F computed independently: SipHash-2-4 over domain byte + tuple, folded to 32 bits.
        let gen = IsnGenerator::new(KEY);
        let local = addr([192, 168, 1, 2], 0x1234);
        let remote = addr([8, 8, 8, 8], 53);
        let mut h = SipHasher24::new_with_key(&KEY);
        h.write(&[1, 192, 168, 1, 2, 0x12, 0x34, 8, 8, 8, 8, 0, 53]);
        let hash = h.finish();
        let expected = ((hash >> 32) as u32) ^ (hash as u32);
        assert_eq!(gen.isn(Instant::ZERO, local, remote), expected);
    }

    #[test]
    fn ts_offset_is_per_host_pair_and_separate_from_isn() {
        let gen = IsnGenerator::new(KEY);
        let local = addr([10, 77, 0, 2], 40000);
        let remote = addr([10, 77, 0, 1], 80);
        let ts = gen.ts_offset(local, remote);
        assert_eq!(
            gen.ts_offset(addr([10, 77, 0, 2], 40001), addr([10, 77, 0, 1], 443)),
            ts
        );
        assert_ne!(gen.ts_offset(local, addr([10, 77, 0, 5], 80)), ts);
        assert_ne!(ts, gen.isn_offset(local, remote));
        assert_ne!(IsnGenerator::new([0; 16]).ts_offset(local, remote), ts);
    }

    #[test]
    fn debug_hides_the_secret() {
        let text = format!("{:?}", IsnGenerator::new(KEY));
        assert!(!text.contains("48"), "{text}");
        assert!(text.contains("IsnGenerator"));
    }
}
