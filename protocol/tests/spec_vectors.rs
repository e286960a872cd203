//! The worked examples in `protocol/SPEC.md` are what the encoder produces, byte for byte, and
//! decode back to their inputs. `SPEC_PRINT=1 cargo test --test spec_vectors -- --nocapture`
//! prints the vectors in the spec's layout.

use heapscope_protocol::model::{GcFigures, Reported, Snapshot, StackFigures};
use heapscope_protocol::synth;
use heapscope_protocol::wire::codec::cobs_decode;
use heapscope_protocol::wire::session::{self, standard_type_names};
use heapscope_protocol::wire::{decode_body, encode_frame, AreaExtent, Body, Event, Frame, Hello};

fn tiny_heap(pattern: &str) -> Snapshot {
    Snapshot { areas: vec![synth::pattern_area(0x3FFC_2DB0, 16, pattern)], reported: Reported::default() }
}

/// The spec's examples: name and frame.
fn vectors() -> Vec<(&'static str, Frame)> {
    let mut first = tiny_heap("h=..D===S...");
    first.reported = Reported {
        gc: Some(GcFigures { total: 192, used: 112, free: 80, one_blocks: 1, two_blocks: 1, max_block: 4, max_free: 3 }),
        stack: Some(StackFigures { used: 736, limit: Some(15360) }),
        ..Reported::default()
    };
    let second = tiny_heap("h=..D===....");
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
                    areas: vec![AreaExtent { pool_start: 0x3FFC_2DB0, blocks: 12 }],
                    type_names: standard_type_names(),
                }),
            },
        ),
        ("keyframe", Frame { seq: 2, device_ms: 1250, body: Body::Keyframe(session::keyframe(&first)) }),
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

fn hex_lines(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|c| c.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The hex block that follows `<!-- vector: NAME -->` in SPEC.md.
fn spec_vector(spec: &str, name: &str) -> Vec<u8> {
    let marker = format!("<!-- vector: {name} -->");
    let at = spec.find(&marker).unwrap_or_else(|| panic!("SPEC.md has no {marker}"));
    let block = &spec[at + marker.len()..];
    let start = block.find("```text\n").expect("hex block after the marker") + "```text\n".len();
    let end = block[start..].find("```").expect("end of hex block");
    block[start..start + end]
        .split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("{name}: bad hex {h:?}")))
        .collect()
}

#[test]
fn spec_examples_are_what_the_encoder_writes() {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/SPEC.md")).expect("protocol/SPEC.md");
    let print = std::env::var_os("SPEC_PRINT").is_some();
    for (name, frame) in vectors() {
        let encoded = encode_frame(&frame);
        if print {
            println!("<!-- vector: {name} -->\n```text\n{}\n```\n", hex_lines(&encoded));
            continue;
        }
        assert_eq!(hex_lines(&spec_vector(&spec, name)), hex_lines(&encoded), "vector {name}");
        let mut body = Vec::new();
        cobs_decode(&encoded[2..encoded.len() - 1], &mut body).unwrap();
        assert_eq!(decode_body(&body).unwrap(), frame, "vector {name} decodes to its input");
    }
}
