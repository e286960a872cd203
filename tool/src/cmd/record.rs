//! `heapscope record`: capture to a file, headless, with a live status line.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::capture::{self, Capture};
use crate::cli::{DeviceArgs, RecordArgs};
use crate::entry::Entry;
use crate::exit::{file_error, CliError};
use crate::human::count;
use crate::link::BoardOpener;
use crate::port::{self, OpenOptions};
use crate::recording::RecordingWriter;
use crate::tally::Tally;

/// Resolves `--port` and starts capturing from it.
pub fn start_capture(device: &DeviceArgs, options: capture::Options) -> Result<(Capture, String), CliError> {
    let path = port::resolve(&device.port)?;
    let opener = BoardOpener::new(path.clone(), OpenOptions { baud: device.baud, reset: device.reset });
    Ok((Capture::start(Box::new(opener), options)?, path))
}

/// Set by Ctrl-C: the headless loop finishes cleanly. One flag per process (only one Ctrl-C
/// handler can be installed), cleared for each run that asks for it.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    let flag = FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        // Without a handler (another library installed one), Ctrl-C ends the process as usual.
        let _ = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst));
        flag
    });
    flag.store(false, Ordering::SeqCst);
    flag.clone()
}

pub fn meta(port: &str, mode: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    json!({"tool": "heapscope", "version": env!("CARGO_PKG_VERSION"), "port": port, "mode": mode, "started_unix_ms": now}).to_string()
}

/// What a headless run saw.
pub struct Outcome {
    pub tally: Tally,
    pub elapsed: Duration,
    pub bytes: u64,
    /// Heap dumps taken into the recording.
    pub dumps: usize,
    /// The capture ended by itself (its port went away and was not waited for), before Ctrl-C
    /// or the time limit.
    pub ended: bool,
}

/// Where a headless run echoes the board's console text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleEcho {
    Off,
    Stdout,
    /// With `--json`, whose stdout holds only the summary.
    Stderr,
}

/// Heap dumps a headless run takes into its recording.
#[derive(Clone, Copy, Debug, Default)]
pub struct DumpPlan {
    pub every: Option<Duration>,
    pub at_end: bool,
}

/// A dump asked of the capture's worker, whose answer has not come yet.
type PendingDump = std::sync::mpsc::Receiver<Result<capture::DumpTaken, String>>;

/// Drains a capture into an optional recording until interrupted or `limit` passes, with a
/// status line on a terminal and the tool's notices on stderr; takes heap dumps into the
/// recording as `dumps` asks.
pub fn run_headless(
    mut capture: Capture,
    mut writer: Option<RecordingWriter>,
    limit: Option<Duration>,
    echo_console: ConsoleEcho,
    dumps: DumpPlan,
) -> Result<Outcome, CliError> {
    let interrupted = interrupt_flag();
    let start = Instant::now();
    let mut tally = Tally::default();
    let tty = std::io::stderr().is_terminal();
    let reattaches = capture.reattaches;
    let mut last_status: Option<Instant> = None;
    let mut write_error = None;
    let mut handle = |e: Entry, tally: &mut Tally, writer: &mut Option<RecordingWriter>| {
        tally.add(&e);
        let line = match &e {
            Entry::Notice { text, .. } => Some(format!("note: {text}")),
            Entry::Segment { reason, detail, .. } => Some(format!("{}: {detail}", reason.name())),
            Entry::Gap { reason, .. } if reattaches => Some(format!("gap: {reason}; waiting for the port to come back (Ctrl-C to finish)")),
            Entry::Gap { reason, .. } => Some(format!("gap: {reason}")),
            Entry::Corrupt { detail, .. } => Some(format!("damaged: {detail}")),
            // An echo that cannot be written is dropped: the recording is what matters.
            Entry::Console { bytes, .. } if echo_console == ConsoleEcho::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(bytes).and_then(|()| out.flush());
                None
            }
            Entry::Console { bytes, .. } if echo_console == ConsoleEcho::Stderr => {
                let _ = std::io::stderr().lock().write_all(bytes);
                None
            }
            _ => None,
        };
        if let Some(line) = line {
            if tty {
                eprint!("\r\x1b[2K");
            }
            eprintln!("{line}");
        }
        if let Some(w) = writer.as_mut() {
            if let Err(err) = w.append(&e) {
                write_error.get_or_insert(err);
            }
        }
    };
    let mut pending: Option<PendingDump> = None;
    let mut taken_dumps = 0usize;
    let mut dump_error: Option<std::io::Error> = None;
    let mut last_dump = start;
    let mut ended = false;
    loop {
        if pending.is_none() && dumps.every.is_some_and(|every| last_dump.elapsed() >= every) {
            pending = Some(ask_dump(&capture));
            last_dump = Instant::now();
        }
        if let Some(taken) = pending.as_ref().and_then(|p| p.try_recv().ok()) {
            pending = None;
            store_dump(taken, &mut taken_dumps, &mut writer, &mut dump_error);
            // The next one counts from the end of this one: a dump takes seconds on a slow line.
            last_dump = Instant::now();
        }
        if interrupted.load(Ordering::SeqCst) || limit.is_some_and(|l| start.elapsed() >= l) || ended {
            // The dump under way is waited for, then the one at the end is taken (the worker
            // answers each dump it is asked for, or drops its sender when it ends).
            let mut end_asked = false;
            loop {
                if pending.is_none() && dumps.at_end && !end_asked && !ended {
                    pending = Some(ask_dump(&capture));
                    end_asked = true;
                }
                let Some(p) = pending.as_ref() else { break };
                match p.try_recv() {
                    Ok(taken) => {
                        pending = None;
                        store_dump(taken, &mut taken_dumps, &mut writer, &mut dump_error);
                    }
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => pending = None,
                    Err(std::sync::mpsc::TryRecvError::Empty) => match capture.entries.recv_timeout(Duration::from_millis(100)) {
                        Ok(e) => handle(e, &mut tally, &mut writer),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(100)),
                    },
                }
            }
            break;
        }
        match capture.entries.recv_timeout(Duration::from_millis(100)) {
            Ok(e) => handle(e, &mut tally, &mut writer),
            Err(RecvTimeoutError::Timeout) => {}
            // The capture ended by itself (the board's process exited, or the worker failed).
            Err(RecvTimeoutError::Disconnected) => ended = true,
        }
        if tty && last_status.is_none_or(|t| t.elapsed() >= Duration::from_millis(250)) {
            let bytes = writer.as_ref().map_or(0, |w| w.len());
            eprint!("\r\x1b[2K{}", tally.status(start.elapsed(), bytes));
            last_status = Some(Instant::now());
        }
    }
    capture.stop();
    for e in capture.entries.try_iter().collect::<Vec<_>>() {
        handle(e, &mut tally, &mut writer);
    }
    if tty {
        eprint!("\r\x1b[2K");
    }
    let elapsed = start.elapsed();
    let bytes = match writer {
        Some(w) => w.finish(elapsed.as_micros() as u64).map_err(|e| CliError::Io(format!("finishing the recording: {e}")))?,
        None => 0,
    };
    if let Some(e) = write_error.or(dump_error) {
        return Err(CliError::Io(format!("writing the recording: {e}")));
    }
    Ok(Outcome { tally, elapsed, bytes, dumps: taken_dumps, ended })
}

fn ask_dump(capture: &Capture) -> PendingDump {
    let (reply, answer) = std::sync::mpsc::channel();
    capture.send(capture::Command::Dump(reply));
    answer
}

/// A dump's answer: into the recording at the moment it was taken, or a note of why not.
fn store_dump(
    taken: Result<capture::DumpTaken, String>,
    count: &mut usize,
    writer: &mut Option<RecordingWriter>,
    error: &mut Option<std::io::Error>,
) {
    match taken {
        Ok(taken) => {
            *count += 1;
            if let Some(w) = writer.as_mut() {
                if let Err(e) = w.append_dump(taken.at, &taken.dump) {
                    error.get_or_insert(e);
                }
            }
        }
        Err(why) => {
            if std::io::stderr().is_terminal() {
                eprint!("\r\x1b[2K");
            }
            eprintln!("note: {why}; recording goes on");
        }
    }
}

pub fn create_writer(path: &Path, meta: &str) -> Result<RecordingWriter, CliError> {
    RecordingWriter::create(path, meta).map_err(|e| file_error(path, e))
}

pub fn run(args: &RecordArgs) -> Result<(), CliError> {
    super::check_output(&args.output, args.force)?;
    let options = capture::Options { mode: args.mode, poll_interval: args.interval, ..capture::Options::default() };
    let (capture, port) = start_capture(&args.device, options)?;
    let mode = format!("{:?}", args.mode).to_lowercase();
    let writer = create_writer(&args.output, &meta(&port, &mode))?;
    if !args.json {
        eprintln!("recording {port} to {} (Ctrl-C to finish)", args.output.display());
    }
    let plan = DumpPlan { every: args.dump_every, at_end: args.dump_at_end };
    let echo = match (args.console, args.json) {
        (false, _) => ConsoleEcho::Off,
        (true, false) => ConsoleEcho::Stdout,
        (true, true) => ConsoleEcho::Stderr,
    };
    let out = run_headless(capture, Some(writer), args.duration, echo, plan)?;
    let t = &out.tally;
    if args.json {
        let summary = json!({
            "file": args.output.display().to_string(),
            "port": port,
            "seconds": out.elapsed.as_secs_f64(),
            "bytes": out.bytes,
            "snapshots": t.snapshots,
            "dumps": out.dumps,
            "sources": {"stream": t.stream, "passive": t.passive, "poll": t.poll},
            "events": t.events,
            "gaps": t.gaps,
            "damaged": t.corrupt,
            "console_bytes": t.console_bytes,
        });
        crate::outln!("{}", serde_json::to_string_pretty(&summary).expect("summary serialises"))?;
    } else {
        eprintln!(
            "recorded {} ({}), {}, {}, {} in {:.1} s: {} ({})",
            count(t.snapshots, "snapshot"),
            t.sources(),
            count(out.dumps, "heap dump"),
            count(t.events, "event"),
            count(t.gaps, "gap"),
            out.elapsed.as_secs_f64(),
            args.output.display(),
            count(out.bytes, "byte")
        );
    }
    if t.snapshots == 0 {
        let said = match t.last_console_line() {
            Some(line) => format!("the port's last line: {line:?}"),
            None => "the port said nothing".to_string(),
        };
        return Err(CliError::Io(format!(
            "nothing was captured from {port}: no snapshot in {:.1} s ({said}; the recording {} holds all it said)",
            out.elapsed.as_secs_f64(),
            args.output.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_c_sets_the_flag_of_every_caller() {
        let first = interrupt_flag();
        let second = interrupt_flag();
        assert!(Arc::ptr_eq(&first, &second), "one flag per process");
        // A real SIGINT, as Ctrl-C sends it, reaches the flag the second caller holds.
        let status = std::process::Command::new("kill").args(["-INT", &std::process::id().to_string()]).status().expect("kill(1)");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        while !second.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "Ctrl-C never set the flag");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
