//! The Internet checksum (RFC 1071): one's-complement sum of 16-bit big-endian words.
//!
//! Sums are accumulated in a `u32` and folded at the end, so a caller can add a pseudo-header
//! and several payload slices and fold once.

use std::net::Ipv4Addr;

/// Adds `data` to a running sum. An odd trailing byte is padded with zero, as RFC 1071 says;
/// only the last slice of a checksummed region may have odd length.
pub fn accumulate(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([pair[0], pair[1]])));
        // Fold early and often so very long inputs cannot overflow the accumulator.
        if sum > 0x7fff_ffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    sum
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
