//! The teaching port end to end: the real binary on 127.0.0.1:0, real sockets, every byte
//! compared. Each test is bounded by `with_timeout` and none depends on the machine's speed.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use echoloop_tests::sock::{send_urgent, set_linger_zero};
use echoloop_tests::{
    check_stream, connect, echo_stream, fill_stream, roundtrip, send_stream, with_timeout, Rng,
    Server,
};

/// `echoloop-posix-poll --listen 127.0.0.1:0` plus `args`, once it prints its address.
fn start(args: &[&str]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_echoloop-posix-poll"));
    cmd.args(["--listen", "127.0.0.1:0"]).args(args);
    Server::spawn(cmd, 1)
}

#[test]
fn one_mebibyte_and_twenty_concurrent_streams_come_back_byte_exact_then_eof() {
    with_timeout(Duration::from_secs(60), || {
        let server = start(&[]);
        let addr = server.addr;
        // Each stream half-closes after its last byte and must get every byte, then EOF.
        echo_stream(addr, 1, 1 << 20);
        let streams: Vec<_> = (0..20)
            .map(|i| thread::spawn(move || echo_stream(addr, 100 + i, 96 * 1024)))
            .collect();
        for stream in streams {
            stream.join().unwrap();
        }
    });
}

#[test]
fn a_half_closed_peer_still_gets_its_echo() {
    with_timeout(Duration::from_secs(30), || {
        let server = start(&[]);
        let mut sock = connect(server.addr);
        sock.write_all(b"half").unwrap();
        sock.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        sock.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"half");
        assert!(server.wait_for_log("peer closed", Duration::from_secs(10)));
    });
}

#[test]
fn resets_mid_stream_close_only_those_connections() {
    with_timeout(Duration::from_secs(60), || {
        let server = start(&[]);
        let addr = server.addr;
        let streams: Vec<_> = (0..4)
            .map(|i| thread::spawn(move || echo_stream(addr, 200 + i, 1 << 20)))
            .collect();
        for i in 0..8 {
            let mut quitter = connect(addr);
            quitter.write_all(&Rng::new(i).bytes(20_000)).unwrap();
            set_linger_zero(&quitter);
        }
        for stream in streams {
            stream.join().unwrap();
        }
        assert!(server.wait_for_log("reset by peer", Duration::from_secs(10)));
        let mut after = connect(addr);
        roundtrip(&mut after, b"still serving");
    });
}

#[test]
fn urgent_data_is_echoed_in_place() {
    with_timeout(Duration::from_secs(30), || {
        let server = start(&[]);
        let mut sock = connect(server.addr);
        sock.set_nodelay(true).unwrap();
        roundtrip(&mut sock, b"before");
        sock.write_all(b"abc").unwrap();
        send_urgent(&sock, b'!');
        sock.write_all(b"def").unwrap();
        // Read to the end, so that a lost urgent byte shows as a difference, not a wait.
        sock.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        sock.read_to_end(&mut back).unwrap();
        assert_eq!(String::from_utf8_lossy(&back), "abc!def");
    });
}

#[test]
fn the_idle_timeout_resets_a_silent_connection_only() {
    with_timeout(Duration::from_secs(30), || {
        let server = start(&["--idle-timeout-ms", "400"]);
        let mut silent = connect(server.addr);
        let mut chatty = connect(server.addr);
        // The chatty one speaks every 100 ms for 1.2 s: three timeouts' worth.
        for i in 0..12u8 {
            roundtrip(&mut chatty, &[i; 10]);
            thread::sleep(Duration::from_millis(100));
        }
        // The silent one was reset, not closed: its echo was not in question, but a
        // timeout is no graceful end.
        let mut buf = [0u8; 1];
        let err = silent
            .read(&mut buf)
            .expect_err("the silent connection got a FIN");
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
        roundtrip(&mut chatty, b"still open");
        assert!(server.stderr().contains("idle timeout"));
    });
}

#[test]
fn sigterm_delivers_what_is_queued_then_exits_zero() {
    with_timeout(Duration::from_secs(60), || {
        let server = start(&[]);
        let mut idle = connect(server.addr);
        // Bytes in flight that the client does not read yet: the server's queue fills.
        let busy = connect(server.addr);
        let mut writer = busy.try_clone().unwrap();
        let sender = thread::spawn(move || send_stream(&mut writer, 42, 4 << 20));
        thread::sleep(Duration::from_millis(500));

        server.signal(libc::SIGTERM);
        let mut reader = busy;
        let got = check_stream(&mut reader, 42);
        assert!(got > 0);
        let status = server.wait(Duration::from_secs(20)).expect("no exit");
        assert!(status.success(), "exit status {status}");
        // Every byte the server took in went back out.
        let log = server.stderr();
        let summary = format!("bytes in {got}, bytes out {got}, discarded 0");
        assert!(log.contains(&summary), "want '{summary}' in:\n{log}");
        let mut rest = Vec::new();
        assert_eq!(
            idle.read_to_end(&mut rest).unwrap(),
            0,
            "the idle one: a FIN"
        );
        sender.join().unwrap();
    });
}

#[test]
fn a_peer_that_resets_while_waiting_for_a_buffer_is_closed_without_spinning() {
    with_timeout(Duration::from_secs(60), || {
        // One buffer for four connections.
        let server = start(&["--max-conns", "4", "--buffers", "1"]);
        // The hog streams and reads nothing yet, through a small window, until the server
        // stops reading it: its queue is full and keeps the only buffer.
        let hog = connect_small_window(server.addr);
        let mut writer = hog.try_clone().unwrap();
        // A peer that gets no echo waits for a buffer: no interest at all. One that gets
        // it came before the pool ran dry (a server slow to fill the hog's queue): push
        // again and retry.
        let mut pushed = 0;
        let waiting = (0..20)
            .find_map(|_| {
                pushed += push_until_blocked(&mut writer, 7, pushed);
                let mut peer = connect(server.addr);
                peer.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                peer.write_all(b"x").unwrap();
                let dry = matches!(
                    peer.read(&mut [0u8; 1]),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                );
                dry.then_some(peer)
            })
            .expect("the pool never ran dry");
        // Its reset is told only by the POLLERR/POLLHUP that `poll` reports unasked.
        set_linger_zero(&waiting);
        drop(waiting);
        assert!(
            server.wait_for_log("reset by peer", Duration::from_secs(10)),
            "the reset was never noticed:\n{}",
            server.stderr()
        );
        let before = server.cpu_ticks();
        thread::sleep(Duration::from_secs(1));
        let spent = server.cpu_ticks() - before;
        assert!(spent < 30, "{spent} ticks of CPU in 1 s: the loop spins");
        // The hog's echo is whole.
        let mut reader = hog;
        writer.shutdown(Shutdown::Write).unwrap();
        assert_eq!(check_stream(&mut reader, 7), pushed);
    });
}

/// A connected socket whose receive buffer is as small as the kernel allows, so that a
/// peer that does not read fills the server's queue soon.
fn connect_small_window(addr: SocketAddr) -> TcpStream {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&addr.into()).unwrap();
    let sock = TcpStream::from(sock);
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    sock
}

/// Writes stream `seed` from byte `from` until a write has waited a second; returns how
/// many bytes went.
fn push_until_blocked(sock: &mut TcpStream, seed: u64, from: usize) -> usize {
    sock.set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut pushed = 0;
    loop {
        fill_stream(seed, from + pushed, &mut chunk);
        match sock.write(&chunk) {
            Ok(n) => pushed += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return pushed
            }
            Err(e) => panic!("push: {e}"),
        }
    }
}
