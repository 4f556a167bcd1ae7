//! Feeds a sequence of frames into one `Interface` with time advancing. The input is a series
//! of records: 2 bytes of length, 1 byte of time step (in 100 ms units), then the frame.
//! Checks that nothing panics and that the memory bounds hold after every frame.
#![no_main]

use std::net::Ipv4Addr;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use ustack::iface::{limits, Interface, InterfaceConfig, NoTransport};
use ustack::time::Instant;
use ustack::wire::EthernetAddress;

fuzz_target!(|data: &[u8]| {
    let config = InterfaceConfig {
        mac: EthernetAddress([0x02, 0, 0, 0, 0, 0x02]),
        addr: Ipv4Addr::new(10, 77, 0, 2),
        prefix_len: 24,
        gateway: Some(Ipv4Addr::new(10, 77, 0, 1)),
        mtu: 1500,
    };
    let mut now = Instant::ZERO;
    let mut iface = Interface::with_seed(config, now, 0);
    let mut rest = data;
    while let [hi, lo, step, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (frame, after) = tail.split_at(len);
        rest = after;
        now += Duration::from_millis(u64::from(*step) * 100);
        iface.receive_frame(now, frame, &mut NoTransport);
        iface.process_loopback(now, &mut NoTransport);
        iface.handle_timeout(now);
        iface.transmit(&mut |_| true);
        let m = iface.memory();
        assert!(m.reassembly_bytes <= limits::REASSEMBLY_MEMORY);
        assert!(m.neighbor_queued_bytes <= limits::NEIGHBOR_QUEUE_BYTES);
        assert!(m.tx_frames <= limits::TX_QUEUE_FRAMES);
    }
});
