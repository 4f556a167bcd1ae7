//! `ustack`: the operator's command-line tool. Talks to a running `ustackd` over its control
//! socket.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
use ustack::control::{Request, Response, DEFAULT_SOCKET_PATH, MAX_MESSAGE_LEN};

/// Inspect and use a running ustack daemon.
#[derive(Debug, Parser)]
#[command(name = "ustack", version, about)]
struct Cli {
    /// The daemon's control socket.
    #[arg(long, global = true, value_name = "PATH", env = "USTACK_SOCKET", default_value = DEFAULT_SOCKET_PATH)]
    socket: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Counters per layer: frames, drops by reason, ARP, IPv4, ICMP, ...
    Stats {
        /// One JSON object instead of "name value" lines.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ustack: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    match &cli.command {
        Command::Stats { json } => {
            let Response::Stats(counters) = ask(&cli.socket, &Request::Stats)? else {
                return Err("unexpected response to stats".into());
            };
            if *json {
                let fields: Vec<String> = counters
                    .iter()
                    .map(|(name, value)| format!("\"{name}\":{value}"))
                    .collect();
                println!("{{{}}}", fields.join(","));
            } else {
                let width = counters.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
                for (name, value) in counters {
                    println!("{name:width$} {value}");
                }
            }
            Ok(())
        }
    }
}

/// Sends one request and waits for its response. Errors say what to do about them.
fn ask(path: &Path, request: &Request) -> Result<Response, String> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("socket: {e}"))?;
    let addr = UnixAddr::new(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match socket::connect(fd.as_raw_fd(), &addr) {
        Ok(()) => {}
        Err(Errno::ENOENT) | Err(Errno::ECONNREFUSED) => {
            return Err(format!(
                "no ustackd is listening on {} (start it, or set USTACK_SOCKET / --socket to its path)",
                path.display()
            ))
        }
        Err(Errno::EACCES) | Err(Errno::EPERM) => {
            return Err(format!(
                "permission denied on {} (ask the operator to add you to the socket's group, or use sudo)",
                path.display()
            ))
        }
        Err(e) => return Err(format!("connecting to {}: {e}", path.display())),
    }
    socket::send(fd.as_raw_fd(), &request.encode(), MsgFlags::MSG_NOSIGNAL)
        .map_err(|e| format!("sending to ustackd: {e}"))?;
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let n = loop {
        match socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => break n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("reading from ustackd: {e}")),
        }
    };
    if n == 0 {
        return Err("ustackd closed the connection without answering".into());
    }
    match Response::decode(request, &buf[..n]) {
        Ok(Response::Error(message)) => Err(format!("ustackd: {message}")),
        Ok(response) => Ok(response),
        Err(e) => Err(format!("bad response from ustackd: {e}")),
    }
}
