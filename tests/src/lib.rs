//! Shared helpers of the end-to-end tests (in `tests/tests/`): the real `echoloop` and
//! `echoloop-bench` binaries, a server child process that is always killed, and the socket
//! tricks the tests need.
#![deny(missing_docs)]
#![deny(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub mod matrix;
pub mod netns;
#[allow(unsafe_code)]
pub mod sock;
pub mod wire;

/// The `echoloop` binary, built once per test process by escargot with the same cargo
/// and profile as the tests, so `cargo test --workspace` from a clean target directory
/// finds it.
pub fn echoloop_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build("echoloop", "echoloop")).clone()
}

/// The load generator's binary, `echoloop-bench`, built as [`echoloop_bin`] is.
pub fn bench_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build("echoloop-bench", "echoloop-bench"))
        .clone()
}

/// Builds `bin` of `package` in this workspace with the tests' profile; returns its path.
fn build(package: &str, bin: &str) -> PathBuf {
    escargot::CargoBuild::new()
        .manifest_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .package(package)
        .bin(bin)
        .current_release()
        .run()
        .unwrap_or_else(|e| panic!("building the {bin} binary: {e}"))
        .path()
        .to_path_buf()
}

/// The `echoloop-docs` binary (completions and man pages), built as [`echoloop_bin`] is,
/// into the same directory: `echoloop completions` and `echoloop man` run it from there.
pub fn echoloop_docs_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build("echoloop", "echoloop-docs"))
        .clone()
}

/// The readiness backend every server the tests start runs with: `ECHOLOOP_POLLER`
/// (`select`, `epoll`), or the server's default when unset or empty. The whole suite runs
/// on either: `ECHOLOOP_POLLER=epoll cargo test -p echoloop-tests`.
pub fn poller() -> Option<String> {
    std::env::var("ECHOLOOP_POLLER")
        .ok()
        .filter(|p| !p.is_empty())
}

/// `--poller P` as the tests' servers take it, if [`poller`] names one.
fn poller_args() -> Vec<String> {
    poller()
        .map(|p| vec!["--poller".to_string(), p])
        .unwrap_or_default()
}

/// The load generator's command line up to its flags (`--connect ADDR ...` follow): the one
/// place that knows which binary (and subcommand, if any) it is.
pub fn loadgen_argv() -> Vec<std::ffi::OsString> {
    vec![bench_bin().into_os_string()]
}

/// The server processes and network namespaces a test body started, so that a timed-out
/// test can kill and delete them: its thread is left running, and would never drop them.
type Owned = Arc<Mutex<Resources>>;

#[derive(Default)]
struct Resources {
    children: Vec<Arc<Mutex<Child>>>,
    netns: Vec<String>,
}

thread_local! {
    static OWNED: std::cell::RefCell<Option<Owned>> = const { std::cell::RefCell::new(None) };
}

/// Runs `body` on its own thread and fails the test if it takes longer than `limit`,
/// killing every server the body started.
pub fn with_timeout<T: Send + 'static>(
    limit: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let owned = Owned::default();
    let (tx, rx) = mpsc::channel();
    let for_body = Arc::clone(&owned);
    let worker = thread::spawn(move || {
        OWNED.with(|o| *o.borrow_mut() = Some(for_body));
        let _ = tx.send(body());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => value,
        // The body panicked: report its panic.
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("test body ended without a result"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            let owned = owned.lock().unwrap();
            for child in &owned.children {
                if let Ok(mut child) = child.lock() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            for name in &owned.netns {
                netns::delete(name);
            }
            panic!("test timed out after {limit:?}")
        }
    }
}

/// Records a namespace the current test body made, for [`with_timeout`] to delete.
fn own_netns(name: &str) {
    OWNED.with(|o| {
        if let Some(owned) = &*o.borrow() {
            owned.lock().unwrap().netns.push(name.to_owned());
        }
    });
}

/// Forgets a namespace deleted by its owner.
fn disown_netns(name: &str) {
    OWNED.with(|o| {
        if let Some(owned) = &*o.borrow() {
            owned.lock().unwrap().netns.retain(|n| n != name);
        }
    });
}

/// A running `echoloop serve`: killed by PID when dropped or when its deadline passes,
/// whatever the test does.
pub struct Server {
    child: Arc<Mutex<Child>>,
    pid: u32,
    /// The first address it printed.
    pub addr: SocketAddr,
    /// Every TCP address it printed, in order.
    pub addrs: Vec<SocketAddr>,
    /// Every UDP address it printed (`listening on udp ...`), in order.
    pub udp: Vec<SocketAddr>,
    stderr: Arc<Mutex<String>>,
    stop_watchdog: Option<mpsc::Sender<()>>,
}

impl Server {
    /// `echoloop serve --listen 127.0.0.1:0` plus `args`.
    pub fn start(args: &[&str]) -> Server {
        let mut cmd = Command::new(echoloop_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
        Server::spawn(cmd, 1)
    }

    /// `echoloop serve --listen 127.0.0.1:0 args` run through `sh -c 'setup; exec ...'`, so
    /// that `setup` (say, `ulimit -n 64`) applies to the server and the PID is the server's.
    pub fn start_in_shell(shell: &str, setup: &str, args: &str) -> Server {
        let bin = echoloop_bin();
        let script = format!(
            "{setup}\nexec '{}' serve --listen 127.0.0.1:0 {} {args}",
            bin.display(),
            poller_args().join(" ")
        );
        let mut cmd = Command::new(shell);
        cmd.arg("-c").arg(script);
        Server::spawn(cmd, 1)
    }

    /// `echoloop serve --listen 127.0.0.1:0 --udp ADDR...` plus `args`.
    pub fn start_udp(udp: &[&str], args: &[&str]) -> Server {
        let mut cmd = Command::new(echoloop_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        for addr in udp {
            cmd.args(["--udp", addr]);
        }
        cmd.args(args);
        Server::spawn(cmd, 1 + udp.len())
    }

    /// Spawns `cmd` (which must run `echoloop serve`) and waits for its `listening on` lines
    /// (`listeners` of them, TCP and UDP).
    /// A watchdog kills it after 240 s.
    pub fn spawn(cmd: Command, listeners: usize) -> Server {
        Server::spawn_for(cmd, listeners, Duration::from_secs(240))
    }

    /// As [`Server::spawn`], with the watchdog at `limit` (the soak runs for minutes).
    pub fn spawn_for(cmd: Command, listeners: usize, limit: Duration) -> Server {
        Server::spawn_with_stdin(cmd, listeners, limit, Stdio::null())
    }

    /// As [`Server::spawn_for`], with `stdin` as the server's standard input (a socket
    /// handed over, for socket activation through a shell).
    pub fn spawn_with_stdin(
        mut cmd: Command,
        listeners: usize,
        limit: Duration,
        stdin: Stdio,
    ) -> Server {
        // An `echoloop serve` (any build: the memory test serves from the release one)
        // without `--poller` gets the one [`poller`] names.
        let echoloop = std::path::Path::new(cmd.get_program())
            .file_name()
            .is_some_and(|name| name == "echoloop");
        let serves = echoloop
            && cmd.get_args().next().is_some_and(|a| a == "serve")
            && !cmd.get_args().any(|a| a == "--poller");
        if serves {
            cmd.args(poller_args());
        }
        cmd.stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawning echoloop serve");
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let child = Arc::new(Mutex::new(child));
        OWNED.with(|o| {
            if let Some(owned) = &*o.borrow() {
                owned.lock().unwrap().children.push(Arc::clone(&child));
            }
        });
        let stop_watchdog = Some(watchdog(Arc::clone(&child), limit));
        let log = collect(stderr);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut addrs, mut udp) = (Vec::new(), Vec::new());
        while addrs.len() + udp.len() < listeners {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    panic!("no 'listening on' line; stderr:\n{}", log.lock().unwrap())
                });
            let addr = line
                .strip_prefix("listening on ")
                .unwrap_or_else(|| panic!("unexpected line {line:?}"));
            match addr.strip_prefix("udp ") {
                Some(addr) => udp.push(addr.parse().expect("UDP address")),
                None => addrs.push(addr.parse().expect("listening address")),
            }
        }
        Server {
            child,
            pid,
            addr: addrs[0],
            addrs,
            udp,
            stderr: log,
            stop_watchdog,
        }
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the server's stderr contains `needle`, up to `limit`.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.stderr().contains(needle) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// True while the process has not exited.
    pub fn is_running(&self) -> bool {
        matches!(self.child.lock().unwrap().try_wait(), Ok(None))
    }

    /// Sends `signal` (say `libc::SIGTERM`) to the server.
    pub fn signal(&self, signal: i32) {
        if self.is_running() {
            sock::kill(self.pid, signal);
        }
    }

    /// Waits for the server to exit, up to `limit`; `None` if it did not.
    pub fn wait(&self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.lock().unwrap().try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// User plus system CPU time used so far, from `/proc/PID/stat`, in clock ticks
    /// (100 per second on Linux).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// Resident memory in KiB, from `/proc/PID/status`.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stop_watchdog.take());
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Kills the child if it is still running at `limit`, unless told to stop first.
fn watchdog(child: Arc<Mutex<Child>>, limit: Duration) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            if let Ok(mut child) = child.lock() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    });
    tx
}

/// Collects a pipe's text on a thread, so the child never blocks writing its logs.
fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

/// A connected socket with generous read and write timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    sock.set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    sock
}

/// Sends `msg` and reads back exactly as many bytes; they must be the same.
pub fn roundtrip(sock: &mut TcpStream, msg: &[u8]) {
    sock.write_all(msg).expect("send");
    let mut back = vec![0u8; msg.len()];
    sock.read_exact(&mut back).expect("echo");
    assert_eq!(back, msg, "echo differs");
}

/// Reads until EOF; the error if the connection failed instead.
pub fn read_to_end(sock: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut all = Vec::new();
    sock.read_to_end(&mut all).map(|_| all)
}

/// A small deterministic generator (xorshift64*), so every stream is different and
/// reproducible without a dependency.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// Fills `out` with bytes `offset..offset + out.len()` of pseudo-random stream `seed`: any
/// part of a stream can be regenerated to check it, without keeping the stream in memory.
pub fn fill_stream(seed: u64, offset: usize, out: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < out.len() {
        let block = (pos / 8) as u64;
        let word = splitmix64(seed.wrapping_mul(0x1000_0000_01B3) ^ block).to_le_bytes();
        let from = pos % 8;
        let n = (8 - from).min(out.len() - i);
        out[i..i + n].copy_from_slice(&word[from..from + n]);
        i += n;
        pos += n;
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Sends `size` bytes of stream `seed` in random-sized pieces (1 byte to 64 KiB), then
/// half-closes.
pub fn send_stream(sock: &mut TcpStream, seed: u64, size: usize) {
    let mut sizes = Rng::new(seed ^ 0x5EED);
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0;
    while offset < size {
        let n = sizes.range(1, buf.len()).min(size - offset);
        fill_stream(seed, offset, &mut buf[..n]);
        sock.write_all(&buf[..n])
            .unwrap_or_else(|e| panic!("stream {seed}: send at {offset}: {e}"));
        offset += n;
    }
    sock.shutdown(std::net::Shutdown::Write).unwrap();
}

/// Reads until EOF, checking every byte against stream `seed`; returns how many came.
pub fn check_stream(sock: &mut TcpStream, seed: u64) -> usize {
    let mut buf = vec![0u8; 64 * 1024];
    let mut want = vec![0u8; 64 * 1024];
    let mut offset = 0;
    loop {
        let n = sock
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("stream {seed}: receive at {offset}: {e}"));
        if n == 0 {
            return offset;
        }
        fill_stream(seed, offset, &mut want[..n]);
        if buf[..n] != want[..n] {
            let at = buf[..n]
                .iter()
                .zip(&want[..n])
                .take_while(|(a, b)| a == b)
                .count();
            panic!("stream {seed}: echo differs at byte {}", offset + at);
        }
        offset += n;
    }
}

/// One client streaming `size` bytes of stream `seed` and checking the whole echo and EOF.
pub fn echo_stream(addr: SocketAddr, seed: u64, size: usize) {
    let sock = connect(addr);
    echo_stream_on(sock, seed, size);
}

/// [`echo_stream`] on an already connected socket.
pub fn echo_stream_on(sock: TcpStream, seed: u64, size: usize) {
    let mut writer = sock.try_clone().unwrap();
    let sender = thread::spawn(move || send_stream(&mut writer, seed, size));
    let mut reader = sock;
    let got = check_stream(&mut reader, seed);
    sender.join().unwrap();
    assert_eq!(got, size, "stream {seed}: echo length");
}
