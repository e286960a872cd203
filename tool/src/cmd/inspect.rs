//! `heapscope inspect`: what the dumps in a text, or a recording, say.

use std::io::{Read, Write};

use heapscope_protocol::text;
use serde_json::json;

use crate::cli::InspectArgs;
use crate::exit::{file_error, CliError};
use crate::human;
use crate::recording::{self, Recording};
use crate::report::{timeline, RecordingReport, Row, SnapshotReport};

pub fn run(args: &InspectArgs) -> Result<(), CliError> {
    let name = args.input.display().to_string();
    if name == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(|e| CliError::Io(format!("reading standard input: {e}")))?;
        if recording::is_recording(&buf) {
            return inspect_recording(&name, Recording::from_bytes(buf)?, args);
        }
        return inspect_text(&name, &buf, args);
    }
    // A recording is read where needed, never loaded whole: look at its header first.
    let mut head = Vec::with_capacity(recording::HEADER_LEN);
    std::fs::File::open(&args.input)
        .and_then(|f| f.take(recording::HEADER_LEN as u64).read_to_end(&mut head))
        .map_err(|e| file_error(&args.input, e))?;
    if recording::is_recording(&head) {
        return inspect_recording(&name, super::open_recording(&args.input)?, args);
    }
    let bytes = std::fs::read(&args.input).map_err(|e| file_error(&args.input, e))?;
    inspect_text(&name, &bytes, args)
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
    written.map_err(|e| CliError::Io(format!("writing standard output: {e}")))
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
        "  {} snapshots ({}), {} events, {} MemoryErrors, {} segments ({} resets), {} gaps, {} damaged, {} bytes of console text",
        report.snapshots,
        if sources.is_empty() { "none".into() } else { sources.join(", ") },
        report.events,
        report.memory_errors,
        report.segments,
        report.resets,
        report.gaps,
        report.damaged,
        human::thousands(report.console_bytes as u64)
    )?;
    if report.damaged_records > 0 || report.lost_snapshots > 0 {
        writeln!(
            out,
            "  damaged file: {} stretch(es) skipped ({} bytes); {} snapshots cannot be rebuilt; everything else was read",
            report.damaged_records,
            human::thousands(report.damaged_bytes),
            report.lost_snapshots
        )?;
    }
    if let Some(t) = &report.truncated {
        writeln!(out, "  ends early at byte {} ({}): everything before it was read", t.offset, t.reason)?;
    } else if !report.closed {
        writeln!(out, "  not closed cleanly (no index): every record was read")?;
    }
    if !rows.is_empty() {
        writeln!(out, "  {}:", if all { "timeline" } else { "events" })?;
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

fn inspect_text(name: &str, bytes: &[u8], args: &InspectArgs) -> Result<(), CliError> {
    let (dumps, errors) = text::parse(bytes);
    let shown = if args.all { &dumps[..] } else { &dumps[dumps.len().saturating_sub(1)..] };
    let reports: Vec<SnapshotReport> = shown.iter().map(SnapshotReport::from_dump).collect();

    if args.json {
        let json = if args.all {
            serde_json::to_string_pretty(&reports)
        } else {
            reports.first().map_or(Ok(String::new()), serde_json::to_string_pretty)
        };
        let json = json.map_err(|e| CliError::Io(format!("encoding JSON: {e}")))?;
        if !json.is_empty() {
            println!("{json}");
        }
    } else {
        for (i, (dump, report)) in shown.iter().zip(&reports).enumerate() {
            let which = if args.all { i + 1 } else { dumps.len() };
            println!("{name}: dump {which} of {}, lines {}-{}", dumps.len(), dump.first_line, dump.last_line);
            print!("{}", human::snapshot(report));
        }
    }

    if !errors.is_empty() {
        let list: Vec<String> = errors
            .iter()
            .map(|e| match e.column {
                Some(col) => format!("{name}:{}:{col}: {}", e.line, e.message),
                None => format!("{name}:{}: {}", e.line, e.message),
            })
            .collect();
        return Err(CliError::BadInput(format!("malformed mem_info output:\n  {}", list.join("\n  "))));
    }
    if dumps.is_empty() {
        let lines = bytes.iter().filter(|&&b| b == b'\n').count();
        return Err(CliError::BadInput(format!(
            "{name}: no micropython.mem_info() output found in {lines} lines (looked for a `GC: total:` line)"
        )));
    }
    Ok(())
}
