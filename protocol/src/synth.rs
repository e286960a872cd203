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

/// A heap that a running program churns, one area: allocations go first-fit from the lowest
/// free block (as `gc_alloc` searches from `gc_last_free_atb_index`, which every free lowers),
/// objects die at random (young ones more often), sizes and types mixed as in a Python program
/// (strings, raw buffers such as list item arrays and dict tables, tuples, floats, instances, a
/// few larger bytearrays). Deterministic for a seed.
#[derive(Clone, Debug)]
pub struct Churn {
    rng: Rng,
    pool_start: u64,
    block_size: u32,
    kinds: KindTable,
    /// Type of the allocation whose head is at each block (meaningful at heads only).
    head_types: Vec<ObjType>,
    /// Head block of every live allocation, oldest first.
    live: Vec<usize>,
    used_blocks: usize,
    target_used: usize,
}

impl Churn {
    /// A heap of `blocks` blocks filled to about `used_percent` % of its blocks.
    pub fn new(seed: u64, pool_start: u64, block_size: u32, blocks: usize, used_percent: usize) -> Churn {
        let mut churn = Churn {
            rng: Rng::new(seed),
            pool_start,
            block_size,
            kinds: KindTable::new_free(blocks),
            head_types: vec![ObjType::Unknown; blocks],
            live: Vec::new(),
            used_blocks: 0,
            target_used: blocks * used_percent / 100,
        };
        // A heap that has run for a while: filled almost to the top, then most of what it
        // held died, leaving live objects and holes spread over all of it.
        while churn.used_blocks < blocks * 9 / 10 && churn.allocate() {}
        while churn.used_blocks > churn.target_used {
            let i = churn.rng.below(churn.live.len() as u64) as usize;
            churn.free_at(i);
        }
        churn
    }

    /// Between two snapshots: `allocations` new objects and about as many deaths, more or
    /// fewer to keep the heap near its target fill.
    pub fn step(&mut self, allocations: usize) {
        for _ in 0..allocations {
            self.allocate();
            if self.used_blocks > self.target_used || self.rng.below(2) == 0 {
                self.free_one();
            }
        }
    }

    fn size_and_type(&mut self) -> (usize, ObjType) {
        let r = self.rng.below(100);
        let (ty, max) = match r {
            0..=29 => (ObjType::Str, 3),
            30..=51 => (ObjType::Other, 6),
            52..=61 => (ObjType::Tuple, 2),
            62..=69 => (ObjType::Float, 1),
            70..=75 => (ObjType::List, 1),
            76..=80 => (ObjType::Dict, 2),
            81..=86 => (ObjType::Instance, 2),
            87..=90 => (ObjType::BoundMethod, 1),
            91..=93 => (ObjType::Closure, 2),
            94..=96 => (ObjType::Function, 3),
            _ => (ObjType::ByteArray, 24),
        };
        (1 + self.rng.below(max) as usize, ty)
    }

    /// One allocation, first fit; false if nothing fits.
    fn allocate(&mut self) -> bool {
        let (len, ty) = self.size_and_type();
        let n = self.kinds.len();
        let mut start = 0;
        while start < n {
            if self.kinds.get(start) != BlockKind::Free {
                start += 1;
                continue;
            }
            let end = self.kinds.run_end(start, BlockKind::Free);
            if end - start >= len {
                self.kinds.set(start, BlockKind::Head);
                for b in start + 1..start + len {
                    self.kinds.set(b, BlockKind::Tail);
                }
                self.head_types[start] = ty;
                self.live.push(start);
                self.used_blocks += len;
                return true;
            }
            start = end;
        }
        false
    }

    /// One object dies: mostly a young one.
    fn free_one(&mut self) {
        if self.live.is_empty() {
            return;
        }
        let n = self.live.len() as u64;
        let i = if self.rng.below(10) < 7 { n - 1 - self.rng.below(n.min(64)) } else { self.rng.below(n) } as usize;
        self.free_at(i);
    }

    fn free_at(&mut self, i: usize) {
        let head = self.live.remove(i);
        let end = self.kinds.run_end(head + 1, BlockKind::Tail);
        for b in head..end {
            self.kinds.set(b, BlockKind::Free);
        }
        self.used_blocks -= end - head;
    }

    /// The heap as a device would report it: the layout, types and the GC's figures.
    pub fn snapshot(&self) -> Snapshot {
        let types = (0..self.kinds.len()).filter(|&b| self.kinds.get(b).starts_allocation()).map(|b| self.head_types[b]).collect();
        let area = Area::new(self.pool_start, self.block_size, self.kinds.clone(), types).expect("churned heap is consistent");
        let areas = vec![area];
        let reported = crate::model::Reported {
            gc: Some(crate::metrics::gc_figures(&areas)),
            stack: Some(crate::model::StackFigures { used: 736, limit: Some(15_360) }),
            ..Default::default()
        };
        Snapshot { areas, reported }
    }
}
