//! Shell completions and man pages, written from the command line's clap definitions
//! ([`Cli`]) by the `echoloop-docs` binary; `echoloop completions` and `echoloop man` run
//! it. A binary of their own, not subcommands compiled into the server: the generators
//! (clap_complete, clap_mangen) add about 150 KB of code, which fault-around would keep
//! resident in every server process (docs/capacity.md); the server binary only carries
//! the two subcommands' definitions and an `exec`.

use std::io::{self, Write};

use clap::CommandFactory;

use crate::cli::{Cli, Shell};

/// The binary that writes them, installed beside `echoloop`.
pub const BIN: &str = "echoloop-docs";

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: Shell, out: &mut dyn Write) -> io::Result<()> {
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    // Written whole, then copied: the generator panics on a failed write (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(generator, &mut Cli::command(), "echoloop", &mut script);
    out.write_all(&script)
}

/// Writes echoloop(1), or echoloop-`subcommand`(1) with that subcommand's options, in
/// roff. An unknown subcommand is an error naming the ones there are.
pub fn man(subcommand: Option<&str>, out: &mut dyn Write) -> io::Result<()> {
    let mut command = Cli::command();
    // Gives the subcommands their display names (`echoloop-serve`), the pages' titles.
    command.build();
    let page = match subcommand {
        None => command,
        Some(name) => match command.find_subcommand(name) {
            Some(sub) => sub.clone().version(env!("CARGO_PKG_VERSION")),
            None => {
                let names: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("no subcommand '{name}' (one of: {})", names.join(", ")),
                ));
            }
        },
    };
    clap_mangen::Man::new(page).render(out)
}
