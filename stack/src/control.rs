//! The control protocol between the daemon and its clients (the `ustack` CLI and the preload
//! shim `libsockshim.so`).
//!
//! Transport: one AF_UNIX SOCK_SEQPACKET connection per client (the shim opens one per thread)
//! to the daemon's socket path; every request is one message and gets exactly one response
//! message. This module is only the message format (no I/O), so both ends and the tests share
//! one definition.
//!
//! Encoding: UTF-8 text. A request is one line, `[@ID ]VERB ARGS...`; the response echoes the
//! `@ID` (so a client that gave up on an answer, e.g. after EINTR, can skip stale ones) and
//! then says `ok ...`, `errno N` or `error MESSAGE`. Text keeps `socat`-level debugging
//! possible; the data path never goes through here.
//!
//! # Socket requests
//!
//! `socket` creates a socket: the daemon makes the AF_UNIX socketpair (so both ends live in
//! its network namespace, where it can inspect them) and its reply carries the application's
//! end as an SCM_RIGHTS descriptor; `replace` does the same for an existing socket. Every
//! other request about an application socket carries that socket's fd (the application's end
//! of the socketpair, see DESIGN.md) as the first SCM_RIGHTS descriptor, and so does
//! `replace`. The daemon
//! identifies the socket by the descriptor's inode, which also proves that the caller holds
//! it: a process can act only on sockets it holds, and a socket inherited through `fork` or
//! `exec`, or duplicated with `dup`, is recognised without any per-process bookkeeping.
//! Addresses are IPv4: the shim maps IPv6 sockets' v4-mapped addresses (`::ffff:a.b.c.d`) and
//! `::` to and from them.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Where the daemon listens unless `--socket` or `USTACK_SOCKET` says otherwise.
pub const DEFAULT_SOCKET_PATH: &str = "/run/ustack/ustackd.sock";

/// Environment variable that overrides the socket path for the daemon and every client.
pub const SOCKET_ENV: &str = "USTACK_SOCKET";

/// Largest message either side sends; larger ones are refused.
pub const MAX_MESSAGE_LEN: usize = 256 * 1024;

/// Most descriptors one request may carry.
pub const MAX_REQUEST_FDS: usize = 4;

/// A listening socket's application fd carries one record of this many bytes per established
/// connection, with the connection's fd attached (SCM_RIGHTS). See [`AcceptRecord`].
pub const ACCEPT_RECORD_LEN: usize = 32;

/// The byte the creator of an application socket writes into it before anyone else can: it
/// stays unread at the head of the daemon's end (see the daemon's `sockets` module for why).
pub const SENTINEL: u8 = 0x55;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Inet,
    Inet6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockKind {
    Stream,
    Dgram,
}

/// What a socket is, as far as the shim's fast paths care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Fresh or bound: reads say ENOTCONN, writes EPIPE.
    Unconnected,
    /// The fd carries accept records.
    Listener,
    /// The fd is the byte stream (connecting, connected, or finished).
    Stream,
    /// A UDP socket not bound yet.
    Datagram,
    /// A bound UDP socket without a peer: every datagram sent names its destination.
    BoundDatagram,
    /// A connected UDP socket: datagrams without a destination go to the peer.
    ConnectedDatagram,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// All counters, by stable snake_case name.
    Stats,
    /// The sockets of the stack (`ustack ss`), from the `from`-th on: as many as fit in one
    /// message; the answer says where the next page starts.
    Sockets {
        from: u64,
    },
    /// A new socket. Fds: the application's end, then the daemon's end of a socketpair whose
    /// application end already holds [`SENTINEL`].
    Socket {
        family: Family,
        kind: SockKind,
    },
    /// bind(). `v4_mapped`: an IPv6 socket named a `::ffff:a.b.c.d` address (`addr` is then
    /// that address); an IPv6 socket's `::` arrives as 0.0.0.0 without the flag.
    Bind {
        addr: SocketAddrV4,
        v4_mapped: bool,
    },
    Listen {
        backlog: i32,
    },
    /// connect(). The caller wrote `filler` bytes into its end after the sentinel so that the
    /// fd is not writable until the daemon, at establishment, discards them.
    Connect {
        addr: SocketAddrV4,
        filler: u32,
    },
    /// connect() with AF_UNSPEC: dissolve the association. A UDP socket answers with its
    /// local address afterwards (port 0 if the disconnect released an automatic binding).
    Disconnect,
    /// The program closed a descriptor of the socket whose program-end inode is `ino`. If that
    /// was the last one, the daemon releases the socket (its port) before answering, so that
    /// the port is free when close() returns, as with the kernel; otherwise it would be
    /// released when the daemon sees the hang-up. Carries no descriptor: the daemon checks
    /// that the socket is really gone.
    Closed {
        ino: u64,
    },
    /// A UDP socket about to send without having been bound: bind it to the wildcard address
    /// and an ephemeral port now (Linux's `inet_autobind`), so getsockname shows the port.
    Autobind,
    /// getsockopt(SO_ERROR): the pending error, cleared.
    TakeError,
    LocalAddr,
    PeerAddr,
    GetOpt {
        level: i32,
        name: i32,
    },
    SetOpt {
        level: i32,
        name: i32,
        values: Vec<i64>,
    },
    /// shutdown() on the stack's side; the shim shuts its own end down after an `ok`.
    Shutdown {
        how: i32,
    },
    /// What is this fd? For fds the shim does not know (inherited through exec).
    Identify,
    /// Move the socket to a new socketpair, whose application end the `ok` reply carries
    /// (the shim puts it in place with dup3). Used after a failed connect, whose old pair
    /// was closed to deliver the error.
    Replace,
    /// TCP_INFO: see [`TcpInfoValues`] for the order.
    TcpInfo,
    /// SIOCOUTQ: bytes written and not yet acknowledged.
    OutQueue,
}

/// TCP_INFO fields in the order `Response::Values` carries them.
pub struct TcpInfoValues;

impl TcpInfoValues {
    pub const STATE: usize = 0;
    pub const RTO_US: usize = 1;
    pub const SND_MSS: usize = 2;
    pub const RCV_MSS: usize = 3;
    pub const UNACKED: usize = 4;
    pub const RTT_US: usize = 5;
    pub const RTTVAR_US: usize = 6;
    pub const SND_SSTHRESH: usize = 7;
    pub const SND_CWND: usize = 8;
    pub const TOTAL_RETRANS: usize = 9;
    pub const SND_WSCALE: usize = 10;
    pub const RCV_WSCALE: usize = 11;
    pub const OPTIONS: usize = 12;
    pub const BYTES_ACKED: usize = 13;
    pub const BYTES_RECEIVED: usize = 14;
    pub const SEGS_OUT: usize = 15;
    pub const SEGS_IN: usize = 16;
    pub const COUNT: usize = 17;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Stats(Vec<(String, u64)>),
    /// A page of sockets, and where the next page starts if there is one.
    Sockets {
        rows: Vec<SocketRow>,
        next: Option<u64>,
    },
    Ok,
    /// connect() started; completion shows as writability (or an error) on the fd.
    InProgress,
    Addr(SocketAddrV4),
    Values(Vec<i64>),
    Identity {
        family: Family,
        kind: SockKind,
        role: Role,
    },
    /// The socket's socketpair was closed to deliver an error (see DESIGN.md): send
    /// [`Request::Replace`] with a fresh pair, then repeat the request.
    Stale,
    /// The operation failed with this errno value.
    Errno(i32),
    /// The request itself was bad (not an errno: a protocol error).
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    NotUtf8,
    Empty,
    UnknownVerb(String),
    BadLine(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotUtf8 => write!(f, "message is not UTF-8"),
            DecodeError::Empty => write!(f, "empty message"),
            DecodeError::UnknownVerb(v) => write!(f, "unknown request '{v}'"),
            DecodeError::BadLine(l) => write!(f, "malformed line '{l}'"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A request or response id (`@N`), if the message starts with one, and the rest.
pub fn split_id(message: &[u8]) -> (Option<u64>, &[u8]) {
    let Some(rest) = message.strip_prefix(b"@") else {
        return (None, message);
    };
    let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let id = std::str::from_utf8(&rest[..end])
        .ok()
        .and_then(|t| t.parse().ok());
    match id {
        Some(id) => (Some(id), rest.get(end + 1..).unwrap_or(&[])),
        None => (None, message),
    }
}

/// Prefixes an encoded message with `@id `.
pub fn with_id(id: Option<u64>, body: Vec<u8>) -> Vec<u8> {
    match id {
        None => body,
        Some(id) => {
            let mut message = format!("@{id} ").into_bytes();
            message.extend_from_slice(&body);
            message
        }
    }
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let text = match self {
            Request::Stats => "stats".to_string(),
            Request::Sockets { from } => format!("sockets {from}"),
            Request::Socket { family, kind } => {
                format!("socket {} {}", family_word(*family), kind_word(*kind))
            }
            Request::Bind { addr, v4_mapped } => {
                format!(
                    "bind {} {}{}",
                    addr.ip(),
                    addr.port(),
                    if *v4_mapped { " v4mapped" } else { "" }
                )
            }
            Request::Listen { backlog } => format!("listen {backlog}"),
            Request::Connect { addr, filler } => {
                format!("connect {} {} {filler}", addr.ip(), addr.port())
            }
            Request::Disconnect => "disconnect".into(),
            Request::Autobind => "autobind".into(),
            Request::Closed { ino } => format!("closed {ino}"),
            Request::TakeError => "sockerr".into(),
            Request::LocalAddr => "sockname".into(),
            Request::PeerAddr => "peername".into(),
            Request::GetOpt { level, name } => format!("getopt {level} {name}"),
            Request::SetOpt {
                level,
                name,
                values,
            } => {
                let mut text = format!("setopt {level} {name}");
                for v in values {
                    text.push_str(&format!(" {v}"));
                }
                text
            }
            Request::Shutdown { how } => format!("shutdown {how}"),
            Request::Identify => "identify".into(),
            Request::Replace => "replace".into(),
            Request::TcpInfo => "tcpinfo".into(),
            Request::OutQueue => "outq".into(),
        };
        let mut bytes = text.into_bytes();
        bytes.push(b'\n');
        bytes
    }

    pub fn decode(message: &[u8]) -> Result<Request, DecodeError> {
        let text = std::str::from_utf8(message).map_err(|_| DecodeError::NotUtf8)?;
        let line = text.lines().next().ok_or(DecodeError::Empty)?.trim();
        let mut words = line.split_ascii_whitespace();
        let verb = words.next().ok_or(DecodeError::Empty)?;
        let args: Vec<&str> = words.collect();
        let bad = || DecodeError::BadLine(truncate(line));
        let int = |i: usize| -> Result<i64, DecodeError> {
            args.get(i).and_then(|w| w.parse().ok()).ok_or_else(bad)
        };
        let int32 = |i: usize| -> Result<i32, DecodeError> {
            int(i).and_then(|v| i32::try_from(v).map_err(|_| bad()))
        };
        let addr = |i: usize| -> Result<SocketAddrV4, DecodeError> {
            let ip: Ipv4Addr = args.get(i).and_then(|w| w.parse().ok()).ok_or_else(bad)?;
            let port: u16 = args
                .get(i + 1)
                .and_then(|w| w.parse().ok())
                .ok_or_else(bad)?;
            Ok(SocketAddrV4::new(ip, port))
        };
        let nargs = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(bad())
            }
        };
        Ok(match verb {
            "stats" => Request::Stats,
            "sockets" => {
                nargs(1)?;
                Request::Sockets {
                    from: args.first().and_then(|w| w.parse().ok()).ok_or_else(bad)?,
                }
            }
            "socket" => {
                nargs(2)?;
                let family = args.first().and_then(|w| parse_family(w)).ok_or_else(bad)?;
                let kind = args.get(1).and_then(|w| parse_kind(w)).ok_or_else(bad)?;
                Request::Socket { family, kind }
            }
            "bind" => {
                let v4_mapped = match args.get(2) {
                    None => false,
                    Some(&"v4mapped") if args.len() == 3 => true,
                    Some(_) => return Err(bad()),
                };
                Request::Bind {
                    addr: addr(0)?,
                    v4_mapped,
                }
            }
            "listen" => {
                nargs(1)?;
                Request::Listen { backlog: int32(0)? }
            }
            "connect" => {
                nargs(3)?;
                let filler = u32::try_from(int(2)?).map_err(|_| bad())?;
                Request::Connect {
                    addr: addr(0)?,
                    filler,
                }
            }
            "disconnect" => Request::Disconnect,
            "autobind" => Request::Autobind,
            "closed" => {
                nargs(1)?;
                Request::Closed {
                    ino: args.first().and_then(|w| w.parse().ok()).ok_or_else(bad)?,
                }
            }
            "sockerr" => Request::TakeError,
            "sockname" => Request::LocalAddr,
            "peername" => Request::PeerAddr,
            "getopt" => {
                nargs(2)?;
                Request::GetOpt {
                    level: int32(0)?,
                    name: int32(1)?,
                }
            }
            "setopt" => {
                if args.len() < 2 || args.len() > 10 {
                    return Err(bad());
                }
                let values = (2..args.len()).map(int).collect::<Result<Vec<_>, _>>()?;
                Request::SetOpt {
                    level: int32(0)?,
                    name: int32(1)?,
                    values,
                }
            }
            "shutdown" => {
                nargs(1)?;
                Request::Shutdown { how: int32(0)? }
            }
            "identify" => Request::Identify,
            "replace" => Request::Replace,
            "tcpinfo" => Request::TcpInfo,
            "outq" => Request::OutQueue,
            other => return Err(DecodeError::UnknownVerb(truncate(other))),
        })
    }

    /// Whether the request is about an existing application socket (and so must carry its
    /// fd).
    pub fn needs_socket_fd(&self) -> bool {
        !matches!(
            self,
            Request::Stats
                | Request::Sockets { .. }
                | Request::Socket { .. }
                | Request::Closed { .. }
        )
    }

    /// Whether an `ok` reply carries a descriptor.
    pub fn reply_carries_fd(&self) -> bool {
        matches!(self, Request::Socket { .. } | Request::Replace)
    }
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let mut text = String::new();
        match self {
            Response::Stats(counters) => {
                text.push_str("ok\n");
                for (name, value) in counters {
                    text.push_str(&format!("{name} {value}\n"));
                }
            }
            Response::Sockets { rows, next } => {
                match next {
                    Some(next) => text.push_str(&format!("ok next {next}\n")),
                    None => text.push_str("ok\n"),
                }
                for row in rows {
                    text.push_str(&row.encode());
                    text.push('\n');
                }
            }
            Response::Ok => text.push_str("ok\n"),
            Response::InProgress => text.push_str("ok inprogress\n"),
            Response::Stale => text.push_str("ok stale\n"),
            Response::Addr(addr) => {
                text.push_str(&format!("ok addr {} {}\n", addr.ip(), addr.port()))
            }
            Response::Values(values) => {
                text.push_str("ok values");
                for v in values {
                    text.push_str(&format!(" {v}"));
                }
                text.push('\n');
            }
            Response::Identity { family, kind, role } => text.push_str(&format!(
                "ok identity {} {} {}\n",
                family_word(*family),
                kind_word(*kind),
                role_word(*role)
            )),
            Response::Errno(errno) => text.push_str(&format!("errno {errno}\n")),
            Response::Error(message) => {
                text.push_str("error ");
                text.push_str(&message.replace('\n', " "));
                text.push('\n');
            }
        }
        text.into_bytes()
    }

    /// Decodes a response to `request` (`stats` has a multi-line body; every other answer is
    /// one self-describing line).
    pub fn decode(request: &Request, message: &[u8]) -> Result<Response, DecodeError> {
        let text = std::str::from_utf8(message).map_err(|_| DecodeError::NotUtf8)?;
        let mut lines = text.lines();
        let status = lines.next().ok_or(DecodeError::Empty)?;
        if let Some(message) = status.strip_prefix("error ") {
            return Ok(Response::Error(message.to_string()));
        }
        let bad = || DecodeError::BadLine(truncate(status));
        if let Some(errno) = status.strip_prefix("errno ") {
            return errno.trim().parse().map(Response::Errno).map_err(|_| bad());
        }
        if let Request::Sockets { .. } = request {
            let next = match status.strip_prefix("ok next ") {
                Some(n) => Some(n.trim().parse().map_err(|_| bad())?),
                None if status == "ok" => None,
                None => return Err(bad()),
            };
            let rows = lines
                .map(|line| {
                    SocketRow::decode(line).ok_or_else(|| DecodeError::BadLine(truncate(line)))
                })
                .collect::<Result<_, _>>()?;
            return Ok(Response::Sockets { rows, next });
        }
        if request == &Request::Stats {
            if status != "ok" {
                return Err(bad());
            }
            let mut counters = Vec::new();
            for line in lines {
                let (name, value) = line
                    .split_once(' ')
                    .and_then(|(n, v)| Some((n, v.parse::<u64>().ok()?)))
                    .ok_or_else(|| DecodeError::BadLine(truncate(line)))?;
                counters.push((name.to_string(), value));
            }
            return Ok(Response::Stats(counters));
        }
        let mut words = status.split_ascii_whitespace();
        if words.next() != Some("ok") {
            return Err(bad());
        }
        let rest: Vec<&str> = words.collect();
        Ok(match rest.first().copied() {
            None => Response::Ok,
            Some("inprogress") if rest.len() == 1 => Response::InProgress,
            Some("stale") if rest.len() == 1 => Response::Stale,
            Some("addr") if rest.len() == 3 => {
                let ip: Ipv4Addr = rest[1].parse().map_err(|_| bad())?;
                let port: u16 = rest[2].parse().map_err(|_| bad())?;
                Response::Addr(SocketAddrV4::new(ip, port))
            }
            Some("values") => Response::Values(
                rest[1..]
                    .iter()
                    .map(|w| w.parse().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?,
            ),
            Some("identity") if rest.len() == 4 => Response::Identity {
                family: parse_family(rest[1]).ok_or_else(bad)?,
                kind: parse_kind(rest[2]).ok_or_else(bad)?,
                role: parse_role(rest[3]).ok_or_else(bad)?,
            },
            Some(_) => return Err(bad()),
        })
    }
}

/// Which protocol a [`SocketRow`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// One socket as `ustack ss` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketRow {
    pub proto: Proto,
    /// The state as `ss` names it (ESTAB, LISTEN, TIME-WAIT, UNCONN, ...).
    pub state: String,
    pub local: SocketAddrV4,
    pub peer: Option<SocketAddrV4>,
    /// Bytes received and not yet read (a listener: connections waiting for accept).
    pub recv_q: u64,
    /// Bytes not yet acknowledged or sent (a listener: its backlog).
    pub send_q: u64,
    /// The inode of the program's end of the socket (what `/proc/PID/fd` shows as
    /// `socket:[INODE]`), for finding the processes that hold it.
    pub ino: Option<u64>,
    /// TCP details (`rtt_us`, `cwnd`, `retrans`, ...), in display order.
    pub details: Vec<(String, u64)>,
}

impl SocketRow {
    /// Bytes this row takes in a response (its line).
    pub fn encoded_len(&self) -> usize {
        self.encode().len() + 1
    }

    /// `PROTO STATE LOCAL_IP LOCAL_PORT PEER_IP PEER_PORT RECVQ SENDQ INO [KEY=VALUE]...`, with
    /// `*` for an absent peer or inode.
    fn encode(&self) -> String {
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        let peer = self
            .peer
            .map_or("* *".to_string(), |p| format!("{} {}", p.ip(), p.port()));
        let ino = self.ino.map_or("*".to_string(), |i| i.to_string());
        let mut line = format!(
            "{proto} {} {} {} {peer} {} {} {ino}",
            self.state,
            self.local.ip(),
            self.local.port(),
            self.recv_q,
            self.send_q
        );
        for (key, value) in &self.details {
            line.push_str(&format!(" {key}={value}"));
        }
        line
    }

    fn decode(line: &str) -> Option<SocketRow> {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let addr = |ip: &str, port: &str| -> Option<SocketAddrV4> {
            Some(SocketAddrV4::new(ip.parse().ok()?, port.parse().ok()?))
        };
        let proto = match *words.first()? {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return None,
        };
        let peer = match (*words.get(4)?, *words.get(5)?) {
            ("*", "*") => None,
            (ip, port) => Some(addr(ip, port)?),
        };
        let ino = match *words.get(8)? {
            "*" => None,
            n => Some(n.parse().ok()?),
        };
        let details = words
            .get(9..)
            .unwrap_or(&[])
            .iter()
            .map(|w| {
                let (key, value) = w.split_once('=')?;
                Some((key.to_string(), value.parse().ok()?))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(SocketRow {
            proto,
            state: words.get(1)?.to_string(),
            local: addr(words.get(2)?, words.get(3)?)?,
            peer,
            recv_q: words.get(6)?.parse().ok()?,
            send_q: words.get(7)?.parse().ok()?,
            ino,
            details,
        })
    }
}

/// The fixed-size record a listening socket's fd carries per established connection (with the
/// connection's fd attached): the peer's and the local address, IPv4, network byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptRecord {
    pub peer: SocketAddrV4,
    pub local: SocketAddrV4,
}

const RECORD_MAGIC: [u8; 4] = *b"UsTk";

impl AcceptRecord {
    pub fn to_bytes(&self) -> [u8; ACCEPT_RECORD_LEN] {
        let mut bytes = [0u8; ACCEPT_RECORD_LEN];
        bytes[..4].copy_from_slice(&RECORD_MAGIC);
        bytes[4..8].copy_from_slice(&self.peer.ip().octets());
        bytes[8..10].copy_from_slice(&self.peer.port().to_be_bytes());
        bytes[10..14].copy_from_slice(&self.local.ip().octets());
        bytes[14..16].copy_from_slice(&self.local.port().to_be_bytes());
        bytes
    }

    pub fn parse(bytes: &[u8]) -> Option<AcceptRecord> {
        if bytes.len() != ACCEPT_RECORD_LEN || bytes[..4] != RECORD_MAGIC {
            return None;
        }
        let ip = |at: usize| Ipv4Addr::new(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
        let port = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
        Some(AcceptRecord {
            peer: SocketAddrV4::new(ip(4), port(8)),
            local: SocketAddrV4::new(ip(10), port(14)),
        })
    }
}

/// Bytes in front of every datagram on a UDP socket's fd (a SOCK_SEQPACKET pair, so each
/// record is one datagram). See [`DatagramHeader`].
pub const DATAGRAM_HEADER_LEN: usize = 12;

/// The header of a record on a UDP socket's fd. The program's side (the shim) writes `ToPeer`
/// or `To`; the daemon writes `From`, or `Error` for an error an ICMP message set (the shim
/// turns that into a failing call, as Linux reports `sk_err`).
///
/// Layout: tag (1 byte), reserved (1), port (2, network order), IPv4 address (4), errno (4,
/// native order; `Error` only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramHeader {
    ToPeer,
    To(SocketAddrV4),
    From(SocketAddrV4),
    Error(i32),
}

impl DatagramHeader {
    const TO_PEER: u8 = 1;
    const TO: u8 = 2;
    const FROM: u8 = 3;
    const ERROR: u8 = 4;

    pub fn to_bytes(&self) -> [u8; DATAGRAM_HEADER_LEN] {
        let mut bytes = [0u8; DATAGRAM_HEADER_LEN];
        let (tag, addr, errno) = match *self {
            DatagramHeader::ToPeer => (Self::TO_PEER, None, 0),
            DatagramHeader::To(addr) => (Self::TO, Some(addr), 0),
            DatagramHeader::From(addr) => (Self::FROM, Some(addr), 0),
            DatagramHeader::Error(errno) => (Self::ERROR, None, errno),
        };
        bytes[0] = tag;
        if let Some(addr) = addr {
            bytes[2..4].copy_from_slice(&addr.port().to_be_bytes());
            bytes[4..8].copy_from_slice(&addr.ip().octets());
        }
        bytes[8..12].copy_from_slice(&errno.to_ne_bytes());
        bytes
    }

    /// The header at the start of `record`, if it is one.
    pub fn parse(record: &[u8]) -> Option<DatagramHeader> {
        let header = record.get(..DATAGRAM_HEADER_LEN)?;
        let addr = SocketAddrV4::new(
            Ipv4Addr::new(header[4], header[5], header[6], header[7]),
            u16::from_be_bytes([header[2], header[3]]),
        );
        let errno = i32::from_ne_bytes([header[8], header[9], header[10], header[11]]);
        match header[0] {
            Self::TO_PEER => Some(DatagramHeader::ToPeer),
            Self::TO => Some(DatagramHeader::To(addr)),
            Self::FROM => Some(DatagramHeader::From(addr)),
            Self::ERROR => Some(DatagramHeader::Error(errno)),
            _ => None,
        }
    }
}

fn family_word(family: Family) -> &'static str {
    match family {
        Family::Inet => "inet",
        Family::Inet6 => "inet6",
    }
}

fn parse_family(word: &str) -> Option<Family> {
    match word {
        "inet" => Some(Family::Inet),
        "inet6" => Some(Family::Inet6),
        _ => None,
    }
}

fn kind_word(kind: SockKind) -> &'static str {
    match kind {
        SockKind::Stream => "stream",
        SockKind::Dgram => "dgram",
    }
}

fn parse_kind(word: &str) -> Option<SockKind> {
    match word {
        "stream" => Some(SockKind::Stream),
        "dgram" => Some(SockKind::Dgram),
        _ => None,
    }
}

fn role_word(role: Role) -> &'static str {
    match role {
        Role::Unconnected => "unconnected",
        Role::Listener => "listener",
        Role::Stream => "stream",
        Role::Datagram => "datagram",
        Role::BoundDatagram => "bound-datagram",
        Role::ConnectedDatagram => "connected-datagram",
    }
}

fn parse_role(word: &str) -> Option<Role> {
    match word {
        "unconnected" => Some(Role::Unconnected),
        "listener" => Some(Role::Listener),
        "stream" => Some(Role::Stream),
        "datagram" => Some(Role::Datagram),
        "bound-datagram" => Some(Role::BoundDatagram),
        "connected-datagram" => Some(Role::ConnectedDatagram),
        _ => None,
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_round_trip() {
        assert_eq!(
            Request::decode(&Request::Stats.encode()),
            Ok(Request::Stats)
        );
        let response = Response::Stats(vec![
            ("frames_in".into(), 3),
            ("ipv4_bad_checksum".into(), 1),
        ]);
        assert_eq!(
            Response::decode(&Request::Stats, &response.encode()),
            Ok(response)
        );
        let error = Response::Error("no\nway".into());
        assert_eq!(
            Response::decode(&Request::Stats, &error.encode()),
            Ok(Response::Error("no way".into()))
        );
    }

    #[test]
    fn socket_rows_round_trip() {
        let rows = vec![
            SocketRow {
                proto: Proto::Tcp,
                state: "ESTAB".into(),
                local: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 7),
                peer: Some(SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 40000)),
                recv_q: 3,
                send_q: 1448,
                ino: Some(12345),
                details: vec![("rtt_us".into(), 120), ("cwnd".into(), 10)],
            },
            SocketRow {
                proto: Proto::Udp,
                state: "UNCONN".into(),
                local: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 53),
                peer: None,
                recv_q: 0,
                send_q: 0,
                ino: None,
                details: Vec::new(),
            },
        ];
        let request = Request::Sockets { from: 7 };
        assert_eq!(Request::decode(&request.encode()), Ok(request.clone()));
        for next in [None, Some(9)] {
            let response = Response::Sockets {
                rows: rows.clone(),
                next,
            };
            assert_eq!(Response::decode(&request, &response.encode()), Ok(response));
        }
        assert!(Response::decode(&request, b"ok\ntcp ESTAB nonsense\n").is_err());
    }

    #[test]
    fn datagram_headers_round_trip() {
        let addr = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 53);
        for header in [
            DatagramHeader::ToPeer,
            DatagramHeader::To(addr),
            DatagramHeader::From(addr),
            DatagramHeader::Error(libc_econnrefused()),
        ] {
            let mut record = header.to_bytes().to_vec();
            record.extend_from_slice(b"payload");
            assert_eq!(DatagramHeader::parse(&record), Some(header));
        }
        assert_eq!(
            &DatagramHeader::To(addr).to_bytes()[2..8],
            &[0, 53, 10, 77, 0, 1]
        );
        assert_eq!(DatagramHeader::parse(&[2; DATAGRAM_HEADER_LEN - 1]), None);
        assert_eq!(DatagramHeader::parse(&[9; DATAGRAM_HEADER_LEN]), None);
    }

    fn libc_econnrefused() -> i32 {
        111
    }

    #[test]
    fn socket_requests_round_trip() {
        let addr = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 7777);
        let socket = Request::Socket {
            family: Family::Inet6,
            kind: SockKind::Stream,
        };
        assert_eq!(Request::decode(&socket.encode()), Ok(socket.clone()));
        assert!(!socket.needs_socket_fd() && socket.reply_carries_fd());
        let closed = Request::Closed { ino: u64::MAX };
        assert_eq!(Request::decode(&closed.encode()), Ok(closed.clone()));
        assert!(!closed.needs_socket_fd() && !closed.reply_carries_fd());
        for request in [
            Request::Bind {
                addr,
                v4_mapped: true,
            },
            Request::Bind {
                addr,
                v4_mapped: false,
            },
            Request::Listen { backlog: -1 },
            Request::Connect {
                addr,
                filler: 53249,
            },
            Request::Disconnect,
            Request::Autobind,
            Request::TakeError,
            Request::LocalAddr,
            Request::PeerAddr,
            Request::GetOpt { level: 6, name: 1 },
            Request::SetOpt {
                level: 1,
                name: 13,
                values: vec![1, -5],
            },
            Request::Shutdown { how: 1 },
            Request::Identify,
            Request::Replace,
            Request::TcpInfo,
            Request::OutQueue,
        ] {
            assert_eq!(Request::decode(&request.encode()), Ok(request.clone()));
            assert!(request.needs_socket_fd());
        }
    }

    #[test]
    fn responses_round_trip() {
        let request = Request::LocalAddr;
        for response in [
            Response::Ok,
            Response::InProgress,
            Response::Stale,
            Response::Addr(SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 80)),
            Response::Values(vec![]),
            Response::Values(vec![1, -2, 3]),
            Response::Identity {
                family: Family::Inet,
                kind: SockKind::Dgram,
                role: Role::Listener,
            },
            Response::Errno(98),
            Response::Error("bad".into()),
        ] {
            assert_eq!(Response::decode(&request, &response.encode()), Ok(response));
        }
    }

    #[test]
    fn ids_are_split_and_prefixed() {
        let message = with_id(Some(42), Request::Identify.encode());
        assert_eq!(&message[..4], b"@42 ");
        let (id, body) = split_id(&message);
        assert_eq!(id, Some(42));
        assert_eq!(Request::decode(body), Ok(Request::Identify));
        assert_eq!(split_id(b"stats\n"), (None, &b"stats\n"[..]));
        assert_eq!(split_id(b"@x stats\n"), (None, &b"@x stats\n"[..]));
    }

    #[test]
    fn accept_record_round_trip() {
        let record = AcceptRecord {
            peer: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 40000),
            local: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 80),
        };
        assert_eq!(AcceptRecord::parse(&record.to_bytes()), Some(record));
        assert_eq!(AcceptRecord::parse(&[0u8; ACCEPT_RECORD_LEN]), None);
        assert_eq!(AcceptRecord::parse(&record.to_bytes()[..16]), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(Request::decode(b""), Err(DecodeError::Empty));
        assert_eq!(Request::decode(&[0xff, 0xfe]), Err(DecodeError::NotUtf8));
        assert!(matches!(
            Request::decode(b"reboot\n"),
            Err(DecodeError::UnknownVerb(_))
        ));
        assert!(Request::decode(b"bind 1.2.3.4\n").is_err());
        assert!(Request::decode(b"bind 1.2.3.4 99999\n").is_err());
        assert!(Request::decode(b"connect 1.2.3.4 80 -1\n").is_err());
        assert!(Request::decode(b"listen 99999999999\n").is_err());
        assert!(Request::decode(b"socket inet raw\n").is_err());
        assert!(Response::decode(&Request::Stats, b"ok\nframes_in x\n").is_err());
        assert!(Response::decode(&Request::Stats, b"maybe\n").is_err());
        assert!(Response::decode(&Request::Identify, b"ok identity inet\n").is_err());
        assert!(Response::decode(&Request::LocalAddr, b"ok addr 1.2.3 5\n").is_err());
    }
}
