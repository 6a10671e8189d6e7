//! `--trace`: what went into the wait (`select` or `epoll_wait`, by name), what came back,
//! and what the core did, each round.
//!
//! A teaching aid for the select model (the seed's "waiting for the next event", made
//! real). Sockets are named by what they are: a listener by its address, a connection by
//! its peer's address. Only built when asked for, so it costs nothing otherwise.
//!
//! It depends only on what it is handed: the sets or events and a way to name a
//! descriptor ([`Names`]), so the loop keeps its tables to itself.

use std::fmt::{self, Write as _};
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use echoloop_core::Interest;

use crate::net::Ctl;
use crate::poll::fd_set::FdSet;
use crate::poll::select::Sets;
use crate::poll::{PollerKind, Ready};

/// What the trace calls each descriptor in a set.
pub(crate) trait Names {
    /// Writes the name of `fd` (`signals`, `listener ADDR`, a peer's address) to `out`.
    fn name(&self, fd: RawFd, out: &mut String);
}

/// What one connection's turn moved.
#[derive(Default)]
pub(crate) struct Moved {
    pub(crate) received: usize,
    pub(crate) sent: usize,
    pub(crate) eof: bool,
    pub(crate) error: Option<io::Error>,
}

/// The trace printer: a round counter and a reused line buffer.
#[derive(Default)]
pub(crate) struct Trace {
    round: u64,
    line: String,
}

impl Trace {
    /// The backend the loop waits with: the trace's first line.
    pub(crate) fn poller(&mut self, kind: PollerKind) {
        self.line.clear();
        let _ = write!(self.line, "poller: {kind}");
        self.emit();
    }

    /// The sets as handed to `select`, and the timeout.
    pub(crate) fn select_before(
        &mut self,
        sets: &Sets,
        names: &dyn Names,
        timeout: Option<Duration>,
    ) {
        self.round += 1;
        self.line.clear();
        let _ = write!(self.line, "round {}: select(", self.round);
        self.sets(sets, names);
        self.timeout(timeout);
        self.emit();
    }

    /// The sets as `select` returned them.
    pub(crate) fn select_after(&mut self, sets: &Sets, names: &dyn Names, ready: usize) {
        self.line.clear();
        let _ = write!(self.line, "  -> {ready} ready: ");
        self.sets(sets, names);
        self.emit();
    }

    /// An `epoll_wait` and its timeout (what it watches was registered before).
    pub(crate) fn epoll_before(&mut self, timeout: Option<Duration>) {
        self.round += 1;
        self.line.clear();
        let _ = write!(self.line, "round {}: epoll_wait(", self.round);
        self.line.push_str("registered");
        self.timeout(timeout);
        self.emit();
    }

    /// What `epoll_wait` returned.
    pub(crate) fn epoll_after(&mut self, ready: &[Ready], names: &dyn Names) {
        self.line.clear();
        let _ = write!(self.line, "  -> {} ready: ", ready.len());
        for (name, pick) in [("read", true), ("write", false)] {
            if !pick {
                self.line.push_str(", ");
            }
            let _ = write!(self.line, "{name} [");
            let fds = ready
                .iter()
                .filter(|r| if pick { r.read } else { r.write })
                .map(|r| r.fd);
            self.names(fds, names);
            self.line.push(']');
        }
        self.emit();
    }

    /// A registration changed: the core's interest in `fd` did.
    pub(crate) fn epoll_ctl(&mut self, op: Ctl, fd: RawFd, interest: Interest) {
        self.line.clear();
        let op = match op {
            Ctl::Add => "ADD",
            Ctl::Modify => "MOD",
            Ctl::Delete => "DEL",
        };
        let _ = write!(
            self.line,
            "  epoll_ctl {op} fd {fd}: read {}, write {}",
            interest.read, interest.write
        );
        self.emit();
    }

    fn timeout(&mut self, timeout: Option<Duration>) {
        match timeout {
            Some(t) => {
                let _ = write!(self.line, ", timeout {t:?})");
            }
            None => self.line.push_str(", no timeout)"),
        }
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

    fn sets(&mut self, sets: &Sets, names: &dyn Names) {
        for (name, set) in [
            ("read", &sets.read),
            ("write", &sets.write),
            ("except", &sets.except),
        ] {
            if name != "read" {
                self.line.push_str(", ");
            }
            let _ = write!(self.line, "{name} [");
            self.members(set, names);
            self.line.push(']');
        }
    }

    /// The descriptors of `set`, by name, separated by commas.
    fn members(&mut self, set: &FdSet, names: &dyn Names) {
        self.names(set.iter(), names);
    }

    /// Descriptors by name, separated by commas.
    fn names(&mut self, fds: impl Iterator<Item = RawFd>, names: &dyn Names) {
        for (i, fd) in fds.enumerate() {
            if i > 0 {
                self.line.push_str(", ");
            }
            names.name(fd, &mut self.line);
        }
    }

    fn emit(&mut self) {
        self.line.push('\n');
        let _ = std::io::stderr().lock().write_all(self.line.as_bytes());
    }
}
