//! The control connection to `ustackd`: one AF_UNIX SOCK_SEQPACKET connection per thread
//! (so a request never waits behind another thread's), opened on first use, reopened after
//! `fork` (the child must not share its parent's), and checked before each use: programs
//! close or `dup2` over descriptors they do not know about.
//!
//! Requests carry an id; replies to requests a caller gave up on (a signal handler
//! `siglongjmp`ed out of it) are skipped.

use std::cell::Cell;
use std::ffi::CString;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use libc::{c_int, c_void};
use ustack::control::{self, Request, Response, DEFAULT_SOCKET_PATH, MAX_REQUEST_FDS, SOCKET_ENV};

use crate::guard::stack_mark;
use crate::{log, real};

/// The control socket's path, fixed at load time.
static SOCKET_PATH: OnceLock<CString> = OnceLock::new();
/// The pid that already printed "no daemon" (one line per process).
static WARNED_PID: AtomicI32 = AtomicI32::new(0);

/// Where the shim's control descriptors go: high, so programs that expect their first
/// socket to be fd 3 (or that close everything below some number) are not disturbed.
const CONTROL_FD_MIN: c_int = 800;
/// Reply buffer: every reply to a socket request is one short line.
const REPLY_MAX: usize = 4096;

/// Reads USTACK_SOCKET (library constructor).
pub fn init() {
    let path = std::env::var_os(SOCKET_ENV)
        .filter(|p| !p.is_empty())
        .map(|p| p.into_encoded_bytes())
        .unwrap_or_else(|| DEFAULT_SOCKET_PATH.as_bytes().to_vec());
    if let Ok(path) = CString::new(path) {
        let _ = SOCKET_PATH.set(path);
    }
}

fn socket_path() -> &'static CString {
    SOCKET_PATH.get_or_init(|| CString::new(DEFAULT_SOCKET_PATH).unwrap_or_default())
}

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnError {
    /// No daemon at the socket path (errno from connect).
    NoDaemon(c_int),
    /// The request could not be sent (the daemon restarted, or the program closed our
    /// descriptor): safe to retry on a new connection.
    Broken(c_int),
    /// The request went out but no answer came back.
    NoReply(c_int),
}

struct Conn {
    fd: Cell<c_int>,
    ino: Cell<u64>,
    pid: Cell<i32>,
    next_id: Cell<u64>,
    /// Stack mark of the call using the connection (0: free); see `guard` for the idea.
    busy: Cell<usize>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        let fd = self.fd.get();
        // SAFETY: getpid has no preconditions.
        if fd >= 0
            && self.pid.get() == unsafe { libc::getpid() }
            && inode(fd) == Some(self.ino.get())
        {
            // SAFETY: the descriptor is ours (same process, same inode as when we opened it).
            unsafe { real::close(fd) };
        }
    }
}

thread_local! {
    static CONN: Conn = const {
        Conn {
            fd: Cell::new(-1),
            ino: Cell::new(0),
            pid: Cell::new(0),
            next_id: Cell::new(1),
            busy: Cell::new(0),
        }
    };
}

/// Sends `request` with `fds` attached and returns the daemon's answer.
pub fn call(request: &Request, fds: &[c_int]) -> Result<Response, ConnError> {
    let (response, passed) = call_fd(request, fds)?;
    if let Some(fd) = passed {
        // SAFETY: a descriptor the kernel just installed for us and nobody asked for.
        unsafe { real::close(fd) };
    }
    Ok(response)
}

/// Like [`call`], also returning the descriptor the reply carries (close-on-exec).
pub fn call_fd(request: &Request, fds: &[c_int]) -> Result<(Response, Option<c_int>), ConnError> {
    let here = stack_mark();
    let result = CONN.try_with(|conn| {
        let busy = conn.busy.get();
        if busy != 0 && here < busy {
            // Nested (a signal handler interrupted a request on this thread): use a
            // connection of its own.
            return call_once(request, fds);
        }
        conn.busy.set(here);
        let result = call_on(conn, request, fds);
        conn.busy.set(0);
        result
    });
    // During thread teardown the thread-local is gone: a one-off connection still works.
    result.unwrap_or_else(|_| call_once(request, fds))
}

fn call_once(request: &Request, fds: &[c_int]) -> Result<(Response, Option<c_int>), ConnError> {
    let fd = open()?;
    let result = exchange(fd, 1, request, fds);
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { real::close(fd) };
    result
}

fn call_on(
    conn: &Conn,
    request: &Request,
    fds: &[c_int],
) -> Result<(Response, Option<c_int>), ConnError> {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let mut fd = conn.fd.get();
    let usable = fd >= 0 && conn.pid.get() == pid && inode(fd) == Some(conn.ino.get());
    if !usable {
        // After fork the inherited descriptor is the parent's connection: leave it alone
        // (closing our copy would be fine, but the number may already be reused).
        fd = open()?;
        conn.fd.set(fd);
        conn.pid.set(pid);
        conn.ino.set(inode(fd).unwrap_or(0));
    }
    let id = conn.next_id.get();
    conn.next_id.set(id.wrapping_add(1));
    match exchange(fd, id, request, fds) {
        Err(ConnError::Broken(_)) => {
            // The daemon restarted or the program closed our descriptor: one new try.
            // SAFETY: still our descriptor (checked above); closed once.
            unsafe { real::close(fd) };
            conn.fd.set(-1);
            let fd = open()?;
            conn.fd.set(fd);
            conn.ino.set(inode(fd).unwrap_or(0));
            exchange(fd, id, request, fds)
        }
        other => other,
    }
}

fn inode(fd: c_int) -> Option<u64> {
    let mut stat = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a full `struct stat` into the buffer on success.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat succeeded, so the struct is initialised.
    Some(unsafe { stat.assume_init() }.st_ino)
}

/// Connects to the daemon. Prints the one-line hint (once per process) when it is not there.
fn open() -> Result<c_int, ConnError> {
    let path = socket_path();
    // SAFETY: plain socket creation.
    let fd = unsafe { real::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(ConnError::NoDaemon(real::errno()));
    }
    // SAFETY: sockaddr_un is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        // SAFETY: closing the socket created above.
        unsafe { real::close(fd) };
        warn_no_daemon(libc::ENAMETOOLONG);
        return Err(ConnError::NoDaemon(libc::ENAMETOOLONG));
    }
    for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    loop {
        // SAFETY: `addr` is a valid sockaddr_un of at least `len` bytes.
        let rc =
            unsafe { real::connect(fd, std::ptr::addr_of!(addr).cast(), len as libc::socklen_t) };
        if rc == 0 {
            break;
        }
        let errno = real::errno();
        if errno == libc::EINTR {
            continue;
        }
        // SAFETY: closing the socket created above.
        unsafe { real::close(fd) };
        warn_no_daemon(errno);
        return Err(ConnError::NoDaemon(errno));
    }
    // Move it out of the way of the program's own descriptor numbers.
    // SAFETY: F_DUPFD_CLOEXEC on our own descriptor.
    let high = unsafe { real::fcntl(fd, libc::F_DUPFD_CLOEXEC, CONTROL_FD_MIN as libc::c_ulong) };
    if high >= 0 {
        // SAFETY: the original is ours and no longer needed.
        unsafe { real::close(fd) };
        return Ok(high);
    }
    Ok(fd)
}

fn warn_no_daemon(errno: c_int) {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    if WARNED_PID.swap(pid, Ordering::Relaxed) == pid {
        return;
    }
    let path = String::from_utf8_lossy(socket_path().as_bytes()).into_owned();
    if errno == libc::EACCES {
        log::line(&format!(
            "libsockshim: not allowed to use ustackd at {path} ({}): its operator restricted it \
             with --socket-group/--socket-owner",
            log::errno_text(errno)
        ));
        return;
    }
    log::line(&format!(
        "libsockshim: no ustackd at {path} ({}); start it, or set {SOCKET_ENV} to its control socket",
        log::errno_text(errno)
    ));
}

/// One request and its reply (and the descriptor it carries) on `fd`.
fn exchange(
    fd: c_int,
    id: u64,
    request: &Request,
    fds: &[c_int],
) -> Result<(Response, Option<c_int>), ConnError> {
    let message = control::with_id(Some(id), request.encode());
    send_message(fd, &message, fds)?;
    let mut reply = [0u8; REPLY_MAX];
    loop {
        let (n, passed) = receive_message(fd, &mut reply)?;
        let message = reply.get(..n).unwrap_or(&[]);
        let (reply_id, body) = control::split_id(message);
        if reply_id.is_some() && reply_id != Some(id) {
            // An answer nobody waits for any more.
            if let Some(stale) = passed {
                // SAFETY: installed for us by the kernel, unwanted.
                unsafe { real::close(stale) };
            }
            continue;
        }
        return match Response::decode(request, body) {
            Ok(response) => Ok((response, passed)),
            Err(_) => {
                if let Some(fd) = passed {
                    // SAFETY: as above.
                    unsafe { real::close(fd) };
                }
                Err(ConnError::NoReply(libc::EPROTO))
            }
        };
    }
}

/// Receives one message and at most one descriptor (more are closed).
fn receive_message(fd: c_int, buf: &mut [u8]) -> Result<(usize, Option<c_int>), ConnError> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control_buf = [0u64; 8];
    loop {
        // SAFETY: msghdr is plain data; zeroed is a valid value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control_buf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control_buf);
        // SAFETY: every pointer in `msg` refers to a live buffer.
        let n = unsafe { real::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let errno = real::errno();
            if errno == libc::EINTR {
                continue;
            }
            return Err(ConnError::NoReply(errno));
        }
        if n == 0 {
            return Err(ConnError::NoReply(libc::ECONNRESET));
        }
        let mut passed = None;
        // SAFETY: walking the control data the kernel wrote, with the libc macros.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let data_len = (*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize;
                    let data = libc::CMSG_DATA(cmsg).cast::<c_int>();
                    for i in 0..data_len / std::mem::size_of::<c_int>() {
                        let received = data.add(i).read_unaligned();
                        if passed.is_none() {
                            passed = Some(received);
                        } else {
                            real::close(received);
                        }
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        return Ok((n.unsigned_abs(), passed));
    }
}

fn send_message(fd: c_int, message: &[u8], fds: &[c_int]) -> Result<(), ConnError> {
    let fds = fds.get(..fds.len().min(MAX_REQUEST_FDS)).unwrap_or(&[]);
    let mut iov = libc::iovec {
        iov_base: message.as_ptr() as *mut c_void,
        iov_len: message.len(),
    };
    // Room for MAX_REQUEST_FDS descriptors; u64 elements keep it aligned for cmsghdr.
    let mut control_buf = [0u64; 8];
    // SAFETY: msghdr is plain data; zeroed is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let data_len = std::mem::size_of_val(fds) as u32;
        // SAFETY: CMSG_SPACE is a pure computation.
        let space = unsafe { libc::CMSG_SPACE(data_len) } as usize;
        if space > std::mem::size_of_val(&control_buf) {
            return Err(ConnError::Broken(libc::EINVAL));
        }
        msg.msg_control = control_buf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: msg_control points at `space` writable, aligned bytes, enough for one
        // cmsghdr with `data_len` bytes of data (checked above).
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(data_len) as usize;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(cmsg).cast::<c_int>(),
                fds.len(),
            );
        }
    }
    loop {
        // SAFETY: `msg` and everything it points to live until the call returns.
        let n = unsafe { real::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        let errno = real::errno();
        if errno != libc::EINTR {
            return Err(ConnError::Broken(errno));
        }
    }
}
