//! The load generator's thin layer over libc: the descriptor limit and the process's CPU
//! time. Every `unsafe` block of `echoloop-bench` lives here (readiness is `mio`'s).

use std::io;
use std::time::Duration;

/// The descriptor limits in force.
pub struct FdLimits {
    /// The soft limit: what this process may open now.
    pub soft: libc::rlim_t,
    /// The hard limit: as far as an unprivileged process may raise the soft one.
    pub hard: libc::rlim_t,
}

/// Raises the soft `RLIMIT_NOFILE` to at least `want` descriptors as far as the hard limit
/// allows; returns the limits in force afterwards.
pub fn raise_fd_limit(want: libc::rlim_t) -> io::Result<FdLimits> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live `rlimit` for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < want {
        lim.rlim_cur = want.min(lim.rlim_max);
        // SAFETY: `lim` is a live, initialised `rlimit`.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(FdLimits {
        soft: lim.rlim_cur,
        hard: lim.rlim_max,
    })
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
