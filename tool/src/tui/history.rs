//! Everything the UI has seen, in order: from a live capture or a recording.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;

use heapscope_protocol::wire::Event;
use heapscope_protocol::Snapshot;

use crate::entry::{Entry, HostMicros, SegmentReason, Source};
use crate::recording::{Recording, Snapshots, Stored, Summary, Written};

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
    /// An allocation failed (`MemoryError` in the console).
    MemoryError,
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
            MarkerKind::MemoryError => '!',
        }
    }
}

/// A `MemoryError`: the allocation that failed and the first snapshot after it (the heap as the
/// failure left it), if one came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    pub at: HostMicros,
    pub bytes: u64,
    /// Index of the first snapshot after the failure (`== len()` until one arrives).
    pub snapshot: usize,
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
    /// Every snapshot in memory: for short sessions without a recording (tests).
    Memory(Vec<Arc<Snapshot>>),
    /// In a recording (replayed, or being written by a live session) and decoded on demand;
    /// the last few used are kept.
    Recorded { snapshots: Box<Snapshots>, cache: RefCell<VecDeque<(usize, Arc<Snapshot>)>> },
}

/// Decoded snapshots kept at hand: what is on screen, the one before it (the diff) and a few
/// steps around them.
const CACHED: usize = 8;

pub struct History {
    pub snapshots: Vec<SnapInfo>,
    pub markers: Vec<Marker>,
    /// Every `MemoryError` seen, in order.
    pub failures: Vec<Failure>,
    /// Console text as lines with the time each began; the last may be unfinished.
    pub console: Vec<(HostMicros, String)>,
    /// Events with their time, for the imports view.
    pub entries_for_imports: Vec<Entry>,
    store: Store,
    last_areas: Vec<(u64, usize)>,
    pub damaged: usize,
    pub notices: Vec<String>,
    /// A replayed recording's heap dumps: when each was taken, and its record's place.
    pub dumps: Vec<(HostMicros, u64)>,
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
            failures: Vec::new(),
            console: vec![(0, String::new())],
            entries_for_imports: Vec::new(),
            store: Store::Memory(Vec::new()),
            last_areas: Vec::new(),
            damaged: 0,
            notices: Vec::new(),
            dumps: Vec::new(),
        }
    }

    /// A live history whose snapshots go to a recording as they arrive (see [`History::take`]),
    /// read back from it when they are shown again.
    pub fn recorded(snapshots: Snapshots) -> History {
        History { store: Store::Recorded { snapshots: Box::new(snapshots), cache: RefCell::new(VecDeque::new()) }, ..History::new() }
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
                Stored::Dump { at, ordinal, .. } => {
                    if let Some(&offset) = recording.dump_offsets().get(*ordinal as usize) {
                        h.dumps.push((*at, offset));
                    }
                }
            }
        }
        h.damaged += recording.damage.stretches;
        h.store = Store::Recorded { snapshots: Box::new(recording.into_snapshots()), cache: RefCell::new(VecDeque::new()) };
        h
    }

    /// The last heap dump taken at or before `at` (an index into `dumps`).
    pub fn dump_before(&self, at: HostMicros) -> Option<usize> {
        self.dumps.iter().rposition(|&(t, _)| t <= at)
    }

    /// Reads heap dump `i` from the recording.
    pub fn read_dump(&self, i: usize) -> Result<heapscope_objects::HeapDump, String> {
        let &(_, offset) = self.dumps.get(i).ok_or("no such dump")?;
        match &self.store {
            Store::Recorded { snapshots, .. } => snapshots.dump_at(offset),
            Store::Memory(_) => Err("no recording to read the dump from".into()),
        }
    }

    /// Takes one live entry.
    pub fn push(&mut self, e: Entry) {
        self.take(e, None, None);
    }

    /// Takes one live entry; for a snapshot, with its summary if already computed and where the
    /// recording put it.
    pub fn take(&mut self, e: Entry, summary: Option<Summary>, written: Option<Written>) {
        match e {
            Entry::Snapshot { at, device_ms, source, snapshot } => {
                let areas: Vec<(u64, usize)> = snapshot.areas.iter().map(|a| (a.pool_start(), a.blocks())).collect();
                if !self.last_areas.is_empty() && areas != self.last_areas && !snapshot.areas.is_empty() {
                    self.markers.push(Marker { at, kind: MarkerKind::Growth, label: crate::human::count(areas.len(), "area") });
                }
                if !areas.is_empty() {
                    self.last_areas = areas;
                }
                let ordinal = self.snapshots.len();
                self.snapshots.push(SnapInfo { at, device_ms, source, summary: summary.unwrap_or_else(|| Summary::of(&snapshot)) });
                if needs_snapshot_for_imports(&self.entries_for_imports) {
                    self.entries_for_imports.push(Entry::Snapshot { at, device_ms, source, snapshot: snapshot.clone() });
                }
                match &mut self.store {
                    Store::Recorded { snapshots, cache } => {
                        // One the recording did not take can be shown only while it is cached.
                        snapshots.push(written.unwrap_or(Written::NOWHERE));
                        remember(&mut cache.borrow_mut(), ordinal, Arc::new(*snapshot));
                    }
                    Store::Memory(v) => v.push(Arc::new(*snapshot)),
                }
            }
            other => self.note(&other),
        }
    }

    fn note(&mut self, e: &Entry) {
        match e {
            Entry::Console { at, bytes } => self.console_text(*at, bytes),
            Entry::Event { at, event, .. } => {
                let kind = match event {
                    Event::ImportBegin { .. } => MarkerKind::Import,
                    Event::ImportEnd { .. } => {
                        self.entries_for_imports.push(e.clone());
                        return;
                    }
                    Event::Mark { .. } if let Some(bytes) = crate::capture::memory_error_of(event) => {
                        self.failures.push(Failure { at: *at, bytes, snapshot: self.snapshots.len() });
                        MarkerKind::MemoryError
                    }
                    Event::Mark { .. } => MarkerKind::Mark,
                    Event::AreaAdded(_) | Event::AreaRemoved { .. } => MarkerKind::Growth,
                    Event::Skipped { .. } => MarkerKind::Skipped,
                    Event::StreamStart { .. } | Event::StreamStop => return,
                };
                if kind == MarkerKind::Import {
                    self.entries_for_imports.push(e.clone());
                }
                self.markers.push(Marker { at: *at, kind, label: crate::human::event(event) });
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
            Store::Recorded { snapshots, cache } => {
                if let Some((_, s)) = cache.borrow().iter().find(|(j, _)| *j == i) {
                    return Some(s.clone());
                }
                let s = Arc::new(snapshots.get(i as u32)?);
                remember(&mut cache.borrow_mut(), i, s.clone());
                Some(s)
            }
        }
    }

    /// The failure whose aftermath snapshot `i` shows.
    pub fn failure_at(&self, i: usize) -> Option<&Failure> {
        self.failures.iter().find(|f| f.snapshot == i)
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

fn remember(cache: &mut VecDeque<(usize, Arc<Snapshot>)>, i: usize, s: Arc<Snapshot>) {
    cache.retain(|(j, _)| *j != i);
    cache.push_back((i, s));
    if cache.len() > CACHED {
        cache.pop_front();
    }
}

/// An import event waits for the snapshot after it.
fn needs_snapshot_for_imports(entries: &[Entry]) -> bool {
    matches!(entries.last(), Some(Entry::Event { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::RecordingWriter;
    use heapscope_protocol::synth;

    #[test]
    fn a_live_history_keeps_few_snapshots_and_reads_the_rest_back_from_its_recording() {
        let path = std::env::temp_dir().join(format!("heapscope-history-{}.hsr", std::process::id()));
        let mut writer = RecordingWriter::create(&path, "{}").unwrap();
        let mut history = History::recorded(Snapshots::follow(&path).unwrap());
        let mut heap = synth::snapshot(3, 16, 1, 4096);
        let mut shown = Vec::new();
        for i in 0..40u64 {
            let e = Entry::Snapshot { at: i, device_ms: None, source: Source::Poll, snapshot: Box::new(heap.clone()) };
            let written = writer.append(&e).unwrap();
            history.take(e, None, written);
            shown.push(heap.clone());
            heap = synth::mutate(&heap, i, 4);
        }
        let Store::Recorded { cache, .. } = &history.store else { panic!("recorded") };
        assert_eq!(cache.borrow().len(), CACHED, "only a few decoded snapshots are held");
        for i in [0, 39, 17, 16, 3] {
            assert!(history.snapshot(i).as_deref() == Some(&shown[i]), "snapshot {i} read back");
        }
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_replay_shows_the_last_dump_at_or_before_the_cursor_in_the_objects_view() {
        use crate::tui::app::{App, View};
        let path = std::env::temp_dir().join(format!("heapscope-history-dumps-{}.hsr", std::process::id()));
        let mut writer = RecordingWriter::create(&path, "{}").unwrap();
        let heap = synth::snapshot(3, 16, 1, 4096);
        let small = heapscope_objects::synth::example();
        let large = heapscope_objects::synth::program_heap(7, 4096, 50, 300);
        for i in 0..10u64 {
            writer.append(&Entry::Snapshot { at: i * 10, device_ms: None, source: Source::Poll, snapshot: Box::new(heap.clone()) }).unwrap();
            match i {
                3 => writer.append_dump(i * 10, &small).unwrap(),
                6 => writer.append_dump(i * 10 + 1, &large).unwrap(),
                _ => 0,
            };
        }
        writer.finish(100).unwrap();
        let history = History::from_recording(Recording::open(&path).unwrap());
        assert_eq!(history.dumps.len(), 2);
        let mut app = App::new(history, "test", false);
        app.view = View::Objects;
        let objects_at = |app: &mut App, cursor: usize| {
            app.cursor = Some(cursor);
            app.tick(std::time::Instant::now());
            app.objects.as_ref().map(|o| o.analysis.objects.len())
        };
        let count = |d: &heapscope_objects::HeapDump| heapscope_objects::Analysis::new(d).objects.len();
        assert_ne!(count(&small), count(&large));
        assert_eq!(objects_at(&mut app, 2), None, "no dump before the first");
        assert_eq!(objects_at(&mut app, 3), Some(count(&small)));
        assert_eq!(objects_at(&mut app, 6), Some(count(&small)), "the second was taken after this snapshot");
        assert_eq!(objects_at(&mut app, 9), Some(count(&large)));
        assert_eq!(objects_at(&mut app, 4), Some(count(&small)), "stepping back");
        let _ = std::fs::remove_file(&path);
    }
}
