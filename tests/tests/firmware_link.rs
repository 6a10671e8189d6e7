//! The Cortex-M4 firmware on a real link: `ports/qemu-m4/serve --netns NAME` boots it
//! with its LAN9118 on a TAP device inside a namespace the script makes, and the tests
//! talk to 10.0.2.15 from inside that namespace: UDP (which QEMU's restricted user network
//! cannot carry), TCP over a lossy link, through the impaired wire, and a burst of 64
//! connections on the firmware's 4 slots. Every byte is checked.
//!
//! They need root, iproute2, nftables, `qemu-system-arm`, the thumbv7em-none-eabihf target
//! and `defmt-print`, so `cargo test --workspace` skips them; `.ci/ports.sh` runs them
//! (`cargo test -p echoloop-tests --test firmware_link -- --ignored --test-threads=1`).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use echoloop_tests::matrix::{self, Plan};
use echoloop_tests::netns::{self, Netns};
use echoloop_tests::wire::{Impairment, Wire};
use echoloop_tests::{echoloop_bin, loadgen_argv, with_timeout, Rng, Server};

/// The firmware's fixed address on the link, and the kernel side's.
const FIRMWARE: &str = "10.0.2.15:7";
const HOST: &str = "10.0.2.2";
/// The largest datagram the firmware echoes: one Ethernet frame, no IP fragments
/// (`MAX_DATAGRAM` in ports/qemu-m4/server/src/sizes.rs).
const MAX_DATAGRAM: usize = 1472;

fn qemu_m4_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ports/qemu-m4")
}

/// Builds the firmware once per test process, so that `serve`'s own build is a no-op.
fn build_firmware() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new("cargo")
            .current_dir(qemu_m4_dir())
            .args(["build", "--release", "--locked", "-p", "echoloop-m4-server"])
            .status()
            .expect("running cargo for the firmware");
        assert!(status.success(), "the firmware did not build");
    });
}

/// The firmware under `serve --netns`: stopped with SIGTERM when dropped (the script then
/// deletes its namespace), and the namespace deleted here too if anything is left.
struct Firmware {
    server: Option<Server>,
    ns: Netns,
}

impl Firmware {
    /// Boots the firmware on a TAP device in a fresh namespace.
    fn boot() -> Firmware {
        Firmware::boot_with(|_| None).0
    }

    /// Boots it with `extra` given the namespace's name before `serve` starts; `extra`
    /// may return a wire (started once the namespace's TAP exists) to keep alive.
    fn boot_with(extra: impl FnOnce(&str) -> Option<PathBuf>) -> (Firmware, String) {
        assert!(netns::available(), "needs root, ip and nft");
        build_firmware();
        let name = Netns::fresh_name("fw");
        let ns = Netns::adopt(name.clone());
        let mut cmd = Command::new(qemu_m4_dir().join("serve"));
        cmd.args(["--netns", &name]);
        if let Some(dir) = extra(&name) {
            cmd.arg("--wire-socket").arg(dir);
        }
        let server = Server::spawn_for(cmd, 1, Duration::from_secs(900));
        assert_eq!(server.addr, FIRMWARE.parse().unwrap());
        (
            Firmware {
                server: Some(server),
                ns,
            },
            name,
        )
    }

    fn addr(&self) -> SocketAddr {
        FIRMWARE.parse().unwrap()
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    /// The firmware's log so far (defmt, decoded).
    fn log(&self) -> String {
        self.server().stderr()
    }

    /// SIGTERM, and the script's exit status.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let server = self.server.take()?;
        server.signal(libc::SIGTERM);
        server.wait(Duration::from_secs(20))
    }
}

impl Drop for Firmware {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(server) = &self.server {
                eprintln!("firmware log:\n{}", server.stderr());
            }
        }
        self.stop();
    }
}

/// The last `udp echo:` statistics line the firmware logged, if any.
fn udp_stats(log: &str) -> String {
    log.lines()
        .rev()
        .find(|l| l.contains("udp echo:") && l.contains("dropped"))
        .unwrap_or("")
        .to_owned()
}

/// The number after `name: ` in a defmt `Debug` line.
fn count(line: &str, name: &str) -> u64 {
    line.split(&format!("{name}: "))
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "needs root, nftables, qemu-system-arm and the cross-built firmware: run by .ci/ports.sh"]
fn tap_mode_serves_tcp_and_udp_and_sigterm_removes_the_namespace() {
    with_timeout(Duration::from_secs(300), || {
        let mut fw = Firmware::boot();
        assert!(fw.ns.exists());
        matrix::seed_client(&fw.ns, fw.addr(), 4);
        let out = fw
            .ns
            .command(echoloop_bin())
            .args(["client", "--udp", "--connect", FIRMWARE, "--timeout", "30"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "client --udp: {text}");
        assert!(text.contains("0 differed, 0 lost"), "{text}");
        let status = fw.stop().expect("serve did not exit after SIGTERM");
        assert!(status.success(), "serve exited with {status}");
        assert!(!fw.ns.exists(), "serve left its namespace behind");
    });
}

#[test]
#[ignore = "needs root, nftables, qemu-system-arm and the cross-built firmware: run by .ci/ports.sh"]
fn udp_datagrams_from_0_bytes_to_the_limit_come_back_byte_exact() {
    with_timeout(Duration::from_secs(300), || {
        let fw = Firmware::boot();
        let to = fw.addr();
        fw.ns.run(move || {
            let sock = UdpSocket::bind((HOST, 0)).unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
            let mut rng = Rng::new(7);
            let mut back = vec![0u8; 2048];
            for size in 0..=MAX_DATAGRAM {
                let datagram = rng.bytes(size);
                // The link is not lossy, but QEMU's receive FIFO may be full: retry.
                let echoed = (0..10).any(|_| {
                    sock.send_to(&datagram, to).unwrap();
                    matches!(sock.recv_from(&mut back), Ok((n, from)) if from == to && back[..n] == datagram[..])
                });
                assert!(echoed, "no byte-exact echo of a {size}-byte datagram");
            }
        });
        // The load generator's UDP ping-pong: every echo checked.
        let argv = loadgen_argv();
        let out = fw
            .ns
            .command(&argv[0])
            .args(&argv[1..])
            .args([
                "--udp",
                "--connect",
                FIRMWARE,
                "--conns",
                "4",
                "--size",
                "1472",
            ])
            .args(["--duration", "2", "--warmup", "0", "--json"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "bench --udp: {text}");
        let json: serde_json::Value = serde_json::from_str(&text).expect("bench --json");
        assert_eq!(json["mismatches"], 0, "{text}");
        assert!(json["messages"].as_u64().unwrap() > 0, "{text}");
    });
}

#[test]
#[ignore = "needs root, nftables, qemu-system-arm and the cross-built firmware: run by .ci/ports.sh"]
fn guarded_source_ports_get_nothing_back_and_others_are_served() {
    with_timeout(Duration::from_secs(300), || {
        let fw = Firmware::boot();
        let to = fw.addr();
        fw.ns.run(move || {
            // Echo, chargen, daytime, DNS: echoing to them could start a storm.
            for port in [7, 19, 13, 53] {
                let sock = UdpSocket::bind((HOST, port)).unwrap();
                sock.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                for _ in 0..3 {
                    sock.send_to(b"loop?", to).unwrap();
                }
                let mut buf = [0u8; 64];
                assert!(
                    sock.recv_from(&mut buf).is_err(),
                    "source port {port} got an echo"
                );
            }
            let sock = UdpSocket::bind((HOST, 0)).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            sock.send_to(b"fine", to).unwrap();
            let mut buf = [0u8; 64];
            let (n, _) = sock.recv_from(&mut buf).expect("an unguarded port's echo");
            assert_eq!(&buf[..n], b"fine");
        });
        assert!(
            fw.server()
                .wait_for_log("loop_guard: 12", Duration::from_secs(5)),
            "the firmware did not count 12 loop-guard drops: {}",
            udp_stats(&fw.log())
        );
    });
}

#[test]
#[ignore = "needs root, nftables, qemu-system-arm and the cross-built firmware: run by .ci/ports.sh"]
fn the_flood_guard_holds_one_source_and_serves_another() {
    with_timeout(Duration::from_secs(300), || {
        let fw = Firmware::boot();
        let to = fw.addr();
        let (echoed, elapsed) = fw.ns.run(move || {
            let flood = UdpSocket::bind((HOST, 0)).unwrap();
            flood.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 128];
            let mut echoed = 0u64;
            let start = Instant::now();
            // Small datagrams as fast as the link takes them: the firmware's datagram
            // budget (a burst of 64, then 256 a second, well below the pace at which
            // it can echo at all) is the limit, not the bytes.
            while start.elapsed() < Duration::from_secs(2) {
                for _ in 0..64 {
                    let _ = flood.send_to(&[0x55; 16], to);
                }
                while flood.recv_from(&mut buf).is_ok() {
                    echoed += 1;
                }
            }
            thread::sleep(Duration::from_millis(300));
            while flood.recv_from(&mut buf).is_ok() {
                echoed += 1;
            }
            // Another source is served while the first one is held back.
            let other = UdpSocket::bind((HOST, 0)).unwrap();
            other
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            other.send_to(b"another source", to).unwrap();
            let (n, _) = other.recv_from(&mut buf).expect("the other source's echo");
            assert_eq!(&buf[..n], b"another source");
            (echoed, start.elapsed())
        });
        // DATAGRAMS in ports/qemu-m4/server/src/udp_echo.rs.
        let limit = 64 + (256.0 * elapsed.as_secs_f64()) as u64;
        assert!(
            echoed <= limit,
            "{echoed} echoes to one source in {elapsed:?}: over the guard's {limit}"
        );
        let line = {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let line = udp_stats(&fw.log());
                if count(&line, "flood_guard") > 0 || Instant::now() > deadline {
                    break line;
                }
                thread::sleep(Duration::from_millis(100));
            }
        };
        assert!(
            count(&line, "flood_guard") > 0,
            "the flood guard never dropped ({echoed} echoed): {line}"
        );
        println!("flood: {echoed} echoed in {elapsed:?}; {line}");
    });
}

/// The loss matrix against the firmware: its 4 slots, streams that fit its pace.
const PLAN: Plan = Plan {
    pingpong_conns: 4,
    seconds: 3,
    streams: 4,
    stream_bytes: 100_000,
    many: 4,
};

fn firmware_at(loss: u8) {
    with_timeout(Duration::from_secs(900), move || {
        let fw = Firmware::boot();
        // Inbound: frames from the firmware; outbound: to it. The kernel is only ever the
        // client here, so a drop on output (which it sees as an error) costs it a
        // retransmission and nothing else (see Netns::set_loss).
        fw.ns.set_loss(loss, loss);
        fw.ns.syn_retries(8);
        let figures = matrix::run(&fw.ns, fw.addr(), PLAN);
        println!(
            "firmware at {loss} % loss each way: {:.0} messages/s, p99 {:.0} µs",
            figures.messages_per_sec, figures.p99_us
        );
    });
}

#[test]
#[ignore = "needs root, nftables, qemu-system-arm and the cross-built firmware: run by .ci/ports.sh"]
fn at_5_percent_loss_each_way_the_firmware_echoes_every_byte() {
    firmware_at(5);
}

#[test]
#[ignore = "needs root, nftables, qemu-system-arm; minutes long: run by hand for docs/reliability.md"]
fn at_1_percent_loss_each_way_the_firmware_echoes_every_byte() {
    firmware_at(1);
}

#[test]
#[ignore = "needs root, nftables, qemu-system-arm; minutes long: run by hand for docs/reliability.md"]
fn at_20_percent_loss_each_way_the_firmware_echoes_every_byte() {
    firmware_at(20);
}

#[test]
#[ignore = "needs root, nftables, qemu-system-arm and the cross-built firmware: run by .ci/ports.sh"]
fn through_the_impaired_wire_the_firmware_echoes_every_byte() {
    let imp = Impairment::ci();
    let seed = imp.seed;
    with_timeout(Duration::from_secs(900), move || {
        let dir = std::env::temp_dir().join(format!("echoloop-wire-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let wire_dir = dir.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let (fw, _) = Firmware::boot_with(move |name| {
            // The wire attaches to the TAP that `serve` makes; start it once that exists.
            let name = name.to_owned();
            let dir = wire_dir.clone();
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !std::path::Path::new(&format!("/run/netns/{name}")).exists()
                    || !Command::new("ip")
                        .args(["-n", &name, "link", "show", "tap0"])
                        .output()
                        .is_ok_and(|o| o.status.success())
                {
                    assert!(Instant::now() < deadline, "serve never made its TAP");
                    thread::sleep(Duration::from_millis(50));
                }
                let wire = Wire::start(
                    imp,
                    &format!(
                        "unix:{}:{}",
                        dir.join("wire.sock").display(),
                        dir.join("qemu.sock").display()
                    ),
                    &format!("tap:{name}:tap0"),
                );
                let _ = tx.send(wire);
            });
            Some(wire_dir)
        });
        let wire = rx.recv_timeout(Duration::from_secs(10)).expect("the wire");
        println!("wire seed {seed} (ECHOLOOP_WIRE_SEED={seed} replays it): {imp:?}");
        let figures = matrix::run(&fw.ns, fw.addr(), PLAN);
        drop(fw);
        let report = wire.stop();
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "firmware through the wire: {:.0} messages/s, p99 {:.0} µs; {report}",
            figures.messages_per_sec, figures.p99_us
        );
        for what in ["dropped", "duplicated", "held back"] {
            assert!(
                report.split(';').all(|side| side
                    .split(',')
                    .find(|f| f.contains(what))
                    .and_then(|f| f.split_whitespace().next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n > 0)),
                "the wire did not impair both ways ({what}): {report}"
            );
        }
    });
}

/// What became of one client of the burst (printed with `Debug` when a test fails).
#[derive(Debug)]
#[allow(dead_code)]
enum Outcome {
    Served(Duration),
    Refused,
    Reset,
    Failed(String),
}

#[test]
#[ignore = "needs root, nftables, qemu-system-arm and the cross-built firmware: run by .ci/ports.sh"]
fn a_burst_of_64_connects_on_4_slots_is_served_in_full_without_a_reset() {
    with_timeout(Duration::from_secs(600), || {
        let fw = Firmware::boot();
        fw.ns.syn_retries(8);
        let to = fw.addr();
        let start = Arc::new(Barrier::new(64));
        let clients: Vec<_> = (0..64u64)
            .map(|i| {
                let start = Arc::clone(&start);
                fw.ns.spawn(move || {
                    let msg = Rng::new(1000 + i).bytes(1000);
                    start.wait();
                    let began = Instant::now();
                    let outcome = (|| -> std::io::Result<Outcome> {
                        let mut sock = TcpStream::connect(to)?;
                        sock.set_read_timeout(Some(Duration::from_secs(120)))?;
                        sock.write_all(&msg)?;
                        sock.shutdown(Shutdown::Write)?;
                        let mut back = Vec::new();
                        sock.read_to_end(&mut back)?;
                        Ok(if back == msg {
                            Outcome::Served(began.elapsed())
                        } else {
                            Outcome::Failed(format!("{} bytes back, not the 1000 sent", back.len()))
                        })
                    })();
                    match outcome {
                        Ok(o) => o,
                        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Outcome::Refused,
                        Err(e) if e.kind() == ErrorKind::ConnectionReset => Outcome::Reset,
                        Err(e) => Outcome::Failed(e.to_string()),
                    }
                })
            })
            .collect();
        let outcomes: Vec<Outcome> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        let waits: Vec<Duration> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Served(d) => Some(*d),
                _ => None,
            })
            .collect();
        let bad: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| !matches!(o, Outcome::Served(_)))
            .collect();
        assert!(bad.is_empty(), "{} of 64 not served: {bad:?}", bad.len());
        let longest = waits.iter().max().unwrap();
        let line = {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let log = fw.log();
                let line = log
                    .lines()
                    .rev()
                    .find(|l| l.contains("backlog:"))
                    .map(str::to_owned);
                if line.is_some() || Instant::now() > deadline {
                    break line.unwrap_or_default();
                }
                thread::sleep(Duration::from_millis(100));
            }
        };
        println!("burst: 64 of 64 served byte-exact, 0 refused, 0 reset; longest wait {longest:?}; {line}");
        assert!(
            count(&line, "held") > 0,
            "no SYN was held: the burst never exceeded the slots ({line})"
        );
    });
}
