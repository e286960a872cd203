//! Command line: every command and option in one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// See the GC heap of a MicroPython board: which blocks are used and by what, how the free
/// space is chopped up, and why a 582-byte allocation fails while 46 KB are free.
#[derive(Debug, Parser)]
#[command(name = "heapscope", version)]
#[command(after_help = "Exit codes: 0 success, 1 a file or device failed, 2 input not understood.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Summarise `micropython.mem_info()` output from a file, a console log or stdin.
    ///
    /// Finds every dump in the text (REPL prompts and other output around them are fine),
    /// recomputes the device's figures from the layout and reports fragmentation, the largest
    /// allocation that can succeed, free-run lengths and bytes by object type.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The text to read: a file, or `-` for standard input.
    pub input: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Report every dump found, not only the last.
    #[arg(long)]
    pub all: bool,
}
