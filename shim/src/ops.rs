//! The socket operations behind the hooks, as functions returning `OpResult` (see `guard`):
//! `Err(Fail::Pass)` hands the call to libc unchanged.
//!
//! A ustack socket's fd is the program's end of an AF_UNIX stream socketpair (see the
//! daemon's `sockets` module): data calls on a connected socket go straight to the kernel;
//! everything that names addresses, options or state asks the daemon.

use std::net::SocketAddrV4;

use libc::{c_int, c_void, size_t, sockaddr, socklen_t, ssize_t};
use ustack::control::{
    AcceptRecord, Family, Request, Response, Role, SockKind, TcpInfoValues, ACCEPT_RECORD_LEN,
};

use crate::addr::{self, Target};
use crate::conn::{self, ConnError};
use crate::guard::{Fail, OpResult};
use crate::real;
use crate::table::{self, Entry};

/// TCP_CONGESTION names by the control protocol's numbers.
const CONGESTION_NAMES: [(&[u8], i64); 2] = [(b"cubic", 1), (b"reno", 2)];
/// Linux's TCP_CA_NAME_MAX.
const CA_NAME_MAX: usize = 16;

fn errno_of_conn(error: ConnError) -> Fail {
    match error {
        // The daemon went away: what the kernel says when the network is down.
        ConnError::NoDaemon(_) => Fail::Errno(libc::EAFNOSUPPORT),
        ConnError::Broken(_) | ConnError::NoReply(_) => Fail::Errno(libc::ENETDOWN),
    }
}

/// A request about socket `fd`; a stale pair is replaced and the request repeated once.
fn ask(fd: c_int, request: &Request) -> OpResult<Response> {
    let response = conn::call(request, &[fd]).map_err(errno_of_conn)?;
    match response {
        Response::Stale => {
            replace_pair(fd)?;
            conn::call(request, &[fd]).map_err(errno_of_conn)
        }
        Response::Error(_) => Err(Fail::Errno(libc::EINVAL)),
        other => Ok(other),
    }
}

fn expect_ok(response: Response) -> OpResult<()> {
    match response {
        Response::Ok | Response::Addr(_) | Response::Values(_) | Response::InProgress => Ok(()),
        Response::Errno(errno) => Err(Fail::Errno(errno)),
        _ => Err(Fail::Errno(libc::EIO)),
    }
}

/// The socket behind `fd`, or `Pass` for everything else.
fn ours(fd: c_int) -> OpResult<Entry> {
    table::lookup(fd).ok_or(Fail::Pass)
}

fn close_quietly(fd: c_int) {
    // SAFETY: closing a descriptor this module created.
    unsafe { real::close(fd) };
}

fn status_flags(fd: c_int) -> OpResult<c_int> {
    // SAFETY: F_GETFL has no argument.
    let flags = unsafe { real::fcntl(fd, libc::F_GETFL, 0) };
    if flags < 0 {
        return Err(Fail::Errno(real::errno()));
    }
    Ok(flags)
}

fn set_nonblocking(fd: c_int, on: bool) -> OpResult<()> {
    let flags = status_flags(fd)?;
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: F_SETFL with an int argument.
    if unsafe { real::fcntl(fd, libc::F_SETFL, flags as libc::c_ulong) } < 0 {
        return Err(Fail::Errno(real::errno()));
    }
    Ok(())
}

/// Gives `fd` the flags a new socket asked for: the daemon's descriptors arrive
/// close-on-exec and blocking.
fn apply_flags(fd: c_int, cloexec: bool, nonblocking: bool) -> OpResult<()> {
    if !cloexec {
        // SAFETY: F_SETFD on a descriptor we own.
        if unsafe { real::fcntl(fd, libc::F_SETFD, 0) } < 0 {
            return Err(Fail::Errno(real::errno()));
        }
    }
    if nonblocking {
        set_nonblocking(fd, true)?;
    }
    Ok(())
}

/// Puts `app` (a new program end from the daemon) in place of the socket's descriptor `fd`:
/// same number, same O_NONBLOCK and FD_CLOEXEC, same SO_RCVTIMEO/SO_SNDTIMEO (which live
/// on the descriptor's own socket). Consumes `app`.
fn install(fd: c_int, app: c_int) -> OpResult<()> {
    let result = install_over(fd, app);
    close_quietly(app);
    result
}

fn install_over(fd: c_int, app: c_int) -> OpResult<()> {
    let nonblocking = status_flags(fd)? & libc::O_NONBLOCK != 0;
    // SAFETY: F_GETFD has no argument.
    let cloexec = unsafe { real::fcntl(fd, libc::F_GETFD, 0) } & libc::FD_CLOEXEC != 0;
    apply_flags(app, true, nonblocking)?;
    for name in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        let mut tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        let mut len = std::mem::size_of::<libc::timeval>() as socklen_t;
        let tv_ptr = std::ptr::addr_of_mut!(tv);
        // SAFETY: getsockopt writes at most `len` bytes into `tv`; setsockopt reads them.
        unsafe {
            if real::getsockopt(fd, libc::SOL_SOCKET, name, tv_ptr.cast(), &mut len) == 0
                && (tv.tv_sec != 0 || tv.tv_usec != 0)
            {
                real::setsockopt(app, libc::SOL_SOCKET, name, tv_ptr.cast(), len);
            }
        }
    }
    let dup_flags = if cloexec { libc::O_CLOEXEC } else { 0 };
    // SAFETY: dup3 onto the program's descriptor, which names this very socket.
    if unsafe { real::dup3(app, fd, dup_flags) } < 0 {
        return Err(Fail::Errno(real::errno()));
    }
    crate::epoll::reregister(fd);
    Ok(())
}

/// Gives `fd` a fresh unconnected socket from the daemon (after its pair was closed to
/// deliver an error): Linux lets a program use the socket again.
fn replace_pair(fd: c_int) -> OpResult<()> {
    let app = match conn::call_fd(&Request::Replace, &[fd]).map_err(errno_of_conn)? {
        (Response::Ok, Some(app)) => app,
        (response, passed) => {
            if let Some(passed) = passed {
                close_quietly(passed);
            }
            return Err(Fail::Errno(match response {
                Response::Errno(errno) => errno,
                _ => libc::EIO,
            }));
        }
    };
    install(fd, app)?;
    table::set_role(fd, Role::Unconnected);
    Ok(())
}

/// Like `ask`, for requests whose reply may carry a new program end for the socket (listen
/// and connect give a fresh socket its pair): it is put in place of `fd` first.
fn ask_installing(fd: c_int, request: &Request) -> OpResult<Response> {
    let mut replaced = false;
    loop {
        let (response, passed) = conn::call_fd(request, &[fd]).map_err(errno_of_conn)?;
        if let Some(app) = passed {
            install(fd, app)?;
        }
        match response {
            Response::Stale if !replaced => {
                replace_pair(fd)?;
                replaced = true;
            }
            Response::Error(_) => return Err(Fail::Errno(libc::EINVAL)),
            other => return Ok(other),
        }
    }
}

// ----- socket, bind, listen, accept, connect -----

pub fn socket(domain: c_int, ty: c_int, protocol: c_int) -> OpResult<c_int> {
    let family = match domain {
        libc::AF_INET => Family::Inet,
        libc::AF_INET6 => Family::Inet6,
        _ => return Err(Fail::Pass),
    };
    let flags = ty & (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    let base = ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    // Raw sockets and invalid combinations stay with the kernel (which also produces the
    // errors for bad types, protocols and flags).
    let (kind, role) = match (base, protocol) {
        (libc::SOCK_STREAM, 0 | libc::IPPROTO_TCP) => (SockKind::Stream, Role::Unconnected),
        (libc::SOCK_DGRAM, 0 | libc::IPPROTO_UDP) => (SockKind::Dgram, Role::Datagram),
        _ => return Err(Fail::Pass),
    };
    let request = Request::Socket { family, kind };
    let app = match conn::call_fd(&request, &[]).map_err(errno_of_conn)? {
        (Response::Ok, Some(app)) => app,
        (response, passed) => {
            if let Some(passed) = passed {
                close_quietly(passed);
            }
            return Err(Fail::Errno(match response {
                Response::Errno(errno) => errno,
                _ => libc::EIO,
            }));
        }
    };
    let cloexec = flags & libc::SOCK_CLOEXEC != 0;
    let nonblocking = flags & libc::SOCK_NONBLOCK != 0;
    if let Err(e) = apply_flags(app, cloexec, nonblocking) {
        close_quietly(app);
        return Err(e);
    }
    table::insert(app, Entry { family, kind, role });
    Ok(app)
}

pub fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> OpResult<c_int> {
    let entry = ours(fd)?;
    let (addr, v4_mapped) = match addr::parse_bind(entry.family, addr, len)? {
        Target::V4 { addr, mapped } => (addr, mapped),
        Target::V6Native | Target::Unspec => return Err(Fail::Errno(libc::EADDRNOTAVAIL)),
    };
    expect_ok(ask(fd, &Request::Bind { addr, v4_mapped })?)?;
    if entry.role == Role::Datagram {
        table::set_role(fd, Role::BoundDatagram);
    }
    Ok(0)
}

pub fn listen(fd: c_int, backlog: c_int) -> OpResult<c_int> {
    let entry = ours(fd)?;
    let newly = entry.role != Role::Listener;
    expect_ok(ask_installing(fd, &Request::Listen { backlog })?)?;
    if newly {
        // Make the fd never writable, as a listening TCP socket is not (DESIGN.md): fill its
        // send buffer past the point where poll reports POLLOUT. The daemon never reads it.
        fill(fd)?;
    }
    table::set_role(fd, Role::Listener);
    Ok(0)
}

/// Bytes to write into the program's end so that it is not writable: Linux reports a unix
/// socket writable while its queued bytes' memory (at least their length) is at most a
/// quarter of SO_SNDBUF.
fn filler_len(fd: c_int) -> OpResult<usize> {
    let sndbuf = get_int_option(fd, libc::SOL_SOCKET, libc::SO_SNDBUF)?;
    Ok(usize::try_from(sndbuf).unwrap_or(0) / 4 + 1)
}

fn fill(fd: c_int) -> OpResult<usize> {
    let len = filler_len(fd)?;
    write_filler(fd, len)?;
    Ok(len)
}

/// Zeros the filler is written from, in one system call for the default SO_SNDBUF (a quarter
/// of 212,992 is 53,249 bytes): a connect that waits for its handshake pays one write, not
/// fourteen.
static FILLER: [u8; 64 * 1024] = [0; 64 * 1024];

fn write_filler(fd: c_int, len: usize) -> OpResult<()> {
    let mut left = len;
    while left > 0 {
        let n = left.min(FILLER.len());
        // SAFETY: writing from a live buffer; MSG_DONTWAIT so a full buffer cannot block.
        let sent = unsafe {
            real::send(
                fd,
                FILLER.as_ptr().cast(),
                n,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if sent < 0 {
            let errno = real::errno();
            if errno == libc::EINTR {
                continue;
            }
            return Err(Fail::Errno(errno));
        }
        left -= sent.unsigned_abs();
    }
    Ok(())
}

fn get_int_option(fd: c_int, level: c_int, name: c_int) -> OpResult<c_int> {
    let mut value: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`.
    let rc = unsafe {
        real::getsockopt(
            fd,
            level,
            name,
            std::ptr::addr_of_mut!(value).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(Fail::Errno(real::errno()));
    }
    Ok(value)
}

pub fn accept(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> OpResult<c_int> {
    let entry = ours(fd)?;
    if entry.kind == SockKind::Dgram {
        return Err(Fail::Errno(libc::EOPNOTSUPP));
    }
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Err(Fail::Errno(libc::EINVAL));
    }
    if entry.role != Role::Listener {
        return Err(Fail::Errno(libc::EINVAL));
    }
    let mut record = [0u8; ACCEPT_RECORD_LEN];
    let mut iov = libc::iovec {
        iov_base: record.as_mut_ptr().cast(),
        iov_len: record.len(),
    };
    let mut control_buf = [0u64; 8];
    // SAFETY: msghdr is plain data; zeroed is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control_buf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control_buf);
    let recv_flags = if flags & libc::SOCK_CLOEXEC != 0 {
        libc::MSG_CMSG_CLOEXEC
    } else {
        0
    };
    // Blocking, O_NONBLOCK, SO_RCVTIMEO and EINTR all behave natively on the listener's fd.
    // SAFETY: `msg` points at live buffers for the duration of the call.
    let n = unsafe { real::recvmsg(fd, &mut msg, recv_flags) };
    if n < 0 {
        return Err(Fail::Errno(real::errno()));
    }
    let new_fd = received_fd(&msg);
    let Some(new_fd) = new_fd else {
        // MSG_CTRUNC: no room for the descriptor (RLIMIT_NOFILE), as accept's EMFILE.
        return Err(Fail::Errno(if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            libc::EMFILE
        } else {
            libc::ECONNABORTED
        }));
    };
    let Some(record) = AcceptRecord::parse(record.get(..n.unsigned_abs()).unwrap_or(&[])) else {
        close_quietly(new_fd);
        return Err(Fail::Errno(libc::ECONNABORTED));
    };
    if flags & libc::SOCK_NONBLOCK != 0 {
        if let Err(e) = set_nonblocking(new_fd, true) {
            close_quietly(new_fd);
            return Err(e);
        }
    }
    table::insert(
        new_fd,
        Entry {
            family: entry.family,
            kind: SockKind::Stream,
            role: Role::Stream,
        },
    );
    if let Err(errno) = addr::store_name(entry.family, record.peer, addr, len, true) {
        // Linux has already taken the connection off the queue at this point, too.
        return Err(Fail::Errno(errno));
    }
    Ok(new_fd)
}

fn received_fd(msg: &libc::msghdr) -> Option<c_int> {
    // SAFETY: walking the control buffer the kernel filled, with the libc macros.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return None;
        }
        let data_len = (*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize;
        let count = data_len / std::mem::size_of::<c_int>();
        let fds = libc::CMSG_DATA(cmsg).cast::<c_int>();
        let first = fds.read_unaligned();
        for i in 1..count {
            close_quietly(fds.add(i).read_unaligned());
        }
        (count > 0).then_some(first)
    }
}

pub fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> OpResult<c_int> {
    let entry = ours(fd)?;
    if entry.kind == SockKind::Dgram {
        return connect_datagram(fd, entry, addr, len);
    }
    let remote = match addr::parse_connect(entry.family, addr, len)? {
        Target::Unspec => {
            expect_ok(ask(fd, &Request::Disconnect)?)?;
            if entry.role == Role::Stream {
                replace_pair(fd)?;
            }
            return Ok(0);
        }
        Target::V6Native => return Err(Fail::Errno(libc::ENETUNREACH)),
        Target::V4 { addr, .. } => addr,
    };
    let filler = filler_len(fd)?;
    let request = Request::Connect {
        addr: remote,
        filler: u32::try_from(filler).unwrap_or(u32::MAX),
    };
    match ask_installing(fd, &request)? {
        Response::Ok => return Ok(0),
        Response::InProgress => {}
        Response::Errno(errno) => return Err(Fail::Errno(errno)),
        _ => return Err(Fail::Errno(libc::EIO)),
    }
    table::set_role(fd, Role::Stream);
    // The daemon now waits for the filler: until the handshake completes the fd is not
    // writable; completion discards it (POLLOUT), failure closes the pair (POLLERR|POLLHUP).
    match write_filler(fd, filler) {
        Ok(()) => {}
        // The attempt already failed (refused over the stack's loopback, within the same
        // daemon turn) and the daemon closed the pair to say so: the outcome is read below,
        // or by the program through poll and SO_ERROR, as usual.
        Err(Fail::Errno(libc::EPIPE | libc::ECONNRESET)) => {}
        Err(e) => return Err(e),
    }
    if status_flags(fd)? & libc::O_NONBLOCK != 0 {
        return Err(Fail::Errno(libc::EINPROGRESS));
    }
    wait_connected(fd, remote, filler)
}

/// connect() on UDP: sets (or with AF_UNSPEC dissolves) the default peer; no handshake.
fn connect_datagram(
    fd: c_int,
    entry: Entry,
    addr: *const sockaddr,
    len: socklen_t,
) -> OpResult<c_int> {
    let remote = match addr::parse_connect(entry.family, addr, len)? {
        Target::Unspec => {
            let role = match ask(fd, &Request::Disconnect)? {
                Response::Addr(local) if local.port() != 0 => Role::BoundDatagram,
                Response::Addr(_) => Role::Datagram,
                other => return expect_ok(other).map(|()| 0),
            };
            table::set_role(fd, role);
            return Ok(0);
        }
        Target::V6Native => return Err(Fail::Errno(libc::ENETUNREACH)),
        Target::V4 { addr, .. } => addr,
    };
    let request = Request::Connect {
        addr: remote,
        filler: 0,
    };
    expect_ok(ask(fd, &request)?)?;
    table::set_role(fd, Role::ConnectedDatagram);
    Ok(0)
}

/// Blocking connect: waits for the outcome on the fd itself, honouring SO_SNDTIMEO (then
/// EINPROGRESS, as Linux) and signals (EINTR; the connection attempt goes on).
fn wait_connected(fd: c_int, remote: SocketAddrV4, filler: usize) -> OpResult<c_int> {
    let timeout = send_timeout_ms(fd);
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one live pollfd.
    let n = unsafe { real::poll(&mut pfd, 1, timeout) };
    if n < 0 {
        return Err(Fail::Errno(real::errno()));
    }
    if n == 0 {
        return Err(Fail::Errno(libc::EINPROGRESS));
    }
    // Ask again, as a program would after POLLOUT: 0 once connected, or the error.
    let request = Request::Connect {
        addr: remote,
        filler: u32::try_from(filler).unwrap_or(u32::MAX),
    };
    match conn::call(&request, &[fd]).map_err(errno_of_conn)? {
        Response::Ok => Ok(0),
        Response::Errno(errno) => {
            // The old pair is closed: give the fd a fresh one, so it is an unconnected
            // socket again (Linux lets a program retry connect after a failure).
            let _ = get_int_option(fd, libc::SOL_SOCKET, libc::SO_ERROR);
            replace_pair(fd)?;
            Err(Fail::Errno(errno))
        }
        Response::Stale => {
            replace_pair(fd)?;
            Err(Fail::Errno(libc::ECONNABORTED))
        }
        _ => Err(Fail::Errno(libc::EIO)),
    }
}

fn send_timeout_ms(fd: c_int) -> c_int {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut len = std::mem::size_of::<libc::timeval>() as socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `tv`.
    let rc = unsafe {
        real::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            std::ptr::addr_of_mut!(tv).cast(),
            &mut len,
        )
    };
    if rc != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0) {
        return -1;
    }
    let ms = tv
        .tv_sec
        .saturating_mul(1000)
        .saturating_add(tv.tv_usec / 1000);
    c_int::try_from(ms.max(1)).unwrap_or(c_int::MAX)
}

// ----- names, options, shutdown -----

pub fn local_name(fd: c_int, out: *mut sockaddr, len: *mut socklen_t) -> OpResult<c_int> {
    let entry = ours(fd)?;
    name(fd, entry, &Request::LocalAddr, out, len)
}

pub fn peer_name(fd: c_int, out: *mut sockaddr, len: *mut socklen_t) -> OpResult<c_int> {
    let entry = ours(fd)?;
    name(fd, entry, &Request::PeerAddr, out, len)
}

fn name(
    fd: c_int,
    entry: Entry,
    request: &Request,
    out: *mut sockaddr,
    len: *mut socklen_t,
) -> OpResult<c_int> {
    match ask(fd, request)? {
        Response::Addr(a) => {
            addr::store_name(entry.family, a, out, len, false)?;
            Ok(0)
        }
        Response::Errno(errno) => Err(Fail::Errno(errno)),
        _ => Err(Fail::Errno(libc::EIO)),
    }
}

fn is_timeout_option(level: c_int, name: c_int) -> bool {
    level == libc::SOL_SOCKET
        && matches!(
            name,
            libc::SO_RCVTIMEO | libc::SO_SNDTIMEO | libc::SO_RCVTIMEO_NEW | libc::SO_SNDTIMEO_NEW
        )
}

pub fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *mut c_void,
    len: *mut socklen_t,
) -> OpResult<c_int> {
    let entry = ours(fd)?;
    if is_timeout_option(level, name) {
        // Set on the fd itself, where the kernel applies them to reads and writes.
        return Err(Fail::Pass);
    }
    if entry.kind == SockKind::Dgram && (level, name) == (libc::SOL_SOCKET, libc::SO_ERROR) {
        let errno = crate::dgram::take_error(fd)?;
        let room = addr::read_socklen(len)? as usize;
        let bytes = errno.to_ne_bytes();
        let n = room.min(bytes.len());
        addr::write_user(value, bytes.get(..n).unwrap_or(&[]))?;
        addr::write_socklen(len, n as socklen_t)?;
        return Ok(0);
    }
    let room = addr::read_socklen(len)?;
    if (room as c_int) < 0 {
        return Err(Fail::Errno(libc::EINVAL));
    }
    let room = room as usize;
    let bytes: Vec<u8> = match (level, name) {
        (libc::SOL_SOCKET, libc::SO_ERROR) => {
            // Reading the fd's own error clears POLLERR; the daemon says what the error was
            // (the fd can only say ECONNRESET).
            let on_fd = get_int_option(fd, libc::SOL_SOCKET, libc::SO_ERROR).unwrap_or(0);
            let from_daemon = match ask(fd, &Request::TakeError)? {
                Response::Values(v) => v.first().copied().unwrap_or(0),
                _ => 0,
            };
            let errno = match (on_fd, from_daemon) {
                (0, _) => 0,
                (_, 0) => on_fd,
                (_, daemon) => c_int::try_from(daemon).unwrap_or(libc::EIO),
            };
            errno.to_ne_bytes().to_vec()
        }
        (libc::IPPROTO_TCP, libc::TCP_INFO) => match ask(fd, &Request::TcpInfo)? {
            Response::Values(v) => tcp_info_bytes(&v),
            Response::Errno(errno) => return Err(Fail::Errno(errno)),
            _ => return Err(Fail::Errno(libc::EIO)),
        },
        _ => {
            let values = match ask(fd, &Request::GetOpt { level, name })? {
                Response::Values(v) => v,
                Response::Errno(errno) => return Err(Fail::Errno(errno)),
                _ => return Err(Fail::Errno(libc::EIO)),
            };
            option_bytes(level, name, &values)
        }
    };
    let n = room.min(bytes.len());
    addr::write_user(value, bytes.get(..n).unwrap_or(&[]))?;
    addr::write_socklen(len, n as socklen_t)?;
    Ok(0)
}

/// An option's value as getsockopt returns it.
fn option_bytes(level: c_int, name: c_int, values: &[i64]) -> Vec<u8> {
    let int = |i: usize| -> c_int {
        values
            .get(i)
            .and_then(|&v| c_int::try_from(v).ok())
            .unwrap_or(0)
    };
    match (level, name) {
        (libc::SOL_SOCKET, libc::SO_LINGER) => {
            let mut bytes = int(0).to_ne_bytes().to_vec();
            bytes.extend_from_slice(&int(1).to_ne_bytes());
            bytes
        }
        (libc::IPPROTO_TCP, libc::TCP_CONGESTION) => {
            let number = values.first().copied().unwrap_or(0);
            let name = CONGESTION_NAMES
                .iter()
                .find(|(_, n)| *n == number)
                .map_or(&b"cubic"[..], |(name, _)| name);
            let mut bytes = vec![0u8; CA_NAME_MAX];
            bytes[..name.len()].copy_from_slice(name);
            bytes
        }
        _ => int(0).to_ne_bytes().to_vec(),
    }
}

/// `struct tcp_info` (Linux uapi layout, the fields the stack knows; the rest zero).
fn tcp_info_bytes(values: &[i64]) -> Vec<u8> {
    let get = |i: usize| values.get(i).copied().unwrap_or(0);
    let u32_of = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
    let u64_of = |v: i64| u64::try_from(v.max(0)).unwrap_or(0);
    let mut b = vec![0u8; TCP_INFO_LEN];
    let put8 = |b: &mut Vec<u8>, at: usize, v: u8| b[at] = v;
    let put32 =
        |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    let put64 =
        |b: &mut Vec<u8>, at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    put8(
        &mut b,
        0,
        u8::try_from(get(TcpInfoValues::STATE)).unwrap_or(0),
    );
    put8(
        &mut b,
        5,
        u8::try_from(get(TcpInfoValues::OPTIONS)).unwrap_or(0),
    );
    let wscale = (u8::try_from(get(TcpInfoValues::SND_WSCALE)).unwrap_or(0) & 0x0f)
        | (u8::try_from(get(TcpInfoValues::RCV_WSCALE)).unwrap_or(0) << 4);
    put8(&mut b, 6, wscale);
    put32(&mut b, 8, u32_of(get(TcpInfoValues::RTO_US)));
    put32(&mut b, 16, u32_of(get(TcpInfoValues::SND_MSS)));
    put32(&mut b, 20, u32_of(get(TcpInfoValues::RCV_MSS)));
    put32(&mut b, 24, u32_of(get(TcpInfoValues::UNACKED)));
    put32(&mut b, 68, u32_of(get(TcpInfoValues::RTT_US)));
    put32(&mut b, 72, u32_of(get(TcpInfoValues::RTTVAR_US)));
    put32(&mut b, 76, u32_of(get(TcpInfoValues::SND_SSTHRESH)));
    put32(&mut b, 80, u32_of(get(TcpInfoValues::SND_CWND)));
    put32(&mut b, 100, u32_of(get(TcpInfoValues::TOTAL_RETRANS)));
    put64(&mut b, 120, u64_of(get(TcpInfoValues::BYTES_ACKED)));
    put64(&mut b, 128, u64_of(get(TcpInfoValues::BYTES_RECEIVED)));
    put32(&mut b, 136, u32_of(get(TcpInfoValues::SEGS_OUT)));
    put32(&mut b, 140, u32_of(get(TcpInfoValues::SEGS_IN)));
    b
}

/// sizeof(struct tcp_info) in Linux 6.x uapi headers.
const TCP_INFO_LEN: usize = 248;

pub fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> OpResult<c_int> {
    let _entry = ours(fd)?;
    if is_timeout_option(level, name) {
        return Err(Fail::Pass);
    }
    let len = len as usize;
    let values: Vec<i64> = match (level, name) {
        (libc::SOL_SOCKET, libc::SO_LINGER) => {
            if len < std::mem::size_of::<libc::linger>() {
                return Err(Fail::Errno(libc::EINVAL));
            }
            let bytes = addr::read_user(value, 8)?;
            let on = i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let secs = i32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            vec![i64::from(on), i64::from(secs)]
        }
        (libc::IPPROTO_TCP, libc::TCP_CONGESTION) => {
            let bytes = addr::read_user(value, len.min(CA_NAME_MAX))?;
            let name = bytes.split(|&b| b == 0).next().unwrap_or(&[]);
            match CONGESTION_NAMES.iter().find(|(n, _)| *n == name) {
                Some(&(_, number)) => vec![number],
                None => return Err(Fail::Errno(libc::ENOENT)),
            }
        }
        _ => {
            if len < std::mem::size_of::<c_int>() {
                return Err(Fail::Errno(libc::EINVAL));
            }
            let bytes = addr::read_user(value, 4)?;
            vec![i64::from(i32::from_ne_bytes([
                bytes[0], bytes[1], bytes[2], bytes[3],
            ]))]
        }
    };
    expect_ok(ask(
        fd,
        &Request::SetOpt {
            level,
            name,
            values,
        },
    )?)?;
    Ok(0)
}

pub fn shutdown(fd: c_int, how: c_int) -> OpResult<c_int> {
    let entry = ours(fd)?;
    expect_ok(ask(fd, &Request::Shutdown { how })?)?;
    match entry.role {
        Role::Listener => {
            if how != libc::SHUT_WR {
                table::set_role(fd, Role::Unconnected);
            }
            Ok(0)
        }
        _ => {
            // The daemon sees the program's shutdown on its end (RDHUP → FIN).
            // SAFETY: shutdown on the program's own descriptor.
            if unsafe { real::shutdown(fd, how) } != 0 {
                return Err(Fail::Errno(real::errno()));
            }
            Ok(0)
        }
    }
}

/// close(): a socket that holds a port without a connection (UDP, listening or bound TCP)
/// must free it by the time close() returns, as the kernel's does — a program may bind the
/// port again at once. So after the real close the daemon is told, and it releases the
/// socket if that was the last descriptor.
pub fn close(fd: c_int) -> OpResult<c_int> {
    let Some(entry) = table::get(fd) else {
        return Err(Fail::Pass);
    };
    table::remove(fd);
    let holds_port = entry.kind == SockKind::Dgram || entry.role != Role::Stream;
    let inode = if holds_port { table::inode(fd) } else { None };
    // SAFETY: closing the caller's descriptor, as it asked.
    let rc = unsafe { real::close(fd) };
    if rc != 0 {
        return Err(Fail::Errno(real::errno()));
    }
    if let Some(ino) = inode {
        // Best effort: without an answer the daemon still sees the hang-up itself.
        let _ = conn::call(&Request::Closed { ino }, &[]);
    }
    Ok(0)
}

// ----- data -----

/// After a failed data call on a TCP socket's fd. The pair can only say ECONNRESET (reads) or
/// EPIPE (writes) for an error the daemon delivered by closing it; when the connection really
/// failed otherwise (ETIMEDOUT after the retransmissions or the user timeout ran out,
/// EHOSTUNREACH, ...), Linux reports that error, once: ask the daemon which it was.
pub fn after_stream_call(fd: c_int, rc: ssize_t) -> ssize_t {
    if rc >= 0 {
        return rc;
    }
    let errno = real::errno();
    if errno != libc::ECONNRESET && errno != libc::EPIPE {
        return rc;
    }
    let fixed = crate::guard::enter(|| Ok(stream_error(fd, errno)), || errno);
    real::set_errno(fixed);
    rc
}

fn stream_error(fd: c_int, errno: c_int) -> c_int {
    if table::get(fd).is_none_or(|e| e.role != Role::Stream) {
        return errno;
    }
    match conn::call(&Request::TakeError, &[fd]) {
        Ok(Response::Values(v)) => match v.first().and_then(|&e| c_int::try_from(e).ok()) {
            // A reset reads as the pair's own error (Linux: ECONNRESET, then EPIPE on writes).
            Some(0) | Some(libc::ECONNRESET) | None => errno,
            Some(real_error) => real_error,
        },
        _ => errno,
    }
}

/// What a data call on a socket that is not a byte stream (yet) gets.
fn not_a_stream(entry: Entry, writing: bool, flags: c_int) -> Fail {
    let _ = entry;
    if writing {
        // Linux tcp_sendmsg on an unconnected or listening socket: EPIPE, and SIGPIPE
        // unless MSG_NOSIGNAL.
        if flags & libc::MSG_NOSIGNAL == 0 {
            // SAFETY: raise(3) sends the signal to the calling thread, as the kernel does.
            unsafe { libc::raise(libc::SIGPIPE) };
        }
        Fail::Errno(libc::EPIPE)
    } else {
        Fail::Errno(libc::ENOTCONN)
    }
}

/// Checks a data call: `Pass` for byte streams (and foreign fds), the errno otherwise.
pub fn data_call(fd: c_int, writing: bool, flags: c_int) -> OpResult<()> {
    let Some(entry) = table::get(fd) else {
        return Err(Fail::Pass);
    };
    match entry.role {
        // Datagram sockets take their own path (`dgram`) before this check.
        Role::Stream | Role::Datagram | Role::BoundDatagram | Role::ConnectedDatagram => Ok(()),
        Role::Unconnected | Role::Listener => Err(not_a_stream(entry, writing, flags)),
    }
}

/// recv() with a zero length on a byte stream: Linux TCP waits for data (or says EAGAIN);
/// a unix socket would return 0 at once.
pub fn recv_empty(fd: c_int, flags: c_int) -> OpResult<ssize_t> {
    let nonblocking = flags & libc::MSG_DONTWAIT != 0 || status_flags(fd)? & libc::O_NONBLOCK != 0;
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout = if nonblocking { 0 } else { -1 };
    // SAFETY: one live pollfd.
    let n = unsafe { real::poll(&mut pfd, 1, timeout) };
    if n < 0 {
        return Err(Fail::Errno(real::errno()));
    }
    if n == 0 {
        return Err(Fail::Errno(libc::EAGAIN));
    }
    let mut byte = 0u8;
    // SAFETY: a zero-length read into a live byte.
    let r = unsafe { real::recv(fd, std::ptr::addr_of_mut!(byte).cast(), 0, flags) };
    if r < 0 {
        return Err(Fail::Errno(real::errno()));
    }
    Ok(0)
}

/// send()/sendto(): a connected TCP socket ignores the address (a unix socket would refuse
/// it with EISCONN).
pub fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> OpResult<ssize_t> {
    data_call(fd, true, flags)?;
    // SAFETY: the caller's buffer, passed through.
    let n = unsafe { real::send(fd, buf, len, flags) };
    if n < 0 {
        return Err(Fail::Errno(real::errno()));
    }
    Ok(n)
}

pub fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> OpResult<ssize_t> {
    data_call(fd, true, flags)?;
    if msg.is_null() {
        return Err(Fail::Errno(libc::EFAULT));
    }
    let bytes = addr::read_user(msg.cast(), std::mem::size_of::<libc::msghdr>())?;
    // SAFETY: `bytes` holds a full msghdr copied from the caller.
    let mut copy: libc::msghdr = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    copy.msg_name = std::ptr::null_mut();
    copy.msg_namelen = 0;
    // SAFETY: the caller's iovecs and control data, passed through.
    let n = unsafe { real::sendmsg(fd, &copy, flags) };
    if n < 0 {
        return Err(Fail::Errno(real::errno()));
    }
    Ok(n)
}

// ----- ioctl, descriptors -----

pub fn ioctl(fd: c_int, request: libc::c_ulong, arg: *mut c_void) -> OpResult<c_int> {
    let Some(entry) = table::get(fd) else {
        return Err(Fail::Pass);
    };
    if entry.kind == SockKind::Dgram && request == libc::FIONREAD {
        addr::write_user(arg, &crate::dgram::first_datagram_len(fd).to_ne_bytes())?;
        return Ok(0);
    }
    match request {
        libc::FIONREAD => match entry.role {
            Role::Listener => Err(Fail::Errno(libc::EINVAL)),
            Role::Unconnected => {
                addr::write_user(arg, &0i32.to_ne_bytes())?;
                Ok(0)
            }
            _ => Err(Fail::Pass),
        },
        libc::TIOCOUTQ => match entry.role {
            Role::Listener => Err(Fail::Errno(libc::EINVAL)),
            _ => {
                let queued = match ask(fd, &Request::OutQueue)? {
                    Response::Values(v) => v.first().copied().unwrap_or(0),
                    _ => 0,
                };
                let queued = c_int::try_from(queued).unwrap_or(c_int::MAX);
                addr::write_user(arg, &queued.to_ne_bytes())?;
                Ok(0)
            }
        },
        _ => Err(Fail::Pass),
    }
}

/// poll(): a UDP socket with a pending error reports POLLERR, which its pair shows as an
/// `Error` record (POLLIN): only when UDP sockets are among the descriptors does the shim
/// step in. (A fresh TCP socket needs no help: it is an unconnected unix socket, which polls
/// POLLOUT|POLLHUP like one.)
pub fn poll(fds: *mut libc::pollfd, count: libc::nfds_t, timeout: c_int) -> OpResult<c_int> {
    if !table::any_needing_poll_help() || count == 0 {
        return Err(Fail::Pass);
    }
    let len = usize::try_from(count).map_err(|_| Fail::Errno(libc::EINVAL))?;
    let size = len
        .checked_mul(std::mem::size_of::<libc::pollfd>())
        .ok_or(Fail::Errno(libc::EINVAL))?;
    let bytes = addr::read_user(fds.cast(), size)?;
    let mut polled: Vec<libc::pollfd> = bytes
        .chunks_exact(std::mem::size_of::<libc::pollfd>())
        // SAFETY: each chunk holds the bytes of one pollfd copied from the caller.
        .map(|chunk| unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast()) })
        .collect();
    let datagram: Vec<bool> = polled
        .iter()
        .map(|p| table::get(p.fd).is_some_and(|e| e.kind == SockKind::Dgram))
        .collect();
    if !datagram.contains(&true) {
        return Err(Fail::Pass);
    }
    // An error already queued is ready now: never wait.
    let ready_now = polled
        .iter()
        .zip(&datagram)
        .any(|(p, &d)| d && crate::dgram::head_error_state(p.fd).is_some());
    let wait = if ready_now { 0 } else { timeout };
    // SAFETY: `polled` is our own array of `count` pollfds.
    let n = unsafe { real::poll(polled.as_mut_ptr(), count, wait) };
    if n < 0 {
        return Err(Fail::Errno(real::errno()));
    }
    let mut ready = 0;
    for (p, &is_datagram) in polled.iter_mut().zip(&datagram) {
        if is_datagram {
            if let Some(only_error) = crate::dgram::head_error_state(p.fd) {
                p.revents |= libc::POLLERR;
                if only_error {
                    p.revents &= !(libc::POLLIN | libc::POLLRDNORM);
                }
            }
        }
        if p.revents != 0 {
            ready += 1;
        }
    }
    let out: Vec<u8> = polled
        .iter()
        // SAFETY: viewing our own pollfds as bytes to copy them back.
        .flat_map(|p| {
            unsafe {
                std::slice::from_raw_parts(
                    std::ptr::from_ref(p).cast::<u8>(),
                    std::mem::size_of::<libc::pollfd>(),
                )
            }
            .to_vec()
        })
        .collect();
    addr::write_user(fds.cast(), &out)?;
    Ok(ready)
}
