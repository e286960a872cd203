//! `heapscope inspect`: what the dumps in a text, or a recording, say.

use std::io::Read;

use heapscope_protocol::text;
use serde_json::json;

use crate::cli::InspectArgs;
use crate::exit::{file_error, CliError};
use crate::human;
use crate::recording::{self, Recording};
use crate::report::{RecordingReport, SnapshotReport};

pub fn run(args: &InspectArgs) -> Result<(), CliError> {
    let name = args.input.display().to_string();
    let bytes = if name == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(|e| CliError::Io(format!("reading standard input: {e}")))?;
        buf
    } else {
        std::fs::read(&args.input).map_err(|e| file_error(&args.input, e))?
    };
    if recording::is_recording(&bytes) {
        return inspect_recording(&name, bytes, args);
    }
    inspect_text(&name, &bytes, args)
}

fn inspect_recording(name: &str, bytes: Vec<u8>, args: &InspectArgs) -> Result<(), CliError> {
    let rec = Recording::from_bytes(bytes)?;
    let report = RecordingReport::new(name, &rec);
    let last = rec.snapshot_count().checked_sub(1).and_then(|i| rec.snapshot(i as u32));
    let last_report = last.as_ref().map(SnapshotReport::from_snapshot);
    if args.json {
        let v = json!({"recording": report, "last": last_report});
        crate::outln!("{}", serde_json::to_string_pretty(&v).expect("report serialises"))?;
    } else {
        crate::outln!("{name}: heapscope recording, {:.1} s", report.seconds)?;
        let sources: Vec<String> = report.sources.iter().map(|(s, n)| format!("{n} {s}")).collect();
        crate::outln!(
            "  {} snapshots ({}), {} events, {} segments ({} resets), {} gaps, {} damaged, {} bytes of console text",
            report.snapshots,
            if sources.is_empty() { "none".into() } else { sources.join(", ") },
            report.events,
            report.segments,
            report.resets,
            report.gaps,
            report.damaged,
            human::thousands(report.console_bytes as u64)
        )?;
        if report.skipped_snapshots > 0 {
            crate::outln!("  the device skipped {} snapshots: the line had no room for them", report.skipped_snapshots)?;
        }
        if let Some(t) = &report.truncated {
            crate::outln!("  ends early at byte {} ({}): everything before it was read", t.offset, t.reason)?;
        } else if !report.closed {
            crate::outln!("  not closed cleanly (no index): every record was read")?;
        }
        if let Some(r) = &last_report {
            crate::outln!("  last snapshot:")?;
            crate::out!("{}", human::snapshot(r))?;
        }
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
            crate::outln!("{json}")?;
        }
    } else {
        for (i, (dump, report)) in shown.iter().zip(&reports).enumerate() {
            let which = if args.all { i + 1 } else { dumps.len() };
            crate::outln!("{name}: dump {which} of {}, lines {}-{}", dumps.len(), dump.first_line, dump.last_line)?;
            crate::out!("{}", human::snapshot(report))?;
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
