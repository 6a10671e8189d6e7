//! `--trace`: what went into `select`, what came back, and what the core did, each round.
//!
//! A teaching aid for the select model (the seed's "waiting for the next event", made
//! real). Sockets are named by what they are: a listener by its address, a connection by
//! its peer's address. Only built when asked for, so it costs nothing otherwise.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::fd_set::FdSet;
use crate::net::Net;
use crate::server::{Moved, Server};

/// The trace printer: a round counter and a reused line buffer.
#[derive(Default)]
pub(crate) struct Trace {
    round: u64,
    line: String,
}

impl Trace {
    /// The sets as handed to `select`, and the timeout.
    pub(crate) fn before<N: Net>(&mut self, server: &Server<N>, timeout: Option<Duration>) {
        self.round += 1;
        self.line.clear();
        let _ = write!(self.line, "round {}: select(", self.round);
        self.sets(server);
        match timeout {
            Some(t) => {
                let _ = write!(self.line, ", timeout {t:?})");
            }
            None => self.line.push_str(", no timeout)"),
        }
        self.emit();
    }

    /// The sets as `select` returned them.
    pub(crate) fn after<N: Net>(&mut self, server: &Server<N>, ready: usize) {
        self.line.clear();
        let _ = write!(self.line, "  -> {ready} ready: ");
        self.sets(server);
        self.emit();
    }

    /// A batching nap before the next look: busy, but few sockets were ready.
    pub(crate) fn nap(&mut self, nap: Duration) {
        self.line.clear();
        let _ = write!(
            self.line,
            "  nap {nap:?}: busy but few sockets ready, let more gather"
        );
        self.emit();
    }

    /// `select` failed with `EINTR`.
    pub(crate) fn interrupted(&mut self) {
        self.line.clear();
        self.line
            .push_str("  -> interrupted by a signal (EINTR): go round again");
        self.emit();
    }

    /// Something that happened to one socket.
    pub(crate) fn event(&mut self, peer: SocketAddr, what: fmt::Arguments<'_>) {
        self.line.clear();
        let _ = write!(self.line, "  {peer}: {what}");
        self.emit();
    }

    /// What one connection's turn moved.
    pub(crate) fn moved(&mut self, peer: SocketAddr, moved: &Moved, queued: Option<usize>) {
        self.line.clear();
        let _ = write!(
            self.line,
            "  {peer}: received {}, echoed {}",
            moved.received, moved.sent
        );
        if let Some(queued) = queued {
            let _ = write!(self.line, ", {queued} queued");
        }
        if moved.eof {
            self.line.push_str(", EOF");
        }
        if let Some(e) = &moved.error {
            let _ = write!(self.line, ", error: {e}");
        }
        self.emit();
    }

    fn sets<N: Net>(&mut self, server: &Server<N>) {
        let sets = &server.sets;
        for (name, set) in [
            ("read", &sets.read),
            ("write", &sets.write),
            ("except", &sets.except),
        ] {
            if name != "read" {
                self.line.push_str(", ");
            }
            let _ = write!(self.line, "{name} [");
            self.members(server, set);
            self.line.push(']');
        }
    }

    /// The sockets of `set`, by name, separated by commas.
    fn members<N: Net>(&mut self, server: &Server<N>, set: &FdSet) {
        let mut first = true;
        let mut name = |line: &mut String, what: fmt::Arguments<'_>| {
            if !first {
                line.push_str(", ");
            }
            first = false;
            let _ = line.write_fmt(what);
        };
        if set.contains(server.signals.as_raw_fd()) {
            name(&mut self.line, format_args!("signals"));
        }
        for l in &server.listeners {
            if set.contains(l.fd.as_raw_fd()) {
                name(&mut self.line, format_args!("listener {}", l.addr));
            }
        }
        for id in &server.watched {
            let conn = server.conns.get(id.index()).and_then(Option::as_ref);
            if let Some(conn) = conn.filter(|c| set.contains(c.fd.as_raw_fd())) {
                name(&mut self.line, format_args!("{}", conn.peer));
            }
        }
    }

    fn emit(&mut self) {
        self.line.push('\n');
        let _ = std::io::stderr().lock().write_all(self.line.as_bytes());
    }
}
