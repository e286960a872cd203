//! `cargo bench -p heapscope-tests --bench throughput`: text-parse and frame-decode throughput, and the size of
//! each fixture's heap as a keyframe against its `mem_info(1)` text.
//!
//! Prints figures; asserts nothing about time. Each timing is the best of several runs.

use std::hint::black_box;

use heapscope_tests::best_of;
use std::time::Duration;

use heapscope_protocol::synth;
use heapscope_protocol::text::parse;
use heapscope_protocol::wire::demux::{Demux, Item};
use heapscope_protocol::wire::session::{self, Session};
use heapscope_protocol::wire::{encode_frame, Body, Frame};

fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/mem_info");
    let mut fixtures: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("testdata/mem_info")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    fixtures.sort();

    // Text parsing: all fixtures, repeated to about 4 MB.
    let one_pass: Vec<u8> = fixtures.iter().flat_map(|(_, t)| t.iter().copied().chain(*b">>> \n")).collect();
    let text: Vec<u8> = one_pass.iter().copied().cycle().take(4_000_000).collect();
    let dumps = parse(&text).0.len();
    let t = best_of(5, || {
        black_box(parse(black_box(&text)));
    });
    println!("text parse: {:.1} MB/s ({} bytes, {} dumps, {:.2?})", mb_per_s(text.len(), t), text.len(), dumps, t);

    // Frame decode: keyframes of a 262,144-block (4 MB) heap through demux + session.
    let heap = synth::snapshot(7, 16, 1, 262_144);
    let next = synth::mutate(&heap, 8, 300);
    let key = encode_frame(&Frame { seq: 1, device_ms: 0, body: Body::Keyframe(session::keyframe(&heap)) });
    let delta = encode_frame(&Frame { seq: 2, device_ms: 0, body: Body::Delta(session::delta(&heap, 1, &next, 256)) });
    let stream: Vec<u8> = key.iter().chain(&delta).copied().collect();
    let t_demux = best_of(5, || {
        let mut demux = Demux::new();
        black_box(demux.push(black_box(&stream)));
    });
    let t_full = best_of(5, || {
        let mut demux = Demux::new();
        let mut s = Session::new();
        for item in demux.push(&stream) {
            if let Item::Frame(f) = item {
                black_box(s.apply(&f).unwrap());
            }
        }
    });
    println!(
        "frame decode (262,144-block heap, keyframe {} B + delta of 300 changes {} B): demux+CRC+payload {:.1} MB/s, to snapshots {:.1} MB/s ({:.2?} per keyframe+delta)",
        key.len(),
        delta.len(),
        mb_per_s(stream.len(), t_demux),
        mb_per_s(stream.len(), t_full),
        t_full
    );
    let t_text_equiv = best_of(3, || {
        black_box(parse(black_box(&one_pass)));
    });
    println!(
        "  (for scale: parsing one pass of all fixtures as text takes {:.2?} for {} bytes)",
        t_text_equiv,
        one_pass.len()
    );

    println!("\nencoded size per fixture heap: keyframe frame bytes vs mem_info(1) text bytes");
    println!("{:<48} {:>8} {:>10} {:>9} {:>7}", "fixture", "blocks", "text B", "frame B", "ratio");
    for (name, text) in &fixtures {
        let (dumps, _) = parse(text);
        let Some(dump) = dumps.last() else { continue };
        if !dump.snapshot.has_layout() {
            continue;
        }
        let frame = encode_frame(&Frame { seq: 0, device_ms: 0, body: Body::Keyframe(session::keyframe(&dump.snapshot)) });
        println!(
            "{:<48} {:>8} {:>10} {:>9} {:>6.1}%",
            name,
            dump.snapshot.total_blocks(),
            text.len(),
            frame.len(),
            100.0 * frame.len() as f64 / text.len() as f64
        );
    }
    let key_text_equiv = heap.total_blocks() + heap.total_blocks() / 64 * 11;
    println!(
        "{:<48} {:>8} {:>10} {:>9} {:>6.1}%",
        "synthetic 4 MB heap (text size estimated)",
        heap.total_blocks(),
        key_text_equiv,
        key.len(),
        100.0 * key.len() as f64 / key_text_equiv as f64
    );
}
