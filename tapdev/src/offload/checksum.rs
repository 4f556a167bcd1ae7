//! The Internet checksum (RFC 1071) and the virtio "partial checksum" completion.

use super::FallbackError;

/// Adds `bytes` as big-endian 16-bit words to `sum` (an odd last byte is padded with zero,
/// RFC 1071 §4.1). The sum is kept unfolded in 64 bits: a 64 KB frame cannot overflow it.
pub(crate) fn add_words(sum: u64, bytes: &[u8]) -> u64 {
    let mut pairs = bytes.chunks_exact(2);
    let mut sum = pairs.by_ref().fold(sum, |acc, pair| {
        acc + u64::from(u16::from_be_bytes([pair[0], pair[1]]))
    });
    if let [last] = pairs.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// Folds a 64-bit one's-complement sum into 16 bits (not complemented).
pub(crate) fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum of `bytes`: the complement of their folded one's-complement sum.
/// A region that holds its own correct checksum sums to zero here.
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    !fold(add_words(0, bytes))
}

/// The TCP/UDP pseudo-header sum over IPv4 addresses (RFC 793 §3.1, RFC 768), folded but not
/// complemented: the value a partial checksum field holds before completion.
pub fn pseudo_header_sum_v4(src: [u8; 4], dst: [u8; 4], protocol: u8, l4_len: u16) -> u16 {
    let mut sum = add_words(0, &src);
    sum = add_words(sum, &dst);
    fold(sum + u64::from(protocol) + u64::from(l4_len))
}

/// The TCP/UDP pseudo-header sum over IPv6 addresses (RFC 8200 §8.1), folded, not
/// complemented.
pub fn pseudo_header_sum_v6(src: [u8; 16], dst: [u8; 16], next_header: u8, l4_len: u32) -> u16 {
    let mut sum = add_words(0, &src);
    sum = add_words(sum, &dst);
    fold(sum + u64::from(next_header) + u64::from(l4_len >> 16) + u64::from(l4_len & 0xffff))
}

/// Completes a partial checksum the way a NIC does for `VIRTIO_NET_HDR_F_NEEDS_CSUM`: sums
/// every byte from `start` to the end of `frame` (the checksum field, which holds the
/// pseudo-header sum, included), and stores the complement at `start + offset`.
///
/// `frame` must end where the packet ends (no Ethernet padding): the sum runs to its end.
/// Like Linux (`skb_checksum_help`), a result of 0 is written as 0xffff, its one's-complement
/// equal, because 0 means "no checksum" in UDP (RFC 768).
pub fn complete_checksum(frame: &mut [u8], start: u16, offset: u16) -> Result<(), FallbackError> {
    let out_of_range = FallbackError::ChecksumOutsideFrame {
        start,
        offset,
        frame_len: frame.len(),
    };
    let field = usize::from(start) + usize::from(offset);
    if field + 2 > frame.len() {
        return Err(out_of_range);
    }
    let covered = frame.get(usize::from(start)..).ok_or(out_of_range)?;
    let value = match !fold(add_words(0, covered)) {
        0 => 0xffff,
        v => v,
    };
    if let Some(slot) = frame.get_mut(field..field + 2) {
        slot.copy_from_slice(&value.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sum() {
        // RFC 1071 §3 worked example: the words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(add_words(0, &bytes)), 0xddf2);
        assert_eq!(internet_checksum(&bytes), !0xddf2);
    }

    #[test]
    fn odd_length_pads_the_last_byte_on_the_right() {
        assert_eq!(fold(add_words(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn completion_rejects_a_field_outside_the_frame() {
        let mut frame = [0u8; 20];
        assert!(complete_checksum(&mut frame, 10, 9).is_err());
        assert!(complete_checksum(&mut frame, 30, 0).is_err());
        assert!(complete_checksum(&mut frame, u16::MAX, u16::MAX).is_err());
        complete_checksum(&mut frame, 10, 8).unwrap();
        // All zeros sum to 0, whose complement 0xffff is stored as is.
        assert_eq!(frame[18..20], [0xff, 0xff]);
    }

    #[test]
    fn a_zero_result_is_written_as_ffff() {
        // Covered bytes summing to 0xffff complement to 0.
        let mut frame = [0xff, 0xff, 0x00, 0x00];
        complete_checksum(&mut frame, 0, 2).unwrap();
        assert_eq!(frame, [0xff, 0xff, 0xff, 0xff]);
    }
}
