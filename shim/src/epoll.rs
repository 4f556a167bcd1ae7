//! epoll and ustack sockets. Registrations of UDP sockets and of fresh TCP sockets are
//! remembered (`epoll_ctl` is interposed), for two reasons:
//!
//! - a pending ICMP error on a UDP socket is an `Error` record in its pair (see `dgram`),
//!   which epoll reports as EPOLLIN; Linux reports EPOLLERR (and EPOLLIN only if a datagram is
//!   queued too): the events `epoll_wait` returns for UDP sockets are corrected;
//! - a fresh TCP socket's descriptor is swapped for its pair at listen or connect (dup3), and
//!   the kernel forgets the registrations of the replaced file: they are made again on the new
//!   one ([`reregister`]), so a program that registers before connecting still hears of it.
//!
//! Nothing is done for epoll instances without such sockets (one atomic load per wait).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use dashmap::DashMap;
use libc::{c_int, epoll_event};

use crate::addr;
use crate::dgram;
use crate::guard::{Fail, OpResult};
use crate::table;

/// Registrations: (epoll fd, socket fd) -> the caller's (events, data).
fn registrations() -> &'static DashMap<(c_int, c_int), (u32, u64)> {
    static REGISTRATIONS: OnceLock<DashMap<(c_int, c_int), (u32, u64)>> = OnceLock::new();
    REGISTRATIONS.get_or_init(|| DashMap::with_shard_amount(8))
}

static COUNT: AtomicUsize = AtomicUsize::new(0);

/// After a successful `epoll_ctl`: remember or forget a UDP socket's registration.
pub fn after_ctl(epfd: c_int, op: c_int, fd: c_int, event: *const epoll_event) {
    let tracked = table::get(fd).is_some_and(|e| {
        e.kind == ustack::control::SockKind::Dgram || e.role == ustack::control::Role::Unconnected
    }) || registrations().contains_key(&(epfd, fd));
    match op {
        libc::EPOLL_CTL_ADD | libc::EPOLL_CTL_MOD if tracked => {
            let Ok(bytes) = addr::read_user(event.cast(), std::mem::size_of::<epoll_event>())
            else {
                return;
            };
            // SAFETY: `bytes` holds a full epoll_event copied from the caller.
            let event: epoll_event = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
            if registrations()
                .insert((epfd, fd), (event.events, event.u64))
                .is_none()
            {
                COUNT.fetch_add(1, Ordering::Relaxed);
            }
        }
        libc::EPOLL_CTL_DEL => forget(epfd, fd),
        _ => {}
    }
}

fn forget(epfd: c_int, fd: c_int) {
    if registrations().remove(&(epfd, fd)).is_some() {
        let _ = COUNT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some(n.saturating_sub(1))
        });
    }
}

/// After `close(fd)`: the kernel drops the registrations of a closed file (for the last
/// descriptor) and closing an epoll fd drops the instance.
pub fn after_close(fd: c_int) {
    if COUNT.load(Ordering::Relaxed) == 0 {
        return;
    }
    let stale: Vec<(c_int, c_int)> = registrations()
        .iter()
        .map(|entry| *entry.key())
        .filter(|&(epfd, sock)| epfd == fd || (sock == fd && table::get(fd).is_none()))
        .collect();
    for (epfd, sock) in stale {
        forget(epfd, sock);
    }
}

/// After `epoll_wait` returned `count` events into `events`: EPOLLERR for UDP sockets with a
/// pending error, without EPOLLIN when the error is all that is queued.
pub fn after_wait(epfd: c_int, events: *mut epoll_event, count: c_int) -> OpResult<()> {
    if COUNT.load(Ordering::Relaxed) == 0 || count <= 0 {
        return Ok(());
    }
    let udp: Vec<(c_int, u64)> = registrations()
        .iter()
        .filter(|entry| entry.key().0 == epfd && dgram::entry(entry.key().1).is_some())
        .map(|entry| (entry.key().1, entry.value().1))
        .collect();
    if udp.is_empty() {
        return Ok(());
    }
    let size = std::mem::size_of::<epoll_event>();
    let len = usize::try_from(count).map_err(|_| Fail::Errno(libc::EINVAL))? * size;
    let bytes = addr::read_user(events.cast(), len)?;
    let mut changed = false;
    let mut out: Vec<epoll_event> = bytes
        .chunks_exact(size)
        // SAFETY: each chunk holds the bytes of one epoll_event the kernel wrote.
        .map(|chunk| unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast()) })
        .collect();
    for event in &mut out {
        let data = event.u64;
        let Some(only_error) = udp
            .iter()
            .filter(|&&(_, d)| d == data)
            .find_map(|&(fd, _)| dgram::head_error_state(fd))
        else {
            continue;
        };
        let mut flags = event.events | libc::EPOLLERR as u32;
        if only_error {
            flags &= !(libc::EPOLLIN as u32 | libc::EPOLLRDNORM as u32);
        }
        if flags != event.events {
            event.events = flags;
            changed = true;
        }
    }
    if changed {
        // SAFETY: viewing our own events as bytes to copy them back.
        let raw = unsafe { std::slice::from_raw_parts(out.as_ptr().cast::<u8>(), len) };
        addr::write_user(events.cast(), raw)?;
    }
    Ok(())
}

/// After `fd` was swapped for a new file (dup3): registers it again wherever the program had
/// registered the old one.
pub fn reregister(fd: c_int) {
    if COUNT.load(Ordering::Relaxed) == 0 {
        return;
    }
    let mine: Vec<(c_int, (u32, u64))> = registrations()
        .iter()
        .filter(|entry| entry.key().1 == fd)
        .map(|entry| (entry.key().0, *entry.value()))
        .collect();
    for (epfd, (events, data)) in mine {
        let mut event = epoll_event { events, u64: data };
        // SAFETY: a live epoll_event; the kernel checks both descriptors.
        let added = unsafe { crate::real::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut event) };
        if added != 0 && crate::real::errno() == libc::EEXIST {
            // SAFETY: as above.
            unsafe { crate::real::epoll_ctl(epfd, libc::EPOLL_CTL_MOD, fd, &mut event) };
        }
    }
}
