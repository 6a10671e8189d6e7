//! The echo service's sizes, the same on every board that serves it (the Cortex-M4 and
//! the RISC-V servers include this file), so that the boards compare like for like. Each
//! board's `sizes.rs` re-exports them beside its network device's own. All of it is
//! static: the firmware has no heap.

/// Connections served at once: the core's `MAX_CONNS`.
pub const CONNS: usize = 4;
/// Bytes each connection's echo queue holds: the size of one buffer of the core's pool.
pub const QUEUE: usize = 2048;
/// Buffers in the core's pool: one per connection, so no connection ever waits for one.
pub const BUFFERS: usize = CONNS;
/// TCP sockets: one per connection, plus spares that finish a closing handshake while a
/// fresh socket already listens for the slot it freed.
pub const SOCKETS: usize = CONNS + 2;
/// Each TCP socket's send buffer.
pub const TCP_TX_BUFFER: usize = 4096;
/// The largest UDP payload in one Ethernet frame (1500-byte MTU, less the IPv4 and UDP
/// headers): smoltcp is built without IP fragmentation, so a larger datagram, which the
/// host sends in fragments, never arrives whole.
pub const MAX_DATAGRAM: usize = 1500 - 20 - 8;
/// Datagram slots of the UDP echo's queue (`UDP_SLOTS − 1` echoes may wait).
pub const UDP_SLOTS: usize = 8;
/// Bytes a slot holds: the largest datagram, so none is truncated.
pub const UDP_SLOT: usize = MAX_DATAGRAM;
/// Sources the UDP echo's flood guard remembers (sets of the core's `WAYS`).
pub const UDP_SOURCES: usize = 16;
/// Datagrams the UDP socket's buffer holds, each way.
pub const UDP_PACKETS: usize = 8;
/// Payload bytes the UDP socket's buffer holds, each way: four of the largest datagrams,
/// more than the network device delivers in one burst of them.
pub const UDP_BUFFER: usize = 4 * MAX_DATAGRAM;
