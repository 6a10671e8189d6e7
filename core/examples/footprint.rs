//! Prints the whole memory of a few server sizes (the README's figures):
//! `cargo run -p echoloop-core --example footprint`.

use core::mem::size_of;
use echoloop_core::Server;

fn main() {
    println!(
        "Server<1, 8>:        {:>9} bytes",
        size_of::<Server<1, 8>>()
    );
    println!(
        "Server<4, 512>:      {:>9} bytes",
        size_of::<Server<4, 512>>()
    );
    println!(
        "Server<64, 4096>:    {:>9} bytes",
        size_of::<Server<64, 4096>>()
    );
    println!(
        "Server<1024, 16384>: {:>9} bytes",
        size_of::<Server<1024, 16384>>()
    );
}
