//! The thin layer over the operating system: the server's every `unsafe` block lives here.
//!
//! One function per syscall (or per short, fixed sequence of them), taking borrowed or owned
//! file descriptors so that a closed descriptor can never be used again. Sockets are made,
//! configured and accepted through `socket2`; `libc` remains for what it does not cover
//! without cost: `select` past `FD_SETSIZE`, `recv`/`send` with the flags we need,
//! `shutdown`, the timer slack. Hot-path calls (`accept`, `recv`, `send`) return the bare
//! OS error, which costs no allocation and keeps its errno for the caller to classify;
//! set-up calls add context naming the call. Everything above this module is safe Rust.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use libc::c_int;
use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};

use crate::fd_set::FdSet;

/// The listen backlog, as Redis: the kernel caps it at `somaxconn` anyway.
pub const BACKLOG: c_int = 511;

/// `select` rejects timeouts over 10^8 seconds on macOS; a year is plenty.
const MAX_TIMEOUT_SECS: u64 = 365 * 24 * 3600;

/// An `io::Error` that says which call failed, for set-up paths (it allocates).
pub fn context(what: &str, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}

/// `ret`, or the errno it signalled.
fn cvt(ret: c_int) -> io::Result<c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `select(2)` on the three sets, which it overwrites with the ready descriptors.
/// `None` waits for ever. `EINTR` is returned as `ErrorKind::Interrupted`: the caller
/// must rebuild the sets and go round again (host rule 3). The sets may hold descriptors
/// of any number (host rule 1): each is grown to `nfds` bits before the call.
pub fn select(
    read: &mut FdSet,
    write: &mut FdSet,
    except: &mut FdSet,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let nfds = read.max().max(write.max()).max(except.max()) + 1;
    let mut tv = timeout.map(|d| libc::timeval {
        tv_sec: d.as_secs().min(MAX_TIMEOUT_SECS) as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    });
    let tvp = tv
        .as_mut()
        .map_or(std::ptr::null_mut(), |t| t as *mut libc::timeval);
    let (r, w, e) = (read.as_raw(nfds), write.as_raw(nfds), except.as_raw(nfds));
    // SAFETY: each set pointer is null (nfds 0) or points to an exclusively borrowed
    // bitmap of `fd_mask` words at least `nfds` bits long, which is all the kernel reads
    // or writes; `tvp` is null or points to a live `timeval`.
    let n = unsafe { unlimited::select(nfds, r, w, e, tvp) };
    cvt(n).map(|n| n as usize)
}

/// The `select` that takes bitmaps beyond `FD_SETSIZE`.
#[cfg(not(target_vendor = "apple"))]
mod unlimited {
    /// Linux and FreeBSD read as many bits as `nfds` says (up to the descriptor table).
    pub(super) use libc::select;
}

/// The `select` that takes bitmaps beyond `FD_SETSIZE`.
#[cfg(target_vendor = "apple")]
mod unlimited {
    use libc::{c_int, fd_set, timeval};

    extern "C" {
        /// Darwin's `select` fails with `EINVAL` when `nfds` exceeds `FD_SETSIZE`; this
        /// variant, what C programs built with `_DARWIN_UNLIMITED_SELECT` call, does not.
        #[link_name = "select$DARWIN_EXTSN"]
        pub(super) fn select(
            nfds: c_int,
            readfds: *mut fd_set,
            writefds: *mut fd_set,
            errorfds: *mut fd_set,
            timeout: *mut timeval,
        ) -> c_int;
    }
}

/// A listening socket on `addr` (host rule 7): close-on-exec (and `SO_NOSIGPIPE` on
/// macOS: `socket2` sets both), non-blocking, `SO_REUSEADDR`, IPv6-only for IPv6
/// addresses (so that `0.0.0.0` and `::` can both be bound on one port), backlog
/// [`BACKLOG`].
pub fn listen(addr: SocketAddr) -> io::Result<OwnedFd> {
    let domain = Domain::for_address(addr);
    let socket =
        Socket::new(domain, Type::STREAM, Some(Protocol::TCP)).map_err(|e| context("socket", e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| context("O_NONBLOCK", e))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| context("SO_REUSEADDR", e))?;
    if domain == Domain::IPV6 {
        socket
            .set_only_v6(true)
            .map_err(|e| context("IPV6_V6ONLY", e))?;
    }
    socket.bind(&addr.into()).map_err(|e| context("bind", e))?;
    socket.listen(BACKLOG).map_err(|e| context("listen", e))?;
    Ok(socket.into())
}

/// The address a socket is bound to: the real port after binding port 0 (host rule 9).
pub fn local_addr(fd: BorrowedFd<'_>) -> io::Result<SocketAddr> {
    let addr = SockRef::from(&fd)
        .local_addr()
        .map_err(|e| context("getsockname", e))?;
    inet(&addr)
}

/// An IPv4 or IPv6 address, or `Unsupported`.
fn inet(addr: &SockAddr) -> io::Result<SocketAddr> {
    addr.as_socket()
        .ok_or_else(|| io::ErrorKind::Unsupported.into())
}

/// Accepts one connection: non-blocking, close-on-exec, urgent data inline (host rule 5),
/// no SIGPIPE on macOS (rule 4), no Nagle delay on echoes. `EINTR` is retried here;
/// other errors (`EAGAIN`, `ECONNABORTED`, `EMFILE`...) are the caller's to classify.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<(OwnedFd, SocketAddr)> {
    let listener = SockRef::from(&listener);
    let (socket, peer) = loop {
        match accept_nonblocking(&listener) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            accepted => break accepted?,
        }
    };
    socket.set_out_of_band_inline(true)?;
    socket.set_tcp_nodelay(true)?;
    Ok((socket.into(), inet(&peer)?))
}

/// `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)`: the new socket's flags in the same call.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn accept_nonblocking(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    listener.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
}

/// `accept`, then the flags: `socket2` sets close-on-exec and `SO_NOSIGPIPE` (macOS).
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn accept_nonblocking(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    let (socket, peer) = listener.accept()?;
    socket.set_nonblocking(true)?;
    Ok((socket, peer))
}

/// One `recv(2)` into `buf`; `Ok(0)` is EOF. `EINTR` is retried.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `send(2)` flags: never raise SIGPIPE (host rule 4). macOS has no `MSG_NOSIGNAL`; its
/// sockets get `SO_NOSIGPIPE` at accept instead (`socket2` sets it).
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
const SEND_FLAGS: c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
const SEND_FLAGS: c_int = 0;

/// One `send(2)` of `buf`; may send fewer bytes (host rule 4). `EINTR` is retried.
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
        let n = unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), SEND_FLAGS) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `shutdown(SHUT_WR)`: sends FIN once the socket's buffer is delivered.
pub fn shutdown_write(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: shutdown(2) on an open descriptor.
    cvt(unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) }).map(drop)
}

/// Asks for timers as precise as the kernel can make them on this thread: Linux lets a
/// sleep overrun by the thread's timer slack, 50 µs by default, which would make a
/// 40 µs batching nap more than twice as long. Elsewhere there is no such knob.
pub fn precise_timers() {
    #[cfg(target_os = "linux")]
    {
        const ONE_MICROSECOND_NS: libc::c_ulong = 1_000;
        // SAFETY: PR_SET_TIMERSLACK takes one integer argument and touches no memory of
        // ours; a failure only leaves the default slack, so its result is not needed.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ONE_MICROSECOND_NS) };
    }
}

/// Empties a non-blocking socket (the signal pipe) into the void; returns the bytes
/// discarded.
pub fn drain(fd: BorrowedFd<'_>, scratch: &mut [u8]) -> io::Result<usize> {
    let mut total = 0;
    loop {
        match recv(fd, scratch) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::os::fd::{AsFd, FromRawFd, RawFd};
    use std::os::unix::net::UnixStream;

    use super::*;

    /// A connected, non-blocking pair: (read end, write end).
    fn pair() -> (UnixStream, UnixStream) {
        let (r, w) = UnixStream::pair().unwrap();
        r.set_nonblocking(true).unwrap();
        (r, w)
    }

    #[test]
    fn port_zero_reports_the_real_port() {
        let fd = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = local_addr(fd.as_fd()).unwrap();
        assert_ne!(addr.port(), 0);
        assert!(addr.ip().is_loopback());
    }

    #[test]
    fn accepted_sockets_are_non_blocking_with_the_peer_address() {
        let listener = listen("[::1]:0".parse().unwrap()).unwrap();
        assert!(matches!(
            accept(listener.as_fd()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        ));
        let addr = local_addr(listener.as_fd()).unwrap();
        let mut client = TcpStream::connect(addr).unwrap();
        let (fd, peer) = loop {
            match accept(listener.as_fd()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                accepted => break accepted.unwrap(),
            }
        };
        assert_eq!(peer, client.local_addr().unwrap());
        let socket = SockRef::from(&fd);
        assert!(socket.nonblocking().unwrap());
        assert!(socket.out_of_band_inline().unwrap());
        assert!(socket.tcp_nodelay().unwrap());
        let mut buf = [0u8; 8];
        assert_eq!(
            recv(fd.as_fd(), &mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert_eq!(send(fd.as_fd(), b"echo").unwrap(), 4);
        shutdown_write(fd.as_fd()).unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"echo");
    }

    #[test]
    fn select_times_out_and_sees_a_ready_socket() {
        let (r, mut w) = pair();
        let (mut rd, mut wr, mut ex) = (FdSet::new(), FdSet::new(), FdSet::new());
        rd.insert(r.as_raw_fd());
        let n = select(&mut rd, &mut wr, &mut ex, Some(Duration::from_millis(1))).unwrap();
        assert_eq!(n, 0);
        w.write_all(b"x").unwrap();
        rd.insert(r.as_raw_fd());
        let n = select(&mut rd, &mut wr, &mut ex, None).unwrap();
        assert_eq!(n, 1);
        assert!(rd.contains(r.as_raw_fd()));
        assert_eq!(drain(r.as_fd(), &mut [0; 8]).unwrap(), 1);
        assert_eq!(drain(r.as_fd(), &mut [0; 8]).unwrap(), 0);
    }

    /// Raises this process's soft descriptor limit toward `want`; returns the new limit.
    fn raise_nofile(want: libc::rlim_t) -> libc::rlim_t {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one `rlimit`, which `lim` is.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        lim.rlim_cur = lim.rlim_cur.max(want.min(lim.rlim_max));
        // SAFETY: setrlimit reads one `rlimit`, which `lim` is.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
        lim.rlim_cur
    }

    #[test]
    fn select_watches_descriptors_beyond_fd_setsize() {
        let limit = raise_nofile(8192);
        assert!(
            limit > 1100,
            "the hard descriptor limit ({limit}) is too low for this test"
        );
        let (r, mut w) = pair();
        let mut high = Vec::new();
        for at in [1024, limit as c_int - 50] {
            // SAFETY: F_DUPFD_CLOEXEC on an open descriptor returns a new one (or -1).
            let fd = cvt(unsafe { libc::fcntl(r.as_raw_fd(), libc::F_DUPFD_CLOEXEC, at) });
            // SAFETY: the descriptor was just created and is owned by nobody else.
            high.push(unsafe { OwnedFd::from_raw_fd(fd.unwrap()) });
        }
        let (mut rd, mut wr, mut ex) = (FdSet::new(), FdSet::new(), FdSet::new());
        for fd in &high {
            assert!(fd.as_raw_fd() >= 1024);
            rd.insert(fd.as_raw_fd());
        }
        let n = select(&mut rd, &mut wr, &mut ex, Some(Duration::from_millis(1))).unwrap();
        assert_eq!(n, 0);
        w.write_all(b"x").unwrap();
        for fd in &high {
            rd.insert(fd.as_raw_fd());
        }
        let n = select(&mut rd, &mut wr, &mut ex, None).unwrap();
        assert_eq!(n, 2);
        let ready: Vec<RawFd> = rd.iter().collect();
        let want: Vec<RawFd> = high.iter().map(AsRawFd::as_raw_fd).collect();
        assert_eq!(ready, want);
    }
}
