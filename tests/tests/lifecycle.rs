//! Time and signals: idle timeouts, SIGTERM and SIGINT.

use std::io::Read;
use std::net::Shutdown;
use std::thread;
use std::time::{Duration, Instant};

use echoloop_tests::{check_stream, connect, roundtrip, send_stream, with_timeout, Server};

#[test]
fn idle_client_is_closed_and_active_one_is_not() {
    with_timeout(Duration::from_secs(60), || {
        // Two seconds, so a loaded machine's hiccup between the active client's messages
        // (every 100 ms) cannot pass for idleness.
        let server = Server::start(&["--idle-timeout", "2"]);
        let mut idle = connect(server.addr);
        let mut active = connect(server.addr);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            roundtrip(&mut active, b"keep me");
            thread::sleep(Duration::from_millis(100));
        }
        // The idle one was reset by now (an idle timeout is not a graceful close); the
        // active one is still served.
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 16];
        let got = idle.read(&mut buf).map_err(|e| e.kind());
        assert_eq!(got, Err(std::io::ErrorKind::ConnectionReset));
        let local = idle.local_addr().unwrap();
        assert!(
            server
                .stderr()
                .contains(&format!("closing {local}: idle timeout")),
            "{}",
            server.stderr()
        );
        roundtrip(&mut active, b"still here");
    });
}

#[test]
fn sigterm_delivers_what_is_queued_then_exits_zero() {
    with_timeout(Duration::from_secs(60), || {
        let server = Server::start(&[]);
        // An idle client, and one with bytes in flight that it does not read yet.
        let mut idle = connect(server.addr);
        let busy = connect(server.addr);
        let mut writer = busy.try_clone().unwrap();
        let sender = thread::spawn(move || send_stream(&mut writer, 42, 8 << 20));
        thread::sleep(Duration::from_secs(1));

        server.signal(libc::SIGTERM);
        // Read everything the server echoed: a clean EOF, every byte the start of the stream.
        let mut reader = busy;
        let got = check_stream(&mut reader, 42);
        assert!(got > 0);
        let status = server
            .wait(Duration::from_secs(20))
            .expect("server did not exit");
        assert!(status.success(), "exit status {status}");
        // Every byte the server took in went back out; none was dropped.
        let log = server.stderr();
        let summary = format!("bytes in {got}, bytes out {got}, discarded 0");
        assert!(log.contains(&summary), "want '{summary}' in:\n{log}");
        // The idle client was told too: EOF.
        let mut rest = Vec::new();
        assert_eq!(idle.read_to_end(&mut rest).unwrap(), 0);
        sender.join().ok();
        let _ = reader.shutdown(Shutdown::Both);
    });
}

#[test]
fn sigint_with_no_clients_exits_zero_at_once() {
    with_timeout(Duration::from_secs(60), || {
        let server = Server::start(&[]);
        server.signal(libc::SIGINT);
        let status = server
            .wait(Duration::from_secs(10))
            .expect("server did not exit");
        assert!(status.success(), "exit status {status}");
        assert!(server.wait_for_log("shutting down", Duration::from_secs(10)));
    });
}
