//! A heap dump: the words of every used block at one moment, the layout of that moment, and
//! what the host needs to name things. And its file format.
//!
//! The file is JSON (`"format": "heapscope-dump"`, `"version": 1`): a dump is taken once and read
//! a few times, and JSON keeps it readable by other tools (micropython #9043 asks for exactly
//! that). Block contents and allocation tables are base64, as the board sends them. A
//! recording stores its dumps beside its snapshots in this same format (a record of its own).

use std::fmt;

use heapscope_protocol::{Area, BlockKind, KindTable, ObjType};
use serde::{Deserialize, Serialize};

use crate::base64;

/// What one dump holds.
#[derive(Clone, Debug, PartialEq)]
pub struct HeapDump {
    /// Bytes per machine word: 4 on boards and 32-bit builds, 8 on the 64-bit unix port.
    pub word_size: u32,
    /// How the dump was taken: `raw-repl` (stock firmware) or `module`.
    pub source: String,
    pub areas: Vec<DumpArea>,
    /// Contents of the used blocks, sorted by address, not overlapping.
    pub memory: Vec<MemoryRange>,
    /// Addresses of built-in types (outside the heap), by type name.
    pub types: Vec<Named>,
    /// Objects with a name: modules (`app`) and module globals (`app.readings`).
    pub names: Vec<Named>,
    /// Roots as the GC sees them, when the module sent them. Empty on stock firmware: then the
    /// named objects and every object nothing in the heap points at are the roots.
    pub roots: Vec<Named>,
    /// `gc.mem_free()` when the dump was taken, if known.
    pub mem_free: Option<u64>,
}

/// One GC area: its layout when the dump began, and the blocks that changed while it ran.
#[derive(Clone, Debug, PartialEq)]
pub struct DumpArea {
    pub area: Area,
    /// Runs `(first block, count)` whose kind changed between the layouts taken before and after
    /// the contents were read: their contents and references are not to be trusted.
    pub unreliable: Vec<(usize, usize)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryRange {
    pub address: u64,
    pub bytes: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub address: u64,
}

impl Named {
    pub fn new(name: impl Into<String>, address: u64) -> Named {
        Named { name: name.into(), address }
    }
}

/// Why a dump file could not be read.
#[derive(Debug)]
pub enum DumpError {
    /// Not JSON, or JSON of another shape; serde's message names line and column.
    Json(serde_json::Error),
    /// Read, but a part does not make sense.
    Invalid(String),
}

impl fmt::Display for DumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DumpError::Json(e) => write!(f, "not a heapscope dump: {e}"),
            DumpError::Invalid(m) => write!(f, "damaged heapscope dump: {m}"),
        }
    }
}

impl std::error::Error for DumpError {}

pub const FORMAT: &str = "heapscope-dump";
pub const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct FileV1 {
    format: String,
    version: u32,
    word_size: u32,
    source: String,
    areas: Vec<FileArea>,
    memory: Vec<FileRange>,
    types: Vec<FileNamed>,
    names: Vec<FileNamed>,
    roots: Vec<FileNamed>,
    #[serde(default)]
    mem_free: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct FileArea {
    pool_start: String,
    block_size: u32,
    blocks: usize,
    /// The allocation table, 2 bits per block as the device keeps it.
    atb: String,
    /// One hex digit per head block: the object type code of `SPEC.md`.
    head_types: String,
    unreliable: Vec<(usize, usize)>,
}

#[derive(Serialize, Deserialize)]
struct FileRange {
    address: String,
    base64: String,
}

#[derive(Serialize, Deserialize)]
struct FileNamed {
    name: String,
    address: String,
}

pub fn hex(address: u64) -> String {
    format!("0x{address:x}")
}

pub fn parse_hex(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
    u64::from_str_radix(digits, 16).ok()
}

fn address(text: &str, what: &str) -> Result<u64, DumpError> {
    parse_hex(text).ok_or_else(|| DumpError::Invalid(format!("{what}: {text:?} is not a hex address")))
}

fn named_to_file(list: &[Named]) -> Vec<FileNamed> {
    list.iter().map(|n| FileNamed { name: n.name.clone(), address: hex(n.address) }).collect()
}

fn named_from_file(list: Vec<FileNamed>, what: &str) -> Result<Vec<Named>, DumpError> {
    list.into_iter().map(|n| Ok(Named { address: address(&n.address, &format!("{what} {:?}", n.name))?, name: n.name })).collect()
}

impl HeapDump {
    pub fn to_json(&self) -> String {
        let file = FileV1 {
            format: FORMAT.into(),
            version: VERSION,
            word_size: self.word_size,
            source: self.source.clone(),
            areas: self
                .areas
                .iter()
                .map(|a| FileArea {
                    pool_start: hex(a.area.pool_start()),
                    block_size: a.area.block_size(),
                    blocks: a.area.blocks(),
                    atb: base64::encode(a.area.kinds().atb()),
                    head_types: a.area.types().iter().map(|t| char::from_digit(u32::from(t.code()), 16).unwrap_or('0')).collect(),
                    unreliable: a.unreliable.clone(),
                })
                .collect(),
            memory: self.memory.iter().map(|r| FileRange { address: hex(r.address), base64: base64::encode(&r.bytes) }).collect(),
            types: named_to_file(&self.types),
            names: named_to_file(&self.names),
            roots: named_to_file(&self.roots),
            mem_free: self.mem_free,
        };
        serde_json::to_string(&file).expect("a dump serialises")
    }

    pub fn from_json(text: &[u8]) -> Result<HeapDump, DumpError> {
        let file: FileV1 = serde_json::from_slice(text).map_err(DumpError::Json)?;
        if file.format != FORMAT {
            return Err(DumpError::Invalid(format!("format is {:?}, not {FORMAT:?}", file.format)));
        }
        if file.version != VERSION {
            return Err(DumpError::Invalid(format!("version {} (this heapscope reads version {VERSION})", file.version)));
        }
        if file.word_size != 4 && file.word_size != 8 {
            return Err(DumpError::Invalid(format!("word size {} (4 or 8)", file.word_size)));
        }
        let mut areas = Vec::new();
        for (i, a) in file.areas.into_iter().enumerate() {
            let pool_start = address(&a.pool_start, &format!("area {i}"))?;
            let atb = base64::decode(a.atb.as_bytes())
                .map_err(|at| DumpError::Invalid(format!("area {i}: allocation table: bad base64 at character {at}")))?;
            let kinds = KindTable::from_atb(atb, a.blocks)
                .ok_or_else(|| DumpError::Invalid(format!("area {i}: allocation table does not hold {} blocks", a.blocks)))?;
            let types = a
                .head_types
                .chars()
                .map(|c| c.to_digit(16).and_then(|d| ObjType::from_code(d as u8)).unwrap_or(ObjType::Unknown))
                .collect();
            let area = Area::new(pool_start, a.block_size, kinds, types).map_err(|e| DumpError::Invalid(format!("area {i}: {e}")))?;
            if let Some(&(start, len)) = a.unreliable.iter().find(|&&(s, n)| s.checked_add(n).is_none_or(|end| end > a.blocks)) {
                return Err(DumpError::Invalid(format!("area {i}: unreliable run {start}+{len} is past the end")));
            }
            areas.push(DumpArea { area, unreliable: a.unreliable });
        }
        let mut memory = Vec::new();
        for (i, r) in file.memory.into_iter().enumerate() {
            let address = address(&r.address, &format!("memory range {i}"))?;
            let bytes = base64::decode(r.base64.as_bytes())
                .map_err(|at| DumpError::Invalid(format!("memory range {i} at {}: bad base64 at character {at}", hex(address))))?;
            memory.push(MemoryRange { address, bytes });
        }
        memory.sort_by_key(|r| r.address);
        check_memory(&areas, &memory)?;
        Ok(HeapDump {
            word_size: file.word_size,
            source: file.source,
            areas,
            memory,
            types: named_from_file(file.types, "type")?,
            names: named_from_file(file.names, "name")?,
            roots: named_from_file(file.roots, "root")?,
            mem_free: file.mem_free,
        })
    }

    /// The layout the dump was taken from, as a snapshot (for the heap map).
    pub fn snapshot(&self) -> heapscope_protocol::Snapshot {
        heapscope_protocol::Snapshot { areas: self.areas.iter().map(|a| a.area.clone()).collect(), reported: Default::default() }
    }

    /// Blocks marked unreliable, over all areas.
    pub fn unreliable_blocks(&self) -> usize {
        self.areas.iter().flat_map(|a| a.unreliable.iter()).map(|&(_, n)| n).sum()
    }

    /// Bytes of block contents held.
    pub fn content_bytes(&self) -> usize {
        self.memory.iter().map(|r| r.bytes.len()).sum()
    }
}

/// A dump's areas and memory must agree: areas apart, every range inside one area and apart from
/// the others, and every used block's contents there unless the block is marked unreliable
/// (otherwise its references would silently vanish from the analysis). `memory` is sorted.
fn check_memory(areas: &[DumpArea], memory: &[MemoryRange]) -> Result<(), DumpError> {
    let invalid = |m: String| Err(DumpError::Invalid(m));
    let span = |a: &Area| a.pool_start().checked_add(a.blocks() as u64 * u64::from(a.block_size()));
    let mut bounds = Vec::with_capacity(areas.len());
    for (i, a) in areas.iter().enumerate() {
        let Some(end) = span(&a.area) else { return invalid(format!("area {i} at {} runs past the end of the address space", hex(a.area.pool_start()))) };
        bounds.push((a.area.pool_start(), end, i));
    }
    bounds.sort_unstable();
    if let Some(w) = bounds.windows(2).find(|w| w[0].1 > w[1].0) {
        return invalid(format!("areas {} and {} overlap (at {})", w[0].2, w[1].2, hex(w[1].0)));
    }
    let mut covered: Vec<Vec<bool>> = areas.iter().map(|a| vec![false; a.area.blocks()]).collect();
    let mut previous_end = 0u64;
    for (n, r) in memory.iter().enumerate() {
        let Some(end) = r.address.checked_add(r.bytes.len() as u64) else {
            return invalid(format!("memory range at {} runs past the end of the address space", hex(r.address)));
        };
        if n > 0 && r.address < previous_end {
            return invalid(format!("memory ranges at {} and {} overlap", hex(memory[n - 1].address), hex(r.address)));
        }
        previous_end = end;
        let Some(&(start, _, i)) = bounds.iter().find(|&&(start, area_end, _)| start <= r.address && end <= area_end) else {
            return invalid(format!("memory range at {} ({} bytes) lies outside every area", hex(r.address), r.bytes.len()));
        };
        let block_size = u64::from(areas[i].area.block_size());
        let first = (r.address - start).div_ceil(block_size) as usize;
        let last = ((end - start) / block_size) as usize;
        covered[i][first..last.max(first)].fill(true);
    }
    for (i, a) in areas.iter().enumerate() {
        for &(start, len) in &a.unreliable {
            covered[i][start..start + len].fill(true);
        }
        let kinds = a.area.kinds();
        let missing: Vec<usize> = (0..a.area.blocks()).filter(|&b| !covered[i][b] && kinds.get(b) != BlockKind::Free).collect();
        if let Some(&first) = missing.first() {
            return invalid(format!(
                "area {i}: {} used blocks have no contents in `memory` and are not marked unreliable (the first at {})",
                missing.len(),
                hex(a.area.pool_start() + first as u64 * u64::from(a.area.block_size()))
            ));
        }
    }
    Ok(())
}

/// Runs of blocks whose kind differs between two layouts of the same area.
pub fn changed_runs(before: &KindTable, after: &KindTable) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let n = before.len().max(after.len());
    let mut i = 0;
    while i < n {
        // Whole equal bytes of the table are skipped four blocks at a time.
        if i % 4 == 0 && i + 4 <= before.len() && i + 4 <= after.len() && before.atb()[i / 4] == after.atb()[i / 4] {
            i += 4;
            continue;
        }
        let same = i < before.len() && i < after.len() && before.get(i) == after.get(i);
        if !same {
            match runs.last_mut() {
                Some((s, len)) if *s + *len == i => *len += 1,
                _ => runs.push((i, 1)),
            }
        }
        i += 1;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use heapscope_protocol::synth::pattern_area;

    fn sample() -> HeapDump {
        HeapDump {
            word_size: 4,
            source: "raw-repl".into(),
            areas: vec![DumpArea { area: pattern_area(0x3ffb0000, 16, "LD=..S="), unreliable: vec![(5, 2)] }],
            memory: vec![MemoryRange { address: 0x3ffb0000, bytes: (0..48).collect() }],
            types: vec![Named::new("list", 0x3f400010)],
            names: vec![Named::new("app.readings", 0x3ffb0010)],
            roots: vec![],
            mem_free: Some(1234),
        }
    }

    #[test]
    fn round_trips_through_json() {
        let d = sample();
        assert_eq!(HeapDump::from_json(d.to_json().as_bytes()).unwrap(), d);
        assert_eq!(d.unreliable_blocks(), 2);
    }

    #[test]
    fn damage_is_named() {
        let text = sample().to_json().replace("0x3ffb0010", "zz");
        let e = HeapDump::from_json(text.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("app.readings") && e.contains("zz"), "{e}");
        let e = HeapDump::from_json(b"{\"format\": 3}").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        let text = sample().to_json().replace("\"version\":1", "\"version\":9");
        assert!(HeapDump::from_json(text.as_bytes()).unwrap_err().to_string().contains("version 9"));
    }

    #[test]
    fn areas_and_memory_that_disagree_are_refused() {
        let refused = |d: &HeapDump| HeapDump::from_json(d.to_json().as_bytes()).unwrap_err().to_string();
        let mut d = sample();
        d.memory.clear();
        assert!(refused(&d).contains("3 used blocks have no contents"), "{}", refused(&d));
        let mut d = sample();
        d.memory.push(MemoryRange { address: 0x5000_0000, bytes: vec![0; 16] });
        assert!(refused(&d).contains("outside every area"), "{}", refused(&d));
        let mut d = sample();
        d.areas.push(d.areas[0].clone());
        assert!(refused(&d).contains("overlap"), "{}", refused(&d));
        let mut d = sample();
        d.memory = vec![
            MemoryRange { address: 0x3ffb0000, bytes: (0..32).collect() },
            MemoryRange { address: 0x3ffb0010, bytes: (0..32).collect() },
        ];
        assert!(refused(&d).contains("memory ranges at 0x3ffb0000 and 0x3ffb0010 overlap"), "{}", refused(&d));
        let mut d = sample();
        d.memory.push(MemoryRange { address: u64::MAX - 7, bytes: vec![0; 16] });
        assert!(refused(&d).contains("past the end of the address space"), "{}", refused(&d));
    }

    #[test]
    fn changed_runs_find_every_difference() {
        let a = pattern_area(0, 16, "h=..h=====..h...").kinds().clone();
        let b = pattern_area(0, 16, "h=..h===..h=h...").kinds().clone();
        assert_eq!(changed_runs(&a, &b), vec![(8, 4)]);
        assert_eq!(changed_runs(&a, &a), vec![]);
    }
}
