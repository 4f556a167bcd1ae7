//! Bytes captured from Linux 6.18 through TAPs with `IFF_VNET_HDR` in a private namespace.
//!
//! Receive side: a kernel TCP client (`10.90.0.1`) sent 200 000 bytes of [`pattern`] to a
//! minimal peer we played at `10.90.0.2` (MSS 1460, no timestamps) over a TAP with
//! `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN`; the reads are kept whole for the
//! SYN, and as virtio header + 54 header bytes for the super-frames (their payload is the
//! pattern from `payload_offset`, checked at capture time).
//!
//! Send side: we wrote super-frames (virtio header + frame, payload = the pattern from 0) into
//! that TAP, addressed to `10.91.0.2` / `fd00:91::2`; the kernel forwarded them out of a second,
//! plain TAP and had to segment them in software (`skb_gso_segment`). `segments` are the
//! headers of what came out, with each frame's length; forwarding rewrote the MAC addresses and
//! decremented the TTL / hop limit. The live version of this capture is
//! `tests/offload_tap.rs`.

/// Payload byte `i` of every captured stream.
pub fn pattern(offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len).map(|i| (i % 251) as u8).collect()
}

/// Decodes a hex fixture (test data only: panics on a typo).
pub fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex fixture");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex fixture"))
        .collect()
}

/// The kernel's SYN (MSS 1460, SACK, timestamps, wscale 10): partial checksum only.
pub const KERNEL_SYN_VNET: &str = "01000000000022001000";
pub const KERNEL_SYN_FRAME: &str = "020000000a02e64e15f883f408004500003c414e40004006e4b70a5a00010a5a0002e6201b58cb76550200000000a002faf014e50000020405b40402080a2eefd427000000000103030a";

/// A super-frame the kernel read out to us: virtio header, Ethernet+IPv4+TCP headers, length.
pub struct KernelSuperFrame {
    pub vnet: &'static str,
    pub headers: &'static str,
    pub frame_len: usize,
    pub payload_offset: usize,
}

/// The first two super-frames of the flow and the last one, which carries FIN.
pub const KERNEL_SUPER_FRAMES: [KernelSuperFrame; 3] = [
    KernelSuperFrame {
        vnet: "01013600b40522001000",
        headers: "020000000a02e64e15f883f4080045001cac415040004006c8450a5a00010a5a0002e6201b58cb765503000003e95018003f31550000",
        frame_len: 7354,
        payload_offset: 0,
    },
    KernelSuperFrame {
        vnet: "01013600b40522001000",
        headers: "020000000a02e64e15f883f4080045001cac415540004006c8400a5a00010a5a0002e6201b58cb767187000003e95018003f31550000",
        frame_len: 7354,
        payload_offset: 7300,
    },
    KernelSuperFrame {
        vnet: "01013600b40522001000",
        headers: "020000000a02e64e15f883f4080045006c7041c640004006780b0a5a00010a5a0002e6201b58cb78f5fb000003e95019003f81190000",
        frame_len: 27774,
        payload_offset: 172280,
    },
];

/// The virtio header of every kernel super-frame above: NEEDS_CSUM at 34+16, TCPV4, MSS 1460.
pub const KERNEL_GSO_VNET: &str = "01013600b40522001000";

/// One super-frame we sent and the wire frames the kernel made of it.
pub struct TxCase {
    pub name: &'static str,
    pub vnet: &'static str,
    /// Ethernet + IP + transport headers of the super-frame (checksum field: pseudo-header sum).
    pub headers: &'static str,
    pub payload_len: usize,
    /// (frame length, headers) of each segment, in order.
    pub segments: &'static [(usize, &'static str)],
}

pub const TX_CASES: [TxCase; 4] = [
    TxCase {
        name: "TCP4_PSH",
        vnet: "01013600e80322001000",
        headers: "e64e15f883f4020000000a0208004500292cfffe40004006fd140a5a00020a5b00029c401b5a1122334455667788501802003dd70000",
        payload_len: 10500,
        segments: &[
            (
                1054,
                "020000000b0272ec6b48905e080045000410fffe40003f0623310a5a00020a5b00029c401b5a112233445566778850100200aa240000",
            ),
            (
                1054,
                "020000000b0272ec6b48905e080045000410ffff40003f0623300a5a00020a5b00029c401b5a1122372c55667788501002009e340000",
            ),
            (
                1054,
                "020000000b0272ec6b48905e080045000410000040003f0623300a5a00020a5b00029c401b5a11223b14556677885010020092440000",
            ),
            (
                1054,
                "020000000b0272ec6b48905e080045000410000140003f06232f0a5a00020a5b00029c401b5a11223efc556677885010020086540000",
            ),
            (
                1054,
                "020000000b0272ec6b48905e080045000410000240003f06232e0a5a00020a5b00029c401b5a112242e455667788501002007a640000",
            ),
            (
                1054,
                "020000000b0272ec6b48905e080045000410000340003f06232d0a5a00020a5b00029c401b5a112246cc55667788501002006e740000",
            ),
            (
                1054,
                "020000000b0272ec6b48905e080045000410000440003f06232c0a5a00020a5b00029c401b5a11224ab4556677885010020062840000",
            ),
            (
                1054,
                "020000000b0272ec6b48905e080045000410000540003f06232b0a5a00020a5b00029c401b5a11224e9c556677885010020056940000",
            ),
            (
                1054,
                "020000000b0272ec6b48905e080045000410000640003f06232a0a5a00020a5b00029c401b5a1122528455667788501002004aa40000",
            ),
            (
                1054,
                "020000000b0272ec6b48905e080045000410000740003f0623290a5a00020a5b00029c401b5a1122566c55667788501002003eb40000",
            ),
            (
                554,
                "020000000b0272ec6b48905e08004500021c000840003f06251c0a5a00020a5b00029c401b5a11225a5455667788501802006ee90000",
            ),
        ],
    },
    TxCase {
        name: "TCP4_CWR_FIN",
        vnet: "01813600180222001000",
        headers: "e64e15f883f4020000000a020800450006d4fffe400040061f6d0a5a00020a5b00029c401b5a1122334455667788509902001b7f0000",
        payload_len: 1708,
        segments: &[
            (
                590,
                "020000000b0272ec6b48905e080045000240fffe40003f0625010a5a00020a5b00029c401b5a112233445566778850900200b2680000",
            ),
            (
                590,
                "020000000b0272ec6b48905e080045000240ffff40003f0625000a5a00020a5b00029c401b5a1122355c55667788501002006c8c0000",
            ),
            (
                590,
                "020000000b0272ec6b48905e080045000240000040003f0625000a5a00020a5b00029c401b5a11223774556677885010020026300000",
            ),
            (
                154,
                "020000000b0272ec6b48905e08004500008c000140003f0626b30a5a00020a5b00029c401b5a1122398c55667788501902002daa0000",
            ),
        ],
    },
    TxCase {
        name: "UDP4",
        vnet: "01052a00e80322000600",
        headers: "e64e15f883f4020000000a02080045000bde01004000401119570a5a00020a5b00029c401b5b0bca2094",
        payload_len: 3010,
        segments: &[
            (
                1042,
                "020000000b0272ec6b48905e080045000404010040003f1122310a5a00020a5b00029c401b5b03f0099a",
            ),
            (
                1042,
                "020000000b0272ec6b48905e080045000404010140003f1122300a5a00020a5b00029c401b5b03f00192",
            ),
            (
                1042,
                "020000000b0272ec6b48905e080045000404010240003f11222f0a5a00020a5b00029c401b5b03f0f989",
            ),
            (
                52,
                "020000000b0272ec6b48905e080045000026010340003f11260c0a5a00020a5b00029c401b5b00126fad",
            ),
        ],
    },
    TxCase {
        name: "TCP6_PSH",
        vnet: "01044a00b00436001000",
        headers: "e64e15f883f4020000000a0286dd6001234512db0640fd000090000000000000000000000002fd0000910000000000000000000000029c401b5afffffc0055667788501802000e080000",
        payload_len: 4807,
        segments: &[
            (
                1274,
                "020000000b0272ec6b48905e86dd6001234504c4063ffd000090000000000000000000000002fd0000910000000000000000000000029c401b5afffffc005566778850100200d1b60000",
            ),
            (
                1274,
                "020000000b0272ec6b48905e86dd6001234504c4063ffd000090000000000000000000000002fd0000910000000000000000000000029c401b5a000000b0556677885010020061960000",
            ),
            (
                1274,
                "020000000b0272ec6b48905e86dd6001234504c4063ffd000090000000000000000000000002fd0000910000000000000000000000029c401b5a000005605566778850100200eb7a0000",
            ),
            (
                1274,
                "020000000b0272ec6b48905e86dd6001234504c4063ffd000090000000000000000000000002fd0000910000000000000000000000029c401b5a00000a1055667788501002007b590000",
            ),
            (
                81,
                "020000000b0272ec6b48905e86dd60012345001b063ffd000090000000000000000000000002fd0000910000000000000000000000029c401b5a00000ec0556677885018020096ef0000",
            ),
        ],
    },
];
