//! The capture engine: one worker thread owns the link to the board and turns what arrives into
//! [`Entry`]s on a channel. Three sources of snapshots, one engine:
//!
//! - `stream`: frames from the heapscope firmware module, separated from the console text;
//! - `passive`: `mem_info` dumps the board's program prints by itself;
//! - `poll`: the tool runs `micropython.mem_info(1)` through the raw REPL every interval
//!   (this stops the board's program, and says so).
//!
//! `auto` listens for the first two and starts polling if neither shows up. Console text is
//! always passed on. When the port disappears the engine marks a gap, waits, and reattaches.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use heapscope_protocol::model::PythonFigures;
use heapscope_protocol::text::{self, ScanEvent, Scanner};
use heapscope_protocol::wire::demux::{Demux, Item};
use heapscope_protocol::wire::session::{Session, SessionError, Update};
use heapscope_protocol::wire::Event;

use crate::entry::{Entry, HostMicros, SegmentReason, Source};
use crate::link::{Gone, Link, Opener};
use crate::port::PortError;
use crate::repl::{RawRepl, ReplError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Listen for frames and dumps; poll through the raw REPL if neither comes.
    Auto,
    /// Frames from the heapscope firmware module.
    Stream,
    /// `mem_info` dumps the board's program prints itself.
    Passive,
    /// Run `mem_info(1)` through the raw REPL every --interval (stops the program).
    Poll,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub mode: Mode,
    pub poll_interval: Duration,
    /// In auto mode: how long to listen before polling.
    pub listen_first: Duration,
    /// Wait for the port to come back when it disappears.
    pub reattach: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            mode: Mode::Auto,
            poll_interval: Duration::from_secs(1),
            listen_first: Duration::from_secs(3),
            reattach: true,
        }
    }
}

/// Asks the worker to do something.
#[derive(Debug)]
pub enum Command {
    /// Bytes to type into the board's REPL.
    Input(Vec<u8>),
    /// A mark on the timeline, made on the host.
    Mark(String),
    /// Take a heap dump through the raw REPL (stopping the running program) and analyse it
    /// here, off the UI thread; the answer goes to the sender.
    Dump(Sender<Result<DumpTaken, String>>),
    Stop,
}

/// A heap dump taken during a live session, with its analysis.
pub struct DumpTaken {
    pub dump: heapscope_objects::HeapDump,
    pub analysis: heapscope_objects::Analysis,
}

impl std::fmt::Debug for DumpTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DumpTaken({} objects)", self.analysis.objects.len())
    }
}

/// A running capture. Dropping it stops the worker.
pub struct Capture {
    pub entries: Receiver<Entry>,
    commands: Sender<Command>,
    worker: Option<JoinHandle<()>>,
}

impl Capture {
    /// Opens the port (errors come back here, before anything runs) and starts the worker.
    pub fn start(mut opener: Box<dyn Opener>, options: Options) -> Result<Capture, PortError> {
        let link = opener.open()?;
        let (entry_tx, entries) = mpsc::channel();
        let (commands, command_rx) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("heapscope-capture".into())
            .spawn(move || Worker::new(opener, link, options, entry_tx, command_rx).run())
            .expect("spawn the capture thread");
        Ok(Capture { entries, commands, worker: Some(worker) })
    }

    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    /// Stops the worker and waits for it; entries sent before are still in `entries`.
    pub fn stop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Turns received bytes into entries: frames, dumps, console text, resets.
pub struct Decoder {
    demux: Demux,
    session: Session,
    scanner: Scanner,
    resets: ResetWatch,
    frames_seen: bool,
    waiting_for_keyframe: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            demux: Demux::new(),
            session: Session::new(),
            scanner: Scanner::new(),
            resets: ResetWatch::default(),
            frames_seen: false,
            waiting_for_keyframe: false,
        }
    }

    /// Forgets partial input (after a reattach the byte stream starts afresh); keeps the
    /// delta base, since the device went on from it.
    pub fn restart_stream(&mut self) {
        self.demux = Demux::new();
        self.scanner = Scanner::new();
        self.resets = ResetWatch::default();
    }

    pub fn demux(&mut self) -> &mut Demux {
        &mut self.demux
    }

    /// Decodes received bytes into entries.
    pub fn feed(&mut self, bytes: &[u8], at: HostMicros, out: &mut Vec<Entry>) {
        let items = self.demux.push(bytes);
        self.items(items, at, out);
    }

    pub fn items(&mut self, items: Vec<Item>, at: HostMicros, out: &mut Vec<Entry>) {
        for item in items {
            match item {
                Item::Text(t) => self.text(t, at, out),
                Item::Frame(f) => {
                    let first_frame = !self.frames_seen;
                    self.frames_seen = true;
                    match self.session.apply(&f) {
                        Ok(Update::Hello(h)) => out.push(if first_frame {
                            Entry::Notice { at, text: format!("heapscope module: {} ({})", h.interpreter, h.platform) }
                        } else {
                            Entry::Segment { at, reason: SegmentReason::Reset, detail: format!("heapscope module restarted: {}", h.interpreter) }
                        }),
                        Ok(Update::Snapshot(s)) => {
                            self.waiting_for_keyframe = false;
                            out.push(Entry::Snapshot { at, device_ms: Some(f.device_ms), source: Source::Stream, snapshot: Box::new(s) })
                        }
                        Ok(Update::Event(event)) => out.push(Entry::Event { at, device_ms: Some(f.device_ms), event }),
                        // Dumps are taken by `heapscope dump` (heapdump.rs), not kept in a session.
                        Ok(Update::Dump(_)) => {}
                        Err(SessionError::MissingBase { .. }) if self.waiting_for_keyframe => {}
                        Err(e @ SessionError::MissingBase { .. }) => {
                            self.waiting_for_keyframe = true;
                            out.push(Entry::Notice { at, text: e.to_string() });
                        }
                        Err(e) => out.push(Entry::Corrupt { at, detail: format!("frame {}: {e}", f.seq) }),
                    }
                }
                Item::Corrupt(c) => out.push(Entry::Corrupt { at, detail: c.to_string() }),
            }
        }
    }

    fn text(&mut self, t: Vec<u8>, at: HostMicros, out: &mut Vec<Entry>) {
        if let Some(sign) = self.resets.push(&t) {
            out.push(Entry::Segment { at, reason: SegmentReason::Reset, detail: sign });
        }
        for event in self.scanner.push(&t) {
            match event {
                ScanEvent::Dump(d) => {
                    for w in &d.warnings {
                        out.push(Entry::Notice { at, text: format!("printed mem_info dump: {w}") });
                    }
                    out.push(Entry::Snapshot { at, device_ms: None, source: Source::Passive, snapshot: Box::new(d.snapshot) })
                }
                ScanEvent::Error(e) => out.push(Entry::Corrupt { at, detail: format!("printed mem_info dump: {e}") }),
            }
        }
        out.push(Entry::Console { at, bytes: t });
    }
}

/// Notices a board starting afresh in its console text: the banner, a soft reboot, the ESP32
/// ROM's reset line.
#[derive(Default)]
struct ResetWatch {
    line: Vec<u8>,
}

impl ResetWatch {
    fn push(&mut self, text: &[u8]) -> Option<String> {
        let mut found = None;
        for &b in text {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&self.line).trim().to_string();
                self.line.clear();
                let reset = line.starts_with("MPY: soft reboot")
                    || line == "soft reboot"
                    || line.starts_with("rst:0x")
                    || (line.starts_with("MicroPython v") && line.contains(" on "));
                if reset && found.is_none() {
                    found = Some(line);
                }
            } else if self.line.len() < 256 {
                self.line.push(b);
            }
        }
        found
    }
}

/// Code run through the raw REPL in poll mode. `gc.mem_alloc()`/`gc.mem_free()` are read right
/// after the dump, with nothing allocated in between, as a check on the parse.
const POLL_CODE: &str = "import gc, micropython\nmicropython.mem_info(1)\nprint('heapscope-poll', gc.mem_alloc(), gc.mem_free())\n";

/// Reads the poll's `heapscope-poll ALLOC FREE` line.
fn poll_figures(stdout: &[u8]) -> Option<PythonFigures> {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().find(|l| l.starts_with("heapscope-poll "))?;
    let mut it = line.split_whitespace().skip(1).map(|n| n.parse::<u64>().ok());
    Some(PythonFigures { mem_alloc: it.next()??, mem_free: it.next()?? })
}

enum PollState {
    Off,
    /// Polling; whether the raw REPL is entered.
    On { entered: bool, next: Instant },
}

struct Worker {
    opener: Box<dyn Opener>,
    link: Box<dyn Link>,
    options: Options,
    out: Sender<Entry>,
    commands: Receiver<Command>,
    clock: Instant,
    decoder: Decoder,
    poll: PollState,
    heap_data_seen: bool,
}

enum Flow {
    Continue,
    Stop,
}

impl Worker {
    fn new(opener: Box<dyn Opener>, link: Box<dyn Link>, options: Options, out: Sender<Entry>, commands: Receiver<Command>) -> Worker {
        let poll = if options.mode == Mode::Poll { PollState::On { entered: false, next: Instant::now() } } else { PollState::Off };
        Worker { opener, link, options, out, commands, clock: Instant::now(), decoder: Decoder::new(), poll, heap_data_seen: false }
    }

    fn now(&self) -> HostMicros {
        self.clock.elapsed().as_micros() as HostMicros
    }

    fn emit(&mut self, entries: Vec<Entry>) {
        for e in entries {
            if matches!(e, Entry::Snapshot { .. }) {
                self.heap_data_seen = true;
            }
            let _ = self.out.send(e);
        }
    }

    fn notice(&mut self, text: String) {
        let at = self.now();
        self.emit(vec![Entry::Notice { at, text }]);
    }

    fn run(mut self) {
        let at = self.now();
        let detail = format!("{} ({})", self.opener.name(), mode_name(self.options.mode));
        self.emit(vec![Entry::Segment { at, reason: SegmentReason::Start, detail }]);
        if self.options.mode == Mode::Poll {
            self.notice("polling through the raw REPL: this stops the program running on the board".into());
        }
        let mut buf = vec![0u8; 8192];
        loop {
            if let Flow::Stop = self.handle_commands() {
                break;
            }
            match self.link.read_some(&mut buf) {
                Ok(0) => {}
                Ok(n) => {
                    let mut entries = Vec::new();
                    let at = self.now();
                    self.decoder.feed(&buf[..n], at, &mut entries);
                    self.emit(entries);
                }
                Err(gone) => {
                    if let Flow::Stop = self.lost(gone) {
                        return;
                    }
                    continue;
                }
            }
            self.maybe_start_polling();
            if let Err(e) = self.maybe_poll() {
                match e {
                    ReplError::Gone(gone) => {
                        if let Flow::Stop = self.lost(gone) {
                            return;
                        }
                    }
                    other => {
                        let at = self.now();
                        self.emit(vec![Entry::Corrupt { at, detail: format!("poll: {other}") }]);
                        if let ReplError::BoardReset { .. } = other {
                            self.emit(vec![Entry::Segment { at, reason: SegmentReason::Reset, detail: "board reset during a poll".into() }]);
                        }
                        // Enter the raw REPL afresh next time.
                        if let PollState::On { entered, next } = &mut self.poll {
                            *entered = false;
                            *next = Instant::now() + self.options.poll_interval;
                        }
                    }
                }
            }
        }
    }

    fn handle_commands(&mut self) -> Flow {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => return Flow::Stop,
                Ok(Command::Input(bytes)) => {
                    if let Err(gone) = self.link.write_all(&bytes) {
                        if let Flow::Stop = self.lost(gone) {
                            return Flow::Stop;
                        }
                    }
                }
                Ok(Command::Mark(label)) => {
                    let at = self.now();
                    self.emit(vec![Entry::Event { at, device_ms: None, event: Event::Mark { label } }]);
                }
                Ok(Command::Dump(reply)) => {
                    let _ = reply.send(self.take_dump());
                }
                Err(mpsc::TryRecvError::Empty) => return Flow::Continue,
            }
        }
    }

    fn maybe_start_polling(&mut self) {
        if self.options.mode == Mode::Auto
            && matches!(self.poll, PollState::Off)
            && !self.heap_data_seen
            && self.clock.elapsed() >= self.options.listen_first
        {
            self.notice(format!(
                "no heapscope frames or printed mem_info dumps in {:.0} s: polling through the raw REPL, which stops the program running on the board (--mode passive only listens)",
                self.options.listen_first.as_secs_f64()
            ));
            self.poll = PollState::On { entered: false, next: Instant::now() };
        }
    }

    fn maybe_poll(&mut self) -> Result<(), ReplError> {
        let PollState::On { entered, next } = self.poll else { return Ok(()) };
        if Instant::now() < next {
            return Ok(());
        }
        let at = self.now();
        let mut repl = RawRepl::new(&mut *self.link, self.decoder.demux());
        if !entered {
            repl.enter()?;
        }
        let result = repl.exec(POLL_CODE, Duration::from_secs(10));
        let console = repl.take_console();
        let items = std::mem::take(&mut repl.items);
        let mut entries = Vec::new();
        if !console.is_empty() {
            entries.push(Entry::Console { at, bytes: console });
        }
        self.decoder.items(items, at, &mut entries);
        // One interval after this poll was due, but never in the past: a slow poll does not
        // cause a burst of catch-up polls.
        self.poll = PollState::On { entered: true, next: (next + self.options.poll_interval).max(Instant::now()) };
        let output = result?;
        if output.failed() {
            entries.push(Entry::Corrupt { at, detail: format!("poll: the board raised: {}", String::from_utf8_lossy(&output.stderr).trim()) });
        }
        let (dumps, errors) = text::parse(&output.stdout);
        for e in errors {
            entries.push(Entry::Corrupt { at, detail: format!("poll: {e}") });
        }
        if let Some(dump) = dumps.into_iter().last() {
            let mut snapshot = dump.snapshot;
            snapshot.reported.python = poll_figures(&output.stdout);
            for w in &dump.warnings {
                entries.push(Entry::Notice { at, text: format!("poll: {w}") });
            }
            if let (Some(p), Some(gc)) = (snapshot.reported.python, snapshot.reported.gc) {
                let free = gc.free + snapshot.reported.max_new_split.unwrap_or(0);
                if p.mem_alloc != gc.used || p.mem_free != free {
                    entries.push(Entry::Notice {
                        at,
                        text: format!(
                            "poll: gc.mem_alloc()/mem_free() say {}/{}, mem_info says {}/{}",
                            p.mem_alloc, p.mem_free, gc.used, free
                        ),
                    });
                }
            }
            entries.push(Entry::Snapshot { at, device_ms: None, source: Source::Poll, snapshot: Box::new(snapshot) });
        }
        self.emit(entries);
        Ok(())
    }

    /// A heap dump through the raw REPL; a polling session stays in the raw REPL, any other
    /// is left at its prompt.
    fn take_dump(&mut self) -> Result<DumpTaken, String> {
        let at = self.now();
        let entered = matches!(self.poll, PollState::On { entered: true, .. });
        let mut repl = RawRepl::new(&mut *self.link, self.decoder.demux());
        let result = (|| -> Result<heapscope_objects::HeapDump, crate::heapdump::DumpError> {
            if !entered {
                repl.enter()?;
            }
            let dump = crate::heapdump::take(&mut repl, &mut |_, _| {});
            if !entered {
                repl.leave()?;
            }
            dump
        })();
        let console = repl.take_console();
        let items = std::mem::take(&mut repl.items);
        let mut entries = Vec::new();
        if !console.is_empty() {
            entries.push(Entry::Console { at, bytes: console });
        }
        self.decoder.items(items, at, &mut entries);
        self.emit(entries);
        let dump = result.map_err(|e| format!("heap dump: {e}"))?;
        let analysis = heapscope_objects::Analysis::new(&dump);
        Ok(DumpTaken { dump, analysis })
    }

    /// The port went away: mark a gap and wait for it to return (or stop).
    fn lost(&mut self, gone: Gone) -> Flow {
        let at = self.now();
        self.emit(vec![Entry::Gap { at, reason: gone.0.clone() }]);
        if !self.options.reattach {
            return Flow::Stop;
        }
        loop {
            match self.commands.recv_timeout(Duration::from_millis(200)) {
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return Flow::Stop,
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            }
            if let Ok(link) = self.opener.open() {
                self.link = link;
                self.decoder.restart_stream();
                if let PollState::On { entered, .. } = &mut self.poll {
                    *entered = false;
                }
                let at = self.now();
                let detail = format!("{} is back", self.opener.name());
                self.emit(vec![Entry::Segment { at, reason: SegmentReason::Reattach, detail }]);
                return Flow::Continue;
            }
        }
    }

}

/// However the worker ends (stopped, or a panic unwinding), the board is left at its prompt.
impl Drop for Worker {
    fn drop(&mut self) {
        if let PollState::On { entered: true, .. } = self.poll {
            // Leave the board at its normal REPL prompt.
            let mut repl = RawRepl::new(&mut *self.link, self.decoder.demux());
            let _ = repl.leave();
        }
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Auto => "auto",
        Mode::Stream => "stream",
        Mode::Passive => "passive",
        Mode::Poll => "poll",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_are_seen_in_console_text() {
        let mut w = ResetWatch::default();
        assert_eq!(w.push(b">>> print(1)\r\n1\r\n"), None);
        assert_eq!(w.push(b"MPY: soft re"), None);
        assert_eq!(w.push(b"boot\r\n"), Some("MPY: soft reboot".into()));
        assert!(w.push(b"MicroPython v1.29.0 on 2026-07-05; ESP32 module with ESP32\r\n").is_some());
        assert_eq!(w.push(b"the MicroPython v1 docs on x\r\n"), None);
    }

    #[test]
    fn poll_line() {
        assert_eq!(poll_figures(b"GC: ...\nheapscope-poll 1216 2071616\n"), Some(PythonFigures { mem_alloc: 1216, mem_free: 2071616 }));
        assert_eq!(poll_figures(b"nothing"), None);
    }

    #[test]
    fn decoder_separates_frames_dumps_and_text() {
        use heapscope_protocol::wire::{encode_frame, Body, Frame};
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let mut bytes = b"hello\r\n".to_vec();
        bytes.extend(encode_frame(&Frame { seq: 0, device_ms: 7, body: Body::Event(Event::Mark { label: "m".into() }) }));
        bytes.extend(b"GC: total: 2048, used: 64, free: 1984\r\n No. of 1-blocks: 0, 2-blocks: 0, max blk sz: 4, max free sz: 124\r\n>>> ");
        d.feed(&bytes, 5, &mut out);
        let kinds: Vec<&str> = out
            .iter()
            .map(|e| match e {
                Entry::Console { .. } => "console",
                Entry::Event { .. } => "event",
                Entry::Snapshot { source: Source::Passive, .. } => "passive",
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds, ["console", "event", "passive", "console"]);
    }
}
