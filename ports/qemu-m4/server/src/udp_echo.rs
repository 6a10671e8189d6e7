//! The UDP echo service (RFC 862's datagram half): the core's `UdpEcho` on one smoltcp
//! UDP socket through `UdpDriver`. The firmware's only contact with the UDP side of
//! `echoloop-core` and `echoloop-smoltcp` is here, as `echo.rs` is for TCP.

use core::mem::size_of;

use echoloop_core::udp::{
    Budget, DatagramSlot, SourceSlot, UdpConfig, UdpEcho as CoreUdpEcho, UdpSliceStorage,
    UdpStorageError,
};
use echoloop_smoltcp::{time::to_core, UdpDriver};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::udp;
use smoltcp::time::Instant;
use static_cell::ConstStaticCell;

use crate::echo::PORT;
use crate::sizes::{UDP_BUFFER, UDP_PACKETS, UDP_SLOT, UDP_SLOTS, UDP_SOURCES};

type Echo = CoreUdpEcho<UdpSliceStorage<'static>>;

/// The flood guard's hash key. A board takes it from a hardware random number generator,
/// so that a sender cannot aim sources at one set of the table; QEMU's user network is
/// private to one run.
const HASH_KEY: u64 = 0x7564_7065_6368_6f37;

/// Datagrams one source may have echoed: 256 a second, bursts of 64. The core's defaults
/// (4,096 a second, 4 MiB a second) are above what this firmware sends at all (600 to
/// 2,000 datagrams a second under QEMU, by load), so they would guard nothing here; a
/// budget well below its slowest pace holds whatever the machine.
const DATAGRAMS: Budget = Budget {
    per_sec: 256,
    burst: 64,
};
/// Bytes one source may have echoed: 512 KiB a second, bursts of 64 KiB (room for the
/// largest datagram many times over).
const BYTES_BUDGET: Budget = Budget {
    per_sec: 512 << 10,
    burst: 64 << 10,
};

// The core's tables, lent to it as slices rather than held in a `UdpStaticStorage`
// beside its configuration: the configuration holds a pointer, so a static holding both
// would go to `.data` and cost its 12 KiB of zeros in flash too.
static SLOTS: ConstStaticCell<[DatagramSlot; UDP_SLOTS]> =
    ConstStaticCell::new([DatagramSlot::EMPTY; UDP_SLOTS]);
static BYTES: ConstStaticCell<[u8; UDP_SLOTS * UDP_SLOT]> =
    ConstStaticCell::new([0; UDP_SLOTS * UDP_SLOT]);
static SOURCES: ConstStaticCell<[SourceSlot; UDP_SOURCES]> =
    ConstStaticCell::new([SourceSlot::EMPTY; UDP_SOURCES]);
static METADATA: ConstStaticCell<[[udp::PacketMetadata; UDP_PACKETS]; 2]> =
    ConstStaticCell::new([[udp::PacketMetadata::EMPTY; UDP_PACKETS]; 2]);
// Apart from the records: all zeros, the payloads stay in `.bss`.
static PAYLOAD: ConstStaticCell<[[u8; UDP_BUFFER]; 2]> = ConstStaticCell::new([[0; UDP_BUFFER]; 2]);

/// The UDP echo on its socket of the application's set.
pub struct UdpEcho {
    echo: Echo,
    driver: UdpDriver,
}

impl UdpEcho {
    /// Adds the echo's socket to `sockets`; the first poll binds it to port 7. Call once:
    /// its memory is static. Fails only if the sizes do not make a valid queue.
    pub fn new(sockets: &mut SocketSet<'static>) -> Result<Self, UdpStorageError> {
        let mut config = UdpConfig::new();
        config.hash_key = HASH_KEY;
        config.datagrams = DATAGRAMS;
        config.bytes = BYTES_BUDGET;
        let storage = UdpSliceStorage::new(SLOTS.take(), BYTES.take(), UDP_SLOT, SOURCES.take())?;
        let echo = Echo::new(config, storage)?;
        let [rx_meta, tx_meta] = METADATA.take();
        let [rx, tx] = PAYLOAD.take();
        let handle: SocketHandle = sockets.add(udp::Socket::new(
            udp::PacketBuffer::new(&mut rx_meta[..], &mut rx[..]),
            udp::PacketBuffer::new(&mut tx_meta[..], &mut tx[..]),
        ));
        defmt::info!(
            "udp echo: {} slots x {} B, {} sources on port {}; core {} B",
            UDP_SLOTS,
            UDP_SLOT,
            UDP_SOURCES,
            PORT,
            size_of::<Echo>()
                + size_of::<[DatagramSlot; UDP_SLOTS]>()
                + UDP_SLOTS * UDP_SLOT
                + size_of::<[SourceSlot; UDP_SOURCES]>()
        );
        Ok(UdpEcho {
            echo,
            driver: UdpDriver::new(PORT, handle),
        })
    }

    /// One round after smoltcp's: echoes what came. True when a datagram moved, so
    /// smoltcp has packets to send at once.
    pub fn poll(&mut self, now: Instant, sockets: &mut SocketSet<'_>) -> bool {
        let dropped = self.echo.stats().dropped.total();
        let polled = self.driver.poll(to_core(now), &mut self.echo, sockets);
        if self.echo.stats().dropped.total() != dropped {
            defmt::info!("udp echo: {}", self.echo.stats());
        }
        !polled.is_empty()
    }
}
