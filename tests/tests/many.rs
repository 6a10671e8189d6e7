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
