//! What the real server costs in memory: idle, at its peak, and per idle connection.
//!
//! The figures are the ones docs/capacity.md promises: an idle server holds at most
//! 2.75 MiB resident and has never peaked above 3 MiB (VmHWM), and ten thousand idle
//! connections that have each echoed a message add at most 250 bytes each, since a
//! connection holds a buffer only while bytes wait in it. The idle bounds are the glibc
//! build's measured figure plus a margin for how much of libc.so the kernel maps around
//! each fault, which varies by about 100 KiB from run to run.
//!
//! Measured on the release binary, as shipped: a debug build's code (2.6 MiB, resident in
//! full, being in the page cache) and libc's are well over the budget.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::Duration;

use echoloop_tests::{connect, roundtrip, sock, with_timeout, Server};

/// The release build of `echoloop`, built by escargot like the harness's debug one.
fn release_bin() -> PathBuf {
    escargot::CargoBuild::new()
        .manifest_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .package("echoloop")
        .bin("echoloop")
        .release()
        .run()
        .unwrap_or_else(|e| panic!("building the release echoloop: {e}"))
        .path()
        .to_path_buf()
}

const CONNS: usize = 10_000;
const IDLE_RSS_KIB: u64 = 2816;
const PEAK_KIB: u64 = 3 * 1024;
const PER_CONN_BYTES: u64 = 250;

/// A `/proc/PID/status` field in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn idle_server_and_idle_connections_cost_what_the_docs_say() {
    let want = (CONNS + 64) as libc::rlim_t;
    let soft = sock::raise_nofile(want).expect("setrlimit");
    if soft < want {
        eprintln!("skipped: the hard RLIMIT_NOFILE allows {soft} descriptors, {want} needed");
        return;
    }
    let bin = release_bin();
    with_timeout(Duration::from_secs(300), move || {
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--max-conns", "10000"]);
        let server = Server::spawn(cmd, 1);
        // One connection served and gone, so start-up and first-use costs are in.
        roundtrip(&mut connect(server.addr), &[7u8; 64]);
        thread::sleep(Duration::from_millis(300));
        let pid = server.pid();
        let idle = status_kib(pid, "VmRSS:");
        assert!(
            idle <= IDLE_RSS_KIB,
            "idle RSS {idle} KiB > {IDLE_RSS_KIB} KiB"
        );
        // The peak so far: start-up builds nothing large on the stack or in touched memory.
        let peak = status_kib(pid, "VmHWM:");
        assert!(peak <= PEAK_KIB, "idle VmHWM {peak} KiB > {PEAK_KIB} KiB");

        let socks: Vec<TcpStream> = (0..CONNS)
            .map(|i| {
                let mut sock = connect(server.addr);
                let mut msg = [0u8; 64];
                msg[..8].copy_from_slice(&(i as u64).to_le_bytes());
                roundtrip(&mut sock, &msg);
                sock
            })
            .collect();
        thread::sleep(Duration::from_millis(300));
        let loaded = status_kib(pid, "VmRSS:");
        let per_conn = loaded.saturating_sub(idle) * 1024 / CONNS as u64;
        eprintln!("idle {idle} KiB, with {CONNS} idle connections {loaded} KiB: {per_conn} B each");
        assert!(
            per_conn <= PER_CONN_BYTES,
            "{per_conn} B per idle connection > {PER_CONN_BYTES} B (idle {idle} KiB, loaded {loaded} KiB)"
        );
        drop(socks);
        assert!(server.is_running());
    });
}
