//! The `heapscope` binary against the stock MicroPython interpreter on a pseudo-terminal, and
//! the errors a user meets, as a user meets them.

use std::path::PathBuf;
use std::process::Command;

use heapscope_protocol::text;
use heapscope_tests::board::PtyBoard;
use serialport::{SerialPort, TTYPort};

use heapscope_tests::cli::{heapscope, json, run, stderr};

#[test]
fn record_ten_seconds_then_inspect_agrees_with_the_interpreter() {
    let board = PtyBoard::start(&["-X", "heapsize=120K"]);
    let file = board.dir().join("ten.hsr");
    // auto: nothing is printed by itself, so after listening it polls through the raw REPL.
    let out = run(&["record", "--port", &board.port(), "-o", file.to_str().unwrap(), "--duration", "10s", "--json"]);
    let summary = json(&out);
    let snapshots = summary["snapshots"].as_u64().unwrap();
    assert!(snapshots >= 4, "{summary}\n{}", stderr(&out));
    assert_eq!(summary["sources"]["poll"].as_u64(), Some(snapshots));
    assert!(stderr(&out).contains("polling through the raw REPL"), "the switch to polling is announced: {}", stderr(&out));

    let v = json(&run(&["inspect", "--json", file.to_str().unwrap()]));
    assert_eq!(v["recording"]["closed"], true);
    assert_eq!(v["recording"]["snapshots"].as_u64(), Some(snapshots));
    // The interpreter's own last mem_info, read from the bytes it wrote.
    let (printed, _) = text::parse(board.transcript().as_bytes());
    let last = printed.last().expect("the interpreter printed dumps").snapshot.reported.gc.unwrap();
    let r = &v["last"]["reported"];
    assert_eq!(
        (r["total"].as_u64(), r["used"].as_u64(), r["free"].as_u64(), r["max_free"].as_u64(), r["one_blocks"].as_u64()),
        (Some(last.total), Some(last.used), Some(last.free), Some(last.max_free), Some(last.one_blocks))
    );
    assert_eq!(v["last"]["metrics"]["used_bytes"].as_u64(), Some(last.used));

    // And the export of the same file.
    let csv = run(&["export", "--csv", file.to_str().unwrap()]);
    assert!(csv.status.success(), "{}", stderr(&csv));
    let text = String::from_utf8(csv.stdout).unwrap();
    assert!(text.starts_with("time_s,device_ms,kind,source,used,free,largest_free,fragmentation,detail\n"));
    assert_eq!(text.lines().filter(|l| l.contains(",snapshot,poll,")).count() as u64, snapshots);
}

#[test]
fn imports_measures_a_known_allocation_within_a_block() {
    let board = PtyBoard::start(&["-X", "heapsize=120K"]);
    std::fs::write(board.dir().join("hs_empty.py"), "").unwrap();
    std::fs::write(board.dir().join("hs_buf.py"), "BUF = bytearray(10000)\n").unwrap();
    std::fs::write(board.dir().join("hs_broken.py"), "import hs_missing_dependency\n").unwrap();
    let out = run(&["imports", "--port", &board.port(), "--json", "hs_empty", "hs_buf", "hs_broken", "json"]);
    // The report is printed; the failed import makes the exit status 1.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 of 4 imports failed on the board"), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the JSON report");
    assert_eq!(v["method"], "raw-repl");
    let bs = v["block_size"].as_i64().unwrap();
    assert_eq!(bs, 32, "the stock 64-bit build");
    let rows = v["modules"].as_array().unwrap();
    let row = |name: &str| rows.iter().find(|r| r["module"] == name).unwrap_or_else(|| panic!("{name} in {v}"));
    // The module's own overhead (module object, globals, sys.modules entry) is what the empty
    // module costs; the rest is the bytearray: its object block plus 10,000 bytes in blocks.
    let truth = bs + (10_000 + bs - 1) / bs * bs;
    let measured = row("hs_buf")["retained_bytes"].as_i64().unwrap() - row("hs_empty")["retained_bytes"].as_i64().unwrap();
    eprintln!("bytearray(10000): measured {measured} B, truth {truth} B, block {bs} B");
    assert!((measured - truth).abs() <= bs, "bytearray(10000) measured {measured} B, truth {truth} B, block {bs} B\n{v}");
    let broken = row("hs_broken");
    assert_eq!(broken["ok"], false);
    assert!(broken["error"].as_str().unwrap().contains("hs_missing_dependency"), "{broken}");
    assert_eq!(row("json")["ok"], true, "the run goes on after a failed import");
    assert!(row("json")["retained_bytes"].as_i64().unwrap() > 0);
    assert!(row("json")["time_us"].as_u64().is_some());

    // The table a person reads.
    let table = run(&["imports", "--port", &board.port(), "hs_empty"]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains("module") && text.contains("retained") && text.contains("hs_empty"), "{text}");

    // No such module: the board failed what was asked.
    let out = run(&["imports", "--port", &board.port(), "nosuchmodule"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 of 1 import failed"), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nosuchmodule  failed"), "the row is still shown");

    // Imported twice: the second costs nothing, and says why; a built-in module says so too.
    std::fs::write(board.dir().join("hs_twice.py"), "X = [1, 2, 3]\n").unwrap();
    let out = run(&["imports", "--port", &board.port(), "--json", "hs_twice", "hs_twice", "json"]);
    let v = json(&out);
    let notes = |i: usize| v["modules"][i]["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert!(!notes(0).iter().any(|n| n.contains("already imported")), "{v}");
    assert!(notes(1).iter().any(|n| n.contains("already imported")), "{v}");
    assert!(notes(2).iter().any(|n| n.contains("built into the firmware")), "{v}");
    let table = run(&["imports", "--port", &board.port(), "hs_twice"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("already imported before"), "{}", String::from_utf8_lossy(&table.stdout));
}

#[test]
fn errors_a_user_meets_read_well() {
    // No such port.
    let out = run(&["record", "--port", "/dev/ttyUSB-nope", "-o", "/tmp/x.hsr", "--duration", "1s"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/dev/ttyUSB-nope: no such port"), "{}", stderr(&out));

    // Busy: another program has it open.
    let board = PtyBoard::start(&["-X", "heapsize=120K"]);
    let holder = serialport::new(board.port(), 115_200).open().expect("the first opener gets it");
    let out = run(&["imports", "--port", &board.port(), "json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is busy: another program has it open"), "{}", stderr(&out));
    drop(holder);

    // Not a MicroPython REPL: a port where nothing answers.
    let (_master, silent) = TTYPort::pair().unwrap();
    let name = silent.name().unwrap();
    let out = run(&["imports", "--port", &name, "json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a MicroPython REPL"), "{}", stderr(&out));

    // A recording that is not one; a flash image that is not one.
    let junk = std::env::temp_dir().join(format!("heapscope-junk-{}.bin", std::process::id()));
    std::fs::write(&junk, b"hello").unwrap();
    let out = run(&["export", "--json", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a heapscope recording"), "{}", stderr(&out));
    let out = run(&["flash", "--dry-run", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not an ESP image"), "{}", stderr(&out));
    let _ = std::fs::remove_file(&junk);
}

#[test]
fn a_recording_cut_off_mid_write_still_opens() {
    let board = PtyBoard::start(&["-X", "heapsize=120K"]);
    let file = board.dir().join("cut.hsr");
    let out = run(&["record", "--port", &board.port(), "-o", file.to_str().unwrap(), "--mode", "poll", "--interval", "200ms", "--duration", "3s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&file).unwrap();
    // Lose the end as a crash would: the index, the end record and the tail of the last record
    // before them (a cut by proportion could fall between records: polls of an idle board
    // change nothing, so most records are small). The end record closes with the index's
    // offset and a CRC.
    let n = bytes.len();
    let index_at = u64::from_le_bytes(bytes[n - 12..n - 4].try_into().unwrap()) as usize;
    let cut: PathBuf = board.dir().join("cut-short.hsr");
    std::fs::write(&cut, &bytes[..index_at - 2]).unwrap();
    let v = json(&run(&["inspect", "--json", cut.to_str().unwrap()]));
    assert_eq!(v["recording"]["closed"], false);
    assert!(v["recording"]["truncated"]["offset"].as_u64().is_some(), "{v}");
    assert!(v["recording"]["snapshots"].as_u64().unwrap() >= 1);
    assert!(v["last"]["reported"]["used"].as_u64().is_some());
}

#[test]
fn demo_replays_the_bundled_recording_without_an_interpreter() {
    let out = run(&["demo", "--replay", "--headless", "--duration", "1s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("GC heap"), "the last snapshot is shown: {text}");
    // The snapshot shown is the last one replayed, not the recording's last.
    let err = stderr(&out);
    let used = err.lines().find_map(|l| l.strip_prefix("last: used ")?.split_once(" B")).unwrap_or_else(|| panic!("{err}")).0;
    let shown = text.lines().find_map(|l| l.trim_start().strip_prefix("used")).unwrap_or_else(|| panic!("{text}"));
    assert!(shown.trim_start().starts_with(&format!("{used} B")), "stderr says used {used} B, stdout shows {shown:?}");
}

#[test]
fn flash_dry_run_touches_no_port() {
    let dir = std::env::temp_dir().join(format!("heapscope-flash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let image = dir.join("firmware.bin");
    let bin = heapscope::cmd::flash::sample_image(9, 3, 1000, 2, true); // ESP32-S3, revision 0.2
    std::fs::write(&image, &bin).unwrap();
    // --port names a port that does not exist: a dry run never opens it.
    let v = json(&run(&["flash", "--dry-run", "--json", "--port", "/dev/ttyUSB-nope", image.to_str().unwrap()]));
    assert_eq!(v["format"], "bin");
    assert_eq!(v["chip"], "esp32s3");
    assert_eq!(v["segments"], 3);
    assert_eq!(v["min_chip_revision"], 2);
    assert_eq!(v["digest"], true);
    assert_eq!(v["address"], "0x0");
    assert_eq!(v["bytes"], bin.len());
    assert_eq!(v["dry_run"], true);

    // What espflash would refuse, refused before any port: random bytes behind a header, an
    // unknown chip even with --address, an image past the flash its header declares.
    let mut junk = bin[..24].to_vec();
    junk.extend((0..900_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(&image, &junk).unwrap();
    let out = run(&["flash", "--dry-run", image.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let unknown = heapscope::cmd::flash::sample_image(99, 1, 64, 0, false);
    std::fs::write(&image, &unknown).unwrap();
    let out = run(&["flash", "--dry-run", "--address", "0x1000", image.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown chip id 99"), "{}", stderr(&out));
    std::fs::write(&image, &bin).unwrap();
    let out = run(&["flash", "--dry-run", "--address", "0x3fff00", image.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("past the 4 MB of flash its header declares"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_runs_a_real_interpreter_headless() {
    let interpreter = heapscope_tests::board::micropython();
    let out = heapscope()
        .args(["demo", "--headless", "--duration", "4s", "--micropython"])
        .arg(&interpreter)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let snapshots: u64 = err
        .lines()
        .find_map(|l| l.split_once(" snapshots (").and_then(|(n, _)| n.trim().parse().ok()))
        .unwrap_or_else(|| panic!("a snapshot count in: {err}"));
    assert!(snapshots >= 4, "{err}");
    assert!(err.contains("passive"), "{err}");
}

#[test]
fn ctrl_c_finishes_a_recording_cleanly() {
    let board = PtyBoard::start(&["-X", "heapsize=120K"]);
    let file = board.dir().join("interrupted.hsr");
    let child = heapscope()
        .args(["record", "--port", &board.port(), "--mode", "poll", "--interval", "200ms", "-o", file.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for a few snapshots to be written, then interrupt as Ctrl-C does.
    let start = std::time::Instant::now();
    while std::fs::metadata(&file).map_or(0, |m| m.len()) < 4_000 {
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "nothing recorded");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit {:?}: {}", out.status.code(), stderr(&out));
    assert!(stderr(&out).contains("recorded"), "{}", stderr(&out));
    let v = json(&run(&["inspect", "--json", file.to_str().unwrap()]));
    assert_eq!(v["recording"]["closed"], true, "closed cleanly: {v}");
    assert!(v["recording"]["truncated"].is_null());
    // The board is left at its normal prompt after polling.
    assert!(board.transcript().trim_end().ends_with(">>>"), "{}", board.transcript());
}

#[test]
fn board_commands_end_quietly_when_the_reader_of_their_output_goes_away() {
    let board = PtyBoard::start(&["-X", "heapsize=120K"]);
    let file = board.dir().join("reader-gone.hsd");
    let port = board.port();
    let commands: &[&[&str]] = &[
        // The second writes over the first's file, as asked.
        &["dump", "--port", &port, "-o", file.to_str().unwrap()],
        &["dump", "--port", &port, "-o", file.to_str().unwrap(), "--json", "--force"],
        &["imports", "--port", &port, "json"],
        &["imports", "--port", &port, "--json", "json"],
    ];
    for args in commands {
        // The reader is gone before the command starts: its every write meets a broken pipe.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = heapscope().args(*args).stdout(writer).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "heapscope {}: {err}", args.join(" "));
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "heapscope {}: {err}", args.join(" "));
    }
}

#[test]
fn record_console_with_json_keeps_stdout_pure_json() {
    // A program that prints a line, then its heap, over and over: console text and snapshots.
    let program = "import micropython, time\nfor i in range(200):\n print('tick', i)\n micropython.mem_info()\n time.sleep(0.1)\n";
    let board = PtyBoard::start(&["-X", "heapsize=120K", "-c", program]);
    let file = board.dir().join("console.hsr");
    let out = run(&["record", "--port", &board.port(), "-o", file.to_str().unwrap(), "--mode", "passive", "--duration", "2s", "--console", "--json"]);
    // The summary alone on stdout; the console echoed to stderr.
    let summary = json(&out);
    assert!(summary["console_bytes"].as_u64().unwrap() > 0, "{summary}");
    assert!(stderr(&out).contains("tick "), "{}", stderr(&out));
    // Without --json the console goes to stdout as before.
    let out = run(&["record", "--port", &board.port(), "-o", file.to_str().unwrap(), "--force", "--mode", "passive", "--duration", "1s", "--console"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("tick "), "{}", String::from_utf8_lossy(&out.stdout));
}
