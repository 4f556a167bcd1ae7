//! Fault injection: a [`Device`] wrapper that drops, duplicates, reorders, corrupts, delays and
//! rate-limits frames, independently on egress (`send`, "tx") and ingress (`recv`, "rx").
//!
//! # Model
//!
//! Each direction is a pipeline a frame goes through in this order:
//!
//! 1. **drop** with probability `drop`;
//! 2. **corrupt** with probability `corrupt`: exactly one bit is flipped, at a uniformly random
//!    position *after the 14-byte Ethernet header*. The header is spared on purpose so the
//!    frame still reaches the stack (a flipped destination MAC would just be filtered) and the
//!    damage lands where the IPv4/TCP/UDP/ICMP checksums must catch it; a single-bit error is
//!    always detected by the Internet checksum, so tests can assert the frame is discarded.
//!    Frames with nothing past the header are left alone;
//! 3. **duplicate** with probability `duplicate`: a second copy follows the first and goes
//!    through the remaining stages on its own;
//! 4. **rate limit** (`rate`, bytes per second): a bottleneck that starts sending a frame when
//!    the previous one has been sent (`len / rate` later). Frames that would make its backlog
//!    exceed `queue_bytes` are dropped (`rate_dropped`), like a full router queue. Without a
//!    rate limit nothing bounds the frames waiting out a delay: keep delays short against a
//!    busy real device;
//! 5. **delay** of `delay` plus a uniform draw in `[0, jitter]`. Jitter alone never reorders:
//!    a frame is never released before the one admitted before it (a single FIFO link), so
//!    reordering comes only from the `reorder` knob;
//! 6. **reorder** with probability `reorder`: the frame is held back and released right after
//!    the next frame of the same direction, or `reorder_hold` after it was due if no frame
//!    follows. One frame is held at a time.
//!
//! # Time and determinism
//!
//! Time is the `now` the caller passes in. Every random decision comes from a per-direction
//! [`SmallRng`] seeded from [`FaultConfig::seed`], so the same seed and the same sequence of
//! calls and `now` values give the same outcome. A direction with no fault configured is a
//! plain pass-through and draws nothing.
//!
//! # Driving it
//!
//! Frames due for the wire are released on every `send`, `recv` and [`FaultInjector::flush`];
//! ingress frames come out of `recv`. [`Device::poll_at`] reports the earliest due time, so a
//! driver that calls `recv` whenever that deadline passes keeps both directions moving. A
//! send error for a frame released later than its own `send` call (it was delayed) cannot be
//! returned to anyone: it is counted in [`FaultStats::send_errors`] and the frame is lost.
//!
//! # Offloads
//!
//! Faults apply per wire frame (dropping one 64 KB super-frame would drop 44 segments at once,
//! corrupting it would hit one of them), so the injector reports no offloads
//! ([`Device::offloads`]) whatever its inner device offers: callers that follow
//! `offloads()` hand it wire frames, and the default [`Device::send_offload`] segments anything
//! else in software first, each segment going through the faults on its own. It reads and
//! writes its inner device with plain `recv`/`send`, which an offloading TAP serves with wire
//! frames too.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::io;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::{Capabilities, Device, Offloads, MAX_FRAME_LEN};

mod config;

pub use config::{FaultConfig, Faults};

/// Corruption spares the Ethernet header (see the module documentation).
const ETHERNET_HEADER_LEN: usize = 14;
/// Mixed into the seed for the ingress generator so the two directions draw independently.
const RX_SEED_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

/// What the injector did, per direction or summed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FaultStats {
    /// Frames handed on (to the inner device for tx, to the caller for rx), copies included.
    pub passed: u64,
    /// Frames dropped by the `drop` probability.
    pub dropped: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Frames released after a frame admitted later than them.
    pub reordered: u64,
    /// Frames with a bit flipped.
    pub corrupted: u64,
    /// Frames released later than they were admitted (delay, jitter, bottleneck backlog).
    pub delayed: u64,
    /// Frames dropped because the bottleneck queue was full.
    pub rate_dropped: u64,
    /// Delayed tx frames the inner device refused with an error other than "would block".
    pub send_errors: u64,
}

impl FaultStats {
    fn sum(&self, other: &FaultStats) -> FaultStats {
        FaultStats {
            passed: self.passed + other.passed,
            dropped: self.dropped + other.dropped,
            duplicated: self.duplicated + other.duplicated,
            reordered: self.reordered + other.reordered,
            corrupted: self.corrupted + other.corrupted,
            delayed: self.delayed + other.delayed,
            rate_dropped: self.rate_dropped + other.rate_dropped,
            send_errors: self.send_errors + other.send_errors,
        }
    }
}

/// A frame on its way, released in `(due, seq)` order.
#[derive(Debug)]
struct Scheduled {
    due: Duration,
    /// Admission order; breaks ties so equal `due` keeps FIFO order.
    seq: u64,
    /// Which `admit` call produced it (copies share it), to tell the caller's own frame apart.
    origin: u64,
    frame: Vec<u8>,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// A frame held back for reordering.
#[derive(Debug)]
struct Held {
    /// When it entered the pipeline.
    admitted: Duration,
    /// When it would have been released.
    due: Duration,
    /// When it is released if no successor comes.
    deadline: Duration,
    origin: u64,
    frame: Vec<u8>,
}

/// One direction's pipeline (see the module documentation for the stages).
#[derive(Debug)]
struct Pipe {
    faults: Faults,
    rng: SmallRng,
    in_flight: BinaryHeap<Reverse<Scheduled>>,
    held: Option<Held>,
    next_seq: u64,
    next_origin: u64,
    /// Due time of the last frame scheduled: later frames are never due before it.
    last_due: Duration,
    /// When the bottleneck has finished sending everything it accepted.
    busy_until: Duration,
    stats: FaultStats,
}

impl Pipe {
    fn new(faults: Faults, seed: u64) -> Pipe {
        Pipe {
            faults,
            rng: SmallRng::seed_from_u64(seed),
            in_flight: BinaryHeap::new(),
            held: None,
            next_seq: 0,
            next_origin: 0,
            last_due: Duration::ZERO,
            busy_until: Duration::ZERO,
            stats: FaultStats::default(),
        }
    }

    /// Draws only for a probability above zero, so an unused knob does not shift the stream.
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.gen::<f64>() < p
    }

    /// Runs `frame` through the stages; returns its origin id.
    fn admit(&mut self, now: Duration, mut frame: Vec<u8>) -> u64 {
        let origin = self.next_origin;
        self.next_origin += 1;
        if self.chance(self.faults.drop) {
            self.stats.dropped += 1;
            return origin;
        }
        if self.chance(self.faults.corrupt) && flip_one_bit(&mut self.rng, &mut frame) {
            self.stats.corrupted += 1;
        }
        if self.chance(self.faults.duplicate) {
            self.stats.duplicated += 1;
            self.schedule(now, origin, frame.clone());
        }
        self.schedule(now, origin, frame);
        origin
    }

    fn schedule(&mut self, now: Duration, origin: u64, frame: Vec<u8>) {
        let mut ready = now;
        if let Some(rate) = self.faults.rate.filter(|&r| r > 0) {
            let backlog = bytes_in(self.busy_until.saturating_sub(now), rate);
            if backlog.saturating_add(frame.len() as u64) > self.faults.queue_bytes as u64 {
                self.stats.rate_dropped += 1;
                return;
            }
            // The bottleneck starts this frame once the previous one is out.
            ready = now.max(self.busy_until);
            self.busy_until = ready + time_to_send(frame.len(), rate);
        }
        let jitter = self.jitter();
        let due = (ready + self.faults.delay + jitter).max(self.last_due);
        self.last_due = due;
        if self.held.is_none() && self.chance(self.faults.reorder) {
            self.held = Some(Held {
                admitted: now,
                due,
                deadline: due + self.faults.reorder_hold,
                origin,
                frame,
            });
            return;
        }
        self.stats.delayed += u64::from(due > now);
        self.push(due, origin, frame);
        if let Some(held) = self.held.take() {
            // Released right behind the frame that overtook it.
            let due = due.max(held.due);
            self.stats.reordered += 1;
            self.stats.delayed += u64::from(due > held.admitted);
            self.push(due, held.origin, held.frame);
        }
    }

    fn jitter(&mut self) -> Duration {
        let max = u64::try_from(self.faults.jitter.as_nanos()).unwrap_or(u64::MAX);
        if max == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(self.rng.gen_range(0..=max))
        }
    }

    fn push(&mut self, due: Duration, origin: u64, frame: Vec<u8>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight.push(Reverse(Scheduled {
            due,
            seq,
            origin,
            frame,
        }));
    }

    /// Moves a held frame whose successor never came into the schedule.
    fn expire_held(&mut self, now: Duration) {
        if self.held.as_ref().is_some_and(|h| h.deadline <= now) {
            if let Some(held) = self.held.take() {
                self.stats.delayed += u64::from(held.deadline > held.admitted);
                self.push(held.deadline, held.origin, held.frame);
            }
        }
    }

    /// The next frame due at `now`, left in place (a refused send keeps its turn).
    fn peek_due(&mut self, now: Duration) -> Option<&Scheduled> {
        self.expire_held(now);
        self.in_flight
            .peek()
            .map(|Reverse(s)| s)
            .filter(|s| s.due <= now)
    }

    fn pop_due(&mut self, now: Duration) -> Option<Scheduled> {
        self.peek_due(now)?;
        let Reverse(scheduled) = self.in_flight.pop()?;
        self.stats.passed += 1;
        Some(scheduled)
    }

    fn next_due(&self) -> Option<Duration> {
        let scheduled = self.in_flight.peek().map(|Reverse(s)| s.due);
        let held = self.held.as_ref().map(|h| h.deadline);
        match (scheduled, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Flips one uniformly chosen bit past the Ethernet header; false if there is none.
fn flip_one_bit(rng: &mut SmallRng, frame: &mut [u8]) -> bool {
    if frame.len() <= ETHERNET_HEADER_LEN {
        return false;
    }
    let bit = rng.gen_range(ETHERNET_HEADER_LEN * 8..frame.len() * 8);
    match frame.get_mut(bit / 8) {
        Some(byte) => {
            *byte ^= 1 << (bit % 8);
            true
        }
        None => false,
    }
}

/// Bytes a link at `rate` bytes/s sends in `span`.
fn bytes_in(span: Duration, rate: u64) -> u64 {
    u64::try_from(span.as_nanos() * u128::from(rate) / 1_000_000_000).unwrap_or(u64::MAX)
}

/// How long `len` bytes take at `rate` bytes/s, rounded up to the nanosecond.
fn time_to_send(len: usize, rate: u64) -> Duration {
    let nanos = (len as u128 * 1_000_000_000).div_ceil(u128::from(rate));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Wraps a device and injects the configured faults (see the module documentation).
#[derive(Debug)]
pub struct FaultInjector<D: Device> {
    inner: D,
    config: FaultConfig,
    tx: Pipe,
    rx: Pipe,
    /// Receive buffer for ingress frames before they enter the pipeline.
    rx_scratch: Vec<u8>,
}

impl<D: Device> FaultInjector<D> {
    /// Wraps `inner`. Probabilities outside `[0, 1]` behave as clamped; use
    /// [`FaultConfig::validate`] (the parser always does) to reject them instead.
    pub fn new(inner: D, config: FaultConfig) -> FaultInjector<D> {
        let frame_len = MAX_FRAME_LEN.max(inner.capabilities().mtu + 18);
        FaultInjector {
            inner,
            config,
            tx: Pipe::new(config.tx, config.seed),
            rx: Pipe::new(config.rx, config.seed ^ RX_SEED_SALT),
            rx_scratch: vec![0; frame_len],
        }
    }

    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// Both directions together.
    pub fn stats(&self) -> FaultStats {
        self.tx.stats.sum(&self.rx.stats)
    }

    /// What happened to frames sent through the injector.
    pub fn tx_stats(&self) -> FaultStats {
        self.tx.stats
    }

    /// What happened to frames received through the injector.
    pub fn rx_stats(&self) -> FaultStats {
        self.rx.stats
    }

    pub fn inner(&self) -> &D {
        &self.inner
    }

    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// The wrapped device; frames still in flight are lost.
    pub fn into_inner(self) -> D {
        self.inner
    }

    /// Sends every egress frame due at `now` to the inner device. Returns `WouldBlock` if the
    /// device refused one (it and the rest stay queued); other send errors are counted in
    /// [`FaultStats::send_errors`] and lose their frame.
    pub fn flush(&mut self, now: Duration) -> io::Result<()> {
        self.release_tx(now, None)
    }

    /// Releases due egress frames. An error on a frame of admission `own_origin` (the caller's
    /// current `send`) is returned; errors on older, delayed frames are counted.
    fn release_tx(&mut self, now: Duration, own_origin: Option<u64>) -> io::Result<()> {
        let mut own_error = None;
        while let Some(next) = self.tx.peek_due(now) {
            let is_own = Some(next.origin) == own_origin;
            match self.inner.send(now, &next.frame) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                Err(e) if is_own => {
                    own_error.get_or_insert(e);
                }
                Err(_) => self.tx.stats.send_errors += 1,
                Ok(()) => {}
            }
            self.tx.pop_due(now);
        }
        own_error.map_or(Ok(()), Err)
    }
}

impl<D: Device> Device for FaultInjector<D> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn recv(&mut self, now: Duration, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // With no caller frame of its own this only fails with WouldBlock: the refused
        // egress frame waits for the next call, and receiving must not stop for it.
        let _ = self.release_tx(now, None);
        if !self.config.rx.is_active() {
            return self.inner.recv(now, buf);
        }
        loop {
            if let Some(scheduled) = self.rx.pop_due(now) {
                let len = scheduled.frame.len().min(buf.len());
                buf[..len].copy_from_slice(&scheduled.frame[..len]);
                return Ok(Some(len));
            }
            // Pull from the device until a frame comes due or the device is empty: frames
            // that are only delayed are "on the wire" and should leave the device's queue.
            match self.inner.recv(now, &mut self.rx_scratch)? {
                Some(len) => {
                    let frame = self.rx_scratch[..len.min(self.rx_scratch.len())].to_vec();
                    self.rx.admit(now, frame);
                }
                None => return Ok(None),
            }
        }
    }

    fn send(&mut self, now: Duration, frame: &[u8]) -> io::Result<()> {
        if !self.config.tx.is_active() {
            return self.inner.send(now, frame);
        }
        // Older frames go first; if the device is full, push back on the caller.
        self.release_tx(now, None)?;
        let origin = self.tx.admit(now, frame.to_vec());
        match self.release_tx(now, Some(origin)) {
            // Taken into the pipeline; the device will get it on a later call.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }

    fn poll_at(&self) -> Option<Duration> {
        [self.inner.poll_at(), self.tx.next_due(), self.rx.next_due()]
            .into_iter()
            .flatten()
            .min()
    }

    /// None, whatever the inner device offers: see "Offloads" in the module documentation.
    fn offloads(&self) -> Offloads {
        Offloads::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bit_flips_past_the_header_only() {
        let mut rng = SmallRng::seed_from_u64(7);
        let original: Vec<u8> = (0..60).collect();
        for _ in 0..500 {
            let mut frame = original.clone();
            assert!(flip_one_bit(&mut rng, &mut frame));
            assert_eq!(frame[..14], original[..14]);
            let flipped: u32 = frame
                .iter()
                .zip(&original)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert_eq!(flipped, 1);
        }
        let mut header_only = vec![0u8; 14];
        assert!(!flip_one_bit(&mut rng, &mut header_only));
        assert_eq!(header_only, [0u8; 14]);
    }

    #[test]
    fn bottleneck_arithmetic() {
        assert_eq!(time_to_send(1000, 1_000_000), Duration::from_millis(1));
        assert_eq!(time_to_send(1, 3), Duration::from_nanos(333_333_334));
        assert_eq!(bytes_in(Duration::from_millis(2), 1_000_000), 2000);
    }
}
