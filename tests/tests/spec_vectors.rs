//! The worked examples in `protocol/SPEC.md` are what both encoders write, byte for byte: the
//! Rust one in `heapscope-protocol` and the C one in `firmware/heapscope/hs_core.c`.
//! `SPEC_PRINT=1 cargo test -p heapscope-tests --test spec_vectors -- --nocapture` prints the
//! Rust encoder's vectors in the spec's layout.

use heapscope_protocol::wire::codec::cobs_decode;
use heapscope_protocol::wire::dump::DumpPart;
use heapscope_protocol::wire::{decode_body, encode_frame, Body, Event};
use heapscope_tests::c_core::{self, CWriter};
use heapscope_tests::spec::{busy_heap, example_heaps, hex_lines, vector_bytes, vectors, POOL_START};

#[test]
fn rust_encoder_writes_the_spec_examples() {
    let print = std::env::var_os("SPEC_PRINT").is_some();
    for (name, frame) in vectors() {
        let encoded = encode_frame(&frame);
        if print {
            println!("<!-- vector: {name} -->\n```text\n{}\n```\n", hex_lines(&encoded));
            continue;
        }
        assert_eq!(hex_lines(&vector_bytes(name)), hex_lines(&encoded), "vector {name}");
        let mut body = Vec::new();
        cobs_decode(&encoded[2..encoded.len() - 1], &mut body).unwrap();
        assert_eq!(decode_body(&body).unwrap(), frame, "vector {name} decodes to its input");
    }
}

#[test]
fn c_encoder_writes_the_spec_examples() {
    let (first, second) = example_heaps();
    for (name, frame) in vectors() {
        let mut w = CWriter::new(frame.seq);
        let ms = frame.device_ms;
        match &frame.body {
            Body::Event(Event::Mark { label }) => w.mark(ms, label),
            Body::Event(Event::ImportEnd { depth, name, ok, elapsed_us }) => w.import_end(ms, *depth, name, *ok, *elapsed_us),
            Body::Hello(h) => {
                assert_eq!(h.areas[0].pool_start, POOL_START);
                w.hello(ms, h.block_size, &h.interpreter, &h.platform, &first.areas)
            }
            Body::Keyframe(_) if name == "keyframe_busy" => w.keyframe(ms, &busy_heap()),
            Body::Keyframe(_) => w.keyframe(ms, &first),
            Body::Delta(d) => w.delta_against(ms, d.base_seq, d.chunk_blocks as u32, &first, &second),
            Body::Dump(DumpPart::Blocks(b)) => w.dump_blocks(ms, b),
            Body::Dump(DumpPart::Name { kind, address, prefix, name }) => w.dump_name(ms, kind.code(), *address, prefix, name),
            other => panic!("no C call for {other:?}"),
        }
        assert_eq!(hex_lines(&w.take()), hex_lines(&vector_bytes(name)), "C encoder, vector {name}");
    }
}

#[test]
fn c_struct_layouts_match_the_rust_declarations() {
    c_core::check_layouts();
}

#[test]
fn version_1_frames_still_decode() {
    // The keyframe example as version 1 wrote it (ATB run list, then the type codes two per
    // byte): recordings made before version 2 stay readable.
    let v1: [u8; 46] = [
        0xFF, 0x00, 0x04, 0x01, 0x02, 0x02, 0x03, 0xE2, 0x04, 0x01, 0x23, 0x10, 0x01, 0xB0, 0xDB, 0xF0, 0xFF, 0x03, 0x0C,
        0x0A, 0x09, 0xA9, 0x01, 0x41, 0x05, 0x01, 0x08, 0xC0, 0x01, 0x70, 0x50, 0x01, 0x01, 0x04, 0x03, 0x03, 0x04, 0xE0,
        0x05, 0x80, 0x78, 0x09, 0x20, 0x79, 0xFC, 0x00,
    ];
    let mut body = Vec::new();
    cobs_decode(&v1[2..v1.len() - 1], &mut body).unwrap();
    assert_eq!(body[0], 1, "a version 1 frame");
    let frame = decode_body(&body).unwrap();
    let (first, _) = example_heaps();
    assert_eq!(frame.body, Body::Keyframe(heapscope_protocol::wire::session::keyframe(&first)));
    body[0] = 3;
    let n = body.len() - 4;
    let crc = heapscope_protocol::wire::codec::crc32(&body[..n]);
    body[n..].copy_from_slice(&crc.to_le_bytes());
    let err = decode_body(&body).unwrap_err();
    assert!(err.message.contains("version 3"), "{err}");
}
