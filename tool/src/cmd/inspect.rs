//! `heapscope inspect`: what the dumps in a text, or a recording, say.

use std::io::{Read, Write};

use heapscope_protocol::text::{self, Dump, ParseError, ScanEvent};
use serde_json::json;

use crate::cli::InspectArgs;
use crate::exit::{file_error, CliError};
use crate::human;
use crate::recording::{self, Recording};
use crate::report::{timeline, RecordingReport, Row, SnapshotReport};

/// Console text is read in pieces of this size: a log of any length costs the same memory.
const READ_CHUNK: usize = 1 << 20;

/// Malformed dumps listed one by one; past this many, only counted.
const ERRORS_LISTED: usize = 50;

pub fn run(args: &InspectArgs) -> Result<(), CliError> {
    let name = args.input.display().to_string();
    let mut input: Box<dyn Read> = if name == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(&args.input).map_err(|e| file_error(&args.input, e))?)
    };
    let read_error = |e: std::io::Error| {
        if name == "-" {
            CliError::Io(format!("reading standard input: {e}"))
        } else {
            file_error(&args.input, e)
        }
    };
    let mut first = Vec::with_capacity(READ_CHUNK);
    (&mut input).take(READ_CHUNK as u64).read_to_end(&mut first).map_err(read_error)?;
    if !first.is_empty() && first.len() < recording::HEADER_LEN && recording::MAGIC.starts_with(&first[..first.len().min(recording::MAGIC.len())]) {
        return Err(CliError::BadInput(format!(
            "{name}: a heapscope recording cut off after {}: its header alone is {} bytes",
            human::count(first.len(), "byte"),
            recording::HEADER_LEN
        )));
    }
    if recording::is_recording(&first) {
        // A recording file is read where needed, never loaded whole; standard input is read in.
        if name != "-" {
            return inspect_recording(&name, super::open_recording(&args.input)?, args);
        }
        input.read_to_end(&mut first).map_err(read_error)?;
        return inspect_recording(&name, Recording::from_bytes(first)?, args);
    }
    inspect_text(&name, &first, input, args).map_err(|e| match e {
        TextError::Read(e) => read_error(e),
        TextError::Cli(e) => e,
    })
}

/// The recording's figures, its events (and with `--all` every snapshot's figures), and its last
/// snapshot in full.
fn inspect_recording(name: &str, rec: Recording, args: &InspectArgs) -> Result<(), CliError> {
    rec.verify();
    let report = RecordingReport::new(name, &rec);
    let rows: Vec<Row> = timeline(&rec).filter(|r| args.all || r.kind != "snapshot").collect();
    let last = rec.snapshot_count().checked_sub(1).and_then(|i| rec.snapshot(i as u32));
    let last_report = last.as_ref().map(SnapshotReport::from_snapshot);
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        let v = json!({"recording": report, "timeline": rows, "last": last_report});
        writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("report serialises"))
    } else {
        print_recording(&mut out, name, &report, &rows, last_report.as_ref(), args.all)
    };
    crate::exit::stdout_result(written)
}

fn print_recording(
    out: &mut impl Write,
    name: &str,
    report: &RecordingReport,
    rows: &[Row],
    last: Option<&SnapshotReport>,
    all: bool,
) -> std::io::Result<()> {
    writeln!(out, "{name}: heapscope recording, {:.1} s", report.seconds)?;
    let sources: Vec<String> = report.sources.iter().map(|(s, n)| format!("{n} {s}")).collect();
    writeln!(
        out,
        "  {} ({}), {}, {}, {} ({}), {}, {} arrived damaged, {} of console text",
        human::count(report.snapshots, "snapshot"),
        if sources.is_empty() { "none".into() } else { sources.join(", ") },
        human::count(report.events, "event"),
        human::count(report.memory_errors, "MemoryError"),
        human::count(report.segments, "segment"),
        human::count(report.resets, "reset"),
        human::count(report.gaps, "gap"),
        report.damaged,
        human::count(report.console_bytes, "byte")
    )?;
    if report.skipped_snapshots > 0 {
        writeln!(out, "  the device skipped {}: the line had no room for them", human::count(report.skipped_snapshots, "snapshot"))?;
    }
    if report.damaged_records > 0 || report.lost_snapshots > 0 {
        writeln!(
            out,
            "  damaged file: {} skipped ({}); {} cannot be rebuilt; everything else was read",
            human::count(report.damaged_records, "damaged run"),
            human::count(report.damaged_bytes, "byte"),
            human::count(report.lost_snapshots, "snapshot")
        )?;
        if let Some(first) = &report.first_damage {
            writeln!(out, "  the first damage at byte {}: {}", first.offset, first.reason)?;
        }
        if let Some(lost) = &report.first_lost_snapshot {
            writeln!(out, "  the first snapshot that cannot be rebuilt: snapshot {}, its record at byte {}", lost.snapshot, lost.offset)?;
        }
    }
    if let Some(t) = &report.truncated {
        writeln!(out, "  ends early at byte {} ({}): everything before it was read", t.offset, t.reason)?;
    } else if !report.closed {
        writeln!(out, "  not closed cleanly (no index): every record was read")?;
    }
    if !rows.is_empty() {
        writeln!(out, "  {}:", if all { "timeline" } else { "timeline without its snapshots (--all lists them)" })?;
    }
    for r in rows {
        if r.kind == "snapshot" {
            writeln!(
                out,
                "    {:>10.3} s  snapshot      used {} B, free {} B, largest free {} B, fragmentation {:.1}%",
                r.time_s,
                human::thousands(r.used.unwrap_or(0)),
                human::thousands(r.free.unwrap_or(0)),
                human::thousands(r.largest_free.unwrap_or(0)),
                r.fragmentation.unwrap_or(0.0) * 100.0
            )?;
        } else {
            writeln!(out, "    {:>10.3} s  {:<12}  {}", r.time_s, r.kind, r.detail)?;
        }
    }
    if let Some(r) = last {
        writeln!(out, "  last snapshot:")?;
        write!(out, "{}", human::snapshot(r))?;
    }
    Ok(())
}

enum TextError {
    Read(std::io::Error),
    Cli(CliError),
}

impl From<CliError> for TextError {
    fn from(e: CliError) -> TextError {
        TextError::Cli(e)
    }
}

fn write_error(e: std::io::Error) -> CliError {
    CliError::Io(format!("writing standard output: {e}"))
}

/// Scans console text as it is read: with `--all` each dump is printed when it is complete,
/// otherwise only the last one is kept. Memory stays that of one dump whatever the log's length.
fn inspect_text(name: &str, first: &[u8], mut rest: Box<dyn Read>, args: &InspectArgs) -> Result<(), TextError> {
    let mut scanner = text::Scanner::new();
    let mut out = std::io::BufWriter::new(crate::exit::Stdout::default());
    let mut dumps = 0usize;
    let mut last: Option<Box<Dump>> = None;
    let mut errors: Vec<ParseError> = Vec::new();
    let mut more_errors = 0usize;
    let mut handle = |events: Vec<ScanEvent>, out: &mut dyn Write| -> Result<(), CliError> {
        for event in events {
            match event {
                ScanEvent::Dump(dump) => {
                    dumps += 1;
                    if args.all {
                        print_dump(out, name, &dump, dumps, None, args.json)?;
                    } else {
                        last = Some(dump);
                    }
                }
                ScanEvent::Error(e) if errors.len() < ERRORS_LISTED => errors.push(e),
                ScanEvent::Error(_) => more_errors += 1,
            }
        }
        Ok(())
    };
    handle(scanner.push(first), &mut out)?;
    let mut buf = vec![0u8; READ_CHUNK];
    // Once the reader has gone (`| head`), what is left is not read: the end is quiet.
    while !out.get_ref().reader_gone() {
        let n = match rest.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(TextError::Read(e)),
        };
        handle(scanner.push(&buf[..n]), &mut out)?;
    }
    handle(scanner.finish(), &mut out)?;
    if let Some(dump) = &last {
        print_dump(&mut out, name, dump, dumps, Some(dumps), args.json)?;
    }
    if args.json && dumps > 0 {
        writeln!(out, "\n  ],\n  \"dumps_found\": {dumps}\n}}").map_err(write_error)?;
    } else if args.all && dumps > 0 {
        writeln!(out, "{name}: {}", human::count(dumps, "dump")).map_err(write_error)?;
    }
    out.flush().map_err(write_error)?;
    if out.get_ref().reader_gone() {
        return Ok(());
    }

    if !errors.is_empty() {
        let mut list: Vec<String> = errors
            .iter()
            .map(|e| match e.column {
                Some(col) => format!("{name}:{}:{col}: {}", e.line, e.message),
                None => format!("{name}:{}: {}", e.line, e.message),
            })
            .collect();
        if more_errors > 0 {
            list.push(format!("... and {more_errors} more"));
        }
        return Err(CliError::BadInput(format!("malformed mem_info output:\n  {}", list.join("\n  "))).into());
    }
    if dumps == 0 {
        let lines = scanner.lines_seen();
        return Err(CliError::BadInput(format!(
            "{name}: no micropython.mem_info() output found in {lines} lines (looked for a `GC: total:` line)"
        ))
        .into());
    }
    Ok(())
}

/// One dump: dump `which` (`of` the total when it is known), as JSON or for people.
///
/// `--json` prints one shape with or without `--all`: `{"input", "dumps", "dumps_found"}`, where
/// `dumps` holds every dump or the last. The object is opened with the first dump and each dump is
/// written as soon as it is found, so a long log never has to be held.
fn print_dump(out: &mut dyn Write, name: &str, dump: &Dump, which: usize, of: Option<usize>, json: bool) -> Result<(), CliError> {
    let report = SnapshotReport::from_dump(dump);
    let first = which == 1 || of.is_some();
    if json {
        let encoding = |e: serde_json::Error| CliError::Io(format!("encoding JSON: {e}"));
        if first {
            let input = serde_json::to_string(name).map_err(encoding)?;
            write!(out, "{{\n  \"input\": {input},\n  \"dumps\": [").map_err(write_error)?;
        }
        let text = serde_json::to_string_pretty(&report).map_err(encoding)?;
        out.write_all(if first { b"\n" } else { b",\n" }).map_err(write_error)?;
        let indented: Vec<String> = text.lines().map(|l| format!("    {l}")).collect();
        out.write_all(indented.join("\n").as_bytes()).map_err(write_error)?;
    } else {
        let of = of.map_or(String::new(), |n| format!(" of {n}"));
        writeln!(out, "{name}: dump {which}{of}, lines {}-{}", dump.first_line, dump.last_line).map_err(write_error)?;
        write!(out, "{}", human::snapshot(&report)).map_err(write_error)?;
    }
    Ok(())
}
