//! The seed tutorial's scenario: two sockets, four messages in parts, exact echoes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::time::Duration;

use echoloop_tests::{connect, echoloop_bin, with_timeout, Server};

const ECHO: &str = "This is the message 0It will be sent 1in parts 2in 中文3";

#[test]
fn seed_client_gets_exact_echoes_and_server_logs_peers() {
    with_timeout(Duration::from_secs(120), || {
        let server = Server::start(&[]);
        let out = Command::new(echoloop_bin())
            .args(["client", "--connect", &server.addr.to_string()])
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "client failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout.matches(&format!("received \"{ECHO}\"")).count(),
            2,
            "{stdout}"
        );
        assert_eq!(
            stdout.matches("echo matches (58 bytes)").count(),
            2,
            "{stdout}"
        );
        // Each socket's own address, as the client printed it, is in the server's log.
        let locals: Vec<&str> = stdout
            .lines()
            .filter(|l| l.ends_with("echo matches (58 bytes)"))
            .map(|l| l.split(": ").next().unwrap())
            .collect();
        for local in locals {
            assert!(
                server.wait_for_log(&format!("connection from {local}"), Duration::from_secs(10))
            );
            assert!(server.wait_for_log(
                &format!("closing {local}: peer closed"),
                Duration::from_secs(10)
            ));
        }
    });
}

#[test]
fn seed_scenario_by_hand_on_raw_sockets() {
    with_timeout(Duration::from_secs(60), || {
        let server = Server::start(&[]);
        let mut socks = [connect(server.addr), connect(server.addr)];
        let messages = [
            "This is the message ",
            "It will be sent ",
            "in parts ",
            "in 中文",
        ];
        for (i, m) in messages.iter().enumerate() {
            for s in &mut socks {
                s.write_all(format!("{m}{i}").as_bytes()).unwrap();
            }
        }
        for s in &mut socks {
            let mut back = vec![0u8; ECHO.len()];
            s.read_exact(&mut back).unwrap();
            assert_eq!(back, ECHO.as_bytes());
        }
    });
}

#[test]
fn ipv4_and_ipv6_listeners_both_serve() {
    with_timeout(Duration::from_secs(60), || {
        let mut cmd = Command::new(echoloop_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--listen", "[::1]:0"]);
        let server = Server::spawn(cmd, 2);
        assert!(server.addrs[0].is_ipv4() && server.addrs[1].is_ipv6());
        for addr in &server.addrs {
            assert_ne!(addr.port(), 0);
            let out = Command::new(echoloop_bin())
                .args([
                    "client",
                    "--connect",
                    &addr.to_string(),
                    "--sockets",
                    "3",
                    "héllo ",
                    "wörld",
                ])
                .output()
                .unwrap();
            let stdout = String::from_utf8(out.stdout).unwrap();
            assert!(out.status.success(), "{stdout}");
            assert_eq!(
                stdout.matches("received \"héllo wörld\"").count(),
                3,
                "{stdout}"
            );
        }
    });
}

#[test]
fn client_times_out_with_one_clear_line_when_nothing_comes_back() {
    with_timeout(Duration::from_secs(60), || {
        // A listener that accepts (in the kernel backlog) and never echoes.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr: SocketAddr = silent.local_addr().unwrap();
        let out = Command::new(echoloop_bin())
            .args(["client", "--connect", &addr.to_string(), "--timeout", "1"])
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("timed out"), "{stderr}");
    });
}

#[test]
fn trace_shows_the_sets_and_what_the_core_did() {
    with_timeout(Duration::from_secs(60), || {
        let server = Server::start(&["--trace"]);
        let out = Command::new(echoloop_bin())
            .args([
                "client",
                "--connect",
                &server.addr.to_string(),
                "--sockets",
                "1",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        let stdout = String::from_utf8(out.stdout).unwrap();
        let local = stdout
            .lines()
            .nth(1)
            .unwrap()
            .split(": ")
            .next()
            .unwrap()
            .to_string();
        let listener = format!("listener {}", server.addr);
        assert!(server.wait_for_log(
            &format!("{local}: core: close (peer closed)"),
            Duration::from_secs(10)
        ));
        let log = server.stderr();
        let poller = echoloop_tests::poller().unwrap_or_else(|| "select".into());
        let wants = match poller.as_str() {
            "epoll" => vec![
                "poller: epoll".to_string(),
                "round 1: epoll_wait(registered, no timeout)".into(),
                format!("-> 1 ready: read [{listener}], write []"),
                format!("{local}: accepted as #0.0"),
                // The connection is registered once, for reading, when accepted.
                "epoll_ctl ADD fd".into(),
                format!("-> 1 ready: read [{local}], write []"),
            ],
            _ => vec![
                "poller: select".to_string(),
                format!(
                    "round 1: select(read [signals, {listener}], write [], except [], no timeout)"
                ),
                format!("-> 1 ready: read [{listener}], write [], except []"),
                format!("{local}: accepted as #0.0"),
                format!("select(read [signals, {listener}, {local}], write [], except [{local}]"),
            ],
        };
        for want in wants
            .into_iter()
            .chain([format!("{local}: received 0, echoed 0, 0 queued, EOF")])
        {
            assert!(log.contains(&want), "want {want:?} in:\n{log}");
        }
        if poller == "epoll" {
            assert_eq!(
                log.matches("epoll_ctl").count(),
                3,
                "the signal pipe, the listener and the connection, each once:\n{log}"
            );
        }
        // One action per decision: a close after the peer's EOF sends the FIN itself.
        assert!(!log.contains("core: shut down write side"), "{log}");
    });
}
