//! The heap snapshot model: what one look at a MicroPython GC heap shows.
//!
//! Block kinds are stored exactly as the device stores them (its allocation table, "ATB"):
//! 2 bits per block, block `b` at bits `2*(b & 3)` of byte `b / 4`. A 4 MB heap of 16-byte
//! blocks is 262,144 blocks, which this keeps in 64 KiB.

use std::fmt;

/// The state of one GC block, with the device's own 2-bit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum BlockKind {
    Free = 0,
    /// First block of an allocation.
    Head = 1,
    /// Continuation block of the allocation whose head precedes it.
    Tail = 2,
    /// A head marked reachable; only seen while a collection is in progress.
    Mark = 3,
}

impl BlockKind {
    pub const fn from_bits(bits: u8) -> BlockKind {
        match bits & 3 {
            0 => BlockKind::Free,
            1 => BlockKind::Head,
            2 => BlockKind::Tail,
            _ => BlockKind::Mark,
        }
    }

    /// Whether this block starts an allocation (a head, marked or not).
    pub const fn starts_allocation(self) -> bool {
        matches!(self, BlockKind::Head | BlockKind::Mark)
    }
}

/// Object type of an allocation, as far as the observer could tell.
///
/// `mem_info(1)` distinguishes the first nine; the firmware module may classify more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ObjType {
    /// The observer did not say (e.g. a marked head in a text dump).
    Unknown = 0,
    /// Known not to be one of the types below: raw data, other objects.
    Other = 1,
    Tuple = 2,
    List = 3,
    Dict = 4,
    /// `str` or `bytes`.
    Str = 5,
    /// `bytearray` or `array.array`.
    ByteArray = 6,
    Float = 7,
    /// Bytecode function.
    Function = 8,
    Module = 9,
    Set = 10,
    /// Arbitrary-precision integer.
    Int = 11,
    Closure = 12,
    BoundMethod = 13,
    /// Instance of a user-defined class.
    Instance = 14,
    /// A user-defined class.
    Type = 15,
}

impl ObjType {
    pub const ALL: [ObjType; 16] = [
        ObjType::Unknown,
        ObjType::Other,
        ObjType::Tuple,
        ObjType::List,
        ObjType::Dict,
        ObjType::Str,
        ObjType::ByteArray,
        ObjType::Float,
        ObjType::Function,
        ObjType::Module,
        ObjType::Set,
        ObjType::Int,
        ObjType::Closure,
        ObjType::BoundMethod,
        ObjType::Instance,
        ObjType::Type,
    ];

    /// Stable name, used in JSON and in the wire format's type table.
    pub const fn name(self) -> &'static str {
        match self {
            ObjType::Unknown => "unknown",
            ObjType::Other => "other",
            ObjType::Tuple => "tuple",
            ObjType::List => "list",
            ObjType::Dict => "dict",
            ObjType::Str => "str",
            ObjType::ByteArray => "bytearray",
            ObjType::Float => "float",
            ObjType::Function => "function",
            ObjType::Module => "module",
            ObjType::Set => "set",
            ObjType::Int => "int",
            ObjType::Closure => "closure",
            ObjType::BoundMethod => "bound_method",
            ObjType::Instance => "instance",
            ObjType::Type => "type",
        }
    }

    pub fn from_name(name: &str) -> Option<ObjType> {
        ObjType::ALL.into_iter().find(|t| t.name() == name)
    }

    pub const fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<ObjType> {
        ObjType::ALL.get(code as usize).copied()
    }

    /// The head letter `micropython.mem_info(1)` prints for this type.
    pub const fn mem_info_letter(self) -> char {
        match self {
            ObjType::Tuple => 'T',
            ObjType::List => 'L',
            ObjType::Dict => 'D',
            ObjType::Str => 'S',
            ObjType::ByteArray => 'A',
            ObjType::Float => 'F',
            ObjType::Function => 'B',
            ObjType::Module => 'M',
            _ => 'h',
        }
    }
}

impl fmt::Display for ObjType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Most blocks one snapshot may hold over all its areas: 16,777,216 blocks, a 256 MiB heap of
/// 16-byte blocks. No board has such a heap (the largest have 32 MiB of PSRAM); the limit is
/// what keeps a few bytes of hostile input (`(N lines all free)`, a run-length-coded table)
/// from claiming gigabytes. Its table takes 4 MiB.
pub const MAX_HEAP_BLOCKS: usize = 1 << 24;

/// The 8 bytes from `at` as a little-endian word, zeros past the end of `bytes`.
#[inline(always)]
pub(crate) fn u64_le_at(bytes: &[u8], at: usize) -> u64 {
    match bytes.get(at..at + 8) {
        Some(word) => u64::from_le_bytes(word.try_into().expect("8 bytes")),
        None => {
            let mut word = [0u8; 8];
            let tail = bytes.get(at..).unwrap_or(&[]);
            word[..tail.len()].copy_from_slice(tail);
            u64::from_le_bytes(word)
        }
    }
}

/// Number of head blocks (HEAD or MARK: bit 0 set) in ATB bytes.
#[inline]
pub fn heads_in(atb: &[u8]) -> usize {
    // Eight bytes at a time: the popcount of the low bit of each 2-bit field.
    let mut chunks = atb.chunks_exact(8);
    let mut n = 0usize;
    for c in &mut chunks {
        let word = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        n += (word & 0x5555_5555_5555_5555).count_ones() as usize;
    }
    n + chunks.remainder().iter().map(|b| (b & 0x55).count_ones() as usize).sum::<usize>()
}

/// Block kinds of one area, 2 bits per block in the device's ATB layout.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KindTable {
    atb: Vec<u8>,
    len: usize,
}

impl fmt::Debug for KindTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KindTable({} blocks)", self.len)
    }
}

impl KindTable {
    pub const BLOCKS_PER_BYTE: usize = 4;

    /// `len` free blocks.
    pub fn new_free(len: usize) -> KindTable {
        KindTable { atb: vec![0; len.div_ceil(4)], len }
    }

    pub fn with_capacity(blocks: usize) -> KindTable {
        KindTable { atb: Vec::with_capacity(blocks.div_ceil(4)), len: 0 }
    }

    /// Takes a device allocation table. Bits past `len` in the last byte are cleared.
    pub fn from_atb(mut atb: Vec<u8>, len: usize) -> Option<KindTable> {
        if atb.len() != len.div_ceil(4) {
            return None;
        }
        if !len.is_multiple_of(4) {
            let last = atb.len() - 1;
            atb[last] &= (1u8 << (2 * (len % 4))) - 1;
        }
        Some(KindTable { atb, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The table as the device lays it out (trailing bits of the last byte are zero = free).
    pub fn atb(&self) -> &[u8] {
        &self.atb
    }

    /// Kind of block `index`. Panics when out of range, like slice indexing.
    #[inline]
    pub fn get(&self, index: usize) -> BlockKind {
        assert!(index < self.len, "block {index} out of range ({} blocks)", self.len);
        BlockKind::from_bits(self.atb[index / 4] >> (2 * (index & 3)))
    }

    #[inline]
    pub fn set(&mut self, index: usize, kind: BlockKind) {
        assert!(index < self.len, "block {index} out of range ({} blocks)", self.len);
        let shift = 2 * (index & 3);
        let byte = &mut self.atb[index / 4];
        *byte = (*byte & !(3 << shift)) | ((kind as u8) << shift);
    }

    pub fn push(&mut self, kind: BlockKind) {
        if self.len.is_multiple_of(4) {
            self.atb.push(0);
        }
        self.len += 1;
        self.set(self.len - 1, kind);
    }

    /// Appends `count` blocks of one kind.
    pub fn push_run(&mut self, kind: BlockKind, count: usize) {
        let mut left = count;
        while left > 0 && !self.len.is_multiple_of(4) {
            self.push(kind);
            left -= 1;
        }
        let fill = [0x00u8, 0x55, 0xAA, 0xFF][kind as usize];
        self.atb.extend(std::iter::repeat_n(fill, left / 4));
        self.len += left / 4 * 4;
        for _ in 0..left % 4 {
            self.push(kind);
        }
    }

    /// Appends whole ATB bytes (four blocks each) when the table ends on a byte boundary;
    /// otherwise block by block.
    pub fn extend_from_atb(&mut self, bytes: &[u8]) {
        if self.len.is_multiple_of(4) {
            self.atb.extend_from_slice(bytes);
            self.len += bytes.len() * 4;
        } else {
            for &b in bytes {
                for k in 0..4 {
                    self.push(BlockKind::from_bits(b >> (2 * k)));
                }
            }
        }
    }

    /// Head blocks (HEAD or MARK) in the table.
    pub fn heads(&self) -> usize {
        heads_in(&self.atb)
    }

    /// The table's bytes, to overwrite in place (the block count cannot change). Bits past
    /// `len()` in the last byte must stay zero.
    pub(crate) fn atb_mut(&mut self) -> &mut [u8] {
        &mut self.atb
    }

    pub fn iter(&self) -> impl Iterator<Item = BlockKind> + '_ {
        (0..self.len).map(move |i| self.get(i))
    }

    /// Maximal runs of equal kinds, in order.
    pub fn runs(&self) -> Runs<'_> {
        Runs { table: self, next: 0 }
    }

    /// First block at or after `from` whose kind is not `kind` (`len()` if none).
    pub fn run_end(&self, from: usize, kind: BlockKind) -> usize {
        let fill = [0x00u8, 0x55, 0xAA, 0xFF][kind as usize];
        let mut end = from;
        // Whole bytes of one kind are skipped four blocks at a time: heaps are mostly long free
        // and tail runs.
        while end < self.len {
            if end.is_multiple_of(4) && end + 4 <= self.len && self.atb[end / 4] == fill {
                end += 4;
            } else if self.get(end) == kind {
                end += 1;
            } else {
                break;
            }
        }
        end
    }

}

/// A maximal run of blocks of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub kind: BlockKind,
    pub start: usize,
    pub len: usize,
}

pub struct Runs<'a> {
    table: &'a KindTable,
    next: usize,
}

impl Iterator for Runs<'_> {
    type Item = Run;

    fn next(&mut self) -> Option<Run> {
        if self.next >= self.table.len {
            return None;
        }
        let start = self.next;
        let kind = self.table.get(start);
        self.next = self.table.run_end(start, kind);
        Some(Run { kind, start, len: self.next - start })
    }
}

/// One allocation: a head (or marked head) and the tails after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    pub start: usize,
    pub blocks: usize,
    pub obj_type: ObjType,
    pub marked: bool,
}

/// One contiguous GC heap area. Most heaps have one; split heaps (ESP32 since v1.21) grow more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Area {
    pool_start: u64,
    block_size: u32,
    kinds: KindTable,
    /// One entry per allocation head (HEAD or MARK block), in block order.
    types: Vec<ObjType>,
}

/// An area whose parts do not fit together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelError {
    /// The type list must have one entry per head block.
    TypeCount { heads: usize, types: usize },
    /// Block sizes are powers of two of at least 4 bytes.
    BlockSize(u32),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::TypeCount { heads, types } => {
                write!(f, "{heads} head blocks but {types} object types")
            }
            ModelError::BlockSize(size) => write!(f, "block size {size} is not a power of two >= 4"),
        }
    }
}

impl std::error::Error for ModelError {}

impl Area {
    /// Builds an area; `types` has one entry per head block (HEAD or MARK). Tails with no head
    /// before them are accepted: a torn read shows them, and the model keeps what was seen.
    pub fn new(pool_start: u64, block_size: u32, kinds: KindTable, types: Vec<ObjType>) -> Result<Area, ModelError> {
        if block_size < 4 || !block_size.is_power_of_two() {
            return Err(ModelError::BlockSize(block_size));
        }
        let heads = kinds.heads();
        if heads != types.len() {
            return Err(ModelError::TypeCount { heads, types: types.len() });
        }
        Ok(Area { pool_start, block_size, kinds, types })
    }

    /// An area with every block free.
    pub fn free(pool_start: u64, block_size: u32, blocks: usize) -> Result<Area, ModelError> {
        Area::new(pool_start, block_size, KindTable::new_free(blocks), Vec::new())
    }

    pub fn pool_start(&self) -> u64 {
        self.pool_start
    }

    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    pub fn blocks(&self) -> usize {
        self.kinds.len()
    }

    pub fn pool_bytes(&self) -> u64 {
        self.kinds.len() as u64 * u64::from(self.block_size)
    }

    pub fn kinds(&self) -> &KindTable {
        &self.kinds
    }

    /// Object types of the head blocks, in block order.
    pub fn types(&self) -> &[ObjType] {
        &self.types
    }

    /// Table and types to change in place; the caller keeps one type per head.
    pub(crate) fn parts_mut(&mut self) -> (&mut KindTable, &mut Vec<ObjType>) {
        (&mut self.kinds, &mut self.types)
    }

    pub fn address_of(&self, block: usize) -> u64 {
        self.pool_start + block as u64 * u64::from(self.block_size)
    }

    /// Every allocation, in block order. A run of tails with no head before it (only possible in
    /// a torn read) belongs to no allocation and is skipped.
    pub fn allocations(&self) -> Allocations<'_> {
        Allocations { area: self, block: 0, type_index: 0 }
    }

    /// The allocation covering `block`, if the block is allocated.
    pub fn allocation_at(&self, block: usize) -> Option<Allocation> {
        if block >= self.blocks() || self.kinds.get(block) == BlockKind::Free {
            return None;
        }
        self.allocations().take_while(|a| a.start <= block).find(|a| block < a.start + a.blocks)
    }
}

pub struct Allocations<'a> {
    area: &'a Area,
    block: usize,
    type_index: usize,
}

impl Iterator for Allocations<'_> {
    type Item = Allocation;

    fn next(&mut self) -> Option<Allocation> {
        let kinds = &self.area.kinds;
        loop {
            if self.block >= kinds.len() {
                return None;
            }
            let kind = kinds.get(self.block);
            if kind.starts_allocation() {
                let start = self.block;
                self.block = kinds.run_end(start + 1, BlockKind::Tail);
                let obj_type = self.area.types.get(self.type_index).copied().unwrap_or(ObjType::Unknown);
                self.type_index += 1;
                return Some(Allocation {
                    start,
                    blocks: self.block - start,
                    obj_type,
                    marked: kind == BlockKind::Mark,
                });
            }
            self.block = kinds.run_end(self.block, kind);
        }
    }
}

/// Figures from the GC's own accounting line (`GC: total: ...` and `No. of 1-blocks: ...`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcFigures {
    /// Pool bytes over all areas.
    pub total: u64,
    pub used: u64,
    pub free: u64,
    /// Allocations of exactly one block.
    pub one_blocks: u64,
    /// Allocations of exactly two blocks.
    pub two_blocks: u64,
    /// Longest allocation, in blocks.
    pub max_block: u64,
    /// Longest free run, in blocks.
    pub max_free: u64,
}

/// `mem: total=N, current=N, peak=N` (builds with MICROPY_MEM_STATS).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemStats {
    pub total: u64,
    pub current: u64,
    pub peak: u64,
}

/// `stack: N out of N`; the limit is absent on builds without stack checking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackFigures {
    pub used: u64,
    pub limit: Option<u64>,
}

/// One heap of the system allocator the GC heap grows out of (ESP-IDF `heap_caps`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemHeap {
    /// ESP-IDF capability bits (MALLOC_CAP_*).
    pub caps: u32,
    pub total: u64,
    pub free: u64,
    pub largest_free: u64,
    pub min_free: u64,
}

/// What the device itself said about its heap, beside the layout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reported {
    pub gc: Option<GcFigures>,
    /// Largest block the system heap could give a new GC area (split-heap-auto builds).
    pub max_new_split: Option<u64>,
    pub stack: Option<StackFigures>,
    pub mem: Option<MemStats>,
    pub system_heaps: Vec<SystemHeap>,
    /// What `gc.mem_alloc()` and `gc.mem_free()` returned to Python at the same moment.
    pub python: Option<PythonFigures>,
}

/// `gc.mem_alloc()` and `gc.mem_free()`. `mem_free` includes `max new split` on split heaps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PythonFigures {
    pub mem_alloc: u64,
    pub mem_free: u64,
}

/// One look at the heap: its areas (empty when only the summary was seen) and the figures the
/// device reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub areas: Vec<Area>,
    pub reported: Reported,
}

impl Snapshot {
    /// Block size shared by the areas, if there are any.
    pub fn block_size(&self) -> Option<u32> {
        self.areas.first().map(Area::block_size)
    }

    pub fn total_blocks(&self) -> usize {
        self.areas.iter().map(Area::blocks).sum()
    }

    pub fn has_layout(&self) -> bool {
        !self.areas.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(kinds: &str) -> KindTable {
        crate::synth::pattern_area(0, 16, kinds).kinds().clone()
    }

    #[test]
    fn kinds_use_the_device_bit_layout() {
        let t = table("h=.m");
        // block 0 in the low bits: 01, 10, 00, 11
        assert_eq!(t.atb(), &[0b11_00_10_01]);
        assert_eq!(t.iter().collect::<Vec<_>>(), [BlockKind::Head, BlockKind::Tail, BlockKind::Free, BlockKind::Mark]);
    }

    #[test]
    fn push_run_matches_single_pushes() {
        for pre in 0..5 {
            for n in 0..19 {
                let mut a = table(&"h".repeat(pre));
                let mut b = a.clone();
                a.push_run(BlockKind::Tail, n);
                for _ in 0..n {
                    b.push(BlockKind::Tail);
                }
                assert_eq!(a, b, "pre {pre} n {n}");
            }
        }
    }

    #[test]
    fn runs_are_maximal() {
        let t = table("hh====......h=m");
        let runs: Vec<_> = t.runs().map(|r| (r.kind, r.start, r.len)).collect();
        assert_eq!(
            runs,
            [
                (BlockKind::Head, 0, 2),
                (BlockKind::Tail, 2, 4),
                (BlockKind::Free, 6, 6),
                (BlockKind::Head, 12, 1),
                (BlockKind::Tail, 13, 1),
                (BlockKind::Mark, 14, 1)
            ]
        );
    }

    #[test]
    fn allocations_split_runs_of_heads_and_own_their_tails() {
        let area = crate::synth::pattern_area(0x1000, 16, "=DS===..m=L");
        let allocs: Vec<_> = area.allocations().map(|a| (a.start, a.blocks, a.obj_type, a.marked)).collect();
        assert_eq!(
            allocs,
            [
                (1, 1, ObjType::Dict, false),
                (2, 4, ObjType::Str, false),
                (8, 2, ObjType::Unknown, true),
                (10, 1, ObjType::List, false)
            ]
        );
        assert_eq!(area.allocation_at(4).map(|a| a.start), Some(2));
        assert_eq!(area.allocation_at(0), None, "an orphan tail belongs to no allocation");
        assert_eq!(area.allocation_at(6), None);
        assert_eq!(area.address_of(2), 0x1020);
    }

    #[test]
    fn area_checks_its_parts() {
        assert_eq!(Area::new(0, 16, table("hh"), vec![ObjType::Other]), Err(ModelError::TypeCount { heads: 2, types: 1 }));
        assert_eq!(Area::free(0, 24, 4), Err(ModelError::BlockSize(24)));
    }

    #[test]
    fn from_atb_clears_bits_past_the_end() {
        let t = KindTable::from_atb(vec![0xFF], 3).unwrap();
        assert_eq!(t.atb(), &[0x3F]);
        assert!(KindTable::from_atb(vec![0, 0], 4).is_none());
    }
}
