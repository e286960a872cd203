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
heapscope.start(period_ms=50, max_bytes_per_s=100000)  # the line budget is tested below
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
    let script = "import heapscope, time\nheapscope.start(period_ms=100, max_bytes_per_s=100000)\nkeep = []\nfor i in range(30):\n    keep.append(bytearray(200))\n    if i == 15:\n        heapscope.mark('half way')\n    time.sleep_ms(50)\nheapscope.stop()\nprint('program done')\ntime.sleep(30)\n";
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

/// Every frame of a run, as the bytes it took on the line.
fn line_bytes(frames: &[&Frame]) -> usize {
    frames.iter().map(|f| heapscope_protocol::wire::encode_frame(f).len()).sum()
}

fn skipped_counts(run: &Run) -> Vec<u32> {
    run.updates.iter().filter_map(|u| if let Update::Event(Event::Skipped { count }) = u { Some(*count) } else { None }).collect()
}

/// A mark label or module name longer than 255 bytes is cut at a character boundary. Cut in the
/// middle of a character it was invalid UTF-8 and the host dropped the whole frame as corrupt.
#[test]
fn long_labels_and_module_names_arrive_cut_at_a_character() {
    let script = r#"
import heapscope
heapscope.mark("é" * 200)
heapscope.trace_imports(True)
try:
    __import__("ü" * 150)
except (ImportError, RuntimeError):  # "name too long", after the hook sent its events
    pass
heapscope.trace_imports(False)
print("done")
"#;
    let run = run(script, "122160", &[]);
    assert_eq!(run.corrupt, 0);
    assert!(run.text().contains("done"), "{}", run.text());
    let names: Vec<&str> = run
        .updates
        .iter()
        .filter_map(|u| match u {
            Update::Event(Event::Mark { label }) => Some(label.as_str()),
            Update::Event(Event::ImportBegin { name, .. } | Event::ImportEnd { name, .. }) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["é".repeat(127), "ü".repeat(127), "ü".repeat(127)], "254 bytes of whole characters each");
}

/// SPEC 2: `seq` runs on across hello() and start(): a host tells lost frames from it.
#[test]
fn seq_runs_on_across_hello_and_start() {
    let script = r#"
import heapscope
heapscope.snapshot()
heapscope.mark("a")
heapscope.hello()
heapscope.mark("b")
heapscope.start(period_ms=1000)
heapscope.stop()
heapscope.hello()
heapscope.snapshot()
"#;
    let run = run(script, "122160", &[]);
    let seqs: Vec<u16> = run.frames.iter().map(|f| f.seq).collect();
    let hellos = run.frames.iter().filter(|f| matches!(f.body, Body::Hello(_))).count();
    assert_eq!(hellos, 4, "snapshot(), hello(), start(), hello()");
    let expected: Vec<u16> = (0..seqs.len() as u16).map(|i| seqs[0] + i).collect();
    assert_eq!(seqs, expected, "one sequence, +1 per frame, not restarted by a hello");
}

/// On unix the timer is a thread that waits a period between ticks: stop() wakes it instead of
/// waiting the period out (it used to block for up to `period_ms`). Measured on the device's
/// own clock against a 20 s period: a stop() that waited would take most of it.
#[test]
fn stop_does_not_wait_out_the_period() {
    let script = r#"
import heapscope, time
heapscope.start(period_ms=20000)
t = time.ticks_ms()
heapscope.stop()
print("stop took", time.ticks_diff(time.ticks_ms(), t), "ms")
"#;
    let run = run(script, "122160", &[]);
    let text = run.text();
    let ms: u64 = text.split("stop took ").nth(1).and_then(|s| s.split(' ').next()).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{text}"));
    eprintln!("stop() with a 20 s period took {ms} ms");
    assert!(ms < 10_000, "stop() took {ms} ms of a 20,000 ms period");
}

/// The stack figure in a snapshot is the program's, where it called in: what mem_info() prints
/// at the same place (it was the module's own deeper frames, ~256 B more).
#[test]
fn stack_figure_is_the_callers_as_mem_info_prints_it() {
    let script = r#"
import heapscope, micropython
def deep(n):
    if n:
        return deep(n - 1)
    micropython.mem_info()
    heapscope.snapshot()
deep(0)
deep(20)
"#;
    let run = run(script, "122160", &[]);
    let dumps = run.dumps();
    let snaps = run.snapshots();
    assert_eq!((dumps.len(), snaps.len()), (2, 2));
    for (d, s) in dumps.iter().zip(&snaps) {
        let text = d.snapshot.reported.stack.expect("mem_info prints the stack").used;
        let stream = s.reported.stack.expect("the module sends the stack").used;
        eprintln!("stack: mem_info {text} B, stream {stream} B");
        assert!(stream.abs_diff(text) <= 32, "stream {stream} B vs mem_info {text} B at the same call site");
    }
    let grew = snaps[1].reported.stack.unwrap().used - snaps[0].reported.stack.unwrap().used;
    assert!(grew > 20 * 16, "20 more Python frames show: +{grew} B");
}

/// The periodic stream keeps to its byte budget: snapshots that do not fit are skipped and the
/// host is told how many. Device clock: bytes over the stream's own span.
#[test]
fn the_stream_keeps_to_its_budget_and_reports_what_it_skipped() {
    let script = r#"
import heapscope, time
keep = []
heapscope.start(period_ms=20, max_bytes_per_s=2000)
t = time.ticks_ms()
i = 0
while time.ticks_diff(time.ticks_ms(), t) < 3000:
    keep.append(bytearray(i % 97 + 1))
    if len(keep) > 300:
        keep = keep[150:]
    i += 1
heapscope.stop()
print("loops", i)
"#;
    let run = run(script, "122160", &[]);
    assert_eq!(run.corrupt, 0);
    let skipped: u32 = skipped_counts(&run).iter().sum();
    let sent = run.snapshots().len();
    // From the first periodic snapshot (after start()'s own) to the stop.
    let start = run.frames.iter().position(|f| matches!(f.body, Body::Event(Event::StreamStart { .. }))).unwrap();
    let stream: Vec<&Frame> = run.frames[start + 2..].iter().collect();
    let span_ms = stream.last().unwrap().device_ms - run.frames[start].device_ms;
    let bytes = line_bytes(&stream);
    let rate = bytes as f64 * 1000.0 / f64::from(span_ms);
    eprintln!("budget 2000 B/s: {bytes} B in {span_ms} ms = {rate:.0} B/s; {sent} snapshots sent, {skipped} skipped");
    // The bucket starts empty and start()'s own frames (left out here) are charged to it first.
    assert!(bytes as f64 <= 2000.0 * f64::from(span_ms) / 1000.0, "{bytes} B in {span_ms} ms");
    assert!(skipped > 0, "a 20 ms period does not fit 2000 B/s");
    assert!(sent >= 3, "{sent} sent");
    // Every tick is accounted for: sent or skipped, about one per period.
    let ticks = sent as u32 - 1 + skipped;
    assert!(ticks >= span_ms / 20 / 4, "{ticks} ticks in {span_ms} ms");
}

/// The paced path allocates nothing either: ticks, skips and skipped events under heap_lock().
#[test]
fn the_paced_stream_allocates_nothing() {
    let script = r#"
import heapscope, micropython, time
data = [bytearray(64) for i in range(40)]
n = 0  # a new global under the lock would allocate its dict slot
heapscope.start(period_ms=10, max_bytes_per_s=1000)
t = time.ticks_ms()
micropython.heap_lock()
# Three seconds on the device's clock, however fast the machine: small ints only, so the loop
# itself allocates nothing.
while time.ticks_diff(time.ticks_ms(), t) < 3000:
    n += 1
heapscope.stop()
micropython.heap_unlock()
print("survived heap_lock", n > 0)
"#;
    let run = run(script, "122160", &[]);
    assert!(run.text().contains("survived heap_lock True"), "{}", run.text());
    assert!(skipped_counts(&run).iter().sum::<u32>() > 0, "ticks were skipped under the lock");
    assert!(run.snapshots().len() >= 2, "and some were sent");
}
