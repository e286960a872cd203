//! heapscope, the tool: command line, capture, recordings and the terminal UI.
//!
//! The binary is a thin `main` over [`run`]; tests drive the same code.

pub mod capture;
pub mod cli;
pub mod cmd;
pub mod entry;
pub mod exit;
pub mod heapdump;
pub mod human;
pub mod link;
pub mod port;
pub mod recording;
pub mod repl;
pub mod report;
pub mod tally;
pub mod tui;

use clap::Parser;

/// Parses the command line and runs the command.
pub fn run() -> Result<(), exit::CliError> {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Ports(args) => cmd::ports::run(&args),
        cli::Command::Record(args) => cmd::record::run(&args),
        cli::Command::Inspect(args) => cmd::inspect::run(&args),
        cli::Command::Export(args) => cmd::export::run(&args),
        cli::Command::Imports(args) => cmd::imports::run(&args),
        cli::Command::Flash(args) => cmd::flash::run(&args),
        cli::Command::Demo(args) => cmd::demo::run(&args),
        cli::Command::Dump(args) => cmd::dump::run(&args),
        cli::Command::Objects(args) => cmd::objects::run(&args),
        cli::Command::Attach(args) => cmd::view::attach(&args),
        cli::Command::Replay(args) => cmd::view::replay(&args),
        cli::Command::Completions(args) => cmd::docs::completions(args.shell),
        cli::Command::Man => cmd::docs::man(),
    }
}
