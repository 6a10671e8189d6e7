//! `echoloop client --udp` and `echoloop-bench --udp` against small UDP peers started
//! inside the test: a faithful echo (IPv4 and IPv6), one that flips a bit of every echo
//! (both must exit non-zero), one that drops every third datagram (the client retries,
//! the bench reports the loss), and no peer at all.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use echoloop_tests::{bench_bin, echoloop_bin, with_timeout};

#[derive(Clone, Copy)]
enum Behaviour {
    Echo,
    FlipBit,
    DropEveryThird,
}

/// A UDP peer on its own thread until dropped.
struct Peer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Peer {
    fn start(bind: &str, behaviour: Behaviour) -> Peer {
        let sock = UdpSocket::bind(bind).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            let mut n_seen = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                n_seen += 1;
                let datagram = &mut buf[..n];
                match behaviour {
                    Behaviour::Echo => {}
                    Behaviour::FlipBit => {
                        if let Some(b) = datagram.last_mut() {
                            *b ^= 0x10;
                        }
                    }
                    Behaviour::DropEveryThird if n_seen % 3 == 0 => continue,
                    Behaviour::DropEveryThird => {}
                }
                let _ = sock.send_to(datagram, from);
            }
        });
        Peer { addr, stop }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn echoloop(args: &[&str]) -> Output {
    Command::new(echoloop_bin()).args(args).output().unwrap()
}

fn client(addr: SocketAddr, extra: &[&str]) -> (bool, String) {
    let addr = addr.to_string();
    let out = echoloop(&[&["client", "--udp", "--connect", &addr][..], extra].concat());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.success(), format!("{stdout}{stderr}"))
}

fn bench(addr: SocketAddr, extra: &[&str]) -> (Output, serde_json::Value) {
    let addr = addr.to_string();
    let args = ["--udp", "--json", "--connect", &addr, "--warmup", "0.2"];
    let out = Command::new(bench_bin())
        .args([&args[..], extra].concat())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    (out, json)
}

#[test]
fn client_sends_the_seed_messages_as_datagrams_and_checks_each() {
    with_timeout(Duration::from_secs(60), || {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let peer = Peer::start(bind, Behaviour::Echo);
            let (ok, out) = client(peer.addr, &[]);
            assert!(ok, "{out}");
            assert_eq!(out.matches("echo matches").count(), 8, "{out}");
            for m in [
                "This is the message 0",
                "It will be sent 1",
                "in parts 2",
                "in 中文3",
            ] {
                assert!(out.contains(&format!("received \"{m}\"")), "{out}");
            }
            assert!(
                out.contains("8 of 8 datagrams echoed byte for byte, 0 differed, 0 lost"),
                "{out}"
            );
        }
        let peer = Peer::start("127.0.0.1:0", Behaviour::Echo);
        let (ok, out) = client(peer.addr, &["--sockets", "1", "", "x", &"y".repeat(60_000)]);
        assert!(ok, "an empty and a 60,000-byte datagram: {out}");
        assert!(
            out.contains("echo matches (0 bytes)") && out.contains("echo matches (60000 bytes)")
        );
    });
}

#[test]
fn client_fails_on_a_flipped_bit() {
    with_timeout(Duration::from_secs(60), || {
        let peer = Peer::start("127.0.0.1:0", Behaviour::FlipBit);
        let (ok, out) = client(peer.addr, &[]);
        assert!(!ok, "{out}");
        assert!(out.contains("echo DIFFERS from what was sent: 21 bytes back for 21 sent, first difference at byte 20"), "{out}");
        assert!(
            out.contains("0 of 8 datagrams echoed byte for byte, 8 differed"),
            "{out}"
        );
    });
}

#[test]
fn client_retries_lost_datagrams_and_reports_loss() {
    with_timeout(Duration::from_secs(60), || {
        let peer = Peer::start("127.0.0.1:0", Behaviour::DropEveryThird);
        let (ok, out) = client(peer.addr, &["--timeout", "4"]);
        assert!(ok, "every datagram comes back on a retry: {out}");
        assert!(out.contains("sending again (try 2)"), "{out}");
        assert!(!out.contains("(0 retries)"), "{out}");
        drop(peer);
        // Nobody listens now: every datagram is lost (or refused), exit non-zero.
        let (ok, out) = client(
            peer_addr_closed(),
            &["--sockets", "1", "--timeout", "1", "x"],
        );
        assert!(!ok, "{out}");
        assert!(out.contains("lost") || out.contains("unreachable"), "{out}");
    });
}

/// A loopback port with no socket: bound, then closed.
fn peer_addr_closed() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn bench_reports_checked_datagrams_at_the_edge_sizes() {
    with_timeout(Duration::from_secs(120), || {
        let peer = Peer::start("127.0.0.1:0", Behaviour::Echo);
        for (conns, size) in [("4", "64"), ("1", "1"), ("1", "65507")] {
            let (out, json) = bench(
                peer.addr,
                &["--conns", conns, "--size", size, "--duration", "0.5"],
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{size}: {stderr}");
            assert!(json["messages"].as_u64().unwrap() > 0, "{json}");
            assert_eq!(json["mismatches"], 0, "{json}");
            assert_eq!(json["udp"]["duplicates"], 0, "{json}");
            assert!(json["udp"]["sent"].as_u64().unwrap() >= json["messages"].as_u64().unwrap());
            assert_eq!(
                json["bytes"].as_u64(),
                Some(json["messages"].as_u64().unwrap() * size.parse::<u64>().unwrap())
            );
        }
        let (out, _) = bench(peer.addr, &["--size", "65508", "--duration", "0.5"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("too large for a datagram"));
    });
}

#[test]
fn bench_exits_non_zero_on_flipped_bits_and_reports_loss() {
    with_timeout(Duration::from_secs(120), || {
        let flipper = Peer::start("127.0.0.1:0", Behaviour::FlipBit);
        let (out, json) = bench(flipper.addr, &["--conns", "2", "--duration", "0.5"]);
        assert!(!out.status.success(), "{json}");
        assert!(json["mismatches"].as_u64().unwrap() > 0, "{json}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("differs"));

        let dropper = Peer::start("127.0.0.1:0", Behaviour::DropEveryThird);
        let (out, json) = bench(dropper.addr, &["--conns", "2", "--duration", "1"]);
        assert!(out.status.success(), "{json}");
        let udp = &json["udp"];
        assert!(udp["lost"].as_u64().unwrap() > 0, "{json}");
        assert_eq!(json["mismatches"], 0, "{json}");
    });
}
