//! UDP sockets: the daemon's side.
//!
//! A UDP socket's pair (see `new_pair`) is an AF_UNIX SOCK_SEQPACKET one, so one record is one datagram and
//! the kernel keeps the boundaries, MSG_TRUNC and MSG_PEEK semantics for us. Each record starts
//! with a [`DatagramHeader`]: the program's records name the destination (or the connected
//! peer), ours name the source, or carry an error an ICMP message left for a connected socket.
//!
//! Sending has no flow control, as in the kernel: records are read from the pair as they come
//! and handed to UDP; received datagrams wait in the UDP layer (bounded by SO_RCVBUF) until
//! the pair takes them.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsFd;

use mio::Registry;
use nix::errno::Errno;
use ustack::control::{DatagramHeader, Family, Request, Response, DATAGRAM_HEADER_LEN};
use ustack::host::{Host, UdpSendError};
use ustack::iface::SendError;
use ustack::time::Instant;
use ustack::udp::{UdpBinding, UdpHandle, UdpLayer};

use super::ports::Span;
use super::{errno_of, sys, AppSockets, SockState};
use crate::control_server::Caller;

/// Records taken from one socket's pair per pump (the rest wait for the next turn).
const MAX_RECORDS_PER_PUMP: usize = 64;

/// What the socket layer keeps about a UDP socket beyond its [`super::Sock`].
#[derive(Debug, Default)]
pub struct DatagramState {
    /// The UDP layer's socket, once bound (`None` also for an IPv6-only socket: the stack
    /// speaks IPv4 only).
    pub(super) handle: Option<UdpHandle>,
    pub peer: Option<SocketAddrV4>,
    /// An error taken from the UDP layer that the pair had no room for yet.
    pending_error: Option<i32>,
}

/// The errno `udp_sendmsg` would have returned (logged only: sends are asynchronous here).
fn send_errno(error: UdpSendError) -> i32 {
    match error {
        UdpSendError::NoSocket => libc::EBADF,
        UdpSendError::NoDestination => libc::EDESTADDRREQ,
        UdpSendError::InvalidPort => libc::EINVAL,
        UdpSendError::TooLarge => libc::EMSGSIZE,
        UdpSendError::BroadcastNotAllowed => libc::EACCES,
        UdpSendError::Interface(e) => route_errno(e),
    }
}

fn route_errno(error: SendError) -> i32 {
    match error {
        SendError::NoRoute => libc::ENETUNREACH,
        SendError::InvalidDestination | SendError::InvalidSource | SendError::InvalidTtl => {
            libc::EINVAL
        }
        SendError::PayloadTooLarge | SendError::MessageTooLong { .. } => libc::EMSGSIZE,
        _ => libc::ENOBUFS,
    }
}

impl AppSockets {
    fn datagram(&self, idx: usize) -> Option<&DatagramState> {
        match &self.slot(idx)?.state {
            SockState::Datagram(state) => Some(state),
            _ => None,
        }
    }

    fn datagram_mut(&mut self, idx: usize) -> Option<&mut DatagramState> {
        match &mut self.slot_mut(idx)?.state {
            SockState::Datagram(state) => Some(state),
            _ => None,
        }
    }

    /// Answers a control request about a UDP socket.
    pub(super) fn answer_datagram(
        &mut self,
        idx: usize,
        request: Request,
        caller: Caller,
        host: &mut Host,
    ) -> Response {
        match request {
            Request::Bind { addr, v4_mapped } => {
                let response = self.bind(idx, addr, v4_mapped, caller, host.address());
                if matches!(response, Response::Addr(_)) {
                    self.open_udp(idx, host.udp_mut());
                }
                response
            }
            Request::Autobind => match self.slot(idx).map(|s| s.local) {
                None => Response::Errno(libc::EBADF),
                Some(Some(local)) => Response::Addr(local),
                Some(None) => match self.autobind(idx, false) {
                    Ok(local) => {
                        self.open_udp(idx, host.udp_mut());
                        Response::Addr(local)
                    }
                    Err(errno) => Response::Errno(errno),
                },
            },
            Request::Listen { .. } => Response::Errno(libc::EOPNOTSUPP),
            Request::Connect { addr, .. } => self.connect_datagram(idx, addr, host),
            Request::Disconnect => self.disconnect_datagram(idx, host.udp_mut()),
            Request::TakeError => {
                let udp = host.udp_mut();
                let errno = self.datagram_mut(idx).map_or(0, |state| {
                    state
                        .pending_error
                        .take()
                        .or_else(|| state.handle.and_then(|h| udp.take_error(h).map(errno_of)))
                        .unwrap_or(0)
                });
                Response::Values(vec![i64::from(errno)])
            }
            Request::LocalAddr => self.with(idx, |s| {
                Response::Addr(
                    s.local
                        .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
                )
            }),
            Request::PeerAddr => match self.datagram(idx).map(|d| d.peer) {
                Some(Some(peer)) => Response::Addr(peer),
                Some(None) => Response::Errno(libc::ENOTCONN),
                None => Response::Errno(libc::EBADF),
            },
            Request::GetOpt { level, name } => self.get_option(idx, level, name, host.tcp()),
            Request::SetOpt {
                level,
                name,
                values,
            } => self.set_datagram_option(idx, level, name, &values, host),
            // Linux inet_shutdown: ENOTCONN unless connected; the shim shuts its own end.
            Request::Shutdown { how } => {
                if !(libc::SHUT_RD..=libc::SHUT_RDWR).contains(&how) {
                    Response::Errno(libc::EINVAL)
                } else if self.datagram(idx).is_some_and(|d| d.peer.is_some()) {
                    Response::Ok
                } else {
                    Response::Errno(libc::ENOTCONN)
                }
            }
            Request::Identify => self.with(idx, |s| Response::Identity {
                family: s.family,
                kind: s.kind,
                role: s.role(),
            }),
            // getsockopt(IPPROTO_TCP, TCP_INFO) on UDP.
            Request::TcpInfo => Response::Errno(libc::EOPNOTSUPP),
            // SIOCOUTQ: datagrams leave at once.
            Request::OutQueue => Response::Values(vec![0]),
            Request::Stats
            | Request::Sockets { .. }
            | Request::Socket { .. }
            | Request::Replace
            | Request::Closed { .. } => Response::Error("unexpected".into()),
        }
    }

    /// Gives a bound socket its UDP-layer socket (not for IPv6-only ones).
    fn open_udp(&mut self, idx: usize, udp: &mut UdpLayer) {
        let Some(sock) = self.slot(idx) else {
            return;
        };
        let (Some(local), SockState::Datagram(state)) = (sock.local, &sock.state) else {
            return;
        };
        if state.handle.is_some() || sock.span == Span::V6Only {
            return;
        }
        let binding = UdpBinding {
            local,
            ipv4_native: sock.family == Family::Inet,
        };
        let broadcast = option_flag(sock, libc::SO_BROADCAST);
        let rcvbuf = usize::try_from(sock.opts.rcvbuf).unwrap_or(usize::MAX);
        let handle = udp.open(binding);
        udp.set_broadcast(handle, broadcast);
        udp.set_rcvbuf(handle, rcvbuf);
        if let Some(state) = self.datagram_mut(idx) {
            state.handle = Some(handle);
        }
        self.by_udp.insert(handle, idx);
    }

    /// Linux `inet_dgram_connect` + `__ip4_datagram_connect`.
    fn connect_datagram(&mut self, idx: usize, addr: SocketAddrV4, host: &mut Host) -> Response {
        let Some(sock) = self.slot(idx) else {
            return Response::Errno(libc::EBADF);
        };
        if sock.family == Family::Inet6 && sock.opts.v6only {
            return Response::Errno(libc::ENETUNREACH);
        }
        // Connecting to INADDR_ANY means the local host.
        let remote_ip = if addr.ip().is_unspecified() {
            Ipv4Addr::LOCALHOST
        } else {
            *addr.ip()
        };
        if host.iface().config().is_broadcast(remote_ip) && !option_flag(sock, libc::SO_BROADCAST) {
            return Response::Errno(libc::EACCES);
        }
        let bound_ip = sock
            .local
            .map(|l| *l.ip())
            .filter(|ip| !ip.is_unspecified());
        let source = match host.iface().source_for(remote_ip, bound_ip) {
            Ok(source) => source,
            Err(e) => return Response::Errno(route_errno(e)),
        };
        let local = match sock.local {
            Some(local) => local,
            None => match self.autobind(idx, false) {
                Ok(local) => local,
                // Linux inet_dgram_connect: a failed autobind is EAGAIN.
                Err(_) => return Response::Errno(libc::EAGAIN),
            },
        };
        // The source address becomes the socket's address (Linux rehashes the socket).
        let local = SocketAddrV4::new(source, local.port());
        let remote = SocketAddrV4::new(remote_ip, addr.port());
        self.move_binding(idx, local);
        self.open_udp(idx, host.udp_mut());
        let udp = host.udp_mut();
        if let Some(state) = self.datagram_mut(idx) {
            state.peer = Some(remote);
            state.pending_error = None;
            if let Some(handle) = state.handle {
                udp.set_peer(handle, Some(remote));
            }
        }
        self.sync_udp_binding(idx, udp);
        Response::Ok
    }

    /// Linux `udp_disconnect`: forget the peer, and the address and port unless bind() chose
    /// them. Answers with the local address left.
    fn disconnect_datagram(&mut self, idx: usize, udp: &mut UdpLayer) -> Response {
        let Some(sock) = self.slot(idx) else {
            return Response::Errno(libc::EBADF);
        };
        let (addr_locked, port_locked) = sock.bind_locks;
        let local = sock.local;
        if let Some(state) = self.datagram_mut(idx) {
            state.peer = None;
            state.pending_error = None;
            if let Some(handle) = state.handle {
                udp.set_peer(handle, None);
            }
        }
        let Some(local) = local else {
            return Response::Addr(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        };
        if !port_locked {
            self.ports_for(ustack::control::SockKind::Dgram)
                .remove(local.port(), idx);
            if let Some(state) = self.datagram_mut(idx) {
                if let Some(handle) = state.handle.take() {
                    udp.close(handle);
                    self.by_udp.remove(&handle);
                }
            }
            if let Some(sock) = self.slot_mut(idx) {
                sock.local = None;
                sock.explicit_bind = false;
            }
            return Response::Addr(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        }
        let ip = if addr_locked {
            *local.ip()
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        let local = SocketAddrV4::new(ip, local.port());
        self.move_binding(idx, local);
        self.sync_udp_binding(idx, udp);
        Response::Addr(local)
    }

    /// Changes a bound socket's address in the port table (same port).
    fn move_binding(&mut self, idx: usize, local: SocketAddrV4) {
        let Some(sock) = self.slot_mut(idx) else {
            return;
        };
        sock.local = Some(local);
        let binding = sock.binding(idx, *local.ip(), sock.span, false);
        self.udp_ports.insert(local.port(), binding);
    }

    /// Tells the UDP layer the socket's current local address.
    fn sync_udp_binding(&mut self, idx: usize, udp: &mut UdpLayer) {
        let Some(sock) = self.slot(idx) else {
            return;
        };
        if let (Some(local), SockState::Datagram(state)) = (sock.local, &sock.state) {
            if let Some(handle) = state.handle {
                udp.rebind(
                    handle,
                    UdpBinding {
                        local,
                        ipv4_native: sock.family == Family::Inet,
                    },
                );
            }
        }
    }

    fn set_datagram_option(
        &mut self,
        idx: usize,
        level: i32,
        name: i32,
        values: &[i64],
        host: &mut Host,
    ) -> Response {
        let Some(sock) = self.slot(idx) else {
            return Response::Errno(libc::EBADF);
        };
        let target = sock.target(host.tcp());
        let Some(sock) = self.slot_mut(idx) else {
            return Response::Errno(libc::EBADF);
        };
        if let Err(errno) = sock.opts.set(target, level, name, values) {
            return Response::Errno(errno);
        }
        if let SockState::Datagram(DatagramState {
            handle: Some(handle),
            ..
        }) = sock.state
        {
            let udp = host.udp_mut();
            udp.set_broadcast(handle, option_flag(sock, libc::SO_BROADCAST));
            udp.set_rcvbuf(
                handle,
                usize::try_from(sock.opts.rcvbuf).unwrap_or(usize::MAX),
            );
        }
        Response::Ok
    }

    /// Moves datagrams both ways for one UDP socket; true if anything moved.
    pub(super) fn pump_datagram(
        &mut self,
        idx: usize,
        host: &mut Host,
        registry: &Registry,
        now: Instant,
    ) -> bool {
        let Some(sock) = self.slot(idx) else {
            return false;
        };
        if sock.flags.hung_up {
            if let SockState::Datagram(DatagramState {
                handle: Some(handle),
                ..
            }) = sock.state
            {
                host.udp_mut().close(handle);
            }
            self.remove(idx, registry);
            return true;
        }
        let sent = self.send_from_app(idx, host, now);
        let delivered = self.deliver_to_app(idx, host.udp_mut());
        sent || delivered
    }

    /// Reads the program's records and sends them.
    fn send_from_app(&mut self, idx: usize, host: &mut Host, now: Instant) -> bool {
        let mut moved = false;
        for _ in 0..MAX_RECORDS_PER_PUMP {
            let Some(sock) = self.slots.get_mut(idx).and_then(Option::as_mut) else {
                return moved;
            };
            if !sock.flags.readable {
                return moved;
            }
            let Some(pair) = &sock.pair else {
                return moved;
            };
            let (len, truncated) = match sys::recv_record(pair.as_fd(), &mut self.scratch) {
                // A zero-length read is the end of the stream (the program shut down writing)
                // or an empty record (malformed: a program wrote past the shim). Only the
                // latter leaves bytes behind it; without them, stop (an empty record followed
                // by nothing is read again with the next record).
                Ok((0, _)) if sys::bytes_readable(pair.as_fd()).unwrap_or(0) > 0 => {
                    moved = true;
                    tracing::debug!("empty datagram record dropped");
                    continue;
                }
                Ok((0, _)) | Err(_) => {
                    sock.flags.readable = false;
                    return moved;
                }
                Ok(record) => record,
            };
            moved = true;
            let record = self.scratch.get(..len).unwrap_or(&[]);
            let (Some(header), Some(payload), false) = (
                DatagramHeader::parse(record),
                record.get(DATAGRAM_HEADER_LEN..),
                truncated,
            ) else {
                tracing::debug!(len, truncated, "malformed datagram record dropped");
                continue;
            };
            let SockState::Datagram(state) = &sock.state else {
                return moved;
            };
            let (handle, dst) = match header {
                DatagramHeader::ToPeer => (state.handle, None),
                DatagramHeader::To(dst) => (state.handle, Some(dst)),
                DatagramHeader::From(_) | DatagramHeader::Error(_) => {
                    tracing::debug!("datagram record with a daemon-side header dropped");
                    continue;
                }
            };
            let Some(handle) = handle else {
                tracing::debug!("datagram from an unbound socket dropped");
                continue;
            };
            if let Err(error) = host.udp_send(now, handle, dst, payload) {
                tracing::debug!(?dst, errno = send_errno(error), "datagram not sent");
            }
        }
        // Records are left: the socket stays on the list (`pump` marks it again).
        moved
    }

    /// Writes the socket's pending error and received datagrams into the pair while it has room.
    fn deliver_to_app(&mut self, idx: usize, udp: &mut UdpLayer) -> bool {
        let Some(sock) = self.slots.get_mut(idx).and_then(Option::as_mut) else {
            return false;
        };
        let (Some(pair), SockState::Datagram(state)) = (&sock.pair, &mut sock.state) else {
            return false;
        };
        let Some(handle) = state.handle else {
            return false;
        };
        if let Some(error) = udp.take_error(handle) {
            state.pending_error = Some(errno_of(error));
        }
        let mut moved = false;
        if let Some(errno) = state.pending_error {
            if !sock.flags.writable {
                return false;
            }
            let header = DatagramHeader::Error(errno).to_bytes();
            match sys::send_record(pair.as_fd(), &[&header]) {
                Ok(_) => {
                    state.pending_error = None;
                    moved = true;
                }
                Err(Errno::EAGAIN) => {
                    sock.flags.writable = false;
                    return false;
                }
                // The program shut down reading: Linux would still report the error, but
                // nothing can carry it now.
                Err(_) => state.pending_error = None,
            }
        }
        while let Some(datagram) = udp.peek(handle) {
            if !sock.flags.writable {
                break;
            }
            let header = DatagramHeader::From(datagram.from).to_bytes();
            match sys::send_record(pair.as_fd(), &[&header, &datagram.payload]) {
                Ok(_) => {}
                Err(Errno::EAGAIN) => {
                    sock.flags.writable = false;
                    break;
                }
                // EPIPE after shutdown(SHUT_RD) and the like: the datagram is dropped, as
                // the kernel drops what arrives for a socket that stopped reading.
                Err(e) => tracing::debug!(%e, "datagram for the program dropped"),
            }
            udp.recv(handle);
            moved = true;
        }
        moved
    }
}

/// A boolean socket option as stored (SO_BROADCAST).
fn option_flag(sock: &super::Sock, name: i32) -> bool {
    let target = super::options::Target {
        family: sock.family,
        kind: sock.kind,
        bound: sock.local.is_some(),
        listening: false,
        mss: None,
    };
    sock.opts
        .get(target, libc::SOL_SOCKET, name)
        .ok()
        .and_then(|v| v.first().copied())
        .is_some_and(|v| v != 0)
}
