//! Relaying: a connection's bytes moved from its socket back into it through a pipe with
//! `splice(2)`, never copied into the process (Linux only).
//!
//! An echo server copies every byte twice: into its buffer on `recv`, out of it on `send`.
//! For large reads those two copies are most of the server's CPU (`perf`: 45 % at 50
//! streams of 16 KiB writes). `splice` from a socket into a pipe takes references to the
//! kernel's pages instead, and `splice` from the pipe into a socket hands the same pages
//! on: the bytes are never copied by the server. A connection relays while its reads are
//! large ([`Relay::from`]); small messages are cheaper through `recv` and `send`, where a
//! relay's page bookkeeping costs more than copying a few hundred bytes.
//!
//! One pipe serves every connection, so it must be empty after each relay: what the socket
//! would not take back is read out of the pipe at once, into the buffer the core lent, and
//! queued like received bytes. Only a connection with nothing queued relays
//! ([`Server::relay_with`](echoloop_core::Server::relay_with)), so relayed bytes never
//! overtake queued ones. If the pipe ever gave back fewer bytes than it holds (it cannot
//! on Linux, short of a kernel bug), that connection closes with an error and relaying
//! stops for good: a pipe with stray bytes would hand them to the next connection.

use std::io;

use echoloop_core::Relayed;

use crate::net::Net;

/// The most a relay's pipe is asked to hold: Linux's default `pipe-max-size`. A larger
/// `--queue-size` does not make the pipe larger (as root the kernel would grant it, a
/// page reference per 4 KiB, for no gain): a relay then moves at most this much a call.
const PIPE_MAX: usize = 1 << 20;

/// The pipe and when to use it.
pub struct Relay<S> {
    /// The pipe's read end.
    read: S,
    /// The pipe's write end.
    write: S,
    /// A read of at least this many bytes makes the connection's next receive a relay;
    /// a relay that moves fewer makes the next one a `recv` again.
    pub from: usize,
    /// The pipe lost track of its bytes: close it and relay no more.
    pub broken: bool,
}

impl<S> Relay<S> {
    /// A relay through a new pipe that holds `size` bytes (the queue size: a relay moves at
    /// most one lent buffer), 1 MiB at most, or why there is none.
    pub fn open<N: Net<Socket = S>>(net: &mut N, size: usize, from: usize) -> io::Result<Self> {
        let (read, write) = net.relay_pipe(size.min(PIPE_MAX))?;
        Ok(Relay {
            read,
            write,
            from,
            broken: false,
        })
    }

    /// Closes the pipe.
    pub fn close<N: Net<Socket = S>>(self, net: &mut N) {
        net.close(self.read);
        net.close(self.write);
    }

    /// One relay on `socket`: moves at most `buf.len()` bytes from it into the pipe, as
    /// many as it takes back out of the pipe into it, and the rest into the front of
    /// `buf`. Returns what went through and what was kept, and the bytes taken from the
    /// socket (`Ok(0)`: its peer's EOF) or the error that ends the connection. The pipe is
    /// empty again on return, unless [`broken`](Relay::broken).
    pub fn pass<N: Net<Socket = S>>(
        &mut self,
        net: &mut N,
        socket: &S,
        buf: &mut [u8],
    ) -> (Relayed, io::Result<usize>) {
        let taken = match net.splice(socket, &self.write, buf.len()) {
            Ok(n) => n.min(buf.len()),
            Err(e) => return (Relayed::default(), Err(e)),
        };
        let (through, failed) = self.give_back(net, socket, taken);
        let left = taken - through;
        let kept = self.empty_into(net, buf.get_mut(..left).unwrap_or_default());
        let relayed = Relayed { through, kept };
        if kept < left {
            self.broken = true;
            let lost = io::Error::other("the relay pipe gave back fewer bytes than it held");
            return (relayed, Err(lost));
        }
        (relayed, failed.map_or(Ok(taken), Err))
    }

    /// Moves up to `len` bytes from the pipe into `socket` until it takes no more; the
    /// bytes it took and the error that stopped it, if one did (not `EAGAIN`).
    fn give_back<N: Net<Socket = S>>(
        &mut self,
        net: &mut N,
        socket: &S,
        len: usize,
    ) -> (usize, Option<io::Error>) {
        let mut through = 0;
        while through < len {
            match net.splice(&self.read, socket, len - through) {
                Ok(0) => break,
                Ok(n) => through += n.min(len - through),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return (through, Some(e)),
            }
        }
        (through, None)
    }

    /// Reads the pipe's remaining bytes into `buf`, exactly `buf.len()` of them; how many
    /// it got (fewer only if the pipe failed).
    fn empty_into<N: Net<Socket = S>>(&mut self, net: &mut N, buf: &mut [u8]) -> usize {
        let mut got = 0;
        while let Some(rest) = buf.get_mut(got..).filter(|rest| !rest.is_empty()) {
            match net.read(&self.read, rest) {
                Ok(0) => break,
                Ok(n) => got += n.min(rest.len()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        got
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::OwnedFd;

    use crate::config::SPLICE_FROM;

    use super::*;
    use crate::net::Sys;
    use crate::sys;

    /// A connected pair on loopback: the server's end (non-blocking) and the peer's.
    fn pair() -> (OwnedFd, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (OwnedFd::from(server), peer)
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    /// Relays until `want` bytes were taken; returns what was kept, in order.
    fn relay_all(relay: &mut Relay<OwnedFd>, socket: &OwnedFd, want: usize) -> Vec<u8> {
        let (mut taken, mut kept) = (0, Vec::new());
        let mut buf = vec![0; 64 * 1024];
        while taken < want {
            let (relayed, got) = relay.pass(&mut Sys, socket, &mut buf);
            match got {
                Ok(n) => taken += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("relay failed: {e}"),
            }
            kept.extend_from_slice(&buf[..relayed.kept]);
            assert!(!relay.broken);
        }
        kept
    }

    #[test]
    fn bytes_come_back_through_the_pipe_in_order() {
        let mut relay = Relay::open(&mut Sys, 64 * 1024, SPLICE_FROM).unwrap();
        let (server, mut peer) = pair();
        let sent = pattern(200_000, 7);
        let writer = {
            let mut peer = peer.try_clone().unwrap();
            let sent = sent.clone();
            std::thread::spawn(move || peer.write_all(&sent).unwrap())
        };
        let reader = std::thread::spawn(move || {
            let mut back = vec![0; 200_000];
            peer.read_exact(&mut back).unwrap();
            back
        });
        let kept = relay_all(&mut relay, &server, sent.len());
        assert!(kept.is_empty(), "a peer that reads takes every byte back");
        writer.join().unwrap();
        assert!(reader.join().unwrap() == sent, "the echo differs");
    }

    #[test]
    fn what_the_socket_will_not_take_is_kept_in_order() {
        let mut relay = Relay::open(&mut Sys, 64 * 1024, SPLICE_FROM).unwrap();
        let (server, mut peer) = pair();
        // The peer writes 8 MB before it reads a byte: the server's send buffer and the
        // peer's receive buffer fill, and the relay must keep the rest.
        let sent = pattern(8 << 20, 3);
        let writer = {
            let mut peer = peer.try_clone().unwrap();
            let sent = sent.clone();
            // Fails once the test closes both ends; what it wrote by then is enough.
            std::thread::spawn(move || drop(peer.write_all(&sent)))
        };
        let (mut through, mut kept) = (0, Vec::new());
        let mut buf = vec![0; 64 * 1024];
        while kept.is_empty() {
            let (relayed, got) = relay.pass(&mut Sys, &server, &mut buf);
            if let Err(e) = got {
                assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
            }
            through += relayed.through;
            kept.extend_from_slice(&buf[..relayed.kept]);
        }
        let mut back = vec![0; through];
        peer.read_exact(&mut back).unwrap();
        assert!(back == sent[..through], "what went through differs");
        assert!(
            kept == sent[through..through + kept.len()],
            "the kept bytes are not the next ones"
        );
        drop(server);
        drop(peer);
        let _ = writer.join();
    }

    #[test]
    fn a_pipe_that_gives_back_less_than_it_took_breaks_the_relay() {
        // Bytes spliced into one pipe and looked for in another: as if the pipe lost them.
        let (_first_read, write) = sys::relay_pipe(64 * 1024).unwrap();
        let (read, _second_write) = sys::relay_pipe(64 * 1024).unwrap();
        let mut relay = Relay {
            read,
            write,
            from: SPLICE_FROM,
            broken: false,
        };
        let (server, mut peer) = pair();
        peer.write_all(b"lost").unwrap();
        let mut buf = vec![0; 64 * 1024];
        let mut tries = 0;
        let (relayed, got) = loop {
            let (relayed, got) = relay.pass(&mut Sys, &server, &mut buf);
            match got {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && tries < 5_000 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                got => break (relayed, got),
            }
        };
        assert!(
            relay.broken,
            "the relay must stop: {relayed:?} {got:?} after {tries}"
        );
        assert_eq!(relayed.kept, 0);
        assert_eq!(got.unwrap_err().kind(), io::ErrorKind::Other);
    }
}
