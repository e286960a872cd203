//! `heapscope ports`

use crate::cli::PortsArgs;
use crate::exit::CliError;
use crate::port;

pub fn run(args: &PortsArgs) -> Result<(), CliError> {
    let mut ports = port::list()?;
    if args.boards {
        ports.retain(|p| p.likely_board.is_some());
    }
    if args.json {
        crate::outln!("{}", serde_json::to_string_pretty(&ports).expect("ports serialise"))?;
        return Ok(());
    }
    if ports.is_empty() {
        crate::outln!("{}", if args.boards { "no port looks like a MicroPython board" } else { "no serial ports found" })?;
        return Ok(());
    }
    let width = ports.iter().map(|p| p.path.len()).max().unwrap_or(0);
    for p in &ports {
        let id = match (&p.vid, &p.pid) {
            (Some(v), Some(pid)) => format!("{v}:{pid}"),
            _ => format!("({})", p.kind),
        };
        let what = p.likely_board.map(|b| format!("board? {b}")).or_else(|| p.product.clone()).unwrap_or_default();
        let serial = p.serial.as_ref().map(|s| format!("  id:{s}")).unwrap_or_default();
        crate::outln!("{:<width$}  {id:<10}  {what}{serial}", p.path)?;
    }
    Ok(())
}
