//! The driver serving smoltcp client sockets over a loopback device, in one process.

mod net;

use echoloop_core::{Config as CoreConfig, Duration as CoreDuration};
use echoloop_smoltcp::StaticLoopback;
use net::{assert_prefix, pattern, Client, Net};
use smoltcp::phy::{FaultInjector, Loopback, Medium};
use smoltcp::socket::tcp::State;

/// The seed client's four messages, each with its index.
const SEED: [&str; 4] = [
    "This is the message 0",
    "It will be sent 1",
    "in parts 2",
    "in 中文3",
];

fn all_echoed_and_finished<
    D: smoltcp::phy::Device,
    const S: usize,
    const C: usize,
    const Q: usize,
>(
    _: &mut Net<D, S, C, Q>,
    clients: &[&mut Client],
) -> bool {
    clients.iter().all(|c| {
        assert_prefix(c);
        c.fin && c.echoed.len() == c.data.len()
    })
}

#[test]
fn echoes_the_seed_messages_one_at_a_time() {
    let mut net = Net::<Loopback, 2, 2, 64>::new(CoreConfig::new());
    let mut client = net.connect(b"");
    let mut expected = Vec::new();
    for message in SEED {
        // As the seed client does: send a message, wait for its echo, send the next.
        client.data.extend_from_slice(message.as_bytes());
        expected.extend_from_slice(message.as_bytes());
        net.run(&mut [&mut client], 2_000, |_, c| {
            assert_prefix(c[0]);
            c[0].echoed.len() == expected.len()
        });
    }
    assert_eq!(
        client.echoed,
        "This is the message 0It will be sent 1in parts 2in 中文3".as_bytes()
    );
    client.close_when_sent = true;
    net.run(&mut [&mut client], 2_000, all_echoed_and_finished);
    net.run(&mut [&mut client], 2_000, |n, _| n.idle_sockets());

    let stats = net.server.stats();
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.closed.peer_closed, 1);
    assert_eq!(stats.bytes_in, expected.len() as u64);
    assert_eq!(stats.bytes_out, expected.len() as u64);
    assert_eq!(net.driver.listening(), 2, "both slots free again");
}

/// Four connections at once, each streaming far more than the core's 64-byte queue holds:
/// the queues wrap, the core pushes back, and every byte comes back in order.
fn many_connections_at_once<D: smoltcp::phy::Device>(device: D) {
    let mut net = Net::<D, 6, 4, 64>::with_device(device, CoreConfig::new());
    let mut clients: Vec<Client> = (0..4u8)
        .map(|i| {
            let mut c = net.connect(&pattern(i, 6000 + 777 * usize::from(i)));
            c.close_when_sent = true;
            c
        })
        .collect();
    let mut refs: Vec<&mut Client> = clients.iter_mut().collect();
    net.run(&mut refs, 60_000, all_echoed_and_finished);
    net.run(&mut refs, 2_000, |n, _| n.idle_sockets());

    let total: usize = clients.iter().map(|c| c.data.len()).sum();
    let stats = net.server.stats();
    assert_eq!(stats.accepted, 4);
    assert_eq!(stats.peak_conns, 4, "served at the same time");
    assert_eq!(stats.closed.peer_closed, 4);
    assert_eq!(stats.bytes_in, total as u64);
    assert_eq!(stats.bytes_out, total as u64);
    assert_eq!(stats.bytes_discarded, 0);
    assert!(stats.peak_queue <= 64);
    assert_eq!(net.driver.listening(), 4);
}

#[test]
fn many_connections_at_once_over_smoltcps_loopback() {
    many_connections_at_once(Loopback::new(Medium::Ip));
}

#[test]
fn many_connections_at_once_over_the_static_loopback() {
    many_connections_at_once(StaticLoopback::<16, 1500>::new(Medium::Ip));
}

/// Eight connections at once on a pool of four buffers: a connection without one waits
/// (no read interest) until another's queue drains, and every byte still comes back.
#[test]
fn eight_connections_share_four_buffers() {
    let mut net =
        Net::<Loopback, 10, 8, 64>::with_buffers(Loopback::new(Medium::Ip), CoreConfig::new(), 4);
    let mut clients: Vec<Client> = (0..8u8)
        .map(|i| {
            let mut c = net.connect(&pattern(i, 2000 + 301 * usize::from(i)));
            c.close_when_sent = true;
            c
        })
        .collect();
    let mut refs: Vec<&mut Client> = clients.iter_mut().collect();
    let mut least_free = usize::MAX;
    net.run(&mut refs, 60_000, |n, c| {
        least_free = least_free.min(n.server.free_buffers());
        all_echoed_and_finished(n, c)
    });
    net.run(&mut refs, 2_000, |n, _| n.idle_sockets());
    for c in &clients {
        assert_eq!(c.echoed, c.data);
    }
    let total: usize = clients.iter().map(|c| c.data.len()).sum();
    let stats = net.server.stats();
    assert_eq!(stats.peak_conns, 8, "served at the same time");
    assert_eq!(stats.closed.peer_closed, 8);
    assert_eq!(
        (stats.bytes_in, stats.bytes_out),
        (total as u64, total as u64)
    );
    assert_eq!(
        least_free, 0,
        "the pool ran dry, so some connections waited"
    );
    assert_eq!(net.server.free_buffers(), 4);
}

#[test]
fn half_close_delivers_every_byte_then_fin() {
    let mut net = Net::<Loopback, 2, 2, 64>::new(CoreConfig::new());
    let mut client = net.connect(&pattern(9, 3000));
    // The client sends everything and its FIN without reading a byte first.
    client.close_when_sent = true;
    net.run(&mut [&mut client], 5_000, |_, c| {
        c[0].sent == c[0].data.len()
    });
    net.run(&mut [&mut client], 10_000, all_echoed_and_finished);
    assert_eq!(client.echoed, client.data);
    let stats = net.server.stats();
    assert_eq!(stats.closed.peer_closed, 1);
    assert_eq!(stats.bytes_discarded, 0);
}

#[test]
fn a_reset_closes_the_connection_and_frees_its_socket() {
    let mut net = Net::<Loopback, 2, 2, 64>::new(CoreConfig::new());
    let mut client = net.connect(b"ping");
    net.run(&mut [&mut client], 2_000, |_, c| c[0].echoed == b"ping");
    assert_eq!(net.driver.listening(), 1);

    net.socket(client.handle).abort();
    net.run(&mut [], 2_000, |n, _| n.server.stats().closed.reset == 1);
    assert_eq!(net.server.conn_count(), 0);
    net.step();
    assert_eq!(net.driver.listening(), 2, "the reset socket listens again");

    let mut next = net.connect(b"again");
    next.close_when_sent = true;
    net.run(&mut [&mut next], 2_000, all_echoed_and_finished);
    assert_eq!(net.server.stats().closed.peer_closed, 1);
}

#[test]
fn a_full_table_listens_no_more_until_a_slot_frees() {
    let mut net = Net::<Loopback, 3, 2, 64>::new(CoreConfig::new());
    let mut a = net.connect(b"a");
    let mut b = net.connect(b"b");
    net.run(&mut [&mut a, &mut b], 2_000, |_, c| {
        c.iter().all(|c| c.echoed == c.data)
    });
    assert_eq!(net.driver.listening(), 0, "no listener without a free slot");

    // With no socket listening, smoltcp answers the SYN with a RST.
    let mut refused = net.connect(b"c");
    net.run(&mut [&mut refused], 2_000, |n, c| {
        n.state(c[0]) == State::Closed
    });
    assert_eq!(net.server.stats().accepted, 2);

    a.close_when_sent = true;
    net.run(&mut [&mut a], 2_000, all_echoed_and_finished);
    net.step();
    assert_eq!(net.driver.listening(), 1);
    let mut d = net.connect(b"d");
    net.run(&mut [&mut d], 2_000, |_, c| c[0].echoed == b"d");
    assert_eq!(net.server.stats().accepted, 3);
}

#[test]
fn idle_connections_are_aborted() {
    let config = CoreConfig::new().with_idle_timeout(Some(CoreDuration::from_secs(2)));
    let mut net = Net::<Loopback, 1, 1, 64>::new(config);
    let mut client = net.connect(b"x");
    net.run(&mut [&mut client], 1_000, |_, c| c[0].echoed == b"x");
    // The core's deadline reaches smoltcp's clock through the driver.
    let deadline = net.driver.poll_at(&net.server).expect("an idle deadline");
    assert!(deadline > net.now && deadline <= net.now + smoltcp::time::Duration::from_secs(2));

    net.run(&mut [&mut client], 3_000, |n, c| {
        n.state(c[0]) == State::Closed
    });
    let stats = net.server.stats();
    assert_eq!(stats.closed.idle_timeout, 1);
    assert!(!client.fin, "an abort is a RST, not a FIN");
}

#[test]
fn shutdown_delivers_then_drains_until_the_peers_fin() {
    let mut net = Net::<Loopback, 3, 2, 64>::new(CoreConfig::new());
    let mut client = net.connect(&pattern(3, 5000));
    // Shut down in mid-stream: bytes queued in the core, more still coming.
    net.run(&mut [&mut client], 2_000, |_, c| c[0].echoed.len() >= 100);
    let now = echoloop_smoltcp::time::to_core(net.now);
    net.server.shutdown(now, CoreDuration::from_secs(5));
    // The echo of what came before the shutdown, then the server's FIN.
    net.run(&mut [&mut client], 5_000, |_, c| c[0].fin);
    assert_prefix(&client);
    assert_eq!(net.driver.listening(), 0);
    // The core still drains the connection: the client may keep sending.
    assert_eq!(net.server.conn_count(), 1);
    assert!(!net.server.is_shut_down());
    client.close_when_sent = true;
    net.run(&mut [&mut client], 5_000, |n, _| {
        n.server.is_shut_down() && n.idle_sockets()
    });
    assert_eq!(net.driver.listening(), 0, "no listener after a shutdown");
    let stats = net.server.stats();
    assert_eq!(stats.bytes_out, stats.bytes_in);
    assert_eq!(client.echoed.len() as u64, stats.bytes_out);
    // Every byte the client sent was either echoed or drained after the shutdown.
    assert_eq!(stats.bytes_in + stats.bytes_drained, client.sent as u64);
    assert!(stats.bytes_drained > 0, "the client kept sending");
    assert_eq!(stats.closed.shutdown, 1);
}

#[test]
fn a_socket_removed_behind_the_drivers_back_is_a_hang_up() {
    let mut net = Net::<Loopback, 2, 2, 64>::new(CoreConfig::new());
    let mut client = net.connect(b"ping");
    net.run(&mut [&mut client], 2_000, |_, c| c[0].echoed == b"ping");
    let id = net.server.conns().next().unwrap().0;
    let handle = net.driver.socket_of(id).unwrap();
    assert_eq!(net.driver.conn_of(handle), Some(id));

    net.sockets.remove(handle);
    net.step();
    assert_eq!(net.server.stats().closed.error, 1);
    assert_eq!(net.driver.socket_of(id), None);
    assert_eq!(net.driver.conn_of(handle), None);
}

#[test]
fn a_close_handshake_that_never_ends_is_aborted() {
    let device = FaultInjector::new(Loopback::new(Medium::Ip), 1);
    let mut net = Net::<_, 2, 2, 64>::with_device(device, CoreConfig::new());
    let mut client = net.connect(b"bye");
    client.close_when_sent = true;
    net.run(&mut [&mut client], 2_000, |n, _| {
        n.driver.closing(&n.sockets) == 1
    });
    // The network goes silent: the server's FIN is never acknowledged.
    net.device.set_drop_chance(100);
    net.idle(1_000);
    assert_eq!(
        net.driver.closing(&net.sockets),
        1,
        "still waiting for the peer"
    );
    let timeout = net.driver.config().close_timeout.as_millis();
    net.run(&mut [], timeout, |n, _| n.idle_sockets());
    assert_eq!(net.driver.listening(), 2);
}

#[test]
fn a_lossy_network_loses_no_byte() {
    let mut device = FaultInjector::new(Loopback::new(Medium::Ip), 0x5eed);
    device.set_drop_chance(10);
    let mut net = Net::<_, 3, 2, 64>::with_device(device, CoreConfig::new());
    let mut clients: Vec<Client> = (0..2u8)
        .map(|i| {
            let mut c = net.connect(&pattern(i, 4000));
            c.close_when_sent = true;
            c
        })
        .collect();
    let mut refs: Vec<&mut Client> = clients.iter_mut().collect();
    net.run(&mut refs, 600_000, all_echoed_and_finished);
    assert_eq!(net.server.stats().bytes_out, 8000);
}
