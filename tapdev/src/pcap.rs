//! Packet capture in the classic pcap format, readable by `tcpdump -r` and Wireshark.
//!
//! [`PcapFile`] writes frames to a file (microsecond timestamps, version 2.4, snaplen 65535,
//! `LINKTYPE_ETHERNET`, little-endian), optionally rotating by size: `file.pcap` is always the
//! newest, older ones are renamed `file.pcap.1`, `file.pcap.2`, ... and the oldest beyond
//! `max_files` is removed. [`PcapWriter`] wraps a [`Device`] and captures every frame it sends
//! and receives.
//!
//! Records are buffered and written whole, so a reader that opens the file while it grows sees
//! complete records only. The wrapper writes the buffer out when the device is drained (the
//! driver is about to sleep), when data has waited [`FLUSH_INTERVAL`], on
//! [`PcapWriter::flush`] and on drop. Capture is a diagnostic: an I/O error on the file never
//! fails a send or a receive; it is counted, reported once on stderr, and capture stops.
//!
//! Offloads pass through: the writer reports its inner device's [`Device::offloads`] and
//! records frames as they cross it, super-frames included, as one record each (cut at
//! [`SNAPLEN`], original length kept). That is what `tcpdump` shows on the kernel side of an
//! offloading TAP too: large TCP packets whose partial checksum reads as "incorrect" in
//! verbose mode. Segmenting for the capture would cost the speed offloads exist for.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::offload::{complete_checksum, Checksum};
use crate::{Capabilities, Device, FrameOffload, Offloads};

/// Classic pcap magic for microsecond timestamps.
pub const PCAP_MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Frames longer than this are cut; the record keeps their original length.
pub const SNAPLEN: u32 = 65535;
/// `LINKTYPE_ETHERNET`: records are Ethernet II frames.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Size of the file header.
pub const FILE_HEADER_LEN: usize = 24;
/// Size of each record's header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Longest time captured frames wait in memory while the device is busy.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// Buffered bytes that trigger a write regardless of time.
const BUFFER_LIMIT: usize = 64 * 1024;

/// Size-based rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// A file is rotated before a record would take it past this size (a single record larger
    /// than this still gets a file of its own).
    pub max_bytes: u64,
    /// Files kept, the current one included; 1 means the file restarts when full.
    pub max_files: usize,
}

/// A pcap file being written.
#[derive(Debug)]
pub struct PcapFile {
    path: PathBuf,
    file: File,
    /// Whole records (and the file header) not yet written.
    buffer: Vec<u8>,
    /// Size of the current file once `buffer` is written.
    file_len: u64,
    rotation: Option<Rotation>,
}

impl PcapFile {
    /// Creates (or truncates) `path` and writes the file header.
    pub fn create(path: impl AsRef<Path>) -> io::Result<PcapFile> {
        PcapFile::open(path.as_ref(), None)
    }

    /// Like [`PcapFile::create`], rotating by size as `rotation` says.
    pub fn with_rotation(path: impl AsRef<Path>, rotation: Rotation) -> io::Result<PcapFile> {
        if rotation.max_bytes == 0 || rotation.max_files == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "pcap rotation needs max_bytes and max_files above 0",
            ));
        }
        PcapFile::open(path.as_ref(), Some(rotation))
    }

    fn open(path: &Path, rotation: Option<Rotation>) -> io::Result<PcapFile> {
        let mut pcap = PcapFile {
            path: path.to_path_buf(),
            file: File::create(path)?,
            buffer: Vec::with_capacity(BUFFER_LIMIT),
            file_len: 0,
            rotation,
        };
        pcap.start_file();
        pcap.flush()?;
        Ok(pcap)
    }

    /// The path of the current (newest) file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one frame stamped `timestamp`.
    pub fn write_frame(&mut self, timestamp: SystemTime, frame: &[u8]) -> io::Result<()> {
        let captured = &frame[..frame.len().min(SNAPLEN as usize)];
        let record_len = (RECORD_HEADER_LEN + captured.len()) as u64;
        if let Some(rotation) = self.rotation {
            let has_records = self.file_len > FILE_HEADER_LEN as u64;
            if has_records && self.file_len + record_len > rotation.max_bytes {
                self.rotate(rotation)?;
            }
        }
        let since_epoch = timestamp
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        // Classic pcap seconds are 32 bits: saturate after 2106 rather than wrap.
        let seconds = u32::try_from(since_epoch.as_secs()).unwrap_or(u32::MAX);
        let original_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        self.buffer.extend_from_slice(&seconds.to_le_bytes());
        self.buffer
            .extend_from_slice(&since_epoch.subsec_micros().to_le_bytes());
        self.buffer
            .extend_from_slice(&(captured.len() as u32).to_le_bytes());
        self.buffer.extend_from_slice(&original_len.to_le_bytes());
        self.buffer.extend_from_slice(captured);
        self.file_len += record_len;
        if self.buffer.len() >= BUFFER_LIMIT {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes buffered records to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.buffer);
        // On error the file may hold part of the buffer; retrying would duplicate it.
        self.buffer.clear();
        result
    }

    /// Bytes waiting to be written.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    fn start_file(&mut self) {
        self.buffer
            .extend_from_slice(&PCAP_MAGIC_MICROS.to_le_bytes());
        self.buffer.extend_from_slice(&2u16.to_le_bytes()); // version major
        self.buffer.extend_from_slice(&4u16.to_le_bytes()); // version minor
        self.buffer.extend_from_slice(&0i32.to_le_bytes()); // thiszone: timestamps are UTC
        self.buffer.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        self.buffer.extend_from_slice(&SNAPLEN.to_le_bytes());
        self.buffer
            .extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        self.file_len = FILE_HEADER_LEN as u64;
    }

    /// Shifts `file.pcap.N` to `.N+1` (the last one is overwritten), the current file to
    /// `.1`, and starts a new current file.
    fn rotate(&mut self, rotation: Rotation) -> io::Result<()> {
        self.flush()?;
        for index in (1..rotation.max_files.saturating_sub(1)).rev() {
            match fs::rename(self.numbered(index), self.numbered(index + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        if rotation.max_files > 1 {
            fs::rename(&self.path, self.numbered(1))?;
        }
        self.file = File::create(&self.path)?;
        self.start_file();
        Ok(())
    }

    fn numbered(&self, index: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{index}"));
        PathBuf::from(name)
    }
}

impl Drop for PcapFile {
    fn drop(&mut self) {
        // Nobody is left to tell; a capture is best effort.
        let _ = self.flush();
    }
}

/// What a [`PcapWriter`] captured.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PcapStats {
    /// Frames written to the capture.
    pub frames: u64,
    /// Frames that passed while capture was stopped.
    pub missed: u64,
    /// I/O errors on the capture file (capture stops at the first).
    pub io_errors: u64,
}

/// Wraps a device and writes every frame it sends or receives to a pcap file.
///
/// Timestamps are `wallclock_at_epoch + now`: the caller reads the wall clock once, when it
/// picks the epoch of its `now` values; the wrapper never reads a clock. Dropping the writer
/// drops its [`PcapFile`], which writes out what is still buffered.
#[derive(Debug)]
pub struct PcapWriter<D: Device> {
    inner: D,
    /// `None` once capture stopped after an error.
    capture: Option<PcapFile>,
    wallclock_at_epoch: SystemTime,
    /// When the oldest unwritten record was captured.
    unflushed_since: Option<Duration>,
    stats: PcapStats,
    /// Copy of a frame whose checksum the capture completes (see `record_offloaded`).
    scratch: Vec<u8>,
}

impl<D: Device> PcapWriter<D> {
    /// Captures to a new file at `path` (truncating an existing one).
    pub fn new(
        inner: D,
        path: impl AsRef<Path>,
        wallclock_at_epoch: SystemTime,
    ) -> io::Result<PcapWriter<D>> {
        Ok(PcapWriter::with_file(
            inner,
            PcapFile::create(path)?,
            wallclock_at_epoch,
        ))
    }

    /// Captures to an already opened file (e.g. one with rotation).
    pub fn with_file(inner: D, file: PcapFile, wallclock_at_epoch: SystemTime) -> PcapWriter<D> {
        PcapWriter {
            inner,
            capture: Some(file),
            wallclock_at_epoch,
            unflushed_since: None,
            stats: PcapStats::default(),
            scratch: Vec::new(),
        }
    }

    pub fn stats(&self) -> PcapStats {
        self.stats
    }

    /// False once an I/O error stopped the capture.
    pub fn is_capturing(&self) -> bool {
        self.capture.is_some()
    }

    /// Writes buffered frames to the file now.
    pub fn flush(&mut self) {
        let result = match self.capture.as_mut() {
            Some(capture) => capture.flush(),
            None => Ok(()),
        };
        self.unflushed_since = None;
        if let Err(e) = result {
            self.stop(e);
        }
    }

    pub fn inner(&self) -> &D {
        &self.inner
    }

    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// The wrapped device; the capture is flushed and closed.
    pub fn into_inner(mut self) -> D {
        self.flush();
        self.inner
    }

    fn record(&mut self, now: Duration, frame: &[u8]) {
        let Some(capture) = self.capture.as_mut() else {
            self.stats.missed += 1;
            return;
        };
        let timestamp = self.wallclock_at_epoch + now;
        match capture.write_frame(timestamp, frame) {
            Ok(()) => {
                self.stats.frames += 1;
                if capture.buffered() > 0 {
                    self.unflushed_since.get_or_insert(now);
                } else {
                    self.unflushed_since = None;
                }
            }
            Err(e) => self.stop(e),
        }
    }

    /// Records a frame that crossed the device with `offload`. A partial checksum is
    /// completed in the copy that is captured, so the capture shows what the wire carries
    /// (or, for a super-frame, what its segments add up to) and tools do not report
    /// checksum errors that are only offloading.
    fn record_offloaded(&mut self, now: Duration, frame: &[u8], offload: &FrameOffload) {
        if let Checksum::Partial { start, offset } = offload.checksum {
            let mut copy = std::mem::take(&mut self.scratch);
            copy.clear();
            copy.extend_from_slice(frame);
            if complete_checksum(&mut copy, start, offset).is_ok() {
                self.record(now, &copy);
                self.scratch = copy;
                return;
            }
            self.scratch = copy;
        }
        self.record(now, frame);
    }

    /// Flushes when the device ran dry (`idle`) or data has waited long enough.
    fn maybe_flush(&mut self, now: Duration, idle: bool) {
        if let Some(since) = self.unflushed_since {
            if idle || now.saturating_sub(since) >= FLUSH_INTERVAL {
                self.flush();
            }
        }
    }

    fn stop(&mut self, error: io::Error) {
        self.stats.io_errors += 1;
        if let Some(capture) = self.capture.take() {
            eprintln!(
                "tapdev: pcap capture to {} stopped after {} frames: {error}",
                capture.path().display(),
                self.stats.frames
            );
        }
        self.unflushed_since = None;
    }
}

impl<D: Device> Device for PcapWriter<D> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn recv(&mut self, now: Duration, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let result = self.inner.recv(now, buf);
        match result {
            Ok(Some(len)) => {
                if let Some(frame) = buf.get(..len) {
                    self.record(now, frame);
                }
                self.maybe_flush(now, false);
            }
            _ => self.maybe_flush(now, true),
        }
        result
    }

    fn send(&mut self, now: Duration, frame: &[u8]) -> io::Result<()> {
        self.inner.send(now, frame)?;
        // Recorded only once the device took it: a refused frame is retried and would show
        // twice.
        self.record(now, frame);
        self.maybe_flush(now, false);
        Ok(())
    }

    fn recv_batch(
        &mut self,
        now: Duration,
        bufs: &mut [Vec<u8>],
        lens: &mut [usize],
    ) -> io::Result<usize> {
        let result = self.inner.recv_batch(now, bufs, lens);
        let count = *result.as_ref().unwrap_or(&0);
        for (buf, &len) in bufs.iter().zip(lens.iter()).take(count) {
            if let Some(frame) = buf.get(..len) {
                self.record(now, frame);
            }
        }
        self.maybe_flush(now, count < bufs.len());
        result
    }

    fn send_batch(&mut self, now: Duration, frames: &[&[u8]]) -> io::Result<usize> {
        let sent = self.inner.send_batch(now, frames)?;
        for frame in frames.iter().take(sent) {
            self.record(now, frame);
        }
        self.maybe_flush(now, false);
        Ok(sent)
    }

    /// Also wakes the driver when captured frames have waited [`FLUSH_INTERVAL`].
    fn poll_at(&self) -> Option<Duration> {
        let flush_at = self.unflushed_since.map(|since| since + FLUSH_INTERVAL);
        [self.inner.poll_at(), flush_at].into_iter().flatten().min()
    }

    fn offloads(&self) -> Offloads {
        self.inner.offloads()
    }

    fn recv_offload(
        &mut self,
        now: Duration,
        buf: &mut [u8],
    ) -> io::Result<Option<(usize, FrameOffload)>> {
        let result = self.inner.recv_offload(now, buf);
        match result {
            Ok(Some((len, offload))) => {
                if let Some(frame) = buf.get(..len) {
                    self.record_offloaded(now, frame, &offload);
                }
                self.maybe_flush(now, false);
            }
            _ => self.maybe_flush(now, true),
        }
        result
    }

    fn send_offload(
        &mut self,
        now: Duration,
        frame: &[u8],
        offload: &FrameOffload,
    ) -> io::Result<()> {
        self.inner.send_offload(now, frame, offload)?;
        self.record_offloaded(now, frame, offload);
        self.maybe_flush(now, false);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryLink;

    const CAPS: Capabilities = Capabilities {
        mtu: 1500,
        max_burst: 8,
    };

    #[test]
    fn frames_beyond_snaplen_are_cut_and_keep_their_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.pcap");
        let mut pcap = PcapFile::create(&path).unwrap();
        let frame = vec![0xabu8; 70_000];
        pcap.write_frame(SystemTime::UNIX_EPOCH, &frame).unwrap();
        drop(pcap);
        let bytes = fs::read(&path).unwrap();
        let header = &bytes[FILE_HEADER_LEN..FILE_HEADER_LEN + RECORD_HEADER_LEN];
        assert_eq!(header[8..12], 65535u32.to_le_bytes(), "captured length");
        assert_eq!(header[12..16], 70_000u32.to_le_bytes(), "original length");
        assert_eq!(
            bytes.len(),
            FILE_HEADER_LEN + RECORD_HEADER_LEN + SNAPLEN as usize
        );
    }

    #[test]
    fn capture_errors_stop_the_capture_but_never_the_data_path() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let Ok(full) = File::options().write(true).open("/dev/full") else {
            eprintln!("skipped: no /dev/full");
            return;
        };
        let capture = PcapFile {
            path: PathBuf::from("/dev/full"),
            file: full,
            buffer: Vec::new(),
            file_len: FILE_HEADER_LEN as u64,
            rotation: None,
        };
        let (near, mut far) = MemoryLink::pair(CAPS);
        let mut dev = PcapWriter::with_file(near, capture, SystemTime::UNIX_EPOCH);
        let frame = [0x11u8; 60];
        let now = Duration::from_millis(1);
        dev.send(now, &frame).unwrap();
        assert!(dev.is_capturing(), "still buffered");
        dev.flush();
        assert!(!dev.is_capturing());
        for _ in 0..3 {
            dev.send(now, &frame).unwrap();
        }
        dev.flush();
        assert_eq!(
            dev.stats(),
            PcapStats {
                frames: 1,
                missed: 3,
                io_errors: 1
            }
        );
        assert_eq!(dev.poll_at(), None);
        let mut buf = [0u8; 100];
        let mut delivered = 0;
        while far.recv(now, &mut buf).unwrap().is_some() {
            delivered += 1;
        }
        assert_eq!(delivered, 4);
    }

    #[test]
    fn rotation_needs_positive_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pcap");
        for (max_bytes, max_files) in [(0, 2), (100, 0)] {
            let err = PcapFile::with_rotation(
                &path,
                Rotation {
                    max_bytes,
                    max_files,
                },
            )
            .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }
}
