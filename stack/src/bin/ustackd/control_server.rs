//! The daemon's end of the control socket: an AF_UNIX SOCK_SEQPACKET listener and one
//! connection per client process. Requests are decoded with `ustack::control`; a client that
//! sends garbage gets an error response, and one that misbehaves at the socket level is dropped
//! without affecting anyone else.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::errno::Errno;
use nix::sys::socket::{self, sockopt, AddressFamily, Backlog, MsgFlags, SockFlag, SockType, UnixAddr};
use ustack::control::{Request, Response, MAX_MESSAGE_LEN};

/// One connected client process.
struct Client {
    fd: OwnedFd,
    /// Credentials from SO_PEERCRED, taken at accept time; requests are authorised by them.
    #[allow(dead_code)] // used by the socket API's permission checks
    uid: u32,
    pid: i32,
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
    pub fn bind(path: &Path, first_client_token: usize) -> io::Result<ControlServer> {
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
        // Like the kernel's socket API, the stack serves every local user; each request is
        // authorised by the caller's credentials, not by file permissions.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
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

    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.first_client_token
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
                    let (uid, pid) = match socket::getsockopt(&fd, sockopt::PeerCredentials) {
                        Ok(cred) => (cred.uid(), cred.pid()),
                        Err(_) => continue,
                    };
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    if registry
                        .register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)
                        .is_ok()
                    {
                        tracing::debug!(pid, uid, "control client connected");
                        self.clients.insert(token, Client { fd, uid, pid });
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

    /// Reads and answers every pending request from one client.
    pub fn serve(
        &mut self,
        token: Token,
        registry: &Registry,
        mut handle: impl FnMut(Request) -> Response,
    ) {
        let Some(client) = self.clients.get(&token) else {
            return;
        };
        let mut drop_client = false;
        loop {
            match socket::recv(client.fd.as_raw_fd(), &mut self.buf, MsgFlags::MSG_TRUNC) {
                Ok(0) => {
                    drop_client = true;
                    break;
                }
                Ok(n) => {
                    let response = if n > self.buf.len() {
                        Response::Error(format!("request larger than {MAX_MESSAGE_LEN} bytes"))
                    } else {
                        match Request::decode(&self.buf[..n]) {
                            Ok(request) => handle(request),
                            Err(e) => Response::Error(e.to_string()),
                        }
                    };
                    let reply = response.encode();
                    if socket::send(client.fd.as_raw_fd(), &reply, MsgFlags::MSG_NOSIGNAL).is_err() {
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
                tracing::debug!(pid = client.pid, "control client gone");
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
