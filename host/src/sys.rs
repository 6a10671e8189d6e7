//! The thin layer over libc: every `unsafe` block of the host lives here.
//!
//! One function per syscall (or per short, fixed sequence of them), taking borrowed or owned
//! file descriptors so that a closed descriptor can never be used again. Hot-path calls
//! (`accept`, `recv`, `send`) return the bare OS error, which costs no allocation and keeps
//! its errno for the caller to classify; set-up calls add context naming the call.
//! Everything above this module is safe Rust.

use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use libc::{c_int, c_void, socklen_t};

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

/// Takes ownership of a descriptor a syscall just returned.
fn owned(fd: c_int) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful syscall that creates a descriptor, so
    // it is open and owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
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

/// A `sockaddr_storage` with its used length.
struct RawAddr {
    storage: libc::sockaddr_storage,
    len: socklen_t,
}

impl RawAddr {
    fn zeroed() -> Self {
        RawAddr {
            // SAFETY: `sockaddr_storage` is plain old data; all zeroes is a valid value.
            storage: unsafe { std::mem::zeroed() },
            len: size_of::<libc::sockaddr_storage>() as socklen_t,
        }
    }

    fn from_socket_addr(addr: &SocketAddr) -> Self {
        let mut raw = RawAddr::zeroed();
        match addr {
            SocketAddr::V4(a) => {
                // SAFETY: all zeroes is a valid `sockaddr_in`.
                let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                #[cfg(target_vendor = "apple")]
                {
                    sin.sin_len = size_of::<libc::sockaddr_in>() as u8;
                }
                // SAFETY: `sockaddr_storage` is larger than and aligned for any sockaddr.
                unsafe {
                    std::ptr::write(
                        (&mut raw.storage as *mut libc::sockaddr_storage).cast(),
                        sin,
                    )
                };
                raw.len = size_of::<libc::sockaddr_in>() as socklen_t;
            }
            SocketAddr::V6(a) => {
                // SAFETY: all zeroes is a valid `sockaddr_in6`.
                let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_scope_id = a.scope_id();
                #[cfg(target_vendor = "apple")]
                {
                    sin6.sin6_len = size_of::<libc::sockaddr_in6>() as u8;
                }
                // SAFETY: as above.
                unsafe {
                    std::ptr::write(
                        (&mut raw.storage as *mut libc::sockaddr_storage).cast(),
                        sin6,
                    )
                };
                raw.len = size_of::<libc::sockaddr_in6>() as socklen_t;
            }
        }
        raw
    }

    fn to_socket_addr(&self) -> io::Result<SocketAddr> {
        match c_int::from(self.storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a `sockaddr_in`, and the storage
                // is large enough and aligned for one.
                let sin = unsafe {
                    &*(&self.storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Ok(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for `sockaddr_in6`.
                let sin6 = unsafe {
                    &*(&self.storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => Err(io::ErrorKind::Unsupported.into()),
        }
    }
}

/// Sets an integer socket option.
fn set_int_opt(fd: BorrowedFd<'_>, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    // SAFETY: `fd` is open; the option value is a live `c_int` whose size is passed.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const c_int).cast::<c_void>(),
            size_of::<c_int>() as socklen_t,
        )
    };
    cvt(ret).map(drop)
}

/// Sets `O_NONBLOCK` and `FD_CLOEXEC`: for platforms without `SOCK_NONBLOCK`/`accept4`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_nonblocking_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on an open descriptor with integer arguments only.
    unsafe {
        let flags = cvt(libc::fcntl(raw, libc::F_GETFL))?;
        cvt(libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
        cvt(libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC))?;
    }
    Ok(())
}

/// A new non-blocking, close-on-exec TCP socket (host rule 7).
fn tcp_socket(domain: c_int) -> io::Result<OwnedFd> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: socket(2) with integer arguments only.
        let fd = cvt(unsafe { libc::socket(domain, ty, 0) })?;
        Ok(owned(fd))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        // SAFETY: socket(2) with integer arguments only.
        let fd = owned(cvt(unsafe { libc::socket(domain, libc::SOCK_STREAM, 0) })?);
        set_nonblocking_cloexec(fd.as_fd())?;
        Ok(fd)
    }
}

/// A listening socket on `addr`: `SO_REUSEADDR`, IPv6-only for IPv6 addresses (so that
/// `0.0.0.0` and `::` can both be bound on one port), backlog [`BACKLOG`].
pub fn listen(addr: SocketAddr) -> io::Result<OwnedFd> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let fd = tcp_socket(domain).map_err(|e| context("socket", e))?;
    set_int_opt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
        .map_err(|e| context("SO_REUSEADDR", e))?;
    if domain == libc::AF_INET6 {
        set_int_opt(fd.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)
            .map_err(|e| context("IPV6_V6ONLY", e))?;
    }
    let raw = RawAddr::from_socket_addr(&addr);
    // SAFETY: `raw.storage` holds a valid sockaddr of `raw.len` bytes.
    let ret = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw.storage as *const libc::sockaddr_storage).cast(),
            raw.len,
        )
    };
    cvt(ret).map_err(|e| context("bind", e))?;
    // SAFETY: listen(2) on an open, bound socket.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), BACKLOG) }).map_err(|e| context("listen", e))?;
    Ok(fd)
}

/// The address a socket is bound to: the real port after binding port 0 (host rule 9).
pub fn local_addr(fd: BorrowedFd<'_>) -> io::Result<SocketAddr> {
    let mut raw = RawAddr::zeroed();
    // SAFETY: `raw.storage` is writable for `raw.len` bytes, which getsockname updates.
    let ret = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut raw.storage as *mut libc::sockaddr_storage).cast(),
            &mut raw.len,
        )
    };
    cvt(ret).map_err(|e| context("getsockname", e))?;
    raw.to_socket_addr()
}

/// Accepts one connection: non-blocking, close-on-exec, urgent data inline (host rule 5),
/// no SIGPIPE on macOS (rule 4), no Nagle delay on echoes. `EINTR` is retried here;
/// other errors (`EAGAIN`, `ECONNABORTED`, `EMFILE`...) are the caller's to classify.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<(OwnedFd, SocketAddr)> {
    let mut raw = RawAddr::zeroed();
    let fd = loop {
        let addr = (&mut raw.storage as *mut libc::sockaddr_storage).cast();
        // SAFETY: `raw.storage` is writable for `raw.len` bytes, which accept updates.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let ret = unsafe {
            let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
            libc::accept4(listener.as_raw_fd(), addr, &mut raw.len, flags)
        };
        // SAFETY: as above.
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let ret = unsafe { libc::accept(listener.as_raw_fd(), addr, &mut raw.len) };
        match cvt(ret) {
            Ok(fd) => break owned(fd),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        set_nonblocking_cloexec(fd.as_fd())?;
        set_int_opt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_NOSIGPIPE, 1)?;
    }
    set_int_opt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_OOBINLINE, 1)?;
    set_int_opt(fd.as_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
    let peer = raw.to_socket_addr()?;
    Ok((fd, peer))
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
/// sockets get `SO_NOSIGPIPE` at accept instead.
#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
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

/// A non-blocking, close-on-exec pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as c_int; 2];
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
        Ok((owned(fds[0]), owned(fds[1])))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        // SAFETY: `fds` has room for the two descriptors pipe writes.
        cvt(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
        let (r, w) = (owned(fds[0]), owned(fds[1]));
        set_nonblocking_cloexec(r.as_fd())?;
        set_nonblocking_cloexec(w.as_fd())?;
        Ok((r, w))
    }
}

/// The write end of the self-pipe, for the signal handler; -1 when none.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

#[cfg(any(target_os = "linux", target_os = "android"))]
fn errno_location() -> *mut c_int {
    // SAFETY: returns the calling thread's errno slot; always valid.
    unsafe { libc::__errno_location() }
}

#[cfg(target_vendor = "apple")]
fn errno_location() -> *mut c_int {
    // SAFETY: returns the calling thread's errno slot; always valid.
    unsafe { libc::__error() }
}

/// Writes the signal's number into the self-pipe. Only async-signal-safe calls: `write`,
/// and errno saved and restored so the interrupted code never sees it change.
extern "C" fn on_signal(signal: c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    let errno = errno_location();
    let byte = signal as u8;
    // SAFETY: `errno` is this thread's errno slot; `fd` is the pipe's write end, which is
    // never closed once published; `byte` is a live byte. A full pipe (EAGAIN) is fine:
    // a byte is already waiting.
    unsafe {
        let saved = *errno;
        libc::write(fd, (&byte as *const u8).cast(), 1);
        *errno = saved;
    }
}

/// Routes SIGINT and SIGTERM into a self-pipe (host rule 8) and returns its read end,
/// which becomes readable when a signal arrives. The write end is kept open for the
/// life of the process (a handler may run at any time); calling this again makes a new
/// pipe.
pub fn signal_pipe() -> io::Result<OwnedFd> {
    use std::os::fd::IntoRawFd;
    let (read, write) = pipe().map_err(|e| context("pipe", e))?;
    SIGNAL_PIPE.store(write.into_raw_fd(), Ordering::Relaxed);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: all zeroes is a valid `sigaction`; the handler only makes
        // async-signal-safe calls; sigemptyset and sigaction get valid pointers.
        let ret = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        cvt(ret).map_err(|e| context("sigaction", e))?;
    }
    Ok(read)
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

/// Empties a non-blocking pipe (or socket) into the void; returns the bytes discarded.
pub fn drain(fd: BorrowedFd<'_>, scratch: &mut [u8]) -> io::Result<usize> {
    let mut total = 0;
    loop {
        // SAFETY: `scratch` is valid for writes of `scratch.len()` bytes.
        let n = unsafe { libc::read(fd.as_raw_fd(), scratch.as_mut_ptr().cast(), scratch.len()) };
        match n {
            0 => return Ok(total),
            n if n > 0 => total += n as usize,
            _ => {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => return Ok(total),
                    _ => return Err(err),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::RawFd;

    use super::*;
    #[test]
    fn addresses_round_trip() {
        for text in ["127.0.0.1:8090", "[::1]:443", "[fe80::1%2]:7"] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(
                RawAddr::from_socket_addr(&addr).to_socket_addr().unwrap(),
                addr
            );
        }
    }

    #[test]
    fn port_zero_reports_the_real_port() {
        let fd = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = local_addr(fd.as_fd()).unwrap();
        assert_ne!(addr.port(), 0);
    }

    #[test]
    fn select_times_out_and_sees_a_ready_pipe() {
        let (r, w) = pipe().unwrap();
        let (mut rd, mut wr, mut ex) = (FdSet::new(), FdSet::new(), FdSet::new());
        rd.insert(r.as_raw_fd());
        let n = select(&mut rd, &mut wr, &mut ex, Some(Duration::from_millis(1))).unwrap();
        assert_eq!(n, 0);
        let mut file = std::fs::File::from(w);
        std::io::Write::write_all(&mut file, b"x").unwrap();
        rd.insert(r.as_raw_fd());
        let n = select(&mut rd, &mut wr, &mut ex, None).unwrap();
        assert_eq!(n, 1);
        assert!(rd.contains(r.as_raw_fd()));
        assert_eq!(drain(r.as_fd(), &mut [0; 8]).unwrap(), 1);
    }

    /// Raises this process's soft descriptor limit toward `want`; returns the new limit.
    fn raise_nofile(want: u64) -> u64 {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one `rlimit`, which `lim` is.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        lim.rlim_cur = lim.rlim_cur.max(want.min(lim.rlim_max));
        // SAFETY: setrlimit reads one `rlimit`, which `lim` is.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
        lim.rlim_cur as u64
    }

    #[test]
    fn select_watches_descriptors_beyond_fd_setsize() {
        let limit = raise_nofile(8192);
        assert!(
            limit > 1100,
            "the hard descriptor limit ({limit}) is too low for this test"
        );
        let (r, w) = pipe().unwrap();
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
        std::io::Write::write_all(&mut std::fs::File::from(w), b"x").unwrap();
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
