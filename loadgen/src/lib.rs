//! `echoloop-bench`: a load generator that checks every echoed byte.
//!
//! One thread, non-blocking sockets, edge-triggered readiness through `mio` (epoll on
//! Linux), so its cost per event does not grow with the connections it holds and it keeps
//! up with the servers it measures (and reports the CPU it took). Messages are slices of
//! one pseudo-random pattern made at start: sending copies nothing, checking is a
//! comparison, and nothing is allocated per message. Beside the busy connections it can
//! hold idle ones (`idle`): each echoes one message, then stays open and silent.
//!
//! [`cli`] is the binary's command line; every `unsafe` block lives in `os`, its thin layer
//! over libc.
#![deny(missing_docs)]
#![deny(unsafe_code)]
// Each `unsafe` block does one unsafe thing and says why it is sound.
#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod cli;
mod histogram;
#[allow(unsafe_code)]
mod os;
mod pattern;
mod peer;
mod report;
mod udp;

use std::io::{self, IsTerminal, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

pub use report::{Report, UdpFigures};
pub use udp::{DATAGRAM_TIMEOUT, MAX_DATAGRAM};

use pattern::Pattern;
use peer::{Fault, Peer, Shape, Tally};

/// The most busy connections one run may open (and, separately, the most idle ones).
pub const MAX_CONNS: usize = 10_000;

/// The largest message or write size.
pub const MAX_SIZE: usize = 16 << 20;

/// The message an idle connection echoes before it goes quiet, in bytes.
pub const IDLE_MESSAGE: usize = 64;

/// How the connections load the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Send a message, wait for its whole echo, repeat.
    PingPong,
    /// Write continuously (a window in flight) and read the echo back.
    Stream,
}

/// What `echoloop-bench` was asked for.
#[derive(Clone, Debug)]
pub struct Options {
    /// The server.
    pub connect: SocketAddr,
    /// Ping-pong or stream.
    pub mode: Mode,
    /// Busy connections, 1 to [`MAX_CONNS`].
    pub conns: usize,
    /// Idle connections beside them, 0 to [`MAX_CONNS`]: each echoes one
    /// [`IDLE_MESSAGE`]-byte message, then stays open and silent for the run.
    pub idle: usize,
    /// Message size (ping-pong) or write size (stream), 1 to [`MAX_SIZE`].
    pub size: usize,
    /// The measured window.
    pub duration: Duration,
    /// Load before the measured window, not counted.
    pub warmup: Duration,
    /// Give up when no echo byte arrives for this long, or a connect takes longer.
    pub timeout: Duration,
    /// Print a one-line live progress display on stderr.
    pub progress: bool,
    /// Ping-pong over UDP datagrams instead (`mode`, `idle` unused; `size` at most
    /// [`MAX_DATAGRAM`]).
    pub udp: bool,
}

/// Scratch for one `read`: the most a single call checks.
const SCRATCH: usize = 256 * 1024;

/// The longest wait for readiness: progress and deadlines are looked at this often.
const TICK: Duration = Duration::from_millis(100);

/// Readiness events taken per wait.
const EVENTS: usize = 1024;

/// Descriptors beyond the connections: standard streams, the epoll instance, slack.
const SPARE_FDS: usize = 64;

/// Runs the benchmark. Errors: the descriptor limit cannot fit the connections, no
/// connection could be made, the server closed every busy one, or sent nothing back for
/// `timeout`. Mismatches are counted in the report, not errors.
pub fn run(options: &Options) -> io::Result<Report> {
    if options.udp {
        return udp::run(options);
    }
    fit_fd_limit(options.conns + options.idle + SPARE_FDS)?;
    let pattern = Pattern::new(options.size.max(IDLE_MESSAGE));
    let (streams, connect_failures) = connect_all(options)?;
    let mut load = Load::new(streams, options, &pattern)?;
    load.connect_failures = connect_failures;
    load.drive(options, &pattern)?;
    Ok(load.report(options))
}

/// Raises the soft descriptor limit to `want`, or says why it cannot.
fn fit_fd_limit(want: usize) -> io::Result<()> {
    let want_fds = want as u64;
    let limits = os::raise_fd_limit(want_fds)
        .map_err(|e| io::Error::new(e.kind(), format!("raising RLIMIT_NOFILE: {e}")))?;
    if limits.soft < want_fds {
        return Err(io::Error::other(format!(
            "{want} descriptors needed, but the hard RLIMIT_NOFILE is {}: raise it \
             (e.g. `ulimit -Hn {want}` as root) or open fewer connections",
            limits.hard
        )));
    }
    Ok(())
}

/// Opens the idle connections, then the busy ones, one after the other (blocking), and
/// makes them non-blocking. Only if no busy one can be made is it an error. The first connect
/// that takes the whole timeout ends the phase (the rest count as failures), so a server
/// that stopped answering costs one timeout, not one per connection.
fn connect_all(options: &Options) -> io::Result<(Vec<(TcpStream, bool)>, u64)> {
    let wanted = options.idle + options.conns;
    let mut streams = Vec::with_capacity(wanted);
    let mut last_error = None;
    for i in 0..wanted {
        match connect_one(options) {
            Ok(s) => streams.push((s, i < options.idle)),
            Err(e) => {
                let timed_out = e.kind() == io::ErrorKind::TimedOut;
                last_error = Some(e);
                if timed_out {
                    break;
                }
            }
        }
    }
    let failures = (wanted - streams.len()) as u64;
    let busy = streams.iter().filter(|(_, idle)| !idle).count();
    match last_error {
        Some(e) if busy == 0 => {
            let idle = match streams.len() {
                0 => String::new(),
                n => format!(" ({n} idle connections made, no busy one)"),
            };
            Err(io::Error::new(
                e.kind(),
                format!("cannot connect to {}: {e}{idle}", options.connect),
            ))
        }
        _ => Ok((streams, failures)),
    }
}

fn connect_one(options: &Options) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&options.connect, options.timeout)?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// One connection and how it is doing.
struct Slot {
    peer: Peer,
    /// Idle: one message, then silence.
    idle: bool,
    /// Stopped: reset, closed or mismatched (its events are ignored).
    stopped: bool,
}

/// The running benchmark: connections (their index is their `mio` token), and counts.
struct Load {
    slots: Vec<Slot>,
    shape: Shape,
    idle_shape: Shape,
    poll: Poll,
    /// Busy connections still running.
    live: usize,
    scratch: Box<[u8]>,
    tally: Tally,
    /// The idle connections' one message each: kept apart from the measured load.
    idle_tally: Tally,
    /// Round trips completed in the warm-up.
    warmup_messages: u64,
    connect_failures: u64,
    resets: u64,
    mismatches: u64,
    /// Start of the measured window, and CPU time used by then.
    measured_from: Option<(Instant, Duration)>,
    /// End of the measured window, and CPU time used by then.
    measured_to: Option<(Instant, Duration)>,
}

impl Load {
    fn new(
        streams: Vec<(TcpStream, bool)>,
        options: &Options,
        pattern: &Pattern,
    ) -> io::Result<Self> {
        let now = Instant::now();
        let poll = Poll::new()?;
        let mut slots = Vec::with_capacity(streams.len());
        for (i, (stream, idle)) in streams.into_iter().enumerate() {
            let quota = idle.then_some(1);
            let mut peer = Peer::new(
                mio::net::TcpStream::from_std(stream),
                i,
                quota,
                pattern,
                now,
            );
            poll.registry().register(
                peer.stream_mut(),
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            slots.push(Slot {
                peer,
                idle,
                stopped: false,
            });
        }
        Ok(Load {
            live: slots.iter().filter(|s| !s.idle).count(),
            slots,
            shape: Shape {
                mode: options.mode,
                size: options.size as u64,
                window: 4 * options.size as u64,
            },
            idle_shape: Shape {
                mode: Mode::PingPong,
                size: IDLE_MESSAGE as u64,
                window: IDLE_MESSAGE as u64,
            },
            poll,
            scratch: vec![0; SCRATCH].into_boxed_slice(),
            tally: Tally::default(),
            idle_tally: Tally::default(),
            warmup_messages: 0,
            connect_failures: 0,
            resets: 0,
            mismatches: 0,
            measured_from: None,
            measured_to: None,
        })
    }

    /// Warm-up, then the measured window; every connection starts by writing.
    fn drive(&mut self, options: &Options, pattern: &Pattern) -> io::Result<()> {
        let start = Instant::now();
        let (measure_at, end) = (
            start + options.warmup,
            start + options.warmup + options.duration,
        );
        for i in 0..self.slots.len() {
            self.turn(i, None, pattern);
        }
        let mut events = Events::with_capacity(EVENTS);
        let mut progress = options.progress.then(|| Progress::new(start, options));
        let mut last_echo = (start, 0);
        loop {
            let now = Instant::now();
            if self.measured_from.is_none() && now >= measure_at {
                self.warmup_messages = self.messages(options, &self.tally);
                self.tally = Tally::default();
                self.measured_from = Some((now, os::cpu_time()));
            }
            if now >= end || (self.live == 0 && self.mismatches > 0) {
                // At the end, or nothing left to measure (the report says why, and the
                // exit fails).
                self.measured_to = Some((now, os::cpu_time()));
                break;
            }
            self.check_alive(options, now, &mut last_echo)?;
            if let Some(p) = &mut progress {
                p.show(now, self.measured_from.is_some(), &self.tally, self.live);
            }
            match self.poll.poll(&mut events, Some(TICK.min(end - now))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io::Error::new(e.kind(), format!("epoll: {e}"))),
            }
            for event in &events {
                self.turn(event.token().0, Some(event), pattern);
            }
        }
        if progress.is_some() {
            eprint!("\r\x1b[K");
        }
        Ok(())
    }

    /// One connection's turn: its first writes (no event), or what an event reported.
    fn turn(&mut self, i: usize, event: Option<&mio::event::Event>, pattern: &Pattern) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        if slot.stopped {
            return;
        }
        let (shape, tally) = if slot.idle {
            (&self.idle_shape, &mut self.idle_tally)
        } else {
            (&self.shape, &mut self.tally)
        };
        let result = match event {
            Some(e) => slot
                .peer
                .on_ready(e, shape, pattern, &mut self.scratch, tally),
            None => slot.peer.write(shape, pattern),
        };
        let Err(fault) = result else { return };
        match fault {
            Fault::Reset => self.resets += 1,
            Fault::Mismatch => self.mismatches += 1,
        }
        // Its socket closes when the run ends.
        slot.stopped = true;
        if !slot.idle {
            self.live -= 1;
        }
    }

    /// A dead or silent server ends the run with an error, in bounded time.
    fn check_alive(
        &self,
        options: &Options,
        now: Instant,
        last_echo: &mut (Instant, u64),
    ) -> io::Result<()> {
        if self.live == 0 {
            return Err(io::Error::other(format!(
                "the server at {} closed every connection ({} reset, {} mismatched)",
                options.connect, self.resets, self.mismatches
            )));
        }
        let echoed = self.tally.bytes + self.idle_tally.bytes;
        if echoed != last_echo.1 {
            *last_echo = (now, echoed);
        } else if now - last_echo.0 >= options.timeout {
            let never = self.never_echoed();
            // The kernel completes a handshake the server has not accepted: a server
            // at its connection limit looks, from here, like one that stopped answering.
            let hint = if never > 0 {
                format!("; {never} never had an echo: is the server at its connection limit?")
            } else {
                String::new()
            };
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no echo from {} for {:?} ({} connections waiting{hint})",
                    options.connect, options.timeout, self.live
                ),
            ));
        }
        Ok(())
    }

    /// Round trips in a tally: whole messages, or for a stream, echoed bytes / size.
    fn messages(&self, options: &Options, tally: &Tally) -> u64 {
        match options.mode {
            Mode::PingPong => tally.messages,
            Mode::Stream => tally.bytes / options.size as u64,
        }
    }

    /// Open connections, busy or idle, that have not had a single echo.
    fn never_echoed(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| !s.stopped && s.peer.completed() == 0)
            .count()
    }

    /// Idle connections that echoed their message and are still open and silent.
    fn idle_open(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.idle && !s.stopped && s.peer.completed() >= 1)
            .filter(|s| s.peer.still_open())
            .count()
    }

    fn report(&self, options: &Options) -> Report {
        let (from, cpu_from) = self
            .measured_from
            .unwrap_or((Instant::now(), Duration::ZERO));
        let (to, cpu_to) = self.measured_to.unwrap_or((from, cpu_from));
        let idle = self.slots.iter().filter(|s| s.idle).count();
        let stalled = self
            .slots
            .iter()
            .filter(|s| !s.idle && !s.stopped && s.peer.completed() == 0)
            .count();
        Report {
            mode: options.mode,
            conns: self.slots.len() - idle,
            idle,
            idle_open: self.idle_open(),
            size: options.size,
            elapsed: to - from,
            messages: self.messages(options, &self.tally),
            bytes: self.tally.bytes,
            warmup_messages: self.warmup_messages,
            p50: self.tally.latency.quantile(0.5),
            p99: self.tally.latency.quantile(0.99),
            p999: self.tally.latency.quantile(0.999),
            max: self.tally.latency.max(),
            samples: self.tally.latency.count(),
            connect_failures: self.connect_failures,
            resets: self.resets,
            mismatches: self.mismatches,
            stalled: stalled as u64,
            cpu: cpu_to.saturating_sub(cpu_from),
            udp: None,
        }
    }
}

/// The live one-line display: rates over the last second.
struct Progress {
    start: Instant,
    last: Instant,
    last_bytes: u64,
    last_messages: u64,
    /// Stream: messages are counted as chunks of this many bytes.
    chunk: Option<u64>,
}

impl Progress {
    fn new(start: Instant, options: &Options) -> Self {
        Progress {
            chunk: (options.mode == Mode::Stream).then_some(options.size as u64),
            start,
            last: start,
            last_bytes: 0,
            last_messages: 0,
        }
    }

    fn show(&mut self, now: Instant, measuring: bool, tally: &Tally, live: usize) {
        let dt = now - self.last;
        if dt < Duration::from_secs(1) {
            return;
        }
        let secs = dt.as_secs_f64();
        // The tally restarts at the end of the warm-up.
        let bytes = tally.bytes.saturating_sub(self.last_bytes);
        let messages = match self.chunk {
            Some(size) => bytes / size,
            None => tally.messages.saturating_sub(self.last_messages),
        };
        let phase = if measuring { "measuring" } else { "warm-up" };
        let mut err = io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[K{:6.1} s  {phase}  {} conns  {:.0} msg/s  {:.1} MB/s  p99 {:.0} µs",
            (now - self.start).as_secs_f64(),
            live,
            messages as f64 / secs,
            bytes as f64 / secs / 1e6,
            tally.latency.quantile(0.99).as_secs_f64() * 1e6,
        );
        let _ = err.flush();
        self.last = now;
        self.last_bytes = tally.bytes;
        self.last_messages = tally.messages;
    }
}

/// Whether a progress display makes sense: stderr is a terminal.
pub fn stderr_is_terminal() -> bool {
    io::stderr().is_terminal()
}
