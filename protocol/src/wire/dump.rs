//! Heap dump frames (type 5, SPEC 3.7): the words of every used block, names and roots.
//!
//! Block contents go word by word as one varint each, its low two bits a tag: 0 a small value
//! (`v >> 2`), 1 a pointer to a block start of the same area as a zigzag block delta from the
//! word's own block, 2 a raw word (the next `word_size` bytes, little-endian), 3 a run of
//! `v >> 2` zero words.

use super::codec::{DecodeError, Reader, Writer};

pub mod part {
    pub const BEGIN: u8 = 0;
    pub const BLOCKS: u8 = 1;
    pub const NAME: u8 = 2;
    pub const END: u8 = 3;
}

/// What a [`DumpPart::Name`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// A built-in type (outside the heap).
    Type,
    Module,
    /// A module global; the prefix is its module (empty for `__main__`).
    Global,
    /// A class defined at run time.
    Class,
    /// A word the GC marks from (VM state, stack).
    Root,
}

impl NameKind {
    pub fn code(self) -> u8 {
        match self {
            NameKind::Type => 0,
            NameKind::Module => 1,
            NameKind::Global => 2,
            NameKind::Class => 3,
            NameKind::Root => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<NameKind> {
        Some(match code {
            0 => NameKind::Type,
            1 => NameKind::Module,
            2 => NameKind::Global,
            3 => NameKind::Class,
            4 => NameKind::Root,
            _ => return None,
        })
    }
}

/// One frame of a dump. A dump is: `Begin`, a keyframe (the layout of the same moment), `Blocks`
/// for every run of used blocks, `Name`s, `End`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DumpPart {
    Begin { word_size: u32, block_size: u32, mem_free: u64 },
    Blocks(DumpBlocks),
    Name { kind: NameKind, address: u64, prefix: String, name: String },
    /// `frames`: frames of the dump, Begin and End included; `blocks`: blocks sent.
    End { frames: u32, blocks: u64 },
}

impl DumpPart {
    /// The name as the host shows it: `prefix.name`, or `name` without a prefix.
    pub fn full_name(prefix: &str, name: &str) -> String {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    }
}

/// Blocks `first .. first + count` of the area at `pool_start` (of `area_blocks` blocks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpBlocks {
    pub word_size: u32,
    pub block_size: u32,
    pub pool_start: u64,
    pub area_blocks: usize,
    pub first: usize,
    /// `count * block_size` bytes, as the device holds them.
    pub bytes: Vec<u8>,
}

impl DumpBlocks {
    pub fn count(&self) -> usize {
        self.bytes.len() / self.block_size as usize
    }

    pub fn address(&self) -> u64 {
        self.pool_start + self.first as u64 * u64::from(self.block_size)
    }
}

fn word(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0, |v, &b| (v << 8) | u64::from(b))
}

pub(super) fn write(w: &mut Writer, p: &DumpPart) {
    match p {
        DumpPart::Begin { word_size, block_size, mem_free } => {
            w.u8(part::BEGIN);
            w.varint(u64::from(*word_size));
            w.varint(u64::from(*block_size));
            w.varint(*mem_free);
        }
        DumpPart::Blocks(b) => {
            w.u8(part::BLOCKS);
            w.varint(u64::from(b.word_size));
            w.varint(u64::from(b.block_size));
            w.varint(b.pool_start);
            w.varint(b.area_blocks as u64);
            w.varint(b.first as u64);
            w.varint(b.count() as u64);
            write_words(w, b);
        }
        DumpPart::Name { kind, address, prefix, name } => {
            w.u8(part::NAME);
            w.u8(kind.code());
            w.varint(*address);
            w.str(prefix);
            w.str(name);
        }
        DumpPart::End { frames, blocks } => {
            w.u8(part::END);
            w.varint(u64::from(*frames));
            w.varint(*blocks);
        }
    }
}

fn write_words(w: &mut Writer, b: &DumpBlocks) {
    let ws = b.word_size as usize;
    let bs = u64::from(b.block_size);
    let pool_end = b.pool_start + b.area_blocks as u64 * bs;
    let small_limit = 1u64 << (7 * b.word_size - 2);
    let words: Vec<u64> = b.bytes.chunks_exact(ws).map(word).collect();
    let per_block = b.block_size as usize / ws;
    let mut i = 0;
    while i < words.len() {
        let v = words[i];
        if v == 0 {
            let n = words[i..].iter().take_while(|&&x| x == 0).count();
            if n >= 2 {
                w.varint(((n as u64) << 2) | 3);
                i += n;
            } else {
                w.varint(0);
                i += 1;
            }
            continue;
        }
        if v >= b.pool_start && v < pool_end && (v - b.pool_start).is_multiple_of(bs) {
            let delta = ((v - b.pool_start) / bs) as i64 - (b.first + i / per_block) as i64;
            let zigzag = if delta < 0 { ((-(delta + 1)) as u64) << 1 | 1 } else { (delta as u64) << 1 };
            w.varint((zigzag << 2) | 1);
        } else if v < small_limit {
            w.varint(v << 2);
        } else {
            w.u8(2);
            w.bytes(&b.bytes[i * ws..(i + 1) * ws]);
        }
        i += 1;
    }
}

/// Most blocks one frame may carry (a 4 MiB body holds no more words than this).
const MAX_FRAME_BLOCKS: u64 = 1 << 22;

pub(super) fn read(r: &mut Reader<'_>) -> Result<DumpPart, DecodeError> {
    Ok(match r.u8("dump part")? {
        part::BEGIN => {
            let word_size = read_word_size(r)?;
            let block_size = r.count("block size", 1 << 16)? as u32;
            DumpPart::Begin { word_size, block_size, mem_free: r.varint("gc.mem_free()")? }
        }
        part::BLOCKS => {
            let word_size = read_word_size(r)?;
            let at = r.offset();
            let block_size = r.count("block size", 1 << 16)? as u32;
            if block_size == 0 || !block_size.is_multiple_of(word_size) {
                return Err(DecodeError::new(at, format!("block size {block_size} is not a multiple of the word size {word_size}")));
            }
            let pool_start = r.varint("pool start")?;
            let area_blocks = r.count("area blocks", 1 << 28)?;
            let at = r.offset();
            let first = r.count("first block", 1 << 28)?;
            let count = r.count("block count", MAX_FRAME_BLOCKS)?;
            if first + count > area_blocks {
                return Err(DecodeError::new(at, format!("blocks {first}+{count} past the area's {area_blocks}")));
            }
            let ws = word_size as usize;
            let per_block = (block_size / word_size) as usize;
            let total = count * per_block;
            let mut bytes = Vec::with_capacity(total * ws);
            let bs = u64::from(block_size);
            while bytes.len() < total * ws {
                let i = bytes.len() / ws;
                let at = r.offset();
                let v = r.varint("word")?;
                match v & 3 {
                    0 => bytes.extend_from_slice(&(v >> 2).to_le_bytes()[..ws]),
                    1 => {
                        let z = v >> 2;
                        let delta = if z & 1 == 1 { -((z >> 1) as i64) - 1 } else { (z >> 1) as i64 };
                        let block = (first + i / per_block) as i64 + delta;
                        if block < 0 || block as u64 >= area_blocks as u64 {
                            return Err(DecodeError::new(at, format!("pointer to block {block}, outside the area's {area_blocks}")));
                        }
                        bytes.extend_from_slice(&(pool_start + block as u64 * bs).to_le_bytes()[..ws]);
                    }
                    2 => bytes.extend_from_slice(r.take(ws, "raw word")?),
                    _ => {
                        let n = (v >> 2) as usize;
                        if n == 0 || n > total - i {
                            return Err(DecodeError::new(at, format!("run of {n} zero words, {} left in the frame", total - i)));
                        }
                        bytes.resize(bytes.len() + n * ws, 0);
                    }
                }
            }
            DumpPart::Blocks(DumpBlocks { word_size, block_size, pool_start, area_blocks, first, bytes })
        }
        part::NAME => {
            let at = r.offset();
            let kind = NameKind::from_code(r.u8("name kind")?).ok_or_else(|| DecodeError::new(at, "unknown name kind"))?;
            DumpPart::Name { kind, address: r.varint("address")?, prefix: r.str("name prefix")?, name: r.str("name")? }
        }
        part::END => DumpPart::End {
            frames: r.count("dump frames", u64::from(u32::MAX))? as u32,
            blocks: r.varint("dump blocks")?,
        },
        other => return Err(r.error(format!("unknown dump part {other}"))),
    })
}

fn read_word_size(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    let at = r.offset();
    match r.varint("word size")? {
        4 => Ok(4),
        8 => Ok(8),
        other => Err(DecodeError::new(at, format!("word size {other} (4 or 8)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode_body, encode_body, Body, Frame};
    use super::*;

    fn roundtrip(part: DumpPart) -> usize {
        let frame = Frame { seq: 3, device_ms: 4, body: Body::Dump(part) };
        let body = encode_body(&frame);
        assert_eq!(decode_body(&body).unwrap(), frame);
        body.len()
    }

    #[test]
    fn words_round_trip_in_every_tag() {
        let mut bytes = Vec::new();
        // A list head: type pointer (raw), length (small), allocation (pointer forward, back),
        // zeros, a lone zero, a large value.
        for w in [0x3f40_1234u32, 3, 0x3ffb_0040, 0x3ffb_0000, 0, 0, 0, 0, 7, 0, 0xFFFF_FFFF, 0x3ffb_0010] {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        let n = roundtrip(DumpPart::Blocks(DumpBlocks {
            word_size: 4,
            block_size: 16,
            pool_start: 0x3ffb_0000,
            area_blocks: 100,
            first: 1,
            bytes,
        }));
        assert!(n < 48 + 12 + 8, "{n}");
        let bytes: Vec<u8> = [0x7fff_0000_1234u64, 0, 0, 0].iter().flat_map(|w| w.to_le_bytes()).collect();
        roundtrip(DumpPart::Blocks(DumpBlocks { word_size: 8, block_size: 32, pool_start: 0x7fff_0000_0000, area_blocks: 4, first: 3, bytes }));
        roundtrip(DumpPart::Begin { word_size: 4, block_size: 16, mem_free: 5000 });
        roundtrip(DumpPart::Name { kind: NameKind::Global, address: 0x3ffb_0040, prefix: "app".into(), name: "readings".into() });
        roundtrip(DumpPart::End { frames: 9, blocks: 300 });
    }

    #[test]
    fn damage_is_an_error() {
        let mut w = Writer::default();
        w.u8(part::BLOCKS);
        for v in [4, 16, 0x1000, 2, 1, 1] {
            w.varint(v);
        }
        w.varint((5 << 2) | 3); // a run of 5 zeros where 4 words are left
        let e = read(&mut Reader::new(&w.buf)).unwrap_err();
        assert!(e.message.contains("run of 5"), "{e:?}");
        let mut w = Writer::default();
        w.u8(part::BLOCKS);
        for v in [4, 16, 0x1000, 2, 1, 1] {
            w.varint(v);
        }
        w.varint((4 << 2) | 1); // block 1 + 2 = 3, outside 2 blocks
        assert!(read(&mut Reader::new(&w.buf)).unwrap_err().message.contains("outside"));
    }
}
