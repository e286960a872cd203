//! `heapscope export`: a recording's timeline (and snapshots) as CSV or JSON.

use std::io::Write;

use serde_json::json;

use crate::cli::ExportArgs;
use crate::exit::{file_error, CliError};
use crate::report::{timeline, RecordingReport, SnapshotReport};

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
    if let Some(output) = &args.output {
        let same = |a: &std::path::Path, b: &std::path::Path| a.canonicalize().ok().is_some_and(|a| b.canonicalize().ok() == Some(a));
        if same(output, &args.input) {
            return Err(CliError::BadInput(format!("{}: the output would replace the recording it is read from", output.display())));
        }
        super::check_output(output, args.force)?;
    }
    let rec = super::open_recording(&args.input)?;
    let mut text = String::new();
    if args.csv {
        text.push_str("time_s,device_ms,kind,source,used,free,largest_free,fragmentation,detail\n");
        for r in timeline(&rec) {
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
        // One entry per snapshot in recording order, `null` where damage lost it, so the n-th
        // entry stays the n-th snapshot of the timeline.
        let snapshots: Vec<Option<SnapshotReport>> =
            (0..rec.snapshot_count() as u32).map(|i| rec.snapshot(i).map(|s| SnapshotReport::from_snapshot(&s))).collect();
        let v = json!({
            "recording": RecordingReport::new(&args.input.display().to_string(), &rec),
            "timeline": timeline(&rec).collect::<Vec<_>>(),
            "snapshots": snapshots,
        });
        text = serde_json::to_string_pretty(&v).expect("export serialises");
        text.push('\n');
    }
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|e| file_error(path, e))?,
        None => crate::exit::stdout_result(std::io::stdout().lock().write_all(text.as_bytes()))?,
    }
    Ok(())
}
