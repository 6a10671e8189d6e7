//! echoloop as a TCP and UDP echo server (RFC 862, port 7) on a Cortex-M4, QEMU's `mps2-an386`,
//! reached from the host through the board's emulated LAN9118 Ethernet controller and
//! QEMU's user-mode network (`ports/qemu-m4/serve` starts it).
//!
//! Static IPv4 10.0.2.15/24, gateway 10.0.2.2: the addresses QEMU's user network gives
//! its one guest anyway, so DHCP would add a socket, its memory and a start-up exchange to
//! learn what is known. The CPU sleeps in `wfi` whenever nothing is to do; the LAN9118's
//! receive interrupt and a 100 Hz SysTick wake it. Logs go out with defmt over
//! semihosting.
#![no_std]
#![no_main]
#![forbid(unsafe_op_in_unsafe_fn)]

mod clock;
mod echo;
mod echo_sizes;
mod irq;
#[path = "../../rt.rs"]
mod rt;
mod sizes;
mod udp_echo;

use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use defmt_semihosting as _;
use echoloop_lan9118::{Config as EthConfig, Lan9118, Mmio, MPS2_BASE};
use echoloop_smoltcp::SynBacklog;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address};
use static_cell::ConstStaticCell;

use clock::Clock;
use echo::Echo;
use rt::exit;
use sizes::{BACKLOG_SYNS, SOCKETS, SYN_FRAME, TCP_RX_BUFFER, TCP_TX_BUFFER};
use udp_echo::UdpEcho;

/// QEMU's default NIC address; any locally administered one would do.
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const ADDRESS: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
const PREFIX: u8 = 24;
const GATEWAY: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);

/// A socket's receive and send buffers.
type Buffers = ([u8; TCP_RX_BUFFER], [u8; TCP_TX_BUFFER]);

/// The TCP sockets and the UDP echo's.
static SOCKET_STORAGE: ConstStaticCell<[SocketStorage<'static>; SOCKETS + 1]> =
    ConstStaticCell::new([SocketStorage::EMPTY; SOCKETS + 1]);
static BUFFERS: ConstStaticCell<[Buffers; SOCKETS]> =
    ConstStaticCell::new([([0; TCP_RX_BUFFER], [0; TCP_TX_BUFFER]); SOCKETS]);
static ETHERNET: ConstStaticCell<Option<Lan9118<Mmio>>> = ConstStaticCell::new(None);
/// SYNs that arrive while every slot is busy wait here rather than get a RST.
static BACKLOG: ConstStaticCell<SynBacklog<BACKLOG_SYNS, SYN_FRAME, SOCKETS>> =
    ConstStaticCell::new(SynBacklog::ethernet(echo::PORT));

#[entry]
fn main() -> ! {
    let Some(core) = cortex_m::Peripherals::take() else {
        exit(debug::EXIT_FAILURE)
    };
    let mut clock = Clock::start(core.SYST);
    // SAFETY: the mps2-an386 maps its LAN9118 at MPS2_BASE, and this is its only user.
    let regs = unsafe { Mmio::new(MPS2_BASE) };
    let mut config = EthConfig::new(MAC);
    // QEMU's model does not free the FIFO space of a fast-forwarded frame.
    config.fast_forward = false;
    let eth = match Lan9118::new(regs, config) {
        Ok(eth) => ETHERNET.take().insert(eth),
        Err(e) => {
            defmt::error!("no LAN9118: {}", e);
            exit(debug::EXIT_FAILURE)
        }
    };
    defmt::info!("LAN9118 id {=u32:#x}, MAC {=[u8]:02x}", eth.chip_id(), MAC);
    eth.enable_rx_interrupt();
    irq::unmask();

    let mut iface_config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(MAC)));
    // Seeds TCP's initial sequence numbers; QEMU's user network is private to this run.
    iface_config.random_seed = 0x6563_686f_6c6f_6f70;
    let mut iface = Interface::new(iface_config, &mut *eth, clock.now());
    iface.update_ip_addrs(|addrs| {
        // One address in a list of capacity one or more: cannot fail.
        let _ = addrs.push(IpCidr::new(ADDRESS.into(), PREFIX));
    });
    // A full route table (it holds several) is the only error: cannot happen here.
    let _ = iface.routes_mut().add_default_ipv4_route(GATEWAY);

    let mut sockets = SocketSet::new(&mut SOCKET_STORAGE.take()[..]);
    let handles = BUFFERS
        .take()
        .each_mut()
        .map(|b| add_socket(&mut sockets, b));
    let mut echo = Echo::new(handles);
    let mut udp = match UdpEcho::new(&mut sockets) {
        Ok(udp) => udp,
        Err(e) => {
            defmt::error!("udp echo: {}", e);
            exit(debug::EXIT_FAILURE)
        }
    };
    let backlog = BACKLOG.take();
    let mut reported = backlog.stats();
    echo.poll(clock.now(), &mut sockets);
    udp.poll(clock.now(), &mut sockets);
    defmt::info!(
        "listening on {=[u8]}:{} with {} sockets",
        ADDRESS.octets(),
        echo::PORT,
        echo.listening()
    );

    loop {
        if irq::take() {
            // Acknowledge before draining: a frame that lands after this raises it again.
            eth.ack_interrupts();
            irq::unmask();
        }
        let now = clock.now();
        backlog.update(&sockets);
        iface.poll(now, &mut backlog.gate(&mut *eth), &mut sockets);
        // Both, whatever the first did: neither service waits for the other.
        let moved = echo.poll(now, &mut sockets);
        if udp.poll(now, &mut sockets) || moved {
            // The core moved bytes or datagrams: smoltcp has packets to send now.
            continue;
        }
        backlog.update(&sockets);
        if backlog.can_release() {
            // A socket listens again and a SYN waits for it.
            continue;
        }
        if backlog.waiting() == 0 && backlog.stats() != reported {
            reported = backlog.stats();
            defmt::info!("backlog: {}", reported);
        }
        let next = match (iface.poll_at(now, &sockets), echo.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Frames left in the FIFO (smoltcp takes them only while the TX FIFO has room) or
        // a deadline already due: go round again. Otherwise sleep until an interrupt: a
        // frame, or the next tick, which is soon enough for any deadline.
        irq::sleep_unless(|| eth.rx_pending() > 0 || next.is_some_and(|at| at <= now));
    }
}

/// A TCP socket on a pair of static buffers, added to the set.
fn add_socket(sockets: &mut SocketSet<'static>, buffers: &'static mut Buffers) -> SocketHandle {
    let (rx, tx) = buffers;
    sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(&mut rx[..]),
        tcp::SocketBuffer::new(&mut tx[..]),
    ))
}
