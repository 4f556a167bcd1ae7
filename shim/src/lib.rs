//! `libsockshim.so`: run unmodified programs on ustack with `LD_PRELOAD`.
//!
//! The shim interposes the socket calls of libc. An AF_INET/AF_INET6 stream socket becomes one
//! end of an AF_UNIX socketpair whose other end belongs to `ustackd` (DESIGN.md, "The app ↔
//! daemon boundary"): the program's fd is a real kernel descriptor, so reads, writes, poll,
//! select, epoll, fork, dup, exec and sendfile work natively, and only operations that name
//! addresses, options or state go to the daemon, as requests on a per-thread control
//! connection (`conn`). A UDP socket is a SOCK_SEQPACKET pair carrying one record per
//! datagram behind a small address header (`dgram`). Everything else — AF_UNIX, netlink,
//! raw sockets, files — passes straight to libc.
//!
//! Layout: `real` (the libc functions, resolved once), `guard` (re-entrancy, panics, errno),
//! `hooks` (the exported C functions, thin), `ops` (what they do), `dgram` (UDP data calls),
//! `epoll` (UDP errors as EPOLLERR),
//! `table` (the fd table), `addr` (socket addresses, EFAULT-safe copies), `conn` (the control
//! connection), `log`.
#![allow(clippy::missing_safety_doc)] // hooks.rs states the contract once for all of them

mod addr;
mod conn;
mod dgram;
mod epoll;
mod guard;
mod hooks;
mod log;
mod ops;
mod real;
mod table;

/// Library constructor: resolve libc, read USTACK_SOCKET, create the fd table. No I/O and no
/// daemon connection here: that happens on the first socket call.
#[ctor::ctor(unsafe)]
fn init() {
    real::resolve_all();
    // Under the guard: std may call hooked functions (read) while initialising.
    guard::enter(
        || {
            conn::init();
            table::init();
            Ok(0)
        },
        || 0,
    );
}
