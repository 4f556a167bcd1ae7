//! The few system calls the application-socket layer makes on AF_UNIX descriptors, each a
//! small safe wrapper.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{
    self, sockopt, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};
use nix::sys::stat::{fstat, SFlag};

/// The inode number of a socket descriptor, which names the socket whatever fd number or
/// process holds it. `None` if `fd` is not a socket.
pub fn socket_inode(fd: BorrowedFd<'_>) -> Option<u64> {
    let stat = fstat(fd).ok()?;
    (SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFSOCK)
        .then_some(stat.st_ino)
}

pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// A new AF_UNIX stream pair, both ends close-on-exec and blocking.
pub fn stream_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socket::socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// A new unconnected AF_UNIX stream socket, close-on-exec (what a fresh TCP socket is for
/// the program until it listens or connects: it polls like one).
pub fn unconnected_stream() -> io::Result<OwnedFd> {
    Ok(socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}

/// A new AF_UNIX SOCK_SEQPACKET pair (one record per datagram), close-on-exec and blocking.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// Receives one record without blocking: its length in `buf`, and whether it was longer.
/// `Ok((0, false))` is end of stream.
pub fn recv_record(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<(usize, bool), Errno> {
    loop {
        let mut iov = [io::IoSliceMut::new(buf)];
        match socket::recvmsg::<()>(fd.as_raw_fd(), &mut iov, None, MsgFlags::MSG_DONTWAIT) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(msg) => return Ok((msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC))),
        }
    }
}

/// Sends `parts` as one record, without blocking and without SIGPIPE.
pub fn send_record(fd: BorrowedFd<'_>, parts: &[&[u8]]) -> Result<usize, Errno> {
    let iov: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    loop {
        match socket::sendmsg::<()>(
            fd.as_raw_fd(),
            &iov,
            &[],
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Bytes waiting to be read (FIONREAD).
pub fn bytes_readable(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut count: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int to the pointer, which points at a live c_int.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut count) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(count).unwrap_or(0))
}

/// Reads up to `buf.len()` bytes without blocking. `Ok(0)` is end of stream.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match socket::recv(fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Copies the first byte waiting without consuming it.
pub fn peek_byte(fd: BorrowedFd<'_>) -> Result<Option<u8>, Errno> {
    let mut byte = [0u8; 1];
    loop {
        match socket::recv(
            fd.as_raw_fd(),
            &mut byte,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_PEEK,
        ) {
            Err(Errno::EINTR) => continue,
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(byte[0])),
            Err(e) => return Err(e),
        }
    }
}

/// Writes without blocking and without SIGPIPE.
pub fn write(fd: BorrowedFd<'_>, data: &[u8]) -> Result<usize, Errno> {
    loop {
        match socket::send(
            fd.as_raw_fd(),
            data,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        ) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Sends `data` with `passed` attached (SCM_RIGHTS), without blocking.
pub fn send_with_fd(
    fd: BorrowedFd<'_>,
    data: &[u8],
    passed: BorrowedFd<'_>,
) -> Result<usize, Errno> {
    let fds = [passed.as_raw_fd()];
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(data)];
    loop {
        match socket::sendmsg::<()>(
            fd.as_raw_fd(),
            &iov,
            &cmsgs,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Reads and clears the socket's pending error (SO_ERROR); 0 if none.
pub fn take_socket_error(fd: BorrowedFd<'_>) -> i32 {
    socket::getsockopt(&fd, sockopt::SocketError).unwrap_or(0)
}

pub fn shutdown_write(fd: BorrowedFd<'_>) {
    let _ = socket::shutdown(fd.as_raw_fd(), socket::Shutdown::Write);
}

/// Reads and drops exactly `count` bytes that are known to be queued.
pub fn discard(fd: BorrowedFd<'_>, mut count: usize, scratch: &mut [u8]) -> Result<(), Errno> {
    while count > 0 {
        let want = count.min(scratch.len());
        let n = read(fd, scratch.get_mut(..want).unwrap_or(&mut []))?;
        if n == 0 {
            return Err(Errno::EPIPE);
        }
        count -= n;
    }
    Ok(())
}
