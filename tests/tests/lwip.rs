//! The lwIP echo server (`ports/lwip/`: the core through its C ABI on lwIP's raw API),
//! checked from the kernel's side of a TAP link: `ports/lwip/serve` makes a network
//! namespace per test with the TAP device in it, and each test's clients (`echoloop
//! client`, the load generator, raw sockets) run inside that namespace, so nothing leaves
//! it. The server runs under AddressSanitizer and UBSan: an error there aborts it, and
//! `serve` then exits non-zero, which fails the test that stops it.
//!
//! They need root, `/dev/net/tun`, liblwip-dev and a C compiler, so `cargo test
//! --workspace` skips them and `.ci/ports.sh` runs them (`cargo test -p echoloop-tests
//! --test lwip -- --ignored --test-threads=1`).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use echoloop_tests::sock::{enter_netns, set_linger_zero};
use echoloop_tests::{
    bench_bin, connect, echo_stream, echo_stream_on, echoloop_bin, roundtrip, Rng, Server,
};

/// The kernel's side of the TAP link, where the clients are.
const KERNEL_IP: &str = "10.0.7.1";
/// The longest test; a stuck one is stopped, its namespace deleted, and fails.
const LIMIT: Duration = Duration::from_secs(180);

fn lwip_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ports/lwip")
}

/// Builds the server once per test process, so that `serve`'s own build is a no-op.
fn build() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new("make")
            .args(["--quiet", "-C"])
            .arg(lwip_dir())
            .status()
            .expect("running make for the lwIP server");
        assert!(status.success(), "the lwIP server did not build");
    });
}

/// The load generator, `echoloop-bench`, run with `args`.
fn loadgen(args: &[&str]) -> Output {
    Command::new(bench_bin())
        .args(args)
        .output()
        .expect("running the load generator")
}

fn echoloop(args: &[&str]) -> Output {
    Command::new(echoloop_bin())
        .args(args)
        .output()
        .expect("running echoloop")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// `serve NETNS` running, and the namespace it made.
struct Lwip {
    server: Server,
    ns: String,
}

impl Lwip {
    fn start(args: &[&str]) -> Lwip {
        static N: AtomicUsize = AtomicUsize::new(0);
        // Built before any thread enters the namespace.
        echoloop_bin();
        build();
        let ns = format!(
            "echoloop-lwip-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut cmd = Command::new(lwip_dir().join("serve"));
        cmd.arg(&ns).args(args);
        let server = Server::spawn(cmd, 1);
        assert!(netns_exists(&ns), "serve announced, but made no namespace");
        Lwip { server, ns }
    }

    /// Stops `serve` with `signal`: it must exit 0 and delete the namespace. The
    /// server's log, with its closing figures.
    fn stop(&self, signal: i32) -> String {
        self.server.signal(signal);
        let status = self.server.wait(Duration::from_secs(30));
        let log = self.server.stderr();
        assert!(
            status.is_some_and(|s| s.success()),
            "serve did not stop cleanly ({status:?}):\n{log}"
        );
        assert!(!netns_exists(&self.ns), "serve left {} behind", self.ns);
        log
    }

    /// Whatever happened: `serve` stopped, and the namespace and anything left in it gone.
    fn clean_up(&self) {
        if self.server.is_running() {
            self.server.signal(libc::SIGTERM);
            let _ = self.server.wait(Duration::from_secs(30));
        }
        if !netns_exists(&self.ns) {
            return;
        }
        // serve died before it could: stop what it started there, then delete it.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
        {
            for pid in text(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.ns])
            .status();
    }
}

impl Drop for Lwip {
    fn drop(&mut self) {
        self.clean_up();
    }
}

/// Starts the server with `args`, runs `body` on a thread inside its namespace, then
/// stops it with SIGTERM (exit 0, namespace gone) and returns its log. A body that fails
/// or outlasts [`LIMIT`] fails the test, and the namespace is deleted all the same.
fn in_lwip(args: &[&str], body: impl FnOnce(&Lwip) + Send + 'static) -> String {
    let lwip = Arc::new(Lwip::start(args));
    let (tx, rx) = mpsc::channel();
    let inside = Arc::clone(&lwip);
    let worker = thread::spawn(move || {
        enter_netns(&inside.ns);
        body(&inside);
        let _ = tx.send(());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            lwip.clean_up();
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
            panic!("the test body ended without a result");
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            lwip.clean_up();
            panic!("timed out after {LIMIT:?}; log:\n{}", lwip.server.stderr());
        }
    }
    let _ = worker.join();
    lwip.stop(libc::SIGTERM)
}

fn addr(lwip: &Lwip) -> String {
    lwip.server.addr.to_string()
}

#[test]
#[ignore = "needs root, /dev/net/tun and liblwip-dev: run by .ci/ports.sh"]
fn the_seeds_client_gets_every_message_back() {
    in_lwip(&[], |lwip| {
        let out = echoloop(&["client", "--connect", &addr(lwip), "--timeout", "30"]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        assert_eq!(
            stdout.matches("echo matches (58 bytes)").count(),
            2,
            "{stdout}"
        );
    });
}

#[test]
#[ignore = "needs root, /dev/net/tun and liblwip-dev: run by .ci/ports.sh"]
fn the_seeds_messages_come_back_as_datagrams() {
    in_lwip(&[], |lwip| {
        let out = echoloop(&["client", "--udp", "--connect", &addr(lwip)]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        assert!(stdout.contains(" 0 differed, 0 lost"), "{stdout}");
    });
}

/// The load generator checks each echoed byte and exits 0 only if all matched.
fn bench(mode: &'static str, conns: &'static str, size: &'static str) {
    in_lwip(&[], move |lwip| {
        let out = loadgen(&[
            "--connect",
            &addr(lwip),
            "--mode",
            mode,
            "--conns",
            conns,
            "--size",
            size,
            "--duration",
            "3",
            "--warmup",
            "1",
            "--timeout",
            "20",
        ]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        assert!(
            stdout.contains("0 connect failures, 0 resets, 0 mismatches, 0 stalled"),
            "{stdout}"
        );
        assert!(!stdout.contains("throughput: 0 messages/s"), "{stdout}");
    });
}

#[test]
#[ignore = "needs root, /dev/net/tun and liblwip-dev: run by .ci/ports.sh"]
fn pingpong_on_200_connections_checks_every_byte() {
    bench("pingpong", "200", "64");
}

#[test]
#[ignore = "needs root, /dev/net/tun and liblwip-dev: run by .ci/ports.sh"]
fn streams_on_20_connections_check_every_byte() {
    bench("stream", "20", "16384");
}

#[test]
#[ignore = "needs root, /dev/net/tun and liblwip-dev: run by .ci/ports.sh"]
fn datagrams_of_every_size_from_0_to_1472_bytes_come_back_whole() {
    in_lwip(&[], |lwip| {
        let sock = UdpSocket::bind((KERNEL_IP, 0)).unwrap();
        sock.connect(lwip.server.addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let payloads: Vec<Vec<u8>> = (0..=1472).map(|n| Rng::new(n as u64).bytes(n)).collect();
        let mut buf = [0u8; 2048];
        for (len, payload) in payloads.iter().enumerate() {
            // Loss is retried; a late echo of an earlier datagram is recognised and
            // skipped; any other datagram is a corrupted echo.
            let mut tries = 0;
            'send: loop {
                tries += 1;
                assert!(
                    tries <= 10,
                    "no echo of the {len}-byte datagram in 10 tries"
                );
                sock.send(payload).unwrap();
                loop {
                    match sock.recv(&mut buf) {
                        Ok(n) if n == len => {
                            assert_eq!(&buf[..n], &payload[..], "the {len}-byte echo differs");
                            break 'send;
                        }
                        Ok(n) => assert!(
                            n < len && buf[..n] == payloads[n][..],
                            "a {n}-byte datagram that is no echo, waiting for {len} bytes"
                        ),
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                        {
                            continue 'send
                        }
                        Err(e) => panic!("receiving the {len}-byte echo: {e}"),
                    }
                }
            }
        }
    });
}

#[test]
#[ignore = "needs root, /dev/net/tun and liblwip-dev: run by .ci/ports.sh"]
fn half_close_gets_the_whole_echo_then_eof() {
    let log = in_lwip(&[], |lwip| {
        // Far more than the core's 4 KiB queue and lwIP's window: backpressure on the way.
        echo_stream(lwip.server.addr, 1, 300_000);
        assert!(
            lwip.server
                .wait_for_log("peer closed", Duration::from_secs(10)),
            "{}",
            lwip.server.stderr()
        );
    });
    // serve's probe byte, then the stream.
    assert!(log.contains("bytes in 300001, out 300001"), "{log}");
}

#[test]
#[ignore = "needs root, /dev/net/tun and liblwip-dev: run by .ci/ports.sh"]
fn err_mem_from_tcp_write_loses_and_reorders_nothing() {
    // Every third tcp_write is answered ERR_MEM: the bytes must stay queued in the core and
    // go out from the sent or poll callback, in order.
    let log = in_lwip(&["--refuse-writes", "3"], |lwip| {
        let addr = lwip.server.addr;
        let streams: Vec<_> = (0..2)
            .map(|i| thread::spawn(move || echo_stream(addr, 20 + i, 200_000)))
            .collect();
        for stream in streams {
            stream.join().unwrap();
        }
    });
    let retries: u64 = log
        .split("write retries ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no write retries in the figures:\n{log}"));
    assert!(retries > 0, "no tcp_write was refused:\n{log}");
}

#[test]
#[ignore = "needs root, /dev/net/tun and liblwip-dev: run by .ci/ports.sh"]
fn a_reset_mid_stream_closes_only_that_connection() {
    in_lwip(&[], |lwip| {
        let addr = lwip.server.addr;
        let steady = thread::spawn(move || echo_stream(addr, 2, 300_000));
        let mut vandal = connect(addr);
        roundtrip(&mut vandal, b"before the reset");
        vandal.write_all(&Rng::new(3).bytes(20_000)).unwrap();
        set_linger_zero(&vandal);
        drop(vandal);
        assert!(
            lwip.server.wait_for_log(": reset", Duration::from_secs(20)),
            "{}",
            lwip.server.stderr()
        );
        steady.join().unwrap();
        roundtrip(&mut connect(addr), b"served after the reset");
    });
}

#[test]
#[ignore = "needs root, /dev/net/tun and liblwip-dev: run by .ci/ports.sh"]
fn more_clients_than_the_table_holds_are_refused_cleanly() {
    let log = in_lwip(&["--conns", "4"], |lwip| {
        let addr = lwip.server.addr;
        let mut held: Vec<TcpStream> = (0..4).map(|_| connect(addr)).collect();
        for (i, sock) in held.iter_mut().enumerate() {
            roundtrip(sock, format!("held {i}").as_bytes());
        }
        // lwIP completes the handshake, the core refuses the fifth: a reset, no echo.
        let mut extra = connect(addr);
        let _ = extra.write_all(b"one client too many");
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match extra.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
                    break;
                }
            }
        }
        assert!(got.is_empty(), "served beyond the table: {:?}", text(&got));
        for (i, sock) in held.iter_mut().enumerate() {
            roundtrip(sock, format!("still held {i}").as_bytes());
        }
        // A slot freed is a slot served.
        held.pop().unwrap().shutdown(Shutdown::Both).unwrap();
        assert!(lwip
            .server
            .wait_for_log("peer closed", Duration::from_secs(10)));
        roundtrip(&mut connect(addr), b"served once a slot was free");
    });
    assert!(log.contains("refused 1,"), "{log}");
}

#[test]
#[ignore = "needs root, /dev/net/tun and liblwip-dev: run by .ci/ports.sh"]
fn a_client_that_never_reads_is_closed_when_idle_and_stops_no_one() {
    in_lwip(&["--conns", "4", "--idle-ms", "3000"], |lwip| {
        let addr = lwip.server.addr;
        // Writes until every buffer on the way is full, and never reads.
        let stuck = connect(addr);
        stuck.set_nonblocking(true).unwrap();
        let junk = Rng::new(4).bytes(64 * 1024);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut pushed = 0;
        while Instant::now() < deadline {
            match (&stuck).write(&junk) {
                Ok(n) => pushed += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("the stuck client failed early: {e}"),
            }
        }
        assert!(pushed > 4096, "pushed only {pushed} bytes");
        let others: Vec<_> = (0..3)
            .map(|i| {
                let sock = connect(addr);
                thread::spawn(move || echo_stream_on(sock, 10 + i, 100_000))
            })
            .collect();
        for other in others {
            other.join().unwrap();
        }
        assert!(
            lwip.server
                .wait_for_log("idle timeout", Duration::from_secs(20)),
            "{}",
            lwip.server.stderr()
        );
    });
}

#[test]
#[ignore = "needs root, /dev/net/tun and liblwip-dev: run by .ci/ports.sh"]
fn sigterm_delivers_every_echo_then_closes_with_a_fin() {
    let log = in_lwip(&[], |lwip| {
        let addr = lwip.server.addr;
        let mut idle = connect(addr);
        roundtrip(&mut idle, b"before the stop");
        // Its echo is on its way when the stop comes; the peer reads it only after.
        let mut late = connect(addr);
        roundtrip(&mut late, b"warm");
        late.write_all(b"echoed even so").unwrap();
        assert!(lwip
            .server
            .wait_for_log("closed #0.0", Duration::from_secs(10)));
        thread::sleep(Duration::from_millis(200));
        lwip.server.signal(libc::SIGTERM);
        let mut back = vec![0u8; 14];
        late.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"echoed even so");
        for sock in [&mut idle, &mut late] {
            // A FIN, not a reset: the read ends cleanly, with nothing more.
            assert_eq!(sock.read(&mut [0u8; 16]).unwrap(), 0);
            sock.shutdown(Shutdown::Write).unwrap();
        }
        let status = lwip.server.wait(Duration::from_secs(30));
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
    });
    assert!(
        log.contains("shutdown 2, shutdown timeout 0, aborted 0"),
        "{log}"
    );
}

#[test]
#[ignore = "needs root, /dev/net/tun and liblwip-dev: run by .ci/ports.sh"]
fn serve_refuses_bad_input_with_one_line_and_stops_on_sigint() {
    build();
    let serve = lwip_dir().join("serve");
    let taken = format!("echoloop-lwip-taken-{}", std::process::id());
    assert!(Command::new("ip")
        .args(["netns", "add", &taken])
        .status()
        .unwrap()
        .success());
    let cases: [(&[&str], &str); 3] = [
        (&[&taken], "already exists"),
        (&["bad/name"], "invalid namespace name"),
        (&[], "usage"),
    ];
    for (args, want) in cases {
        let out = Command::new(&serve).args(args).output().unwrap();
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
    assert!(
        netns_exists(&taken),
        "serve deleted a namespace it did not make"
    );
    assert!(Command::new("ip")
        .args(["netns", "delete", &taken])
        .status()
        .unwrap()
        .success());

    let lwip = Lwip::start(&[]);
    let log = lwip.stop(libc::SIGINT);
    // serve stops the server with SIGTERM whichever signal it got.
    assert!(log.contains("stopped by signal 15"), "{log}");
}
