//! `echoloop client`: the seed's client, done right.
//!
//! The seed opens two sockets, sends four messages on each, then calls `recv(1024)` once and
//! hopes the whole echo came back in it. This client reads each socket on its own thread
//! until the server's EOF (after shutting down its own write side), so it never depends on
//! how TCP split the stream, never deadlocks on large messages, and gives up after a
//! deadline instead of hanging. Then it checks every byte.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub mod udp;

/// The seed's messages; each is sent followed by its index.
pub const SEED_MESSAGES: [&str; 4] = [
    "This is the message ",
    "It will be sent ",
    "in parts ",
    "in 中文",
];

/// What `echoloop client` was asked for.
#[derive(Clone, Debug)]
pub struct Options {
    /// The server.
    pub connect: SocketAddr,
    /// How many sockets send the messages, at once.
    pub sockets: usize,
    /// The messages; empty means the seed's four.
    pub messages: Vec<String>,
    /// The deadline for the whole exchange.
    pub timeout: Duration,
    /// Send each message as a datagram instead ([`udp`]).
    pub udp: bool,
}

/// What came back on one socket.
#[derive(Debug)]
pub struct Echo {
    /// The socket's own address, as the server logs it.
    pub local: SocketAddr,
    /// Every byte received until EOF.
    pub received: Vec<u8>,
}

/// The messages to send: the given ones, or the seed's with their indices.
pub fn messages(given: &[String]) -> Vec<String> {
    if given.is_empty() {
        SEED_MESSAGES
            .iter()
            .enumerate()
            .map(|(i, m)| format!("{m}{i}"))
            .collect()
    } else {
        given.to_vec()
    }
}

/// Runs the exchange, printing it to `out` as the seed does; true when every echo equals
/// what was sent, byte for byte. Errors: cannot connect or send, or the deadline passed.
pub fn run(options: &Options, out: &mut impl Write) -> io::Result<bool> {
    if options.udp {
        return udp::run(options, out);
    }
    let deadline = Instant::now() + options.timeout;
    let messages = messages(&options.messages);
    let expected: Vec<u8> = messages.concat().into_bytes();
    let _ = writeln!(out, "connecting to {}", options.connect);
    let mut socks = Vec::with_capacity(options.sockets);
    for _ in 0..options.sockets {
        let sock = TcpStream::connect_timeout(&options.connect, options.timeout).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot connect to {}: {e}", options.connect),
            )
        })?;
        sock.set_write_timeout(Some(options.timeout))?;
        socks.push(sock);
    }
    let echoes = std::thread::scope(|scope| -> io::Result<Vec<Echo>> {
        let mut readers = Vec::with_capacity(socks.len());
        for sock in &socks {
            let reader = sock.try_clone()?;
            readers.push(scope.spawn(move || read_to_eof(reader, deadline)));
        }
        send_all(&socks, &messages, out)?;
        readers
            .into_iter()
            .map(|r| {
                r.join()
                    .unwrap_or_else(|_| Err(io::Error::other("reader thread failed")))
            })
            .collect()
    })?;
    let mut all_match = true;
    for echo in &echoes {
        let text = String::from_utf8_lossy(&echo.received);
        let _ = writeln!(out, "{}: received \"{text}\"", echo.local);
        all_match &= report(echo, &expected, out);
    }
    Ok(all_match)
}

/// Sends each message on every socket in turn, as the seed does, then half-closes each so
/// the server's EOF marks the end of the echo.
fn send_all(socks: &[TcpStream], messages: &[String], out: &mut impl Write) -> io::Result<()> {
    for message in messages {
        for mut sock in socks {
            let local = sock.local_addr()?;
            let _ = writeln!(out, "{local}: sending \"{message}\"");
            sock.write_all(message.as_bytes())
                .map_err(|e| io::Error::new(e.kind(), format!("sending on {local}: {e}")))?;
        }
    }
    for sock in socks {
        sock.shutdown(Shutdown::Write)?;
    }
    Ok(())
}

/// Reads until EOF or the deadline.
fn read_to_eof(mut sock: TcpStream, deadline: Instant) -> io::Result<Echo> {
    let local = sock.local_addr()?;
    let mut received = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(local, received.len()));
        }
        sock.set_read_timeout(Some(left))?;
        match sock.read(&mut buf) {
            Ok(0) => return Ok(Echo { local, received }),
            Ok(n) => received.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out(local, received.len()));
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("receiving on {local}: {e}"),
                ))
            }
        }
    }
}

fn timed_out(local: SocketAddr, got: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("timed out waiting for the echo on {local} (got {got} bytes, no EOF)"),
    )
}

/// Prints whether one echo matched; true if it did.
fn report(echo: &Echo, expected: &[u8], out: &mut impl Write) -> bool {
    let got = &echo.received;
    if got == expected {
        let _ = writeln!(out, "{}: echo matches ({} bytes)", echo.local, got.len());
        return true;
    }
    let at = got.iter().zip(expected).take_while(|(a, b)| a == b).count();
    let _ = writeln!(
        out,
        "{}: echo DIFFERS from what was sent: {} bytes back for {} sent, first difference at byte {at}",
        echo.local,
        got.len(),
        expected.len()
    );
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_messages_carry_their_index() {
        assert_eq!(
            messages(&[]),
            [
                "This is the message 0",
                "It will be sent 1",
                "in parts 2",
                "in 中文3"
            ]
        );
        assert_eq!(messages(&["a".into()]), ["a"]);
    }
}
