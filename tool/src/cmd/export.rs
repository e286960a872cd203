//! `heapscope export`: a recording's timeline (and snapshots) as CSV or JSON.

use std::io::Write;

use serde::Serialize;
use serde_json::json;

use crate::cli::ExportArgs;
use crate::entry::Entry;
use crate::exit::{file_error, CliError};
use crate::recording::{Recording, Stored};
use crate::report::{RecordingReport, SnapshotReport};

/// One row of the timeline.
#[derive(Debug, Serialize)]
struct Row {
    time_s: f64,
    device_ms: Option<u32>,
    /// snapshot, event, segment, gap, damaged, notice
    kind: &'static str,
    source: Option<&'static str>,
    used: Option<u64>,
    free: Option<u64>,
    largest_free: Option<u64>,
    fragmentation: Option<f64>,
    /// The event, segment reason, gap reason, ...
    detail: String,
}

fn rows(rec: &Recording) -> Vec<Row> {
    let mut out = Vec::new();
    for e in &rec.entries {
        let time_s = e.at() as f64 / 1e6;
        let row = |kind, device_ms, detail: String| Row {
            time_s,
            device_ms,
            kind,
            source: None,
            used: None,
            free: None,
            largest_free: None,
            fragmentation: None,
            detail,
        };
        out.push(match e {
            Stored::Snapshot { device_ms, source, summary, .. } => Row {
                time_s,
                device_ms: *device_ms,
                kind: "snapshot",
                source: Some(source.name()),
                used: Some(summary.used),
                free: Some(summary.free),
                largest_free: Some(summary.largest_free),
                fragmentation: Some(summary.fragmentation),
                detail: String::new(),
            },
            Stored::Entry(Entry::Event { device_ms, event, .. }) => row("event", *device_ms, format!("{event:?}")),
            Stored::Entry(Entry::Segment { reason, detail, .. }) => row("segment", None, format!("{}: {detail}", reason.name())),
            Stored::Entry(Entry::Gap { reason, .. }) => row("gap", None, reason.clone()),
            Stored::Entry(Entry::Corrupt { detail, .. }) => row("damaged", None, detail.clone()),
            Stored::Entry(Entry::Notice { text, .. }) => row("notice", None, text.clone()),
            Stored::Entry(Entry::Console { .. } | Entry::Snapshot { .. }) => continue,
        });
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

pub fn run(args: &ExportArgs) -> Result<(), CliError> {
    let rec = super::open_recording(&args.input)?;
    let mut text = String::new();
    if args.csv {
        text.push_str("time_s,device_ms,kind,source,used,free,largest_free,fragmentation,detail\n");
        for r in rows(&rec) {
            text.push_str(&format!(
                "{:.6},{},{},{},{},{},{},{},{}\n",
                r.time_s,
                opt(r.device_ms),
                r.kind,
                opt(r.source),
                opt(r.used),
                opt(r.free),
                opt(r.largest_free),
                r.fragmentation.map(|f| format!("{f:.6}")).unwrap_or_default(),
                csv_field(&r.detail)
            ));
        }
    } else {
        let snapshots: Vec<_> = (0..rec.snapshot_count() as u32)
            .filter_map(|i| rec.snapshot(i))
            .map(|s| SnapshotReport::from_snapshot(&s))
            .collect();
        let v = json!({
            "recording": RecordingReport::new(&args.input.display().to_string(), &rec),
            "timeline": rows(&rec),
            "snapshots": snapshots,
        });
        text = serde_json::to_string_pretty(&v).expect("export serialises");
        text.push('\n');
    }
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|e| file_error(path, e))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).map_err(|e| CliError::Io(format!("writing standard output: {e}")))?;
        }
    }
    Ok(())
}
