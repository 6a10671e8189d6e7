//! `echoloop serve --udp` end to end: the real binary on loopback, every datagram compared
//! byte for byte with what was sent, the guards seen from outside and in the stats the
//! server logs at shutdown.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use echoloop_tests::{bench_bin, echoloop_bin, with_timeout, Rng, Server};

/// The largest UDP payload over IPv4.
const MAX: usize = 65_507;

/// A socket on `bind`, talking to `server` only, with a receive timeout that is a bound
/// on a stuck test, never a measurement.
fn source(bind: &str, server: SocketAddr) -> UdpSocket {
    let sock = UdpSocket::bind(bind).unwrap();
    sock.connect(server).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock
}

/// Sends `msg` and checks that exactly it comes back, as one datagram.
fn echo(sock: &UdpSocket, msg: &[u8], buf: &mut [u8]) {
    sock.send(msg).unwrap();
    let n = sock
        .recv(buf)
        .unwrap_or_else(|e| panic!("no echo of {} bytes: {e}", msg.len()));
    assert_eq!(n, msg.len(), "echo length");
    assert!(buf[..n] == *msg, "echo of {} bytes differs", msg.len());
}

/// Stops the server with SIGTERM, checks it exits 0 and returns its log once it holds
/// every UDP socket's shutdown line (stderr is collected by a thread: it may lag the exit).
fn stop(server: Server) -> String {
    server.signal(libc::SIGTERM);
    let status = server.wait(Duration::from_secs(20)).expect("server exit");
    assert!(status.success(), "exit status {status}");
    for _ in 0..500 {
        let log = server.stderr();
        if log.matches("shut down: udp ").count() >= server.udp.len() {
            return log;
        }
        thread::sleep(Duration::from_millis(20));
    }
    server.stderr()
}

/// The shutdown line of the UDP socket on `addr`.
fn stats_line(log: &str, addr: SocketAddr) -> String {
    let prefix = format!("shut down: udp {addr}:");
    log.lines()
        .find(|l| l.contains(&prefix))
        .unwrap_or_else(|| panic!("no '{prefix}' in:\n{log}"))
        .to_string()
}

/// The edges and a random sample of every size from 0 to 65,507, on IPv4 and IPv6,
/// each from its own socket and compared byte for byte; the counters at shutdown agree.
#[test]
fn every_size_comes_back_byte_for_byte_on_ipv4_and_ipv6() {
    with_timeout(Duration::from_secs(120), || {
        // One source sends megabytes here: the flood guard is not what this test is about.
        let server = Server::start_udp(
            &["127.0.0.1:0", "[::1]:0"],
            &["--udp-rate", "off", "--udp-bytes", "off"],
        );
        let mut sizes = vec![0, 1, 2, 1471, 1472, 1473, 8191, 8192, 8193, 65_000, MAX];
        let mut rng = Rng::new(15);
        sizes.extend((0..40).map(|_| rng.range(0, MAX + 1)));
        let mut buf = vec![0u8; 65_536];
        for (addr, bind) in [(server.udp[0], "127.0.0.1:0"), (server.udp[1], "[::1]:0")] {
            let sock = source(bind, addr);
            for &len in &sizes {
                echo(&sock, &rng.bytes(len), &mut buf);
            }
        }
        // IPv6 carries up to 65,527 bytes: the server's slot holds them too.
        let v6 = source("[::1]:0", server.udp[1]);
        echo(&v6, &rng.bytes(65_527), &mut buf);
        let (v4, v6_addr) = (server.udp[0], server.udp[1]);
        let log = stop(server);
        let total: usize = sizes.iter().sum();
        let n = sizes.len();
        for (addr, n, bytes) in [(v4, n, total), (v6_addr, n + 1, total + 65_527)] {
            let line = stats_line(&log, addr);
            let want =
                format!("received {n}, echoed {n}, bytes in {bytes}, bytes out {bytes}, dropped 0");
            assert!(line.contains(&want), "want '{want}' in '{line}'");
        }
    });
}

/// A datagram from a loop-prone port (echo 7, chargen 19) gets no reply and is counted;
/// an ordinary source right after it still gets its echo.
#[test]
fn guarded_source_ports_get_no_reply_and_are_counted() {
    with_timeout(Duration::from_secs(60), || {
        let server = Server::start_udp(&["127.0.0.1:0"], &[]);
        let addr = server.udp[0];
        let mut guarded = Vec::new();
        for port in [7, 19] {
            match UdpSocket::bind(("127.0.0.1", port)) {
                Ok(sock) => {
                    sock.connect(addr).unwrap();
                    guarded.push(sock);
                }
                Err(e) => eprintln!("skipping source port {port}: cannot bind it ({e})"),
            }
        }
        for sock in &guarded {
            sock.send(b"bounce me").unwrap();
        }
        // Loopback keeps order: once this echo is back, the server has read the
        // guarded datagrams sent before it, and answered none.
        let ordinary = source("127.0.0.1:0", addr);
        let mut buf = vec![0u8; 65_536];
        echo(&ordinary, b"after the guarded ones", &mut buf);
        for sock in &guarded {
            sock.set_nonblocking(true).unwrap();
            let got = sock.recv(&mut buf);
            assert!(
                matches!(&got, Err(e) if e.kind() == ErrorKind::WouldBlock),
                "a guarded port got a reply: {got:?}"
            );
        }
        let log = stop(server);
        let line = stats_line(&log, addr);
        let want = format!("received {}, echoed 1,", guarded.len() + 1);
        assert!(line.contains(&want), "want '{want}' in '{line}'");
        let want = format!("loop guard {}", guarded.len());
        assert!(line.contains(&want), "want '{want}' in '{line}'");
    });
}

/// One source floods far beyond its budget while a second, within its own, ping-pongs:
/// every one of the second source's datagrams comes back (retried only if the kernel
/// dropped it in a full receive buffer), and the flood's excess is counted.
#[test]
fn a_flood_from_one_source_does_not_stop_another_sources_echoes() {
    with_timeout(Duration::from_secs(120), || {
        // 200 datagrams a second per source, bursts of 25.
        let server = Server::start_udp(&["127.0.0.1:0"], &["--udp-rate", "200"]);
        let addr = server.udp[0];
        let done = Arc::new(AtomicBool::new(false));
        let flooding = done.clone();
        let flooder = source("127.0.0.1:0", addr);
        let flood = thread::spawn(move || {
            let mut sent = 0u64;
            while !flooding.load(Ordering::Relaxed) {
                if flooder.send(&[0x5a; 512]).is_ok() {
                    sent += 1;
                }
                if sent % 256 == 0 {
                    thread::yield_now();
                }
            }
            sent
        });
        // Let the flood spend its burst before the polite source starts.
        thread::sleep(Duration::from_millis(200));
        let polite = source("127.0.0.1:0", addr);
        polite
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = vec![0u8; 65_536];
        let mut retries = 0;
        for i in 0..20u8 {
            let msg = [i; 100];
            let mut tries = 0;
            loop {
                polite.send(&msg).unwrap();
                match polite.recv(&mut buf) {
                    Ok(n) => {
                        assert!(buf[..n] == msg, "echo {i} differs");
                        break;
                    }
                    Err(_) => {
                        tries += 1;
                        retries += 1;
                        assert!(tries < 20, "datagram {i} never came back");
                    }
                }
            }
            // 20 datagrams over about a second: within 200/s.
            thread::sleep(Duration::from_millis(50));
        }
        done.store(true, Ordering::Relaxed);
        let sent = flood.join().unwrap();
        let log = stop(server);
        let line = stats_line(&log, addr);
        let dropped: u64 = line
            .split("flood guard ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no flood guard count in '{line}'"));
        eprintln!("flood: {sent} sent, {dropped} dropped by the flood guard; {retries} retries");
        assert!(dropped > 0, "{line}");
    });
}

/// The seed's TCP client and `echoloop-bench --udp` against one server at once: both exit 0,
/// which means every byte and every datagram compared equal.
#[test]
fn tcp_and_udp_are_served_at_once() {
    with_timeout(Duration::from_secs(120), || {
        let server = Server::start_udp(
            &["127.0.0.1:0"],
            &["--udp-rate", "off", "--udp-bytes", "off"],
        );
        let (tcp, udp) = (server.addr.to_string(), server.udp[0].to_string());
        let mut bench = Command::new(bench_bin())
            .args(["--udp", "--connect", &udp, "--conns", "4"])
            .args([
                "--size",
                "512",
                "--duration",
                "3",
                "--warmup",
                "0",
                "--json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        for _ in 0..3 {
            let out = Command::new(echoloop_bin())
                .args(["client", "--connect", &tcp])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "client: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let status = bench.wait().unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(bench.stdout.as_mut().unwrap(), &mut out).unwrap();
        assert!(status.success(), "bench --udp: {status} {out}");
        assert!(out.contains("\"mismatches\":0"), "{out}");
        let log = stop(server);
        let line = stats_line(&log, server_udp(&log));
        assert!(line.contains("dropped 0"), "{line}");
    });
}

/// The UDP address in the log's shutdown line (the only one).
fn server_udp(log: &str) -> SocketAddr {
    log.lines()
        .find_map(|l| l.split("shut down: udp ").nth(1))
        .and_then(|rest| rest.split(": ").next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no UDP shutdown line in:\n{log}"))
}

/// SIGTERM with UDP on, on IPv6: exit 0 and the UDP stats in the log.
#[test]
fn sigterm_exits_zero_with_udp_on() {
    with_timeout(Duration::from_secs(60), || {
        let server = Server::start_udp(&["[::1]:0"], &[]);
        let addr = server.udp[0];
        assert!(addr.is_ipv6() && addr.port() != 0, "{addr}");
        let mut buf = vec![0u8; 64];
        echo(&source("[::1]:0", addr), b"one", &mut buf);
        let log = stop(server);
        let line = stats_line(&log, addr);
        assert!(line.contains("received 1, echoed 1,"), "{line}");
    });
}
