//! The daemon's end of the control socket: an AF_UNIX SOCK_SEQPACKET listener and one
//! connection per client (the shim opens one per thread). Requests are decoded with
//! `ustack::control`; a client that sends garbage gets an error response, and one that
//! misbehaves at the socket level is dropped without affecting anyone else.
//!
//! Each message may carry descriptors (SCM_RIGHTS, at most `MAX_REQUEST_FDS`) and always
//! carries the sender's credentials *at the time of sending* (SO_PASSCRED): a process that
//! drops privileges after connecting is authorised by its new uid, as the kernel would.

use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::errno::Errno;
use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag,
    SockType, UnixAddr,
};
use ustack::control::{self, Request, Response, MAX_MESSAGE_LEN, MAX_REQUEST_FDS};

/// Who may connect to the control socket (its file's owner, group and mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Access {
    /// Only this user (and root).
    pub owner: Option<u32>,
    /// Only this group (and the owner, and root).
    pub group: Option<u32>,
}

impl Access {
    fn mode(&self) -> u32 {
        match (self.owner, self.group) {
            (None, None) => 0o666,
            (Some(_), None) => 0o600,
            (_, Some(_)) => 0o660,
        }
    }
}

/// Who sent a request: the credentials the kernel attached to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// One connected client.
struct Client {
    fd: OwnedFd,
    /// Credentials from SO_PEERCRED at accept time, used when a message lacks its own.
    cred: Caller,
}

pub struct ControlServer {
    listener: OwnedFd,
    path: PathBuf,
    clients: HashMap<Token, Client>,
    next_token: usize,
    first_client_token: usize,
    buf: Vec<u8>,
}

impl ControlServer {
    /// Binds the socket at `path`, creating its directory. A stale socket file left by a dead
    /// daemon is replaced; a live one is an error.
    pub fn bind(
        path: &Path,
        access: Access,
        first_client_token: usize,
    ) -> io::Result<ControlServer> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir)?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
            }
        }
        if path.exists() {
            if connect_probe(path) {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another ustackd is already listening on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = socket::socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let addr = UnixAddr::new(path)?;
        socket::bind(listener.as_raw_fd(), &addr)?;
        // By default, like the kernel's socket API, the stack serves every local user and each
        // request is authorised by the caller's credentials; an operator may narrow who can
        // connect at all with the file's owner, group and mode (connect(2) checks them).
        if access.owner.is_some() || access.group.is_some() {
            nix::unistd::chown(
                path,
                access.owner.map(nix::unistd::Uid::from_raw),
                access.group.map(nix::unistd::Gid::from_raw),
            )?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(access.mode()))?;
        socket::listen(&listener, Backlog::new(256).unwrap_or(Backlog::MAXCONN))?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
            clients: HashMap::new(),
            next_token: first_client_token,
            first_client_token,
            buf: vec![0; MAX_MESSAGE_LEN],
        })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Client tokens run from `first_client_token` up to (not including) this; the tokens
    /// above belong to application sockets.
    pub const TOKEN_LIMIT: usize = 1 << 40;

    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.first_client_token && token.0 < Self::TOKEN_LIMIT
    }

    /// Accepts every pending connection.
    pub fn accept_all(&mut self, registry: &Registry) {
        loop {
            match socket::accept4(
                self.listener.as_raw_fd(),
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            ) {
                Ok(raw) => {
                    // SAFETY: accept4 just returned this descriptor; nothing else owns it.
                    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                    let cred = match socket::getsockopt(&fd, sockopt::PeerCredentials) {
                        Ok(cred) => Caller {
                            pid: cred.pid(),
                            uid: cred.uid(),
                            gid: cred.gid(),
                        },
                        Err(_) => continue,
                    };
                    if socket::setsockopt(&fd, sockopt::PassCred, &true).is_err() {
                        continue;
                    }
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    if registry
                        .register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)
                        .is_ok()
                    {
                        tracing::debug!(pid = cred.pid, uid = cred.uid, "control client connected");
                        self.clients.insert(token, Client { fd, cred });
                    }
                }
                Err(Errno::EINTR) | Err(Errno::ECONNABORTED) => continue,
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    // EMFILE and friends: stop for this turn rather than spin.
                    tracing::warn!("control socket accept: {e}");
                    break;
                }
            }
        }
    }

    /// Reads and answers every pending request from one client. `handle` gets the request,
    /// the descriptors that came with it (closed when dropped) and the sender's credentials,
    /// and returns the response and a descriptor to pass back with it, if any.
    pub fn serve(
        &mut self,
        token: Token,
        registry: &Registry,
        mut handle: impl FnMut(Request, Vec<OwnedFd>, Caller) -> (Response, Option<OwnedFd>),
    ) {
        let Some(client) = self.clients.get(&token) else {
            return;
        };
        let mut drop_client = false;
        let mut cmsg = nix::cmsg_space!([RawFd; MAX_REQUEST_FDS], libc::ucred);
        loop {
            let received = {
                let mut iov = [IoSliceMut::new(&mut self.buf)];
                socket::recvmsg::<()>(
                    client.fd.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
                )
                .map(|msg| {
                    let mut fds = Vec::new();
                    let mut cred = client.cred;
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for c in cmsgs {
                            match c {
                                ControlMessageOwned::ScmRights(raw) => {
                                    // SAFETY: the kernel just installed these descriptors for
                                    // us; nothing else owns them.
                                    fds.extend(
                                        raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }),
                                    );
                                }
                                ControlMessageOwned::ScmCredentials(c) => {
                                    cred = Caller {
                                        pid: c.pid(),
                                        uid: c.uid(),
                                        gid: c.gid(),
                                    };
                                }
                                _ => {}
                            }
                        }
                    }
                    let truncated = msg
                        .flags
                        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
                    (msg.bytes, fds, cred, truncated)
                })
            };
            match received {
                Ok((0, _, _, _)) => {
                    drop_client = true;
                    break;
                }
                Ok((n, fds, cred, truncated)) => {
                    let message = self.buf.get(..n).unwrap_or(&[]);
                    let (id, body) = control::split_id(message);
                    let (response, passed) = if truncated {
                        (
                            Response::Error(format!(
                                "request larger than {MAX_MESSAGE_LEN} bytes or with more than {MAX_REQUEST_FDS} descriptors"
                            )),
                            None,
                        )
                    } else {
                        match Request::decode(body) {
                            Ok(request) => handle(request, fds, cred),
                            Err(e) => (Response::Error(e.to_string()), None),
                        }
                    };
                    let reply = control::with_id(id, response.encode());
                    let iov = [IoSlice::new(&reply)];
                    let passed_raw: Vec<RawFd> = passed.iter().map(|fd| fd.as_raw_fd()).collect();
                    let rights = [ControlMessage::ScmRights(&passed_raw)];
                    let cmsgs: &[ControlMessage] = if passed.is_some() { &rights } else { &[] };
                    if socket::sendmsg::<()>(
                        client.fd.as_raw_fd(),
                        &iov,
                        cmsgs,
                        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
                        None,
                    )
                    .is_err()
                    {
                        drop_client = true;
                        break;
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(_) => {
                    drop_client = true;
                    break;
                }
            }
        }
        if drop_client {
            if let Some(client) = self.clients.remove(&token) {
                let _ = registry.deregister(&mut SourceFd(&client.fd.as_fd().as_raw_fd()));
                tracing::debug!(pid = client.cred.pid, "control client gone");
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// True if something accepts connections at `path`.
fn connect_probe(path: &Path) -> bool {
    let Ok(fd) = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    ) else {
        return false;
    };
    let Ok(addr) = UnixAddr::new(path) else {
        return false;
    };
    socket::connect(fd.as_raw_fd(), &addr).is_ok()
}
