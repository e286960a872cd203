//! The capture engine against the stock MicroPython v1.29 unix interpreter on a
//! pseudo-terminal, opened by path like a board's serial port.

use std::time::{Duration, Instant};

use heapscope::capture::{Capture, Command, Mode, Options};
use heapscope::entry::{Entry, SegmentReason, Source};
use heapscope::link::PathOpener;
use heapscope::port::{OpenOptions, DEFAULT_BAUD};
use heapscope::recording::{Recording, RecordingWriter, Stored};
use heapscope_protocol::wire::Event;
use heapscope_protocol::{metrics, text};
use heapscope_tests::board::PtyBoard;

fn capture(board: &PtyBoard, mode: Mode, interval_ms: u64) -> Capture {
    let opener = PathOpener { path: board.port(), options: OpenOptions { baud: DEFAULT_BAUD, reset: false } };
    let options = Options { mode, poll_interval: Duration::from_millis(interval_ms), ..Options::default() };
    Capture::start(Box::new(opener), options).expect("open the board's port")
}

/// Entries until `done` says so or `limit` passes.
fn collect(c: &Capture, limit: Duration, mut done: impl FnMut(&[Entry]) -> bool) -> Vec<Entry> {
    let start = Instant::now();
    let mut out = Vec::new();
    while start.elapsed() < limit && !done(&out) {
        if let Ok(e) = c.entries.recv_timeout(Duration::from_millis(50)) {
            out.push(e);
        }
    }
    out
}

fn snapshots(entries: &[Entry]) -> Vec<(&Source, &heapscope_protocol::Snapshot)> {
    entries
        .iter()
        .filter_map(|e| if let Entry::Snapshot { source, snapshot, .. } = e { Some((source, &**snapshot)) } else { None })
        .collect()
}

fn console(entries: &[Entry]) -> String {
    let bytes: Vec<u8> = entries.iter().filter_map(|e| if let Entry::Console { bytes, .. } = e { Some(bytes.clone()) } else { None }).flatten().collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn problems(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| match e {
            Entry::Corrupt { detail, .. } => Some(detail.clone()),
            Entry::Notice { text, .. } if text.contains("say") => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn poll_mode_figures_equal_what_the_interpreter_prints() {
    let board = PtyBoard::start(&["-X", "heapsize=120K"]);
    let mut c = capture(&board, Mode::Poll, 200);
    let entries = collect(&c, Duration::from_secs(20), |e| snapshots(e).len() >= 4);
    c.stop();
    assert!(problems(&entries).is_empty(), "{:?}\n{}", problems(&entries), board.transcript());
    let snaps = snapshots(&entries);
    assert!(snaps.len() >= 4, "{} snapshots; board said:\n{}", snaps.len(), board.transcript());
    // What the interpreter printed, read independently from the bytes it wrote.
    let (printed, _) = text::parse(board.transcript().as_bytes());
    for (i, (source, s)) in snaps.iter().enumerate() {
        assert_eq!(**source, Source::Poll);
        let gc = s.reported.gc.expect("GC figures");
        assert_eq!(gc.total, 121_344, "the 120K heap of the stock 64-bit build");
        assert_eq!(s.block_size(), Some(32));
        let py = s.reported.python.expect("gc.mem_alloc() and gc.mem_free()");
        assert_eq!((py.mem_alloc, py.mem_free), (gc.used, gc.free), "snapshot {i}: Python's figures equal mem_info's");
        assert_eq!(metrics::gc_figures(&s.areas), gc, "snapshot {i}: the layout adds up to the device's figures");
        assert!(
            printed.iter().any(|d| d.snapshot.areas == s.areas && d.snapshot.reported.gc == s.reported.gc),
            "snapshot {i} is one the interpreter printed"
        );
    }
    // Polling stopped the program and left the board at its normal prompt.
    let t = board.transcript();
    assert!(t.contains("raw REPL; CTRL-B to exit"), "{t}");
    assert!(t.trim_end().ends_with(">>>"), "the board is back at the normal REPL: {t:?}");
}

#[test]
fn passive_mode_finds_the_dumps_a_program_prints() {
    let script = r#"
import time, micropython
time.sleep_ms(300)
keep = []
for i in range(5):
    keep.append(bytearray(1000 * (i + 1)))
    print("step", i, "of the program")
    micropython.mem_info(1)
    print("after dump", i)
    time.sleep_ms(100)
print("program done")
time.sleep(30)
"#;
    let board = PtyBoard::start(&["-X", "heapsize=120K", "-c", script]);
    let mut c = capture(&board, Mode::Passive, 1000);
    let entries = collect(&c, Duration::from_secs(20), |e| console(e).contains("program done"));
    c.stop();
    assert!(problems(&entries).is_empty(), "{:?}", problems(&entries));
    let snaps = snapshots(&entries);
    assert_eq!(snaps.len(), 5, "{}", console(&entries));
    let (printed, _) = text::parse(board.transcript().as_bytes());
    assert_eq!(printed.len(), 5);
    let mut used = Vec::new();
    for ((source, s), d) in snaps.iter().zip(&printed) {
        assert_eq!(**source, Source::Passive);
        assert!(**s == d.snapshot, "the dump as printed");
        used.push(metrics::compute(s).used_bytes);
    }
    assert!(used.windows(2).all(|w| w[1] > w[0]), "the heap grows step by step: {used:?}");
    let text = console(&entries);
    for i in 0..5 {
        assert!(text.contains(&format!("step {i} of the program")) && text.contains(&format!("after dump {i}")), "{text}");
    }
}

#[test]
fn unplugging_mid_recording_leaves_a_gap_and_loses_nothing_before_it() {
    let script = r#"
import time, micropython
keep = []
for i in range(600):
    keep.append(bytearray(64))
    if len(keep) > 40:
        keep = keep[20:]
    micropython.mem_info(1)
    time.sleep_ms(40)
"#;
    let board = PtyBoard::start(&["-X", "heapsize=120K", "-c", script]);
    let path = board.dir().join("unplug.hsr");
    let mut writer = RecordingWriter::create(&path, "{}").unwrap();
    let mut c = capture(&board, Mode::Passive, 1000);
    let mut before_gap = Vec::new();
    let mut after_gap = 0;
    let mut seen_gap = false;
    let mut seen_reattach = false;
    let start = Instant::now();
    let mut unplugged_at = None;
    let mut dump_while_away = None;
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(e) = c.entries.recv_timeout(Duration::from_millis(50)) {
            writer.append(&e).unwrap();
            match &e {
                Entry::Snapshot { snapshot, .. } if !seen_gap => before_gap.push((**snapshot).clone()),
                Entry::Snapshot { .. } if seen_reattach => after_gap += 1,
                Entry::Gap { .. } => seen_gap = true,
                Entry::Segment { reason: SegmentReason::Reattach, .. } => seen_reattach = true,
                _ => {}
            }
        }
        if before_gap.len() == 5 && unplugged_at.is_none() {
            board.unplug();
            unplugged_at = Some(Instant::now());
        }
        if seen_gap && !seen_reattach && dump_while_away.is_none() {
            // While the board is away: a dump is refused saying why, a mark is kept.
            let (tx, rx) = std::sync::mpsc::channel();
            c.send(Command::Dump(tx));
            c.send(Command::Mark("while unplugged".into()));
            dump_while_away = Some(rx.recv_timeout(Duration::from_secs(5)).map(|r| r.err()));
        }
        if unplugged_at.is_some_and(|t| t.elapsed() > Duration::from_millis(700)) && !seen_reattach && seen_gap {
            board.plug();
        }
        if after_gap >= 5 {
            break;
        }
    }
    c.stop();
    writer.finish(0).unwrap();
    assert!(seen_gap && seen_reattach, "gap {seen_gap}, reattach {seen_reattach}");
    assert!(after_gap >= 5, "{after_gap} snapshots after the reattach");

    let rec = Recording::open(&path).unwrap();
    assert!(rec.truncated.is_none());
    let gap_at = rec.entries.iter().position(|e| matches!(e, Stored::Entry(Entry::Gap { .. }))).expect("a gap marker");
    let why = dump_while_away.expect("a dump was asked for while unplugged").expect("an answer came").expect("a refusal");
    assert!(why.contains("is unplugged: waiting for it to come back"), "{why}");
    assert!(
        matches!(&rec.entries[gap_at + 1], Stored::Entry(Entry::Event { event: Event::Mark { label }, .. }) if label == "while unplugged"),
        "the mark made while unplugged is kept after the gap: {:?}",
        rec.entries.get(gap_at + 1).map(|e| e.at())
    );
    assert!(matches!(rec.entries[gap_at + 2], Stored::Entry(Entry::Segment { reason: SegmentReason::Reattach, .. })));
    let recorded_before: Vec<_> = rec.entries[..gap_at]
        .iter()
        .filter_map(|e| if let Stored::Snapshot { ordinal, .. } = e { rec.snapshot(*ordinal) } else { None })
        .collect();
    assert_eq!(recorded_before.len(), before_gap.len(), "every snapshot before the gap is in the recording");
    assert!(recorded_before == before_gap);
}
