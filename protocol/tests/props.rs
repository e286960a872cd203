//! Property tests: the wire format round-trips random heaps; no input panics the demultiplexer
//! or the text scanner; a damaged frame is rejected, never decoded into a wrong snapshot.

use heapscope_protocol::synth;
use heapscope_protocol::text::Scanner;
use heapscope_protocol::wire::demux::{Demux, Item};
use heapscope_protocol::wire::session::{self, Session, Update};
use heapscope_protocol::wire::{encode_frame, Body, Frame};
use heapscope_protocol::Snapshot;
use proptest::prelude::*;

/// Pushes a stream through a demultiplexer and a session; returns snapshots and corrupt count.
fn decode_stream(stream: &[u8], chunk: usize) -> (Vec<Snapshot>, u64) {
    let mut demux = Demux::new();
    let mut session = Session::new();
    let mut snapshots = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        for item in demux.push(piece) {
            if let Item::Frame(frame) = item {
                if let Ok(Update::Snapshot(s)) = session.apply(&frame) {
                    snapshots.push(s);
                }
            }
        }
    }
    (snapshots, demux.stats().corrupt_frames)
}

fn frame(seq: u16, body: Body) -> Frame {
    Frame { seq, device_ms: u32::from(seq) * 100, body }
}

/// Block counts spread over sizes small to 512k, weighted towards the small and cheap.
fn blocks() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 1usize..2_000,
        3 => 2_000usize..70_000,
        1 => 70_000usize..=524_288,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn keyframes_and_deltas_round_trip(seed in any::<u64>(), total in blocks(), areas in 1usize..=4,
                                       wide in any::<bool>(), chunk_kb in 1usize..=64, split in 1usize..=4096) {
        let block_size = if wide { 32 } else { 16 };
        let first = synth::snapshot(seed, block_size, areas, total);
        let second = synth::mutate(&first, seed ^ 1, 1 + total / 500);
        let chunk_blocks = chunk_kb * 4;
        let mut stream = b"boot text\r\n".to_vec();
        stream.extend(encode_frame(&frame(1, Body::Keyframe(session::keyframe(&first)))));
        stream.extend(b">>> ");
        stream.extend(encode_frame(&frame(2, Body::Delta(session::delta(&first, 1, &second, chunk_blocks)))));
        let (snapshots, corrupt) = decode_stream(&stream, split);
        prop_assert_eq!(corrupt, 0);
        prop_assert_eq!(snapshots.len(), 2);
        prop_assert!(snapshots[0] == first, "keyframe decodes to its input");
        prop_assert!(snapshots[1] == second, "delta rebuilds the changed heap");
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096), split in 1usize..64) {
        let mut demux = Demux::new();
        let mut scanner = Scanner::new();
        for piece in bytes.chunks(split) {
            demux.push(piece);
            scanner.push(piece);
        }
        scanner.finish();
        // A frame start followed by random bytes, too.
        let mut framed = vec![0xFF, 0x00];
        framed.extend(&bytes);
        framed.push(0);
        let items = Demux::new().push(&framed);
        prop_assert!(!items.iter().any(|i| matches!(i, Item::Frame(_))) || bytes.len() >= 12);
    }

    #[test]
    fn random_text_lines_never_panic_the_scanner(lines in proptest::collection::vec(
        prop_oneof![
            Just("GC: total: 2048, used: 64, free: 1984".to_string()),
            Just(" No. of 1-blocks: 0, 2-blocks: 0, max blk sz: 4, max free sz: 124".to_string()),
            Just("GC memory layout; from 1000:".to_string()),
            Just("       (3 lines all free)".to_string()),
            "[0-9a-f]{1,8}: [.=hTLDSAFBMm]{0,70}",
            "[ -~]{0,40}",
        ], 0..40)) {
        let text = lines.join("\n");
        let (dumps, _errors) = heapscope_protocol::text::parse(text.as_bytes());
        for d in dumps {
            prop_assert!(d.first_line <= d.last_line);
        }
    }

    #[test]
    fn a_flipped_bit_never_yields_a_wrong_snapshot(seed in any::<u64>(), total in 1usize..20_000, bit in any::<usize>()) {
        let snapshot = synth::snapshot(seed, 16, 1, total);
        let mut encoded = encode_frame(&frame(5, Body::Keyframe(session::keyframe(&snapshot))));
        let bit = bit % (encoded.len() * 8);
        encoded[bit / 8] ^= 1 << (bit % 8);
        let mut demux = Demux::new();
        let mut session = Session::new();
        let mut items = demux.push(&encoded);
        items.extend(demux.push(b"\r\n"));
        for item in items {
            if let Item::Frame(f) = item {
                // Only possible if the flip hit nothing that matters; then it must be exact.
                if let Ok(Update::Snapshot(s)) = session.apply(&f) {
                    prop_assert!(s == snapshot, "a damaged frame decoded into a different snapshot");
                }
            }
        }
        // Flips inside the body (not the start marker, not turning a byte into the end
        // marker) are caught as corrupt frames.
        let flipped_byte = encoded[bit / 8];
        if bit / 8 >= 2 && bit / 8 < encoded.len() - 1 && flipped_byte != 0 {
            prop_assert!(demux.stats().corrupt_frames >= 1);
            prop_assert_eq!(demux.stats().frames, 0);
        }
    }
}

#[test]
fn the_largest_heap_round_trips() {
    // 512k blocks in four areas: an 8 MB PSRAM heap.
    let first = synth::snapshot(42, 16, 4, 524_288);
    assert_eq!(first.total_blocks(), 524_288);
    let second = synth::mutate(&first, 43, 2_000);
    let mut stream = encode_frame(&frame(1, Body::Keyframe(session::keyframe(&first))));
    stream.extend(encode_frame(&frame(2, Body::Delta(session::delta(&first, 1, &second, 256)))));
    let (snapshots, corrupt) = decode_stream(&stream, 4096);
    assert_eq!(corrupt, 0);
    assert!(snapshots[0] == first);
    assert!(snapshots[1] == second);
}

#[test]
fn mutation_changes_the_heap() {
    let first = synth::snapshot(42, 16, 4, 524_288);
    let second = synth::mutate(&first, 43, 2_000);
    let changed: usize = first
        .areas
        .iter()
        .zip(&second.areas)
        .map(|(a, b)| a.kinds().iter().zip(b.kinds().iter()).filter(|(x, y)| x != y).count())
        .sum();
    eprintln!("changed blocks: {changed}");
    assert!(changed > 1_000, "{changed} blocks changed");
}
