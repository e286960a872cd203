//! Parser for `micropython.mem_info()` text, every era (v1.8 to v1.29+), whole or streamed.
//!
//! A [`Scanner`] is fed console bytes in chunks of any size and yields each complete dump it
//! finds among other text (REPL prompts, the user's prints). [`parse`] does the same for a
//! whole text. Summary-only dumps (`mem_info()`) give a snapshot with no areas; layout dumps
//! (`mem_info(1)`) give one area per `GC memory layout; from ADDR:` section.
//!
//! Where the layout and the device's own figures disagree, the dump carries a [`Warning`]
//! and keeps both: the layout as areas, the figures as [`Reported`].

use std::fmt;

use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{digit1, hex_digit1};
use nom::combinator::{all_consuming, map_res, opt};
use nom::sequence::{delimited, preceded};
use nom::{IResult, Parser};

use crate::metrics::gc_figures;
use crate::model::{Area, BlockKind, GcFigures, KindTable, MemStats, ObjType, Reported, Snapshot, StackFigures, MAX_HEAP_BLOCKS};

/// Blocks per layout row: `DUMP_BYTES_PER_LINE` in py/gc.c.
pub const BLOCKS_PER_ROW: usize = 64;

/// Longest line kept; longer lines cannot be part of a dump and are dropped in pieces.
const MAX_LINE: usize = 4096;

/// One complete dump found in the text.
#[derive(Clone, Debug, PartialEq)]
pub struct Dump {
    pub snapshot: Snapshot,
    pub warnings: Vec<Warning>,
    /// 1-based line numbers of the dump's first and last lines in the scanned text.
    pub first_line: usize,
    pub last_line: usize,
}

/// A disagreement inside a dump that was parsed anyway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line the warning is about.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// A dump that could not be parsed; scanning goes on after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column (in characters of the line after its leading blanks), where known.
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.column {
            Some(col) => write!(f, "line {}, column {}: {}", self.line, col, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

impl std::error::Error for ParseError {}

/// What the scanner found.
#[derive(Clone, Debug, PartialEq)]
pub enum ScanEvent {
    Dump(Box<Dump>),
    Error(ParseError),
}

/// Parses a whole text: every dump in it, and every malformed one.
pub fn parse(text: &[u8]) -> (Vec<Dump>, Vec<ParseError>) {
    let mut scanner = Scanner::new();
    let mut events = scanner.push(text);
    events.extend(scanner.finish());
    let mut dumps = Vec::new();
    let mut errors = Vec::new();
    for event in events {
        match event {
            ScanEvent::Dump(d) => dumps.push(*d),
            ScanEvent::Error(e) => errors.push(e),
        }
    }
    (dumps, errors)
}

// ---------------------------------------------------------------------------------------------
// Lines

#[derive(Debug, PartialEq)]
enum Line<'a> {
    Mem(MemStats),
    Stack(StackFigures),
    Gc { total: u64, used: u64, free: u64, max_new_split: Option<u64> },
    Blocks { one: u64, two: u64, max_block: u64, max_free: u64 },
    LayoutHeader(u64),
    /// `cells` are ASCII layout characters, each valid for [`cell`].
    Row { offset: u64, digits: usize, cells: &'a [u8] },
    AllFree(u64),
    Other,
}

fn dec(i: &str) -> IResult<&str, u64> {
    map_res(digit1, str::parse).parse(i)
}

fn hex(i: &str) -> IResult<&str, u64> {
    map_res(hex_digit1, |h| u64::from_str_radix(h, 16)).parse(i)
}

fn mem_line(i: &str) -> IResult<&str, Line<'_>> {
    let (i, (_, total, _, current, _, peak)) =
        (tag("mem: total="), dec, tag(", current="), dec, tag(", peak="), dec).parse(i)?;
    Ok((i, Line::Mem(MemStats { total, current, peak })))
}

fn stack_line(i: &str) -> IResult<&str, Line<'_>> {
    let (i, (used, limit)) = preceded(tag("stack: "), (dec, opt(preceded(tag(" out of "), dec)))).parse(i)?;
    Ok((i, Line::Stack(StackFigures { used, limit })))
}

const GC_PREFIX: &str = "GC: total:";
const BLOCKS_PREFIX: &str = "No. of 1-blocks:";
const HEADER_PREFIX: &str = "GC memory layout; from";
const ALL_FREE_SUFFIX: &str = " lines all free)";

fn gc_line(i: &str) -> IResult<&str, Line<'_>> {
    let (i, (_, total, _, used, _, free, max_new_split)) = (
        tag("GC: total: "),
        dec,
        tag(", used: "),
        dec,
        tag(", free: "),
        dec,
        opt(preceded(tag(", max new split: "), dec)),
    )
        .parse(i)?;
    Ok((i, Line::Gc { total, used, free, max_new_split }))
}

fn blocks_line(i: &str) -> IResult<&str, Line<'_>> {
    let (i, (_, one, _, two, _, max_block, _, max_free)) = (
        tag("No. of 1-blocks: "),
        dec,
        tag(", 2-blocks: "),
        dec,
        tag(", max blk sz: "),
        dec,
        tag(", max free sz: "),
        dec,
    )
        .parse(i)?;
    Ok((i, Line::Blocks { one, two, max_block, max_free }))
}

fn header_line(i: &str) -> IResult<&str, Line<'_>> {
    let (i, addr) = delimited(tag("GC memory layout; from "), preceded(opt(tag("0x")), hex), tag(":")).parse(i)?;
    Ok((i, Line::LayoutHeader(addr)))
}

/// What one character of a layout row means: the block's kind and, for a head, its type.
/// `=` is a tail (`t` before v1.8.1), `m` a marked head, letters are heads by type.
pub const fn cell(c: char) -> Option<(BlockKind, Option<ObjType>)> {
    Some(match c {
        '.' => (BlockKind::Free, None),
        '=' | 't' => (BlockKind::Tail, None),
        'm' => (BlockKind::Mark, Some(ObjType::Unknown)),
        'T' => (BlockKind::Head, Some(ObjType::Tuple)),
        'L' => (BlockKind::Head, Some(ObjType::List)),
        'D' => (BlockKind::Head, Some(ObjType::Dict)),
        'S' => (BlockKind::Head, Some(ObjType::Str)),
        'A' => (BlockKind::Head, Some(ObjType::ByteArray)),
        'F' => (BlockKind::Head, Some(ObjType::Float)),
        'B' => (BlockKind::Head, Some(ObjType::Function)),
        'M' => (BlockKind::Head, Some(ObjType::Module)),
        'h' => (BlockKind::Head, Some(ObjType::Other)),
        _ => return None,
    })
}

/// [`cell`] for every byte: `NOT_A_CELL`, or the kind's 2 bits and, for heads, `HAS_TYPE`
/// (the type is in [`CELL_TYPES`]).
const CELLS: [u8; 256] = {
    let mut t = [NOT_A_CELL; 256];
    let mut b = 0;
    while b < 128 {
        if let Some((kind, obj_type)) = cell(b as u8 as char) {
            t[b] = kind as u8;
            if let Some(ty) = obj_type {
                let _ = ty;
                t[b] |= HAS_TYPE;
            }
        }
        b += 1;
    }
    t
};
const NOT_A_CELL: u8 = 0x80;

/// The head type of every cell byte (`Unknown` where there is none).
const CELL_TYPES: [ObjType; 256] = {
    let mut t = [ObjType::Unknown; 256];
    let mut b = 0;
    while b < 128 {
        if let Some((_, Some(ty))) = cell(b as u8 as char) {
            t[b] = ty;
        }
        b += 1;
    }
    t
};
const HAS_TYPE: u8 = 0x04;

/// A snapshot as the text `micropython.mem_info(1)` of v1.20+ prints for it (`\n` line ends, as
/// the unix port sends): the `mem:` and `stack:` lines where reported, the GC figures (the
/// reported ones, else recomputed from the layout), then one layout section per area exactly as
/// `gc_dump_alloc_table` writes it, `(N lines all free)` included. What a host would receive
/// if it polled `mem_info(1)` instead of streaming: the baseline the wire format is held against.
pub fn render_mem_info(snapshot: &Snapshot) -> String {
    use std::fmt::Write;
    let r = &snapshot.reported;
    let mut out = String::new();
    if let Some(m) = r.mem {
        let _ = writeln!(out, "mem: total={}, current={}, peak={}", m.total, m.current, m.peak);
    }
    match r.stack {
        Some(StackFigures { used, limit: Some(limit) }) => {
            let _ = writeln!(out, "stack: {used} out of {limit}");
        }
        Some(StackFigures { used, limit: None }) => {
            let _ = writeln!(out, "stack: {used}");
        }
        None => {}
    }
    let g = r.gc.unwrap_or_else(|| gc_figures(&snapshot.areas));
    let _ = write!(out, "GC: total: {}, used: {}, free: {}", g.total, g.used, g.free);
    if let Some(split) = r.max_new_split {
        let _ = write!(out, ", max new split: {split}");
    }
    let _ = writeln!(
        out,
        "\n No. of 1-blocks: {}, 2-blocks: {}, max blk sz: {}, max free sz: {}",
        g.one_blocks, g.two_blocks, g.max_block, g.max_free
    );
    for area in &snapshot.areas {
        let _ = write!(out, "GC memory layout; from {:x}:", area.pool_start());
        let kinds = area.kinds();
        let mut types = area.types().iter();
        let mut block = 0;
        while block < kinds.len() {
            if block % BLOCKS_PER_ROW == 0 {
                let free_end = kinds.run_end(block, BlockKind::Free);
                if free_end - block >= 2 * BLOCKS_PER_ROW {
                    let _ = write!(out, "\n       ({} lines all free)", (free_end - block) / BLOCKS_PER_ROW);
                    block = free_end & !(BLOCKS_PER_ROW - 1);
                    if block >= kinds.len() {
                        break;
                    }
                }
                let _ = write!(out, "\n{:08x}: ", block as u64 * u64::from(area.block_size()));
            }
            out.push(match kinds.get(block) {
                BlockKind::Free => '.',
                BlockKind::Tail => '=',
                BlockKind::Mark => {
                    types.next();
                    'm'
                }
                BlockKind::Head => types.next().map_or('h', |t| t.mem_info_letter()),
            });
            block += 1;
        }
        out.push('\n');
    }
    out
}

fn is_cell(c: char) -> bool {
    cell(c).is_some()
}

fn row_line(i: &str) -> IResult<&str, Line<'_>> {
    let (i, digits) = take_while1(|c: char| c.is_ascii_hexdigit()).parse(i)?;
    let (i, _) = tag(":").parse(i)?;
    let (i, _) = opt(tag(" ")).parse(i)?;
    let (i, cells) = take_while(is_cell).parse(i)?;
    let offset = u64::from_str_radix(digits, 16).map_err(|_| {
        nom::Err::Error(nom::error::Error::new(digits, nom::error::ErrorKind::HexDigit))
    })?;
    Ok((i, Line::Row { offset, digits: digits.len(), cells: cells.as_bytes() }))
}

/// A layout row exactly as boards print it (`00001a40: h=..D` with `\r\n` or `\n`), read
/// straight from the raw bytes: the common line of a dump, without normalising a copy.
/// Anything unusual (other blanks) returns `None` for the general path to judge. The cells are
/// not checked here: [`DumpBuilder::add_row`] checks them as it packs them.
fn plain_row(raw: &[u8]) -> Option<Line<'_>> {
    let mut end = raw.len();
    while end > 0 && matches!(raw[end - 1], b'\r' | b' ') {
        end -= 1;
    }
    let raw = &raw[..end];
    let start = raw.iter().position(|&b| b != b' ')?;
    let raw = &raw[start..];
    let digits = raw.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 || raw.get(digits) != Some(&b':') {
        return None;
    }
    let mut cells = &raw[digits + 1..];
    if cells.first() == Some(&b' ') {
        cells = &cells[1..];
    }
    let offset = raw[..digits].iter().fold(0u64, |v, &d| v << 4 | u64::from((d as char).to_digit(16).expect("a hex digit")));
    Some(Line::Row { offset, digits, cells })
}

/// `(N lines all free)`: N is checked here, so a number too large for any heap is an error
/// that names it, not console text.
fn all_free_line(i: &str) -> IResult<&str, Line<'_>> {
    let (i, n) = delimited(tag("("), dec, tag(ALL_FREE_SUFFIX)).parse(i)?;
    Ok((i, Line::AllFree(n)))
}

/// Whether a line's first non-blank byte could start a dump line: anything else is console
/// text, seen without normalising it.
fn may_be_dump_line(raw: &[u8]) -> bool {
    let first = raw.iter().copied().find(|b| !matches!(b, b' ' | b'\t' | b'\r' | 0xC2 | 0xA0));
    first.is_some_and(|b| b.is_ascii_hexdigit() || matches!(b, b'G' | b'N' | b'm' | b's' | b'('))
}

/// Classifies a normalised line. Lines that start like part of a dump but do not parse are
/// errors; everything else that is not a dump line is console text.
fn classify(line: &str) -> Result<Line<'_>, (usize, String)> {
    let strict = |parser: fn(&str) -> IResult<&str, Line<'_>>, what: &str| match all_consuming(parser).parse(line) {
        Ok((_, l)) => Ok(l),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
            let column = line.len() - e.input.len() + 1;
            let why = if e.code == nom::error::ErrorKind::MapRes { "number too large in" } else { "malformed" };
            Err((column, format!("{why} {what} line: {line:?}")))
        }
        Err(nom::Err::Incomplete(_)) => Err((line.len() + 1, format!("truncated {what} line: {line:?}"))),
    };
    if line.starts_with(GC_PREFIX) {
        return strict(gc_line, "`GC: total:`");
    }
    if line.starts_with(BLOCKS_PREFIX) {
        return strict(blocks_line, "`No. of 1-blocks:`");
    }
    if line.starts_with(HEADER_PREFIX) {
        return strict(header_line, "`GC memory layout; from`");
    }
    if line.starts_with('(') && line.ends_with(ALL_FREE_SUFFIX) && line[1..].starts_with(|c: char| c.is_ascii_digit()) {
        return strict(all_free_line, "`(N lines all free)`");
    }
    for parser in [mem_line, stack_line] {
        if let Ok((_, l)) = all_consuming(parser).parse(line) {
            return Ok(l);
        }
    }
    // Rows are only rows inside a layout section; the caller decides.
    match all_consuming(row_line).parse(line) {
        Ok((_, l)) => Ok(l),
        Err(_) => Ok(Line::Other),
    }
}

/// Whether a line that did not parse as a row was meant as one: hex digits, a colon, and
/// block cells. (`10:30 started` printed after a dump is console text, not a broken row.)
fn looks_like_row(line: &str) -> bool {
    let hex_len = line.bytes().take_while(u8::is_ascii_hexdigit).count();
    hex_len > 0
        && line.as_bytes().get(hex_len) == Some(&b':')
        && line[hex_len + 1..].trim_start().starts_with(is_cell)
}

/// Lines as boards, unix and pasted logs send them: `\r\n` or `\n`, U+00A0 where spaces belong,
/// runs of blanks. Writes into `out` (reused: no allocation once it has grown) and returns the
/// line, or `None` for text that is not UTF-8 (never part of a dump).
fn normalise<'a>(raw: &'a [u8], out: &'a mut Vec<u8>) -> Option<&'a str> {
    // Most lines need nothing done: single spaces between words, none at either end.
    let plain = raw.first() != Some(&b' ')
        && raw.last() != Some(&b' ')
        && !raw.iter().any(|&b| matches!(b, b'\t' | b'\r' | 0xC2 | 0xA0))
        && !raw.windows(2).any(|w| w == b"  ");
    if plain {
        return std::str::from_utf8(raw).ok();
    }
    out.clear();
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        let blank = match b {
            b' ' | b'\t' | b'\r' => true,
            0xC2 if raw.get(i + 1) == Some(&0xA0) => {
                i += 1;
                true
            }
            0xA0 => true, // a Latin-1 no-break space
            _ => false,
        };
        if blank {
            if !out.is_empty() && out.last() != Some(&b' ') {
                out.push(b' ');
            }
        } else {
            out.push(b);
        }
        i += 1;
    }
    while out.last() == Some(&b' ') {
        out.pop();
    }
    std::str::from_utf8(out).ok()
}

// ---------------------------------------------------------------------------------------------
// Dump assembly

/// A layout row as printed, kept to check offsets once the block size is known.
#[derive(Clone, Copy, Debug)]
struct RowRecord {
    line: usize,
    area: usize,
    block: usize,
    offset: u64,
    digits: usize,
}

#[derive(Debug)]
struct AreaBuilder {
    pool_start: u64,
    header_line: usize,
    kinds: KindTable,
    types: Vec<ObjType>,
}

#[derive(Debug)]
struct DumpBuilder {
    first_line: usize,
    last_line: usize,
    reported: Reported,
    gc_line: usize,
    blocks_line: usize,
    areas: Vec<AreaBuilder>,
    /// Blocks over all areas so far, at most [`MAX_HEAP_BLOCKS`].
    blocks: usize,
    rows: Vec<RowRecord>,
    warnings: Vec<Warning>,
}

/// A layout that claims more blocks than any heap has.
fn too_many_blocks(line: usize, column: usize, blocks: u64) -> ParseError {
    let claimed = if blocks == u64::MAX { "more than 2^64".to_string() } else { blocks.to_string() };
    ParseError {
        line,
        column: Some(column),
        message: format!(
            "the layout claims {claimed} blocks; a snapshot holds at most {MAX_HEAP_BLOCKS} (a 256 MiB heap of 16-byte blocks, larger than any board's)"
        ),
    }
}

impl DumpBuilder {
    /// Adds a row's cells to the last area. `Ok(false)` when a cell is not a layout character:
    /// then nothing changed and the line is not a row.
    fn add_row(&mut self, line: usize, offset: u64, digits: usize, cells: &[u8]) -> Result<bool, ParseError> {
        if cells.len() > BLOCKS_PER_ROW {
            if cells.iter().any(|&c| CELLS[c as usize] == NOT_A_CELL) {
                return Ok(false);
            }
            return Err(ParseError {
                line,
                column: None,
                message: format!("layout row has {} blocks, at most {BLOCKS_PER_ROW} fit a row", cells.len()),
            });
        }
        // Four cells to a table byte, as the device stores them; head types gathered and
        // appended at once. Branch-free: every cell writes a type, only heads advance.
        let mut atb = [0u8; BLOCKS_PER_ROW / 4];
        let mut types = [ObjType::Unknown; BLOCKS_PER_ROW + 4];
        let (mut heads, mut bad) = (0, 0);
        let mut quads = cells.chunks_exact(4);
        for (byte, quad) in atb.iter_mut().zip(&mut quads) {
            let codes = [CELLS[quad[0] as usize], CELLS[quad[1] as usize], CELLS[quad[2] as usize], CELLS[quad[3] as usize]];
            bad |= codes[0] | codes[1] | codes[2] | codes[3];
            *byte = (codes[0] & 3) | (codes[1] & 3) << 2 | (codes[2] & 3) << 4 | (codes[3] & 3) << 6;
            for (&c, code) in quad.iter().zip(codes) {
                types[heads % BLOCKS_PER_ROW] = CELL_TYPES[c as usize];
                heads += usize::from((code & HAS_TYPE) >> 2);
            }
        }
        for &c in quads.remainder() {
            let code = CELLS[c as usize];
            bad |= code;
            types[heads % BLOCKS_PER_ROW] = CELL_TYPES[c as usize];
            heads += usize::from((code & HAS_TYPE) >> 2);
        }
        if bad & NOT_A_CELL != 0 {
            return Ok(false);
        }
        let area_index = self.areas.len() - 1;
        let area = self.areas.last_mut().expect("rows only inside a layout section");
        if !area.kinds.len().is_multiple_of(BLOCKS_PER_ROW) {
            self.warnings.push(Warning {
                line,
                message: format!(
                    "row follows a short row: the area already ended at block {}",
                    area.kinds.len()
                ),
            });
        }
        if self.blocks + cells.len() > MAX_HEAP_BLOCKS {
            return Err(too_many_blocks(line, 1, self.blocks as u64 + cells.len() as u64));
        }
        self.rows.push(RowRecord { line, area: area_index, block: area.kinds.len(), offset, digits });
        area.types.extend_from_slice(&types[..heads]);
        let whole = cells.len() / 4;
        area.kinds.extend_from_atb(&atb[..whole]);
        for i in whole * 4..cells.len() {
            area.kinds.push(BlockKind::from_bits(CELLS[cells[i] as usize]));
        }
        self.blocks += cells.len();
        self.last_line = line;
        Ok(true)
    }

    fn add_all_free(&mut self, line: usize, lines: u64) -> Result<(), ParseError> {
        let total = lines.checked_mul(BLOCKS_PER_ROW as u64).and_then(|b| b.checked_add(self.blocks as u64));
        let blocks = match total {
            Some(total) if total <= MAX_HEAP_BLOCKS as u64 => (total - self.blocks as u64) as usize,
            _ => return Err(too_many_blocks(line, 2, total.unwrap_or(u64::MAX))),
        };
        let area = self.areas.last_mut().expect("all-free lines only inside a layout section");
        area.kinds.push_run(BlockKind::Free, blocks);
        self.blocks += blocks;
        self.last_line = line;
        Ok(())
    }

    fn layout_blocks(&self) -> usize {
        self.blocks
    }

    /// Block size told by row offsets alone: the distance between two rows of one area.
    fn block_size_from_rows(&self) -> Option<u64> {
        let mut first_of_area: Option<RowRecord> = None;
        for row in &self.rows {
            match first_of_area {
                Some(first) if first.area == row.area && row.block > first.block => {
                    let modulus = 1u64 << (4 * row.digits.min(16)).min(63);
                    let bytes = row.offset.wrapping_sub(first.offset) % modulus;
                    let blocks = (row.block - first.block) as u64;
                    return (bytes.is_multiple_of(blocks) && (bytes / blocks).is_power_of_two()).then_some(bytes / blocks);
                }
                Some(first) if first.area == row.area => {}
                _ => first_of_area = Some(*row),
            }
        }
        None
    }

    /// Whether every block of the reported total has been seen (so a dump printed by a program
    /// that then goes quiet is still yielded).
    fn layout_is_complete(&self) -> bool {
        let last_row_short = self.areas.last().is_some_and(|a| a.kinds.len() % BLOCKS_PER_ROW != 0);
        if !last_row_short {
            return false;
        }
        let (Some(gc), Some(bs)) = (self.reported.gc, self.block_size_from_rows()) else {
            return false;
        };
        self.layout_blocks() as u64 * bs == gc.total
    }

    fn finish(mut self) -> Result<Dump, ParseError> {
        let mut snapshot = Snapshot { areas: Vec::new(), reported: self.reported.clone() };
        if !self.areas.is_empty() {
            let block_size = self.infer_block_size()?;
            self.check_row_offsets(block_size);
            for area in std::mem::take(&mut self.areas) {
                let line = area.header_line;
                let built = Area::new(area.pool_start, block_size as u32, area.kinds, area.types)
                    .map_err(|e| ParseError { line, column: None, message: e.to_string() })?;
                snapshot.areas.push(built);
            }
            self.check_figures(&snapshot);
        }
        Ok(Dump { snapshot, warnings: self.warnings, first_line: self.first_line, last_line: self.last_line })
    }

    /// Pool bytes / blocks, checked against the spacing of the row offsets.
    fn infer_block_size(&mut self) -> Result<u64, ParseError> {
        let blocks = self.layout_blocks() as u64;
        let total = self.reported.gc.map_or(0, |g| g.total);
        let from_total = (blocks > 0 && total.is_multiple_of(blocks) && (total / blocks).is_power_of_two() && total / blocks >= 4)
            .then(|| total / blocks);
        let from_rows = self.block_size_from_rows();
        match (from_total, from_rows) {
            (Some(t), Some(r)) if t != r => {
                self.warnings.push(Warning {
                    line: self.gc_line,
                    message: format!(
                        "GC total {total} over {blocks} blocks gives {t}-byte blocks, but row offsets step {r} bytes per block; using {r}"
                    ),
                });
                Ok(r)
            }
            (Some(t), _) => Ok(t),
            // The total does not divide: rows are missing or extra. Two rows with one missing
            // between them double the block size the rows tell, so the total's estimate (the
            // nearest power of two) wins when the two are far apart.
            (None, Some(r)) => {
                let estimate = total as f64 / blocks.max(1) as f64;
                let nearest = 2f64.powf(estimate.max(1.0).log2().round()) as u64;
                if total > 0 && nearest >= 4 && nearest != r && !(2.0 / 3.0..1.5).contains(&(r as f64 / estimate)) {
                    self.warnings.push(Warning {
                        line: self.gc_line,
                        message: format!(
                            "GC total {total} over the {blocks} blocks shown gives about {estimate:.1}-byte blocks, but the first rows step {r} bytes per block (a row missing?); using {nearest}"
                        ),
                    });
                    Ok(nearest)
                } else {
                    Ok(r)
                }
            }
            (None, None) => Err(ParseError {
                line: self.gc_line,
                column: None,
                message: format!(
                    "cannot infer the block size: GC total {total} is not a power-of-two multiple of the {blocks} blocks in the layout, and no two rows of one area give it"
                ),
            }),
        }
    }

    /// Each row's printed offset must be where its first block lies (masked to the digits
    /// printed: v1.8-v1.19 wrap past 1 MiB). Before v1.8.1 offsets were absolute addresses.
    fn check_row_offsets(&mut self, block_size: u64) {
        let mut reported_lines = 0;
        for row in &self.rows {
            let modulus = 1u64.checked_shl(4 * row.digits as u32).unwrap_or(0);
            let mask = |v: u64| if modulus == 0 { v } else { v % modulus };
            let relative = row.block as u64 * block_size;
            let absolute = self.areas[row.area].pool_start + relative;
            if row.offset != mask(relative) && row.offset != mask(absolute) {
                if reported_lines < 3 {
                    self.warnings.push(Warning {
                        line: row.line,
                        message: format!(
                            "row offset {:0width$x} does not match its position: block {} of the area is offset {:0width$x}",
                            row.offset,
                            row.block,
                            mask(relative),
                            width = row.digits
                        ),
                    });
                }
                reported_lines += 1;
            }
        }
        if reported_lines > 3 {
            self.warnings.push(Warning {
                line: self.rows[0].line,
                message: format!("{} more rows have offsets that do not match their position", reported_lines - 3),
            });
        }
    }

    /// The device's summary line against the same figures recomputed from the layout.
    fn check_figures(&mut self, snapshot: &Snapshot) {
        let Some(reported) = snapshot.reported.gc else { return };
        let layout: GcFigures = gc_figures(&snapshot.areas);
        let checks = [
            ("total bytes", reported.total, layout.total, self.gc_line),
            ("used bytes", reported.used, layout.used, self.gc_line),
            ("free bytes", reported.free, layout.free, self.gc_line),
            ("1-block allocations", reported.one_blocks, layout.one_blocks, self.blocks_line),
            ("2-block allocations", reported.two_blocks, layout.two_blocks, self.blocks_line),
            ("max blk sz (blocks)", reported.max_block, layout.max_block, self.blocks_line),
            ("max free sz (blocks)", reported.max_free, layout.max_free, self.blocks_line),
        ];
        for (what, device, recomputed, line) in checks {
            if device != recomputed {
                self.warnings.push(Warning {
                    line,
                    message: format!("the device reports {what} {device}, the layout shows {recomputed}"),
                });
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scanner

/// Position of the first `\n`, eight bytes at a time (the word trick of memchr, no dependency).
fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for c in &mut chunks {
        let x = u64::from_le_bytes(c.try_into().expect("8 bytes")) ^ NL;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&b| b == b'\n').map(|i| at + i)
}

#[derive(Debug)]
enum State {
    Idle,
    /// After `GC:`, expecting `No. of 1-blocks:`.
    AfterGc(Box<DumpBuilder>),
    /// After the summary; a layout section may follow.
    Summary(Box<DumpBuilder>),
    /// Inside layout sections.
    Layout(Box<DumpBuilder>),
}

/// Incremental dump finder over a console byte stream.
#[derive(Debug)]
pub struct Scanner {
    partial: Vec<u8>,
    /// Lines dropped from `partial` for being too long still count.
    partial_overflowed: bool,
    line_no: usize,
    state: State,
    /// The last `mem:` and `stack:` lines seen, with their line numbers: a dump starts with
    /// them when they directly precede its `GC:` line.
    recent_mem: Option<(usize, MemStats)>,
    recent_stack: Option<(usize, StackFigures)>,
    scratch: Vec<u8>,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner {
            partial: Vec::new(),
            partial_overflowed: false,
            line_no: 0,
            state: State::Idle,
            recent_mem: None,
            recent_stack: None,
            scratch: Vec::new(),
        }
    }


    /// Feeds console bytes; returns the dumps (and malformed dumps) completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<ScanEvent> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while let Some(nl) = memchr_newline(rest) {
            let (line, after) = (&rest[..nl], &rest[nl + 1..]);
            rest = after;
            self.line_no += 1;
            if self.partial.is_empty() && !self.partial_overflowed {
                // The whole line is in this chunk: look at it where it lies.
                self.process_line(line, line.len() > MAX_LINE, &mut events);
            } else {
                self.extend_partial(line);
                let partial = std::mem::take(&mut self.partial);
                let overflowed = std::mem::replace(&mut self.partial_overflowed, false);
                self.process_line(&partial, overflowed, &mut events);
                // Keep the buffer's allocation for the next line.
                self.partial = partial;
                self.partial.clear();
            }
        }
        self.extend_partial(rest);
        // A dump ends at the first line that cannot belong to it. The REPL prompt (`>>> `) and
        // the raw REPL's `\x04` come without a newline, so look at the unfinished line too.
        if !self.partial.is_empty() && !self.partial_may_continue_dump() {
            self.complete_dump(&mut events);
        }
        events
    }

    /// Lines seen so far (a last line without its newline counts once [`finish`](Self::finish)
    /// has seen it).
    pub fn lines_seen(&self) -> usize {
        self.line_no
    }

    /// End of input: yields a dump still open.
    pub fn finish(&mut self) -> Vec<ScanEvent> {
        let mut events = Vec::new();
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            let overflowed = std::mem::replace(&mut self.partial_overflowed, false);
            self.line_no += 1;
            self.process_line(&line, overflowed, &mut events);
        }
        self.complete_dump(&mut events);
        events
    }

    fn extend_partial(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.partial.len());
        if bytes.len() > room {
            self.partial_overflowed = true;
        }
        self.partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn partial_may_continue_dump(&self) -> bool {
        match self.state {
            // After `GC:` only the `No. of 1-blocks:` line may come: wait for all of it.
            State::Idle | State::AfterGc(_) => true,
            State::Summary(_) | State::Layout(_) => self.partial.iter().all(|&b| {
                b.is_ascii_alphanumeric() || b" :;()=.,-\t\r".contains(&b) || b == 0xC2 || b == 0xA0
            }),
        }
    }

    fn complete_dump(&mut self, events: &mut Vec<ScanEvent>) {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => {}
            State::AfterGc(b) => events.push(ScanEvent::Error(ParseError {
                line: b.gc_line,
                column: None,
                message: "`GC: total:` line not followed by its `No. of 1-blocks:` line".into(),
            })),
            State::Summary(b) | State::Layout(b) => events.push(match b.finish() {
                Ok(dump) => ScanEvent::Dump(Box::new(dump)),
                Err(e) => ScanEvent::Error(e),
            }),
        }
    }

    fn process_line(&mut self, raw: &[u8], overflowed: bool, events: &mut Vec<ScanEvent>) {
        let line_no = self.line_no;
        if overflowed {
            return self.step(line_no, Line::Other, "", events);
        }
        if let Some(Line::Row { offset, digits, cells }) = plain_row(raw) {
            let State::Layout(b) = &mut self.state else {
                // Outside a layout section a row means what any console text means.
                return self.step(line_no, Line::Other, "", events);
            };
            match b.add_row(line_no, offset, digits, cells) {
                Ok(true) => {
                    if b.layout_is_complete() {
                        self.complete_dump(events);
                    }
                    return;
                }
                // A character that is no cell: the general path names it.
                Ok(false) => {}
                Err(e) => {
                    self.state = State::Idle;
                    events.push(ScanEvent::Error(e));
                    return;
                }
            }
        }
        if !may_be_dump_line(raw) {
            return self.step(line_no, Line::Other, "", events);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        if let Some(text) = normalise(raw, &mut scratch) {
            match classify(text) {
                Ok(line) => self.step(line_no, line, text, events),
                Err((column, message)) => {
                    // A broken dump line ends any dump in progress and is reported.
                    self.complete_dump(events);
                    events.push(ScanEvent::Error(ParseError { line: line_no, column: Some(column), message }));
                }
            }
        } else {
            self.step(line_no, Line::Other, "", events);
        }
        self.scratch = scratch;
    }

    fn step(&mut self, line_no: usize, line: Line<'_>, text: &str, events: &mut Vec<ScanEvent>) {
        let state = std::mem::replace(&mut self.state, State::Idle);
        self.state = match (state, line) {
            (State::AfterGc(mut b), Line::Blocks { one, two, max_block, max_free }) => {
                let gc = b.reported.gc.as_mut().expect("AfterGc has the GC line");
                gc.one_blocks = one;
                gc.two_blocks = two;
                gc.max_block = max_block;
                gc.max_free = max_free;
                b.blocks_line = line_no;
                b.last_line = line_no;
                State::Summary(b)
            }
            (State::Summary(mut b) | State::Layout(mut b), Line::LayoutHeader(addr)) => {
                b.areas.push(AreaBuilder {
                    pool_start: addr,
                    header_line: line_no,
                    kinds: KindTable::default(),
                    types: Vec::new(),
                });
                b.last_line = line_no;
                State::Layout(b)
            }
            (State::Layout(mut b), Line::Row { offset, digits, cells }) => {
                match b.add_row(line_no, offset, digits, cells) {
                    Ok(true) => self.layout_step(b, events),
                    // The general path gives rows only of layout characters.
                    Ok(false) => State::Idle,
                    Err(e) => {
                        events.push(ScanEvent::Error(e));
                        return;
                    }
                }
            }
            (State::Layout(mut b), Line::AllFree(lines)) => {
                if let Err(e) = b.add_all_free(line_no, lines) {
                    events.push(ScanEvent::Error(e));
                    return;
                }
                self.layout_step(b, events)
            }
            (State::Layout(_), Line::Other) if looks_like_row(text) => {
                let column = text.find(':').map(|colon| {
                    let cells = text[colon + 1..].trim_start();
                    let bad = cells.find(|c: char| !is_cell(c)).unwrap_or(0);
                    text.len() - cells.len() + bad + 1
                });
                events.push(ScanEvent::Error(ParseError {
                    line: line_no,
                    column,
                    message: format!("malformed heap layout row: {text:?}"),
                }));
                State::Idle
            }
            (state, line) => {
                // Anything else ends the dump in progress and is looked at afresh.
                self.state = state;
                self.complete_dump(events);
                self.idle_step(line_no, line);
                return;
            }
        };
    }

    fn layout_step(&mut self, b: Box<DumpBuilder>, events: &mut Vec<ScanEvent>) -> State {
        if b.layout_is_complete() {
            self.state = State::Layout(b);
            self.complete_dump(events);
            State::Idle
        } else {
            State::Layout(b)
        }
    }

    fn idle_step(&mut self, line_no: usize, line: Line<'_>) {
        match line {
            Line::Mem(m) => self.recent_mem = Some((line_no, m)),
            Line::Stack(s) => self.recent_stack = Some((line_no, s)),
            Line::Gc { total, used, free, max_new_split } => {
                let stack = self.recent_stack.filter(|(l, _)| *l + 1 == line_no);
                let mem_line = stack.map_or(line_no, |(l, _)| l) - 1;
                let mem = self.recent_mem.filter(|(l, _)| *l == mem_line);
                let first_line = mem.map(|(l, _)| l).or(stack.map(|(l, _)| l)).unwrap_or(line_no);
                let reported = Reported {
                    gc: Some(GcFigures { total, used, free, ..Default::default() }),
                    max_new_split,
                    stack: stack.map(|(_, s)| s),
                    mem: mem.map(|(_, m)| m),
                    ..Reported::default()
                };
                self.state = State::AfterGc(Box::new(DumpBuilder {
                    first_line,
                    last_line: line_no,
                    reported,
                    gc_line: line_no,
                    blocks_line: 0,
                    areas: Vec::new(),
                    blocks: 0,
                    rows: Vec::new(),
                    warnings: Vec::new(),
                }));
            }
            // Layout pieces outside a dump, and the summary's second line alone, are console
            // text: a program may print anything.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str = "stack: 736 out of 15360\nGC: total: 119360, used: 6192, free: 113168\n No. of 1-blocks: 48, 2-blocks: 11, max blk sz: 264, max free sz: 7065\n";

    #[test]
    fn summary_only() {
        let (dumps, errors) = parse(SUMMARY.as_bytes());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(dumps.len(), 1);
        let d = &dumps[0];
        assert!(d.snapshot.areas.is_empty());
        let gc = d.snapshot.reported.gc.unwrap();
        assert_eq!((gc.total, gc.used, gc.free), (119360, 6192, 113168));
        assert_eq!((gc.one_blocks, gc.two_blocks, gc.max_block, gc.max_free), (48, 11, 264, 7065));
        assert_eq!(d.snapshot.reported.stack, Some(StackFigures { used: 736, limit: Some(15360) }));
        assert_eq!((d.first_line, d.last_line), (1, 3));
    }

    #[test]
    fn lines_are_classified() {
        assert_eq!(classify("stack: 624").unwrap(), Line::Stack(StackFigures { used: 624, limit: None }));
        assert_eq!(
            classify("GC: total: 56000, used: 672, free: 55328, max new split: 262144").unwrap(),
            Line::Gc { total: 56000, used: 672, free: 55328, max_new_split: Some(262144) }
        );
        assert_eq!(classify("(108 lines all free)").unwrap(), Line::AllFree(108));
        assert_eq!(classify("GC memory layout; from 55e6d0feee20:").unwrap(), Line::LayoutHeader(0x55e6d0feee20));
        assert_eq!(classify(">>> import gc").unwrap(), Line::Other);
        let err = classify("GC: total: 119360, used 6192, free: 113168").unwrap_err();
        assert_eq!(err.0, 18, "column of the `,` where `, used: ` was expected");
    }

    #[test]
    fn normalises_pasted_blanks_and_crlf() {
        let mut s = Vec::new();
        assert_eq!(normalise(b"\xc2\xa0 \xc2\xa0 (108 lines all free)\r", &mut s), Some("(108 lines all free)"));
        assert_eq!(normalise(b"\xff\xfe", &mut s), None);
        assert_eq!(normalise(b"GC: total: 119360, used: 6192", &mut s), Some("GC: total: 119360, used: 6192"));
        assert_eq!(normalise(b" No. of 1-blocks:  47,\t2-blocks: 7 ", &mut s), Some("No. of 1-blocks: 47, 2-blocks: 7"));
        assert_eq!(normalise(b"stack: 1\xa0out", &mut s), Some("stack: 1 out"));
    }

    fn layout(total: u64, rows: &str) -> String {
        let free = total - 64;
        let max_free = free / 16;
        format!("GC: total: {total}, used: 64, free: {free}\n No. of 1-blocks: 0, 2-blocks: 0, max blk sz: 4, max free sz: {max_free}\nGC memory layout; from 1000:\n{rows}")
    }

    #[test]
    fn a_dump_ends_at_the_prompt_without_a_newline() {
        let text = layout(2048, "00000000: h===............................................................\n00000400: ................................................................\n");
        let mut scanner = Scanner::new();
        assert!(scanner.push(text.as_bytes()).is_empty(), "the last area may go on");
        let events = scanner.push(b">>> ");
        assert_eq!(events.len(), 1, "{events:?}");
        let ScanEvent::Dump(d) = &events[0] else { panic!("{events:?}") };
        assert_eq!(d.snapshot.areas[0].blocks(), 128);
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn a_dump_ends_when_its_blocks_add_up() {
        let text = layout(2032, "00000000: h===............................................................\n00000400: ...............................................................\n");
        let mut scanner = Scanner::new();
        let events = scanner.push(text.as_bytes());
        let [ScanEvent::Dump(d)] = events.as_slice() else { panic!("{events:?}") };
        assert_eq!(d.snapshot.total_blocks(), 127);
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn broken_row_names_line_and_column() {
        let text = layout(2048, "00000000: h===....X...\n");
        let (dumps, errors) = parse(text.as_bytes());
        assert!(dumps.is_empty());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 4);
        assert_eq!(errors[0].column, Some(19));
    }

    #[test]
    fn all_free_lines_are_bounded_and_never_wrap() {
        let wrap = (1u64 << 58) + 1011;
        for n in [100_000_000u64, 4_294_967_295, 1_000_000_000_000, wrap, u64::MAX] {
            let text = layout(2048, &format!("00000000: h===....\n({n} lines all free)\n"));
            let (dumps, errors) = parse(text.as_bytes());
            assert!(dumps.is_empty(), "N = {n}: {dumps:?}");
            assert_eq!(errors.len(), 1, "N = {n}: {errors:?}");
            assert_eq!((errors[0].line, errors[0].column), (5, Some(2)), "N = {n}");
            assert!(errors[0].message.contains("at most 16777216"), "{}", errors[0]);
        }
        // Too large for any integer: named, not taken for console text.
        let text = layout(2048, "00000000: h===....\n(100000000000000000000000 lines all free)\n");
        let (_, errors) = parse(text.as_bytes());
        assert_eq!((errors[0].line, errors[0].column), (5, Some(2)), "{errors:?}");
        assert!(errors[0].message.contains("number too large"), "{}", errors[0]);
        // Within the limit, the run is kept.
        let text = layout(2048 + 64 * 16 * 2, "00000000: h===............................................................\n(2 lines all free)\n00000c00: ................................................................\n");
        let (dumps, errors) = parse(text.as_bytes());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(dumps[0].snapshot.total_blocks(), 4 * 64);
    }

    #[test]
    fn rows_read_in_place_equal_rows_normalised() {
        // The plain-row fast path and the general path give the same dump.
        let rows = "00000000: h=S=DT..........................................................\n00000400: ..LAFBMmt.......................................................\n";
        let plain = parse(layout(2048, rows).as_bytes());
        let pasted = layout(2048, rows).replace(": ", ":\u{a0}").replace('\n', " \r\n");
        let general = parse(pasted.as_bytes());
        assert_eq!(plain.0.len(), 1, "{plain:?}");
        assert_eq!(plain.0[0].snapshot, general.0[0].snapshot);
        assert_eq!(plain.0[0].warnings, general.0[0].warnings);
    }

    #[test]
    fn lines_split_across_pushes_parse_the_same() {
        let text = layout(2048, "00000000: h===............................................................\n00000400: ................................................................\n");
        let whole = parse(text.as_bytes());
        for step in [1, 2, 7, 33] {
            let mut scanner = Scanner::new();
            let mut events = Vec::new();
            for piece in text.as_bytes().chunks(step) {
                events.extend(scanner.push(piece));
            }
            events.extend(scanner.finish());
            let [ScanEvent::Dump(d)] = events.as_slice() else { panic!("step {step}: {events:?}") };
            assert_eq!(d.snapshot, whole.0[0].snapshot, "step {step}");
        }
    }

    #[test]
    fn newline_search_finds_the_first() {
        for len in 0..40 {
            for at in 0..len {
                let mut v = vec![b'a'; len];
                v[at] = b'\n';
                if at + 3 < len {
                    v[at + 3] = b'\n';
                }
                assert_eq!(memchr_newline(&v), Some(at));
            }
            assert_eq!(memchr_newline(&vec![0x8a; len]), None);
        }
    }

    #[test]
    fn a_missing_row_does_not_double_the_block_size() {
        let text = include_str!("../../testdata/mem_info/stock129_x64_mem_info1_120K.txt");
        let without: String = text.lines().filter(|l| !l.starts_with("00000800:")).map(|l| format!("{l}\n")).collect();
        assert_ne!(without.len(), text.len(), "the fixture has the row");
        let (dumps, errors) = parse(without.as_bytes());
        assert!(errors.is_empty(), "{errors:?}");
        let dump = &dumps[0];
        assert_eq!(dump.snapshot.areas[0].block_size(), 32);
        assert!(dump.warnings.iter().any(|w| w.message.contains("a row missing?")), "{:?}", dump.warnings);
        let gc = gc_figures(&dump.snapshot.areas);
        assert!(gc.free <= dump.snapshot.reported.gc.unwrap().total, "free {} within the heap", gc.free);
    }

    #[test]
    fn gc_line_alone_is_an_error() {
        let (dumps, errors) = parse(b"GC: total: 2048, used: 64, free: 1984\nhello\n");
        assert!(dumps.is_empty());
        assert_eq!(errors[0].line, 1);
    }

    #[test]
    fn mem_and_stack_attach_only_when_adjacent() {
        let text = "mem: total=1, current=2, peak=3\nunrelated\nstack: 5\nGC: total: 2048, used: 64, free: 1984\n No. of 1-blocks: 0, 2-blocks: 0, max blk sz: 4, max free sz: 124\n";
        let (dumps, _) = parse(text.as_bytes());
        assert_eq!(dumps[0].snapshot.reported.mem, None);
        assert_eq!(dumps[0].snapshot.reported.stack, Some(StackFigures { used: 5, limit: None }));
        assert_eq!(dumps[0].first_line, 3);
    }
}
