//! Readiness: the seam between the loop and the operating system's way of saying which
//! sockets are ready, with a backend behind it (`--poller`), as Redis's `ae.c` loops over
//! `ae_select.c` or `ae_epoll.c`.
//!
//! The loop tells the backend what the core wants of each descriptor whenever that may
//! have changed (`Poller::watch`; cheap when it has not), forgets a descriptor before
//! closing it (`Poller::forget`), and asks it to wait (`Poller::wait`); the backend
//! owns its sets or registrations and lists what it found ready (`Poller::ready`).
//! Both backends make their system calls through [`Net`], so the simulation's fake kernel
//! stands in for either.
//!
//! - [`select`](mod@select), the default and the reference: what the core was designed
//!   against, and what a microcontroller stack's readiness looks like. Its policy (hot
//!   and cold connections, the sweep, batching) is one pure planner, `plan`.
//! - [`epoll`](mod@epoll), Linux: registrations changed only when the core's interest
//!   changes, level-triggered.

pub mod epoll;
pub mod fd_set;
mod plan;
pub mod select;

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use echoloop_core::Interest;

use crate::net::{Net, Source};
use crate::trace::{Names, Trace};

/// A readiness backend, as `--poller` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollerKind {
    /// `select(2)`, everywhere.
    Select,
    /// `epoll(7)`, Linux.
    Epoll,
}

impl PollerKind {
    /// Every backend there is, offered here or not.
    pub const ALL: [PollerKind; 2] = [PollerKind::Select, PollerKind::Epoll];

    /// Its name on the command line and in `--trace`.
    pub const fn name(self) -> &'static str {
        match self {
            PollerKind::Select => "select",
            PollerKind::Epoll => "epoll",
        }
    }

    /// Whether this platform offers it.
    pub const fn offered(self) -> bool {
        match self {
            PollerKind::Select => true,
            PollerKind::Epoll => cfg!(any(target_os = "linux", target_os = "android")),
        }
    }

    /// The backends this platform offers, for an error message: `select, epoll`.
    pub fn offered_here() -> String {
        let names: Vec<&str> = Self::ALL
            .iter()
            .filter(|k| k.offered())
            .map(|k| k.name())
            .collect();
        names.join(", ")
    }
}

impl fmt::Display for PollerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A descriptor the last wait found ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The descriptor.
    pub fd: RawFd,
    /// Readable: input, a pending connection, urgent data, EOF, a hang-up or an error
    /// (each of which a `recv` reports).
    pub read: bool,
    /// Writable: room to send, or a hang-up or error (which a `send` reports).
    pub write: bool,
}

/// What a descriptor is to the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The signal pipe, a listener, a UDP socket: watched in every wait.
    Own,
    /// A connection: the select backend reads which are hot from the core each round.
    Conn,
}

/// The loop's tables, as a backend may read them while it waits.
pub(crate) trait View: Names {
    /// Open connections.
    fn conns(&self) -> usize;
    /// One past the highest descriptor a connection may have: the sweep's range.
    fn fds(&self) -> usize;
    /// The connections that moved bytes within `within`, then the draining ones, with
    /// their interest.
    fn recent(&self, within: echoloop_core::Duration, visit: &mut dyn FnMut(RawFd, Interest));
    /// Every open connection, with its interest.
    fn all(&self, visit: &mut dyn FnMut(RawFd, Interest));
    /// The interest of the connection on `fd`, if there is one.
    fn interest(&self, fd: RawFd) -> Option<Interest>;
    /// Whether the connection on `fd` was served before (its peer has a pace).
    fn spoke(&self, fd: RawFd) -> bool;
}

/// The backend in use: one of each, chosen at start-up.
// One per driver, made once and never moved: the select variant's size costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Poller<N: Net> {
    Select(select::Select),
    Epoll(epoll::Epoll<N::Socket>),
}

impl<N: Net> Poller<N> {
    /// The backend `kind`; batching naps of `nap` (select only), its clock from `epoch`,
    /// its tables reserved for descriptors up to `fds` (so that accepting allocates nothing).
    pub(crate) fn open(
        kind: PollerKind,
        net: &mut N,
        nap: Duration,
        epoch: Instant,
        fds: usize,
    ) -> io::Result<Self> {
        Ok(match kind {
            PollerKind::Select => Poller::Select(select::Select::new(nap, epoch)),
            PollerKind::Epoll => Poller::Epoll(epoll::Epoll::open(net, fds)?),
        })
    }

    /// Which backend this is.
    pub(crate) fn kind(&self) -> PollerKind {
        match self {
            Poller::Select(_) => PollerKind::Select,
            Poller::Epoll(_) => PollerKind::Epoll,
        }
    }

    /// The core wants `interest` of `fd` (nothing: stop watching it). Costs nothing when
    /// that is what the backend watches already. A failure concerns `fd` only.
    pub(crate) fn watch(
        &mut self,
        net: &mut N,
        fd: Source<'_, N>,
        role: Role,
        interest: Interest,
        trace: Option<&mut Trace>,
    ) -> io::Result<()> {
        match self {
            Poller::Select(s) => {
                s.watch(fd.raw(), role, interest);
                Ok(())
            }
            Poller::Epoll(e) => e.watch(net, fd, interest, trace),
        }
    }

    /// `fd` is about to be closed: whatever the backend holds for it goes.
    pub(crate) fn forget(&mut self, fd: RawFd) {
        match self {
            Poller::Select(s) => s.forget(fd),
            Poller::Epoll(e) => e.forget(fd),
        }
    }

    /// Waits until a watched descriptor is ready or `timeout` passes (`None`: for ever);
    /// then [`ready`](Poller::ready) lists what is ready.
    pub(crate) fn wait(
        &mut self,
        net: &mut N,
        view: &dyn View,
        timeout: Option<Duration>,
        trace: Option<&mut Trace>,
    ) -> io::Result<()> {
        match self {
            Poller::Select(s) => s.wait(net, view, timeout, trace),
            Poller::Epoll(e) => e.wait(net, view, timeout, trace),
        }
    }

    /// What the last wait found ready (empty after an error).
    pub(crate) fn ready(&self) -> &[Ready] {
        match self {
            Poller::Select(s) => s.ready(),
            Poller::Epoll(e) => e.ready(),
        }
    }

    /// Whether the backend keeps registrations, and so must hear of every change in a
    /// connection's interest; the select backend reads them from the core every round.
    pub(crate) fn follows_interest(&self) -> bool {
        matches!(self, Poller::Epoll(_))
    }
}
