//! Running out of what select and the kernel allow: descriptors above FD_SETSIZE, and no
//! descriptors at all (EMFILE).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use echoloop_tests::{connect, roundtrip, with_timeout, Server};

/// Whether the server echoes on a fresh connection, or refuses it (EOF or reset).
fn is_served(sock: &mut TcpStream) -> bool {
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    if sock.write_all(b"ping").is_err() {
        return false;
    }
    let mut back = [0u8; 4];
    match sock.read_exact(&mut back) {
        Ok(()) => {
            assert_eq!(&back, b"ping");
            true
        }
        Err(_) => false,
    }
}

/// Keeps the connections the server echoes on, after checking that it served some,
/// refused others, and logged `why`.
fn triage(
    server: &Server,
    socks: impl IntoIterator<Item = TcpStream>,
    why: &str,
) -> Vec<TcpStream> {
    let mut served = Vec::new();
    let mut refused = 0;
    for mut sock in socks {
        if is_served(&mut sock) {
            served.push(sock);
        } else {
            refused += 1;
        }
    }
    assert!(
        !served.is_empty() && refused > 0,
        "served {}, refused {refused}",
        served.len()
    );
    // The log line may reach the pipe after the client saw the refusal: wait for it.
    assert!(
        server.wait_for_log(why, Duration::from_secs(20)),
        "{}",
        server.stderr()
    );
    served
}

/// Retries until the server serves a new connection, up to `limit`.
fn served_again(addr: SocketAddr, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if is_served(&mut connect(addr)) {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn a_descriptor_beyond_fd_setsize_is_refused_and_the_server_lives_on() {
    with_timeout(Duration::from_secs(120), || {
        // Descriptors 10..=1023 are taken before the server starts: it gets a few low ones
        // for itself and its first connections, then 1024 and up.
        let setup = "ulimit -n 4096 || exit 97\nfor fd in $(seq 10 1023); do eval \"exec $fd</dev/null\"; done";
        let server = Server::start_in_shell("bash", setup, "");
        let newcomers = (0..12).map(|_| connect(server.addr));
        let mut served = triage(&server, newcomers, "beyond what select can watch");
        assert!(server.is_running());
        for sock in &mut served {
            roundtrip(sock, b"still served");
        }
        // Closing one frees a descriptor below 1024: a newcomer is served again.
        drop(served.pop());
        assert!(served_again(server.addr, Duration::from_secs(20)));
    });
}

#[test]
fn out_of_descriptors_neither_kills_nor_spins_and_recovers() {
    with_timeout(Duration::from_secs(120), || {
        let server = Server::start_in_shell("sh", "ulimit -n 32 || exit 97", "");
        let burst: Vec<TcpStream> = (0..150).map(|_| connect(server.addr)).collect();
        let mut served = triage(&server, burst, "Too many open files");

        // With every descriptor taken and more clients knocking, the server must sleep.
        let knocking: Vec<TcpStream> = (0..50).map(|_| connect(server.addr)).collect();
        let before = server.cpu_ticks();
        thread::sleep(Duration::from_secs(3));
        let used = server.cpu_ticks() - before;
        assert!(
            used < 100,
            "server used {used} ticks of CPU in 3 s while out of descriptors"
        );
        assert!(server.is_running());
        for sock in &mut served {
            roundtrip(sock, b"still served");
        }

        drop(knocking);
        drop(served);
        assert!(served_again(server.addr, Duration::from_secs(20)));
    });
}

#[test]
fn max_conns_makes_newcomers_wait_not_fail() {
    with_timeout(Duration::from_secs(60), || {
        let server = Server::start(&["--max-conns", "2"]);
        let mut first = connect(server.addr);
        let mut second = connect(server.addr);
        roundtrip(&mut first, b"one");
        roundtrip(&mut second, b"two");
        // The table is full: the third waits in the listen backlog, unanswered.
        let mut third = connect(server.addr);
        third.write_all(b"three").unwrap();
        third
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut back = [0u8; 5];
        assert!(third.read(&mut back).is_err(), "served beyond --max-conns");
        // A slot frees: the third is accepted and its bytes echoed.
        drop(first);
        third
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        third.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"three");
        roundtrip(&mut second, b"two again");
    });
}
