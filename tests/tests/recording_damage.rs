//! Single bit flips anywhere in a recording: nothing panics, every snapshot whose record (and
//! the chain of deltas it decodes from) is undamaged is kept and rebuilds exactly, and what is
//! lost is counted.

use std::sync::OnceLock;

use heapscope::entry::{Entry, SegmentReason, Source};
use heapscope::recording::{Recording, RecordingWriter, Stored, Written};
use heapscope_protocol::wire::Event;
use heapscope_protocol::{synth, Snapshot};
use heapscope_tests::cli::{json, run};
use heapscope_tests::hour::step;
use proptest::prelude::*;

struct Original {
    bytes: Vec<u8>,
    snapshots: Vec<(u64, Snapshot)>,
    places: Vec<Written>,
}

/// A stream recording with console text and events between its snapshots, closed (index).
fn original() -> &'static Original {
    static ORIGINAL: OnceLock<Original> = OnceLock::new();
    ORIGINAL.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("heapscope-damage-{}.hsr", std::process::id()));
        let mut w = RecordingWriter::create(&path, "{}").unwrap();
        let mut heap = synth::snapshot(5, 16, 1, 2048);
        let mut rng = synth::Rng::new(8);
        let mut snapshots = Vec::new();
        let mut places = Vec::new();
        w.append(&Entry::Segment { at: 0, reason: SegmentReason::Start, detail: "stream".into() }).unwrap();
        for i in 0..200u64 {
            let at = i * 1000 + 1;
            let written = w.append(&Entry::Snapshot { at, device_ms: Some(i as u32), source: Source::Stream, snapshot: Box::new(heap.clone()) }).unwrap();
            places.push(written.unwrap());
            snapshots.push((at, heap.clone()));
            if i % 7 == 0 {
                w.append(&Entry::Console { at: at + 1, bytes: format!("line {i}\r\n").into_bytes() }).unwrap();
            }
            if i % 30 == 0 {
                w.append(&Entry::Event { at: at + 2, device_ms: None, event: Event::Mark { label: "m".into() } }).unwrap();
            }
            heap = step(&heap, &mut rng, 6);
        }
        w.finish(200_000).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        Original { bytes, snapshots, places }
    })
}

/// The snapshots a flip at `byte` must cost: the one whose record holds it and the deltas after
/// it up to the next keyframe.
fn must_lose(o: &Original, byte: usize) -> std::ops::Range<usize> {
    let end_of = |offset: u64| {
        let at = offset as usize + 2;
        offset as usize + 2 + 4 + u32::from_le_bytes(o.bytes[at..at + 4].try_into().unwrap()) as usize + 4
    };
    match o.places.iter().position(|p| (p.offset as usize..end_of(p.offset)).contains(&byte)) {
        Some(i) => i..(i + 1..o.places.len()).find(|&j| o.places[j].keyframe).unwrap_or(o.places.len()),
        None => 0..0,
    }
}

fn check(bytes: Vec<u8>, byte: usize) {
    let o = original();
    let rec = match Recording::from_bytes(bytes) {
        Ok(rec) => rec,
        Err(e) => {
            assert!(byte < 8, "only a damaged file header makes a recording unreadable, not byte {byte}: {e}");
            return;
        }
    };
    let lost = rec.verify();
    let lose = must_lose(o, byte);
    if byte >= 8 {
        // A damaged last record (the end record) reads as a recording cut short there.
        let noticed = rec.damage.stretches + lost + usize::from(rec.truncated.is_some());
        assert!(noticed >= 1, "a flip at byte {byte} is noticed and counted");
    }
    let kept: Vec<(u64, u32)> = rec
        .entries
        .iter()
        .filter_map(|e| match e {
            Stored::Snapshot { at, ordinal, .. } => Some((*at, *ordinal)),
            _ => None,
        })
        .collect();
    let mut rebuilt = 0;
    for (i, (at, snapshot)) in o.snapshots.iter().enumerate() {
        let found = kept.iter().find(|(a, _)| a == at).and_then(|(_, ordinal)| rec.snapshot(*ordinal));
        if lose.contains(&i) {
            assert!(found.is_none() || found.as_ref() == Some(snapshot), "snapshot {i} rebuilt wrong");
        } else {
            assert!(found.as_ref() == Some(snapshot), "snapshot {i} kept after a flip at byte {byte} (lost {lose:?})");
            rebuilt += 1;
        }
    }
    assert_eq!(rebuilt, o.snapshots.len() - lose.len());
    // Everything not rebuilt is counted: lost in place, or gone with a damaged stretch.
    let missing = o.snapshots.len() - kept.len();
    assert_eq!(lost + missing, lose.len(), "losses counted for a flip at byte {byte}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_single_bit_flip_loses_only_what_it_hit(bit in 0usize..usize::MAX) {
        let o = original();
        let bit = bit % (o.bytes.len() * 8);
        let mut bytes = o.bytes.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        check(bytes, bit / 8);
    }

    #[test]
    fn the_demo_recording_survives_any_single_bit_flip(bit in 0usize..usize::MAX) {
        let demo = include_bytes!("../../tool/assets/demo.hsr");
        let bit = bit % (demo.len() * 8);
        let mut bytes = demo.to_vec();
        bytes[bit / 8] ^= 1 << (bit % 8);
        if let Ok(rec) = Recording::from_bytes(bytes) {
            let lost = rec.verify();
            // A version-1 file has no record marks: a flip may cost more than its record, but
            // never everything after it, and it is always counted.
            prop_assert!(rec.damage.stretches + lost + rec.truncated.iter().count() >= 1 || bit / 8 < 8);
            prop_assert!(rec.snapshot_count() - lost <= 47);
        }
    }
}

#[test]
fn every_byte_of_the_recording_flipped_once() {
    let o = original();
    // One flip per stride covers headers, bodies, CRCs and the index; every byte of the end.
    for byte in (0..o.bytes.len()).step_by(97).chain(o.bytes.len() - 24..o.bytes.len()) {
        let mut bytes = o.bytes.clone();
        bytes[byte] ^= 0x10;
        check(bytes, byte);
    }
}

/// What a user sees of a damaged delta: `export --json` keeps one entry per snapshot (`null`
/// for each lost one, so entries stay in step with the timeline) and `inspect` says where.
#[test]
fn the_cli_keeps_lost_snapshots_in_place_and_names_the_damage() {
    let o = original();
    let victim = (1..o.places.len()).find(|&i| !o.places[i].keyframe).unwrap();
    let byte = o.places[victim].offset as usize + 20;
    let mut bytes = o.bytes.clone();
    bytes[byte] ^= 0x10;
    let path = std::env::temp_dir().join(format!("heapscope-damaged-cli-{}.hsr", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let file = path.to_str().unwrap();

    let v = json(&run(&["export", "--json", file]));
    let snapshots = v["snapshots"].as_array().unwrap();
    assert_eq!(snapshots.len(), o.snapshots.len(), "one entry per snapshot recorded");
    let lost: Vec<usize> = (0..snapshots.len()).filter(|&i| snapshots[i].is_null()).collect();
    assert_eq!(lost, must_lose(o, byte).collect::<Vec<_>>());
    let timeline_used = |i: usize| v["timeline"].as_array().unwrap().iter().filter(|r| r["kind"] == "snapshot").nth(i).unwrap()["used"].clone();
    assert_eq!(snapshots[victim - 1]["metrics"]["used_bytes"], timeline_used(victim - 1), "kept entries are in place");

    let out = run(&["inspect", file]);
    let text = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_file(&path);
    assert!(text.contains(&format!("{} snapshots cannot be rebuilt", lost.len())), "{text}");
    assert!(
        text.contains(&format!("the first snapshot that cannot be rebuilt: snapshot {}, its record at byte {}", victim + 1, o.places[victim].offset)),
        "{text}"
    );
}
