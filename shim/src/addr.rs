//! Socket addresses between C and the control protocol, with Linux's checks and errno values,
//! and copies to and from the program's memory that fail with EFAULT (as the kernel's do)
//! instead of crashing on a bad pointer.
//!
//! The stack speaks IPv4. An AF_INET6 socket reaches it through v4-mapped addresses
//! (`::ffff:a.b.c.d`); `::` is the wildcard; other IPv6 addresses are refused with a clear
//! errno (EADDRNOTAVAIL for bind, ENETUNREACH for connect).

use std::net::{Ipv4Addr, SocketAddrV4};

use libc::{c_int, c_void, sockaddr, socklen_t};
use ustack::control::Family;

pub const SOCKADDR_IN_LEN: usize = std::mem::size_of::<libc::sockaddr_in>();
pub const SOCKADDR_IN6_LEN: usize = std::mem::size_of::<libc::sockaddr_in6>();
/// Linux accepts IPv6 addresses without the scope id (RFC 2133's 24-byte layout).
const SIN6_LEN_RFC2133: usize = 24;

/// Where a bind or connect points, as far as the stack is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// IPv4, or IPv6 `::` / `::ffff:a.b.c.d` (`mapped` for the latter).
    V4 { addr: SocketAddrV4, mapped: bool },
    /// A native IPv6 address: not reachable until the stack speaks IPv6.
    V6Native,
    /// AF_UNSPEC (connect: dissolve the association).
    Unspec,
}

/// Copies `len` bytes from the program's memory; EFAULT for a bad pointer.
pub fn read_user(ptr: *const c_void, len: usize) -> Result<Vec<u8>, c_int> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(libc::EFAULT);
    }
    let mut buf = vec![0u8; len];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: ptr as *mut c_void,
        iov_len: len,
    };
    // SAFETY: reading our own address space through the kernel, which checks `ptr` and
    // returns EFAULT instead of faulting; `local` is our own buffer of `len` bytes.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    match n {
        n if n >= 0 && n.unsigned_abs() == len => Ok(buf),
        n if n >= 0 => Err(libc::EFAULT),
        _ => Err(libc::EFAULT),
    }
}

/// Copies `data` into the program's memory; EFAULT for a bad pointer.
pub fn write_user(ptr: *mut c_void, data: &[u8]) -> Result<(), c_int> {
    if data.is_empty() {
        return Ok(());
    }
    if ptr.is_null() {
        return Err(libc::EFAULT);
    }
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: ptr,
        iov_len: data.len(),
    };
    // SAFETY: as in `read_user`, the kernel checks the destination.
    let n = unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n >= 0 && n.unsigned_abs() == data.len() {
        Ok(())
    } else {
        Err(libc::EFAULT)
    }
}

pub fn read_socklen(ptr: *const socklen_t) -> Result<socklen_t, c_int> {
    let bytes = read_user(ptr.cast(), std::mem::size_of::<socklen_t>())?;
    let array: [u8; 4] = bytes.as_slice().try_into().map_err(|_| libc::EFAULT)?;
    Ok(socklen_t::from_ne_bytes(array))
}

pub fn write_socklen(ptr: *mut socklen_t, value: socklen_t) -> Result<(), c_int> {
    write_user(ptr.cast(), &value.to_ne_bytes())
}

fn family_of(bytes: &[u8]) -> c_int {
    match bytes {
        [a, b, ..] => c_int::from(u16::from_ne_bytes([*a, *b])),
        _ => -1,
    }
}

fn port_of(bytes: &[u8]) -> u16 {
    match bytes.get(2..4) {
        Some([a, b]) => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

fn ipv4_at(bytes: &[u8], at: usize) -> Ipv4Addr {
    match bytes.get(at..at + 4) {
        Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

/// An IPv6 address (bytes 8..24 of a sockaddr_in6) as the stack sees it.
fn ipv6_target(bytes: &[u8], port: u16) -> Target {
    let Some(addr) = bytes.get(8..24) else {
        return Target::V6Native;
    };
    if addr.iter().all(|&b| b == 0) {
        return Target::V4 {
            addr: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port),
            mapped: false,
        };
    }
    if addr[..10].iter().all(|&b| b == 0) && addr[10] == 0xff && addr[11] == 0xff {
        return Target::V4 {
            addr: SocketAddrV4::new(ipv4_at(addr, 12), port),
            mapped: true,
        };
    }
    Target::V6Native
}

/// Reads and checks a bind() address (Linux `inet_bind` / `inet6_bind`).
pub fn parse_bind(family: Family, addr: *const sockaddr, len: socklen_t) -> Result<Target, c_int> {
    let len = len as usize;
    let min = match family {
        Family::Inet => SOCKADDR_IN_LEN,
        Family::Inet6 => SIN6_LEN_RFC2133,
    };
    if len < min {
        return Err(libc::EINVAL);
    }
    let bytes = read_user(addr.cast(), len.min(SOCKADDR_IN6_LEN))?;
    let port = port_of(&bytes);
    match family {
        Family::Inet => {
            let ip = ipv4_at(&bytes, 4);
            let fam = family_of(&bytes);
            // Linux: AF_UNSPEC with INADDR_ANY is accepted as AF_INET (old programs).
            if fam != libc::AF_INET && !(fam == libc::AF_UNSPEC && ip.is_unspecified()) {
                return Err(libc::EAFNOSUPPORT);
            }
            Ok(Target::V4 {
                addr: SocketAddrV4::new(ip, port),
                mapped: false,
            })
        }
        Family::Inet6 => {
            if family_of(&bytes) != libc::AF_INET6 {
                return Err(libc::EAFNOSUPPORT);
            }
            Ok(ipv6_target(&bytes, port))
        }
    }
}

/// Reads and checks a connect() address (Linux `__inet_stream_connect`, `tcp_v4_connect`,
/// `tcp_v6_connect`).
pub fn parse_connect(
    family: Family,
    addr: *const sockaddr,
    len: socklen_t,
) -> Result<Target, c_int> {
    let len = len as usize;
    if len < std::mem::size_of::<libc::sa_family_t>() {
        return Err(libc::EINVAL);
    }
    let bytes = read_user(addr.cast(), len.min(SOCKADDR_IN6_LEN))?;
    if family_of(&bytes) == libc::AF_UNSPEC {
        return Ok(Target::Unspec);
    }
    match family {
        Family::Inet => {
            if len < SOCKADDR_IN_LEN {
                return Err(libc::EINVAL);
            }
            if family_of(&bytes) != libc::AF_INET {
                return Err(libc::EAFNOSUPPORT);
            }
            Ok(Target::V4 {
                addr: SocketAddrV4::new(ipv4_at(&bytes, 4), port_of(&bytes)),
                mapped: false,
            })
        }
        Family::Inet6 => {
            if len < SIN6_LEN_RFC2133 {
                return Err(libc::EINVAL);
            }
            if family_of(&bytes) != libc::AF_INET6 {
                return Err(libc::EAFNOSUPPORT);
            }
            match ipv6_target(&bytes, port_of(&bytes)) {
                // Linux connects `::` to the loopback, ::1: native IPv6.
                Target::V4 { mapped: false, .. } => Ok(Target::V6Native),
                other => Ok(other),
            }
        }
    }
}

/// The C socket address for `addr` on a socket of `family`: a sockaddr_in, or a sockaddr_in6
/// holding `::` (for 0.0.0.0) or `::ffff:a.b.c.d`.
pub fn encode(family: Family, addr: SocketAddrV4) -> Vec<u8> {
    match family {
        Family::Inet => {
            let mut bytes = vec![0u8; SOCKADDR_IN_LEN];
            bytes[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            bytes[2..4].copy_from_slice(&addr.port().to_be_bytes());
            bytes[4..8].copy_from_slice(&addr.ip().octets());
            bytes
        }
        Family::Inet6 => {
            let mut bytes = vec![0u8; SOCKADDR_IN6_LEN];
            bytes[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            bytes[2..4].copy_from_slice(&addr.port().to_be_bytes());
            if !addr.ip().is_unspecified() {
                bytes[18] = 0xff;
                bytes[19] = 0xff;
                bytes[20..24].copy_from_slice(&addr.ip().octets());
            }
            bytes
        }
    }
}

/// Stores a socket address the way getsockname/accept do: at most `*len` bytes, and the full
/// length back in `*len`. A null `addr` (accept) stores nothing.
pub fn store_name(
    family: Family,
    addr: SocketAddrV4,
    out: *mut sockaddr,
    len: *mut socklen_t,
    optional: bool,
) -> Result<(), c_int> {
    if optional && out.is_null() {
        return Ok(());
    }
    let room = read_socklen(len)?;
    if (room as c_int) < 0 {
        return Err(libc::EINVAL);
    }
    let bytes = encode(family, addr);
    let n = (room as usize).min(bytes.len());
    write_user(out.cast(), bytes.get(..n).unwrap_or(&[]))?;
    write_socklen(len, bytes.len() as socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_v4_and_mapped_v6() {
        let addr = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 7777);
        let v4 = encode(Family::Inet, addr);
        assert_eq!(v4.len(), 16);
        assert_eq!(&v4[2..8], &[0x1e, 0x61, 127, 0, 0, 1]);
        let v6 = encode(Family::Inet6, addr);
        assert_eq!(v6.len(), 28);
        assert_eq!(ipv6_target(&v6, 7777), Target::V4 { addr, mapped: true });
        let any = encode(Family::Inet6, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80));
        assert!(any[8..24].iter().all(|&b| b == 0));
    }

    #[test]
    fn parses_with_linux_errors() {
        let addr = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 80);
        let v4 = encode(Family::Inet, addr);
        let v6 = encode(Family::Inet6, addr);
        let p4 = v4.as_ptr().cast::<sockaddr>();
        let p6 = v6.as_ptr().cast::<sockaddr>();
        assert_eq!(
            parse_bind(Family::Inet, p4, 16),
            Ok(Target::V4 {
                addr,
                mapped: false
            })
        );
        assert_eq!(parse_bind(Family::Inet, p4, 15), Err(libc::EINVAL));
        assert_eq!(parse_bind(Family::Inet, p6, 28), Err(libc::EAFNOSUPPORT));
        assert_eq!(parse_connect(Family::Inet6, p4, 16), Err(libc::EINVAL));
        assert_eq!(
            parse_connect(Family::Inet6, p6, 28),
            Ok(Target::V4 { addr, mapped: true })
        );
        assert_eq!(
            parse_bind(Family::Inet, std::ptr::null(), 16),
            Err(libc::EFAULT)
        );
    }
}
