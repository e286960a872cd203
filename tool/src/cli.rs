//! Command line: every command and option in one place.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::capture::Mode;
use crate::port::PortSpec;

/// See the GC heap of a MicroPython board: which blocks are used and by what, how the free
/// space is chopped up, and why a 1,088-byte allocation fails while 23 KB are free.
#[derive(Debug, Parser)]
#[command(name = "heapscope", version)]
#[command(after_help = "Exit codes: 0 success, 1 a file or device failed, 2 input not understood.\n\n\
Start with `heapscope demo`, or `heapscope record -o board.hsr` with a board plugged in.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List serial ports, marking the ones that look like MicroPython boards.
    Ports(PortsArgs),
    /// Record a board's heap to a file, headless, until Ctrl-C (or --duration).
    Record(RecordArgs),
    /// Watch a board's heap live, full screen (map, fragmentation, timeline, imports, ...).
    Attach(AttachArgs),
    /// Open a recording full screen and scrub through it.
    Replay(ReplayArgs),
    /// Summarise `micropython.mem_info()` output (a file, a console log, stdin) or a recording.
    ///
    /// For text, finds every dump (REPL prompts and other output around them are fine),
    /// recomputes the device's figures from the layout and reports fragmentation, the largest
    /// allocation that can succeed, free-run lengths and bytes by object type.
    Inspect(InspectArgs),
    /// Write a recording's timeline and snapshots as CSV or JSON.
    Export(ExportArgs),
    /// Measure what each import costs: bytes kept, blocks, fragmentation, time.
    Imports(ImportsArgs),
    /// Write firmware (e.g. MicroPython with the heapscope module) to an ESP32.
    Flash(FlashArgs),
    /// Run a real MicroPython interpreter with a demo workload and watch its heap.
    Demo(DemoArgs),
    /// Take a heap dump: the contents of every used block, the layout and the names of modules
    /// and globals, for `heapscope objects`.
    ///
    /// Firmware with the heapscope module sends it with `heapscope.dump()`, roots included;
    /// stock firmware is read through the raw REPL with `uctypes`. Either stops the running
    /// program (raw REPL); the board is left at its prompt.
    Dump(DumpArgs),
    /// Who holds the memory: the objects of a dump by retained size (what freeing them would
    /// give back), the path from a root that keeps an object alive, what is new since an
    /// earlier dump.
    Objects(ObjectsArgs),
    /// Print a shell completion script, e.g. `heapscope completions bash > /etc/bash_completion.d/heapscope`.
    Completions(CompletionsArgs),
    /// Print the manual page (roff), e.g. `heapscope man > ~/.local/share/man/man1/heapscope.1`.
    Man,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// How to reach the board.
#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// The board's port, named as mpremote does: `auto` (the first USB serial port), `a0`
    /// (/dev/ttyACM0), `u0` (/dev/ttyUSB0), `c0` (COM0), `id:SERIAL` (a USB serial number),
    /// `port:PATH`, or a path. Default: $HEAPSCOPE_PORT, else `auto`.
    #[arg(long, short, default_value_t = PortSpec::from_env())]
    pub port: PortSpec,
    /// Serial speed (MicroPython's REPL runs at 115200 on UART boards; USB ports ignore it).
    #[arg(long, default_value_t = crate::port::DEFAULT_BAUD, value_parser = clap::value_parser!(u32).range(1..))]
    pub baud: u32,
    /// Reset the board when opening the port (by default it is left running).
    #[arg(long)]
    pub reset: bool,
}

#[derive(Debug, Args)]
pub struct PortsArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// List only the ports that look like boards.
    #[arg(long)]
    pub boards: bool,
}

/// The shortest and longest durations accepted: below a millisecond nothing can be timed on a
/// serial line; above a year is a typo.
const SHORTEST: Duration = Duration::from_millis(1);
const LONGEST: Duration = Duration::from_secs(366 * 24 * 3600);

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(sec) = s.strip_suffix('s') {
        (sec, 1.0)
    } else if let Some(min) = s.strip_suffix('m') {
        (min, 60.0)
    } else if let Some(hours) = s.strip_suffix('h') {
        (hours, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = number.trim().parse().map_err(|_| format!("{s:?} is not a duration (like 500ms, 2s, 1.5m, 2h)"))?;
    let seconds = v * scale;
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("{s:?}: a duration must be positive"));
    }
    if seconds < SHORTEST.as_secs_f64() || seconds > LONGEST.as_secs_f64() {
        return Err(format!("{s:?}: a duration must be between 1ms and 366 days"));
    }
    Ok(Duration::from_secs_f64(seconds).max(SHORTEST))
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// The recording file to write.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Write over the output file if it exists (otherwise heapscope refuses).
    #[arg(long)]
    pub force: bool,
    /// Where snapshots come from; `auto` listens for the firmware module's frames and printed
    /// dumps, and polls through the raw REPL if neither comes.
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: Mode,
    /// Time between polls in poll mode (e.g. 500ms, 2s).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Stop after this long (default: at Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Echo the board's console text to stdout (to stderr with --json, so that stdout holds
    /// only the JSON summary).
    #[arg(long)]
    pub console: bool,
    /// Also take a heap dump this often (e.g. 30s, 5m) into the recording, for `heapscope
    /// objects FILE.hsr`: each stops the program for a few seconds on a UART (raw REPL).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub dump_every: Option<Duration>,
    /// Take a heap dump into the recording when it ends (at Ctrl-C or --duration).
    #[arg(long)]
    pub dump_at_end: bool,
    /// Print the closing summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Where snapshots come from; `auto` listens for the firmware module's frames and printed
    /// dumps, and polls through the raw REPL if neither comes.
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: Mode,
    /// Time between polls in poll mode.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Also record to this file.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Write over the output file if it exists (otherwise heapscope refuses).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The recording to open.
    pub input: PathBuf,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The text or recording to read: a file, or `-` for standard input.
    pub input: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Report every dump found, not only the last.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("format").required(true).args(["csv", "json"])))]
pub struct ExportArgs {
    /// The recording to read.
    pub input: PathBuf,
    /// The timeline as CSV: one row per snapshot, event and segment change.
    #[arg(long)]
    pub csv: bool,
    /// The timeline and every snapshot's report as JSON (`null` for a snapshot lost to damage).
    #[arg(long)]
    pub json: bool,
    /// Write here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Write over the output file if it exists (otherwise heapscope refuses).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ImportsArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Modules to import, in order (or give --from FILE.py).
    #[arg(required_unless_present = "from")]
    pub modules: Vec<String>,
    /// Take the modules from the imports at the top of this script.
    #[arg(long, value_name = "FILE.py")]
    pub from: Option<PathBuf>,
    /// Soft-reset the board first, for a clean baseline.
    #[arg(long)]
    pub soft_reset: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// The dump file to write (JSON, `heapscope-dump` version 1).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Write over the output file if it exists (otherwise heapscope refuses).
    #[arg(long)]
    pub force: bool,
    /// Print the closing summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ObjectsArgs {
    /// A dump written by `heapscope dump`, or a recording (`.hsr`) holding dumps.
    pub input: PathBuf,
    /// Which of a recording's dumps to analyse, from 1 (default: the last); `heapscope inspect`
    /// lists them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub dump: Option<u32>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// How many objects to list, largest retained first (0: all).
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Print the path from a root that keeps the object at (or covering) this address alive.
    #[arg(long, value_name = "ADDR", value_parser = parse_heap_address, conflicts_with = "diff")]
    pub why: Option<u64>,
    /// A later dump (or a recording: its last dump): list the objects in it that are not in
    /// INPUT, grouped by type and by the object that holds them (the leak suspects).
    #[arg(long, value_name = "LATER")]
    pub diff: Option<PathBuf>,
    /// Open the dump full screen: the dominator tree, and the heap map of the same moment
    /// (`o` on the map opens the object under the cursor).
    #[arg(long, conflicts_with_all = ["json", "why", "diff"])]
    pub tui: bool,
}

/// A number in hex (`0x...`) or decimal.
fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse_heap_address(s: &str) -> Result<u64, String> {
    parse_number(s).ok_or_else(|| format!("{s:?} is not an address (like 0x3ffb1230)"))
}

#[derive(Debug, Args)]
pub struct FlashArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// The image: a `.bin` (written at --address) or an ESP-IDF `.elf`.
    pub image: PathBuf,
    /// Flash address for a `.bin` (0x1000 for ESP32 MicroPython, 0x0 for S3/C3).
    #[arg(long, value_parser = parse_address)]
    pub address: Option<u32>,
    /// Check the image and say what would be written, touching no port.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_address(s: &str) -> Result<u32, String> {
    parse_number(s).and_then(|n| u32::try_from(n).ok()).ok_or_else(|| format!("{s:?} is not an address (like 0x1000)"))
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The MicroPython interpreter to run (default: `micropython` on PATH or in ./.venv).
    #[arg(long)]
    pub micropython: Option<PathBuf>,
    /// A status line instead of the full-screen view.
    #[arg(long)]
    pub headless: bool,
    /// Stop after this long.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Also write what is seen to this recording.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Write over the output file if it exists (otherwise heapscope refuses).
    #[arg(long)]
    pub force: bool,
    /// Replay the bundled recording even if an interpreter is installed.
    #[arg(long)]
    pub replay: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("soon").is_err());
        for absurd in ["1e-300ms", "0.5ms", "18446744073709551615s", "10000000000000000000s", "1e30s", "inf", "NaN", "-1s"] {
            assert!(parse_duration(absurd).is_err(), "{absurd} was taken");
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_address("0x1000"), Ok(0x1000));
        assert_eq!(parse_address("4096"), Ok(4096));
        assert!(parse_address("x").is_err());
        assert!(parse_address("0x100000000").is_err(), "flash addresses are 32-bit");
        assert_eq!(parse_heap_address("0x7fa881843540"), Ok(0x7fa8_8184_3540));
        assert!(parse_heap_address("0xzz").is_err());
    }

    #[test]
    fn the_cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
