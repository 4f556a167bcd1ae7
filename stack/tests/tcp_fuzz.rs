//! Robustness: arbitrary segments, application calls and timer runs thrown at connections in
//! every state must never panic, and the sequence-space invariants must hold throughout.

mod tcp_support;

use proptest::prelude::*;
use std::time::Duration;
use tcp_support::*;
use ustack::tcp::connection::State;
use ustack::tcp::layer::TcpLayer;
use ustack::time::Instant;
use ustack::wire::tcp::{TcpFlags, TcpOptions, Timestamps};

#[derive(Debug, Clone)]
enum Op {
    Segment {
        flags: u8,
        seq_off: i32,
        ack_off: i32,
        window: u16,
        len: usize,
        ts: Option<(u32, u32)>,
        sack: Vec<(i32, i32)>,
    },
    Send(usize),
    Recv(usize),
    ShutdownWrite,
    Close,
    Advance(u64),
    Drain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (
            any::<u8>(),
            -70_000i32..70_000,
            -70_000i32..70_000,
            any::<u16>(),
            0usize..3000,
            proptest::option::of((any::<u32>(), any::<u32>())),
            proptest::collection::vec((-5000i32..70_000, -5000i32..70_000), 0..4),
        )
            .prop_map(|(flags, seq_off, ack_off, window, len, ts, sack)| Op::Segment {
                flags,
                seq_off,
                ack_off,
                window,
                len,
                ts,
                sack
            }),
        1 => (0usize..20_000).prop_map(Op::Send),
        1 => (0usize..20_000).prop_map(Op::Recv),
        1 => Just(Op::ShutdownWrite),
        1 => Just(Op::Close),
        1 => (0u64..5_000).prop_map(Op::Advance),
        2 => Just(Op::Drain),
    ]
}

fn start(kind: u8) -> Harness {
    match kind % 3 {
        0 => Harness::client(),
        1 => Harness::established_client(),
        _ => Harness::established_plain_client(1000, 4000),
    }
}

proptest! {
    #[test]
    fn arbitrary_input_never_panics(kind in any::<u8>(), ops in proptest::collection::vec(op(), 1..60)) {
        let mut h = start(kind);
        let base_rcv = PEER_ISS.wrapping_add(1);
        let base_snd = ISS.wrapping_add(1);
        let mut buf = vec![0u8; 20_000];
        for op in ops {
            match op {
                Op::Segment { flags, seq_off, ack_off, window, len, ts, sack } => {
                    let mut s = seg(TcpFlags::from_bits(flags))
                        .seq(base_rcv.wrapping_add(seq_off as u32))
                        .win(window)
                        .data(&vec![0x61; len]);
                    s.header.ack = ustack::tcp::seq::SeqNumber(base_snd.wrapping_add(ack_off as u32));
                    let mut options = TcpOptions {
                        timestamps: ts.map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
                        ..TcpOptions::default()
                    };
                    for (l, r) in sack {
                        options.sack.push(
                            ustack::tcp::seq::SeqNumber(base_snd.wrapping_add(l as u32)),
                            ustack::tcp::seq::SeqNumber(base_snd.wrapping_add(r as u32)),
                        );
                    }
                    if flags & 0x02 != 0 {
                        options.mss = Some(window);
                        options.window_scale = Some(flags >> 4);
                        options.sack_permitted = flags & 0x40 != 0;
                    }
                    s.header.options = options;
                    h.input(s);
                }
                Op::Send(n) => {
                    let _ = h.conn.send(&buf[..n]);
                }
                Op::Recv(n) => {
                    let _ = h.conn.recv(&mut buf[..n]);
                }
                Op::ShutdownWrite => h.conn.shutdown_write(),
                Op::Close => h.conn.close(),
                Op::Advance(ms) => h.advance(Duration::from_millis(ms)),
                Op::Drain => {
                    let mut count = 0;
                    while let Some(s) = h.output() {
                        count += 1;
                        prop_assert!(count < 10_000, "poll_transmit never ends");
                        prop_assert!(s.header.header_len() <= 60);
                        prop_assert!(s.payload.len() <= 1460);
                    }
                }
            }
            let info = h.conn.info();
            prop_assert!(info.unacked <= 1 << 30, "{info:?}");
            if let Some(at) = h.conn.poll_at() {
                prop_assert!(at >= h.now || h.conn.state() != State::Closed);
            }
        }
    }

    /// Random bytes at a layer with a listener and a connection: no panic.
    #[test]
    fn layer_survives_garbage(segments in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 1..50)) {
        let mut layer = TcpLayer::new(config());
        let a = std::net::Ipv4Addr::new(10, 0, 0, 1);
        let b = std::net::Ipv4Addr::new(10, 0, 0, 2);
        let opts = layer.config().default_socket_options();
        layer.listen(std::net::SocketAddrV4::new(b, 80), 4, opts).unwrap();
        let now = Instant::from_millis(5);
        for mut bytes in segments {
            // Half of them get a valid checksum so they reach the state machines.
            if bytes.len() >= 20 && bytes[0] & 1 == 0 {
                bytes[12] = (bytes[12] & 0x0f) | 0x50;
                bytes[2] = 0;
                bytes[3] = 80;
                bytes[16] = 0;
                bytes[17] = 0;
                let sum = ustack::wire::checksum::transport_checksum(a, b, 6, &bytes);
                bytes[16..18].copy_from_slice(&sum.to_be_bytes());
            }
            layer.receive(now, a, b, &bytes);
            layer.handle_timeout(now);
            layer.poll_transmit(now, &mut |_, _, _| {});
        }
    }
}
