//! `ustack`: the operator's command-line tool. Talks to a running `ustackd` over its control
//! socket, and runs programs on the stack (`ustack run -- prog args...`).

mod ss;

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
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
    /// The stack's sockets, like `ss -tuan` (-l listening, -a all, -p processes, -i TCP
    /// internals, --port, --state).
    Ss(ss::SsArgs),
    /// Run a program on the stack: sets LD_PRELOAD to libsockshim.so (the one next to this
    /// binary) and USTACK_SOCKET to the daemon's socket, then executes PROGRAM.
    Run {
        /// The program and its arguments (put them after `--`).
        #[arg(required = true, trailing_var_arg = true, value_name = "PROGRAM")]
        command: Vec<OsString>,
    },
}

/// The preload library's file name, expected next to the `ustack` binary.
const SHIM_FILE: &str = "libsockshim.so";

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
        Command::Run { command } => run_program(&cli.socket, command),
        Command::Ss(args) => {
            let mut rows = Vec::new();
            let mut from = 0;
            loop {
                let Response::Sockets { rows: page, next } =
                    ask(&cli.socket, &Request::Sockets { from })?
                else {
                    return Err("unexpected response to sockets".into());
                };
                rows.extend(page);
                match next {
                    Some(next) if next > from => from = next,
                    _ => break,
                }
            }
            ss::print(args, &rows);
            Ok(())
        }
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

/// Replaces this process with `command`, on the stack. Returns only on failure.
fn run_program(socket: &Path, command: &[OsString]) -> Result<(), String> {
    let (program, args) = command
        .split_first()
        .ok_or("ustack run: name the program to run")?;
    let exe = std::env::current_exe().map_err(|e| format!("locating the ustack binary: {e}"))?;
    let shim = exe
        .parent()
        .map(|dir| dir.join(SHIM_FILE))
        .ok_or("locating the ustack binary's directory")?;
    let shim = std::fs::canonicalize(&shim).map_err(|e| {
        format!(
            "{} not found ({e}): build it with `cargo build --release` (it is installed next to ustack)",
            shim.display()
        )
    })?;
    // Keep any preload the user already has; ours goes first.
    let mut preload = shim.into_os_string();
    if let Some(existing) = std::env::var_os("LD_PRELOAD").filter(|p| !p.is_empty()) {
        preload.push(" ");
        preload.push(existing);
    }
    let socket = std::path::absolute(socket).unwrap_or_else(|_| socket.to_path_buf());
    let error = std::process::Command::new(program)
        .args(args)
        .env("LD_PRELOAD", preload)
        .env(ustack::control::SOCKET_ENV, socket)
        .exec();
    Err(format!("running {}: {error}", Path::new(program).display()))
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
