//! `echoloop-bench --udp`: ping-pong over datagrams, every echo checked.
//!
//! Each socket (one per `--conns`) sends a datagram, waits for its echo up to
//! [`DATAGRAM_TIMEOUT`], then sends the next, whether the echo came or not. A datagram
//! carries its sequence number in its first 8 bytes (fewer for a smaller `--size`, taken
//! modulo) and the load's pattern after it, so every echo says which datagram it echoes
//! and is compared byte for byte with it. From that: loss (timed out and never seen),
//! late echoes (after their timeout), reordering (an echo older than one already seen),
//! duplicates, and the round-trip latency of the echoes in time.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use crate::histogram::Histogram;
use crate::pattern::Pattern;
use crate::report::{Report, UdpFigures};
use crate::{fit_fd_limit, os, Options, EVENTS, SPARE_FDS, TICK};

/// The largest UDP payload over IPv4 (65,535 − 20 − 8).
pub const MAX_DATAGRAM: usize = 65_507;

/// How long a socket waits for an echo before it sends the next datagram.
pub const DATAGRAM_TIMEOUT: Duration = Duration::from_millis(200);

/// Sequence numbers remembered per socket, to tell a duplicate from a late echo.
const WINDOW: u64 = 64;

/// Counts over the measured window.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    sent: u64,
    echoed: u64,
    timed_out: u64,
    late: u64,
    reordered: u64,
    duplicates: u64,
    mismatches: u64,
    refused: u64,
}

/// One socket and its datagram in flight.
struct Peer {
    sock: UdpSocket,
    conn: usize,
    /// The datagram in flight (or the last one, once echoed).
    seq: u64,
    sent_at: Instant,
    deadline: Instant,
    /// Echoed: bit `k` is sequence `seq − k`.
    seen: u64,
    /// The highest sequence echoed so far.
    highest: Option<u64>,
    out: Vec<u8>,
}

impl Peer {
    /// On to the next datagram: the window of echoed sequences moves with it.
    fn advance(&mut self) {
        self.seq += 1;
        self.seen <<= 1;
    }
}

/// Runs the UDP benchmark. Errors: a size no datagram holds, sockets that cannot be made,
/// or no echo at all for `timeout`. Mismatches are counted in the report, not errors.
pub fn run(options: &Options) -> io::Result<Report> {
    if options.size > MAX_DATAGRAM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "--size {} is too large for a datagram: at most {MAX_DATAGRAM} with --udp",
                options.size
            ),
        ));
    }
    fit_fd_limit(options.conns + SPARE_FDS)?;
    let pattern = Pattern::new(options.size);
    let poll = Poll::new()?;
    let mut peers = Vec::with_capacity(options.conns);
    for conn in 0..options.conns {
        let mut sock = UdpSocket::from_std(open(options.connect)?);
        poll.registry()
            .register(&mut sock, Token(conn), Interest::READABLE)?;
        let now = Instant::now();
        peers.push(Peer {
            sock,
            conn,
            seq: 0,
            sent_at: now,
            deadline: now,
            seen: 0,
            highest: None,
            out: vec![0; options.size],
        });
    }
    drive(options, &pattern, poll, peers)
}

fn open(server: SocketAddr) -> io::Result<StdUdpSocket> {
    let any: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = StdUdpSocket::bind(any)?;
    sock.connect(server)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot connect to {server}: {e}")))?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// The datagram `seq` of connection `conn`, written into `buf`.
fn fill(buf: &mut [u8], pattern: &Pattern, conn: usize, seq: u64) {
    let header = buf.len().min(8);
    let (head, mut body) = buf.split_at_mut(header);
    head.copy_from_slice(seq.to_le_bytes().get(..header).unwrap_or_default());
    let mut at = pattern.start(conn, seq) as u64;
    while !body.is_empty() {
        let part = pattern.slice(at, body.len());
        let (dst, rest) = body.split_at_mut(part.len());
        dst.copy_from_slice(part);
        at += part.len() as u64;
        body = rest;
    }
}

/// The sequence number an echo names: the latest one up to `current` with the same low
/// header bytes.
fn seq_of(got: &[u8], header: usize, current: u64) -> Option<u64> {
    let mut low = [0u8; 8];
    low.get_mut(..header)?.copy_from_slice(got.get(..header)?);
    let low = u64::from_le_bytes(low);
    if header == 8 {
        return (low <= current).then_some(low);
    }
    let modulus = 1u64 << (8 * header);
    let back = (current.wrapping_sub(low)) % modulus;
    current.checked_sub(back)
}

fn send(peer: &mut Peer, pattern: &Pattern, counts: &mut Counts) {
    fill(&mut peer.out, pattern, peer.conn, peer.seq);
    let now = Instant::now();
    peer.sent_at = now;
    peer.deadline = now + DATAGRAM_TIMEOUT;
    // A refused or blocked send times out like a lost datagram.
    match peer.sock.send(&peer.out) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => counts.refused += 1,
        Err(_) => {}
    }
    counts.sent += 1;
}

fn drive(
    options: &Options,
    pattern: &Pattern,
    mut poll: Poll,
    mut peers: Vec<Peer>,
) -> io::Result<Report> {
    let start = Instant::now();
    let measure_at = start + options.warmup;
    let end = measure_at + options.duration;
    let mut counts = Counts::default();
    let mut latency = Histogram::default();
    let mut measured: Option<(Instant, Duration, Counts)> = None;
    let mut events = Events::with_capacity(EVENTS);
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut expected = vec![0u8; options.size];
    let mut last_echo = start;
    for peer in &mut peers {
        send(peer, pattern, &mut counts);
    }
    let mut next_deadline = start + DATAGRAM_TIMEOUT;
    loop {
        let now = Instant::now();
        if measured.is_none() && now >= measure_at {
            measured = Some((now, os::cpu_time(), counts));
            latency = Histogram::default();
        }
        if now >= end {
            break;
        }
        if now.duration_since(last_echo) >= options.timeout {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no echo from {} for {:.1} s",
                    options.connect,
                    options.timeout.as_secs_f64()
                ),
            ));
        }
        let wait = next_deadline.saturating_duration_since(now).min(TICK);
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in &events {
            let Some(peer) = peers.get_mut(event.token().0) else {
                continue;
            };
            while let Some(n) = recv(peer, &mut buf, &mut counts) {
                let got = buf.get(..n).unwrap_or_default();
                let echoed_now =
                    classify(peer, got, pattern, &mut expected, &mut counts, &mut latency);
                last_echo = Instant::now();
                if echoed_now {
                    peer.advance();
                    send(peer, pattern, &mut counts);
                }
            }
        }
        let now = Instant::now();
        if now >= next_deadline {
            next_deadline = now + DATAGRAM_TIMEOUT;
            for peer in &mut peers {
                if now >= peer.deadline {
                    counts.timed_out += 1;
                    peer.advance();
                    send(peer, pattern, &mut counts);
                }
                next_deadline = next_deadline.min(peer.deadline);
            }
        }
    }
    let (from, cpu_from, before) = measured.unwrap_or((end, os::cpu_time(), counts));
    let to = Instant::now();
    let cpu = os::cpu_time().saturating_sub(cpu_from);
    Ok(report(
        options,
        before,
        counts,
        &latency,
        to - from,
        cpu,
        peers.len(),
    ))
}

/// One datagram's length, or `None` when the socket has no more for now.
fn recv(peer: &mut Peer, buf: &mut [u8], counts: &mut Counts) -> Option<usize> {
    loop {
        match peer.sock.recv(buf) {
            Ok(n) => return Some(n),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => counts.refused += 1,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Checks one echo and counts it; true when it is the echo of the datagram in flight.
fn classify(
    peer: &mut Peer,
    got: &[u8],
    pattern: &Pattern,
    expected: &mut [u8],
    counts: &mut Counts,
    latency: &mut Histogram,
) -> bool {
    let header = expected.len().min(8);
    let seq = (got.len() == expected.len())
        .then(|| seq_of(got, header, peer.seq))
        .flatten();
    let Some(seq) = seq else {
        counts.mismatches += 1;
        return false;
    };
    fill(expected, pattern, peer.conn, seq);
    if got != expected {
        counts.mismatches += 1;
        return false;
    }
    let age = peer.seq - seq;
    if age >= WINDOW {
        // Too old to tell a duplicate from a late echo: call it late.
        counts.late += 1;
        counts.reordered += 1;
        return false;
    }
    let bit = 1u64 << age;
    if peer.seen & bit != 0 {
        counts.duplicates += 1;
        return false;
    }
    peer.seen |= bit;
    if peer.highest.is_some_and(|h| seq < h) {
        counts.reordered += 1;
    }
    peer.highest = Some(peer.highest.map_or(seq, |h| h.max(seq)));
    if age > 0 {
        counts.late += 1;
        return false;
    }
    counts.echoed += 1;
    latency.record(peer.sent_at.elapsed());
    true
}

fn report(
    options: &Options,
    before: Counts,
    after: Counts,
    latency: &Histogram,
    elapsed: Duration,
    cpu: Duration,
    conns: usize,
) -> Report {
    let d = |f: fn(&Counts) -> u64| f(&after).saturating_sub(f(&before));
    let echoed = d(|c| c.echoed);
    let late = d(|c| c.late);
    let timed_out = d(|c| c.timed_out);
    let messages = echoed + late;
    Report {
        mode: options.mode,
        conns,
        idle: 0,
        idle_open: 0,
        size: options.size,
        elapsed,
        messages,
        bytes: messages * options.size as u64,
        warmup_messages: before.echoed + before.late,
        p50: latency.quantile(0.5),
        p99: latency.quantile(0.99),
        p999: latency.quantile(0.999),
        max: latency.max(),
        samples: latency.count(),
        connect_failures: 0,
        resets: 0,
        mismatches: d(|c| c.mismatches),
        stalled: 0,
        cpu,
        udp: Some(UdpFigures {
            sent: d(|c| c.sent),
            timed_out,
            lost: timed_out.saturating_sub(late),
            late,
            reordered: d(|c| c.reordered),
            duplicates: d(|c| c.duplicates),
            refused: d(|c| c.refused),
            timeout: DATAGRAM_TIMEOUT,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_survive_short_headers() {
        let pattern = Pattern::new(64);
        for size in [1usize, 2, 7, 8, 64] {
            let header = size.min(8);
            for seq in [0u64, 1, 255, 256, 70_000] {
                let mut buf = vec![0; size];
                fill(&mut buf, &pattern, 3, seq);
                assert_eq!(seq_of(&buf, header, seq), Some(seq), "size {size}");
                assert_eq!(seq_of(&buf, header, seq + 3), Some(seq), "size {size}");
            }
        }
    }

    #[test]
    fn echoes_are_classified() {
        let pattern = Pattern::new(16);
        let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let now = Instant::now();
        let mut peer = Peer {
            sock,
            conn: 0,
            seq: 0,
            sent_at: now,
            deadline: now,
            seen: 0,
            highest: None,
            out: vec![0; 16],
        };
        let (mut counts, mut latency) = (Counts::default(), Histogram::default());
        let mut expected = vec![0; 16];
        let datagram = |seq| {
            let mut b = vec![0; 16];
            fill(&mut b, &pattern, 0, seq);
            b
        };
        let mut check = |peer: &mut Peer, got: &[u8], counts: &mut Counts| {
            classify(peer, got, &pattern, &mut expected, counts, &mut latency)
        };
        assert!(check(&mut peer, &datagram(0), &mut counts));
        assert!(!check(&mut peer, &datagram(0), &mut counts), "duplicate");
        peer.advance(); // 1 timed out
        peer.advance();
        assert!(check(&mut peer, &datagram(2), &mut counts));
        assert!(
            !check(&mut peer, &datagram(1), &mut counts),
            "late, reordered"
        );
        let mut flipped = datagram(2);
        flipped[12] ^= 1;
        assert!(!check(&mut peer, &flipped, &mut counts));
        assert!(!check(&mut peer, &datagram(2)[..15], &mut counts), "short");
        assert_eq!(
            (
                counts.echoed,
                counts.duplicates,
                counts.late,
                counts.reordered,
                counts.mismatches
            ),
            (2, 1, 1, 1, 2)
        );
    }
}
