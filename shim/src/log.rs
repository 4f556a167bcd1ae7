//! Diagnostics without stdio: a line is formatted into memory and written to fd 2 with the
//! real `write`, so a hook never takes stdio locks or re-enters itself.

use crate::real;

/// Writes `text` and a newline to standard error (best effort).
pub fn line(text: &str) {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(b'\n');
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        // SAFETY: `rest` is a live buffer of `rest.len()` bytes.
        let n = unsafe { real::write(2, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            if n < 0 && real::errno() == libc::EINTR {
                continue;
            }
            return;
        }
        rest = rest.get(n.unsigned_abs()..).unwrap_or(&[]);
    }
}

/// The C library's message for an errno value.
pub fn errno_text(errno: libc::c_int) -> String {
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: the XSI strerror_r (what the libc crate binds) writes a NUL-terminated message
    // into `buf` when it returns 0.
    let rc = unsafe { libc::strerror_r(errno, buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return format!("errno {errno}");
    }
    // SAFETY: NUL-terminated by strerror_r (the buffer was zeroed, too).
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}
