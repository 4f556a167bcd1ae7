//! What every exported function goes through: the re-entrancy guard, `catch_unwind`, and the
//! one place where errno is set.
//!
//! The guard is per thread. Its mark is the stack address at which the shim was entered; a
//! call that arrives while the mark is set *and deeper in the stack* is a nested one (the
//! shim's own use of std calling `write`/`close`, or a signal handler interrupting a hook) and
//! goes straight to libc. A call that finds the mark set but is *not* deeper means a previous
//! call never returned normally (a signal handler `siglongjmp`ed out of it, as test harnesses
//! do on timeouts): the stale mark is ignored, so the shim keeps working.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use libc::{c_int, ssize_t};

use crate::real;

/// Why an operation did not produce a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    /// Fail with this errno.
    Errno(c_int),
    /// Not a ustack socket (or not a case the shim handles): call libc.
    Pass,
}

pub type OpResult<T> = Result<T, Fail>;

impl From<c_int> for Fail {
    fn from(errno: c_int) -> Fail {
        Fail::Errno(errno)
    }
}

/// Return types of the hooked functions: all signal failure with -1.
pub trait CReturn: Copy {
    const FAILURE: Self;
}

impl CReturn for c_int {
    const FAILURE: c_int = -1;
}

impl CReturn for ssize_t {
    const FAILURE: ssize_t = -1;
}

thread_local! {
    static MARK: Cell<usize> = const { Cell::new(0) };
}

/// An address on the current stack frame (the stack grows down on every Linux target).
#[inline(always)]
pub fn stack_mark() -> usize {
    let probe = 0u8;
    std::ptr::addr_of!(probe) as usize
}

/// Runs `op` under the guard; `pass` is the libc call for the cases the shim leaves alone.
pub fn enter<T: CReturn>(op: impl FnOnce() -> OpResult<T>, pass: impl FnOnce() -> T) -> T {
    let here = stack_mark();
    let outer = MARK.try_with(Cell::get).unwrap_or(usize::MAX);
    if outer != 0 && here < outer {
        return pass();
    }
    let _ = MARK.try_with(|m| m.set(here));
    let result = catch_unwind(AssertUnwindSafe(op));
    let _ = MARK.try_with(|m| m.set(0));
    match result {
        Ok(Ok(value)) => value,
        Ok(Err(Fail::Errno(errno))) => {
            real::set_errno(errno);
            T::FAILURE
        }
        Ok(Err(Fail::Pass)) => pass(),
        Err(_) => {
            // A bug in the shim: report an I/O error rather than unwinding into C.
            real::set_errno(libc::EIO);
            T::FAILURE
        }
    }
}
