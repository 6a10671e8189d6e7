//! `echoloop client --udp`: the seed's messages as datagrams, each echo checked.
//!
//! Every socket sends each message as one datagram and waits for its echo; a datagram
//! whose echo does not come within a try's timeout is sent again, up to [`TRIES`] times,
//! and then counted lost. An echo of an earlier message that shows up late (the first
//! try's, after a retry) is recognised and ignored; any other datagram is a mismatch.

use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::{messages, Options};

/// Sends of one datagram before it counts as lost.
pub const TRIES: u32 = 4;

/// The longest wait for one try's echo.
const TRY_TIMEOUT: Duration = Duration::from_secs(1);

/// The fate of one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Matched,
    Differed,
    Lost,
}

/// Runs the exchange, printing it to `out`; true when every datagram came back byte for
/// byte. Errors: cannot bind, connect or send, or the whole deadline passed.
pub fn run(options: &Options, out: &mut impl Write) -> io::Result<bool> {
    let deadline = Instant::now() + options.timeout;
    let try_timeout = TRY_TIMEOUT
        .min(options.timeout / TRIES)
        .max(Duration::from_millis(1));
    let messages = messages(&options.messages);
    let _ = writeln!(out, "sending datagrams to {}", options.connect);
    let mut socks = Vec::with_capacity(options.sockets);
    for _ in 0..options.sockets {
        socks.push(open(options.connect)?);
    }
    let (mut matched, mut differed, mut lost, mut retries) = (0, 0, 0, 0);
    for i in 0..messages.len() {
        for sock in &socks {
            let (fate, tries) = exchange(sock, &messages, i, try_timeout, deadline, out)?;
            retries += tries - 1;
            match fate {
                Fate::Matched => matched += 1,
                Fate::Differed => differed += 1,
                Fate::Lost => lost += 1,
            }
        }
    }
    let sent = messages.len() * socks.len();
    let _ = writeln!(
        out,
        "{matched} of {sent} datagrams echoed byte for byte, {differed} differed, {lost} lost ({retries} retries)"
    );
    Ok(matched == sent)
}

/// A socket connected to the server: it receives from the server only, and an ICMP
/// port-unreachable comes back as `ECONNREFUSED`.
fn open(server: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(any)?;
    sock.connect(server)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot connect to {server}: {e}")))?;
    Ok(sock)
}

/// Sends message `i` until its echo comes back or the tries run out; the fate and the
/// number of sends.
fn exchange(
    sock: &UdpSocket,
    messages: &[String],
    i: usize,
    try_timeout: Duration,
    deadline: Instant,
    out: &mut impl Write,
) -> io::Result<(Fate, u32)> {
    let local = sock.local_addr()?;
    let want = messages.get(i).map(String::as_bytes).unwrap_or_default();
    let mut buf = vec![0u8; 65_536];
    for attempt in 1..=TRIES {
        if attempt == 1 {
            let text = String::from_utf8_lossy(want);
            let _ = writeln!(out, "{local}: sending \"{text}\"");
        } else {
            let _ = writeln!(out, "{local}: no echo yet, sending again (try {attempt})");
        }
        match sock.send(want) {
            Ok(_) => {}
            // An earlier datagram's ICMP error, reported now: this one did not go.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("sending on {local}: {e}"))),
        }
        let try_end = (Instant::now() + try_timeout).min(deadline);
        loop {
            let left = try_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left))?;
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if is_timeout(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    let _ = writeln!(out, "{local}: port unreachable (ICMP)");
                    break;
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("receiving on {local}: {e}"),
                    ))
                }
            };
            let got = buf.get(..n).unwrap_or_default();
            if got == want {
                let text = String::from_utf8_lossy(got);
                let _ = writeln!(out, "{local}: received \"{text}\"");
                let _ = writeln!(out, "{local}: echo matches ({n} bytes)");
                return Ok((Fate::Matched, attempt));
            }
            if messages.iter().take(i).any(|m| m.as_bytes() == got) {
                let _ = writeln!(out, "{local}: a late echo of an earlier message, ignored");
                continue;
            }
            let at = got.iter().zip(want).take_while(|(a, b)| a == b).count();
            let _ = writeln!(
                out,
                "{local}: echo DIFFERS from what was sent: {n} bytes back for {} sent, first difference at byte {at}",
                want.len()
            );
            return Ok((Fate::Differed, attempt));
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out waiting for the echo on {local}"),
            ));
        }
    }
    let _ = writeln!(out, "{local}: no echo after {TRIES} tries: lost");
    Ok((Fate::Lost, TRIES))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
