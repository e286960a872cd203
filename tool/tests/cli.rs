//! The `heapscope` binary as a user runs it: output, JSON shape, exit codes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn heapscope(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run heapscope");
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or_default()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn fixture(name: &str) -> String {
    format!("{}/../testdata/mem_info/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn inspect_json_of_a_layout_dump() {
    let v = json(&heapscope(&["inspect", "--json", &fixture("src129_i686_splitauto_two_areas_mem_info1.txt")], None));
    assert_eq!(v["block_size"], 16);
    let areas = v["areas"].as_array().unwrap();
    assert_eq!(areas.len(), 2);
    assert_eq!(areas[0]["pool_start"], "0x93df3b0");
    assert_eq!(areas[1]["pool_start"], "0x93ed420");
    for a in areas {
        assert_eq!(a["blocks"], 3500);
        let sum = ["free_blocks", "head_blocks", "tail_blocks"].iter().map(|k| a[k].as_u64().unwrap()).sum::<u64>();
        assert_eq!(sum, 3500, "kinds add up per area");
    }
    let r = &v["reported"];
    assert_eq!((r["total"].as_u64(), r["used"].as_u64(), r["free"].as_u64()), (Some(112000), Some(47904), Some(64096)));
    assert_eq!(r["max_new_split"], 262144);
    let m = &v["metrics"];
    assert_eq!(m["used_bytes"], 47904);
    assert_eq!(m["free_bytes"], 64096);
    assert_eq!(m["largest_free_bytes"], 2621 * 16);
    let f = m["fragmentation"].as_f64().unwrap();
    assert!((f - (1.0 - 2621.0 * 16.0 / 64096.0)).abs() < 1e-9, "{f}");
    let type_bytes: u64 = m["types"].as_object().unwrap().values().map(|b| b.as_u64().unwrap()).sum();
    assert_eq!(type_bytes, 47904);
    assert!(m["types"]["bytearray"].as_u64().unwrap() > 0, "the A blocks are bytearrays");
    assert_eq!(v["warnings"].as_array().unwrap().len(), 0);
}

#[test]
fn inspect_json_of_a_summary_has_no_block_size() {
    let v = json(&heapscope(&["inspect", "--json", &fixture("stock129_x64_mem_info.txt")], None));
    assert!(v.get("block_size").is_none());
    assert_eq!(v["areas"].as_array().unwrap().len(), 0);
    assert_eq!(v["reported"]["stack_limit"], 80000);
    assert_eq!(v["reported"]["max_new_split"], serde_json::Value::Null);
    assert_eq!(v["metrics"]["source"], "summary");
}

#[test]
fn inspect_reads_stdin_and_reports_every_dump_with_all() {
    let mut log = Vec::new();
    for name in ["seed_esp32_v1.11_mem_info.txt", "seed_esp32_v1.11_mem_info1_int.txt", "stock129_x64_mem_info1_2M.txt"] {
        log.extend(b">>> micropython.mem_info(1)\r\n");
        log.extend(std::fs::read(fixture(name)).unwrap());
    }
    log.extend(b">>> ");
    let v = json(&heapscope(&["inspect", "--json", "--all", "-"], Some(&log)));
    let dumps = v.as_array().unwrap();
    assert_eq!(dumps.len(), 3);
    assert_eq!(dumps[1]["areas"][0]["blocks"], 7460);
    assert_eq!(dumps[2]["block_size"], 32);
    // Without --all: the last dump only.
    let last = json(&heapscope(&["inspect", "--json", "-"], Some(&log)));
    assert_eq!(last["block_size"], 32);

    let text = heapscope(&["inspect", "--all", "-"], Some(&log));
    let stdout = String::from_utf8(text.stdout).unwrap();
    assert!(stdout.contains("dump 2 of 3"), "{stdout}");
    assert!(stdout.contains("largest free       112,112 B"), "{stdout}");
}

#[test]
fn malformed_input_exits_2_naming_line_and_column() {
    let text = b"hello\nGC: total: 2048, used: 64, free: 1984\n No. of 1-blocks: 0, 2-blocks: 0, max blk sz: 4, max free sz: 124\nGC memory layout; from 1000:\n00000000: h==x\n";
    let out = heapscope(&["inspect", "-"], Some(text));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("-:5:14: malformed heap layout row"), "{err}");
}

#[test]
fn no_dump_exits_2_and_missing_file_exits_1() {
    let out = heapscope(&["inspect", "-"], Some(b"just a program printing\n"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no micropython.mem_info() output found"));
    let out = heapscope(&["inspect", "/no/such/file.txt"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.txt"));
}

#[test]
fn help_reads_well() {
    let out = heapscope(&["--help"], None);
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("why a 582-byte allocation fails"), "{help}");
    assert!(help.contains("inspect"));
    assert!(help.contains("Exit codes"));
}

/// Snapshots the device skipped for its line budget: kept in the recording, counted by
/// `inspect`, listed by `export`, and a marker on the TUI timeline.
#[test]
fn skipped_snapshots_are_kept_counted_and_shown() {
    use heapscope::entry::{Entry, Source};
    use heapscope::recording::{Recording, RecordingWriter};
    use heapscope::tui::history::{History, MarkerKind};
    use heapscope_protocol::wire::Event;
    let path = std::env::temp_dir().join(format!("heapscope-cli-{}-skipped.hsr", std::process::id()));
    let mut w = RecordingWriter::create(&path, "{}").unwrap();
    let heap = heapscope_protocol::synth::snapshot(1, 16, 1, 4096);
    for i in 0..3u64 {
        w.append(&Entry::Snapshot { at: i * 1000, device_ms: Some(i as u32), source: Source::Stream, snapshot: Box::new(heap.clone()) }).unwrap();
        w.append(&Entry::Event { at: i * 1000 + 1, device_ms: Some(i as u32), event: Event::Skipped { count: 4 } }).unwrap();
    }
    w.finish(3000).unwrap();
    let file = path.display().to_string();
    let v = json(&heapscope(&["inspect", "--json", &file], None));
    assert_eq!(v["recording"]["skipped_snapshots"], 12, "{v}");
    let text = String::from_utf8(heapscope(&["inspect", &file], None).stdout).unwrap();
    assert!(text.contains("skipped 12 snapshots"), "{text}");
    let csv = String::from_utf8(heapscope(&["export", "--csv", &file], None).stdout).unwrap();
    assert_eq!(csv.matches("Skipped { count: 4 }").count(), 3, "{csv}");
    let history = History::from_recording(Recording::open(&path).unwrap());
    let skipped: Vec<_> = history.markers.iter().filter(|m| m.kind == MarkerKind::Skipped).collect();
    assert_eq!(skipped.len(), 3);
    assert!(skipped[0].label.contains("4 snapshots skipped"), "{}", skipped[0].label);
    let _ = std::fs::remove_file(&path);
}
