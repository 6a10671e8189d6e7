//! The event loop's window on the operating system: the few calls the select(2) driver
//! makes once it is running, behind one small trait.
//!
//! [`Sys`] is the real thing and only forwards to [`sys`]; it is a zero-sized
//! type and [`Driver`](crate::Driver) is generic over it, so the calls are statically
//! dispatched and inlined. The trait exists so that a simulated socket layer (seeded
//! readiness, short reads, resets, `EMFILE`, clock jumps) can run the very same driver
//! without a single real socket: see `host/tests/sim/`. Readiness is a backend's
//! (`poll`): both of them, `select` and `epoll`, make their calls through this trait.
//!
//! Set-up is not part of it: it happens before the loop, in
//! [`Driver::bind`](crate::Driver::bind) (binding listeners) and at the binary's start-up
//! ([`signals::self_pipe`](crate::signals::self_pipe), installing the signal handlers).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use echoloop_core::Interest;

use crate::poll::fd_set::FdSet;
use crate::sys;

/// A descriptor for the readiness calls: a socket, or a UDP socket.
pub enum Source<'a, N: Net + ?Sized> {
    /// A connection, listener or the signal pipe.
    Socket(&'a N::Socket),
    /// A UDP socket.
    Datagram(&'a N::Datagram),
}

impl<N: Net + ?Sized> Source<'_, N> {
    /// Its number.
    pub fn raw(&self) -> RawFd {
        match self {
            Source::Socket(s) => s.as_raw_fd(),
            Source::Datagram(d) => d.as_raw_fd(),
        }
    }
}

/// An `epoll_ctl` operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctl {
    /// `EPOLL_CTL_ADD`: the descriptor was not registered.
    Add,
    /// `EPOLL_CTL_MOD`: it was, for other events.
    Modify,
    /// `EPOLL_CTL_DEL`: it is no longer wanted.
    Delete,
}

/// One event `epoll_wait` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Polled {
    /// The descriptor registered.
    pub fd: RawFd,
    /// `EPOLLIN` (or `EPOLLPRI`).
    pub read: bool,
    /// `EPOLLOUT`.
    pub write: bool,
    /// `EPOLLHUP` or `EPOLLERR`: reported whether asked for or not.
    pub hangup: bool,
}

/// The most events one `epoll_wait` returns: the rest wait for the next round (level
/// triggering keeps them), as with mio's default.
pub const EPOLL_EVENTS: usize = 1024;

/// The calls the event loop makes. Errors carry the OS errno
/// ([`io::Error::raw_os_error`]), which the driver classifies: an implementation reports
/// failures exactly as the syscall would.
///
/// Every call may fail with `ErrorKind::Interrupted` (`EINTR`); the driver treats it as
/// "not now" and relies on `select` being level-triggered to come back.
pub trait Net {
    /// An open socket, pipe or file. Not `Clone`: exactly one owner, who hands it back
    /// to [`close`](Net::close).
    type Socket: AsRawFd;

    /// A bound UDP socket (`serve --udp`), non-blocking. Closed when dropped.
    type Datagram: AsRawFd;

    /// `select(2)` on three sets: waits until one of their descriptors is ready or
    /// `timeout` passes (`None`: for ever), leaves only the ready ones in the sets,
    /// returns their count.
    fn select(
        &mut self,
        read: &mut FdSet,
        write: &mut FdSet,
        except: &mut FdSet,
        timeout: Option<Duration>,
    ) -> io::Result<usize>;

    /// `epoll_create1(EPOLL_CLOEXEC)`; `Unsupported` where there is no epoll.
    fn epoll_create(&mut self) -> io::Result<Self::Socket>;

    /// `epoll_ctl`: `fd` registered (level-triggered) for what `interest` names, its
    /// events carrying its number; or removed.
    fn epoll_ctl(
        &mut self,
        epoll: &Self::Socket,
        op: Ctl,
        fd: Source<'_, Self>,
        interest: Interest,
    ) -> io::Result<()>;

    /// `epoll_wait`: up to [`EPOLL_EVENTS`] events into `events` (cleared first), waiting
    /// at most `timeout` (`None`: for ever) for the first. Returns their count.
    fn epoll_wait(
        &mut self,
        epoll: &Self::Socket,
        events: &mut Vec<Polled>,
        timeout: Option<Duration>,
    ) -> io::Result<usize>;

    /// Accepts one pending connection on `listener`: the new socket, non-blocking and
    /// without SIGPIPE, and its peer's address. `EAGAIN` when none is pending; any error
    /// concerns the listener.
    fn accept(&mut self, listener: &Self::Socket) -> io::Result<(Self::Socket, SocketAddr)>;

    /// Whether a socket just accepted already has what [`prepare`](Net::prepare) gives it,
    /// copied from its listener. A failure concerns that socket only.
    fn prepared(&mut self, socket: &Self::Socket) -> io::Result<bool>;

    /// The steps on a socket just accepted: urgent data inline, no Nagle delay. A failure
    /// concerns that socket only (its peer may have reset it already): the driver closes
    /// it and goes on accepting.
    fn prepare(&mut self, socket: &Self::Socket) -> io::Result<()>;

    /// One `recv(2)` into `buf`; `Ok(0)` is the peer's EOF.
    fn recv(&mut self, socket: &Self::Socket, buf: &mut [u8]) -> io::Result<usize>;

    /// One `send(2)` of `buf`, perhaps in part. Never raises SIGPIPE.
    fn send(&mut self, socket: &Self::Socket, buf: &[u8]) -> io::Result<usize>;

    /// A pipe for the relay (`relay`): its read end, then its write end, non-blocking,
    /// asked to hold `size` bytes. `Unsupported` where connections cannot be relayed (no
    /// `splice(2)`, or SIGPIPE not ignored): the driver then always receives and sends.
    fn relay_pipe(&mut self, size: usize) -> io::Result<(Self::Socket, Self::Socket)>;

    /// One `splice(2)` of at most `len` bytes from a socket into the relay pipe's write
    /// end, or from its read end into a socket; never blocks. From a socket, `Ok(0)` is its
    /// peer's EOF; into one, it fails as `send` would.
    fn splice(&mut self, from: &Self::Socket, to: &Self::Socket, len: usize) -> io::Result<usize>;

    /// One `read(2)` from the relay pipe's read end into `buf`.
    fn read(&mut self, from: &Self::Socket, buf: &mut [u8]) -> io::Result<usize>;

    /// One `recvfrom(2)` into `buf`: the datagram's length (at most `buf.len()`: a longer
    /// one is cut to it, as Linux does without `MSG_TRUNC`) and its sender. `EAGAIN` when
    /// none waits; any other error (`ECONNREFUSED` after an ICMP error) concerns one
    /// datagram, never the socket.
    fn recv_from(
        &mut self,
        socket: &Self::Datagram,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr)>;

    /// One `sendto(2)` of `buf` as one datagram to `to`.
    fn send_to(&mut self, socket: &Self::Datagram, buf: &[u8], to: SocketAddr)
        -> io::Result<usize>;

    /// `shutdown(SHUT_WR)`: a FIN after what was sent.
    fn shutdown_write(&mut self, socket: &Self::Socket) -> io::Result<()>;

    /// `close(2)`: a FIN after what was sent.
    fn close(&mut self, socket: Self::Socket);

    /// `close(2)` after `SO_LINGER` with a zero timeout: a reset, so that the peer learns
    /// at once that bytes were lost instead of taking a FIN for a complete echo (a close
    /// whose reason is not [`is_graceful`](echoloop_core::CloseReason::is_graceful)).
    fn reset(&mut self, socket: Self::Socket);

    /// Empties the signal self-pipe; returns how many bytes it held.
    fn drain(&mut self, pipe: &Self::Socket, scratch: &mut [u8]) -> io::Result<usize>;

    /// Opens the descriptor kept in reserve for running out of descriptors (host rule 6):
    /// giving it up lets one more `accept` succeed.
    fn open_reserve(&mut self) -> io::Result<Self::Socket>;

    /// Sleeps for about `d` (a batching nap, microseconds long); may return early.
    fn nap(&mut self, d: Duration);

    /// Now, on a monotonic clock.
    fn now(&self) -> Instant;
}

/// The operating system, through [`sys`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Sys;

impl Net for Sys {
    type Socket = OwnedFd;
    type Datagram = UdpSocket;

    #[inline]
    fn select(
        &mut self,
        read: &mut FdSet,
        write: &mut FdSet,
        except: &mut FdSet,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        sys::select(read, write, except, timeout)
    }

    fn epoll_create(&mut self) -> io::Result<OwnedFd> {
        sys::epoll::create()
    }

    #[inline]
    fn epoll_ctl(
        &mut self,
        epoll: &OwnedFd,
        op: Ctl,
        fd: Source<'_, Self>,
        interest: Interest,
    ) -> io::Result<()> {
        match fd {
            Source::Socket(s) => sys::epoll::ctl(epoll.as_fd(), op, s.as_fd(), interest),
            Source::Datagram(d) => sys::epoll::ctl(epoll.as_fd(), op, d.as_fd(), interest),
        }
    }

    #[inline]
    fn epoll_wait(
        &mut self,
        epoll: &OwnedFd,
        events: &mut Vec<Polled>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        sys::epoll::wait(epoll.as_fd(), events, timeout)
    }

    #[inline]
    fn accept(&mut self, listener: &OwnedFd) -> io::Result<(OwnedFd, SocketAddr)> {
        sys::accept(listener.as_fd())
    }

    #[inline]
    fn prepared(&mut self, socket: &OwnedFd) -> io::Result<bool> {
        sys::prepared(socket.as_fd())
    }

    #[inline]
    fn prepare(&mut self, socket: &OwnedFd) -> io::Result<()> {
        sys::prepare(socket.as_fd())
    }

    #[inline]
    fn recv(&mut self, socket: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
        sys::recv(socket.as_fd(), buf)
    }

    #[inline]
    fn send(&mut self, socket: &OwnedFd, buf: &[u8]) -> io::Result<usize> {
        sys::send(socket.as_fd(), buf)
    }

    fn relay_pipe(&mut self, size: usize) -> io::Result<(OwnedFd, OwnedFd)> {
        sys::relay_pipe(size)
    }

    #[inline]
    fn splice(&mut self, from: &OwnedFd, to: &OwnedFd, len: usize) -> io::Result<usize> {
        sys::splice(from.as_fd(), to.as_fd(), len)
    }

    #[inline]
    fn read(&mut self, from: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
        sys::read(from.as_fd(), buf)
    }

    #[inline]
    fn recv_from(&mut self, socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        socket.recv_from(buf)
    }

    #[inline]
    fn send_to(&mut self, socket: &UdpSocket, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        socket.send_to(buf, to)
    }

    #[inline]
    fn shutdown_write(&mut self, socket: &OwnedFd) -> io::Result<()> {
        sys::shutdown_write(socket.as_fd())
    }

    #[inline]
    fn close(&mut self, socket: OwnedFd) {
        drop(socket);
    }

    fn reset(&mut self, socket: OwnedFd) {
        // If the option cannot be set the close still happens, as a FIN.
        let _ = socket2::SockRef::from(&socket).set_linger(Some(Duration::ZERO));
        drop(socket);
    }

    fn drain(&mut self, pipe: &OwnedFd, scratch: &mut [u8]) -> io::Result<usize> {
        sys::drain(pipe.as_fd(), scratch)
    }

    fn open_reserve(&mut self) -> io::Result<OwnedFd> {
        std::fs::File::open("/dev/null").map(OwnedFd::from)
    }

    fn nap(&mut self, d: Duration) {
        std::thread::sleep(d);
    }

    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }
}
