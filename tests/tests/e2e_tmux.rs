//! The full-screen view in a real terminal (tmux): it starts, shows the map, answers `?`,
//! switches views, quits on `q`, and leaves the terminal as it found it.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        assert!(
            Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()),
            "tmux is not installed: scripts/test installs it (apt-get install tmux)"
        );
        static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = Tmux { socket: format!("heapscope-test-{}-{n}", std::process::id()) };
        let out = t.run(&["-f", "/dev/null", "new-session", "-d", "-s", "hs", "-x", "120", "-y", "40", "sh"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // Keep the pane after the program exits, to look at what it left behind.
        t.run(&["set-option", "-t", "hs", "remain-on-exit", "on"]);
        // A shell stays after the program, so the terminal it left can be examined (tmux
        // reports no cursor state for a dead pane).
        let wrapped = format!("{command}; echo heapscope exited $?; sleep 120");
        t.run(&["respawn-pane", "-k", "-t", "hs", &wrapped]);
        t
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("run tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "hs"]).stdout).into_owned()
    }

    fn display(&self, format: &str) -> String {
        String::from_utf8_lossy(&self.run(&["display-message", "-p", "-t", "hs", format]).stdout).trim().to_string()
    }

    fn keys(&self, keys: &str) {
        self.run(&["send-keys", "-t", "hs", keys]);
    }

    /// Waits (up to a limit, a hang detector) until the screen shows `text`.
    fn wait_for(&self, text: &str) -> String {
        self.wait_longer_for(text, Duration::from_secs(90))
    }

    /// Waits (up to a limit) until the screen no longer shows `text`.
    fn wait_until_gone(&self, text: &str) {
        let start = Instant::now();
        while self.screen().contains(text) {
            assert!(start.elapsed() < Duration::from_secs(90), "{text:?} is still on the screen:\n{}", self.screen());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_longer_for(&self, text: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            assert!(start.elapsed() < limit, "waited for {text:?}; the screen shows:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

fn exercise(t: &Tmux, first_screen_has: &str) {
    let s = t.wait_for("Heap map");
    assert!(s.contains(first_screen_has), "{s}");
    assert_eq!(t.display("#{alternate_on}"), "1", "the view uses the alternate screen");
    t.keys("?");
    t.wait_for("Keys (any key closes)");
    t.keys("Escape");
    // Sent together, Escape and 3 would read as Alt-3: one key, which closes the help.
    t.wait_until_gone("Keys (any key closes)");
    t.keys("3");
    t.wait_for("┌ Timeline");
    t.keys("2");
    t.wait_for("┌ Fragmentation");
    t.keys("q");
    let after = t.wait_for("heapscope exited");
    assert!(after.contains("heapscope exited 0"), "exit status 0:\n{after}");
    assert_eq!(t.display("#{alternate_on}"), "0", "back from the alternate screen");
    assert_eq!(t.display("#{cursor_flag}"), "1", "the cursor is visible again");
    assert!(!after.contains("Heap map") && !after.contains("┌"), "nothing of the view is left:\n{after}");
}

#[test]
fn replay_in_a_real_terminal() {
    let file = std::env::temp_dir().join(format!("heapscope-tmux-{}.hsr", std::process::id()));
    std::fs::write(&file, heapscope::cmd::demo::BUNDLED_RECORDING).unwrap();
    let bin = heapscope_tests::heapscope_binary();
    let t = Tmux::start(&format!("{} replay {}", bin.display(), file.display()));
    exercise(&t, "REPLAY");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn demo_in_a_real_terminal() {
    let bin = heapscope_tests::heapscope_binary();
    let interpreter = heapscope_tests::board::micropython();
    let t = Tmux::start(&format!("{} demo --micropython {}", bin.display(), interpreter.display()));
    t.wait_for(" 1/");
    exercise(&t, "LIVE");
}

#[test]
fn attach_to_a_board_in_a_real_terminal() {
    let board = heapscope_tests::board::PtyBoard::start(&["-X", "heapsize=120K"]);
    let bin = heapscope_tests::heapscope_binary();
    let file = board.dir().join("attach.hsr");
    let t = Tmux::start(&format!("{} attach --port {} --interval 300ms -o {}", bin.display(), board.port(), file.display()));
    // Nothing is printed by the idle REPL: after listening, auto mode polls.
    t.wait_for(" 2/");
    exercise(&t, "LIVE");
    // The recording made alongside is complete, and polling left the board at its prompt.
    let rec = heapscope::recording::Recording::open(&file).unwrap();
    assert!(rec.closed && rec.snapshot_count() >= 2, "closed {}, {} snapshots", rec.closed, rec.snapshot_count());
    // Its end record gives the session's length, not time 0.
    let last = rec.entries.last().map_or(0, |e| e.at());
    assert!(rec.from_index && rec.duration >= last && last > 0, "length {} us, last entry at {last} us", rec.duration);
    assert!(board.transcript().trim_end().ends_with(">>>"), "{}", board.transcript());
}

#[test]
fn objects_view_of_a_dump_in_a_real_terminal() {
    let file = std::env::temp_dir().join(format!("heapscope-tmux-{}.hsd", std::process::id()));
    std::fs::write(&file, heapscope_objects::synth::example().to_json()).unwrap();
    let bin = heapscope_tests::heapscope_binary();
    let t = Tmux::start(&format!("{} objects --tui {}", bin.display(), file.display()));
    let s = t.wait_for("┌ Objects");
    assert!(s.contains("▸ dict  app.readings"), "the dominator tree, largest first:\n{s}");
    assert!(s.contains("kept alive by (named root): app.readings"), "the selected object's path:\n{s}");
    // Expand twice and walk down to a bytearray: its path names the module and the global.
    for k in ["Right", "Down", "Right", "Down", "Right", "Down", "Right", "Down"] {
        t.keys(k);
    }
    let s = t.wait_for("app.readings -> list -> bytearray");
    assert!(s.contains("▾ dict  app.readings") && s.contains("length 200"), "{s}");
    // The heap map shows the dump's moment (`o` there is covered by tool/tests/tui_objects.rs).
    t.keys("1");
    t.wait_for("Heap map");
    t.keys("q");
    let after = t.wait_for("heapscope exited");
    assert!(after.contains("heapscope exited 0"), "exit status 0:\n{after}");
    let _ = std::fs::remove_file(&file);
}

/// The demo's story on screen: the run stops at the MemoryError, the fragmentation view names the
/// failed size beside the largest free block, and the timeline marks the failure.
fn the_failure_is_shown(t: &Tmux) {
    // The workload fails about 9 s in; a loaded machine may take longer.
    let s = t.wait_longer_for("MemoryError", Duration::from_secs(120));
    assert!(s.contains("1,088 B failed"), "the footer says what failed:\n{s}");
    t.keys("2");
    let s = t.wait_for("┌ Fragmentation");
    let line = s.lines().find(|l| l.contains("B failed · largest free block")).unwrap_or_else(|| panic!("{s}"));
    let after = line.split("MemoryError: 1,088 B failed · largest free block ").nth(1).unwrap_or_else(|| panic!("{s}"));
    let largest: u64 = after.split(" B").next().unwrap().replace(',', "").parse().unwrap_or_else(|e| panic!("{e}: {line}"));
    assert!(largest < 1088, "the largest free block is too small for the request: {line}");
    t.keys("3");
    t.wait_for("┌ Timeline");
    // The whole view, not a screen caught while the terminal still redraws the one before.
    let s = t.wait_for("MemoryError: allocating 1,088 B failed");
    let marks = s.lines().find(|l| l.contains('!') && !l.contains("MemoryError")).unwrap_or_else(|| panic!("no marker row:\n{s}"));
    assert!(marks.matches('!').count() >= 1, "{s}");
    assert!(s.contains("MemoryError: allocating 1,088 B failed"), "the marker is named with its size:\n{s}");
    t.keys("q");
    let after = t.wait_for("heapscope exited");
    assert!(after.contains("heapscope exited 0"), "{after}");
}

#[test]
fn the_live_demo_stops_at_the_memory_error() {
    let bin = heapscope_tests::heapscope_binary();
    let interpreter = heapscope_tests::board::micropython();
    let t = Tmux::start(&format!("{} demo --micropython {}", bin.display(), interpreter.display()));
    t.wait_for(" 1/");
    the_failure_is_shown(&t);
}

#[test]
fn the_replayed_demo_plays_to_the_memory_error() {
    let bin = heapscope_tests::heapscope_binary();
    let t = Tmux::start(&format!("{} demo --replay", bin.display()));
    t.wait_for("REPLAY ▶");
    the_failure_is_shown(&t);
}

#[test]
fn typing_in_the_console_while_polling_reaches_the_board() {
    let board = heapscope_tests::board::PtyBoard::start(&["-X", "heapsize=120K"]);
    let bin = heapscope_tests::heapscope_binary();
    let file = board.dir().join("typed.hsr");
    let t = Tmux::start(&format!("{} attach --port {} --mode poll --interval 300ms -o {}", bin.display(), board.port(), file.display()));
    t.wait_for(" 2/");
    t.keys("7");
    t.wait_for("┌ Console");
    t.keys("i");
    // `-l`: the text literally, then Enter.
    t.run(&["send-keys", "-t", "hs", "-l", "print('answer', 6*7)"]);
    t.keys("Enter");
    t.wait_for("answer 42");
    // Polling resumes after the typing, and what was typed is in the recording.
    let polled = t.screen();
    t.keys("Escape");
    // Apart, or the terminal reads Escape and q as Alt-q.
    std::thread::sleep(Duration::from_millis(300));
    t.keys("q");
    t.wait_for("heapscope exited");
    let rec = heapscope::recording::Recording::open(&file).unwrap();
    let console: Vec<u8> = rec
        .entries
        .iter()
        .filter_map(|e| match e {
            heapscope::recording::Stored::Entry(heapscope::entry::Entry::Console { bytes, .. }) => Some(bytes.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let console = String::from_utf8_lossy(&console);
    assert!(console.contains("print('answer', 6*7)") && console.contains("answer 42"), "{console}\n{polled}");
    assert!(board.transcript().trim_end().ends_with(">>>"), "{}", board.transcript());
}

#[test]
fn attach_to_a_port_with_no_repl_says_why_nothing_comes() {
    // `sleep` holds the port and never answers.
    let board = heapscope_tests::board::PtyBoard::start_on(std::path::Path::new("sleep"), &["120"], heapscope_tests::cable::CableSpec::DIRECT);
    let bin = heapscope_tests::heapscope_binary();
    let t = Tmux::start(&format!("{} attach --port {}", bin.display(), board.port()));
    t.wait_for("not a MicroPython REPL");
    t.keys("q");
    t.wait_for("heapscope exited");
}

#[test]
fn the_header_shows_the_cable_out_as_it_happens() {
    let board = heapscope_tests::board::PtyBoard::start(&["-X", "heapsize=120K"]);
    let bin = heapscope_tests::heapscope_binary();
    let t = Tmux::start(&format!("{} attach --port {} --mode poll --interval 300ms", bin.display(), board.port()));
    t.wait_for(" 2/");
    t.wait_for("LIVE");
    board.unplug();
    t.wait_for("CABLE OUT");
    board.plug();
    t.wait_for("LIVE");
    t.keys("q");
    t.wait_for("heapscope exited");
}

#[test]
fn a_terminal_resized_too_small_says_so_and_back_shows_the_map() {
    let file = std::env::temp_dir().join(format!("heapscope-tmux-small-{}.hsr", std::process::id()));
    std::fs::write(&file, heapscope::cmd::demo::BUNDLED_RECORDING).unwrap();
    let bin = heapscope_tests::heapscope_binary();
    let t = Tmux::start(&format!("{} replay {}", bin.display(), file.display()));
    t.wait_for("Heap map");
    t.keys("5");
    t.wait_for("┌ Diff");
    // Down to 8 columns (the Map and Diff views once crashed under 11), and back.
    t.run(&["resize-window", "-t", "hs", "-x", "8", "-y", "6"]);
    t.wait_for("small");
    t.run(&["resize-window", "-t", "hs", "-x", "120", "-y", "40"]);
    t.wait_for("┌ Diff");
    t.run(&["resize-window", "-t", "hs", "-x", "50", "-y", "20"]);
    t.wait_for("terminal too small: 50×20");
    t.keys("q");
    let after = t.wait_for("heapscope exited");
    assert!(after.contains("heapscope exited 0"), "{after}");
    let _ = std::fs::remove_file(&file);
}
