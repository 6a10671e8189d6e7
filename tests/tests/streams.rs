//! One connection's stream under stress: half-close, resets, urgent data, a peer that
//! never reads.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use echoloop_tests::sock::{send_urgent, set_linger_zero};
use echoloop_tests::{
    connect, echo_stream, fill_stream, read_to_end, roundtrip, with_timeout, Rng, Server,
};

#[test]
fn half_close_gets_the_whole_echo_then_eof() {
    with_timeout(Duration::from_secs(60), || {
        let server = Server::start(&[]);
        let mut sock = connect(server.addr);
        let data = Rng::new(7).bytes(100_000);
        sock.write_all(&data).unwrap();
        sock.shutdown(std::net::Shutdown::Write).unwrap();
        // read_to_end fails on a reset: an Ok here is a clean EOF after the echo.
        assert_eq!(read_to_end(&mut sock).unwrap(), data);
        assert!(server.wait_for_log(
            &format!("closing {}: peer closed", sock.local_addr().unwrap()),
            Duration::from_secs(10)
        ));
    });
}

/// Connects, pushes up to `size` bytes without ever reading, and resets the connection.
/// One echo first: the server has then accepted the connection, so the reset lands on an
/// open one mid-stream (a connection reset while still in the listen backlog is dropped
/// at accept, before it is a connection at all).
fn vandal(addr: std::net::SocketAddr, seed: u64, size: usize) {
    let mut sock = connect(addr);
    roundtrip(&mut sock, b"accepted?");
    sock.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; size];
    fill_stream(seed, 0, &mut buf);
    let mut sent = 0;
    while sent < size {
        match (&sock).write(&buf[sent..]) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    set_linger_zero(&sock);
    drop(sock);
}

#[test]
fn resets_mid_stream_close_only_those_connections() {
    with_timeout(Duration::from_secs(120), || {
        let server = Server::start(&[]);
        let addr = server.addr;
        let steady: Vec<_> = (0..8)
            .map(|i| thread::spawn(move || echo_stream(addr, 500 + i, 4 << 20)))
            .collect();
        for i in 0..30 {
            vandal(addr, 900 + i, 256 * 1024);
        }
        for client in steady {
            client.join().unwrap();
        }
        assert!(
            server.wait_for_log("reset by peer", Duration::from_secs(10)),
            "{}",
            server.stderr()
        );
        assert!(server.is_running());
        let mut sock = connect(addr);
        roundtrip(&mut sock, b"still serving");
    });
}

#[test]
fn urgent_data_is_echoed_in_place_and_the_connection_stays_open() {
    with_timeout(Duration::from_secs(60), || {
        let server = Server::start(&[]);
        let mut sock = connect(server.addr);
        sock.set_nodelay(true).unwrap();
        sock.write_all(b"abc").unwrap();
        send_urgent(&sock, b'!');
        sock.write_all(b"def").unwrap();
        let mut back = [0u8; 7];
        sock.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"abc!def");
        roundtrip(&mut sock, b"and the connection is still open");
        let local = sock.local_addr().unwrap();
        assert!(!server.stderr().contains(&format!("closing {local}")));
    });
}

#[test]
fn a_peer_that_never_reads_costs_no_memory_and_slows_no_one() {
    const HOG: usize = 64 << 20;
    with_timeout(Duration::from_secs(120), || {
        let server = Server::start(&[]);
        let addr = server.addr;
        let mut warm = connect(addr);
        roundtrip(&mut warm, &Rng::new(1).bytes(64 * 1024));
        thread::sleep(Duration::from_millis(300));
        let idle = server.rss_kib();

        // The hog writes until the server stops taking bytes, and never reads.
        let hog = connect(addr);
        hog.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut writer = hog.try_clone().unwrap();
        let pushing = thread::spawn(move || push_until_blocked(&mut writer, 77, HOG));

        // Meanwhile everyone else is served, byte for byte.
        let others: Vec<_> = (0..6)
            .map(|i| thread::spawn(move || echo_stream(addr, 600 + i, 2 << 20)))
            .collect();
        for other in others {
            other.join().unwrap();
        }
        let pushed = pushing.join().unwrap();
        assert!(
            pushed < HOG,
            "the server took all {HOG} bytes from a peer that never reads"
        );
        let busy = server.rss_kib();
        assert!(
            busy <= idle + 4096,
            "RSS grew from {idle} KiB to {busy} KiB"
        );

        // What the hog's echo holds is exactly the start of what it sent.
        let mut hog = hog;
        hog.shutdown(std::net::Shutdown::Write).ok();
        let mut head = vec![0u8; 1 << 20];
        hog.read_exact(&mut head).unwrap();
        let mut want = vec![0u8; 1 << 20];
        fill_stream(77, 0, &mut want);
        assert!(head == want, "the hog's echo differs from what it sent");
        roundtrip(&mut warm, b"still fine");
    });
}

/// Writes stream `seed` until a write blocks for the socket's timeout; returns bytes taken.
fn push_until_blocked(sock: &mut TcpStream, seed: u64, size: usize) -> usize {
    let mut buf = vec![0u8; 1 << 20];
    let mut sent = 0;
    while sent < size {
        let n = buf.len().min(size - sent);
        fill_stream(seed, sent, &mut buf[..n]);
        let mut done = 0;
        while done < n {
            match sock.write(&buf[done..n]) {
                Ok(k) => done += k,
                Err(_) => return sent + done,
            }
        }
        sent += n;
    }
    sent
}
