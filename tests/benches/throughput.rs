//! `cargo bench -p heapscope-tests --bench throughput`: text-parse and frame-decode throughput,
//! each beside a baseline measured in the same run, and the size of each heap as a keyframe
//! against its `mem_info(1)` text.
//!
//! - Text: the parser against a plain line split of the same bytes and, when
//!   `HEAPSCOPE_ANCHOR_PARSER` names pi-mst's micropython-memory-profiler parser
//!   (`rendering_tools/mem_usage_parser/frame_parser.py`; not part of this repository), against
//!   that Python parser on the same file (`anchor_parse.py` drives it).
//! - Frames: demultiplexer, CRC, payload and session to snapshots, against a memcpy plus CRC-32
//!   of the same bytes.
//!
//! Prints figures; asserts nothing about time. Each timing is the least thread CPU time of
//! several runs, the Python anchor's too (`time.thread_time()` in `anchor_parse.py`): on a
//! loaded machine wall time would count other processes' slices.

use std::hint::black_box;
use std::time::Duration;

use heapscope_tests::best_cpu_of as best_of;

use heapscope_protocol::synth;
use heapscope_protocol::text::{parse, render_mem_info};
use heapscope_protocol::wire::codec::crc32;
use heapscope_protocol::wire::demux::{Demux, Item};
use heapscope_protocol::wire::session::{self, Applied, Session};
use heapscope_protocol::wire::{encode_frame, Body, Frame};
use heapscope_protocol::model::StackFigures;
use heapscope_protocol::Snapshot;

fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// A plain line split: every line of the text visited once, its length summed.
fn line_split(text: &[u8]) -> usize {
    text.split(|&b| b == b'\n').map(<[u8]>::len).sum()
}

/// Blocks whose kind or head type differ between two snapshots of the same areas.
fn changed_blocks(a: &Snapshot, b: &Snapshot) -> usize {
    a.areas
        .iter()
        .zip(&b.areas)
        .map(|(x, y)| {
            let (mut tx, mut ty) = (x.types().iter(), y.types().iter());
            x.kinds()
                .iter()
                .zip(y.kinds().iter())
                .filter(|(kx, ky)| {
                    let type_x = kx.starts_allocation().then(|| tx.next()).flatten();
                    let type_y = ky.starts_allocation().then(|| ty.next()).flatten();
                    kx != ky || type_x != type_y
                })
                .count()
        })
        .sum()
}

fn parse_figures(label: &str, text: &[u8], anchor_file: Option<&std::path::Path>) {
    let dumps = parse(text).0.len();
    let t_parse = best_of(15, || {
        black_box(parse(black_box(text)));
    });
    let t_split = best_of(15, || {
        black_box(line_split(black_box(text)));
    });
    println!("text parse, {label} ({} bytes, {dumps} dumps):", text.len());
    println!("  parse:                {:>8.1} MB/s  ({t_parse:.2?})", mb_per_s(text.len(), t_parse));
    println!(
        "  plain line split:     {:>8.1} MB/s  ({t_split:.2?})   parse = {:.2}x the line split",
        mb_per_s(text.len(), t_split),
        t_split.as_secs_f64() / t_parse.as_secs_f64()
    );
    let Some(file) = anchor_file else { return };
    match std::env::var_os("HEAPSCOPE_ANCHOR_PARSER") {
        None => println!(
            "  Python anchor:        absent (set HEAPSCOPE_ANCHOR_PARSER to pi-mst/micropython-memory-profiler's rendering_tools/mem_usage_parser/frame_parser.py)"
        ),
        Some(anchor) => {
            std::fs::write(file, text).expect("write the bench text");
            let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/anchor_parse.py");
            let runs: Vec<(f64, String)> = (0..3)
                .filter_map(|_| {
                    let out = std::process::Command::new("python3").arg(driver).arg(&anchor).arg(file).output().ok()?;
                    if !out.status.success() {
                        println!("  Python anchor:        failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
                        return None;
                    }
                    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    let (secs, rest) = line.split_once(' ')?;
                    Some((secs.parse().ok()?, rest.to_string()))
                })
                .collect();
            if let Some((secs, counts)) = runs.iter().min_by(|a, b| a.0.total_cmp(&b.0)) {
                println!(
                    "  Python anchor:        {:>8.1} MB/s  ({secs:.3} s; dumps read, refused: {counts})   parse = {:.1}x the anchor",
                    text.len() as f64 / secs / 1e6,
                    secs / t_parse.as_secs_f64()
                );
            }
        }
    }
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

    // Text parsing 1: a console log of mem_info(1) dumps as the unix port prints them (32-byte
    // blocks), heaps of 2k to 64k blocks with prompts between: the file the anchor reads too.
    let mut log = Vec::new();
    let mut seed = 0;
    while log.len() < 4_000_000 {
        seed += 1;
        let blocks = [2_048, 8_192, 16_384, 65_536][seed as usize % 4];
        let mut heap = synth::snapshot(seed, 32, 1, blocks);
        heap.reported.stack = Some(StackFigures { used: 800 + seed, limit: Some(80_000) });
        log.extend_from_slice(render_mem_info(&heap).as_bytes());
        log.extend_from_slice(b">>> import gc; gc.collect(); micropython.mem_info(1)\n");
    }
    let anchor_file = std::env::temp_dir().join(format!("heapscope-bench-{}.txt", std::process::id()));
    parse_figures("a log of unix-port mem_info(1) dumps", &log, Some(&anchor_file));
    let _ = std::fs::remove_file(&anchor_file);

    // Text parsing 2: every era's fixtures, repeated to about 4 MB.
    let one_pass: Vec<u8> = fixtures.iter().flat_map(|(_, t)| t.iter().copied().chain(*b">>> \n")).collect();
    let text: Vec<u8> = one_pass.iter().copied().cycle().take(4_000_000).collect();
    parse_figures("the fixtures of every era, repeated", &text, Some(&anchor_file));
    let _ = std::fs::remove_file(&anchor_file);

    // Text parsing 3: the stock unix interpreter's own dump of its default 2 MB heap, mostly
    // free (`(1011 lines all free)`), repeated to about 1 MB: few bytes of text for many blocks,
    // where the line split has least to do and the anchor most (it expands every free line).
    let (_, sparse) = fixtures.iter().find(|(name, _)| name == "stock129_x64_mem_info1_2M.txt").expect("the 2 MB fixture");
    let one: Vec<u8> = sparse.iter().copied().chain(*b">>> \n").collect();
    let text: Vec<u8> = one.iter().copied().cycle().take(one.len() * (1_000_000 / one.len())).collect();
    parse_figures("a real 2 MB unix heap, mostly free, repeated", &text, Some(&anchor_file));
    let _ = std::fs::remove_file(&anchor_file);

    // Frame decode: a keyframe of a 262,144-block (4 MB) heap, then 31 deltas of about 200
    // changed blocks each (the 1-hour recording's shape), through demux + session.
    let heap = synth::snapshot(7, 16, 1, 262_144);
    let mut stream = encode_frame(&Frame { seq: 0, device_ms: 0, body: Body::Keyframe(session::keyframe(&heap)) });
    let key_len = stream.len();
    let (mut prev, mut changed, mut mutations) = (heap.clone(), 0, 0);
    for seq in 1..32u16 {
        let m = 60;
        let next = synth::mutate(&prev, u64::from(seq), m);
        changed += changed_blocks(&prev, &next);
        mutations += m;
        stream.extend(encode_frame(&Frame { seq, device_ms: 0, body: Body::Delta(session::delta(&prev, seq - 1, &next, 256)) }));
        prev = next;
    }
    let decode = |stream: &[u8]| {
        let mut demux = Demux::new();
        let mut s = Session::new();
        let mut n = 0;
        for item in demux.push(stream) {
            if let Item::Frame(f) = item {
                if let Applied::Snapshot(snap) = s.advance(f).unwrap() {
                    black_box(snap);
                    n += 1;
                }
            }
        }
        n
    };
    assert_eq!(decode(&stream), 32);
    let mut copy = vec![0u8; stream.len()];
    let baseline = |bytes: &[u8], copy: &mut Vec<u8>| {
        copy.clear();
        copy.extend_from_slice(black_box(bytes));
        black_box(crc32(copy));
    };
    let t_base = best_of(20, || baseline(&stream, &mut copy));
    let t_decode = best_of(20, || {
        black_box(decode(black_box(&stream)));
    });
    let key = &stream[..key_len];
    let t_key_base = best_of(20, || baseline(key, &mut copy));
    let t_key = best_of(20, || {
        black_box(decode(black_box(key)));
    });
    println!(
        "\nframe decode to snapshots, 262,144-block heap: a keyframe ({key_len} B) and 31 deltas ({} B; {changed} changed blocks from {mutations} mutations, about {} per delta):",
        stream.len() - key_len,
        changed / 31
    );
    println!("  memcpy + CRC-32 of the same bytes: {:>8.1} MB/s  ({t_base:.2?})", mb_per_s(stream.len(), t_base));
    println!(
        "  demux, CRC, payload, session:      {:>8.1} MB/s  ({t_decode:.2?}, {:.2?} per snapshot)   {:.2}x the baseline",
        mb_per_s(stream.len(), t_decode),
        t_decode / 32,
        t_base.as_secs_f64() / t_decode.as_secs_f64()
    );
    println!(
        "  the keyframe alone:                {:>8.1} MB/s  ({t_key:.2?}) against {:.1} MB/s   {:.2}x the baseline",
        mb_per_s(key_len, t_key),
        mb_per_s(key_len, t_key_base),
        t_key_base.as_secs_f64() / t_key.as_secs_f64()
    );
    // Like with like: the same heap as the mem_info(1) text a poll would read.
    let heap_text = render_mem_info(&heap);
    let t_text = best_of(5, || {
        black_box(parse(black_box(heap_text.as_bytes())));
    });
    println!(
        "  (for scale: the same heap as mem_info(1) text, {} B, parses in {t_text:.2?}; its keyframe decodes in {t_key:.2?})",
        heap_text.len()
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
    println!(
        "{:<48} {:>8} {:>10} {:>9} {:>6.1}%",
        "synthetic 4 MB heap (its mem_info(1) text)",
        heap.total_blocks(),
        heap_text.len(),
        key_len,
        100.0 * key_len as f64 / heap_text.len() as f64
    );
}
