//! The loop: the round of `docs/architecture.md` ("One round") on BSD sockets and
//! `poll(2)`. Each rule of the BSD sockets checklist in `docs/porting.md` is kept in one
//! place below, marked `(checklist: ...)`.

use std::io::{self, Read as _};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use echoloop_core::{Action, ConnId, ErrorKind, Instant, Interest, Server, Stats, Storage};
use libc::{c_int, pollfd, ECONNABORTED, EPERM, EPROTO, POLLERR, POLLHUP, POLLIN, POLLOUT};
use socket2::Socket;

use crate::sys;

/// Accepts per round: a burst of new connections must not starve the open ones.
const ACCEPTS_PER_ROUND: usize = 64;
/// How long the listener goes unwatched after `accept` failed for want of descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// The longest wait: a signal landing just before `poll` is noticed this late at most.
const MAX_WAIT: Duration = Duration::from_millis(100);
/// Reads (or sends) per connection per round while each fills the whole lent slice.
const TURNS: usize = 4;
/// How long a graceful shutdown may take before what is left is reset.
const GRACE: echoloop_core::Duration = echoloop_core::Duration::from_secs(3);

/// Never raise SIGPIPE on a send to a peer that has gone (checklist: `MSG_NOSIGNAL`).
/// Apple systems have no such flag: socket2 sets `SO_NOSIGPIPE` on every socket it
/// accepts there instead.
#[cfg(not(target_vendor = "apple"))]
const SEND_FLAGS: c_int = libc::MSG_NOSIGNAL;
#[cfg(target_vendor = "apple")]
const SEND_FLAGS: c_int = 0;

/// The core, the listener, and each connection's socket.
pub struct Driver<S> {
    server: Server<S>,
    /// `None` once a shutdown began: new connections are refused by the kernel.
    listener: Option<Socket>,
    /// Each open connection's socket with its id, at `id.index()` (dense, below capacity).
    conns: Vec<Option<(ConnId, Socket)>>,
    accept_paused_until: Option<std::time::Instant>,
    start: std::time::Instant,
    /// Set by SIGINT and SIGTERM.
    signalled: Arc<AtomicBool>,
}

impl<S: Storage> Driver<S> {
    /// A driver for `server`, serving `listener` (non-blocking) until a signal sets
    /// `signalled` and the shutdown it begins is over.
    pub fn new(server: Server<S>, listener: Socket, signalled: Arc<AtomicBool>) -> Self {
        let conns = (0..server.capacity()).map(|_| None).collect();
        Driver {
            server,
            listener: Some(listener),
            conns,
            accept_paused_until: None,
            start: std::time::Instant::now(),
            signalled,
        }
    }

    /// Runs rounds until the shutdown is over; the server's counters at the end. Fails
    /// only if `poll` itself does (the loop is wrong, not a peer).
    pub fn run(mut self) -> io::Result<Stats> {
        let (mut fds, mut ids) = (Vec::new(), Vec::new());
        loop {
            // Every batch of events ends here: the `Close`s free their slots only now.
            self.carry_out_actions();
            if self.server.is_shut_down() {
                return Ok(*self.server.stats());
            }
            // Waiting with an action owed would leave its slot held and its socket open.
            debug_assert_eq!(self.server.pending_actions(), 0);
            self.watch(&mut fds, &mut ids);
            match sys::poll(&mut fds, self.wait_ms()) {
                Ok(_) => {}
                // A signal (checklist: `EINTR`): its flag is read below; `revents` are
                // left as they were set, zero.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let now = self.now();
            self.on_signal(now);
            let Some((listener, conns)) = fds.split_first() else {
                continue;
            };
            if listener.revents != 0 {
                self.accept_ready(now);
            }
            for (fd, &id) in conns.iter().zip(&ids) {
                if fd.revents != 0 {
                    self.serve(now, id, fd.revents);
                }
            }
            self.server.on_timeout(now);
        }
    }

    /// Fills the `poll` array from the core's interest: the listener first (a negative
    /// descriptor, which `poll` skips, while it is not wanted), then every connection.
    fn watch(&self, fds: &mut Vec<pollfd>, ids: &mut Vec<ConnId>) {
        let entry = |fd, events| pollfd {
            fd,
            events,
            revents: 0,
        };
        let paused = (self.accept_paused_until).is_some_and(|t| std::time::Instant::now() < t);
        let listening = self.server.listener_interest() && !paused;
        let listener = self.listener.as_ref().filter(|_| listening);
        fds.clear();
        ids.clear();
        fds.push(entry(listener.map_or(-1, |l| l.as_raw_fd()), POLLIN));
        for (id, interest) in self.server.conns() {
            // Watched even with no interest (checklist: `POLLERR`/`POLLHUP`): `poll`
            // reports those unasked, and a connection waiting for a pool buffer must hear
            // that its peer has gone.
            if let Some(sock) = socket(&self.conns, id) {
                let read = if interest.read { POLLIN } else { 0 };
                let write = if interest.write { POLLOUT } else { 0 };
                fds.push(entry(sock.as_raw_fd(), read | write));
                ids.push(id);
            }
        }
    }

    /// Until the core's next deadline, a paused accept's end, or [`MAX_WAIT`].
    fn wait_ms(&self) -> c_int {
        let mut wait = MAX_WAIT;
        if let Some(deadline) = self.server.poll_timeout() {
            let left = deadline.saturating_since(self.now()).as_millis();
            wait = wait.min(Duration::from_millis(left));
        }
        if let Some(until) = self.accept_paused_until {
            wait = wait.min(until.saturating_duration_since(std::time::Instant::now()));
        }
        c_int::try_from(wait.as_millis()).unwrap_or(c_int::MAX)
    }

    /// Milliseconds on a monotonic clock: a wall-clock step fires no idle timeout.
    fn now(&self) -> Instant {
        let millis = self.start.elapsed().as_millis();
        Instant::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
    }

    /// The first signal: stop accepting, deliver what is queued, drain. The second: reset
    /// everything.
    fn on_signal(&mut self, now: Instant) {
        if !self.signalled.swap(false, Ordering::Relaxed) {
            return;
        }
        if self.listener.take().is_some() {
            eprintln!("shutting down");
            self.server.shutdown(now, GRACE);
        } else {
            eprintln!("aborting");
            self.server.abort();
        }
    }

    /// Accepts up to [`ACCEPTS_PER_ROUND`] (checklist: accept's errors).
    fn accept_ready(&mut self, now: Instant) {
        for _ in 0..ACCEPTS_PER_ROUND {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            if !self.server.listener_interest() {
                return;
            }
            match listener.accept() {
                Ok((sock, _)) => self.admit(now, sock),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // A signal, or one connection's trouble (it gave up while queued): next.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(ECONNABORTED | EPROTO | EPERM)) => {}
                // `EMFILE`, `ENFILE`, `ENOBUFS`...: the listener stays readable while every
                // accept fails, so watching it now would spin. Look again a moment later.
                Err(e) => {
                    eprintln!("accept: {e}; pausing accepts for {ACCEPT_PAUSE:?}");
                    self.accept_paused_until = Some(std::time::Instant::now() + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    /// Gives an accepted socket a slot, or resets it.
    fn admit(&mut self, now: Instant, sock: Socket) {
        // Non-blocking, so one peer never stalls the loop; urgent data in the stream
        // (checklist: `SO_OOBINLINE`), or the echo silently loses the urgent byte.
        let prepared =
            (sock.set_nonblocking(true)).and_then(|()| sock.set_out_of_band_inline(true));
        if let Err(e) = prepared {
            eprintln!("refusing a connection: {e}");
            self.server.on_refused();
            return reset(sock);
        }
        match self.server.on_accepted(now) {
            Ok(id) => {
                if let Some(entry) = self.conns.get_mut(id.index()) {
                    *entry = Some((id, sock));
                }
            }
            // Full or shutting down, counted as refused: the peer learns at once.
            Err(_) => reset(sock),
        }
    }

    /// One connection `poll` reported.
    fn serve(&mut self, now: Instant, id: ConnId, revents: i16) {
        let Some(sock) = socket(&self.conns, id) else {
            return;
        };
        // The socket failed (checklist: `POLLERR` → `SO_ERROR` → `on_error`).
        if revents & POLLERR != 0 {
            let kind = match sock.take_error() {
                Ok(Some(e)) => kind_of(&e),
                _ => ErrorKind::Other,
            };
            return self.report_error(id, kind);
        }
        let Ok(interest) = self.server.interest(id) else {
            return;
        };
        // Gone both ways, and nothing asked would find out: report it, or `poll` returns
        // at once for ever.
        if revents & POLLHUP != 0 && interest == Interest::NONE {
            return self.report_error(id, ErrorKind::HangUp);
        }
        if interest.read && revents & (POLLIN | POLLHUP) != 0 {
            self.receive(now, id);
        }
        // Echo straight away: what just came in can usually go out without a round trip
        // through `poll` for writability. `EAGAIN` is "not now".
        if self.server.interest(id).is_ok_and(|i| i.write) {
            self.send(now, id);
        }
    }

    /// Receives into the core's queue (checklist: `recv() == 0` → `on_eof`).
    fn receive(&mut self, now: Instant, id: ConnId) {
        let Some(mut sock) = socket(&self.conns, id) else {
            return;
        };
        for _ in 0..TURNS {
            let got = self
                .server
                .recv_with(now, id, |buf| match retry(|| sock.read(buf)) {
                    Ok(n) => (n, Ok((n, buf.len()))),
                    Err(e) => (0, Err(e)),
                });
            match got {
                // The lent slice is never empty, so 0 is the peer's FIN. (A commit of 0
                // to the core is not EOF: it is `EAGAIN`, below.)
                Ok(Ok((0, _))) => {
                    if let Err(e) = self.server.on_eof(now, id) {
                        bug(id, e, e.is_driver_bug());
                    }
                    return;
                }
                // Filled: the core lends contiguous space only, so more may fit after
                // the wrap, and more may be waiting in the socket.
                Ok(Ok((n, lent))) if n == lent => {}
                Ok(Ok(_)) => return,
                Ok(Err(e)) => return self.fail(id, e),
                // Expected flow (queue full, no buffer, closing): the next round's
                // interest says when to try again.
                Err(e) => return bug(id, e, e.is_driver_bug()),
            }
        }
    }

    /// Sends from the core's queue, each contiguous run in turn.
    fn send(&mut self, now: Instant, id: ConnId) {
        let Some(sock) = socket(&self.conns, id) else {
            return;
        };
        for _ in 0..TURNS {
            let sent = self.server.send_with(now, id, |queued| {
                if queued.is_empty() {
                    return (0, Ok(false));
                }
                match retry(|| sock.send_with_flags(queued, SEND_FLAGS)) {
                    Ok(n) => (n, Ok(n == queued.len())),
                    Err(e) => (0, Err(e)),
                }
            });
            match sent {
                // All of a run went: what wrapped around the buffer is lent next.
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return,
                Ok(Err(e)) => return self.fail(id, e),
                Err(e) => return bug(id, e, e.is_driver_bug()),
            }
        }
    }

    /// A failed `recv`/`send`: `EAGAIN` is "not now"; anything else ends this connection
    /// only.
    fn fail(&mut self, id: ConnId, err: io::Error) {
        if err.kind() != io::ErrorKind::WouldBlock {
            self.report_error(id, kind_of(&err));
        }
    }

    fn report_error(&mut self, id: ConnId, kind: ErrorKind) {
        if let Err(e) = self.server.on_error(id, kind) {
            bug(id, e, e.is_driver_bug());
        }
    }

    /// Does what the core decided (checklist: draining `poll_action`).
    fn carry_out_actions(&mut self) {
        while let Some(action) = self.server.poll_action() {
            match action {
                Action::ShutdownWrite(id) => {
                    if let Some(sock) = socket(&self.conns, id) {
                        let _ = sock.shutdown(Shutdown::Write);
                    }
                }
                // Polling the `Close` freed the slot: forget the id now.
                Action::Close(id, reason) => {
                    let entry = self.conns.get_mut(id.index());
                    let Some((_, sock)) = entry.and_then(|e| e.take_if(|(own, _)| *own == id))
                    else {
                        continue;
                    };
                    eprintln!("closed {id}: {reason}");
                    // Graceful: a FIN after the echo. Otherwise (checklist: `SO_LINGER` 0)
                    // a reset, so the peer knows its bytes were not all echoed.
                    if !reason.is_graceful() {
                        reset(sock);
                    }
                }
            }
        }
    }
}

/// The socket of `id`, if the table holds that very id (generation included).
fn socket(conns: &[Option<(ConnId, Socket)>], id: ConnId) -> Option<&Socket> {
    match conns.get(id.index()) {
        Some(Some((owner, sock))) if *owner == id => Some(sock),
        _ => None,
    }
}

/// Closes with a reset (`SO_LINGER` 0) rather than a FIN.
fn reset(sock: Socket) {
    let _ = sock.set_linger(Some(Duration::ZERO));
}

/// Repeats a socket call interrupted by a signal (checklist: `EINTR`).
fn retry<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            done => return done,
        }
    }
}

/// What the core is told of a socket error.
fn kind_of(err: &io::Error) -> ErrorKind {
    match err.raw_os_error() {
        Some(libc::ECONNRESET | libc::EPIPE) => ErrorKind::Reset,
        Some(libc::ETIMEDOUT) => ErrorKind::TimedOut,
        Some(libc::ENOTCONN | libc::ESHUTDOWN) => ErrorKind::HangUp,
        _ => ErrorKind::Other,
    }
}

/// The one place a core refusal is judged: expected flow is waited out (the next round's
/// interest says when), a driver bug is said loudly and, in a debug build, stops here.
fn bug(id: ConnId, err: impl std::fmt::Display, is_driver_bug: bool) {
    if is_driver_bug {
        eprintln!("driver bug on {id}: {err}");
        debug_assert!(false, "driver bug on {id}: {err}");
    }
}
