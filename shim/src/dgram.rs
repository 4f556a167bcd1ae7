//! UDP sockets. The fd is the program's end of a SOCK_SEQPACKET pair (see the daemon's
//! `sockets::datagram`): one record per datagram, each behind a [`DatagramHeader`] that this
//! module adds on the way out (the destination) and strips on the way in (the source). The
//! kernel keeps boundaries, MSG_PEEK, MSG_TRUNC, blocking, SO_RCVTIMEO and readiness; what a
//! UDP socket does differently is done here:
//!
//! - Linux's send-side checks (EMSGSIZE, EDESTADDRREQ, EINVAL/EAFNOSUPPORT for addresses);
//! - an error an ICMP message left for a connected socket arrives as an `Error` record and is
//!   reported by the next receive, send or SO_ERROR, and as POLLERR by `poll`.

use std::net::SocketAddrV4;

use libc::{c_int, c_void, iovec, sockaddr, socklen_t, ssize_t};
use ustack::control::{DatagramHeader, Family, Request, Response, Role, DATAGRAM_HEADER_LEN};
use ustack::udp::MAX_PAYLOAD;

use crate::addr::{self, SOCKADDR_IN6_LEN, SOCKADDR_IN_LEN};
use crate::conn;
use crate::guard::{Fail, OpResult};
use crate::real;
use crate::table::{self, Entry};

/// The fd's table entry if it is a ustack UDP socket.
pub fn entry(fd: c_int) -> Option<Entry> {
    table::get(fd).filter(|e| e.kind == ustack::control::SockKind::Dgram)
}

/// Flags a UDP receive honours that the pair can apply as they are.
const RECV_FLAGS: c_int =
    libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_TRUNC | libc::MSG_CMSG_CLOEXEC;

/// The header at the head of the fd's queue, without taking it.
fn peek_header(fd: c_int) -> Option<(DatagramHeader, usize)> {
    let mut header = [0u8; DATAGRAM_HEADER_LEN];
    // SAFETY: receiving into our own buffer; MSG_TRUNC makes the result the record's length.
    let n = unsafe {
        real::recv(
            fd,
            header.as_mut_ptr().cast(),
            header.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_TRUNC,
        )
    };
    let len = usize::try_from(n).ok()?;
    Some((DatagramHeader::parse(&header)?, len))
}

/// Drops the record at the head of the queue.
fn drop_head(fd: c_int) {
    let mut header = [0u8; DATAGRAM_HEADER_LEN];
    // SAFETY: receiving into our own buffer.
    unsafe {
        real::recv(
            fd,
            header.as_mut_ptr().cast(),
            header.len(),
            libc::MSG_DONTWAIT,
        )
    };
}

/// The pending error at the head of the queue, taken (Linux clears `sk_err` once reported).
pub fn take_head_error(fd: c_int) -> Option<c_int> {
    match peek_header(fd) {
        Some((DatagramHeader::Error(errno), _)) => {
            drop_head(fd);
            Some(errno)
        }
        _ => None,
    }
}

/// Whether the head of the queue is an error record, and whether it is all that is queued.
pub fn head_error_state(fd: c_int) -> Option<bool> {
    match peek_header(fd)? {
        (DatagramHeader::Error(_), len) => {
            let mut queued: c_int = 0;
            // SAFETY: SIOCINQ writes one int (all bytes queued on a SEQPACKET socket).
            let rc =
                unsafe { real::ioctl(fd, libc::FIONREAD, std::ptr::addr_of_mut!(queued).cast()) };
            Some(rc == 0 && usize::try_from(queued).unwrap_or(0) <= len)
        }
        _ => None,
    }
}

/// FIONREAD on UDP: the size of the first datagram's payload, 0 if none.
pub fn first_datagram_len(fd: c_int) -> c_int {
    match peek_header(fd) {
        Some((DatagramHeader::From(_), len)) => {
            c_int::try_from(len.saturating_sub(DATAGRAM_HEADER_LEN)).unwrap_or(c_int::MAX)
        }
        _ => 0,
    }
}

/// Reads a sendto()/sendmsg() destination as Linux's `udp_sendmsg`/`udpv6_sendmsg` do.
/// `Ok(None)`: no address (use the connected peer).
fn parse_destination(
    family: Family,
    name: *const sockaddr,
    len: socklen_t,
) -> OpResult<Option<SocketAddrV4>> {
    if name.is_null() {
        return Ok(None);
    }
    let len = len as usize;
    let bytes = addr::read_user(name.cast(), len.min(SOCKADDR_IN6_LEN))?;
    let sa_family = bytes
        .get(..2)
        .map_or(-1, |b| c_int::from(u16::from_ne_bytes([b[0], b[1]])));
    let ipv4 = |bytes: &[u8]| -> OpResult<Option<SocketAddrV4>> {
        if bytes.len() < SOCKADDR_IN_LEN {
            return Err(Fail::Errno(libc::EINVAL));
        }
        let port = u16::from_be_bytes([bytes[2], bytes[3]]);
        let ip = std::net::Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
        Ok(Some(SocketAddrV4::new(ip, port)))
    };
    match family {
        Family::Inet => {
            if len < SOCKADDR_IN_LEN {
                return Err(Fail::Errno(libc::EINVAL));
            }
            match sa_family {
                libc::AF_INET | libc::AF_UNSPEC => ipv4(&bytes),
                _ => Err(Fail::Errno(libc::EAFNOSUPPORT)),
            }
        }
        Family::Inet6 => match sa_family {
            _ if len < 2 => Err(Fail::Errno(libc::EINVAL)),
            libc::AF_INET => ipv4(&bytes),
            libc::AF_UNSPEC => Ok(None),
            libc::AF_INET6 => {
                match addr::parse_connect(Family::Inet6, name, len as socklen_t)? {
                    addr::Target::V4 { addr, .. } => Ok(Some(addr)),
                    // `::` (Linux: the loopback ::1) and other native IPv6 destinations: the
                    // stack has no IPv6 route.
                    _ => Err(Fail::Errno(libc::ENETUNREACH)),
                }
            }
            _ => Err(Fail::Errno(libc::EINVAL)),
        },
    }
}

/// Reads `count` iovecs from the program's memory.
pub fn read_iovecs(iov: *const iovec, count: usize) -> OpResult<Vec<iovec>> {
    if count > libc::UIO_MAXIOV as usize {
        return Err(Fail::Errno(libc::EINVAL));
    }
    let size = std::mem::size_of::<iovec>();
    let bytes = addr::read_user(iov.cast(), count * size)?;
    Ok(bytes
        .chunks_exact(size)
        // SAFETY: each chunk holds the bytes of one iovec copied from the caller.
        .map(|chunk| unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast()) })
        .collect())
}

/// sendto/sendmsg/send/write on a UDP socket; the datagram is the concatenation of `iov`.
pub fn send(
    fd: c_int,
    entry: Entry,
    iov: &[iovec],
    flags: c_int,
    name: *const sockaddr,
    name_len: socklen_t,
) -> OpResult<ssize_t> {
    let total: usize = iov.iter().map(|v| v.iov_len).sum();
    if total > 0xffff {
        return Err(Fail::Errno(libc::EMSGSIZE));
    }
    if flags & libc::MSG_OOB != 0 {
        return Err(Fail::Errno(libc::EOPNOTSUPP));
    }
    let destination = parse_destination(entry.family, name, name_len)?;
    if let Some(dst) = destination {
        if dst.port() == 0 {
            return Err(Fail::Errno(libc::EINVAL));
        }
    }
    let header = match (destination, entry.role) {
        (Some(dst), _) => DatagramHeader::To(dst),
        (None, Role::ConnectedDatagram) => DatagramHeader::ToPeer,
        (None, _) => return Err(Fail::Errno(libc::EDESTADDRREQ)),
    };
    if total > MAX_PAYLOAD {
        return Err(Fail::Errno(libc::EMSGSIZE));
    }
    if entry.role == Role::Datagram {
        // Bind now, so that getsockname shows the port as soon as sendto returns.
        match conn::call(&Request::Autobind, &[fd]) {
            Ok(Response::Addr(_)) => table::set_role(fd, Role::BoundDatagram),
            Ok(Response::Errno(errno)) => return Err(Fail::Errno(errno)),
            _ => return Err(Fail::Errno(libc::EIO)),
        }
    }
    // A pending error fails this send and is cleared, as `sock_alloc_send_pskb` does.
    if entry.role == Role::ConnectedDatagram {
        if let Some(errno) = take_head_error(fd) {
            return Err(Fail::Errno(errno));
        }
    }
    let header = header.to_bytes();
    let mut parts = Vec::with_capacity(iov.len() + 1);
    parts.push(iovec {
        iov_base: header.as_ptr() as *mut c_void,
        iov_len: header.len(),
    });
    parts.extend_from_slice(iov);
    // SAFETY: msghdr is plain data; zeroed is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = parts.as_mut_ptr();
    msg.msg_iovlen = parts.len();
    // The kernel's UDP raises no SIGPIPE.
    let flags = (flags & libc::MSG_DONTWAIT) | libc::MSG_NOSIGNAL;
    // SAFETY: our header and the program's own buffers, which the kernel checks.
    let n = unsafe { real::sendmsg(fd, &msg, flags) };
    if n < 0 {
        return Err(Fail::Errno(real::errno()));
    }
    Ok((n - DATAGRAM_HEADER_LEN as ssize_t).max(0))
}

/// What a receive hands back besides the length.
pub struct Received {
    pub len: ssize_t,
    pub from: Option<SocketAddrV4>,
    /// The kernel's msg_flags (MSG_TRUNC when the datagram was cut).
    pub msg_flags: c_int,
}

/// recv/recvfrom/recvmsg/read on a UDP socket, into `iov`.
pub fn recv(fd: c_int, iov: &[iovec], flags: c_int) -> OpResult<Received> {
    if flags & libc::MSG_ERRQUEUE != 0 {
        // No IP_RECVERR queue: Linux says EAGAIN when it is empty.
        return Err(Fail::Errno(libc::EAGAIN));
    }
    let mut header = [0u8; DATAGRAM_HEADER_LEN];
    let mut parts = Vec::with_capacity(iov.len() + 1);
    parts.push(iovec {
        iov_base: header.as_mut_ptr().cast(),
        iov_len: header.len(),
    });
    parts.extend_from_slice(iov);
    // SAFETY: msghdr is plain data; zeroed is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = parts.as_mut_ptr();
    msg.msg_iovlen = parts.len();
    // SAFETY: our header buffer and the program's own buffers, which the kernel checks.
    let n = unsafe { real::recvmsg(fd, &mut msg, flags & RECV_FLAGS) };
    if n < 0 {
        return Err(Fail::Errno(real::errno()));
    }
    let n = n.unsigned_abs();
    if n == 0 {
        // Our end was shut down for reading, or the daemon went away.
        return Ok(Received {
            len: 0,
            from: None,
            msg_flags: 0,
        });
    }
    match DatagramHeader::parse(&header) {
        Some(DatagramHeader::From(from)) if n >= DATAGRAM_HEADER_LEN => Ok(Received {
            len: ssize_t::try_from(n - DATAGRAM_HEADER_LEN).unwrap_or(ssize_t::MAX),
            from: Some(from),
            msg_flags: msg.msg_flags & libc::MSG_TRUNC,
        }),
        Some(DatagramHeader::Error(errno)) => {
            if flags & libc::MSG_PEEK != 0 {
                drop_head(fd);
            }
            Err(Fail::Errno(errno))
        }
        _ => Err(Fail::Errno(libc::EIO)),
    }
}

/// Stores a receive's source address for recvfrom (`name` may be null).
pub fn store_source(
    entry: Entry,
    from: Option<SocketAddrV4>,
    name: *mut sockaddr,
    name_len: *mut socklen_t,
) -> OpResult<()> {
    if let Some(from) = from {
        if !name.is_null() {
            addr::store_name(entry.family, from, name, name_len, true)?;
        }
    }
    Ok(())
}

/// recvmsg: the datagram into the message's iovecs, the source into `msg_name`, and
/// `msg_namelen`, `msg_controllen` (no control messages) and `msg_flags` written back.
pub fn recvmsg(fd: c_int, entry: Entry, msg: *mut libc::msghdr, flags: c_int) -> OpResult<ssize_t> {
    if msg.is_null() {
        return Err(Fail::Errno(libc::EFAULT));
    }
    let size = std::mem::size_of::<libc::msghdr>();
    let bytes = addr::read_user(msg.cast(), size)?;
    // SAFETY: `bytes` holds a full msghdr copied from the caller.
    let mut copy: libc::msghdr = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let iov = read_iovecs(copy.msg_iov, copy.msg_iovlen)?;
    let received = recv(fd, &iov, flags)?;
    if !copy.msg_name.is_null() {
        if let Some(from) = received.from {
            let encoded = addr::encode(entry.family, from);
            let room = (copy.msg_namelen as usize).min(encoded.len());
            addr::write_user(copy.msg_name, encoded.get(..room).unwrap_or(&[]))?;
            copy.msg_namelen = encoded.len() as socklen_t;
        } else {
            copy.msg_namelen = 0;
        }
    }
    copy.msg_controllen = 0;
    copy.msg_flags = received.msg_flags;
    // SAFETY: viewing our own msghdr as bytes to copy it back.
    let out = unsafe { std::slice::from_raw_parts(std::ptr::from_ref(&copy).cast::<u8>(), size) };
    addr::write_user(msg.cast(), out)?;
    Ok(received.len)
}

/// sendmsg: the message's iovecs as one datagram to `msg_name` (or the peer).
pub fn sendmsg(
    fd: c_int,
    entry: Entry,
    msg: *const libc::msghdr,
    flags: c_int,
) -> OpResult<ssize_t> {
    if msg.is_null() {
        return Err(Fail::Errno(libc::EFAULT));
    }
    let bytes = addr::read_user(msg.cast(), std::mem::size_of::<libc::msghdr>())?;
    // SAFETY: `bytes` holds a full msghdr copied from the caller.
    let copy: libc::msghdr = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let iov = read_iovecs(copy.msg_iov, copy.msg_iovlen)?;
    let name = if copy.msg_namelen == 0 {
        std::ptr::null()
    } else {
        copy.msg_name.cast_const().cast()
    };
    send(fd, entry, &iov, flags, name, copy.msg_namelen)
}

/// One iovec over a plain buffer.
pub fn one_iovec(buf: *const c_void, len: usize) -> [iovec; 1] {
    [iovec {
        iov_base: buf.cast_mut(),
        iov_len: len,
    }]
}

/// SO_ERROR: the error at the head of the queue, or one the daemon still holds.
pub fn take_error(fd: c_int) -> OpResult<c_int> {
    if let Some(errno) = take_head_error(fd) {
        return Ok(errno);
    }
    match conn::call(&Request::TakeError, &[fd]) {
        Ok(Response::Values(v)) => Ok(v
            .first()
            .and_then(|&e| c_int::try_from(e).ok())
            .unwrap_or(0)),
        Ok(_) => Ok(0),
        Err(_) => Err(Fail::Errno(libc::ENETDOWN)),
    }
}

/// send/sendto/write on a UDP socket.
pub fn send_buf(
    fd: c_int,
    entry: Entry,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    name: *const sockaddr,
    name_len: socklen_t,
) -> OpResult<ssize_t> {
    send(fd, entry, &one_iovec(buf, len), flags, name, name_len)
}

/// recv/recvfrom/read on a UDP socket.
pub fn recv_buf(
    fd: c_int,
    entry: Entry,
    buf: *mut c_void,
    len: usize,
    flags: c_int,
    name: *mut sockaddr,
    name_len: *mut socklen_t,
) -> OpResult<ssize_t> {
    let received = recv(fd, &one_iovec(buf, len), flags)?;
    store_source(entry, received.from, name, name_len)?;
    Ok(received.len)
}

/// readv/writev's iovec count, checked as the kernel does.
pub fn iovec_count(count: c_int) -> OpResult<usize> {
    usize::try_from(count).map_err(|_| Fail::Errno(libc::EINVAL))
}

/// recv/read on a UDP socket (no source address wanted).
pub fn read_buf(
    fd: c_int,
    entry: Entry,
    buf: *mut c_void,
    len: usize,
    flags: c_int,
) -> OpResult<ssize_t> {
    recv_buf(
        fd,
        entry,
        buf,
        len,
        flags,
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    )
}

/// sendmmsg/recvmmsg on a UDP socket: one message at a time. Returns how many were done;
/// an error only if the first one failed (as the kernel does).
pub fn each_message(
    msgs: *mut libc::mmsghdr,
    count: usize,
    mut one: impl FnMut(*mut libc::msghdr, usize) -> OpResult<ssize_t>,
) -> OpResult<c_int> {
    let size = std::mem::size_of::<libc::mmsghdr>();
    let count = count.min(libc::UIO_MAXIOV as usize);
    let mut done: usize = 0;
    while done < count {
        // The msghdr at the start of entry `done`, and its msg_len right after it: pointer
        // arithmetic only; the memory is read and written through the EFAULT-safe copies.
        let entry = msgs.cast::<u8>().wrapping_add(done * size);
        let result = one(entry.cast(), done);
        let len = match result {
            Ok(len) => len,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        let len = libc::c_uint::try_from(len).unwrap_or(0);
        let len_at = entry.wrapping_add(std::mem::offset_of!(libc::mmsghdr, msg_len));
        addr::write_user(len_at.cast(), &len.to_ne_bytes())?;
        done += 1;
    }
    Ok(c_int::try_from(done).unwrap_or(c_int::MAX))
}
