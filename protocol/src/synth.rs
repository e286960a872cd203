//! Synthetic heaps shaped like real ones, for tests and benchmarks: small objects packed at the
//! start, larger ones scattered, free holes between them. Deterministic for a seed; no
//! dependencies.

use crate::model::{Area, BlockKind, KindTable, ObjType, Snapshot};
use crate::text::cell;

/// An area written as a `mem_info(1)` row: `D===..h=S`. Panics on other characters.
pub fn pattern_area(pool_start: u64, block_size: u32, pattern: &str) -> Area {
    let mut kinds = KindTable::with_capacity(pattern.len());
    let mut types = Vec::new();
    for c in pattern.chars() {
        let (kind, obj_type) = cell(c).unwrap_or_else(|| panic!("{c:?} is not a mem_info layout character"));
        kinds.push(kind);
        types.extend(obj_type);
    }
    Area::new(pool_start, block_size, kinds, types).expect("a pattern has one type per head")
}

/// xorshift64*: small, fast, good enough for shaping test heaps.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// One area of `blocks` blocks. `fill` (0..=100) is roughly the percentage of blocks in use.
pub fn area(rng: &mut Rng, pool_start: u64, block_size: u32, blocks: usize, fill: u64) -> Area {
    let mut kinds = KindTable::with_capacity(blocks);
    let mut types = Vec::new();
    while kinds.len() < blocks {
        let left = blocks - kinds.len();
        if rng.below(100) < fill {
            // Allocation sizes: mostly 1-4 blocks, sometimes tens, rarely hundreds.
            let len = match rng.below(100) {
                0..=69 => 1 + rng.below(4),
                70..=98 => 1 + rng.below(40),
                _ => 1 + rng.below(300),
            } as usize;
            let len = len.min(left);
            kinds.push(BlockKind::Head);
            kinds.push_run(BlockKind::Tail, len - 1);
            types.push(ObjType::ALL[rng.below(ObjType::ALL.len() as u64) as usize]);
        } else {
            // Holes: mostly crumbs between objects, now and then a long free stretch.
            let longest = if rng.below(50) == 0 { 500 } else { 8 };
            let len = (1 + rng.below(longest) as usize).min(left);
            kinds.push_run(BlockKind::Free, len);
        }
    }
    Area::new(pool_start, block_size, kinds, types).expect("synthetic area is consistent")
}

/// A snapshot of `areas` areas sharing `total_blocks` blocks.
pub fn snapshot(seed: u64, block_size: u32, areas: usize, total_blocks: usize) -> Snapshot {
    let mut rng = Rng::new(seed);
    let fill = 20 + rng.below(75);
    let per_area = (total_blocks / areas.max(1)).max(1);
    let areas = (0..areas.max(1))
        .map(|i| {
            let pool_start = 0x3FFB_0000 + (i as u64) * 0x0100_0000;
            area(&mut rng, pool_start, block_size, per_area, fill)
        })
        .collect();
    Snapshot { areas, reported: Default::default() }
}

/// A changed copy: `changes` random blocks each either freed with their allocation or, if free,
/// made a new one-block allocation, as a program would between two snapshots.
pub fn mutate(snapshot: &Snapshot, seed: u64, changes: usize) -> Snapshot {
    let mut rng = Rng::new(seed);
    let mut out = snapshot.clone();
    for area in &mut out.areas {
        let mut kinds = area.kinds().clone();
        let mut types = area.types().to_vec();
        let heads_before = |kinds: &KindTable, block: usize| (0..block).filter(|&b| kinds.get(b).starts_allocation()).count();
        for _ in 0..changes {
            let block = rng.below(kinds.len() as u64) as usize;
            if kinds.get(block) == BlockKind::Free {
                if block + 1 < kinds.len() && kinds.get(block + 1) == BlockKind::Tail {
                    continue; // it would adopt a stray tail
                }
                types.insert(heads_before(&kinds, block), ObjType::Str);
                kinds.set(block, BlockKind::Head);
                continue;
            }
            let mut start = block;
            while start > 0 && kinds.get(start) == BlockKind::Tail {
                start -= 1;
            }
            if !kinds.get(start).starts_allocation() {
                continue;
            }
            types.remove(heads_before(&kinds, start));
            for b in start..kinds.run_end(start + 1, BlockKind::Tail) {
                kinds.set(b, BlockKind::Free);
            }
        }
        *area = Area::new(area.pool_start(), area.block_size(), kinds, types).expect("mutation keeps one type per head");
    }
    out
}

/// A keyframe body (before COBS) with a valid CRC whose `areas` areas each claim `blocks`
/// blocks, all free, in a few bytes of run-length code: hostile input for the decoder's limits
/// (64 areas of 2^28 blocks is 8 GB of table in about 1 KB).
pub fn claiming_keyframe_body(areas: u64, blocks: u64) -> Vec<u8> {
    use crate::wire::codec::{crc32, Writer};
    let mut w = Writer::default();
    w.u8(crate::wire::VERSION);
    w.u8(crate::wire::FrameType::Keyframe as u8);
    w.u16(7);
    w.u32(0);
    w.varint(16);
    w.varint(areas);
    for i in 0..areas {
        w.varint(0x1000_0000 * (i + 1));
        w.varint(blocks);
        // One run of free table bytes (`atb_op::FREE`) for the whole area.
        w.varint((blocks.div_ceil(4) - 1) << 2);
    }
    let crc = crc32(&w.buf);
    w.u32(crc);
    w.buf
}
