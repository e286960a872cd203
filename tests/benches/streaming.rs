//! `cargo bench -p heapscope-tests --bench streaming`: what streaming costs the program it
//! measures. A CPU-bound, heap-churning program on the module build (target/firmware/unix,
//! `scripts/firmware`) does the same work with streaming off and on (`heapscope.start()`: the
//! default period of 1 s and the default line budget), alternating, in one run. Each side's
//! figure is the least CPU time (user + system, the timer thread and the writes included) of its
//! runs: the machine's other load does not count against either side.
//!
//! Prints the on/off ratio (the slowdown), the stream's bytes per second against the budget and
//! snapshots sent and skipped. The pty takes writes without blocking; on a UART without a
//! transmit buffer each frame would also block for its bytes / 11,520 s: printed as the line time
//! share, computed from the measured bytes, not timed. Asserts nothing about time.

use std::path::Path;
use std::process::Command;

use heapscope_tests::workload::{StreamTally, Window, CHURN};

const RUNS: usize = 3;
/// The default budget on ports that cannot tell their line: 5 % of a 115200-baud UART.
const DEFAULT_BUDGET: f64 = 576.0;
const UART_BYTES_PER_S: f64 = 11_520.0;

/// Runs the churn for `rounds` with streaming on or off: (CPU seconds, checksum, output).
fn run(interpreter: &Path, rounds: u64, stream: bool) -> (f64, String, StreamTally) {
    let program = format!(
        "import heapscope\n{CHURN}\nif {stream}:\n    heapscope.start()\nv = churn({rounds})\nif {stream}:\n    heapscope.stop()\nprint('CHECK', v)\n",
        stream = if stream { "True" } else { "False" }
    );
    let out_file = std::env::temp_dir().join(format!("heapscope-bench-streaming-{}.out", std::process::id()));
    // bash's `times` prints the CPU time of the children it waited for.
    let out = Command::new("bash")
        .args(["-c", "\"$@\" > \"$OUT\"; s=$?; times; exit $s", "_"])
        .arg(interpreter)
        .args(["-X", "heapsize=122160", "-c", &program])
        .env("OUT", &out_file)
        .output()
        .expect("run bash");
    let tally = StreamTally::of(&std::fs::read(&out_file).expect("the program's output"));
    let _ = std::fs::remove_file(&out_file);
    let text = String::from_utf8_lossy(&tally.text).into_owned();
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let times = String::from_utf8_lossy(&out.stdout);
    let children = times.lines().nth(1).expect("times prints two lines");
    let cpu: f64 = children.split(' ').map(minutes_seconds).sum();
    let check = text.lines().find_map(|l| l.strip_prefix("CHECK ")).unwrap_or_else(|| panic!("no checksum in {text}")).to_string();
    (cpu, check, tally)
}

/// `1m2.345s` in seconds.
fn minutes_seconds(s: &str) -> f64 {
    let (m, rest) = s.split_once('m').expect("minutes");
    m.parse::<f64>().unwrap() * 60.0 + rest.trim_end_matches('s').parse::<f64>().unwrap()
}

fn main() {
    let interpreter = heapscope_tests::firmware::unix_micropython();
    // About 2 s of CPU per run.
    let (probe, _, _) = run(&interpreter, 20_000, false);
    let rounds = ((20_000.0 * 2.0 / probe.max(0.01)) as u64).clamp(20_000, 2_000_000);
    let (mut off, mut on) = (Vec::new(), Vec::new());
    let mut window = Window::default();
    let mut corrupt = 0;
    for _ in 0..RUNS {
        let (cpu_off, check_off, _) = run(&interpreter, rounds, false);
        let (cpu_on, check_on, tally) = run(&interpreter, rounds, true);
        assert_eq!(check_on, check_off, "the same work with streaming on");
        off.push(cpu_off);
        on.push(cpu_on);
        window.add(&Window::of(tally.stream(0)));
        corrupt += tally.corrupt;
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let ratio = best(&on) / best(&off);
    println!(
        "streaming slowdown (default period 1 s, default budget; {rounds} churn rounds, best CPU time of {RUNS} runs each): off {:.3} s, on {:.3} s, on/off {ratio:.4} ({:+.2} %)   [off {off:.3?} on {on:.3?}]",
        best(&off),
        best(&on),
        (ratio - 1.0) * 100.0
    );
    println!(
        "stream while on: {:.0} B/s against a budget of {DEFAULT_BUDGET:.0} B/s ({:.0} %); {} snapshots sent ({} keyframes, {} deltas), {} skipped; {} corrupt frames",
        window.bytes_per_s(),
        100.0 * window.bytes_per_s() / DEFAULT_BUDGET,
        window.sent(),
        window.keyframes,
        window.deltas,
        window.skipped,
        corrupt
    );
    println!(
        "line time on a 115200-baud UART that blocks for every byte (computed from the bytes above): {:.2} % of the program's time",
        100.0 * window.bytes_per_s() / UART_BYTES_PER_S
    );
}
