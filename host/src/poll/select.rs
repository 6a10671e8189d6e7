//! The `select(2)` backend: the shape of Redis's `ae_select.c`, with the sets rebuilt from
//! the core's interest before every call (host rule 2), so no stale descriptor is ever
//! watched, and past `FD_SETSIZE` ([`FdSet`]).
//!
//! Which descriptors each call watches, and for how long, is the planner's (`plan`):
//! while busy a call watches the hot connections plus a window of the idle ones, so a
//! round's work is proportional to the busy connections, never to the capacity. This
//! module only carries the planner's waits out: it builds the sets, naps, calls `select`
//! and reports what it observed.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use echoloop_core::Interest;

use super::fd_set::{self, FdSet};
use super::plan::{Planner, Round, Seen, Wait};
use super::{Ready, Role, View};
use crate::net::Net;
use crate::trace::Trace;

/// The three sets handed to `select`; `select` overwrites them with the ready descriptors.
#[derive(Default)]
pub struct Sets {
    /// Watched for input (and, for a listener, for a pending connection).
    pub read: FdSet,
    /// Watched for room to send.
    pub write: FdSet,
    /// Watched for urgent data (host rule 5).
    pub except: FdSet,
}

impl Sets {
    /// Whether `fd` is in any of the three sets.
    pub fn contains(&self, fd: RawFd) -> bool {
        self.read.contains(fd) || self.write.contains(fd) || self.except.contains(fd)
    }

    fn clear(&mut self) {
        self.read.clear();
        self.write.clear();
        self.except.clear();
    }

    /// Set by set, reusing their memory: the backend copies its sets before every look.
    fn copy_from(&mut self, source: &Sets) {
        self.read.clone_from(&source.read);
        self.write.clone_from(&source.write);
        self.except.clone_from(&source.except);
    }

    /// Puts `fd` in the sets `interest` names.
    fn watch(&mut self, fd: RawFd, interest: Interest) {
        if interest.read {
            // Exceptional means urgent data (host rule 5): read in place, like input.
            self.read.insert(fd);
            self.except.insert(fd);
        }
        if interest.write {
            self.write.insert(fd);
        }
    }
}

/// The select backend: its sets and its planner.
pub struct Select {
    /// The loop's own descriptors (signal pipe, listeners, UDP sockets) and what it
    /// wants of them: in every call.
    own: Vec<(RawFd, Interest)>,
    /// What every call of a round watches: the own descriptors and the hot connections.
    hot: Sets,
    /// How many connections are in `hot`.
    hot_conns: usize,
    /// What the next call watches; what it found ready once it returns.
    sets: Sets,
    planner: Planner,
    ready: Vec<Ready>,
}

impl Select {
    /// A backend whose batching naps last `nap` (zero: never), its clock from `epoch`.
    pub(crate) fn new(nap: Duration, epoch: Instant) -> Self {
        Select {
            own: Vec::new(),
            hot: Sets::default(),
            hot_conns: 0,
            sets: Sets::default(),
            planner: Planner::new(nap, epoch),
            ready: Vec::new(),
        }
    }

    /// A connection's interest is read from the core each round (host rule 2); the own
    /// descriptors' is kept here.
    pub(crate) fn watch(&mut self, fd: RawFd, role: Role, interest: Interest) {
        if role == Role::Conn {
            return;
        }
        match self.own.iter_mut().find(|(own, _)| *own == fd) {
            Some(entry) => entry.1 = interest,
            None => self.own.push((fd, interest)),
        }
    }

    pub(crate) fn forget(&mut self, fd: RawFd) {
        self.own.retain(|&(own, _)| own != fd);
    }

    pub(crate) fn ready(&self) -> &[Ready] {
        &self.ready
    }

    /// One round's calls, as the planner decides them.
    pub(crate) fn wait<N: Net>(
        &mut self,
        net: &mut N,
        view: &dyn View,
        timeout: Option<Duration>,
        mut trace: Option<&mut Trace>,
    ) -> io::Result<()> {
        self.ready.clear();
        self.build_hot(view);
        let round = Round {
            conns: view.conns(),
            hot: self.hot_conns,
            timeout,
        };
        let mut wait = self.planner.begin(round);
        loop {
            let mut window = 0;
            let mut before = net.now();
            let timeout = match wait {
                Wait::All(timeout) => {
                    self.watch_all(view);
                    timeout
                }
                Wait::Look(nap) => {
                    if let Some(nap) = nap {
                        if let Some(trace) = trace.as_deref_mut() {
                            trace.nap(nap);
                        }
                        net.nap(nap);
                        before = net.now();
                    }
                    // The window's cost is its filling as well as the kernel's look.
                    window = self.watch_window(round, before, view);
                    Some(Duration::ZERO)
                }
                Wait::Hot(timeout) => {
                    self.sets.copy_from(&self.hot);
                    timeout
                }
            };
            let ready = self.select(net, view, timeout, trace.as_deref_mut())?;
            let at = net.now();
            let seen = Seen {
                ready,
                window,
                at,
                took: at.saturating_duration_since(before),
            };
            match self.planner.next(round, wait, seen) {
                Some(next) => wait = next,
                None => break,
            }
        }
        self.collect(view, net.now());
        Ok(())
    }

    /// One `select` on `sets`, traced.
    fn select<N: Net>(
        &mut self,
        net: &mut N,
        view: &dyn View,
        timeout: Option<Duration>,
        mut trace: Option<&mut Trace>,
    ) -> io::Result<usize> {
        let sets = &mut self.sets;
        if let Some(trace) = trace.as_deref_mut() {
            trace.select_before(sets, view, timeout);
        }
        let ready = net.select(&mut sets.read, &mut sets.write, &mut sets.except, timeout)?;
        if let Some(trace) = trace {
            trace.select_after(sets, view, ready);
        }
        Ok(ready)
    }

    /// The hot sets: the own descriptors and the connections active within the heat's
    /// window.
    fn build_hot(&mut self, view: &dyn View) {
        let hot = &mut self.hot;
        hot.clear();
        for &(fd, interest) in &self.own {
            // Urgent data concerns connections only.
            if interest.read {
                hot.read.insert(fd);
            }
            if interest.write {
                hot.write.insert(fd);
            }
        }
        let mut conns = 0;
        view.recent(self.planner.hot_window(), &mut |fd, interest| {
            hot.watch(fd, interest);
            conns += 1;
        });
        self.hot_conns = conns;
    }

    /// `sets`: the hot sets and every other connection, for a `select` that must see
    /// everything. Costs a visit to every open connection.
    fn watch_all(&mut self, view: &dyn View) {
        self.sets.copy_from(&self.hot);
        let sets = &mut self.sets;
        view.all(&mut |fd, interest| sets.watch(fd, interest));
    }

    /// `sets`: the hot sets and the connections in the sweep's window at `at`. Returns how
    /// many connections the window added.
    fn watch_window(&mut self, round: Round, at: Instant, view: &dyn View) -> usize {
        self.sets.copy_from(&self.hot);
        let window = self.planner.window(round, at, view.fds());
        let mut added = 0;
        for fd in window {
            let Ok(fd) = RawFd::try_from(fd) else {
                break;
            };
            if let Some(interest) = view.interest(fd) {
                // A hot one is in the sets already: inserting it again changes nothing.
                self.sets.watch(fd, interest);
                added += 1;
            }
        }
        added
    }

    /// The ready descriptors, read off the sets a word at a time (a round costs what is
    /// ready, not what is watched); a connection that was cold, and spoke before, tells
    /// the planner its window was cut too short.
    fn collect(&mut self, view: &dyn View, at: Instant) {
        let sets = &self.sets;
        let mut woke_cold = false;
        for fd in fd_set::ready(&sets.read, &sets.write, &sets.except) {
            // A first message says nothing of a pace: a peer may connect long before it
            // speaks (the load generator opens all its connections first).
            woke_cold |= !self.hot.contains(fd) && view.spoke(fd);
            self.ready.push(Ready {
                fd,
                read: sets.read.contains(fd) || sets.except.contains(fd),
                write: sets.write.contains(fd),
            });
        }
        if woke_cold {
            self.planner.woke_cold(at);
        }
    }
}
