//! A whole network in one process: an interface on a loopback device, the echo server's
//! sockets driven by the driver, and client sockets, all on 127.0.0.1 with a mock clock.

use echoloop_core::{Config as CoreConfig, ConnSlot, Server, SliceStorage};
use echoloop_smoltcp::{Config, Driver, Polled, SynBacklog};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, Loopback, Medium};
use smoltcp::socket::tcp::{self, RecvError, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

pub const PORT: u16 = 8090;
/// Each socket's receive and send buffer. Larger than the core's queues in these tests,
/// so that backpressure has to come from the core and the queues wrap around.
const SOCKET_BUF: usize = 1024;

pub struct Net<D: Device, const SOCKETS: usize, const CONNS: usize, const QUEUE: usize> {
    pub now: Instant,
    pub device: D,
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    pub server: Server<SliceStorage<'static>>,
    pub driver: Driver<SOCKETS>,
    /// SYNs held while no server socket listens, when the test asks for it.
    pub backlog: Option<SynBacklog<64, 128, 16>>,
    next_port: u16,
}

/// A client connection with the bytes it will send and what came back so far.
pub struct Client {
    pub handle: SocketHandle,
    pub data: Vec<u8>,
    pub sent: usize,
    pub echoed: Vec<u8>,
    /// Recv said Finished: the server's FIN arrived after every byte.
    pub fin: bool,
    /// Close (FIN) once everything is sent.
    pub close_when_sent: bool,
}

impl<const S: usize, const C: usize, const Q: usize> Net<Loopback, S, C, Q> {
    pub fn new(config: CoreConfig) -> Self {
        Self::with_device(Loopback::new(Medium::Ip), config)
    }
}

impl<D: Device, const S: usize, const C: usize, const Q: usize> Net<D, S, C, Q> {
    pub fn with_device(device: D, config: CoreConfig) -> Self {
        Self::with_buffers(device, config, C)
    }

    /// A server of `C` connections sharing `buffers` buffers of `Q` bytes.
    pub fn with_buffers(mut device: D, config: CoreConfig, buffers: usize) -> Self {
        let now = Instant::ZERO;
        let mut iface = Interface::new(IfaceConfig::new(HardwareAddress::Ip), &mut device, now);
        iface.update_ip_addrs(|addrs| {
            addrs
                .push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8))
                .unwrap();
        });
        let mut sockets = SocketSet::new(vec![]);
        let handles = [(); S].map(|()| sockets.add(tcp_socket()));
        Net {
            now,
            device,
            iface,
            sockets,
            server: Server::new(config, storage(C, buffers, Q)).unwrap(),
            driver: Driver::new(Config::new(PORT), handles),
            backlog: None,
            next_port: 49152,
        }
    }

    /// Every socket of the driver is idle: none serves or is closing a connection.
    pub fn idle_sockets(&self) -> bool {
        self.driver.is_idle(&self.sockets)
    }

    /// Opens a client connection that will send `data`.
    pub fn connect(&mut self, data: &[u8]) -> Client {
        let handle = self.sockets.add(tcp_socket());
        let port = self.next_port;
        self.next_port += 1;
        self.sockets
            .get_mut::<tcp::Socket>(handle)
            .connect(
                self.iface.context(),
                (IpAddress::v4(127, 0, 0, 1), PORT),
                port,
            )
            .unwrap();
        Client {
            handle,
            data: data.to_vec(),
            sent: 0,
            echoed: Vec::new(),
            fin: false,
            close_when_sent: false,
        }
    }

    pub fn socket(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }

    pub fn state(&mut self, client: &Client) -> State {
        self.socket(client.handle).state()
    }

    /// One round: smoltcp, then the driver, then a millisecond passes.
    pub fn step(&mut self) -> Polled {
        match &mut self.backlog {
            Some(backlog) => {
                backlog.update(&self.sockets);
                self.iface.poll(
                    self.now,
                    &mut backlog.gate(&mut self.device),
                    &mut self.sockets,
                );
            }
            None => {
                self.iface
                    .poll(self.now, &mut self.device, &mut self.sockets);
            }
        }
        let polled = self
            .driver
            .poll(self.now, &mut self.server, &mut self.sockets);
        self.now += Duration::from_millis(1);
        polled
    }

    /// Sends what the client's socket takes, receives what it holds.
    pub fn pump(&mut self, client: &mut Client) {
        let socket = self.sockets.get_mut::<tcp::Socket>(client.handle);
        if socket.can_send() && client.sent < client.data.len() {
            client.sent += socket.send_slice(&client.data[client.sent..]).unwrap();
        }
        if client.close_when_sent && client.sent == client.data.len() {
            socket.close();
        }
        let mut buf = [0u8; 300];
        match socket.recv_slice(&mut buf) {
            Ok(n) => client.echoed.extend_from_slice(&buf[..n]),
            Err(RecvError::Finished) => client.fin = true,
            Err(RecvError::InvalidState) => {}
        }
    }

    /// Steps and pumps every client until `done` holds; panics after `max_ms` simulated ms.
    pub fn run(
        &mut self,
        clients: &mut [&mut Client],
        max_ms: u64,
        mut done: impl FnMut(&mut Self, &[&mut Client]) -> bool,
    ) {
        let deadline = self.now + Duration::from_millis(max_ms);
        while !done(self, clients) {
            assert!(self.now < deadline, "not done after {max_ms} ms");
            self.step();
            for client in clients.iter_mut() {
                self.pump(client);
            }
        }
    }

    /// Steps with no client activity for `ms` simulated milliseconds.
    pub fn idle(&mut self, ms: u64) {
        for _ in 0..ms {
            self.step();
        }
    }
}

pub fn tcp_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; SOCKET_BUF]),
        tcp::SocketBuffer::new(vec![0; SOCKET_BUF]),
    )
}

/// `len` bytes that differ from one client to the next and do not repeat with any period
/// a queue or socket buffer size would hide.
pub fn pattern(client: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(31)
                .wrapping_add(u32::from(client) * 7 + (i as u32 >> 8)) as u8
        })
        .collect()
}

/// Every byte echoed so far equals the byte sent at the same offset.
pub fn assert_prefix(client: &Client) {
    assert!(client.echoed.len() <= client.sent, "echoed more than sent");
    if let Some(i) = client
        .echoed
        .iter()
        .zip(&client.data)
        .position(|(a, b)| a != b)
    {
        panic!(
            "byte {i} differs: got {}, sent {}",
            client.echoed[i], client.data[i]
        );
    }
}

/// Tables for a test server, leaked: they live as long as the test process.
fn storage(conns: usize, buffers: usize, queue: usize) -> SliceStorage<'static> {
    let slots = Vec::leak(vec![ConnSlot::EMPTY; conns]);
    let free = Vec::leak(vec![0u16; buffers]);
    let bytes = Vec::leak(vec![0u8; buffers * queue]);
    SliceStorage::new(slots, free, bytes, queue).unwrap()
}
