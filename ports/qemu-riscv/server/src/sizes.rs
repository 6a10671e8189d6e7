//! Every size the server's memory depends on, in one place. All of it is static: the
//! firmware has no heap, and `size` on the ELF is its whole footprint (plus the stack).
//!
//! The echo's sizes are the Cortex-M4 server's (`ports/qemu-m4/server/src/sizes.rs`), so
//! that the two firmwares compare like for like; only the network device's differ.

/// Connections served at once: the core's `MAX_CONNS`. One more client is refused (its
/// SYN finds no listening socket and gets a RST) until a slot frees.
pub const CONNS: usize = 4;
/// Bytes each connection's echo queue holds: the size of one buffer of the core's pool.
pub const QUEUE: usize = 2048;
/// Buffers in the core's pool: one per connection, so no connection ever waits for one.
pub const BUFFERS: usize = CONNS;
/// TCP sockets: one per connection, plus spares that finish a closing handshake while a
/// fresh socket already listens for the slot it freed.
pub const SOCKETS: usize = CONNS + 2;
/// Each TCP socket's receive buffer: the window a peer gets.
pub const TCP_RX_BUFFER: usize = 2048;
/// Each TCP socket's send buffer.
pub const TCP_TX_BUFFER: usize = 4096;
/// The largest UDP payload in one Ethernet frame (1500-byte MTU, less the IPv4 and UDP
/// headers): smoltcp is built without IP fragmentation.
pub const MAX_DATAGRAM: usize = 1500 - 20 - 8;
/// Datagram slots of the UDP echo's queue (`UDP_SLOTS − 1` echoes may wait).
pub const UDP_SLOTS: usize = 8;
/// Bytes a slot holds: the largest datagram, so none is truncated.
pub const UDP_SLOT: usize = MAX_DATAGRAM;
/// Sources the UDP echo's flood guard remembers (sets of the core's `WAYS`).
pub const UDP_SOURCES: usize = 16;
/// Datagrams the UDP socket's buffer holds, each way.
pub const UDP_PACKETS: usize = 8;
/// Payload bytes the UDP socket's buffer holds, each way: four of the largest datagrams.
pub const UDP_BUFFER: usize = 4 * MAX_DATAGRAM;

/// An Ethernet frame without its FCS: what smoltcp sends and receives.
pub const FRAME: usize = 1514;
/// Descriptors in each of the device's two virtqueues (a power of two); every receive
/// buffer takes one.
pub const QUEUE_SIZE: usize = 16;
/// Receive buffers posted to the device. Frames the device cannot place wait in QEMU's
/// queue rather than being dropped, so these only need to cover a burst: four slots'
/// windows of 2 KiB are six full frames.
pub const RX_BUFFERS: usize = 8;
/// A receive buffer: the virtio-net header (12 bytes at most) and a frame.
pub const RX_BUFFER: usize = 12 + FRAME;
/// Send buffers: frames handed to the device and not yet sent, one descriptor each.
pub const TX_BUFFERS: usize = 4;
/// A send buffer: the virtio-net header and a frame.
pub const TX_BUFFER: usize = 12 + FRAME;
/// Pages of 4 KiB for the virtqueues: two per queue (the descriptor table and the
/// available ring in one, the used ring in the other, whichever layout the transport
/// asks for).
pub const DMA_PAGES: usize = 4;
