//! Calls to every public entry point of the echoloop core, for the link-time proof that
//! it has no panicking branch (see `main.rs`). Board-neutral: the Cortex-M4 check and the
//! RISC-V one (`ports/qemu-riscv/panic-check`) include this file by path, so that both
//! targets are checked against the same calls.
//!
//! Every input is hidden behind `black_box`, so nothing is folded away on the strength of
//! a known constant: what the optimizer removes it removed because the branch cannot
//! happen for any input.

use core::convert::Infallible;
use core::fmt::{self, Write as _};
use core::hint::black_box;

use echoloop_core::io::{self, PumpError};
use echoloop_core::{
    footprint, Action, CloseReason, Config, ConnId, ConnSlot, Duration, ErrorKind, Instant,
    Interest, Relayed, Server, SliceStorage, StaticStorage, Stats, Storage,
};

const CONNS: usize = 4;
const QUEUE: usize = 64;
/// Fewer buffers than connections, so the pool runs dry.
type Echo = Server<StaticStorage<CONNS, 2, QUEUE>>;

/// Runs every check: true when each call gave what it should.
pub fn all() -> bool {
    black_box(server_lifecycle())
        & black_box(slice_storage())
        & black_box(draining_and_abort())
        & black_box(time_and_vocabulary())
        & black_box(pump())
        & black_box(formatting())
        & black_box(udp_echo())
        & black_box(udp_slice_storage())
}

fn now(ms: u64) -> Instant {
    Instant::from_millis(black_box(ms))
}

/// Every event, query and action of [`Server`], through accept, echo, EOF, errors, idle
/// timeout, the pool running dry, reclaiming and shutdown.
fn server_lifecycle() -> bool {
    let config = Config::new().with_idle_timeout(Some(Duration::from_millis(black_box(500))));
    let mut server = Echo::new_static(black_box(config));
    let _ = Config::default();
    let mut ok = server.config().idle_timeout().is_some()
        && server.capacity() == CONNS
        && server.buffers() == 2
        && server.queue_size() == QUEUE;
    let mut ids: [Option<ConnId>; CONNS + 1] = [None; CONNS + 1];
    for slot in ids.iter_mut() {
        ok &= server.listener_interest() || server.conn_count() == CONNS;
        *slot = server.on_accepted(now(1)).ok();
    }
    server.on_refused();
    let mut actions = 0;
    for (k, id) in ids.iter().flatten().enumerate() {
        let id = *id;
        // Received: as many bytes as a hidden length says, perhaps more than lent.
        let n = black_box(k * 17 + 5);
        let _ = server.recv_with(now(2), id, |buf| {
            for (i, byte) in buf.iter_mut().enumerate().take(n) {
                *byte = black_box(i as u8);
            }
            (black_box(n), ())
        });
        let _ = server.recv_with(now(2), id, |buf| (black_box(usize::MAX), buf.len()));
        ok &= server.interest(id).map(|i| i.write).unwrap_or(false) || server.free_buffers() == 0;
        let queued = server.queued(id).unwrap_or(0);
        // Sent: part of it, then a length longer than lent.
        let _ = server.send_with(now(3), id, |b| (black_box(b.len() / 2), ()));
        let _ = server.send_with(now(3), id, |b| (black_box(b.len() + 1), ()));
        ok &= server.queued(id).unwrap_or(0) <= queued;
        // Relayed (refused while bytes are queued): lengths hidden, kept perhaps past lent.
        let _ = server.relay_with(now(3), id, |buf| {
            let kept = black_box(k * 29);
            for byte in buf.iter_mut().take(kept) {
                *byte = black_box(7);
            }
            let through = black_box(k * 1000);
            (Relayed { through, kept }, ())
        });
        for (conn, interest) in server.conns() {
            ok &= conn.index() < CONNS && (interest != Interest::NONE || !interest.read);
        }
        match black_box(k) {
            0 => ok &= server.on_eof(now(4), id).is_ok(),
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
    for range in server.reclaimable(black_box(1)) {
        ok &= range.end <= 2 * QUEUE;
    }
    ok &= server.poll_timeout().is_some();
    server.on_timeout(now(black_box(10_000)));
    while server.poll_action().is_some() {
        actions += 1;
    }
    let stale = ids.iter().flatten().next().copied();
    if let Some(id) = stale {
        ok &= server.interest(id) == Err(echoloop_core::UnknownConn);
        ok &= server.on_error(id, ErrorKind::Other).is_err();
        ok &= server.on_eof(now(1), id).is_err();
    }
    let _ = server.on_accepted(now(10_001));
    server.shutdown(now(10_002), Duration::from_secs(black_box(1)));
    server.shutdown(now(10_003), Duration::ZERO);
    ok &= server.on_accepted(now(10_004)) == Err(echoloop_core::AcceptError::ShuttingDown);
    server.on_timeout(now(black_box(20_000)));
    while server.poll_action().is_some() {
        actions += 1;
    }
    let stats: &Stats = server.stats();
    ok &= server.is_shut_down() && stats.closed.total() == stats.accepted;
    ok &= core::mem::size_of::<Echo>() <= footprint(CONNS, 2, QUEUE);
    ok && black_box(actions) > 0
}

/// Every entry point of the UDP echo: datagrams of hidden lengths (too long, lying), the
/// guards, a full queue, every send result, stats.
fn udp_echo() -> bool {
    use echoloop_core::udp::{
        Budget, Endpoint, RecvResult, SendResult, SourceKey, UdpConfig, UdpEcho, UdpStaticStorage,
        Verdict,
    };
    let config = UdpConfig {
        datagrams: Budget {
            per_sec: black_box(10),
            burst: black_box(3),
        },
        source_key: black_box(SourceKey::Address),
        hash_key: black_box(7),
        ..UdpConfig::new()
    };
    let mut echo: UdpEcho<UdpStaticStorage<3, 32, 4>> = UdpEcho::new_static(config);
    let mut ok = echo.capacity() == 2 && echo.slot_size() == 32;
    for i in 0..black_box(6u16) {
        let from = Endpoint::v4([10, 0, 0, black_box(i as u8)], black_box(4000 + i));
        let len = black_box(usize::from(i) * 9);
        let v = echo.recv_with(now(u64::from(i)), |buf| {
            if let Some(b) = buf.get_mut(..len.min(buf.len())) {
                b.fill(black_box(i as u8));
            }
            RecvResult::Datagram { from, len }
        });
        ok &= v != Verdict::Nothing;
    }
    let guarded = Endpoint::v6([0; 16], black_box(19));
    ok &= matches!(
        echo.recv_with(now(7), |_| RecvResult::Truncated { from: guarded }),
        Verdict::Dropped(_)
    );
    ok &= echo.recv_with(now(8), |_| RecvResult::Nothing) == Verdict::Nothing;
    for result in [SendResult::WouldBlock, SendResult::Failed, SendResult::Sent] {
        let _ = echo.send_with(|bytes, to| {
            black_box((bytes.len(), to.port));
            black_box(result)
        });
    }
    let s = echo.stats();
    ok &= s.received == s.echoed + s.dropped.total() + echo.queued() as u64;
    ok && echo.write_interest() == (echo.queued() > 0) && echo.config().hash_key == 7
}

/// A UDP echo in borrowed slices of hidden sizes: refused or made, never a panic.
fn udp_slice_storage() -> bool {
    use echoloop_core::udp::{DatagramSlot, SourceSlot, UdpConfig, UdpEcho, UdpSliceStorage};
    let mut slots = [DatagramSlot::EMPTY; 4];
    let mut bytes = [0u8; 64];
    let mut sources = [SourceSlot::EMPTY; 5];
    let size = black_box(16);
    let n = black_box(4);
    let Some(slots) = slots.get_mut(..n) else {
        return false;
    };
    let _ = UdpSliceStorage::new(&mut [], &mut [], black_box(0), &mut []);
    let Ok(storage) = UdpSliceStorage::new(slots, &mut bytes, size, &mut sources) else {
        return false;
    };
    let Ok(mut echo) = UdpEcho::new(UdpConfig::new(), storage) else {
        return false;
    };
    echo.capacity() == 3
}

/// A server in borrowed slices of hidden sizes: refused or made, never a panic.
fn slice_storage() -> bool {
    let mut slots = [ConnSlot::EMPTY; 3];
    let mut free = [0u16; 3];
    let mut bytes = [0u8; 96];
    let conns = black_box(3);
    let buffers = black_box(2);
    let queue = black_box(48);
    let (Some(slots), Some(free)) = (slots.get_mut(..conns), free.get_mut(..buffers)) else {
        return false;
    };
    let _ = SliceStorage::new(&mut [], &mut [], &mut [], black_box(0));
    let Ok(mut storage) = SliceStorage::new(slots, free, &mut bytes, queue) else {
        return false;
    };
    let mut ok = storage.parts().slots.len() == 3 && storage.parts_ref().queue_size == 48;
    let Ok(mut server) = Server::new(Config::new(), storage) else {
        return false;
    };
    let Ok(id) = server.on_accepted(now(0)) else {
        return false;
    };
    let _ = server.recv_with(now(0), id, |b| (black_box(b.len()), ()));
    ok &= server.queued(id) == Ok(48) && server.storage().parts_ref().bytes.len() == 96;
    ok
}

/// The lifecycle the core now owns: draining after a shutdown, and abort.
fn draining_and_abort() -> bool {
    let mut server = Echo::new_static(Config::new());
    let a = server.on_accepted(now(0));
    let b = server.on_accepted(now(0));
    let (Ok(a), Ok(b)) = (a, b) else {
        return false;
    };
    let _ = server.recv_with(now(1), b, |buf| (black_box(buf.len().min(3)), ()));
    server.shutdown(now(2), Duration::from_millis(black_box(100)));
    let mut ok = server.poll_action() == Some(Action::ShutdownWrite(a));
    let _ = server.recv_with(now(3), a, |buf| (black_box(buf.len()), ()));
    ok &= server.stats().bytes_drained > 0;
    ok &= server.on_eof(now(4), a).is_ok();
    ok &= server.poll_action() == Some(Action::Close(a, CloseReason::Shutdown));
    server.abort();
    ok &= server.poll_action() == Some(Action::Close(b, CloseReason::Aborted));
    ok && server.is_shut_down() && server.free_buffers() == 2
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
        CloseReason::Aborted,
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
    let mut server = Echo::new_static(Config::new());
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
            Err(PumpError::Io(never)) => match never {},
            Err(_) => return false,
        }
        let mut closed = false;
        while let Some(action) = server.poll_action() {
            closed |= matches!(action, Action::Close(..));
        }
        if closed {
            // The id is stale now: the pump must refuse it, not panic.
            let stale = io::pump(&mut server, now(round), id, &mut socket);
            return matches!(stale, Err(PumpError::UnknownConn))
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
    let mut server = Echo::new_static(Config::new());
    let id = server.on_accepted(now(0));
    let mut sink = Sink(0);
    let _ = write!(
        sink,
        "{:?} {:?} {} {} {} {} {} {:?}",
        id,
        server.config(),
        CloseReason::Error(black_box(ErrorKind::TimedOut)),
        black_box(echoloop_core::RelayError::Queued),
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
    let _ = write!(
        sink,
        "{} {:?}",
        black_box(echoloop_core::StorageError::NoBuffers),
        ConnSlot::EMPTY
    );
    #[cfg(feature = "canary")]
    let _ = write!(sink, "{:?}", server.stats());
    sink.0 > 0
}
