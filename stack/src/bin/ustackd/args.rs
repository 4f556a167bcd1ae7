//! Command-line flags of `ustackd`.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::Parser;
use ustack::control::DEFAULT_SOCKET_PATH;

const AFTER_HELP: &str = "\
Example (the namespace and TAP come from `scripts/netns.sh up`):
  ip netns exec ustack ustackd --tap tap0 --addr 10.77.0.2/24 --gateway 10.77.0.1

The control socket is where programs under libsockshim.so and the `ustack` CLI reach the
daemon. Default: /run/ustack/ustackd.sock; USTACK_SOCKET overrides it for both sides.
Logs go to stderr; RUST_LOG=ustack=debug shows the protocol layers.";

/// The ustack daemon: a user-space TCP/IP stack on a TAP device.
#[derive(Debug, Parser)]
#[command(name = "ustackd", version, about, after_help = AFTER_HELP)]
pub struct Args {
    /// Name of an existing persistent TAP device (created by `scripts/netns.sh up`).
    #[arg(long, value_name = "NAME")]
    pub tap: String,

    /// The stack's own IPv4 address and prefix on the TAP link.
    #[arg(long, value_name = "ADDR/PREFIX", value_parser = parse_cidr)]
    pub addr: (Ipv4Addr, u8),

    /// Default gateway (must be on the link); without it only on-link hosts are reachable.
    #[arg(long, value_name = "ADDR")]
    pub gateway: Option<Ipv4Addr>,

    /// Link MTU in bytes: the largest IPv4 datagram sent without fragmenting.
    #[arg(long, value_name = "BYTES", default_value_t = 1500,
          value_parser = clap::value_parser!(u16).range(576..=9000))]
    pub mtu: u16,

    /// The stack's MAC address (default: a random locally administered one).
    #[arg(long, value_name = "MAC")]
    pub mac: Option<ustack::wire::ethernet::EthernetAddress>,

    /// Control socket path.
    #[arg(long, value_name = "PATH", env = "USTACK_SOCKET", default_value = DEFAULT_SOCKET_PATH)]
    pub socket: PathBuf,

    /// Only this group (name or gid) may use the stack: the control socket becomes mode 0660
    /// with this group. Default: every local user, like the kernel's socket API.
    #[arg(long, value_name = "GROUP", value_parser = parse_group)]
    pub socket_group: Option<u32>,

    /// Only this user (name or uid) may use the stack (and the group, with --socket-group):
    /// the control socket is owned by it with mode 0600 (0660 with a group).
    #[arg(long, value_name = "USER", value_parser = parse_user)]
    pub socket_owner: Option<u32>,

    /// Write every frame sent and received to this pcap file (readable by tcpdump/Wireshark).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,

    /// Rotate the pcap file when it reaches this many bytes (keeps --pcap-files old files).
    #[arg(long, value_name = "BYTES", requires = "pcap")]
    pub pcap_max_bytes: Option<u64>,

    /// How many rotated pcap files to keep.
    #[arg(long, value_name = "N", default_value_t = 4, requires = "pcap")]
    pub pcap_files: usize,

    /// Run the built-in TCP echo (7), discard (9) and chargen (19) services.
    #[arg(long)]
    pub services: bool,

    /// After doing work, poll for this many microseconds before sleeping (lower latency under
    /// load for some CPU; 0 sleeps at once). An idle daemon always sleeps.
    #[arg(long, value_name = "MICROS", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub busy_poll_us: u64,

    /// Open the TAP with offloads (IFF_VNET_HDR), the default: TCP super-frames of up to
    /// 64 KB cross it both ways (the kernel segments ours and coalesces its own), with partial
    /// checksums. Off with --faults, which works on wire frames.
    #[arg(long, overrides_with = "no_offloads")]
    pub offloads: bool,

    /// Plain wire frames only, one system call per frame (no IFF_VNET_HDR).
    #[arg(long)]
    pub no_offloads: bool,

    /// Inject faults on the link, e.g. "seed=1,drop=0.01,tx.delay=5ms,rate=100mbit".
    #[arg(long, value_name = "SPEC")]
    pub faults: Option<String>,
}

fn parse_group(text: &str) -> Result<u32, String> {
    if let Ok(gid) = text.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(text) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        _ => Err(format!("no group named '{text}'")),
    }
}

fn parse_user(text: &str) -> Result<u32, String> {
    if let Ok(uid) = text.parse::<u32>() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(text) {
        Ok(Some(user)) => Ok(user.uid.as_raw()),
        _ => Err(format!("no user named '{text}'")),
    }
}

fn parse_cidr(text: &str) -> Result<(Ipv4Addr, u8), String> {
    let (addr, prefix) = text
        .split_once('/')
        .ok_or_else(|| format!("'{text}' is not ADDR/PREFIX (e.g. 10.77.0.2/24)"))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("'{addr}' is not an IPv4 address"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (1..=30).contains(p))
        .ok_or_else(|| format!("prefix '{prefix}' must be a number from 1 to 30"))?;
    if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() || addr.is_loopback() {
        return Err(format!("{addr} cannot be the stack's address"));
    }
    Ok((addr, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            parse_cidr("10.77.0.2/24"),
            Ok((Ipv4Addr::new(10, 77, 0, 2), 24))
        );
        assert!(parse_cidr("10.77.0.2").is_err());
        assert!(parse_cidr("10.77.0.2/33").is_err());
        assert!(parse_cidr("10.77.0/24").is_err());
        assert!(parse_cidr("127.0.0.1/8").is_err());
    }

    #[test]
    fn users_and_groups_by_name_or_number() {
        assert_eq!(parse_user("0"), Ok(0));
        assert_eq!(parse_user("root"), Ok(0));
        assert_eq!(parse_group("root"), Ok(0));
        assert_eq!(parse_group("4242"), Ok(4242));
        assert!(parse_user("no-such-user-here").is_err());
        assert!(parse_group("no-such-group-here").is_err());
    }
}
