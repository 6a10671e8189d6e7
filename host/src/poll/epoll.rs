//! The `epoll(7)` backend (Linux): the kernel keeps the watched descriptors, so a wait
//! costs what is ready, not what is watched, and there is no planner: no hot or cold
//! connections, no sweep, no nap.
//!
//! **Level-triggered**, by choice. The loop reads at most a few times per connection per
//! round, so that a fast sender cannot starve the others, and stops reading when the
//! core's queue is full or no buffer is free: it leaves readiness behind on purpose. With
//! level-triggered epoll such a connection is simply reported again by the next wait, as
//! `select` reports it; edge-triggered would report it never again, and the loop would
//! have to keep its own list of connections still ready, and make sure to drain each.
//! What edge-triggering saves (an `epoll_ctl` to stop watching writability) is not spent
//! here anyway: the registration follows the core's interest, which asks for
//! writability only while bytes are queued.
//!
//! The registrations follow the core's interest: `epoll_ctl` only when it changes
//! (`Epoll::watch` compares with what is registered), never per round. The rules that
//! trip people, and what this backend does about them:
//! - A registration belongs to the open file description, not the descriptor number:
//!   `close` removes it only because the loop never duplicates a socket. So closing is
//!   enough (`Epoll::forget` makes no call), and a new socket that reuses the number is
//!   registered afresh (`EPOLL_CTL_ADD`).
//! - `EPOLLHUP` and `EPOLLERR` arrive unasked, for as long as they hold. A connection the
//!   core wants nothing of (it waits for a buffer) is removed (`EPOLL_CTL_DEL`), never
//!   left registered for no events, where a hang-up would wake every wait.
//! - Wakeups can be spurious: the loop takes `EAGAIN` as "not now", as with `select`.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use echoloop_core::Interest;

use super::{Ready, View};
use crate::net::{Ctl, Net, Polled, Source};
use crate::trace::Trace;

/// What a descriptor is registered for: nothing (not registered), or read, write or both.
const READ: u8 = 1;
const WRITE: u8 = 2;

fn bits(interest: Interest) -> u8 {
    (u8::from(interest.read) * READ) | (u8::from(interest.write) * WRITE)
}

/// The epoll backend: the instance, and what each descriptor is registered for.
pub struct Epoll<S> {
    ep: S,
    /// By descriptor: what it is registered for (0: not registered). Grown to the highest
    /// descriptor registered.
    registered: Vec<u8>,
    /// What the last `epoll_wait` returned.
    polled: Vec<Polled>,
    ready: Vec<Ready>,
}

impl<S: AsRawFd> Epoll<S> {
    /// A new epoll instance, its table reserved for descriptors up to `fds` (it grows
    /// past them if it must).
    pub(crate) fn open<N: Net<Socket = S>>(net: &mut N, fds: usize) -> io::Result<Self> {
        Ok(Epoll {
            ep: net.epoll_create()?,
            registered: Vec::with_capacity(fds),
            polled: Vec::with_capacity(crate::net::EPOLL_EVENTS),
            ready: Vec::with_capacity(crate::net::EPOLL_EVENTS),
        })
    }

    /// Registers, changes or removes `fd` if `interest` is not what it is registered for.
    pub(crate) fn watch<N: Net<Socket = S>>(
        &mut self,
        net: &mut N,
        fd: Source<'_, N>,
        interest: Interest,
        trace: Option<&mut Trace>,
    ) -> io::Result<()> {
        let Ok(i) = usize::try_from(fd.raw()) else {
            return Ok(());
        };
        let now = self.registered.get(i).copied().unwrap_or(0);
        let want = bits(interest);
        if now == want {
            return Ok(());
        }
        let op = match (now, want) {
            (0, _) => Ctl::Add,
            (_, 0) => Ctl::Delete,
            _ => Ctl::Modify,
        };
        if let Some(trace) = trace {
            trace.epoll_ctl(op, fd.raw(), interest);
        }
        net.epoll_ctl(&self.ep, op, fd, interest)?;
        if i >= self.registered.len() {
            self.registered.resize(i + 1, 0);
        }
        if let Some(entry) = self.registered.get_mut(i) {
            *entry = want;
        }
        Ok(())
    }

    /// `fd` is about to be closed, which removes its registration (the loop never
    /// duplicates a socket): no call, only the record goes.
    pub(crate) fn forget(&mut self, fd: RawFd) {
        if let Some(entry) = usize::try_from(fd)
            .ok()
            .and_then(|i| self.registered.get_mut(i))
        {
            *entry = 0;
        }
    }

    pub(crate) fn ready(&self) -> &[Ready] {
        &self.ready
    }

    /// One `epoll_wait`. A hang-up or an error counts as whatever the descriptor is
    /// registered for, so that the `recv` or `send` that reports it is made.
    pub(crate) fn wait<N: Net<Socket = S>>(
        &mut self,
        net: &mut N,
        view: &dyn View,
        timeout: Option<Duration>,
        trace: Option<&mut Trace>,
    ) -> io::Result<()> {
        self.ready.clear();
        let mut trace = trace;
        if let Some(trace) = trace.as_deref_mut() {
            trace.epoll_before(timeout);
        }
        net.epoll_wait(&self.ep, &mut self.polled, timeout)?;
        for p in &self.polled {
            let registered = usize::try_from(p.fd)
                .ok()
                .and_then(|i| self.registered.get(i).copied())
                .unwrap_or(0);
            let read = registered & READ != 0 && (p.read || p.hangup);
            let write = registered & WRITE != 0 && (p.write || p.hangup);
            if read || write {
                self.ready.push(Ready {
                    fd: p.fd,
                    read,
                    write,
                });
            }
        }
        if let Some(trace) = trace {
            trace.epoll_after(&self.ready, view);
        }
        Ok(())
    }
}
