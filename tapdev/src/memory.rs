//! Two in-process endpoints joined by a wire: what one sends, the other receives.
//!
//! Each direction is a bounded FIFO, like a NIC's receive ring: a frame sent while the peer's
//! queue is full is dropped and counted on the receiving side, and the sender's `send` still
//! succeeds (a transmitter does not learn that the far end had no room). Simulations use both
//! ends on one thread; the shared state sits behind a mutex so a test may move an end to
//! another thread.
//!
//! A link made with [`MemoryLink::pair_with_offloads`] behaves like an offloading TAP: what
//! `offloads().send` allows crosses as one unit (after a check that it segments cleanly, so a
//! malformed super-frame fails the sender's call, where a stack bug is easiest to find), and the
//! receiver gets it whole from `recv_offload` if its `offloads().recv` allows it, else as wire
//! frames. A plain `recv` always yields wire frames. A super-frame takes one queue slot.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::offload::{self, FrameOffload, OffloadSet, Offloads};
use crate::{Capabilities, Device};

/// Frames each direction holds before dropping, when not given: a typical NIC ring size.
pub const DEFAULT_QUEUE_FRAMES: usize = 1024;
/// Ethernet header plus one VLAN tag: the most a frame may exceed the MTU by.
const LINK_HEADER_ALLOWANCE: usize = 14 + 4;
/// Shortest frame accepted: an Ethernet II header.
const MIN_FRAME_LEN: usize = 14;

/// Builds connected endpoint pairs.
#[derive(Debug)]
pub struct MemoryLink;

impl MemoryLink {
    /// Two connected endpoints, each direction holding up to [`DEFAULT_QUEUE_FRAMES`].
    pub fn pair(capabilities: Capabilities) -> (MemoryEndpoint, MemoryEndpoint) {
        MemoryLink::pair_with_queue(capabilities, DEFAULT_QUEUE_FRAMES)
    }

    /// Two connected endpoints, each direction holding up to `queue_frames` frames.
    pub fn pair_with_queue(
        capabilities: Capabilities,
        queue_frames: usize,
    ) -> (MemoryEndpoint, MemoryEndpoint) {
        MemoryLink::pair_with_offloads(capabilities, queue_frames, Offloads::NONE)
    }

    /// Two connected endpoints that both report and honour `offloads` (see the module
    /// documentation).
    pub fn pair_with_offloads(
        capabilities: Capabilities,
        queue_frames: usize,
        offloads: Offloads,
    ) -> (MemoryEndpoint, MemoryEndpoint) {
        let shared = Arc::new(Mutex::new(Wire {
            queues: [VecDeque::new(), VecDeque::new()],
            stats: [LinkStats::default(); 2],
            queue_frames,
        }));
        let end = |side| MemoryEndpoint {
            shared: Arc::clone(&shared),
            side,
            capabilities,
            offloads,
        };
        (end(0), end(1))
    }
}

/// Counters of one endpoint.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames this endpoint sent (including those the peer's full queue then dropped).
    pub sent: u64,
    /// Frames this endpoint received.
    pub received: u64,
    /// Frames addressed to this endpoint dropped because its queue was full.
    pub dropped_queue_full: u64,
}

/// The state both ends share. `queues[i]` and `stats[i]` belong to endpoint `i` (its inbox and
/// its counters).
#[derive(Debug)]
struct Wire {
    /// Frames with their offload ([`FrameOffload::NONE`] for wire frames).
    queues: [VecDeque<(Vec<u8>, FrameOffload)>; 2],
    stats: [LinkStats; 2],
    queue_frames: usize,
}

/// One end of a [`MemoryLink`].
#[derive(Debug)]
pub struct MemoryEndpoint {
    shared: Arc<Mutex<Wire>>,
    /// 0 or 1: which inbox and counters are ours; the peer is `1 - side`.
    side: usize,
    capabilities: Capabilities,
    offloads: Offloads,
}

impl MemoryEndpoint {
    /// This endpoint's counters.
    pub fn stats(&self) -> LinkStats {
        self.wire().stats[self.side]
    }

    /// Frames waiting to be received by this endpoint.
    pub fn pending(&self) -> usize {
        self.wire().queues[self.side].len()
    }

    fn wire(&self) -> MutexGuard<'_, Wire> {
        // A panic on the other thread while holding the lock leaves the queues consistent
        // (every update is a single push or pop), so the data is still usable.
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn peer(&self) -> usize {
        1 - self.side
    }

    /// Takes the next frame from our inbox. One that `accept` does not allow is cut into wire
    /// frames first: the first is returned, the others go back to the front of the inbox.
    fn pop(
        &self,
        accept: impl Fn(&FrameOffload) -> bool,
    ) -> io::Result<Option<(Vec<u8>, FrameOffload)>> {
        let side = self.side;
        let mut wire = self.wire();
        let Some((frame, offload)) = wire.queues[side].pop_front() else {
            return Ok(None);
        };
        wire.stats[side].received += 1;
        if accept(&offload) {
            return Ok(Some((frame, offload)));
        }
        // Checked when sent, so this only fails on a frame the sender did not check.
        let segments = offload::segment(&frame, &offload)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut segments = segments.into_iter();
        let first = segments.next().unwrap_or_default();
        for (index, rest) in segments.enumerate() {
            wire.queues[side].insert(index, (rest, FrameOffload::NONE));
        }
        Ok(Some((first, FrameOffload::NONE)))
    }

    fn push(&self, frame: Vec<u8>, offload: FrameOffload) {
        let (side, peer) = (self.side, self.peer());
        let mut wire = self.wire();
        wire.stats[side].sent += 1;
        if wire.queues[peer].len() >= wire.queue_frames {
            wire.stats[peer].dropped_queue_full += 1;
        } else {
            wire.queues[peer].push_back((frame, offload));
        }
    }
}

impl Device for MemoryEndpoint {
    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn recv(&mut self, _now: Duration, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some((frame, _)) = self.pop(FrameOffload::is_plain)? else {
            return Ok(None);
        };
        let len = frame.len().min(buf.len());
        buf[..len].copy_from_slice(&frame[..len]);
        Ok(Some(len))
    }

    /// Rejects frames a real link could not carry (shorter than an Ethernet header, or longer
    /// than MTU + header + one VLAN tag) so that stack bugs show up in simulation.
    fn send(&mut self, _now: Duration, frame: &[u8]) -> io::Result<()> {
        let max = self.capabilities.mtu + LINK_HEADER_ALLOWANCE;
        if frame.len() < MIN_FRAME_LEN || frame.len() > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame of {} bytes does not fit the link ({MIN_FRAME_LEN}..={max})",
                    frame.len()
                ),
            ));
        }
        self.push(frame.to_vec(), FrameOffload::NONE);
        Ok(())
    }

    fn offloads(&self) -> Offloads {
        self.offloads
    }

    /// Buffers must be `offloads().max_frame_len` long when the link has receive offloads
    /// (as on a TAP); a frame is never truncated then.
    fn recv_offload(
        &mut self,
        _now: Duration,
        buf: &mut [u8],
    ) -> io::Result<Option<(usize, FrameOffload)>> {
        let allowed = self.offloads.recv;
        if allowed != OffloadSet::NONE && buf.len() < self.offloads.max_frame_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "recv_offload needs a {}-byte buffer, got {}",
                    self.offloads.max_frame_len,
                    buf.len()
                ),
            ));
        }
        let Some((frame, offload)) = self.pop(|offload| allowed.allows(offload))? else {
            return Ok(None);
        };
        let len = frame.len().min(buf.len());
        buf[..len].copy_from_slice(&frame[..len]);
        Ok(Some((len, offload)))
    }

    fn send_offload(
        &mut self,
        now: Duration,
        frame: &[u8],
        offload: &FrameOffload,
    ) -> io::Result<()> {
        if offload.is_plain() || !self.offloads.send.allows(offload) {
            return offload::send_in_software(self, now, frame, offload);
        }
        let max = self.offloads.max_frame_len;
        if frame.len() < MIN_FRAME_LEN || frame.len() > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame of {} bytes does not fit the link ({MIN_FRAME_LEN}..={max})",
                    frame.len()
                ),
            ));
        }
        // A real device would find out later, or never; here the sender learns at once.
        if let Err(e) = offload::segment(frame, offload) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, e));
        }
        self.push(frame.to_vec(), *offload);
        Ok(())
    }

    /// `Some(ZERO)` (already due) while frames wait in our inbox, so a simulation that steps
    /// time to the earliest `poll_at` never leaves them sitting.
    fn poll_at(&self) -> Option<Duration> {
        if self.pending() > 0 {
            Some(Duration::ZERO)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: Capabilities = Capabilities {
        mtu: 1500,
        max_burst: 8,
    };
    const T0: Duration = Duration::ZERO;

    fn frame(tag: u8, len: usize) -> Vec<u8> {
        let mut f = vec![tag; len];
        f[..6].copy_from_slice(&[0xff; 6]);
        f
    }

    #[test]
    fn frames_cross_in_order_in_both_directions() {
        let (mut a, mut b) = MemoryLink::pair(CAPS);
        for tag in 1..=3 {
            a.send(T0, &frame(tag, 60)).unwrap();
        }
        b.send(T0, &frame(9, 64)).unwrap();
        let mut buf = [0u8; 2048];
        for tag in 1..=3 {
            assert_eq!(b.recv(T0, &mut buf).unwrap(), Some(60));
            assert_eq!(buf[59], tag);
        }
        assert_eq!(b.recv(T0, &mut buf).unwrap(), None);
        assert_eq!(a.recv(T0, &mut buf).unwrap(), Some(64));
        assert_eq!(buf[63], 9);
        assert_eq!(a.recv(T0, &mut buf).unwrap(), None);
        assert_eq!(
            a.stats(),
            LinkStats {
                sent: 3,
                received: 1,
                dropped_queue_full: 0
            }
        );
        assert_eq!(b.stats().received, 3);
    }

    #[test]
    fn full_queue_drops_and_counts_on_the_receiving_side() {
        let (mut a, mut b) = MemoryLink::pair_with_queue(CAPS, 2);
        for tag in 1..=5 {
            a.send(T0, &frame(tag, 60)).unwrap();
        }
        assert_eq!(b.pending(), 2);
        assert_eq!(b.stats().dropped_queue_full, 3);
        assert_eq!(a.stats().sent, 5);
        let mut buf = [0u8; 100];
        assert_eq!(b.recv(T0, &mut buf).unwrap(), Some(60));
        assert_eq!(buf[20], 1, "the oldest frames are kept, the newest dropped");
    }

    #[test]
    fn short_buffer_truncates_and_bad_sizes_are_rejected() {
        let (mut a, mut b) = MemoryLink::pair(CAPS);
        a.send(T0, &frame(7, 1518)).unwrap();
        let mut small = [0u8; 100];
        assert_eq!(b.recv(T0, &mut small).unwrap(), Some(100));
        let too_long = a.send(T0, &frame(7, 1519)).unwrap_err();
        assert_eq!(too_long.kind(), io::ErrorKind::InvalidInput);
        let too_short = a.send(T0, &[0u8; 13]).unwrap_err();
        assert_eq!(too_short.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(b.pending(), 0);
    }

    #[test]
    fn batches_move_several_frames() {
        let (mut a, mut b) = MemoryLink::pair(CAPS);
        let frames: Vec<Vec<u8>> = (1..=5).map(|t| frame(t, 60 + usize::from(t))).collect();
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        assert_eq!(a.send_batch(T0, &refs).unwrap(), 5);
        assert_eq!(b.poll_at(), Some(Duration::ZERO));
        let mut bufs = vec![vec![0u8; 1600]; 3];
        let mut lens = vec![0; 3];
        assert_eq!(b.recv_batch(T0, &mut bufs, &mut lens).unwrap(), 3);
        assert_eq!(lens, [61, 62, 63]);
        assert_eq!(b.recv_batch(T0, &mut bufs, &mut lens).unwrap(), 2);
        assert_eq!(&lens[..2], [64, 65]);
        assert_eq!(b.recv_batch(T0, &mut bufs, &mut lens).unwrap(), 0);
        assert_eq!(b.poll_at(), None);
    }

    /// A TCP super-frame the kernel accepted from us (11 segments of 1000 bytes or less).
    fn super_frame() -> (Vec<u8>, FrameOffload) {
        use crate::offload::fixtures::{hex, pattern, TX_CASES};
        let case = &TX_CASES[0];
        let mut frame = hex(case.headers);
        frame.extend(pattern(0, case.payload_len));
        let offload = FrameOffload::parse(&hex(case.vnet)).unwrap();
        (frame, offload)
    }

    const TSO: Offloads = Offloads {
        send: OffloadSet {
            partial_checksum: true,
            tcp_v4: true,
            tcp_v6: true,
            tcp_ecn: true,
            udp_l4: false,
        },
        recv: OffloadSet {
            partial_checksum: true,
            tcp_v4: true,
            tcp_v6: true,
            tcp_ecn: true,
            udp_l4: false,
        },
        max_frame_len: offload::MAX_OFFLOAD_FRAME_LEN,
    };

    #[test]
    fn offloading_link_carries_super_frames_whole_or_cut() {
        let (mut a, mut b) = MemoryLink::pair_with_offloads(CAPS, 16, TSO);
        let (frame, offload) = super_frame();
        let wire = offload::segment(&frame, &offload).unwrap();
        assert_eq!(wire.len(), 11);
        assert_eq!(a.offloads(), TSO);

        a.send_offload(T0, &frame, &offload).unwrap();
        a.send_offload(T0, &frame, &offload).unwrap();
        assert_eq!(b.pending(), 2, "one slot per super-frame");
        let mut buf = vec![0u8; offload::MAX_OFFLOAD_FRAME_LEN];
        let (len, got) = b.recv_offload(T0, &mut buf).unwrap().unwrap();
        assert_eq!((&buf[..len], got), (&frame[..], offload));

        // A plain receiver gets the second one as wire frames, in order.
        let mut small = [0u8; 1518];
        for expected in &wire {
            let len = b.recv(T0, &mut small).unwrap().unwrap();
            assert_eq!(&small[..len], &expected[..]);
        }
        assert_eq!(b.recv(T0, &mut small).unwrap(), None);
        assert_eq!(b.stats().received, 12);
        assert_eq!(a.stats().sent, 2);

        // Too small a buffer for a super-frame is refused.
        a.send_offload(T0, &frame, &offload).unwrap();
        let err = b.recv_offload(T0, &mut small).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn plain_link_gets_super_frames_segmented_by_the_sender() {
        let (mut a, mut b) = MemoryLink::pair(CAPS);
        assert_eq!(a.offloads(), Offloads::NONE);
        let (frame, offload) = super_frame();
        a.send_offload(T0, &frame, &offload).unwrap();
        assert_eq!(a.stats().sent, 11);
        let mut buf = vec![0u8; offload::MAX_OFFLOAD_FRAME_LEN];
        for expected in offload::segment(&frame, &offload).unwrap() {
            let (len, got) = b.recv_offload(T0, &mut buf).unwrap().unwrap();
            assert_eq!(got, FrameOffload::NONE);
            assert_eq!(&buf[..len], &expected[..]);
        }
        assert_eq!(b.pending(), 0);
    }

    #[test]
    fn malformed_super_frames_fail_the_sender() {
        let (mut a, b) = MemoryLink::pair_with_offloads(CAPS, 16, TSO);
        let (frame, offload) = super_frame();
        for bad in [&frame[..100], &frame[..10]] {
            let err = a.send_offload(T0, bad, &offload).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        assert_eq!(b.pending(), 0);
    }

    #[test]
    fn ends_work_from_two_threads() {
        let (mut a, mut b) = MemoryLink::pair(CAPS);
        let sender = std::thread::spawn(move || {
            for i in 0..200u8 {
                a.send(T0, &frame(i, 60)).unwrap();
            }
            a
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 200 {
            match b.recv(T0, &mut buf).unwrap() {
                Some(_) => got.push(buf[59]),
                None => std::thread::yield_now(),
            }
        }
        let a = sender.join().unwrap();
        assert_eq!(a.stats().sent, 200);
        assert!(
            got.iter().copied().eq(0..200u8),
            "order kept across threads"
        );
    }
}
