//! The firmwares serve the host: each `ports/qemu-*/serve` boots its echo server under QEMU
//! on QEMU's user network (`restrict=on`), and the host's own tools (`echoloop client`,
//! `echoloop-bench`) and raw sockets talk to it through 127.0.0.1. One harness, every test
//! run against each firmware ([`M4`]: Cortex-M4 with a LAN9118, [`RISCV`]: riscv32 with
//! virtio-net), as `m4::<test>` and `riscv::<test>`.
//!
//! UDP is not among them: QEMU's restricted user network drops every datagram the guest
//! sends, so the UDP echo is checked by the Cortex-M4 loopback self-test instead.
//!
//! They need QEMU, the firmwares' targets and `defmt-print` (the firmware's log tells them
//! its slot count), so `cargo test --workspace` skips them and `.ci/ports.sh` runs them
//! (`cargo test -p echoloop-tests --test firmware -- --ignored m4::` and `riscv::`), where
//! a firmware that does not work fails them.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use echoloop_tests::sock::set_linger_zero;
use echoloop_tests::{
    bench_bin, connect, echo_stream, echo_stream_on, echoloop_bin, roundtrip, with_timeout, Rng,
    Server,
};

/// An echo server firmware, and how to build and serve it.
struct Firmware {
    /// Its cargo workspace, from the repository's root; `serve` is there too.
    dir: &'static str,
    /// Its package.
    package: &'static str,
    built: OnceLock<()>,
}

/// The Cortex-M4 server on QEMU's `mps2-an386`, over its LAN9118.
static M4: Firmware = Firmware {
    dir: "ports/qemu-m4",
    package: "echoloop-m4-server",
    built: OnceLock::new(),
};

/// The riscv32 server on QEMU's `virt`, over virtio-net.
static RISCV: Firmware = Firmware {
    dir: "ports/qemu-riscv",
    package: "echoloop-riscv-server",
    built: OnceLock::new(),
};

/// Each test below, once per firmware: `m4::<test>` and `riscv::<test>`.
macro_rules! on_every_firmware {
    ($($test:ident),* $(,)?) => {
        mod m4 {
            $(
                #[test]
                #[ignore = "needs QEMU and the cross-built firmware: run by .ci/ports.sh"]
                fn $test() {
                    super::$test(&super::M4);
                }
            )*
        }
        mod riscv {
            $(
                #[test]
                #[ignore = "needs QEMU and the cross-built firmware: run by .ci/ports.sh"]
                fn $test() {
                    super::$test(&super::RISCV);
                }
            )*
        }
    };
}

on_every_firmware!(
    the_seeds_client_gets_every_message_back,
    bench_pingpong_on_every_slot_checks_every_byte,
    bench_stream_on_every_slot_checks_every_byte,
    half_close_gets_the_whole_echo_then_eof,
    a_reset_mid_stream_closes_only_that_connection_and_frees_its_slot,
    more_clients_than_slots_are_refused_or_wait_never_corrupted,
    a_client_that_never_reads_does_not_stop_the_others,
);

impl Firmware {
    fn dir(&self) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(self.dir)
    }

    /// Builds the firmware once per test process, so that `serve`'s own build is a no-op
    /// and its start-up fits the harness's wait for the `listening on` line.
    fn build(&self) {
        self.built.get_or_init(|| {
            let status = Command::new("cargo")
                .current_dir(self.dir())
                .args(["build", "--release", "--locked", "-p", self.package])
                .status()
                .expect("running cargo for the firmware");
            assert!(status.success(), "{} did not build", self.package);
        });
    }

    /// The firmware under QEMU, through `serve`: QEMU takes over the script's PID, so the
    /// harness's kill stops it.
    fn boot(&self) -> Server {
        self.build();
        let mut cmd = Command::new(self.dir().join("serve"));
        cmd.arg(free_port().to_string());
        let fw = Server::spawn(cmd, 1);
        // `serve` announces the port once its probe connection was echoed; wait until the
        // firmware has closed that probe too, or its slot may still be taken when a test
        // opens every slot at once (and the last client would be refused).
        assert!(
            fw.wait_for_log("closed ConnId", Duration::from_secs(30)),
            "the firmware never closed serve's probe: {}",
            fw.stderr()
        );
        fw
    }
}

/// A TCP port of 127.0.0.1 nobody uses just now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The firmware's connection slots, from its start-up log line `echo: N connections x ...`.
fn slots(server: &Server) -> usize {
    assert!(
        server.wait_for_log("connections x", Duration::from_secs(10)),
        "no start-up line in the firmware's log (is defmt-print installed?):\n{}",
        server.stderr()
    );
    let log = server.stderr();
    let line = log.lines().find(|l| l.contains("connections x")).unwrap();
    let n = line
        .split("echo: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the slot count from {line:?}"));
    assert!(
        n >= 2,
        "these tests need 2 slots or more, the firmware has {n}"
    );
    n
}

fn run(bin: PathBuf, args: &[&str]) -> Output {
    Command::new(&bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()))
}

/// The load generator with `args`: the one place that says how it is invoked.
fn run_bench(args: &[&str]) -> Output {
    run(bench_bin(), args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn the_seeds_client_gets_every_message_back(firmware: &'static Firmware) {
    with_timeout(Duration::from_secs(180), move || {
        let fw = firmware.boot();
        let addr = fw.addr.to_string();
        let out = run(
            echoloop_bin(),
            &["client", "--connect", &addr, "--timeout", "30"],
        );
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "client failed: {stdout}{}",
            text(&out.stderr)
        );
        assert_eq!(
            stdout.matches("echo matches (58 bytes)").count(),
            2,
            "{stdout}"
        );
    });
}

/// `echoloop-bench` against every slot at once; it checks each echoed byte and exits 0
/// only if all matched.
fn bench(firmware: &'static Firmware, mode: &'static str, size: &'static str) {
    with_timeout(Duration::from_secs(180), move || {
        let fw = firmware.boot();
        let conns = slots(&fw).to_string();
        let addr = fw.addr.to_string();
        let out = run_bench(&[
            "--connect",
            &addr,
            "--mode",
            mode,
            "--conns",
            &conns,
            "--size",
            size,
            "--duration",
            "3",
            "--warmup",
            "1",
            "--timeout",
            "10",
        ]);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "bench failed: {stdout}{}",
            text(&out.stderr)
        );
        assert!(
            stdout.contains("0 connect failures, 0 resets, 0 mismatches"),
            "{stdout}"
        );
        assert!(!stdout.contains("throughput: 0 messages/s"), "{stdout}");
    });
}

fn bench_pingpong_on_every_slot_checks_every_byte(firmware: &'static Firmware) {
    bench(firmware, "pingpong", "64");
}

fn bench_stream_on_every_slot_checks_every_byte(firmware: &'static Firmware) {
    bench(firmware, "stream", "16384");
}

fn half_close_gets_the_whole_echo_then_eof(firmware: &'static Firmware) {
    with_timeout(Duration::from_secs(180), move || {
        let fw = firmware.boot();
        // Larger than the core's queue and the socket buffers: backpressure on the way.
        echo_stream(fw.addr, 1, 200_000);
        assert!(
            fw.wait_for_log("PeerClosed", Duration::from_secs(10)),
            "{}",
            fw.stderr()
        );
    });
}

fn a_reset_mid_stream_closes_only_that_connection_and_frees_its_slot(firmware: &'static Firmware) {
    with_timeout(Duration::from_secs(180), move || {
        let fw = firmware.boot();
        let slots = slots(&fw);
        let addr = fw.addr;
        let steady = thread::spawn(move || echo_stream(addr, 2, 300_000));
        // Push a stream without reading its echo, then reset.
        let mut vandal = connect(addr);
        roundtrip(&mut vandal, b"before the reset");
        let junk = Rng::new(3).bytes(20_000);
        vandal.write_all(&junk).unwrap();
        set_linger_zero(&vandal);
        drop(vandal);
        assert!(
            fw.wait_for_log("Error(Reset)", Duration::from_secs(20)),
            "{}",
            fw.stderr()
        );
        steady.join().unwrap();
        // Every slot serves again, the reset one included.
        let mut all: Vec<TcpStream> = (0..slots).map(|_| connect(addr)).collect();
        for (i, sock) in all.iter_mut().enumerate() {
            roundtrip(sock, format!("slot {i} after the reset").as_bytes());
        }
    });
}

fn more_clients_than_slots_are_refused_or_wait_never_corrupted(firmware: &'static Firmware) {
    with_timeout(Duration::from_secs(180), move || {
        let fw = firmware.boot();
        let slots = slots(&fw);
        let mut held: Vec<TcpStream> = (0..slots).map(|_| connect(fw.addr)).collect();
        for (i, sock) in held.iter_mut().enumerate() {
            roundtrip(sock, format!("held {i}").as_bytes());
        }
        // QEMU accepts on the host side, then tries the firmware, which has no listener
        // left: the extra client must see its connection end with nothing echoed, or (if it
        // waits) get its echo only once a slot is free.
        let mut extra = connect(fw.addr);
        let msg = b"one client too many";
        let _ = extra.write_all(msg);
        extra
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        let waited = loop {
            match extra.read(&mut buf) {
                Ok(0) => break false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break true
                }
                Err(_) => break false, // reset: refused
            }
        };
        assert!(
            got.is_empty(),
            "served beyond its {slots} slots: {:?}",
            text(&got)
        );
        // The held ones were not disturbed.
        for (i, sock) in held.iter_mut().enumerate() {
            roundtrip(sock, format!("still held {i}").as_bytes());
        }
        // Free a slot: a waiting client gets its echo now, or a new one is served.
        drop(held.pop());
        if waited {
            extra
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let mut back = vec![0; msg.len()];
            extra
                .read_exact(&mut back)
                .expect("the waiting client's echo");
            assert_eq!(&back, msg);
        } else {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut fresh = loop {
                let mut sock = connect(fw.addr);
                sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                if sock.write_all(b"ping").is_ok() {
                    let mut back = [0u8; 4];
                    match sock.read_exact(&mut back) {
                        Ok(()) => {
                            assert_eq!(&back, b"ping");
                            break sock;
                        }
                        Err(_) => assert!(Instant::now() < deadline, "the freed slot never served"),
                    }
                }
                thread::sleep(Duration::from_millis(200));
            };
            roundtrip(&mut fresh, b"served once a slot was free");
        }
    });
}

fn a_client_that_never_reads_does_not_stop_the_others(firmware: &'static Firmware) {
    with_timeout(Duration::from_secs(180), move || {
        let fw = firmware.boot();
        let slots = slots(&fw);
        // Writes until every buffer on the way is full, and never reads.
        let stuck = connect(fw.addr);
        stuck.set_nonblocking(true).unwrap();
        let junk = Rng::new(4).bytes(64 * 1024);
        let mut pushed = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match (&stuck).write(&junk) {
                Ok(n) => pushed += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(200));
                    if (&stuck).write(&junk).is_err() {
                        break;
                    }
                }
                Err(e) => panic!("the stuck client's connection failed: {e}"),
            }
        }
        assert!(pushed > 0);
        // The other slots each stream and check their whole echo meanwhile.
        let addr = fw.addr;
        let others: Vec<_> = (0..slots - 1)
            .map(|i| {
                let sock = connect(addr);
                thread::spawn(move || echo_stream_on(sock, 10 + i as u64, 100_000))
            })
            .collect();
        for other in others {
            other.join().unwrap();
        }
        stuck.shutdown(Shutdown::Both).ok();
    });
}
