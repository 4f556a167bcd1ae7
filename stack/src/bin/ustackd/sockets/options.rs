//! Socket options (getsockopt/setsockopt) with Linux's validation and errno values.
//!
//! The shim checks buffer lengths and converts C types; values arrive here as integers
//! (SO_LINGER as two, TCP_CONGESTION as an algorithm number). SO_RCVTIMEO/SO_SNDTIMEO never
//! come here: the shim sets them on the application's own descriptor, where the kernel
//! honours them natively. SO_ERROR and TCP_INFO have requests of their own.
//!
//! Options that matter to the stack change its [`SocketOptions`]; the others that Linux
//! accepts (IP_TOS, TCP_CORK, ...) are stored and read back but have no effect yet.

use std::collections::HashMap;
use std::time::Duration;

use libc::c_int;
use ustack::control::{Family, SockKind};
use ustack::tcp::config::SocketOptions;
use ustack::tcp::congestion::CongestionAlgorithm;

/// Linux's `net.core.wmem_max`/`rmem_max`: the largest SO_SNDBUF/SO_RCVBUF a user may ask for.
const BUF_MAX: i64 = 212_992;
/// Linux's SOCK_MIN_SNDBUF / SOCK_MIN_RCVBUF on x86-64.
const SNDBUF_MIN: i64 = 4608;
const RCVBUF_MIN: i64 = 2304;
/// TCP_MAXSEG on a socket that has not connected (Linux reports TCP_MSS_DEFAULT).
const DEFAULT_MSS: i64 = 536;

/// TCP_CONGESTION as a number on the control protocol.
pub const CONGESTION_CUBIC: i64 = 1;
pub const CONGESTION_RENO: i64 = 2;

/// What kind of socket the option is set on.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub family: Family,
    pub kind: SockKind,
    pub bound: bool,
    pub listening: bool,
    /// The connection's current MSS, if it has one.
    pub mss: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// What the TCP connection uses.
    pub tcp: SocketOptions,
    pub reuseaddr: bool,
    pub reuseport: bool,
    pub v6only: bool,
    /// SO_LINGER: (on, seconds).
    pub linger: (bool, i64),
    /// SO_SNDBUF / SO_RCVBUF as getsockopt reports them (Linux doubles what is set).
    pub sndbuf: i64,
    pub rcvbuf: i64,
    /// Options accepted and reported back without effect, by (level, name).
    stored: HashMap<(c_int, c_int), Vec<i64>>,
}

impl Options {
    pub fn new(tcp: SocketOptions) -> Options {
        Options {
            sndbuf: i64::try_from(tcp.send_buffer).unwrap_or(BUF_MAX),
            rcvbuf: i64::try_from(tcp.recv_buffer).unwrap_or(BUF_MAX),
            tcp,
            reuseaddr: false,
            reuseport: false,
            v6only: false,
            linger: (false, 0),
            stored: HashMap::new(),
        }
    }

    /// setsockopt. `Err` is the errno.
    pub fn set(
        &mut self,
        target: Target,
        level: c_int,
        name: c_int,
        values: &[i64],
    ) -> Result<(), i32> {
        let value = *values.first().ok_or(libc::EINVAL)?;
        let flag = value != 0;
        let secs = |v: i64, max: i64| {
            if (1..=max).contains(&v) {
                Ok(Duration::from_secs(v.unsigned_abs()))
            } else {
                Err(libc::EINVAL)
            }
        };
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_REUSEADDR) => self.reuseaddr = flag,
            (libc::SOL_SOCKET, libc::SO_REUSEPORT) => self.reuseport = flag,
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => self.tcp.keepalive = flag,
            (libc::SOL_SOCKET, libc::SO_LINGER) => {
                let seconds = *values.get(1).ok_or(libc::EINVAL)?;
                self.linger = (flag, seconds.max(0));
                self.tcp.linger_zero = flag && seconds <= 0;
            }
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => {
                self.sndbuf = (value.clamp(0, BUF_MAX) * 2).max(SNDBUF_MIN);
                self.tcp.send_buffer = usize::try_from(self.sndbuf).unwrap_or(usize::MAX);
            }
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => {
                self.rcvbuf = (value.clamp(0, BUF_MAX) * 2).max(RCVBUF_MIN);
                self.tcp.recv_buffer = usize::try_from(self.rcvbuf).unwrap_or(usize::MAX);
            }
            (
                libc::SOL_SOCKET,
                libc::SO_BROADCAST
                | libc::SO_OOBINLINE
                | libc::SO_DONTROUTE
                | libc::SO_PRIORITY
                | libc::SO_RCVLOWAT
                | libc::SO_SNDLOWAT
                | libc::SO_MARK
                | libc::SO_TIMESTAMP
                | libc::SO_TIMESTAMPNS
                | libc::SO_BUSY_POLL
                | libc::SO_ZEROCOPY,
            ) => self.store(
                level,
                name,
                if is_bool_option(level, name) {
                    i64::from(flag)
                } else {
                    value
                },
            ),
            (
                libc::SOL_SOCKET,
                libc::SO_TYPE | libc::SO_DOMAIN | libc::SO_PROTOCOL | libc::SO_ACCEPTCONN,
            ) => return Err(libc::ENOPROTOOPT),
            (libc::IPPROTO_TCP, _) if target.kind != SockKind::Stream => {
                return Err(libc::ENOPROTOOPT)
            }
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) => self.tcp.nodelay = flag,
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => {
                self.tcp.keepalive_idle = secs(value, 32767)?
            }
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => {
                self.tcp.keepalive_interval = secs(value, 32767)?
            }
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => {
                if !(1..=127).contains(&value) {
                    return Err(libc::EINVAL);
                }
                self.tcp.keepalive_probes = u32::try_from(value).map_err(|_| libc::EINVAL)?;
            }
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => {
                if value < 0 {
                    return Err(libc::EINVAL);
                }
                self.tcp.user_timeout =
                    (value > 0).then(|| Duration::from_millis(value.unsigned_abs()));
            }
            (libc::IPPROTO_TCP, libc::TCP_CONGESTION) => {
                self.tcp.congestion = match value {
                    CONGESTION_CUBIC => CongestionAlgorithm::Cubic,
                    CONGESTION_RENO => CongestionAlgorithm::Reno,
                    _ => return Err(libc::ENOENT),
                };
            }
            (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => {
                if value != 0 && !(88..=32767).contains(&value) {
                    return Err(libc::EINVAL);
                }
                self.store(level, name, value);
            }
            (libc::IPPROTO_TCP, libc::TCP_SYNCNT) => {
                if !(1..=127).contains(&value) {
                    return Err(libc::EINVAL);
                }
                self.store(level, name, value);
            }
            (
                libc::IPPROTO_TCP,
                libc::TCP_CORK
                | libc::TCP_QUICKACK
                | libc::TCP_DEFER_ACCEPT
                | libc::TCP_WINDOW_CLAMP
                | libc::TCP_LINGER2
                | libc::TCP_NOTSENT_LOWAT
                | libc::TCP_FASTOPEN
                | libc::TCP_FASTOPEN_CONNECT
                | libc::TCP_THIN_LINEAR_TIMEOUTS,
            ) => self.store(
                level,
                name,
                if is_bool_option(level, name) {
                    i64::from(flag)
                } else {
                    value
                },
            ),
            (libc::IPPROTO_IPV6, _) if target.family != Family::Inet6 => {
                return Err(libc::ENOPROTOOPT)
            }
            (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) => {
                if target.bound {
                    return Err(libc::EINVAL);
                }
                self.v6only = flag;
            }
            (
                libc::IPPROTO_IPV6,
                libc::IPV6_TCLASS
                | libc::IPV6_UNICAST_HOPS
                | libc::IPV6_MULTICAST_HOPS
                | libc::IPV6_RECVERR
                | libc::IPV6_MTU_DISCOVER
                | libc::IPV6_RECVPKTINFO,
            ) => self.store(level, name, value),
            (
                libc::IPPROTO_IP,
                libc::IP_TOS
                | libc::IP_TTL
                | libc::IP_RECVERR
                | libc::IP_MTU_DISCOVER
                | libc::IP_FREEBIND
                | libc::IP_BIND_ADDRESS_NO_PORT
                | libc::IP_RECVTOS
                | libc::IP_RECVTTL
                | libc::IP_PKTINFO
                | libc::IP_TRANSPARENT
                | libc::IP_MULTICAST_TTL
                | libc::IP_MULTICAST_LOOP,
            ) => self.store(level, name, value),
            _ => return Err(libc::ENOPROTOOPT),
        }
        Ok(())
    }

    /// getsockopt. `Err` is the errno.
    pub fn get(&self, target: Target, level: c_int, name: c_int) -> Result<Vec<i64>, i32> {
        let one = |v: i64| Ok(vec![v]);
        let flag = |b: bool| Ok(vec![i64::from(b)]);
        let secs = |d: Duration| Ok(vec![i64::try_from(d.as_secs()).unwrap_or(i64::MAX)]);
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_TYPE) => one(match target.kind {
                SockKind::Stream => i64::from(libc::SOCK_STREAM),
                SockKind::Dgram => i64::from(libc::SOCK_DGRAM),
            }),
            (libc::SOL_SOCKET, libc::SO_DOMAIN) => one(match target.family {
                Family::Inet => i64::from(libc::AF_INET),
                Family::Inet6 => i64::from(libc::AF_INET6),
            }),
            (libc::SOL_SOCKET, libc::SO_PROTOCOL) => one(match target.kind {
                SockKind::Stream => i64::from(libc::IPPROTO_TCP),
                SockKind::Dgram => i64::from(libc::IPPROTO_UDP),
            }),
            (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => flag(target.listening),
            (libc::SOL_SOCKET, libc::SO_REUSEADDR) => flag(self.reuseaddr),
            (libc::SOL_SOCKET, libc::SO_REUSEPORT) => flag(self.reuseport),
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => flag(self.tcp.keepalive),
            (libc::SOL_SOCKET, libc::SO_LINGER) => {
                Ok(vec![i64::from(self.linger.0), self.linger.1])
            }
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => one(self.sndbuf),
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => one(self.rcvbuf),
            (libc::SOL_SOCKET, libc::SO_RCVLOWAT) => one(self.stored(level, name).unwrap_or(1)),
            (libc::SOL_SOCKET, libc::SO_SNDLOWAT) => one(1),
            (
                libc::SOL_SOCKET,
                libc::SO_BROADCAST
                | libc::SO_OOBINLINE
                | libc::SO_DONTROUTE
                | libc::SO_PRIORITY
                | libc::SO_MARK
                | libc::SO_TIMESTAMP
                | libc::SO_TIMESTAMPNS
                | libc::SO_BUSY_POLL
                | libc::SO_ZEROCOPY,
            ) => one(self.stored(level, name).unwrap_or(0)),
            (libc::IPPROTO_TCP, _) if target.kind != SockKind::Stream => Err(libc::EOPNOTSUPP),
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) => flag(self.tcp.nodelay),
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => secs(self.tcp.keepalive_idle),
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => secs(self.tcp.keepalive_interval),
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => one(i64::from(self.tcp.keepalive_probes)),
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => one(self
                .tcp
                .user_timeout
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
            (libc::IPPROTO_TCP, libc::TCP_CONGESTION) => one(match self.tcp.congestion {
                CongestionAlgorithm::Cubic => CONGESTION_CUBIC,
                CongestionAlgorithm::Reno => CONGESTION_RENO,
            }),
            (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => one(match target.mss {
                Some(mss) => i64::try_from(mss).unwrap_or(DEFAULT_MSS),
                None => self
                    .stored(level, name)
                    .filter(|&v| v > 0)
                    .unwrap_or(DEFAULT_MSS),
            }),
            (libc::IPPROTO_TCP, libc::TCP_SYNCNT) => one(self.stored(level, name).unwrap_or(6)),
            (
                libc::IPPROTO_TCP,
                libc::TCP_CORK
                | libc::TCP_QUICKACK
                | libc::TCP_DEFER_ACCEPT
                | libc::TCP_WINDOW_CLAMP
                | libc::TCP_LINGER2
                | libc::TCP_NOTSENT_LOWAT
                | libc::TCP_FASTOPEN
                | libc::TCP_FASTOPEN_CONNECT
                | libc::TCP_THIN_LINEAR_TIMEOUTS,
            ) => one(self.stored(level, name).unwrap_or(0)),
            (libc::IPPROTO_IPV6, _) if target.family != Family::Inet6 => Err(libc::EOPNOTSUPP),
            (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) => flag(self.v6only),
            (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS | libc::IPV6_MULTICAST_HOPS) => {
                one(self.stored(level, name).filter(|&v| v >= 0).unwrap_or(64))
            }
            (
                libc::IPPROTO_IPV6,
                libc::IPV6_TCLASS
                | libc::IPV6_RECVERR
                | libc::IPV6_MTU_DISCOVER
                | libc::IPV6_RECVPKTINFO,
            ) => one(self.stored(level, name).unwrap_or(0)),
            (libc::IPPROTO_IP, libc::IP_TTL | libc::IP_MULTICAST_TTL) => {
                one(self.stored(level, name).filter(|&v| v > 0).unwrap_or(64))
            }
            (libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP) => {
                one(self.stored(level, name).unwrap_or(1))
            }
            (
                libc::IPPROTO_IP,
                libc::IP_TOS
                | libc::IP_RECVERR
                | libc::IP_MTU_DISCOVER
                | libc::IP_FREEBIND
                | libc::IP_BIND_ADDRESS_NO_PORT
                | libc::IP_RECVTOS
                | libc::IP_RECVTTL
                | libc::IP_PKTINFO
                | libc::IP_TRANSPARENT,
            ) => one(self.stored(level, name).unwrap_or(0)),
            _ => Err(libc::ENOPROTOOPT),
        }
    }

    fn store(&mut self, level: c_int, name: c_int, value: i64) {
        self.stored.insert((level, name), vec![value]);
    }

    fn stored(&self, level: c_int, name: c_int) -> Option<i64> {
        self.stored
            .get(&(level, name))
            .and_then(|v| v.first().copied())
    }
}

/// Options Linux reads back as 0/1 whatever non-zero value was set.
fn is_bool_option(level: c_int, name: c_int) -> bool {
    matches!(
        (level, name),
        (
            libc::SOL_SOCKET,
            libc::SO_BROADCAST
                | libc::SO_OOBINLINE
                | libc::SO_DONTROUTE
                | libc::SO_TIMESTAMP
                | libc::SO_TIMESTAMPNS
                | libc::SO_ZEROCOPY
        ) | (
            libc::IPPROTO_TCP,
            libc::TCP_CORK | libc::TCP_QUICKACK | libc::TCP_THIN_LINEAR_TIMEOUTS
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ustack::tcp::config::TcpConfig;

    fn target() -> Target {
        Target {
            family: Family::Inet,
            kind: SockKind::Stream,
            bound: false,
            listening: false,
            mss: None,
        }
    }

    fn options() -> Options {
        Options::new(TcpConfig::default().default_socket_options())
    }

    #[test]
    fn booleans_read_back_as_one() {
        let mut o = options();
        assert_eq!(
            o.get(target(), libc::SOL_SOCKET, libc::SO_REUSEADDR),
            Ok(vec![0])
        );
        assert_eq!(
            o.set(target(), libc::SOL_SOCKET, libc::SO_REUSEADDR, &[5]),
            Ok(())
        );
        assert_eq!(
            o.get(target(), libc::SOL_SOCKET, libc::SO_REUSEADDR),
            Ok(vec![1])
        );
        assert_eq!(
            o.set(target(), libc::IPPROTO_TCP, libc::TCP_NODELAY, &[5]),
            Ok(())
        );
        assert!(o.tcp.nodelay);
    }

    #[test]
    fn keepalive_ranges_and_defaults() {
        let mut o = options();
        assert_eq!(
            o.get(target(), libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
            Ok(vec![7200])
        );
        assert_eq!(
            o.get(target(), libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
            Ok(vec![75])
        );
        assert_eq!(
            o.get(target(), libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
            Ok(vec![9])
        );
        assert_eq!(
            o.set(target(), libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, &[0]),
            Err(libc::EINVAL)
        );
        assert_eq!(
            o.set(target(), libc::IPPROTO_TCP, libc::TCP_KEEPCNT, &[128]),
            Err(libc::EINVAL)
        );
        assert_eq!(
            o.set(target(), libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, &[30]),
            Ok(())
        );
        assert_eq!(o.tcp.keepalive_idle, Duration::from_secs(30));
    }

    #[test]
    fn linger_sets_abortive_close() {
        let mut o = options();
        assert_eq!(
            o.get(target(), libc::SOL_SOCKET, libc::SO_LINGER),
            Ok(vec![0, 0])
        );
        assert_eq!(
            o.set(target(), libc::SOL_SOCKET, libc::SO_LINGER, &[1, 0]),
            Ok(())
        );
        assert!(o.tcp.linger_zero);
        assert_eq!(
            o.set(target(), libc::SOL_SOCKET, libc::SO_LINGER, &[1, 5]),
            Ok(())
        );
        assert!(!o.tcp.linger_zero);
        assert_eq!(
            o.get(target(), libc::SOL_SOCKET, libc::SO_LINGER),
            Ok(vec![1, 5])
        );
    }

    #[test]
    fn errors_match_linux() {
        let mut o = options();
        let udp = Target {
            kind: SockKind::Dgram,
            ..target()
        };
        assert_eq!(
            o.set(udp, libc::IPPROTO_TCP, libc::TCP_NODELAY, &[1]),
            Err(libc::ENOPROTOOPT)
        );
        assert_eq!(
            o.get(udp, libc::IPPROTO_TCP, libc::TCP_NODELAY),
            Err(libc::EOPNOTSUPP)
        );
        assert_eq!(
            o.set(target(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &[1]),
            Err(libc::ENOPROTOOPT)
        );
        assert_eq!(
            o.get(target(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
            Err(libc::EOPNOTSUPP)
        );
        assert_eq!(
            o.get(target(), libc::SOL_SOCKET, 9999),
            Err(libc::ENOPROTOOPT)
        );
        assert_eq!(
            o.set(target(), libc::SOL_SOCKET, 9999, &[1]),
            Err(libc::ENOPROTOOPT)
        );
        assert_eq!(
            o.set(target(), libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, &[-1]),
            Err(libc::EINVAL)
        );
        let bound6 = Target {
            family: Family::Inet6,
            bound: true,
            ..target()
        };
        assert_eq!(
            o.set(bound6, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &[1]),
            Err(libc::EINVAL)
        );
    }

    #[test]
    fn buffer_sizes_are_doubled_and_clamped() {
        let mut o = options();
        assert_eq!(
            o.set(target(), libc::SOL_SOCKET, libc::SO_RCVBUF, &[65536]),
            Ok(())
        );
        assert_eq!(
            o.get(target(), libc::SOL_SOCKET, libc::SO_RCVBUF),
            Ok(vec![131072])
        );
        assert_eq!(
            o.set(target(), libc::SOL_SOCKET, libc::SO_SNDBUF, &[1]),
            Ok(())
        );
        assert_eq!(
            o.get(target(), libc::SOL_SOCKET, libc::SO_SNDBUF),
            Ok(vec![SNDBUF_MIN])
        );
    }
}
