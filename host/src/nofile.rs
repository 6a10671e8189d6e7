//! The open-file limit: raised at start-up toward what `--max-conns` needs, or the capacity
//! lowered to what it allows, said once in the log (never a silent `EMFILE` later).
//!
//! As Redis's `adjustOpenFilesLimit`: ask for the connections plus the server's own
//! descriptors; if the kernel refuses, ask for a little less until it agrees. The soft
//! limit may rise up to the hard one; on macOS no further than `OPEN_MAX` (and
//! `kern.maxfilesperproc`, which the stepping down finds).

use log::{debug, warn};

use crate::sys;

/// Descriptors the server holds besides its connections, listeners apart: stdin, stdout,
/// stderr, the signal self-pipe's ends, the reserve descriptor (host rule 6), the relay
/// pipe's ends, and room
/// for what a parent process left open.
pub const OWN_FDS: usize = 16;

/// The most a soft limit may be on macOS when the hard one is unlimited (`OPEN_MAX`,
/// `<sys/syslimits.h>`).
#[cfg(target_vendor = "apple")]
const OPEN_MAX: u64 = 10_240;

/// How much lower to ask each time the kernel refuses.
const STEP: u64 = 16;

/// Raises the soft `RLIMIT_NOFILE` toward `max_conns + own` and returns how many
/// connections the limit then holds: `max_conns`, or fewer with one log line saying
/// `lowering --max-conns from X to Y` (at least 1).
pub fn fit(max_conns: usize, own: usize) -> usize {
    let want = (max_conns + own) as u64;
    let (soft, hard) = sys::nofile();
    let target = want.min(hard);
    #[cfg(target_vendor = "apple")]
    let target = target.min(OPEN_MAX);
    let soft = if soft < want {
        raise(soft, target, hard)
    } else {
        soft
    };
    let room = usize::try_from(soft)
        .unwrap_or(usize::MAX)
        .saturating_sub(own);
    if room >= max_conns {
        return max_conns;
    }
    let lowered = room.max(1);
    warn!(
        "the open-file limit is {soft} descriptors (hard limit {hard}), {own} of them the \
         server's own: lowering --max-conns from {max_conns} to {lowered}"
    );
    lowered
}

/// Sets the soft limit to `target` or as near below it as the kernel allows (never below
/// `soft`); returns the soft limit in force.
fn raise(soft: u64, mut target: u64, hard: u64) -> u64 {
    while target > soft {
        match sys::set_nofile(target, hard) {
            Ok(()) => {
                debug!("raised the open-file limit from {soft} to {target}");
                return target;
            }
            Err(_) => target = target.saturating_sub(STEP),
        }
    }
    soft
}
