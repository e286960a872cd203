//! Heap metrics: the numbers that explain a `MemoryError` while plenty seems free.

use crate::model::{u64_le_at, Area, BlockKind, GcFigures, KindTable, ObjType, Snapshot};

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
/// Counts 32 blocks at a time with bit masks where the table allows ([`walk_by_masks`]: every
/// heap outside a collection), else walks it a byte at a time through [`BYTE_STEPS`].
pub fn gc_figures(areas: &[Area]) -> GcFigures {
    let mut f = GcFigures::default();
    for area in areas {
        let bs = u64::from(area.block_size());
        f.total += area.pool_bytes();
        let walk = walk_by_masks(area.kinds()).unwrap_or_else(|| walk_by_bytes(area.kinds()));
        f.used += walk.used * bs;
        f.free += walk.free * bs;
        f.one_blocks += walk.one;
        f.two_blocks += walk.two;
        f.max_block = f.max_block.max(walk.max_block);
        f.max_free = f.max_free.max(walk.max_free);
    }
    f
}

/// Any table: a byte (four blocks) at a time through [`BYTE_STEPS`].
fn walk_by_bytes(kinds: &KindTable) -> GcWalk {
    let whole = kinds.len() / 4;
    let mut walk = GcWalk::default();
    let mut words = kinds.atb()[..whole].chunks_exact(8);
    for word in &mut words {
        // Long free and tail stretches, 32 blocks at a time.
        match u64::from_le_bytes(word.try_into().expect("8 bytes")) {
            0 => walk.free_word(),
            TAIL_WORD => walk.tail_word(),
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
    walk
}

/// The low bit of every block's 2-bit kind in a table word (32 blocks).
const LOW_BITS: u64 = 0x5555_5555_5555_5555;
/// A table word of 32 tails.
const TAIL_WORD: u64 = 0xAAAA_AAAA_AAAA_AAAA;

/// Table word `i` (blocks `32 i ..`), zeros (free) past the table's end.
#[inline]
fn table_word(atb: &[u8], i: usize) -> u64 {
    u64_le_at(atb, i * 8)
}

/// One bit per block of a mask on [`LOW_BITS`]: block `k` of the word becomes bit `k`.
#[inline]
fn compress_blocks(mask: u64) -> u32 {
    let mut x = mask & LOW_BITS;
    x = (x | x >> 1) & 0x3333_3333_3333_3333;
    x = (x | x >> 2) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | x >> 4) & 0x00FF_00FF_00FF_00FF;
    x = (x | x >> 8) & 0x0000_FFFF_0000_FFFF;
    x = (x | x >> 16) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// Longest run of set bits over words fed in order (a run may cross words).
#[derive(Default)]
struct LongestRun {
    current: u32,
    longest: u32,
}

impl LongestRun {
    #[inline]
    fn feed(&mut self, bits: u32) {
        if bits == u32::MAX {
            self.current += 32;
            return;
        }
        let lead = bits.trailing_ones();
        self.longest = self.longest.max(self.current + lead);
        // The run that reaches the last bit goes on in the next word; runs between the two are
        // measured only when one may be longer than the longest so far.
        let trail = bits.leading_ones();
        let inner = bits & (u32::MAX << lead) & (u32::MAX >> trail);
        if inner != 0 && self.longest < 30 && has_run(inner, self.longest + 1) {
            let mut rest = inner;
            while rest != 0 {
                rest >>= rest.trailing_zeros();
                let ones = rest.trailing_ones();
                self.longest = self.longest.max(ones);
                rest = rest.checked_shr(ones).unwrap_or(0);
            }
        }
        self.current = trail;
    }

    /// A word with no bit set.
    #[inline]
    fn gap(&mut self) {
        self.longest = self.longest.max(self.current);
        self.current = 0;
    }

    fn finish(&self) -> u64 {
        u64::from(self.longest.max(self.current))
    }
}

/// Whether `bits` has a run of at least `n` set bits (1 <= n <= 32): it erodes the runs by
/// doubling shifts.
#[inline]
fn has_run(bits: u32, n: u32) -> bool {
    let (mut eroded, mut k) = (bits, 1);
    while 2 * k <= n {
        eroded &= eroded >> k;
        k *= 2;
    }
    eroded & (eroded >> (n - k)) != 0
}

/// A table without marks and without a tail right after a free block (any heap outside a
/// collection), 32 blocks at a time: there every allocation is a head and its tails, every free
/// run ends at a head or the area's end, so `gc_info()`'s figures are counts of bit masks and
/// the longest tail and free runs. `None` for other tables.
fn walk_by_masks(kinds: &KindTable) -> Option<GcWalk> {
    let atb = kinds.atb();
    let words = kinds.len().div_ceil(32);
    let mut walk = GcWalk::default();
    let kinds_of = |word: u64| {
        let (lo, hi) = (word & LOW_BITS, (word >> 1) & LOW_BITS);
        (lo & !hi, hi & !lo, lo & hi)
    };
    let (mut free_runs, mut tail_runs) = (LongestRun::default(), LongestRun::default());
    // Tails at the area's start (a view that begins inside an allocation) have no head.
    let (mut leading, mut leading_tails) = (true, 0u64);
    let mut any_head = false;
    let full_words = kinds.len() / 32;
    let mut word = table_word(atb, 0);
    let (mut heads, mut tails, mut marks) = kinds_of(word);
    let mut free_before = 0u64;
    let mut i = 0;
    while i < words {
        let blocks = (kinds.len() - i * 32).min(32);
        // A stretch of free words at once (the word before counted itself against the first).
        if blocks == 32 && word == 0 {
            let stretch = 1 + atb[(i + 1) * 8..full_words * 8].chunks_exact(8).take_while(|w| w == &[0; 8]).count();
            walk.free += 32 * stretch as u64;
            free_runs.current += 32 * stretch as u32;
            tail_runs.gap();
            leading = false;
            free_before = 1;
            i += stretch;
            word = table_word(atb, i);
            (heads, tails, marks) = kinds_of(word);
            continue;
        }
        let next = if i + 1 < words { table_word(atb, i + 1) } else { 0 };
        let (next_heads, next_tails, next_marks) = kinds_of(next);
        if blocks == 32 && word == TAIL_WORD && i > 0 && free_before == 0 {
            walk.used += 32;
            free_runs.gap();
            if leading {
                leading_tails += 32;
            } else {
                tail_runs.current += 32;
            }
        } else {
            let valid = if blocks == 32 { LOW_BITS } else { LOW_BITS & ((1u64 << (2 * blocks)) - 1) };
            let free = !(word | word >> 1) & valid;
            if marks != 0 || tails & (free << 2 | free_before) != 0 {
                return None;
            }
            // A head starts an allocation of one block when no tail follows it, of two when one
            // does and no second.
            let tail_after = tails >> 2 | next_tails << 62;
            let tail_after_two = tails >> 4 | next_tails << 60;
            let starts = heads | (u64::from(i == 0) & tails);
            walk.one += u64::from((starts & !tail_after).count_ones());
            walk.two += u64::from((starts & tail_after & !tail_after_two).count_ones());
            // Without marks every block is free or used.
            let free_blocks = u64::from(free.count_ones());
            walk.free += free_blocks;
            walk.used += blocks as u64 - free_blocks;
            any_head |= heads != 0;
            free_runs.feed(compress_blocks(free));
            let mut tail_bits = compress_blocks(tails);
            if leading {
                let run = tail_bits.trailing_ones();
                leading_tails += u64::from(run);
                if run < blocks as u32 {
                    leading = false;
                    tail_bits &= u32::MAX.checked_shl(run).unwrap_or(0);
                } else {
                    tail_bits = 0;
                }
            }
            tail_runs.feed(tail_bits);
            free_before = free >> 62;
        }
        (word, heads, tails, marks) = (next, next_heads, next_tails, next_marks);
        i += 1;
    }
    walk.max_free = free_runs.finish();
    walk.max_block = leading_tails.max(if any_head { tail_runs.finish() + 1 } else { 0 });
    Some(walk)
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

    /// A table as a heap outside a collection has it: heads with their tails, free runs
    /// between, sometimes tails at the start (a view that begins inside an allocation).
    fn valid_pattern(rng: &mut crate::synth::Rng, len: usize) -> String {
        let mut p = String::new();
        if rng.below(4) == 0 {
            p.push_str(&"=".repeat(rng.below(70) as usize));
        }
        while p.len() < len {
            let run = [1, 2, 3, 5, 31, 33, 64, 100][rng.below(8) as usize];
            let run = 1 + rng.below(run) as usize;
            if rng.below(2) == 0 {
                p.push_str(&".".repeat(run));
            } else {
                p.push('h');
                p.push_str(&"=".repeat(run - 1));
            }
        }
        p.truncate(len);
        p
    }

    #[test]
    fn mask_walk_equals_the_block_by_block_loop_and_leaves_other_tables_to_the_byte_walk() {
        let mut rng = crate::synth::Rng::new(9);
        for case in 0..4000 {
            let len = rng.below(300) as usize;
            let pattern = valid_pattern(&mut rng, len);
            let a = area(&pattern);
            assert!(walk_by_masks(a.kinds()).is_some(), "case {case}: {pattern:?}");
            let areas = [a];
            assert_eq!(gc_figures(&areas), gc_figures_block_by_block(&areas), "case {case}: {pattern:?}");
        }
        for pattern in ["h..m", "h..=", ".=", &format!("{}=", ".".repeat(32)), &format!("h{}m", "=".repeat(40))] {
            assert!(walk_by_masks(area(pattern).kinds()).is_none(), "{pattern:?}");
        }
        let big = crate::synth::snapshot(4, 16, 3, 200_001);
        assert!(big.areas.iter().all(|a| walk_by_masks(a.kinds()).is_some()));
        assert_eq!(gc_figures(&big.areas), gc_figures_block_by_block(&big.areas));
    }

    #[test]
    fn longest_run_over_words_equals_counting_bit_by_bit() {
        let mut rng = crate::synth::Rng::new(13);
        for case in 0..3000 {
            // Sparse, dense and all-set words, so runs of every length cross word ends.
            let words: Vec<u32> = (0..1 + rng.below(6))
                .map(|_| match rng.below(4) {
                    0 => u32::MAX,
                    1 => rng.below(1 << 32) as u32 | rng.below(1 << 32) as u32,
                    2 => !(1u32 << rng.below(32)),
                    _ => rng.below(1 << 32) as u32,
                })
                .collect();
            let mut runs = LongestRun::default();
            words.iter().for_each(|&w| runs.feed(w));
            let (mut current, mut longest) = (0u64, 0u64);
            for bit in words.iter().flat_map(|w| (0..32).map(move |i| w >> i & 1)) {
                current = if bit == 1 { current + 1 } else { 0 };
                longest = longest.max(current);
            }
            assert_eq!(runs.finish(), longest, "case {case}: {words:08X?}");
            for n in 1..=32 {
                let w = words[0];
                let naive = (0..=32 - n).any(|i| (w >> i) & (u32::MAX >> (32 - n)) == u32::MAX >> (32 - n));
                assert_eq!(has_run(w, n), naive, "{w:08X} {n}");
            }
        }
    }

    #[test]
    fn nothing_free_is_no_fragmentation() {
        assert_eq!(fragmentation(0, 0), 0.0);
        let m = compute(&Snapshot::default());
        assert_eq!(m.fragmentation, 0.0);
        assert!(m.types.is_empty());
    }
}
