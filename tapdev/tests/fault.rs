//! Behaviour of the fault injector over an in-memory link, in simulated time.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use tapdev::fault::{FaultConfig, FaultInjector, FaultStats, Faults};
use tapdev::memory::{MemoryEndpoint, MemoryLink};
use tapdev::{Capabilities, Device};

const CAPS: Capabilities = Capabilities {
    mtu: 1500,
    max_burst: 32,
};
const FRAME_LEN: usize = 100;

/// A frame carrying `id` right after the Ethernet header, padded with a pattern.
fn frame(id: u32, len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..18].copy_from_slice(&id.to_be_bytes());
    f
}

fn id_of(frame: &[u8]) -> u32 {
    u32::from_be_bytes([frame[14], frame[15], frame[16], frame[17]])
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Frames that came out of the link, with the time they were read.
type Arrivals = Vec<(Duration, Vec<u8>)>;

fn drain(end: &mut impl Device, now: Duration, out: &mut Arrivals) {
    let mut buf = vec![0u8; 2048];
    while let Some(len) = end.recv(now, &mut buf).unwrap() {
        out.push((now, buf[..len].to_vec()));
    }
}

/// Sends `count` frames through `tx` faults, one every `step`, reading the far end after each;
/// then lets time run on so delayed and held frames come out.
fn run_tx(faults: Faults, seed: u64, count: u32, step: Duration) -> (Arrivals, FaultStats) {
    run_tx_sized(faults, seed, count, step, FRAME_LEN)
}

fn run_tx_sized(
    faults: Faults,
    seed: u64,
    count: u32,
    step: Duration,
    len: usize,
) -> (Arrivals, FaultStats) {
    let (near, mut far) = MemoryLink::pair(CAPS);
    let config = FaultConfig {
        seed,
        tx: faults,
        rx: Faults::NONE,
    };
    let mut link = FaultInjector::new(near, config);
    let mut arrivals = Vec::new();
    let mut now = Duration::ZERO;
    for id in 0..count {
        now = step * id;
        link.send(now, &frame(id, len)).unwrap();
        drain(&mut far, now, &mut arrivals);
    }
    while let Some(at) = link.poll_at() {
        now = now.max(at);
        link.flush(now).unwrap();
        drain(&mut far, now, &mut arrivals);
    }
    (arrivals, link.stats())
}

fn ids(arrivals: &Arrivals) -> Vec<u32> {
    arrivals.iter().map(|(_, f)| id_of(f)).collect()
}

#[test]
fn no_faults_is_a_pass_through() {
    let (arrivals, stats) = run_tx(Faults::NONE, 1, 100, ms(1));
    assert_eq!(ids(&arrivals), (0..100).collect::<Vec<_>>());
    for (i, (at, f)) in arrivals.iter().enumerate() {
        assert_eq!(*at, ms(i as u64), "delivered at once");
        assert_eq!(*f, frame(i as u32, FRAME_LEN));
    }
    assert_eq!(
        stats,
        FaultStats::default(),
        "a pass-through counts nothing"
    );
}

#[test]
fn same_seed_same_outcome_other_seed_other_outcome() {
    let faults = Faults {
        drop: 0.05,
        duplicate: 0.05,
        reorder: 0.05,
        corrupt: 0.05,
        delay: ms(3),
        jitter: ms(2),
        rate: Some(500_000),
        queue_bytes: 4000,
        ..Faults::NONE
    };
    let first = run_tx(faults, 42, 2000, Duration::from_micros(150));
    let again = run_tx(faults, 42, 2000, Duration::from_micros(150));
    let other = run_tx(faults, 43, 2000, Duration::from_micros(150));
    assert_eq!(first, again);
    assert_ne!(first.0, other.0);
    // Every kind of fault actually happened, so the comparison covers them all.
    let stats = first.1;
    assert!(stats.dropped > 0 && stats.duplicated > 0 && stats.reordered > 0);
    assert!(stats.corrupted > 0 && stats.delayed > 0 && stats.rate_dropped > 0);
}

#[test]
fn drop_rate_lands_in_a_sensible_band() {
    let faults = Faults {
        drop: 0.2,
        ..Faults::NONE
    };
    let (arrivals, stats) = run_tx(faults, 7, 10_000, ms(1));
    // Binomial(10000, 0.2): mean 2000, standard deviation 40; allow five of them.
    let dropped = 10_000 - arrivals.len() as u64;
    assert!((1800..=2200).contains(&dropped), "dropped {dropped}");
    assert_eq!(stats.dropped, dropped);
    assert_eq!(stats.passed, arrivals.len() as u64);
    let got = ids(&arrivals);
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "drops only, no reordering"
    );
}

#[test]
fn duplicates_follow_their_original() {
    let faults = Faults {
        duplicate: 0.1,
        ..Faults::NONE
    };
    let (arrivals, stats) = run_tx(faults, 3, 1000, ms(1));
    let got = ids(&arrivals);
    assert!(stats.duplicated > 50, "{stats:?}");
    assert_eq!(got.len() as u64, 1000 + stats.duplicated);
    let mut dedup = got.clone();
    dedup.dedup();
    assert_eq!(
        dedup,
        (0..1000).collect::<Vec<_>>(),
        "copies arrive back to back"
    );
    for (_, f) in &arrivals {
        assert_eq!(*f, frame(id_of(f), FRAME_LEN), "copies are intact");
    }
}

#[test]
fn reorder_changes_order_but_loses_nothing() {
    let faults = Faults {
        reorder: 0.1,
        ..Faults::NONE
    };
    let (arrivals, stats) = run_tx(faults, 11, 1000, ms(1));
    let got = ids(&arrivals);
    assert_ne!(got, (0..1000).collect::<Vec<_>>());
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..1000).collect::<Vec<_>>(),
        "each frame exactly once"
    );
    let inversions = got.windows(2).filter(|w| w[0] > w[1]).count() as u64;
    assert_eq!(inversions, stats.reordered);
    assert!(stats.reordered > 50, "{stats:?}");
}

#[test]
fn held_frame_without_successor_is_released_after_the_hold() {
    let faults = Faults {
        reorder: 1.0,
        reorder_hold: ms(10),
        ..Faults::NONE
    };
    let (near, mut far) = MemoryLink::pair(CAPS);
    let mut link = FaultInjector::new(near, FaultConfig::both(5, faults));
    link.send(ms(0), &frame(1, FRAME_LEN)).unwrap();
    let mut got = Vec::new();
    drain(&mut far, ms(0), &mut got);
    assert!(got.is_empty());
    assert_eq!(link.poll_at(), Some(ms(10)));
    link.flush(ms(9)).unwrap();
    drain(&mut far, ms(9), &mut got);
    assert!(got.is_empty(), "still held at 9 ms");
    link.flush(ms(10)).unwrap();
    drain(&mut far, ms(10), &mut got);
    assert_eq!(ids(&got), [1]);
    assert_eq!(link.stats().reordered, 0, "nothing overtook it");
    assert_eq!(link.poll_at(), None);
}

#[test]
fn corruption_flips_one_bit_past_the_ethernet_header() {
    let faults = Faults {
        corrupt: 1.0,
        ..Faults::NONE
    };
    let (arrivals, stats) = run_tx(faults, 9, 200, ms(1));
    assert_eq!(arrivals.len(), 200);
    assert_eq!(stats.corrupted, 200);
    let mut positions = HashMap::new();
    for (i, (_, got)) in arrivals.iter().enumerate() {
        let sent = frame(i as u32, FRAME_LEN);
        assert_eq!(got.len(), sent.len());
        assert_eq!(got[..14], sent[..14], "header untouched");
        let diff: Vec<usize> = (0..sent.len()).filter(|&b| got[b] != sent[b]).collect();
        assert_eq!(diff.len(), 1);
        assert_eq!((got[diff[0]] ^ sent[diff[0]]).count_ones(), 1);
        *positions.entry(diff[0]).or_insert(0) += 1;
    }
    assert!(positions.len() > 20, "positions spread over the frame");
}

#[test]
fn delay_holds_frames_until_now_passes_their_due_time() {
    let faults = Faults {
        delay: ms(10),
        ..Faults::NONE
    };
    let (near, mut far) = MemoryLink::pair(CAPS);
    let mut link = FaultInjector::new(near, FaultConfig::both(1, faults));
    link.send(ms(0), &frame(1, FRAME_LEN)).unwrap();
    link.send(ms(4), &frame(2, FRAME_LEN)).unwrap();
    assert_eq!(link.poll_at(), Some(ms(10)));
    let mut got = Vec::new();
    link.flush(ms(10) - Duration::from_nanos(1)).unwrap();
    drain(&mut far, ms(10), &mut got);
    assert!(got.is_empty(), "not due yet");
    // Any call releases due egress frames: here a `recv` that finds nothing to receive.
    let mut buf = [0u8; 2048];
    assert_eq!(link.recv(ms(10), &mut buf).unwrap(), None);
    drain(&mut far, ms(10), &mut got);
    assert_eq!(ids(&got), [1]);
    assert_eq!(link.poll_at(), Some(ms(14)));
    link.flush(ms(20)).unwrap();
    drain(&mut far, ms(20), &mut got);
    assert_eq!(ids(&got), [1, 2]);
    assert_eq!(link.poll_at(), None);
    assert_eq!(link.stats().delayed, 2);
}

#[test]
fn ingress_delay_applies_to_recv() {
    let faults = Faults {
        delay: ms(5),
        ..Faults::NONE
    };
    let config = FaultConfig {
        seed: 1,
        tx: Faults::NONE,
        rx: faults,
    };
    let (near, mut far) = MemoryLink::pair(CAPS);
    let mut link = FaultInjector::new(near, config);
    far.send(ms(0), &frame(7, FRAME_LEN)).unwrap();
    let mut buf = [0u8; 2048];
    assert_eq!(link.recv(ms(1), &mut buf).unwrap(), None);
    assert_eq!(
        link.poll_at(),
        Some(ms(6)),
        "due 5 ms after it was read at 1 ms"
    );
    assert_eq!(link.recv(ms(6), &mut buf).unwrap(), Some(FRAME_LEN));
    assert_eq!(id_of(&buf), 7);
    // Egress is untouched.
    link.send(ms(6), &frame(8, FRAME_LEN)).unwrap();
    assert_eq!(far.recv(ms(6), &mut buf).unwrap(), Some(FRAME_LEN));
    assert_eq!(link.rx_stats().delayed, 1);
    assert_eq!(link.tx_stats(), FaultStats::default());
}

#[test]
fn jitter_stays_within_bounds_and_keeps_order() {
    let faults = Faults {
        delay: ms(5),
        jitter: ms(3),
        ..Faults::NONE
    };
    let (near, mut far) = MemoryLink::pair(CAPS);
    let mut link = FaultInjector::new(near, FaultConfig::both(17, faults));
    let mut sent_at = Vec::new();
    let mut got = Vec::new();
    let step = Duration::from_micros(100);
    for id in 0..2000u32 {
        let now = step * id;
        link.send(now, &frame(id, FRAME_LEN)).unwrap();
        sent_at.push(now);
        drain(&mut far, now, &mut got);
    }
    let mut now = step * 2000;
    while let Some(at) = link.poll_at() {
        now = now.max(at);
        link.flush(now).unwrap();
        drain(&mut far, now, &mut got);
    }
    assert_eq!(ids(&got), (0..2000).collect::<Vec<_>>());
    let mut extra = Vec::new();
    for (at, f) in &got {
        let waited = *at - sent_at[id_of(f) as usize];
        // Read at the next 100 µs step; FIFO may push a frame behind a later-jittered one.
        assert!(waited >= ms(5) && waited <= ms(8) + step, "{waited:?}");
        extra.push(waited);
    }
    extra.sort();
    assert!(
        extra[100] < ms(7) && extra[1900] > ms(7),
        "jitter actually varies"
    );
}

#[test]
fn rate_limit_caps_bytes_per_simulated_second() {
    let rate = 1_000_000u64;
    let faults = Faults {
        rate: Some(rate),
        queue_bytes: 20_000,
        ..Faults::NONE
    };
    // Offer twice the rate: 1000-byte frames every 500 µs for three seconds.
    let (arrivals, stats) = run_tx_sized(faults, 1, 6000, Duration::from_micros(500), 1000);
    let mut per_second = [0u64; 4];
    for (at, f) in &arrivals {
        per_second[at.as_secs() as usize] += f.len() as u64;
    }
    for (second, &bytes) in per_second.iter().enumerate().take(3) {
        assert!(bytes <= rate + 1000, "second {second}: {bytes} bytes");
        assert!(bytes >= rate * 95 / 100, "second {second}: {bytes} bytes");
    }
    // What is left after the offered load stops is at most the queue.
    assert!(per_second[3] <= 20_000 + 1000, "{per_second:?}");
    assert!(
        (2800..=3200).contains(&stats.rate_dropped),
        "about half the offered load: {stats:?}"
    );
    assert_eq!(stats.passed + stats.rate_dropped, 6000);
    let ids = ids(&arrivals);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "a FIFO bottleneck keeps order"
    );
}

/// A device that refuses to send while closed.
struct Gate {
    inner: MemoryEndpoint,
    open: bool,
}

impl Device for Gate {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn recv(&mut self, now: Duration, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.inner.recv(now, buf)
    }
    fn send(&mut self, now: Duration, frame: &[u8]) -> io::Result<()> {
        if self.open {
            self.inner.send(now, frame)
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }
}

#[test]
fn a_full_device_pushes_back_without_losing_frames() {
    let faults = Faults {
        delay: ms(1),
        ..Faults::NONE
    };
    let (near, mut far) = MemoryLink::pair(CAPS);
    let gate = Gate {
        inner: near,
        open: false,
    };
    let mut link = FaultInjector::new(gate, FaultConfig::both(1, faults));
    link.send(ms(0), &frame(1, FRAME_LEN)).unwrap();
    // Frame 1 is due and refused: the next send is refused too instead of piling up.
    assert_eq!(
        link.flush(ms(1)).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    let err = link.send(ms(1), &frame(2, FRAME_LEN)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    assert_eq!(link.poll_at(), Some(ms(1)), "still due");
    link.inner_mut().open = true;
    link.send(ms(2), &frame(2, FRAME_LEN)).unwrap();
    link.flush(ms(3)).unwrap();
    let mut got = Vec::new();
    drain(&mut far, ms(3), &mut got);
    assert_eq!(ids(&got), [1, 2]);
    assert_eq!(link.stats().send_errors, 0);
}

#[test]
fn directions_are_independent() {
    let config: FaultConfig = "seed=4,tx.drop=1".parse().unwrap();
    let (near, mut far) = MemoryLink::pair(CAPS);
    let mut link = FaultInjector::new(near, config);
    let mut buf = [0u8; 2048];
    for id in 0..50 {
        link.send(ms(id), &frame(id as u32, FRAME_LEN)).unwrap();
        far.send(ms(id), &frame(id as u32, FRAME_LEN)).unwrap();
        assert_eq!(
            far.recv(ms(id), &mut buf).unwrap(),
            None,
            "egress all dropped"
        );
        assert_eq!(link.recv(ms(id), &mut buf).unwrap(), Some(FRAME_LEN));
        assert_eq!(id_of(&buf), id as u32);
    }
    assert_eq!(link.tx_stats().dropped, 50);
    assert_eq!(link.rx_stats(), FaultStats::default());
}
