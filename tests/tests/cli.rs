//! Bad flags and addresses: a non-zero exit and exactly one readable line on stderr.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use echoloop_tests::{echoloop_bin, with_timeout};

/// A usage error: exit status 2 and one line.
fn usage_error(args: &[&str], expect: &str) {
    let status = fails_with_one_line(args, expect);
    assert_eq!(status.code(), Some(2), "{args:?}");
}

fn fails_with_one_line(args: &[&str], expect: &str) -> std::process::ExitStatus {
    let out = Command::new(echoloop_bin()).args(args).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.contains(expect), "{args:?}: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{args:?} printed {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    out.status
}

#[test]
fn bad_flags_and_addresses_are_one_line_errors() {
    with_timeout(Duration::from_secs(120), || {
        usage_error(&["serve", "--bogus"], "--bogus");
        usage_error(&["frobnicate"], "frobnicate");
        usage_error(&["serve", "--listen", "nonsense"], "nonsense");
        usage_error(&["serve", "--listen", "127.0.0.1:99999"], "127.0.0.1:99999");
        usage_error(&["serve", "--listen", "localhost:8090"], "localhost:8090");
        usage_error(&["serve", "--max-conns", "65535"], "1..=65534");
        usage_error(&["serve", "--max-conns", "0"], "1..=65534");
        usage_error(&["serve", "--max-conns", "many"], "many");
        usage_error(&["serve", "--idle-timeout", "soon"], "soon");
        usage_error(&["serve", "--idle-timeout", "0"], "positive");
        usage_error(&["serve", "--batch-wait", "20000"], "0..=10000");
        usage_error(&["serve", "--batch-wait", "-5"], "'-5'");
        usage_error(&["serve", "--batch-wait", "soon"], "soon");
        usage_error(&["client", "--connect", "nowhere"], "nowhere");
        usage_error(&["client", "--sockets", "0"], "0");
        usage_error(&["serve", "--queue-size", "0"], "'0'");
        usage_error(&["serve", "--queue-size", "2GiB"], "'2GiB'");
        usage_error(&["serve", "--queue-size", "2048MiB"], "1 GiB");
        usage_error(&["serve", "--queue-size", "64kb"], "'64kb'");
        usage_error(&["serve", "--buffers", "0"], "--buffers");
        usage_error(
            &["serve", "--max-conns", "10", "--buffers", "11"],
            "--buffers 11",
        );
        usage_error(&["serve", "--max-conns-per-ip", "0"], "--max-conns-per-ip");
        usage_error(&["serve", "--max-conns-per-ip", "x"], "'x'");
        usage_error(&["serve", "--udp", "nonsense"], "nonsense");
        usage_error(&["serve", "--udp", "127.0.0.1:99999"], "127.0.0.1:99999");
        usage_error(&["serve", "--udp", "[::1]"], "[::1]");
        usage_error(&["serve", "--udp-rate", "0"], "'0'");
        usage_error(&["serve", "--udp-rate", "fast"], "'fast'");
        usage_error(&["serve", "--udp-bytes", "2GiB"], "'2GiB'");
        let offered = if cfg!(target_os = "linux") {
            "this platform offers select, epoll"
        } else {
            "this platform offers select"
        };
        usage_error(&["serve", "--poller", "x"], offered);
        usage_error(&["serve", "--poller", "kqueue"], offered);
        if !cfg!(target_os = "linux") {
            usage_error(&["serve", "--poller", "epoll"], offered);
        }
    });
}

#[test]
fn port_in_use_is_one_line_error() {
    with_timeout(Duration::from_secs(60), || {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        fails_with_one_line(&["serve", "--listen", &addr], "in use");
    });
}

#[test]
fn client_against_no_server_is_one_line_error() {
    with_timeout(Duration::from_secs(60), || {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        // The listener is closed again: nothing listens on that port now.
        let out = Command::new(echoloop_bin())
            .args(["client", "--connect", &addr.to_string()])
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("cannot connect"), "{stderr}");
    });
}
