//! The daemon's side of application sockets (DESIGN.md, "The app ↔ daemon boundary").
//!
//! Every socket a program creates under the shim is an AF_UNIX stream socketpair: the program
//! holds one end (its socket fd), the daemon the other (the *pair* here). The daemon
//! identifies a socket by the inode of the program's end, which every control request
//! carries, and learns everything else from its own end:
//!
//! - a connected socket's pair is the byte stream: what the program writes is TCP's send
//!   stream, what the daemon writes is the receive stream ([`pump`]); the daemon reads only as
//!   much as TCP accepts (backpressure) and writes only as much as the pair takes;
//! - RDHUP on the pair (the program shut down writing) becomes a FIN; HUP (the last close of
//!   the program's fd, in whatever process) becomes close(), or abort() when the program left
//!   data unread (the kernel reports that as ECONNRESET on our end). The kernel also reports
//!   HUP when both directions are merely shut down, so a HUP is confirmed by asking whether
//!   the program's end still exists ([`diag`]);
//! - a listening socket's pair carries one [`AcceptRecord`] per established connection, with
//!   the connection's own pair end attached;
//! - errors reach the program by closing the pair while it still holds unread bytes: the
//!   kernel then sets ECONNRESET on the program's end, which reads as POLLERR|POLLHUP, a
//!   failing recv and EPIPE on send, exactly as after a TCP reset. To always have such a byte,
//!   the daemon does not read the last byte of its queue: the creator writes a *sentinel* byte
//!   first, and afterwards the daemon forwards the last byte by peeking at it (`skip` counts
//!   the bytes at the head of the queue that are not new data) — except after a bulk write
//!   (see `pump::HOLD_LIMIT`, which explains why);
//! - non-blocking connect: the shim writes *filler* bytes after the sentinel so that its end
//!   is not writable; the daemon discards them when the handshake completes, which makes the
//!   fd writable (POLLOUT) at exactly that moment.
//!
//! - a TCP socket starts *without* a pair: the program gets a plain unconnected AF_UNIX
//!   stream socket, which polls exactly like a fresh TCP socket (POLLOUT|POLLHUP in poll,
//!   select and epoll alike). `listen` and `connect` give it its pair, whose program end goes
//!   back with the reply; the shim puts it in place of the fresh socket (dup3).
//!
//! A socket whose pair was closed to deliver an error stays known (as `Dead`) so that
//! SO_ERROR, getsockname and a retried connect work; such records have no pair to tell when
//! the program closes them, so the oldest are forgotten beyond [`MAX_DEAD`].

mod datagram;
mod diag;
mod listing;
mod options;
mod ports;
mod pump;
mod sys;

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use ustack::control::{Family, Request, Response, Role, SockKind, TcpInfoValues};
use ustack::host::Host;
use ustack::tcp::connection::{ConnectionError, State};
use ustack::tcp::layer::{ConnHandle, ConnectError, ListenerHandle, TcpLayer};
use ustack::time::Instant;

use crate::control_server::Caller;
use options::{Options, Target};
use ports::{Binding, PortTable, Span};

/// Tokens from here on are application sockets (token = base + slot index).
pub const SOCKET_TOKEN_BASE: usize = crate::control_server::ControlServer::TOKEN_LIMIT;

/// Dead sockets remembered at most (oldest forgotten first).
const MAX_DEAD: usize = 4096;

/// Linux's CAP_NET_BIND_SERVICE bit and its first unprivileged port.
const CAP_NET_BIND_SERVICE: u32 = 10;
const FIRST_UNPRIVILEGED_PORT: u16 = 1024;

/// Linux `enum tcp_state` values (TCP_INFO's `tcpi_state`).
mod linux_state {
    pub const ESTABLISHED: i64 = 1;
    pub const SYN_SENT: i64 = 2;
    pub const SYN_RECV: i64 = 3;
    pub const FIN_WAIT1: i64 = 4;
    pub const FIN_WAIT2: i64 = 5;
    pub const CLOSE: i64 = 7;
    pub const CLOSE_WAIT: i64 = 8;
    pub const LAST_ACK: i64 = 9;
    pub const LISTEN: i64 = 10;
    pub const CLOSING: i64 = 11;
}

/// What the program did to its end, as seen on ours (edge-triggered events, remembered).
#[derive(Debug, Default, Clone, Copy)]
struct PairFlags {
    /// Bytes may be waiting on our end.
    readable: bool,
    /// Our end may take bytes.
    writable: bool,
    /// The program shut down writing (RDHUP).
    read_closed: bool,
    /// HUP was reported: the program closed its last fd, or both directions are shut down.
    hup_reported: bool,
    /// The program closed its last fd (HUP, confirmed).
    hung_up: bool,
    /// The program closed with data left unread (ECONNRESET on our end).
    reset: bool,
}

/// A byte queue with a read position (bounded by the pump).
#[derive(Debug, Default)]
struct ByteQueue {
    buf: Vec<u8>,
    start: usize,
}

impl ByteQueue {
    fn data(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or(&[])
    }
    fn len(&self) -> usize {
        self.buf.len() - self.start
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }
    fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
    fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }
}

/// A TCP connection and the bytes in transit between it and the program.
#[derive(Debug)]
struct Stream {
    handle: ConnHandle,
    peer: SocketAddrV4,
    /// Read from the program, not yet taken by TCP.
    to_tcp: ByteQueue,
    /// Received from TCP, not yet taken by the program's end.
    to_app: ByteQueue,
    /// connect() said EINPROGRESS and the program has not called connect() again since: the
    /// next call returns 0 once connected (Linux's SS_CONNECTING).
    connect_unacked: bool,
    /// The peer's FIN was passed on (our end shut down for writing).
    fin_to_app: bool,
    /// The program's EOF was passed on (TCP shutdown_write).
    fin_to_tcp: bool,
    /// The program shut down reading: received bytes are dropped.
    app_stopped_reading: bool,
    /// Bytes read from the pair since its queue was last empty (see `pump::HOLD_LIMIT`).
    forwarded_since_empty: usize,
}

#[derive(Debug)]
enum SockState {
    Unconnected,
    Listening {
        /// `None` for an IPv6-only listener: the stack speaks IPv4 only.
        handle: Option<ListenerHandle>,
    },
    /// The handshake is under way; `skip` includes the filler the shim writes.
    Connecting {
        handle: ConnHandle,
        peer: SocketAddrV4,
    },
    Connected(Box<Stream>),
    /// A UDP socket (its pair is a SOCK_SEQPACKET one carrying datagram records).
    Datagram(datagram::DatagramState),
    /// The pair was closed (error delivered, or the program disconnected).
    Dead {
        /// The errno not yet reported by connect() or SO_ERROR.
        error: Option<i32>,
    },
}

#[derive(Debug)]
struct Sock {
    ino: u64,
    family: Family,
    kind: SockKind,
    /// The creator's uid (SO_REUSEPORT sharing needs the same uid, as on Linux).
    uid: u32,
    pair: Option<OwnedFd>,
    opts: Options,
    /// Bound or connected local address.
    local: Option<SocketAddrV4>,
    span: Span,
    /// bind() was called (connect's autobind is released with the connection, bind's not).
    explicit_bind: bool,
    /// bind() named an address / a port: a UDP disconnect keeps what bind() chose and drops
    /// what connect() or autobind chose (Linux's SOCK_BINDADDR_LOCK / SOCK_BINDPORT_LOCK).
    bind_locks: (bool, bool),
    state: SockState,
    /// Bytes at the head of our end's queue that are not data to forward (sentinel, filler,
    /// or the last byte, already forwarded by peeking).
    skip: usize,
    flags: PairFlags,
    /// In `AppSockets::dirty` (at most once).
    dirty: bool,
}

impl Sock {
    fn role(&self) -> Role {
        match self.state {
            SockState::Unconnected => Role::Unconnected,
            SockState::Listening { .. } => Role::Listener,
            SockState::Connecting { .. } | SockState::Connected(_) | SockState::Dead { .. } => {
                Role::Stream
            }
            SockState::Datagram(ref state) => match (state.peer, self.local) {
                (Some(_), _) => Role::ConnectedDatagram,
                (None, Some(_)) => Role::BoundDatagram,
                (None, None) => Role::Datagram,
            },
        }
    }

    fn target(&self, tcp: &TcpLayer) -> Target {
        let mss = match &self.state {
            SockState::Connected(stream) => tcp.info(stream.handle).map(|i| i.send_mss),
            _ => None,
        };
        Target {
            family: self.family,
            kind: self.kind,
            bound: self.local.is_some(),
            listening: matches!(self.state, SockState::Listening { .. }),
            mss,
        }
    }

    /// What this socket holds in the port table when bound to `ip` with `span`.
    fn binding(&self, owner: usize, ip: Ipv4Addr, span: Span, listening: bool) -> Binding {
        Binding {
            owner,
            ip,
            span,
            reuseaddr: self.opts.reuseaddr,
            reuseport: self.opts.reuseport,
            uid: self.uid,
            listening,
        }
    }

    fn udp_handle(&self) -> Option<ustack::udp::UdpHandle> {
        match &self.state {
            SockState::Datagram(state) => state.handle,
            _ => None,
        }
    }

    fn handle(&self) -> Option<ConnHandle> {
        match &self.state {
            SockState::Connecting { handle, .. } => Some(*handle),
            SockState::Connected(stream) => Some(stream.handle),
            _ => None,
        }
    }
}

/// SO_REUSEPORT listeners sharing one TCP listener; connections go round-robin.
#[derive(Debug)]
struct Group {
    members: Vec<usize>,
    next: usize,
    /// Accepted from TCP, waiting for a member's pair to take the record.
    pending: VecDeque<(ConnHandle, SocketAddrV4)>,
}

/// Everything the daemon knows about application sockets.
pub struct AppSockets {
    slots: Vec<Option<Sock>>,
    free: Vec<usize>,
    by_ino: HashMap<u64, usize>,
    ports: PortTable,
    udp_ports: PortTable,
    groups: HashMap<ListenerHandle, Group>,
    dead: VecDeque<(usize, u64)>,
    diag: diag::Diag,
    scratch: Vec<u8>,
    /// Work is left that the next loop turn must do without waiting.
    busy: bool,
    /// Sockets to look at in the next pump: something happened to their pair (mio event), to
    /// their TCP connection or UDP socket (the stack's events), or they asked to be looked at
    /// again. Nothing else is visited, so idle sockets cost nothing per turn.
    dirty: Vec<usize>,
    /// Which socket holds a TCP connection or UDP socket (for the stack's events).
    by_conn: HashMap<ConnHandle, usize>,
    by_udp: HashMap<ustack::udp::UdpHandle, usize>,
    events: Vec<ustack::tcp::layer::TcpEvent>,
    /// The program end of a pair made while answering the current request (`attach_pair`),
    /// sent back with the reply.
    reply_fd: Option<OwnedFd>,
}

impl AppSockets {
    pub fn new(seed: u32) -> AppSockets {
        AppSockets {
            slots: Vec::new(),
            free: Vec::new(),
            by_ino: HashMap::new(),
            ports: PortTable::new(seed),
            udp_ports: PortTable::new(seed.rotate_left(16)),
            groups: HashMap::new(),
            dead: VecDeque::new(),
            diag: diag::Diag::new(),
            scratch: vec![0; pump::CHUNK],
            busy: false,
            dirty: Vec::new(),
            by_conn: HashMap::new(),
            by_udp: HashMap::new(),
            events: Vec::new(),
            reply_fd: None,
        }
    }

    pub fn owns(token: Token) -> bool {
        token.0 >= SOCKET_TOKEN_BASE
    }

    /// Whether the loop must turn again at once.
    pub fn is_busy(&self) -> bool {
        self.busy || !self.dirty.is_empty()
    }

    /// Puts a socket on the list for the next pump.
    fn mark(&mut self, idx: usize) {
        if let Some(sock) = self.slots.get_mut(idx).and_then(Option::as_mut) {
            if !sock.dirty {
                sock.dirty = true;
                self.dirty.push(idx);
            }
        }
    }

    /// Remembers that socket `idx` holds TCP connection `handle`.
    fn track_conn(&mut self, handle: ConnHandle, idx: usize) {
        self.by_conn.insert(handle, idx);
    }

    /// Forgets the stack objects socket `idx` holds (before it is removed or killed).
    fn untrack(&mut self, idx: usize) {
        let Some(sock) = self.slot(idx) else {
            return;
        };
        let (conn, udp) = (sock.handle(), sock.udp_handle());
        if let Some(handle) = conn {
            if self.by_conn.get(&handle) == Some(&idx) {
                self.by_conn.remove(&handle);
            }
        }
        if let Some(handle) = udp {
            if self.by_udp.get(&handle) == Some(&idx) {
                self.by_udp.remove(&handle);
            }
        }
    }

    /// Counters for `ustack stats`.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let count = |f: &dyn Fn(&SockState) -> bool| {
            self.slots.iter().flatten().filter(|s| f(&s.state)).count() as u64
        };
        vec![
            (
                "app_sockets",
                self.slots
                    .iter()
                    .flatten()
                    .filter(|s| s.pair.is_some())
                    .count() as u64,
            ),
            (
                "app_dead_sockets",
                count(&|s| matches!(s, SockState::Dead { .. })),
            ),
            (
                "app_listeners",
                count(&|s| matches!(s, SockState::Listening { .. })),
            ),
            (
                "app_connected",
                count(&|s| matches!(s, SockState::Connected(_))),
            ),
        ]
    }

    /// Readiness of a pair, as mio reported it.
    pub fn on_event(&mut self, token: Token, event: &mio::event::Event) {
        let idx = token.0 - SOCKET_TOKEN_BASE;
        self.mark(idx);
        let Some(sock) = self.slots.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let flags = &mut sock.flags;
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            flags.readable = true;
        }
        if event.is_writable() || event.is_write_closed() {
            flags.writable = true;
        }
        if event.is_read_closed() {
            flags.read_closed = true;
        }
        if event.is_read_closed() && event.is_write_closed() {
            flags.hup_reported = true;
        }
        if event.is_error() {
            // The kernel says ECONNRESET on our end when the program closed with unread data.
            if let Some(pair) = &sock.pair {
                if sys::take_socket_error(pair.as_fd()) != 0 {
                    flags.hung_up = true;
                    flags.reset = true;
                }
            }
        }
    }

    /// Answers one control request about an application socket; the descriptor, if any,
    /// goes back with the answer.
    pub fn handle(
        &mut self,
        request: Request,
        fds: Vec<OwnedFd>,
        caller: Caller,
        host: &mut Host,
        registry: &Registry,
        now: Instant,
    ) -> (Response, Option<OwnedFd>) {
        if let Request::Socket { family, kind } = request {
            return match self.create(family, kind, caller, host, registry) {
                Ok(app) => (Response::Ok, Some(app)),
                Err(response) => (response, None),
            };
        }
        if let Request::Closed { ino } = request {
            self.closed(ino, host, registry, now);
            return (Response::Ok, None);
        }
        let Some(app) = fds.into_iter().next() else {
            return (
                Response::Error("socket requests carry the socket's fd".into()),
                None,
            );
        };
        let Some(ino) = sys::socket_inode(app.as_fd()) else {
            return (Response::Errno(libc::ENOTSOCK), None);
        };
        let Some(&idx) = self.by_ino.get(&ino) else {
            return (Response::Errno(libc::ENOTSOCK), None);
        };
        // Whatever the request changed, the next pump looks at this socket.
        self.mark(idx);
        if self.slot(idx).is_some_and(|s| s.kind == SockKind::Dgram) {
            return (self.answer_datagram(idx, request, caller, host), None);
        }
        if request == Request::Replace {
            return match self.replace(idx, registry) {
                Ok(app) => (Response::Ok, Some(app)),
                Err(response) => (response, None),
            };
        }
        let response = self.answer(idx, request, caller, host, registry, now);
        (response, self.reply_fd.take())
    }

    /// A program closed a descriptor of socket `ino`: if no descriptor is left, release the
    /// socket now rather than when its hang-up is seen.
    fn closed(&mut self, ino: u64, host: &mut Host, registry: &Registry, now: Instant) {
        let Some(&idx) = self.by_ino.get(&ino) else {
            return;
        };
        if self.diag.unix_socket_exists(ino) != Some(false) {
            return;
        }
        if let Some(sock) = self.slot_mut(idx) {
            sock.flags.hung_up = true;
        }
        self.pump_one(idx, host, registry, now);
    }

    fn answer(
        &mut self,
        idx: usize,
        request: Request,
        caller: Caller,
        host: &mut Host,
        registry: &Registry,
        now: Instant,
    ) -> Response {
        let stack_addr = host.address();
        let tcp = host.tcp_mut();
        match request {
            Request::Stats
            | Request::Sockets { .. }
            | Request::Socket { .. }
            | Request::Replace
            | Request::Autobind
            | Request::Closed { .. } => Response::Error("unexpected".into()),
            Request::Bind { addr, v4_mapped } => {
                self.bind(idx, addr, v4_mapped, caller, stack_addr)
            }
            Request::Listen { backlog } => self.listen(idx, backlog, tcp, registry),
            Request::Connect { addr, filler } => {
                self.connect(idx, addr, filler, tcp, registry, now)
            }
            Request::Disconnect => self.disconnect(idx, tcp, registry),
            Request::TakeError => self.take_error(idx, tcp),
            Request::LocalAddr => self.with(idx, |s| {
                Response::Addr(
                    s.local
                        .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
                )
            }),
            Request::PeerAddr => self.with(idx, |s| match &s.state {
                SockState::Connected(stream) => Response::Addr(stream.peer),
                _ => Response::Errno(libc::ENOTCONN),
            }),
            Request::GetOpt { level, name } => self.get_option(idx, level, name, tcp),
            Request::SetOpt {
                level,
                name,
                values,
            } => self.set_option(idx, level, name, &values, tcp, now),
            Request::Shutdown { how } => self.shutdown(idx, how, tcp),
            Request::Identify => self.with(idx, |s| Response::Identity {
                family: s.family,
                kind: s.kind,
                role: s.role(),
            }),
            Request::TcpInfo => self.tcp_info(idx, tcp),
            Request::OutQueue => self.out_queue(idx, tcp),
        }
    }

    fn get_option(&self, idx: usize, level: i32, name: i32, tcp: &TcpLayer) -> Response {
        match self.slot(idx) {
            Some(s) => match s.opts.get(s.target(tcp), level, name) {
                Ok(values) => Response::Values(values),
                Err(errno) => Response::Errno(errno),
            },
            None => Response::Errno(libc::EBADF),
        }
    }

    fn slot(&self, idx: usize) -> Option<&Sock> {
        self.slots.get(idx).and_then(Option::as_ref)
    }

    fn slot_mut(&mut self, idx: usize) -> Option<&mut Sock> {
        self.slots.get_mut(idx).and_then(Option::as_mut)
    }

    fn with(&self, idx: usize, f: impl FnOnce(&Sock) -> Response) -> Response {
        self.slot(idx).map_or(Response::Errno(libc::EBADF), f)
    }

    fn create(
        &mut self,
        family: Family,
        kind: SockKind,
        caller: Caller,
        host: &Host,
        registry: &Registry,
    ) -> Result<OwnedFd, Response> {
        // TCP: a fresh, unconnected unix socket; its pair comes with listen or connect.
        let (app, pair, ino) = match kind {
            SockKind::Stream => {
                let failed =
                    |e: std::io::Error| Response::Errno(e.raw_os_error().unwrap_or(libc::ENOMEM));
                let app = sys::unconnected_stream().map_err(failed)?;
                let ino = sys::socket_inode(app.as_fd()).ok_or(Response::Errno(libc::ENOTSOCK))?;
                (app, None, ino)
            }
            SockKind::Dgram => {
                let (app, pair, ino) = new_pair(kind)?;
                (app, Some(pair), ino)
            }
        };
        let opts = Options::new(host.tcp().config().default_socket_options());
        let sock = Sock {
            ino,
            family,
            kind,
            uid: caller.uid,
            pair,
            opts,
            local: None,
            span: Span::V4,
            explicit_bind: false,
            bind_locks: (false, false),
            state: match kind {
                SockKind::Stream => SockState::Unconnected,
                SockKind::Dgram => SockState::Datagram(datagram::DatagramState::default()),
            },
            skip: 0,
            flags: PairFlags::default(),
            dirty: false,
        };
        match self.insert(sock, registry) {
            Some(idx) => {
                if kind == SockKind::Stream {
                    self.remember_pairless(idx, ino, registry);
                }
                Ok(app)
            }
            None => Err(Response::Errno(libc::ENOMEM)),
        }
    }

    /// Gives an unconnected TCP socket its pair (listen, connect). The program's end goes back
    /// with the reply (`reply_fd`); from now on the socket is known by that end's inode.
    fn attach_pair(&mut self, idx: usize, registry: &Registry) -> Result<(), Response> {
        if self.slot(idx).is_none_or(|s| s.pair.is_some()) {
            return Ok(());
        }
        let (app, pair, new_ino) = new_pair(SockKind::Stream)?;
        let registered = registry.register(
            &mut SourceFd(&pair.as_raw_fd()),
            Token(SOCKET_TOKEN_BASE + idx),
            Interest::READABLE | Interest::WRITABLE,
        );
        if registered.is_err() {
            return Err(Response::Errno(libc::ENOMEM));
        }
        let Some(sock) = self.slot_mut(idx) else {
            return Err(Response::Errno(libc::EBADF));
        };
        let old_ino = sock.ino;
        sock.ino = new_ino;
        sock.skip = 1;
        sock.flags = PairFlags {
            readable: true,
            writable: true,
            ..PairFlags::default()
        };
        sock.pair = Some(pair);
        self.by_ino.remove(&old_ino);
        self.by_ino.insert(new_ino, idx);
        self.reply_fd = Some(app);
        self.mark(idx);
        Ok(())
    }

    /// Keeps a socket without a pair (fresh, or dead) in the bounded list of such records:
    /// nothing tells the daemon when the program closes them, so beyond `MAX_DEAD` the oldest
    /// are forgotten — a fresh one only if its program end is really gone.
    fn remember_pairless(&mut self, idx: usize, ino: u64, registry: &Registry) {
        self.dead.push_back((idx, ino));
        let mut kept = 0;
        while self.dead.len() > MAX_DEAD && kept < self.dead.len() {
            let Some((old, old_ino)) = self.dead.pop_front() else {
                break;
            };
            let Some(sock) = self
                .slot(old)
                .filter(|s| s.ino == old_ino && s.pair.is_none())
            else {
                continue;
            };
            match sock.state {
                SockState::Dead { .. } => self.remove(old, registry),
                SockState::Unconnected | SockState::Listening { handle: None } => {
                    if self.diag.unix_socket_exists(old_ino) == Some(false) {
                        self.remove(old, registry);
                    } else {
                        self.dead.push_back((old, old_ino));
                        kept += 1;
                    }
                }
                _ => {}
            }
        }
    }

    /// Adds a record and registers its pair; `None` if registration failed.
    fn insert(&mut self, sock: Sock, registry: &Registry) -> Option<usize> {
        let idx = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        if let Some(pair) = &sock.pair {
            let registered = registry.register(
                &mut SourceFd(&pair.as_raw_fd()),
                Token(SOCKET_TOKEN_BASE + idx),
                Interest::READABLE | Interest::WRITABLE,
            );
            if registered.is_err() {
                self.free.push(idx);
                return None;
            }
        }
        self.by_ino.insert(sock.ino, idx);
        if let Some(slot) = self.slots.get_mut(idx) {
            *slot = Some(sock);
        }
        // A fresh pair may already have bytes or be hung up: look at it this turn.
        if let Some(sock) = self.slot_mut(idx) {
            sock.flags.readable = true;
            sock.flags.writable = true;
            sock.dirty = false;
        }
        self.mark(idx);
        if let Some(handle) = self.slot(idx).and_then(Sock::handle) {
            self.track_conn(handle, idx);
        }
        Some(idx)
    }

    /// Forgets a record: its port, its pair (closed: the program sees the effect).
    fn remove(&mut self, idx: usize, registry: &Registry) {
        self.untrack(idx);
        let Some(sock) = self.slots.get_mut(idx).and_then(Option::take) else {
            return;
        };
        if let Some(local) = sock.local {
            self.ports_for(sock.kind).remove(local.port(), idx);
        }
        if self.by_ino.get(&sock.ino) == Some(&idx) {
            self.by_ino.remove(&sock.ino);
        }
        if let Some(pair) = &sock.pair {
            let _ = registry.deregister(&mut SourceFd(&pair.as_raw_fd()));
        }
        self.free.push(idx);
    }

    /// Closes a socket's pair to deliver `error` (or EOF-like reset) and keeps the record as
    /// `Dead` for SO_ERROR and friends.
    fn kill(&mut self, idx: usize, error: Option<i32>, registry: &Registry) {
        self.untrack(idx);
        let Some(sock) = self.slot_mut(idx) else {
            return;
        };
        tracing::debug!(ino = sock.ino, ?error, local = ?sock.local, "socket closed to deliver an error");
        if let Some(pair) = sock.pair.take() {
            let _ = registry.deregister(&mut SourceFd(&pair.as_raw_fd()));
            // Dropping `pair` closes it while the sentinel is still unread: ECONNRESET on
            // the program's end.
        }
        let release = !sock.explicit_bind;
        let local = sock.local;
        sock.state = SockState::Dead { error };
        sock.flags = PairFlags::default();
        if release {
            sock.local = None;
        }
        let ino = sock.ino;
        if let (true, Some(local)) = (release, local) {
            self.ports.remove(local.port(), idx);
        }
        self.remember_pairless(idx, ino, registry);
    }

    fn ports_for(&mut self, kind: SockKind) -> &mut PortTable {
        match kind {
            SockKind::Stream => &mut self.ports,
            SockKind::Dgram => &mut self.udp_ports,
        }
    }

    fn bind(
        &mut self,
        idx: usize,
        addr: SocketAddrV4,
        v4_mapped: bool,
        caller: Caller,
        stack_addr: Ipv4Addr,
    ) -> Response {
        let Some(sock) = self.slot(idx) else {
            return Response::Errno(libc::EBADF);
        };
        if sock.local.is_some()
            || !matches!(sock.state, SockState::Unconnected | SockState::Datagram(_))
        {
            return Response::Errno(libc::EINVAL);
        }
        if sock.family == Family::Inet6 && v4_mapped && sock.opts.v6only {
            return Response::Errno(libc::EINVAL);
        }
        let ip = *addr.ip();
        if !(ip.is_unspecified() || ip.is_loopback() || ip == stack_addr) {
            return Response::Errno(libc::EADDRNOTAVAIL);
        }
        if addr.port() != 0 && addr.port() < FIRST_UNPRIVILEGED_PORT && !may_bind_privileged(caller)
        {
            return Response::Errno(libc::EACCES);
        }
        let span = match sock.family {
            Family::Inet => Span::V4,
            Family::Inet6 if v4_mapped || !ip.is_unspecified() => Span::V4,
            Family::Inet6 if sock.opts.v6only => Span::V6Only,
            Family::Inet6 => Span::Dual,
        };
        let binding = sock.binding(idx, ip, span, false);
        let kind = sock.kind;
        let ports = self.ports_for(kind);
        let port = if addr.port() == 0 {
            match ports.pick_ephemeral(&binding, false) {
                Some(port) => port,
                None => return Response::Errno(libc::EADDRINUSE),
            }
        } else if ports.fits(addr.port(), &binding) {
            addr.port()
        } else {
            return Response::Errno(libc::EADDRINUSE);
        };
        ports.insert(port, binding);
        let local = SocketAddrV4::new(ip, port);
        if let Some(sock) = self.slot_mut(idx) {
            sock.local = Some(local);
            sock.span = span;
            sock.explicit_bind = true;
            sock.bind_locks = (!ip.is_unspecified(), addr.port() != 0);
        }
        Response::Addr(local)
    }

    /// Binds to the wildcard address and an ephemeral port (listen or connect without bind).
    fn autobind(&mut self, idx: usize, unused_only: bool) -> Result<SocketAddrV4, i32> {
        let sock = self.slot(idx).ok_or(libc::EBADF)?;
        let kind = sock.kind;
        let span = match sock.family {
            Family::Inet => Span::V4,
            Family::Inet6 if sock.opts.v6only => Span::V6Only,
            Family::Inet6 => Span::Dual,
        };
        let binding = sock.binding(idx, Ipv4Addr::UNSPECIFIED, span, false);
        let ports = self.ports_for(kind);
        let port = ports
            .pick_ephemeral(&binding, unused_only)
            .ok_or(libc::EADDRNOTAVAIL)?;
        ports.insert(port, binding);
        let local = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
        if let Some(sock) = self.slot_mut(idx) {
            sock.local = Some(local);
            sock.span = span;
        }
        Ok(local)
    }

    fn listen(
        &mut self,
        idx: usize,
        backlog: i32,
        tcp: &mut TcpLayer,
        registry: &Registry,
    ) -> Response {
        let Some(sock) = self.slot(idx) else {
            return Response::Errno(libc::EBADF);
        };
        match sock.state {
            SockState::Unconnected => {}
            SockState::Listening { .. } => return Response::Ok,
            _ => return Response::Errno(libc::EINVAL),
        }
        let local = match sock.local {
            Some(local) => local,
            None => match self.autobind(idx, false) {
                Ok(local) => local,
                Err(errno) => return Response::Errno(errno),
            },
        };
        let Some(sock) = self.slot(idx) else {
            return Response::Errno(libc::EBADF);
        };
        let binding = sock.binding(idx, *local.ip(), sock.span, true);
        if !self.ports.fits(local.port(), &binding) {
            return Response::Errno(libc::EADDRINUSE);
        }
        if let Err(response) = self.attach_pair(idx, registry) {
            return response;
        }
        let Some(sock) = self.slot(idx) else {
            return Response::Errno(libc::EBADF);
        };
        let handle = if sock.span == Span::V6Only {
            None
        } else {
            // SO_REUSEPORT: join a listener on exactly this address if there is one.
            let shared = sock
                .opts
                .reuseport
                .then(|| self.find_group(local, sock.uid))
                .flatten();
            match shared {
                Some(handle) => Some(handle),
                None => {
                    // Linux clamps the backlog to somaxconn; the TCP layer does the same.
                    let backlog = usize::try_from(backlog).unwrap_or(usize::MAX);
                    match tcp.listen(local, backlog, sock.opts.tcp.clone()) {
                        Ok(handle) => Some(handle),
                        Err(_) => return Response::Errno(libc::EADDRINUSE),
                    }
                }
            }
        };
        if let Some(handle) = handle {
            let group = self.groups.entry(handle).or_insert_with(|| Group {
                members: Vec::new(),
                next: 0,
                pending: VecDeque::new(),
            });
            group.members.push(idx);
        }
        self.ports.insert(local.port(), binding);
        if let Some(sock) = self.slot_mut(idx) {
            sock.state = SockState::Listening { handle };
        }
        Response::Ok
    }

    fn find_group(&self, local: SocketAddrV4, uid: u32) -> Option<ListenerHandle> {
        self.groups.iter().find_map(|(handle, group)| {
            let first = group.members.first().and_then(|&m| self.slot(m))?;
            (first.local == Some(local) && first.opts.reuseport && first.uid == uid)
                .then_some(*handle)
        })
    }

    /// A listener member leaves its group; the last one closes the TCP listener.
    fn leave_group(&mut self, idx: usize, tcp: &mut TcpLayer) {
        let Some(SockState::Listening {
            handle: Some(handle),
        }) = self.slot(idx).map(|s| &s.state)
        else {
            return;
        };
        let handle = *handle;
        let Some(group) = self.groups.get_mut(&handle) else {
            return;
        };
        group.members.retain(|&m| m != idx);
        if group.members.is_empty() {
            if let Some(group) = self.groups.remove(&handle) {
                for (conn, _) in group.pending {
                    let _ = tcp.abort(conn);
                }
            }
            tcp.close_listener(handle);
        }
    }

    fn connect(
        &mut self,
        idx: usize,
        addr: SocketAddrV4,
        filler: u32,
        tcp: &mut TcpLayer,
        registry: &Registry,
        now: Instant,
    ) -> Response {
        let Some(sock) = self.slot_mut(idx) else {
            return Response::Errno(libc::EBADF);
        };
        match &mut sock.state {
            SockState::Unconnected => {}
            SockState::Datagram(_) => return Response::Errno(libc::EINVAL),
            SockState::Connecting { .. } => return Response::Errno(libc::EALREADY),
            SockState::Connected(stream) => {
                if stream.connect_unacked {
                    stream.connect_unacked = false;
                    return Response::Ok;
                }
                return Response::Errno(libc::EISCONN);
            }
            SockState::Listening { .. } => return Response::Errno(libc::EISCONN),
            SockState::Dead { error } => {
                return match error.take() {
                    Some(errno) => Response::Errno(errno),
                    None => Response::Stale,
                }
            }
        }
        if sock.family == Family::Inet6 && sock.opts.v6only {
            // A v6-only socket cannot reach IPv4 (the only protocol the stack has).
            return Response::Errno(libc::ENETUNREACH);
        }
        // Linux: connecting to INADDR_ANY means the local host.
        let remote_ip = if addr.ip().is_unspecified() {
            Ipv4Addr::LOCALHOST
        } else {
            *addr.ip()
        };
        if remote_ip.is_broadcast() || remote_ip.is_multicast() {
            return Response::Errno(libc::ENETUNREACH);
        }
        if addr.port() == 0 {
            return Response::Errno(libc::ECONNREFUSED);
        }
        let remote = SocketAddrV4::new(remote_ip, addr.port());
        let local = match sock.local {
            Some(local) => local,
            None => match self.autobind(idx, true) {
                Ok(local) => local,
                Err(errno) => return Response::Errno(errno),
            },
        };
        let Some(sock) = self.slot(idx) else {
            return Response::Errno(libc::EBADF);
        };
        let handle = match tcp.connect(Some(local), remote, sock.opts.tcp.clone(), now) {
            Ok(handle) => handle,
            Err(e) => {
                let errno = match e {
                    ConnectError::AddressInUse
                    | ConnectError::NoPortsAvailable
                    | ConnectError::NoSourceAddress => libc::EADDRNOTAVAIL,
                    ConnectError::InvalidRemote => libc::ECONNREFUSED,
                };
                if !sock.explicit_bind {
                    self.ports.remove(local.port(), idx);
                    if let Some(sock) = self.slot_mut(idx) {
                        sock.local = None;
                    }
                }
                return Response::Errno(errno);
            }
        };
        // The handshake is under way: now the socket needs its byte stream.
        if let Err(response) = self.attach_pair(idx, registry) {
            let _ = tcp.abort(handle);
            return response;
        }
        let Some(sock) = self.slot(idx) else {
            return Response::Errno(libc::EBADF);
        };
        let actual = tcp.connection(handle).map_or(local, |c| c.local());
        let binding = sock.binding(idx, *actual.ip(), sock.span, false);
        self.ports.insert(actual.port(), binding);
        if let Some(sock) = self.slot_mut(idx) {
            sock.local = Some(actual);
            let filler = usize::try_from(filler).unwrap_or(0);
            sock.skip += filler;
            sock.state = SockState::Connecting {
                handle,
                peer: remote,
            };
        }
        self.track_conn(handle, idx);
        self.mark(idx);
        Response::InProgress
    }

    fn disconnect(&mut self, idx: usize, tcp: &mut TcpLayer, registry: &Registry) -> Response {
        let Some(sock) = self.slot(idx) else {
            return Response::Errno(libc::EBADF);
        };
        match sock.handle() {
            Some(handle) => {
                // Linux tcp_disconnect: RST to the peer; the socket can connect again.
                let _ = tcp.abort(handle);
                self.kill(idx, None, registry);
                Response::Ok
            }
            None => Response::Ok,
        }
    }

    fn take_error(&mut self, idx: usize, tcp: &mut TcpLayer) -> Response {
        let Some(sock) = self.slot_mut(idx) else {
            return Response::Errno(libc::EBADF);
        };
        let errno = match &mut sock.state {
            SockState::Dead { error } => error.take().unwrap_or(0),
            SockState::Connected(stream) => tcp.take_error(stream.handle).map_or(0, errno_of),
            _ => 0,
        };
        Response::Values(vec![i64::from(errno)])
    }

    fn set_option(
        &mut self,
        idx: usize,
        level: i32,
        name: i32,
        values: &[i64],
        tcp: &mut TcpLayer,
        now: Instant,
    ) -> Response {
        let Some(sock) = self.slot(idx) else {
            return Response::Errno(libc::EBADF);
        };
        let target = sock.target(tcp);
        let Some(sock) = self.slot_mut(idx) else {
            return Response::Errno(libc::EBADF);
        };
        if let Err(errno) = sock.opts.set(target, level, name, values) {
            return Response::Errno(errno);
        }
        if let Some(handle) = sock.handle() {
            let _ = tcp.set_options(handle, sock.opts.tcp.clone(), now);
        }
        Response::Ok
    }

    fn shutdown(&mut self, idx: usize, how: i32, tcp: &mut TcpLayer) -> Response {
        if !(libc::SHUT_RD..=libc::SHUT_RDWR).contains(&how) {
            return Response::Errno(libc::EINVAL);
        }
        let Some(sock) = self.slot(idx) else {
            return Response::Errno(libc::EBADF);
        };
        match &sock.state {
            SockState::Unconnected | SockState::Dead { .. } | SockState::Datagram(_) => {
                Response::Errno(libc::ENOTCONN)
            }
            SockState::Connecting { .. } | SockState::Connected(_) => Response::Ok,
            SockState::Listening { .. } => {
                // Linux inet_shutdown: a listener stops listening on SHUT_RD (and RDWR).
                if how != libc::SHUT_WR {
                    self.leave_group(idx, tcp);
                    let local = self.slot(idx).and_then(|s| s.local);
                    if let Some(sock) = self.slot_mut(idx) {
                        sock.state = SockState::Unconnected;
                    }
                    if let (Some(local), Some(sock)) = (local, self.slot(idx)) {
                        let binding = sock.binding(idx, *local.ip(), sock.span, false);
                        self.ports.insert(local.port(), binding);
                    }
                }
                Response::Ok
            }
        }
    }

    fn replace(&mut self, idx: usize, registry: &Registry) -> Result<OwnedFd, Response> {
        let Some(sock) = self.slot(idx) else {
            return Err(Response::Errno(libc::EBADF));
        };
        if !matches!(sock.state, SockState::Dead { .. }) || sock.pair.is_some() {
            return Err(Response::Errno(libc::EINVAL));
        }
        // A fresh unconnected socket again; the next listen or connect brings a pair.
        let failed = |e: std::io::Error| Response::Errno(e.raw_os_error().unwrap_or(libc::ENOMEM));
        let app = sys::unconnected_stream().map_err(failed)?;
        let new_ino = sys::socket_inode(app.as_fd()).ok_or(Response::Errno(libc::ENOTSOCK))?;
        let Some(sock) = self.slot_mut(idx) else {
            return Err(Response::Errno(libc::EBADF));
        };
        let old_ino = sock.ino;
        sock.ino = new_ino;
        sock.state = SockState::Unconnected;
        sock.skip = 0;
        sock.flags = PairFlags::default();
        self.by_ino.remove(&old_ino);
        self.by_ino.insert(new_ino, idx);
        self.remember_pairless(idx, new_ino, registry);
        Ok(app)
    }

    fn tcp_info(&self, idx: usize, tcp: &TcpLayer) -> Response {
        let Some(sock) = self.slot(idx) else {
            return Response::Errno(libc::EBADF);
        };
        let mut values = vec![0i64; TcpInfoValues::COUNT];
        let state = match &sock.state {
            SockState::Listening { .. } => linux_state::LISTEN,
            SockState::Unconnected | SockState::Dead { .. } | SockState::Datagram(_) => {
                linux_state::CLOSE
            }
            SockState::Connecting { handle, .. } => tcp
                .state(*handle)
                .map_or(linux_state::CLOSE, linux_state_of),
            SockState::Connected(stream) => tcp
                .state(stream.handle)
                .map_or(linux_state::CLOSE, linux_state_of),
        };
        values[TcpInfoValues::STATE] = state;
        if let Some(info) = sock.handle().and_then(|h| tcp.info(h)) {
            let micros = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
            let int = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
            let mss = info.send_mss.max(1);
            values[TcpInfoValues::RTO_US] = micros(info.rto);
            values[TcpInfoValues::SND_MSS] = int(info.send_mss);
            values[TcpInfoValues::RCV_MSS] = int(info.send_mss);
            values[TcpInfoValues::UNACKED] = int(info.unacked.div_ceil(mss));
            values[TcpInfoValues::RTT_US] = info.srtt.map_or(0, micros);
            values[TcpInfoValues::RTTVAR_US] = micros(info.rttvar);
            values[TcpInfoValues::SND_SSTHRESH] = int(info.ssthresh / mss);
            values[TcpInfoValues::SND_CWND] = int(info.cwnd / mss);
            values[TcpInfoValues::TOTAL_RETRANS] =
                i64::try_from(info.counters.retransmits).unwrap_or(i64::MAX);
            values[TcpInfoValues::SND_WSCALE] = info.snd_wscale.map_or(0, i64::from);
            values[TcpInfoValues::RCV_WSCALE] = info.rcv_wscale.map_or(0, i64::from);
            // tcpi_options: TCPI_OPT_TIMESTAMPS 1, SACK 2, WSCALE 4.
            values[TcpInfoValues::OPTIONS] = i64::from(info.timestamps)
                | (i64::from(info.sack) << 1)
                | (i64::from(info.snd_wscale.is_some()) << 2);
            values[TcpInfoValues::BYTES_ACKED] =
                i64::try_from(info.counters.bytes_acked).unwrap_or(i64::MAX);
            values[TcpInfoValues::BYTES_RECEIVED] =
                i64::try_from(info.counters.bytes_received).unwrap_or(i64::MAX);
            values[TcpInfoValues::SEGS_OUT] =
                i64::try_from(info.counters.segments_out).unwrap_or(i64::MAX);
            values[TcpInfoValues::SEGS_IN] =
                i64::try_from(info.counters.segments_in).unwrap_or(i64::MAX);
        }
        Response::Values(values)
    }

    fn out_queue(&self, idx: usize, tcp: &TcpLayer) -> Response {
        let Some(sock) = self.slot(idx) else {
            return Response::Errno(libc::EBADF);
        };
        let queued = match &sock.state {
            SockState::Connected(stream) => {
                let in_pair = sock
                    .pair
                    .as_ref()
                    .and_then(|p| sys::bytes_readable(p.as_fd()).ok())
                    .map_or(0, |n| n.saturating_sub(sock.skip));
                tcp.info(stream.handle).map_or(0, |i| i.send_queue) + stream.to_tcp.len() + in_pair
            }
            _ => 0,
        };
        Response::Values(vec![i64::try_from(queued).unwrap_or(i64::MAX)])
    }
}

/// A new socketpair for a socket of `kind`: (program's end, our end non-blocking, the program
/// end's inode). A TCP socket's pair is a byte stream whose program end already holds the
/// sentinel; a UDP socket's is SOCK_SEQPACKET, one record per datagram (`datagram`).
fn new_pair(kind: SockKind) -> Result<(OwnedFd, OwnedFd, u64), Response> {
    let failed = |e: std::io::Error| Response::Errno(e.raw_os_error().unwrap_or(libc::ENOMEM));
    let (app, pair) = match kind {
        SockKind::Stream => sys::stream_pair(),
        SockKind::Dgram => sys::seqpacket_pair(),
    }
    .map_err(failed)?;
    sys::set_nonblocking(pair.as_fd()).map_err(failed)?;
    if kind == SockKind::Stream && sys::write(app.as_fd(), &[ustack::control::SENTINEL]) != Ok(1) {
        return Err(Response::Errno(libc::ENOBUFS));
    }
    let ino = sys::socket_inode(app.as_fd()).ok_or(Response::Errno(libc::ENOTSOCK))?;
    Ok((app, pair, ino))
}

/// The errno Linux reports for a connection error.
fn errno_of(error: ConnectionError) -> i32 {
    match error {
        ConnectionError::Refused => libc::ECONNREFUSED,
        ConnectionError::Reset => libc::ECONNRESET,
        ConnectionError::TimedOut => libc::ETIMEDOUT,
        ConnectionError::NetworkUnreachable => libc::ENETUNREACH,
        ConnectionError::HostUnreachable => libc::EHOSTUNREACH,
        ConnectionError::HostDown => libc::EHOSTDOWN,
        ConnectionError::NoNetwork => libc::ENONET,
        ConnectionError::ProtocolUnavailable => libc::ENOPROTOOPT,
        ConnectionError::Unsupported => libc::EOPNOTSUPP,
        ConnectionError::ProtocolError => libc::EPROTO,
        ConnectionError::MessageTooLong => libc::EMSGSIZE,
    }
}

/// TCP_INFO's state. A connection in TIME-WAIT reads as CLOSE: on Linux the time-wait state
/// lives in a separate mini-socket and the user's socket is closed.
fn linux_state_of(state: State) -> i64 {
    match state {
        State::SynSent => linux_state::SYN_SENT,
        State::SynReceived => linux_state::SYN_RECV,
        State::Established => linux_state::ESTABLISHED,
        State::FinWait1 => linux_state::FIN_WAIT1,
        State::FinWait2 => linux_state::FIN_WAIT2,
        State::CloseWait => linux_state::CLOSE_WAIT,
        State::Closing => linux_state::CLOSING,
        State::LastAck => linux_state::LAST_ACK,
        State::TimeWait | State::Closed => linux_state::CLOSE,
    }
}

/// Ports below 1024 need uid 0 or CAP_NET_BIND_SERVICE in the caller's effective set.
fn may_bind_privileged(caller: Caller) -> bool {
    if caller.uid == 0 {
        return true;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", caller.pid)) else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_NET_BIND_SERVICE) != 0)
}
