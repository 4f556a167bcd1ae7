//! The virtio-net header (`struct virtio_net_hdr` in linux/virtio_net.h, virtio 1.2 §5.1.6),
//! which a TAP opened with `IFF_VNET_HDR` puts in front of every frame, both ways.
//!
//! We use the 10-byte legacy layout (`TUNSETVNETHDRSZ` 10): the 12-byte variant only adds
//! `num_buffers`, which matters for merged receive buffers in virtio drivers, not for a TAP.
//! Fields are little-endian: the TAP is put in little-endian mode (`TUNSETVNETLE`), which is
//! also the native order of the legacy header on x86 and ARM.
//!
//! ```text
//! 0      1         2        4         6           8            10
//! | flags | gso_type | hdr_len | gso_size | csum_start | csum_offset |
//! ```

use std::fmt;

/// Bytes in the header as we configure it.
pub const VNET_HDR_LEN: usize = 10;

mod field {
    use std::ops::Range;
    pub const FLAGS: usize = 0;
    pub const GSO_TYPE: usize = 1;
    pub const HDR_LEN: Range<usize> = 2..4;
    pub const GSO_SIZE: Range<usize> = 4..6;
    pub const CSUM_START: Range<usize> = 6..8;
    pub const CSUM_OFFSET: Range<usize> = 8..10;
}

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `csum_start + csum_offset` is partial.
const F_NEEDS_CSUM: u8 = 0x01;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the sender already verified the checksums.
const F_DATA_VALID: u8 = 0x02;
/// `VIRTIO_NET_HDR_GSO_*` values of `gso_type` (the ECN bit is or-ed in).
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const GSO_UDP_L4: u8 = 5;
const GSO_ECN: u8 = 0x80;

/// What the device does (or did) to one frame beyond carrying its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameOffload {
    /// `Some` for a super-frame: one set of headers over up to 64 KB of payload, to be cut into
    /// segments of `segment_size` payload bytes each.
    pub gso: Option<Gso>,
    pub checksum: Checksum,
}

/// Segmentation of a super-frame (generic segmentation offload, TSO/USO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gso {
    pub kind: GsoKind,
    /// Payload bytes per segment (the MSS for TCP); never 0.
    pub segment_size: u16,
    /// `hdr_len`. On send: Ethernet + IP + transport header length, a hint the kernel uses to
    /// size its first buffer. On receive Linux puts the length of the skb's linear part here,
    /// which may be more or less than the headers: do not rely on it, parse the headers.
    pub header_len: u16,
    /// `VIRTIO_NET_HDR_GSO_ECN`: the super-frame carries CWR, which belongs on the first
    /// segment only (RFC 3168 §6.1.2).
    pub ecn: bool,
}

/// The kind of super-frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoKind {
    /// `VIRTIO_NET_HDR_GSO_TCPV4`: TCP over IPv4.
    TcpV4,
    /// `VIRTIO_NET_HDR_GSO_TCPV6`: TCP over IPv6.
    TcpV6,
    /// `VIRTIO_NET_HDR_GSO_UDP_L4`: UDP over IPv4 or IPv6, one datagram per segment (USO).
    UdpL4,
}

/// The state of the transport checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checksum {
    /// No flag: every checksum in the frame is complete (and, on receive, unverified).
    #[default]
    Complete,
    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the 16-bit field at `start + offset` holds only the
    /// pseudo-header sum; the real value is the checksum over `start..end of frame`
    /// ([`complete_checksum`](super::complete_checksum) computes it). On receive the data came
    /// from kernel memory and never crossed a wire, so it needs no verification.
    Partial { start: u16, offset: u16 },
    /// `VIRTIO_NET_HDR_F_DATA_VALID`: the kernel already verified the checksums.
    Verified,
}

/// Why a header could not be understood. The header came from the kernel or from our own
/// caller, never from the network, so any of these is a bug or a kernel we do not support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VnetHeaderError {
    /// Fewer than [`VNET_HDR_LEN`] bytes.
    Short { len: usize },
    /// Flag bits we do not know (e.g. `VIRTIO_NET_HDR_F_RSC_INFO`): they could change the
    /// meaning of the frame, so the frame is refused rather than misread.
    UnknownFlags(u8),
    /// A `gso_type` we do not handle, ECN bit stripped (UFO, 3, is never enabled by us).
    UnknownGsoType(u8),
    /// The ECN bit on a non-TCP `gso_type`.
    EcnWithoutTcp(u8),
    /// A `gso_type` with `gso_size` 0.
    NoSegmentSize,
    /// A partial checksum field that lies outside the frame.
    ChecksumOutsideFrame {
        start: u16,
        offset: u16,
        frame_len: usize,
    },
}

impl fmt::Display for VnetHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VnetHeaderError::Short { len } => {
                write!(f, "virtio-net header of {len} bytes, need {VNET_HDR_LEN}")
            }
            VnetHeaderError::UnknownFlags(flags) => {
                write!(f, "virtio-net header with unknown flags {flags:#04x}")
            }
            VnetHeaderError::UnknownGsoType(kind) => {
                write!(f, "virtio-net header with unsupported gso_type {kind}")
            }
            VnetHeaderError::EcnWithoutTcp(kind) => {
                write!(f, "virtio-net header with the ECN bit on gso_type {kind}")
            }
            VnetHeaderError::NoSegmentSize => {
                write!(f, "virtio-net header asks for segmentation with gso_size 0")
            }
            VnetHeaderError::ChecksumOutsideFrame {
                start,
                offset,
                frame_len,
            } => write!(
                f,
                "partial checksum at {start}+{offset} lies outside the {frame_len}-byte frame"
            ),
        }
    }
}

impl std::error::Error for VnetHeaderError {}

impl Default for FrameOffload {
    fn default() -> FrameOffload {
        FrameOffload::NONE
    }
}

impl FrameOffload {
    /// A plain frame: no segmentation, complete checksums.
    pub const NONE: FrameOffload = FrameOffload {
        gso: None,
        checksum: Checksum::Complete,
    };

    /// True when the frame can go on the wire as it is: no segmentation and no checksum left
    /// to compute.
    pub fn is_plain(&self) -> bool {
        self.gso.is_none() && !matches!(self.checksum, Checksum::Partial { .. })
    }

    /// Reads the first [`VNET_HDR_LEN`] bytes of `header`.
    pub fn parse(header: &[u8]) -> Result<FrameOffload, VnetHeaderError> {
        let Some(header) = header.get(..VNET_HDR_LEN) else {
            return Err(VnetHeaderError::Short { len: header.len() });
        };
        let le16 = |range: std::ops::Range<usize>| {
            header
                .get(range)
                .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
        };
        let flags = header[field::FLAGS];
        let gso_type = header[field::GSO_TYPE];

        if flags & !(F_NEEDS_CSUM | F_DATA_VALID) != 0 {
            return Err(VnetHeaderError::UnknownFlags(flags));
        }
        // NEEDS_CSUM wins over DATA_VALID: a field still to be filled in cannot be "valid".
        let checksum = if flags & F_NEEDS_CSUM != 0 {
            Checksum::Partial {
                start: le16(field::CSUM_START),
                offset: le16(field::CSUM_OFFSET),
            }
        } else if flags & F_DATA_VALID != 0 {
            Checksum::Verified
        } else {
            Checksum::Complete
        };

        let ecn = gso_type & GSO_ECN != 0;
        let kind = match gso_type & !GSO_ECN {
            GSO_NONE if ecn => return Err(VnetHeaderError::EcnWithoutTcp(gso_type)),
            // `hdr_len` and `gso_size` mean nothing without segmentation (virtio 1.2 §5.1.6.2).
            GSO_NONE => {
                return Ok(FrameOffload {
                    gso: None,
                    checksum,
                })
            }
            GSO_TCPV4 => GsoKind::TcpV4,
            GSO_TCPV6 => GsoKind::TcpV6,
            GSO_UDP_L4 if ecn => return Err(VnetHeaderError::EcnWithoutTcp(gso_type)),
            GSO_UDP_L4 => GsoKind::UdpL4,
            other => return Err(VnetHeaderError::UnknownGsoType(other)),
        };
        let segment_size = le16(field::GSO_SIZE);
        if segment_size == 0 {
            return Err(VnetHeaderError::NoSegmentSize);
        }
        Ok(FrameOffload {
            gso: Some(Gso {
                kind,
                segment_size,
                header_len: le16(field::HDR_LEN),
                ecn,
            }),
            checksum,
        })
    }

    /// The header bytes for this offload.
    pub fn emit(&self) -> [u8; VNET_HDR_LEN] {
        let mut header = [0u8; VNET_HDR_LEN];
        match self.checksum {
            Checksum::Complete => {}
            Checksum::Partial { start, offset } => {
                header[field::FLAGS] = F_NEEDS_CSUM;
                header[field::CSUM_START].copy_from_slice(&start.to_le_bytes());
                header[field::CSUM_OFFSET].copy_from_slice(&offset.to_le_bytes());
            }
            Checksum::Verified => header[field::FLAGS] = F_DATA_VALID,
        }
        if let Some(gso) = self.gso {
            let kind = match gso.kind {
                GsoKind::TcpV4 => GSO_TCPV4,
                GsoKind::TcpV6 => GSO_TCPV6,
                GsoKind::UdpL4 => GSO_UDP_L4,
            };
            header[field::GSO_TYPE] = kind | if gso.ecn { GSO_ECN } else { 0 };
            header[field::HDR_LEN].copy_from_slice(&gso.header_len.to_le_bytes());
            header[field::GSO_SIZE].copy_from_slice(&gso.segment_size.to_le_bytes());
        }
        header
    }

    /// Checks that a partial checksum field lies inside a frame of `frame_len` bytes.
    pub fn check_frame(&self, frame_len: usize) -> Result<(), VnetHeaderError> {
        if let Checksum::Partial { start, offset } = self.checksum {
            if usize::from(start) + usize::from(offset) + 2 > frame_len {
                return Err(VnetHeaderError::ChecksumOutsideFrame {
                    start,
                    offset,
                    frame_len,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{hex, KERNEL_GSO_VNET, KERNEL_SYN_VNET, TX_CASES};
    use super::*;

    fn partial(start: u16, offset: u16) -> Checksum {
        Checksum::Partial { start, offset }
    }

    #[test]
    fn kernel_frame_with_partial_checksum_only() {
        // The kernel's SYN as read from a TAP with TUN_F_CSUM: checksum left to the "NIC".
        let offload = FrameOffload::parse(&hex(KERNEL_SYN_VNET)).unwrap();
        assert_eq!(
            offload,
            FrameOffload {
                gso: None,
                checksum: partial(34, 16)
            }
        );
        assert!(!offload.is_plain());
        assert_eq!(offload.emit().to_vec(), hex(KERNEL_SYN_VNET));
    }

    #[test]
    fn kernel_tso_super_frame() {
        let offload = FrameOffload::parse(&hex(KERNEL_GSO_VNET)).unwrap();
        assert_eq!(
            offload,
            FrameOffload {
                gso: Some(Gso {
                    kind: GsoKind::TcpV4,
                    segment_size: 1460,
                    header_len: 54,
                    ecn: false,
                }),
                checksum: partial(34, 16),
            }
        );
        assert_eq!(offload.emit().to_vec(), hex(KERNEL_GSO_VNET));
    }

    #[test]
    fn headers_the_kernel_accepted_from_us() {
        let expected = [
            (GsoKind::TcpV4, 1000, 54, false, 34, 16),
            (GsoKind::TcpV4, 536, 54, true, 34, 16),
            (GsoKind::UdpL4, 1000, 42, false, 34, 6),
            (GsoKind::TcpV6, 1200, 74, false, 54, 16),
        ];
        for (case, (kind, size, header_len, ecn, start, offset)) in TX_CASES.iter().zip(expected) {
            let bytes = hex(case.vnet);
            let offload = FrameOffload::parse(&bytes).unwrap();
            let gso = Gso {
                kind,
                segment_size: size,
                header_len,
                ecn,
            };
            assert_eq!(offload.gso, Some(gso), "{}", case.name);
            assert_eq!(offload.checksum, partial(start, offset), "{}", case.name);
            assert_eq!(offload.emit().to_vec(), bytes, "{}", case.name);
        }
    }

    #[test]
    fn plain_and_verified_frames() {
        assert_eq!(FrameOffload::parse(&[0; 10]).unwrap(), FrameOffload::NONE);
        assert!(FrameOffload::NONE.is_plain());
        assert_eq!(FrameOffload::NONE.emit(), [0; 10]);
        let verified = FrameOffload::parse(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(verified.checksum, Checksum::Verified);
        assert!(verified.is_plain());
        assert_eq!(verified.emit(), [2, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        // Extra bytes (a 12-byte header's num_buffers) are ignored.
        assert_eq!(FrameOffload::parse(&[0; 12]).unwrap(), FrameOffload::NONE);
    }

    #[test]
    fn short_headers_are_errors() {
        let bytes = hex(KERNEL_GSO_VNET);
        for len in 0..VNET_HDR_LEN {
            assert_eq!(
                FrameOffload::parse(&bytes[..len]),
                Err(VnetHeaderError::Short { len })
            );
        }
    }

    #[test]
    fn garbage_is_refused_with_the_reason() {
        let with = |flags: u8, gso_type: u8, gso_size: u16| {
            let mut h = [0u8; 10];
            h[0] = flags;
            h[1] = gso_type;
            h[4..6].copy_from_slice(&gso_size.to_le_bytes());
            FrameOffload::parse(&h)
        };
        assert_eq!(with(4, 0, 0), Err(VnetHeaderError::UnknownFlags(4)));
        assert_eq!(
            with(0x81, 1, 1460),
            Err(VnetHeaderError::UnknownFlags(0x81))
        );
        assert_eq!(with(0, 3, 1400), Err(VnetHeaderError::UnknownGsoType(3)));
        assert_eq!(
            with(0, 0x7f, 1400),
            Err(VnetHeaderError::UnknownGsoType(0x7f))
        );
        assert_eq!(with(0, 0x80, 0), Err(VnetHeaderError::EcnWithoutTcp(0x80)));
        assert_eq!(
            with(0, 0x85, 1400),
            Err(VnetHeaderError::EcnWithoutTcp(0x85))
        );
        assert_eq!(with(1, 1, 0), Err(VnetHeaderError::NoSegmentSize));
        assert!(
            with(3, 0x84, 1).is_ok(),
            "NEEDS_CSUM and DATA_VALID together"
        );
    }

    #[test]
    fn every_flags_and_type_byte_parses_or_errors_and_round_trips() {
        for flags in 0..=255u8 {
            for gso_type in 0..=255u8 {
                let mut h = [flags, gso_type, 54, 0, 0xb4, 0x05, 34, 0, 16, 0];
                if let Ok(offload) = FrameOffload::parse(&h) {
                    if flags & 1 == 0 {
                        h[6..10].fill(0);
                    }
                    if gso_type == 0 {
                        h[2..6].fill(0);
                    }
                    // DATA_VALID is dropped when NEEDS_CSUM is set.
                    h[0] = if flags & 1 != 0 { 1 } else { flags };
                    assert_eq!(offload.emit(), h, "{flags:#x} {gso_type:#x}");
                }
            }
        }
    }

    #[test]
    fn partial_checksum_must_fit_the_frame() {
        let offload = FrameOffload::parse(&hex(KERNEL_SYN_VNET)).unwrap();
        assert!(offload.check_frame(52).is_ok());
        assert_eq!(
            offload.check_frame(51),
            Err(VnetHeaderError::ChecksumOutsideFrame {
                start: 34,
                offset: 16,
                frame_len: 51
            })
        );
        assert!(FrameOffload::NONE.check_frame(0).is_ok());
    }
}
