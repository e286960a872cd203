//! Recordings: a capture's entries in an append-only file that survives a crash, opened in a
//! moment whatever its length, and read back on demand.
//!
//! ```text
//! file    = header record*
//! header  = "HSCOPE" 00 version                            8 bytes; version 2 (this writer) or 1
//! record  = [sync] len:u32le body:len bytes crc:u32le      CRC-32 of body; sync = A5 5A (version 2 only)
//! body    = kind:u8 at_us:varint payload
//! ```
//!
//! | kind | payload |
//! |---|---|
//! | 1 meta | JSON: tool version, port, mode, start time |
//! | 2 segment | reason:u8 (1 start, 2 reset, 3 reattach), detail:str |
//! | 3 snapshot | source:u8 (1 stream, 2 passive, 3 poll), device_ms+1:varint (0 = none), [v2: summary], a wire-format frame body (SPEC.md): keyframe, or delta against the previous snapshot record |
//! | 4 event | device_ms+1:varint, a wire-format event frame body |
//! | 5 console | the bytes |
//! | 6 gap | reason:str |
//! | 7 corrupt | detail:str |
//! | 8 notice | text:str |
//! | 9 index | v1: count, then per keyframe: ordinal, at_us, file offset (varints). v2: see below |
//! | 10 end | index record offset: u64le; its `at_us` is the recording's length |
//! | 11 dump | a heap dump taken at `at_us`, in the dump file's own format (`heapscope_objects::dump`, JSON) |
//!
//! `summary` = total, used, free, largest_free, blocks, areas: varints (bytes and counts), the
//! headline figures of the snapshot, so neither the index nor a reader has to decode a snapshot
//! to draw the timeline.
//!
//! The version-2 index, written at close, lets a reader open a recording of any length without
//! reading it: `snapshots:varint`, then per snapshot `offset gap:varint` (from the previous
//! snapshot record), `at_us:varint`, `device_ms+1:varint`, `source:u8`, `keyframe:u8`, summary;
//! then `others:varint` and per other record `offset gap:varint` (from the previous one). A
//! reader checks it against the end record and falls back to reading every record when it does
//! not check out.
//!
//! Extending: a new kind of record (as heap dumps did) takes the next free kind number; readers
//! skip kinds they do not know, and list such records among the index's "others". A change that
//! old readers would misread raises the header's version.
//!
//! Durability: each record is written whole and flushed to the operating system; the file is
//! synced to the disk at every keyframe and at close, so a power cut loses at most the records
//! since the last keyframe, and `kill -9` loses nothing. A reader keeps every record before a
//! cut, skips a damaged record (a wrong CRC, a length that does not fit) by looking for the next
//! sync mark whose record checks out, and counts what it skipped. Deltas after a damaged snapshot
//! cannot be rebuilt until the next keyframe: they are counted as lost, the rest are kept.
//!
//! Keyframes come every [`KEYFRAME_EVERY`] snapshots, or sooner once the deltas since the last
//! one add up to [`KEYFRAME_BYTES_FACTOR`] keyframes' worth, so decoding any snapshot reads a
//! bounded amount.
//! Strings are a varint length and UTF-8 bytes.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use heapscope_protocol::metrics;
use heapscope_protocol::model::{Area, KindTable, ObjType};
use heapscope_protocol::wire::codec::{crc32, DecodeError, Reader, Writer};
use heapscope_protocol::wire::session::{self, DEFAULT_CHUNK_BLOCKS};
use heapscope_protocol::wire::{decode_body, encode_body, heads_in, Body, Chunk, Delta, Frame, FrameType, Keyframe};
use heapscope_protocol::{Reported, Snapshot};

use crate::entry::{Entry, HostMicros, SegmentReason, Source};
use heapscope_objects::HeapDump;

pub const MAGIC: &[u8; 6] = b"HSCOPE";
/// The version this writer writes; readers read it and version 1.
pub const VERSION: u8 = 2;
pub const HEADER_LEN: usize = 8;
/// Marks the start of each record (version 2), so a reader finds the next record after damage.
const SYNC: [u8; 2] = [0xA5, 0x5A];
/// A keyframe at least every this many snapshots.
pub const KEYFRAME_EVERY: u32 = 48;
/// ... and as soon as the deltas since the last keyframe add up to this many keyframes' bytes.
pub const KEYFRAME_BYTES_FACTOR: u64 = 8;
/// A reader keeps the decoding state every this many snapshots after the keyframe it last
/// decoded from.
const CHECKPOINT_EVERY: u32 = 8;
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
    pub const DUMP: u8 = 11;
}

/// Whether bytes start like a recording.
pub fn is_recording(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN && &bytes[..6] == MAGIC
}

/// How a version's records are framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Framing {
    version: u8,
}

impl Framing {
    fn sync_len(self) -> usize {
        if self.version >= 2 { SYNC.len() } else { 0 }
    }

    /// Bytes around a body: sync, length, CRC.
    fn overhead(self) -> usize {
        self.sync_len() + 8
    }
}

/// Where one snapshot record is, as the writer reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub offset: u64,
    pub keyframe: bool,
}

impl Written {
    /// A snapshot that is in no file (it can never be read back).
    pub const NOWHERE: Written = Written { offset: u64::MAX, keyframe: true };
}

/// Appends entries to a recording file.
pub struct RecordingWriter {
    out: BufWriter<File>,
    offset: u64,
    snapshots: u32,
    since_keyframe: u32,
    delta_bytes_since_keyframe: u64,
    last_keyframe_bytes: u64,
    previous: Option<Snapshot>,
    /// Per snapshot, for the index.
    index: Vec<IndexEntry>,
    others: Vec<u64>,
    last_at: HostMicros,
    /// Time spent syncing the file to the disk, and how often.
    pub sync_time: std::time::Duration,
    pub syncs: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct IndexEntry {
    offset: u64,
    at: HostMicros,
    device_ms: Option<u32>,
    source: Source,
    keyframe: bool,
    summary: Summary,
}

fn device_ms_code(device_ms: Option<u32>) -> u64 {
    device_ms.map_or(0, |ms| u64::from(ms) + 1)
}

fn read_device_ms(rd: &mut Reader<'_>) -> Result<Option<u32>, DecodeError> {
    let v = rd.varint("device time")?;
    Ok(v.checked_sub(1).map(|ms| ms.min(u64::from(u32::MAX)) as u32))
}

impl RecordingWriter {
    pub fn create(path: &Path, meta_json: &str) -> io::Result<RecordingWriter> {
        let file = File::create(path)?;
        let mut w = RecordingWriter {
            out: BufWriter::with_capacity(256 << 10, file),
            offset: 0,
            snapshots: 0,
            since_keyframe: 0,
            delta_bytes_since_keyframe: 0,
            last_keyframe_bytes: 0,
            previous: None,
            index: Vec::new(),
            others: Vec::new(),
            last_at: 0,
            sync_time: std::time::Duration::ZERO,
            syncs: 0,
        };
        let mut header = MAGIC.to_vec();
        header.extend([0, VERSION]);
        w.out.write_all(&header)?;
        w.offset = header.len() as u64;
        let mut body = Writer::default();
        body.u8(kind::META);
        body.varint(0);
        body.bytes(meta_json.as_bytes());
        let at = w.record(&body.buf)?;
        w.others.push(at);
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
        self.out.write_all(&SYNC)?;
        self.out.write_all(&(body.len() as u32).to_le_bytes())?;
        self.out.write_all(body)?;
        self.out.write_all(&crc32(body).to_le_bytes())?;
        // Whole records reach the operating system at once: what is written survives a crash.
        self.out.flush()?;
        self.offset += (body.len() + SYNC.len() + 8) as u64;
        Ok(at)
    }

    fn sync(&mut self) -> io::Result<()> {
        let t = std::time::Instant::now();
        self.out.get_ref().sync_data()?;
        self.sync_time += t.elapsed();
        self.syncs += 1;
        Ok(())
    }

    /// Appends one entry. For a snapshot, says where it went (a reader of the growing file finds
    /// it there).
    pub fn append(&mut self, entry: &Entry) -> io::Result<Option<Written>> {
        self.append_with(entry, None)
    }

    /// `append`, with the snapshot's summary when the caller has already computed it.
    pub fn append_with(&mut self, entry: &Entry, summary: Option<Summary>) -> io::Result<Option<Written>> {
        self.last_at = self.last_at.max(entry.at());
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
                return self.append_snapshot(*at, *device_ms, *source, snapshot, summary).map(Some);
            }
            Entry::Event { at, device_ms, event } => {
                w.u8(kind::EVENT);
                w.varint(*at);
                w.varint(device_ms_code(*device_ms));
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
        let offset = self.record(&w.buf)?;
        self.others.push(offset);
        Ok(None)
    }

    fn append_snapshot(
        &mut self,
        at: HostMicros,
        device_ms: Option<u32>,
        source: Source,
        snapshot: &Snapshot,
        summary: Option<Summary>,
    ) -> io::Result<Written> {
        let summary = summary.unwrap_or_else(|| Summary::of(snapshot));
        let seq = (self.snapshots & 0xFFFF) as u16;
        let dms = device_ms.unwrap_or(0);
        // A delta against the previous snapshot, unless a keyframe is due or the delta would be
        // no smaller than one.
        let delta = match &self.previous {
            Some(prev)
                if self.since_keyframe + 1 < KEYFRAME_EVERY
                    && self.delta_bytes_since_keyframe < KEYFRAME_BYTES_FACTOR * self.last_keyframe_bytes
                    && prev.block_size() == snapshot.block_size() =>
            {
                let base_seq = ((self.snapshots - 1) & 0xFFFF) as u16;
                let delta = session::delta(prev, base_seq, snapshot, DEFAULT_CHUNK_BLOCKS);
                let body = encode_body(&Frame { seq, device_ms: dms, body: Body::Delta(delta) });
                ((body.len() as u64) < self.last_keyframe_bytes).then_some(body)
            }
            _ => None,
        };
        let keyframe = delta.is_none();
        let frame = delta.unwrap_or_else(|| encode_body(&Frame { seq, device_ms: dms, body: Body::Keyframe(session::keyframe(snapshot)) }));
        let mut w = Writer::default();
        w.u8(kind::SNAPSHOT);
        w.varint(at);
        w.u8(source as u8);
        w.varint(device_ms_code(device_ms));
        summary.write(&mut w);
        w.bytes(&frame);
        let offset = self.record(&w.buf)?;
        if keyframe {
            self.since_keyframe = 0;
            self.delta_bytes_since_keyframe = 0;
            self.last_keyframe_bytes = frame.len() as u64;
            // What came before the keyframe is on the disk: a power cut loses less than a
            // keyframe period.
            self.sync()?;
        } else {
            self.since_keyframe += 1;
            self.delta_bytes_since_keyframe += frame.len() as u64;
        }
        self.index.push(IndexEntry { offset, at, device_ms, source, keyframe, summary });
        self.snapshots += 1;
        match &mut self.previous {
            Some(prev) => prev.clone_from(snapshot),
            None => self.previous = Some(snapshot.clone()),
        }
        Ok(Written { offset, keyframe })
    }

    /// Appends a heap dump taken at `at`, in its file's format; synced, as a dump is rare and
    /// slow to take again. Listed among the index's other records.
    pub fn append_dump(&mut self, at: HostMicros, dump: &HeapDump) -> io::Result<u64> {
        self.last_at = self.last_at.max(at);
        let mut w = Writer::default();
        w.u8(kind::DUMP);
        w.varint(at);
        w.bytes(dump.to_json().as_bytes());
        let offset = self.record(&w.buf)?;
        self.sync()?;
        self.others.push(offset);
        Ok(offset)
    }

    /// Writes the index and the end record and syncs the file. `at` is the recording's length
    /// (at least its last entry's time). A recording that never gets here is still readable.
    pub fn finish(mut self, at: HostMicros) -> io::Result<u64> {
        let at = at.max(self.last_at);
        let mut w = Writer::default();
        w.u8(kind::INDEX);
        w.varint(at);
        w.varint(self.index.len() as u64);
        let mut previous = 0;
        for e in &self.index {
            w.varint(e.offset - previous);
            previous = e.offset;
            w.varint(e.at);
            w.varint(device_ms_code(e.device_ms));
            w.u8(e.source as u8);
            w.u8(u8::from(e.keyframe));
            e.summary.write(&mut w);
        }
        w.varint(self.others.len() as u64);
        let mut previous = 0;
        for &o in &self.others {
            w.varint(o - previous);
            previous = o;
        }
        let index_at = self.record(&w.buf)?;
        let mut w = Writer::default();
        w.u8(kind::END);
        w.varint(at);
        w.bytes(&index_at.to_le_bytes());
        self.record(&w.buf)?;
        self.sync()?;
        Ok(self.offset)
    }
}

/// Headline figures of one snapshot: stored with it, so reading them needs no decoding.
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
        if s.has_layout() {
            let m = metrics::compute(s);
            Summary::new(m.used_bytes + m.free_bytes, m.used_bytes, m.free_bytes, m.largest_free_bytes, s.total_blocks(), s.areas.len())
        } else {
            let gc = s.reported.gc.unwrap_or_default();
            let largest = gc.max_free * u64::from(s.block_size().unwrap_or(0));
            Summary::new(gc.total, gc.used, gc.free, largest, 0, 0)
        }
    }

    fn new(total: u64, used: u64, free: u64, largest_free: u64, blocks: usize, areas: usize) -> Summary {
        Summary { total, used, free, largest_free, fragmentation: metrics::fragmentation(largest_free, free), blocks, areas }
    }

    fn write(&self, w: &mut Writer) {
        for v in [self.total, self.used, self.free, self.largest_free, self.blocks as u64, self.areas as u64] {
            w.varint(v);
        }
    }

    fn read(rd: &mut Reader<'_>) -> Result<Summary, DecodeError> {
        let mut v = [0u64; 6];
        for (slot, what) in v.iter_mut().zip(["total", "used", "free", "largest free", "blocks", "areas"]) {
            *slot = rd.varint(what)?;
        }
        Ok(Summary::new(v[0], v[1], v[2], v[3], v[4] as usize, v[5] as usize))
    }
}

/// An entry as held by a read recording: snapshots by reference, decoded on demand.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    Entry(Entry),
    Snapshot { at: HostMicros, device_ms: Option<u32>, source: Source, ordinal: u32, summary: Summary },
    /// A heap dump, read with [`Recording::dump`]; `bytes` is its stored size.
    Dump { at: HostMicros, ordinal: u32, bytes: u64 },
}

impl Stored {
    pub fn at(&self) -> HostMicros {
        match self {
            Stored::Entry(e) => e.at(),
            Stored::Snapshot { at, .. } | Stored::Dump { at, .. } => *at,
        }
    }
}

/// Where a recording stops short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    pub offset: u64,
    pub reason: String,
}

/// What a reader skipped: damaged stretches of the file, and snapshots that cannot be rebuilt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Damage {
    /// Damaged stretches skipped (each up to the next record that checks out).
    pub stretches: usize,
    pub bytes: u64,
    /// The first damaged stretch: (offset, why).
    pub first: Option<(u64, String)>,
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
            RecordingError::Version(v) => write!(f, "recording format version {v}; this heapscope reads versions 1 to {VERSION}"),
        }
    }
}

impl std::error::Error for RecordingError {}

/// The bytes of a recording: a file read where needed, or bytes in memory.
#[derive(Debug)]
enum Backing {
    File(File),
    Memory(Arc<[u8]>),
}

impl Backing {
    fn len(&self) -> io::Result<u64> {
        match self {
            Backing::File(f) => Ok(f.metadata()?.len()),
            Backing::Memory(b) => Ok(b.len() as u64),
        }
    }

    /// Fills `buf` from `offset`; false when the file ends first.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<bool> {
        match self {
            Backing::File(f) => match read_exact_at(f, buf, offset) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
                Err(e) => Err(e),
            },
            Backing::Memory(b) => {
                let Some(src) = usize::try_from(offset).ok().and_then(|o| b.get(o..o.checked_add(buf.len())?)) else {
                    return Ok(false);
                };
                buf.copy_from_slice(src);
                Ok(true)
            }
        }
    }

    fn try_clone(&self) -> io::Result<Backing> {
        Ok(match self {
            Backing::File(f) => Backing::File(f.try_clone()?),
            Backing::Memory(b) => Backing::Memory(b.clone()),
        })
    }
}

#[cfg(unix)]
fn read_exact_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(f: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match f.seek_read(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads a file front to back through a window, so that scanning (and hunting for the next
/// record after damage) touches each byte about once and holds a few MB at most.
struct Window<'a> {
    backing: &'a Backing,
    len: u64,
    start: u64,
    buf: Vec<u8>,
    /// Bytes read at a time.
    size: usize,
}

impl<'a> Window<'a> {
    /// For reading front to back.
    fn new(backing: &'a Backing, len: u64) -> Window<'a> {
        Window { backing, len, start: 0, buf: Vec::new(), size: 4 << 20 }
    }

    /// For reading records here and there.
    fn small(backing: &'a Backing, len: u64) -> Window<'a> {
        Window { size: 64 << 10, ..Window::new(backing, len) }
    }

    /// `n` bytes from `offset`, or `None` when the file ends first.
    fn get(&mut self, offset: u64, n: usize) -> io::Result<Option<&[u8]>> {
        let end = match offset.checked_add(n as u64) {
            Some(end) if end <= self.len => end,
            _ => return Ok(None),
        };
        if offset < self.start || end > self.start + self.buf.len() as u64 {
            let want = (self.len - offset).min(n.max(self.size) as u64) as usize;
            self.buf.resize(want, 0);
            if !self.backing.read_at(offset, &mut self.buf)? {
                return Ok(None);
            }
            self.start = offset;
        }
        let from = (offset - self.start) as usize;
        Ok(Some(&self.buf[from..from + n]))
    }
}

/// A record's body, checked; or why there is none at `offset`.
fn checked_record<'w>(win: &'w mut Window<'_>, framing: Framing, offset: u64) -> io::Result<Result<(&'w [u8], u64), String>> {
    let sync = framing.sync_len();
    let Some(head) = win.get(offset, sync + 4)? else {
        return Ok(Err("a partial record header".into()));
    };
    if head[..sync] != SYNC[..sync] {
        return Ok(Err("no record mark".into()));
    }
    let len = u32::from_le_bytes(head[sync..sync + 4].try_into().expect("4 bytes")) as usize;
    if len > MAX_RECORD {
        return Ok(Err(format!("a record length of {len} bytes")));
    }
    let Some(whole) = win.get(offset, sync + 8 + len)? else {
        return Ok(Err("a partial record".into()));
    };
    let body = &whole[sync + 4..sync + 4 + len];
    let crc = u32::from_le_bytes(whole[sync + 4 + len..].try_into().expect("4 bytes"));
    if crc != crc32(body) {
        return Ok(Err("a record whose CRC does not match".into()));
    }
    Ok(Ok((body, offset + (sync + 8 + len) as u64)))
}

/// One snapshot's place in the file and the keyframe its decoding starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Place {
    offset: u64,
    keyframe_ordinal: u32,
}

/// Snapshots of a recording (finished or still being written), decoded on demand: from the
/// last decoded one when stepping forward, else from the keyframe before.
pub struct Snapshots {
    backing: Backing,
    framing: Framing,
    places: Vec<Place>,
    cursor: RefCell<Option<(u32, ChunkState)>>,
    /// States every [`CHECKPOINT_EVERY`] snapshots from the last keyframe decoded, so that
    /// stepping back within its run of deltas decodes a few of them, not all.
    /// (keyframe ordinal, states after it).
    checkpoints: RefCell<(u32, Vec<(u32, ChunkState)>)>,
    lost: RefCell<BTreeSet<u32>>,
}

impl Snapshots {
    fn new(backing: Backing, framing: Framing) -> Snapshots {
        Snapshots {
            backing,
            framing,
            places: Vec::new(),
            cursor: RefCell::new(None),
            checkpoints: RefCell::new((0, Vec::new())),
            lost: RefCell::new(BTreeSet::new()),
        }
    }

    /// Reads back what a [`RecordingWriter`] writes to `path`, as it writes it.
    pub fn follow(path: &Path) -> io::Result<Snapshots> {
        Ok(Snapshots::new(Backing::File(File::open(path)?), Framing { version: VERSION }))
    }

    /// Takes the place of the next snapshot, as the writer reported it.
    pub fn push(&mut self, written: Written) {
        let ordinal = self.places.len() as u32;
        let keyframe_ordinal = match self.places.last() {
            Some(p) if !written.keyframe => p.keyframe_ordinal,
            _ => ordinal,
        };
        self.places.push(Place { offset: written.offset, keyframe_ordinal });
    }

    pub fn len(&self) -> usize {
        self.places.len()
    }

    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    /// Snapshots found impossible to rebuild so far (damaged, or after damage before the next
    /// keyframe).
    pub fn lost(&self) -> usize {
        self.lost.borrow().len()
    }

    /// The first snapshot found impossible to rebuild: its ordinal and its record's offset.
    pub fn first_lost(&self) -> Option<(u32, u64)> {
        let first = *self.lost.borrow().first()?;
        Some((first, self.places.get(first as usize)?.offset))
    }

    /// Snapshot `ordinal`; `None` (and counted as lost) when it cannot be rebuilt.
    pub fn get(&self, ordinal: u32) -> Option<Snapshot> {
        let place = *self.places.get(ordinal as usize)?;
        let mut cursor = self.cursor.borrow_mut();
        let usable = |at: u32| at <= ordinal && at >= place.keyframe_ordinal;
        let mut state = cursor.take().filter(|(at, _)| usable(*at));
        let from = state.as_ref().map(|(at, _)| *at);
        if let Some((at, s)) = self.checkpoints.borrow().1.iter().rev().find(|(at, _)| usable(*at) && from.is_none_or(|f| *at > f)) {
            state = Some((*at, s.clone()));
        }
        let first = state.as_ref().map_or(place.keyframe_ordinal, |(at, _)| at + 1);
        for o in first..=ordinal {
            let frame = match self.frame(self.places[o as usize].offset) {
                Ok(f) => f,
                Err(_) => {
                    self.lose(o..=ordinal);
                    return None;
                }
            };
            let next = match (state.take(), frame.body) {
                (_, Body::Keyframe(k)) => ChunkState::from_keyframe(frame.seq, k),
                (Some((_, s)), Body::Delta(d)) => s.apply(frame.seq, d),
                (None, _) => None,
                (Some(_), _) => None,
            };
            match next {
                Some(s) => {
                    let since = o - place.keyframe_ordinal;
                    if since.is_multiple_of(CHECKPOINT_EVERY) {
                        let mut guard = self.checkpoints.borrow_mut();
                        let (group, checkpoints) = &mut *guard;
                        if *group != place.keyframe_ordinal {
                            *group = place.keyframe_ordinal;
                            checkpoints.clear();
                        }
                        if checkpoints.last().is_none_or(|(at, _)| *at < o) {
                            checkpoints.push((o, s.clone()));
                        }
                    }
                    state = Some((o, s));
                }
                None => {
                    self.lose(o..=ordinal);
                    return None;
                }
            }
        }
        let (at, state) = state?;
        let snapshot = state.snapshot();
        if snapshot.is_none() {
            self.lose(ordinal..=ordinal);
        }
        *cursor = Some((at, state));
        snapshot
    }

    /// Reads every snapshot record once and follows the chain of deltas by sequence number,
    /// without rebuilding snapshots; what cannot be rebuilt is counted as lost.
    fn verify(&self) {
        let mut last_seq: Option<u16> = None;
        for (o, place) in self.places.iter().enumerate() {
            let o = o as u32;
            last_seq = match self.record(place.offset).ok().and_then(|body| frame_link(&body, self.framing)) {
                Some((seq, None)) => Some(seq),
                Some((seq, Some(base))) if last_seq == Some(base) => Some(seq),
                _ => None,
            };
            if last_seq.is_none() {
                self.lose(o..=o);
            }
        }
    }

    fn lose(&self, ordinals: std::ops::RangeInclusive<u32>) {
        self.lost.borrow_mut().extend(ordinals);
    }

    /// The wire frame of the snapshot record at `offset`.
    fn frame(&self, offset: u64) -> Result<Frame, String> {
        let body = self.record(offset)?;
        let mut rd = Reader::new(&body);
        if rd.u8("kind").map_err(|e| e.to_string())? != kind::SNAPSHOT {
            return Err("not a snapshot record".into());
        }
        let (_, frame) = snapshot_payload(&mut rd, self.framing).map_err(|e| e.to_string())?;
        Ok(frame)
    }

    /// The heap dump in the record at `offset`.
    pub fn dump_at(&self, offset: u64) -> Result<HeapDump, String> {
        let what = |e: &dyn fmt::Display| format!("the dump record at byte {offset}: {e}");
        let body = self.record(offset).map_err(|e| what(&e))?;
        let mut rd = Reader::new(&body);
        if rd.u8("kind").map_err(|e| what(&e))? != kind::DUMP {
            return Err(what(&"not a dump record"));
        }
        rd.varint("time").map_err(|e| what(&e))?;
        HeapDump::from_json(&body[body.len() - rd.remaining()..]).map_err(|e| what(&e))
    }

    /// The checked body of the record at `offset`.
    fn record(&self, offset: u64) -> Result<Vec<u8>, String> {
        let sync = self.framing.sync_len();
        let mut head = [0u8; 6];
        let head = &mut head[..sync + 4];
        if !self.backing.read_at(offset, head).map_err(|e| e.to_string())? || head[..sync] != SYNC[..sync] {
            return Err("no record there".into());
        }
        let len = u32::from_le_bytes(head[sync..].try_into().expect("4 bytes")) as usize;
        if len > MAX_RECORD {
            return Err("record too long".into());
        }
        let mut buf = vec![0u8; len + 4];
        if !self.backing.read_at(offset + (sync + 4) as u64, &mut buf).map_err(|e| e.to_string())? {
            return Err("a partial record".into());
        }
        let (body, crc) = buf.split_at(len);
        if u32::from_le_bytes(crc.try_into().expect("4 bytes")) != crc32(body) {
            return Err("CRC mismatch".into());
        }
        buf.truncate(len);
        Ok(buf)
    }
}

/// A snapshot record's sequence number, and its base's for a delta, read from the frame's
/// header without decoding the frame (the record's CRC has vouched for it).
fn frame_link(body: &[u8], framing: Framing) -> Option<(u16, Option<u16>)> {
    let mut rd = Reader::new(body);
    (rd.u8("kind").ok()? == kind::SNAPSHOT).then_some(())?;
    rd.varint("time").ok()?;
    rd.u8("source").ok()?;
    rd.varint("device time").ok()?;
    if framing.version >= 2 {
        Summary::read(&mut rd).ok()?;
    }
    // Frame header: version, type, seq, device_ms; a delta's payload starts with its base.
    rd.u8("version").ok()?;
    let frame_type = rd.u8("frame type").ok()?;
    let seq = rd.u16("sequence").ok()?;
    rd.u32("device time").ok()?;
    match frame_type {
        t if t == FrameType::Keyframe as u8 => Some((seq, None)),
        t if t == FrameType::Delta as u8 => Some((seq, Some(rd.u16("base").ok()?))),
        _ => None,
    }
}

struct SnapshotHead {
    at: HostMicros,
    source: Source,
    device_ms: Option<u32>,
    /// Version 2 records carry the snapshot's figures.
    summary: Option<Summary>,
}

/// A snapshot record's fields after its kind, up to its frame.
fn snapshot_head(rd: &mut Reader<'_>, framing: Framing) -> Result<SnapshotHead, DecodeError> {
    let at = rd.varint("time")?;
    let source = Source::from_code(rd.u8("source")?).ok_or_else(|| rd.error("unknown snapshot source"))?;
    let device_ms = read_device_ms(rd)?;
    let summary = if framing.version >= 2 { Some(Summary::read(rd)?) } else { None };
    Ok(SnapshotHead { at, source, device_ms, summary })
}

/// A snapshot record's fields after its kind, and its frame.
fn snapshot_payload(rd: &mut Reader<'_>, framing: Framing) -> Result<(SnapshotHead, Frame), DecodeError> {
    let head = snapshot_head(rd, framing)?;
    let base = rd.offset();
    let rest = rd.take(rd.remaining(), "frame")?;
    let frame = decode_body(rest).map_err(|e| DecodeError::new(base + e.offset, e.message))?;
    Ok((head, frame))
}

/// A snapshot as chunks, as deltas address it: applying a delta replaces the chunks it carries
/// and copies nothing else.
#[derive(Clone)]
struct ChunkState {
    seq: u16,
    block_size: u32,
    chunk_blocks: usize,
    areas: Vec<(u64, usize, Vec<Chunk>)>,
    figures: Reported,
}

impl ChunkState {
    fn from_keyframe(seq: u16, k: Keyframe) -> Option<ChunkState> {
        if k.block_size == 0 && !k.areas.is_empty() {
            return None;
        }
        let chunk_blocks = DEFAULT_CHUNK_BLOCKS;
        let areas = k.areas.into_iter().map(|a| Some((a.pool_start, a.blocks, split(&a.atb, &a.codes, chunk_blocks)?))).collect::<Option<_>>()?;
        Some(ChunkState { seq, block_size: k.block_size, chunk_blocks, areas, figures: k.figures })
    }

    fn apply(mut self, seq: u16, d: Delta) -> Option<ChunkState> {
        if d.base_seq != self.seq || d.chunk_blocks == 0 {
            return None;
        }
        if d.chunk_blocks != self.chunk_blocks {
            self = self.rechunk(d.chunk_blocks)?;
        }
        let mut old = std::mem::take(&mut self.areas);
        for da in d.areas {
            let chunk_count = da.blocks.div_ceil(d.chunk_blocks);
            let mut chunks = match old.iter().position(|a| a.0 == da.pool_start && a.1 == da.blocks) {
                Some(i) => old.swap_remove(i).2,
                None if da.chunks.len() == chunk_count => Vec::new(),
                None => return None,
            };
            if chunks.is_empty() {
                chunks = da.chunks;
            } else {
                for c in da.chunks {
                    let i = c.index;
                    *chunks.get_mut(i)? = c;
                }
            }
            self.areas.push((da.pool_start, da.blocks, chunks));
        }
        self.seq = seq;
        self.figures = d.figures;
        Some(self)
    }

    fn rechunk(self, chunk_blocks: usize) -> Option<ChunkState> {
        let areas = self
            .areas
            .iter()
            .map(|(p, b, chunks)| {
                let (atb, codes) = joined(chunks);
                Some((*p, *b, split(&atb, &codes, chunk_blocks)?))
            })
            .collect::<Option<_>>()?;
        Some(ChunkState { chunk_blocks, areas, ..self })
    }

    fn snapshot(&self) -> Option<Snapshot> {
        let areas = self
            .areas
            .iter()
            .map(|(pool_start, blocks, chunks)| {
                let (atb, codes) = joined(chunks);
                let kinds = KindTable::from_atb(atb, *blocks)?;
                let types = codes.iter().map(|&c| ObjType::from_code(c).unwrap_or(ObjType::Other)).collect();
                Area::new(*pool_start, self.block_size, kinds, types).ok()
            })
            .collect::<Option<_>>()?;
        Some(Snapshot { areas, reported: self.figures.clone() })
    }
}

/// An area's table and type codes cut into chunks of `chunk_blocks` blocks.
fn split(atb: &[u8], codes: &[u8], chunk_blocks: usize) -> Option<Vec<Chunk>> {
    if chunk_blocks == 0 || !chunk_blocks.is_multiple_of(4) {
        return None;
    }
    let mut used = 0;
    let chunks = atb
        .chunks(chunk_blocks / 4)
        .enumerate()
        .map(|(index, bytes)| {
            let heads = heads_in(bytes);
            let codes = codes.get(used..used + heads)?.to_vec();
            used += heads;
            Some(Chunk { index, atb: bytes.to_vec(), codes })
        })
        .collect::<Option<Vec<_>>>()?;
    (used == codes.len()).then_some(chunks)
}

fn joined(chunks: &[Chunk]) -> (Vec<u8>, Vec<u8>) {
    let mut atb = Vec::with_capacity(chunks.iter().map(|c| c.atb.len()).sum());
    let mut codes = Vec::with_capacity(chunks.iter().map(|c| c.codes.len()).sum());
    for c in chunks {
        atb.extend_from_slice(&c.atb);
        codes.extend_from_slice(&c.codes);
    }
    (atb, codes)
}

/// A recording opened for reading: its entries in memory, snapshots read from the file on demand.
pub struct Recording {
    pub meta: String,
    pub entries: Vec<Stored>,
    snapshots: Snapshots,
    pub truncated: Option<Truncation>,
    /// Whether the file was closed cleanly (index and end records present).
    pub closed: bool,
    /// The recording's length: the time of its end record, or of its last entry.
    pub duration: HostMicros,
    pub damage: Damage,
    /// Snapshots whose records were readable but that cannot be rebuilt, found while reading.
    lost_at_open: usize,
    /// Whether the index written at close was used (nothing else was read).
    pub from_index: bool,
    pub version: u8,
    pub file_len: u64,
    /// Where each heap dump's record is, in order.
    dumps: Vec<u64>,
}

impl Recording {
    pub fn open(path: &Path) -> Result<Recording, RecordingError> {
        Recording::read(Backing::File(File::open(path).map_err(RecordingError::Io)?))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Recording, RecordingError> {
        Recording::read(Backing::Memory(bytes.into()))
    }

    fn read(backing: Backing) -> Result<Recording, RecordingError> {
        let file_len = backing.len().map_err(RecordingError::Io)?;
        let mut header = [0u8; HEADER_LEN];
        if !backing.read_at(0, &mut header).map_err(RecordingError::Io)? || !is_recording(&header) {
            return Err(RecordingError::NotARecording);
        }
        let version = header[7];
        if !(1..=VERSION).contains(&version) {
            return Err(RecordingError::Version(version));
        }
        let framing = Framing { version };
        let mut rec = Recording {
            meta: String::new(),
            entries: Vec::new(),
            snapshots: Snapshots::new(backing, framing),
            truncated: None,
            closed: false,
            duration: 0,
            damage: Damage::default(),
            lost_at_open: 0,
            from_index: false,
            version,
            file_len,
            dumps: Vec::new(),
        };
        if version >= 2 && rec.read_by_index().map_err(RecordingError::Io)? {
            rec.from_index = true;
        } else {
            rec.entries.clear();
            rec.dumps.clear();
            rec.snapshots.places.clear();
            rec.scan().map_err(RecordingError::Io)?;
        }
        rec.duration = rec.duration.max(rec.entries.last().map_or(0, Stored::at));
        Ok(rec)
    }

    /// Opens a closed version-2 recording from its index: reads the index and the records that
    /// are not snapshots, nothing else. False when there is no index that checks out.
    fn read_by_index(&mut self) -> io::Result<bool> {
        let backing = self.snapshots.backing.try_clone()?;
        let mut win = Window::small(&backing, self.file_len);
        let framing = self.snapshots.framing;
        // The end record is last: kind, time, the index's offset as u64le.
        let Some(end) = (11..=20).rev().find_map(|len| {
            let at = self.file_len.checked_sub((len + framing.overhead()) as u64)?;
            match checked_record(&mut win, framing, at) {
                Ok(Ok((body, next))) if next == self.file_len && body[0] == kind::END => Some(body.to_vec()),
                _ => None,
            }
        }) else {
            return Ok(false);
        };
        let mut rd = Reader::new(&end[1..]);
        let Ok(end_at) = rd.varint("time") else { return Ok(false) };
        let Ok(index_at) = rd.take(8, "index offset") else { return Ok(false) };
        let index_at = u64::from_le_bytes(index_at.try_into().expect("8 bytes"));
        let index = match checked_record(&mut win, framing, index_at)? {
            Ok((body, _)) if body.first() == Some(&kind::INDEX) => body.to_vec(),
            _ => return Ok(false),
        };
        let Ok((snapshots, others)) = parse_index(&index) else { return Ok(false) };
        // Every record's start, so a damaged record's bytes run to the next one's.
        let mut starts: Vec<u64> = snapshots.iter().map(|e| e.offset).chain(others.iter().copied()).chain([index_at]).collect();
        starts.sort_unstable();
        let extent = |offset: u64| starts.iter().find(|&&s| s > offset).map_or(0, |next| next - offset);
        let mut placed: Vec<(u64, Stored)> = Vec::with_capacity(snapshots.len() + others.len());
        for (ordinal, e) in snapshots.iter().enumerate() {
            self.snapshots.push(Written { offset: e.offset, keyframe: e.keyframe });
            let ordinal = ordinal as u32;
            placed.push((e.offset, Stored::Snapshot { at: e.at, device_ms: e.device_ms, source: e.source, ordinal, summary: e.summary }));
        }
        for offset in others {
            match checked_record(&mut win, framing, offset)? {
                Ok((body, _)) => {
                    let body = body.to_vec();
                    match self.other_record(&body, offset) {
                        Ok(Some(e)) => placed.push((offset, e)),
                        Ok(None) => {}
                        Err(why) => self.damaged(offset, extent(offset), why),
                    }
                }
                Err(why) => self.damaged(offset, extent(offset), why),
            }
        }
        // In file order, as written.
        placed.sort_by_key(|(offset, _)| *offset);
        self.entries = placed.into_iter().map(|(_, e)| e).collect();
        self.closed = true;
        self.duration = end_at;
        Ok(true)
    }

    fn damaged(&mut self, offset: u64, bytes: u64, why: String) {
        self.damage.stretches += 1;
        self.damage.bytes += bytes;
        self.damage.first.get_or_insert((offset, why));
    }

    /// Reads every record front to back; skips damaged stretches.
    fn scan(&mut self) -> io::Result<()> {
        let backing = self.snapshots.backing.try_clone()?;
        let framing = self.snapshots.framing;
        let mut win = Window::new(&backing, self.file_len);
        let mut at = HEADER_LEN as u64;
        // For a version-1 file (no summaries in its records), each snapshot is rebuilt as it
        // goes by; for version 2, only whether the chain of deltas holds is followed.
        let mut chain: Option<(u16, Option<ChunkState>)> = None;
        while at < self.file_len {
            let why = match checked_record(&mut win, framing, at)? {
                Ok((body, next)) => {
                    let body = body.to_vec();
                    match self.take_record(&body, at, &mut chain) {
                        Ok(()) => {
                            at = next;
                            continue;
                        }
                        Err(e) => format!("a record that does not decode ({e})"),
                    }
                }
                Err(why) => why,
            };
            // Damage: find the next record that checks out.
            let mut next = at + 1;
            let found = loop {
                if next >= self.file_len {
                    break None;
                }
                match checked_record(&mut win, framing, next)? {
                    Ok((body, _)) if plausible(body) => break Some(next),
                    _ => next += 1,
                }
            };
            match found {
                Some(next) => {
                    // If a snapshot was in it, the next delta's base is missing: that is noticed
                    // by its sequence number.
                    self.damaged(at, next - at, why);
                    at = next;
                }
                None => {
                    self.truncated = Some(Truncation { offset: at, reason: why });
                    break;
                }
            }
        }
        Ok(())
    }

    /// Takes one checked record met while scanning.
    fn take_record(&mut self, body: &[u8], offset: u64, chain: &mut Option<(u16, Option<ChunkState>)>) -> Result<(), DecodeError> {
        if body.first() != Some(&kind::SNAPSHOT) {
            if let Some(e) = self.other_record(body, offset).map_err(|m| DecodeError::new(0, m))? {
                self.entries.push(e);
            }
            return Ok(());
        }
        let framing = self.snapshots.framing;
        let ordinal = self.snapshots.len() as u32;
        let mut rd = Reader::new(&body[1..]);
        let head = snapshot_head(&mut rd, framing)?;
        let (keyframe, summary) = match head.summary {
            // Version 2: the figures are in the record; the chain of deltas is followed by
            // sequence numbers, without decoding frames.
            Some(summary) => {
                let (seq, base) = frame_link(body, framing).ok_or_else(|| DecodeError::new(0, "a snapshot record without a snapshot frame"))?;
                let linked = base.is_none() || chain.as_ref().is_some_and(|(s, _)| Some(*s) == base);
                if !linked {
                    // A delta whose base was lost with damage before it: it cannot be rebuilt.
                    self.lost_at_open += 1;
                    self.snapshots.lose(ordinal..=ordinal);
                }
                *chain = linked.then_some((seq, None));
                (base.is_none(), summary)
            }
            // Version 1: rebuilt as it goes by, to compute the figures.
            None => {
                let (_, frame) = snapshot_payload(&mut Reader::new(&body[1..]), framing)?;
                let keyframe = matches!(frame.body, Body::Keyframe(_));
                let state = match (frame.body, chain.take()) {
                    (Body::Keyframe(k), _) => ChunkState::from_keyframe(frame.seq, k),
                    (Body::Delta(d), Some((_, Some(s)))) => s.apply(frame.seq, d),
                    _ => None,
                };
                let snapshot = state.as_ref().and_then(ChunkState::snapshot);
                if snapshot.is_none() {
                    self.lost_at_open += 1;
                    self.snapshots.lose(ordinal..=ordinal);
                }
                *chain = state.map(|s| (s.seq, Some(s)));
                (keyframe, snapshot.as_ref().map(Summary::of).unwrap_or(Summary::new(0, 0, 0, 0, 0, 0)))
            }
        };
        self.snapshots.push(Written { offset, keyframe });
        self.entries.push(Stored::Snapshot { at: head.at, device_ms: head.device_ms, source: head.source, ordinal, summary });
        Ok(())
    }

    /// A record that is not a snapshot, as an entry (`None` for records that are not entries).
    fn other_record(&mut self, body: &[u8], offset: u64) -> Result<Option<Stored>, String> {
        let mut rd = Reader::new(body);
        let k = rd.u8("record kind").map_err(|e| e.to_string())?;
        let at = rd.varint("time").map_err(|e| e.to_string())?;
        if k == kind::DUMP {
            // Read (and checked) when asked for: a dump is large.
            let ordinal = self.dumps.len() as u32;
            self.dumps.push(offset);
            return Ok(Some(Stored::Dump { at, ordinal, bytes: rd.remaining() as u64 }));
        }
        let rest = |rd: &Reader<'_>| &body[body.len() - rd.remaining()..];
        let entry = (|| -> Result<Option<Entry>, DecodeError> {
            Ok(Some(match k {
                kind::META => {
                    self.meta = String::from_utf8_lossy(rest(&rd)).into_owned();
                    return Ok(None);
                }
                kind::SEGMENT => {
                    let reason = SegmentReason::from_code(rd.u8("segment reason")?).ok_or_else(|| rd.error("unknown segment reason"))?;
                    Entry::Segment { at, reason, detail: rd.str("detail")? }
                }
                kind::EVENT => {
                    let device_ms = read_device_ms(&mut rd)?;
                    let base = rd.offset();
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
                kind::INDEX => return Ok(None),
                kind::END => {
                    self.closed = true;
                    self.duration = at;
                    return Ok(None);
                }
                // Newer writers may add kinds: skip them.
                _ => return Ok(None),
            }))
        })()
        .map_err(|e| e.to_string())?;
        Ok(entry.map(Stored::Entry))
    }

    pub fn snapshot_count(&self) -> usize {
        self.snapshots.len()
    }

    pub fn dump_count(&self) -> usize {
        self.dumps.len()
    }

    /// Where each heap dump's record is, in order (for [`Snapshots::dump_at`]).
    pub fn dump_offsets(&self) -> &[u64] {
        &self.dumps
    }

    /// Heap dump `ordinal`, read from the file.
    pub fn dump(&self, ordinal: u32) -> Result<HeapDump, String> {
        let offset = *self.dumps.get(ordinal as usize).ok_or_else(|| format!("no dump {ordinal} ({} in the recording)", self.dumps.len()))?;
        self.snapshots.dump_at(offset)
    }

    /// Snapshot `ordinal`, decoded from the last one decoded or the keyframe before it.
    pub fn snapshot(&self, ordinal: u32) -> Option<Snapshot> {
        self.snapshots.get(ordinal)
    }

    /// Snapshots known to be impossible to rebuild: found while reading, or since, by `snapshot`.
    pub fn lost_snapshots(&self) -> usize {
        self.snapshots.lost().max(self.lost_at_open)
    }

    /// Checks, front to back, that every snapshot can be rebuilt: its record reads and its delta
    /// follows the snapshot before it (what `inspect` reports). Returns how many cannot.
    pub fn verify(&self) -> usize {
        self.snapshots.verify();
        self.lost_snapshots()
    }

    /// The first snapshot that cannot be rebuilt (as far as is known): ordinal, record offset.
    pub fn first_lost_snapshot(&self) -> Option<(u32, u64)> {
        self.snapshots.first_lost()
    }

    /// The snapshot store, for a viewer that keeps the recording open.
    pub fn into_snapshots(self) -> Snapshots {
        self.snapshots
    }
}

/// Whether a checked record found while hunting after damage starts like one of ours.
fn plausible(body: &[u8]) -> bool {
    matches!(body.first(), Some(1..=63))
}

fn parse_index(body: &[u8]) -> Result<(Vec<IndexEntry>, Vec<u64>), DecodeError> {
    let mut rd = Reader::new(body);
    rd.u8("kind")?;
    rd.varint("time")?;
    // Each entry takes at least 10 bytes: the count cannot exceed what the record holds.
    let n = rd.count("snapshots", body.len() as u64 / 10)?;
    let mut snapshots = Vec::with_capacity(n);
    let mut offset = 0u64;
    for _ in 0..n {
        offset = offset.checked_add(rd.varint("offset")?).ok_or_else(|| rd.error("offset overflows"))?;
        let at = rd.varint("time")?;
        let device_ms = read_device_ms(&mut rd)?;
        let source = Source::from_code(rd.u8("source")?).ok_or_else(|| rd.error("unknown snapshot source"))?;
        let keyframe = rd.u8("keyframe")? != 0;
        let summary = Summary::read(&mut rd)?;
        snapshots.push(IndexEntry { offset, at, device_ms, source, keyframe, summary });
    }
    let n = rd.count("other records", rd.remaining() as u64)?;
    let mut others = Vec::with_capacity(n);
    let mut offset = 0u64;
    for _ in 0..n {
        offset = offset.checked_add(rd.varint("offset")?).ok_or_else(|| rd.error("offset overflows"))?;
        others.push(offset);
    }
    if !rd.is_empty() {
        return Err(rd.error("bytes after the index"));
    }
    Ok((snapshots, others))
}


#[cfg(test)]
mod tests {
    use super::*;
    use heapscope_protocol::synth;
    use heapscope_protocol::wire::Event;

    fn entries() -> Vec<Entry> {
        let mut heap = synth::snapshot(1, 16, 1, 7460);
        let mut out = vec![Entry::Segment { at: 0, reason: SegmentReason::Start, detail: "test".into() }];
        for i in 0..150u64 {
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

    fn written(entries: &[Entry], close: bool) -> Vec<u8> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let path = tmp(&format!("w{}", N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
        write(&path, entries, close);
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        bytes
    }

    /// (offset, end) of every record of an undamaged file.
    fn records(bytes: &[u8]) -> Vec<(u64, u64)> {
        let backing = Backing::Memory(bytes.to_vec().into());
        let mut win = Window::new(&backing, bytes.len() as u64);
        let mut at = HEADER_LEN as u64;
        let mut out = Vec::new();
        while let Ok(Ok((_, next))) = checked_record(&mut win, Framing { version: bytes[7] }, at) {
            out.push((at, next));
            at = next;
        }
        out
    }

    fn check_round_trip(rec: &Recording, input: &[Entry]) {
        let mut ordinal = 0;
        for (stored, original) in rec.entries.iter().zip(input) {
            match (stored, original) {
                (Stored::Snapshot { at, device_ms, source, ordinal: o, summary }, Entry::Snapshot { at: a2, device_ms: d2, source: s2, snapshot }) => {
                    assert_eq!((at, device_ms, source, *o), (a2, d2, s2, ordinal));
                    assert_eq!(*summary, Summary::of(snapshot));
                    assert!(rec.snapshot(*o).as_ref() == Some(&**snapshot), "snapshot {o}");
                    ordinal += 1;
                }
                (Stored::Entry(e), original) => assert_eq!(e, original),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(rec.entries.len(), input.len());
    }

    #[test]
    fn round_trip_from_the_index_and_by_reading_every_record() {
        let input = entries();
        let closed = written(&input, true);
        let rec = Recording::from_bytes(closed.clone()).unwrap();
        assert!(rec.closed && rec.from_index);
        assert_eq!(rec.truncated, None);
        assert_eq!(rec.meta, "{\"test\":true}");
        assert_eq!(rec.snapshot_count(), 150);
        assert_eq!(rec.duration, 149_002, "the last entry is later than the time given to finish");
        check_round_trip(&rec, &input);
        // Backwards and jumping, not only forwards.
        for o in [149, 3, 77, 76, 0, 140] {
            let Entry::Snapshot { snapshot, .. } = input.iter().filter(|e| matches!(e, Entry::Snapshot { .. })).nth(o).unwrap() else { panic!() };
            assert!(rec.snapshot(o as u32).as_ref() == Some(&**snapshot), "snapshot {o}");
        }
        let open = written(&input, false);
        let rec = Recording::from_bytes(open).unwrap();
        assert!(!rec.closed && !rec.from_index);
        check_round_trip(&rec, &input);
        assert_eq!(rec.lost_snapshots(), 0);
    }

    /// `entries()` written with heap dumps among them, as `(file bytes, dump times)`.
    fn written_with_dumps(close: bool) -> (Vec<u8>, Vec<HostMicros>) {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let path = tmp(&format!("d{}", N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
        let mut w = RecordingWriter::create(&path, "{}").unwrap();
        let mut times = Vec::new();
        for (i, e) in entries().iter().enumerate() {
            w.append(e).unwrap();
            if i == 30 || i == 200 {
                w.append_dump(e.at(), &heapscope_objects::synth::example()).unwrap();
                times.push(e.at());
            }
        }
        if close {
            w.finish(99_999).unwrap();
        }
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        (bytes, times)
    }

    #[test]
    fn heap_dumps_are_stored_beside_snapshots_and_read_back_from_the_index_and_by_scanning() {
        let example = heapscope_objects::synth::example();
        for close in [true, false] {
            let (bytes, times) = written_with_dumps(close);
            let rec = Recording::from_bytes(bytes).unwrap();
            assert_eq!(rec.from_index, close);
            assert_eq!(rec.dump_count(), 2, "closed: {close}");
            assert_eq!(rec.snapshot_count(), 150);
            let stored: Vec<(HostMicros, u32)> =
                rec.entries.iter().filter_map(|e| if let Stored::Dump { at, ordinal, .. } = e { Some((*at, *ordinal)) } else { None }).collect();
            assert_eq!(stored, vec![(times[0], 0), (times[1], 1)], "in the timeline where they were taken");
            for i in 0..2 {
                assert_eq!(rec.dump(i).unwrap(), example, "dump {i}, closed: {close}");
            }
            assert!(rec.dump(2).is_err());
            assert_eq!(rec.damage, Damage::default());
        }
    }

    #[test]
    fn a_damaged_dump_record_is_skipped_and_counted() {
        let (mut bytes, _) = written_with_dumps(false);
        let at = records(&bytes).into_iter().find(|&(o, _)| bytes[o as usize + 6] == kind::DUMP).unwrap().0 as usize;
        bytes[at + 40] ^= 0xFF;
        let rec = Recording::from_bytes(bytes).unwrap();
        assert_eq!(rec.dump_count(), 1);
        assert_eq!(rec.damage.stretches, 1);
        assert_eq!(rec.snapshot_count(), 150, "everything else is kept");
    }

    #[test]
    fn deltas_between_keyframes_and_a_keyframe_after_a_gap() {
        let input = entries();
        let path = tmp("kf");
        let mut w = RecordingWriter::create(&path, "{}").unwrap();
        let keyframes: Vec<usize> = input
            .iter()
            .filter_map(|e| w.append(e).unwrap())
            .enumerate()
            .filter(|(_, wr)| wr.keyframe)
            .map(|(i, _)| i)
            .collect();
        let _ = std::fs::remove_file(&path);
        assert_eq!(keyframes[0], 0);
        assert!(keyframes.contains(&41), "a keyframe after the gap: {keyframes:?}");
        assert!(keyframes.windows(2).all(|k| k[1] - k[0] <= KEYFRAME_EVERY as usize), "{keyframes:?}");
        assert!(keyframes.len() < 20, "mostly deltas: {keyframes:?}");
    }

    #[test]
    fn a_recording_cut_anywhere_in_its_last_record_keeps_everything_before() {
        let input = entries();
        let full = written(&input, false);
        let whole = Recording::from_bytes(full.clone()).unwrap();
        let last_start = records(&full).last().unwrap().0 as usize;
        for cut in last_start..full.len() {
            let rec = Recording::from_bytes(full[..cut].to_vec()).unwrap();
            assert_eq!(rec.entries.len(), whole.entries.len() - 1, "cut at {cut}");
            let t = rec.truncated.as_ref().map(|t| t.offset);
            assert_eq!(t, if cut == last_start { None } else { Some(last_start as u64) }, "cut at {cut}");
            assert_eq!(rec.damage, Damage::default());
        }
    }

    #[test]
    fn a_damaged_record_is_skipped_and_counted_and_the_rest_kept() {
        for close in [false, true] {
            let input = entries();
            let mut bytes = written(&input, close);
            let whole = Recording::from_bytes(bytes.clone()).unwrap();
            let recs = records(&bytes);
            // A console record in the middle of the file.
            let (victim, end) = *recs.iter().find(|(o, e)| {
                let body = &bytes[*o as usize + 6..*e as usize - 4];
                body[0] == kind::CONSOLE && body.ends_with(b"line 60\r\n")
            }).unwrap();
            bytes[victim as usize + 9] ^= 0x20;
            let rec = Recording::from_bytes(bytes).unwrap();
            assert_eq!(rec.truncated, None);
            assert_eq!(rec.damage.stretches, 1);
            assert_eq!(rec.damage.first.as_ref().unwrap().0, victim);
            assert!(rec.damage.first.as_ref().unwrap().1.contains("CRC"), "{:?}", rec.damage);
            // Read front to back or by the index, the skipped bytes are the damaged record's.
            assert_eq!(rec.damage.bytes, end - victim, "closed: {close}");
            assert_eq!(rec.entries.len(), whole.entries.len() - 1, "only the damaged record is lost");
            assert_eq!(rec.snapshot_count(), 150);
            assert_eq!(rec.verify(), 0);
        }
    }

    #[test]
    fn a_damaged_delta_loses_only_the_snapshots_up_to_the_next_keyframe() {
        let input = entries();
        let path = tmp("delta-damage");
        let mut w = RecordingWriter::create(&path, "{}").unwrap();
        let places: Vec<Written> = input.iter().filter_map(|e| w.append(e).unwrap()).collect();
        drop(w);
        let mut bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let next_keyframe = (11..places.len()).find(|&i| places[i].keyframe).unwrap();
        assert!(!places[10].keyframe && !places[11].keyframe);
        bytes[places[10].offset as usize + 40] ^= 1;
        let rec = Recording::from_bytes(bytes).unwrap();
        assert_eq!(rec.damage.stretches, 1);
        assert_eq!(rec.snapshot_count(), 149);
        let lost = next_keyframe - 11;
        assert_eq!(rec.lost_snapshots(), lost, "the deltas after the damaged one up to keyframe {next_keyframe}");
        assert_eq!(rec.verify(), lost);
        assert!(rec.snapshot(9).is_some() && rec.snapshot(10).is_none() && rec.snapshot(next_keyframe as u32 - 1).is_some());
    }

    #[test]
    fn the_file_is_synced_at_every_keyframe() {
        let input = entries();
        let path = tmp("sync");
        let mut w = RecordingWriter::create(&path, "{}").unwrap();
        let keyframes = input.iter().filter_map(|e| w.append(e).unwrap()).filter(|p| p.keyframe).count();
        assert!(keyframes >= 2);
        assert_eq!(w.syncs as usize, keyframes, "one sync per keyframe (and one more at close)");
        w.finish(1).unwrap();
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_end_time_is_the_recordings_length() {
        let input = entries();
        let path = tmp("len");
        let mut w = RecordingWriter::create(&path, "{}").unwrap();
        for e in &input {
            w.append(e).unwrap();
        }
        w.finish(250_000).unwrap();
        let rec = Recording::open(&path).unwrap();
        assert_eq!(rec.duration, 250_000);
        // A writer closed with no time (as `attach` did) still ends at its last entry.
        let mut w = RecordingWriter::create(&path, "{}").unwrap();
        for e in &input {
            w.append(e).unwrap();
        }
        w.finish(0).unwrap();
        let rec = Recording::open(&path).unwrap();
        assert_eq!(rec.duration, 149_002);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn version_1_recordings_still_open() {
        let demo = include_bytes!("../assets/demo.hsr");
        assert_eq!(demo[7], 1);
        let rec = Recording::from_bytes(demo.to_vec()).unwrap();
        assert!(rec.closed);
        assert_eq!(rec.snapshot_count(), 47);
        assert_eq!(rec.verify(), 0);
        assert_eq!(rec.damage, Damage::default());
        let last = rec.snapshot(46).unwrap();
        let Some(Stored::Snapshot { summary, .. }) = rec.entries.iter().rev().find(|e| matches!(e, Stored::Snapshot { .. })) else { panic!() };
        assert_eq!(Summary::of(&last), *summary);
        assert_eq!(summary.used, 4128);
    }

    #[test]
    fn a_growing_recording_is_read_back_while_written() {
        let input = entries();
        let path = tmp("follow");
        let mut w = RecordingWriter::create(&path, "{}").unwrap();
        let mut snaps = Snapshots::follow(&path).unwrap();
        for e in &input {
            if let Some(place) = w.append(e).unwrap() {
                snaps.push(place);
                let Entry::Snapshot { snapshot, .. } = e else { panic!() };
                assert!(snaps.get(snaps.len() as u32 - 1).as_ref() == Some(&**snapshot));
            }
        }
        assert!(snaps.get(5).is_some());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn not_a_recording() {
        assert!(matches!(Recording::from_bytes(b"GC: total".to_vec()), Err(RecordingError::NotARecording)));
        assert!(matches!(Recording::from_bytes(b"HSCOPE\x00\x09".to_vec()), Err(RecordingError::Version(9))));
    }
}
