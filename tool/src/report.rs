//! The JSON shape of a snapshot report, shared by every command that prints heap data.

use std::collections::BTreeMap;

use heapscope_protocol::metrics::{self, Metrics};
use heapscope_protocol::text::Dump;
use heapscope_protocol::Snapshot;
use serde::Serialize;

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
    /// Free runs by length: `[min_blocks, runs, blocks]` per power-of-two bucket.
    pub free_runs: Vec<[usize; 3]>,
    /// Bytes by object type.
    pub types: BTreeMap<&'static str, u64>,
    /// Allocation counts by object type.
    pub type_counts: BTreeMap<&'static str, usize>,
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
            free_runs: m.histogram.buckets.iter().map(|b| [b.min_blocks, b.runs, b.blocks]).collect(),
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
    pub truncated: Option<TruncationReport>,
    pub seconds: f64,
    pub segments: usize,
    pub resets: usize,
    pub gaps: usize,
    pub snapshots: usize,
    pub sources: BTreeMap<&'static str, usize>,
    pub events: usize,
    /// Snapshots the device skipped because the line had no room (its `skipped` events).
    pub skipped_snapshots: u64,
    pub damaged: usize,
    pub console_bytes: usize,
    pub meta: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct TruncationReport {
    pub offset: u64,
    pub reason: String,
}

impl RecordingReport {
    pub fn new(file: &str, rec: &crate::recording::Recording) -> RecordingReport {
        use crate::entry::{Entry, SegmentReason};
        use crate::recording::Stored;
        let mut r = RecordingReport {
            file: file.to_string(),
            closed: rec.closed,
            truncated: rec.truncated.as_ref().map(|t| TruncationReport { offset: t.offset, reason: t.reason.clone() }),
            seconds: rec.entries.last().map_or(0.0, |e| e.at() as f64 / 1e6),
            segments: 0,
            resets: 0,
            gaps: 0,
            snapshots: 0,
            sources: BTreeMap::new(),
            events: 0,
            skipped_snapshots: 0,
            damaged: 0,
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
            }
        }
        r
    }
}
