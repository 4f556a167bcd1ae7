//! The Internet checksum (RFC 1071): one's-complement sum of 16-bit big-endian words.
//!
//! Sums are accumulated in a `u32` and folded at the end, so a caller can add a pseudo-header
//! and several payload slices and fold once.

use std::net::Ipv4Addr;

/// Adds `data` to a running sum. An odd trailing byte is padded with zero, as RFC 1071 says;
/// only the last slice of a checksummed region may have odd length.
///
/// Speed matters here (every received segment is verified): the bytes are summed as native
/// 32-bit words into a 64-bit accumulator, which is folded once at the end and byte-swapped
/// into network order — the one's-complement sum does not depend on byte order (RFC 1071
/// section 2(B)) and the accumulator cannot overflow below 2^32 words.
pub fn accumulate(sum: u32, data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        if let Ok(bytes) = <[u8; 4]>::try_from(word) {
            acc += u64::from(u32::from_ne_bytes(bytes));
        }
    }
    let tail = words.remainder();
    let mut pairs = tail.chunks_exact(2);
    for pair in &mut pairs {
        acc += u64::from(u16::from_ne_bytes([pair[0], pair[1]]));
    }
    if let [last] = pairs.remainder() {
        // Big-endian, the odd byte is the high half of a zero-padded word.
        acc += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    let network_order = u16::from_be(acc as u16);
    let sum = u64::from(sum) + u64::from(network_order);
    // Keep the running sum in a u32 for the callers' further additions.
    ((sum & 0xffff_ffff) + (sum >> 32)) as u32
}

/// Folds a running sum to 16 bits and complements it: the value to write in a header.
pub fn finish(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Checksum of one contiguous region (IPv4 header, ICMP message).
pub fn checksum(data: &[u8]) -> u16 {
    finish(accumulate(0, data))
}

/// The running sum of the IPv4 pseudo-header used by TCP and UDP (RFC 793 3.1, RFC 768).
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u32 {
    let mut sum = accumulate(0, &src.octets());
    sum = accumulate(sum, &dst.octets());
    sum += u32::from(protocol);
    sum += u32::from(length);
    sum
}

/// Checksum over pseudo-header + `segment` (with its checksum field included). A received
/// segment is valid when this returns 0.
pub fn transport_checksum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> u16 {
    let len = u16::try_from(segment.len()).unwrap_or(u16::MAX);
    finish(accumulate(
        pseudo_header_sum(src, dst, protocol, len),
        segment,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-by-word definition, for comparison.
    fn reference(mut sum: u32, data: &[u8]) -> u32 {
        let mut chunks = data.chunks_exact(2);
        for pair in &mut chunks {
            sum = sum.wrapping_add(u32::from(u16::from_be_bytes([pair[0], pair[1]])));
            if sum > 0x7fff_ffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
        }
        if let [last] = chunks.remainder() {
            sum = sum.wrapping_add(u32::from(*last) << 8);
        }
        sum
    }

    #[test]
    fn fast_sum_matches_the_definition() {
        let mut state = 0x1234_5678_u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for len in (0..200).chain([1499, 1500, 65_535]) {
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let start = next() & 0xffff;
            assert_eq!(
                finish(accumulate(start, &data)),
                finish(reference(start, &data)),
                "length {len}"
            );
        }
        // All ones, the worst case for carries.
        let ones = vec![0xffu8; 65_535];
        assert_eq!(
            finish(accumulate(0xffff, &ones)),
            finish(reference(0xffff, &ones))
        );
        // Chained slices (even lengths first) equal one slice.
        let data: Vec<u8> = (0..1000).map(|_| next() as u8).collect();
        let chained = accumulate(
            accumulate(accumulate(7, &data[..10]), &data[10..400]),
            &data[400..],
        );
        assert_eq!(finish(chained), finish(reference(7, &data)));
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to 0xddf2 before complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn ipv4_header_from_kernel_verifies_to_zero() {
        // The IPv4 header of a ping 10.77.0.1 -> 10.77.0.2 (DF, TTL 64, id 0x5d2e).
        let header = [
            0x45, 0x00, 0x00, 0x54, 0x5d, 0x2e, 0x40, 0x00, 0x40, 0x01, 0xc8, 0xde, 0x0a, 0x4d,
            0x00, 0x01, 0x0a, 0x4d, 0x00, 0x02,
        ];
        assert_eq!(checksum(&header), 0);
        let mut zeroed = header;
        zeroed[10] = 0;
        zeroed[11] = 0;
        assert_eq!(checksum(&zeroed), 0xc8de);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0x12]), !0x1200);
        assert_eq!(
            finish(accumulate(accumulate(0, &[0xab, 0xcd]), &[0x12])),
            !(0xabcd + 0x1200)
        );
    }
}
