//! The `heapscope` C module inside a real MicroPython build: the project's host test port
//! (firmware/ports/unix), which `scripts/firmware` builds to `target/firmware/unix/micropython`
//! (scripts/test runs it). `HEAPSCOPE_FIRMWARE_MICROPYTHON` names another build instead. Without
//! a build these fail and say how to make one.

use std::path::PathBuf;
use std::process::Command;

use heapscope_protocol::model::BlockKind;
use heapscope_protocol::text;
use heapscope_protocol::wire::demux::{Demux, Item};
use heapscope_protocol::wire::session::{Session, Update};
use heapscope_protocol::wire::{Body, Event, Frame};
use heapscope_protocol::{metrics, Snapshot};

use heapscope_tests::firmware::assert_same_heap;

fn interpreter() -> PathBuf {
    heapscope_tests::firmware::unix_micropython()
}

/// What one run printed: console text, frames, and the snapshots and events they make.
struct Run {
    text: Vec<u8>,
    frames: Vec<Frame>,
    updates: Vec<Update>,
    corrupt: u64,
}

impl Run {
    fn snapshots(&self) -> Vec<&Snapshot> {
        self.updates.iter().filter_map(|u| if let Update::Snapshot(s) = u { Some(s) } else { None }).collect()
    }

    fn dumps(&self) -> Vec<text::Dump> {
        let (dumps, errors) = text::parse(&self.text);
        assert!(errors.is_empty(), "{errors:?}");
        dumps
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }
}

fn run(script: &str, heapsize: &str, files: &[(&str, &str)]) -> Run {
    let dir = std::env::temp_dir().join(format!("heapscope-fw-{}-{}", std::process::id(), fastrand_name(script)));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, body) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let main = dir.join("main.py");
    std::fs::write(&main, script).unwrap();
    let out = Command::new(interpreter())
        .arg("-X")
        .arg(format!("heapsize={heapsize}"))
        .arg(&main)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", interpreter().display()));
    assert!(out.status.success(), "script failed: {}\n{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    let mut demux = Demux::new();
    let mut session = Session::new();
    let mut run = Run { text: Vec::new(), frames: Vec::new(), updates: Vec::new(), corrupt: 0 };
    for item in demux.push(&out.stdout) {
        match item {
            Item::Text(t) => run.text.extend(t),
            Item::Frame(f) => {
                run.updates.push(session.apply(&f).unwrap_or_else(|e| panic!("frame {}: {e}", f.seq)));
                run.frames.push(f);
            }
            Item::Corrupt(c) => panic!("{c}"),
        }
    }
    run.corrupt = demux.stats().corrupt_frames;
    let _ = std::fs::remove_dir_all(&dir);
    run
}

/// A directory name per script, so parallel tests do not share files.
fn fastrand_name(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
}

#[test]
fn stream_matches_mem_info_block_for_block() {
    let script = r#"
import heapscope, micropython, gc
class Point:
    def __init__(self, x, y):
        self.x = x; self.y = y
keep = []
for round in range(6):
    junk = [bytearray(17 * (i % 9 + 1)) for i in range(40)]
    keep.append({"round": round, "pts": [Point(i, 1.5 * i) for i in range(round * 5)], "s": "x" * (round * 30)})
    keep.append(junk[::3])
    del junk
    if round == 3:
        gc.collect()
    heapscope.snapshot()
    micropython.mem_info(1)
"#;
    let run = run(script, "122160", &[]);
    let snapshots = run.snapshots();
    let dumps = run.dumps();
    assert_eq!(run.corrupt, 0);
    assert_eq!(snapshots.len(), 6, "{}", run.text());
    assert_eq!(dumps.len(), 6);
    assert_eq!(dumps[0].snapshot.reported.gc.unwrap().total, 119_360, "the NodeMCU-32S heap size");
    let kinds: Vec<&str> = run
        .frames
        .iter()
        .filter_map(|f| match f.body {
            Body::Keyframe(_) => Some("key"),
            Body::Delta(_) => Some("delta"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds[0], "key", "{kinds:?}");
    // Each later snapshot goes as whichever is smaller; most are small changes.
    assert!(kinds.iter().filter(|k| **k == "delta").count() >= 3, "{kinds:?}");
    for (i, (s, d)) in snapshots.iter().zip(&dumps).enumerate() {
        assert!(d.warnings.is_empty(), "round {i}: {:?}", d.warnings);
        assert_same_heap(s, &d.snapshot, &format!("round {i}"));
    }
    // The module classifies more than mem_info: user instances and floats are in there.
    let last = metrics::compute(snapshots[5]);
    let names: Vec<_> = last.types.iter().map(|t| t.obj_type.name()).collect();
    for t in ["instance", "float", "dict", "bytearray", "list", "str"] {
        assert!(names.contains(&t), "{t} in {names:?}");
    }
    match &run.updates[0] {
        Update::Hello(h) => {
            assert_eq!(h.block_size, 16, "a 32-bit build has ESP32's 16-byte blocks");
            assert_eq!(h.platform, "linux");
            assert!(h.interpreter.starts_with("MicroPython v1."), "{}", h.interpreter);
        }
        other => panic!("first frame is {other:?}, not a hello"),
    }
}

#[test]
fn snapshot_allocates_nothing() {
    let script = r#"
import heapscope, micropython
data = [bytearray(100) for i in range(50)]
heapscope.mark("before lock")
micropython.heap_lock()
heapscope.snapshot()
heapscope.mark("locked")
heapscope.snapshot()
micropython.heap_unlock()
print("survived heap_lock")
"#;
    let run = run(script, "122160", &[]);
    assert!(run.text().contains("survived heap_lock"), "{}", run.text());
    assert_eq!(run.snapshots().len(), 2);
    let marks: Vec<_> = run
        .updates
        .iter()
        .filter_map(|u| if let Update::Event(Event::Mark { label }) = u { Some(label.as_str()) } else { None })
        .collect();
    assert_eq!(marks, ["before lock", "locked"]);
}

#[test]
fn trace_imports_reports_a_package_tree() {
    let files = [
        ("pkg/__init__.py", "import pkg.a\n"),
        ("pkg/a.py", "import pkg.b\nA = [1, 2, 3]\n"),
        ("pkg/b.py", "BUF = bytearray(10000)\n"),
        ("later.py", "X = 1\n"),
    ];
    let script = r#"
import sys, heapscope
sys.path.insert(0, '')
heapscope.trace_imports(True, collect=True)
import pkg
try:
    import no_such_module
except ImportError:
    pass
heapscope.trace_imports(False)
import later
print("done")
"#;
    let run = run(script, "122160", &files);
    assert!(run.text().contains("done"));
    // Events with the snapshot that follows each.
    let mut imports = Vec::new();
    let mut last_used = 0u64;
    let mut pending: Option<Event> = None;
    for u in &run.updates {
        match u {
            Update::Event(e @ (Event::ImportBegin { .. } | Event::ImportEnd { .. })) => pending = Some(e.clone()),
            Update::Snapshot(s) => {
                let used = metrics::compute(s).used_bytes;
                if let Some(e) = pending.take() {
                    imports.push((e, used, used as i64 - last_used as i64));
                }
                last_used = used;
            }
            _ => {}
        }
    }
    let names: Vec<String> = imports
        .iter()
        .map(|(e, _, _)| match e {
            Event::ImportBegin { depth, name } => format!("begin {depth} {name}"),
            Event::ImportEnd { depth, name, ok, .. } => format!("end {depth} {name} {}", if *ok { "ok" } else { "failed" }),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        names,
        [
            "begin 0 pkg",
            "begin 1 pkg.a",
            "begin 2 pkg.b",
            "end 2 pkg.b ok",
            "end 1 pkg.a ok",
            "end 0 pkg ok",
            "begin 0 no_such_module",
            "end 0 no_such_module failed",
        ],
        "later was imported after tracing stopped"
    );
    // pkg.b keeps a 10,000-byte bytearray: its end snapshot is that much (and its module
    // object and globals) above its begin snapshot.
    let retained_b = imports[3].1 as i64 - imports[2].1 as i64;
    eprintln!("import trace: {names:?}; pkg.b retained {retained_b} bytes");
    assert!((10_000..10_000 + 1_024).contains(&retained_b), "pkg.b retained {retained_b} bytes");
}

#[test]
fn start_streams_periodically_until_stop() {
    let script = r#"
import heapscope, time
heapscope.start(period_ms=50)
for i in range(40):
    x = [i] * 20
    time.sleep_ms(10)
heapscope.stop()
time.sleep_ms(120)
print("stopped")
"#;
    let run = run(script, "122160", &[]);
    let starts = run.updates.iter().filter(|u| matches!(u, Update::Event(Event::StreamStart { period_ms: 50 }))).count();
    let stops = run.updates.iter().filter(|u| matches!(u, Update::Event(Event::StreamStop))).count();
    assert_eq!((starts, stops), (1, 1));
    let n = run.snapshots().len();
    // 400 ms of program at 50 ms: about 8, plus the one start() takes at once.
    assert!((4..=12).contains(&n), "{n} snapshots");
    let last_frame = run.frames.last().unwrap();
    assert!(matches!(last_frame.body, Body::Event(Event::StreamStop)), "nothing after stop()");
    for s in run.snapshots() {
        assert!(s.areas.iter().all(|a| a.kinds().iter().all(|k| k != BlockKind::Mark)), "no torn collection");
    }
}

/// The host tool's `stream` source on the module's frames, through a pseudo-terminal.
#[test]
fn the_tool_captures_the_module_stream() {
    use heapscope::capture::{Capture, Mode, Options};
    use heapscope::entry::{Entry, Source};
    use heapscope::link::PathOpener;
    use heapscope::port::{OpenOptions, DEFAULT_BAUD};
    let script = "import heapscope, time\nheapscope.start(period_ms=100)\nkeep = []\nfor i in range(30):\n    keep.append(bytearray(200))\n    if i == 15:\n        heapscope.mark('half way')\n    time.sleep_ms(50)\nheapscope.stop()\nprint('program done')\ntime.sleep(30)\n";
    let board = heapscope_tests::board::PtyBoard::start_with(&interpreter(), &["-X", "heapsize=122160", "-c", script]);
    let opener = PathOpener { path: board.port(), options: OpenOptions { baud: DEFAULT_BAUD, reset: false } };
    let mut c = Capture::start(Box::new(opener), Options { mode: Mode::Auto, ..Options::default() }).unwrap();
    let start = std::time::Instant::now();
    let mut entries = Vec::new();
    while start.elapsed() < std::time::Duration::from_secs(20) {
        if let Ok(e) = c.entries.recv_timeout(std::time::Duration::from_millis(50)) {
            let done = matches!(&e, Entry::Console { bytes, .. } if String::from_utf8_lossy(bytes).contains("program done"));
            entries.push(e);
            if done {
                break;
            }
        }
    }
    c.stop();
    let corrupt: Vec<_> = entries.iter().filter(|e| matches!(e, Entry::Corrupt { .. })).collect();
    assert!(corrupt.is_empty(), "{corrupt:?}");
    let stream: Vec<_> = entries.iter().filter(|e| matches!(e, Entry::Snapshot { source: Source::Stream, .. })).collect();
    assert!(stream.len() >= 8, "{} stream snapshots", stream.len());
    assert!(!entries.iter().any(|e| matches!(e, Entry::Snapshot { source: Source::Poll, .. })), "frames came, so no polling");
    assert!(entries.iter().any(|e| matches!(e, Entry::Event { event: Event::Mark { label }, .. } if label == "half way")));
    // Frames and console text are separated: the console has the program's print, no frame bytes.
    let console: Vec<u8> = entries.iter().filter_map(|e| if let Entry::Console { bytes, .. } = e { Some(bytes.clone()) } else { None }).flatten().collect();
    assert!(!console.contains(&0xFF), "no frame bytes in the console text");
}

/// `heapscope imports` with the module: the nested tree with inclusive and own costs.
#[test]
fn the_tool_reports_a_nested_import_tree() {
    let board = heapscope_tests::board::PtyBoard::start_with(&interpreter(), &["-X", "heapsize=122160"]);
    std::fs::create_dir_all(board.dir().join("pkg")).unwrap();
    std::fs::write(board.dir().join("pkg/__init__.py"), "import pkg.a\n").unwrap();
    std::fs::write(board.dir().join("pkg/a.py"), "import pkg.b\nA = [1, 2, 3]\n").unwrap();
    std::fs::write(board.dir().join("pkg/b.py"), "BUF = bytearray(10000)\n").unwrap();
    let out = Command::new(heapscope_tests::heapscope_binary()).args(["imports", "--json", "--port", &board.port(), "pkg"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["method"], "heapscope-module");
    let rows = v["modules"].as_array().unwrap();
    let names: Vec<(u64, &str)> = rows.iter().map(|r| (r["depth"].as_u64().unwrap(), r["module"].as_str().unwrap())).collect();
    assert_eq!(names, [(0, "pkg"), (1, "pkg.a"), (2, "pkg.b")]);
    let kept = |i: usize| rows[i]["retained_bytes"].as_i64().unwrap();
    let own = |i: usize| rows[i]["exclusive_bytes"].as_i64().unwrap();
    assert!(kept(2) >= 10_000, "pkg.b keeps its bytearray: {}", kept(2));
    assert!(kept(0) >= kept(1) && kept(1) >= kept(2), "inclusive costs nest");
    assert_eq!(own(0) + own(1) + own(2), kept(0), "own costs add up to the whole");
}
