//! Fuzzing the text parser and the demultiplexer (with the decoder and session behind it), in
//! CI: a seeded mutator over a corpus of real dumps, frames of real heaps, and the hostile
//! inputs of issue 8 (`(N lines all free)` with huge N, a 1 KB keyframe claiming 8 GB). Every
//! input must parse or be refused without a panic and within a bounded amount of memory; the
//! test prints runs, panics and the peak memory of any one input.

use std::panic::{catch_unwind, AssertUnwindSafe};

use heapscope_protocol::model::MAX_HEAP_BLOCKS;
use heapscope_protocol::synth::{self, Rng};
use heapscope_protocol::text::{ScanEvent, Scanner};
use heapscope_protocol::wire::codec::cobs_encode;
use heapscope_protocol::wire::demux::{Demux, Item};
use heapscope_protocol::wire::session::{self, Session};
use heapscope_protocol::wire::{encode_frame, Body, Frame, FRAME_END, FRAME_START};
use heapscope_tests::counting::{measure, Counting};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Most memory one input may take: a snapshot at the model's limit (4 MiB of table, up to
/// 16 MiB of types) twice over, and the largest frame.
const MEMORY_BOUND: usize = 64 << 20;

fn fixtures() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/mem_info");
    let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    paths.iter().filter(|p| p.extension().is_some_and(|x| x == "txt")).map(|p| std::fs::read(p).unwrap()).collect()
}

/// A framed keyframe whose areas each claim `blocks` free blocks.
fn claiming_keyframe(areas: u64, blocks: u64) -> Vec<u8> {
    let mut line = FRAME_START.to_vec();
    cobs_encode(&synth::claiming_keyframe_body(areas, blocks), &mut line);
    line.push(FRAME_END);
    line
}

/// The inputs of issue 8 item 6, and real text and frames to mutate.
fn corpus() -> Vec<Vec<u8>> {
    let mut corpus = fixtures();
    let dump = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/mem_info/stock129_x64_mem_info1_2M.txt")).unwrap();
    let dump = String::from_utf8(dump).unwrap();
    for n in ["100000000", "4294967295", "1000000000000", "288230376151712715", "99999999999999999999999"] {
        corpus.push(dump.replace("(1011 lines all free)", &format!("({n} lines all free)")).into_bytes());
    }
    let huge = claiming_keyframe(64, 1 << 28);
    assert!(huge.len() < 1200, "the 8 GB keyframe is {} bytes", huge.len());
    corpus.push(huge);
    let heap = synth::snapshot(3, 16, 2, 20_000);
    let next = synth::mutate(&heap, 4, 30);
    let mut stream = b"boot\r\n>>> ".to_vec();
    stream.extend(encode_frame(&Frame { seq: 1, device_ms: 0, body: Body::Keyframe(session::keyframe(&heap)) }));
    stream.extend(b"print(1)\r\n1\r\n");
    stream.extend(encode_frame(&Frame { seq: 2, device_ms: 9, body: Body::Delta(session::delta(&heap, 1, &next, 64)) }));
    corpus.push(stream);
    corpus
}

/// Flips, inserts, deletes, repeats and splices bytes, and writes large numbers over digits.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = if out.is_empty() { 0 } else { rng.below(out.len() as u64) as usize };
        match rng.below(7) {
            0 if !out.is_empty() => out[at] ^= 1 << rng.below(8),
            1 => out.insert(at, rng.next_u64() as u8),
            2 if !out.is_empty() => {
                let end = (at + 1 + rng.below(16) as usize).min(out.len());
                out.drain(at..end);
            }
            3 if !out.is_empty() => {
                let end = (at + 1 + rng.below(64) as usize).min(out.len());
                let piece = out[at..end].to_vec();
                out.splice(at..at, piece.iter().copied().cycle().take(piece.len() * (1 + rng.below(8) as usize)));
            }
            4 if !other.is_empty() => {
                let from = rng.below(other.len() as u64) as usize;
                let end = (from + 1 + rng.below(200) as usize).min(other.len());
                out.splice(at..at, other[from..end].iter().copied());
            }
            5 => {
                if let Some(d) = out[at..].iter().position(u8::is_ascii_digit) {
                    let big = ["4294967295", "18446744073709551615", "1000000000000", "288230376151712715", "9".repeat(30).leak()];
                    let n = big[rng.below(big.len() as u64) as usize];
                    out.splice(at + d..at + d, n.bytes());
                }
            }
            _ => {
                let b = [b'\n', b'\r', 0xFF, 0x00, b' ', b'=', b'.', b'h'][rng.below(8) as usize];
                out.insert(at, b);
            }
        }
    }
    out
}

/// Everything a board's bytes go through: the demultiplexer and session, and the text scanner
/// over the console text, fed in pieces.
fn run(input: &[u8], piece: usize) {
    let mut demux = Demux::new();
    let mut session = Session::new();
    let mut scanner = Scanner::new();
    let lines = input.iter().filter(|&&b| b == b'\n').count() + 1;
    let check = |events: Vec<ScanEvent>| {
        for event in events {
            match event {
                ScanEvent::Dump(d) => {
                    assert!(d.snapshot.total_blocks() <= MAX_HEAP_BLOCKS);
                    assert!(d.first_line >= 1 && d.last_line <= lines, "dump lines {}-{} of {lines}", d.first_line, d.last_line);
                }
                ScanEvent::Error(e) => assert!(e.line >= 1 && e.line <= lines, "error at line {} of {lines}: {e}", e.line),
            }
        }
    };
    for chunk in input.chunks(piece.max(1)) {
        for item in demux.push(chunk) {
            match item {
                Item::Text(text) => check(scanner.push(&text)),
                Item::Frame(frame) => {
                    if let Ok(session::Applied::Snapshot(s)) = session.advance(frame) {
                        assert!(s.total_blocks() <= MAX_HEAP_BLOCKS);
                    }
                }
                Item::Corrupt(c) => assert!(c.stream_offset < input.len() as u64),
            }
        }
    }
    check(scanner.finish());
    // The text parser alone over the raw bytes, frames and all.
    let mut whole = Scanner::new();
    check(whole.push(input));
    check(whole.finish());
}

#[test]
fn fuzz_text_parser_and_demultiplexer() {
    let runs: usize = std::env::var("HEAPSCOPE_FUZZ_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let corpus = corpus();
    let mut rng = Rng::new(0x5eed);
    let (mut panics, mut peak, mut peak_input) = (0, 0, String::new());
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for i in 0..runs + corpus.len() {
        let input = if i < corpus.len() {
            corpus[i].clone()
        } else {
            let a = &corpus[rng.below(corpus.len() as u64) as usize];
            let b = &corpus[rng.below(corpus.len() as u64) as usize];
            mutate(&mut rng, a, b)
        };
        let piece = [1, 7, 64, 4096, usize::MAX][rng.below(5) as usize];
        let (outcome, used, _) = measure(|| catch_unwind(AssertUnwindSafe(|| run(&input, piece))));
        if outcome.is_err() {
            panics += 1;
            eprintln!("panic on input {i} ({} bytes): {:?}", input.len(), String::from_utf8_lossy(&input[..input.len().min(200)]));
        }
        if used > peak {
            peak = used;
            peak_input = format!("input {i}, {} bytes", input.len());
        }
    }
    std::panic::set_hook(previous_hook);
    println!(
        "fuzz: {} runs ({} corpus inputs, {runs} mutated), {panics} panics, peak memory of one input {:.1} KiB ({peak_input})",
        runs + corpus.len(),
        corpus.len(),
        peak as f64 / 1024.0
    );
    assert_eq!(panics, 0, "inputs panicked");
    assert!(peak < MEMORY_BOUND, "an input took {peak} bytes ({peak_input})");
}

#[test]
fn issue_8_inputs_are_refused_in_little_memory() {
    let names = ["N = 10^8", "N = 4294967295", "N = 10^12", "N = 2^58+1011", "N = 10^23", "keyframe of 64 areas of 2^28 blocks"];
    let corpus = corpus();
    let hostile = &corpus[fixtures().len()..fixtures().len() + names.len()];
    for (name, input) in names.iter().zip(hostile) {
        let ((), used, _) = measure(|| run(input, 4096));
        println!("issue 8 input {name} ({} bytes): peak {:.1} KiB", input.len(), used as f64 / 1024.0);
        assert!(used < 16 << 20, "{name}: {} bytes took {used} bytes", input.len());
    }
}
