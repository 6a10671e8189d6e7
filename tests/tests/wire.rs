//! The host server through the impaired wire (`src/bin/wire.rs`): `echoloop serve` in one
//! namespace, clients in another, each on a TAP device, and the wire relaying Ethernet
//! frames between the two TAPs while it drops, duplicates, delays and reorders them from a
//! seed. Every byte is checked.
//!
//! The seed is `ECHOLOOP_WIRE_SEED` (26 if unset); a failing run prints it, and the same
//! seed replays the same decisions frame by frame. Needs root, iproute2 and nftables:
//! .ci/run runs it (`cargo test -p echoloop-tests --test wire -- --ignored`).

use std::time::Duration;

use echoloop_tests::matrix::{self, Plan};
use echoloop_tests::netns::{self, Netns};
use echoloop_tests::wire::{Impairment, Wire};
use echoloop_tests::{echoloop_bin, with_timeout, Server};

#[test]
#[ignore = "needs root, ip and nft: run by .ci/run"]
fn through_a_wire_that_drops_duplicates_and_reorders_every_byte_comes_back() {
    let imp = Impairment::ci();
    let seed = imp.seed;
    with_timeout(Duration::from_secs(600), move || {
        assert!(netns::available(), "needs root, ip and nft");
        let server_ns = Netns::new("wsrv");
        let client = Netns::new("wcli");
        server_ns.tap("tap0");
        client.tap("tap0");
        let wire = Wire::start(
            imp,
            &format!("tap:{}:tap0", server_ns.name()),
            &format!("tap:{}:tap0", client.name()),
        );
        server_ns.address("tap0", "10.77.0.1");
        client.address("tap0", "10.77.0.2");
        let mut cmd = server_ns.command(echoloop_bin());
        cmd.args(["serve", "--listen", "10.77.0.1:7"]);
        let server = Server::spawn(cmd, 1);
        println!("wire seed {seed} (ECHOLOOP_WIRE_SEED={seed} replays it): {imp:?}");
        let plan = Plan {
            pingpong_conns: 8,
            seconds: 3,
            streams: 4,
            stream_bytes: 1 << 20,
            many: 32,
        };
        let figures = matrix::run(&client, server.addr, plan);
        drop(server);
        let report = wire.stop();
        println!(
            "host through the wire: {:.0} messages/s, p99 {:.0} µs; {report}",
            figures.messages_per_sec, figures.p99_us
        );
        // The wire really impaired the run: it dropped, duplicated and held back frames.
        for what in ["dropped", "duplicated", "held back"] {
            let counts: Vec<u64> = report
                .split(';')
                .filter_map(|side| {
                    side.split(',')
                        .find(|f| f.contains(what))
                        .and_then(|f| f.split_whitespace().next())
                        .and_then(|n| n.parse().ok())
                })
                .collect();
            assert!(
                counts.len() == 2 && counts.iter().all(|&n| n > 0),
                "the wire did not impair both ways ({what}): {report}"
            );
        }
    });
}
