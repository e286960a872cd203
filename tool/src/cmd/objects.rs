//! `heapscope objects`: who holds the memory in a dump.

use std::path::Path;
use std::sync::Arc;

use heapscope_objects::dump::hex;
use heapscope_objects::{diff, Analysis, HeapDump};
use serde_json::{json, Value};

use crate::cli::ObjectsArgs;
use crate::exit::{file_error, CliError};
use crate::entry::{Entry, Source};
use crate::human::thousands;
use crate::recording::{is_recording, HEADER_LEN};
use crate::tui::app::{App, View};
use crate::tui::history::History;
use crate::tui::render::objects::ObjectsState;

/// A dump file, or dump `which` (from 1; default the last) of a recording.
pub fn load(path: &Path, which: Option<u32>) -> Result<HeapDump, CliError> {
    let mut head = Vec::new();
    let file = std::fs::File::open(path).map_err(|e| file_error(path, e))?;
    std::io::Read::read_to_end(&mut std::io::Read::take(file, HEADER_LEN as u64), &mut head).map_err(|e| file_error(path, e))?;
    if is_recording(&head) {
        let rec = super::open_recording(path)?;
        let bad = |m: String| CliError::BadInput(format!("{}: {m}", path.display()));
        let count = rec.dump_count() as u32;
        let n = match which {
            _ if count == 0 => {
                // A dump lost to damage must not read as a recording that never had one.
                let damage = match &rec.damage.first {
                    Some((offset, why)) => format!(
                        "; {} skipped, the first at byte {offset} ({why}): a dump may have been there",
                        crate::human::count(rec.damage.stretches, "damaged run")
                    ),
                    None => String::new(),
                };
                return Err(bad(format!("the recording holds no readable heap dump{damage}")));
            }
            Some(n) if n > count => return Err(bad(format!("no dump {n}: the recording holds {count}"))),
            Some(n) => n,
            None => count,
        };
        return rec.dump(n - 1).map_err(bad);
    }
    if which.is_some() {
        return Err(CliError::BadInput(format!("{}: --dump picks a dump in a recording; this is a dump file", path.display())));
    }
    let bytes = std::fs::read(path).map_err(|e| file_error(path, e))?;
    HeapDump::from_json(&bytes).map_err(|e| CliError::BadInput(format!("{}: {e}", path.display())))
}

/// The full-screen view of a dump: its layout on the map, its objects in the Objects view.
pub fn app(dump: &HeapDump, analysis: Analysis, title: &str) -> App {
    let mut history = History::new();
    history.push(Entry::Snapshot { at: 0, device_ms: None, source: Source::Poll, snapshot: Box::new(dump.snapshot()) });
    let mut app = App::new(history, title, false);
    app.objects = Some(ObjectsState::new(Arc::new(analysis)));
    app.view = View::Objects;
    app
}

fn object_json(a: &Analysis, i: u32) -> Value {
    let o = &a.objects[i as usize];
    let mut v = json!({
        "address": hex(o.address),
        "type": a.type_name(i),
        "bytes": o.bytes,
        "retained": a.retained(i),
        "path": a.path_labels(&a.path(i)),
    });
    if let Some(name) = a.name(i) {
        v["name"] = json!(name);
    }
    if let Some(len) = o.length {
        v["length"] = json!(len);
    }
    if let Some(p) = &o.preview {
        v["preview"] = json!(p);
    }
    if o.unreliable {
        v["unreliable"] = json!(true);
    }
    v
}

fn take<T>(list: impl Iterator<Item = T>, top: usize) -> Vec<T> {
    list.take(if top == 0 { usize::MAX } else { top }).collect()
}

pub fn run(args: &ObjectsArgs) -> Result<(), CliError> {
    if args.tui {
        super::view::need_terminal("without --tui, `heapscope objects` lists the objects as text")?;
    }
    let dump = load(&args.input, args.dump)?;
    let analysis = Analysis::new(&dump);
    if let Some(later) = &args.diff {
        return print_diff(args, &analysis, &Analysis::new(&load(later, None)?));
    }
    if let Some(address) = args.why {
        return print_why(args, &analysis, address);
    }
    if args.tui {
        let app = app(&dump, analysis, &args.input.display().to_string());
        crate::tui::run_in_terminal(app, None).map_err(super::view::ui_error)?;
        return Ok(());
    }
    let order = analysis.by_retained();
    let top = take(order.iter().copied(), args.top);
    if args.json {
        let v = json!({
            "objects": top.iter().map(|&i| object_json(&analysis, i)).collect::<Vec<_>>(),
            "roots": analysis.roots.len(),
            "unreliable_blocks": analysis.unreliable_blocks,
        });
        crate::outln!("{}", serde_json::to_string_pretty(&v).expect("report serialises"))?;
        return Ok(());
    }
    let used: u64 = analysis.objects.iter().map(|o| o.bytes).sum();
    crate::outln!(
        "{}: {} objects, {} bytes in use, {} roots, {} unreliable blocks",
        args.input.display(),
        thousands(analysis.objects.len() as u64),
        thousands(used),
        analysis.roots.len(),
        analysis.unreliable_blocks
    )?;
    crate::outln!("{:>10} {:>8}  {:<14} {:<16} path", "retained", "bytes", "type", "address")?;
    for i in top {
        let o = &analysis.objects[i as usize];
        crate::outln!(
            "{:>10} {:>8}  {:<14} {:<16} {}",
            thousands(analysis.retained(i)),
            thousands(o.bytes),
            analysis.type_name(i),
            hex(o.address),
            analysis.path_text(i)
        )?;
    }
    Ok(())
}

fn print_why(args: &ObjectsArgs, a: &Analysis, address: u64) -> Result<(), CliError> {
    let i = a.object_at(address).ok_or_else(|| CliError::BadInput(format!("{}: no object at {}", args.input.display(), hex(address))))?;
    let path = a.path(i);
    if args.json {
        let mut v = object_json(a, i);
        v["root"] = json!(path.root_kind.label());
        v["chain"] = path
            .chain
            .iter()
            .map(|&o| json!({"address": hex(a.objects[o as usize].address), "type": a.type_name(o), "name": a.name(o)}))
            .collect();
        crate::outln!("{}", serde_json::to_string_pretty(&v).expect("report serialises"))?;
        return Ok(());
    }
    let o = &a.objects[i as usize];
    crate::outln!("{}: {} bytes, retains {}", a.describe(i), thousands(o.bytes), thousands(a.retained(i)))?;
    crate::outln!("kept alive by ({} root):", path.root_kind.label())?;
    for (k, &step) in path.chain.iter().enumerate() {
        crate::outln!("  {}{}", if k == 0 { "" } else { "-> " }, a.describe(step))?;
    }
    crate::outln!("  = {}", a.path_text(i))?;
    Ok(())
}

fn print_diff(args: &ObjectsArgs, earlier: &Analysis, later: &Analysis) -> Result<(), CliError> {
    let d = diff(earlier, later);
    let bytes: u64 = d.new_objects.iter().map(|&i| later.objects[i as usize].bytes).sum();
    let holder = |h: u32| later.path_text(h);
    if args.json {
        let v = json!({
            "new_objects": d.new_objects.len(),
            "bytes": bytes,
            "by_type": d.by_type.iter().map(|(t, c, b)| json!({"type": t, "count": c, "bytes": b})).collect::<Vec<_>>(),
            "by_holder": d.by_holder.iter().map(|&(h, c, b)| json!({
                "address": hex(later.objects[h as usize].address),
                "type": later.type_name(h),
                "path": holder(h), "count": c, "bytes": b})).collect::<Vec<_>>(),
            "objects": take(d.new_objects.iter().map(|&i| json!({
                "address": hex(later.objects[i as usize].address), "type": later.type_name(i), "bytes": later.objects[i as usize].bytes})), args.top),
        });
        crate::outln!("{}", serde_json::to_string_pretty(&v).expect("report serialises"))?;
        return Ok(());
    }
    crate::outln!("{} new objects, {} bytes", thousands(d.new_objects.len() as u64), thousands(bytes))?;
    crate::outln!("by type:")?;
    for (t, c, b) in &d.by_type {
        crate::outln!("  {:>10} B {:>7} x {t}", thousands(*b), thousands(*c as u64))?;
    }
    crate::outln!("held by (leak suspects):")?;
    for &(h, c, b) in take(d.by_holder.iter(), args.top) {
        crate::outln!("  {:>10} B {:>7} objects under {}", thousands(b), thousands(c as u64), holder(h))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::RecordingWriter;

    #[test]
    fn a_recording_whose_only_dump_is_damaged_says_where_not_that_it_never_had_one() {
        let path = std::env::temp_dir().join(format!("heapscope-objects-damaged-{}.hsr", std::process::id()));
        let mut w = RecordingWriter::create(&path, "{}").unwrap();
        let offset = w.append_dump(1, &heapscope_objects::synth::example()).unwrap();
        w.finish(2).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offset as usize + 40] ^= 0xFF;
        std::fs::write(&path, bytes).unwrap();
        let err = load(&path, None).unwrap_err().to_string();
        let _ = std::fs::remove_file(&path);
        assert!(err.contains(&format!("1 damaged run skipped, the first at byte {offset}")), "{err}");
    }
}
