//! echoloop as a TCP and UDP echo server (RFC 862, port 7) on a RISC-V hart (riscv32imac,
//! QEMU's `virt` board), reached from the host through a virtio-net device and QEMU's
//! user-mode network (`ports/qemu-riscv/serve` starts it).
//!
//! The same echo service as the Cortex-M4 server (its `echo.rs` and `udp_echo.rs`,
//! included by path), on another instruction set, another network device and another
//! interrupt controller. Static IPv4 10.0.2.15/24, gateway 10.0.2.2: the addresses QEMU's
//! user network gives its one guest anyway. The hart sleeps in `wfi` whenever nothing is
//! to do; the device's interrupt (through the PLIC) and the machine timer, set to the next
//! deadline, wake it. Logs go out with defmt over the UART.
#![no_std]
#![no_main]
#![forbid(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "alloc-canary")]
mod alloc_canary;
#[path = "../../board.rs"]
mod board;
mod clock;
mod dma;
#[path = "../../../qemu-m4/server/src/echo.rs"]
mod echo;
#[path = "../../../qemu-m4/server/src/echo_sizes.rs"]
mod echo_sizes;
mod irq;
mod log;
mod nic;
mod sizes;
#[path = "../../../qemu-m4/server/src/udp_echo.rs"]
mod udp_echo;

use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address};
use static_cell::ConstStaticCell;

use board::exit;
use echo::Echo;
use nic::VirtioNet;
use sizes::{SOCKETS, TCP_RX_BUFFER, TCP_TX_BUFFER};
use udp_echo::UdpEcho;

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

#[riscv_rt::entry]
fn main() -> ! {
    #[cfg(feature = "alloc-canary")]
    defmt::info!("canary: {} bytes allocated", alloc_canary::allocate());
    let mut nic = match VirtioNet::new() {
        Ok(nic) => nic,
        Err(e) => {
            defmt::error!("no virtio-net device: {}", e);
            exit(1)
        }
    };
    let mac = nic.mac();
    defmt::info!(
        "virtio-net at PLIC source {}, MAC {=[u8]:02x}",
        nic.irq(),
        mac
    );
    irq::enable(nic.irq());

    let mut iface_config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    // Seeds TCP's initial sequence numbers; QEMU's user network is private to this run.
    iface_config.random_seed = 0x6563_686f_6c6f_6f70;
    let mut iface = Interface::new(iface_config, &mut nic, clock::now());
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
            exit(1)
        }
    };
    echo.poll(clock::now(), &mut sockets);
    udp.poll(clock::now(), &mut sockets);
    defmt::info!(
        "listening on {=[u8]}:{} with {} sockets",
        ADDRESS.octets(),
        echo::PORT,
        echo.listening()
    );

    loop {
        if let Some(source) = irq::claim() {
            // Quiet the device before completing, or the PLIC forwards its line again.
            nic.ack_interrupt();
            irq::complete(source);
        }
        let now = clock::now();
        iface.poll(now, &mut nic, &mut sockets);
        // Both, whatever the first did: neither service waits for the other.
        let moved = echo.poll(now, &mut sockets);
        if udp.poll(now, &mut sockets) || moved {
            // The core moved bytes or datagrams: smoltcp has packets to send now.
            continue;
        }
        let next = match (iface.poll_at(now, &sockets), echo.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // A frame waiting (smoltcp takes a bounded burst per poll) or a deadline already
        // due: go round again. Otherwise sleep until the device interrupts or the next
        // deadline comes.
        clock::wake_at(next);
        irq::sleep_unless(|| nic.rx_pending() || next.is_some_and(|at| at <= now));
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

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(at) => defmt::error!("panicked at {=str}:{}", at.file(), at.line()),
        None => defmt::error!("panicked"),
    }
    exit(1)
}

/// A trap the firmware does not expect (it enables none that trap): log it and end the
/// run, so that QEMU stops with status 1 instead of spinning until a timeout.
#[export_name = "ExceptionHandler"]
fn exception(frame: &riscv_rt::TrapFrame) -> ! {
    defmt::error!(
        "exception {=usize} at pc {=usize:#x} (ra {=usize:#x})",
        riscv::register::mcause::read().code(),
        riscv::register::mepc::read(),
        frame.ra
    );
    exit(1)
}
