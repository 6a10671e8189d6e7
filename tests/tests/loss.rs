//! The host server over a lossy link: `echoloop serve` inside one network namespace,
//! clients inside another, a veth pair between them, and nftables dropping a share of the
//! packets at random each way, where they arrive. Every byte is checked; nothing
//! is timed but the figures printed for docs/reliability.md.
//!
//! They need root, iproute2 and nftables, so `cargo test --workspace` skips them; .ci/run
//! runs the 5 % one (`cargo test -p echoloop-tests --test loss -- --ignored`).

use std::time::Duration;

use echoloop_tests::matrix::{self, Plan};
use echoloop_tests::netns::{self, Netns};
use echoloop_tests::{echoloop_bin, with_timeout, Server};

const SERVER: &str = "10.77.0.1";
const CLIENT: &str = "10.77.0.2";

/// The server in its namespace, reached from `client` over a veth pair losing `loss` % of
/// packets each way. Fields drop in order: the server, then the namespaces.
struct Lossy {
    server: Server,
    client: Netns,
    _server_ns: Netns,
}

impl Drop for Lossy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("server's log:\n{}", self.server.stderr());
        }
    }
}

fn lossy(loss: u8) -> Lossy {
    assert!(netns::available(), "needs root, ip and nft");
    let server_ns = Netns::new("srv");
    let client = Netns::new("cli");
    netns::veth(&server_ns, SERVER, &client, CLIENT);
    // Each direction is dropped where it arrives (see `Netns::set_loss`).
    server_ns.set_loss(loss, 0);
    client.set_loss(loss, 0);
    client.syn_retries(8);
    let mut cmd = server_ns.command(echoloop_bin());
    cmd.args(["serve", "--listen", &format!("{SERVER}:7")]);
    Lossy {
        server: Server::spawn(cmd, 1),
        client,
        _server_ns: server_ns,
    }
}

const PLAN: Plan = Plan {
    pingpong_conns: 8,
    seconds: 3,
    streams: 4,
    stream_bytes: 1 << 20,
    many: 64,
};

fn matrix_at(loss: u8) {
    with_timeout(Duration::from_secs(600), move || {
        let link = lossy(loss);
        let figures = matrix::run(&link.client, link.server.addr, PLAN);
        println!(
            "host at {loss} % loss each way: {:.0} messages/s, p99 {:.0} µs",
            figures.messages_per_sec, figures.p99_us
        );
    });
}

#[test]
#[ignore = "needs root, ip and nft: run by .ci/run"]
fn at_5_percent_loss_each_way_every_byte_comes_back() {
    matrix_at(5);
}

#[test]
#[ignore = "needs root, ip and nft; minutes long: run by hand for docs/reliability.md"]
fn at_1_percent_loss_each_way_every_byte_comes_back() {
    matrix_at(1);
}

#[test]
#[ignore = "needs root, ip and nft; minutes long: run by hand for docs/reliability.md"]
fn at_20_percent_loss_each_way_every_byte_comes_back() {
    matrix_at(20);
}

#[test]
#[ignore = "needs root, ip and nft: run by .ci/run"]
fn the_loss_rule_really_drops_and_the_namespaces_go_away() {
    with_timeout(Duration::from_secs(120), || {
        let names;
        {
            let link = lossy(100);
            names = [
                link.client.name().to_owned(),
                link._server_ns.name().to_owned(),
            ];
            // Everything dropped: a connect cannot complete.
            let addr = link.server.addr;
            let refused = link.client.run(move || {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
            });
            assert!(refused, "a 100 % loss rule let a connection through");
            // Lifted: the same link serves.
            link._server_ns.set_loss(0, 0);
            link.client.set_loss(0, 0);
            matrix::seed_client(&link.client, addr, 2);
        }
        let left = std::fs::read_dir("/run/netns")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for name in names {
            assert!(!left.contains(&name), "namespace {name} was not deleted");
        }
    });
}
