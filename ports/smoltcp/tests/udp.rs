//! UDP echo through `UdpDriver` and the core's `UdpEcho` over smoltcp's loopback: every
//! byte of every size a slot holds, a too-long datagram dropped, a guarded source port
//! unanswered, and a flooding source limited while another is served.

use echoloop_core::udp::{Budget, UdpConfig, UdpEcho, UdpStaticStorage};
use echoloop_core::Instant as CoreInstant;
use echoloop_smoltcp::UdpDriver;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Loopback, Medium};
use smoltcp::socket::udp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint};

const PORT: u16 = 7;
const SLOT: usize = 512;
type Echo = UdpEcho<UdpStaticStorage<5, SLOT, 8>>;

struct Net {
    now: Instant,
    device: Loopback,
    iface: Interface,
    sockets: SocketSet<'static>,
    driver: UdpDriver,
    echo: Echo,
}

fn socket(payload: usize) -> udp::Socket<'static> {
    let buf = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0u8; payload]);
    udp::Socket::new(buf(), buf())
}

impl Net {
    fn new(config: UdpConfig) -> Net {
        let mut device = Loopback::new(Medium::Ip);
        let now = Instant::ZERO;
        let mut iface = Interface::new(IfaceConfig::new(HardwareAddress::Ip), &mut device, now);
        iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap());
        let mut sockets = SocketSet::new(vec![]);
        let server = sockets.add(socket(4096));
        Net {
            now,
            device,
            iface,
            sockets,
            driver: UdpDriver::new(PORT, server),
            echo: Echo::new_static(config),
        }
    }

    fn client(&mut self, port: u16) -> SocketHandle {
        let mut s = socket(8192);
        s.bind(port).unwrap();
        self.sockets.add(s)
    }

    fn send(&mut self, client: SocketHandle, data: &[u8]) {
        let to = IpEndpoint::new(IpAddress::v4(127, 0, 0, 1), PORT);
        self.sockets
            .get_mut::<udp::Socket>(client)
            .send_slice(data, to)
            .unwrap();
    }

    fn run(&mut self) {
        for _ in 0..20 {
            self.iface
                .poll(self.now, &mut self.device, &mut self.sockets);
            let now = CoreInstant::from_millis(self.now.total_millis() as u64);
            self.driver.poll(now, &mut self.echo, &mut self.sockets);
            self.now += Duration::from_millis(1);
        }
    }

    fn received(&mut self, client: SocketHandle) -> Vec<Vec<u8>> {
        let s = self.sockets.get_mut::<udp::Socket>(client);
        let mut out = Vec::new();
        while let Ok((data, meta)) = s.recv() {
            assert_eq!(meta.endpoint.port, PORT);
            out.push(data.to_vec());
        }
        out
    }
}

fn datagram(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn every_size_a_slot_holds_comes_back_byte_for_byte() {
    let mut net = Net::new(UdpConfig::new());
    let client = net.client(40000);
    for len in [0, 1, 2, 100, 511, 512] {
        let sent = datagram(len, len as u8);
        net.send(client, &sent);
        net.run();
        assert_eq!(net.received(client), vec![sent], "{len} bytes");
    }
    net.send(client, &datagram(513, 1));
    net.run();
    assert!(
        net.received(client).is_empty(),
        "longer than a slot: dropped"
    );
    let s = net.echo.stats();
    assert_eq!((s.echoed, s.dropped.truncated), (6, 1));
}

#[test]
fn a_guarded_source_port_gets_no_reply() {
    let mut net = Net::new(UdpConfig::new());
    let chargen = net.client(19);
    let ok = net.client(40001);
    net.send(chargen, b"loop?");
    net.send(ok, b"hello");
    net.run();
    assert!(net.received(chargen).is_empty());
    assert_eq!(net.received(ok), vec![b"hello".to_vec()]);
    assert_eq!(net.echo.stats().dropped.loop_guard, 1);
}

#[test]
fn a_flood_does_not_stop_another_source() {
    let config = UdpConfig {
        datagrams: Budget {
            per_sec: 10,
            burst: 4,
        },
        ..UdpConfig::new()
    };
    let mut net = Net::new(config);
    let flood = net.client(40002);
    let calm = net.client(40003);
    for round in 0..5u8 {
        for i in 0..10u8 {
            net.send(flood, &[round, i]);
        }
        net.send(calm, &[round]);
        net.run();
        assert_eq!(net.received(calm), vec![vec![round]], "round {round}");
        let flooded = net.received(flood);
        assert!(flooded.len() <= 4, "within its burst: {}", flooded.len());
        // 100 ms pass: the calm source's budget refills.
        for _ in 0..5 {
            net.run();
        }
    }
    assert!(net.echo.stats().dropped.flood_guard >= 30);
}
