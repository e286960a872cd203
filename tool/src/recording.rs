//! Recordings: a capture's entries in an append-only file that survives a crash.
//!
//! ```text
//! file    = header record*
//! header  = "HSCOPE" 00 version(=1)                      8 bytes
//! record  = len:u32le body:len bytes crc:u32le             CRC-32 of body
//! body    = kind:u8 at_us:varint payload
//! ```
//!
//! | kind | payload |
//! |---|---|
//! | 1 meta | JSON: tool version, port, mode, start time |
//! | 2 segment | reason:u8 (1 start, 2 reset, 3 reattach), detail:str |
//! | 3 snapshot | source:u8 (1 stream, 2 passive, 3 poll), device_ms+1:varint (0 = none), a wire-format frame body (SPEC.md): keyframe, or delta against the previous snapshot record |
//! | 4 event | device_ms+1:varint, a wire-format event frame body |
//! | 5 console | the bytes |
//! | 6 gap | reason:str |
//! | 7 corrupt | detail:str |
//! | 8 notice | text:str |
//! | 9 index | count:varint, then per keyframe: ordinal:varint, at_us:varint, file offset:varint |
//! | 10 end | index record offset: u64le |
//!
//! Each record is written whole and flushed: a recording cut off by `kill -9` or power loss
//! reads back to its last complete record. The index and end records are written when the
//! recording is closed; without them a reader rebuilds the index by reading the records.
//! Strings are a varint length and UTF-8 bytes.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use heapscope_protocol::metrics;
use heapscope_protocol::wire::codec::{crc32, DecodeError, Reader, Writer};
use heapscope_protocol::wire::session::{self, Session, Update};
use heapscope_protocol::wire::{decode_body, encode_body, Body, Frame};
use heapscope_protocol::Snapshot;

use crate::entry::{Entry, HostMicros, SegmentReason, Source};

pub const MAGIC: &[u8; 6] = b"HSCOPE";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 8;
/// A keyframe at least every this many snapshots, so a jump decodes few deltas.
pub const KEYFRAME_EVERY: u32 = 32;
/// Largest record body a reader accepts.
const MAX_RECORD: usize = 64 << 20;

mod kind {
    pub const META: u8 = 1;
    pub const SEGMENT: u8 = 2;
    pub const SNAPSHOT: u8 = 3;
    pub const EVENT: u8 = 4;
    pub const CONSOLE: u8 = 5;
    pub const GAP: u8 = 6;
    pub const CORRUPT: u8 = 7;
    pub const NOTICE: u8 = 8;
    pub const INDEX: u8 = 9;
    pub const END: u8 = 10;
}

/// Whether bytes start like a recording.
pub fn is_recording(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN && &bytes[..6] == MAGIC
}

/// Appends entries to a recording file.
pub struct RecordingWriter {
    out: BufWriter<File>,
    offset: u64,
    snapshots: u32,
    since_keyframe: u32,
    previous: Option<Snapshot>,
    /// (ordinal, at, offset) of each keyframe record.
    keyframes: Vec<(u32, HostMicros, u64)>,
    bytes_snapshots: u64,
}

impl RecordingWriter {
    pub fn create(path: &Path, meta_json: &str) -> io::Result<RecordingWriter> {
        let file = File::create(path)?;
        let mut w = RecordingWriter {
            out: BufWriter::new(file),
            offset: 0,
            snapshots: 0,
            since_keyframe: 0,
            previous: None,
            keyframes: Vec::new(),
            bytes_snapshots: 0,
        };
        let mut header = MAGIC.to_vec();
        header.extend([0, VERSION]);
        w.out.write_all(&header)?;
        w.offset = header.len() as u64;
        let mut body = Writer::default();
        body.u8(kind::META);
        body.varint(0);
        body.bytes(meta_json.as_bytes());
        w.record(&body.buf)?;
        Ok(w)
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.offset
    }

    pub fn is_empty(&self) -> bool {
        self.offset == 0
    }

    pub fn snapshots(&self) -> u32 {
        self.snapshots
    }

    fn record(&mut self, body: &[u8]) -> io::Result<u64> {
        let at = self.offset;
        self.out.write_all(&(body.len() as u32).to_le_bytes())?;
        self.out.write_all(body)?;
        self.out.write_all(&crc32(body).to_le_bytes())?;
        // Whole records reach the file at once: what is written survives a crash.
        self.out.flush()?;
        self.offset += body.len() as u64 + 8;
        Ok(at)
    }

    pub fn append(&mut self, entry: &Entry) -> io::Result<()> {
        let mut w = Writer::default();
        match entry {
            Entry::Segment { at, reason, detail } => {
                w.u8(kind::SEGMENT);
                w.varint(*at);
                w.u8(*reason as u8);
                w.str(detail);
                if *reason != SegmentReason::Start {
                    // A new segment starts from a keyframe: the device's state may be new.
                    self.previous = None;
                }
            }
            Entry::Snapshot { at, device_ms, source, snapshot } => {
                let seq = (self.snapshots & 0xFFFF) as u16;
                let key = Frame { seq, device_ms: device_ms.unwrap_or(0), body: Body::Keyframe(session::keyframe(snapshot)) };
                let key_body = encode_body(&key);
                let chosen = match &self.previous {
                    Some(prev) if self.since_keyframe + 1 < KEYFRAME_EVERY && prev.block_size() == snapshot.block_size() => {
                        let base_seq = ((self.snapshots - 1) & 0xFFFF) as u16;
                        let delta = session::delta(prev, base_seq, snapshot, session::DEFAULT_CHUNK_BLOCKS);
                        let delta_body = encode_body(&Frame { seq, device_ms: key.device_ms, body: Body::Delta(delta) });
                        (delta_body.len() < key_body.len()).then_some(delta_body)
                    }
                    _ => None,
                };
                let is_keyframe = chosen.is_none();
                let frame = chosen.unwrap_or(key_body);
                w.u8(kind::SNAPSHOT);
                w.varint(*at);
                w.u8(*source as u8);
                w.varint(device_ms.map_or(0, |ms| u64::from(ms) + 1));
                w.bytes(&frame);
                let offset = self.record(&w.buf)?;
                self.bytes_snapshots += w.buf.len() as u64 + 8;
                if is_keyframe {
                    self.keyframes.push((self.snapshots, *at, offset));
                    self.since_keyframe = 0;
                } else {
                    self.since_keyframe += 1;
                }
                self.snapshots += 1;
                self.previous = Some((**snapshot).clone());
                return Ok(());
            }
            Entry::Event { at, device_ms, event } => {
                w.u8(kind::EVENT);
                w.varint(*at);
                w.varint(device_ms.map_or(0, |ms| u64::from(ms) + 1));
                w.bytes(&encode_body(&Frame { seq: 0, device_ms: device_ms.unwrap_or(0), body: Body::Event(event.clone()) }));
            }
            Entry::Console { at, bytes } => {
                w.u8(kind::CONSOLE);
                w.varint(*at);
                w.bytes(bytes);
            }
            Entry::Gap { at, reason } => {
                w.u8(kind::GAP);
                w.varint(*at);
                w.str(reason);
                self.previous = None;
            }
            Entry::Corrupt { at, detail } => {
                w.u8(kind::CORRUPT);
                w.varint(*at);
                w.str(detail);
            }
            Entry::Notice { at, text } => {
                w.u8(kind::NOTICE);
                w.varint(*at);
                w.str(text);
            }
        }
        self.record(&w.buf)?;
        Ok(())
    }

    /// Writes the index and the end record. A recording that never gets here is still readable.
    pub fn finish(mut self, at: HostMicros) -> io::Result<u64> {
        let mut w = Writer::default();
        w.u8(kind::INDEX);
        w.varint(at);
        w.varint(self.keyframes.len() as u64);
        for &(ordinal, t, offset) in &self.keyframes {
            w.varint(u64::from(ordinal));
            w.varint(t);
            w.varint(offset);
        }
        let index_at = self.record(&w.buf)?;
        let mut w = Writer::default();
        w.u8(kind::END);
        w.varint(at);
        w.bytes(&index_at.to_le_bytes());
        self.record(&w.buf)?;
        self.out.get_ref().sync_all()?;
        Ok(self.offset)
    }
}

/// Headline figures of one snapshot, computed once when a recording is read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub total: u64,
    pub used: u64,
    pub free: u64,
    pub largest_free: u64,
    pub fragmentation: f64,
    pub blocks: usize,
    pub areas: usize,
}

impl Summary {
    pub fn of(s: &Snapshot) -> Summary {
        let m = metrics::compute(s);
        if s.has_layout() {
            Summary {
                total: m.used_bytes + m.free_bytes,
                used: m.used_bytes,
                free: m.free_bytes,
                largest_free: m.largest_free_bytes,
                fragmentation: m.fragmentation,
                blocks: s.total_blocks(),
                areas: s.areas.len(),
            }
        } else {
            let gc = s.reported.gc.unwrap_or_default();
            let largest = gc.max_free * u64::from(s.block_size().unwrap_or(0));
            Summary {
                total: gc.total,
                used: gc.used,
                free: gc.free,
                largest_free: largest,
                fragmentation: metrics::fragmentation(largest, gc.free),
                blocks: 0,
                areas: 0,
            }
        }
    }
}

/// An entry as held by a read recording: snapshots by reference, decoded on demand.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    Entry(Entry),
    Snapshot { at: HostMicros, device_ms: Option<u32>, source: Source, ordinal: u32, summary: Summary },
}

impl Stored {
    pub fn at(&self) -> HostMicros {
        match self {
            Stored::Entry(e) => e.at(),
            Stored::Snapshot { at, .. } => *at,
        }
    }
}

/// Where a recording stops short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    pub offset: u64,
    pub reason: String,
}

/// A recording read into memory.
pub struct Recording {
    bytes: Vec<u8>,
    pub meta: String,
    pub entries: Vec<Stored>,
    /// Record offset of every snapshot, by ordinal.
    snapshot_offsets: Vec<u64>,
    /// Ordinal of the keyframe each snapshot decodes from.
    keyframe_of: Vec<u32>,
    pub truncated: Option<Truncation>,
    /// Whether the file was closed cleanly (index and end records present).
    pub closed: bool,
}

/// A recording that cannot be read at all.
#[derive(Debug)]
pub enum RecordingError {
    Io(io::Error),
    NotARecording,
    Version(u8),
}

impl fmt::Display for RecordingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordingError::Io(e) => write!(f, "{e}"),
            RecordingError::NotARecording => write!(f, "not a heapscope recording (no HSCOPE header)"),
            RecordingError::Version(v) => write!(f, "recording format version {v}; this heapscope reads version {VERSION}"),
        }
    }
}

impl std::error::Error for RecordingError {}

/// One record's place in the file.
struct RawRecord {
    offset: u64,
    body: std::ops::Range<usize>,
}

/// The complete records of a file, and where they stop short if they do.
fn records(bytes: &[u8]) -> (Vec<RawRecord>, Option<Truncation>) {
    let mut out = Vec::new();
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        let short = |reason: &str| Some(Truncation { offset: at as u64, reason: reason.to_string() });
        if bytes.len() - at < 4 {
            return (out, short("a partial record length"));
        }
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if len > MAX_RECORD {
            return (out, short(&format!("a record length of {len} bytes")));
        }
        if bytes.len() - at < 8 + len {
            return (out, short("a partial record"));
        }
        let body = at + 4..at + 4 + len;
        let crc = u32::from_le_bytes(bytes[body.end..body.end + 4].try_into().unwrap());
        if crc != crc32(&bytes[body.clone()]) {
            return (out, short("a record whose CRC does not match"));
        }
        out.push(RawRecord { offset: at as u64, body });
        at += 8 + len;
    }
    (out, None)
}

fn bad(offset: u64, e: DecodeError) -> Truncation {
    Truncation { offset, reason: format!("a record that does not decode ({e})") }
}

impl Recording {
    pub fn open(path: &Path) -> Result<Recording, RecordingError> {
        Recording::from_bytes(std::fs::read(path).map_err(RecordingError::Io)?)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Recording, RecordingError> {
        if !is_recording(&bytes) {
            return Err(RecordingError::NotARecording);
        }
        if bytes[7] != VERSION {
            return Err(RecordingError::Version(bytes[7]));
        }
        let (raw, mut truncated) = records(&bytes);
        let mut rec = Recording {
            meta: String::new(),
            entries: Vec::new(),
            snapshot_offsets: Vec::new(),
            keyframe_of: Vec::new(),
            truncated: None,
            closed: false,
            bytes: Vec::new(),
        };
        let mut session = Session::new();
        let mut last_keyframe = 0u32;
        for r in &raw {
            match rec.read_record(&bytes, r, &mut session, &mut last_keyframe) {
                Ok(()) => {}
                Err(e) => {
                    // A record that checks out but does not decode: stop there, keep the rest.
                    truncated = Some(bad(r.offset, e));
                    break;
                }
            }
        }
        rec.truncated = truncated;
        rec.bytes = bytes;
        Ok(rec)
    }

    fn read_record(&mut self, bytes: &[u8], r: &RawRecord, session: &mut Session, last_keyframe: &mut u32) -> Result<(), DecodeError> {
        let body = &bytes[r.body.clone()];
        let base = r.body.start;
        let mut rd = Reader::with_base(body, base);
        let k = rd.u8("record kind")?;
        let at = rd.varint("time")?;
        let rest = |rd: &Reader<'_>| &body[body.len() - rd.remaining()..];
        let entry = match k {
            kind::META => {
                self.meta = String::from_utf8_lossy(rest(&rd)).into_owned();
                return Ok(());
            }
            kind::SEGMENT => {
                let reason = SegmentReason::from_code(rd.u8("segment reason")?).ok_or_else(|| rd.error("unknown segment reason"))?;
                Entry::Segment { at, reason, detail: rd.str("detail")? }
            }
            kind::SNAPSHOT => {
                let source = Source::from_code(rd.u8("source")?).ok_or_else(|| rd.error("unknown snapshot source"))?;
                let device_ms = rd.varint("device time")?.checked_sub(1).map(|ms| ms as u32);
                let frame = decode_body(rest(&rd)).map_err(|e| DecodeError::new(base + e.offset, e.message))?;
                let is_keyframe = matches!(frame.body, Body::Keyframe(_));
                let snapshot = match session.apply(&frame) {
                    Ok(Update::Snapshot(s)) => s,
                    Ok(_) => return Err(DecodeError::new(base, "snapshot record without a snapshot frame")),
                    Err(e) => return Err(DecodeError::new(base, e.to_string())),
                };
                let ordinal = self.snapshot_offsets.len() as u32;
                if is_keyframe {
                    *last_keyframe = ordinal;
                }
                self.snapshot_offsets.push(r.offset);
                self.keyframe_of.push(*last_keyframe);
                self.entries.push(Stored::Snapshot { at, device_ms, source, ordinal, summary: Summary::of(&snapshot) });
                return Ok(());
            }
            kind::EVENT => {
                let device_ms = rd.varint("device time")?.checked_sub(1).map(|ms| ms as u32);
                let frame = decode_body(rest(&rd)).map_err(|e| DecodeError::new(base + e.offset, e.message))?;
                match frame.body {
                    Body::Event(event) => Entry::Event { at, device_ms, event },
                    _ => return Err(DecodeError::new(base, "event record without an event frame")),
                }
            }
            kind::CONSOLE => Entry::Console { at, bytes: rest(&rd).to_vec() },
            kind::GAP => Entry::Gap { at, reason: rd.str("gap reason")? },
            kind::CORRUPT => Entry::Corrupt { at, detail: rd.str("detail")? },
            kind::NOTICE => Entry::Notice { at, text: rd.str("notice")? },
            kind::INDEX => return Ok(()),
            kind::END => {
                self.closed = true;
                return Ok(());
            }
            // Newer writers may add kinds: skip them.
            _ => return Ok(()),
        };
        self.entries.push(Stored::Entry(entry));
        Ok(())
    }

    pub fn snapshot_count(&self) -> usize {
        self.snapshot_offsets.len()
    }

    /// Snapshot `ordinal`, decoded from the keyframe before it.
    pub fn snapshot(&self, ordinal: u32) -> Option<Snapshot> {
        let target = ordinal as usize;
        let from = *self.keyframe_of.get(target)? as usize;
        let mut session = Session::new();
        let mut last = None;
        for body in record_bodies(&self.bytes, &self.snapshot_offsets[from..=target]) {
            let mut rd = Reader::new(body);
            rd.u8("kind").ok()?;
            rd.varint("time").ok()?;
            rd.u8("source").ok()?;
            rd.varint("device time").ok()?;
            let frame = decode_body(&body[body.len() - rd.remaining()..]).ok()?;
            if let Ok(Update::Snapshot(s)) = session.apply(&frame) {
                last = Some(s);
            }
        }
        last
    }

    /// The index written at close: (ordinal, time, offset) of each keyframe. `None` for a
    /// recording that was not closed.
    pub fn index(&self) -> Option<Vec<(u32, HostMicros, u64)>> {
        if !self.closed {
            return None;
        }
        // The end record is last; its body ends with the index offset, before its CRC.
        let n = self.bytes.len();
        let index_at = u64::from_le_bytes(self.bytes.get(n - 12..n - 4)?.try_into().ok()?) as usize;
        let len = u32::from_le_bytes(self.bytes.get(index_at..index_at + 4)?.try_into().ok()?) as usize;
        let body = self.bytes.get(index_at + 4..index_at + 4 + len)?;
        let mut rd = Reader::new(body);
        if rd.u8("kind").ok()? != kind::INDEX {
            return None;
        }
        rd.varint("time").ok()?;
        let n = rd.varint("count").ok()?;
        (0..n)
            .map(|_| Some((rd.varint("ordinal").ok()? as u32, rd.varint("time").ok()?, rd.varint("offset").ok()?)))
            .collect()
    }


}

/// Bodies of the records at the given offsets (already checked when the file was read).
fn record_bodies<'a>(bytes: &'a [u8], offsets: &'a [u64]) -> impl Iterator<Item = &'a [u8]> + 'a {
    offsets.iter().filter_map(move |&o| {
        let o = o as usize;
        let len = u32::from_le_bytes(bytes.get(o..o + 4)?.try_into().ok()?) as usize;
        bytes.get(o + 4..o + 4 + len)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use heapscope_protocol::synth;
    use heapscope_protocol::wire::Event;

    fn entries() -> Vec<Entry> {
        let mut heap = synth::snapshot(1, 16, 1, 7460);
        let mut out = vec![Entry::Segment { at: 0, reason: SegmentReason::Start, detail: "test".into() }];
        for i in 0..70u64 {
            out.push(Entry::Console { at: i * 1000 + 1, bytes: format!("line {i}\r\n").into_bytes() });
            out.push(Entry::Snapshot { at: i * 1000 + 2, device_ms: Some(i as u32 * 10), source: Source::Stream, snapshot: Box::new(heap.clone()) });
            if i == 40 {
                out.push(Entry::Event { at: i * 1000 + 3, device_ms: None, event: Event::Mark { label: "half".into() } });
                out.push(Entry::Gap { at: i * 1000 + 4, reason: "unplugged".into() });
                out.push(Entry::Segment { at: i * 1000 + 5, reason: SegmentReason::Reattach, detail: "back".into() });
            }
            heap = synth::mutate(&heap, i, 5);
        }
        out
    }

    fn write(path: &Path, entries: &[Entry], close: bool) {
        let mut w = RecordingWriter::create(path, "{\"test\":true}").unwrap();
        for e in entries {
            w.append(e).unwrap();
        }
        if close {
            w.finish(99_999).unwrap();
        }
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("heapscope-rec-{}-{name}", std::process::id()))
    }

    #[test]
    fn round_trip_with_keyframes_and_deltas() {
        let path = tmp("roundtrip");
        let input = entries();
        write(&path, &input, true);
        let rec = Recording::open(&path).unwrap();
        assert!(rec.closed);
        assert_eq!(rec.truncated, None);
        assert_eq!(rec.meta, "{\"test\":true}");
        assert_eq!(rec.snapshot_count(), 70);
        let mut ordinal = 0;
        for (stored, original) in rec.entries.iter().zip(&input) {
            match (stored, original) {
                (Stored::Snapshot { at, device_ms, source, ordinal: o, .. }, Entry::Snapshot { at: a2, device_ms: d2, source: s2, snapshot }) => {
                    assert_eq!((at, device_ms, source, *o), (a2, d2, s2, ordinal));
                    assert!(rec.snapshot(*o).as_ref() == Some(&**snapshot), "snapshot {o}");
                    ordinal += 1;
                }
                (Stored::Entry(e), original) => assert_eq!(e, original),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(rec.entries.len(), input.len());
        let index = rec.index().unwrap();
        assert!(index.len() >= 3, "keyframes every {KEYFRAME_EVERY} and after the gap: {index:?}");
        assert_eq!(index[0].0, 0);
        assert!(index.iter().any(|k| k.0 == 41), "a keyframe after the gap: {index:?}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_recording_cut_anywhere_in_its_last_record_keeps_everything_before() {
        let path = tmp("cut");
        let input = entries();
        write(&path, &input, false);
        let full = std::fs::read(&path).unwrap();
        let whole = Recording::from_bytes(full.clone()).unwrap();
        let last_start = {
            let (raw, _) = records(&full);
            raw.last().unwrap().offset as usize
        };
        for cut in last_start..full.len() {
            let rec = Recording::from_bytes(full[..cut].to_vec()).unwrap();
            assert_eq!(rec.entries.len(), whole.entries.len() - 1, "cut at {cut}");
            let t = rec.truncated.as_ref().map(|t| t.offset);
            assert_eq!(t, if cut == last_start { None } else { Some(last_start as u64) }, "cut at {cut}");
        }
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_damaged_record_stops_reading_there() {
        let path = tmp("damaged");
        write(&path, &entries(), true);
        let mut bytes = std::fs::read(&path).unwrap();
        let (raw, _) = records(&bytes);
        let victim = &raw[raw.len() / 2];
        bytes[victim.body.start + 3] ^= 0x20;
        let rec = Recording::from_bytes(bytes).unwrap();
        assert_eq!(rec.truncated.as_ref().unwrap().offset, victim.offset);
        assert!(rec.truncated.as_ref().unwrap().reason.contains("CRC"));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn not_a_recording() {
        assert!(matches!(Recording::from_bytes(b"GC: total".to_vec()), Err(RecordingError::NotARecording)));
        assert!(matches!(Recording::from_bytes(b"HSCOPE\x00\x09".to_vec()), Err(RecordingError::Version(9))));
    }
}
