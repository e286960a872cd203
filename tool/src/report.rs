//! The JSON shape of a snapshot report, shared by every command that prints heap data.

use std::collections::BTreeMap;

use heapscope_protocol::metrics::{self, Metrics};
use heapscope_protocol::text::Dump;
use heapscope_protocol::wire::Event;
use heapscope_protocol::Snapshot;
use serde::Serialize;
use serde_json::json;

use crate::entry::Entry;
use crate::recording::{Recording, Stored};

#[derive(Debug, Serialize)]
pub struct SnapshotReport {
    /// Lines of the input the dump spans (text input only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<LineSpan>,
    /// Bytes per GC block; absent when only the summary was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u32>,
    pub areas: Vec<AreaReport>,
    pub reported: ReportedFigures,
    pub metrics: MetricsReport,
    pub warnings: Vec<WarningReport>,
}

#[derive(Debug, Serialize)]
pub struct LineSpan {
    pub first: usize,
    pub last: usize,
}

#[derive(Debug, Serialize)]
pub struct AreaReport {
    /// `0x` hex.
    pub pool_start: String,
    pub block_size: u32,
    pub blocks: usize,
    pub free_blocks: usize,
    pub head_blocks: usize,
    pub tail_blocks: usize,
    pub mark_blocks: usize,
    pub largest_free_blocks: usize,
}

/// What the device printed about itself (null where it did not say).
#[derive(Debug, Default, Serialize)]
pub struct ReportedFigures {
    pub total: Option<u64>,
    pub used: Option<u64>,
    pub free: Option<u64>,
    pub one_blocks: Option<u64>,
    pub two_blocks: Option<u64>,
    pub max_block: Option<u64>,
    pub max_free: Option<u64>,
    pub max_new_split: Option<u64>,
    pub stack_used: Option<u64>,
    pub stack_limit: Option<u64>,
    pub mem_total: Option<u64>,
    pub mem_current: Option<u64>,
    pub mem_peak: Option<u64>,
    /// What `gc.mem_alloc()` returned to Python at the same moment (polls and the module).
    pub mem_alloc: Option<u64>,
    /// What `gc.mem_free()` returned (on split heaps it includes `max_new_split`).
    pub mem_free: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct MetricsReport {
    /// `layout` when computed from the block layout, `summary` when only the device's summary
    /// line was seen (then the layout-only figures are null).
    pub source: &'static str,
    pub used_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    /// The largest allocation that can succeed now (no collection, no heap growth).
    pub largest_free_bytes: Option<u64>,
    /// `1 - largest_free / total_free`.
    pub fragmentation: Option<f64>,
    /// Free runs by length, one per power-of-two bucket of lengths.
    pub free_runs: Vec<FreeRunsReport>,
    /// Bytes by object type.
    pub types: BTreeMap<&'static str, u64>,
    /// Allocation counts by object type.
    pub type_counts: BTreeMap<&'static str, usize>,
}

/// Free runs (holes) `min_blocks..=max_blocks` blocks long.
#[derive(Debug, Serialize)]
pub struct FreeRunsReport {
    pub min_blocks: usize,
    pub max_blocks: usize,
    pub min_bytes: u64,
    pub max_bytes: u64,
    /// How many holes of these lengths.
    pub runs: usize,
    /// The blocks in them.
    pub blocks: usize,
}

#[derive(Debug, Serialize)]
pub struct WarningReport {
    pub line: usize,
    pub message: String,
}

impl SnapshotReport {
    pub fn from_dump(dump: &Dump) -> SnapshotReport {
        let mut report = SnapshotReport::from_snapshot(&dump.snapshot);
        report.lines = Some(LineSpan { first: dump.first_line, last: dump.last_line });
        report.warnings =
            dump.warnings.iter().map(|w| WarningReport { line: w.line, message: w.message.clone() }).collect();
        report
    }

    pub fn from_snapshot(snapshot: &Snapshot) -> SnapshotReport {
        let m = metrics::compute(snapshot);
        SnapshotReport {
            lines: None,
            block_size: snapshot.block_size(),
            areas: m
                .areas
                .iter()
                .map(|a| AreaReport {
                    pool_start: format!("{:#x}", a.pool_start),
                    block_size: a.block_size,
                    blocks: a.blocks,
                    free_blocks: a.free_blocks,
                    head_blocks: a.head_blocks,
                    tail_blocks: a.tail_blocks,
                    mark_blocks: a.mark_blocks,
                    largest_free_blocks: a.largest_free_blocks,
                })
                .collect(),
            reported: ReportedFigures::from(snapshot),
            metrics: MetricsReport::new(snapshot, &m),
            warnings: Vec::new(),
        }
    }
}

impl From<&Snapshot> for ReportedFigures {
    fn from(s: &Snapshot) -> ReportedFigures {
        let r = &s.reported;
        let gc = r.gc;
        ReportedFigures {
            total: gc.map(|g| g.total),
            used: gc.map(|g| g.used),
            free: gc.map(|g| g.free),
            one_blocks: gc.map(|g| g.one_blocks),
            two_blocks: gc.map(|g| g.two_blocks),
            max_block: gc.map(|g| g.max_block),
            max_free: gc.map(|g| g.max_free),
            max_new_split: r.max_new_split,
            stack_used: r.stack.map(|s| s.used),
            stack_limit: r.stack.and_then(|s| s.limit),
            mem_total: r.mem.map(|m| m.total),
            mem_current: r.mem.map(|m| m.current),
            mem_peak: r.mem.map(|m| m.peak),
            mem_alloc: r.python.map(|p| p.mem_alloc),
            mem_free: r.python.map(|p| p.mem_free),
        }
    }
}

impl MetricsReport {
    fn new(snapshot: &Snapshot, m: &Metrics) -> MetricsReport {
        if !snapshot.has_layout() {
            let gc = snapshot.reported.gc;
            return MetricsReport {
                source: "summary",
                used_bytes: gc.map(|g| g.used),
                free_bytes: gc.map(|g| g.free),
                largest_free_bytes: None,
                fragmentation: None,
                free_runs: Vec::new(),
                types: BTreeMap::new(),
                type_counts: BTreeMap::new(),
            };
        }
        MetricsReport {
            source: "layout",
            used_bytes: Some(m.used_bytes),
            free_bytes: Some(m.free_bytes),
            largest_free_bytes: Some(m.largest_free_bytes),
            fragmentation: Some(m.fragmentation),
            free_runs: m
                .histogram
                .buckets
                .iter()
                .map(|b| {
                    let bs = u64::from(snapshot.block_size().unwrap_or(0));
                    let max_blocks = 2 * b.min_blocks - 1;
                    FreeRunsReport {
                        min_blocks: b.min_blocks,
                        max_blocks,
                        min_bytes: b.min_blocks as u64 * bs,
                        max_bytes: max_blocks as u64 * bs,
                        runs: b.runs,
                        blocks: b.blocks,
                    }
                })
                .collect(),
            types: m.types.iter().map(|t| (t.obj_type.name(), t.bytes)).collect(),
            type_counts: m.types.iter().map(|t| (t.obj_type.name(), t.allocations)).collect(),
        }
    }
}

/// A recording, as `inspect` and `export` describe it.
#[derive(Debug, Serialize)]
pub struct RecordingReport {
    pub file: String,
    /// Closed cleanly (index written); false after a crash or power loss.
    pub closed: bool,
    /// Where the file stops short, if it does: everything before was read.
    pub truncated: Option<FileSpot>,
    pub seconds: f64,
    pub segments: usize,
    pub resets: usize,
    pub gaps: usize,
    pub snapshots: usize,
    pub sources: BTreeMap<&'static str, usize>,
    pub events: usize,
    /// Heap dumps stored in the recording.
    pub dumps: usize,
    /// Snapshots the device skipped because the line had no room (its `skipped` events).
    pub skipped_snapshots: u64,
    /// `MemoryError`s the board printed.
    pub memory_errors: usize,
    /// Frames and dumps that arrived damaged during the capture.
    pub damaged: usize,
    /// Damaged stretches of the file that were skipped, and their bytes.
    pub damaged_records: usize,
    pub damaged_bytes: u64,
    /// Where the first damaged stretch starts, and what was wrong there.
    pub first_damage: Option<FileSpot>,
    /// Snapshots whose records are damaged or whose delta follows a damaged one.
    pub lost_snapshots: usize,
    /// The first of them: its number (from 1) and where its record starts.
    pub first_lost_snapshot: Option<LostSnapshot>,
    pub console_bytes: usize,
    pub meta: serde_json::Value,
}

/// A snapshot that cannot be rebuilt, by number (from 1) and the offset of its record.
#[derive(Debug, Serialize)]
pub struct LostSnapshot {
    pub snapshot: u32,
    pub offset: u64,
}

/// A place in the recording file and what was found there.
#[derive(Debug, Serialize)]
pub struct FileSpot {
    pub offset: u64,
    pub reason: String,
}

impl RecordingReport {
    pub fn new(file: &str, rec: &Recording) -> RecordingReport {
        use crate::entry::SegmentReason;

        let mut r = RecordingReport {
            file: file.to_string(),
            closed: rec.closed,
            truncated: rec.truncated.as_ref().map(|t| FileSpot { offset: t.offset, reason: t.reason.clone() }),
            seconds: crate::entry::seconds(rec.duration),
            segments: 0,
            resets: 0,
            gaps: 0,
            snapshots: 0,
            sources: BTreeMap::new(),
            events: 0,
            dumps: 0,
            skipped_snapshots: 0,
            damaged: 0,
            memory_errors: timeline(rec).filter(|r| r.kind == "memory_error").count(),
            damaged_records: rec.damage.stretches,
            damaged_bytes: rec.damage.bytes,
            first_damage: rec.damage.first.as_ref().map(|(offset, why)| FileSpot { offset: *offset, reason: why.clone() }),
            lost_snapshots: rec.lost_snapshots(),
            first_lost_snapshot: rec.first_lost_snapshot().map(|(ordinal, offset)| LostSnapshot { snapshot: ordinal + 1, offset }),
            console_bytes: 0,
            meta: serde_json::from_str(&rec.meta).unwrap_or(serde_json::Value::Null),
        };
        for e in &rec.entries {
            match e {
                Stored::Snapshot { source, .. } => {
                    r.snapshots += 1;
                    *r.sources.entry(source.name()).or_default() += 1;
                }
                Stored::Entry(Entry::Segment { reason, .. }) => {
                    r.segments += 1;
                    r.resets += usize::from(*reason == SegmentReason::Reset);
                }
                Stored::Entry(Entry::Gap { .. }) => r.gaps += 1,
                Stored::Entry(Entry::Event { event, .. }) => {
                    r.events += 1;
                    if let heapscope_protocol::wire::Event::Skipped { count } = event {
                        r.skipped_snapshots += u64::from(*count);
                    }
                }
                Stored::Entry(Entry::Corrupt { .. }) => r.damaged += 1,
                Stored::Entry(Entry::Console { bytes, .. }) => r.console_bytes += bytes.len(),
                Stored::Entry(_) => {}
                Stored::Dump { .. } => r.dumps += 1,
            }
        }
        r
    }
}

/// One row of a recording's timeline: a snapshot's figures, or an event, segment, gap, damage
/// or notice. Console text is not in it.
#[derive(Debug, Serialize)]
pub struct Row {
    pub time_s: f64,
    pub device_ms: Option<u32>,
    /// snapshot, event, segment, gap, damaged, notice, dump
    pub kind: &'static str,
    pub source: Option<&'static str>,
    pub used: Option<u64>,
    pub free: Option<u64>,
    pub largest_free: Option<u64>,
    pub fragmentation: Option<f64>,
    /// The event, segment reason, gap reason, ... as a person reads it.
    pub detail: String,
    /// An event's kind and fields, for programs (`detail` is its text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<serde_json::Value>,
}

/// A device event for programs: its kind and its fields.
pub fn event_json(event: &Event) -> serde_json::Value {
    match event {
        Event::ImportBegin { depth, name } => json!({"kind": "import_begin", "depth": depth, "name": name}),
        Event::ImportEnd { depth, name, ok, elapsed_us } => {
            json!({"kind": "import_end", "depth": depth, "name": name, "ok": ok, "elapsed_us": elapsed_us})
        }
        Event::Mark { label } => json!({"kind": "mark", "label": label}),
        Event::AreaAdded(a) => json!({"kind": "area_added", "pool_start": format!("{:#x}", a.pool_start), "blocks": a.blocks}),
        Event::AreaRemoved { pool_start } => json!({"kind": "area_removed", "pool_start": format!("{pool_start:#x}")}),
        Event::StreamStart { period_ms } => json!({"kind": "stream_start", "period_ms": period_ms}),
        Event::StreamStop => json!({"kind": "stream_stop"}),
        Event::Skipped { count } => json!({"kind": "skipped", "count": count}),
    }
}

/// The timeline of a recording, from its entries (snapshots by their stored figures). A
/// `MemoryError` the board printed on its console is in it too.
pub fn timeline(rec: &Recording) -> impl Iterator<Item = Row> + '_ {
    let mut console_line = Vec::new();
    rec.entries.iter().flat_map(move |e| {
        let time_s = crate::entry::seconds(e.at());
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
            event: None,
        };
        let one = |r| vec![r];
        match e {
            Stored::Snapshot { device_ms, source, summary, .. } => one(Row {
                time_s,
                device_ms: *device_ms,
                kind: "snapshot",
                source: Some(source.name()),
                used: Some(summary.used),
                free: Some(summary.free),
                largest_free: Some(summary.largest_free),
                fragmentation: Some(summary.fragmentation),
                detail: String::new(),
                event: None,
            }),
            Stored::Entry(Entry::Event { device_ms, event, .. }) => {
                one(Row { event: Some(event_json(event)), ..row("event", *device_ms, crate::human::event(event)) })
            }
            Stored::Entry(Entry::Segment { reason, detail, .. }) => one(row("segment", None, format!("{}: {detail}", reason.name()))),
            Stored::Entry(Entry::Gap { reason, .. }) => one(row("gap", None, reason.clone())),
            Stored::Entry(Entry::Corrupt { detail, .. }) => one(row("damaged", None, detail.clone())),
            Stored::Entry(Entry::Notice { text, .. }) => one(row("notice", None, text.clone())),
            Stored::Entry(Entry::Console { bytes, .. }) => {
                // Lines may arrive split over several console entries.
                let mut out = Vec::new();
                for &b in bytes {
                    if b == b'\n' {
                        let line = String::from_utf8_lossy(&console_line);
                        if line.contains("memory allocation failed") {
                            out.push(row("memory_error", None, line.trim().to_string()));
                        }
                        console_line.clear();
                    } else if console_line.len() < 4096 {
                        console_line.push(b);
                    }
                }
                out
            }
            Stored::Dump { ordinal, bytes, .. } => one(row("dump", None, format!("heap dump {}, {} B", ordinal + 1, crate::human::thousands(*bytes)))),
            Stored::Entry(Entry::Snapshot { .. }) => Vec::new(),
        }
    })
}
