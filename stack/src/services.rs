//! Built-in TCP test services, so TCP can be exercised by kernel tools before any program runs
//! on the stack: echo (RFC 862, port 7), discard (RFC 863, port 9) and chargen (RFC 864,
//! port 19). Each is a small state machine over TCP handles; no I/O, no clock. A session is
//! stepped only when the TCP layer reports a change for it ([`Services::notify`]), so idle
//! sessions cost nothing.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::tcp::connection::RecvError;
use crate::tcp::layer::{ConnHandle, ListenerHandle, TcpEvent, TcpLayer};

const ECHO_PORT: u16 = 7;
const DISCARD_PORT: u16 = 9;
const CHARGEN_PORT: u16 = 19;
const BACKLOG: usize = 4096;
/// Bytes an echo connection holds between reading and writing them back.
const ECHO_BUFFER: usize = 64 * 1024;
/// Bytes read per `recv` call.
const READ_CHUNK: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Echo,
    Discard,
    Chargen,
}

#[derive(Debug)]
struct Session {
    kind: Kind,
    handle: ConnHandle,
    /// Echo: bytes read and not yet written back.
    pending: Vec<u8>,
    /// Chargen: position in the RFC 864 line pattern.
    chargen_offset: usize,
    /// The peer finished sending (FIN read).
    peer_done: bool,
    /// In `Services::ready`.
    queued: bool,
}

/// The running services.
#[derive(Debug)]
pub struct Services {
    listeners: Vec<(Kind, ListenerHandle)>,
    sessions: HashMap<ConnHandle, Session>,
    /// Sessions (and whether a listener) with news since the last `poll`.
    ready: Vec<ConnHandle>,
    acceptable: bool,
    scratch: Vec<u8>,
    chargen_pattern: Vec<u8>,
}

impl Services {
    /// Listens on 0.0.0.0:7, :9 and :19. A port that is taken is skipped.
    pub fn start(tcp: &mut TcpLayer) -> Services {
        let mut listeners = Vec::new();
        for (kind, port) in [
            (Kind::Echo, ECHO_PORT),
            (Kind::Discard, DISCARD_PORT),
            (Kind::Chargen, CHARGEN_PORT),
        ] {
            let addr = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
            let options = tcp.config().default_socket_options();
            if let Ok(handle) = tcp.listen(addr, BACKLOG, options) {
                listeners.push((kind, handle));
            }
        }
        Services {
            listeners,
            sessions: HashMap::new(),
            ready: Vec::new(),
            acceptable: true,
            scratch: vec![0; READ_CHUNK],
            chargen_pattern: chargen_pattern(),
        }
    }

    /// Accepts new connections and moves data on every session.
    /// Takes a TCP event if it is about a service's connection or listener; returns false
    /// for everyone else's.
    pub fn notify(&mut self, event: TcpEvent) -> bool {
        match event {
            TcpEvent::Connection(handle, _) => match self.sessions.get_mut(&handle) {
                Some(session) => {
                    if !session.queued {
                        session.queued = true;
                        self.ready.push(handle);
                    }
                    true
                }
                None => false,
            },
            TcpEvent::Acceptable(listener) if self.listeners.iter().any(|l| l.1 == listener) => {
                self.acceptable = true;
                true
            }
            _ => false,
        }
    }

    /// Accepts new connections and steps the sessions with news.
    pub fn poll(&mut self, tcp: &mut TcpLayer) {
        if std::mem::take(&mut self.acceptable) {
            for &(kind, listener) in &self.listeners {
                while let Some((handle, _peer)) = tcp.accept(listener) {
                    self.sessions.insert(
                        handle,
                        Session {
                            kind,
                            handle,
                            pending: Vec::new(),
                            chargen_offset: 0,
                            peer_done: false,
                            queued: true,
                        },
                    );
                    self.ready.push(handle);
                }
            }
        }
        for handle in std::mem::take(&mut self.ready) {
            let Some(session) = self.sessions.get_mut(&handle) else {
                continue;
            };
            session.queued = false;
            if !session.step(tcp, &mut self.scratch, &self.chargen_pattern) {
                self.sessions.remove(&handle);
            }
        }
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }
}

impl Session {
    /// Moves what can be moved; false once the session is over (its handle closed).
    /// Runs the session until it can do nothing more without news from TCP. Events are
    /// edge-triggered, so echo, which stops reading when its buffer is full, goes round again
    /// after sending: stopping with readable data and room for it would stall. Returns false
    /// once the session is over.
    fn step(&mut self, tcp: &mut TcpLayer, scratch: &mut [u8], pattern: &[u8]) -> bool {
        loop {
            match self.step_once(tcp, scratch, pattern) {
                None => return false,
                Some(true) if self.kind == Kind::Echo => {}
                Some(_) => return true,
            }
        }
    }

    /// One read-then-write pass: `None` when the session ended, else whether bytes moved.
    fn step_once(
        &mut self,
        tcp: &mut TcpLayer,
        scratch: &mut [u8],
        pattern: &[u8],
    ) -> Option<bool> {
        let mut moved = false;
        // Read (echo only as far as it can hold; the others read everything and drop it).
        while !self.peer_done {
            let room = match self.kind {
                Kind::Echo => ECHO_BUFFER
                    .saturating_sub(self.pending.len())
                    .min(scratch.len()),
                Kind::Discard | Kind::Chargen => scratch.len(),
            };
            if room == 0 {
                break;
            }
            match tcp.recv(self.handle, &mut scratch[..room]) {
                Ok(0) => {
                    self.peer_done = true;
                    moved = true;
                }
                Ok(n) => {
                    moved = true;
                    if self.kind == Kind::Echo {
                        self.pending.extend_from_slice(&scratch[..n]);
                    }
                }
                Err(RecvError::WouldBlock) => break,
                Err(_) => return self.finish(tcp, true),
            }
        }
        // Write.
        match self.kind {
            Kind::Echo => {
                while !self.pending.is_empty() {
                    match tcp.send(self.handle, &self.pending) {
                        Ok(0) => break,
                        Ok(n) => {
                            moved = true;
                            self.pending.drain(..n);
                        }
                        Err(_) => return self.finish(tcp, true),
                    }
                }
            }
            Kind::Chargen => loop {
                let line_start = self.chargen_offset % LINE_PATTERN_LEN;
                let chunk = &pattern[line_start..line_start + LINE_PATTERN_LEN];
                match tcp.send(self.handle, chunk) {
                    Ok(0) => break,
                    Ok(n) => self.chargen_offset += n,
                    Err(_) => return self.finish(tcp, true),
                }
            },
            Kind::Discard => {}
        }
        // RFC 862/863/864: the service ends when the client closes its side.
        if self.peer_done && self.pending.is_empty() {
            return self.finish(tcp, false);
        }
        Some(moved)
    }

    fn finish(&mut self, tcp: &mut TcpLayer, failed: bool) -> Option<bool> {
        if failed {
            let _ = tcp.abort(self.handle);
        } else {
            let _ = tcp.close(self.handle);
        }
        None
    }
}

/// RFC 864's pattern: 95 printable ASCII characters, lines of 72 starting one character later
/// each time. `LINE_PATTERN_LEN` bytes (95 lines) repeat forever; the buffer holds two copies
/// so any offset has a full period after it.
const LINE_PATTERN_LEN: usize = 95 * 74;

fn chargen_pattern() -> Vec<u8> {
    let printable: Vec<u8> = (b' '..=b'~').collect();
    let mut period = Vec::with_capacity(LINE_PATTERN_LEN);
    for line in 0..printable.len() {
        for i in 0..72 {
            period.push(printable[(line + i) % printable.len()]);
        }
        period.extend_from_slice(b"\r\n");
    }
    let mut pattern = period.clone();
    pattern.extend_from_slice(&period);
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chargen_lines_follow_rfc864() {
        let pattern = chargen_pattern();
        assert_eq!(pattern.len(), 2 * LINE_PATTERN_LEN);
        let first: Vec<&[u8]> = pattern.split(|&b| b == b'\n').take(3).collect();
        assert!(first[0].starts_with(b" !\"#$%&'()*+,-./0123"));
        assert!(first[1].starts_with(b"!\"#$%&'()*+,-./01234"));
        assert_eq!(first[0].len(), 73); // 72 characters and the CR
        assert_eq!(&pattern[..LINE_PATTERN_LEN], &pattern[LINE_PATTERN_LEN..]);
    }
}
