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

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

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
}

impl TapDevice {
    /// Attaches to the existing persistent TAP `name` in the caller's network namespace.
    ///
    /// Errors name what is wrong: the device is missing (`NotFound`), is not a TAP or not
    /// persistent (`InvalidInput`), is held by another process (`ResourceBusy`), or may not be
    /// opened by this user (`PermissionDenied`).
    pub fn open(name: &str) -> io::Result<TapDevice> {
        validate_name(name)?;
        let flags = read_tun_flags(name)?;
        if flags & IFF_TUN != 0 || flags & IFF_TAP == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "`{name}` is a TUN (IP-level) device, not a TAP (Ethernet) device \
                     (tun_flags {flags:#x}); {SETUP_HINT}"
                ),
            ));
        }
        if flags & IFF_PERSIST == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "TAP `{name}` is not persistent: another process created it and owns it; \
                     {SETUP_HINT}"
                ),
            ));
        }

        let iface = tun_tap::Iface::without_packet_info(name, tun_tap::Mode::Tap)
            .map_err(|e| explain_attach_error(name, e))?;
        let attached_name = iface.name().to_string();
        // SAFETY: `into_raw_fd` hands over sole ownership of an open descriptor, which the
        // `OwnedFd` takes and will close exactly once.
        let fd = unsafe { OwnedFd::from_raw_fd(iface.into_raw_fd()) };
        let file = File::from(fd);

        // Between the check above and TUNSETIFF the persistent device could have been deleted,
        // in which case the kernel just created a new, non-persistent one for us. Dropping
        // `file` on the error path removes that stray device again.
        if attached_name != name || read_tun_flags(name)? & IFF_PERSIST == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("TAP `{name}` disappeared while attaching; {SETUP_HINT}"),
            ));
        }
        set_nonblocking(&file)?;
        let mtu = read_mtu(name).unwrap_or(DEFAULT_MTU);
        Ok(TapDevice {
            file,
            name: attached_name,
            mtu,
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
        loop {
            match (&self.file).read(buf) {
                Ok(len) => return Ok(Some(len)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    fn send(&mut self, _now: Duration, frame: &[u8]) -> io::Result<()> {
        loop {
            match (&self.file).write(frame) {
                Ok(written) if written == frame.len() => return Ok(()),
                // A TAP write takes the whole frame or fails; anything else is a kernel surprise.
                Ok(written) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!(
                            "TAP `{}` took {written} of {} bytes",
                            self.name,
                            frame.len()
                        ),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    // The default `recv_batch` already loops `recv` until EAGAIN or a full batch and keeps the
    // frames read before an error; the TAP has no multi-frame read to do better.
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
