//! The tests' UART-like cable: paced both ways, and a board receive buffer that drops what
//! overflows. Checked with plain programs as boards: `sleep` never reads its input, `cat` echoes
//! everything back.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use heapscope_tests::board::PtyBoard;
use heapscope_tests::cable::{CableSpec, CableStats};
use serialport::SerialPort;

fn open(board: &PtyBoard) -> Box<dyn SerialPort> {
    serialport::new(board.port(), 115_200).timeout(Duration::from_millis(50)).open().expect("open the board's port")
}

/// Waits until the cable's counts satisfy `done` (generous: the machine may be loaded).
fn wait_for(board: &PtyBoard, done: impl Fn(&CableStats) -> bool) -> CableStats {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = board.cable_stats();
        if done(&stats) || Instant::now() > deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_board_that_does_not_read_keeps_only_its_receive_buffer_and_the_rest_is_dropped_and_counted() {
    let board = PtyBoard::start_on(Path::new("sleep"), &["60"], CableSpec::uart(115_200).with_rx_buffer(64));
    let mut port = open(&board);
    port.write_all(&[b'x'; 1000]).unwrap();
    let stats = wait_for(&board, |s| s.to_board + s.dropped >= 1000);
    assert_eq!(stats, CableStats { to_board: 64, dropped: 936, to_host: 0 });
}

#[test]
fn a_direct_cable_drops_nothing() {
    let board = PtyBoard::start_on(Path::new("sleep"), &["60"], CableSpec::DIRECT);
    let mut port = open(&board);
    port.write_all(&[b'x'; 1000]).unwrap();
    let stats = wait_for(&board, |s| s.to_board >= 1000);
    assert_eq!((stats.to_board, stats.dropped), (1000, 0));
}

#[test]
fn a_uart_cable_carries_no_more_than_its_rate_and_loses_nothing_when_the_board_keeps_up() {
    let spec = CableSpec::uart(115_200);
    assert_eq!(spec.bytes_per_sec, Some(11_520));
    let board = PtyBoard::start_on(Path::new("cat"), &[], spec);
    let mut port = open(&board);
    let sent: Vec<u8> = (0..4608u32).map(|i| b'a' + (i % 26) as u8).collect();
    let started = Instant::now();
    let mut echoed = Vec::new();
    // Written in pieces smaller than the receive buffer, as a paced tool does: `cat` reads as
    // fast as they come, so nothing may be lost.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (i, piece) in sent.chunks(64).enumerate() {
        port.write_all(piece).unwrap();
        while echoed.len() < i * 64 + piece.len() && Instant::now() < deadline {
            let mut buf = [0u8; 1024];
            if let Ok(n) = port.read(&mut buf) {
                echoed.extend_from_slice(&buf[..n]);
            }
        }
    }
    let elapsed = started.elapsed();
    assert!(echoed == sent, "{} of {} bytes echoed intact; cable: {:?}", echoed.iter().zip(&sent).take_while(|(a, b)| a == b).count(), sent.len(), board.cable_stats());
    let stats = board.cable_stats();
    assert_eq!((stats.to_board, stats.dropped, stats.to_host), (4608, 0, 4608));
    // A lower bound only (a loaded machine makes the line slower, never faster): 4,608 bytes
    // each way at 11,520 B/s take 0.4 s, less the 4 ms a direction may save up.
    assert!(elapsed >= Duration::from_millis(380), "4,608 bytes crossed in {elapsed:?}: faster than 11,520 B/s");
}
