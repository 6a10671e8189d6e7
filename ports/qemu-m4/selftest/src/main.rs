//! echoloop on a Cortex-M4 (QEMU `mps2-an386`): the echo server, the core driven by the
//! smoltcp driver, and a client, talking over a heap-free loopback device.
//!
//! Every client connection sends the seed's four messages and a stream, each echo is
//! checked byte for byte, the server is shut down gracefully, and QEMU exits with 0 when
//! all of it went right, 1 otherwise. Meanwhile the UDP echo (the core's `UdpEcho` on a
//! smoltcp UDP socket through `UdpDriver`) answers datagrams of a few sizes, each checked
//! byte for byte, and refuses one from a guarded source port. The log goes out with defmt
//! over semihosting.
#![no_std]
#![no_main]
#![forbid(unsafe_op_in_unsafe_fn)]

mod client;
mod clock;
#[path = "../../rt.rs"]
mod rt;
mod sizes;
mod udp_client;

use core::mem::size_of;

use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use defmt_semihosting as _;
use echoloop_core::udp::{UdpConfig, UdpEcho, UdpStaticStorage};
use echoloop_core::{Config as CoreConfig, Duration as CoreDuration, Server, StaticStorage};
use echoloop_smoltcp::{time::to_core, Config, Driver, StaticLoopback, UdpDriver};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::Medium;
use smoltcp::socket::{tcp, udp, AnySocket};
use smoltcp::time::Duration;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint};
use static_cell::ConstStaticCell;

use client::{Client, Failure};
use clock::Clock;
use rt::exit;
use sizes::{
    BUFFERS, CLIENTS, CONNS, MTU, PACKETS, QUEUE, SERVER_SOCKETS, SOCKETS, TCP_BUFFER, UDP_BUFFER,
    UDP_PACKETS, UDP_SLOT, UDP_SLOTS, UDP_SOCKETS, UDP_SOURCES,
};
use udp_client::{UdpClient, UdpFailure};

const PORT: u16 = 8090;
/// The UDP echo's port (RFC 862's).
const UDP_PORT: u16 = 7;
const ADDRESS: IpAddress = IpAddress::v4(127, 0, 0, 1);
/// Times every client runs the whole script: the second wave gets recycled sockets and
/// reused core slots (new generations).
const WAVES: usize = 2;
/// Give up after this much simulated time: a stuck conversation fails, it does not hang.
const DEADLINE_MS: i64 = 60_000;
/// And after this many rounds, in case the clock stops advancing.
const MAX_ROUNDS: u32 = 1_000_000;

const CORE_CONFIG: CoreConfig =
    CoreConfig::new().with_idle_timeout(Some(CoreDuration::from_secs(10)));

type EchoServer = Server<StaticStorage<CONNS, BUFFERS, QUEUE>>;
/// A socket's receive and send buffers.
type Buffers = [[u8; TCP_BUFFER]; 2];
type UdpServer = UdpEcho<UdpStaticStorage<UDP_SLOTS, UDP_SLOT, UDP_SOURCES>>;
/// A UDP socket's receive and send records of datagrams.
type UdpMetadata = [[udp::PacketMetadata; UDP_PACKETS]; 2];
/// A UDP socket's receive and send payload bytes.
type UdpPayload = [[u8; UDP_BUFFER]; 2];

/// The flood guard's hash key. A board takes it from a hardware random number generator,
/// so that a sender cannot aim sources at one set; the demo's traffic is its own.
const UDP_HASH_KEY: u64 = 0x7564_7065_6368_6f21;

// The statics are taken once, at start, as `&'static mut`: no `static mut`, no unsafe,
// and the memory is all in `.bss`/`.data` where `size` counts it.
static SERVER: ConstStaticCell<EchoServer> = ConstStaticCell::new(Server::new_static(CORE_CONFIG));
static DEVICE: ConstStaticCell<StaticLoopback<PACKETS, MTU>> =
    ConstStaticCell::new(StaticLoopback::new(Medium::Ip));
static SOCKET_STORAGE: ConstStaticCell<[SocketStorage<'static>; SOCKETS]> =
    ConstStaticCell::new([SocketStorage::EMPTY; SOCKETS]);
static SERVER_BUFFERS: ConstStaticCell<[Buffers; SERVER_SOCKETS]> =
    ConstStaticCell::new([[[0; TCP_BUFFER]; 2]; SERVER_SOCKETS]);
static CLIENT_BUFFERS: ConstStaticCell<[Buffers; CLIENTS]> =
    ConstStaticCell::new([[[0; TCP_BUFFER]; 2]; CLIENTS]);
static UDP_ECHO: ConstStaticCell<UdpServer> = ConstStaticCell::new(UdpEcho::new_static({
    let mut config = UdpConfig::new();
    config.hash_key = UDP_HASH_KEY;
    config
}));
// Payloads apart from the records: all zeros, they stay in `.bss` and cost no flash.
static UDP_METADATA: ConstStaticCell<[UdpMetadata; UDP_SOCKETS]> =
    ConstStaticCell::new([[[udp::PacketMetadata::EMPTY; UDP_PACKETS]; 2]; UDP_SOCKETS]);
static UDP_PAYLOADS: ConstStaticCell<[UdpPayload; UDP_SOCKETS]> =
    ConstStaticCell::new([[[0; UDP_BUFFER]; 2]; UDP_SOCKETS]);

#[entry]
fn main() -> ! {
    let status = match run() {
        Ok(()) => {
            defmt::info!("PASS");
            debug::EXIT_SUCCESS
        }
        Err(failure) => {
            defmt::error!("FAIL: {}", failure);
            debug::EXIT_FAILURE
        }
    };
    exit(status)
}

/// Why the run failed.
#[derive(defmt::Format)]
enum Fail {
    Client(Failure),
    Udp(UdpFailure),
    /// The UDP echo's statistics disagree with what the UDP client saw.
    UdpStats,
    /// Not finished within [`DEADLINE_MS`] or [`MAX_ROUNDS`].
    TimedOut,
    /// The server's statistics disagree with what the clients saw.
    Stats,
}

impl From<UdpFailure> for Fail {
    fn from(f: UdpFailure) -> Self {
        Fail::Udp(f)
    }
}

impl From<Failure> for Fail {
    fn from(f: Failure) -> Self {
        Fail::Client(f)
    }
}

fn run() -> Result<(), Fail> {
    defmt::info!(
        "echoloop on Cortex-M4: {} connections, {} buffers x {} B, server core {} B, driver {} B",
        CONNS,
        BUFFERS,
        QUEUE,
        size_of::<EchoServer>(),
        size_of::<Driver<SERVER_SOCKETS>>()
    );
    defmt::info!(
        "udp echo on port {}: {} slots x {} B, {} sources, core {} B",
        UDP_PORT,
        UDP_SLOTS,
        UDP_SLOT,
        UDP_SOURCES,
        size_of::<UdpServer>()
    );
    let mut clock = Clock::new();
    let server = SERVER.take();
    let device = DEVICE.take();
    let mut iface = Interface::new(IfaceConfig::new(HardwareAddress::Ip), device, clock.now());
    iface.update_ip_addrs(|addrs| {
        // One address in a list of capacity one or more: cannot fail.
        let _ = addrs.push(IpCidr::new(ADDRESS, 8));
    });
    let mut sockets = SocketSet::new(&mut SOCKET_STORAGE.take()[..]);
    let server_handles = SERVER_BUFFERS
        .take()
        .each_mut()
        .map(|b| add_socket(&mut sockets, b));
    let client_handles = CLIENT_BUFFERS
        .take()
        .each_mut()
        .map(|b| add_socket(&mut sockets, b));
    let mut driver = Driver::<SERVER_SOCKETS>::new(Config::new(PORT), server_handles);
    let udp_echo = UDP_ECHO.take();
    let [server_meta, client_meta, guarded_meta] = UDP_METADATA.take();
    let [server_payload, client_payload, guarded_payload] = UDP_PAYLOADS.take();
    let udp_server = add_udp_socket(&mut sockets, server_meta, server_payload);
    let udp_client = add_udp_socket(&mut sockets, client_meta, client_payload);
    let udp_guarded = add_udp_socket(&mut sockets, guarded_meta, guarded_payload);
    let mut udp_driver = UdpDriver::new(UDP_PORT, udp_server);
    let mut udp = UdpClient::new(IpEndpoint::new(ADDRESS, UDP_PORT));
    let (client_socket, guarded_socket) = udp_sockets(&mut sockets, udp_client, udp_guarded)?;
    UdpClient::bind(client_socket, guarded_socket)?;

    // Listen before the first SYN arrives: smoltcp resets a SYN nobody listens for.
    driver.poll(clock.now(), server, &mut sockets);
    defmt::info!(
        "listening on 127.0.0.1:{} with {} sockets",
        PORT,
        driver.listening()
    );

    let mut clients: [Client; CLIENTS] = core::array::from_fn(|i| Client::new(i as u8));
    let mut wave = 0;
    let mut shutting_down = false;
    connect(&mut iface, &mut sockets, &clients, &client_handles, wave)?;
    for _ in 0..MAX_ROUNDS {
        let now = clock.now();
        iface.poll(now, device, &mut sockets);
        let polled = driver.poll(now, server, &mut sockets);
        let udp_polled = udp_driver.poll(to_core(now), udp_echo, &mut sockets);
        for (client, &handle) in clients.iter_mut().zip(&client_handles) {
            client.step(sockets.get_mut::<tcp::Socket>(handle))?;
        }
        let (client_socket, guarded_socket) = udp_sockets(&mut sockets, udp_client, udp_guarded)?;
        udp.step(client_socket, guarded_socket)?;

        if !shutting_down && clients.iter().all(Client::is_done) && udp.is_done() {
            if wave == 0 {
                check_udp_stats(udp_echo, &udp)?;
            }
            wave += 1;
            check_stats(server, wave)?;
            if wave < WAVES {
                defmt::info!("wave {} done; the next one reuses the server's slots", wave);
                clients = core::array::from_fn(|i| Client::new(i as u8));
                connect(&mut iface, &mut sockets, &clients, &client_handles, wave)?;
                continue;
            }
            defmt::info!("every byte echoed; shutting down");
            server.shutdown(to_core(now), CoreDuration::from_secs(1));
            shutting_down = true;
        }
        if shutting_down
            && server.is_shut_down()
            && driver.is_idle(&sockets)
            && driver.listening() == 0
        {
            defmt::info!("shut down: {}", server.stats());
            // Nothing answered the guarded port, however long the shutdown took.
            let (client_socket, guarded_socket) =
                udp_sockets(&mut sockets, udp_client, udp_guarded)?;
            udp.step(client_socket, guarded_socket)?;
            check_udp_stats(udp_echo, &udp)?;
            return Ok(());
        }

        // Packets in the loopback ring, or bytes the driver just moved, are work for the
        // next round right away: smoltcp's poll_delay only knows its sockets' timers.
        if device.queued() > 0 || !polled.is_empty() || !udp_polled.is_empty() {
            continue;
        }
        let wait = iface
            .poll_delay(now, &sockets)
            .unwrap_or(Duration::from_millis(1));
        // smoltcp's `Instant - Instant` is the absolute difference: a deadline already
        // past must count as no wait, not as the time since it passed.
        let driver_wait =
            driver
                .poll_at(server)
                .map(|at| if at > now { at - now } else { Duration::ZERO });
        clock.advance(driver_wait.map_or(wait, |d| d.min(wait)));
        if clock.now().total_millis() > DEADLINE_MS {
            break;
        }
    }
    Err(Fail::TimedOut)
}

/// Connects every client; each wave from new local ports, so that no segment of an old
/// connection can be taken for one of the new.
fn connect(
    iface: &mut Interface,
    sockets: &mut SocketSet<'static>,
    clients: &[Client; CLIENTS],
    handles: &[SocketHandle; CLIENTS],
    wave: usize,
) -> Result<(), Failure> {
    for (k, (client, &handle)) in clients.iter().zip(handles).enumerate() {
        let local_port = 49152 + (wave * CLIENTS + k) as u16;
        sockets
            .get_mut::<tcp::Socket>(handle)
            .connect(iface.context(), (ADDRESS, PORT), local_port)
            .map_err(|_| client.connect_failed())?;
    }
    Ok(())
}

/// A TCP socket on a pair of static buffers, added to the set.
fn add_socket(sockets: &mut SocketSet<'static>, buffers: &'static mut Buffers) -> SocketHandle {
    let [rx, tx] = buffers;
    sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(&mut rx[..]),
        tcp::SocketBuffer::new(&mut tx[..]),
    ))
}

/// A UDP socket on a pair of static buffers, added to the set.
fn add_udp_socket(
    sockets: &mut SocketSet<'static>,
    metadata: &'static mut UdpMetadata,
    payload: &'static mut UdpPayload,
) -> SocketHandle {
    let [rx_meta, tx_meta] = metadata;
    let [rx, tx] = payload;
    sockets.add(udp::Socket::new(
        udp::PacketBuffer::new(&mut rx_meta[..], &mut rx[..]),
        udp::PacketBuffer::new(&mut tx_meta[..], &mut tx[..]),
    ))
}

/// The UDP client's two sockets, borrowed together.
fn udp_sockets<'s>(
    sockets: &'s mut SocketSet<'static>,
    client: SocketHandle,
    guarded: SocketHandle,
) -> Result<(&'s mut udp::Socket<'static>, &'s mut udp::Socket<'static>), UdpFailure> {
    let mut client_socket = None;
    let mut guarded_socket = None;
    for (handle, socket) in sockets.iter_mut() {
        if handle == client {
            client_socket = udp::Socket::downcast_mut(socket);
        } else if handle == guarded {
            guarded_socket = udp::Socket::downcast_mut(socket);
        }
    }
    client_socket.zip(guarded_socket).ok_or(UdpFailure::Socket)
}

/// The UDP echo saw what the UDP client saw: every datagram received, each of the
/// client's echoed with its bytes, the guarded one dropped by the loop guard, nothing else
/// dropped nor waiting.
fn check_udp_stats(echo: &UdpServer, client: &UdpClient) -> Result<(), Fail> {
    let stats = echo.stats();
    let (datagrams, bytes) = client.echoed();
    defmt::info!("udp echo: {}", stats);
    let ok = client.is_done()
        && stats.received == datagrams as u64 + 1
        && stats.echoed == datagrams as u64
        && stats.bytes_in == bytes as u64
        && stats.bytes_out == bytes as u64
        && stats.dropped.loop_guard == 1
        && stats.dropped.total() == 1
        && echo.queued() == 0;
    if ok {
        Ok(())
    } else {
        Err(Fail::UdpStats)
    }
}

/// The server saw what the clients saw after `waves` waves: every connection accepted and
/// closed by its peer, every byte in and out, nothing lost.
fn check_stats(server: &EchoServer, waves: usize) -> Result<(), Fail> {
    let stats = server.stats();
    let conns = (waves * CLIENTS) as u64;
    let total = conns * Client::script_len() as u64;
    defmt::info!("server: {}", stats);
    let ok = stats.accepted == conns
        && stats.closed.peer_closed == conns
        && stats.closed.total() == conns
        && stats.bytes_in == total
        && stats.bytes_out == total
        && stats.bytes_discarded == 0
        && stats.peak_queue <= QUEUE
        && stats.peak_conns == CLIENTS
        && server.free_buffers() == BUFFERS;
    if ok {
        Ok(())
    } else {
        Err(Fail::Stats)
    }
}
