//! The per-process fd table: which descriptors are ustack sockets, and what the fast paths
//! (read, write, send, recv) need to know about them. It is a cache: the daemon, which knows
//! sockets by the inode of their descriptor, is the authority, and an fd the table does not
//! know (inherited through `exec`) is identified by asking it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use dashmap::DashMap;
use libc::c_int;
use ustack::control::{Family, Request, Response, Role, SockKind};

use crate::conn;
use crate::real;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub family: Family,
    pub kind: SockKind,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Ours(Entry),
    /// An AF_UNIX socket the daemon does not know, by inode (so a reused fd number is
    /// asked about again).
    Foreign(u64),
}

const SHARDS: usize = 32;

/// How many entries `poll` must look at (UDP sockets): it looks at the table only when there
/// are some.
static POLL_HELPED: AtomicUsize = AtomicUsize::new(0);

fn count_role(slot: Option<Slot>, delta: isize) {
    let Some(Slot::Ours(entry)) = slot else {
        return;
    };
    if entry.kind != SockKind::Dgram {
        return;
    }
    if delta > 0 {
        POLL_HELPED.fetch_add(1, Ordering::Relaxed);
    } else {
        let _ = POLL_HELPED.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some(n.saturating_sub(1))
        });
    }
}

/// Whether any descriptor is a ustack socket `poll` must help with.
pub fn any_needing_poll_help() -> bool {
    POLL_HELPED.load(Ordering::Relaxed) > 0
}

/// Stores `slot` at `fd`, keeping the role count.
fn put(fd: c_int, slot: Slot) {
    count_role(Some(slot), 1);
    count_role(table().insert(fd, slot), -1);
}

fn table() -> &'static DashMap<c_int, Slot> {
    static TABLE: OnceLock<DashMap<c_int, Slot>> = OnceLock::new();
    // A fixed shard count: the default asks std for the CPU count, which reads
    // /proc/self/cgroup through the hooked `read`.
    TABLE.get_or_init(|| DashMap::with_shard_amount(SHARDS))
}

/// Creates the table and installs the fork handlers (library constructor).
pub fn init() {
    let _ = table();
    // SAFETY: registering plain extern "C" functions that only lock and unlock the table.
    unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork), Some(after_fork)) };
}

/// fork(): every shard is locked across it, so the child never inherits a lock that another
/// thread held mid-update (the child has no such thread to release it).
extern "C" fn before_fork() {
    for shard in table().shards() {
        std::mem::forget(shard.write());
    }
}

/// In parent and child after fork: release what `before_fork` took.
extern "C" fn after_fork() {
    for shard in table().shards() {
        // SAFETY: `before_fork` took this write lock in this thread and forgot the guard;
        // nothing else can hold it meanwhile.
        unsafe { shard.force_unlock_write() };
    }
}

/// The entry of a known ustack socket: the fast path, no system call.
pub fn get(fd: c_int) -> Option<Entry> {
    match table().get(&fd).map(|slot| *slot) {
        Some(Slot::Ours(entry)) => Some(entry),
        _ => None,
    }
}

pub fn insert(fd: c_int, entry: Entry) {
    put(fd, Slot::Ours(entry));
}

pub fn set_role(fd: c_int, role: Role) {
    if let Some(Slot::Ours(mut entry)) = table().get(&fd).map(|slot| *slot) {
        entry.role = role;
        put(fd, Slot::Ours(entry));
    }
}

pub fn remove(fd: c_int) {
    count_role(table().remove(&fd).map(|(_, slot)| slot), -1);
}

/// `dup`: the new descriptor names the same socket.
pub fn copy(from: c_int, to: c_int) {
    match table().get(&from).map(|slot| *slot) {
        Some(slot) => put(to, slot),
        None => remove(to),
    }
}

/// The entry for `fd`, asking the daemon about AF_UNIX stream and seqpacket sockets the
/// table does not know. `None`: not a ustack socket.
pub fn lookup(fd: c_int) -> Option<Entry> {
    let known = table().get(&fd).map(|slot| *slot);
    let inode = match known {
        Some(Slot::Ours(entry)) => return Some(entry),
        Some(Slot::Foreign(ino)) => {
            let now = unix_stream_inode(fd)?;
            if now == ino {
                return None;
            }
            now
        }
        None => unix_stream_inode(fd)?,
    };
    match conn::call(&Request::Identify, &[fd]) {
        Ok(Response::Identity { family, kind, role }) => {
            let entry = Entry { family, kind, role };
            insert(fd, entry);
            Some(entry)
        }
        Ok(_) => {
            put(fd, Slot::Foreign(inode));
            None
        }
        Err(_) => None,
    }
}

/// The inode of a descriptor.
pub fn inode(fd: c_int) -> Option<u64> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills the struct on success.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat succeeded.
    Some(unsafe { stat.assume_init() }.st_ino)
}

/// The inode of `fd` if it is an AF_UNIX stream or seqpacket socket (what a ustack TCP or UDP
/// socket is underneath).
fn unix_stream_inode(fd: c_int) -> Option<u64> {
    let mut value: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`.
    let domain = unsafe {
        real::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            std::ptr::addr_of_mut!(value).cast(),
            &mut len,
        )
    };
    if domain != 0 || value != libc::AF_UNIX {
        return None;
    }
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: as above.
    let ty = unsafe {
        real::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            std::ptr::addr_of_mut!(value).cast(),
            &mut len,
        )
    };
    if ty != 0 || !(value == libc::SOCK_STREAM || value == libc::SOCK_SEQPACKET) {
        return None;
    }
    inode(fd)
}
