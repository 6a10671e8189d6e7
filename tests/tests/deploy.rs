//! Deploying like a service (docs/deployment.md): socket activation, `NOTIFY_SOCKET`,
//! `serve --inetd`, the unit files, completions and man pages.
//!
//! The tests that need systemd's tools (`systemd-socket-activate`, `systemd-analyze`, in
//! Debian's `systemd` package, absent from a fresh machine) are `#[ignore]`d in the plain
//! `cargo test --workspace`; `.ci/run` installs the package and runs them with
//! `--include-ignored`. The others hand sockets over through a shell (`exec 3<&0`), which
//! is all socket activation is.
#![cfg(target_os = "linux")]

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use echoloop_tests::{
    bench_bin, connect, echoloop_bin, echoloop_docs_bin, read_to_end, roundtrip, with_timeout, Rng,
    Server,
};

const LIMIT: Duration = Duration::from_secs(120);

/// The load generator, over TCP or (`--udp`) UDP, briefly, with its JSON report.
fn load(addr: SocketAddr, udp: bool) -> Output {
    let mut cmd = Command::new(bench_bin());
    cmd.args(["--connect", &addr.to_string(), "--json"]).args([
        "--conns",
        "4",
        "--duration",
        "1",
        "--warmup",
        "0",
    ]);
    if udp {
        cmd.arg("--udp");
    }
    cmd.output().expect("running the load generator")
}

/// `load`, and that it checked every echo and found them all equal.
fn load_is_byte_exact(addr: SocketAddr, udp: bool) {
    let out = load(addr, udp);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "load generator on {addr} (udp {udp}) failed: {json}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(json.contains("\"mismatches\":0"), "{json}");
}

/// `echoloop client` (the seed's messages, checked byte for byte) succeeds on `addr`.
fn client_is_byte_exact(addr: SocketAddr, udp: bool) {
    let mut cmd = Command::new(echoloop_bin());
    cmd.args(["client", "--connect", &addr.to_string()]);
    if udp {
        cmd.arg("--udp");
    }
    let out = cmd.output().expect("running echoloop client");
    assert!(
        out.status.success(),
        "echoloop client on {addr} (udp {udp}):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A loopback port no socket holds now (the kernel's choice for port 0, released).
fn free_port(udp: bool) -> u16 {
    if udp {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

/// A path for a test's own socket, removed first.
fn temp_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("echoloop-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// `echoloop serve ARGS` with `handed` as descriptor 3 and the activation variables
/// naming the server's own PID, through `sh` (whose `exec` keeps its PID): `vars` are
/// `LISTEN_FDS` and the rest, `LISTEN_PID` is added.
fn activated(handed: OwnedFd, vars: &str, args: &str) -> (Command, Stdio) {
    let script = format!(
        "exec 3<&0 0</dev/null\nexport LISTEN_PID=$$ {vars}\nexec '{}' serve {args}",
        echoloop_bin().display()
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script);
    (cmd, Stdio::from(handed))
}

/// Runs an activation that must be refused: exit 2 and one line on stderr containing
/// `expect`, nothing on stdout.
fn refused(handed: OwnedFd, vars: &str, expect: &str) {
    let (mut cmd, stdin) = activated(handed, vars, "");
    let out = cmd.stdin(stdin).output().expect("running echoloop serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{vars}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{vars}: one line: {stderr}");
    assert!(
        stderr.starts_with("echoloop: socket activation: "),
        "{stderr}"
    );
    assert!(stderr.contains(expect), "{vars}: {stderr}");
    assert!(out.stdout.is_empty(), "{vars}: nothing listened on");
}

#[test]
fn bad_activation_is_refused_with_one_line() {
    with_timeout(LIMIT, || {
        let udp = || OwnedFd::from(UdpSocket::bind("127.0.0.1:0").unwrap());
        let tcp = || OwnedFd::from(TcpListener::bind("127.0.0.1:0").unwrap());
        refused(
            udp(),
            "LISTEN_FDS=1 LISTEN_FDNAMES=tcp",
            "descriptor 3 (tcp) is a UDP socket on 127.0.0.1:",
        );
        // A connection, not a listener (what Accept=yes hands over without --inetd).
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conn = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        refused(conn.into(), "LISTEN_FDS=1", "that is not listening");
        refused(
            tcp(),
            "LISTEN_FDS=2",
            "LISTEN_FDS=2 but descriptor 4 is not open",
        );
        // The notification socket is opened after activation took its descriptors: it
        // must not be mistaken for descriptor 4.
        refused(
            tcp(),
            "LISTEN_FDS=2 NOTIFY_SOCKET=/nonexistent/notify",
            "LISTEN_FDS=2 but descriptor 4 is not open",
        );
        refused(
            tcp(),
            "LISTEN_FDS=1 LISTEN_PID=1",
            "LISTEN_PID=1 is another process",
        );
        refused(
            tcp(),
            "LISTEN_FDS=1 LISTEN_FDNAMES=tcp:udp",
            "LISTEN_FDNAMES names 2 descriptors, LISTEN_FDS=1",
        );
    });
}

#[test]
fn an_activated_listener_is_served_instead_of_the_default_address() {
    with_timeout(LIMIT, || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (cmd, stdin) = activated(listener.into(), "LISTEN_FDS=1", "");
        let server = Server::spawn_with_stdin(cmd, 1, LIMIT, stdin);
        assert_eq!(server.addrs, [addr], "only the activated socket, not 8090");
        let mut sock = connect(addr);
        roundtrip(&mut sock, &Rng::new(28).bytes(100_000));
        // An explicit --listen adds to the activated ones.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let activated_addr = listener.local_addr().unwrap();
        let (cmd, stdin) = activated(listener.into(), "LISTEN_FDS=1", "--listen 127.0.0.1:0");
        let server = Server::spawn_with_stdin(cmd, 2, LIMIT, stdin);
        assert_eq!(server.addrs[0], activated_addr);
        for addr in &server.addrs {
            client_is_byte_exact(*addr, false);
        }
    });
}

/// Receives notifications until one satisfies `done`, up to `limit`; all of them, in
/// order (the last one satisfied `done`), or a panic naming what came.
fn notifications_until(
    sock: &UnixDatagram,
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let finished = done(&message);
            seen.push(message);
            if finished {
                return seen;
            }
        }
    }
    panic!("no such notification within {limit:?}; got {seen:?}");
}

#[test]
fn notify_socket_hears_ready_once_the_port_accepts_status_and_stopping() {
    with_timeout(LIMIT, || {
        let path = temp_path("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        let port = free_port(false);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // READY=1 is awaited on its own thread, which connects the moment it arrives:
        // the port must accept by then.
        let ready = thread::spawn(move || {
            let seen = notifications_until(&sock, Duration::from_secs(60), |m| {
                m.lines().any(|l| l == "READY=1")
            });
            let mut conn = TcpStream::connect(addr).expect("READY=1 before the port accepts");
            conn.set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            roundtrip(&mut conn, b"ready?");
            (sock, seen, conn)
        });
        let mut cmd = Command::new(echoloop_bin());
        cmd.args(["serve", "--listen", &addr.to_string()])
            .env("NOTIFY_SOCKET", &path);
        let server = Server::spawn(cmd, 1);
        let (sock, seen, conn) = ready.join().unwrap();
        assert_eq!(seen.len(), 1, "READY=1 is the first notification: {seen:?}");
        // The open connection shows in STATUS= within a few of its 2 s periods.
        notifications_until(&sock, Duration::from_secs(30), |m| {
            m.starts_with("STATUS=1 connection open; 1 accepted")
        });
        server.signal(libc::SIGTERM);
        notifications_until(&sock, Duration::from_secs(30), |m| m == "STOPPING=1");
        drop(conn);
        let status = server
            .wait(Duration::from_secs(30))
            .expect("exit after SIGTERM");
        assert!(status.success(), "{status}");
        assert!(
            !server.stderr().contains("NOTIFY_SOCKET"),
            "{}",
            server.stderr()
        );
        let _ = std::fs::remove_file(&path);
    });
}

#[test]
fn notify_socket_in_the_abstract_namespace() {
    use std::os::linux::net::SocketAddrExt;
    with_timeout(LIMIT, || {
        let name = format!("echoloop-test-notify-{}", std::process::id());
        let at = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&at).unwrap();
        let mut cmd = Command::new(echoloop_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env("NOTIFY_SOCKET", format!("@{name}"));
        let server = Server::spawn(cmd, 1);
        let seen = notifications_until(&sock, Duration::from_secs(60), |m| {
            m.starts_with("READY=1\nSTATUS=")
        });
        assert_eq!(seen.len(), 1, "{seen:?}");
        client_is_byte_exact(server.addr, false);
    });
}

#[test]
fn a_bad_notify_socket_is_one_warning_and_the_server_serves_on() {
    with_timeout(LIMIT, || {
        for bad in ["/nonexistent/echoloop/notify", "relative/notify"] {
            let mut cmd = Command::new(echoloop_bin());
            cmd.args(["serve", "--listen", "127.0.0.1:0"])
                .env("NOTIFY_SOCKET", bad);
            let server = Server::spawn(cmd, 1);
            client_is_byte_exact(server.addr, false);
            server.signal(libc::SIGTERM);
            let status = server.wait(Duration::from_secs(30)).expect("exit");
            assert!(status.success(), "{status}");
            let stderr = server.stderr();
            let warnings: Vec<&str> = stderr
                .lines()
                .filter(|l| l.contains("NOTIFY_SOCKET"))
                .collect();
            assert_eq!(warnings.len(), 1, "{bad}: {stderr}");
            assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
        }
    });
}

/// Sends `data` on `sock`, half-closes, and returns everything read back until EOF.
fn echo_whole(sock: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    let mut writer = sock.try_clone().unwrap();
    let data = data.to_vec();
    let sender = thread::spawn(move || {
        writer.write_all(&data).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let back = read_to_end(sock).expect("echo until EOF");
    sender.join().unwrap();
    back
}

#[test]
fn inetd_serves_the_connection_on_its_standard_descriptors_and_exits_0() {
    with_timeout(LIMIT, || {
        // Twice: as systemd's Accept=yes passes it (descriptors 0 and 1), and as inetd
        // does (0, 1 and 2): no log line may reach the peer either way.
        for on_stderr in [false, true] {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut client = connect(listener.local_addr().unwrap());
            let (conn, _) = listener.accept().unwrap();
            let conn = OwnedFd::from(conn);
            let mut cmd = Command::new(echoloop_bin());
            cmd.args(["serve", "--inetd"])
                .env("RUST_LOG", "debug")
                .stdin(Stdio::from(conn.try_clone().unwrap()))
                .stdout(Stdio::from(conn.try_clone().unwrap()));
            if on_stderr {
                cmd.stderr(Stdio::from(conn));
            } else {
                drop(conn);
                cmd.stderr(Stdio::piped());
            }
            let child = cmd.spawn().unwrap();
            // The parent's copies of the connection go with the command.
            drop(cmd);
            let data = Rng::new(u64::from(on_stderr)).bytes(300_000);
            let back = echo_whole(&mut client, &data);
            assert!(
                back == data,
                "echo differs (stderr on the socket: {on_stderr})"
            );
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", out.status);
            if !on_stderr {
                let log = String::from_utf8_lossy(&out.stderr);
                assert!(log.contains("connection from"), "logs on stderr: {log}");
                assert!(!log.contains("listening on"), "{log}");
            }
        }
    });
}

#[test]
fn inetd_without_a_connection_is_one_line() {
    let out = Command::new(echoloop_bin())
        .args(["serve", "--inetd"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("echoloop: --inetd: descriptor 0 is not a socket"),
        "{stderr}"
    );
    let out = Command::new(echoloop_bin())
        .args(["serve", "--inetd", "--udp", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn completions_and_man_pages_come_from_the_command_line() {
    echoloop_docs_bin();
    let run = |args: &[&str]| {
        let out = Command::new(echoloop_bin()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = run(&["completions", "bash"]);
    assert!(
        bash.contains("complete -F _echoloop") || bash.contains("-F _echoloop"),
        "{bash}"
    );
    assert!(bash.contains("--inetd") && bash.contains("--idle-timeout"));
    assert!(run(&["completions", "zsh"]).starts_with("#compdef echoloop"));
    assert!(run(&["completions", "fish"]).contains("complete -c echoloop"));
    let page = run(&["man", "serve"]);
    assert!(page.contains(".TH echoloop-serve 1"), "{page}");
    assert!(page.contains("\\-\\-max\\-conns\\-per\\-ip"), "{page}");
    assert!(run(&["man"]).contains("echoloop\\-serve(1)"));
    let out = Command::new(echoloop_bin())
        .args(["man", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("echoloop: man: no subcommand 'nope'"),
        "{stderr}"
    );
}

// ---- With systemd's tools: `.ci/run` runs these (`--include-ignored`). ----

/// `systemd-socket-activate ARGS`, with its stderr (where it says what it listens on).
fn socket_activate(args: &[&str]) -> Command {
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(args);
    cmd
}

/// Connects to `addr` until the activator listens there, up to a minute.
fn connect_when_listening(addr: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match TcpStream::connect(addr) {
            Ok(sock) => {
                sock.set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                return sock;
            }
            Err(e) if Instant::now() > deadline => panic!("{addr}: {e}"),
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Sends datagrams to `addr` until one comes back (the activator starts the server on
/// the first, which it has not bound yet); the socket it sent them from.
fn datagram_until_echoed(addr: SocketAddr) -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        let _ = sock.send_to(b"wake up", addr);
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            assert_eq!((&buf[..n], from), (&b"wake up"[..], addr));
            return sock;
        }
    }
    panic!("no echo from {addr}");
}

#[test]
#[ignore = "needs systemd-socket-activate (Debian's systemd package); .ci/run runs it"]
fn client_and_load_generator_over_activated_tcp_and_udp() {
    with_timeout(LIMIT, || {
        let tcp: SocketAddr = ([127, 0, 0, 1], free_port(false)).into();
        let udp: SocketAddr = ([127, 0, 0, 1], free_port(true)).into();
        // systemd-socket-activate makes sockets of one type: the outer one the TCP
        // listener, the inner one (which passes the outer's on) the UDP socket.
        let mut cmd = socket_activate(&["-l", &tcp.to_string(), "--fdname=tcp"]);
        cmd.args([
            "systemd-socket-activate",
            "--datagram",
            "-l",
            &udp.to_string(),
        ])
        .args([
            "--fdname=tcp:udp",
            &echoloop_bin().display().to_string(),
            "serve",
        ])
        // The clients and the load generator run from one address, flat out.
        .args(["--udp-rate", "off", "--udp-bytes", "off"]);
        // Each starts the next on the first connection or datagram.
        let waker = thread::spawn(move || {
            let first = connect_when_listening(tcp);
            let _udp = datagram_until_echoed(udp);
            first
        });
        let server = Server::spawn(cmd, 2);
        let mut first = waker.join().unwrap();
        assert_eq!(
            (server.addrs.as_slice(), server.udp.as_slice()),
            (&[tcp][..], &[udp][..])
        );
        roundtrip(&mut first, &Rng::new(7).bytes(200_000));
        client_is_byte_exact(tcp, false);
        client_is_byte_exact(udp, true);
        load_is_byte_exact(tcp, false);
        load_is_byte_exact(udp, true);
        server.signal(libc::SIGTERM);
        drop(first);
        let status = server
            .wait(Duration::from_secs(30))
            .expect("exit after SIGTERM");
        assert!(status.success(), "{status}");
    });
}

#[test]
#[ignore = "needs systemd-socket-activate (Debian's systemd package); .ci/run runs it"]
fn inetd_under_systemd_socket_activate_accept() {
    with_timeout(LIMIT, || {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port(false)).into();
        let mut cmd = socket_activate(&["-l", &addr.to_string(), "--accept", "--inetd"]);
        cmd.arg(echoloop_bin()).args(["serve", "--inetd"]);
        let mut activator = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let stderr = activator.stderr.take().unwrap();
        thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // One process per connection: three at once, each echoed in full.
        let mut conns: Vec<TcpStream> = (0..3).map(|_| connect_when_listening(addr)).collect();
        let echoes: Vec<_> = conns
            .drain(..)
            .enumerate()
            .map(|(i, mut conn)| {
                thread::spawn(move || {
                    let data = Rng::new(100 + i as u64).bytes(150_000);
                    echo_whole(&mut conn, &data) == data
                })
            })
            .collect();
        for echo in echoes {
            assert!(echo.join().unwrap(), "an inetd echo differs");
        }
        // Two more connections, the client's.
        client_is_byte_exact(addr, false);
        // Each connection's process exits 0 once its connection closed.
        let mut log = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while log
            .iter()
            .filter(|l: &&String| l.contains("died with code"))
            .count()
            < 5
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => log.push(line),
                Err(_) => panic!("five processes did not exit: {log:#?}"),
            }
        }
        let _ = activator.kill();
        let _ = activator.wait();
        let exits: Vec<&String> = log
            .iter()
            .filter(|l| l.contains("died with code"))
            .collect();
        assert!(
            exits
                .iter()
                .all(|l| l.ends_with("died with code 0.") || l.ends_with("died with code 0")),
            "{exits:#?}"
        );
    });
}

#[test]
#[ignore = "needs systemd-socket-activate (Debian's systemd package); .ci/run runs it"]
fn a_udp_socket_named_tcp_is_refused_under_systemd_socket_activate() {
    with_timeout(LIMIT, || {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port(true)).into();
        let mut cmd = socket_activate(&["--datagram", "-l", &addr.to_string(), "--fdname=tcp"]);
        cmd.arg(echoloop_bin()).arg("serve");
        let mut activator = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        // Datagrams until the activator, having bound, starts the server on one.
        let status = loop {
            let _ = sock.send_to(b"x", addr);
            if let Some(status) = activator.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            thread::sleep(Duration::from_millis(50));
        };
        let out = activator.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(status.code(), Some(2), "{stderr}");
        let line: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("echoloop:"))
            .collect();
        assert_eq!(line.len(), 1, "{stderr}");
        assert!(line[0].contains("(tcp) is a UDP socket"), "{stderr}");
        assert!(out.stdout.is_empty());
    });
}

/// The unit files, with `ExecStart=` pointing at the binary under test (verify checks
/// that the program exists), in `dir`.
fn units_in(dir: &Path, accept: bool) {
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd");
    std::fs::create_dir_all(dir).unwrap();
    for unit in ["echoloop.socket", "echoloop.service", "echoloop@.service"] {
        let text = std::fs::read_to_string(contrib.join(unit)).unwrap();
        let mut text = text.replace(
            "/usr/local/bin/echoloop",
            &echoloop_bin().display().to_string(),
        );
        if accept && unit == "echoloop.socket" {
            text.push_str(&std::fs::read_to_string(contrib.join("accept.conf")).unwrap());
        }
        std::fs::write(dir.join(unit), text).unwrap();
    }
}

#[test]
#[ignore = "needs systemd-analyze (Debian's systemd package); .ci/run runs it"]
fn unit_files_pass_systemd_analyze_verify() {
    for (accept, units) in [
        (false, ["echoloop.socket", "echoloop.service"]),
        (true, ["echoloop.socket", "echoloop@.service"]),
    ] {
        let dir = temp_path(if accept { "units-accept" } else { "units" });
        units_in(&dir, accept);
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .args(units.iter().map(|u| dir.join(u)))
            .output()
            .expect("systemd-analyze");
        let said = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        // verify exits 0 on an unknown key, with a warning: any output is a fault.
        assert!(
            out.status.success() && said.trim().is_empty(),
            "{units:?}: {said}"
        );
        // And it does catch one: a misspelt key, in a copy.
        let unit = dir.join(units[1]);
        let text = std::fs::read_to_string(&unit).unwrap();
        std::fs::write(&unit, text.replace("NoNewPrivileges=", "NoNewPrivilege=")).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&unit)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("NoNewPrivilege"), "{said}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
