//! The firmware's portable C core (`firmware/heapscope/hs_core.c`, built by `build.rs`) behind
//! a safe wrapper that encodes model snapshots, so tests can hold it against the Rust side.

use std::collections::HashSet;
use std::ffi::{c_char, c_int, c_void};

use heapscope_protocol::model::{Reported, Snapshot};
use heapscope_protocol::wire::session;

type SinkFn = extern "C" fn(*mut c_void, *const u8, usize);
type ClassifyFn = extern "C" fn(*mut c_void, usize, usize) -> u8;
type ChangedFn = extern "C" fn(*mut c_void, usize, usize) -> c_int;

const HS_MAX_AREAS: usize = 16;
const HS_MAX_CHUNKS: usize = 1024;

#[repr(C)]
struct HsWriter {
    sink: SinkFn,
    sink_ctx: *mut c_void,
    seq: u16,
    crc: u32,
    block: [u8; 255],
    fill: u8,
}

#[repr(C)]
struct HsArea {
    pool_start: u64,
    atb: *const u8,
    blocks: usize,
}

#[repr(C)]
struct HsSystemHeap {
    caps: u32,
    total: u64,
    free: u64,
    largest_free: u64,
    min_free: u64,
}

#[repr(C)]
struct HsFigures {
    has_gc: c_int,
    gc: [u64; 7],
    has_max_new_split: c_int,
    max_new_split: u64,
    has_stack: c_int,
    has_stack_limit: c_int,
    stack_used: u64,
    stack_limit: u64,
    has_mem: c_int,
    mem: [u64; 3],
    system_heap_count: usize,
    system_heaps: *const HsSystemHeap,
    has_python: c_int,
    python: [u64; 2],
}

#[repr(C)]
struct HsTracker {
    valid: u8,
    measured: u8,
    base_seq: u16,
    since_keyframe: u16,
    chunk_blocks: u32,
    area_count: usize,
    area_start: [u64; HS_MAX_AREAS],
    area_blocks: [usize; HS_MAX_AREAS],
    hash: [u32; HS_MAX_CHUNKS],
    changed: [u8; HS_MAX_CHUNKS / 8],
}

/// What the C core says the next snapshot would cost on the line (`hs_snapshot_cost_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotCost {
    pub keyframe_bytes: usize,
    /// 0 when there is no base to send a delta against.
    pub delta_bytes: usize,
    pub keyframe_due: c_int,
}

extern "C" {
    fn hs_writer_init(w: *mut HsWriter, sink: SinkFn, ctx: *mut c_void);
    fn hs_crc32(crc: u32, data: *const u8, len: usize) -> u32;
    fn hs_send_hello(
        w: *mut HsWriter,
        ms: u32,
        block_size: u32,
        interpreter: *const c_char,
        interpreter_len: usize,
        platform: *const c_char,
        platform_len: usize,
        areas: *const HsArea,
        area_count: usize,
    );
    fn hs_send_keyframe(
        w: *mut HsWriter,
        ms: u32,
        block_size: u32,
        areas: *const HsArea,
        area_count: usize,
        classify: ClassifyFn,
        classify_ctx: *mut c_void,
        figures: *const HsFigures,
    );
    fn hs_send_delta(
        w: *mut HsWriter,
        ms: u32,
        base_seq: u16,
        chunk_blocks: u32,
        areas: *const HsArea,
        area_count: usize,
        classify: ClassifyFn,
        classify_ctx: *mut c_void,
        changed: ChangedFn,
        changed_ctx: *mut c_void,
        figures: *const HsFigures,
    );
    fn hs_send_snapshot(
        w: *mut HsWriter,
        t: *mut HsTracker,
        ms: u32,
        block_size: u32,
        areas: *const HsArea,
        area_count: usize,
        classify: ClassifyFn,
        classify_ctx: *mut c_void,
        figures: *const HsFigures,
    ) -> c_int;
    fn hs_send_snapshot_within(
        w: *mut HsWriter,
        t: *mut HsTracker,
        ms: u32,
        block_size: u32,
        areas: *const HsArea,
        area_count: usize,
        classify: ClassifyFn,
        classify_ctx: *mut c_void,
        figures: *const HsFigures,
        budget: usize,
    ) -> c_int;
    fn hs_tracker_reset(t: *mut HsTracker);
    fn hs_measure_snapshot(
        t: *mut HsTracker,
        w: *const HsWriter,
        ms: u32,
        block_size: u32,
        areas: *const HsArea,
        area_count: usize,
        classify: ClassifyFn,
        classify_ctx: *mut c_void,
        figures: *const HsFigures,
        cost: *mut SnapshotCost,
    );
    fn hs_send_measured(
        w: *mut HsWriter,
        t: *mut HsTracker,
        frame_type: c_int,
        ms: u32,
        block_size: u32,
        areas: *const HsArea,
        area_count: usize,
        classify: ClassifyFn,
        classify_ctx: *mut c_void,
        figures: *const HsFigures,
    ) -> c_int;
    fn hs_send_skipped(w: *mut HsWriter, ms: u32, count: u32);
    fn hs_send_import_begin(w: *mut HsWriter, ms: u32, depth: u32, name: *const c_char, len: usize);
    fn hs_send_import_end(w: *mut HsWriter, ms: u32, depth: u32, name: *const c_char, len: usize, ok: c_int, us: u64);
    fn hs_send_mark(w: *mut HsWriter, ms: u32, label: *const c_char, len: usize);
    fn hs_send_area_added(w: *mut HsWriter, ms: u32, pool_start: u64, blocks: usize);
    fn hs_send_area_removed(w: *mut HsWriter, ms: u32, pool_start: u64);
    fn hs_send_stream_start(w: *mut HsWriter, ms: u32, period_ms: u32);
    fn hs_send_stream_stop(w: *mut HsWriter, ms: u32);
    fn hs_send_dump_begin(w: *mut HsWriter, ms: u32, word_size: u32, block_size: u32, mem_free: u64);
    fn hs_send_dump_blocks(
        w: *mut HsWriter,
        ms: u32,
        word_size: u32,
        block_size: u32,
        pool_start: u64,
        area_blocks: usize,
        first: usize,
        count: usize,
        data: *const u8,
    );
    fn hs_send_dump_name(
        w: *mut HsWriter,
        ms: u32,
        kind: u8,
        address: u64,
        prefix: *const c_char,
        prefix_len: usize,
        name: *const c_char,
        name_len: usize,
    );
    fn hs_send_dump_end(w: *mut HsWriter, ms: u32, frames: u32, blocks: u64);

    fn hs_test_sizeof_writer() -> usize;
    fn hs_test_sizeof_area() -> usize;
    fn hs_test_sizeof_figures() -> usize;
    fn hs_test_sizeof_system_heap() -> usize;
    fn hs_test_sizeof_tracker() -> usize;
}

/// Panics if a Rust declaration above disagrees in size with the C struct.
pub fn check_layouts() {
    // SAFETY: the functions only return sizeof values.
    unsafe {
        assert_eq!(std::mem::size_of::<HsWriter>(), hs_test_sizeof_writer(), "hs_writer_t");
        assert_eq!(std::mem::size_of::<HsArea>(), hs_test_sizeof_area(), "hs_area_t");
        assert_eq!(std::mem::size_of::<HsFigures>(), hs_test_sizeof_figures(), "hs_figures_t");
        assert_eq!(std::mem::size_of::<HsSystemHeap>(), hs_test_sizeof_system_heap(), "hs_system_heap_t");
        assert_eq!(std::mem::size_of::<HsTracker>(), hs_test_sizeof_tracker(), "hs_tracker_t");
    }
}

/// Size of the C core's delta-tracking state, in bytes.
pub fn tracker_bytes() -> usize {
    // SAFETY: returns a sizeof value.
    unsafe { hs_test_sizeof_tracker() }
}

pub fn crc32(data: &[u8]) -> u32 {
    // SAFETY: the pointer and length describe `data`.
    unsafe { hs_crc32(0, data.as_ptr(), data.len()) }
}

extern "C" fn sink(ctx: *mut c_void, data: *const u8, len: usize) {
    // SAFETY: ctx is the Vec<u8> owned by the CWriter; the core passes a valid buffer.
    unsafe {
        let out = &mut *(ctx as *mut Vec<u8>);
        out.extend_from_slice(std::slice::from_raw_parts(data, len));
    }
}

/// Type code of every block of every area (meaningful at heads), as the device would classify.
struct Types(Vec<Vec<u8>>);

impl Types {
    fn of(snapshot: &Snapshot) -> Types {
        Types(
            snapshot
                .areas
                .iter()
                .map(|area| {
                    let mut codes = vec![0u8; area.blocks()];
                    for a in area.allocations() {
                        codes[a.start] = a.obj_type.code();
                    }
                    codes
                })
                .collect(),
        )
    }
}

extern "C" fn classify(ctx: *mut c_void, area: usize, block: usize) -> u8 {
    // SAFETY: ctx is a live `Types` for the duration of the call that passed it.
    let types = unsafe { &*(ctx as *const Types) };
    types.0[area][block]
}

/// Chunks to send, per area.
struct Changed(Vec<HashSet<usize>>);

extern "C" fn changed(ctx: *mut c_void, area: usize, chunk: usize) -> c_int {
    // SAFETY: ctx is a live `Changed` for the duration of the call that passed it.
    let changed = unsafe { &*(ctx as *const Changed) };
    c_int::from(changed.0[area].contains(&chunk))
}

fn areas(snapshot: &Snapshot) -> Vec<HsArea> {
    snapshot
        .areas
        .iter()
        .map(|a| HsArea { pool_start: a.pool_start(), atb: a.kinds().atb().as_ptr(), blocks: a.blocks() })
        .collect()
}

/// Figures and the system heaps they point to.
fn figures(r: &Reported) -> (HsFigures, Vec<HsSystemHeap>) {
    let heaps: Vec<HsSystemHeap> = r
        .system_heaps
        .iter()
        .map(|h| HsSystemHeap { caps: h.caps, total: h.total, free: h.free, largest_free: h.largest_free, min_free: h.min_free })
        .collect();
    let gc = r.gc.unwrap_or_default();
    let mem = r.mem.unwrap_or_default();
    let stack = r.stack.unwrap_or_default();
    let f = HsFigures {
        has_gc: c_int::from(r.gc.is_some()),
        gc: [gc.total, gc.used, gc.free, gc.one_blocks, gc.two_blocks, gc.max_block, gc.max_free],
        has_max_new_split: c_int::from(r.max_new_split.is_some()),
        max_new_split: r.max_new_split.unwrap_or(0),
        has_stack: c_int::from(r.stack.is_some()),
        has_stack_limit: c_int::from(stack.limit.is_some()),
        stack_used: stack.used,
        stack_limit: stack.limit.unwrap_or(0),
        has_mem: c_int::from(r.mem.is_some()),
        mem: [mem.total, mem.current, mem.peak],
        system_heap_count: heaps.len(),
        system_heaps: heaps.as_ptr(),
        has_python: c_int::from(r.python.is_some()),
        python: r.python.map_or([0, 0], |p| [p.mem_alloc, p.mem_free]),
    };
    (f, heaps)
}

/// A snapshot laid out for the C core: area list, type lookup and figures, prepared once so a
/// benchmark times only the encoder.
pub struct Prepared<'a> {
    areas: Vec<HsArea>,
    types: Types,
    figures: HsFigures,
    _heaps: Vec<HsSystemHeap>,
    block_size: u32,
    _snapshot: std::marker::PhantomData<&'a Snapshot>,
}

impl<'a> Prepared<'a> {
    pub fn new(snapshot: &'a Snapshot) -> Prepared<'a> {
        let (figures, heaps) = figures(&snapshot.reported);
        Prepared {
            areas: areas(snapshot),
            types: Types::of(snapshot),
            figures,
            _heaps: heaps,
            block_size: snapshot.block_size().unwrap_or(0),
            _snapshot: std::marker::PhantomData,
        }
    }

    fn classify_ctx(&self) -> *mut c_void {
        &self.types as *const Types as *mut c_void
    }
}

/// A C frame writer collecting what it writes.
pub struct CWriter {
    writer: Box<HsWriter>,
    // Boxed: the C writer holds a pointer to this Vec, which must not move with the CWriter.
    #[allow(clippy::box_collection)]
    out: Box<Vec<u8>>,
    tracker: Box<HsTracker>,
}

impl CWriter {
    /// A writer whose next frame has sequence number `seq`.
    pub fn new(seq: u16) -> CWriter {
        let mut out = Box::new(Vec::new());
        let mut writer = Box::new(HsWriter { sink, sink_ctx: std::ptr::null_mut(), seq: 0, crc: 0, block: [0; 255], fill: 0 });
        // SAFETY: both boxes outlive every call that uses the writer.
        unsafe { hs_writer_init(&mut *writer, sink, &mut *out as *mut Vec<u8> as *mut c_void) };
        writer.seq = seq;
        let mut tracker = Box::new(HsTracker {
            valid: 0,
            measured: 0,
            base_seq: 0,
            since_keyframe: 0,
            chunk_blocks: 0,
            area_count: 0,
            area_start: [0; HS_MAX_AREAS],
            area_blocks: [0; HS_MAX_AREAS],
            hash: [0; HS_MAX_CHUNKS],
            changed: [0; HS_MAX_CHUNKS / 8],
        });
        // SAFETY: a valid tracker.
        unsafe { hs_tracker_reset(&mut *tracker) };
        CWriter { writer, out, tracker }
    }

    /// Everything written so far, leaving the writer empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut *self.out)
    }

    fn w(&mut self) -> *mut HsWriter {
        &mut *self.writer
    }

    pub fn hello(&mut self, ms: u32, block_size: u32, interpreter: &str, platform: &str, area_list: &[heapscope_protocol::Area]) {
        let snapshot = Snapshot { areas: area_list.to_vec(), reported: Reported::default() };
        let a = areas(&snapshot);
        // SAFETY: every pointer describes a live buffer of the given length.
        unsafe {
            hs_send_hello(
                self.w(),
                ms,
                block_size,
                interpreter.as_ptr().cast(),
                interpreter.len(),
                platform.as_ptr().cast(),
                platform.len(),
                a.as_ptr(),
                a.len(),
            )
        }
    }

    pub fn keyframe(&mut self, ms: u32, snapshot: &Snapshot) {
        self.keyframe_prepared(ms, &Prepared::new(snapshot));
    }

    pub fn keyframe_prepared(&mut self, ms: u32, p: &Prepared<'_>) {
        // SAFETY: areas point into the snapshot `p` borrows; types and figures live in `p`.
        unsafe {
            hs_send_keyframe(self.w(), ms, p.block_size, p.areas.as_ptr(), p.areas.len(), classify, p.classify_ctx(), &p.figures)
        }
    }

    /// A delta carrying the chunks of `current` that differ from `base` (as the Rust encoder
    /// decides them).
    pub fn delta_against(&mut self, ms: u32, base_seq: u16, chunk_blocks: u32, base: &Snapshot, current: &Snapshot) {
        let rust = session::delta(base, base_seq, current, chunk_blocks as usize);
        let sets = Changed(rust.areas.iter().map(|a| a.chunks.iter().map(|c| c.index).collect()).collect());
        let p = Prepared::new(current);
        // SAFETY: as in `keyframe_prepared`; `sets` lives across the call.
        unsafe {
            hs_send_delta(
                self.w(),
                ms,
                base_seq,
                chunk_blocks,
                p.areas.as_ptr(),
                p.areas.len(),
                classify,
                p.classify_ctx(),
                changed,
                &sets as *const Changed as *mut c_void,
                &p.figures,
            )
        }
    }

    /// A snapshot through the C delta tracker: keyframe or delta, as the core decides.
    /// Returns the frame type (2 keyframe, 3 delta).
    pub fn snapshot(&mut self, ms: u32, snapshot: &Snapshot) -> u8 {
        self.snapshot_prepared(ms, &Prepared::new(snapshot))
    }

    pub fn snapshot_prepared(&mut self, ms: u32, p: &Prepared<'_>) -> u8 {
        let tracker: *mut HsTracker = &mut *self.tracker;
        // SAFETY: as in `keyframe_prepared`; the tracker box is live.
        unsafe {
            hs_send_snapshot(
                self.w(),
                tracker,
                ms,
                p.block_size,
                p.areas.as_ptr(),
                p.areas.len(),
                classify,
                p.classify_ctx(),
                &p.figures,
            ) as u8
        }
    }

    /// What the snapshot would cost as a keyframe and as a delta; sends nothing.
    pub fn measure(&mut self, ms: u32, p: &Prepared<'_>) -> SnapshotCost {
        let mut cost = SnapshotCost::default();
        let tracker: *mut HsTracker = &mut *self.tracker;
        // SAFETY: as in `keyframe_prepared`; the tracker and writer boxes are live.
        unsafe {
            hs_measure_snapshot(
                tracker,
                &*self.writer,
                ms,
                p.block_size,
                p.areas.as_ptr(),
                p.areas.len(),
                classify,
                p.classify_ctx(),
                &p.figures,
                &mut cost,
            )
        };
        cost
    }

    /// Sends the snapshot last measured as `frame_type` (2 keyframe, 3 delta); returns the
    /// type sent.
    pub fn send_measured(&mut self, frame_type: u8, ms: u32, p: &Prepared<'_>) -> u8 {
        let tracker: *mut HsTracker = &mut *self.tracker;
        // SAFETY: as in `measure`.
        unsafe {
            hs_send_measured(
                self.w(),
                tracker,
                c_int::from(frame_type),
                ms,
                p.block_size,
                p.areas.as_ptr(),
                p.areas.len(),
                classify,
                p.classify_ctx(),
                &p.figures,
            ) as u8
        }
    }

    /// A snapshot within `budget` bytes on the line: 2 keyframe, 3 delta, 0 nothing sent.
    pub fn snapshot_within(&mut self, ms: u32, snapshot: &Snapshot, budget: usize) -> u8 {
        let p = Prepared::new(snapshot);
        let tracker: *mut HsTracker = &mut *self.tracker;
        // SAFETY: as in `keyframe_prepared`; the tracker box is live.
        unsafe {
            hs_send_snapshot_within(
                self.w(),
                tracker,
                ms,
                p.block_size,
                p.areas.as_ptr(),
                p.areas.len(),
                classify,
                p.classify_ctx(),
                &p.figures,
                budget,
            ) as u8
        }
    }

    pub fn skipped(&mut self, ms: u32, count: u32) {
        // SAFETY: plain values.
        unsafe { hs_send_skipped(self.w(), ms, count) }
    }

    pub fn import_begin(&mut self, ms: u32, depth: u32, name: &str) {
        // SAFETY: name's pointer and length.
        unsafe { hs_send_import_begin(self.w(), ms, depth, name.as_ptr().cast(), name.len()) }
    }

    pub fn import_end(&mut self, ms: u32, depth: u32, name: &str, ok: bool, elapsed_us: u64) {
        // SAFETY: name's pointer and length.
        unsafe { hs_send_import_end(self.w(), ms, depth, name.as_ptr().cast(), name.len(), c_int::from(ok), elapsed_us) }
    }

    pub fn dump_begin(&mut self, ms: u32, word_size: u32, block_size: u32, mem_free: u64) {
        // SAFETY: plain values.
        unsafe { hs_send_dump_begin(self.w(), ms, word_size, block_size, mem_free) }
    }

    pub fn dump_blocks(&mut self, ms: u32, b: &heapscope_protocol::wire::dump::DumpBlocks) {
        // Words are read aligned in the C core, as on a device: copy into u64s.
        let mut aligned = vec![0u64; b.bytes.len().div_ceil(8)];
        // SAFETY: `aligned` holds at least b.bytes.len() bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(b.bytes.as_ptr(), aligned.as_mut_ptr().cast::<u8>(), b.bytes.len());
            hs_send_dump_blocks(
                self.w(),
                ms,
                b.word_size,
                b.block_size,
                b.pool_start,
                b.area_blocks,
                b.first,
                b.count(),
                aligned.as_ptr().cast(),
            )
        }
    }

    pub fn dump_name(&mut self, ms: u32, kind: u8, address: u64, prefix: &str, name: &str) {
        // SAFETY: the strings' pointers and lengths.
        unsafe {
            hs_send_dump_name(self.w(), ms, kind, address, prefix.as_ptr().cast(), prefix.len(), name.as_ptr().cast(), name.len())
        }
    }

    pub fn dump_end(&mut self, ms: u32, frames: u32, blocks: u64) {
        // SAFETY: plain values.
        unsafe { hs_send_dump_end(self.w(), ms, frames, blocks) }
    }

    pub fn mark(&mut self, ms: u32, label: &str) {
        // SAFETY: label's pointer and length.
        unsafe { hs_send_mark(self.w(), ms, label.as_ptr().cast(), label.len()) }
    }

    pub fn area_added(&mut self, ms: u32, pool_start: u64, blocks: usize) {
        // SAFETY: plain values.
        unsafe { hs_send_area_added(self.w(), ms, pool_start, blocks) }
    }

    pub fn area_removed(&mut self, ms: u32, pool_start: u64) {
        // SAFETY: plain values.
        unsafe { hs_send_area_removed(self.w(), ms, pool_start) }
    }

    pub fn stream_start(&mut self, ms: u32, period_ms: u32) {
        // SAFETY: plain values.
        unsafe { hs_send_stream_start(self.w(), ms, period_ms) }
    }

    pub fn stream_stop(&mut self, ms: u32) {
        // SAFETY: plain values.
        unsafe { hs_send_stream_stop(self.w(), ms) }
    }
}
