//! `echoloop-bench` against the real server (busy and idle connections), a server that
//! corrupts one byte, one that never answers, one that closes idle connections, and a
//! descriptor limit too low for the connections asked for.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use echoloop_tests::{bench_bin, with_timeout, Server};

fn bench(addr: SocketAddr, args: &[&str]) -> Output {
    Command::new(bench_bin())
        .args(["--connect", &addr.to_string(), "--json"])
        .args(args)
        .output()
        .unwrap()
}

/// A number in `echoloop-bench --json`'s one object; `latency_us` fields by their name.
fn field(json: &str, name: &str) -> f64 {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v.get(name)
        .or_else(|| v["latency_us"].get(name))
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("{name} in {json}"))
}

#[test]
fn both_modes_report_checked_echoes_as_one_json_object() {
    with_timeout(Duration::from_secs(120), || {
        let server = Server::start(&[]);
        for args in [
            ["--mode", "pingpong", "--conns", "20", "--size", "100"],
            ["--mode", "stream", "--conns", "3", "--size", "40000"],
        ] {
            let out = bench(
                server.addr,
                &[&args[..], &["--duration", "1", "--warmup", "0.2"]].concat(),
            );
            let stdout = String::from_utf8(out.stdout).unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{args:?}: {stderr}");
            assert_eq!(stdout.lines().count(), 1, "{stdout}");
            assert!(
                stderr.is_empty(),
                "no progress display with --json: {stderr}"
            );
            assert!(field(&stdout, "messages") > 0.0, "{stdout}");
            assert!(field(&stdout, "bytes") >= field(&stdout, "messages") * 40.0);
            assert_eq!(field(&stdout, "mismatches"), 0.0, "{stdout}");
            assert_eq!(field(&stdout, "resets"), 0.0, "{stdout}");
            assert!(field(&stdout, "p50") > 0.0 && field(&stdout, "p50") <= field(&stdout, "max"));
            assert_eq!(
                field(&stdout, "conns"),
                f64::from(if args[1] == "stream" { 3 } else { 20 })
            );
        }
    });
}

/// Echoes every byte but flips one bit of the 1000th on each connection.
fn corrupting_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { return };
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut total = 0usize;
                while let Ok(n) = sock.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    if (total..total + n).contains(&999) {
                        buf[999 - total] ^= 1;
                    }
                    total += n;
                    if sock.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_corrupted_echo_is_a_mismatch_and_a_failure() {
    with_timeout(Duration::from_secs(120), || {
        let addr = corrupting_server();
        let out = bench(
            addr,
            &[
                "--conns",
                "2",
                "--size",
                "64",
                "--duration",
                "1",
                "--warmup",
                "0",
            ],
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success(), "{stdout}");
        assert_eq!(field(&stdout, "mismatches"), 2.0, "{stdout}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("differs"), "{stderr}");
    });
}

#[test]
fn a_silent_server_is_a_clear_error_in_bounded_time() {
    with_timeout(Duration::from_secs(120), || {
        // The kernel completes the handshakes; nobody ever reads or answers.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let started = Instant::now();
        let out = bench(
            addr,
            &["--conns", "3", "--duration", "60", "--timeout", "1"],
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success());
        assert!(stderr.contains("no echo from"), "{stderr}");
        assert!(stderr.contains("3 never had an echo"), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(30));
        drop(listener);
        let out = bench(addr, &["--duration", "1"]);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("cannot connect"), "{stderr}");
    });
}

#[test]
fn idle_connections_are_held_beside_the_busy_ones_and_checked_open() {
    with_timeout(Duration::from_secs(120), || {
        let server = Server::start(&[]);
        let out = bench(
            server.addr,
            &[
                "--conns",
                "4",
                "--idle",
                "60",
                "--duration",
                "1",
                "--warmup",
                "0.2",
            ],
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(field(&stdout, "conns"), 4.0, "{stdout}");
        assert_eq!(field(&stdout, "idle"), 60.0, "{stdout}");
        assert_eq!(field(&stdout, "idle_open"), 60.0, "{stdout}");
        assert_eq!(field(&stdout, "resets"), 0.0, "{stdout}");
        assert_eq!(field(&stdout, "stalled"), 0.0, "{stdout}");
        assert!(field(&stdout, "messages") > 0.0, "{stdout}");
    });
}

#[test]
fn idle_connections_the_server_closes_are_not_counted_open() {
    with_timeout(Duration::from_secs(120), || {
        // The server closes a connection silent for 1 s: every idle one, no busy one.
        let server = Server::start(&["--idle-timeout", "1"]);
        let out = bench(
            server.addr,
            &[
                "--conns",
                "2",
                "--idle",
                "10",
                "--duration",
                "2.5",
                "--warmup",
                "0",
            ],
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(field(&stdout, "idle"), 10.0, "{stdout}");
        assert_eq!(field(&stdout, "idle_open"), 0.0, "{stdout}");
        assert_eq!(field(&stdout, "resets"), 10.0, "{stdout}");
        assert_eq!(field(&stdout, "mismatches"), 0.0, "{stdout}");
        assert!(field(&stdout, "messages") > 0.0, "{stdout}");
    });
}

#[test]
fn a_descriptor_limit_too_low_is_one_clear_line() {
    with_timeout(Duration::from_secs(60), || {
        // Nothing listens there: the limit is checked before any connect.
        let bin = bench_bin();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n 100 && ulimit -Hn 100 && exec '{}' --connect 127.0.0.1:1 \
                 --conns 150 --idle 50",
                bin.display()
            ))
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("264 descriptors needed")
                && stderr.contains("hard RLIMIT_NOFILE is 100"),
            "{stderr}"
        );
    });
}
