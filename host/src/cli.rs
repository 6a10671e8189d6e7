//! The command line: `echoloop serve` and `client`, and how their errors read. The load
//! generator is its own binary, `echoloop-bench` (`loadgen/`).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::config::{parse_secs, ServeConfig};
use crate::{activation, client, docs, driver, notify, signals, sys};

/// A readiness-driven TCP echo server on select(2), and its client.
#[derive(Debug, Parser)]
#[command(name = "echoloop", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the echo server until SIGINT or SIGTERM.
    Serve(ServeConfig),
    /// Send messages on several sockets and check that every byte comes back.
    Client(ClientArgs),
    /// Print a completion script for a shell (bash: `source <(echoloop completions bash)`).
    Completions(CompletionsArgs),
    /// Print a man page in roff: echoloop(1), or echoloop-SUBCOMMAND(1) with that
    /// subcommand's options (`echoloop man serve | man -l -`).
    Man(ManArgs),
}

/// `echoloop man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print; none for echoloop(1), which lists them.
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Option<String>,
}

/// `echoloop completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The shells `echoloop completions` writes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

impl Shell {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::Zsh => "zsh",
            Shell::Fish => "fish",
        }
    }
}

/// `echoloop client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server's address.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8090")]
    pub connect: SocketAddr,
    /// How many sockets send the messages at once.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub sockets: u16,
    /// Give up after this long without the whole echo (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Messages to send on every socket; by default the seed's four.
    #[arg(value_name = "MESSAGE")]
    pub messages: Vec<String>,
    /// Send each message as one UDP datagram and check its echo (retried, loss reported).
    #[arg(long)]
    pub udp: bool,
}

/// Parses the command line and runs it; every error is one line on stderr.
pub fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => return usage_error("echoloop", e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return usage_error("echoloop", e),
    };
    // Logs go to standard error (env_logger's default target): under `serve --inetd`,
    // standard output is the connection.
    let level = env_logger::Env::default().default_filter_or("info");
    env_logger::Builder::from_env(level).init();
    let result = match cli.command {
        Command::Serve(args) => serve(args, listen_given(&matches)),
        Command::Client(args) => client(args),
        Command::Completions(args) => delegate_to_docs(&["completions", args.shell.name()]),
        Command::Man(args) => {
            let mut argv = vec!["man"];
            argv.extend(args.subcommand.as_deref());
            delegate_to_docs(&argv)
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("echoloop: {e}");
        ExitCode::FAILURE
    })
}

/// Help and version go out as clap writes them; a usage error becomes its first line
/// (clap adds a usage block and a hint below it), after `program`, with exit status 2.
/// `echoloop-bench` reads its errors the same way.
pub fn usage_error(program: &str, e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.use_stderr() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("{program}: {first} (see --help)");
    ExitCode::from(2)
}

/// Whether `serve --listen` was given on the command line, rather than defaulted: with
/// socket activation, the default address is not listened on besides the activated ones.
fn listen_given(matches: &ArgMatches) -> bool {
    matches
        .subcommand_matches("serve")
        .is_some_and(|m| m.value_source("listen") == Some(ValueSource::CommandLine))
}

fn serve(mut options: ServeConfig, listen_given: bool) -> io::Result<ExitCode> {
    // First, while the process has one thread and before anything could inherit them.
    let activated = activation::Env::take();
    let notify_socket = notify::take_env();
    if let Err(e) = options.check() {
        return Ok(refuse(format_args!("{e} (see --help)")));
    }
    let mut server = if options.inetd {
        activation::release(&activated);
        match activation::inetd() {
            Ok(connection) => serve_one(&mut options, connection)?,
            Err(e) => return Ok(refuse(format_args!("--inetd: {e}"))),
        }
    } else {
        match activation::sockets(&activated) {
            Ok(handed) => serve_sockets(&mut options, handed, listen_given)?,
            Err(e) => return Ok(refuse(format_args!("socket activation: {e}"))),
        }
    };
    if let Some(notifier) = notify_socket.as_deref().and_then(notify::Notifier::open) {
        notify_ready(&mut server, notifier);
    }
    run(server, &options)
}

/// One line on stderr, and exit 2: what was asked for cannot be served.
fn refuse(what: std::fmt::Arguments<'_>) -> ExitCode {
    eprintln!("echoloop: {what}");
    ExitCode::from(2)
}

/// A driver for the one connection `serve --inetd` was handed: a capacity of one.
fn serve_one(
    options: &mut ServeConfig,
    (socket, peer): (OwnedFd, SocketAddr),
) -> io::Result<driver::Driver> {
    options.lower_max_conns(1);
    // Process-wide handlers: installed here, at start-up, for the server to watch.
    let signals = signals::self_pipe()?;
    let mut server = driver::Driver::new(crate::Sys, options, Vec::new(), signals)?;
    server.adopt(socket, peer)?;
    Ok(server)
}

/// A driver for the activated sockets and the command line's addresses; with activated
/// sockets and no `--listen` given, the default address is not listened on.
fn serve_sockets(
    options: &mut ServeConfig,
    handed: activation::Sockets,
    listen_given: bool,
) -> io::Result<driver::Driver> {
    if !handed.is_empty() && !listen_given {
        options.listen.clear();
    }
    let signals = signals::self_pipe()?;
    let server = driver::Driver::bind_with(options, signals, handed.tcp, handed.udp)?;
    print_listening(&server);
    Ok(server)
}

/// `READY=1` now; then `STATUS=` now and then, and `STOPPING=1`, until one fails.
fn notify_ready(server: &mut driver::Driver, mut notifier: notify::Notifier) {
    let open = server.local_addrs().count() + server.udp_addrs().count();
    let s = if open == 1 { "" } else { "s" };
    if notifier.ready(&format!("listening on {open} socket{s}")) {
        let mut working = true;
        server.observe(
            notify::STATUS_EVERY,
            Box::new(move |event| working = working && notifier.on(event)),
        );
    }
}

/// Serves until the driver returns, then logs what it did.
fn run(mut server: driver::Driver, options: &ServeConfig) -> io::Result<ExitCode> {
    log::debug!(
        "serving up to {} connections, {} buffers of {} bytes",
        server.capacity(),
        server.buffers(),
        options.queue_size
    );
    server.run()?;
    let stats = server.stats();
    log::info!(
        "shut down: accepted {}, refused {}, bytes in {}, bytes out {}, discarded {}",
        stats.accepted,
        stats.refused,
        stats.bytes_in,
        stats.bytes_out,
        stats.bytes_discarded
    );
    for report in server.udp_reports() {
        log::info!("shut down: {report}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The `listening on` lines, on standard output, which tests and scripts wait for.
fn print_listening(server: &driver::Driver) {
    let mut stdout = io::stdout().lock();
    for addr in server.local_addrs() {
        let _ = writeln!(stdout, "listening on {addr}");
    }
    for addr in server.udp_addrs() {
        let _ = writeln!(stdout, "listening on udp {addr}");
    }
    // They must not sit in a buffer.
    let _ = stdout.flush();
}

/// `echoloop completions` and `echoloop man`: run by `echoloop-docs`, installed beside
/// this binary, which carries the generators (clap_complete and clap_mangen add about
/// 150 KB of code, resident in every server process if linked here; see [`docs`]).
fn delegate_to_docs(args: &[&str]) -> io::Result<ExitCode> {
    let here = std::env::current_exe()?;
    let docs = here.with_file_name(docs::BIN);
    let mut argv = vec![docs::BIN];
    argv.extend_from_slice(args);
    let err = sys::exec(&docs, &argv);
    Err(io::Error::new(
        err.kind(),
        format!(
            "{} writes completions and man pages, and cannot run: {err} (it is built and \
             installed with echoloop)",
            docs.display()
        ),
    ))
}

fn client(args: ClientArgs) -> io::Result<ExitCode> {
    let options = client::Options {
        connect: args.connect,
        sockets: usize::from(args.sockets),
        messages: args.messages,
        timeout: args.timeout,
        udp: args.udp,
    };
    let mut stdout = io::stdout().lock();
    if client::run(&options, &mut stdout)? {
        return Ok(ExitCode::SUCCESS);
    }
    let _ = stdout.flush();
    Err(io::Error::other("some echoes differ from what was sent"))
}
