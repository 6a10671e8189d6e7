//! The thin layer over the operating system: the server's every `unsafe` block lives here.
//!
//! One function per syscall (or per short, fixed sequence of them), taking borrowed or owned
//! file descriptors so that a closed descriptor can never be used again. Sockets are made,
//! configured and accepted through `socket2`; the relay's pipe, `splice` and `read`, the
//! descriptor limit, the page size and the timer slack through `rustix`, which makes those
//! calls safe; `libc` remains for what neither covers: `select` past `FD_SETSIZE`, the
//! SIGPIPE disposition and the pool's mapping. Hot-path calls (`accept`, `recv`, `send`) return the bare
//! OS error, which costs no allocation and keeps its errno for the caller to classify;
//! set-up calls add context naming the call. Everything above this module is safe Rust.

use std::io::{self, Read as _};
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut, Range};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::time::Duration;

use libc::c_int;
use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};

use crate::poll::fd_set::FdSet;

mod inherit;
pub use inherit::{inherit, to_null};

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
        // `as _`: the fields' types differ between libcs (musl deprecates the aliases).
        tv_sec: d.as_secs().min(MAX_TIMEOUT_SECS) as _,
        tv_usec: d.subsec_micros() as _,
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

/// epoll through rustix: no `unsafe` here, and only on Linux.
pub mod epoll {
    use std::io;
    use std::os::fd::{BorrowedFd, OwnedFd};
    use std::time::Duration;

    use echoloop_core::Interest;

    use crate::net::{Ctl, Polled};

    /// `epoll_create1(EPOLL_CLOEXEC)`.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn create() -> io::Result<OwnedFd> {
        use rustix::event::epoll;
        epoll::create(epoll::CreateFlags::CLOEXEC)
            .map_err(|e| super::context("epoll_create1", e.into()))
    }

    /// `epoll_ctl`, level-triggered, the event's data the descriptor's number.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn ctl(
        ep: BorrowedFd<'_>,
        op: Ctl,
        fd: BorrowedFd<'_>,
        interest: Interest,
    ) -> io::Result<()> {
        use std::os::fd::AsRawFd;

        use rustix::event::epoll::{self, EventData, EventFlags};
        let mut flags = EventFlags::empty();
        flags.set(EventFlags::IN, interest.read);
        flags.set(EventFlags::OUT, interest.write);
        let data = EventData::new_u64(u64::try_from(fd.as_raw_fd()).unwrap_or(u64::MAX));
        let done = match op {
            Ctl::Add => epoll::add(ep, fd, data, flags),
            Ctl::Modify => epoll::modify(ep, fd, data, flags),
            Ctl::Delete => epoll::delete(ep, fd),
        };
        done.map_err(io::Error::from)
    }

    /// `epoll_wait` for at most [`EPOLL_EVENTS`](crate::net::EPOLL_EVENTS) events.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn wait(
        ep: BorrowedFd<'_>,
        out: &mut Vec<Polled>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        use rustix::event::epoll::{self, EventFlags};
        use rustix::event::Timespec;
        out.clear();
        let timeout = timeout.map(|d| Timespec {
            tv_sec: d.as_secs().min(super::MAX_TIMEOUT_SECS) as _,
            tv_nsec: d.subsec_nanos() as _,
        });
        // Not initialised: the kernel writes what it returns, and only that is read.
        let mut events = [const { std::mem::MaybeUninit::uninit() }; crate::net::EPOLL_EVENTS];
        let (got, _) = epoll::wait(ep, &mut events, timeout.as_ref())?;
        for e in got.iter() {
            let flags = e.flags;
            out.push(Polled {
                fd: i32::try_from(e.data.u64()).unwrap_or(-1),
                read: flags.intersects(EventFlags::IN | EventFlags::PRI),
                write: flags.contains(EventFlags::OUT),
                hangup: flags.intersects(EventFlags::HUP | EventFlags::ERR),
            });
        }
        Ok(out.len())
    }

    /// No epoll on this system.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub fn create() -> io::Result<OwnedFd> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no epoll on this system",
        ))
    }

    /// No epoll on this system.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub fn ctl(_: BorrowedFd<'_>, _: Ctl, _: BorrowedFd<'_>, _: Interest) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// No epoll on this system.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub fn wait(_: BorrowedFd<'_>, _: &mut Vec<Polled>, _: Option<Duration>) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
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
    // What `prepare` sets on each accepted socket, set once here: Linux, FreeBSD and macOS
    // copy both to the sockets a listener accepts, and the driver then skips `prepare`.
    socket
        .set_out_of_band_inline(true)
        .map_err(|e| context("SO_OOBINLINE", e))?;
    socket
        .set_tcp_nodelay(true)
        .map_err(|e| context("TCP_NODELAY", e))?;
    socket.bind(&addr.into()).map_err(|e| context("bind", e))?;
    socket.listen(BACKLOG).map_err(|e| context("listen", e))?;
    Ok(socket.into())
}

/// A UDP echo socket on `addr`: close-on-exec, non-blocking, IPv6-only for IPv6 addresses
/// (as the listeners). No `SO_REUSEADDR`: two servers must not share a UDP port, each
/// getting part of the datagrams. A `std` socket, so that `recv_from` and `send_to` are
/// safe calls on a plain byte slice.
pub fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let domain = Domain::for_address(addr);
    let socket =
        Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(|e| context("socket", e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| context("O_NONBLOCK", e))?;
    if domain == Domain::IPV6 {
        socket
            .set_only_v6(true)
            .map_err(|e| context("IPV6_V6ONLY", e))?;
    }
    socket.bind(&addr.into()).map_err(|e| context("bind", e))?;
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

/// Accepts one connection: non-blocking and close-on-exec (and no SIGPIPE on macOS, rule 4),
/// with its peer's address. `EINTR` is retried here; other errors (`EAGAIN`, `ECONNABORTED`,
/// `EMFILE`...) concern the listener and are the caller's to classify. The per-socket
/// steps are [`prepare`]'s.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<(OwnedFd, SocketAddr)> {
    let listener = SockRef::from(&listener);
    loop {
        match accept_nonblocking(&listener) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            // A TCP peer is always IPv4 or IPv6; a BSD may hand out an empty address for
            // a connection reset while queued: that one is gone (the socket closes here).
            Ok((socket, peer)) => {
                return match peer.as_socket() {
                    Some(peer) => Ok((socket.into(), peer)),
                    None => Err(io::Error::from_raw_os_error(libc::ECONNABORTED)),
                }
            }
        }
    }
}

/// Whether an accepted socket has urgent data inline and no Nagle delay already, copied
/// from its listener ([`listen`] sets both there).
pub fn prepared(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let socket = SockRef::from(&fd);
    Ok(socket.out_of_band_inline()? && socket.tcp_nodelay()?)
}

/// The steps on one accepted socket: urgent data inline (host rule 5) and no Nagle delay
/// on echoes. Either may fail on a socket the peer has already reset (macOS answers
/// `EINVAL`): that concerns this socket only, which the caller closes.
pub fn prepare(fd: BorrowedFd<'_>) -> io::Result<()> {
    let socket = SockRef::from(&fd);
    socket.set_out_of_band_inline(true)?;
    socket.set_tcp_nodelay(true)
}

/// Whether a stream socket is listening (`SO_ACCEPTCONN`): what socket activation checks
/// of each socket it is handed. `Unsupported` where `socket2` does not expose the option.
pub fn is_listening(fd: BorrowedFd<'_>) -> io::Result<bool> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    return SockRef::from(&fd).is_listener();
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        let _ = fd;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "SO_ACCEPTCONN is not available here (Linux and FreeBSD have it)",
        ))
    }
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
    let socket = SockRef::from(&fd);
    loop {
        // socket2's `Read` is one `recv` with no flags.
        match (&*socket).read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            received => return received,
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
    let socket = SockRef::from(&fd);
    loop {
        match socket.send_with_flags(buf, SEND_FLAGS) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            sent => return sent,
        }
    }
}

/// The relay's pipe (see `relay`): its read end, then its write end, both non-blocking
/// and close-on-exec, asked to hold `size` bytes (the kernel rounds up to pages; if it
/// refuses, the pipe keeps its default, 64 KiB on Linux, and a relay moves less a call).
///
/// `splice(2)` into a socket cannot be told not to raise SIGPIPE as `send` is
/// (`MSG_NOSIGNAL`), so this refuses with `Unsupported` unless SIGPIPE is ignored: every
/// Rust program ignores it before `main`, unless built to do otherwise. Elsewhere than
/// Linux there is no `splice`: `Unsupported`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn relay_pipe(size: usize) -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::pipe::{fcntl_setpipe_size, pipe_with, PipeFlags};
    // SAFETY: a null new action only reads the current one, into `old`, a `sigaction`.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: as above: `old` is a valid `sigaction` to write, the new action is null.
    cvt(unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) })
        .map_err(|e| context("sigaction", e))?;
    if old.sa_sigaction != libc::SIG_IGN {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "SIGPIPE is not ignored, and splice(2) cannot be told not to raise it",
        ));
    }
    let (read, write) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)
        .map_err(|e| context("pipe2", e.into()))?;
    // A refusal (over /proc/sys/fs/pipe-max-size) leaves the default size, which works too.
    let _ = fcntl_setpipe_size(&write, size);
    Ok((read, write))
}

/// No `splice(2)` here: relaying is off.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn relay_pipe(_size: usize) -> io::Result<(OwnedFd, OwnedFd)> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "no splice(2) on this system",
    ))
}

/// One `splice(2)` of at most `len` bytes from `from` to `to`, one of them a pipe; never
/// blocks. From a socket, `Ok(0)` is its peer's EOF. `EINTR` is retried.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    use rustix::pipe::SpliceFlags;
    let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
    loop {
        // No offsets: both ends are pipes or sockets.
        match rustix::pipe::splice(from, None, to, None, len, flags) {
            Err(rustix::io::Errno::INTR) => continue,
            moved => return moved.map_err(io::Error::from),
        }
    }
}

/// No `splice(2)` here; `relay_pipe` never made a pipe for it.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn splice(_from: BorrowedFd<'_>, _to: BorrowedFd<'_>, _len: usize) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

/// One `read(2)` into `buf` (the relay's pipe). `EINTR` is retried.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Err(rustix::io::Errno::INTR) => continue,
            got => return got.map_err(io::Error::from),
        }
    }
}

/// `shutdown(SHUT_WR)`: sends FIN once the socket's buffer is delivered.
pub fn shutdown_write(fd: BorrowedFd<'_>) -> io::Result<()> {
    SockRef::from(&fd).shutdown(std::net::Shutdown::Write)
}

/// Asks for timers as precise as the kernel can make them on this thread: Linux lets a
/// sleep overrun by the thread's timer slack, 50 µs by default, which would make a
/// 40 µs batching nap more than twice as long. Elsewhere there is no such knob.
pub fn precise_timers() {
    #[cfg(target_os = "linux")]
    {
        const ONE_MICROSECOND_NS: u64 = 1_000;
        // A failure only leaves the default slack.
        let _ =
            rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(ONE_MICROSECOND_NS));
    }
}

/// Replaces this process with the program at `path`, run with `args` (its name first) and
/// this environment; returns only if that failed. `execv(3)` itself: std's `Command::exec`
/// would add its process-spawning machinery, 20 KB of code resident in every server, for
/// `echoloop completions` and `echoloop man` alone.
pub fn exec(path: &std::path::Path, args: &[&str]) -> io::Error {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(program) = CString::new(path.as_os_str().as_bytes()) else {
        return io::ErrorKind::InvalidInput.into();
    };
    let Ok(args) = args
        .iter()
        .map(|a| CString::new(*a))
        .collect::<Result<Vec<_>, _>>()
    else {
        return io::ErrorKind::InvalidInput.into();
    };
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: `program` and every `argv` entry are NUL-terminated strings that outlive the
    // call, and `argv` ends with a null pointer, as execv requires.
    unsafe { libc::execv(program.as_ptr(), argv.as_ptr()) };
    io::Error::last_os_error()
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

/// The soft and hard `RLIMIT_NOFILE`: how many descriptors this process may open;
/// `u64::MAX` for no limit.
pub fn nofile() -> (u64, u64) {
    let lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    (
        lim.current.unwrap_or(u64::MAX),
        lim.maximum.unwrap_or(u64::MAX),
    )
}

/// Sets the soft `RLIMIT_NOFILE` to `soft` and the hard one to `hard` (as [`nofile`] gives
/// them: `u64::MAX` for no limit).
pub fn set_nofile(soft: u64, hard: u64) -> io::Result<()> {
    let limit = |n: u64| (n != u64::MAX).then_some(n);
    let lim = rustix::process::Rlimit {
        current: limit(soft),
        maximum: limit(hard),
    };
    rustix::process::setrlimit(rustix::process::Resource::Nofile, lim).map_err(Into::into)
}

/// `MAP_NORESERVE`: Linux's heuristic overcommit then does not count the mapping against
/// the machine's memory. macOS and FreeBSD never reserve anonymous memory up front.
#[cfg(any(target_os = "linux", target_os = "android"))]
const MAP_NORESERVE: c_int = libc::MAP_NORESERVE;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const MAP_NORESERVE: c_int = 0;

/// Address space for the buffer pool: an anonymous private mapping of zero pages, reserved
/// without being committed (`MAP_NORESERVE`), so a large pool starts on a small machine
/// under the kernel's default overcommit policy and costs nothing until a page is touched.
/// [`discard`](Region::discard) hands touched pages back.
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

impl Region {
    /// Reserves `len` bytes of zeroed, private, not yet committed memory.
    pub fn reserve(len: usize) -> io::Result<Region> {
        if len == 0 {
            return Ok(Region {
                ptr: NonNull::dangling(),
                len: 0,
            });
        }
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing
        // touches no existing memory; the result is checked before any use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANON | MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(context("mmap", io::Error::last_os_error()));
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap: null"))?;
        Ok(Region { ptr, len })
    }

    /// Gives the whole pages inside `range` back to the kernel: no longer resident, they
    /// read as zeros when next touched (Linux; macOS may keep them until memory is short).
    pub fn discard(&mut self, range: Range<usize>) {
        let page = page_size();
        let start = range.start.next_multiple_of(page);
        let end = range.end.min(self.len) / page * page;
        if start >= end {
            return;
        }
        let at = self.ptr.as_ptr().wrapping_add(start);
        // SAFETY: `[start, end)` is page-aligned and inside the mapping this value owns;
        // MADV_DONTNEED on a private anonymous mapping only swaps those pages for zero-fill
        // ones, and `&mut self` proves no reference into them is alive. A failure (never
        // expected) only leaves the pages resident.
        unsafe { libc::madvise(at.cast(), end - start, libc::MADV_DONTNEED) };
    }
}

/// The page size.
fn page_size() -> usize {
    rustix::param::page_size()
}

impl Deref for Region {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes (or `len` is 0 and the pointer
        // dangling but aligned), alive as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for Region {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` writable bytes owned by `self`, borrowed
        // exclusively through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: unmaps exactly the mapping `reserve` made; nothing borrows it now.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::os::fd::{AsFd, AsRawFd, FromRawFd, RawFd};
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
        // Copied from the listener: the driver counts on it to skip `prepare`.
        #[cfg(target_os = "linux")]
        assert!(prepared(fd.as_fd()).unwrap());
        prepare(fd.as_fd()).unwrap();
        assert!(prepared(fd.as_fd()).unwrap());
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
    fn a_region_reads_as_zeros_and_discarded_pages_read_as_zeros_again() {
        let page = page_size();
        let mut region = Region::reserve(4 * page).unwrap();
        assert_eq!(region.len(), 4 * page);
        assert!(region.iter().all(|&b| b == 0));
        region.fill(0xAB);
        // Only whole pages inside the range go: the first and last partial ones stay.
        region.discard(page / 2..3 * page + page / 2);
        assert!(region[..page].iter().all(|&b| b == 0xAB));
        assert!(region[page..3 * page].iter().all(|&b| b == 0), "discarded");
        assert!(region[3 * page..].iter().all(|&b| b == 0xAB));
        region.discard(0..usize::MAX);
        assert!(region.iter().all(|&b| b == 0));
        assert!(Region::reserve(0).unwrap().is_empty());
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
