//! The `echoloop-bench` binary. See `echoloop-bench --help`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    echoloop_bench::cli::main()
}
