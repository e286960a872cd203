//! The module on a real line: a CPU-bound, heap-churning program on the module build
//! (target/firmware/unix, `scripts/firmware`) behind the tests' UART cable at 115200 baud
//! (11,520 B/s each way), streaming off, on (every 20 ms: far more than the line carries) and off
//! again. Its output arrives intact, no frame is damaged, the stream stays within its budget
//! (3/4 of the line: 8,640 B/s, set here to pace close to what the line carries; the default is
//! 5 %) and the skipped snapshots are reported.

use std::io::Read;
use std::time::{Duration, Instant};

use heapscope_protocol::wire::demux::{Demux, Item};
use heapscope_protocol::wire::session::Session;
use heapscope_protocol::wire::Body;
use heapscope_tests::board::PtyBoard;
use heapscope_tests::cable::CableSpec;
use heapscope_tests::workload::{StreamTally, Window, CHURN};

/// The budget these tests set: 3/4 of a 115200-baud line.
const BUDGET: u32 = 8640;

#[test]
fn a_churning_program_streams_through_a_115200_baud_cable() {
    let program = format!(
        r#"
import heapscope, time
{CHURN}
N = 20000
for k in range(6):
    print("off", k, churn(N + k))
heapscope.start(period_ms=20, max_bytes_per_s={BUDGET})
t = time.ticks_ms()
k = 0
while k < 6 or time.ticks_diff(time.ticks_ms(), t) < 6000:
    print("on", k, churn(N + k % 6))
    k += 1
heapscope.stop()
printed_on = k
for k in range(6):
    print("after", k, churn(N + k))
print("DONE", printed_on)
"#
    );
    let board = PtyBoard::start_on(&heapscope_tests::firmware::unix_micropython(), &["-X", "heapsize=122160", "-c", &program], CableSpec::uart(115_200));
    let mut port = serialport::new(board.port(), 115_200).timeout(Duration::from_millis(100)).open_native().expect("open the board's port");
    let mut received = Vec::new();
    let mut demux = Demux::new();
    let mut session = Session::new();
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(300);
    while !String::from_utf8_lossy(&text).contains("DONE") && Instant::now() < deadline {
        match port.read(&mut buf) {
            Ok(n) => {
                received.extend_from_slice(&buf[..n]);
                for item in demux.push(&buf[..n]) {
                    match item {
                        Item::Text(t) => text.extend(t),
                        Item::Frame(f) => {
                            session.apply(&f).unwrap_or_else(|e| panic!("frame {}: {e}", f.seq));
                        }
                        Item::Corrupt(c) => panic!("a damaged frame: {c}"),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("reading the port: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    assert!(text.contains("DONE"), "the program finished within 300 s: {text}");
    assert_eq!(demux.stats().corrupt_frames, 0);

    // The program's output, every line, in order: the same work gives the same checksums in
    // every phase.
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).filter(|w: &Vec<&str>| w.len() == 3).collect();
    let phase = |name: &str| -> Vec<(usize, String)> {
        lines.iter().filter(|w| w[0] == name).map(|w| (w[1].parse().unwrap(), w[2].to_string())).collect()
    };
    let (off, on, after) = (phase("off"), phase("on"), phase("after"));
    assert_eq!(off.iter().map(|x| x.0).collect::<Vec<_>>(), (0..6).collect::<Vec<_>>(), "{text}");
    assert_eq!(after, off, "the same work after streaming");
    let done: usize = text.lines().find_map(|l| l.strip_prefix("DONE ")).unwrap().trim().parse().unwrap();
    assert_eq!(on.len(), done, "every line printed while streaming arrived: {text}");
    for (i, (k, sum)) in on.iter().enumerate() {
        assert_eq!(*k, i, "in order");
        assert_eq!(*sum, off[k % 6].1, "line {k} intact");
    }

    // The stream, on the device's clock: the periodic snapshots (after what start() sends
    // itself, which the empty bucket pays for first) within the budget; skipped ones reported.
    let tally = StreamTally::of(&received);
    assert_eq!(tally.corrupt, 0);
    let frames = tally.stream(0);
    let w = Window::of(frames);
    let first_periodic = frames.iter().skip(1).position(|f| matches!(f.body, Body::Keyframe(_) | Body::Delta(_))).unwrap() + 2;
    let periodic = Window { span_ms: w.span_ms, ..Window::of(&frames[first_periodic..]) };
    eprintln!(
        "115200-baud cable: stream {} B in {} ms = {:.0} B/s, periodic snapshots {:.0} B/s (budget {BUDGET} B/s, line 11,520 B/s); {} snapshots sent ({} keyframes, {} deltas), {} skipped; {} lines of output while streaming; cable carried {} B to the host",
        w.bytes,
        w.span_ms,
        w.bytes_per_s(),
        periodic.bytes_per_s(),
        w.sent(),
        w.keyframes,
        w.deltas,
        w.skipped,
        on.len(),
        board.cable_stats().to_host
    );
    assert!(periodic.bytes_per_s() <= f64::from(BUDGET), "{} B in {} ms: over the budget", periodic.bytes, w.span_ms);
    assert!(w.span_ms >= 6000, "streamed for {} ms", w.span_ms);
    assert!(w.skipped > 0, "a 20 ms period does not fit the line: skipped snapshots are reported");
    assert!(w.sent() >= 6, "and snapshots still go: {}", w.sent());
    let ticks = w.sent() as u64 - 1 + w.skipped;
    assert!(ticks * 20 * 4 >= u64::from(w.span_ms), "every tick is sent or counted as skipped: {ticks} in {} ms", w.span_ms);
}

/// The same through the tool: `heapscope record` on the cable keeps the paced stream and the
/// skipped counts, and `inspect` reports them, with no damaged frames.
#[test]
fn the_tool_records_the_paced_stream_and_its_skipped_snapshots() {
    let program = format!(
        r#"
import heapscope, time
{CHURN}
time.sleep_ms(500)
heapscope.start(period_ms=20, max_bytes_per_s={BUDGET})
t = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), t) < 4000:
    churn(20000)
heapscope.stop()
print("DONE")
time.sleep(60)
"#
    );
    let board = PtyBoard::start_on(&heapscope_tests::firmware::unix_micropython(), &["-X", "heapsize=122160", "-c", &program], CableSpec::uart(115_200));
    let file = board.dir().join("paced.hsr");
    let file = file.to_str().unwrap();
    let out = std::process::Command::new(heapscope_tests::heapscope_binary())
        .args(["record", "--port", &board.port(), "--mode", "stream", "--duration", "10s", "-o", file])
        .output()
        .expect("run heapscope record");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new(heapscope_tests::heapscope_binary()).args(["inspect", "--json", file]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v["recording"];
    eprintln!("recorded: {} snapshots, {} skipped by the device, {} damaged", r["snapshots"], r["skipped_snapshots"], r["damaged"]);
    assert_eq!(r["damaged"], 0, "{v}");
    assert!(r["snapshots"].as_u64().unwrap() >= 5, "{v}");
    assert!(r["skipped_snapshots"].as_u64().unwrap() > 0, "{v}");
    let human = std::process::Command::new(heapscope_tests::heapscope_binary()).args(["inspect", file]).output().unwrap();
    assert!(String::from_utf8_lossy(&human.stdout).contains("the device skipped"), "{}", String::from_utf8_lossy(&human.stdout));
}
