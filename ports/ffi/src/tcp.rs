//! The TCP echo server through C: memory, events, lent buffers, actions, deadline, stats.
//!
//! Every function returns an [`echoloop_result`]; out-parameters are written only on
//! `ECHOLOOP_RESULT_OK`. The header (generated from these comments) is the contract.

use core::ffi::c_void;

use echoloop_core::{
    Action, CloseReason, Config, ConnId, ConnSlot, Duration, ErrorKind, Instant, Server,
    SliceStorage,
};

use crate::layout::{self, ECHOLOOP_ALIGN};
use crate::raw::{self, echoloop_recv_fn, echoloop_send_fn, TcpServer};
use crate::result::{code, echoloop_result};

/// A TCP echo server living in memory the caller supplied. Opaque: only a pointer to it,
/// from `echoloop_server_init`, is ever used.
pub struct echoloop_server {
    _opaque: [u8; 0],
}

/// `echoloop_next_deadline`'s answer when no deadline is set: wait for events only.
pub const ECHOLOOP_NO_DEADLINE: u64 = 0xFFFF_FFFF_FFFF_FFFF;

/// The sizes and rules of a TCP server.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct echoloop_config {
    /// Connections served at once: 1 to 65,534. The accepted connection beyond them is
    /// refused (`ECHOLOOP_RESULT_FULL`).
    pub conns: u32,
    /// Buffers in the pool that the connections share: 1 to `conns`. A connection holds
    /// one only while bytes wait in its queue.
    pub buffers: u32,
    /// Bytes one buffer holds: the most one connection's queue holds. At least 1.
    pub queue_size: u32,
    /// Close a connection after this many milliseconds with no byte moved either way (a
    /// peer that never reads); 0: never.
    pub idle_timeout_ms: u64,
}

/// A connection, as the server names it: `index` is below `conns` and dense, so a driver
/// can keep its own per-connection table (a `struct tcp_pcb *`) in an array indexed by
/// it. An id stays valid until its `ECHOLOOP_ACTION_KIND_CLOSE` is polled; after that the
/// server rejects it (`ECHOLOOP_RESULT_UNKNOWN_CONN`), even once the index is reused with
/// the next `generation`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct echoloop_conn_id {
    /// The slot.
    pub index: u16,
    /// How many connections used the slot before this one.
    pub generation: u32,
}

impl From<ConnId> for echoloop_conn_id {
    fn from(id: ConnId) -> Self {
        // Indices are below `conns`, which the core bounds to 65,534.
        echoloop_conn_id {
            index: id.index() as u16,
            generation: id.generation(),
        }
    }
}

impl From<echoloop_conn_id> for ConnId {
    fn from(id: echoloop_conn_id) -> Self {
        ConnId::from_parts(id.index, id.generation)
    }
}

/// What to wait for on a connection.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct echoloop_interest {
    /// Receive when data arrives: the queue has room and the peer has not sent EOF (or the
    /// connection is draining). False: leave received data in the stack, unacknowledged
    /// to the application, so the TCP window closes (backpressure).
    pub read: bool,
    /// Send: bytes are queued.
    pub write: bool,
}

/// A socket failure, for `echoloop_on_error` (passed as a `uint32_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum echoloop_error_kind {
    /// The peer reset the connection (a TCP RST; lwIP's `ERR_RST`).
    Reset = 0,
    /// The connection is gone without a reset (lwIP's `ERR_CLSD`).
    HangUp = 1,
    /// The connection timed out in the stack (retransmissions, keep-alive).
    TimedOut = 2,
    /// Any other failure.
    Other = 3,
}

/// Why a connection closed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum echoloop_close_reason {
    /// The peer sent EOF and every byte it sent was echoed: close with a FIN.
    PeerClosed,
    /// The peer reset the connection: abort.
    Reset,
    /// The socket failed otherwise (`echoloop_on_error`): abort.
    Error,
    /// No byte moved for the idle timeout: abort.
    IdleTimeout,
    /// The server shut down and this connection's queue was delivered: close with a FIN.
    Shutdown,
    /// The server shut down and the grace period ran out: abort.
    ShutdownTimeout,
    /// `echoloop_abort`: abort.
    Aborted,
}

impl From<CloseReason> for echoloop_close_reason {
    fn from(r: CloseReason) -> Self {
        match r {
            CloseReason::PeerClosed => Self::PeerClosed,
            CloseReason::Error(ErrorKind::Reset) => Self::Reset,
            CloseReason::Error(_) => Self::Error,
            CloseReason::IdleTimeout => Self::IdleTimeout,
            CloseReason::Shutdown => Self::Shutdown,
            CloseReason::ShutdownTimeout => Self::ShutdownTimeout,
            CloseReason::Aborted => Self::Aborted,
        }
    }
}

/// What `echoloop_poll_action` found.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum echoloop_action_kind {
    /// Nothing to do: stop polling.
    None,
    /// The server is shutting down and this connection's queue was delivered: shut down
    /// its write side (a FIN; lwIP's `tcp_shutdown(pcb, 0, 1)`) and keep receiving; what
    /// arrives is discarded, and its close follows.
    ShutdownWrite,
    /// Close the connection and forget its id: with a FIN when `graceful`
    /// (`tcp_close`), else with a RST (`tcp_abort`).
    Close,
}

/// One thing the server asks the driver to do.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct echoloop_action {
    /// What to do; `ECHOLOOP_ACTION_KIND_NONE` when there is nothing.
    pub kind: echoloop_action_kind,
    /// The connection concerned.
    pub id: echoloop_conn_id,
    /// Why it closes (`ECHOLOOP_ACTION_KIND_CLOSE` only).
    pub reason: echoloop_close_reason,
    /// Close with a FIN (every received byte was echoed) rather than a RST.
    pub graceful: bool,
}

const NO_ACTION: echoloop_action = echoloop_action {
    kind: echoloop_action_kind::None,
    id: echoloop_conn_id {
        index: 0,
        generation: 0,
    },
    reason: echoloop_close_reason::PeerClosed,
    graceful: false,
};

/// What a server has done, and holds now.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct echoloop_stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections refused: the table was full, or the server shutting down.
    pub refused: u64,
    /// Closes after the peer's EOF, every byte echoed.
    pub closed_peer_closed: u64,
    /// Closes on a reset.
    pub closed_reset: u64,
    /// Closes on another socket failure.
    pub closed_error: u64,
    /// Closes on the idle timeout.
    pub closed_idle_timeout: u64,
    /// Closes at shutdown, queue delivered.
    pub closed_shutdown: u64,
    /// Closes at the end of the shutdown grace period.
    pub closed_shutdown_timeout: u64,
    /// Closes by `echoloop_abort`.
    pub closed_aborted: u64,
    /// Bytes received into queues.
    pub bytes_in: u64,
    /// Bytes sent from queues.
    pub bytes_out: u64,
    /// Bytes queued and never sent (their connection failed or was aborted).
    pub bytes_discarded: u64,
    /// Bytes received and discarded from draining connections.
    pub bytes_drained: u64,
    /// The most bytes one queue has held.
    pub peak_queue: u64,
    /// The most connections open at once.
    pub peak_conns: u64,
    /// Connections holding a slot now.
    pub conns: u64,
    /// Buffers no connection holds now.
    pub free_buffers: u64,
    /// The connection table's length (`conns` of the configuration).
    pub capacity: u64,
    /// `echoloop_shutdown` or `echoloop_abort` was called and every connection is closed
    /// and polled: the driver may stop.
    pub shut_down: bool,
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn sizes(config: &echoloop_config) -> Result<(usize, usize, usize), echoloop_result> {
    let as_usize = |n: u32| usize::try_from(n).map_err(|_| echoloop_result::BadConfig);
    Ok((
        as_usize(config.conns)?,
        as_usize(config.buffers)?,
        as_usize(config.queue_size)?,
    ))
}

/// Runs `f` on a live server and returns its code.
///
/// # Safety
/// As `raw::with`: `server` is NULL or from `echoloop_server_init`.
unsafe fn run(
    server: *mut echoloop_server,
    f: impl FnOnce(&mut TcpServer) -> Result<(), echoloop_result>,
) -> echoloop_result {
    code(raw::with::<TcpServer, ()>(server.cast(), f))
}

/// The alignment, in bytes, of the memory `echoloop_server_init` and `echoloop_udp_init`
/// take: `ECHOLOOP_ALIGN`.
#[no_mangle]
pub extern "C" fn echoloop_align() -> usize {
    ECHOLOOP_ALIGN
}

/// Writes to `*size` the bytes of memory a server of `*config` needs: the whole of it,
/// handle and tables (`ECHOLOOP_RESULT_BAD_CONFIG` if it overflows `size_t`). Sizes the
/// core refuses are reported by `echoloop_server_init`.
///
/// # Safety
/// `config` and `size` are NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn echoloop_server_size(
    config: *const echoloop_config,
    size: *mut usize,
) -> echoloop_result {
    code((|| {
        let (conns, buffers, queue) = sizes(&raw::get(config)?)?;
        let layout = layout::tcp(conns, buffers, queue).ok_or(echoloop_result::BadConfig)?;
        raw::put(size, layout.total)
    })())
}

/// Makes a server in `mem` (`len` bytes, aligned to `ECHOLOOP_ALIGN`, at least
/// `echoloop_server_size` bytes) and writes its handle to `*server`. The memory is the
/// server's until `echoloop_server_deinit`; its contents need no initialising.
///
/// # Safety
/// `mem` is NULL or valid for reads and writes of `len` bytes, used by nothing else until
/// deinit; `config` and `server` are NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn echoloop_server_init(
    mem: *mut c_void,
    len: usize,
    config: *const echoloop_config,
    server: *mut *mut echoloop_server,
) -> echoloop_result {
    code((|| {
        let config = raw::get(config)?;
        let (conns, buffers, queue) = sizes(&config)?;
        if server.is_null() {
            return Err(echoloop_result::NullPointer);
        }
        let layout = layout::tcp(conns, buffers, queue).ok_or(echoloop_result::BadConfig)?;
        let base = raw::check_block(mem, len, layout.total)?;
        let bytes_len = buffers.saturating_mul(queue);
        let slots = raw::table(base, layout.slots, conns, ConnSlot::EMPTY);
        let free = raw::table(base, layout.free, buffers, 0u16);
        let bytes = raw::table(base, layout.bytes, bytes_len, 0u8);
        let storage = SliceStorage::new(slots, free, bytes, queue)?;
        let core_config = Config::new().with_idle_timeout(
            (config.idle_timeout_ms > 0).then(|| Duration::from_millis(config.idle_timeout_ms)),
        );
        let core = Server::new(core_config, storage)?;
        let handle = raw::install(base, core);
        raw::put(server, handle.cast::<echoloop_server>())
    })())
}

/// Ends a server: its handle is dead from now on (calls with it return
/// `ECHOLOOP_RESULT_BAD_HANDLE`) and its memory is the caller's again. Connections still
/// open are forgotten: abort them first (`echoloop_abort`, then poll the actions) if the
/// stack still holds them.
///
/// # Safety
/// `server` is NULL or from `echoloop_server_init`, its memory not yet reused.
#[no_mangle]
pub unsafe extern "C" fn echoloop_server_deinit(server: *mut echoloop_server) -> echoloop_result {
    code(raw::retire::<TcpServer>(server.cast()))
}

/// A connection was accepted: writes its id to `*id`. `ECHOLOOP_RESULT_FULL` or
/// `ECHOLOOP_RESULT_SHUTTING_DOWN`: close it at once (a RST); it was counted as refused.
///
/// # Safety
/// `server` is NULL or from `echoloop_server_init`; `id` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn echoloop_on_accepted(
    server: *mut echoloop_server,
    now_ms: u64,
    id: *mut echoloop_conn_id,
) -> echoloop_result {
    if id.is_null() {
        return echoloop_result::NullPointer;
    }
    run(server, |s| {
        let conn = s.on_accepted(at(now_ms))?;
        raw::put(id, conn.into())
    })
}

/// The driver refused a connection on its own (counted as refused).
///
/// # Safety
/// `server` is NULL or from `echoloop_server_init`.
#[no_mangle]
pub unsafe extern "C" fn echoloop_on_refused(server: *mut echoloop_server) -> echoloop_result {
    run(server, |s| {
        s.on_refused();
        Ok(())
    })
}

/// Lends `recv` the free space of the connection's queue: `recv(user, buf, len)` writes
/// up to `len` bytes at `buf` (`len` is never 0) and returns how many; they are queued
/// for the echo, and their count written to `*received` (if not NULL). A draining
/// connection is lent a buffer whose bytes are discarded.
///
/// Errors, `recv` not called: `READ_CLOSED`, `QUEUE_FULL`, `NO_BUFFER` (its read interest
/// was off), `CLOSING`, `UNKNOWN_CONN`. `OVERCLAIMED`: `recv` returned more than `len`;
/// nothing was queued.
///
/// # Safety
/// `server` is NULL or from `echoloop_server_init`; `received` is NULL or valid; `recv`
/// follows the header's rules for callbacks.
#[no_mangle]
pub unsafe extern "C" fn echoloop_recv(
    server: *mut echoloop_server,
    now_ms: u64,
    id: echoloop_conn_id,
    recv: echoloop_recv_fn,
    user: *mut c_void,
    received: *mut usize,
) -> echoloop_result {
    let Some(recv) = recv else {
        return echoloop_result::NullPointer;
    };
    run(server, |s| {
        let n = s.recv_with(at(now_ms), id.into(), |buf| {
            let n = raw::call_recv(recv, user, buf);
            if n > buf.len() {
                (0, Err(echoloop_result::Overclaimed))
            } else {
                (n, Ok(n))
            }
        })??;
        raw::put_opt(received, n)
    })
}

/// Lends `send` the oldest queued bytes that are contiguous: `send(user, buf, len)` takes
/// up to `len` of them (copies them into the stack's send buffer) and returns how many;
/// they leave the queue, and their count is written to `*sent` (if not NULL). `len` is 0
/// when nothing is queued. Bytes that wrap around the end of the queue are lent by the
/// next call: call it while it sends and the interest says `write`.
///
/// Errors, `send` not called: `CLOSING`, `UNKNOWN_CONN`. `OVERCLAIMED`: `send` returned
/// more than `len`; nothing left the queue.
///
/// # Safety
/// `server` is NULL or from `echoloop_server_init`; `sent` is NULL or valid; `send`
/// follows the header's rules for callbacks.
#[no_mangle]
pub unsafe extern "C" fn echoloop_send(
    server: *mut echoloop_server,
    now_ms: u64,
    id: echoloop_conn_id,
    send: echoloop_send_fn,
    user: *mut c_void,
    sent: *mut usize,
) -> echoloop_result {
    let Some(send) = send else {
        return echoloop_result::NullPointer;
    };
    run(server, |s| {
        let n = s.send_with(at(now_ms), id.into(), |buf| {
            let n = raw::call_send(send, user, buf);
            if n > buf.len() {
                (0, Err(echoloop_result::Overclaimed))
            } else {
                (n, Ok(n))
            }
        })??;
        raw::put_opt(sent, n)
    })
}

/// The peer sent EOF (a FIN; lwIP's recv callback with a NULL pbuf), after every byte it
/// sent was given to `echoloop_recv`. The connection closes once its queue is echoed.
/// `READ_CLOSED` for a second EOF.
///
/// # Safety
/// `server` is NULL or from `echoloop_server_init`.
#[no_mangle]
pub unsafe extern "C" fn echoloop_on_eof(
    server: *mut echoloop_server,
    now_ms: u64,
    id: echoloop_conn_id,
) -> echoloop_result {
    run(server, |s| Ok(s.on_eof(at(now_ms), id.into())?))
}

/// The connection failed (`kind`: an `echoloop_error_kind`): it closes at once, its queue
/// discarded. The stack's socket may already be gone (lwIP's err callback): the close
/// action still comes, and concerns only the driver's own table then.
///
/// # Safety
/// `server` is NULL or from `echoloop_server_init`.
#[no_mangle]
pub unsafe extern "C" fn echoloop_on_error(
    server: *mut echoloop_server,
    id: echoloop_conn_id,
    kind: u32,
) -> echoloop_result {
    let kind = match kind {
        k if k == echoloop_error_kind::Reset as u32 => ErrorKind::Reset,
        k if k == echoloop_error_kind::HangUp as u32 => ErrorKind::HangUp,
        k if k == echoloop_error_kind::TimedOut as u32 => ErrorKind::TimedOut,
        k if k == echoloop_error_kind::Other as u32 => ErrorKind::Other,
        _ => return echoloop_result::BadArgument,
    };
    run(server, |s| Ok(s.on_error(id.into(), kind)?))
}

/// Time has passed: closes idle connections, and at the end of a shutdown's grace period
/// whatever is left. Call it at `echoloop_next_deadline` (calling it earlier or more
/// often is harmless).
///
/// # Safety
/// `server` is NULL or from `echoloop_server_init`.
#[no_mangle]
pub unsafe extern "C" fn echoloop_on_timeout(
    server: *mut echoloop_server,
    now_ms: u64,
) -> echoloop_result {
    run(server, |s| {
        s.on_timeout(at(now_ms));
        Ok(())
    })
}

/// Begins a graceful shutdown: accept and read nothing more, deliver every queued byte,
/// shut down write sides; after `grace_ms`, close what is left. Idempotent.
///
/// # Safety
/// `server` is NULL or from `echoloop_server_init`.
#[no_mangle]
pub unsafe extern "C" fn echoloop_shutdown(
    server: *mut echoloop_server,
    now_ms: u64,
    grace_ms: u64,
) -> echoloop_result {
    run(server, |s| {
        s.shutdown(at(now_ms), Duration::from_millis(grace_ms));
        Ok(())
    })
}

/// Closes every connection now (queued bytes discarded; the close actions say RST) and
/// accepts nothing more.
///
/// # Safety
/// `server` is NULL or from `echoloop_server_init`.
#[no_mangle]
pub unsafe extern "C" fn echoloop_abort(server: *mut echoloop_server) -> echoloop_result {
    run(server, |s| {
        s.abort();
        Ok(())
    })
}

/// Writes the next action to `*action`: kind `ECHOLOOP_ACTION_KIND_NONE` when there is
/// none. Drain it (until NONE) after every batch of events, before waiting again.
///
/// # Safety
/// `server` is NULL or from `echoloop_server_init`; `action` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn echoloop_poll_action(
    server: *mut echoloop_server,
    action: *mut echoloop_action,
) -> echoloop_result {
    if action.is_null() {
        return echoloop_result::NullPointer;
    }
    run(server, |s| {
        let next = match s.poll_action() {
            None => NO_ACTION,
            Some(Action::ShutdownWrite(id)) => echoloop_action {
                kind: echoloop_action_kind::ShutdownWrite,
                id: id.into(),
                ..NO_ACTION
            },
            Some(Action::Close(id, reason)) => echoloop_action {
                kind: echoloop_action_kind::Close,
                id: id.into(),
                reason: reason.into(),
                graceful: reason.is_graceful(),
            },
        };
        raw::put(action, next)
    })
}

/// Writes to `*at_ms` when `echoloop_on_timeout` must be called at the latest, on the
/// clock of the `now_ms` arguments; `ECHOLOOP_NO_DEADLINE` for none.
///
/// # Safety
/// `server` is NULL or from `echoloop_server_init`; `at_ms` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn echoloop_next_deadline(
    server: *mut echoloop_server,
    at_ms: *mut u64,
) -> echoloop_result {
    if at_ms.is_null() {
        return echoloop_result::NullPointer;
    }
    run(server, |s| {
        let deadline = s
            .poll_timeout()
            .map_or(ECHOLOOP_NO_DEADLINE, Instant::as_millis);
        raw::put(at_ms, deadline)
    })
}

/// Writes what to wait for on a connection to `*interest`.
///
/// # Safety
/// `server` is NULL or from `echoloop_server_init`; `interest` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn echoloop_conn_interest(
    server: *mut echoloop_server,
    id: echoloop_conn_id,
    interest: *mut echoloop_interest,
) -> echoloop_result {
    if interest.is_null() {
        return echoloop_result::NullPointer;
    }
    run(server, |s| {
        let i = s.interest(id.into())?;
        raw::put(
            interest,
            echoloop_interest {
                read: i.read,
                write: i.write,
            },
        )
    })
}

/// Writes to `*accept` whether to accept connections now: a slot is free and the server
/// is serving. A driver that cannot stop accepting (lwIP) may ignore it: the accept beyond
/// the table is refused with `ECHOLOOP_RESULT_FULL`.
///
/// # Safety
/// `server` is NULL or from `echoloop_server_init`; `accept` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn echoloop_listener_interest(
    server: *mut echoloop_server,
    accept: *mut bool,
) -> echoloop_result {
    if accept.is_null() {
        return echoloop_result::NullPointer;
    }
    run(server, |s| raw::put(accept, s.listener_interest()))
}

/// Writes the bytes queued on a connection to `*queued`.
///
/// # Safety
/// `server` is NULL or from `echoloop_server_init`; `queued` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn echoloop_queued(
    server: *mut echoloop_server,
    id: echoloop_conn_id,
    queued: *mut usize,
) -> echoloop_result {
    if queued.is_null() {
        return echoloop_result::NullPointer;
    }
    run(server, |s| raw::put(queued, s.queued(id.into())?))
}

/// Writes the server's counters and gauges to `*stats`.
///
/// # Safety
/// `server` is NULL or from `echoloop_server_init`; `stats` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn echoloop_stats_get(
    server: *mut echoloop_server,
    stats: *mut echoloop_stats,
) -> echoloop_result {
    if stats.is_null() {
        return echoloop_result::NullPointer;
    }
    run(server, |s| {
        let st = s.stats();
        let c = st.closed;
        raw::put(
            stats,
            echoloop_stats {
                accepted: st.accepted,
                refused: st.refused,
                closed_peer_closed: c.peer_closed,
                closed_reset: c.reset,
                closed_error: c.error,
                closed_idle_timeout: c.idle_timeout,
                closed_shutdown: c.shutdown,
                closed_shutdown_timeout: c.shutdown_timeout,
                closed_aborted: c.aborted,
                bytes_in: st.bytes_in,
                bytes_out: st.bytes_out,
                bytes_discarded: st.bytes_discarded,
                bytes_drained: st.bytes_drained,
                peak_queue: st.peak_queue as u64,
                peak_conns: st.peak_conns as u64,
                conns: s.conn_count() as u64,
                free_buffers: s.free_buffers() as u64,
                capacity: s.capacity() as u64,
                shut_down: s.is_shut_down(),
            },
        )
    })
}

/// Checks the server's invariants (every slot, list and buffer is where its state says).
/// `ECHOLOOP_RESULT_BROKEN_INVARIANT`: the first broken one is named in `why` (`why_len`
/// bytes, NUL-terminated, cut to fit; `why` may be NULL). It visits the whole table: for
/// tests, after every event, and for debugging. Only in a library built with the crate's
/// `invariants` feature.
///
/// # Safety
/// `server` is NULL or from `echoloop_server_init`; `why` is NULL or valid for `why_len`
/// bytes.
#[cfg(feature = "invariants")]
#[no_mangle]
pub unsafe extern "C" fn echoloop_check_invariants(
    server: *mut echoloop_server,
    why: *mut core::ffi::c_char,
    why_len: usize,
) -> echoloop_result {
    run(server, |s| match s.check_invariants() {
        Ok(()) => Ok(()),
        Err(what) => {
            raw::put_text(why, why_len, what);
            Err(echoloop_result::BrokenInvariant)
        }
    })
}
