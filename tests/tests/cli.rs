//! Bad flags and addresses: a non-zero exit and exactly one readable line on stderr.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use echoloop_tests::{echoloop_bin, with_timeout};

fn fails_with_one_line(args: &[&str], expect: &str) {
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
}

#[test]
fn bad_flags_and_addresses_are_one_line_errors() {
    with_timeout(Duration::from_secs(120), || {
        fails_with_one_line(&["serve", "--bogus"], "--bogus");
        fails_with_one_line(&["frobnicate"], "frobnicate");
        fails_with_one_line(&["serve", "--listen", "nonsense"], "nonsense");
        fails_with_one_line(&["serve", "--listen", "127.0.0.1:99999"], "127.0.0.1:99999");
        fails_with_one_line(&["serve", "--listen", "localhost:8090"], "localhost:8090");
        fails_with_one_line(&["serve", "--max-conns", "100000"], "1000");
        fails_with_one_line(&["serve", "--max-conns", "0"], "1000");
        fails_with_one_line(&["serve", "--max-conns", "many"], "many");
        fails_with_one_line(&["serve", "--idle-timeout", "soon"], "soon");
        fails_with_one_line(&["serve", "--idle-timeout", "0"], "positive");
        fails_with_one_line(&["serve", "--batch-wait", "20000"], "0..=10000");
        fails_with_one_line(&["serve", "--batch-wait", "-5"], "'-5'");
        fails_with_one_line(&["serve", "--batch-wait", "soon"], "soon");
        fails_with_one_line(&["client", "--connect", "nowhere"], "nowhere");
        fails_with_one_line(&["client", "--sockets", "0"], "0");
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
