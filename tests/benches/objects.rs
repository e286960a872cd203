//! `cargo bench -p heapscope-tests --bench objects`: who-holds-what analysis of a 4 MB heap
//! (262,144 blocks, about 40,000 objects), its time and its peak memory, beside reading every
//! word of the same dump once and loading the dump file, measured in the same run. Prints
//! figures; asserts nothing about time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use heapscope_objects::{synth, Analysis, HeapDump};
use heapscope_tests::best_of;

/// Counts heap bytes in use and their peak, to measure what the analysis needs.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    let dump = synth::program_heap(11, 262_144, 85, 40_000);
    let blocks = dump.areas[0].area.blocks();
    let file = dump.to_json();

    let words = best_of(5, || {
        let mut sum = 0u64;
        for r in &dump.memory {
            for w in r.bytes.chunks_exact(4) {
                sum = sum.wrapping_add(u64::from(u32::from_le_bytes(w.try_into().unwrap())));
            }
        }
        black_box(sum);
    });
    let load = best_of(3, || {
        black_box(HeapDump::from_json(black_box(file.as_bytes())).unwrap());
    });

    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let analysis = Analysis::new(&dump);
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let kept = CURRENT.load(Ordering::Relaxed) - before;
    let objects = analysis.objects.len();
    let references: usize = (0..objects as u32).map(|i| analysis.references(i).len()).sum();
    drop(analysis);
    let analyse = best_of(3, || {
        black_box(Analysis::new(black_box(&dump)));
    });

    println!(
        "objects analysis of a {blocks}-block heap ({} MB, {} bytes of used blocks, {objects} objects, {references} references, {} named roots; dump file {} bytes)",
        blocks * 16 / (1024 * 1024),
        dump.content_bytes(),
        dump.names.len(),
        file.len()
    );
    println!("  read every used word once (baseline):     {words:>10.2?}");
    println!("  load the dump file (JSON, base64):        {load:>10.2?}   {:.1}x the baseline", load.as_secs_f64() / words.as_secs_f64());
    println!(
        "  analyse (objects, references, dominators, retained, paths): {analyse:>10.2?}   {:.1}x the baseline",
        analyse.as_secs_f64() / words.as_secs_f64()
    );
    println!(
        "  memory of the analysis: peak {:.1} MB, kept {:.1} MB (the dump itself: {:.1} MB)",
        peak as f64 / 1e6,
        kept as f64 / 1e6,
        dump.content_bytes() as f64 / 1e6
    );
}
