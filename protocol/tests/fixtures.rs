//! Every real `mem_info` output in `testdata/mem_info/` (copied from shared/fixtures) parses,
//! and the layout agrees block for block with the device's own summary line.

use heapscope_protocol::metrics;
use heapscope_protocol::model::{GcFigures, MemStats, StackFigures};
use heapscope_protocol::text::{parse, Dump, ScanEvent, Scanner};

struct Expected {
    file: &'static str,
    /// (pool start, blocks) per area; empty for summary-only dumps.
    areas: &'static [(u64, usize)],
    block_size: Option<u32>,
    /// The device's own `GC:` and `No. of 1-blocks` figures, as printed in the file:
    /// total, used, free, 1-blocks, 2-blocks, max blk sz, max free sz.
    gc: [u64; 7],
    stack: (u64, Option<u64>),
    mem: Option<[u64; 3]>,
    max_new_split: Option<u64>,
}

const FIXTURES: &[Expected] = &[
    Expected {
        file: "seed_esp32_v1.11_mem_info.txt",
        areas: &[],
        block_size: None,
        gc: [119360, 6192, 113168, 48, 11, 264, 7065],
        stack: (736, Some(15360)),
        mem: None,
        max_new_split: None,
    },
    Expected {
        file: "seed_esp32_v1.11_mem_info1_int.txt",
        areas: &[(0x3ffc2db0, 7460)],
        block_size: Some(16),
        gc: [119360, 7088, 112272, 69, 23, 264, 7007],
        stack: (752, Some(15360)),
        mem: None,
        max_new_split: None,
    },
    Expected {
        file: "seed_esp32_v1.11_mem_info1_str.txt",
        areas: &[(0x3ffc2db0, 7460)],
        block_size: Some(16),
        gc: [119360, 6864, 112496, 65, 21, 264, 7023],
        stack: (752, Some(15360)),
        mem: None,
        max_new_split: None,
    },
    Expected {
        file: "seed_esp8266_d1mini_mem_info.txt",
        areas: &[],
        block_size: None,
        gc: [37952, 5024, 32928, 17, 7, 264, 2045],
        stack: (2112, Some(8192)),
        mem: None,
        max_new_split: None,
    },
    Expected {
        file: "seed_esp8266_d1mini_mem_info1.txt",
        areas: &[(0x3ffeec00, 2372)],
        block_size: Some(16),
        gc: [37952, 5936, 32016, 31, 23, 264, 1989],
        stack: (2128, Some(8192)),
        mem: None,
        max_new_split: None,
    },
    Expected {
        file: "src129_i686_mem_info1_pool119360.txt",
        areas: &[(0x9e94960, 7460)],
        block_size: Some(16),
        gc: [119360, 3264, 116096, 47, 7, 50, 7197],
        stack: (640, Some(40000)),
        mem: Some([8432, 3420, 3420]),
        max_new_split: None,
    },
    Expected {
        file: "src129_i686_splitauto_mem_info.txt",
        areas: &[],
        block_size: None,
        gc: [56000, 672, 55328, 11, 6, 11, 3446],
        stack: (624, Some(40000)),
        mem: Some([1756, 598, 1426]),
        max_new_split: Some(262144),
    },
    Expected {
        file: "src129_i686_splitauto_two_areas_mem_info1.txt",
        areas: &[(0x93df3b0, 3500), (0x93ed420, 3500)],
        block_size: Some(16),
        gc: [112000, 47904, 64096, 140, 5, 61, 2621],
        stack: (640, Some(40000)),
        mem: Some([71329, 69039, 69087]),
        max_new_split: Some(262144),
    },
    Expected {
        file: "stock129_x64_mem_info.txt",
        areas: &[],
        block_size: None,
        gc: [2072832, 1088, 2071744, 13, 4, 9, 64735],
        stack: (784, Some(80000)),
        mem: Some([3124, 958, 2474]),
        max_new_split: None,
    },
    Expected {
        file: "stock129_x64_mem_info1_120K.txt",
        areas: &[(0x55e6d0feee20, 3792)],
        block_size: Some(32),
        gc: [121344, 5088, 116256, 46, 8, 50, 3607],
        stack: (816, Some(80000)),
        mem: Some([14518, 5362, 5362]),
        max_new_split: None,
    },
    Expected {
        file: "stock129_x64_mem_info1_2M.txt",
        areas: &[(0x7f56a6804f00, 64776)],
        block_size: Some(32),
        gc: [2072832, 1088, 2071744, 13, 4, 9, 64735],
        stack: (800, Some(80000)),
        mem: Some([3125, 959, 2474]),
        max_new_split: None,
    },
    Expected {
        file: "v111_i686_mem_info1_pool119360.txt",
        areas: &[(0x9903940, 7460)],
        block_size: Some(16),
        gc: [119360, 2864, 116496, 35, 7, 50, 7229],
        stack: (656, Some(40000)),
        mem: Some([6796, 2732, 2732]),
        max_new_split: None,
    },
];

fn read(file: &str) -> Vec<u8> {
    let path = format!("{}/../testdata/mem_info/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn figures(gc: [u64; 7]) -> GcFigures {
    GcFigures {
        total: gc[0],
        used: gc[1],
        free: gc[2],
        one_blocks: gc[3],
        two_blocks: gc[4],
        max_block: gc[5],
        max_free: gc[6],
    }
}

fn only_dump(file: &str, text: &[u8]) -> Dump {
    let (mut dumps, errors) = parse(text);
    assert!(errors.is_empty(), "{file}: {errors:?}");
    assert_eq!(dumps.len(), 1, "{file}: one dump");
    dumps.remove(0)
}

#[test]
fn every_fixture_agrees_with_its_own_summary_line() {
    for exp in FIXTURES {
        let dump = only_dump(exp.file, &read(exp.file));
        assert!(dump.warnings.is_empty(), "{}: {:?}", exp.file, dump.warnings);
        let snap = &dump.snapshot;
        let reported = snap.reported.gc.expect("GC line");
        assert_eq!(reported, figures(exp.gc), "{}: reported figures", exp.file);
        assert_eq!(snap.reported.stack, Some(StackFigures { used: exp.stack.0, limit: exp.stack.1 }), "{}", exp.file);
        assert_eq!(snap.reported.mem, exp.mem.map(|[total, current, peak]| MemStats { total, current, peak }), "{}", exp.file);
        assert_eq!(snap.reported.max_new_split, exp.max_new_split, "{}", exp.file);

        let areas: Vec<_> = snap.areas.iter().map(|a| (a.pool_start(), a.blocks())).collect();
        assert_eq!(areas, exp.areas, "{}: areas", exp.file);
        assert_eq!(snap.block_size(), exp.block_size, "{}: block size", exp.file);
        if let Some(bs) = exp.block_size {
            // The blocks of the layout add up to the reported pool size.
            assert_eq!(snap.total_blocks() as u64 * u64::from(bs), exp.gc[0], "{}: blocks x size = total", exp.file);
            let m = metrics::compute(snap);
            assert_eq!(m.recomputed, figures(exp.gc), "{}: figures recomputed from the layout", exp.file);
            assert_eq!(m.used_bytes, exp.gc[1], "{}: used bytes", exp.file);
            assert_eq!(m.free_bytes, exp.gc[2], "{}: free bytes", exp.file);
            assert_eq!(m.largest_free_bytes, exp.gc[6] * u64::from(bs), "{}: largest free", exp.file);
            let type_bytes: u64 = m.types.iter().map(|t| t.bytes).sum();
            assert_eq!(type_bytes, exp.gc[1], "{}: bytes by type add up to used", exp.file);
        }
    }
}

#[test]
fn the_seed_heap_in_detail() {
    let dump = only_dump("seed", &read("seed_esp32_v1.11_mem_info1_int.txt"));
    let m = metrics::compute(&dump.snapshot);
    // `MDhhhBMMDDBM...`: the first row begins with a module, a dict, three others.
    let types: Vec<_> = dump.snapshot.areas[0].types()[..5].iter().map(|t| t.name()).collect();
    assert_eq!(types, ["module", "dict", "other", "other", "other"]);
    // 7007 free blocks in one run, 7017 free in all (112272 / 16).
    assert_eq!(m.free_bytes / 16, 7017);
    assert!((m.fragmentation - (1.0 - 7007.0 / 7017.0)).abs() < 1e-12);
    let modules = m.types.iter().find(|t| t.obj_type.name() == "module").unwrap();
    assert_eq!(modules.allocations, 4);
}

#[test]
fn crlf_and_chunked_streams_give_the_same_dumps() {
    for exp in FIXTURES {
        let text = read(exp.file);
        let whole = only_dump(exp.file, &text);
        let crlf: Vec<u8> = text.iter().flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }).collect();
        assert_eq!(only_dump(exp.file, &crlf).snapshot, whole.snapshot, "{}: CRLF", exp.file);
        for chunk in [1, 2, 5, 63, 64, 65] {
            let mut scanner = Scanner::new();
            let mut events = Vec::new();
            for piece in text.chunks(chunk) {
                events.extend(scanner.push(piece));
            }
            events.extend(scanner.finish());
            let [ScanEvent::Dump(d)] = events.as_slice() else { panic!("{}: chunk {chunk}: {events:?}", exp.file) };
            assert_eq!(d.snapshot, whole.snapshot, "{}: chunk {chunk}", exp.file);
        }
    }
}

#[test]
fn dumps_are_found_among_console_text_and_prompts() {
    let mut log = b"MicroPython v1.29.0 on 2026-07-05; ESP32 module with ESP32\r\nType \"help()\" for more information.\r\n>>> ".to_vec();
    let mut expected = Vec::new();
    for exp in FIXTURES {
        log.extend(b"import micropython; micropython.mem_info(1)\r\n");
        log.extend(read(exp.file));
        log.extend(b">>> print('10:30 started')\r\n10:30 started\r\n>>> ");
        expected.push(only_dump(exp.file, &read(exp.file)).snapshot);
    }
    let mut scanner = Scanner::new();
    let mut found = Vec::new();
    for piece in log.chunks(37) {
        for event in scanner.push(piece) {
            match event {
                ScanEvent::Dump(d) => found.push(d.snapshot),
                ScanEvent::Error(e) => panic!("{e}"),
            }
        }
    }
    // Every dump is yielded as soon as the prompt after it arrives, before the stream ends.
    assert_eq!(found.len(), expected.len());
    assert_eq!(found, expected);
    assert!(scanner.finish().is_empty());
}

/// The raw-REPL transcript holds Python bytes reprs; the stdout of `mem_info()` inside it ends
/// with the raw REPL's `\x04`, not a newline.
#[test]
fn raw_repl_output_is_scanned() {
    let transcript = String::from_utf8(read("stock129_x64_rawrepl_pty.txt")).unwrap();
    let line = transcript.lines().find(|l| l.starts_with("raw-exec-stdout")).unwrap();
    let repr = line.split_once("b'").unwrap().1.trim_end_matches('\'');
    let bytes = unescape_python_bytes(repr);
    assert!(bytes.ends_with(b"\x04"));
    let mut scanner = Scanner::new();
    let events = scanner.push(&bytes);
    let [ScanEvent::Dump(d)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(d.snapshot.reported.gc, Some(figures([2072832, 1216, 2071616, 13, 3, 9, 64729])));
    assert_eq!((d.first_line, d.last_line), (2, 5));
}

fn unescape_python_bytes(repr: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = repr.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c as u8);
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&hex, 16).unwrap());
            }
            Some(other) => out.push(other as u8),
            None => {}
        }
    }
    out
}

#[test]
fn old_and_new_offset_eras_wrap_and_absolute() {
    // v1.8-v1.19 print `%05x` of the offset masked to 20 bits: a 2 MB heap wraps past 1 MiB.
    // As gc.c prints it: the free run from block 1 to the last block is abbreviated from the
    // second row on, and the dump resumes at `run_end & ~63`.
    let mut text = String::from("GC: total: 2097152, used: 32, free: 2097120\n No. of 1-blocks: 2, 2-blocks: 0, max blk sz: 1, max free sz: 131070\nGC memory layout; from 3f800000:\n");
    text.push_str(&format!("00000: h{}\n", ".".repeat(63)));
    text.push_str("       (2046 lines all free)\n");
    text.push_str(&format!("ffc00: {}h\n", ".".repeat(63)));
    let dump = only_dump("wrapped", text.as_bytes());
    assert!(dump.warnings.is_empty(), "{:?}", dump.warnings);
    assert_eq!(dump.snapshot.total_blocks(), 131072);

    // Before v1.8.1: tails are `t` and offsets are the absolute address, masked.
    let text = "GC: total: 2048, used: 64, free: 1984\n No. of 1-blocks: 0, 2-blocks: 0, max blk sz: 4, max free sz: 124\nGC memory layout; from 20001000:\n01000: httt............................................................\n01400: ................................................................\n";
    let dump = only_dump("absolute", text.as_bytes());
    assert!(dump.warnings.is_empty(), "{:?}", dump.warnings);
    assert_eq!(metrics::compute(&dump.snapshot).recomputed.max_block, 4);
}

#[test]
fn disagreements_are_warnings_naming_the_line() {
    // The device says 6 used blocks; the layout has 5.
    let text = "GC: total: 1024, used: 96, free: 928\n No. of 1-blocks: 1, 2-blocks: 0, max blk sz: 4, max free sz: 59\nGC memory layout; from 1000:\n00000000: h====...........................................................\n";
    let dump = only_dump("mismatch", text.as_bytes());
    let messages: Vec<_> = dump.warnings.iter().map(|w| (w.line, w.message.as_str())).collect();
    assert!(messages.iter().any(|(l, m)| *l == 1 && m.contains("used bytes 96") && m.contains("80")), "{messages:?}");
    assert!(messages.iter().any(|(l, m)| *l == 2 && m.contains("1-block")), "{messages:?}");
    // Both versions are kept: the layout as the area, the device's word as reported.
    assert_eq!(dump.snapshot.reported.gc.unwrap().used, 96);
    assert_eq!(metrics::compute(&dump.snapshot).used_bytes, 80);
}

#[test]
fn rendered_mem_info_is_the_device_text_byte_for_byte() {
    // Every v1.20+ layout dump (8-digit offsets, `\n` line ends from the unix port): the
    // emulation renders the parsed snapshot back to exactly what the interpreter printed.
    let mut checked = 0;
    for file in [
        "src129_i686_mem_info1_pool119360.txt",
        "src129_i686_splitauto_two_areas_mem_info1.txt",
        "stock129_x64_mem_info1_120K.txt",
        "stock129_x64_mem_info1_2M.txt",
    ] {
        let text = std::fs::read_to_string(format!("{}/../testdata/mem_info/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let dump = only_dump(file, text.as_bytes());
        assert!(dump.snapshot.has_layout(), "{file}");
        let rendered = heapscope_protocol::text::render_mem_info(&dump.snapshot);
        assert_eq!(rendered, text, "{file}");
        checked += 1;
    }
    assert_eq!(checked, 4);
}
