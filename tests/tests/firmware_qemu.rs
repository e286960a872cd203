//! The heapscope module on a microcontroller: the project's Cortex-M3 port
//! (firmware/ports/qemu, built by `scripts/firmware` to `target/firmware/qemu/firmware.elf`)
//! under `qemu-system-arm -M mps2-an385`, its UART on a serial port the tool opens exactly as a
//! board's (`heapscope record --port ...`). The test types on the board's line beside the tool,
//! as a user at the REPL would.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use heapscope::entry::{Entry, SegmentReason, Source};
use heapscope::recording::{Recording, Stored};
use heapscope_protocol::wire::demux::{Demux, Item};
use heapscope_protocol::wire::{Body, Event};
use heapscope_tests::board::PtyBoard;
use heapscope_tests::firmware::{assert_same_heap, qemu_firmware};

const BOOT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(120);

/// The imports tree of the tests, written to the board's RAM file table.
const PACKAGE: &str = "import ramfs\r\
ramfs.write('pkg/__init__.py', 'import pkg.a\\n')\r\
ramfs.write('pkg/a.py', 'import pkg.b\\nA = [1, 2, 3]\\n')\r\
ramfs.write('pkg/b.py', 'BUF = bytearray(10000)\\n')\r";

fn boot() -> PtyBoard {
    let board = PtyBoard::start_qemu(&qemu_firmware());
    assert!(board.wait_for(">>> ", 1, BOOT), "no REPL prompt from QEMU: {}", board.transcript());
    board
}

/// Types lines at the friendly REPL and waits for the prompt after each.
fn type_line(board: &PtyBoard, lines: &str) {
    let prompts = board.transcript().matches(">>> ").count();
    board.type_keys(format!("{lines}\r").as_bytes());
    let n = lines.split('\r').count();
    assert!(board.wait_for(">>> ", prompts + n, WAIT), "no prompt after {lines:?}: {}", board.transcript());
}

/// Types a block in paste mode (Ctrl-E ... Ctrl-D), as a user pastes a program.
fn paste(board: &PtyBoard, code: &str) {
    let prompts = board.transcript().matches(">>> ").count();
    board.type_keys(b"\x05");
    board.type_keys(code.replace('\n', "\r").as_bytes());
    board.type_keys(b"\x04");
    assert!(board.wait_for(">>> ", prompts + 1, WAIT), "no prompt after the paste: {}", board.transcript());
}

/// A running `heapscope record`, ended by `finish` (or killed if the test fails first).
struct Recorder(Option<Child>);

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `heapscope record --port <board> --mode stream`, running until `finish`.
fn record(board: &PtyBoard, file: &Path) -> Recorder {
    let child = Command::new(heapscope_tests::heapscope_binary())
        .args(["record", "--port", &board.port(), "--mode", "stream", "-o", file.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let child = Recorder(Some(child));
    // It has the port open once the recording file exists.
    let start = std::time::Instant::now();
    while !file.exists() {
        assert!(start.elapsed() < WAIT, "heapscope record did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    child
}

/// Stops the recorder as Ctrl-C does and reads what it wrote.
fn finish(mut recorder: Recorder, file: &Path) -> Recording {
    let child = recorder.0.take().unwrap();
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "heapscope record: {}", String::from_utf8_lossy(&out.stderr));
    let rec = Recording::open(file).unwrap();
    assert!(rec.closed && rec.truncated.is_none(), "the recording was closed cleanly");
    rec
}

/// The frames the board sent since its (first) soft reboot, read off the line itself, and that
/// part of the line as text for messages.
fn frames_since_soft_reboot(board: &PtyBoard) -> (Vec<Body>, String) {
    let all = board.transcript_bytes();
    let reboot = all.windows(16).position(|w| w == b"MPY: soft reboot").expect("a soft reboot");
    let frames = Demux::new()
        .push(&all[reboot..])
        .into_iter()
        .filter_map(|i| if let Item::Frame(f) = i { Some(f.body) } else { None })
        .collect();
    (frames, String::from_utf8_lossy(&all[reboot..]).into_owned())
}

fn corrupt(rec: &Recording) -> Vec<&Stored> {
    rec.entries.iter().filter(|e| matches!(e, Stored::Entry(Entry::Corrupt { .. }))).collect()
}

fn events(rec: &Recording) -> Vec<&Event> {
    rec.entries.iter().filter_map(|e| if let Stored::Entry(Entry::Event { event, .. }) = e { Some(event) } else { None }).collect()
}

fn import_names(events: &[&Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ImportBegin { depth, name } => Some(format!("begin {depth} {name}")),
            Event::ImportEnd { depth, name, ok, .. } => Some(format!("end {depth} {name} {}", if *ok { "ok" } else { "failed" })),
            _ => None,
        })
        .collect()
}

#[test]
fn qemu_stream_equals_mem_info_with_marks_and_the_imports_tree() {
    let board = boot();
    type_line(&board, PACKAGE.trim_end_matches('\r'));
    let file = board.dir().join("qemu.hsr");
    let recorder = record(&board, &file);
    paste(
        &board,
        "import heapscope, micropython, gc
heapscope.trace_imports(True, collect=True)
import pkg
heapscope.trace_imports(False)
heapscope.mark('imports done')
class Point:
    def __init__(self, x, y):
        self.x = x; self.y = y
keep = []
for round in range(5):
    junk = [bytearray(17 * (i % 9 + 1)) for i in range(40)]
    keep.append({'round': round, 'pts': [Point(i, 1.5 * i) for i in range(round * 5)], 's': 'x' * (round * 30)})
    keep.append(junk[::3])
    del junk
    if round == 2:
        gc.collect()
    heapscope.snapshot()
    micropython.mem_info(1)
print('rounds', 'done')
",
    );
    assert!(board.wait_for("rounds done", 1, WAIT), "{}", board.transcript());
    std::thread::sleep(Duration::from_millis(500));
    let rec = finish(recorder, &file);
    assert!(corrupt(&rec).is_empty(), "{:?}", corrupt(&rec));

    // The imports tree, nested, before the mark.
    let events = events(&rec);
    assert_eq!(
        import_names(&events),
        ["begin 0 pkg", "begin 1 pkg.a", "begin 2 pkg.b", "end 2 pkg.b ok", "end 1 pkg.a ok", "end 0 pkg ok"]
    );
    assert!(events.iter().any(|e| matches!(e, Event::Mark { label } if label == "imports done")), "{events:?}");

    // Each streamed snapshot of the rounds and the dump printed right after it.
    let mut stream = Vec::new();
    let mut printed = Vec::new();
    for e in &rec.entries {
        if let Stored::Snapshot { source, ordinal, .. } = e {
            let s = rec.snapshot(*ordinal).expect("the snapshot decodes");
            match source {
                Source::Stream => stream.push(s),
                Source::Passive => printed.push(s),
                Source::Poll => panic!("stream mode never polls"),
            }
        }
    }
    assert_eq!(printed.len(), 5, "five mem_info(1) dumps");
    // The stream has the import snapshots first; the last five are the rounds'.
    assert!(stream.len() >= 5 + 6, "{} stream snapshots", stream.len());
    let rounds = &stream[stream.len() - 5..];
    assert_eq!(printed[0].reported.gc.unwrap().total, 119_360, "the NodeMCU-32S heap size");
    assert_eq!(rounds[0].areas[0].block_size(), 16);
    for (i, (s, d)) in rounds.iter().zip(&printed).enumerate() {
        assert_same_heap(s, d, &format!("round {i}"));
    }
}

#[test]
fn qemu_soft_reset_mid_stream_gives_a_new_segment_and_import_tracing_still_works() {
    let board = boot();
    type_line(&board, PACKAGE.trim_end_matches('\r'));
    let file = board.dir().join("reset.hsr");
    let recorder = record(&board, &file);
    paste(
        &board,
        "import heapscope, micropython, time
def busy(_):
    t = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t) < 200:
        pass
heapscope.trace_imports(True)
heapscope.start(period_ms=20)
",
    );
    std::thread::sleep(Duration::from_millis(500));
    // Soft reset while a periodic tick is queued: `busy` holds the scheduler for 200 ms (the
    // timer queues a tick meanwhile) and the Ctrl-D is already waiting when it returns, so the
    // REPL reads it before the tick can run, and the reset's mp_init drops the tick.
    board.type_keys(b"micropython.schedule(busy, 0)\r\x04");
    assert!(board.wait_for("MPY: soft reboot", 1, WAIT), "{}", board.transcript());
    assert!(board.wait_for(">>> ", 1, WAIT));
    // Nothing typed for a while: what arrives now comes from the module's timer on its own.
    std::thread::sleep(Duration::from_secs(2));
    let (frames, _) = frames_since_soft_reboot(&board);
    assert!(
        matches!(frames.as_slice(), [Body::Hello(_), Body::Event(Event::StreamStop)]),
        "after the reset, before anything was typed, the module's own tick sent a hello and the \
         stream's end (a tick lost in the reset must not stop it): {frames:?}"
    );
    let reset_at = board.transcript().len();
    paste(
        &board,
        "import heapscope
heapscope.trace_imports(True)
import pkg
heapscope.trace_imports(False)
print('after', 'reset')
",
    );
    assert!(board.wait_for("after reset", 1, WAIT), "{}", &board.transcript()[reset_at..]);
    std::thread::sleep(Duration::from_millis(300));
    let rec = finish(recorder, &file);
    assert!(corrupt(&rec).is_empty(), "{:?}", corrupt(&rec));

    // Before the reset: the stream's start and its periodic snapshots.
    let entries: Vec<&Entry> = rec.entries.iter().filter_map(|e| if let Stored::Entry(e) = e { Some(e) } else { None }).collect();
    let is_hello = |e: &&Entry| matches!(e, Entry::Segment { reason: SegmentReason::Reset, detail, .. } if detail.contains("heapscope module"));
    // The tool sees the reset in the console text ("MPY: soft reboot").
    let soft_reboot = entries
        .iter()
        .position(|e| matches!(e, Entry::Segment { reason: SegmentReason::Reset, detail, .. } if detail.contains("soft reboot")))
        .unwrap_or_else(|| panic!("the soft reset in the console text: {entries:?}"));
    let before = &entries[..soft_reboot];
    assert!(before.iter().any(|e| matches!(e, Entry::Event { event: Event::StreamStart { period_ms: 20 }, .. })));
    // After it, before anything is typed: the module saw the new VM at its next timer tick
    // (the tick lost in the reset did not block it): a hello (a new segment on the host) and
    // the end of the stream the old program started.
    let after = &entries[soft_reboot..];
    let hello = after.iter().position(is_hello).unwrap_or_else(|| panic!("no hello after the soft reset: {after:?}"));
    let stop = after
        .iter()
        .position(|e| matches!(e, Entry::Event { event: Event::StreamStop, .. }))
        .expect("the stream stopped with the reset");
    let first_import = after
        .iter()
        .position(|e| matches!(e, Entry::Event { event: Event::ImportBegin { .. }, .. }))
        .expect("import tracing works after the reset");
    assert!(hello < stop && stop < first_import, "hello {hello}, stop {stop}, first import {first_import}");
    // Import tracing, enabled before the reset, works again after it: the whole tree.
    let after_events: Vec<&Event> = after.iter().filter_map(|e| if let Entry::Event { event, .. } = e { Some(event) } else { None }).collect();
    assert_eq!(
        import_names(&after_events),
        ["begin 0 pkg", "begin 1 pkg.a", "begin 2 pkg.b", "end 2 pkg.b ok", "end 1 pkg.a ok", "end 0 pkg ok"]
    );
    // No periodic snapshots after the stop: the reset ended what the old program started.
    let stop_at = soft_reboot + stop;
    let periodic_after = rec
        .entries
        .iter()
        .filter_map(|e| if let Stored::Entry(e) = e { Some(e) } else { None })
        .skip(stop_at)
        .take_while(|e| !matches!(e, Entry::Event { event: Event::ImportBegin { .. }, .. }))
        .filter(|e| matches!(e, Entry::Snapshot { .. }))
        .count();
    assert_eq!(periodic_after, 0);
}

/// Without a stream: import tracing left on by the program before a soft reset works again
/// after it (the reset restores `builtins.__import__`; the module must notice), and the first
/// frame after the reset is a hello.
#[test]
fn qemu_trace_imports_after_a_soft_reset() {
    let board = boot();
    type_line(&board, PACKAGE.trim_end_matches('\r'));
    type_line(&board, "import heapscope; heapscope.trace_imports(True)");
    let prompts = board.transcript().matches(">>> ").count();
    board.type_keys(b"\x04");
    assert!(board.wait_for("MPY: soft reboot", 1, WAIT), "{}", board.transcript());
    assert!(board.wait_for(">>> ", prompts + 1, WAIT), "{}", board.transcript());
    type_line(&board, "import heapscope; heapscope.trace_imports(True); import pkg; heapscope.trace_imports(False)");
    let (frames, after) = frames_since_soft_reboot(&board);
    assert!(matches!(frames.first(), Some(Body::Hello(_))), "the first frame after the reset is a hello: {frames:?} {after}");
    let events: Vec<&Event> = frames.iter().filter_map(|b| if let Body::Event(e) = b { Some(e) } else { None }).collect();
    assert_eq!(
        import_names(&events),
        ["begin 0 pkg", "begin 1 pkg.a", "begin 2 pkg.b", "end 2 pkg.b ok", "end 1 pkg.a ok", "end 0 pkg ok"],
        "trace_imports(True) after the reset traces"
    );
}
