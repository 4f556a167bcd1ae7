//! Whether an AF_UNIX socket still exists, by inode (NETLINK_SOCK_DIAG, `unix_diag`).
//!
//! Why: the daemon learns that a program closed its socket from HUP on the daemon's end of the
//! socketpair, but the kernel reports the same HUP when both directions were merely shut down
//! (the program's shutdown(SHUT_WR) plus the daemon passing on the peer's FIN). In that case
//! the daemon asks the kernel whether the program's end still exists. The daemon creates every
//! pair itself, so both ends live in its network namespace, which is where `unix_diag` looks.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `SOCK_DIAG_BY_FAMILY` (linux/sock_diag.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// "Any cookie" (INET_DIAG_NOCOOKIE).
const NO_COOKIE: u32 = !0;
const NLMSG_HDR_LEN: usize = 16;
/// struct unix_diag_req.
const UNIX_DIAG_REQ_LEN: usize = 24;

pub struct Diag {
    fd: Option<OwnedFd>,
    seq: u32,
}

impl Diag {
    pub fn new() -> Diag {
        // SAFETY: plain socket creation; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        let fd = (raw >= 0).then(|| {
            // SAFETY: socket() just returned this descriptor; nothing else owns it.
            unsafe { OwnedFd::from_raw_fd(raw) }
        });
        if let Some(fd) = &fd {
            // A reply never takes long; never let a lost one stall the event loop.
            let timeout = libc::timeval {
                tv_sec: 0,
                tv_usec: 200_000,
            };
            // SAFETY: setsockopt reads a timeval from a live value.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    std::ptr::addr_of!(timeout).cast(),
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                );
            }
        }
        Diag { fd, seq: 0 }
    }

    /// `Some(true)` if an AF_UNIX socket with this inode exists in our namespace,
    /// `Some(false)` if not, `None` if the kernel could not be asked.
    pub fn unix_socket_exists(&mut self, ino: u64) -> Option<bool> {
        let fd = self.fd.as_ref()?;
        let ino = u32::try_from(ino).ok()?;
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut request = [0u8; NLMSG_HDR_LEN + UNIX_DIAG_REQ_LEN];
        let total = request.len() as u32;
        request[0..4].copy_from_slice(&total.to_ne_bytes());
        request[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        request[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
        request[8..12].copy_from_slice(&seq.to_ne_bytes());
        let body = &mut request[NLMSG_HDR_LEN..];
        body[0] = libc::AF_UNIX as u8;
        body[4..8].copy_from_slice(&u32::MAX.to_ne_bytes()); // every state
        body[8..12].copy_from_slice(&ino.to_ne_bytes());
        body[16..20].copy_from_slice(&NO_COOKIE.to_ne_bytes());
        body[20..24].copy_from_slice(&NO_COOKIE.to_ne_bytes());
        // SAFETY: sending a live buffer on our netlink socket (to the kernel: no address).
        let sent = unsafe { libc::send(fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) };
        if sent < 0 {
            return None;
        }
        let mut reply = [0u8; 1024];
        loop {
            // SAFETY: receiving into a live buffer.
            let n =
                unsafe { libc::recv(fd.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
            let n = usize::try_from(n).ok()?;
            let message = reply.get(..n)?;
            let header = message.get(..NLMSG_HDR_LEN)?;
            let kind = u16::from_ne_bytes([header[4], header[5]]);
            let reply_seq = u32::from_ne_bytes([header[8], header[9], header[10], header[11]]);
            if reply_seq != seq {
                continue; // a late answer to an earlier question
            }
            if kind == libc::NLMSG_ERROR as u16 {
                let code = message.get(NLMSG_HDR_LEN..NLMSG_HDR_LEN + 4)?;
                let errno = -i32::from_ne_bytes([code[0], code[1], code[2], code[3]]);
                return match errno {
                    0 => Some(true),
                    libc::ENOENT => Some(false),
                    _ => None,
                };
            }
            return Some(kind == SOCK_DIAG_BY_FAMILY);
        }
    }
}
