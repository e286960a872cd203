//! `heapscope imports`: what each import costs on the board.
//!
//! Stock firmware: through the raw REPL, for each module `gc.collect()` and a snapshot, the
//! import, `gc.collect()` and a snapshot; the difference is what the module keeps. Each step is
//! its own exec, so the measuring code is the same size in both snapshots and a failing import
//! only costs its own row. With the heapscope firmware module, its import events give nested
//! imports as a tree, with inclusive and exclusive costs.

use std::time::Duration;

use heapscope_protocol::text;
use heapscope_protocol::wire::demux::Demux;
use heapscope_protocol::wire::Event;
use heapscope_protocol::Snapshot;
use serde::Serialize;

use crate::capture::Decoder;
use crate::cli::ImportsArgs;
use crate::entry::Entry;
use crate::exit::{file_error, CliError};
use crate::human::thousands;
use crate::link::{Link, Opener, PathOpener};
use crate::port::{self, OpenOptions};
use crate::recording::Summary;
use crate::repl::{ExecOutput, RawRepl};

/// One import's cost.
#[derive(Clone, Debug, Serialize)]
pub struct ImportCost {
    pub module: String,
    /// Nesting depth: 0 for the modules asked for, more for what they import.
    pub depth: u32,
    pub ok: bool,
    /// The board's traceback, when the import failed.
    pub error: Option<String>,
    /// Heap bytes kept after the import (and a collection), including nested imports.
    pub retained_bytes: i64,
    pub retained_blocks: i64,
    /// Without the nested imports (equal to `retained_bytes` without the firmware module).
    pub exclusive_bytes: i64,
    pub largest_free_before: u64,
    pub largest_free_after: u64,
    pub fragmentation_before: f64,
    pub fragmentation_after: f64,
    /// Time the import took on the board.
    pub time_us: Option<u64>,
    /// What the figures do not say by themselves (already imported, largest free rose).
    pub notes: Vec<&'static str>,
}

/// The module was in `sys.modules` before: `import` only bound a name.
pub const NOTE_ALREADY_IMPORTED: &str = "already imported before: nothing was loaded, so it costs nothing here";
/// A built-in module is never in `sys.modules`: importing it allocates nothing.
pub const NOTE_BUILT_IN: &str = "built into the firmware: importing it loads nothing, so it costs nothing here";
/// The largest free block grew across an import.
pub const NOTE_LARGEST_FREE_ROSE: &str =
    "largest free rose: the collection after the import also freed garbage left by earlier code, joining holes";

#[derive(Debug, Serialize)]
pub struct ImportsReport {
    pub port: String,
    /// `raw-repl` (stock firmware) or `heapscope-module`.
    pub method: &'static str,
    pub block_size: Option<u32>,
    pub baseline: Option<BaselineReport>,
    pub modules: Vec<ImportCost>,
}

#[derive(Debug, Serialize)]
pub struct BaselineReport {
    pub used: u64,
    pub free: u64,
    pub largest_free: u64,
}

const SNAPSHOT: &str = "gc.collect()\nmicropython.mem_info(1)\n";
const SETUP: &str = "import gc, micropython, time\n_heapscope_t = 0\n";

/// Module names from the imports at the top of a script: `import a, b.c as d` and
/// `from x.y import z`, up to the first other statement. Relative imports are skipped.
pub fn modules_from_script(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_docstring: Option<&str> = None;
    for raw in source.lines() {
        let line = raw.trim();
        if let Some(q) = in_docstring {
            if line.contains(q) {
                in_docstring = None;
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(q) = ["\"\"\"", "'''"].into_iter().find(|q| line.starts_with(q)) {
            if !line[3..].contains(q) {
                in_docstring = Some(q);
            }
            continue;
        }
        let add = |name: &str, out: &mut Vec<String>| {
            let name = name.split_whitespace().next().unwrap_or("");
            if !name.is_empty() && !name.starts_with('.') && !out.iter().any(|m| m == name) {
                out.push(name.to_string());
            }
        };
        if let Some(rest) = line.strip_prefix("import ") {
            for part in rest.split('#').next().unwrap_or("").split(',') {
                add(part.trim(), &mut out);
            }
        } else if let Some(rest) = line.strip_prefix("from ") {
            if let Some((module, _)) = rest.split_once(" import ") {
                add(module.trim(), &mut out);
            }
        } else {
            break;
        }
    }
    out
}

fn exec(repl: &mut RawRepl<'_>, code: &str) -> Result<ExecOutput, CliError> {
    Ok(repl.exec(code, Duration::from_secs(30))?)
}

fn snapshot(repl: &mut RawRepl<'_>) -> Result<Snapshot, CliError> {
    let out = exec(repl, SNAPSHOT)?;
    if out.failed() {
        return Err(CliError::Io(format!("the board raised while taking a snapshot: {}", String::from_utf8_lossy(&out.stderr))));
    }
    text::parse(&out.stdout)
        .0
        .pop()
        .map(|d| d.snapshot)
        .ok_or_else(|| CliError::BadInput(format!("no mem_info output from the board: {:?}", String::from_utf8_lossy(&out.stdout))))
}

fn cost(module: &str, depth: u32, before: &Snapshot, after: &Snapshot, ok: bool, error: Option<String>, time_us: Option<u64>) -> ImportCost {
    let (b, a) = (Summary::of(before), Summary::of(after));
    let bs = i64::from(after.block_size().unwrap_or(16));
    let retained = a.used as i64 - b.used as i64;
    ImportCost {
        module: module.to_string(),
        depth,
        ok,
        error,
        retained_bytes: retained,
        retained_blocks: retained / bs,
        exclusive_bytes: retained,
        largest_free_before: b.largest_free,
        largest_free_after: a.largest_free,
        fragmentation_before: b.fragmentation,
        fragmentation_after: a.fragmentation,
        time_us,
        notes: if a.largest_free > b.largest_free { vec![NOTE_LARGEST_FREE_ROSE] } else { Vec::new() },
    }
}

fn valid_module_name(name: &str) -> bool {
    !name.is_empty() && name.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c == '_' || c.is_alphanumeric()))
}

/// Every name must be a dotted module name: anything else would be run on the board as code.
fn check_module_names(modules: &[String]) -> Result<(), CliError> {
    match modules.iter().find(|m| !valid_module_name(m)) {
        Some(bad) => Err(CliError::BadInput(format!("{bad:?} is not a module name"))),
        None => Ok(()),
    }
}

/// Measures the imports over a link to a board at its REPL.
pub fn measure(link: &mut dyn Link, port: &str, modules: &[String], soft_reset: bool) -> Result<ImportsReport, CliError> {
    check_module_names(modules)?;
    let mut demux = Demux::new();
    let mut repl = RawRepl::new(link, &mut demux);
    repl.enter()?;
    if soft_reset {
        repl.soft_reset()?;
    }
    let probe = exec(&mut repl, "try:\n import heapscope\n print('heapscope', heapscope.PROTOCOL_VERSION)\nexcept ImportError:\n print('stock')\n")?;
    let has_module = String::from_utf8_lossy(&probe.stdout).starts_with("heapscope");
    exec(&mut repl, SETUP)?;
    let report = if has_module { measure_traced(&mut repl, port, modules)? } else { measure_stock(&mut repl, port, modules)? };
    repl.leave()?;
    Ok(report)
}

fn measure_stock(repl: &mut RawRepl<'_>, port: &str, modules: &[String]) -> Result<ImportsReport, CliError> {
    let baseline = snapshot(repl)?;
    let mut before = baseline.clone();
    let mut rows = Vec::new();
    for m in modules {
        let out = exec(
            repl,
            &format!(
                "print('heapscope-loaded', '{m}' in __import__('sys').modules)\n_heapscope_t = time.ticks_us()\nimport {m}\n\
                 print('heapscope-us', time.ticks_diff(time.ticks_us(), _heapscope_t))\nprint('heapscope-stored', '{m}' in __import__('sys').modules)\n"
            ),
        )?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let time_us = stdout.lines().find_map(|l| l.strip_prefix("heapscope-us ").and_then(|n| n.trim().parse().ok()));
        let already = stdout.lines().any(|l| l.trim() == "heapscope-loaded True");
        let built_in = stdout.lines().any(|l| l.trim() == "heapscope-stored False");
        let error = out.failed().then(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
        let after = snapshot(repl)?;
        let mut row = cost(m, 0, &before, &after, error.is_none(), error, time_us);
        if already {
            row.notes.insert(0, NOTE_ALREADY_IMPORTED);
        } else if built_in && row.ok {
            row.notes.insert(0, NOTE_BUILT_IN);
        }
        rows.push(row);
        before = after;
    }
    let b = Summary::of(&baseline);
    Ok(ImportsReport {
        port: port.to_string(),
        method: "raw-repl",
        block_size: baseline.block_size(),
        baseline: Some(BaselineReport { used: b.used, free: b.free, largest_free: b.largest_free }),
        modules: rows,
    })
}

fn measure_traced(repl: &mut RawRepl<'_>, port: &str, modules: &[String]) -> Result<ImportsReport, CliError> {
    exec(repl, "heapscope.trace_imports(True, collect=True)\n")?;
    let mut decoder = Decoder::new();
    let mut entries = Vec::new();
    let mut failures = Vec::new();
    for m in modules {
        let out = exec(repl, &format!("import {m}\n"))?;
        if out.failed() {
            failures.push((m.clone(), String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        let items = std::mem::take(&mut repl.items);
        decoder.items(items, 0, &mut entries);
    }
    exec(repl, "heapscope.trace_imports(False)\n")?;
    let mut rows = tree_from_events(&entries);
    for row in rows.iter_mut().filter(|r| !r.ok && r.depth == 0) {
        row.error = failures.iter().find(|(m, _)| *m == row.module).map(|(_, e)| e.clone());
    }
    Ok(ImportsReport { port: port.to_string(), method: "heapscope-module", block_size: None, baseline: None, modules: rows })
}

/// Import costs from the firmware module's events: each begin and end event is followed by a
/// snapshot; nested imports become rows under their parent, in begin order.
pub fn tree_from_events(entries: &[Entry]) -> Vec<ImportCost> {
    struct Open {
        row: usize,
        before: Snapshot,
        children: i64,
    }
    let mut rows: Vec<ImportCost> = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut pending: Option<&Event> = None;
    for e in entries {
        match e {
            Entry::Event { event: ev @ (Event::ImportBegin { .. } | Event::ImportEnd { .. }), .. } => pending = Some(ev),
            Entry::Snapshot { snapshot, .. } => match pending.take() {
                Some(Event::ImportBegin { depth, name }) => {
                    rows.push(cost(name, *depth, snapshot, snapshot, true, None, None));
                    stack.push(Open { row: rows.len() - 1, before: (**snapshot).clone(), children: 0 });
                }
                Some(Event::ImportEnd { name, ok, elapsed_us, .. }) => {
                    if let Some(open) = stack.pop() {
                        let depth = rows[open.row].depth;
                        let mut c = cost(name, depth, &open.before, snapshot, *ok, None, Some(*elapsed_us));
                        c.exclusive_bytes = c.retained_bytes - open.children;
                        if let Some(parent) = stack.last_mut() {
                            parent.children += c.retained_bytes;
                        }
                        rows[open.row] = c;
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    rows
}

pub fn run(args: &ImportsArgs) -> Result<(), CliError> {
    let mut modules = args.modules.clone();
    if let Some(path) = &args.from {
        let bytes = std::fs::read(path).map_err(|e| file_error(path, e))?;
        let source = std::str::from_utf8(&bytes).map_err(|e| {
            let at = e.valid_up_to();
            let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
            CliError::BadInput(format!("{}:{line}: not UTF-8 text (byte offset {at}); MicroPython reads scripts as UTF-8", path.display()))
        })?;
        let found = modules_from_script(source);
        if found.is_empty() {
            return Err(CliError::BadInput(format!("{}: no imports at the top of the script", path.display())));
        }
        modules.extend(found);
    }
    // Before the board is touched: a bad name is the user's typo, not a reason to stop the board.
    check_module_names(&modules)?;
    let path = port::resolve(&args.device.port)?;
    let mut opener = PathOpener { path: path.clone(), options: OpenOptions { baud: args.device.baud, reset: args.device.reset } };
    let mut link = opener.open()?;
    if !args.json {
        eprintln!("{path}: entering the raw REPL (this stops any program running on the board)");
    }
    let report = measure(&mut *link, &path, &modules, args.soft_reset)?;
    if args.json {
        crate::outln!("{}", serde_json::to_string_pretty(&report).expect("report serialises"))?;
    } else {
        crate::out!("{}", table(&report))?;
    }
    // A failed import is the board failing what was asked: exit 1, after the report.
    let failed = report.modules.iter().filter(|m| !m.ok && m.depth == 0).count();
    if failed > 0 {
        return Err(CliError::Io(format!("{failed} of {} failed on the board", crate::human::count(modules.len(), "import"))));
    }
    Ok(())
}

/// The report as a table, nested imports indented under their parent.
pub fn table(r: &ImportsReport) -> String {
    let mut s = String::new();
    let name_width = r.modules.iter().map(|m| m.module.len() + 2 * m.depth as usize).max().unwrap_or(6).max(6);
    s += &format!(
        "{:<name_width$}  {:>10}  {:>7}  {:>21}  {:>15}  {:>9}\n",
        "module", "retained", "blocks", "largest free (bytes)", "fragmentation", "time"
    );
    for m in &r.modules {
        let name = format!("{}{}", "  ".repeat(m.depth as usize), m.module);
        if !m.ok && m.depth == 0 && m.error.is_some() {
            let err = m.error.as_deref().unwrap_or("").lines().last().unwrap_or("");
            s += &format!("{name:<name_width$}  failed: {err}\n");
            continue;
        }
        let retained = if m.retained_bytes != m.exclusive_bytes {
            format!("{} ({} own)", signed(m.retained_bytes), signed(m.exclusive_bytes))
        } else {
            signed(m.retained_bytes)
        };
        s += &format!(
            "{name:<name_width$}  {:>10}  {:>7}  {:>9} → {:>9}  {:>5.1}% → {:>5.1}%  {:>9}\n",
            retained,
            m.retained_blocks,
            thousands(m.largest_free_before),
            thousands(m.largest_free_after),
            100.0 * m.fragmentation_before,
            100.0 * m.fragmentation_after,
            m.time_us.map_or("-".into(), |us| format!("{:.1} ms", us as f64 / 1000.0))
        );
        for note in &m.notes {
            s += &format!("{:name_width$}  ({note})\n", "");
        }
    }
    s
}

fn signed(n: i64) -> String {
    if n < 0 {
        format!("-{} B", thousands(n.unsigned_abs()))
    } else {
        format!("{} B", thousands(n as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_at_the_top_of_a_script() {
        let src = "\"\"\"Demo.\n\nMore.\n\"\"\"\n# comment\nimport json, os.path as p  # x\nfrom umqtt.simple import MQTTClient\nfrom . import local\n\nimport json\nx = 1\nimport late\n";
        assert_eq!(modules_from_script(src), ["json", "os.path", "umqtt.simple"]);
    }

    #[test]
    fn a_rise_of_the_largest_free_block_is_explained() {
        // 64 blocks of 16 B: a block in the middle, then gone (the collection freed it).
        let dump = |layout: &str| {
            let text = format!(
                "GC: total: 1024, used: 32, free: 992\r\n No. of 1-blocks: 2, 2-blocks: 0, max blk sz: 1, max free sz: 31\r\nGC memory layout; from 10000:\r\n00000000: {layout}\r\n>>> "
            );
            let snapshot = text::parse(text.as_bytes()).0.pop().unwrap().snapshot;
            assert!(snapshot.has_layout());
            snapshot
        };
        let split = dump(&format!("h{}h{}", ".".repeat(31), ".".repeat(31)));
        let joined = dump(&format!("h{}", ".".repeat(63)));
        let rose = cost("m", 0, &split, &joined, true, None, None);
        assert_eq!(rose.notes, [NOTE_LARGEST_FREE_ROSE]);
        assert!(table(&ImportsReport { port: "p".into(), method: "raw-repl", block_size: None, baseline: None, modules: vec![rose] }).contains("largest free rose"));
        assert!(cost("m", 0, &joined, &split, true, None, None).notes.is_empty());
    }

    #[test]
    fn module_names_are_checked() {
        assert!(valid_module_name("umqtt.simple"));
        assert!(!valid_module_name("os; import machine"));
        assert!(!valid_module_name("a..b"));
    }
}
