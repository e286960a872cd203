//! heapscope, the tool: command line, capture, recordings and the terminal UI.
//!
//! The binary is a thin `main` over [`run`]; tests drive the same code.

pub mod capture;
pub mod cli;
pub mod entry;
pub mod exit;
pub mod human;
pub mod inspect;
pub mod link;
pub mod port;
pub mod recording;
pub mod repl;
pub mod report;

use clap::Parser;

/// Parses the command line and runs the command.
pub fn run() -> Result<(), exit::CliError> {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Inspect(args) => inspect::run(&args),
    }
}
