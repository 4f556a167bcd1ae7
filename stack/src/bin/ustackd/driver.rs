//! The daemon's event loop: the only place that reads the device, the sockets and the clock.
//!
//! One thread owns all protocol state. Each turn: wait for readiness or the next deadline, read
//! the clock once, drain the device (bounded per turn so control requests are never starved),
//! serve control clients, run timers, and write out everything the stack queued. If frames are
//! still waiting anywhere, the next wait does not sleep.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signalfd::SignalFd;
use tapdev::offload::{prepare_segmentation, Checksum};
use tapdev::{Device, MAX_FRAME_LEN};
use ustack::control::{Request, Response};
use ustack::host::Host;
use ustack::time::Instant;

use crate::control_server::{Caller, ControlServer};
use crate::sockets::AppSockets;

const TAP: Token = Token(0);
const SIGNALS: Token = Token(1);
const CONTROL_LISTENER: Token = Token(2);
/// Tokens from here on are control clients.
pub const FIRST_CLIENT_TOKEN: usize = 16;

/// Frames read from the device per loop turn before other work gets a chance.
const MAX_FRAMES_PER_TURN: usize = 256;
/// Frames per `recv_batch` call.
const RX_BATCH: usize = 32;
/// When the device refuses a frame, retry after this long rather than spin.
const TX_RETRY: Duration = Duration::from_millis(1);
/// Rounds of "move socket data, poll the host" per turn: loopback traffic between two
/// programs on the stack settles within a few; the rest waits for the next turn.
const MAX_PUMP_ROUNDS: usize = 16;

pub struct Driver {
    pub device: Box<dyn Device>,
    pub device_fd: i32,
    pub host: Host,
    pub control: ControlServer,
    pub sockets: AppSockets,
    pub signals: SignalFd,
    pub clock: Clock,
    /// After a turn that did work, keep polling without sleeping for this long: under load
    /// the next frame is microseconds away, and a sleep and wake-up costs more than that
    /// (measured: ping RTT through the TAP 0.065 ms sleeping, 0.013-0.020 ms polling, kernel
    /// veth 0.008-0.013). An idle daemon still sleeps (0% CPU): the window opens only on work.
    pub busy_poll: Duration,
}

/// The monotonic clock, read once per loop turn.
pub struct Clock {
    start: std::time::Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            start: std::time::Instant::now(),
        }
    }
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

impl Driver {
    pub fn run(mut self) -> io::Result<()> {
        let mut poll = Poll::new()?;
        let registry = poll.registry();
        registry.register(&mut SourceFd(&self.device_fd), TAP, Interest::READABLE)?;
        registry.register(
            &mut SourceFd(&self.signals.as_raw_fd()),
            SIGNALS,
            Interest::READABLE,
        )?;
        registry.register(
            &mut SourceFd(&self.control.raw_fd()),
            CONTROL_LISTENER,
            Interest::READABLE,
        )?;

        let mut events = Events::with_capacity(256);
        let mut rx_bufs: Vec<Vec<u8>> = (0..RX_BATCH).map(|_| vec![0u8; MAX_FRAME_LEN]).collect();
        let mut rx_lens = vec![0usize; RX_BATCH];
        // A device that hands over super-frames is read one frame at a time into a buffer
        // that holds the largest.
        let offloads = self.device.offloads();
        let offload_rx = offloads.recv.tcp_v4 || offloads.recv.partial_checksum;
        let mut super_buf = vec![
            0u8;
            if offload_rx {
                offloads.max_frame_len
            } else {
                0
            }
        ];
        // mio is edge-triggered: remember when the device may still hold frames.
        let mut device_backlog = true;
        // The device refused a frame last turn: retry after a pause instead of spinning.
        let mut device_full = false;
        // Socket work was left over last turn: do not sleep.
        let mut sockets_busy = false;
        // When the last turn did work (see BUSY_POLL).
        let mut last_work: Option<Duration> = None;

        loop {
            let now = self.clock.now();
            let busy_polling = last_work.is_some_and(|at| now.saturating_sub(at) < self.busy_poll);
            let timeout = if device_backlog || sockets_busy || busy_polling {
                Some(Duration::ZERO)
            } else if device_full {
                Some(TX_RETRY)
            } else {
                self.next_wakeup(now)
            };
            match poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = self.clock.now();
            if !events.is_empty() {
                last_work = Some(now);
            }
            let stamp = Instant::from_duration(now);

            for event in events.iter() {
                match event.token() {
                    TAP => device_backlog = true,
                    SIGNALS => {
                        if let Ok(Some(info)) = self.signals.read_signal() {
                            tracing::info!(signal = info.ssi_signo, "exiting on signal");
                            return Ok(());
                        }
                    }
                    CONTROL_LISTENER => self.control.accept_all(poll.registry()),
                    token if AppSockets::owns(token) => self.sockets.on_event(token, event),
                    token if self.control.owns(token) => {
                        let host = &mut self.host;
                        let sockets = &mut self.sockets;
                        let registry = poll.registry();
                        self.control.serve(token, registry, |request, fds, caller| {
                            handle_request(host, sockets, registry, stamp, request, fds, caller)
                        });
                    }
                    _ => {}
                }
            }

            // Middleware (fault delays, pcap flushes) does its timed work inside recv.
            if self.device.poll_at().is_some_and(|at| at <= now) {
                device_backlog = true;
            }
            if device_backlog && offload_rx {
                let mut frames = 0;
                while frames < MAX_FRAMES_PER_TURN {
                    let (len, offload) = match self.device.recv_offload(now, &mut super_buf) {
                        Ok(Some(frame)) => frame,
                        Ok(None) => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                            // A frame the kernel described badly: dropped, counted by nobody
                            // but the log (the stack never saw it).
                            tracing::warn!("TAP frame with a bad offload header dropped: {e}");
                            continue;
                        }
                        Err(e) => {
                            return Err(io::Error::new(e.kind(), format!("reading the TAP: {e}")))
                        }
                    };
                    let Some(frame) = super_buf.get_mut(..len) else {
                        continue;
                    };
                    match offload.checksum {
                        // Kernel memory that never crossed a wire, or checked by the kernel:
                        // no checksum to compute (Linux's CHECKSUM_PARTIAL/UNNECESSARY).
                        Checksum::Partial { .. } | Checksum::Verified => {
                            self.host.receive_frame_verified(stamp, frame)
                        }
                        Checksum::Complete => self.host.receive_frame(stamp, frame),
                    }
                    frames += 1;
                }
                device_backlog = frames >= MAX_FRAMES_PER_TURN;
                if frames > 0 {
                    last_work = Some(now);
                }
            } else if device_backlog {
                let mut frames = 0;
                while frames < MAX_FRAMES_PER_TURN {
                    let count = match self.device.recv_batch(now, &mut rx_bufs, &mut rx_lens) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            return Err(io::Error::new(e.kind(), format!("reading the TAP: {e}")))
                        }
                    };
                    for (buf, &len) in rx_bufs.iter().zip(&rx_lens).take(count) {
                        self.host.receive_frame(stamp, &buf[..len]);
                    }
                    frames += count;
                    if count < RX_BATCH {
                        break;
                    }
                }
                device_backlog = frames >= MAX_FRAMES_PER_TURN;
                if frames > 0 {
                    last_work = Some(now);
                }
            }

            // Socket data and loopback traffic feed each other: alternate until quiet.
            self.sockets.pump(&mut self.host, poll.registry(), stamp);
            self.host.poll(stamp);
            sockets_busy = true;
            for _ in 0..MAX_PUMP_ROUNDS {
                if !self.sockets.pump(&mut self.host, poll.registry(), stamp) {
                    sockets_busy = self.sockets.is_busy();
                    break;
                }
                self.host.poll(stamp);
            }
            device_full = !self.flush_device(now)?;
        }
    }

    /// Writes every frame the stack queued; stops (keeping the rest queued) when the device is
    /// full, and then returns false. A hard device error ends the daemon: the TAP went away.
    /// TCP super-frames go to a device that segments them itself as they are (see
    /// `tcp_segmentation_offload`); through any other device the stack cuts them first.
    fn flush_device(&mut self, now: Duration) -> io::Result<bool> {
        let device = &mut self.device;
        let mut outcome = FlushOutcome::default();
        if tcp_segmentation_offload(device.as_ref()) {
            self.host.transmit_offload(&mut |frame, segment_size| {
                let sent = match segment_size {
                    Some(size) => match prepare_segmentation(frame, size) {
                        Ok(offload) => device.send_offload(now, frame, &offload),
                        Err(e) => Err(io::Error::new(io::ErrorKind::InvalidInput, e)),
                    },
                    None => device.send(now, frame),
                };
                outcome.accepts(sent)
            });
        } else {
            self.host
                .transmit(&mut |frame| outcome.accepts(device.send(now, frame)));
        }
        match outcome.failure {
            Some(e) => Err(io::Error::new(e.kind(), format!("writing the TAP: {e}"))),
            None => Ok(!outcome.refused),
        }
    }

    /// How long the loop may sleep: until the stack's or the device's next deadline.
    fn next_wakeup(&self, now: Duration) -> Option<Duration> {
        let stack_at = self.host.poll_at().map(|t| t.as_duration());
        let device_at = self.device.poll_at();
        let at = match (stack_at, device_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        Some(at.saturating_sub(now))
    }
}

/// Whether `device` takes TCP/IPv4 super-frames with a partial checksum as they are: then the
/// stack may build them (`TcpConfig::gso_max_payload`).
pub fn tcp_segmentation_offload(device: &dyn Device) -> bool {
    let send = device.offloads().send;
    send.tcp_v4 && send.partial_checksum
}

/// What happened to the frames offered to the device in one flush.
#[derive(Default)]
struct FlushOutcome {
    /// The device is full: the frame stays queued for the next flush.
    refused: bool,
    /// The device is gone: the daemon ends.
    failure: Option<io::Error>,
}

impl FlushOutcome {
    /// Whether the stack may drop the frame from its queue after this send result.
    fn accepts(&mut self, sent: io::Result<()>) -> bool {
        match sent {
            Ok(()) => true,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                self.refused = true;
                false
            }
            Err(e) => {
                // A frame the device rejects (e.g. EINVAL on a bad size) is dropped, not
                // retried forever; a vanished device is fatal.
                if e.raw_os_error() == Some(libc::EBADFD) || e.raw_os_error() == Some(libc::EIO) {
                    self.failure = Some(e);
                    return false;
                }
                tracing::warn!("TAP write failed, frame dropped: {e}");
                true
            }
        }
    }
}

fn handle_request(
    host: &mut Host,
    sockets: &mut AppSockets,
    registry: &mio::Registry,
    now: Instant,
    request: Request,
    fds: Vec<std::os::fd::OwnedFd>,
    caller: Caller,
) -> (Response, Option<std::os::fd::OwnedFd>) {
    match request {
        Request::Stats => {
            let mut counters: Vec<(String, u64)> = host
                .counters()
                .into_iter()
                .map(|(name, value)| (name.to_string(), value))
                .collect();
            counters.extend(
                sockets
                    .counters()
                    .into_iter()
                    .map(|(name, value)| (name.to_string(), value)),
            );
            (Response::Stats(counters), None)
        }
        Request::Sockets { from } => (sockets.page(host, from), None),
        request => sockets.handle(request, fds, caller, host, registry, now),
    }
}
