//! `echoloop-posix-poll`: the echoloop core on BSD sockets and `poll(2)`, the teaching
//! port of `docs/porting.md`. Read this file for the set-up, `driver.rs` for the loop.
//!
//! ```text
//! echoloop-posix-poll [--listen ADDR] [--max-conns N] [--buffers N] [--idle-timeout-ms MS]
//! ```
//!
//! It prints `listening on ADDR` once it accepts; SIGINT or SIGTERM delivers what is queued
//! and exits 0 (a second one resets what is left).
#![deny(unsafe_code)]
#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

mod driver;
#[allow(unsafe_code)]
mod sys;

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use echoloop_core::{Config, ConnSlot, Duration, Server, SliceStorage};
use signal_hook::consts::{SIGINT, SIGTERM};
use socket2::{Domain, Socket, Type};

use driver::Driver;

/// Bytes one connection may have queued: one pool buffer.
const QUEUE_SIZE: usize = 16 * 1024;
/// The kernel caps the listen backlog at `somaxconn` anyway.
const BACKLOG: i32 = 511;

/// The command line.
struct Options {
    listen: SocketAddr,
    max_conns: usize,
    buffers: Option<usize>,
    idle_timeout: Option<Duration>,
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("echoloop-posix-poll: {e}");
            return ExitCode::from(2);
        }
    };
    match serve(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echoloop-posix-poll: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 7007)),
        max_conns: 256,
        buffers: None,
        idle_timeout: None,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--listen" => options.listen = value.parse().map_err(|e| bad(&e))?,
            "--max-conns" => options.max_conns = value.parse().map_err(|e| bad(&e))?,
            "--buffers" => options.buffers = Some(value.parse().map_err(|e| bad(&e))?),
            "--idle-timeout-ms" => {
                let ms = value.parse().map_err(|e| bad(&e))?;
                options.idle_timeout = Some(Duration::from_millis(ms));
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(options)
}

fn serve(options: &Options) -> io::Result<()> {
    // The core's memory, lent from the heap: a slot per connection and a pool of buffers
    // they share. The large zeroed Vec comes from calloc, its pages untouched until used.
    let buffers = options.buffers.unwrap_or(options.max_conns);
    let mut slots = vec![ConnSlot::EMPTY; options.max_conns];
    let mut free = vec![0u16; buffers];
    let mut bytes = vec![0u8; buffers.saturating_mul(QUEUE_SIZE)];
    let storage = SliceStorage::new(&mut slots, &mut free, &mut bytes, QUEUE_SIZE)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let config = Config::new().with_idle_timeout(options.idle_timeout);
    let server =
        Server::new(config, storage).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;

    // Before the listener exists, so that no signal can find it without its handler.
    let signalled = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&signalled))?;
    }
    let listener = listen(options.listen)?;
    let bound = listener.local_addr()?.as_socket().unwrap_or(options.listen);
    println!("listening on {bound}");

    let stats = Driver::new(server, listener, signalled).run()?;
    eprintln!(
        "bytes in {}, bytes out {}, discarded {}",
        stats.bytes_in, stats.bytes_out, stats.bytes_discarded
    );
    Ok(())
}

/// A non-blocking listener that binds at once after a restart despite `TIME_WAIT`.
fn listen(addr: SocketAddr) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
    sock.listen(BACKLOG)?;
    Ok(sock)
}
