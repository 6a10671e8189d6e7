//! The link-time proof that the echoloop core has no panicking branch.
//!
//! `panic-never`'s panic handler calls a function that does not exist, so a release build
//! links only if the optimizer removed every call to the panic handler. This firmware
//! calls every public entry point of the core with inputs hidden behind `black_box`, so
//! nothing is folded away on the strength of a known constant: what the optimizer removes
//! it removed because the branch cannot happen for any input.
//!
//! It also runs (under QEMU, exit status 0), so that the calls are real, not dead code.
//! No logging: defmt-semihosting has a panicking branch of its own.
#![no_std]
#![no_main]

use core::convert::Infallible;
use core::fmt::{self, Write as _};
use core::hint::black_box;

use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use echoloop_core::io::{self, PumpError};
use echoloop_core::{
    Action, CloseReason, Config, ConnId, Duration, Error, ErrorKind, Instant, Interest, Queue,
    Server, Stats,
};
use panic_never as _;

const CONNS: usize = 4;
const QUEUE: usize = 64;

#[entry]
fn main() -> ! {
    let ok = black_box(server_lifecycle())
        & black_box(queue())
        & black_box(time_and_vocabulary())
        & black_box(pump())
        & black_box(formatting());
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

fn now(ms: u64) -> Instant {
    Instant::from_millis(black_box(ms))
}

/// Every event, query and action of [`Server`], through accept, echo, EOF, errors, idle
/// timeout and shutdown.
fn server_lifecycle() -> bool {
    let config = Config {
        idle_timeout: Some(Duration::from_millis(black_box(500))),
        max_conns: black_box(3),
    };
    let mut server = Server::<CONNS, QUEUE>::new(black_box(config));
    let _ = Config::default();
    let mut ok = server.config().max_conns == 3 && server.max_conns() == 3;
    let mut ids: [Option<ConnId>; CONNS + 1] = [None; CONNS + 1];
    for slot in ids.iter_mut() {
        ok &= server.listener_interest() || server.conn_count() == 3;
        *slot = server.on_accepted(now(1)).ok();
    }
    server.on_refused();
    let mut actions = 0;
    for (k, id) in ids.iter().flatten().enumerate() {
        let id = *id;
        // Received: as many bytes as a hidden length says, perhaps more than lent.
        let n = black_box(k * 17 + 5);
        if let Ok(buf) = server.read_buf(id) {
            for (i, byte) in buf.iter_mut().enumerate().take(n) {
                *byte = black_box(i as u8);
            }
        }
        let _ = server.on_read(now(2), id, n);
        let _ = server.on_read(now(2), id, black_box(usize::MAX));
        ok &= server.interest(id).map(|i| i.write).unwrap_or(false) || n > QUEUE;
        let queued = server.queued(id).unwrap_or(0);
        // Sent: part of it, then a length longer than lent.
        let len = server.write_buf(id).map(<[u8]>::len).unwrap_or(0);
        let _ = server.on_written(now(3), id, black_box(len / 2));
        let _ = server.on_written(now(3), id, black_box(len + 1));
        ok &= server.queued(id).unwrap_or(0) <= queued;
        for (conn, interest) in server.conns() {
            ok &= conn.index() < CONNS && (interest != Interest::NONE || !interest.read);
        }
        match black_box(k) {
            0 => ok &= server.on_read(now(4), id, 0).is_ok(),
            1 => ok &= server.on_error(id, black_box(ErrorKind::Reset)).is_ok(),
            _ => {}
        }
        while let Some(action) = server.poll_action() {
            actions += 1;
            if let Action::Close(closed, reason) = action {
                ok &= closed.generation() == id.generation() || reason.is_graceful();
            }
        }
    }
    ok &= server.poll_timeout().is_some();
    server.handle_timeout(now(black_box(10_000)));
    while server.poll_action().is_some() {
        actions += 1;
    }
    let stale = ids.iter().flatten().next().copied();
    if let Some(id) = stale {
        ok &= server.interest(id) == Err(Error::UnknownConn);
        ok &= server.on_error(id, ErrorKind::Other).is_err();
    }
    let _ = server.on_accepted(now(10_001));
    server.shutdown(now(10_002), Duration::from_secs(black_box(1)));
    server.shutdown(now(10_003), Duration::ZERO);
    ok &= server.on_accepted(now(10_004)) == Err(Error::ShuttingDown);
    server.handle_timeout(now(black_box(20_000)));
    while server.poll_action().is_some() {
        actions += 1;
    }
    let stats: &Stats = server.stats();
    ok &= server.is_shut_down() && stats.closed.total() == stats.accepted;
    ok && black_box(actions) > 0
}

/// Every method of the queue the core lends, wrapping around its end.
fn queue() -> bool {
    let mut q = Queue::<8>::default();
    let mut ok = q.is_empty() && !q.is_full() && q.free_len() == Queue::<8>::CAPACITY;
    for round in 0..black_box(5usize) {
        let want = black_box(round + 3);
        let free = q.free_mut();
        let n = want.min(free.len());
        for byte in free.iter_mut().take(n) {
            *byte = round as u8;
        }
        ok &= q.commit(n).is_ok();
        ok &= q.commit(black_box(usize::MAX)).is_err();
        let sent = q.queued().len() / 2;
        ok &= q.consume(sent).is_ok() && q.consume(black_box(9)).is_err();
        ok &= q.len() <= 8;
    }
    q.clear();
    ok && Queue::<8>::new().is_empty() && q.is_empty()
}

/// Time arithmetic at its limits, and the small vocabulary types.
fn time_and_vocabulary() -> bool {
    let far = Instant::from_millis(black_box(u64::MAX - 1));
    let mut ok = far
        .saturating_add(Duration::from_secs(black_box(u64::MAX)))
        .as_millis()
        == u64::MAX;
    ok &= Instant::ZERO.saturating_since(far) == Duration::ZERO;
    ok &= far.saturating_since(Instant::ZERO).as_millis() == u64::MAX - 1;
    ok &= Duration::from_millis(black_box(7)).as_millis() == 7;
    let reasons = [
        CloseReason::PeerClosed,
        CloseReason::Error(ErrorKind::HangUp),
        CloseReason::IdleTimeout,
        CloseReason::Shutdown,
        CloseReason::ShutdownTimeout,
    ];
    let graceful = reasons.iter().filter(|r| r.is_graceful()).count();
    ok &= black_box(graceful) == 2;
    for kind in [
        embedded_io::ErrorKind::ConnectionReset,
        embedded_io::ErrorKind::NotConnected,
        embedded_io::ErrorKind::TimedOut,
        embedded_io::ErrorKind::Other,
    ] {
        ok &= io::error_kind(black_box(kind)) != ErrorKind::Reset
            || kind == embedded_io::ErrorKind::ConnectionReset;
    }
    ok
}

/// A socket of `embedded-io` whose readiness, reads and writes are hidden values.
struct Socket {
    inbox: usize,
    outbox: usize,
    eof: bool,
}

impl embedded_io::ErrorType for Socket {
    type Error = Infallible;
}

impl embedded_io::Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let n = black_box(self.inbox).min(buf.len());
        for byte in buf.iter_mut().take(n) {
            *byte = black_box(b'x');
        }
        self.inbox -= n;
        Ok(if self.eof && n == 0 { 0 } else { n })
    }
}

impl embedded_io::Write for Socket {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        let n = black_box(buf.len() / 2 + 1).min(buf.len());
        self.outbox += n;
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

impl embedded_io::ReadReady for Socket {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(black_box(true))
    }
}

impl embedded_io::WriteReady for Socket {
    fn write_ready(&mut self) -> Result<bool, Infallible> {
        Ok(black_box(true))
    }
}

/// The `embedded-io` pump, to EOF and past it.
fn pump() -> bool {
    let mut server = Server::<CONNS, QUEUE>::new(Config::new());
    let Ok(id) = server.on_accepted(now(0)) else {
        return false;
    };
    let mut socket = Socket {
        inbox: black_box(300),
        outbox: 0,
        eof: true,
    };
    // Until the core closes the connection: after EOF, the rest of the echo goes out.
    for round in 0..1000 {
        match io::pump(&mut server, now(round), id, &mut socket) {
            Ok(_) => {}
            Err(PumpError::Core(_)) => return false,
            Err(PumpError::Io(never)) => match never {},
        }
        let mut closed = false;
        while let Some(action) = server.poll_action() {
            closed |= matches!(action, Action::Close(..));
        }
        if closed {
            // The id is stale now: the pump must refuse it, not panic.
            let stale = io::pump(&mut server, now(round), id, &mut socket);
            return matches!(stale, Err(PumpError::Core(Error::UnknownConn)))
                && socket.outbox == 300
                && server.stats().bytes_out == 300;
        }
    }
    false
}

/// Counts what is written to it.
struct Sink(usize);

impl fmt::Write for Sink {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// The `Display` and `Debug` impls, but for `Debug` of `Stats`, `Closed` and `Server`
/// (which shows its stats). Those two structs derive `Debug` with more than five fields,
/// and for those the derive calls `core::fmt::Formatter::debug_struct_fields_finish`,
/// whose `assert_eq!` of its two slices' lengths the optimizer cannot remove: a panicking
/// branch of the standard library, not of the core. Checked by building with them in.
fn formatting() -> bool {
    let mut server = Server::<CONNS, QUEUE>::new(Config::new());
    let id = server.on_accepted(now(0));
    let mut sink = Sink(0);
    let _ = write!(
        sink,
        "{:?} {:?} {} {} {} {} {} {:?}",
        id,
        server.config(),
        CloseReason::Error(black_box(ErrorKind::TimedOut)),
        black_box(Error::QueueFull),
        now(5),
        Duration::from_millis(black_box(3)),
        ErrorKind::Other,
        Interest::NONE,
    );
    if let Ok(id) = id {
        let _ = write!(
            sink,
            "{} {:?} {:?}",
            id,
            server.conns(),
            Action::Close(id, CloseReason::IdleTimeout)
        );
    }
    let _ = write!(sink, "{:?}", Queue::<4>::new());
    #[cfg(feature = "canary")]
    let _ = write!(sink, "{:?}", server.stats());
    sink.0 > 0
}
