//! The 1-hour recording of the recording benchmarks, written as a live session writes it: a
//! 4 MB heap (262,144 blocks of 16 B) polled at 10 Hz for an hour, about 200 blocks changing
//! between snapshots (100 one-block objects each moving to a free neighbour), every snapshot
//! through the tool's own `RecordingWriter` and into a live `History` reading it back, as
//! `attach` does.

use std::path::Path;
use std::time::{Duration, Instant};

use heapscope::entry::{Entry, SegmentReason, Source};
use heapscope::recording::{RecordingWriter, Snapshots, Summary};
use heapscope::tui::history::History;
use heapscope_protocol::model::{Area, BlockKind};
use heapscope_protocol::wire::session;
use heapscope_protocol::wire::{encode_frame, Body, Frame};
use heapscope_protocol::{synth, Snapshot};

pub const BLOCKS: usize = 262_144;
pub const PERIOD_US: u64 = 100_000;
/// One hour at 10 Hz.
pub const HOUR: usize = 36_000;
/// Objects moved per snapshot: each move changes two blocks.
pub const MOVES: usize = 100;

/// The next snapshot: `moves` one-block objects each moved to a free neighbour (the heads keep
/// their order, so the type list stays as it is).
pub fn step(s: &Snapshot, rng: &mut synth::Rng, moves: usize) -> Snapshot {
    let a = &s.areas[0];
    let mut kinds = a.kinds().clone();
    let n = kinds.len();
    let mut done = 0;
    while done < moves {
        let b = rng.below(n as u64 - 2) as usize + 1;
        if kinds.get(b) != BlockKind::Head || kinds.get(b + 1) == BlockKind::Tail {
            continue;
        }
        let to = if rng.below(2) == 0 { b - 1 } else { b + 1 };
        let after = to + 1;
        if kinds.get(to) == BlockKind::Free && (after >= n || after == b || kinds.get(after) != BlockKind::Tail) {
            kinds.set(b, BlockKind::Free);
            kinds.set(to, BlockKind::Head);
            done += 1;
        }
    }
    let area = Area::new(a.pool_start(), a.block_size(), kinds, a.types().to_vec()).expect("moves keep one type per head");
    Snapshot { areas: vec![area], reported: s.reported.clone() }
}

/// What writing the recording measured.
pub struct Written {
    pub snapshots: usize,
    pub file_bytes: u64,
    /// Bytes the line would have carried for the same snapshots: a keyframe, then a delta
    /// against the previous snapshot each, as framed on the wire.
    pub wire_bytes: u64,
    /// Time of each `append` (encoding, writing, and syncing at keyframes).
    pub appends: Vec<Duration>,
    pub keyframe_appends: Vec<Duration>,
    pub syncs: u32,
    pub sync_time: Duration,
    /// Resident memory of the process before and after, and its peak (kB, from /proc).
    pub rss_before_kb: u64,
    pub rss_after_kb: u64,
    /// The in-memory size of one snapshot (table and types): what keeping each costs.
    pub snapshot_bytes: usize,
}

/// Resident and peak resident memory of this process in kB (Linux).
pub fn rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Writes `snapshots` snapshots to `path` as a live session does, reading them back through a
/// live history as it goes (one snapshot in ten, as a user stepping would).
pub fn write(path: &Path, snapshots: usize) -> Written {
    let mut rng = synth::Rng::new(0x5eed);
    let mut heap = synth::snapshot(7, 16, 1, BLOCKS);
    let snapshot_bytes = heap.areas[0].kinds().atb().len() + std::mem::size_of_val(heap.areas[0].types());
    let (rss_before_kb, _) = rss_kb();
    let mut writer = RecordingWriter::create(path, "{\"bench\":\"one hour at 10 Hz of a 4 MB heap\"}").expect("create the recording");
    let mut history = History::recorded(Snapshots::follow(path).expect("follow the recording"));
    let start = Entry::Segment { at: 0, reason: SegmentReason::Start, detail: "benchmark".into() };
    writer.append(&start).unwrap();
    history.push(start);
    let mut wire_bytes = 0u64;
    let mut appends = Vec::with_capacity(snapshots);
    let mut keyframe_appends = Vec::new();
    let mut previous: Option<Snapshot> = None;
    for i in 0..snapshots {
        let at = (i as u64 + 1) * PERIOD_US;
        let seq = (i & 0xFFFF) as u16;
        let body = match &previous {
            Some(p) => Body::Delta(session::delta(p, seq.wrapping_sub(1), &heap, session::DEFAULT_CHUNK_BLOCKS)),
            None => Body::Keyframe(session::keyframe(&heap)),
        };
        wire_bytes += encode_frame(&Frame { seq, device_ms: at as u32 / 1000, body }).len() as u64;
        let e = Entry::Snapshot { at, device_ms: Some((at / 1000) as u32), source: Source::Stream, snapshot: Box::new(heap.clone()) };
        let t = Instant::now();
        let summary = Summary::of(&heap);
        let written = writer.append_with(&e, Some(summary)).expect("append");
        let took = t.elapsed();
        appends.push(took);
        if written.is_some_and(|w| w.keyframe) {
            keyframe_appends.push(took);
        }
        history.take(e, Some(summary), written);
        if i % 10 == 0 {
            assert!(history.snapshot(i / 2).is_some(), "snapshot {} reads back", i / 2);
        }
        let next = step(&heap, &mut rng, MOVES);
        previous = Some(std::mem::replace(&mut heap, next));
    }
    let (syncs, sync_time) = (writer.syncs, writer.sync_time);
    let file_bytes = writer.finish(snapshots as u64 * PERIOD_US + PERIOD_US).expect("finish");
    let (rss_after_kb, _) = rss_kb();
    drop(history);
    Written { snapshots, file_bytes, wire_bytes, appends, keyframe_appends, syncs, sync_time, rss_before_kb, rss_after_kb, snapshot_bytes }
}

/// A stream recording of 591 snapshots of a 16 KB heap with console text and events, as the
/// firmware module's stream gives them; returns its bytes.
pub fn stream_recording(path: &Path) -> Vec<u8> {
    use heapscope_protocol::wire::Event;
    let mut writer = RecordingWriter::create(path, "{}").unwrap();
    let mut heap = synth::snapshot(5, 16, 1, 1024);
    let mut rng = synth::Rng::new(3);
    writer.append(&Entry::Segment { at: 0, reason: SegmentReason::Start, detail: "stream".into() }).unwrap();
    for i in 0..591u64 {
        let at = i * 100_000 + 1;
        writer.append(&Entry::Snapshot { at, device_ms: Some(i as u32 * 100), source: Source::Stream, snapshot: Box::new(heap.clone()) }).unwrap();
        if i % 10 == 0 {
            writer.append(&Entry::Console { at: at + 1, bytes: format!("loop {i}\r\n").into_bytes() }).unwrap();
        }
        if i % 50 == 0 {
            writer.append(&Entry::Event { at: at + 2, device_ms: None, event: Event::Mark { label: format!("mark {i}") } }).unwrap();
        }
        heap = step(&heap, &mut rng, 4);
    }
    writer.finish(591 * 100_000).unwrap();
    let bytes = std::fs::read(path).unwrap();
    let _ = std::fs::remove_file(path);
    bytes
}
