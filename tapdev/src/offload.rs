//! Offloads: 64 KB super-frames and partial checksums between the stack and a device.
//!
//! A TAP opened with `IFF_VNET_HDR` and `TUNSETOFFLOAD` moves one 64 KB TCP super-frame per
//! `read`/`write` instead of one 1514-byte frame, and leaves transport checksums to whoever
//! puts the data on a wire; the kernel segments and checksums what we write when (and only
//! when) it really leaves a wire interface, and hands us its own TCP data unsegmented. Each
//! frame travels with a virtio-net header, modelled by [`FrameOffload`].
//!
//! # The contract
//!
//! [`Device::offloads`] says what a device takes and gives:
//!
//! - a frame passed to [`Device::send_offload`] whose [`FrameOffload`] is allowed by
//!   `offloads().send` goes to the device as one unit; anything else is done in software first
//!   ([`segment`]: the device sees only wire frames), so `send_offload` is correct on every
//!   device, just not faster;
//! - [`Device::recv_offload`] returns only what `offloads().recv` allows, plain frames on
//!   devices without offloads; [`segment`] turns anything it returns into wire frames.
//!
//! Using it from a stack: send a TCP segment of up to 64 KB built like any other (IP length
//! over all of it), turned into a super-frame by [`prepare_segmentation`] with the MSS, through
//! `send_offload`; receive with `recv_offload` into a [`MAX_OFFLOAD_FRAME_LEN`] buffer and take
//! a super-frame as one large TCP segment whose [`Checksum::Partial`] or
//! [`Checksum::Verified`] checksum needs no verification.
//!
//! A super-frame is one Ethernet + IP + TCP (or UDP) packet whose payload is longer than one
//! segment: IPv4 total length / IPv6 payload length cover all of it, the IPv4 header checksum
//! is valid, and, with [`Checksum::Partial`], the transport checksum field holds the
//! pseudo-header sum over the whole transport length. [`prepare_segmentation`] makes one from
//! a complete frame.
//!
//! # Software fallbacks
//!
//! [`segment`], [`segment_tcp_v4`], [`segment_tcp_v6`], [`segment_udp`] and
//! [`complete_checksum`] are pure functions that do what Linux GSO and a checksumming NIC do,
//! byte for byte (tested against frames Linux segmented).

use crate::{Device, MAX_FRAME_LEN};
use std::io;
use std::time::Duration;

mod checksum;
#[cfg(test)]
pub(crate) mod fixtures;
mod segment;
mod vnet;

pub use checksum::{
    complete_checksum, internet_checksum, pseudo_header_sum_v4, pseudo_header_sum_v6,
};
pub use segment::{
    prepare_partial_checksum, prepare_segmentation, segment, segment_tcp_v4, segment_tcp_v6,
    segment_udp, FallbackError,
};
pub use vnet::{Checksum, FrameOffload, Gso, GsoKind, VnetHeaderError, VNET_HDR_LEN};

/// Longest frame an offloading device reads or writes, Ethernet header included: a 64 KB IP
/// packet (IPv6: 40-byte header + 65535-byte payload) behind an Ethernet header and one VLAN
/// tag. Buffers passed to [`Device::recv_offload`] must be at least
/// [`Offloads::max_frame_len`] long.
pub const MAX_OFFLOAD_FRAME_LEN: usize = 14 + 4 + 40 + 65535;

/// Which kinds of offloaded frame a direction handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OffloadSet {
    /// [`Checksum::Partial`] frames.
    pub partial_checksum: bool,
    /// [`GsoKind::TcpV4`] super-frames.
    pub tcp_v4: bool,
    /// [`GsoKind::TcpV6`] super-frames.
    pub tcp_v6: bool,
    /// TCP super-frames with [`Gso::ecn`] (CWR set).
    pub tcp_ecn: bool,
    /// [`GsoKind::UdpL4`] super-frames.
    pub udp_l4: bool,
}

impl OffloadSet {
    /// Plain frames only.
    pub const NONE: OffloadSet = OffloadSet {
        partial_checksum: false,
        tcp_v4: false,
        tcp_v6: false,
        tcp_ecn: false,
        udp_l4: false,
    };

    /// True if a frame described by `offload` is in this set. Plain frames always are.
    pub fn allows(&self, offload: &FrameOffload) -> bool {
        let checksum =
            self.partial_checksum || !matches!(offload.checksum, Checksum::Partial { .. });
        let gso = match offload.gso {
            None => true,
            Some(gso) => {
                let kind = match gso.kind {
                    GsoKind::TcpV4 => self.tcp_v4,
                    GsoKind::TcpV6 => self.tcp_v6,
                    GsoKind::UdpL4 => self.udp_l4,
                };
                kind && (self.tcp_ecn || !gso.ecn)
            }
        };
        checksum && gso
    }
}

/// What a device does beyond carrying wire frames (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offloads {
    /// Frames [`Device::send_offload`] hands to the device as they are.
    pub send: OffloadSet,
    /// Frames [`Device::recv_offload`] may return.
    pub recv: OffloadSet,
    /// Longest frame either direction carries, Ethernet header included.
    pub max_frame_len: usize,
}

impl Offloads {
    /// A device without offloads.
    pub const NONE: Offloads = Offloads {
        send: OffloadSet::NONE,
        recv: OffloadSet::NONE,
        max_frame_len: MAX_FRAME_LEN,
    };

    /// True if the device takes or gives anything but wire frames.
    pub fn any(&self) -> bool {
        self.send != OffloadSet::NONE || self.recv != OffloadSet::NONE
    }
}

impl Default for Offloads {
    fn default() -> Offloads {
        Offloads::NONE
    }
}

/// Sends what `frame` stands for as plain frames through [`Device::send`]: the frame itself if
/// it is plain, else its checksum completed or its segments, in order. The default
/// [`Device::send_offload`]; devices that override it use this for what they cannot offload.
///
/// A frame that cannot be segmented is `InvalidInput`. If the device refuses a segment, the
/// segments before it are already sent and the error is returned: a caller that retries the
/// whole super-frame sends those again, which TCP and UDP receivers tolerate (duplicates).
pub fn send_in_software<D: Device + ?Sized>(
    device: &mut D,
    now: Duration,
    frame: &[u8],
    offload: &FrameOffload,
) -> io::Result<()> {
    if offload.is_plain() {
        return device.send(now, frame);
    }
    let frames =
        segment(frame, offload).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    for wire_frame in &frames {
        device.send(now, wire_frame)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tso(kind: GsoKind, ecn: bool) -> FrameOffload {
        FrameOffload {
            gso: Some(Gso {
                kind,
                segment_size: 1460,
                header_len: 54,
                ecn,
            }),
            checksum: Checksum::Partial {
                start: 34,
                offset: 16,
            },
        }
    }

    #[test]
    fn offload_sets_allow_what_they_name() {
        let tcp = OffloadSet {
            partial_checksum: true,
            tcp_v4: true,
            tcp_v6: true,
            ..OffloadSet::NONE
        };
        assert!(OffloadSet::NONE.allows(&FrameOffload::NONE));
        assert!(!OffloadSet::NONE.allows(&tso(GsoKind::TcpV4, false)));
        assert!(tcp.allows(&tso(GsoKind::TcpV4, false)));
        assert!(tcp.allows(&tso(GsoKind::TcpV6, false)));
        assert!(
            !tcp.allows(&tso(GsoKind::TcpV4, true)),
            "ECN not in the set"
        );
        assert!(!tcp.allows(&tso(GsoKind::UdpL4, false)));
        let no_checksum = OffloadSet {
            partial_checksum: false,
            ..tcp
        };
        assert!(!no_checksum.allows(&tso(GsoKind::TcpV4, false)));
        assert!(Offloads::NONE == Offloads::default() && !Offloads::NONE.any());
    }
}
