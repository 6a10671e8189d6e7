//! Every size the firmware's memory depends on, in one place. All of it is static: the
//! firmware has no heap, and `size` on the ELF is its whole footprint (plus the stack).

/// Connections the echo server serves at once: the core's table.
#[cfg(not(feature = "pool"))]
pub const CONNS: usize = 4;
/// With `pool`: eight connections at once...
#[cfg(feature = "pool")]
pub const CONNS: usize = 8;
/// Buffers in the core's pool: one per connection, so none ever waits for one.
#[cfg(not(feature = "pool"))]
pub const BUFFERS: usize = CONNS;
/// ...sharing four buffers: a connection without one waits (no read interest) until
/// another's queue drains.
#[cfg(feature = "pool")]
pub const BUFFERS: usize = 4;
/// Bytes each buffer (so each connection's echo queue) holds: the core's `QUEUE`. Smaller than a message
/// of the script, so the queues wrap and the core applies backpressure.
pub const QUEUE: usize = 256;
/// The server's TCP sockets: one per connection, plus spares that finish a closing
/// handshake while a fresh socket already listens for the slot it freed.
pub const SERVER_SOCKETS: usize = CONNS + 2;
/// Client connections, all open at once: one per connection of the server.
pub const CLIENTS: usize = CONNS;
/// Each TCP socket's receive buffer, and its send buffer.
pub const TCP_BUFFER: usize = 1024;
/// Packets the loopback device holds in flight.
pub const PACKETS: usize = 16;
/// The largest IP packet (576, the IPv4 minimum every host must accept).
pub const MTU: usize = 576;
/// The largest UDP payload one loopback packet carries (the MTU less the IPv4 and UDP
/// headers): smoltcp is built without IP fragmentation.
pub const MAX_DATAGRAM: usize = MTU - 20 - 8;
/// Datagram slots of the UDP echo's queue (`UDP_SLOTS − 1` echoes may wait).
pub const UDP_SLOTS: usize = 4;
/// Bytes a slot holds: the largest datagram, so no datagram that arrives is truncated.
pub const UDP_SLOT: usize = MAX_DATAGRAM;
/// Sources the UDP echo's flood guard remembers.
pub const UDP_SOURCES: usize = 8;
/// Datagrams each UDP socket buffer holds, each way.
pub const UDP_PACKETS: usize = 4;
/// Payload bytes each UDP socket buffer holds, each way: two of the largest datagrams.
pub const UDP_BUFFER: usize = 2 * MAX_DATAGRAM;
/// UDP sockets: the echo's, the client's and the client's from a guarded port.
pub const UDP_SOCKETS: usize = 3;
/// Sockets in smoltcp's socket set.
pub const SOCKETS: usize = SERVER_SOCKETS + CLIENTS + UDP_SOCKETS;
/// The bulk message each client sends after the seed's four: larger than the core's queue
/// and than every socket buffer on the way.
pub const STREAM: usize = 3000;
