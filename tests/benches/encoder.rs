//! `cargo bench -p heapscope-tests --bench encoder`: the firmware's C encoder (compiled for
//! this host) — cost per heap block, and bytes per keyframe and delta for heaps shaped like the
//! fixtures. Timings are reported against a baseline measured in the same run: one CRC-32 pass
//! over the allocation table (the least any encoder must do: touch every table byte once).
//! Prints figures; asserts nothing about time.

use std::hint::black_box;

use heapscope_tests::best_of;
use std::time::{Duration, Instant};

use heapscope_protocol::{synth, text, Snapshot};
use heapscope_tests::c_core::{self, CWriter, Prepared};

fn fixture_heaps() -> Vec<(String, Snapshot)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/mem_info");
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        let Ok(bytes) = std::fs::read(&p) else { continue };
        if let Some(dump) = text::parse(&bytes).0.pop() {
            if dump.snapshot.has_layout() {
                out.push((p.file_name().unwrap().to_string_lossy().into_owned(), dump.snapshot));
            }
        }
    }
    out
}

struct Figures {
    key_bytes: usize,
    next_bytes: usize,
    next_kind: &'static str,
    key_ns: f64,
    next_ns: f64,
    crc_ns: f64,
}

/// A keyframe, and the snapshot after `changes_per_area` random changes in each area through
/// the delta tracker.
fn measure(heap: &Snapshot, changes_per_area: usize) -> Figures {
    let blocks = heap.total_blocks() as f64;
    let next = synth::mutate(heap, 99, changes_per_area);
    let (p0, p1) = (Prepared::new(heap), Prepared::new(&next));
    let runs = if heap.total_blocks() > 100_000 { 9 } else { 51 };
    let ns = |d: Duration| d.as_nanos() as f64 / blocks;

    let mut w = CWriter::new(0);
    let key = best_of(runs, || {
        w.keyframe_prepared(0, black_box(&p0));
        black_box(w.take());
    });
    let (mut next_bytes, mut next_kind) = (0, 0);
    let next_time = (0..runs)
        .map(|_| {
            let mut w = CWriter::new(0);
            w.snapshot_prepared(0, &p0);
            let key_bytes = w.take().len();
            let t = Instant::now();
            next_kind = w.snapshot_prepared(1, black_box(&p1));
            let d = t.elapsed();
            next_bytes = w.take().len();
            black_box(key_bytes);
            d
        })
        .min()
        .unwrap();
    let mut w = CWriter::new(0);
    w.snapshot_prepared(0, &p0);
    let key_bytes = w.take().len();
    let atb: Vec<u8> = heap.areas.iter().flat_map(|a| a.kinds().atb().iter().copied()).collect();
    let crc = best_of(runs, || {
        black_box(c_core::crc32(black_box(&atb)));
    });
    Figures {
        key_bytes,
        next_bytes,
        next_kind: if next_kind == 3 { "delta" } else { "keyframe" },
        key_ns: ns(key),
        next_ns: ns(next_time),
        crc_ns: ns(crc),
    }
}

fn main() {
    println!("C encoder (host build): a keyframe, then the next snapshot through the delta tracker after");
    println!("one random mutation per 2,000 blocks of each area (at least 2 per area)");
    println!(
        "{:<40} {:>7} {:>7} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "heap", "blocks", "key B", "next B", "next is", "key ns/b", "next ns/b", "key/crc", "next/crc"
    );
    let mut heaps = fixture_heaps();
    heaps.push(("synthetic 4 MB heap, 16-byte blocks".into(), synth::snapshot(7, 16, 1, 262_144)));
    heaps.push(("synthetic 8 MB heap in 4 areas".into(), synth::snapshot(8, 16, 4, 524_288)));
    for (name, heap) in &heaps {
        // synth::mutate applies its count to every area: divide by the areas, so a heap in 4
        // areas is as busy per block as one in a single area.
        let per_area = (heap.total_blocks() / heap.areas.len().max(1) / 2000).max(2);
        let f = measure(heap, per_area);
        let name: String = name.trim_end_matches(".txt").chars().take(40).collect();
        println!(
            "{:<40} {:>7} {:>7} {:>8} {:>9} {:>8.2} {:>8.2} {:>7.1}x {:>7.1}x",
            name,
            heap.total_blocks(),
            f.key_bytes,
            f.next_bytes,
            f.next_kind,
            f.key_ns,
            f.next_ns,
            f.key_ns / f.crc_ns,
            f.next_ns / f.crc_ns
        );
    }
    println!("(key/crc: encoder time over one CRC-32 pass over the same allocation table, same run)");
}
