//! The real device: a persistent Linux TAP, opened without packet info and non-blocking.
//!
//! The TAP is created beforehand, persistent, inside the stack's network namespace
//! (`scripts/netns.sh up` runs `ip tuntap add dev tap0 mode tap` in namespace `ustack`); this
//! module only attaches to it. Attaching with `TUNSETIFF` to a name that does not exist would
//! silently create a fresh, non-persistent TAP that nobody configured, so [`TapDevice::open`]
//! first checks `/sys/class/net/<name>/tun_flags` and refuses with an explanation instead.
//!
//! sysfs shows the devices of the network namespace it was mounted in, not the caller's; that is
//! why the daemon runs under `ip netns exec ustack ...`, which remounts `/sys` for the namespace.
//!
//! Frames are plain Ethernet II (`IFF_NO_PI`). The file descriptor is non-blocking and exposed
//! through [`AsRawFd`]/[`AsFd`] so the daemon can register it with epoll.
//!
//! # Offloads
//!
//! [`TapDevice::open_with_offloads`] attaches with `IFF_VNET_HDR`: every read and write then
//! starts with a 10-byte virtio-net header ([`crate::offload`]), and `TUNSETOFFLOAD` lets the
//! kernel hand us TCP super-frames of up to 64 KB and partial checksums instead of segmenting
//! and checksumming them itself. What we write may be a super-frame too: the kernel segments it
//! only if it leaves through a real wire, and delivers it whole to its own sockets.
//!
//! Offload settings belong to the persistent device and outlive the file descriptor: measured
//! on Linux 6.18, a plain reader attached after an offload session gets 21 KB super-frames with
//! unfinished checksums and no header to say so. [`TapDevice::open`] therefore switches them off
//! (`TUNSETOFFLOAD` 0) when it attaches.
//!
//! On an offloading TAP the plain [`Device::recv`] and [`Device::send`] still move wire frames
//! (the header is added or checked and stripped; super-frames are segmented and partial
//! checksums completed in software), so middleware and callers that know nothing of offloads
//! keep working, without the speed-up.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

use crate::offload::{
    self, complete_checksum, Checksum, FrameOffload, OffloadSet, Offloads, MAX_OFFLOAD_FRAME_LEN,
    VNET_HDR_LEN,
};
use crate::{Capabilities, Device};

/// `IFF_TUN` in `tun_flags`: the device carries IP packets, not Ethernet frames.
const IFF_TUN: u32 = 0x0001;
/// `IFF_TAP` in `tun_flags`: the device carries Ethernet frames.
const IFF_TAP: u32 = 0x0002;
/// `IFF_PERSIST` in `tun_flags`: the device outlives the file descriptors attached to it.
const IFF_PERSIST: u32 = 0x0800;
/// Interface names are at most `IFNAMSIZ - 1` bytes.
const MAX_IFNAME_LEN: usize = 15;
/// Frames per `recv_batch`: enough to amortise a loop turn, small enough to stay fair.
const MAX_BURST: usize = 64;
/// MTU assumed if sysfs cannot tell (it always can on Linux; this is only a fallback).
const DEFAULT_MTU: usize = 1500;
/// What we ask the kernel to give us on an offloading TAP: partial checksums and TCP
/// super-frames (with CWR too: our segmentation puts it on the first segment only). UDP
/// super-frames (`TUN_F_USO4 | TUN_F_USO6`) are left off: every UDP receive path would have to
/// split them, for a rare kind of traffic (UDP_SEGMENT senders).
const RECV_OFFLOADS: libc::c_uint =
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;
/// Probed to learn whether the kernel knows UDP segmentation (Linux 6.2+); it takes both or
/// neither.
const USO: libc::c_uint = libc::TUN_F_USO4 | libc::TUN_F_USO6;

/// How to get a TAP the daemon can use; appended to every "not found" style error.
const SETUP_HINT: &str = "create it with `scripts/netns.sh up` and run the daemon inside the \
                          namespace: `ip netns exec ustack ...`";

/// A persistent Linux TAP device attached in non-blocking mode, without packet info.
#[derive(Debug)]
pub struct TapDevice {
    /// The attached `/dev/net/tun` file, `O_NONBLOCK` set.
    file: File,
    name: String,
    mtu: usize,
    /// Set when attached with `IFF_VNET_HDR` ([`TapDevice::open_with_offloads`]).
    vnet: Option<Vnet>,
}

/// State of an offloading TAP.
#[derive(Debug)]
struct Vnet {
    offloads: Offloads,
    /// Where a plain `recv` reads what may be a super-frame before cutting it up.
    scratch: Vec<u8>,
    /// Wire frames cut from a super-frame, handed out by the next `recv` calls.
    pending: VecDeque<Vec<u8>>,
}

impl TapDevice {
    /// Attaches to the existing persistent TAP `name` in the caller's network namespace, for
    /// plain frames: offloads a previous user enabled are switched off.
    ///
    /// Errors name what is wrong: the device is missing (`NotFound`), is not a TAP or not
    /// persistent (`InvalidInput`), is held by another process (`ResourceBusy`), or may not be
    /// opened by this user (`PermissionDenied`).
    pub fn open(name: &str) -> io::Result<TapDevice> {
        let file = attach_checked(name, IFF_TAP_FLAGS)?;
        set_offload(&file, 0).map_err(|e| explain_offload_error(name, "TUNSETOFFLOAD 0", e))?;
        TapDevice::finish(file, name, None)
    }

    /// Like [`TapDevice::open`], with offloads: attaches with `IFF_VNET_HDR` (10-byte
    /// little-endian header) and asks the kernel for partial checksums and TCP super-frames
    /// (`TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN`). [`Device::offloads`] then
    /// reports: receive — partial checksums, TCP v4/v6 super-frames (ECN too); send — the same,
    /// plus UDP super-frames when the kernel knows UDP segmentation (probed).
    ///
    /// Receive buffers for [`Device::recv_offload`] must be
    /// [`MAX_OFFLOAD_FRAME_LEN`] bytes.
    pub fn open_with_offloads(name: &str) -> io::Result<TapDevice> {
        let file = attach_checked(name, IFF_TAP_FLAGS | libc::IFF_VNET_HDR as libc::c_short)?;
        set_vnet_header(&file).map_err(|e| explain_offload_error(name, "TUNSETVNETHDRSZ", e))?;
        // The kernel refuses USO on kernels without it (EINVAL); that only means UDP
        // super-frames get segmented in software before we write them.
        let udp_segmentation = set_offload(&file, RECV_OFFLOADS | USO).is_ok();
        set_offload(&file, RECV_OFFLOADS)
            .map_err(|e| explain_offload_error(name, "TUNSETOFFLOAD", e))?;
        let recv = OffloadSet {
            partial_checksum: true,
            tcp_v4: true,
            tcp_v6: true,
            tcp_ecn: true,
            udp_l4: false,
        };
        let offloads = Offloads {
            send: OffloadSet {
                udp_l4: udp_segmentation,
                ..recv
            },
            recv,
            max_frame_len: MAX_OFFLOAD_FRAME_LEN,
        };
        let vnet = Vnet {
            offloads,
            scratch: vec![0; MAX_OFFLOAD_FRAME_LEN],
            pending: VecDeque::new(),
        };
        TapDevice::finish(file, name, Some(vnet))
    }

    fn finish(file: File, name: &str, vnet: Option<Vnet>) -> io::Result<TapDevice> {
        set_nonblocking(&file)?;
        let mtu = read_mtu(name).unwrap_or(DEFAULT_MTU);
        Ok(TapDevice {
            file,
            name: name.to_string(),
            mtu,
            vnet,
        })
    }

    /// The interface name, as the kernel knows it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Device for TapDevice {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            mtu: self.mtu,
            max_burst: MAX_BURST,
        }
    }

    fn recv(&mut self, _now: Duration, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if buf.is_empty() {
            // A zero-length read returns 0 without consuming a frame: callers would spin.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TAP recv needs a non-empty buffer",
            ));
        }
        match self.vnet.as_mut() {
            None => read_plain(&self.file, buf),
            Some(vnet) => vnet.recv_wire_frame(&self.file, buf),
        }
    }

    fn send(&mut self, _now: Duration, frame: &[u8]) -> io::Result<()> {
        if self.vnet.is_some() {
            let header = FrameOffload::NONE.emit();
            self.write_whole(&[IoSlice::new(&header), IoSlice::new(frame)])
        } else {
            self.write_whole(&[IoSlice::new(frame)])
        }
    }

    // The default `recv_batch` already loops `recv` until EAGAIN or a full batch and keeps the
    // frames read before an error; the TAP has no multi-frame read to do better. With offloads
    // one read moves up to 64 KB already.

    /// Frames cut from a super-frame by a plain `recv` are waiting: the fd will not say so.
    fn poll_at(&self) -> Option<Duration> {
        self.vnet
            .as_ref()
            .filter(|vnet| !vnet.pending.is_empty())
            .map(|_| Duration::ZERO)
    }

    fn offloads(&self) -> Offloads {
        self.vnet
            .as_ref()
            .map_or(Offloads::NONE, |vnet| vnet.offloads)
    }

    fn recv_offload(
        &mut self,
        now: Duration,
        buf: &mut [u8],
    ) -> io::Result<Option<(usize, FrameOffload)>> {
        let Some(vnet) = self.vnet.as_mut() else {
            return Ok(self.recv(now, buf)?.map(|len| (len, FrameOffload::NONE)));
        };
        if buf.len() < MAX_OFFLOAD_FRAME_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "TAP recv_offload needs a {MAX_OFFLOAD_FRAME_LEN}-byte buffer, got {}",
                    buf.len()
                ),
            ));
        }
        // Wire frames left over from a plain `recv` go first, to keep the order.
        if let Some(frame) = vnet.pending.pop_front() {
            return Ok(Some((copy_truncated(&frame, buf), FrameOffload::NONE)));
        }
        read_with_header(&self.file, buf)
    }

    fn send_offload(
        &mut self,
        now: Duration,
        frame: &[u8],
        offload: &FrameOffload,
    ) -> io::Result<()> {
        match &self.vnet {
            Some(vnet) if vnet.offloads.send.allows(offload) => {
                let header = offload.emit();
                self.write_whole(&[IoSlice::new(&header), IoSlice::new(frame)])
            }
            _ => offload::send_in_software(self, now, frame, offload),
        }
    }
}

impl TapDevice {
    /// Writes one frame (and its header) with one system call.
    fn write_whole(&self, parts: &[IoSlice<'_>]) -> io::Result<()> {
        let total: usize = parts.iter().map(|part| part.len()).sum();
        loop {
            match (&self.file).write_vectored(parts) {
                Ok(written) if written == total => return Ok(()),
                // A TAP write takes the whole frame or fails; anything else is a kernel surprise.
                Ok(written) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("TAP `{}` took {written} of {total} bytes", self.name),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Vnet {
    /// A plain `recv` on an offloading TAP: one wire frame, its checksum complete.
    fn recv_wire_frame(&mut self, file: &File, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if let Some(frame) = self.pending.pop_front() {
            return Ok(Some(copy_truncated(&frame, buf)));
        }
        let Some((len, offload)) = read_with_header(file, &mut self.scratch)? else {
            return Ok(None);
        };
        let frame = self.scratch.get_mut(..len).unwrap_or_default();
        if offload.gso.is_none() {
            if let Checksum::Partial { start, offset } = offload.checksum {
                complete_checksum(frame, start, offset).map_err(invalid_data)?;
            }
            return Ok(Some(copy_truncated(frame, buf)));
        }
        let mut segments = offload::segment(frame, &offload)
            .map_err(invalid_data)?
            .into_iter();
        let first = segments.next().unwrap_or_default();
        self.pending.extend(segments);
        Ok(Some(copy_truncated(&first, buf)))
    }
}

/// Reads one frame without a header (a TAP without `IFF_VNET_HDR`).
fn read_plain(file: &File, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        match (&*file).read(buf) {
            Ok(len) => return Ok(Some(len)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// Reads one virtio-net header and the frame behind it into `buf`, with one system call.
/// A header we cannot understand is `InvalidData`; the frame is gone, the device stays usable.
fn read_with_header(file: &File, buf: &mut [u8]) -> io::Result<Option<(usize, FrameOffload)>> {
    let mut header = [0u8; VNET_HDR_LEN];
    let read = loop {
        let mut parts = [IoSliceMut::new(&mut header), IoSliceMut::new(buf)];
        match (&*file).read_vectored(&mut parts) {
            Ok(read) => break read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
    };
    let Some(len) = read.checked_sub(VNET_HDR_LEN) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("TAP read of {read} bytes: shorter than a virtio-net header"),
        ));
    };
    let offload = FrameOffload::parse(&header).map_err(invalid_data)?;
    offload.check_frame(len).map_err(invalid_data)?;
    Ok(Some((len, offload)))
}

fn copy_truncated(frame: &[u8], buf: &mut [u8]) -> usize {
    let len = frame.len().min(buf.len());
    buf[..len].copy_from_slice(&frame[..len]);
    len
}

fn invalid_data(error: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

impl AsRawFd for TapDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl AsFd for TapDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// `TUNSETIFF` flags of every attach: a TAP, frames without the packet-info prefix.
const IFF_TAP_FLAGS: libc::c_short = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;

/// Checks that `name` is an existing persistent TAP, attaches to it with `flags`, and checks
/// again that what we attached to is that device.
fn attach_checked(name: &str, flags: libc::c_short) -> io::Result<File> {
    validate_name(name)?;
    let tun_flags = read_tun_flags(name)?;
    if tun_flags & IFF_TUN != 0 || tun_flags & IFF_TAP == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{name}` is a TUN (IP-level) device, not a TAP (Ethernet) device \
                 (tun_flags {tun_flags:#x}); {SETUP_HINT}"
            ),
        ));
    }
    if tun_flags & IFF_PERSIST == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TAP `{name}` is not persistent: another process created it and owns it; \
                 {SETUP_HINT}"
            ),
        ));
    }

    let (file, attached_name) = attach(name, flags).map_err(|e| explain_attach_error(name, e))?;

    // Between the check above and TUNSETIFF the persistent device could have been deleted,
    // in which case the kernel just created a new, non-persistent one for us. Dropping
    // `file` on the error path removes that stray device again.
    if attached_name != name || read_tun_flags(name)? & IFF_PERSIST == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("TAP `{name}` disappeared while attaching; {SETUP_HINT}"),
        ));
    }
    Ok(file)
}

/// `struct ifreq` as `TUNSETIFF` reads it: the name, then the flags member of the union,
/// padded to the kernel's 40 bytes (its largest union member is 24 bytes on 64-bit targets).
#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _union_rest: [u8; 22],
}

/// Opens `/dev/net/tun` and attaches it to `name` with `TUNSETIFF`; returns the file and the
/// name the kernel reports back.
fn attach(name: &str, flags: libc::c_short) -> io::Result<(File, String)> {
    let file = File::options()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mut request = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags,
        _union_rest: [0; 22],
    };
    // `validate_name` limits names to IFNAMSIZ - 1 bytes, so the terminating NUL stays.
    for (slot, byte) in request.name.iter_mut().zip(name.bytes()) {
        *slot = byte;
    }
    // SAFETY: the fd is open for the call; TUNSETIFF reads and writes one `struct ifreq`, and
    // `request` is a live, writable, correctly laid out (repr(C), 40 bytes) one.
    if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = request
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(request.name.len());
    let attached = String::from_utf8_lossy(&request.name[..len]).into_owned();
    Ok((file, attached))
}

/// `TUNSETOFFLOAD`: which offloaded frames the kernel may hand us.
fn set_offload(file: &File, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: the fd is open for the call; TUNSETOFFLOAD takes its argument by value.
    if unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            libc::TUNSETOFFLOAD,
            libc::c_ulong::from(flags),
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the 10-byte, little-endian virtio-net header (see [`crate::offload`]). The size
/// belongs to the persistent device, so it is set even though 10 is the kernel's default.
fn set_vnet_header(file: &File) -> io::Result<()> {
    let size = VNET_HDR_LEN as libc::c_int;
    // SAFETY: the fd is open for the call; TUNSETVNETHDRSZ reads one int through the pointer,
    // which points at a live `c_int`.
    if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETVNETHDRSZ, &size) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let little_endian: libc::c_int = 1;
    // SAFETY: as above; TUNSETVNETLE reads one int.
    let result = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETVNETLE, &little_endian) };
    // On a little-endian host the legacy header is little-endian anyway, so a kernel without
    // TUNSETVNETLE is fine there.
    if result < 0 && cfg!(target_endian = "big") {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn explain_offload_error(name: &str, what: &str, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!(
            "the kernel refused {what} on TAP `{name}` ({e}); the virtio-net header and \
             offload ioctls of a TAP exist since Linux 4.2"
        ),
    )
}

/// Rejects names the kernel would reinterpret (`%d` templates) or that escape sysfs paths.
fn validate_name(name: &str) -> io::Result<()> {
    let bad = name.is_empty()
        || name.len() > MAX_IFNAME_LEN
        || name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b'%' || b == b':' || b.is_ascii_whitespace() || b == 0);
    if bad {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{name}` is not a valid interface name (1 to {MAX_IFNAME_LEN} bytes, no `/`, \
                 `%`, `:` or spaces)"
            ),
        ));
    }
    Ok(())
}

fn sysfs_dir(name: &str) -> PathBuf {
    PathBuf::from("/sys/class/net").join(name)
}

/// Reads the `tun_flags` sysfs attribute, explaining what is wrong when it is missing.
fn read_tun_flags(name: &str) -> io::Result<u32> {
    let dir = sysfs_dir(name);
    if !dir.exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("TAP device `{name}` does not exist in this network namespace; {SETUP_HINT}"),
        ));
    }
    let path = dir.join("tun_flags");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "`{name}` exists but is not a TUN/TAP device (no {}); {SETUP_HINT}",
                    path.display()
                ),
            ))
        }
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("reading {}: {e}", path.display()),
            ))
        }
    };
    let trimmed = text.trim();
    let hex = trimmed.strip_prefix("0x").unwrap_or(trimmed);
    u32::from_str_radix(hex, 16).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} holds `{trimmed}`, not a hex number", path.display()),
        )
    })
}

fn read_mtu(name: &str) -> Option<usize> {
    fs::read_to_string(sysfs_dir(name).join("mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Turns the errno of opening `/dev/net/tun` or of `TUNSETIFF` into a message an operator can
/// act on, keeping the original error kind.
fn explain_attach_error(name: &str, e: io::Error) -> io::Error {
    let why = match e.raw_os_error() {
        Some(libc::EBUSY) => format!(
            "TAP `{name}` is already attached to another process (only one may use it; is \
             another ustackd running?)"
        ),
        Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "not permitted to attach to TAP `{name}` ({e}): run as root, or create the TAP with \
             `ip tuntap add dev {name} mode tap user <you>`"
        ),
        Some(libc::ENOENT) | Some(libc::ENODEV) => {
            format!("cannot open /dev/net/tun ({e}): is the tun kernel module loaded?")
        }
        Some(libc::EINVAL) => format!(
            "the kernel refused to attach to TAP `{name}` ({e}); a multi-queue TAP is not \
             supported, recreate it with `ip tuntap add dev {name} mode tap`"
        ),
        _ => format!("attaching to TAP `{name}`: {e}"),
    };
    io::Error::new(e.kind(), why)
}

fn set_nonblocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: `fd` is open for the lifetime of `file`; F_GETFL takes no pointer argument.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above; F_SETFL takes an int argument.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_names_the_kernel_would_reinterpret() {
        for name in ["", "tap%d", "a/b", "..", "sixteen-chars-xx", "tap 0"] {
            let err = validate_name(name).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name:?}");
        }
        validate_name("tap0").unwrap();
        validate_name("fifteen-chars-x").unwrap();
    }

    #[test]
    fn missing_device_error_says_how_to_create_it() {
        let err = TapDevice::open("ustk-nosuch0").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let msg = err.to_string();
        assert!(msg.contains("does not exist"), "{msg}");
        assert!(msg.contains("scripts/netns.sh up"), "{msg}");
        assert!(msg.contains("ip netns exec ustack"), "{msg}");
    }

    #[test]
    fn non_tun_device_is_refused_without_creating_anything() {
        // `lo` exists in every namespace and is not a TUN/TAP device.
        let err = TapDevice::open("lo").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("not a TUN/TAP device"), "{err}");
    }
}
