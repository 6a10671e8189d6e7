//! Zero heap allocations per event in steady state: the real loop, in this process on its
//! own thread, serves thousands of echoes (TCP and UDP) between two checkpoints while a
//! counting global allocator counts every allocation made on that thread; on the select
//! backend, then (Linux) on the epoll one.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Counts allocations made by threads that opted in; everything goes to `System`.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the server's thread only: the test's own clients may allocate freely.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    // `try_with`: no panic while a thread's locals are being torn down.
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches
// only an atomic and a const-initialised thread-local, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Starts the real server loop on port 0 (TCP and UDP) on a counted thread; returns its
/// addresses. The thread serves until the test process exits.
fn start_server(poller: echoloop::PollerKind) -> (SocketAddr, SocketAddr) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // The binary's defaults (64 KiB queues), but a pool smaller than the clients and
        // a limit of 21 connections from one address: 20 steady ones and one that comes
        // and goes, so a 22nd is refused. Room for 64 connections only: the tables
        // reserved per connection are then far smaller than the events served, so one
        // that grew per event would show.
        let options = echoloop::ServeConfig {
            max_conns: 64,
            buffers: Some(8),
            max_conns_per_ip: Some(21),
            idle_timeout: Some(Duration::from_secs(600)),
            udp: vec!["127.0.0.1:0".parse().unwrap()],
            // This ping-pong from one machine outruns the default per-source budget; the
            // guard's bookkeeping runs (and allocates nothing, it is the `no_std` core's)
            // either way.
            udp_rate: echoloop::config::Limit(None),
            udp_bytes: echoloop::config::Limit(None),
            poller,
            ..echoloop::ServeConfig::new(vec!["127.0.0.1:0".parse().unwrap()])
        };
        // A self-pipe no signal writes to: the write end lives as long as the thread.
        let (signals, _never) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut server = echoloop::Driver::bind(&options, signals.into()).unwrap();
        let addr = server.local_addrs().next().unwrap();
        let udp = server.udp_addrs().next().unwrap();
        COUNTED.with(|c| c.set(true));
        // Proof that this thread's allocations are seen.
        let before = allocations();
        drop(std::hint::black_box(Vec::<u8>::with_capacity(1)));
        assert_eq!(
            allocations(),
            before + 1,
            "the counter must count this thread"
        );
        tx.send((addr, udp)).unwrap();
        server.run().unwrap();
    });
    rx.recv_timeout(Duration::from_secs(60)).unwrap()
}

/// One round trip of `len` bytes of a pattern, checked.
fn echo(sock: &mut TcpStream, len: usize, seed: usize, buf: &mut [u8]) {
    let msg = &mut buf[..len];
    for (i, b) in msg.iter_mut().enumerate() {
        *b = (i.wrapping_mul(31) ^ seed) as u8;
    }
    sock.write_all(msg).unwrap();
    let mut got = vec![0u8; len];
    sock.read_exact(&mut got).unwrap();
    assert!(got == *msg, "echo differs");
}

/// A round over every socket; sizes vary from 1 byte to more than the 64 KiB queue, so
/// partial sends and a full queue (backpressure) are part of the steady state.
fn round(socks: &mut [TcpStream], r: usize, buf: &mut [u8]) {
    for (i, sock) in socks.iter_mut().enumerate() {
        let len = [1, 64, 1000, 16 * 1024, 64 * 1024, 100_000][(r + i) % 6];
        echo(sock, len, r * 131 + i, buf);
    }
}

/// One datagram of `len` bytes of a pattern and its echo, checked byte for byte.
fn datagram(sock: &UdpSocket, len: usize, seed: usize, buf: &mut [u8], got: &mut [u8]) {
    let msg = &mut buf[..len];
    for (i, b) in msg.iter_mut().enumerate() {
        *b = (i.wrapping_mul(17) ^ seed) as u8;
    }
    sock.send(msg).unwrap();
    let n = sock.recv(got).unwrap();
    assert!(got[..n] == *msg, "datagram echo differs");
}

/// One backend after the other, in one test: the counter is the process's, and the first
/// server is idle (allocating nothing) while the second is measured.
#[test]
fn steady_state_echoes_allocate_nothing() {
    for poller in echoloop::PollerKind::ALL {
        if poller.offered() {
            steady_state(poller);
        }
    }
}

fn steady_state(poller: echoloop::PollerKind) {
    let (addr, udp) = start_server(poller);
    let mut socks: Vec<TcpStream> = (0..20)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            s.set_nodelay(true).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s
        })
        .collect();
    let mut buf = vec![0u8; 100_000];
    // Warm-up: every connection accepted and served at every message size.
    for r in 0..30 {
        round(&mut socks, r, &mut buf);
    }
    let first = allocations();
    for r in 0..300 {
        round(&mut socks, r, &mut buf);
    }
    let second = allocations();
    assert_eq!(
        second - first,
        0,
        "6000 echoes made {} allocations on the server thread ({poller})",
        second - first
    );

    // Connections coming and going (accepted, refused, closed) allocate nothing either.
    for r in 0..200 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        echo(&mut s, 100, r, &mut buf);
        if r % 4 == 0 {
            // The 22nd from 127.0.0.1: closed at once by the server, unread.
            let mut refused = TcpStream::connect(addr).unwrap();
            refused
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let mut one = [0u8; 1];
            assert!(matches!(refused.read(&mut one), Ok(0) | Err(_)), "served");
        }
        drop(s);
        round(&mut socks[..1], r, &mut buf);
    }
    let third = allocations();
    assert_eq!(
        third - second,
        0,
        "200 connections opened and closed made {} allocations ({poller})",
        third - second
    );

    // Datagrams from 0 bytes to the largest, from several sources (each a flood-guard
    // entry), interleaved with TCP echoes.
    let sources: Vec<UdpSocket> = (0..4)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.connect(udp).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s
        })
        .collect();
    let mut got = vec![0u8; 65_536];
    let mut buf = vec![0u8; 100_000];
    let sizes = [0, 1, 64, 1472, 1473, 8192, 65_507];
    let udp_round = |r: usize, buf: &mut [u8], got: &mut [u8]| {
        for (i, s) in sources.iter().enumerate() {
            datagram(s, sizes[(r + i) % sizes.len()], r * 7 + i, buf, got);
        }
    };
    for r in 0..20 {
        udp_round(r, &mut buf, &mut got);
    }
    let fourth = allocations();
    for r in 0..500 {
        udp_round(r, &mut buf, &mut got);
        if r % 50 == 0 {
            round(&mut socks[..2], r, &mut buf);
        }
    }
    let fifth = allocations();
    assert_eq!(
        fifth - fourth,
        0,
        "2000 datagrams made {} allocations on the server thread",
        fifth - fourth
    );
}
