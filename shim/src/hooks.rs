//! The exported C functions. Each is a thin wrapper: `guard::enter` runs the safe operation
//! from `ops` and falls back to the real libc function for descriptors that are not ustack
//! sockets. Nothing else happens here.
//!
//! # Safety
//! Every function has the contract of the libc function of the same name; the pointers the
//! program passes are handed on to the kernel, or read through `addr::read_user`, which
//! fails with EFAULT rather than dereferencing a bad pointer.

use libc::{c_int, c_ulong, c_void, iovec, msghdr, size_t, sockaddr, socklen_t, ssize_t};

use crate::guard::{enter, Fail};
use crate::{dgram, epoll, ops, real, table};

#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    enter(
        || ops::socket(domain, ty, protocol),
        || unsafe { real::socket(domain, ty, protocol) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    enter(
        || ops::bind(fd, addr, len),
        || unsafe { real::bind(fd, addr, len) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    enter(
        || ops::listen(fd, backlog),
        || unsafe { real::listen(fd, backlog) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    enter(
        || ops::accept(fd, addr, len, 0),
        || unsafe { real::accept(fd, addr, len) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    enter(
        || ops::accept(fd, addr, len, flags),
        || unsafe { real::accept4(fd, addr, len, flags) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    enter(
        || ops::connect(fd, addr, len),
        || unsafe { real::connect(fd, addr, len) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    enter(
        || ops::shutdown(fd, how),
        || unsafe { real::shutdown(fd, how) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    let rc = enter(|| ops::close(fd), || unsafe { real::close(fd) });
    let errno = real::errno();
    enter(
        || {
            epoll::after_close(fd);
            Ok(0)
        },
        || 0,
    );
    real::set_errno(errno);
    rc
}

#[no_mangle]
pub unsafe extern "C" fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    enter(
        || ops::local_name(fd, addr, len),
        || unsafe { real::getsockname(fd, addr, len) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    enter(
        || ops::peer_name(fd, addr, len),
        || unsafe { real::getpeername(fd, addr, len) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    enter(
        || ops::getsockopt(fd, level, name, value, len),
        || unsafe { real::getsockopt(fd, level, name, value, len) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    enter(
        || ops::setsockopt(fd, level, name, value, len),
        || unsafe { real::setsockopt(fd, level, name, value, len) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t {
    enter(
        || match dgram::entry(fd) {
            Some(e) => dgram::send_buf(fd, e, buf, len, flags, std::ptr::null(), 0),
            None => ops::send(fd, buf, len, flags),
        },
        || unsafe { ops::after_stream_call(fd, real::send(fd, buf, len, flags)) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    addr: *const sockaddr,
    alen: socklen_t,
) -> ssize_t {
    enter(
        || match dgram::entry(fd) {
            Some(e) => dgram::send_buf(fd, e, buf, len, flags, addr, alen),
            None => ops::send(fd, buf, len, flags),
        },
        || unsafe { ops::after_stream_call(fd, real::sendto(fd, buf, len, flags, addr, alen)) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    enter(
        || match dgram::entry(fd) {
            Some(e) => dgram::sendmsg(fd, e, msg, flags),
            None => ops::sendmsg(fd, msg, flags),
        },
        || unsafe { ops::after_stream_call(fd, real::sendmsg(fd, msg, flags)) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn sendmmsg(
    fd: c_int,
    msgs: *mut libc::mmsghdr,
    count: libc::c_uint,
    flags: c_int,
) -> c_int {
    enter(
        || match dgram::entry(fd) {
            Some(e) => dgram::each_message(msgs, count as usize, |msg, _| {
                dgram::sendmsg(fd, e, msg, flags)
            }),
            None => Err(Fail::Pass),
        },
        || unsafe { real::sendmmsg(fd, msgs, count, flags) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn recvmmsg(
    fd: c_int,
    msgs: *mut libc::mmsghdr,
    count: libc::c_uint,
    flags: c_int,
    timeout: *mut libc::timespec,
) -> c_int {
    enter(
        || match dgram::entry(fd) {
            // After the first datagram, MSG_WAITFORONE takes only what is already queued.
            Some(e) => dgram::each_message(msgs, count as usize, |msg, index| {
                let flags = if index > 0 && flags & libc::MSG_WAITFORONE != 0 {
                    flags | libc::MSG_DONTWAIT
                } else {
                    flags
                };
                dgram::recvmsg(fd, e, msg, flags & !libc::MSG_WAITFORONE)
            }),
            None => Err(Fail::Pass),
        },
        || unsafe { real::recvmmsg(fd, msgs, count, flags, timeout) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    enter(
        || {
            if let Some(e) = dgram::entry(fd) {
                return dgram::read_buf(fd, e, buf, len, flags);
            }
            ops::data_call(fd, false, flags)?;
            if len == 0 {
                return ops::recv_empty(fd, flags);
            }
            Err(Fail::Pass)
        },
        || unsafe { ops::after_stream_call(fd, real::recv(fd, buf, len, flags)) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    enter(
        || {
            if let Some(e) = dgram::entry(fd) {
                return dgram::recv_buf(fd, e, buf, len, flags, addr, alen);
            }
            ops::data_call(fd, false, flags)?;
            if len == 0 {
                return ops::recv_empty(fd, flags);
            }
            Err(Fail::Pass)
        },
        || unsafe { ops::after_stream_call(fd, real::recvfrom(fd, buf, len, flags, addr, alen)) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    enter(
        || match dgram::entry(fd) {
            Some(e) => dgram::recvmsg(fd, e, msg, flags),
            None => ops::data_call(fd, false, flags).and(Err(Fail::Pass)),
        },
        || unsafe { ops::after_stream_call(fd, real::recvmsg(fd, msg, flags)) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t {
    enter(
        || match dgram::entry(fd) {
            Some(e) => dgram::read_buf(fd, e, buf, len, 0),
            None => ops::data_call(fd, false, 0).and(Err(Fail::Pass)),
        },
        || unsafe { ops::after_stream_call(fd, real::read(fd, buf, len)) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t {
    enter(
        || match dgram::entry(fd) {
            Some(e) => dgram::send_buf(fd, e, buf, len, 0, std::ptr::null(), 0),
            None => ops::data_call(fd, true, 0).and(Err(Fail::Pass)),
        },
        || unsafe { ops::after_stream_call(fd, real::write(fd, buf, len)) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, count: c_int) -> ssize_t {
    enter(
        || match dgram::entry(fd) {
            Some(_) => {
                let iov = dgram::read_iovecs(iov, dgram::iovec_count(count)?)?;
                Ok(dgram::recv(fd, &iov, 0)?.len)
            }
            None => ops::data_call(fd, false, 0).and(Err(Fail::Pass)),
        },
        || unsafe { ops::after_stream_call(fd, real::readv(fd, iov, count)) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, count: c_int) -> ssize_t {
    enter(
        || match dgram::entry(fd) {
            Some(e) => {
                let iov = dgram::read_iovecs(iov, dgram::iovec_count(count)?)?;
                dgram::send(fd, e, &iov, 0, std::ptr::null(), 0)
            }
            None => ops::data_call(fd, true, 0).and(Err(Fail::Pass)),
        },
        || unsafe { ops::after_stream_call(fd, real::writev(fd, iov, count)) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn __recv_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buflen: size_t,
    flags: c_int,
) -> ssize_t {
    enter(
        || {
            if len > buflen {
                return Err(Fail::Pass); // the real one reports the overflow
            }
            if let Some(e) = dgram::entry(fd) {
                return dgram::read_buf(fd, e, buf, len, flags);
            }
            ops::data_call(fd, false, flags)?;
            if len == 0 {
                return ops::recv_empty(fd, flags);
            }
            Err(Fail::Pass)
        },
        || unsafe { ops::after_stream_call(fd, real::__recv_chk(fd, buf, len, buflen, flags)) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buflen: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    enter(
        || {
            if len > buflen {
                return Err(Fail::Pass);
            }
            if let Some(e) = dgram::entry(fd) {
                return dgram::recv_buf(fd, e, buf, len, flags, addr, alen);
            }
            ops::data_call(fd, false, flags)?;
            if len == 0 {
                return ops::recv_empty(fd, flags);
            }
            Err(Fail::Pass)
        },
        || unsafe {
            ops::after_stream_call(
                fd,
                real::__recvfrom_chk(fd, buf, len, buflen, flags, addr, alen),
            )
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buflen: size_t,
) -> ssize_t {
    enter(
        || {
            if len > buflen {
                return Err(Fail::Pass);
            }
            if let Some(e) = dgram::entry(fd) {
                return dgram::read_buf(fd, e, buf, len, 0);
            }
            ops::data_call(fd, false, 0).and(Err(Fail::Pass))
        },
        || unsafe { ops::after_stream_call(fd, real::__read_chk(fd, buf, len, buflen)) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn poll(
    fds: *mut libc::pollfd,
    count: libc::nfds_t,
    timeout: c_int,
) -> c_int {
    enter(
        || ops::poll(fds, count, timeout),
        || unsafe { real::poll(fds, count, timeout) },
    )
}

#[no_mangle]
pub unsafe extern "C" fn epoll_ctl(
    epfd: c_int,
    op: c_int,
    fd: c_int,
    event: *mut libc::epoll_event,
) -> c_int {
    let rc = unsafe { real::epoll_ctl(epfd, op, fd, event) };
    if rc == 0 {
        let errno = real::errno();
        enter(
            || {
                epoll::after_ctl(epfd, op, fd, event);
                Ok(0)
            },
            || 0,
        );
        real::set_errno(errno);
    }
    rc
}

/// The three epoll waits: the real call, then the UDP error correction (see `epoll`).
fn after_epoll_wait(epfd: c_int, events: *mut libc::epoll_event, n: c_int) -> c_int {
    if n > 0 {
        let errno = real::errno();
        enter(|| epoll::after_wait(epfd, events, n).map(|()| 0), || 0);
        real::set_errno(errno);
    }
    n
}

#[no_mangle]
pub unsafe extern "C" fn epoll_wait(
    epfd: c_int,
    events: *mut libc::epoll_event,
    max: c_int,
    timeout: c_int,
) -> c_int {
    let n = unsafe { real::epoll_wait(epfd, events, max, timeout) };
    after_epoll_wait(epfd, events, n)
}

#[no_mangle]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    events: *mut libc::epoll_event,
    max: c_int,
    timeout: c_int,
    mask: *const libc::sigset_t,
) -> c_int {
    let n = unsafe { real::epoll_pwait(epfd, events, max, timeout, mask) };
    after_epoll_wait(epfd, events, n)
}

#[no_mangle]
pub unsafe extern "C" fn epoll_pwait2(
    epfd: c_int,
    events: *mut libc::epoll_event,
    max: c_int,
    timeout: *const libc::timespec,
    mask: *const libc::sigset_t,
) -> c_int {
    let n = unsafe { real::epoll_pwait2(epfd, events, max, timeout, mask) };
    after_epoll_wait(epfd, events, n)
}

#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    enter(
        || ops::ioctl(fd, request, arg),
        || unsafe { real::ioctl(fd, request, arg) },
    )
}

/// fcntl: duplicating a socket's descriptor keeps it a ustack socket; everything else
/// (O_NONBLOCK included) is the kernel's business.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    let result = unsafe { real::fcntl(fd, cmd, arg) };
    after_fcntl(fd, cmd, result);
    result
}

#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    let result = unsafe { real::fcntl64(fd, cmd, arg) };
    after_fcntl(fd, cmd, result);
    result
}

fn after_fcntl(fd: c_int, cmd: c_int, result: c_int) {
    if result >= 0 && (cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC) {
        let errno = real::errno();
        enter(
            || {
                table::copy(fd, result);
                Ok(0)
            },
            || 0,
        );
        real::set_errno(errno);
    }
}

#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    let result = unsafe { real::dup(fd) };
    after_dup(fd, result);
    result
}

#[no_mangle]
pub unsafe extern "C" fn dup2(fd: c_int, target: c_int) -> c_int {
    let result = unsafe { real::dup2(fd, target) };
    after_dup(fd, result);
    result
}

#[no_mangle]
pub unsafe extern "C" fn dup3(fd: c_int, target: c_int, flags: c_int) -> c_int {
    let result = unsafe { real::dup3(fd, target, flags) };
    after_dup(fd, result);
    result
}

fn after_dup(fd: c_int, result: c_int) {
    if result >= 0 && result != fd {
        let errno = real::errno();
        enter(
            || {
                table::copy(fd, result);
                Ok(0)
            },
            || 0,
        );
        real::set_errno(errno);
    }
}
