//! Many clients at once, every byte verified.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use echoloop_tests::{connect, echo_stream_on, with_timeout, Server};

#[test]
fn two_hundred_clients_each_stream_a_different_megabyte() {
    const CLIENTS: usize = 200;
    const SIZE: usize = 1 << 20;
    with_timeout(Duration::from_secs(300), || {
        let server = Server::start(&[]);
        // Everyone connects first, then all stream at once.
        let barrier = Arc::new(Barrier::new(CLIENTS));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (addr, barrier) = (server.addr, Arc::clone(&barrier));
                thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || {
                        let sock = connect(addr);
                        barrier.wait();
                        echo_stream_on(sock, 1000 + i as u64, SIZE);
                    })
                    .unwrap()
            })
            .collect();
        for client in clients {
            client.join().unwrap();
        }
        assert!(server.is_running());
        // Every connection ended the way a half-close should: echo delivered, then closed.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while server.stderr().matches(": peer closed").count() < CLIENTS {
            assert!(std::time::Instant::now() < deadline, "{}", server.stderr());
            thread::sleep(Duration::from_millis(50));
        }
    });
}

#[test]
fn a_connection_idle_among_busy_ones_is_still_served() {
    // While the loop is busy its looks watch only the recently active connections; one
    // that has been idle must still be looked at, or its first message would wait for
    // ever behind the busy ones.
    const BUSY: usize = 16;
    with_timeout(Duration::from_secs(120), || {
        let server = Server::start(&[]);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let busy: Vec<_> = (0..BUSY)
            .map(|i| {
                let (addr, stop) = (server.addr, Arc::clone(&stop));
                thread::spawn(move || {
                    let mut sock = connect(addr);
                    let msg = format!("busy {i}");
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        echoloop_tests::roundtrip(&mut sock, msg.as_bytes());
                    }
                })
            })
            .collect();
        let mut idle = connect(server.addr);
        echoloop_tests::roundtrip(&mut idle, b"hello once");
        for round in 0..3 {
            // Long enough to go cold: not ready for over a second (the driver's `HOT_FOR`).
            thread::sleep(Duration::from_millis(1_300));
            echoloop_tests::roundtrip(&mut idle, format!("after a pause {round}").as_bytes());
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for b in busy {
            b.join().unwrap();
        }
    });
}
