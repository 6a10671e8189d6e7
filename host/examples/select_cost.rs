//! What one `select` costs with many descriptors watched, on this machine:
//! `cargo run --release -p echoloop --example select_cost [DESCRIPTORS]` (default 10,000).
//!
//! Opens DESCRIPTORS / 2 loopback TCP connections (both ends count), watches every
//! descriptor for reading and urgent data, as the server watches an idle connection, and
//! times `select` with a zero timeout (nothing is ready: the kernel looks at every socket
//! and returns). Prints the median and the fastest of 500 calls; on a shared machine the
//! median moves with the load, so run it more than once.

use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use echoloop::{sys, FdSet};

fn main() -> std::io::Result<()> {
    let descriptors: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let (soft, hard) = sys::nofile();
    let want = descriptors as u64 + 64;
    if soft < want {
        sys::set_nofile(want.min(hard), hard)?;
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut socks = Vec::with_capacity(descriptors);
    for _ in 0..descriptors / 2 {
        socks.push(TcpStream::connect(addr)?);
        socks.push(listener.accept()?.0);
    }
    let (mut read, mut write, mut except) = (FdSet::new(), FdSet::new(), FdSet::new());
    let mut times = Vec::with_capacity(500);
    for _ in 0..500 {
        read.clear();
        except.clear();
        for s in &socks {
            read.insert(s.as_raw_fd());
            except.insert(s.as_raw_fd());
        }
        let start = Instant::now();
        let ready = sys::select(&mut read, &mut write, &mut except, Some(Duration::ZERO))?;
        times.push(start.elapsed());
        assert_eq!(ready, 0, "an idle socket reported ready");
    }
    times.sort();
    let highest = socks.iter().map(AsRawFd::as_raw_fd).max().unwrap_or(0);
    println!(
        "select over {} descriptors (highest {highest}), read and except sets, zero timeout: \
         median {:?}, fastest {:?} ({:.0} ns per descriptor)",
        socks.len(),
        times[times.len() / 2],
        times[0],
        times[times.len() / 2].as_nanos() as f64 / socks.len() as f64
    );
    Ok(())
}
