//! Who holds this memory, against the real stock interpreter: `heapscope dump` through the raw
//! REPL and `heapscope objects`, checked against what `gc.mem_free()` gains when the holders are
//! deleted and the heap collected.

use std::time::Duration;

use heapscope::link::PathOpener;
use heapscope::port::OpenOptions;
use heapscope_tests::board::PtyBoard;
use heapscope_tests::truth::{board_exec, named, who_holds_the_memory, APP};

#[test]
fn retained_sizes_match_what_deleting_the_holders_frees() {
    let board = PtyBoard::start(&["-X", "heapsize=1M"]);
    who_holds_the_memory(&board, 8, "raw-repl");
}

#[test]
fn a_live_session_takes_a_dump_on_request() {
    use heapscope::capture::{Capture, Command, Mode, Options};
    let board = PtyBoard::start(&["-X", "heapsize=1M"]);
    std::fs::write(board.dir().join("app.py"), APP).unwrap();
    board_exec(&board, "import app\n");
    for mode in [Mode::Passive, Mode::Poll] {
        let opener = PathOpener { path: board.port(), options: OpenOptions { baud: 115_200, reset: false } };
        let options = Options { mode, poll_interval: Duration::from_millis(300), ..Options::default() };
        let mut capture = Capture::start(Box::new(opener), options).expect("start the capture");
        std::thread::sleep(Duration::from_millis(500));
        let (reply, answer) = std::sync::mpsc::channel();
        capture.send(Command::Dump(reply));
        let taken = answer.recv_timeout(Duration::from_secs(120)).expect("an answer").expect("a dump");
        let a = &taken.analysis;
        let readings = named(a, "app.readings");
        assert_eq!(a.type_name(readings), "dict", "{mode:?}");
        assert!(a.retained(readings) > 100_000, "{mode:?}: {}", a.retained(readings));
        capture.stop();
    }
    // However the sessions ended, the board is at its prompt.
    std::thread::sleep(Duration::from_millis(300));
    assert!(board.transcript().trim_end().ends_with(">>>"), "{}", board.transcript());
}
