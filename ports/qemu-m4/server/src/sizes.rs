//! Every size the server's memory depends on, in one place. All of it is static: the
//! firmware has no heap, and `size` on the ELF is its whole footprint (plus the stack).

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
/// Each TCP socket's receive buffer: the window a peer gets. Every slot's window together
/// must fit the LAN9118's RX FIFO (QEMU's model: about 10 KiB, frames and their status),
/// or a burst from the host overflows it, QEMU drops frames, and TCP waits for a
/// retransmission.
pub const TCP_RX_BUFFER: usize = 2048;
/// Each TCP socket's send buffer.
pub const TCP_TX_BUFFER: usize = 4096;
