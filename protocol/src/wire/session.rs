//! Frames to snapshots and back: keyframes are whole snapshots, deltas apply to the snapshot of
//! an earlier frame, and the hello's type table names the device's type codes.

use std::fmt;

use super::{heads_in, Body, Chunk, Delta, DeltaArea, Event, Frame, Hello, Keyframe, WireArea};
use crate::model::{Area, KindTable, ModelError, ObjType, Snapshot};

/// The type table a device uses when it sends no hello: code `i` is `ObjType::ALL[i]`.
pub fn standard_type_names() -> Vec<String> {
    ObjType::ALL.iter().map(|t| t.name().to_string()).collect()
}

/// Default chunk size of deltas: 256 blocks (64 ATB bytes).
pub const DEFAULT_CHUNK_BLOCKS: usize = 256;

fn wire_area(area: &Area) -> WireArea {
    WireArea {
        pool_start: area.pool_start(),
        blocks: area.blocks(),
        atb: area.kinds().atb().to_vec(),
        codes: area.types().iter().map(|t| t.code()).collect(),
    }
}

/// A snapshot as a keyframe, with the standard type codes.
pub fn keyframe(snapshot: &Snapshot) -> Keyframe {
    Keyframe {
        block_size: snapshot.block_size().unwrap_or(0),
        areas: snapshot.areas.iter().map(wire_area).collect(),
        figures: snapshot.reported.clone(),
    }
}

/// The chunks of `current` that differ from `base` (all chunks of areas `base` lacks).
pub fn delta(base: &Snapshot, base_seq: u16, current: &Snapshot, chunk_blocks: usize) -> Delta {
    assert!(chunk_blocks > 0 && chunk_blocks.is_multiple_of(4), "chunk_blocks must be a positive multiple of 4");
    let areas = current
        .areas
        .iter()
        .map(|area| {
            let old = base.areas.iter().find(|a| a.pool_start() == area.pool_start() && a.blocks() == area.blocks());
            DeltaArea { pool_start: area.pool_start(), blocks: area.blocks(), chunks: changed_chunks(old, area, chunk_blocks) }
        })
        .collect();
    Delta { base_seq, chunk_blocks, areas, figures: current.reported.clone() }
}

/// The chunks of `area` whose table bytes or head types differ from `old`'s (every chunk
/// without `old`), with the type codes of each chunk's heads. Unchanged chunks cost a compare.
fn changed_chunks(old: Option<&Area>, area: &Area, chunk_blocks: usize) -> Vec<Chunk> {
    let bytes_per_chunk = chunk_blocks / 4;
    let (mut type_at, mut old_type_at) = (0, 0);
    let mut chunks = Vec::new();
    for (index, bytes) in area.kinds().atb().chunks(bytes_per_chunk).enumerate() {
        let heads = heads_in(bytes);
        let types = &area.types()[type_at..type_at + heads];
        type_at += heads;
        let same = old.is_some_and(|old| {
            let old_bytes = &old.kinds().atb()[index * bytes_per_chunk..index * bytes_per_chunk + bytes.len()];
            let old_heads = heads_in(old_bytes);
            let old_types = &old.types()[old_type_at..old_type_at + old_heads];
            old_type_at += old_heads;
            old_bytes == bytes && old_types == types
        });
        if !same {
            chunks.push(Chunk { index, atb: bytes.to_vec(), codes: types.iter().map(|t| t.code()).collect() });
        }
    }
    chunks
}

/// A frame that cannot be turned into a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// A delta whose base snapshot was not received (attached mid-stream, or frames lost).
    MissingBase { base_seq: u16 },
    /// A delta naming an area its base lacks without sending all of that area's chunks.
    IncompleteArea { pool_start: u64 },
    /// A chunk whose table or type codes do not fit its place (only a frame built by hand, never
    /// one the decoder accepted).
    BadChunk { pool_start: u64, index: usize },
    /// A snapshot before any block size is known.
    NoBlockSize,
    Model(ModelError),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::MissingBase { base_seq } => {
                write!(f, "delta against frame {base_seq}, which was not received; waiting for a keyframe")
            }
            SessionError::IncompleteArea { pool_start } => {
                write!(f, "delta brings area {pool_start:#x} without all of its chunks")
            }
            SessionError::BadChunk { pool_start, index } => {
                write!(f, "chunk {index} of area {pool_start:#x} does not fit its place")
            }
            SessionError::NoBlockSize => write!(f, "snapshot with block size 0"),
            SessionError::Model(e) => write!(f, "inconsistent snapshot: {e}"),
        }
    }
}

impl std::error::Error for SessionError {}

/// What one frame meant.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    Hello(Hello),
    Snapshot(Snapshot),
    Event(Event),
    /// A part of a heap dump: its layout comes as the keyframe after `Begin`.
    Dump(super::dump::DumpPart),
}

/// What one frame meant, borrowed from the session: the snapshot is the session's own, so
/// nothing is copied.
#[derive(Debug, PartialEq)]
pub enum Applied<'a> {
    Hello(&'a Hello),
    Snapshot(&'a Snapshot),
    Event(Event),
    Dump(super::dump::DumpPart),
}

/// Decoding state of one device stream.
#[derive(Clone, Debug, Default)]
pub struct Session {
    hello: Option<Hello>,
    /// Device type code → model type.
    type_map: Vec<ObjType>,
    last: Option<(u16, Snapshot)>,
    /// A spare type list, swapped with an area's when a delta rewrites it.
    spare_types: Vec<ObjType>,
}

impl Session {
    pub fn new() -> Session {
        Session { hello: None, type_map: ObjType::ALL.to_vec(), last: None, spare_types: Vec::new() }
    }

    pub fn hello(&self) -> Option<&Hello> {
        self.hello.as_ref()
    }

    /// The last snapshot and the sequence number of the frame that carried it.
    pub fn last_snapshot(&self) -> Option<(u16, &Snapshot)> {
        self.last.as_ref().map(|(seq, s)| (*seq, s))
    }

    /// Applies one frame and returns an owned copy of what it meant. Deltas need the snapshot
    /// they are based on. [`advance`](Self::advance) does the same without the copy.
    pub fn apply(&mut self, frame: &Frame) -> Result<Update, SessionError> {
        Ok(match self.advance(frame.clone())? {
            Applied::Hello(h) => Update::Hello(h.clone()),
            Applied::Snapshot(s) => Update::Snapshot(s.clone()),
            Applied::Event(e) => Update::Event(e),
            Applied::Dump(p) => Update::Dump(p),
        })
    }

    /// Applies one frame, taking it: a keyframe's tables become the snapshot's, a delta's chunks
    /// are written into the last snapshot in place. On error the session is unchanged.
    pub fn advance(&mut self, frame: Frame) -> Result<Applied<'_>, SessionError> {
        match frame.body {
            Body::Hello(h) => {
                // Names this decoder does not know are still allocations: count them as other.
                self.type_map = h
                    .type_names
                    .iter()
                    .map(|n| ObjType::from_name(n).unwrap_or(ObjType::Other))
                    .collect();
                self.last = None;
                Ok(Applied::Hello(self.hello.insert(h)))
            }
            Body::Keyframe(k) => {
                let snapshot = self.snapshot_from_keyframe(k)?;
                let (_, snapshot) = self.last.insert((frame.seq, snapshot));
                Ok(Applied::Snapshot(snapshot))
            }
            Body::Delta(d) => {
                self.apply_delta(frame.seq, d)?;
                Ok(Applied::Snapshot(&self.last.as_ref().expect("a delta applies to the last snapshot").1))
            }
            Body::Event(e) => Ok(Applied::Event(e)),
            Body::Dump(p) => Ok(Applied::Dump(p)),
        }
    }

    fn obj_type(&self, code: u8) -> ObjType {
        self.type_map.get(code as usize).copied().unwrap_or(ObjType::Other)
    }

    fn area(&self, pool_start: u64, block_size: u32, blocks: usize, atb: Vec<u8>, codes: &[u8]) -> Result<Area, SessionError> {
        let kinds = KindTable::from_atb(atb, blocks).ok_or(SessionError::BadChunk { pool_start, index: 0 })?;
        let types = codes.iter().map(|&c| self.obj_type(c)).collect();
        Area::new(pool_start, block_size, kinds, types).map_err(SessionError::Model)
    }

    fn snapshot_from_keyframe(&self, k: Keyframe) -> Result<Snapshot, SessionError> {
        if k.block_size == 0 && !k.areas.is_empty() {
            return Err(SessionError::NoBlockSize);
        }
        let areas = k
            .areas
            .into_iter()
            .map(|a| self.area(a.pool_start, k.block_size, a.blocks, a.atb, &a.codes))
            .collect::<Result<_, _>>()?;
        Ok(Snapshot { areas, reported: k.figures })
    }

    fn apply_delta(&mut self, seq: u16, d: Delta) -> Result<(), SessionError> {
        let base = match &self.last {
            Some((base_seq, snapshot)) if *base_seq == d.base_seq => snapshot,
            _ => return Err(SessionError::MissingBase { base_seq: d.base_seq }),
        };
        let block_size = base.block_size().or(self.hello.as_ref().map(|h| h.block_size)).unwrap_or(0);
        // Everything is checked before anything changes, so a bad delta leaves the base intact.
        let mut sources = Vec::with_capacity(d.areas.len());
        for da in &d.areas {
            let old = base.areas.iter().position(|a| a.pool_start() == da.pool_start && a.blocks() == da.blocks);
            check_chunks(da, d.chunk_blocks, old.is_some())?;
            if block_size == 0 {
                return Err(SessionError::NoBlockSize);
            }
            if block_size < 4 || !block_size.is_power_of_two() {
                return Err(SessionError::Model(ModelError::BlockSize(block_size)));
            }
            sources.push(old);
        }
        let type_map = std::mem::take(&mut self.type_map);
        let mut spare = std::mem::take(&mut self.spare_types);
        let (last_seq, snapshot) = self.last.as_mut().expect("checked above");
        let mut old_areas: Vec<Option<Area>> = std::mem::take(&mut snapshot.areas).into_iter().map(Some).collect();
        let obj_type = |c: &u8| type_map.get(*c as usize).copied().unwrap_or(ObjType::Other);
        for (da, old) in d.areas.iter().zip(sources) {
            let area = match old.and_then(|i| old_areas[i].take()) {
                Some(mut area) => {
                    patch_area(&mut area, da, d.chunk_blocks, &obj_type, &mut spare);
                    area
                }
                None => {
                    let mut atb = Vec::with_capacity(da.blocks.div_ceil(4));
                    let mut types = Vec::new();
                    for c in &da.chunks {
                        atb.extend_from_slice(&c.atb);
                        types.extend(c.codes.iter().map(obj_type));
                    }
                    let kinds = KindTable::from_atb(atb, da.blocks).expect("chunk sizes checked");
                    Area::new(da.pool_start, block_size, kinds, types).expect("block size and type counts checked")
                }
            };
            snapshot.areas.push(area);
        }
        snapshot.reported = d.figures;
        *last_seq = seq;
        self.type_map = type_map;
        self.spare_types = spare;
        Ok(())
    }
}

/// A delta area's chunks: in increasing order inside the area, each with the table bytes of its
/// place and one type code per head; all of them when the base lacks the area.
fn check_chunks(da: &DeltaArea, chunk_blocks: usize, in_base: bool) -> Result<(), SessionError> {
    let chunk_count = da.blocks.div_ceil(chunk_blocks.max(1));
    if !in_base && da.chunks.len() != chunk_count {
        return Err(SessionError::IncompleteArea { pool_start: da.pool_start });
    }
    let mut next = 0;
    for c in &da.chunks {
        let bad = SessionError::BadChunk { pool_start: da.pool_start, index: c.index };
        if chunk_blocks == 0 || !chunk_blocks.is_multiple_of(4) || c.index < next || c.index >= chunk_count {
            return Err(bad);
        }
        let first = c.index * chunk_blocks;
        let end = (first + chunk_blocks).min(da.blocks);
        let past_end = match end % 4 {
            0 => 0,
            used => c.atb.last().map_or(0, |b| b >> (2 * used)),
        };
        if c.atb.len() != end.div_ceil(4) - first / 4 || c.codes.len() != heads_in(&c.atb) || past_end != 0 {
            return Err(bad);
        }
        next = c.index + 1;
    }
    Ok(())
}

/// Writes a delta's chunks into a base area's table in place, and its types through `spare`.
fn patch_area(area: &mut Area, da: &DeltaArea, chunk_blocks: usize, obj_type: &impl Fn(&u8) -> ObjType, spare: &mut Vec<ObjType>) {
    if da.chunks.is_empty() {
        return;
    }
    let (kinds, types) = area.parts_mut();
    let atb = kinds.atb_mut();
    let bytes_per_chunk = chunk_blocks / 4;
    spare.clear();
    spare.reserve(types.len());
    let (mut byte_at, mut type_at) = (0, 0);
    for c in &da.chunks {
        let start = c.index * bytes_per_chunk;
        let end = start + c.atb.len();
        let kept = heads_in(&atb[byte_at..start]);
        spare.extend_from_slice(&types[type_at..type_at + kept]);
        type_at += kept + heads_in(&atb[start..end]);
        atb[start..end].copy_from_slice(&c.atb);
        spare.extend(c.codes.iter().map(obj_type));
        byte_at = end;
    }
    spare.extend_from_slice(&types[type_at..]);
    std::mem::swap(types, spare);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area(pool_start: u64, pattern: &str) -> Area {
        crate::synth::pattern_area(pool_start, 16, pattern)
    }

    fn frame(seq: u16, body: Body) -> Frame {
        Frame { seq, device_ms: 0, body }
    }

    #[test]
    fn deltas_carry_only_changed_chunks_and_rebuild_the_snapshot() {
        let base = Snapshot { areas: vec![area(0x1000, &"D==.".repeat(64))], ..Default::default() };
        let mut pattern = "D==.".repeat(64);
        pattern.replace_range(200..204, "S...");
        let current = Snapshot { areas: vec![area(0x1000, &pattern), area(0x9000, "S=..")], ..Default::default() };
        let d = delta(&base, 7, &current, 64);
        assert_eq!(d.areas[0].chunks.iter().map(|c| c.index).collect::<Vec<_>>(), [3]);
        assert_eq!(d.areas[1].chunks.len(), 1, "a new area is sent whole");

        let mut session = Session::new();
        session.apply(&frame(7, Body::Keyframe(keyframe(&base)))).unwrap();
        let Update::Snapshot(rebuilt) = session.apply(&frame(8, Body::Delta(d.clone()))).unwrap() else { panic!() };
        assert_eq!(rebuilt, current);

        // The same delta again no longer has its base.
        assert_eq!(session.apply(&frame(9, Body::Delta(d))), Err(SessionError::MissingBase { base_seq: 7 }));
    }

    #[test]
    fn deltas_apply_in_place_chain_after_chain_and_a_bad_one_changes_nothing() {
        let mut snap = crate::synth::snapshot(11, 16, 3, 30_000);
        let mut session = Session::new();
        session.advance(frame(0, Body::Keyframe(keyframe(&snap)))).unwrap();
        for seq in 1..20u16 {
            let next = crate::synth::mutate(&snap, u64::from(seq), 40);
            let d = delta(&snap, seq - 1, &next, 64);
            if seq == 10 {
                // A chunk whose table is one byte short: refused, and the base stays as it was.
                let mut bad = d.clone();
                let chunk = bad.areas[1].chunks.first_mut().expect("40 changes touch every area");
                chunk.atb.pop();
                let err = session.advance(frame(seq, Body::Delta(bad))).unwrap_err();
                assert!(matches!(err, SessionError::BadChunk { .. }), "{err}");
                assert_eq!(session.last_snapshot(), Some((seq - 1, &snap)));
            }
            let Applied::Snapshot(got) = session.advance(frame(seq, Body::Delta(d))).unwrap() else { panic!() };
            assert_eq!(got, &next, "delta {seq}");
            snap = next;
        }
    }

    #[test]
    fn the_hello_type_table_names_codes() {
        let mut session = Session::new();
        let hello = Hello {
            block_size: 16,
            interpreter: String::new(),
            platform: String::new(),
            areas: vec![],
            type_names: vec!["dict".into(), "frobnicator".into()],
        };
        session.apply(&frame(0, Body::Hello(hello))).unwrap();
        let k = Keyframe {
            block_size: 16,
            areas: vec![WireArea { pool_start: 0, blocks: 4, atb: vec![0x05], codes: vec![0, 1] }],
            figures: Default::default(),
        };
        let Update::Snapshot(s) = session.apply(&frame(1, Body::Keyframe(k))).unwrap() else { panic!() };
        assert_eq!(s.areas[0].types(), &[ObjType::Dict, ObjType::Other]);
    }
}
