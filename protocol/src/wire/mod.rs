//! The binary wire format of `protocol/SPEC.md`: frames multiplexed with console text on one
//! serial line. Each frame is `FF 00` + COBS(body) + `00`, body = header, payload, CRC-32.
//!
//! - [`Frame`] and its payloads, [`encode_frame`] / [`decode_body`].
//! - [`demux`]: splits a byte stream into console text and frames, resynchronising after garbage.
//! - [`session`]: turns frames into full snapshots (applies deltas to their base).

pub mod codec;
pub mod demux;
pub mod dump;
pub mod session;

use codec::{cobs_encode, crc32, DecodeError, Reader, Writer};

use crate::model::{u64_le_at, GcFigures, MemStats, PythonFigures, Reported, StackFigures, SystemHeap, MAX_HEAP_BLOCKS};

/// Version byte of every frame body the encoders write.
pub const VERSION: u8 = 2;
/// Oldest version the decoder reads (1 differs only in how a range of blocks is coded).
pub const OLDEST_VERSION: u8 = 1;
/// Bytes that start a frame on the line: 0xFF never occurs in UTF-8 text.
pub const FRAME_START: [u8; 2] = [0xFF, 0x00];
/// Byte that ends a frame: COBS leaves no zero inside.
pub const FRAME_END: u8 = 0x00;
/// Header: version, type, sequence (u16), device milliseconds (u32).
pub const HEADER_LEN: usize = 8;
pub const CRC_LEN: usize = 4;
/// Largest body a decoder accepts (a keyframe of an 8 MB heap fits with room to spare).
pub const MAX_BODY: usize = 4 << 20;
/// Type codes are 4-bit nibbles.
pub const MAX_TYPE_CODES: usize = 16;

/// Frame type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    Hello = 1,
    Keyframe = 2,
    Delta = 3,
    Event = 4,
    /// A part of a heap dump (SPEC 3.7).
    Dump = 5,
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// Counts every frame the device sends, wrapping; a gap means frames were lost.
    pub seq: u16,
    /// Device clock (`ticks_ms`), wrapping.
    pub device_ms: u32,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Hello(Hello),
    Keyframe(Keyframe),
    Delta(Delta),
    Event(Event),
    Dump(dump::DumpPart),
}

impl Body {
    pub fn frame_type(&self) -> FrameType {
        match self {
            Body::Hello(_) => FrameType::Hello,
            Body::Keyframe(_) => FrameType::Keyframe,
            Body::Delta(_) => FrameType::Delta,
            Body::Event(_) => FrameType::Event,
            Body::Dump(_) => FrameType::Dump,
        }
    }
}

/// Where an area lies and how many blocks it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AreaExtent {
    pub pool_start: u64,
    pub blocks: usize,
}

/// Sent when streaming starts: what the device is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub block_size: u32,
    /// e.g. `MicroPython v1.29.0 on 2026-07-05; ESP32 module with ESP32`.
    pub interpreter: String,
    /// `sys.platform`: `esp32`, `rp2`, `linux`.
    pub platform: String,
    pub areas: Vec<AreaExtent>,
    /// Name of each type code the device emits: entry `i` names code `i`.
    pub type_names: Vec<String>,
}

/// One area as sent: its allocation table verbatim and one type code per head block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireArea {
    pub pool_start: u64,
    pub blocks: usize,
    /// `ceil(blocks / 4)` bytes in the device's ATB layout.
    pub atb: Vec<u8>,
    /// One device type code (0..=15) per head (HEAD or MARK) block, in block order.
    pub codes: Vec<u8>,
}

/// A complete snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyframe {
    pub block_size: u32,
    pub areas: Vec<WireArea>,
    pub figures: Reported,
}

/// A snapshot as the chunks that changed since the snapshot sent in frame `base_seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    pub base_seq: u16,
    /// Blocks per chunk, a multiple of 4.
    pub chunk_blocks: usize,
    /// Every area of the new snapshot; areas absent here are gone.
    pub areas: Vec<DeltaArea>,
    pub figures: Reported,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaArea {
    pub pool_start: u64,
    pub blocks: usize,
    /// Changed chunks in increasing index order. An area not in the base (new pool start or
    /// new size) must list all its chunks.
    pub chunks: Vec<Chunk>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub index: usize,
    /// The chunk's ATB bytes.
    pub atb: Vec<u8>,
    /// Type codes of the chunk's head blocks.
    pub codes: Vec<u8>,
}

/// Something that happened on the device, for the host's timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    ImportBegin { depth: u32, name: String },
    ImportEnd { depth: u32, name: String, ok: bool, elapsed_us: u64 },
    Mark { label: String },
    AreaAdded(AreaExtent),
    AreaRemoved { pool_start: u64 },
    StreamStart { period_ms: u32 },
    StreamStop,
    /// The device skipped `count` periodic snapshots since the last one it sent: the line's
    /// byte budget had no room for them.
    Skipped { count: u32 },
}

mod event_kind {
    pub const IMPORT_BEGIN: u8 = 1;
    pub const IMPORT_END: u8 = 2;
    pub const MARK: u8 = 3;
    pub const AREA_ADDED: u8 = 4;
    pub const AREA_REMOVED: u8 = 5;
    pub const STREAM_START: u8 = 6;
    pub const STREAM_STOP: u8 = 7;
    pub const SKIPPED: u8 = 8;
}

mod figure_tag {
    pub const GC: u8 = 1;
    pub const MAX_NEW_SPLIT: u8 = 2;
    pub const STACK: u8 = 3;
    pub const MEM: u8 = 4;
    pub const SYSTEM_HEAP: u8 = 5;
    pub const PYTHON: u8 = 6;
}

pub use crate::model::heads_in;

/// Block kinds in the ATB: 2 bits per block.
const FREE: u8 = 0;
const HEAD: u8 = 1;
const TAIL: u8 = 2;
const MARK: u8 = 3;

fn kind_at(atb: &[u8], block: usize) -> u8 {
    (atb[block / 4] >> (2 * (block % 4))) & 3
}

/// First block at or after `from` (before `to`) that is not of `kind`.
fn run_end(atb: &[u8], from: usize, to: usize, kind: u8) -> usize {
    let fill = [0x00u8, 0x55, 0xAA, 0xFF][kind as usize];
    let mut i = from;
    while i < to {
        if i.is_multiple_of(4) && i + 4 <= to && atb[i / 4] == fill {
            i += 4;
        } else if kind_at(atb, i) == kind {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// Bits packed least significant first, then padded with zeros to a whole byte (SPEC 3.4).
/// Without a writer it only counts them.
struct BitWriter<'a> {
    w: Option<&'a mut Writer>,
    acc: u32,
    bits: u32,
    total: usize,
}

impl BitWriter<'_> {
    fn put(&mut self, value: u32, count: u32) {
        debug_assert!(count <= 16);
        self.total += count as usize;
        let Some(w) = self.w.as_deref_mut() else { return };
        self.acc |= (value & ((1 << count) - 1)) << self.bits;
        self.bits += count;
        while self.bits >= 8 {
            w.u8(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }

    /// Elias gamma of `v >= 1`: n zero bits, a one bit, then the low n bits of v, n = log2(v).
    fn gamma(&mut self, v: u64) {
        let n = 63 - v.leading_zeros();
        let mut zeros = n;
        while zeros > 0 {
            let c = zeros.min(16);
            self.put(0, c);
            zeros -= c;
        }
        self.put(1, 1);
        let mut shift = 0;
        while shift < n {
            let c = (n - shift).min(16);
            self.put((v >> shift) as u32, c);
            shift += c;
        }
    }

    fn finish(self) {
        if let Some(w) = self.w {
            if self.bits > 0 {
                w.u8(self.acc as u8);
            }
        }
    }
}

/// Compact layout code: the order type codes start in before they are ranked by how often they
/// occurred (SPEC 3.4), most common first on real heaps.
const TYPE_ORDER: [u8; 16] = [1, 5, 2, 8, 4, 3, 6, 7, 14, 13, 12, 9, 11, 10, 15, 0];

/// The compact code's type ranks: per allocation length (1, 2, 3, 4 or more blocks) the 16 type
/// codes, most frequent in the range so far first, and how often each occurred.
struct TypeRanks {
    order: [[u8; 16]; 4],
    count: [[u16; 16]; 4],
}

impl TypeRanks {
    fn new() -> TypeRanks {
        TypeRanks { order: [TYPE_ORDER; 4], count: [[0; 16]; 4] }
    }

    /// The type at `rank` for an allocation of `len` blocks, counted.
    fn take(&mut self, len: usize, rank: usize) -> u8 {
        let class = len.clamp(1, 4) - 1;
        let code = self.order[class][rank];
        self.count_at(class, rank);
        code
    }

    /// The rank of `code` for an allocation of `len` blocks, counted.
    fn rank(&mut self, len: usize, code: u8) -> usize {
        let class = len.clamp(1, 4) - 1;
        let rank = self.order[class].iter().position(|&c| c == code & 0x0F).unwrap_or(15);
        self.count_at(class, rank);
        rank
    }

    /// One more at `rank`, which moves ahead of the codes now counted fewer times.
    fn count_at(&mut self, class: usize, mut rank: usize) {
        let (order, count) = (&mut self.order[class], &mut self.count[class]);
        count[rank] = count[rank].saturating_add(1);
        while rank > 0 && count[rank] > count[rank - 1] {
            order.swap(rank, rank - 1);
            count.swap(rank, rank - 1);
            rank -= 1;
        }
    }
}

/// A type rank `p` (0..16) in the compact code: its class `c` (`p` below 2, 4, 8, 16)
/// as `c` one bits and a zero below 3, then the low `max(c, 1)` bits of `p`.
fn rank_class(rank: usize) -> u32 {
    (rank | 1).ilog2()
}

/// The layout items after the header (SPEC 3.4), classic or compact.
fn put_items(b: &mut BitWriter<'_>, atb: &[u8], blocks: usize, codes: &[u8], exact: bool, compact: bool) {
    let mut i = run_end(atb, 0, blocks, TAIL);
    b.gamma(i as u64 + 1);
    let mut code = codes.iter();
    let mut ranks = TypeRanks::new();
    while i < blocks {
        let e = run_end(atb, i, blocks, FREE);
        let gap = e - i;
        i = e;
        let end = if i < blocks { run_end(atb, i + 1, blocks, TAIL) } else { i };
        let len = end - i;
        if !compact {
            b.gamma(gap as u64 + 1);
        } else if gap == 0 && len <= 3 {
            b.put(1 << (len - 1), len as u32);
        } else {
            // 0000 gamma(len - 3), or 0001 gamma(gap) [gamma(len)]
            b.put(if gap > 0 { 0b1000 } else { 0 }, 4);
            b.gamma(if gap > 0 { gap } else { len - 3 } as u64);
            if gap > 0 && len > 0 {
                b.gamma(len as u64);
            }
        }
        if i >= blocks {
            break;
        }
        let k = kind_at(atb, i);
        if exact {
            b.put(u32::from(k), 2);
        }
        if k != TAIL {
            let c = *code.next().expect("one type code per head");
            if compact {
                let rank = ranks.rank(len, c);
                let class = rank_class(rank);
                b.put((1 << class) - 1, (class + 1).min(3));
                b.put(rank as u32, class.max(1));
            } else {
                b.put(u32::from(c), 4);
            }
        }
        if !compact {
            b.gamma(len as u64);
        }
        i = end;
    }
}

/// The layout code of `blocks` blocks (SPEC 3.4): their table bytes `atb` (bits past `blocks`
/// zero) and the type codes of their heads, in block order. Of the classic and the compact
/// code, the shorter (classic on a tie).
fn write_layout(w: &mut Writer, atb: &[u8], blocks: usize, codes: &[u8]) {
    let cost = |compact: bool| {
        let mut b = BitWriter { w: None, acc: 0, bits: 0, total: 0 };
        write_layout_as(&mut b, atb, blocks, codes, compact);
        b.total
    };
    let compact = cost(true) < cost(false);
    let mut b = BitWriter { w: Some(w), acc: 0, bits: 0, total: 0 };
    write_layout_as(&mut b, atb, blocks, codes, compact);
    b.finish();
}

/// The header and items of a layout code, classic or compact.
fn write_layout_as(b: &mut BitWriter<'_>, atb: &[u8], blocks: usize, codes: &[u8], compact: bool) {
    // Items carry their kind only where the table has a mark or a tail after a free block.
    let exact = (0..blocks).any(|i| {
        let k = kind_at(atb, i);
        k == MARK || (k == TAIL && i > 0 && kind_at(atb, i - 1) == FREE)
    });
    // Header: 0 classic, 10 compact, 110 classic exact, 111 compact exact.
    if exact {
        b.put(0b011 | u32::from(compact) << 2, 3);
    } else if compact {
        b.put(0b01, 2);
    } else {
        b.put(0, 1);
    }
    put_items(b, atb, blocks, codes, exact, compact);
}

/// Reads bits as [`BitWriter`] writes them, least significant first, from the bytes left in a
/// frame: any bit is one unaligned 8-byte load away, so a code is peeked whole and skipped.
struct BitReader<'a> {
    buf: &'a [u8],
    /// Bits read so far.
    pos: usize,
    /// Offset of `buf` in the frame body, for errors.
    base: usize,
}

impl BitReader<'_> {
    /// The next 57 bits or more, least significant first (zeros past the end).
    #[inline(always)]
    fn peek(&self) -> u64 {
        u64_le_at(self.buf, self.pos >> 3) >> (self.pos & 7)
    }

    #[inline(always)]
    fn skip(&mut self, count: u32) -> Result<(), DecodeError> {
        self.pos += count as usize;
        if self.pos > self.buf.len() * 8 {
            return Err(self.ran_out());
        }
        Ok(())
    }

    #[cold]
    fn ran_out(&self) -> DecodeError {
        DecodeError::new(self.base + self.buf.len(), "layout code: need 1 bytes, 0 left")
    }

    /// The next `count` bits (at most 32).
    #[inline(always)]
    fn get(&mut self, count: u32) -> Result<u32, DecodeError> {
        debug_assert!(count <= 32);
        let v = (self.peek() & ((1u64 << count) - 1)) as u32;
        self.skip(count)?;
        Ok(v)
    }

    /// Offset of the byte holding the next unread bit.
    fn offset(&self) -> usize {
        self.base + self.pos / 8
    }

    /// Bytes the code took: it ends in the byte of its last bit.
    fn bytes_read(&self) -> usize {
        self.pos.div_ceil(8)
    }

    /// Elias gamma: `n` zero bits, a one, then the `n` low bits of the value.
    #[inline(always)]
    fn gamma(&mut self, what: &str) -> Result<u64, DecodeError> {
        let bits = self.peek();
        let n = bits.trailing_zeros();
        if n <= 28 {
            // The whole code is in the 57 bits peeked.
            let low = (bits >> (n + 1)) & ((1u64 << n) - 1);
            self.skip(2 * n + 1)?;
            return Ok(1u64 << n | low);
        }
        self.long_gamma(what)
    }

    #[cold]
    fn long_gamma(&mut self, what: &str) -> Result<u64, DecodeError> {
        let at = self.offset();
        let mut n = 0;
        while self.get(1)? == 0 {
            n += 1;
            if n > 40 {
                return Err(DecodeError::new(at, format!("{what}: gamma code longer than 40 bits")));
            }
        }
        let mut v = 1u64 << n;
        let mut shift = 0;
        while shift < n {
            let c = (n - shift).min(16);
            v |= u64::from(self.get(c)?) << shift;
            shift += c;
        }
        Ok(v)
    }
}

/// Sets `count` blocks from `at` to `kind` in a table whose bits there are zero: one masked
/// write for each end byte, whole bytes between.
#[inline]
fn fill_kind(atb: &mut [u8], at: usize, count: usize, kind: u8) {
    if count == 0 {
        return;
    }
    let last_block = at + count - 1;
    let pattern = kind * 0x55;
    let (first, last) = (at / 4, last_block / 4);
    let from_first = 0xFFu8 << (2 * (at % 4));
    let to_last = 0xFFu8 >> (2 * (3 - last_block % 4));
    if first == last {
        atb[first] |= pattern & from_first & to_last;
        return;
    }
    atb[first] |= pattern & from_first;
    atb[first + 1..last].fill(pattern);
    atb[last] |= pattern & to_last;
}

/// Sets the next `count` blocks from `*at` to `kind` (free ones stay as the zeroed table has
/// them) and steps past them; a run longer than the blocks left is an error.
#[inline(always)]
fn put_run(atb: &mut [u8], at: &mut usize, blocks: usize, kind: u8, count: u64, b: &BitReader<'_>, what: &str) -> Result<(), DecodeError> {
    let left = blocks - *at;
    if count > left as u64 {
        return Err(overrun(b, what, count, left));
    }
    if kind != FREE {
        fill_kind(atb, *at, count as usize, kind);
    }
    *at += count as usize;
    Ok(())
}

#[cold]
fn overrun(b: &BitReader<'_>, what: &str, count: u64, left: usize) -> DecodeError {
    DecodeError::new(b.offset(), format!("{what} of {count} blocks overruns the {left} blocks left"))
}

/// Reads the layout code of `blocks` blocks: their table bytes and their heads' type codes.
fn read_layout(r: &mut Reader<'_>, blocks: usize) -> Result<(Vec<u8>, Vec<u8>), DecodeError> {
    let mut atb = vec![0u8; blocks.div_ceil(4)];
    let mut codes = Vec::new();
    let mut b = BitReader { buf: r.rest(), pos: 0, base: r.offset() };
    // Header: 0 classic, 10 compact, 110 classic exact, 111 compact exact.
    let (exact, compact, header_bits) = match b.peek() & 0b111 {
        h if h & 1 == 0 => (false, false, 1),
        h if h & 2 == 0 => (false, true, 2),
        h => (true, h & 4 != 0, 3),
    };
    b.skip(header_bits)?;
    let mut i = 0;
    let lead = b.gamma("leading tails")? - 1;
    put_run(&mut atb, &mut i, blocks, TAIL, lead, &b, "leading tail run")?;
    let mut ranks = TypeRanks::new();
    while i < blocks {
        // The free run before the item, and the item's length where the code gives it first.
        let (gap, len) = if !compact {
            (b.gamma("free run")? - 1, None)
        } else {
            // 1, 01, 001: an allocation of 1, 2 or 3 blocks; 0001 a free run; 0000 a longer one.
            match (b.peek() | 0x10).trailing_zeros() {
                tz @ 0..=2 => {
                    b.skip(tz + 1)?;
                    (0, Some(u64::from(tz) + 1))
                }
                3 => {
                    b.skip(4)?;
                    (b.gamma("free run")?, None)
                }
                _ => {
                    b.skip(4)?;
                    (0, Some(b.gamma("allocation length")? + 3))
                }
            }
        };
        put_run(&mut atb, &mut i, blocks, FREE, gap, &b, "free run")?;
        if i >= blocks {
            if len.is_some() {
                return Err(DecodeError::new(b.offset(), "layout item past the end of the range"));
            }
            break;
        }
        let len = match len {
            Some(len) => len,
            None if compact => b.gamma("allocation length")?,
            None => 0,
        };
        let kind = if exact { b.get(2)? as u8 } else { HEAD };
        if kind == FREE {
            return Err(DecodeError::new(b.offset(), "layout item of kind free"));
        }
        if kind != TAIL {
            let code = if compact {
                // A rank's class: up to three one bits, ended by a zero below three; then its
                // low max(class, 1) bits.
                let bits = b.peek();
                let class = (!bits).trailing_zeros().min(3);
                let prefix = if class < 3 { class + 1 } else { 3 };
                let low_bits = class.max(1);
                let low = ((bits >> prefix) & ((1 << low_bits) - 1)) as usize;
                b.skip(prefix + low_bits)?;
                let rank = if class == 0 { low } else { 1 << class | low };
                debug_assert_eq!(rank_class(rank), class);
                ranks.take(len.min(4) as usize, rank)
            } else {
                b.get(4)? as u8
            };
            codes.push(code);
        }
        // The head (or a lone tail or mark): inside the range, as `i < blocks` here.
        atb[i / 4] |= kind << (2 * (i % 4));
        i += 1;
        let tails = if compact { len - 1 } else { b.gamma("tail run")? - 1 };
        put_run(&mut atb, &mut i, blocks, TAIL, tails, &b, "tail run")?;
    }
    r.take(b.bytes_read(), "layout code")?;
    Ok((atb, codes))
}

/// Version 1 coded a range as an ATB run list and then its type codes, two per byte; recordings
/// made with it stay readable.
mod atb_op {
    pub const FREE: u64 = 0;
    pub const TAIL: u64 = 1;
    pub const LITERAL: u64 = 2;
}

fn read_atb(r: &mut Reader<'_>, len: usize) -> Result<Vec<u8>, DecodeError> {
    // Zeroed once: free runs, the commonest token, then cost nothing.
    let mut atb = vec![0u8; len];
    let mut at = 0;
    while at < len {
        let token_at = r.offset();
        let token = r.varint("ATB run")?;
        let count = (token >> 2) as usize + 1;
        if count > len - at {
            return Err(DecodeError::new(token_at, format!("ATB run of {count} bytes overruns the table ({} left)", len - at)));
        }
        let run = &mut atb[at..at + count];
        match token & 3 {
            atb_op::FREE => {}
            atb_op::TAIL => run.fill(0xAA),
            atb_op::LITERAL => run.copy_from_slice(r.take(count, "ATB literal")?),
            _ => run.fill(r.u8("ATB repeated byte")?),
        }
        at += count;
    }
    Ok(atb)
}

fn read_codes(r: &mut Reader<'_>, heads: usize) -> Result<Vec<u8>, DecodeError> {
    let bytes = r.take(heads.div_ceil(2), "type codes")?;
    Ok((0..heads).map(|i| (bytes[i / 2] >> (4 * (i & 1))) & 0x0F).collect())
}

/// Clears the bits of blocks past `blocks` in the last ATB byte.
fn mask_tail(atb: &mut [u8], blocks: usize) {
    if !blocks.is_multiple_of(4) {
        if let Some(last) = atb.last_mut() {
            *last &= (1u8 << (2 * (blocks % 4))) - 1;
        }
    }
}

/// The table bytes and type codes of a range of `blocks` blocks, in the frame's version.
fn read_range(r: &mut Reader<'_>, version: u8, blocks: usize) -> Result<(Vec<u8>, Vec<u8>), DecodeError> {
    if version == 1 {
        let mut atb = read_atb(r, blocks.div_ceil(4))?;
        mask_tail(&mut atb, blocks);
        let codes = read_codes(r, heads_in(&atb))?;
        Ok((atb, codes))
    } else {
        read_layout(r, blocks)
    }
}

fn write_figures(w: &mut Writer, f: &Reported) {
    let mut tlv = |tag: u8, values: &[u64]| {
        let mut inner = Writer::default();
        for &v in values {
            inner.varint(v);
        }
        w.u8(tag);
        w.varint(inner.buf.len() as u64);
        w.bytes(&inner.buf);
    };
    if let Some(g) = f.gc {
        tlv(figure_tag::GC, &[g.total, g.used, g.free, g.one_blocks, g.two_blocks, g.max_block, g.max_free]);
    }
    if let Some(s) = f.max_new_split {
        tlv(figure_tag::MAX_NEW_SPLIT, &[s]);
    }
    if let Some(s) = f.stack {
        match s.limit {
            Some(limit) => tlv(figure_tag::STACK, &[s.used, limit]),
            None => tlv(figure_tag::STACK, &[s.used]),
        }
    }
    if let Some(m) = f.mem {
        tlv(figure_tag::MEM, &[m.total, m.current, m.peak]);
    }
    for h in &f.system_heaps {
        tlv(figure_tag::SYSTEM_HEAP, &[u64::from(h.caps), h.total, h.free, h.largest_free, h.min_free]);
    }
    if let Some(p) = f.python {
        tlv(figure_tag::PYTHON, &[p.mem_alloc, p.mem_free]);
    }
}

fn read_figures(r: &mut Reader<'_>) -> Result<Reported, DecodeError> {
    let mut f = Reported::default();
    while !r.is_empty() {
        let tag = r.u8("figure tag")?;
        let len = r.count("figure length", r.remaining() as u64)?;
        let base = r.offset();
        let value = r.take(len, "figure value")?;
        let mut v = Reader::with_base(value, base);
        let mut next = |what: &str| v.varint(what);
        match tag {
            figure_tag::GC => {
                f.gc = Some(GcFigures {
                    total: next("GC total")?,
                    used: next("GC used")?,
                    free: next("GC free")?,
                    one_blocks: next("1-blocks")?,
                    two_blocks: next("2-blocks")?,
                    max_block: next("max block")?,
                    max_free: next("max free")?,
                })
            }
            figure_tag::MAX_NEW_SPLIT => f.max_new_split = Some(next("max new split")?),
            figure_tag::STACK => {
                let used = next("stack used")?;
                let limit = if v.is_empty() { None } else { Some(v.varint("stack limit")?) };
                f.stack = Some(StackFigures { used, limit });
            }
            figure_tag::MEM => {
                f.mem = Some(MemStats { total: next("mem total")?, current: next("mem current")?, peak: next("mem peak")? })
            }
            figure_tag::SYSTEM_HEAP => {
                let caps = next("heap caps")?;
                f.system_heaps.push(SystemHeap {
                    caps: u32::try_from(caps).map_err(|_| DecodeError::new(base, "heap caps wider than 32 bits"))?,
                    total: next("heap total")?,
                    free: next("heap free")?,
                    largest_free: next("heap largest free")?,
                    min_free: next("heap min free")?,
                });
            }
            figure_tag::PYTHON => {
                f.python = Some(PythonFigures { mem_alloc: next("gc.mem_alloc()")?, mem_free: next("gc.mem_free()")? })
            }
            // Unknown figures are skipped: newer firmware may send more.
            _ => {}
        }
    }
    Ok(f)
}

/// Most blocks a frame may claim over all its areas (the model's limit, a heap no board has):
/// a run-length-coded table lets a few bytes claim any size, so the decoder refuses more
/// before it allocates anything.
const MAX_BLOCKS: u64 = MAX_HEAP_BLOCKS as u64;
const MAX_AREAS: u64 = 64;

fn write_payload(w: &mut Writer, body: &Body) {
    match body {
        Body::Hello(h) => {
            w.varint(u64::from(h.block_size));
            w.str(&h.interpreter);
            w.str(&h.platform);
            w.varint(h.areas.len() as u64);
            for a in &h.areas {
                w.varint(a.pool_start);
                w.varint(a.blocks as u64);
            }
            w.u8(h.type_names.len() as u8);
            for name in &h.type_names {
                w.str(name);
            }
        }
        Body::Keyframe(k) => {
            w.varint(u64::from(k.block_size));
            w.varint(k.areas.len() as u64);
            for a in &k.areas {
                w.varint(a.pool_start);
                w.varint(a.blocks as u64);
                write_layout(w, &a.atb, a.blocks, &a.codes);
            }
            write_figures(w, &k.figures);
        }
        Body::Delta(d) => {
            w.u16(d.base_seq);
            w.varint(d.chunk_blocks as u64);
            w.varint(d.areas.len() as u64);
            for a in &d.areas {
                w.varint(a.pool_start);
                w.varint(a.blocks as u64);
                w.varint(a.chunks.len() as u64);
                let mut next_index = 0;
                for c in &a.chunks {
                    w.varint((c.index - next_index) as u64);
                    next_index = c.index + 1;
                    let first = c.index * d.chunk_blocks;
                    write_layout(w, &c.atb, (first + d.chunk_blocks).min(a.blocks) - first, &c.codes);
                }
            }
            write_figures(w, &d.figures);
        }
        Body::Event(e) => match e {
            Event::ImportBegin { depth, name } => {
                w.u8(event_kind::IMPORT_BEGIN);
                w.varint(u64::from(*depth));
                w.str(name);
            }
            Event::ImportEnd { depth, name, ok, elapsed_us } => {
                w.u8(event_kind::IMPORT_END);
                w.varint(u64::from(*depth));
                w.str(name);
                w.u8(u8::from(*ok));
                w.varint(*elapsed_us);
            }
            Event::Mark { label } => {
                w.u8(event_kind::MARK);
                w.str(label);
            }
            Event::AreaAdded(a) => {
                w.u8(event_kind::AREA_ADDED);
                w.varint(a.pool_start);
                w.varint(a.blocks as u64);
            }
            Event::AreaRemoved { pool_start } => {
                w.u8(event_kind::AREA_REMOVED);
                w.varint(*pool_start);
            }
            Event::StreamStart { period_ms } => {
                w.u8(event_kind::STREAM_START);
                w.varint(u64::from(*period_ms));
            }
            Event::StreamStop => w.u8(event_kind::STREAM_STOP),
            Event::Skipped { count } => {
                w.u8(event_kind::SKIPPED);
                w.varint(u64::from(*count));
            }
        },
        Body::Dump(p) => dump::write(w, p),
    }
}

/// An area's start and size; `claimed` counts the blocks of the frame's areas so far, which
/// together may not pass [`MAX_BLOCKS`].
fn read_area_head(r: &mut Reader<'_>, claimed: &mut u64) -> Result<(u64, usize), DecodeError> {
    let pool_start = r.varint("pool start")?;
    let at = r.offset();
    let blocks = r.varint("area blocks")?;
    match claimed.checked_add(blocks) {
        Some(total) if total <= MAX_BLOCKS => *claimed = total,
        _ => {
            return Err(DecodeError::new(
                at,
                format!(
                    "areas of {} blocks in all; a snapshot holds at most {MAX_BLOCKS} (a 256 MiB heap of 16-byte blocks, larger than any board's)",
                    claimed.saturating_add(blocks)
                ),
            ))
        }
    }
    Ok((pool_start, blocks as usize))
}

fn read_payload(r: &mut Reader<'_>, version: u8, frame_type: u8) -> Result<Body, DecodeError> {
    Ok(match frame_type {
        t if t == FrameType::Hello as u8 => {
            let block_size = r.count("block size", 1 << 16)? as u32;
            let interpreter = r.str("interpreter")?;
            let platform = r.str("platform")?;
            let n = r.count("area count", MAX_AREAS)?;
            let mut areas = Vec::with_capacity(n);
            let mut claimed = 0;
            for _ in 0..n {
                let (pool_start, blocks) = read_area_head(r, &mut claimed)?;
                areas.push(AreaExtent { pool_start, blocks });
            }
            let types = r.u8("type count")? as usize;
            if types > MAX_TYPE_CODES {
                return Err(r.error(format!("{types} type names, at most {MAX_TYPE_CODES}")));
            }
            let type_names = (0..types).map(|_| r.str("type name")).collect::<Result<_, _>>()?;
            Body::Hello(Hello { block_size, interpreter, platform, areas, type_names })
        }
        t if t == FrameType::Keyframe as u8 => {
            let block_size = r.count("block size", 1 << 16)? as u32;
            let n = r.count("area count", MAX_AREAS)?;
            let mut areas = Vec::with_capacity(n);
            let mut claimed = 0;
            for _ in 0..n {
                let (pool_start, blocks) = read_area_head(r, &mut claimed)?;
                let (atb, codes) = read_range(r, version, blocks)?;
                areas.push(WireArea { pool_start, blocks, atb, codes });
            }
            let figures = read_figures(r)?;
            Body::Keyframe(Keyframe { block_size, areas, figures })
        }
        t if t == FrameType::Delta as u8 => {
            let base_seq = r.u16("base sequence")?;
            let at = r.offset();
            let chunk_blocks = r.count("chunk blocks", MAX_BLOCKS)?;
            if chunk_blocks == 0 || chunk_blocks % 4 != 0 {
                return Err(DecodeError::new(at, format!("chunk of {chunk_blocks} blocks is not a positive multiple of 4")));
            }
            let n = r.count("area count", MAX_AREAS)?;
            let mut areas = Vec::with_capacity(n);
            let mut claimed = 0;
            for _ in 0..n {
                let (pool_start, blocks) = read_area_head(r, &mut claimed)?;
                let chunk_count = blocks.div_ceil(chunk_blocks);
                // Each chunk takes at least a byte (its index gap): the input bounds them.
                let changed = r.count("changed chunks", (chunk_count as u64).min(r.remaining() as u64))?;
                let mut chunks = Vec::with_capacity(changed);
                let mut next_index = 0usize;
                for _ in 0..changed {
                    let at = r.offset();
                    let index = next_index + r.count("chunk index gap", MAX_BLOCKS)?;
                    if index >= chunk_count {
                        return Err(DecodeError::new(at, format!("chunk {index} past the area's {chunk_count} chunks")));
                    }
                    let first = index * chunk_blocks;
                    let end = (first + chunk_blocks).min(blocks);
                    let (atb, codes) = read_range(r, version, end - first)?;
                    chunks.push(Chunk { index, atb, codes });
                    next_index = index + 1;
                }
                areas.push(DeltaArea { pool_start, blocks, chunks });
            }
            let figures = read_figures(r)?;
            Body::Delta(Delta { base_seq, chunk_blocks, areas, figures })
        }
        t if t == FrameType::Event as u8 => {
            let kind = r.u8("event kind")?;
            let depth = |r: &mut Reader<'_>| r.count("import depth", u64::from(u32::MAX)).map(|d| d as u32);
            Body::Event(match kind {
                event_kind::IMPORT_BEGIN => Event::ImportBegin { depth: depth(r)?, name: r.str("module name")? },
                event_kind::IMPORT_END => Event::ImportEnd {
                    depth: depth(r)?,
                    name: r.str("module name")?,
                    ok: r.u8("import status")? != 0,
                    elapsed_us: r.varint("import time")?,
                },
                event_kind::MARK => Event::Mark { label: r.str("mark label")? },
                event_kind::AREA_ADDED => {
                    let (pool_start, blocks) = read_area_head(r, &mut 0)?;
                    Event::AreaAdded(AreaExtent { pool_start, blocks })
                }
                event_kind::AREA_REMOVED => Event::AreaRemoved { pool_start: r.varint("pool start")? },
                event_kind::STREAM_START => {
                    Event::StreamStart { period_ms: r.count("period", u64::from(u32::MAX))? as u32 }
                }
                event_kind::STREAM_STOP => Event::StreamStop,
                event_kind::SKIPPED => Event::Skipped { count: r.count("skipped snapshots", u64::from(u32::MAX))? as u32 },
                other => return Err(r.error(format!("unknown event kind {other}"))),
            })
        }
        t if t == FrameType::Dump as u8 => Body::Dump(dump::read(r)?),
        other => return Err(DecodeError::new(1, format!("unknown frame type {other}"))),
    })
}

/// The frame body before COBS: header, payload, CRC-32.
pub fn encode_body(frame: &Frame) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(VERSION);
    w.u8(frame.body.frame_type() as u8);
    w.u16(frame.seq);
    w.u32(frame.device_ms);
    write_payload(&mut w, &frame.body);
    let crc = crc32(&w.buf);
    w.u32(crc);
    w.buf
}

/// The frame as sent on the line: `FF 00` + COBS(body) + `00`.
pub fn encode_frame(frame: &Frame) -> Vec<u8> {
    let body = encode_body(frame);
    let mut out = Vec::with_capacity(body.len() + body.len() / 254 + 4);
    out.extend_from_slice(&FRAME_START);
    cobs_encode(&body, &mut out);
    out.push(FRAME_END);
    out
}

/// Decodes a body (COBS already undone). The CRC is checked before anything else is read, so a
/// damaged frame is rejected, never decoded into wrong data.
pub fn decode_body(body: &[u8]) -> Result<Frame, DecodeError> {
    let data = split_crc(body)?;
    let computed = crc32(data);
    let sent = u32::from_le_bytes(body[data.len()..].try_into().expect("4 CRC bytes"));
    if sent != computed {
        return Err(DecodeError::new(data.len(), format!("CRC mismatch: frame says {sent:08x}, content gives {computed:08x}")));
    }
    decode_payload(data)
}

/// Decodes a body whose bytes a check already covered (a recording's record CRC spans the
/// whole frame, its own CRC included), without computing the frame's CRC a second time.
pub fn decode_body_verified(body: &[u8]) -> Result<Frame, DecodeError> {
    decode_payload(split_crc(body)?)
}

/// The body without its CRC.
fn split_crc(body: &[u8]) -> Result<&[u8], DecodeError> {
    if body.len() < HEADER_LEN + CRC_LEN {
        return Err(DecodeError::new(0, format!("frame of {} bytes is shorter than header and CRC", body.len())));
    }
    Ok(&body[..body.len() - CRC_LEN])
}

fn decode_payload(data: &[u8]) -> Result<Frame, DecodeError> {
    let mut r = Reader::new(data);
    let version = r.u8("version")?;
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(DecodeError::new(0, format!("protocol version {version}, this decoder reads {OLDEST_VERSION} to {VERSION}")));
    }
    let frame_type = r.u8("frame type")?;
    let seq = r.u16("sequence")?;
    let device_ms = r.u32("device time")?;
    let body = read_payload(&mut r, version, frame_type)?;
    if !r.is_empty() {
        return Err(r.error(format!("{} bytes left over after the payload", r.remaining())));
    }
    Ok(Frame { seq, device_ms, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(body: Body) {
        let frame = Frame { seq: 0xBEEF, device_ms: 123_456, body };
        let encoded = encode_frame(&frame);
        assert_eq!(&encoded[..2], &FRAME_START);
        assert_eq!(*encoded.last().unwrap(), FRAME_END);
        assert!(!encoded[2..encoded.len() - 1].contains(&0));
        let mut body = Vec::new();
        codec::cobs_decode(&encoded[2..encoded.len() - 1], &mut body).unwrap();
        assert_eq!(decode_body(&body).unwrap(), frame);
    }

    #[test]
    fn every_event_round_trips() {
        for e in [
            Event::ImportBegin { depth: 2, name: "umqtt.simple".into() },
            Event::ImportEnd { depth: 0, name: "json".into(), ok: false, elapsed_us: 15_000 },
            Event::Mark { label: "after wifi".into() },
            Event::AreaAdded(AreaExtent { pool_start: 0x3FFB_0000, blocks: 4096 }),
            Event::AreaRemoved { pool_start: 0x3FFB_0000 },
            Event::StreamStart { period_ms: 250 },
            Event::StreamStop,
            Event::Skipped { count: 300 },
        ] {
            roundtrip(Body::Event(e));
        }
    }

    #[test]
    fn hello_and_figures_round_trip() {
        roundtrip(Body::Hello(Hello {
            block_size: 16,
            interpreter: "MicroPython v1.29.0".into(),
            platform: "esp32".into(),
            areas: vec![AreaExtent { pool_start: 0x3FFC_2DB0, blocks: 7460 }],
            type_names: vec!["unknown".into(), "other".into()],
        }));
        roundtrip(Body::Keyframe(Keyframe {
            block_size: 16,
            areas: vec![WireArea { pool_start: 0x1000, blocks: 6, atb: vec![0x99, 0x01], codes: vec![4, 5, 15] }],
            figures: Reported {
                gc: Some(GcFigures { total: 96, used: 32, free: 64, one_blocks: 2, two_blocks: 0, max_block: 1, max_free: 3 }),
                max_new_split: Some(262_144),
                stack: Some(StackFigures { used: 640, limit: None }),
                mem: Some(MemStats { total: 1, current: 2, peak: 3 }),
                system_heaps: vec![SystemHeap { caps: 0x1804, total: 10, free: 5, largest_free: 4, min_free: 3 }],
                python: Some(PythonFigures { mem_alloc: 32, mem_free: 262_208 }),
            },
        }));
    }

    /// A range in both layout codes, what `write_layout` sent, and its table and type codes.
    struct BothCodes {
        classic: Vec<u8>,
        compact: Vec<u8>,
        chosen: Vec<u8>,
        atb: Vec<u8>,
        codes: Vec<u8>,
    }

    /// `pattern` (mem_info letters, `m` a mark, `=` after `.` a stray tail) in the classic or
    /// the compact code, and what `write_layout` chose.
    fn both_codes(pattern: &str) -> BothCodes {
        let area = crate::synth::pattern_area(0, 16, pattern);
        let atb = area.kinds().atb().to_vec();
        let codes: Vec<u8> = area.types().iter().map(|t| t.code()).collect();
        let code = |compact: bool| {
            let mut w = Writer::default();
            let mut b = BitWriter { w: Some(&mut w), acc: 0, bits: 0, total: 0 };
            write_layout_as(&mut b, &atb, pattern.len(), &codes, compact);
            b.finish();
            w.buf
        };
        let mut chosen = Writer::default();
        write_layout(&mut chosen, &atb, pattern.len(), &codes);
        BothCodes { classic: code(false), compact: code(true), chosen: chosen.buf, atb, codes }
    }

    #[test]
    fn classic_and_compact_layout_codes_round_trip_and_the_shorter_is_sent() {
        let patterns = [
            "h=..D===S...",
            "hShhS=hhSSh.D=hTTLh=..FhSS==hSh",
            "m=..D===S..h.",
            "..==h.m=====hShShS",
            "====..h=.",
            "hSh=S==S===S====S=======S.S..S...S.......",
            "................",
            "S",
            "=",
        ];
        let mut compact_sent = 0;
        for pattern in patterns {
            let BothCodes { classic, compact, chosen, atb, codes } = both_codes(pattern);
            for (name, code) in [("classic", &classic), ("compact", &compact)] {
                let mut r = Reader::new(code);
                let (got, got_codes) = read_layout(&mut r, pattern.len()).unwrap();
                assert_eq!((got, got_codes), (atb.clone(), codes.clone()), "{name} code of {pattern:?}");
                assert!(r.is_empty(), "{name} code of {pattern:?} read whole");
            }
            let shorter = if compact.len() < classic.len() { &compact } else { &classic };
            assert!(chosen.len() <= shorter.len(), "{pattern:?}: sent {} bytes, could {}", chosen.len(), shorter.len());
            compact_sent += usize::from(chosen[0] & 1 == 1 && (chosen[0] & 2 == 0 || chosen[0] & 4 != 0));
        }
        // The busy rows, the mark among them, go compact; a free range stays classic.
        assert!(compact_sent >= 3, "{compact_sent} ranges sent compact");
        let free = both_codes("................");
        assert_eq!(free.chosen, free.classic);
    }

    #[test]
    fn compact_layout_code_errors_are_errors_not_panics() {
        // An allocation length past the range's end, and a truncated code.
        for bytes in [&[0b0000_0001u8, 0xFF][..], &[0b0000_0001], &[0b1100_0010, 0b0000_0000, 0x00]] {
            let mut r = Reader::new(bytes);
            assert!(read_layout(&mut r, 3).is_err(), "{bytes:02X?}");
        }
    }

    #[test]
    fn layouts_compress_and_round_trip_any_table() {
        // Long free and tail runs, a mark, a tail after a free block, a range that starts in
        // the middle of an allocation, and an odd block count.
        let mut atb = vec![0u8; 1000];
        atb.extend([0xAA; 500]);
        atb.extend([0x55, 0x59, 0x00, 0x99, 0x9B, 0x99, 0x99, 0xA8, 0x01]);
        let blocks = atb.len() * 4 - 3;
        let heads = heads_in(&atb);
        let codes: Vec<u8> = (0..heads).map(|i| (i * 7 % 16) as u8).collect();
        for from in [0usize, 4000, 4004] {
            let part = &atb[from / 4..];
            let n = blocks - from;
            let part_codes = &codes[heads - heads_in(part)..];
            let mut w = Writer::default();
            write_layout(&mut w, part, n, part_codes);
            if from == 0 {
                assert!(w.buf.len() < 40, "{} bytes", w.buf.len());
            }
            let mut r = Reader::new(&w.buf);
            let (got, got_codes) = read_layout(&mut r, n).unwrap();
            assert_eq!(got, part, "from {from}");
            assert_eq!(got_codes, part_codes, "from {from}");
            assert!(r.is_empty());
        }
    }

    #[test]
    fn a_keyframe_may_not_claim_more_than_any_heap() {
        // 64 areas of 2^28 blocks in about 1 KB: 8 GB before the limit.
        let body = crate::synth::claiming_keyframe_body(64, 1 << 28);
        assert!(body.len() < 1200, "{}", body.len());
        let err = decode_body(&body).unwrap_err();
        assert_eq!(err.offset, 8 + 1 + 1 + 5, "the first area's block count: {err}");
        assert!(err.message.contains("at most 16777216"), "{err}");
        // The limit is over all areas together, and exactly the limit is accepted.
        let err = decode_body(&crate::synth::claiming_keyframe_body(2, (1 << 23) + 4)).unwrap_err();
        assert!(err.message.contains("16777224 blocks"), "{err}");
        let Body::Keyframe(k) = decode_body(&crate::synth::claiming_keyframe_body(2, 1 << 23)).unwrap().body else { panic!() };
        assert_eq!(k.areas.iter().map(|a| a.blocks).sum::<usize>(), 1 << 24);
        // Through the demultiplexer, as `record` reads a stream: a counted corrupt frame.
        let mut line = FRAME_START.to_vec();
        cobs_encode(&crate::synth::claiming_keyframe_body(64, 1 << 28), &mut line);
        line.push(FRAME_END);
        let items = demux::Demux::new().push(&line);
        let [demux::Item::Corrupt(c)] = items.as_slice() else { panic!("{items:?}") };
        assert!(c.error.message.contains("at most 16777216"), "{c}");
    }

    #[test]
    fn a_delta_cannot_claim_more_chunks_than_its_bytes_hold() {
        let mut w = Writer::default();
        w.u8(VERSION);
        w.u8(FrameType::Delta as u8);
        w.u16(8);
        w.u32(0);
        w.u16(7);
        w.varint(4);
        w.varint(1);
        w.varint(0x1000);
        w.varint(1 << 24);
        w.varint(1 << 22);
        let crc = crc32(&w.buf);
        w.u32(crc);
        let err = decode_body(&w.buf).unwrap_err();
        assert!(err.message.contains("changed chunks"), "{err}");
    }

    #[test]
    fn a_flipped_bit_is_caught_by_the_crc() {
        let frame = Frame { seq: 1, device_ms: 2, body: Body::Event(Event::Mark { label: "x".into() }) };
        let mut body = encode_body(&frame);
        body[9] ^= 0x10;
        let err = decode_body(&body).unwrap_err();
        assert!(err.message.contains("CRC"), "{err}");
        // Without the frame's own check (a record CRC covered it), the same bytes decode.
        body[9] ^= 0x10;
        assert_eq!(decode_body_verified(&body).unwrap(), frame);
    }
}
