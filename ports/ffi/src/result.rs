//! What every call returns: one flat code. The core's errors become codes here and only
//! here, so a change in the core's error types is a change in this file.

use core::ffi::c_char;

use echoloop_core::udp::UdpStorageError;
use echoloop_core::{
    AcceptError, EofError, ErrorReportError, RecvError, SendError, StorageError, UnknownConn,
};

/// The result of every call: `ECHOLOOP_RESULT_OK` (0), or why nothing was done.
/// `echoloop_result_str` names each.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum echoloop_result {
    /// Done.
    Ok = 0,
    /// A pointer argument that must not be NULL was NULL.
    NullPointer,
    /// Memory or a handle not aligned to `echoloop_align()`.
    Misaligned,
    /// The memory given is shorter than the size query said.
    TooSmall,
    /// Sizes the core refuses: no connection or buffer, more buffers than connections,
    /// more than 65,534 connections, a queue of 0 bytes or over 4 GiB, fewer than 2
    /// datagram slots, no flood-guard source; or sizes whose memory overflows `size_t`.
    BadConfig,
    /// An enumeration argument out of its range (an error kind, a receive kind).
    BadArgument,
    /// The handle is not a live server or UDP echo: never initialised, or deinitialised.
    BadHandle,
    /// Called from inside a callback of the same handle: not allowed, nothing was done.
    Reentered,
    /// A callback claimed more bytes than it was lent: a driver bug. Nothing was taken.
    Overclaimed,
    /// The connection id names no open connection: never issued, or closed since (its
    /// `ECHOLOOP_ACTION_KIND_CLOSE` was polled). A driver bug.
    UnknownConn,
    /// The connection is closing: only `echoloop_poll_action` concerns it now.
    Closing,
    /// Every connection slot is taken: close the accepted connection (counted as refused).
    Full,
    /// The server is shutting down: close the accepted connection (counted as refused).
    ShuttingDown,
    /// The connection takes no more bytes: the peer sent EOF, or the server is shutting
    /// down. From `echoloop_on_eof`: a second EOF, a driver bug.
    ReadClosed,
    /// The connection's queue is full: send first (its read interest is off).
    QueueFull,
    /// The connection holds no buffer and the pool has none free: wait for read interest.
    NoBuffer,
    /// `echoloop_check_invariants` found one broken: a bug in the core, or memory the
    /// server owns written by someone else.
    BrokenInvariant,
}

impl echoloop_result {
    /// A readable sentence, NUL-terminated, for `echoloop_result_str`.
    const fn text(self) -> &'static core::ffi::CStr {
        match self {
            Self::Ok => c"ok",
            Self::NullPointer => c"a required pointer was NULL",
            Self::Misaligned => c"memory or handle not aligned to echoloop_align()",
            Self::TooSmall => c"the memory given is smaller than the size query said",
            Self::BadConfig => c"sizes the core refuses",
            Self::BadArgument => c"an enumeration argument out of range",
            Self::BadHandle => c"not a live handle (never initialised, or deinitialised)",
            Self::Reentered => c"called from inside a callback of the same handle",
            Self::Overclaimed => c"a callback claimed more bytes than it was lent",
            Self::UnknownConn => c"unknown connection id",
            Self::Closing => c"connection is closing",
            Self::Full => c"connection table is full",
            Self::ShuttingDown => c"server is shutting down",
            Self::ReadClosed => c"connection is closed for reading",
            Self::QueueFull => c"connection queue is full",
            Self::NoBuffer => c"no free buffer in the pool",
            Self::BrokenInvariant => c"a server invariant is broken",
        }
    }
}

/// Maps each of the core's per-operation errors to its code: variants of the same name
/// share a code, so a C driver matches on one flat list.
macro_rules! from_core {
    ($($error:ident { $($variant:ident => $code:ident),* $(,)? })*) => {
        $(
            impl From<$error> for echoloop_result {
                fn from(e: $error) -> Self {
                    match e {
                        $($error::$variant => Self::$code,)*
                    }
                }
            }
        )*
    };
}

from_core! {
    AcceptError { Full => Full, ShuttingDown => ShuttingDown }
    RecvError {
        ReadClosed => ReadClosed,
        QueueFull => QueueFull,
        NoBuffer => NoBuffer,
        Closing => Closing,
        UnknownConn => UnknownConn,
    }
    SendError { Closing => Closing, UnknownConn => UnknownConn }
    EofError { ReadClosed => ReadClosed, Closing => Closing, UnknownConn => UnknownConn }
    ErrorReportError { Closing => Closing, UnknownConn => UnknownConn }
}

impl From<UnknownConn> for echoloop_result {
    fn from(_: UnknownConn) -> Self {
        Self::UnknownConn
    }
}

/// Tables the core refuses: the size query checked the arithmetic, the core the rest.
impl From<StorageError> for echoloop_result {
    fn from(_: StorageError) -> Self {
        Self::BadConfig
    }
}

impl From<UdpStorageError> for echoloop_result {
    fn from(_: UdpStorageError) -> Self {
        Self::BadConfig
    }
}

/// Collapses a call's outcome into its code.
pub(crate) fn code(r: Result<(), echoloop_result>) -> echoloop_result {
    match r {
        Ok(()) => echoloop_result::Ok,
        Err(e) => e,
    }
}

/// A static, NUL-terminated sentence for a result code; "unknown result" for a value no
/// code has. Never NULL; the caller must not free it.
#[no_mangle]
pub extern "C" fn echoloop_result_str(result: u32) -> *const c_char {
    use echoloop_result as R;
    const ALL: [R; 17] = [
        R::Ok,
        R::NullPointer,
        R::Misaligned,
        R::TooSmall,
        R::BadConfig,
        R::BadArgument,
        R::BadHandle,
        R::Reentered,
        R::Overclaimed,
        R::UnknownConn,
        R::Closing,
        R::Full,
        R::ShuttingDown,
        R::ReadClosed,
        R::QueueFull,
        R::NoBuffer,
        R::BrokenInvariant,
    ];
    ALL.iter()
        .find(|r| **r as u32 == result)
        .map_or(c"unknown result", |r| r.text())
        .as_ptr()
}
