//! `heapscope inspect`: what the dumps in a text say.

use std::io::Read;

use heapscope_protocol::text;

use crate::cli::InspectArgs;
use crate::exit::CliError;
use crate::human;
use crate::report::SnapshotReport;

pub fn run(args: &InspectArgs) -> Result<(), CliError> {
    let name = args.input.display().to_string();
    let bytes = if name == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(|e| CliError::Io(format!("reading standard input: {e}")))?;
        buf
    } else {
        std::fs::read(&args.input).map_err(|e| CliError::Io(format!("{name}: {e}")))?
    };
    let (dumps, errors) = text::parse(&bytes);
    let shown = if args.all { &dumps[..] } else { &dumps[dumps.len().saturating_sub(1)..] };
    let reports: Vec<SnapshotReport> = shown.iter().map(SnapshotReport::from_dump).collect();

    if args.json {
        let json = if args.all { serde_json::to_string_pretty(&reports) } else { reports.first().map_or(Ok(String::new()), serde_json::to_string_pretty) };
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
