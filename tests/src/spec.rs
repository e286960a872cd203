//! The worked examples of `protocol/SPEC.md`: their inputs, and the bytes the spec shows.

use heapscope_protocol::model::{GcFigures, Reported, Snapshot, StackFigures};
use heapscope_protocol::synth;
use heapscope_protocol::wire::session::{self, standard_type_names};
use heapscope_protocol::wire::dump::{DumpBlocks, DumpPart, NameKind};
use heapscope_protocol::wire::{AreaExtent, Body, Event, Frame, Hello};

pub const SPEC: &str = include_str!("../../protocol/SPEC.md");

/// The pool start every example uses: the NodeMCU-32S heap of the seed fixtures.
pub const POOL_START: u64 = 0x3FFC_2DB0;

pub fn tiny_heap(pattern: &str) -> Snapshot {
    Snapshot { areas: vec![synth::pattern_area(POOL_START, 16, pattern)], reported: Reported::default() }
}

/// The keyframe example's heap (with figures) and the delta example's.
pub fn example_heaps() -> (Snapshot, Snapshot) {
    let mut first = tiny_heap("h=..D===S...");
    first.reported = Reported {
        gc: Some(GcFigures { total: 192, used: 112, free: 80, one_blocks: 1, two_blocks: 1, max_block: 4, max_free: 3 }),
        stack: Some(StackFigures { used: 736, limit: Some(15360) }),
        ..Reported::default()
    };
    (first, tiny_heap("h=..D===...."))
}

/// The busy keyframe example's heap: 12 blocks of small objects, sent in the compact code.
pub fn busy_heap() -> Snapshot {
    tiny_heap("hShhS=hhT..h")
}

/// The dump example's blocks: blocks 4 and 5 of the keyframe example's heap (a dict), one word
/// of every tag: its type (raw), 2 (small), pointers back to block 0 and on to block 8, three
/// zeros (a run), 7 (small).
pub fn dump_blocks_example() -> DumpBlocks {
    let words = [0x3F40_6C30u32, 2, POOL_START as u32, POOL_START as u32 + 8 * 16, 0, 0, 0, 7];
    DumpBlocks {
        word_size: 4,
        block_size: 16,
        pool_start: POOL_START,
        area_blocks: 12,
        first: 4,
        bytes: words.iter().flat_map(|w| w.to_le_bytes()).collect(),
    }
}

/// The examples: name and frame.
pub fn vectors() -> Vec<(&'static str, Frame)> {
    let (first, second) = example_heaps();
    vec![
        ("mark", Frame { seq: 1, device_ms: 1000, body: Body::Event(Event::Mark { label: "boot".into() }) }),
        (
            "hello",
            Frame {
                seq: 0,
                device_ms: 5,
                body: Body::Hello(Hello {
                    block_size: 16,
                    interpreter: "MicroPython v1.29.0".into(),
                    platform: "esp32".into(),
                    areas: vec![AreaExtent { pool_start: POOL_START, blocks: 12 }],
                    type_names: standard_type_names(),
                }),
            },
        ),
        ("dump_blocks", Frame { seq: 7, device_ms: 2000, body: Body::Dump(DumpPart::Blocks(dump_blocks_example())) }),
        (
            "dump_name",
            Frame {
                seq: 8,
                device_ms: 2000,
                body: Body::Dump(DumpPart::Name {
                    kind: NameKind::Global,
                    address: POOL_START + 4 * 16,
                    prefix: "app".into(),
                    name: "readings".into(),
                }),
            },
        ),
        ("keyframe", Frame { seq: 2, device_ms: 1250, body: Body::Keyframe(session::keyframe(&first)) }),
        ("keyframe_busy", Frame { seq: 5, device_ms: 1750, body: Body::Keyframe(session::keyframe(&busy_heap())) }),
        ("delta", Frame { seq: 3, device_ms: 1500, body: Body::Delta(session::delta(&first, 2, &second, 4)) }),
        (
            "import_end",
            Frame {
                seq: 4,
                device_ms: 1600,
                body: Body::Event(Event::ImportEnd { depth: 1, name: "json".into(), ok: true, elapsed_us: 1234 }),
            },
        ),
    ]
}

/// Bytes as the spec prints them: upper-case hex, 16 a line.
pub fn hex_lines(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|c| c.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The hex block after `<!-- vector: NAME -->` in SPEC.md.
pub fn vector_bytes(name: &str) -> Vec<u8> {
    let marker = format!("<!-- vector: {name} -->");
    let at = SPEC.find(&marker).unwrap_or_else(|| panic!("SPEC.md has no {marker}"));
    let block = &SPEC[at + marker.len()..];
    let start = block.find("```text\n").expect("hex block after the marker") + "```text\n".len();
    let end = block[start..].find("```").expect("end of hex block");
    block[start..start + end]
        .split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("{name}: bad hex {h:?}")))
        .collect()
}
