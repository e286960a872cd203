//! `heapscope dump`'s conversation with stock firmware, against scripted boards.

mod fakes;

use fakes::ScriptedLink;
use heapscope::cmd::dump::take;
use heapscope_objects::base64;

const PROMPT: &[u8] = b"raw REPL; CTRL-B to exit\r\n>";

fn reply(stdout: &str) -> Vec<u8> {
    [b"OK".as_slice(), stdout.as_bytes(), b"\x04\x04>"].concat()
}

fn layout(line: &str) -> String {
    format!(
        "GC: total: 256, used: 48, free: 208\r\n No. of 1-blocks: 1, 2-blocks: 1, max blk sz: 2, max free sz: 13\r\nGC memory layout; from 3ffb0000:\r\n00000000: {line}\r\n"
    )
}

#[test]
fn firmware_without_uctypes_is_told_and_left_at_its_prompt() {
    let no_uctypes = reply("HS nouctypes\r\n");
    let mut link = ScriptedLink::new(&[(b"\x01", PROMPT), (b"\x05A\x01", b"R\x00"), (b"\x04", &no_uctypes), (b"\x02", b"\r\n>>> ")]);
    let log = link.log.clone();
    let e = take(&mut link, &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("no `uctypes` module"), "{e}");
    assert!(log.lock().unwrap().ends_with(b"\x02"), "left the raw REPL");
}

#[test]
fn a_dump_reads_the_used_blocks_and_marks_what_changed() {
    // A list (16 B), a 2-block allocation its items point at; block 2 is freed meanwhile.
    let mut heap = vec![0u8; 48];
    heap[0..4].copy_from_slice(&0x3f40_0100u32.to_le_bytes());
    heap[12..16].copy_from_slice(&0x3ffb_0010u32.to_le_bytes());
    let probe = reply("HS ok 4\r\n");
    let names = reply("T list 1061159168\r\nM app 1073414144\r\nG app items 1073414144\r\n");
    let before = reply(&format!("{}HS free 208\r\n", layout("Lh=.............")));
    let chunk = reply(&format!("{}\r\n", base64::encode(&heap)));
    let after = reply(&layout("Lh..............").to_string());
    let mut link = ScriptedLink::new(&[
        (b"\x01", PROMPT),
        (b"\x05A\x01", b"R\x00"),
        (b"\x04", &probe),
        (b"\x04", &names),
        (b"\x04", &before),
        (b"\x04", &chunk),
        (b"\x04", &after),
        (b"\x02", b"\r\n>>> "),
    ]);
    let log = link.log.clone();
    let mut seen = Vec::new();
    let dump = take(&mut link, &mut |done, total| seen.push((done, total))).unwrap();
    assert_eq!(dump.word_size, 4);
    assert_eq!(dump.memory.len(), 1);
    assert_eq!(dump.memory[0].address, 0x3ffb_0000);
    assert_eq!(dump.memory[0].bytes, heap);
    assert_eq!(dump.areas[0].unreliable, vec![(2, 1)], "the freed tail");
    assert_eq!(dump.mem_free, Some(208));
    assert_eq!(seen, vec![(0, 48), (48, 48)]);
    let sent = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(sent.contains("(0x3ffb0000,48),"), "{sent}");
    let a = heapscope_objects::Analysis::new(&dump);
    assert_eq!(a.type_name(0), "list");
    assert_eq!(a.references(0), [1]);
    assert!(a.objects[1].unreliable);
}

#[test]
fn damaged_or_missing_dump_files_are_named_with_their_exit_codes() {
    let dir = std::env::temp_dir().join(format!("heapscope-dumpfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = heapscope_objects::synth::example().to_json();
    let bad = dir.join("bad.hsd");
    std::fs::write(&bad, good.replacen("\"base64\":\"", "\"base64\":\"*", 1)).unwrap();
    let run = |args: &[&str]| std::process::Command::new(env!("CARGO_BIN_EXE_heapscope")).args(args).output().unwrap();
    let out = run(&["objects", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.hsd") && err.contains("memory range 0") && err.contains("base64"), "{err}");
    let out = run(&["objects", dir.join("missing.hsd").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = dir.join("text.hsd");
    std::fs::write(&text, "GC: total: 1\n").unwrap();
    let out = run(&["objects", text.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a heapscope dump"));
    let _ = std::fs::remove_dir_all(&dir);
}
