//! The client: what each connection sends, and the check of every byte that comes back.

use smoltcp::socket::tcp::{self, RecvError, State};

use crate::sizes::STREAM;

/// One message of the script.
#[derive(Clone, Copy)]
pub enum Message {
    /// Text sent as its UTF-8 bytes.
    Text(&'static str),
    /// `len` bytes of a pattern that differs per connection (see [`stream_byte`]).
    Stream(usize),
}

/// What every connection sends, one message at a time, waiting for each echo in full
/// before the next as the seed's client does: the seed's four messages, then a stream.
pub const SCRIPT: [Message; 5] = [
    Message::Text("This is the message 0"),
    Message::Text("It will be sent 1"),
    Message::Text("in parts 2"),
    Message::Text("in 中文3"),
    Message::Stream(STREAM),
];

/// Byte `i` of connection `conn`'s stream: no period that a buffer size would hide.
fn stream_byte(conn: u8, i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)).wrapping_add(usize::from(conn) * 7) as u8
}

impl Message {
    fn len(self) -> usize {
        match self {
            Message::Text(text) => text.len(),
            Message::Stream(len) => len,
        }
    }

    fn byte(self, conn: u8, i: usize) -> Option<u8> {
        match self {
            Message::Text(text) => text.as_bytes().get(i).copied(),
            Message::Stream(len) => (i < len).then(|| stream_byte(conn, i)),
        }
    }

    /// Writes the message from byte `from` on into `buf`; returns how many bytes.
    fn fill(self, conn: u8, from: usize, buf: &mut [u8]) -> usize {
        let mut n = 0;
        for (i, slot) in (from..self.len()).zip(buf.iter_mut()) {
            *slot = self.byte(conn, i).unwrap_or(0);
            n += 1;
        }
        n
    }
}

/// How a client failed.
#[derive(Clone, Copy, defmt::Format)]
pub enum Failure {
    /// An echoed byte differs from the byte sent.
    Mismatch {
        /// The connection.
        conn: u8,
        /// The message of the script.
        message: usize,
        /// The offset in the message.
        offset: usize,
        /// What came back.
        got: u8,
        /// What was sent.
        expected: u8,
    },
    /// Bytes came back after the whole script was echoed.
    Extra {
        /// The connection.
        conn: u8,
    },
    /// The connection was reset or refused.
    Reset {
        /// The connection.
        conn: u8,
        /// The message of the script under way.
        message: usize,
    },
    /// `connect` refused the endpoint.
    Connect {
        /// The connection.
        conn: u8,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Talking,
    /// Our FIN is sent; waiting for the server's.
    Closing,
    Done,
}

/// One client connection working through the [`SCRIPT`].
pub struct Client {
    conn: u8,
    phase: Phase,
    /// The message being sent and echoed.
    message: usize,
    sent: usize,
    echoed: usize,
    /// Bytes echoed over the whole script.
    total: usize,
}

impl Client {
    /// Client number `conn`; its socket should be connecting.
    pub const fn new(conn: u8) -> Self {
        Client {
            conn,
            phase: Phase::Connecting,
            message: 0,
            sent: 0,
            echoed: 0,
            total: 0,
        }
    }

    /// Bytes the whole script sends on one connection.
    pub fn script_len() -> usize {
        SCRIPT.iter().map(|m| m.len()).sum()
    }

    /// True once the server closed the connection after echoing the whole script.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// A failed `connect`.
    pub fn connect_failed(&self) -> Failure {
        Failure::Connect { conn: self.conn }
    }

    /// Moves the conversation on as far as the socket allows.
    pub fn step(&mut self, socket: &mut tcp::Socket<'_>) -> Result<(), Failure> {
        let conn = self.conn;
        if socket.state() == State::Closed && self.phase != Phase::Done {
            return Err(Failure::Reset {
                conn,
                message: self.message,
            });
        }
        match self.phase {
            Phase::Connecting if socket.may_send() => {
                defmt::info!("client {}: connected", conn);
                self.phase = Phase::Talking;
                self.talk(socket)
            }
            Phase::Talking => self.talk(socket),
            Phase::Closing => match socket.recv(|bytes| (bytes.len(), bytes.len())) {
                Ok(0) | Err(RecvError::InvalidState) => Ok(()),
                Ok(_) => Err(Failure::Extra { conn }),
                Err(RecvError::Finished) => {
                    defmt::info!("client {}: server closed after {} bytes", conn, self.total);
                    self.phase = Phase::Done;
                    Ok(())
                }
            },
            Phase::Connecting | Phase::Done => Ok(()),
        }
    }

    fn talk(&mut self, socket: &mut tcp::Socket<'_>) -> Result<(), Failure> {
        let Some(&message) = SCRIPT.get(self.message) else {
            socket.close();
            self.phase = Phase::Closing;
            return Ok(());
        };
        let conn = self.conn;
        if self.sent < message.len() && socket.can_send() {
            let from = self.sent;
            // Written straight into the socket's send buffer: no copy of the message.
            if let Ok(n) = socket.send(|buf| {
                let n = message.fill(conn, from, buf);
                (n, n)
            }) {
                self.sent += n;
            }
        }
        let from = self.echoed;
        let index = self.message;
        let checked = socket.recv(|bytes| (bytes.len(), check(message, conn, index, from, bytes)));
        match checked {
            Ok(Ok(n)) => self.echoed += n,
            Ok(Err(failure)) => return Err(failure),
            Err(_) => {}
        }
        if self.echoed == message.len() {
            match message {
                Message::Text(text) => defmt::info!("client {}: echoed {=str}", conn, text),
                Message::Stream(len) => {
                    defmt::info!("client {}: echoed {} stream bytes", conn, len)
                }
            }
            self.total += self.echoed;
            self.message += 1;
            self.sent = 0;
            self.echoed = 0;
        }
        Ok(())
    }
}

/// Checks the bytes echoed from offset `from` of `message`; returns how many there were.
fn check(
    message: Message,
    conn: u8,
    index: usize,
    from: usize,
    bytes: &[u8],
) -> Result<usize, Failure> {
    for (offset, &got) in (from..).zip(bytes) {
        match expected(message, conn, offset) {
            Some(expected) if expected == got => {}
            Some(expected) => {
                return Err(Failure::Mismatch {
                    conn,
                    message: index,
                    offset,
                    got,
                    expected,
                })
            }
            // More than was sent: the next message has not been sent yet.
            None => return Err(Failure::Extra { conn }),
        }
    }
    Ok(bytes.len())
}

/// The byte the echo must carry at `offset` of `message`.
fn expected(message: Message, conn: u8, offset: usize) -> Option<u8> {
    let byte = message.byte(conn, offset);
    // Proves the check can fail: one byte of one connection's stream is expected wrong,
    // and the run must end with a mismatch and QEMU's exit status 1.
    #[cfg(feature = "expect-a-mismatch")]
    if conn == 2 && matches!(message, Message::Stream(_)) && offset == 1000 {
        return byte.map(|b| b ^ 0x20);
    }
    byte
}
