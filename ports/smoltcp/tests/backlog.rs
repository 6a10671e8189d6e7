//! The SYN backlog: a burst of clients larger than the listening sockets waits and is
//! served in full, where smoltcp alone resets the surplus.

#[allow(dead_code)]
mod net;

use echoloop_core::Config as CoreConfig;
use echoloop_smoltcp::SynBacklog;
use net::{assert_prefix, pattern, Client, Net, PORT};
use smoltcp::phy::Loopback;
use smoltcp::socket::tcp::State;

/// A server of 4 connections on 6 sockets, as the firmware's, and `clients` clients that
/// connect at once, each sending 200 bytes then closing.
fn burst(backlog: bool, clients: u8) -> (Net<Loopback, 6, 4, 64>, Vec<Client>) {
    let mut net = Net::<Loopback, 6, 4, 64>::new(CoreConfig::new());
    if backlog {
        net.backlog = Some(SynBacklog::ip(PORT));
    }
    // Let the driver arm its listeners before the burst.
    net.step();
    let clients = (0..clients)
        .map(|i| {
            let mut c = net.connect(&pattern(i, 200));
            c.close_when_sent = true;
            c
        })
        .collect();
    (net, clients)
}

/// A client that ended without its whole echo and FIN was reset.
fn reset(net: &mut Net<Loopback, 6, 4, 64>, c: &Client) -> bool {
    net.state(c) == State::Closed && !(c.fin && c.echoed == c.data)
}

#[test]
fn a_burst_of_32_on_4_slots_waits_and_every_client_is_served() {
    let (mut net, mut clients) = burst(true, 32);
    let mut refs: Vec<&mut Client> = clients.iter_mut().collect();
    net.run(&mut refs, 120_000, |n, c| {
        c.iter().all(|c| {
            assert_prefix(c);
            assert!(!reset(n, c), "a client was reset");
            c.fin && c.echoed == c.data
        })
    });
    assert_eq!(net.server.stats().accepted, 32);
    let stats = net.backlog.as_ref().unwrap().stats();
    assert!(stats.held >= 28, "the burst was not held: {stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(net.backlog.as_ref().unwrap().waiting(), 0);
}

#[test]
fn without_the_backlog_smoltcp_resets_part_of_the_same_burst() {
    let (mut net, mut clients) = burst(false, 32);
    let mut refs: Vec<&mut Client> = clients.iter_mut().collect();
    net.run(&mut refs, 120_000, |n, c| {
        c.iter()
            .all(|c| n.state(c) == State::Closed || (c.fin && c.echoed == c.data))
    });
    let resets = clients.iter().filter(|c| reset(&mut net, c)).count();
    assert!(
        resets > 0,
        "no reset without the backlog: the test proves nothing"
    );
}

#[test]
fn a_full_backlog_drops_silently_and_the_retransmission_is_served() {
    // 64 held at most: 80 clients overflow it; the overflow retransmits its SYN.
    let (mut net, mut clients) = burst(true, 80);
    let mut refs: Vec<&mut Client> = clients.iter_mut().collect();
    net.run(&mut refs, 300_000, |n, c| {
        c.iter().all(|c| {
            assert!(!reset(n, c), "a client was reset");
            c.fin && c.echoed == c.data
        })
    });
    assert_eq!(net.server.stats().accepted, 80);
    assert!(net.backlog.as_ref().unwrap().stats().dropped > 0);
}
