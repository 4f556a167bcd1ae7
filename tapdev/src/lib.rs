//! The link layer below ustack.
//!
//! A [`Device`] moves whole Ethernet II frames (no preamble, no FCS) in and out. Real devices
//! ([`tap::TapDevice`]) do I/O; [`memory::MemoryLink`] connects two in-process endpoints for
//! tests; middleware ([`fault::FaultInjector`], [`pcap::PcapWriter`]) wraps any device and is
//! stacked by the caller.
//!
//! Stacking order decides what a capture shows: `PcapWriter<FaultInjector<TapDevice>>`
//! records what the stack sent and received (egress before faults, ingress after them);
//! `FaultInjector<PcapWriter<TapDevice>>` records what crossed the TAP.
//!
//! Time is an argument: devices never read a clock. `now` is a monotonic [`Duration`] since an
//! epoch the caller chooses (the daemon uses process start; simulations start at zero), so the
//! fault injector's delays and rate limits replay exactly under a seeded test.

use std::io;
use std::time::Duration;

pub mod fault;
pub mod memory;
pub mod offload;
pub mod pcap;
pub mod tap;

pub use fault::{FaultConfig, FaultInjector, FaultStats, Faults};
pub use memory::{MemoryEndpoint, MemoryLink};
pub use offload::{FrameOffload, Offloads};
pub use pcap::{PcapFile, PcapWriter};
pub use tap::TapDevice;

/// Largest Ethernet II frame we handle without offloads: 14-byte header + 1500-byte MTU, plus
/// room for a VLAN tag so a tagged frame is read whole (and then ignored) rather than truncated.
pub const MAX_FRAME_LEN: usize = 14 + 4 + 1500;

/// What a device can carry. Offloads are reported separately, by [`Device::offloads`].
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
    /// Returns how many were read (0 when nothing is waiting). An error after some frames were
    /// read returns the count so far (those frames are already consumed; the error, if it
    /// persists, shows on the next call); an error on the first read is returned as is.
    /// Devices that can read several frames per system call override this.
    fn recv_batch(
        &mut self,
        now: Duration,
        bufs: &mut [Vec<u8>],
        lens: &mut [usize],
    ) -> io::Result<usize> {
        let mut count = 0;
        for (buf, len) in bufs.iter_mut().zip(lens.iter_mut()) {
            match self.recv(now, buf) {
                Ok(Some(n)) => {
                    *len = n;
                    count += 1;
                }
                Ok(None) => break,
                Err(e) if count == 0 => return Err(e),
                Err(_) => break,
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
    /// frame coming due, a rate limiter refilling); `None` if it has nothing pending. A time at
    /// or before the current `now` means "call `recv` again right away": frames are waiting.
    /// Middleware releases due frames in both directions on every `recv`/`send`, so a driver
    /// that calls `recv_batch` whenever this deadline passes keeps everything moving.
    fn poll_at(&self) -> Option<Duration> {
        None
    }

    /// What the device takes and gives beyond wire frames: super-frames, partial checksums
    /// (see [`offload`]). The default is nothing.
    fn offloads(&self) -> Offloads {
        Offloads::NONE
    }

    /// Reads one frame with its offload: a super-frame or a frame with a partial checksum
    /// when `offloads().recv` allows it, else a wire frame with [`FrameOffload::NONE`].
    /// `buf` must hold `offloads().max_frame_len` bytes (a shorter one truncates, as `recv`
    /// does, on devices without offloads; offloading devices refuse it with `InvalidInput`).
    /// The default is `recv`.
    fn recv_offload(
        &mut self,
        now: Duration,
        buf: &mut [u8],
    ) -> io::Result<Option<(usize, FrameOffload)>> {
        Ok(self.recv(now, buf)?.map(|len| (len, FrameOffload::NONE)))
    }

    /// Sends a frame described by `offload`. What `offloads().send` allows goes to the device
    /// as one unit; the rest is done in software and sent as wire frames through `send`
    /// ([`offload::send_in_software`], the default, which also explains partial failures).
    fn send_offload(
        &mut self,
        now: Duration,
        frame: &[u8],
        offload: &FrameOffload,
    ) -> io::Result<()> {
        offload::send_in_software(self, now, frame, offload)
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
    fn offloads(&self) -> Offloads {
        (**self).offloads()
    }
    fn recv_offload(
        &mut self,
        now: Duration,
        buf: &mut [u8],
    ) -> io::Result<Option<(usize, FrameOffload)>> {
        (**self).recv_offload(now, buf)
    }
    fn send_offload(
        &mut self,
        now: Duration,
        frame: &[u8],
        offload: &FrameOffload,
    ) -> io::Result<()> {
        (**self).send_offload(now, frame, offload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields `frames` one-byte frames, then fails every read.
    struct FailsAfter {
        frames: u8,
    }

    impl Device for FailsAfter {
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                mtu: 1500,
                max_burst: 4,
            }
        }
        fn recv(&mut self, _now: Duration, buf: &mut [u8]) -> io::Result<Option<usize>> {
            if self.frames == 0 {
                return Err(io::Error::other("device gone"));
            }
            buf[0] = self.frames;
            self.frames -= 1;
            Ok(Some(1))
        }
        fn send(&mut self, _now: Duration, _frame: &[u8]) -> io::Result<()> {
            Err(io::Error::other("device gone"))
        }
    }

    #[test]
    fn recv_batch_keeps_frames_read_before_an_error() {
        let mut device = FailsAfter { frames: 2 };
        let mut bufs = vec![vec![0u8; 4]; 4];
        let mut lens = vec![0; 4];
        assert_eq!(
            device
                .recv_batch(Duration::ZERO, &mut bufs, &mut lens)
                .unwrap(),
            2
        );
        assert_eq!((bufs[0][0], bufs[1][0]), (2, 1));
        let err = device.recv_batch(Duration::ZERO, &mut bufs, &mut lens);
        assert_eq!(err.unwrap_err().to_string(), "device gone");
    }

    #[test]
    fn send_batch_reports_the_first_error_only_if_nothing_was_sent() {
        let mut device = FailsAfter { frames: 0 };
        assert!(device.send_batch(Duration::ZERO, &[&[1u8][..]]).is_err());
        assert_eq!(device.send_batch(Duration::ZERO, &[]).unwrap(), 0);
    }
}
