//! The load generator's thin layer over the OS: the descriptor limit (through rustix, safe)
//! and the process's CPU time (libc's getrusage, which rustix lacks). Every `unsafe` block
//! of `echoloop-bench` lives here (readiness is `mio`'s).

use std::io;
use std::time::Duration;

use rustix::process::{getrlimit, setrlimit, Resource};

/// The descriptor limits in force; `u64::MAX` for no limit.
pub struct FdLimits {
    /// The soft limit: what this process may open now.
    pub soft: u64,
    /// The hard limit: as far as an unprivileged process may raise the soft one.
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to at least `want` descriptors as far as the hard limit
/// allows; returns the limits in force afterwards.
pub fn raise_fd_limit(want: u64) -> io::Result<FdLimits> {
    let mut lim = getrlimit(Resource::Nofile);
    let hard = lim.maximum.unwrap_or(u64::MAX);
    let mut soft = lim.current.unwrap_or(u64::MAX);
    if soft < want {
        soft = want.min(hard);
        lim.current = Some(soft);
        setrlimit(Resource::Nofile, lim)?;
    }
    Ok(FdLimits { soft, hard })
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
