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

/// A keyframe, and the snapshot after `changes` random changes through the delta tracker.
fn measure(heap: &Snapshot, changes: usize) -> Figures {
    let blocks = heap.total_blocks() as f64;
    let next = synth::mutate(heap, 99, changes);
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

/// A 115200-baud UART: 11,520 bytes per second.
const UART_BYTES_PER_S: f64 = 11_520.0;
/// The goal of issue 11: 20 snapshots per second on that line.
const GOAL_SNAPSHOTS_PER_S: f64 = 20.0;

#[derive(Default)]
struct Sizes {
    count: usize,
    total: usize,
    max: usize,
}

impl Sizes {
    fn add(&mut self, n: usize) {
        self.count += 1;
        self.total += n;
        self.max = self.max.max(n);
    }

    fn mean(&self) -> f64 {
        self.total as f64 / self.count.max(1) as f64
    }
}

/// One minute at 20 snapshots/s of a NodeMCU-32S heap (7,460 blocks of 16 B, about half used)
/// churned by `allocations` allocations and about as many frees between snapshots, sent through
/// the C core's tracker (periodic keyframes included), held against the `mem_info(1)` text of
/// the same heaps and their raw allocation tables.
fn churn_minute(allocations: usize) {
    let snapshots = 60 * GOAL_SNAPSHOTS_PER_S as usize;
    let mut churn = synth::Churn::new(allocations as u64, 0x3FFC_2DB0, 16, 7460, 50);
    let mut c = CWriter::new(0);
    let (mut keys, mut deltas, mut all, mut texts, mut atbs) =
        (Sizes::default(), Sizes::default(), Sizes::default(), Sizes::default(), Sizes::default());
    for i in 0..snapshots {
        let heap = churn.snapshot();
        let kind = c.snapshot_prepared(i as u32 * 50, &Prepared::new(&heap));
        let n = c.take().len();
        all.add(n);
        if kind == 2 { keys.add(n) } else { deltas.add(n) }
        texts.add(text::render_mem_info(&heap).len());
        atbs.add(heap.areas.iter().map(|a| a.kinds().atb().len()).sum());
        churn.step(allocations);
    }
    let per_s = UART_BYTES_PER_S / all.mean();
    println!(
        "{:>6} {:>5} {:>4} {:>6.0} {:>6.0} {:>5} {:>6.0} {:>6.0} {:>5.0} {:>6.3} {:>6.3} {:>6.1} {:>8} {:>9}",
        allocations,
        all.count,
        keys.count,
        keys.mean(),
        deltas.mean(),
        deltas.max,
        all.mean(),
        texts.mean(),
        atbs.mean(),
        keys.mean() / texts.mean(),
        all.mean() / texts.mean(),
        per_s,
        if all.mean() <= UART_BYTES_PER_S / GOAL_SNAPSHOTS_PER_S { "yes" } else { "NO" },
        if keys.mean() <= texts.mean() / 4.0 { "yes" } else { "NO" },
    );
}

fn main() {
    println!("C core on a churned NodeMCU-32S heap (7,460 blocks of 16 B, about half used): one minute of");
    println!("snapshots at 20/s through the delta tracker (a keyframe every 16), against the mem_info(1)");
    println!("text (protocol's emulation, text::render_mem_info) and the raw allocation table of the same heaps.");
    println!(
        "goal: at most {:.0} B per snapshot averaged (20 snapshots/s in {:.0} B/s), keyframes at most 1/4 of the text",
        UART_BYTES_PER_S / GOAL_SNAPSHOTS_PER_S,
        UART_BYTES_PER_S
    );
    println!(
        "{:>6} {:>5} {:>4} {:>6} {:>6} {:>5} {:>6} {:>6} {:>5} {:>6} {:>6} {:>6} {:>8} {:>9}",
        "allocs", "snaps", "keys", "key B", "dlt B", "max", "avg B", "text B", "ATB B", "key/tx", "avg/tx", "snap/s", "avg<=576", "key<=tx/4"
    );
    for allocations in [12, 24, 48, 96] {
        churn_minute(allocations);
    }
    println!("(allocs: allocations between two snapshots, about as many frees; dlt B: mean delta, max: largest;");
    println!(" avg B: mean of all snapshots, keyframes included; snap/s: snapshots per second that fit 11,520 B/s)");
    println!();

    println!("C encoder (host build): a keyframe, then the next snapshot through the delta tracker after");
    println!("one random change per 2,000 blocks (at least 2)");
    println!(
        "{:<40} {:>7} {:>7} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "heap", "blocks", "key B", "next B", "next is", "key ns/b", "next ns/b", "key/crc", "next/crc"
    );
    let mut heaps = fixture_heaps();
    heaps.push(("synthetic 4 MB heap, 16-byte blocks".into(), synth::snapshot(7, 16, 1, 262_144)));
    heaps.push(("synthetic 8 MB heap in 4 areas".into(), synth::snapshot(8, 16, 4, 524_288)));
    for (name, heap) in &heaps {
        let changes = (heap.total_blocks() / 2000).max(2);
        let f = measure(heap, changes);
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
