//! The link layer below ustack.
//!
//! A [`Device`] moves whole Ethernet II frames (no preamble, no FCS) in and out. Real devices
//! ([`tap::TapDevice`]) do I/O; [`memory::MemoryLink`] connects two in-process endpoints for
//! tests; middleware ([`fault::FaultInjector`], [`pcap::PcapWriter`]) wraps any device and is
//! stacked by the caller.
//!
//! Time is an argument: devices never read a clock. `now` is a monotonic [`Duration`] since an
//! epoch the caller chooses (the daemon uses process start; simulations start at zero), so the
//! fault injector's delays and rate limits replay exactly under a seeded test.

use std::io;
use std::time::Duration;

pub mod fault;
pub mod memory;
pub mod pcap;
pub mod tap;

/// Largest Ethernet II frame we handle without offloads: 14-byte header + 1500-byte MTU, plus
/// room for a VLAN tag so a tagged frame is read whole (and then ignored) rather than truncated.
pub const MAX_FRAME_LEN: usize = 14 + 4 + 1500;

/// What a device can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Largest IP datagram (the link MTU), not counting the Ethernet header.
    pub mtu: usize,
    /// How many frames one `recv_batch`/`send_batch` call may move at most.
    pub max_burst: usize,
}

/// A frame source and sink. Implementations never block: a receive with nothing waiting
/// returns `Ok(None)`, a send that the device cannot take now returns `ErrorKind::WouldBlock`.
pub trait Device {
    fn capabilities(&self) -> Capabilities;

    /// Reads one frame into `buf` and returns its length, or `None` when nothing is waiting.
    /// A frame longer than `buf` is truncated to `buf.len()` (callers size `buf` from the MTU).
    fn recv(&mut self, now: Duration, buf: &mut [u8]) -> io::Result<Option<usize>>;

    /// Sends one frame.
    fn send(&mut self, now: Duration, frame: &[u8]) -> io::Result<()>;

    /// Reads up to `bufs.len()` frames, frame `i` into `bufs[i]`, its length into `lens[i]`.
    /// Returns how many were read (0 when nothing is waiting). Devices that can read several
    /// frames per system call override this.
    fn recv_batch(
        &mut self,
        now: Duration,
        bufs: &mut [Vec<u8>],
        lens: &mut [usize],
    ) -> io::Result<usize> {
        let mut count = 0;
        for (buf, len) in bufs.iter_mut().zip(lens.iter_mut()) {
            match self.recv(now, buf)? {
                Some(n) => {
                    *len = n;
                    count += 1;
                }
                None => break,
            }
        }
        Ok(count)
    }

    /// Sends the frames in order; returns how many were taken. Stops at the first error,
    /// returning the count so far, or the error itself if no frame was sent.
    fn send_batch(&mut self, now: Duration, frames: &[&[u8]]) -> io::Result<usize> {
        for (sent, frame) in frames.iter().enumerate() {
            if let Err(e) = self.send(now, frame) {
                return if sent == 0 { Err(e) } else { Ok(sent) };
            }
        }
        Ok(frames.len())
    }

    /// The earliest time this device wants to be polled again without new input (a delayed
    /// frame coming due, a rate limiter refilling); `None` if it has nothing pending.
    fn poll_at(&self) -> Option<Duration> {
        None
    }
}

impl<D: Device + ?Sized> Device for Box<D> {
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    fn recv(&mut self, now: Duration, buf: &mut [u8]) -> io::Result<Option<usize>> {
        (**self).recv(now, buf)
    }
    fn send(&mut self, now: Duration, frame: &[u8]) -> io::Result<()> {
        (**self).send(now, frame)
    }
    fn recv_batch(
        &mut self,
        now: Duration,
        bufs: &mut [Vec<u8>],
        lens: &mut [usize],
    ) -> io::Result<usize> {
        (**self).recv_batch(now, bufs, lens)
    }
    fn send_batch(&mut self, now: Duration, frames: &[&[u8]]) -> io::Result<usize> {
        (**self).send_batch(now, frames)
    }
    fn poll_at(&self) -> Option<Duration> {
        (**self).poll_at()
    }
}
