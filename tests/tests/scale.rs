//! One select loop, ten thousand connections: every descriptor past `FD_SETSIZE` served,
//! every byte checked.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use echoloop_tests::{connect, fill_stream, roundtrip, sock, with_timeout, Server};

const CONNS: usize = 10_000;
const STREAMERS: usize = 1_000;
const STREAM: usize = 256 * 1024;

/// Raises this process's descriptor limit to hold `conns` client sockets; `false` (with the
/// reason printed) only when the hard limit does not allow it.
fn room_for(conns: usize) -> bool {
    let want = (conns + 64) as libc::rlim_t;
    let soft = sock::raise_nofile(want).expect("setrlimit");
    if soft < want {
        eprintln!("skipped: the hard RLIMIT_NOFILE allows {soft} descriptors, {want} needed");
        return false;
    }
    true
}

/// Opens `n` connections, each echoing its own message before the next one connects (so
/// the listen backlog never overflows into SYN retries).
fn open_and_echo(server: &Server, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut sock = connect(server.addr);
            roundtrip(&mut sock, format!("connection {i} says hello").as_bytes());
            sock
        })
        .collect()
}

/// One streaming connection's progress: bytes sent, bytes echoed and checked.
struct Stream {
    sock: TcpStream,
    seed: u64,
    sent: usize,
    received: usize,
}

/// Streams `STREAM` bytes on every socket at once, without threads: non-blocking sockets,
/// each pushed and drained in turn until every echo is back and checked.
fn stream_all(socks: Vec<TcpStream>) {
    let mut streams: Vec<Stream> = socks
        .into_iter()
        .enumerate()
        .map(|(i, sock)| {
            sock.set_nonblocking(true).unwrap();
            Stream {
                sock,
                seed: 1000 + i as u64,
                sent: 0,
                received: 0,
            }
        })
        .collect();
    let mut out = vec![0u8; 16 * 1024];
    let mut back = vec![0u8; 64 * 1024];
    let mut want = vec![0u8; 64 * 1024];
    while streams.iter().any(|s| s.received < STREAM) {
        let mut moved = false;
        for s in &mut streams {
            if s.sent < STREAM {
                let n = out.len().min(STREAM - s.sent);
                fill_stream(s.seed, s.sent, &mut out[..n]);
                match s.sock.write(&out[..n]) {
                    Ok(k) => {
                        s.sent += k;
                        moved = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("stream {}: send at {}: {e}", s.seed, s.sent),
                }
            }
            match s.sock.read(&mut back) {
                Ok(0) => panic!("stream {}: EOF after {} bytes", s.seed, s.received),
                Ok(k) => {
                    fill_stream(s.seed, s.received, &mut want[..k]);
                    assert!(back[..k] == want[..k], "stream {}: echo differs", s.seed);
                    s.received += k;
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("stream {}: receive at {}: {e}", s.seed, s.received),
            }
        }
        if !moved {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    for s in &streams {
        assert_eq!((s.sent, s.received), (STREAM, STREAM), "stream {}", s.seed);
    }
}

#[test]
fn ten_thousand_connections_echo_then_a_thousand_stream_at_once() {
    if !room_for(CONNS) {
        return;
    }
    with_timeout(Duration::from_secs(600), || {
        let server = Server::start(&["--max-conns", "10000"]);
        let mut socks = open_and_echo(&server, CONNS);
        assert!(server.is_running());
        // The newest connections sit on descriptors far past FD_SETSIZE in the server.
        for (i, sock) in socks.iter_mut().enumerate().step_by(997) {
            roundtrip(sock, format!("still here {i}").as_bytes());
        }
        let streamers: Vec<TcpStream> = socks.drain(CONNS - STREAMERS..).collect();
        stream_all(streamers);
        // The ones that did not stream are still served.
        for sock in socks.iter_mut().step_by(501) {
            roundtrip(sock, b"after the streams");
        }
        drop(socks);
        let mut again = connect(server.addr);
        roundtrip(&mut again, b"served after ten thousand closed");
        assert!(server.is_running());
    });
}

#[test]
fn max_conns_beyond_the_descriptor_limit_is_lowered_with_a_log_line() {
    with_timeout(Duration::from_secs(120), || {
        // A hard limit of 64 descriptors cannot hold 1000 connections.
        let server = Server::start_in_shell("sh", "ulimit -n 64 || exit 97", "--max-conns 1000");
        assert!(
            server.wait_for_log(
                "lowering --max-conns from 1000 to ",
                Duration::from_secs(20)
            ),
            "{}",
            server.stderr()
        );
        let log = server.stderr();
        let effective: usize = log
            .split("lowering --max-conns from 1000 to ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no effective capacity in the log line: {log}"));
        assert!(
            (1..64).contains(&effective),
            "effective capacity {effective}"
        );
        let mut served = open_and_echo(&server, effective);
        // One more waits unanswered in the backlog: the table is full.
        let mut extra = connect(server.addr);
        extra.write_all(b"one too many").unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut back = [0u8; 12];
        assert!(extra.read(&mut back).is_err(), "served beyond the capacity");
        // A slot frees: the newcomer is served, byte for byte, and so are the others.
        drop(served.pop());
        extra
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        extra.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"one too many");
        for sock in &mut served {
            roundtrip(sock, b"still served");
        }
        assert!(!server.stderr().contains("Too many open files"));
    });
}
