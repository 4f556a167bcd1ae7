//! Every socket of the stack as `ustack ss` lists it: TCP connections and listeners from the
//! TCP layer (built-in services and TIME-WAIT included), UDP sockets from the socket table,
//! each joined with the application socket that holds it (the program end's inode, from
//! which the CLI finds the owning processes) and with the bytes in transit through the daemon.

use std::collections::HashMap;
use std::net::SocketAddrV4;

use ustack::control::{Proto, Response, SocketRow, MAX_MESSAGE_LEN};
use ustack::host::Host;
use ustack::tcp::stats::TcpInfo;

use super::{AppSockets, SockState};

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `ss -i` details of a connection, segments counted in MSS units as Linux does.
fn tcp_details(info: &TcpInfo) -> Vec<(String, u64)> {
    let mss = info.send_mss.max(1);
    let segments = |bytes: usize| u64::try_from(bytes / mss).unwrap_or(u64::MAX);
    let c = &info.counters;
    let mut details = vec![
        ("rtt_us", info.srtt.map_or(0, micros)),
        ("rttvar_us", micros(info.rttvar)),
        ("rto_ms", micros(info.rto) / 1000),
        ("mss", u64::try_from(info.send_mss).unwrap_or(0)),
        ("cwnd", segments(info.cwnd)),
    ];
    // Linux omits ssthresh while it is still "infinite".
    if info.ssthresh < usize::MAX / 2 {
        details.push(("ssthresh", segments(info.ssthresh)));
    }
    details.extend([
        ("retrans", c.retransmits),
        ("timeouts", c.timeouts),
        ("bytes_sent", c.bytes_sent),
        ("bytes_acked", c.bytes_acked),
        ("bytes_received", c.bytes_received),
        ("segs_out", c.segments_out),
        ("segs_in", c.segments_in),
        ("snd_wnd", u64::try_from(info.snd_wnd).unwrap_or(0)),
        ("rcv_wnd", u64::try_from(info.rcv_wnd).unwrap_or(0)),
    ]);
    details
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// Room kept in a page for the status line.
const PAGE_SLACK: usize = 64;

impl AppSockets {
    /// The rows from the `from`-th on that fit in one control message.
    pub fn page(&self, host: &Host, from: u64) -> Response {
        let rows = self.rows(host);
        let start = usize::try_from(from).unwrap_or(usize::MAX).min(rows.len());
        let mut size = PAGE_SLACK;
        let mut page = Vec::new();
        for row in rows.iter().skip(start) {
            size += row.encoded_len();
            if size > MAX_MESSAGE_LEN && !page.is_empty() {
                break;
            }
            page.push(row.clone());
        }
        let end = start + page.len();
        Response::Sockets {
            rows: page,
            next: (end < rows.len()).then_some(end as u64),
        }
    }

    /// Every socket of the stack, TCP first.
    pub fn rows(&self, host: &Host) -> Vec<SocketRow> {
        // Application sockets by what the TCP layer knows them by.
        let mut streams: HashMap<(SocketAddrV4, SocketAddrV4), (u64, u64, u64)> = HashMap::new();
        let mut listeners: HashMap<SocketAddrV4, u64> = HashMap::new();
        let mut rows = Vec::new();
        for sock in self.slots.iter().flatten() {
            match &sock.state {
                SockState::Connected(stream) => {
                    if let Some(local) = sock.local {
                        let in_transit = (stream.to_app.len() as u64, stream.to_tcp.len() as u64);
                        streams
                            .insert((local, stream.peer), (sock.ino, in_transit.0, in_transit.1));
                    }
                }
                SockState::Connecting { peer, .. } => {
                    if let Some(local) = sock.local {
                        streams.insert((local, *peer), (sock.ino, 0, 0));
                    }
                }
                SockState::Listening { handle: Some(_) } => {
                    if let Some(local) = sock.local {
                        listeners.insert(local, sock.ino);
                    }
                }
                SockState::Datagram(state) => {
                    let Some(local) = sock.local else { continue };
                    let queued = state.handle.map_or(0, |h| host.udp().queued_bytes(h));
                    rows.push(SocketRow {
                        proto: Proto::Udp,
                        state: if state.peer.is_some() {
                            "ESTAB"
                        } else {
                            "UNCONN"
                        }
                        .into(),
                        local,
                        peer: state.peer,
                        recv_q: queued as u64,
                        send_q: 0,
                        ino: Some(sock.ino),
                        details: Vec::new(),
                    });
                }
                _ => {}
            }
        }
        let tcp = host.tcp();
        let mut tcp_rows: Vec<SocketRow> = tcp
            .all_listeners()
            .into_iter()
            .map(|l| SocketRow {
                proto: Proto::Tcp,
                state: "LISTEN".into(),
                local: l.local,
                peer: None,
                recv_q: l.accept_queue as u64,
                send_q: l.backlog as u64,
                ino: listeners.get(&l.local).copied(),
                details: Vec::new(),
            })
            .collect();
        for info in tcp.all_info() {
            let app = streams.get(&(info.local, info.remote)).copied();
            let (to_app, to_tcp) = app.map_or((0, 0), |(_, a, t)| (a, t));
            tcp_rows.push(SocketRow {
                proto: Proto::Tcp,
                state: info.state.ss_name().into(),
                local: info.local,
                peer: Some(info.remote),
                recv_q: info.recv_queue as u64 + to_app,
                send_q: info.send_queue as u64 + to_tcp,
                ino: app.map(|(ino, _, _)| ino),
                details: tcp_details(&info),
            });
        }
        tcp_rows.append(&mut rows);
        tcp_rows
    }
}
