//! `echoloop-docs`: shell completions and man pages for `echoloop`, from its clap
//! definitions. `echoloop completions SHELL` and `echoloop man [SUBCOMMAND]` run it;
//! why it is a binary of its own: `echoloop::docs`.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use echoloop::cli::Shell;
use echoloop::docs;

/// Shell completions and man pages for echoloop.
#[derive(Parser)]
#[command(name = "echoloop-docs", version)]
enum Docs {
    /// Print a completion script for a shell.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print echoloop(1), or echoloop-SUBCOMMAND(1), in roff.
    Man {
        /// The subcommand whose page to print.
        subcommand: Option<String>,
    },
}

fn main() -> ExitCode {
    let mut stdout = io::stdout().lock();
    let (what, written) = match Docs::parse() {
        Docs::Completions { shell } => ("completions", docs::completions(shell, &mut stdout)),
        Docs::Man { subcommand } => ("man", docs::man(subcommand.as_deref(), &mut stdout)),
    };
    match written.and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            eprintln!("echoloop: {what}: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("echoloop: {what}: {e}");
            ExitCode::FAILURE
        }
    }
}
