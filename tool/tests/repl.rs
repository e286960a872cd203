//! The raw REPL driver against scripted boards: the protocol's paths and its failures.

mod fakes;

use std::time::Duration;

use fakes::ScriptedLink;
use heapscope::repl::{RawRepl, ReplError};
use heapscope_protocol::wire::demux::Demux;

const PROMPT: &[u8] = b"raw REPL; CTRL-B to exit\r\n>";

#[test]
fn raw_paste_exec_returns_stdout_and_stderr() {
    let mut link = ScriptedLink::new(&[
        (b"\x01", PROMPT),
        (b"\x05A\x01", b"R\x01\x80\x00\x01"),
        (b"\x04", b"\x04hello\r\n\x04Traceback: oops\r\n\x04>"),
    ]);
    let mut demux = Demux::new();
    let mut repl = RawRepl::new(&mut link, &mut demux);
    repl.enter().unwrap();
    let out = repl.exec("print('hello')", Duration::from_secs(2)).unwrap();
    assert_eq!(out.stdout, b"hello\r\n");
    assert_eq!(out.stderr, b"Traceback: oops\r\n");
    assert_eq!(repl.raw_paste, Some(true));
}

#[test]
fn old_boards_without_raw_paste_use_the_plain_raw_repl() {
    // A v1.13 board takes `\x05A` as code; the `\x01` re-enters the raw REPL.
    let mut link = ScriptedLink::new(&[
        (b"\x01", PROMPT),
        (b"\x05A\x01", PROMPT),
        (b"\x04", b"OKold\r\n\x04\x04>"),
    ]);
    let log = link.log.clone();
    let mut demux = Demux::new();
    let mut repl = RawRepl::new(&mut link, &mut demux);
    repl.enter().unwrap();
    let out = repl.exec("print('old')", Duration::from_secs(2)).unwrap();
    assert_eq!(out.stdout, b"old\r\n");
    assert_eq!(repl.raw_paste, Some(false));
    assert!(log.lock().unwrap().ends_with(b"print('old')\x04"));
}

#[test]
fn a_board_that_resets_mid_command_is_reported() {
    let mut link = ScriptedLink::new(&[
        (b"\x01", PROMPT),
        (b"\x05A\x01", b"R\x01\x80\x00\x01"),
        (b"\x04", b"\x04partial output\r\nets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13\r\n"),
    ]);
    let mut demux = Demux::new();
    let mut repl = RawRepl::new(&mut link, &mut demux);
    repl.enter().unwrap();
    let err = repl.exec("import machine", Duration::from_secs(2)).unwrap_err();
    assert!(matches!(err, ReplError::BoardReset { .. }), "{err:?}");
    assert!(err.to_string().contains("the board reset while running a command"), "{err}");
}

#[test]
fn something_that_is_not_a_repl_is_named() {
    let mut link = ScriptedLink::new(&[(b"\x01", b"AT+OK\r\n")]);
    let mut demux = Demux::new();
    let mut repl = RawRepl::new(&mut link, &mut demux);
    let err = repl.enter().unwrap_err();
    assert!(err.to_string().contains("not a MicroPython REPL"), "{err}");
    assert!(err.to_string().contains("AT+OK"), "what the port said is shown: {err}");
}

#[test]
fn an_unrecognised_raw_prompt_still_leaves_the_raw_repl() {
    // Line ends mangled on the way (`\r\r\n`): the board did enter the raw REPL.
    let mut link = ScriptedLink::new(&[(b"\x01", b"\r\r\nraw REPL; CTRL-B to exit\r\r\n>")]);
    let log = link.log.clone();
    let mut demux = Demux::new();
    let mut repl = RawRepl::new(&mut link, &mut demux);
    assert!(repl.enter().is_err());
    drop(repl);
    let written = log.lock().unwrap().clone();
    let after_ctrl_a = &written[written.iter().rposition(|&b| b == 0x01).unwrap()..];
    assert!(after_ctrl_a.contains(&0x02), "a Ctrl-B follows the failed entry: {written:?}");
}

#[test]
fn frames_inside_the_output_do_not_end_it() {
    use heapscope_protocol::wire::{encode_frame, Body, Event, Frame};
    // A frame whose bytes include 0x04, the raw REPL's end marker.
    let frame = encode_frame(&Frame { seq: 4, device_ms: 4, body: Body::Event(Event::Mark { label: "\x04\x04".into() }) });
    assert!(frame.contains(&0x04));
    let mut reply = b"\x04before ".to_vec();
    reply.extend(&frame);
    reply.extend(b"after\x04\x04>");
    let mut link = ScriptedLink::new(&[(b"\x01", PROMPT), (b"\x05A\x01", b"R\x01\x80\x00\x01"), (b"\x04", &reply)]);
    let mut demux = Demux::new();
    let mut repl = RawRepl::new(&mut link, &mut demux);
    repl.enter().unwrap();
    let out = repl.exec("heapscope.mark('x')", Duration::from_secs(2)).unwrap();
    assert_eq!(out.stdout, b"before after");
    assert_eq!(repl.items.len(), 1, "the frame is kept for the caller");
}
