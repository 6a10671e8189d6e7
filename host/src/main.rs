//! The `echoloop` binary: `echoloop serve`, `echoloop client`. See `echoloop --help`.
#![forbid(unsafe_code)]
#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

fn main() -> std::process::ExitCode {
    echoloop::cli::main()
}
