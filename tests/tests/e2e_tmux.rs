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
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "waited for {text:?}; the screen shows:\n{s}");
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
    t.keys("3");
    let s = t.wait_for("┌ Timeline");
    assert!(!s.contains("Keys (any key closes)"), "the help closed: {s}");
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
