//! Prints the whole memory of a few server sizes from `echoloop_core::footprint`, the one
//! home of the formula (docs/capacity.md's figures):
//! `cargo run -p echoloop-core --example footprint [CONNS BUFFERS QUEUE]`.

use core::mem::size_of;
use echoloop_core::{footprint, ConnSlot, Server, StaticStorage};

fn main() {
    println!(
        "per connection {} B, per buffer queue_size + 2 B, fixed {} B",
        size_of::<ConnSlot>(),
        footprint(0, 0, 0)
    );
    println!(
        "firmware Server<StaticStorage<4, 4, 256>>: {} B (static)",
        size_of::<Server<StaticStorage<4, 4, 256>>>()
    );
    for (conns, buffers, queue) in [
        (8, 4, 256),
        (64, 64, 4096),
        (1000, 1000, 16384),
        (10_000, 10_000, 65536),
    ] {
        row(conns, buffers, queue);
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if let [conns, buffers, queue] = args[..] {
        row(conns, buffers, queue);
    }
}

fn row(conns: usize, buffers: usize, queue: usize) {
    let bytes = footprint(conns, buffers, queue);
    println!(
        "footprint({conns}, {buffers}, {queue}) = {bytes} B ({:.1} MiB)",
        bytes as f64 / (1024.0 * 1024.0)
    );
}
