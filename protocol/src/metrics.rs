//! Heap metrics: the numbers that explain a `MemoryError` while plenty seems free.

use crate::model::{Area, BlockKind, GcFigures, ObjType, Snapshot};

/// Counts of one area's blocks by kind and its longest free run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AreaMetrics {
    pub pool_start: u64,
    pub block_size: u32,
    pub blocks: usize,
    pub free_blocks: usize,
    pub head_blocks: usize,
    pub tail_blocks: usize,
    pub mark_blocks: usize,
    pub largest_free_blocks: usize,
}

/// Free runs grouped by length: bucket `k` holds runs of `2^k ..= 2^(k+1)-1` blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreeRunHistogram {
    pub buckets: Vec<HistogramBucket>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistogramBucket {
    /// Shortest run length (blocks) this bucket holds: a power of two.
    pub min_blocks: usize,
    pub runs: usize,
    /// Free blocks in those runs.
    pub blocks: usize,
}

impl FreeRunHistogram {
    fn add(&mut self, run: usize) {
        let bucket = run.ilog2() as usize;
        while self.buckets.len() <= bucket {
            let min_blocks = 1usize << self.buckets.len();
            self.buckets.push(HistogramBucket { min_blocks, ..Default::default() });
        }
        self.buckets[bucket].runs += 1;
        self.buckets[bucket].blocks += run;
    }
}

/// Bytes and allocation count of one object type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeUsage {
    pub obj_type: ObjType,
    pub allocations: usize,
    pub bytes: u64,
}

/// Everything computed from a snapshot's layout.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    pub areas: Vec<AreaMetrics>,
    pub used_bytes: u64,
    pub free_bytes: u64,
    /// Longest free run over all areas, in bytes: the largest allocation that can succeed
    /// without a collection or heap growth.
    pub largest_free_bytes: u64,
    /// `1 - largest_free / total_free`: 0 when all free memory is one run, near 1 when it is
    /// chopped into crumbs. 0 when nothing is free.
    pub fragmentation: f64,
    pub histogram: FreeRunHistogram,
    /// The GC's own summary figures, recomputed from the layout exactly as `gc_info()` does.
    pub recomputed: GcFigures,
    /// By object type, in [`ObjType`] order, types with no allocation left out.
    pub types: Vec<TypeUsage>,
}

/// Computes the metrics of a snapshot's layout (all zero for a summary-only snapshot).
pub fn compute(snapshot: &Snapshot) -> Metrics {
    let mut m = Metrics { recomputed: gc_figures(&snapshot.areas), ..Default::default() };
    let mut types = [(0usize, 0u64); ObjType::ALL.len()];
    let mut largest_free_bytes = 0;
    for area in &snapshot.areas {
        let bs = u64::from(area.block_size());
        let mut am = AreaMetrics {
            pool_start: area.pool_start(),
            block_size: area.block_size(),
            blocks: area.blocks(),
            ..Default::default()
        };
        for run in area.kinds().runs() {
            match run.kind {
                BlockKind::Free => {
                    am.free_blocks += run.len;
                    am.largest_free_blocks = am.largest_free_blocks.max(run.len);
                    m.histogram.add(run.len);
                }
                BlockKind::Head => am.head_blocks += run.len,
                BlockKind::Tail => am.tail_blocks += run.len,
                BlockKind::Mark => am.mark_blocks += run.len,
            }
        }
        for alloc in area.allocations() {
            let entry = &mut types[alloc.obj_type as usize];
            entry.0 += 1;
            entry.1 += alloc.blocks as u64 * bs;
        }
        m.free_bytes += am.free_blocks as u64 * bs;
        m.used_bytes += (am.head_blocks + am.tail_blocks + am.mark_blocks) as u64 * bs;
        largest_free_bytes = largest_free_bytes.max(am.largest_free_blocks as u64 * bs);
        m.areas.push(am);
    }
    m.largest_free_bytes = largest_free_bytes;
    m.fragmentation = fragmentation(largest_free_bytes, m.free_bytes);
    m.types = ObjType::ALL
        .iter()
        .zip(types)
        .filter(|(_, (count, _))| *count > 0)
        .map(|(&obj_type, (allocations, bytes))| TypeUsage { obj_type, allocations, bytes })
        .collect();
    m
}

/// `1 - largest_free / total_free`, 0 when nothing is free.
pub fn fragmentation(largest_free: u64, total_free: u64) -> f64 {
    if total_free == 0 {
        0.0
    } else {
        1.0 - largest_free as f64 / total_free as f64
    }
}

/// The figures `gc_info()` would report for these areas, computed the way it computes them
/// (py/gc.c): a free run counts towards `max_free` only when a head or the area's end follows
/// it, marked heads count as neither used nor free, and 1-/2-block counts see an allocation
/// end at the next head or free block.
///
/// Walks the allocation table a byte (four blocks) at a time through [`BYTE_STEPS`].
pub fn gc_figures(areas: &[Area]) -> GcFigures {
    let mut f = GcFigures::default();
    for area in areas {
        let bs = u64::from(area.block_size());
        f.total += area.pool_bytes();
        let kinds = area.kinds();
        let whole = kinds.len() / 4;
        let mut walk = GcWalk::default();
        let mut words = kinds.atb()[..whole].chunks_exact(8);
        for word in &mut words {
            // Long free and tail stretches, 32 blocks at a time.
            match u64::from_le_bytes(word.try_into().expect("8 bytes")) {
                0 => walk.free_word(),
                0xAAAA_AAAA_AAAA_AAAA => walk.tail_word(),
                _ => word.iter().for_each(|&byte| walk.byte(&BYTE_STEPS[byte as usize])),
            }
        }
        for &byte in words.remainder() {
            walk.byte(&BYTE_STEPS[byte as usize]);
        }
        for block in whole * 4..kinds.len() {
            walk.block(kinds.get(block));
        }
        walk.end();
        f.used += walk.used * bs;
        f.free += walk.free * bs;
        f.one_blocks += walk.one;
        f.two_blocks += walk.two;
        f.max_block = f.max_block.max(walk.max_block);
        f.max_free = f.max_free.max(walk.max_free);
    }
    f
}

/// `gc_info()`'s walk over one area: `len` is the allocation being measured, `len_free` the
/// free run; both are "emitted" when a free block or head follows (`len_free` only at a head).
#[derive(Default)]
struct GcWalk {
    used: u64,
    free: u64,
    one: u64,
    two: u64,
    max_block: u64,
    max_free: u64,
    len: u64,
    len_free: u64,
}

impl GcWalk {
    fn emit(&mut self, len: u64) {
        self.one += u64::from(len == 1);
        self.two += u64::from(len == 2);
        self.max_block = self.max_block.max(len);
    }

    fn block(&mut self, kind: BlockKind) {
        if matches!(kind, BlockKind::Free | BlockKind::Head) {
            self.emit(self.len);
        }
        match kind {
            BlockKind::Free => {
                self.free += 1;
                self.len_free += 1;
                self.len = 0;
            }
            BlockKind::Head => {
                self.max_free = self.max_free.max(self.len_free);
                self.len_free = 0;
                self.used += 1;
                self.len = 1;
            }
            BlockKind::Tail => {
                self.used += 1;
                self.len += 1;
            }
            BlockKind::Mark => {}
        }
    }

    /// 32 free blocks.
    fn free_word(&mut self) {
        self.emit(self.len);
        self.len = 0;
        self.free += 32;
        self.len_free += 32;
    }

    /// 32 tail blocks.
    fn tail_word(&mut self) {
        self.used += 32;
        self.len += 32;
    }

    /// Branch-free: an emit of 0 changes nothing, so a byte without one emits 0.
    #[inline]
    fn byte(&mut self, s: &ByteStep) {
        self.used += u64::from(s.used);
        self.free += u64::from(s.free);
        let keep_len = u64::from(!s.emits).wrapping_neg();
        let emitted = (self.len + u64::from(s.emit_add)) & !keep_len;
        self.one += u64::from(emitted == 1) + u64::from(s.one);
        self.two += u64::from(emitted == 2) + u64::from(s.two);
        self.max_block = self.max_block.max(emitted).max(u64::from(s.max_block));
        self.len = (self.len & keep_len) + u64::from(s.len_out);
        let keep_free = u64::from(!s.has_head).wrapping_neg();
        let free_emitted = (self.len_free + u64::from(s.free_add)) & !keep_free;
        self.max_free = self.max_free.max(free_emitted).max(u64::from(s.max_free));
        self.len_free = (self.len_free & keep_free) + u64::from(s.free_out);
    }

    fn end(&mut self) {
        self.emit(self.len);
        self.max_free = self.max_free.max(self.len_free);
    }
}

/// What four blocks (one table byte) do to a [`GcWalk`], whatever came before them.
#[derive(Clone, Copy)]
struct ByteStep {
    used: u8,
    free: u8,
    /// A free block or head in the byte emits the incoming `len` plus `emit_add` tails, then
    /// `len` restarts at `len_out`; without one, `len` grows by `len_out` tails.
    emits: bool,
    emit_add: u8,
    len_out: u8,
    /// Emits inside the byte that do not depend on what came before.
    one: u8,
    two: u8,
    max_block: u8,
    /// Same for the free run, which only a head emits.
    has_head: bool,
    free_add: u8,
    free_out: u8,
    max_free: u8,
}

/// One [`ByteStep`] per table byte value.
const BYTE_STEPS: [ByteStep; 256] = {
    let zero = ByteStep {
        used: 0,
        free: 0,
        emits: false,
        emit_add: 0,
        len_out: 0,
        one: 0,
        two: 0,
        max_block: 0,
        has_head: false,
        free_add: 0,
        free_out: 0,
        max_free: 0,
    };
    let mut steps = [zero; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut s = zero;
        // `len_out`/`free_out` count from the byte's start until the first emit, then from it.
        let mut k = 0;
        while k < 4 {
            let kind = (byte >> (2 * k)) & 3;
            let (free, head, tail) = (kind == 0, kind == 1, kind == 2);
            if free || head {
                if s.emits {
                    let len = s.len_out;
                    s.one += (len == 1) as u8;
                    s.two += (len == 2) as u8;
                    if len > s.max_block {
                        s.max_block = len;
                    }
                } else {
                    s.emits = true;
                    s.emit_add = s.len_out;
                }
            }
            if head {
                if s.has_head {
                    if s.free_out > s.max_free {
                        s.max_free = s.free_out;
                    }
                } else {
                    s.has_head = true;
                    s.free_add = s.free_out;
                }
                s.free_out = 0;
                s.used += 1;
                s.len_out = 1;
            } else if free {
                s.free += 1;
                s.free_out += 1;
                s.len_out = 0;
            } else if tail {
                s.used += 1;
                s.len_out += 1;
            }
            k += 1;
        }
        steps[byte] = s;
        byte += 1;
    }
    steps
};

#[cfg(test)]
mod tests {
    use super::*;

    fn area(pattern: &str) -> Area {
        crate::synth::pattern_area(0, 16, pattern)
    }

    #[test]
    fn metrics_of_a_small_heap() {
        let snap = Snapshot { areas: vec![area("D===..h.....h=......")], ..Default::default() };
        let m = compute(&snap);
        assert_eq!(m.used_bytes, 7 * 16);
        assert_eq!(m.free_bytes, 13 * 16);
        assert_eq!(m.largest_free_bytes, 6 * 16);
        assert!((m.fragmentation - (1.0 - 6.0 / 13.0)).abs() < 1e-12);
        let buckets: Vec<_> = m.histogram.buckets.iter().map(|b| (b.min_blocks, b.runs, b.blocks)).collect();
        assert_eq!(buckets, [(1, 0, 0), (2, 1, 2), (4, 2, 11)]);
        let types: Vec<_> = m.types.iter().map(|t| (t.obj_type, t.allocations, t.bytes)).collect();
        assert_eq!(types, [(ObjType::Other, 2, 48), (ObjType::Dict, 1, 64)]);
        assert_eq!(m.recomputed.one_blocks, 1);
        assert_eq!(m.recomputed.two_blocks, 1);
        assert_eq!(m.recomputed.max_block, 4);
        assert_eq!(m.recomputed.max_free, 6);
        assert_eq!(m.recomputed.used, 7 * 16);
    }

    #[test]
    fn gc_figures_follow_gc_info_quirks() {
        // The trailing free run counts (area end), a free run before a mark does not end.
        let f = gc_figures(&[area("h..m..h")]);
        assert_eq!(f.max_free, 4, "runs separated only by a mark are counted as one");
        assert_eq!(f.used, 2 * 16, "marked heads are neither used nor free");
        assert_eq!(f.free, 4 * 16);
        // Figures are per area: a run does not continue into the next area.
        let f = gc_figures(&[area("h...."), area("...h")]);
        assert_eq!(f.max_free, 4);
        assert_eq!(f.total, 9 * 16);
    }

    /// `gc_info()`'s loop as py/gc.c writes it, block by block: the reference the table walk
    /// must equal.
    fn gc_figures_block_by_block(areas: &[Area]) -> GcFigures {
        let mut f = GcFigures::default();
        for area in areas {
            let bs = u64::from(area.block_size());
            f.total += area.pool_bytes();
            let kinds = area.kinds();
            let n = kinds.len();
            let (mut used, mut free, mut len, mut len_free) = (0u64, 0u64, 0u64, 0u64);
            for block in 0..n {
                match kinds.get(block) {
                    BlockKind::Free => {
                        free += 1;
                        len_free += 1;
                        len = 0;
                    }
                    BlockKind::Head => {
                        used += 1;
                        len = 1;
                    }
                    BlockKind::Tail => {
                        used += 1;
                        len += 1;
                    }
                    BlockKind::Mark => {}
                }
                let next = (block + 1 < n).then(|| kinds.get(block + 1));
                let finish = next.is_none();
                if finish || matches!(next, Some(BlockKind::Free | BlockKind::Head)) {
                    match len {
                        1 => f.one_blocks += 1,
                        2 => f.two_blocks += 1,
                        _ => {}
                    }
                    f.max_block = f.max_block.max(len);
                    if finish || next == Some(BlockKind::Head) {
                        f.max_free = f.max_free.max(len_free);
                        len_free = 0;
                    }
                }
            }
            f.used += used * bs;
            f.free += free * bs;
        }
        f
    }

    #[test]
    fn table_walk_equals_the_block_by_block_loop() {
        let mut rng = crate::synth::Rng::new(5);
        for case in 0..3000 {
            let len = rng.below(40) as usize;
            let pattern: String = (0..len).map(|_| ['.', 'h', '=', 'm', '=', '.'][rng.below(6) as usize]).collect();
            let areas = [area(&pattern), area(&pattern.chars().rev().collect::<String>())];
            assert_eq!(gc_figures(&areas), gc_figures_block_by_block(&areas), "case {case}: {pattern:?}");
        }
        let big = crate::synth::snapshot(3, 16, 2, 100_003);
        assert_eq!(gc_figures(&big.areas), gc_figures_block_by_block(&big.areas));
    }

    #[test]
    fn nothing_free_is_no_fragmentation() {
        assert_eq!(fragmentation(0, 0), 0.0);
        let m = compute(&Snapshot::default());
        assert_eq!(m.fragmentation, 0.0);
        assert!(m.types.is_empty());
    }
}
