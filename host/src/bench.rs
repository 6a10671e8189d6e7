//! `echoloop bench`: a load generator that checks every echoed byte.
//!
//! One thread, non-blocking sockets and one `poll(2)` per round over every connection, so
//! on a small machine it takes as little CPU from the server as it can (and reports what
//! it took). Messages are slices of one pseudo-random pattern made at start: sending
//! copies nothing, checking is a comparison, and nothing is allocated per message.

mod histogram;
#[allow(unsafe_code)]
mod os;
mod pattern;
mod peer;
mod report;

use std::io::{self, IsTerminal, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub use report::Report;

use os::PollFd;
use pattern::Pattern;
use peer::{Fault, Peer, Shape, Tally};

/// The most connections one run may open: as many as `echoloop serve` can serve (`poll`
/// itself has no such limit; the descriptor limit is raised to fit).
pub const MAX_CONNS: usize = 1000;

/// The largest message or write size.
pub const MAX_SIZE: usize = 16 << 20;

/// How the connections load the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Send a message, wait for its whole echo, repeat.
    PingPong,
    /// Write continuously (a window in flight) and read the echo back.
    Stream,
}

/// What `echoloop bench` was asked for.
#[derive(Clone, Debug)]
pub struct Options {
    /// The server.
    pub connect: SocketAddr,
    /// Ping-pong or stream.
    pub mode: Mode,
    /// Connections, 1 to [`MAX_CONNS`].
    pub conns: usize,
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
}

/// Scratch for one `read`: the most a single call checks.
const SCRATCH: usize = 256 * 1024;

/// The longest `poll` wait: progress and deadlines are looked at this often.
const TICK: Duration = Duration::from_millis(100);

/// Runs the benchmark. Errors: no connection could be made, the server closed every one,
/// or sent nothing back for `timeout`. Mismatches are counted in the report, not errors.
pub fn run(options: &Options) -> io::Result<Report> {
    let pattern = Pattern::new(options.size);
    os::raise_fd_limit(options.conns as u64 + 64)
        .map_err(|e| io::Error::new(e.kind(), format!("raising RLIMIT_NOFILE: {e}")))?;
    let (streams, connect_failures) = connect_all(options)?;
    let shape = Shape {
        mode: options.mode,
        size: options.size as u64,
        window: 4 * options.size as u64,
    };
    let mut load = Load::new(streams, &shape, &pattern);
    load.connect_failures = connect_failures;
    load.drive(options, &shape, &pattern)?;
    Ok(load.report(options))
}

/// Opens the connections one after the other (blocking), then makes them non-blocking.
/// Only if none can be made is it an error. The first connect that takes the whole
/// timeout ends the phase (the rest count as failures), so a server that stopped
/// answering costs one timeout, not one per connection.
fn connect_all(options: &Options) -> io::Result<(Vec<TcpStream>, u64)> {
    let mut streams = Vec::with_capacity(options.conns);
    let mut last_error = None;
    for _ in 0..options.conns {
        match connect_one(options) {
            Ok(s) => streams.push(s),
            Err(e) => {
                let timed_out = e.kind() == io::ErrorKind::TimedOut;
                last_error = Some(e);
                if timed_out {
                    break;
                }
            }
        }
    }
    let failures = (options.conns - streams.len()) as u64;
    match last_error {
        Some(e) if streams.is_empty() => Err(io::Error::new(
            e.kind(),
            format!("cannot connect to {}: {e}", options.connect),
        )),
        _ => Ok((streams, failures)),
    }
}

fn connect_one(options: &Options) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&options.connect, options.timeout)?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// The running benchmark: connections, their `poll` entries (same order), and counts.
struct Load {
    peers: Vec<Peer>,
    fds: Vec<PollFd>,
    live: usize,
    scratch: Box<[u8]>,
    tally: Tally,
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
    fn new(streams: Vec<TcpStream>, shape: &Shape, pattern: &Pattern) -> Self {
        let now = Instant::now();
        let peers: Vec<Peer> = streams
            .into_iter()
            .enumerate()
            .map(|(i, s)| Peer::new(s, i, pattern, now))
            .collect();
        let fds = peers
            .iter()
            .map(|p| {
                let mut fd = p.poll_fd();
                fd.events = p.interest(shape);
                fd
            })
            .collect();
        Load {
            live: peers.len(),
            peers,
            fds,
            scratch: vec![0; SCRATCH].into_boxed_slice(),
            tally: Tally::default(),
            warmup_messages: 0,
            connect_failures: 0,
            resets: 0,
            mismatches: 0,
            measured_from: None,
            measured_to: None,
        }
    }

    /// Warm-up, then the measured window; every connection starts by writing.
    fn drive(&mut self, options: &Options, shape: &Shape, pattern: &Pattern) -> io::Result<()> {
        let start = Instant::now();
        let (measure_at, end) = (
            start + options.warmup,
            start + options.warmup + options.duration,
        );
        for i in 0..self.peers.len() {
            let result = self
                .peers
                .get_mut(i)
                .map_or(Ok(()), |p| p.write(shape, pattern));
            self.settle(i, result, shape);
        }
        let mut progress = options.progress.then(|| Progress::new(start, options));
        let mut last_echo = (start, 0);
        loop {
            let now = Instant::now();
            if self.measured_from.is_none() && now >= measure_at {
                self.warmup_messages = self.messages(options, &self.tally);
                self.tally = Tally::default();
                self.measured_from = Some((now, os::cpu_time()));
            }
            if now >= end {
                self.measured_to = Some((now, os::cpu_time()));
                break;
            }
            if self.live == 0 && self.mismatches > 0 {
                // Nothing left to measure; the report says why, and the exit fails.
                self.measured_to = Some((now, os::cpu_time()));
                break;
            }
            self.check_alive(options, now, &mut last_echo)?;
            if let Some(p) = &mut progress {
                p.show(now, self.measured_from.is_some(), &self.tally, self.live);
            }
            match os::poll(&mut self.fds, TICK.min(end - now)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io::Error::new(e.kind(), format!("poll: {e}"))),
            }
            self.serve(shape, pattern);
        }
        if progress.is_some() {
            eprint!("\r\x1b[K");
        }
        Ok(())
    }

    /// Every connection `poll` reported.
    fn serve(&mut self, shape: &Shape, pattern: &Pattern) {
        for i in 0..self.fds.len() {
            let Some(fd) = self.fds.get_mut(i) else { break };
            let revents = std::mem::take(&mut fd.revents);
            if revents == 0 || fd.fd < 0 {
                continue;
            }
            let Some(peer) = self.peers.get_mut(i) else {
                break;
            };
            let result = peer.on_ready(revents, shape, pattern, &mut self.scratch, &mut self.tally);
            self.settle(i, result, shape);
        }
    }

    /// After a connection's turn: what to wait for next, or why it stopped.
    fn settle(&mut self, i: usize, result: Result<(), Fault>, shape: &Shape) {
        let (Some(fd), Some(peer)) = (self.fds.get_mut(i), self.peers.get(i)) else {
            return;
        };
        match result {
            Ok(()) => fd.events = peer.interest(shape),
            Err(fault) => {
                match fault {
                    Fault::Reset => self.resets += 1,
                    Fault::Mismatch => self.mismatches += 1,
                }
                // poll ignores negative descriptors; the socket closes when the run ends.
                fd.fd = -1;
                self.live -= 1;
            }
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
        let echoed = self.tally.bytes;
        if echoed != last_echo.1 {
            *last_echo = (now, echoed);
        } else if now - last_echo.0 >= options.timeout {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no echo from {} for {:?} ({} connections waiting)",
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

    fn report(&self, options: &Options) -> Report {
        let (from, cpu_from) = self
            .measured_from
            .unwrap_or((Instant::now(), Duration::ZERO));
        let (to, cpu_to) = self.measured_to.unwrap_or((from, cpu_from));
        Report {
            mode: options.mode,
            conns: self.peers.len(),
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
            cpu: cpu_to.saturating_sub(cpu_from),
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
