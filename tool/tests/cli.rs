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
    assert_eq!(v["dumps_found"], 1);
    let v = &v["dumps"][0];
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
    // Free runs are labelled: lengths in blocks and bytes, how many, how many blocks.
    let runs = m["free_runs"].as_array().unwrap();
    let free_blocks: u64 = runs.iter().map(|r| r["blocks"].as_u64().unwrap()).sum();
    assert_eq!(free_blocks * 16, 64096);
    for r in runs {
        assert_eq!(r["min_bytes"].as_u64().unwrap(), r["min_blocks"].as_u64().unwrap() * 16, "{r}");
        assert_eq!(r["max_blocks"].as_u64().unwrap(), 2 * r["min_blocks"].as_u64().unwrap() - 1, "{r}");
        assert!(r["runs"].is_u64(), "{r}");
    }
}

#[test]
fn inspect_json_of_a_summary_has_no_block_size() {
    let v = json(&heapscope(&["inspect", "--json", &fixture("stock129_x64_mem_info.txt")], None));
    let v = &v["dumps"][0];
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
    assert_eq!(v["dumps_found"], 3);
    let dumps = v["dumps"].as_array().unwrap();
    assert_eq!(dumps.len(), 3);
    assert_eq!(dumps[1]["areas"][0]["blocks"], 7460);
    assert_eq!(dumps[2]["block_size"], 32);
    // Without --all: the same shape, with the last dump only.
    let last = json(&heapscope(&["inspect", "--json", "-"], Some(&log)));
    assert_eq!(last["dumps_found"], 3);
    assert_eq!(last["dumps"].as_array().unwrap().len(), 1);
    assert_eq!(last["dumps"][0], dumps[2]);

    let text = heapscope(&["inspect", "--all", "-"], Some(&log));
    let stdout = String::from_utf8(text.stdout).unwrap();
    // Each dump is printed as it is found, the count at the end.
    assert!(stdout.contains("-: dump 2, lines"), "{stdout}");
    assert!(stdout.trim_end().ends_with("-: 3 dumps"), "{stdout}");
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
    assert!(help.contains("why a 1,088-byte allocation fails"), "{help}");
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
    assert_eq!(csv.matches(",event,,,,,,4 snapshots skipped (line budget)\n").count(), 3, "{csv}");
    let history = History::from_recording(Recording::open(&path).unwrap());
    let skipped: Vec<_> = history.markers.iter().filter(|m| m.kind == MarkerKind::Skipped).collect();
    assert_eq!(skipped.len(), 3);
    assert!(skipped[0].label.contains("4 snapshots skipped"), "{}", skipped[0].label);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn inspect_of_a_recording_lists_its_events_and_with_all_every_snapshot() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo.hsr");
    let v = json(&heapscope(&["inspect", "--json", demo], None));
    let rows = v["timeline"].as_array().unwrap();
    assert_eq!(rows.iter().filter(|r| r["kind"] == "memory_error").count(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r["kind"] != "snapshot"), "without --all, events only");
    assert_eq!(v["recording"]["memory_errors"], 3);
    assert_eq!(v["recording"]["lost_snapshots"], 0);
    // The length is the recording's, not its last entry's time.
    assert!(v["recording"]["seconds"].as_f64().unwrap() > 30.0, "{}", v["recording"]);
    let all = json(&heapscope(&["inspect", "--json", "--all", demo], None));
    let rows = all["timeline"].as_array().unwrap();
    assert_eq!(rows.iter().filter(|r| r["kind"] == "snapshot").count(), 47);
    let text = heapscope(&["inspect", "--all", demo], None);
    let text = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.lines().filter(|l| l.contains(" snapshot ")).count(), 47, "{text}");
    assert!(text.contains("3 MemoryErrors") && text.contains("allocating 1088 bytes"), "{text}");
}

#[test]
fn inspect_of_a_long_log_keeps_only_what_it_prints() {
    // 40,000 dumps of a 2 MB heap (13 MB of text): kept whole they take over 600 MB. Under a
    // 256 MiB address-space limit the last one must still be printed, and with --all each one.
    let one = std::fs::read(fixture("stock129_x64_mem_info1_2M.txt")).unwrap();
    let mut log = Vec::new();
    for _ in 0..40_000 {
        log.extend(b">>> micropython.mem_info(1)\r\n");
        log.extend(&one);
    }
    let path = std::env::temp_dir().join(format!("heapscope-long-log-{}.txt", std::process::id()));
    std::fs::write(&path, &log).unwrap();
    let limited = |extra: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -v 262144 && exec \"$0\" inspect {extra} \"$1\" | tail -c 20000"))
            .arg(env!("CARGO_BIN_EXE_heapscope"))
            .arg(&path)
            .output()
            .expect("run sh")
    };
    let out = limited("");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("dump 40000 of 40000"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let out = limited("--all --json");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.trim_end().ends_with("\"dumps_found\": 40000\n}") && stdout.contains("\"block_size\": 32"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn the_readme_the_help_and_the_bundled_recording_tell_one_story() {
    use heapscope::human::thousands;
    let history = heapscope::tui::history::History::from_recording(heapscope::cmd::demo::bundled().unwrap());
    let failure = history.failures[0];
    let at = history.snapshots[failure.snapshot].summary;
    let readme = std::fs::read_to_string(format!("{}/../README.md", env!("CARGO_MANIFEST_DIR"))).unwrap().replace('\n', " ");
    for figure in [
        format!("allocating {} bytes", failure.bytes),
        format!("{} bytes of the heap were free", thousands(at.free)),
        format!("largest free block was {} bytes", thousands(at.largest_free)),
        format!("{}-byte allocation fails with {} bytes free", thousands(failure.bytes), thousands(at.free)),
    ] {
        assert!(readme.contains(&figure), "the README does not say {figure:?}");
    }
    let help = heapscope(&["--help"], None);
    let help = String::from_utf8_lossy(&help.stdout).replace('\n', " ");
    let story = format!("why a {}-byte allocation fails while {} KB are free", thousands(failure.bytes), at.free / 1000);
    assert!(help.contains(&story), "--help does not say {story:?}: {help}");
}

#[test]
fn counts_of_one_are_singular() {
    let out = heapscope(&["inspect", &format!("{}/assets/demo.hsr", env!("CARGO_MANIFEST_DIR"))], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 segment (0 resets)"), "{text}");
    assert!(!text.contains("1 segments") && !text.contains("1 areas"), "{text}");
    assert!(text.contains("1 area, "), "{text}");
    // The list under the counts is the timeline without snapshots, not only the events counted.
    assert!(text.contains("3 events,") && text.contains("timeline without its snapshots (--all lists them):"), "{text}");
    assert_eq!(heapscope::human::count(1usize, "area"), "1 area");
    assert_eq!(heapscope::human::count(2048u64, "block"), "2,048 blocks");
    assert_eq!(heapscope::human::count(0u64, "gap"), "0 gaps");
}

#[test]
fn export_without_a_format_names_both() {
    let out = heapscope(&["export", &format!("{}/assets/demo.hsr", env!("CARGO_MANIFEST_DIR"))], None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--csv") && err.contains("--json"), "{err}");
}

#[test]
fn a_baud_rate_of_zero_is_refused() {
    for command in [&["record", "-o", "/tmp/never.hsr"][..], &["attach"], &["imports", "json"]] {
        let mut args = command.to_vec();
        args.extend(["--port", "/dev/null", "--baud", "0"]);
        let out = heapscope(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--baud") && err.contains('0'), "{err}");
    }
}

#[test]
fn completions_and_a_man_page_from_the_one_definition() {
    let out = heapscope(&["completions", "bash"], None);
    assert!(out.status.success());
    let bash = String::from_utf8_lossy(&out.stdout);
    assert!(bash.contains("_heapscope()") && bash.contains("record") && bash.contains("--baud"), "{bash}");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = heapscope(&["completions", shell], None);
        assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("inspect"), "{shell}");
    }
    let out = heapscope(&["man"], None);
    assert!(out.status.success());
    let man = String::from_utf8_lossy(&out.stdout);
    assert!(man.contains(".TH heapscope 1"), "{man}");
    for command in ["RECORD", "ATTACH", "REPLAY", "INSPECT", "EXPORT", "IMPORTS", "FLASH", "DEMO"] {
        assert!(man.contains(&format!(".SH \"HEAPSCOPE {command}\"")), "{command} missing");
    }
    assert!(man.contains("\\-\\-dry\\-run") && man.contains("\\-\\-baud"), "options are listed");
    assert!(!man.contains(".SH \"HEAPSCOPE HELP\""));
    // Subcommands live in this page: no references to pages that do not exist.
    assert!(!man.contains("heapscope\\-record(1)"), "no heapscope-record(1) page to point to");
    assert!(man.contains("\\fBheapscope record\\fR"), "subcommands listed by name");
    assert!(man.contains(".SH ENVIRONMENT") && man.contains("HEAPSCOPE_PORT") && man.contains("NO_COLOR"), "environment described");
}

#[test]
fn an_existing_output_file_is_not_written_over_without_force() {
    let dir = std::env::temp_dir().join(format!("heapscope-overwrite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let demo = format!("{}/assets/demo.hsr", env!("CARGO_MANIFEST_DIR"));
    let recording = dir.join("hour.hsr");
    std::fs::copy(&demo, &recording).unwrap();
    let before = std::fs::read(&recording).unwrap();
    let path = recording.to_str().unwrap();

    // Recording (and dumping) to it is refused before any port is opened.
    for command in [&["record", "-o", path][..], &["dump", "-o", path]] {
        let mut args = command.to_vec();
        args.extend(["--port", "/nonexistent/tty"]);
        let out = heapscope(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("exists") && err.contains("--force"), "{err}");
    }
    // An export into the recording it reads, even with --force.
    let out = heapscope(&["export", "--csv", "--force", "-o", path, path], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("would replace the recording"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&recording).unwrap(), before, "the recording is untouched");

    // An export over an older export: refused, then written with --force.
    let csv = dir.join("timeline.csv");
    std::fs::write(&csv, "old").unwrap();
    let out = heapscope(&["export", "--csv", "-o", csv.to_str().unwrap(), path], None);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), "old");
    let out = heapscope(&["export", "--csv", "--force", "-o", csv.to_str().unwrap(), path], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_to_string(&csv).unwrap().starts_with("time_s,"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `heapscope ARGS` writing into a pipe whose reader is already gone (`heapscope ... | head`
/// once head has had enough): every write fails with a broken pipe, deterministically.
fn heapscope_reader_gone(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_heapscope"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run heapscope")
}

#[test]
fn every_command_ends_quietly_when_the_reader_of_its_output_goes_away() {
    let dir = std::env::temp_dir().join(format!("heapscope-reader-gone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let example = heapscope_objects::synth::example();
    let dump = dir.join("example.hsd");
    std::fs::write(&dump, example.to_json()).unwrap();
    let dump = dump.to_str().unwrap();
    let analysis = heapscope_objects::Analysis::new(&example);
    let address = format!("{:#x}", analysis.objects[0].address);
    let image = dir.join("firmware.bin");
    std::fs::write(&image, heapscope::cmd::flash::sample_image(9, 3, 1000, 2, true)).unwrap();
    let image = image.to_str().unwrap();
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo.hsr");
    let commands: &[&[&str]] = &[
        &["inspect", demo],
        &["objects", dump],
        &["objects", "--json", dump],
        &["objects", "--why", &address, dump],
        &["objects", "--why", &address, "--json", dump],
        &["objects", "--diff", dump, dump],
        &["objects", "--diff", dump, "--json", dump],
        &["flash", "--dry-run", "--json", image],
        &["export", "--csv", demo],
        &["export", "--json", demo],
        &["completions", "bash"],
        &["man"],
        &["demo", "--headless", "--replay", "--duration", "1s"],
    ];
    for args in commands {
        let out = heapscope_reader_gone(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "heapscope {}: {err}", args.join(" "));
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "heapscope {}: {err}", args.join(" "));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn events_read_as_text_and_as_structured_json_never_as_rust_debug() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo.hsr");
    let said = "MemoryError: allocating 1,088 B failed";
    let text = String::from_utf8(heapscope(&["inspect", demo], None).stdout).unwrap();
    assert_eq!(text.lines().filter(|l| l.contains(&format!(" event         {said}"))).count(), 3, "{text}");
    let csv = String::from_utf8(heapscope(&["export", "--csv", demo], None).stdout).unwrap();
    // The detail has a comma, so it is quoted.
    assert_eq!(csv.matches(&format!(",event,,,,,,\"{said}\"\n")).count(), 3, "{csv}");
    for json_of in [&["inspect", "--json", demo][..], &["export", "--json", demo]] {
        let v = json(&heapscope(json_of, None));
        let events: Vec<_> = v["timeline"].as_array().unwrap().iter().filter(|r| r["kind"] == "event").collect();
        assert_eq!(events.len(), 3, "{json_of:?}");
        for e in events {
            assert_eq!(e["detail"], said, "{e}");
            assert_eq!(e["event"], serde_json::json!({"kind": "mark", "label": "MemoryError: allocating 1088 B failed"}), "{e}");
        }
    }
    for out in [text, csv] {
        assert!(!out.contains("Mark {") && !out.contains("label:"), "{out}");
    }
}

#[test]
fn full_screen_commands_without_a_terminal_say_so_and_name_the_headless_way() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo.hsr");
    let dump = std::env::temp_dir().join(format!("heapscope-no-terminal-{}.hsd", std::process::id()));
    std::fs::write(&dump, heapscope_objects::synth::example().to_json()).unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["replay", demo], "heapscope inspect"),
        (&["objects", "--tui", dump.to_str().unwrap()], "without --tui"),
        (&["demo", "--replay"], "--headless"),
        // The port is never opened: without a terminal nothing is started.
        (&["attach", "--port", "/dev/ttyUSB-nope"], "heapscope record"),
    ];
    for (args, alternative) in cases {
        // A new session has no controlling terminal; standard input and output are not one.
        let out = Command::new("setsid")
            .arg(env!("CARGO_BIN_EXE_heapscope"))
            .args(*args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run setsid heapscope");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "heapscope {}: {err}", args.join(" "));
        assert!(err.contains("the full-screen view needs a terminal"), "heapscope {}: {err}", args.join(" "));
        assert!(err.contains(alternative), "heapscope {}: {err}", args.join(" "));
        assert!(out.stdout.is_empty(), "heapscope {}: nothing on stdout", args.join(" "));
    }
    let _ = std::fs::remove_file(&dump);
}

#[test]
fn a_demo_interpreter_that_exits_at_once_is_reported_with_its_status() {
    let dir = std::env::temp_dir().join(format!("heapscope-fake-interpreter-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // One exits at once; one says why first and is read before it goes.
    for (name, script, said) in [
        ("at-once", "#!/bin/sh\necho 'fake: gone at once'\nexit 3\n", None),
        ("says-why", "#!/bin/sh\necho 'fake: no heap for you'\nsleep 0.5\nexit 3\n", Some("fake: no heap for you")),
    ] {
        let fake = dir.join(name);
        std::fs::write(&fake, script).unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let out = heapscope(&["demo", "--headless", "--duration", "5s", "--micropython", fake.to_str().unwrap()], None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(&format!("{} exited (exit status: 3)", fake.display())), "{name}: {err}");
        assert!(!err.contains("waiting for the port to come back"), "{name}: nothing comes back: {err}");
        if let Some(said) = said {
            assert!(err.contains(&format!("its last output: {said}")), "{name}: {err}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn imports_refuses_bad_names_and_scripts_before_touching_a_port() {
    // The port does not exist: a refusal that names the input comes first, with exit 2.
    let out = heapscope(&["imports", "--port", "/nonexistent/tty", "json; import os"], None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a module name") && !err.contains("raw REPL"), "{err}");

    let script = std::env::temp_dir().join(format!("heapscope-latin1-{}.py", std::process::id()));
    std::fs::write(&script, b"import json\n# caf\xe9\nimport os\n").unwrap();
    let out = heapscope(&["imports", "--port", "/nonexistent/tty", "--from", script.to_str().unwrap()], None);
    let _ = std::fs::remove_file(&script);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":2: not UTF-8 text (byte offset 17)"), "{err}");
}

#[test]
fn a_recording_cut_inside_its_header_is_named_as_one() {
    let demo = std::fs::read(format!("{}/assets/demo.hsr", env!("CARGO_MANIFEST_DIR"))).unwrap();
    for cut in 1..8 {
        let out = heapscope(&["inspect", "-"], Some(&demo[..cut]));
        assert_eq!(out.status.code(), Some(2), "cut at {cut}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("a heapscope recording cut off after"), "cut at {cut}: {err}");
    }
}
