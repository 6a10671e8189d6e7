//! SIGINT and SIGTERM as bytes in a self-pipe that the select loop watches (host rule 8).
//!
//! Signal handlers belong to the whole process, so installing them is the binary's
//! start-up (`echoloop serve`, in [`cli`](crate::cli)), not the server's constructor:
//! [`Driver::bind`](crate::Driver::bind) takes the read end of whatever self-pipe its
//! caller made.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::sys::context;

/// Routes SIGINT and SIGTERM into a non-blocking, close-on-exec socket pair and returns
/// its read end, which becomes readable when one of them arrives. The handler is
/// signal-hook's: one byte written without blocking (a full pipe already says "a signal
/// came"), errno left as it was. Its write end lives as long as the handlers, that is,
/// as the process. Calling this again adds another pipe.
pub fn self_pipe() -> io::Result<OwnedFd> {
    let (read, write) = UnixStream::pair().map_err(|e| context("signal pipe", e))?;
    read.set_nonblocking(true)
        .map_err(|e| context("signal pipe", e))?;
    write
        .set_nonblocking(true)
        .map_err(|e| context("signal pipe", e))?;
    for signal in [SIGINT, SIGTERM] {
        let write = write.try_clone().map_err(|e| context("signal pipe", e))?;
        signal_hook::low_level::pipe::register(signal, write)
            .map_err(|e| context("installing a signal handler", e))?;
    }
    Ok(read.into())
}
