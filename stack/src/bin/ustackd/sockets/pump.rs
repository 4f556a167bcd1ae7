//! Moving bytes and connections between the TCP layer and the programs' socketpairs.
//!
//! Run after every event and after every `Host::poll` (which may have delivered loopback
//! traffic): it reports whether anything moved, so the driver can poll the host again until
//! things settle.

use std::net::SocketAddrV4;
use std::os::fd::{AsFd, OwnedFd};

use mio::Registry;
use nix::errno::Errno;
use ustack::control::{AcceptRecord, Family, SockKind, SENTINEL};
use ustack::host::Host;
use ustack::tcp::connection::{RecvError, SendError, State};
use ustack::tcp::layer::{ConnHandle, ListenerHandle, TcpEvent, TcpLayer};
use ustack::time::Instant;

use super::ports::Binding;
use super::{errno_of, sys, AppSockets, ByteQueue, PairFlags, Sock, SockState, Stream};

/// Bytes moved per read or write call, and the most held in each direction per connection.
pub const CHUNK: usize = 64 * 1024;

/// The most bytes forwarded while keeping a byte of the pair's queue unread. The kept byte
/// pins the sender's whole last buffer (skb) in the kernel, and a writer using splice or
/// sendfile keeps appending to that buffer: left pinned, it grows until the writer blocks for
/// good. So after this much data the last byte is consumed as well; the next write is kept
/// again. (The cost: an error that arrives while nothing is queued after a bulk write reads
/// as EOF instead of ECONNRESET.)
const HOLD_LIMIT: usize = 64 * 1024;

/// Connections handed to one listener group per pump (the rest wait for the next turn).
const MAX_ACCEPTS_PER_PUMP: usize = 256;

enum Delivery {
    Done,
    /// The listener's pair is full; try again when it is writable.
    Again,
    /// The connection cannot be handed over.
    Failed,
}

impl AppSockets {
    /// Moves what can move; true if anything changed.
    /// Looks only at the sockets something happened to (see `AppSockets::dirty`); one that
    /// made progress is looked at again in the next round, as it may have more to move.
    pub fn pump(&mut self, host: &mut Host, registry: &Registry, now: Instant) -> bool {
        self.busy = false;
        let mut progress = self.pump_listeners(host.tcp_mut(), registry, now);
        self.collect_stack_events(host);
        for idx in std::mem::take(&mut self.dirty) {
            match self.slots.get_mut(idx).and_then(Option::as_mut) {
                Some(sock) => sock.dirty = false,
                None => continue,
            }
            if self.pump_one(idx, host, registry, now) {
                progress = true;
                self.mark(idx);
            }
        }
        progress
    }

    /// Marks the sockets whose TCP connection or UDP socket has news.
    fn collect_stack_events(&mut self, host: &mut Host) {
        let mut events = std::mem::take(&mut self.events);
        host.take_tcp_events(&mut events);
        for event in events.drain(..) {
            if let TcpEvent::Connection(handle, _) = event {
                if let Some(&idx) = self.by_conn.get(&handle) {
                    self.mark(idx);
                }
            }
        }
        self.events = events;
        for handle in host.udp_mut().take_ready() {
            if let Some(&idx) = self.by_udp.get(&handle) {
                self.mark(idx);
            }
        }
    }

    pub(super) fn pump_one(
        &mut self,
        idx: usize,
        host: &mut Host,
        registry: &Registry,
        now: Instant,
    ) -> bool {
        self.confirm_hang_up(idx);
        let Some(sock) = self.slot(idx) else {
            return false;
        };
        let hung_up = sock.flags.hung_up;
        let tcp = host.tcp_mut();
        match &sock.state {
            SockState::Datagram(_) => self.pump_datagram(idx, host, registry, now),
            SockState::Dead { .. } => false,
            SockState::Unconnected => {
                if hung_up {
                    self.remove(idx, registry);
                    return true;
                }
                self.discard_junk(idx);
                false
            }
            SockState::Listening { .. } => {
                if hung_up {
                    self.leave_group(idx, tcp);
                    self.remove(idx, registry);
                    return true;
                }
                false
            }
            SockState::Connecting { handle, .. } => {
                let handle = *handle;
                self.pump_connecting(idx, handle, tcp, registry)
            }
            SockState::Connected(_) => self.pump_stream(idx, tcp, registry),
        }
    }

    /// A reported HUP is a close only if the program's end is gone (see `diag`).
    fn confirm_hang_up(&mut self, idx: usize) {
        let Some(sock) = self.slots.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if !sock.flags.hup_reported || sock.flags.hung_up {
            return;
        }
        sock.flags.hup_reported = false;
        let exists = self.diag.unix_socket_exists(sock.ino);
        // If the kernel cannot tell, a HUP is taken for a close (the common case).
        if exists != Some(true) {
            sock.flags.hung_up = true;
        }
    }

    /// An unconnected socket's pair holds nothing worth reading (a failed connect's filler,
    /// bytes written before connect): drop all but the last byte.
    fn discard_junk(&mut self, idx: usize) {
        let Some(sock) = self.slots.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if !sock.flags.readable {
            return;
        }
        sock.flags.readable = false;
        let Some(pair) = &sock.pair else {
            return;
        };
        let queued = sys::bytes_readable(pair.as_fd()).unwrap_or(0);
        if queued > 1 && sys::discard(pair.as_fd(), queued - 1, &mut self.scratch).is_ok() {
            sock.skip = 1;
        }
    }

    fn pump_connecting(
        &mut self,
        idx: usize,
        handle: ConnHandle,
        tcp: &mut TcpLayer,
        registry: &Registry,
    ) -> bool {
        let Some(sock) = self.slots.get_mut(idx).and_then(Option::as_mut) else {
            return false;
        };
        if sock.flags.hung_up {
            // Linux: close() during SYN-SENT just drops the connection.
            let _ = tcp.close(handle);
            self.remove(idx, registry);
            return true;
        }
        let Some(readiness) = tcp.readiness(handle) else {
            self.kill(idx, Some(libc::ECONNREFUSED), registry);
            return true;
        };
        if readiness.error || tcp.state(handle) == Some(State::Closed) {
            let errno = tcp.take_error(handle).map_or(libc::ECONNREFUSED, errno_of);
            let _ = tcp.close(handle);
            self.kill(idx, Some(errno), registry);
            return true;
        }
        if !readiness.connected {
            return false;
        }
        let Some(pair) = &sock.pair else {
            return false;
        };
        // The shim writes the filler after our reply to connect; wait until all of it is here
        // so that none of it is taken for data.
        let queued = sys::bytes_readable(pair.as_fd()).unwrap_or(0);
        if queued < sock.skip {
            return false;
        }
        // Keep one byte (the last filler byte, or the sentinel) unread: see the module doc.
        if sys::discard(pair.as_fd(), sock.skip - 1, &mut self.scratch).is_err() {
            return false;
        }
        sock.skip = 1;
        let peer = match &sock.state {
            SockState::Connecting { peer, .. } => *peer,
            _ => return false,
        };
        sock.state = SockState::Connected(Box::new(new_stream(handle, peer, true)));
        sock.flags.readable = true;
        sock.flags.writable = true;
        true
    }

    fn pump_stream(&mut self, idx: usize, tcp: &mut TcpLayer, registry: &Registry) -> bool {
        let Some(sock) = self.slots.get_mut(idx).and_then(Option::as_mut) else {
            return false;
        };
        match move_stream(sock, &mut self.scratch, tcp) {
            StreamOutcome::Moved(progress) => progress,
            StreamOutcome::Failed(errno) => {
                let hung_up = sock.flags.hung_up;
                if hung_up {
                    self.remove(idx, registry);
                } else {
                    self.kill(idx, Some(errno), registry);
                }
                true
            }
            StreamOutcome::Finished => {
                self.remove(idx, registry);
                true
            }
        }
    }

    fn pump_listeners(&mut self, tcp: &mut TcpLayer, registry: &Registry, now: Instant) -> bool {
        let handles: Vec<ListenerHandle> = self.groups.keys().copied().collect();
        let mut progress = false;
        for handle in handles {
            for _ in 0..MAX_ACCEPTS_PER_PUMP {
                let Some(group) = self.groups.get_mut(&handle) else {
                    break;
                };
                if group.pending.is_empty() {
                    match tcp.accept(handle) {
                        Some(conn) => group.pending.push_back(conn),
                        None => break,
                    }
                }
                let Some(&(conn, peer)) = group.pending.front() else {
                    break;
                };
                let count = group.members.len();
                let mut chosen = None;
                for k in 0..count {
                    let Some(&member) = group.members.get((group.next + k) % count.max(1)) else {
                        continue;
                    };
                    let ready = self
                        .slots
                        .get(member)
                        .and_then(Option::as_ref)
                        .is_some_and(|s| s.flags.writable && s.pair.is_some() && !s.flags.hung_up);
                    if ready {
                        chosen = Some((member, k));
                        break;
                    }
                }
                let Some((member, k)) = chosen else {
                    break;
                };
                if let Some(group) = self.groups.get_mut(&handle) {
                    group.next = (group.next + k + 1) % count.max(1);
                }
                match self.deliver(member, conn, peer, tcp, registry, now) {
                    Delivery::Done => {
                        progress = true;
                        if let Some(group) = self.groups.get_mut(&handle) {
                            group.pending.pop_front();
                        }
                    }
                    Delivery::Again => {
                        if let Some(sock) = self.slots.get_mut(member).and_then(Option::as_mut) {
                            sock.flags.writable = false;
                        }
                    }
                    Delivery::Failed => {
                        let _ = tcp.abort(conn);
                        if let Some(group) = self.groups.get_mut(&handle) {
                            group.pending.pop_front();
                        }
                    }
                }
            }
        }
        progress
    }

    /// Hands an accepted connection to listener `member`: a new pair, whose program end
    /// travels in an accept record on the listener's pair.
    fn deliver(
        &mut self,
        member: usize,
        conn: ConnHandle,
        peer: SocketAddrV4,
        tcp: &mut TcpLayer,
        registry: &Registry,
        now: Instant,
    ) -> Delivery {
        let Some(listener) = self.slots.get(member).and_then(Option::as_ref) else {
            return Delivery::Failed;
        };
        let Some(listener_pair) = &listener.pair else {
            return Delivery::Failed;
        };
        let Ok((conn_app, conn_pair)) = sys::stream_pair() else {
            return Delivery::Failed;
        };
        let prepared = sys::write(conn_app.as_fd(), &[SENTINEL]).is_ok()
            && sys::set_nonblocking(conn_pair.as_fd()).is_ok();
        let Some(ino) = sys::socket_inode(conn_app.as_fd()).filter(|_| prepared) else {
            return Delivery::Failed;
        };
        let Some(local) = tcp.connection(conn).map(|c| c.local()) else {
            return Delivery::Failed;
        };
        let record = AcceptRecord { peer, local }.to_bytes();
        match sys::send_with_fd(listener_pair.as_fd(), &record, conn_app.as_fd()) {
            Ok(n) if n == record.len() => {}
            Ok(_) => return Delivery::Failed,
            Err(Errno::EAGAIN) => return Delivery::Again,
            Err(_) => return Delivery::Failed,
        }
        drop(conn_app);
        let sock = accepted_sock(listener, ino, conn_pair, local, conn, peer);
        let _ = tcp.set_options(conn, sock.opts.tcp.clone(), now);
        let binding = sock.binding(0, *local.ip(), sock.span, false);
        match self.insert(sock, registry) {
            Some(idx) => {
                self.ports.insert(
                    local.port(),
                    Binding {
                        owner: idx,
                        ..binding
                    },
                );
                Delivery::Done
            }
            // The program got the record but the daemon cannot serve the pair: the program
            // sees a reset connection.
            None => Delivery::Failed,
        }
    }
}

enum StreamOutcome {
    /// Whether anything moved.
    Moved(bool),
    /// The connection failed (already closed in the TCP layer) with this errno.
    Failed(i32),
    /// The program is gone and the connection was handed to the TCP layer to finish.
    Finished,
}

/// One connected socket's work: TCP → program, program → TCP, then endings.
fn move_stream(sock: &mut Sock, scratch: &mut [u8], tcp: &mut TcpLayer) -> StreamOutcome {
    let SockState::Connected(stream) = &mut sock.state else {
        return StreamOutcome::Moved(false);
    };
    let Some(pair) = &sock.pair else {
        return StreamOutcome::Moved(false);
    };
    let handle = stream.handle;
    if sock.flags.reset {
        // The program closed with unread data (ECONNRESET on our end): Linux sends RST.
        let _ = tcp.abort(handle);
        return StreamOutcome::Finished;
    }
    let mut progress = false;
    let mut failure = None;

    // TCP → program.
    loop {
        if !stream.to_app.is_empty() {
            if stream.app_stopped_reading {
                stream.to_app.clear();
                continue;
            }
            if !sock.flags.writable {
                break;
            }
            match sys::write(pair.as_fd(), stream.to_app.data()) {
                Ok(n) => {
                    stream.to_app.consume(n);
                    progress = true;
                }
                Err(Errno::EAGAIN) => {
                    sock.flags.writable = false;
                    break;
                }
                // EPIPE: the program shut down reading (or is gone); drop what arrives.
                Err(_) => {
                    stream.app_stopped_reading = true;
                    stream.to_app.clear();
                }
            }
            continue;
        }
        if stream.fin_to_app {
            break;
        }
        match tcp.recv(handle, scratch) {
            Ok(0) => {
                sys::shutdown_write(pair.as_fd());
                stream.fin_to_app = true;
                progress = true;
                break;
            }
            Ok(n) => {
                stream.to_app.extend(scratch.get(..n).unwrap_or(&[]));
                progress = true;
            }
            Err(RecvError::WouldBlock) | Err(RecvError::NotConnected) => break,
            Err(RecvError::Failed(e)) => {
                failure = Some(errno_of(e));
                break;
            }
        }
    }

    // Program → TCP.
    while failure.is_none() {
        if !stream.to_tcp.is_empty() {
            match tcp.send(handle, stream.to_tcp.data()) {
                Ok(0) => break,
                Ok(n) => {
                    stream.to_tcp.consume(n);
                    progress = true;
                }
                Err(SendError::NotYetConnected) => break,
                Err(SendError::Shutdown) => {
                    stream.to_tcp.clear();
                    break;
                }
                Err(SendError::Failed(e)) => failure = Some(errno_of(e)),
            }
            continue;
        }
        if stream.fin_to_tcp || !sock.flags.readable {
            break;
        }
        let Ok(queued) = sys::bytes_readable(pair.as_fd()) else {
            break;
        };
        if queued <= sock.skip {
            sock.flags.readable = false;
            if sock.flags.read_closed || sock.flags.hung_up {
                let _ = tcp.shutdown_write(handle);
                stream.fin_to_tcp = true;
                progress = true;
            }
            break;
        }
        // Read all but the last byte; forward the last one by peeking (module doc).
        let want = (queued - 1).min(sock.skip + CHUNK).min(scratch.len());
        let mut read = 0;
        if want > 0 {
            match sys::read(pair.as_fd(), scratch.get_mut(..want).unwrap_or(&mut [])) {
                Ok(n) => read = n,
                Err(Errno::EAGAIN) => {
                    sock.flags.readable = false;
                    break;
                }
                Err(_) => break,
            }
            let data_start = sock.skip.min(read);
            stream
                .to_tcp
                .extend(scratch.get(data_start..read).unwrap_or(&[]));
            sock.skip -= data_start;
        }
        stream.forwarded_since_empty += read;
        if sock.skip == 0 && queued - read == 1 {
            if stream.forwarded_since_empty < HOLD_LIMIT {
                if let Ok(Some(byte)) = sys::peek_byte(pair.as_fd()) {
                    stream.to_tcp.extend(&[byte]);
                    sock.skip = 1;
                }
            } else {
                let mut byte = [0u8; 1];
                if let Ok(1) = sys::read(pair.as_fd(), &mut byte) {
                    stream.to_tcp.extend(&byte);
                    stream.forwarded_since_empty = 0;
                }
            }
        }
        progress = true;
    }

    if failure.is_none() {
        match tcp.readiness(handle) {
            None => failure = Some(libc::ECONNRESET),
            // Reset or timed out after everything was read (the FIN was passed on already).
            Some(r) if r.error => {
                failure = Some(tcp.take_error(handle).map_or(libc::ECONNRESET, errno_of));
            }
            Some(_) => {}
        }
    }
    if let Some(errno) = failure {
        let _ = tcp.close(handle);
        return StreamOutcome::Failed(errno);
    }

    // The program closed its fd: once everything it wrote is with TCP, close the connection
    // (RST if received data was never read, as Linux does).
    if sock.flags.hung_up && stream.fin_to_tcp && stream.to_tcp.is_empty() {
        let unread =
            !stream.to_app.is_empty() || tcp.info(handle).is_some_and(|i| i.recv_queue > 0);
        if unread {
            let _ = tcp.abort(handle);
        } else {
            let _ = tcp.close(handle);
        }
        return StreamOutcome::Finished;
    }
    StreamOutcome::Moved(progress)
}

fn new_stream(handle: ConnHandle, peer: SocketAddrV4, connect_unacked: bool) -> Stream {
    Stream {
        handle,
        peer,
        to_tcp: ByteQueue::default(),
        to_app: ByteQueue::default(),
        connect_unacked,
        fin_to_app: false,
        fin_to_tcp: false,
        app_stopped_reading: false,
        forwarded_since_empty: 0,
    }
}

/// The record of a connection accepted on `listener`: it inherits family, owner and options.
fn accepted_sock(
    listener: &Sock,
    ino: u64,
    pair: OwnedFd,
    local: SocketAddrV4,
    handle: ConnHandle,
    peer: SocketAddrV4,
) -> Sock {
    Sock {
        ino,
        family: listener.family,
        kind: SockKind::Stream,
        uid: listener.uid,
        pair: Some(pair),
        opts: listener.opts.clone(),
        local: Some(local),
        span: match listener.family {
            Family::Inet => super::ports::Span::V4,
            Family::Inet6 => listener.span,
        },
        explicit_bind: false,
        bind_locks: (false, false),
        state: SockState::Connected(Box::new(new_stream(handle, peer, false))),
        skip: 1,
        flags: PairFlags::default(),
        dirty: false,
    }
}
