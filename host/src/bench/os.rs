//! The load generator's thin layer over libc: `poll(2)`, the descriptor limit and the
//! process's CPU time. Every `unsafe` block of `echoloop bench` lives here.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// One entry of the `poll` array: the descriptor, what to wait for, what happened.
pub type PollFd = libc::pollfd;

/// Readable (or EOF).
pub const READABLE: i16 = libc::POLLIN;
/// Writable.
pub const WRITABLE: i16 = libc::POLLOUT;
/// Error or hang-up: always reported, even when not asked for.
pub const TROUBLE: i16 = libc::POLLERR | libc::POLLHUP;

/// A `poll` entry for `fd` that waits for nothing yet. A negative `fd` is ignored by poll.
pub fn poll_fd(fd: RawFd) -> PollFd {
    PollFd {
        fd,
        events: 0,
        revents: 0,
    }
}

/// `poll(2)` on every entry, waiting at most `timeout`; the number of entries with events.
/// `EINTR` is returned as `ErrorKind::Interrupted`.
pub fn poll(fds: &mut [PollFd], timeout: Duration) -> io::Result<usize> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a live, exclusively borrowed array of `pollfd` whose length is
    // passed with it; poll only writes each entry's `revents`.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Raises the soft `RLIMIT_NOFILE` to at least `want` descriptors if the hard limit
/// allows; returns the soft limit in force afterwards.
pub fn raise_fd_limit(want: libc::rlim_t) -> io::Result<libc::rlim_t> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live `rlimit` for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur >= want {
        return Ok(lim.rlim_cur);
    }
    lim.rlim_cur = want.min(lim.rlim_max);
    // SAFETY: `lim` is a live, initialised `rlimit`.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur)
}

/// The CPU time (user + system) this process has used so far.
pub fn cpu_time() -> Duration {
    // SAFETY: all zeroes is a valid `rusage`; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a live `rusage`; RUSAGE_SELF cannot fail with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}
