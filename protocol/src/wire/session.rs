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
            let new_chunks = chunks(area, chunk_blocks);
            let chunks = match old {
                Some(old) => new_chunks.into_iter().zip(chunks(old, chunk_blocks)).filter(|(n, o)| n != o).map(|(n, _)| n).collect(),
                None => new_chunks,
            };
            DeltaArea { pool_start: area.pool_start(), blocks: area.blocks(), chunks }
        })
        .collect();
    Delta { base_seq, chunk_blocks, areas, figures: current.reported.clone() }
}

/// An area cut into chunks of `chunk_blocks` blocks, with the type codes of each chunk's heads.
fn chunks(area: &Area, chunk_blocks: usize) -> Vec<Chunk> {
    let atb = area.kinds().atb();
    let bytes_per_chunk = chunk_blocks / 4;
    let mut type_index = 0;
    atb.chunks(bytes_per_chunk)
        .enumerate()
        .map(|(index, bytes)| {
            let heads = heads_in(bytes);
            let codes = area.types()[type_index..type_index + heads].iter().map(|t| t.code()).collect();
            type_index += heads;
            Chunk { index, atb: bytes.to_vec(), codes }
        })
        .collect()
}

/// A frame that cannot be turned into a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// A delta whose base snapshot was not received (attached mid-stream, or frames lost).
    MissingBase { base_seq: u16 },
    /// A delta naming an area its base lacks without sending all of that area's chunks.
    IncompleteArea { pool_start: u64 },
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

/// Decoding state of one device stream.
#[derive(Clone, Debug, Default)]
pub struct Session {
    hello: Option<Hello>,
    /// Device type code → model type.
    type_map: Vec<ObjType>,
    last: Option<(u16, Snapshot)>,
}

impl Session {
    pub fn new() -> Session {
        Session { hello: None, type_map: ObjType::ALL.to_vec(), last: None }
    }

    pub fn hello(&self) -> Option<&Hello> {
        self.hello.as_ref()
    }

    /// The last snapshot and the sequence number of the frame that carried it.
    pub fn last_snapshot(&self) -> Option<(u16, &Snapshot)> {
        self.last.as_ref().map(|(seq, s)| (*seq, s))
    }

    /// Applies one frame. Deltas need the snapshot they are based on.
    pub fn apply(&mut self, frame: &Frame) -> Result<Update, SessionError> {
        match &frame.body {
            Body::Hello(h) => {
                // Names this decoder does not know are still allocations: count them as other.
                self.type_map = h
                    .type_names
                    .iter()
                    .map(|n| ObjType::from_name(n).unwrap_or(ObjType::Other))
                    .collect();
                self.hello = Some(h.clone());
                self.last = None;
                Ok(Update::Hello(h.clone()))
            }
            Body::Keyframe(k) => {
                let snapshot = self.snapshot_from_keyframe(k)?;
                self.last = Some((frame.seq, snapshot.clone()));
                Ok(Update::Snapshot(snapshot))
            }
            Body::Delta(d) => {
                let snapshot = self.snapshot_from_delta(d)?;
                self.last = Some((frame.seq, snapshot.clone()));
                Ok(Update::Snapshot(snapshot))
            }
            Body::Event(e) => Ok(Update::Event(e.clone())),
            Body::Dump(p) => Ok(Update::Dump(p.clone())),
        }
    }

    fn obj_type(&self, code: u8) -> ObjType {
        self.type_map.get(code as usize).copied().unwrap_or(ObjType::Other)
    }

    fn area(&self, pool_start: u64, block_size: u32, blocks: usize, atb: Vec<u8>, codes: &[u8]) -> Result<Area, SessionError> {
        let kinds = KindTable::from_atb(atb, blocks).expect("decoder sized the ATB from the block count");
        let types = codes.iter().map(|&c| self.obj_type(c)).collect();
        Area::new(pool_start, block_size, kinds, types).map_err(SessionError::Model)
    }

    fn snapshot_from_keyframe(&self, k: &Keyframe) -> Result<Snapshot, SessionError> {
        if k.block_size == 0 && !k.areas.is_empty() {
            return Err(SessionError::NoBlockSize);
        }
        let areas = k
            .areas
            .iter()
            .map(|a| self.area(a.pool_start, k.block_size, a.blocks, a.atb.clone(), &a.codes))
            .collect::<Result<_, _>>()?;
        Ok(Snapshot { areas, reported: k.figures.clone() })
    }

    fn snapshot_from_delta(&self, d: &Delta) -> Result<Snapshot, SessionError> {
        let base = match &self.last {
            Some((seq, snapshot)) if *seq == d.base_seq => snapshot,
            _ => return Err(SessionError::MissingBase { base_seq: d.base_seq }),
        };
        let block_size = base.block_size().or(self.hello.as_ref().map(|h| h.block_size)).unwrap_or(0);
        let mut areas = Vec::with_capacity(d.areas.len());
        for da in &d.areas {
            let old = base.areas.iter().find(|a| a.pool_start() == da.pool_start && a.blocks() == da.blocks);
            let mut old_chunks = old.map(|a| chunks(a, d.chunk_blocks)).unwrap_or_default().into_iter();
            let chunk_count = da.blocks.div_ceil(d.chunk_blocks);
            if old.is_none() && da.chunks.len() != chunk_count {
                return Err(SessionError::IncompleteArea { pool_start: da.pool_start });
            }
            if block_size == 0 {
                return Err(SessionError::NoBlockSize);
            }
            let mut atb = Vec::with_capacity(da.blocks.div_ceil(4));
            let mut codes = Vec::new();
            let mut changed = da.chunks.iter().peekable();
            for index in 0..chunk_count {
                let old_chunk = old_chunks.next();
                let chunk = match changed.peek() {
                    Some(c) if c.index == index => changed.next(),
                    _ => old_chunk.as_ref(),
                }
                .expect("a base area has every chunk");
                atb.extend_from_slice(&chunk.atb);
                codes.extend_from_slice(&chunk.codes);
            }
            areas.push(self.area(da.pool_start, block_size, da.blocks, atb, &codes)?);
        }
        Ok(Snapshot { areas, reported: d.figures.clone() })
    }
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
