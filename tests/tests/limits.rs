//! Past what libc's select allows, and out of what the kernel allows: descriptors above
//! FD_SETSIZE (served like any other), no descriptors at all (EMFILE), and one address
//! wanting more than its share (`--max-conns-per-ip`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use echoloop_tests::{
    connect, echo_stream_on, echoloop_bin, roundtrip, sock, with_timeout, Server,
};

/// Whether the server echoes on a fresh connection, or refuses it (EOF or reset).
fn is_served(sock: &mut TcpStream) -> bool {
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    if sock.write_all(b"ping").is_err() {
        return false;
    }
    let mut back = [0u8; 4];
    match sock.read_exact(&mut back) {
        Ok(()) => {
            assert_eq!(&back, b"ping");
            true
        }
        Err(_) => false,
    }
}

/// Keeps the connections the server echoes on, after checking that it served some,
/// refused others, and logged `why`.
fn triage(
    server: &Server,
    socks: impl IntoIterator<Item = TcpStream>,
    why: &str,
) -> Vec<TcpStream> {
    let mut served = Vec::new();
    let mut refused = 0;
    for mut sock in socks {
        if is_served(&mut sock) {
            served.push(sock);
        } else {
            refused += 1;
        }
    }
    assert!(
        !served.is_empty() && refused > 0,
        "served {}, refused {refused}",
        served.len()
    );
    // The log line may reach the pipe after the client saw the refusal: wait for it.
    assert!(
        server.wait_for_log(why, Duration::from_secs(20)),
        "{}",
        server.stderr()
    );
    served
}

/// Retries until the server serves a new connection, up to `limit`.
fn served_again(addr: SocketAddr, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if is_served(&mut connect(addr)) {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The server's open sockets, by descriptor number (from `/proc/PID/fd`).
fn socket_fds(server: &Server) -> Vec<i32> {
    let dir = format!("/proc/{}/fd", server.pid());
    let mut fds: Vec<i32> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
        })
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

#[test]
fn descriptors_beyond_fd_setsize_are_served_byte_exactly() {
    with_timeout(Duration::from_secs(180), || {
        // The child inherits this soft limit; the hard one bounds how far it can go.
        let limit = sock::raise_nofile(8192).unwrap();
        if limit < 1300 {
            println!("skipped: the descriptor limit ({limit}) cannot go past FD_SETSIZE");
            return;
        }
        // Descriptors 3..=1099 and 1110..=top are taken before the server starts: its own
        // (listener, signal pipe, reserve) land in 1100..=1109 with its first connections,
        // the rest beyond `top`, past 4096 when the limit allows.
        let top = if limit >= 8192 { 4200 } else { 1200 };
        let setup = format!(
            "for fd in $(seq 3 1099) $(seq 1110 {top}); do eval \"exec $fd</dev/null\"; done"
        );
        let server = Server::start_in_shell("bash", &setup, "");
        let mut socks: Vec<TcpStream> = (0..40).map(|_| connect(server.addr)).collect();
        for (i, sock) in socks.iter_mut().enumerate() {
            roundtrip(sock, format!("connection {i} says hello").as_bytes());
        }
        let fds = socket_fds(&server);
        assert!(fds.iter().all(|&fd| fd >= 1100), "server sockets: {fds:?}");
        let beyond = fds.iter().filter(|&&fd| fd > top).count();
        assert!(beyond >= 30, "server sockets: {fds:?}");
        if top > 4096 {
            assert!(fds.iter().any(|&fd| fd > 4096), "server sockets: {fds:?}");
        }
        // The highest ones stream 256 KiB each at once, every byte checked.
        let streams: Vec<_> = socks
            .drain(30..)
            .enumerate()
            .map(|(i, sock)| {
                thread::spawn(move || echo_stream_on(sock, 1024 + i as u64, 256 << 10))
            })
            .collect();
        for stream in streams {
            stream.join().unwrap();
        }
        for (i, sock) in socks.iter_mut().enumerate() {
            roundtrip(sock, format!("connection {i} is still served").as_bytes());
        }
        assert!(server.is_running());
        assert!(!server.stderr().contains("refusing"), "{}", server.stderr());
        drop(socks);
        assert!(served_again(server.addr, Duration::from_secs(20)));
    });
}

#[test]
fn out_of_descriptors_neither_kills_nor_spins_and_recovers() {
    with_timeout(Duration::from_secs(120), || {
        // The server lowers its capacity to what 32 descriptors hold, counting its own; the
        // twelve its parent leaves open (3..=14) are more than it allows for, so it runs
        // out of descriptors all the same, as it would if a library opened files.
        let setup =
            "ulimit -n 32 || exit 97\nfor fd in $(seq 3 14); do eval \"exec $fd</dev/null\"; done";
        let server = Server::start_in_shell("bash", setup, "");
        let burst: Vec<TcpStream> = (0..150).map(|_| connect(server.addr)).collect();
        let mut served = triage(&server, burst, "Too many open files");

        // With every descriptor taken and more clients knocking, the server must sleep.
        let knocking: Vec<TcpStream> = (0..50).map(|_| connect(server.addr)).collect();
        let before = server.cpu_ticks();
        thread::sleep(Duration::from_secs(3));
        let used = server.cpu_ticks() - before;
        assert!(
            used < 100,
            "server used {used} ticks of CPU in 3 s while out of descriptors"
        );
        assert!(server.is_running());
        for sock in &mut served {
            roundtrip(sock, b"still served");
        }

        drop(knocking);
        drop(served);
        assert!(served_again(server.addr, Duration::from_secs(20)));
    });
}

#[test]
fn max_conns_makes_newcomers_wait_not_fail() {
    with_timeout(Duration::from_secs(60), || {
        let server = Server::start(&["--max-conns", "2"]);
        let mut first = connect(server.addr);
        let mut second = connect(server.addr);
        roundtrip(&mut first, b"one");
        roundtrip(&mut second, b"two");
        // The table is full: the third waits in the listen backlog, unanswered.
        let mut third = connect(server.addr);
        third.write_all(b"three").unwrap();
        third
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut back = [0u8; 5];
        assert!(third.read(&mut back).is_err(), "served beyond --max-conns");
        // A slot frees: the third is accepted and its bytes echoed.
        drop(first);
        third
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        third.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"three");
        roundtrip(&mut second, b"two again");
    });
}

/// Whether `sock` is closed by the server without an echo (EOF or reset).
fn refused(sock: &mut TcpStream) -> bool {
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = sock.write_all(b"let me in");
    let mut back = [0u8; 9];
    match sock.read(&mut back) {
        Ok(0) | Err(_) => true,
        Ok(_) => false,
    }
}

#[test]
fn max_conns_per_ip_refuses_the_extra_ones_of_each_address_only() {
    with_timeout(Duration::from_secs(120), || {
        let mut cmd = Command::new(echoloop_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--listen", "[::1]:0"])
            .args(["--max-conns-per-ip", "3"]);
        let server = Server::spawn(cmd, 2);
        let (v4, v6) = (server.addrs[0], server.addrs[1]);
        assert!(v4.is_ipv4() && v6.is_ipv6());
        // Each address holds its three: ::1 is not 127.0.0.1.
        let mut held: Vec<TcpStream> = Vec::new();
        for (i, addr) in [v4, v6, v4, v6, v4, v6].into_iter().enumerate() {
            let mut sock = connect(addr);
            roundtrip(&mut sock, format!("held {i}").as_bytes());
            held.push(sock);
        }
        // The fourth from each is refused, and the ones held are not disturbed.
        for addr in [v4, v6] {
            let mut fourth = connect(addr);
            assert!(refused(&mut fourth), "a fourth from {addr} was served");
        }
        for (i, sock) in held.iter_mut().enumerate() {
            roundtrip(sock, format!("still held {i}").as_bytes());
        }
        assert!(server.wait_for_log("refusing 127.0.0.1:", Duration::from_secs(20)));
        assert!(server.wait_for_log("refusing [::1]:", Duration::from_secs(20)));
        // A close gives its address room again, for that address only.
        drop(held.remove(0)); // 127.0.0.1
        let mut again = None;
        for _ in 0..200 {
            // The server sees the close on its next round: until then, still refused.
            let mut sock = connect(v4);
            sock.set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            sock.write_all(b"room again").unwrap();
            let mut back = [0u8; 10];
            if sock.read_exact(&mut back).is_ok() {
                assert_eq!(&back, b"room again");
                again = Some(sock);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(again.is_some(), "127.0.0.1 never got its slot back");
        let mut fourth_v6 = connect(v6);
        assert!(refused(&mut fourth_v6), "::1 got 127.0.0.1's room");
        // The refusals are counted in the shutdown line.
        server.signal(libc::SIGTERM);
        assert!(server
            .wait(Duration::from_secs(20))
            .is_some_and(|s| s.success()));
        let log = server.stderr();
        let refusals: u64 = log
            .split("refused ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no refusal count: {log}"));
        assert!(refusals >= 3, "{log}");
    });
}
