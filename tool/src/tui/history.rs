//! Everything the UI has seen, in order: from a live capture or a recording.

use std::cell::RefCell;
use std::sync::Arc;

use heapscope_protocol::wire::Event;
use heapscope_protocol::Snapshot;

use crate::entry::{Entry, HostMicros, SegmentReason, Source};
use crate::recording::{Recording, Stored, Summary};

/// A point of interest on the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    pub at: HostMicros,
    pub kind: MarkerKind,
    pub label: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkerKind {
    Import,
    Mark,
    Reset,
    Gap,
    /// The heap gained or lost an area.
    Growth,
    /// The device skipped snapshots: the line had no room for them.
    Skipped,
}

impl MarkerKind {
    pub fn symbol(self) -> char {
        match self {
            MarkerKind::Import => 'i',
            MarkerKind::Mark => 'm',
            MarkerKind::Reset => 'R',
            MarkerKind::Gap => 'G',
            MarkerKind::Growth => '+',
            MarkerKind::Skipped => 's',
        }
    }
}

/// One snapshot's place in the history.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SnapInfo {
    pub at: HostMicros,
    pub device_ms: Option<u32>,
    pub source: Source,
    pub summary: Summary,
}

enum Store {
    Memory(Vec<Arc<Snapshot>>),
    /// Decoded on demand; the last few are cached.
    File { recording: Box<Recording>, cache: RefCell<Vec<(usize, Arc<Snapshot>)>> },
}

pub struct History {
    pub snapshots: Vec<SnapInfo>,
    pub markers: Vec<Marker>,
    /// Console text as lines with the time each began; the last may be unfinished.
    pub console: Vec<(HostMicros, String)>,
    /// Events with their time, for the imports view.
    pub entries_for_imports: Vec<Entry>,
    store: Store,
    last_areas: Vec<(u64, usize)>,
    pub damaged: usize,
    pub notices: Vec<String>,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

impl History {
    pub fn new() -> History {
        History {
            snapshots: Vec::new(),
            markers: Vec::new(),
            console: vec![(0, String::new())],
            entries_for_imports: Vec::new(),
            store: Store::Memory(Vec::new()),
            last_areas: Vec::new(),
            damaged: 0,
            notices: Vec::new(),
        }
    }

    pub fn from_recording(recording: Recording) -> History {
        let mut h = History::new();
        for stored in &recording.entries {
            match stored {
                Stored::Snapshot { at, device_ms, source, summary, ordinal } => {
                    h.snapshots.push(SnapInfo { at: *at, device_ms: *device_ms, source: *source, summary: *summary });
                    // Imports pair events with the snapshots after them.
                    if needs_snapshot_for_imports(&h.entries_for_imports) {
                        if let Some(s) = recording.snapshot(*ordinal) {
                            h.entries_for_imports.push(Entry::Snapshot { at: *at, device_ms: *device_ms, source: *source, snapshot: Box::new(s) });
                        }
                    }
                }
                Stored::Entry(e) => h.note(e),
            }
        }
        h.store = Store::File { recording: Box::new(recording), cache: RefCell::new(Vec::new()) };
        h
    }

    /// Takes one live entry.
    pub fn push(&mut self, e: Entry) {
        match e {
            Entry::Snapshot { at, device_ms, source, snapshot } => {
                let areas: Vec<(u64, usize)> = snapshot.areas.iter().map(|a| (a.pool_start(), a.blocks())).collect();
                if !self.last_areas.is_empty() && areas != self.last_areas && !snapshot.areas.is_empty() {
                    self.markers.push(Marker { at, kind: MarkerKind::Growth, label: format!("{} areas", areas.len()) });
                }
                if !areas.is_empty() {
                    self.last_areas = areas;
                }
                self.snapshots.push(SnapInfo { at, device_ms, source, summary: Summary::of(&snapshot) });
                if needs_snapshot_for_imports(&self.entries_for_imports) {
                    self.entries_for_imports.push(Entry::Snapshot { at, device_ms, source, snapshot: snapshot.clone() });
                }
                if let Store::Memory(v) = &mut self.store {
                    v.push(Arc::new(*snapshot));
                }
            }
            other => self.note(&other),
        }
    }

    fn note(&mut self, e: &Entry) {
        match e {
            Entry::Console { at, bytes } => self.console_text(*at, bytes),
            Entry::Event { at, event, .. } => {
                let (kind, label) = match event {
                    Event::ImportBegin { name, .. } => (MarkerKind::Import, format!("import {name}")),
                    Event::ImportEnd { .. } => {
                        self.entries_for_imports.push(e.clone());
                        return;
                    }
                    Event::Mark { label } => (MarkerKind::Mark, label.clone()),
                    Event::AreaAdded(a) => (MarkerKind::Growth, format!("area +{:#x}", a.pool_start)),
                    Event::AreaRemoved { pool_start } => (MarkerKind::Growth, format!("area -{pool_start:#x}")),
                    Event::Skipped { count } => (MarkerKind::Skipped, format!("{count} snapshots skipped (line budget)")),
                    Event::StreamStart { .. } | Event::StreamStop => return,
                };
                if kind == MarkerKind::Import {
                    self.entries_for_imports.push(e.clone());
                }
                self.markers.push(Marker { at: *at, kind, label });
            }
            Entry::Segment { at, reason, detail } if *reason != SegmentReason::Start => {
                let kind = if *reason == SegmentReason::Reset { MarkerKind::Reset } else { MarkerKind::Gap };
                self.markers.push(Marker { at: *at, kind, label: detail.clone() });
            }
            Entry::Gap { at, reason } => self.markers.push(Marker { at: *at, kind: MarkerKind::Gap, label: reason.clone() }),
            Entry::Corrupt { .. } => self.damaged += 1,
            Entry::Notice { text, .. } => self.notices.push(text.clone()),
            _ => {}
        }
    }

    fn console_text(&mut self, at: HostMicros, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        for ch in text.chars() {
            match ch {
                '\n' => self.console.push((at, String::new())),
                '\r' => {}
                c if c.is_control() && c != '\t' => {}
                c => {
                    let line = self.console.last_mut().expect("always a line");
                    if line.1.is_empty() {
                        line.0 = at;
                    }
                    line.1.push(c);
                }
            }
        }
        // Scrollback is bounded.
        if self.console.len() > 20_000 {
            self.console.drain(..5_000);
        }
    }

    pub fn len(&self) -> usize {
        self.snapshots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty()
    }

    pub fn snapshot(&self, i: usize) -> Option<Arc<Snapshot>> {
        match &self.store {
            Store::Memory(v) => v.get(i).cloned(),
            Store::File { recording, cache } => {
                if let Some((_, s)) = cache.borrow().iter().find(|(j, _)| *j == i) {
                    return Some(s.clone());
                }
                let s = Arc::new(recording.snapshot(i as u32)?);
                let mut c = cache.borrow_mut();
                c.push((i, s.clone()));
                if c.len() > 4 {
                    c.remove(0);
                }
                Some(s)
            }
        }
    }

    /// The snapshot closest in time to `at`.
    pub fn nearest(&self, at: HostMicros) -> Option<usize> {
        if self.snapshots.is_empty() {
            return None;
        }
        let i = self.snapshots.partition_point(|s| s.at < at);
        let candidates = [i.saturating_sub(1), i.min(self.snapshots.len() - 1)];
        candidates.into_iter().min_by_key(|&j| self.snapshots[j].at.abs_diff(at))
    }
}

/// An import event waits for the snapshot after it.
fn needs_snapshot_for_imports(entries: &[Entry]) -> bool {
    matches!(entries.last(), Some(Entry::Event { .. }))
}
