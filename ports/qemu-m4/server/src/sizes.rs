//! Every size the server's memory depends on, in one place. All of it is static: the
//! firmware has no heap, and `size` on the ELF is its whole footprint (plus the stack).

/// Connections served at once: the core's `MAX_CONNS`. One more client is refused (its
/// SYN finds no listening socket and gets a RST) until a slot frees.
pub const CONNS: usize = 4;
/// Bytes each connection's echo queue holds: the core's `QUEUE`.
pub const QUEUE: usize = 2048;
/// TCP sockets: one per connection, plus spares that finish a closing handshake while a
/// fresh socket already listens for the slot it freed.
pub const SOCKETS: usize = CONNS + 2;
/// Each TCP socket's receive buffer, and its send buffer: the window a peer gets.
pub const TCP_BUFFER: usize = 4096;
