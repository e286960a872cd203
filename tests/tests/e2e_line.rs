//! The tool against boards that behave like real ones on real lines: closed outputs, absurd
//! arguments, ports that are not REPLs, UART cables that drop bytes, resets, unplugs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use heapscope_tests::board::PtyBoard;
use heapscope_tests::cable::CableSpec;

use heapscope_tests::cli::{heapscope, json, run, stderr};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/mem_info").join(name)
}

/// A pipe whose reading end is already closed, as after `heapscope ... | head -0`.
fn widowed_pipe() -> std::process::Stdio {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe() fills two fds; the read end is closed at once, the write end is owned.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        libc::close(fds[0]);
        std::process::Stdio::from(std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    }
}

#[test]
fn a_closed_or_failing_stdout_is_never_a_panic() {
    let dump = fixture("seed_esp32_v1.11_mem_info1_int.txt");
    let dump = dump.to_str().unwrap();
    for args in [vec!["inspect", dump], vec!["inspect", "--json", dump], vec!["ports"], vec!["ports", "--json"]] {
        // The reader went away: the output ends quietly.
        let out = heapscope().args(&args).stdout(widowed_pipe()).output().unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        // A full device: a clear error, exit 1.
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
        let out = heapscope().args(&args).stdout(full).output().unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("writing standard output"), "{args:?}: {err}");
    }
}

#[test]
fn absurd_durations_are_refused_as_bad_input() {
    for (option, value) in [
        ("--interval", "10000000000000000000s"),
        ("--interval", "18446744073709551615s"),
        ("--duration", "1e30s"),
        ("--interval", "1e-300ms"),
        ("--duration", "NaN"),
    ] {
        let out = run(&["record", "--port", "/nonexistent", "-o", "/nonexistent/x.hsr", option, value]);
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{option} {value} panicked: {err}");
        assert_eq!(out.status.code(), Some(2), "{option} {value}: {err}");
        assert!(err.contains(value), "{option} {value}: the error names the value: {err}");
    }
}

#[test]
fn record_on_a_port_with_no_repl_explains_and_fails() {
    // `sleep` holds the port and never answers, like a device that is not a MicroPython REPL.
    let board = PtyBoard::start_on(Path::new("sleep"), &["120"], CableSpec::DIRECT);
    let file = board.dir().join("silent.hsr");
    let out = run(&["record", "--port", &board.port(), "-o", file.to_str().unwrap(), "--duration", "8s"]);
    let err = stderr(&out);
    assert!(err.contains("not a MicroPython REPL"), "{err}");
    assert!(err.contains("nothing was captured"), "{err}");
    assert!(err.contains("the port said nothing"), "what the port said is told: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");

    // A device that talks, but not MicroPython: its last line is quoted.
    let board = PtyBoard::start_on(Path::new("sh"), &["-c", "while :; do echo AT+READY; sleep 1; done"], CableSpec::DIRECT);
    let file = board.dir().join("talker.hsr");
    let out = run(&["record", "--port", &board.port(), "-o", file.to_str().unwrap(), "--duration", "8s"]);
    let err = stderr(&out);
    assert!(err.contains("the port's last line: \"AT+READY\""), "{err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
}

/// Polls an idle board for a while; returns each poll snapshot's `gc.mem_alloc()` as exported.
fn poll_an_idle_board(board: &PtyBoard, name: &str, duration: &str) -> Vec<u64> {
    let file = board.dir().join(name);
    let out = run(&["record", "--port", &board.port(), "-o", file.to_str().unwrap(), "--mode", "poll", "--interval", "200ms", "--duration", duration]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&run(&["export", "--json", file.to_str().unwrap()]));
    let snapshots = v["snapshots"].as_array().expect("snapshots");
    snapshots
        .iter()
        .map(|s| {
            let r = &s["reported"];
            // gc.mem_alloc() is in the JSON, and agrees with mem_info's `used`.
            assert_eq!(r["mem_alloc"], r["used"], "{r}");
            assert!(r["mem_free"].as_u64().is_some(), "{r}");
            r["mem_alloc"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn polls_report_what_python_sees() {
    let board = PtyBoard::start(&["-X", "heapsize=120K"]);
    let used = poll_an_idle_board(&board, "python.hsr", "3s");
    assert!(used.len() >= 3, "{used:?}\n{}", board.transcript());
}

/// Bytes per GC block on the test board: the unix port on this (64-bit) host.
const BLOCK: u64 = 2 * std::mem::size_of::<usize>() as u64 * 2;

#[test]
fn a_poll_leaves_at_most_one_block_of_garbage() {
    let board = PtyBoard::start(&["-X", "heapsize=120K"]);
    let used = poll_an_idle_board(&board, "garbage.hsr", "5s");
    assert!(used.len() >= 8, "{used:?}\n{}", board.transcript());
    // From the second poll on (the first includes starting the poll loop), on an idle board
    // and with no collection in between (used only grows).
    let steady = &used[1..];
    assert!(steady.windows(2).all(|w| w[1] >= w[0]), "a collection ran meanwhile: {used:?}");
    let per_poll = (steady[steady.len() - 1] - steady[0]) as f64 / (steady.len() - 1) as f64;
    println!("garbage per poll: {per_poll:.1} B over {} polls (block: {BLOCK} B)", steady.len() - 1);
    assert!(per_poll <= BLOCK as f64, "{per_poll:.1} B of garbage per poll: {used:?}");
    // And the tool says what it measured, in the recording.
    let file = board.dir().join("garbage.hsr");
    let csv = String::from_utf8(run(&["export", "--csv", file.to_str().unwrap()]).stdout).unwrap();
    assert!(csv.contains("poll cost: "), "{csv}");
}

fn open_link(board: &PtyBoard) -> Box<dyn heapscope::link::Link> {
    let port = heapscope::port::open(&board.port(), heapscope::port::OpenOptions { baud: 115_200, reset: false }).expect("open the board");
    Box::new(port)
}

/// Code whose output shows whether it arrived intact: it prints the sum of its own text.
fn exchange_code(i: usize) -> (String, String) {
    let text = format!("heapscope exchange {i}: ").repeat(11);
    let sum: u32 = text.bytes().map(u32::from).sum();
    (format!("t = '{text}'\ns = 0\nfor c in t:\n    s += ord(c)\nprint('sum', s)\n"), format!("sum {sum}"))
}

/// `exchanges` pieces of code through the raw REPL of a board behind a 115200-baud cable with a
/// receive buffer of `rx_buffer` bytes; returns how many failed (lost bytes show as errors or a
/// wrong sum) and the cable's counts.
fn raw_repl_exchanges(exchanges: usize, raw_paste: Option<bool>, rx_buffer: usize) -> (usize, heapscope_tests::cable::CableStats) {
    let spec = CableSpec::uart(115_200).with_rx_buffer(rx_buffer);
    let board = PtyBoard::start_on(&heapscope_tests::board::micropython(), &["-X", "heapsize=120K"], spec);
    let mut link = open_link(&board);
    let mut demux = heapscope_protocol::wire::demux::Demux::new();
    let mut failures = 0;
    {
        let mut repl = heapscope::repl::RawRepl::new(&mut *link, &mut demux);
        repl.raw_paste = raw_paste;
        repl.enter().unwrap_or_else(|e| panic!("{e}\n{}", board.transcript()));
        for i in 0..exchanges {
            let (code, expected) = exchange_code(i);
            match repl.exec(&code, Duration::from_secs(10)) {
                Ok(out) if String::from_utf8_lossy(&out.stdout).trim() == expected => {}
                _ => {
                    failures += 1;
                    // Back to a known state for the next exchange.
                    let _ = repl.leave();
                    repl.enter().unwrap_or_else(|e| panic!("{e}\n{}", board.transcript()));
                }
            }
        }
    }
    // However it went, the conversation left the board at its normal prompt.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !board.transcript().trim_end().ends_with(">>>") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(board.transcript().trim_end().ends_with(">>>"), "{}", board.transcript());
    (failures, board.cable_stats())
}

#[test]
fn a_hundred_raw_repl_exchanges_over_a_uart_with_a_small_receive_buffer() {
    // The receive buffer of MicroPython's UART REPL (256 B). Each exchange is about 300 bytes of code,
    // more than the buffer holds: sent at once, any pause of the board loses bytes.
    // As on a board without raw paste: paced pieces.
    let (paced, stats) = raw_repl_exchanges(100, Some(false), CableSpec::UART_RX_BUFFER);
    println!("paced, no raw paste: {paced} of 100 exchanges failed; cable: {stats:?}");
    assert_eq!(paced, 0, "{stats:?}");
    // Raw paste: the board's own flow control (a 128-byte window).
    let (pasted, stats) = raw_repl_exchanges(100, None, CableSpec::UART_RX_BUFFER);
    println!("raw paste: {pasted} of 100 exchanges failed; cable: {stats:?}");
    assert_eq!(pasted, 0, "{stats:?}");
}

#[test]
fn a_conversation_that_fails_leaves_the_board_at_its_prompt() {
    let board = PtyBoard::start(&["-X", "heapsize=120K"]);
    let mut link = open_link(&board);
    let mut demux = heapscope_protocol::wire::demux::Demux::new();
    {
        let mut repl = heapscope::repl::RawRepl::new(&mut *link, &mut demux);
        repl.enter().unwrap();
        // Code that waits for input, and a reply that never comes: the conversation fails
        // with the board in the raw REPL, running code.
        repl.start("import sys\nsys.stdin.buffer.read(1)\n").unwrap();
        let err = repl.read_reply(b"never printed", Duration::from_millis(500)).unwrap_err();
        assert!(matches!(err, heapscope::repl::ReplError::Timeout { .. }), "{err}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !board.transcript().trim_end().ends_with(">>>") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = board.transcript();
    assert!(t.trim_end().ends_with(">>>") && t.contains("raw REPL"), "{t}");
}

/// Captures from a board until `done` says enough, or a generous limit passes.
fn capture_until(port: &str, mode: heapscope::capture::Mode, mut step: impl FnMut(&[heapscope::entry::Entry]) -> bool) -> Vec<heapscope::entry::Entry> {
    let opener = heapscope::link::PathOpener { path: port.to_string(), options: heapscope::port::OpenOptions { baud: 115_200, reset: false } };
    let options = heapscope::capture::Options { mode, poll_interval: Duration::from_millis(300), ..Default::default() };
    let mut capture = heapscope::capture::Capture::start(Box::new(opener), options).expect("start the capture");
    let mut entries = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if let Ok(e) = capture.entries.recv_timeout(Duration::from_millis(100)) {
            entries.push(e);
        }
        if step(&entries) {
            break;
        }
    }
    capture.stop();
    entries.extend(capture.entries.try_iter());
    entries
}

fn resets(entries: &[heapscope::entry::Entry]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| match e {
            heapscope::entry::Entry::Segment { reason: heapscope::entry::SegmentReason::Reset, detail, .. } => Some(detail.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_reset_with_a_nul_before_the_banner_is_marked() {
    let mut board = PtyBoard::start(&["-X", "heapsize=120K"]);
    let mut reset_done = false;
    let port = board.port();
    let entries = capture_until(&port, heapscope::capture::Mode::Passive, |entries| {
        if !reset_done && !entries.is_empty() {
            std::thread::sleep(Duration::from_millis(300));
            board.reset(b"\x00", &["-X", "heapsize=120K"]);
            reset_done = true;
        }
        !resets(entries).is_empty()
    });
    assert_eq!(resets(&entries).len(), 1, "{entries:?}\n{}", board.transcript());
}

#[test]
fn a_reset_into_a_silent_main_py_is_marked_while_polling() {
    let mut board = PtyBoard::start(&["-X", "heapsize=120K"]);
    let port = board.port();
    let mut reset_done = false;
    let entries = capture_until(&port, heapscope::capture::Mode::Poll, |entries| {
        let polled = entries.iter().filter(|e| matches!(e, heapscope::entry::Entry::Snapshot { .. })).count();
        if !reset_done && polled >= 3 {
            // No banner, no NUL: a main.py that runs and prints nothing.
            board.reset(b"", &["-X", "heapsize=120K", "-c", "import time\nwhile True:\n    time.sleep(1)\n"]);
            reset_done = true;
        }
        !resets(entries).is_empty()
    });
    let r = resets(&entries);
    assert_eq!(r.len(), 1, "{entries:?}");
    assert!(r[0].contains("stopped answering"), "{r:?}");
}

#[test]
fn the_port_can_come_from_the_environment() {
    let board = PtyBoard::start(&["-X", "heapsize=120K"]);
    let file = board.dir().join("env.hsr");
    let out = heapscope()
        .env("HEAPSCOPE_PORT", board.port())
        .args(["record", "-o", file.to_str().unwrap(), "--mode", "poll", "--interval", "300ms", "--duration", "2s", "--json"])
        .output()
        .unwrap();
    let summary = json(&out);
    assert_eq!(summary["port"].as_str(), Some(board.port().as_str()), "{summary}");
    assert!(summary["snapshots"].as_u64() >= Some(1), "{summary}");
}

/// Whether this process holds a file descriptor on `device`.
fn holds_open(device: &Path) -> bool {
    std::fs::read_dir("/proc/self/fd").unwrap().flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let t = target.to_string_lossy();
            t == device.to_string_lossy() || t == format!("{} (deleted)", device.display())
        })
    })
}

#[test]
fn after_an_unplug_the_dead_port_is_closed_and_the_board_is_found_under_its_new_name() {
    use heapscope::entry::{Entry, SegmentReason};
    let mut board = PtyBoard::start(&["-X", "heapsize=120K"]);
    // The tool is given the device itself (like /dev/ttyACM0), not the by-id link.
    let device = std::fs::canonicalize(board.port()).unwrap();
    let opener = heapscope::link::BoardOpener::new(device.display().to_string(), heapscope::port::OpenOptions { baud: 115_200, reset: false })
        .with_by_id_dir(board.dir());
    let options = heapscope::capture::Options { mode: heapscope::capture::Mode::Poll, poll_interval: Duration::from_millis(300), ..Default::default() };
    let mut capture = heapscope::capture::Capture::start(Box::new(opener), options).unwrap();
    let mut entries = Vec::new();
    let next = |entries: &mut Vec<Entry>, what: &str, done: &dyn Fn(&[Entry]) -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !done(entries) {
            assert!(std::time::Instant::now() < deadline, "waited for {what}: {entries:?}");
            if let Ok(e) = capture.entries.recv_timeout(Duration::from_millis(100)) {
                entries.push(e);
            }
        }
    };
    next(&mut entries, "two snapshots", &|e| e.iter().filter(|e| matches!(e, Entry::Snapshot { .. })).count() >= 2);
    assert!(holds_open(&device));
    board.unplug();
    next(&mut entries, "the gap", &|e| e.iter().any(|e| matches!(e, Entry::Gap { .. })));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while holds_open(&device) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!holds_open(&device), "the dead port {} is still open", device.display());
    board.plug_elsewhere();
    let moved = std::fs::canonicalize(board.port()).unwrap();
    assert_ne!(moved, device, "the board came back under another name");
    next(&mut entries, "the reattach and a snapshot after it", &|e| {
        e.iter()
            .position(|e| matches!(e, Entry::Segment { reason: SegmentReason::Reattach, .. }))
            .is_some_and(|at| e[at..].iter().any(|e| matches!(e, Entry::Snapshot { .. })))
    });
    capture.stop();
}
