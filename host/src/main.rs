//! The `echoloop` binary: `echoloop serve`, `echoloop client`. See `echoloop --help`.

fn main() -> std::process::ExitCode {
    echoloop::cli::main()
}
