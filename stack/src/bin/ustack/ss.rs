//! `ustack ss`: the stack's sockets, laid out like `ss -tuanpi`.

use std::collections::HashMap;
use std::net::SocketAddrV4;

use clap::Args;
use ustack::control::{Proto, SocketRow};

/// Which sockets to show and how.
#[derive(Debug, Args)]
pub struct SsArgs {
    /// Listening sockets only (TCP LISTEN, unconnected UDP).
    #[arg(short, long, conflicts_with = "all")]
    listening: bool,
    /// Listening and non-listening sockets.
    #[arg(short, long)]
    all: bool,
    /// TCP sockets (with -u: both).
    #[arg(short, long)]
    tcp: bool,
    /// UDP sockets (with -t: both).
    #[arg(short, long)]
    udp: bool,
    /// The processes holding each socket (needs the right to read their /proc/PID/fd).
    #[arg(short, long)]
    processes: bool,
    /// TCP internals: RTT, RTO, cwnd, ssthresh, retransmits, bytes, segments.
    #[arg(short, long)]
    info: bool,
    /// Only sockets whose local or peer port is PORT.
    #[arg(long, value_name = "PORT")]
    port: Option<u16>,
    /// Only sockets in STATE (established, listen, time-wait, syn-sent, ..., unconn).
    #[arg(long, value_name = "STATE")]
    state: Option<String>,
}

impl SsArgs {
    fn wants(&self, row: &SocketRow) -> bool {
        let listening = matches!(row.state.as_str(), "LISTEN" | "UNCONN");
        let shown_by_mode = self.all || (self.listening == listening);
        let protocol = match row.proto {
            Proto::Tcp => self.tcp || !self.udp,
            Proto::Udp => self.udp || !self.tcp,
        };
        let port = self
            .port
            .is_none_or(|p| row.local.port() == p || row.peer.is_some_and(|peer| peer.port() == p));
        let state = self.state.as_deref().is_none_or(|s| {
            let wanted = match s.to_ascii_lowercase().as_str() {
                "established" => "ESTAB".to_string(),
                "listening" => "LISTEN".to_string(),
                other => other.to_ascii_uppercase(),
            };
            row.state == wanted
        });
        (shown_by_mode || self.state.is_some()) && protocol && port && state
    }
}

/// Prints the table for `rows` (all the daemon's sockets).
pub fn print(args: &SsArgs, rows: &[SocketRow]) {
    let owners = if args.processes {
        socket_owners()
    } else {
        HashMap::new()
    };
    let shown: Vec<&SocketRow> = rows.iter().filter(|r| args.wants(r)).collect();
    let addr = |a: SocketAddrV4| format!("{}:{}", a.ip(), a.port());
    let peer = |r: &SocketRow| r.peer.map_or("*:*".to_string(), addr);
    let local_width = shown
        .iter()
        .map(|r| addr(r.local).len())
        .max()
        .unwrap_or(0)
        .max(18);
    let peer_width = shown
        .iter()
        .map(|r| peer(r).len())
        .max()
        .unwrap_or(0)
        .max(18);
    let mut header = format!(
        "{:<5} {:<10} {:>7} {:>7} {:<local_width$} {:<peer_width$}",
        "Netid", "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port"
    );
    if args.processes {
        header.push_str(" Process");
    }
    println!("{}", header.trim_end());
    for row in shown {
        let netid = match row.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        let mut line = format!(
            "{netid:<5} {:<10} {:>7} {:>7} {:<local_width$} {:<peer_width$}",
            row.state,
            row.recv_q,
            row.send_q,
            addr(row.local),
            peer(row),
        );
        if args.processes {
            if let Some(users) = row.ino.and_then(|ino| owners.get(&ino)) {
                line.push_str(&format!(" users:({})", users.join(",")));
            }
        }
        println!("{}", line.trim_end());
        if args.info && !row.details.is_empty() {
            println!("\t {}", details_text(&row.details));
        }
    }
}

/// `ss -i`-style details: `rtt:0.120/0.050 rto:200 mss:1448 cwnd:10 ...`.
fn details_text(details: &[(String, u64)]) -> String {
    let get = |key: &str| details.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
    let mut parts = Vec::new();
    if let (Some(rtt), Some(var)) = (get("rtt_us"), get("rttvar_us")) {
        parts.push(format!(
            "rtt:{:.3}/{:.3}",
            rtt as f64 / 1000.0,
            var as f64 / 1000.0
        ));
    }
    for (key, value) in details {
        let name = match key.as_str() {
            "rtt_us" | "rttvar_us" => continue,
            "rto_ms" => "rto",
            other => other,
        };
        parts.push(format!("{name}:{value}"));
    }
    parts.join(" ")
}

/// Who holds each socket inode: `("comm",pid=N,fd=M)` entries, from /proc/*/fd like `ss -p`.
fn socket_owners() -> HashMap<u64, Vec<String>> {
    let mut owners: HashMap<u64, Vec<String>> = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return owners;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_default();
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(ino) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            let fd_number = fd.file_name().to_string_lossy().into_owned();
            owners
                .entry(ino)
                .or_default()
                .push(format!("(\"{comm}\",pid={pid},fd={fd_number})"));
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::net::Ipv4Addr;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ss: SsArgs,
    }

    fn row(proto: Proto, state: &str, port: u16) -> SocketRow {
        SocketRow {
            proto,
            state: state.into(),
            local: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
            peer: None,
            recv_q: 0,
            send_q: 0,
            ino: None,
            details: Vec::new(),
        }
    }

    fn shown(flags: &[&str], rows: &[SocketRow]) -> Vec<u16> {
        let cli = Cli::parse_from(std::iter::once("ss").chain(flags.iter().copied()));
        rows.iter()
            .filter(|r| cli.ss.wants(r))
            .map(|r| r.local.port())
            .collect()
    }

    #[test]
    fn filters_like_ss() {
        let rows = [
            row(Proto::Tcp, "LISTEN", 1),
            row(Proto::Tcp, "ESTAB", 2),
            row(Proto::Udp, "UNCONN", 3),
            row(Proto::Tcp, "TIME-WAIT", 4),
        ];
        assert_eq!(shown(&[], &rows), vec![2, 4]);
        assert_eq!(shown(&["-l"], &rows), vec![1, 3]);
        assert_eq!(shown(&["-a"], &rows), vec![1, 2, 3, 4]);
        assert_eq!(shown(&["-lt"], &rows), vec![1]);
        assert_eq!(shown(&["-au"], &rows), vec![3]);
        assert_eq!(shown(&["--port", "4"], &rows), vec![4]);
        assert_eq!(shown(&["--state", "established"], &rows), vec![2]);
        assert_eq!(shown(&["--state", "listening"], &rows), vec![1]);
    }

    #[test]
    fn details_read_like_ss_i() {
        let details = vec![
            ("rtt_us".to_string(), 1500),
            ("rttvar_us".to_string(), 250),
            ("rto_ms".to_string(), 201),
            ("cwnd".to_string(), 10),
        ];
        assert_eq!(details_text(&details), "rtt:1.500/0.250 rto:201 cwnd:10");
    }
}
