//! The C API: the `extern "C"` layer behind `include/graft.h` (generated from this module by
//! cbindgen and checked in; `tests/capi_header.rs` fails when the header is stale).
//!
//! Conventions shared by every function:
//! - it returns a [`GraftStatus`] (the few that return a string say so); on failure the message is
//!   read with [`graft_last_error`] on the same thread;
//! - it runs inside `ffi`, which catches unwinding, so no panic crosses the boundary;
//! - NULL pointers and bad lengths are errors; handles are ids looked up in a table
//!   (`handle.rs`), so a freed handle, or one of another kind, is an error and not a use after free.
//!
//! Thin: every function maps its arguments onto [`crate::model`], [`crate::adapter`] and
//! [`crate::train`].
// The C names (`graft_model`, `graft_session_options`) keep C's spelling.
#![allow(non_camel_case_types)]
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

mod handle;

// In reading order (cbindgen writes the header's functions in this order).
pub mod model;

pub mod adapter;

pub mod session;

pub mod text;

pub mod generate;

pub mod train;

/// The status every function of the C API returns: `GRAFT_STATUS_OK` (0) or an error whose message
/// `graft_last_error` gives.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraftStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument (or handle) was NULL.
    ErrNullPointer = 1,
    /// An argument has a value the function cannot honour: a bad length, an unknown adapter name,
    /// a token outside the vocabulary, text that is not UTF-8, a non-finite scale...
    ErrInvalidArgument = 2,
    /// A handle that is not a live handle of the expected kind (already freed, or another kind).
    ErrInvalidHandle = 3,
    /// A file could not be opened, read or mapped.
    ErrIo = 4,
    /// A file's bytes do not form a valid file of its format.
    ErrFormat = 5,
    /// A valid file that graft cannot use here: an unsupported architecture, an adapter made for
    /// another base model.
    ErrModel = 6,
    /// An option this build does not support (a device other than "cpu").
    ErrUnsupported = 7,
    /// The model and its sessions would not fit in the memory budget; the message gives the
    /// estimate.
    ErrMemoryBudget = 8,
    /// An output buffer is too small; the size needed has been written to the size output.
    ErrBufferTooSmall = 9,
    /// The session's context (its `n_ctx` positions) cannot hold the tokens.
    ErrContextFull = 10,
    /// The session is in use by another call (from another thread, or from a callback of its own).
    ErrBusy = 11,
    /// An internal error (a bug in graft, caught at the boundary). A session that was in use is
    /// unusable afterwards and should be freed.
    ErrInternal = 12,
}

/// An error on its way to the boundary: a status and a message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: GraftStatus,
    pub(crate) msg: String,
}

impl Failure {
    /// A failure with `status` and `msg`.
    pub(crate) fn new(status: GraftStatus, msg: impl Into<String>) -> Failure {
        Failure { status, msg: msg.into() }
    }
    /// `what` was NULL.
    pub(crate) fn null(what: &str) -> Failure {
        Failure::new(GraftStatus::ErrNullPointer, format!("{what} is NULL"))
    }
    /// An invalid argument.
    pub(crate) fn invalid(msg: impl Into<String>) -> Failure {
        Failure::new(GraftStatus::ErrInvalidArgument, msg)
    }
}

impl From<crate::Error> for Failure {
    fn from(e: crate::Error) -> Failure {
        use crate::Error as E;
        let status = match &e {
            E::Io { .. } => GraftStatus::ErrIo,
            E::Format { .. } | E::Tokenizer(_) => GraftStatus::ErrFormat,
            E::Model { .. } => GraftStatus::ErrModel,
            E::Invalid { .. } => GraftStatus::ErrInvalidArgument,
        };
        Failure::new(status, e.to_string())
    }
}

/// Result of the Rust side of an entry point.
pub(crate) type CResult<T> = Result<T, Failure>;

thread_local! {
    /// The message of the last failing call on this thread.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(msg: String) {
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // During thread teardown the slot may be gone; the message is then dropped.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = c);
}

/// Runs the body of the entry point `func`: maps its error to a status and the last-error message,
/// and catches any panic (reported as `GRAFT_STATUS_ERR_INTERNAL`) so that none unwinds into C.
pub(crate) fn ffi(func: &str, body: impl FnOnce() -> CResult<()>) -> GraftStatus {
    // AssertUnwindSafe: after a panic the only state that may be half-updated is a session's, and
    // sessions sit behind a mutex that the panic poisons; every later call on them is refused.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => GraftStatus::Ok,
        Ok(Err(f)) => {
            set_last_error(format!("{func}: {}", f.msg));
            f.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            // A payload whose destructor panics would unwind from here: drop it under a guard too.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            set_last_error(format!("{func}: internal error: {what}"));
            GraftStatus::ErrInternal
        }
    }
}

/// Borrows a NUL-terminated UTF-8 string argument named `what`.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid and unmodified during `'a`.
pub(crate) unsafe fn arg_str<'a>(p: *const c_char, what: &str) -> CResult<&'a str> {
    if p.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL, and the caller guarantees a NUL-terminated string valid for 'a.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| Failure::invalid(format!("{what} is not UTF-8 ({e})")))
}

/// Like [`arg_str`], but NULL is `None`.
///
/// # Safety
/// As [`arg_str`].
pub(crate) unsafe fn arg_opt_str<'a>(p: *const c_char, what: &str) -> CResult<Option<&'a str>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded from the caller.
    unsafe { arg_str(p, what) }.map(Some)
}

/// Checks that an array argument of `n` elements can be a slice: NULL only when `n` is 0, aligned,
/// and no larger than the address space allows.
fn check_array<T>(p: *const T, n: usize, what: &str) -> CResult<()> {
    if n == 0 {
        return Ok(());
    }
    if p.is_null() {
        return Err(Failure::null(what));
    }
    if !p.is_aligned() {
        return Err(Failure::invalid(format!("{what} is not aligned for its element type")));
    }
    if n > isize::MAX as usize / size_of::<T>().max(1) {
        return Err(Failure::invalid(format!("length {n} of {what} is larger than any array")));
    }
    Ok(())
}

/// Borrows an array argument of `n` elements (NULL is allowed when `n` is 0).
///
/// # Safety
/// When `n > 0` and `p` is not NULL, `p` points to `n` initialized elements that stay valid and
/// unmodified during `'a`.
pub(crate) unsafe fn arg_slice<'a, T>(p: *const T, n: usize, what: &str) -> CResult<&'a [T]> {
    check_array(p, n, what)?;
    if n == 0 {
        return Ok(&[]);
    }
    // SAFETY: non-NULL, aligned, size within isize::MAX (checked above); the caller guarantees `n`
    // readable elements valid for 'a.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// Borrows an output array argument of `n` elements (NULL is allowed when `n` is 0).
///
/// # Safety
/// When `n > 0` and `p` is not NULL, `p` points to `n` writable elements, not aliased by any other
/// argument, valid during `'a`.
pub(crate) unsafe fn arg_slice_mut<'a, T: Copy>(p: *mut T, n: usize, what: &str) -> CResult<&'a mut [T]> {
    check_array(p, n, what)?;
    if n == 0 {
        return Ok(&mut []);
    }
    // SAFETY: non-NULL, aligned, size within isize::MAX (checked above); the caller guarantees `n`
    // writable, unaliased elements. `T: Copy` elements have no destructor, so writing over
    // uninitialized ones is sound.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, n) })
}

/// An output argument: checked for NULL and alignment up front, written once the call succeeds.
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    /// Checks the output pointer `p` named `what`.
    ///
    /// # Safety
    /// When not NULL, `p` points to memory valid for writing one `T` until [`Out::write`].
    pub(crate) unsafe fn new(p: *mut T, what: &str) -> CResult<Out<T>> {
        if p.is_null() {
            return Err(Failure::null(what));
        }
        if !p.is_aligned() {
            return Err(Failure::invalid(format!("{what} is not aligned for its type")));
        }
        Ok(Out(p))
    }

    /// Like [`Out::new`], but NULL means the caller does not want this output.
    ///
    /// # Safety
    /// As [`Out::new`].
    pub(crate) unsafe fn optional(p: *mut T, what: &str) -> CResult<Option<Out<T>>> {
        if p.is_null() {
            return Ok(None);
        }
        // SAFETY: forwarded from the caller.
        unsafe { Out::new(p, what) }.map(Some)
    }

    /// Writes the output (without reading or dropping what was there).
    pub(crate) fn write(self, v: T) {
        // SAFETY: non-NULL and aligned (checked in `new`); valid for one write by `new`'s contract.
        unsafe { self.0.write(v) }
    }
}

/// The message of the last failing graft call on the calling thread (UTF-8, NUL-terminated), or ""
/// when no call has failed on it yet. Never NULL.
///
/// Ownership: the string belongs to graft; it stays valid until the next failing graft call on
/// the same thread, or until the thread exits. Copy it to keep it.
///
/// Thread safety: each thread has its own message; callable from any thread at any time.
#[no_mangle]
pub extern "C" fn graft_last_error() -> *const c_char {
    static EMPTY: &CStr = c"";
    catch_unwind(|| LAST_ERROR.try_with(|e| e.borrow().as_ptr()).unwrap_or(EMPTY.as_ptr())).unwrap_or(EMPTY.as_ptr())
}

/// The name of a status code (`"GRAFT_STATUS_ERR_IO"`), `"GRAFT_STATUS_UNKNOWN"` for a value that
/// is not one. Returns a static NUL-terminated string (never NULL, never to be freed).
///
/// Thread safety: callable from any thread.
#[no_mangle]
pub extern "C" fn graft_status_name(status: c_int) -> *const c_char {
    let s: &'static CStr = match status {
        0 => c"GRAFT_STATUS_OK",
        1 => c"GRAFT_STATUS_ERR_NULL_POINTER",
        2 => c"GRAFT_STATUS_ERR_INVALID_ARGUMENT",
        3 => c"GRAFT_STATUS_ERR_INVALID_HANDLE",
        4 => c"GRAFT_STATUS_ERR_IO",
        5 => c"GRAFT_STATUS_ERR_FORMAT",
        6 => c"GRAFT_STATUS_ERR_MODEL",
        7 => c"GRAFT_STATUS_ERR_UNSUPPORTED",
        8 => c"GRAFT_STATUS_ERR_MEMORY_BUDGET",
        9 => c"GRAFT_STATUS_ERR_BUFFER_TOO_SMALL",
        10 => c"GRAFT_STATUS_ERR_CONTEXT_FULL",
        11 => c"GRAFT_STATUS_ERR_BUSY",
        12 => c"GRAFT_STATUS_ERR_INTERNAL",
        _ => c"GRAFT_STATUS_UNKNOWN",
    };
    s.as_ptr()
}

/// graft's version (`"0.1.0"`), a static NUL-terminated string (never NULL, never to be freed).
///
/// Thread safety: callable from any thread.
#[no_mangle]
pub extern "C" fn graft_version() -> *const c_char {
    const V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    V.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_internal_errors_with_their_message() {
        let st = ffi("graft_test", || panic!("boom {}", 7));
        assert_eq!(st, GraftStatus::ErrInternal);
        // SAFETY: graft_last_error returns a valid NUL-terminated string owned by this thread.
        let msg = unsafe { CStr::from_ptr(graft_last_error()) }.to_str().unwrap().to_string();
        assert_eq!(msg, "graft_test: internal error: boom 7");
        assert_eq!(ffi("graft_test", || Ok(())), GraftStatus::Ok);
    }

    #[test]
    fn status_names_match_the_enum() {
        for (st, name) in [(GraftStatus::Ok, "GRAFT_STATUS_OK"), (GraftStatus::ErrInternal, "GRAFT_STATUS_ERR_INTERNAL"), (GraftStatus::ErrBusy, "GRAFT_STATUS_ERR_BUSY")] {
            // SAFETY: static NUL-terminated strings.
            assert_eq!(unsafe { CStr::from_ptr(graft_status_name(st as c_int)) }.to_str().unwrap(), name);
        }
    }
}
