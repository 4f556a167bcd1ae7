//! SYN cookies (RFC 4987 3.6): when a listener's SYN queue is full, the SYN-ACK's sequence
//! number carries what the connection needs, so no state is kept until the final ACK returns.
//!
//! Cookie layout (our own, in the spirit of RFC 4987 and Linux):
//!
//! ```text
//!  31      27 26  24 23                              0
//! +----------+------+---------------------------------+
//! | t mod 32 | MSS  | keyed hash of 4-tuple, client   |
//! | (64 s)   | index| ISN and t (24 bits)             |
//! +----------+------+---------------------------------+
//! ```
//!
//! `t` counts 64-second periods; a cookie is accepted in its own period and the next one
//! (64 to 128 s). The MSS is rounded down to one of eight values. Window scale and
//! SACK-permitted cannot fit in the sequence number; as Linux does, they ride in the low six
//! bits of our timestamp (TSval) and come back in the client's TSecr, so a client that uses
//! timestamps loses nothing. Without timestamps, a cookie connection has neither window
//! scaling nor SACK (RFC 4987 3.6 names this cost).

use core::hash::Hasher;
use std::net::SocketAddrV4;

use siphasher::sip::SipHasher24;

use crate::tcp::seq::SeqNumber;
use crate::time::Instant;

/// MSS values a cookie can encode (the common ones on Ethernet, PPPoE, tunnels and
/// RFC 9293's default), ascending.
const MSS_TABLE: [u16; 8] = [536, 1200, 1300, 1360, 1400, 1440, 1452, 1460];
const PERIOD_MICROS: u64 = 64_000_000;
const HASH_MASK: u32 = 0x00ff_ffff;
/// Low TSval bits holding the options: 0..=3 window scale (15 = none), 4 SACK-permitted.
const TS_OPTION_BITS: u32 = 0x1f;
const TS_NO_WSCALE: u32 = 0xf;
const TS_SACK_BIT: u32 = 0x10;

/// What a valid cookie gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieData {
    /// The peer's MSS, rounded down to a table value.
    pub mss: u16,
}

/// Options recovered from the TSecr of the ACK answering a cookie SYN-ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieOptions {
    pub peer_window_scale: Option<u8>,
    pub sack_permitted: bool,
}

/// Builds and checks cookies with a secret key.
#[derive(Clone)]
pub struct SynCookies {
    secret: [u8; 16],
}

impl core::fmt::Debug for SynCookies {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SynCookies").finish_non_exhaustive()
    }
}

impl SynCookies {
    pub fn new(secret: [u8; 16]) -> Self {
        // A key distinct from the ISN generator's even when given the same secret.
        let mut key = secret;
        for b in &mut key {
            *b ^= 0x5c;
        }
        SynCookies { secret: key }
    }

    fn period(now: Instant) -> u32 {
        ((now.as_micros() / PERIOD_MICROS) & 31) as u32
    }

    fn hash(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        client_isn: SeqNumber,
        t: u32,
    ) -> u32 {
        let mut h = SipHasher24::new_with_key(&self.secret);
        h.write(&local.ip().octets());
        h.write(&local.port().to_be_bytes());
        h.write(&remote.ip().octets());
        h.write(&remote.port().to_be_bytes());
        h.write(&client_isn.0.to_be_bytes());
        h.write(&t.to_be_bytes());
        (h.finish() as u32) & HASH_MASK
    }

    /// The ISN of a cookie SYN-ACK answering a SYN with sequence number `client_isn` and MSS
    /// option `peer_mss`.
    pub fn encode(
        &self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        client_isn: SeqNumber,
        peer_mss: u16,
    ) -> u32 {
        let t = Self::period(now);
        let index = MSS_TABLE.iter().rposition(|&m| m <= peer_mss).unwrap_or(0) as u32;
        (t << 27) | (index << 24) | self.hash(local, remote, client_isn, t)
    }

    /// Checks `cookie` (the ACK number minus one) against the ACK's 4-tuple and
    /// `client_isn` (its sequence number minus one).
    pub fn decode(
        &self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        client_isn: SeqNumber,
        cookie: u32,
    ) -> Option<CookieData> {
        let t = cookie >> 27;
        let age = Self::period(now).wrapping_sub(t) & 31;
        if age > 1 {
            return None;
        }
        if cookie & HASH_MASK != self.hash(local, remote, client_isn, t) {
            return None;
        }
        let index = ((cookie >> 24) & 7) as usize;
        MSS_TABLE.get(index).map(|&mss| CookieData { mss })
    }
}

/// Our TSval for a cookie SYN-ACK: the clock value with the options in its low bits.
pub fn encode_ts_options(tsval: u32, peer_window_scale: Option<u8>, sack_permitted: bool) -> u32 {
    let wscale = peer_window_scale.map_or(TS_NO_WSCALE, |w| u32::from(w.min(14)));
    let sack = if sack_permitted { TS_SACK_BIT } else { 0 };
    (tsval & !TS_OPTION_BITS) | wscale | sack
}

/// The options hidden in our TSval, read back from the peer's TSecr.
pub fn decode_ts_options(tsecr: u32) -> CookieOptions {
    let wscale = tsecr & TS_NO_WSCALE;
    CookieOptions {
        peer_window_scale: (wscale != TS_NO_WSCALE).then_some(wscale as u8),
        sack_permitted: tsecr & TS_SACK_BIT != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
    const REMOTE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000);

    #[test]
    fn roundtrip_rounds_mss_down_and_expires() {
        let cookies = SynCookies::new([7; 16]);
        let now = Instant::from_millis(5_000);
        let isn = SeqNumber(12345);
        let cookie = cookies.encode(now, LOCAL, REMOTE, isn, 1460);
        assert_eq!(
            cookies.decode(now, LOCAL, REMOTE, isn, cookie),
            Some(CookieData { mss: 1460 })
        );
        let small = cookies.encode(now, LOCAL, REMOTE, isn, 1000);
        assert_eq!(
            cookies.decode(now, LOCAL, REMOTE, isn, small).unwrap().mss,
            536
        );
        let odd = cookies.encode(now, LOCAL, REMOTE, isn, 1420);
        assert_eq!(
            cookies.decode(now, LOCAL, REMOTE, isn, odd).unwrap().mss,
            1400
        );
        // Valid in the next period, not in the one after.
        let later = Instant::from_millis(5_000 + 100_000);
        assert!(cookies.decode(later, LOCAL, REMOTE, isn, cookie).is_some());
        let too_late = Instant::from_millis(5_000 + 130_000);
        assert!(cookies
            .decode(too_late, LOCAL, REMOTE, isn, cookie)
            .is_none());
    }

    #[test]
    fn wrong_tuple_isn_or_key_fails() {
        let cookies = SynCookies::new([7; 16]);
        let now = Instant::ZERO;
        let isn = SeqNumber(1);
        let cookie = cookies.encode(now, LOCAL, REMOTE, isn, 1460);
        let other = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 40000);
        assert!(cookies.decode(now, LOCAL, other, isn, cookie).is_none());
        assert!(cookies
            .decode(now, LOCAL, REMOTE, SeqNumber(2), cookie)
            .is_none());
        assert!(SynCookies::new([8; 16])
            .decode(now, LOCAL, REMOTE, isn, cookie)
            .is_none());
    }

    #[test]
    fn options_in_timestamp_roundtrip() {
        let ts = encode_ts_options(0xdead_beef, Some(7), true);
        assert_eq!(ts & !0x1f, 0xdead_beef & !0x1f);
        assert_eq!(
            decode_ts_options(ts),
            CookieOptions {
                peer_window_scale: Some(7),
                sack_permitted: true
            }
        );
        assert_eq!(
            decode_ts_options(encode_ts_options(5, None, false)),
            CookieOptions {
                peer_window_scale: None,
                sack_permitted: false
            }
        );
        assert_eq!(
            decode_ts_options(encode_ts_options(5, Some(20), false)).peer_window_scale,
            Some(14)
        );
    }

    proptest! {
        #[test]
        fn a_flipped_bit_is_rejected(isn in any::<u32>(), bit in 0u32..24, mss in 536u16..9000) {
            let cookies = SynCookies::new([3; 16]);
            let now = Instant::from_millis(1);
            let cookie = cookies.encode(now, LOCAL, REMOTE, SeqNumber(isn), mss);
            prop_assert!(cookies.decode(now, LOCAL, REMOTE, SeqNumber(isn), cookie).is_some());
            prop_assert!(cookies
                .decode(now, LOCAL, REMOTE, SeqNumber(isn), cookie ^ (1 << bit))
                .is_none());
        }
    }
}
