//! The raw REPL of a MicroPython board: enter it, run code, leave it. Uses raw paste (v1.14+)
//! where the board has it. Everything received passes through the frame demultiplexer first,
//! so heapscope frames (which may hold any byte) never confuse the REPL protocol.

use std::fmt;
use std::time::{Duration, Instant};

use heapscope_protocol::wire::demux::{Demux, Item};

use crate::link::{Gone, Link};

/// What the board printed while running code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    /// A traceback, if the code raised.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn failed(&self) -> bool {
        !self.stderr.is_empty()
    }
}

#[derive(Debug)]
pub enum ReplError {
    Gone(Gone),
    /// No raw REPL answered: not a MicroPython REPL, or the program holds the port.
    NoRawRepl { received: Vec<u8> },
    /// The board reset while running a command.
    BoardReset { received: Vec<u8> },
    Timeout { waiting_for: &'static str, received: Vec<u8> },
    /// Code kept running on the board ended early with this error output.
    Ended { stderr: Vec<u8> },
}

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(200);
    String::from_utf8_lossy(&bytes[start..]).escape_debug().to_string()
}

impl fmt::Display for ReplError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplError::Gone(g) => write!(f, "{g}"),
            ReplError::NoRawRepl { received } if received.is_empty() => write!(
                f,
                "not a MicroPython REPL: nothing answered Ctrl-C / Ctrl-A. Is this the board's REPL port, at the right --baud?"
            ),
            ReplError::NoRawRepl { received } => write!(
                f,
                "not a MicroPython REPL: Ctrl-A did not enter the raw REPL. The port said: \"{}\"",
                tail(received)
            ),
            ReplError::BoardReset { received } => write!(
                f,
                "the board reset while running a command (\"{}\"). It may have crashed, or run out of power",
                tail(received)
            ),
            ReplError::Ended { stderr } => write!(f, "the code running on the board ended: \"{}\"", tail(stderr)),
            ReplError::Timeout { waiting_for, received } => {
                write!(f, "the board did not answer in time (waiting for {waiting_for}; last received: \"{}\")", tail(received))
            }
        }
    }
}

impl std::error::Error for ReplError {}

impl From<Gone> for ReplError {
    fn from(g: Gone) -> ReplError {
        ReplError::Gone(g)
    }
}

/// Text that shows the board started afresh.
const RESET_SIGNS: &[&[u8]] = &[b"MPY: soft reboot", b"soft reboot\r\n", b"rst:0x", b"MicroPython v", b"\x00"];

pub const RAW_PROMPT: &[u8] = b"raw REPL; CTRL-B to exit\r\n>";

/// Where the board's REPL is, as far as this conversation knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplState {
    /// At the normal `>>> ` prompt (or not yet talked to).
    Normal,
    /// In the raw REPL, waiting for code.
    Raw,
    /// In the raw REPL, running code started with [`RawRepl::start`].
    Running,
}

/// Without raw paste, code goes out in pieces this small with a pause after each, as
/// MicroPython's own tools do: a UART board's receive buffer is small and drops what overflows.
const PACED_CHUNK: usize = 16;
/// The pause after each piece: two pieces' time on a 115200-baud line (16 B = 1.4 ms), and never
/// less than the host's timer can honour.
const PACED_PAUSE: Duration = Duration::from_millis(3);

/// A conversation with the raw REPL over a link. Frames and damaged frames seen meanwhile are
/// kept in `items` for the caller.
///
/// Dropping it leaves the board at its normal prompt (stopping code left running, then Ctrl-B),
/// also after an error, unless [`RawRepl::keep_raw`] says the caller comes back to it.
pub struct RawRepl<'a> {
    link: &'a mut dyn Link,
    demux: &'a mut Demux,
    pub items: Vec<Item>,
    /// Text received and not yet consumed.
    pending: Vec<u8>,
    /// What the board printed that is not part of the conversation (an interrupted program's
    /// last output and traceback): console text for the caller.
    console: Vec<u8>,
    pub raw_paste: Option<bool>,
    state: ReplState,
    /// Leave the board in the raw REPL when dropped: the caller resumes it later.
    keep: bool,
}

impl<'a> RawRepl<'a> {
    pub fn new(link: &'a mut dyn Link, demux: &'a mut Demux) -> RawRepl<'a> {
        RawRepl { link, demux, items: Vec::new(), pending: Vec::new(), console: Vec::new(), raw_paste: None, state: ReplState::Normal, keep: false }
    }

    /// Takes up a conversation a previous `RawRepl` on the same link left in `state` (with
    /// [`RawRepl::keep_raw`]).
    pub fn resume(link: &'a mut dyn Link, demux: &'a mut Demux, state: ReplState, raw_paste: Option<bool>) -> RawRepl<'a> {
        let mut repl = RawRepl::new(link, demux);
        repl.state = state;
        repl.raw_paste = raw_paste;
        repl
    }

    pub fn state(&self) -> ReplState {
        self.state
    }

    /// When dropped, leave the board as it is (in the raw REPL, or running code) instead of
    /// taking it back to the normal prompt: the caller resumes with [`RawRepl::resume`].
    pub fn keep_raw(&mut self) {
        self.keep = true;
    }

    /// Writes code without raw paste: small pieces, paced.
    fn write_paced(&mut self, code: &[u8]) -> Result<(), Gone> {
        for piece in code.chunks(PACED_CHUNK) {
            self.link.write_all(piece)?;
            std::thread::sleep(PACED_PAUSE);
        }
        Ok(())
    }

    /// Sends bytes to code running on the board (see [`RawRepl::start`]).
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), ReplError> {
        Ok(self.link.write_all(bytes)?)
    }

    /// Reads what running code prints, up to and including `end`. If the code ends first, its
    /// error output comes back as [`ReplError::Ended`].
    pub fn read_reply(&mut self, end: &[u8], timeout: Duration) -> Result<Vec<u8>, ReplError> {
        let deadline = Instant::now() + timeout;
        loop {
            let stop = find(&self.pending, b"\x04");
            if let Some(at) = find(&self.pending, end).filter(|&at| stop.is_none_or(|s| at < s)) {
                return Ok(self.pending.drain(..at + end.len()).collect());
            }
            if stop.is_some() {
                let _ = self.read_until(b"\x04", Duration::from_secs(1), "the end of the output", false);
                let stderr = self.read_until(b"\x04", Duration::from_secs(2), "the error output", false).unwrap_or_default();
                self.read_until(b">", Duration::from_secs(2), "the raw REPL prompt", false)?;
                self.state = ReplState::Raw;
                return Err(ReplError::Ended { stderr });
            }
            if RESET_SIGNS.iter().any(|s| find(&self.pending, s).is_some()) {
                self.state = ReplState::Normal;
                return Err(ReplError::BoardReset { received: std::mem::take(&mut self.pending) });
            }
            if Instant::now() > deadline {
                return Err(ReplError::Timeout { waiting_for: "a reply from the code running on the board", received: std::mem::take(&mut self.pending) });
            }
            self.receive()?;
        }
    }

    fn receive(&mut self) -> Result<bool, Gone> {
        let mut buf = [0u8; 4096];
        let n = self.link.read_some(&mut buf)?;
        for item in self.demux.push(&buf[..n]) {
            match item {
                Item::Text(t) => self.pending.extend(t),
                other => self.items.push(other),
            }
        }
        Ok(n > 0)
    }

    /// Consumes text up to and including `pattern`; returns what came before it.
    fn read_until(&mut self, pattern: &[u8], timeout: Duration, what: &'static str, watch_reset: bool) -> Result<Vec<u8>, ReplError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = find(&self.pending, pattern) {
                let before = self.pending[..at].to_vec();
                self.pending.drain(..at + pattern.len());
                return Ok(before);
            }
            if watch_reset && RESET_SIGNS.iter().any(|s| find(&self.pending, s).is_some()) {
                return Err(ReplError::BoardReset { received: std::mem::take(&mut self.pending) });
            }
            if Instant::now() > deadline {
                return Err(ReplError::Timeout { waiting_for: what, received: std::mem::take(&mut self.pending) });
            }
            self.receive()?;
        }
    }

    fn read_exact_text(&mut self, n: usize, timeout: Duration, what: &'static str) -> Result<Vec<u8>, ReplError> {
        let deadline = Instant::now() + timeout;
        while self.pending.len() < n {
            if Instant::now() > deadline {
                return Err(ReplError::Timeout { waiting_for: what, received: std::mem::take(&mut self.pending) });
            }
            self.receive()?;
        }
        Ok(self.pending.drain(..n).collect())
    }

    /// Stops the running program (Ctrl-C) and enters the raw REPL (Ctrl-A).
    pub fn enter(&mut self) -> Result<(), ReplError> {
        self.link.write_all(b"\r\x03\x03")?;
        // Let an interrupted program print its traceback, then drop it.
        let settle = Instant::now() + Duration::from_millis(150);
        while Instant::now() < settle {
            self.receive()?;
        }
        self.console.append(&mut self.pending);
        self.link.write_all(b"\x01")?;
        match self.read_until(RAW_PROMPT, Duration::from_secs(3), "the raw REPL prompt", false) {
            Ok(_) => {
                self.state = ReplState::Raw;
                Ok(())
            }
            Err(ReplError::Timeout { received, .. }) => {
                // The Ctrl-A may have worked even though its prompt was not recognised (a line
                // that mangles line ends): a Ctrl-B leaves the raw REPL, and is harmless at the
                // normal prompt, so the board is not left where the user cannot type.
                self.link.write_all(b"\x02")?;
                Err(ReplError::NoRawRepl { received })
            }
            Err(e) => Err(e),
        }
    }

    /// Runs code and returns its output. The board is in the raw REPL before and after.
    pub fn exec(&mut self, code: &str, timeout: Duration) -> Result<ExecOutput, ReplError> {
        self.start(code)?;
        self.finish(timeout)
    }

    /// Sends code and returns once the board runs it, without waiting for it to end: talk to
    /// it with [`RawRepl::send`] and [`RawRepl::read_reply`], end with [`RawRepl::finish`].
    pub fn start(&mut self, code: &str) -> Result<(), ReplError> {
        self.send_code(code)?;
        self.state = ReplState::Running;
        Ok(())
    }

    fn send_code(&mut self, code: &str) -> Result<(), ReplError> {
        if self.raw_paste != Some(false) {
            self.link.write_all(b"\x05A\x01")?;
            let answer = self.read_exact_text(2, Duration::from_secs(2), "the raw-paste answer")?;
            match answer.as_slice() {
                b"R\x01" => {
                    self.raw_paste = Some(true);
                    return self.paste(code.as_bytes());
                }
                b"R\x00" => self.raw_paste = Some(false),
                _ => {
                    // Too old for raw paste: it took `\x05A` as code and `\x01` re-entered the
                    // raw REPL, printing its prompt again.
                    self.raw_paste = Some(false);
                    self.pending.splice(0..0, answer);
                    self.read_until(RAW_PROMPT, Duration::from_secs(2), "the raw REPL prompt", true)?;
                }
            }
        }
        self.write_paced(code.as_bytes())?;
        self.link.write_all(b"\x04")?;
        let ok = self.read_exact_text(2, Duration::from_secs(2), "OK")?;
        if ok != b"OK" {
            return Err(ReplError::NoRawRepl { received: ok });
        }
        Ok(())
    }

    fn paste(&mut self, code: &[u8]) -> Result<(), ReplError> {
        let window = self.read_exact_text(2, Duration::from_secs(2), "the raw-paste window size")?;
        let window = u16::from_le_bytes([window[0], window[1]]) as usize;
        let mut credit = window;
        let mut sent = 0;
        while sent < code.len() {
            while credit == 0 {
                // Each \x01 grants one more window; \x04 means the board aborted the paste.
                let b = self.read_exact_text(1, Duration::from_secs(5), "raw-paste flow control")?;
                match b[0] {
                    0x01 => credit += window,
                    0x04 => {
                        self.link.write_all(b"\x04")?;
                        return Err(ReplError::NoRawRepl { received: b"raw paste aborted by the board".to_vec() });
                    }
                    _ => {}
                }
            }
            let n = credit.min(code.len() - sent);
            self.link.write_all(&code[sent..sent + n])?;
            sent += n;
            credit -= n;
        }
        self.link.write_all(b"\x04")?;
        // The board echoes \x04 when it has all the code (flow-control \x01s may come first).
        self.read_until(b"\x04", Duration::from_secs(5), "the end of the paste", true)?;
        Ok(())
    }

    /// Reads what the board sent so far (frames go to `items`), while code started with
    /// [`RawRepl::start`] runs.
    pub fn receive_some(&mut self) -> Result<(), ReplError> {
        self.receive()?;
        Ok(())
    }

    /// Whether the running code's output has ended (its `\x04` arrived).
    pub fn output_done(&self) -> bool {
        find(&self.pending, b"\x04").is_some()
    }

    /// Waits for code started with [`RawRepl::start`] to end and returns its output.
    pub fn finish(&mut self, timeout: Duration) -> Result<ExecOutput, ReplError> {
        let stdout = self.read_until(b"\x04", timeout, "the program's output", true)?;
        let stderr = self.read_until(b"\x04", Duration::from_secs(2), "the program's error output", true)?;
        self.read_until(b">", Duration::from_secs(2), "the raw REPL prompt", true)?;
        self.state = ReplState::Raw;
        Ok(ExecOutput { stdout, stderr })
    }

    /// A soft reset from the raw REPL: a clean heap, back in the raw REPL.
    pub fn soft_reset(&mut self) -> Result<(), ReplError> {
        self.link.write_all(b"\x04")?;
        self.read_until(b"soft reboot", Duration::from_secs(5), "the soft reboot", false)?;
        self.read_until(RAW_PROMPT, Duration::from_secs(10), "the raw REPL after the reboot", false)?;
        self.state = ReplState::Raw;
        Ok(())
    }

    /// Back to the friendly REPL (Ctrl-B).
    pub fn leave(&mut self) -> Result<(), ReplError> {
        if self.state == ReplState::Running {
            // Ctrl-C stops running code (and ends heapscope's own loops, which stop on any byte
            // they do not expect).
            self.link.write_all(b"\x03")?;
            let _ = self.finish(Duration::from_secs(2));
        }
        self.link.write_all(b"\x02")?;
        self.state = ReplState::Normal;
        self.read_until(b">>> ", Duration::from_secs(2), "the normal REPL prompt", false)?;
        Ok(())
    }

    /// Console text received outside the conversation.
    /// Ends the conversation (see `Drop`): the console text around it and the frames that
    /// arrived during it.
    pub fn end(mut self) -> (Vec<u8>, Vec<Item>) {
        (std::mem::take(&mut self.console), std::mem::take(&mut self.items))
    }

    pub fn take_console(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.console)
    }
}

impl Drop for RawRepl<'_> {
    fn drop(&mut self) {
        if !self.keep && self.state != ReplState::Normal {
            let _ = self.leave();
        }
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
