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
use crate::repl::{RawRepl, ReplError, ReplState};

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
    /// When it was taken (its start), on the session's clock.
    pub at: HostMicros,
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
    /// Whether a port that goes away is waited for (else the capture ends with the gap).
    pub reattaches: bool,
    commands: Sender<Command>,
    worker: Option<JoinHandle<()>>,
}

impl Capture {
    /// Opens the port (errors come back here, before anything runs) and starts the worker.
    pub fn start(mut opener: Box<dyn Opener>, options: Options) -> Result<Capture, PortError> {
        let link = opener.open()?;
        let reattaches = options.reattach;
        let (entry_tx, entries) = mpsc::channel();
        let (commands, command_rx) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("heapscope-capture".into())
            .spawn(move || Worker::new(opener, link, options, entry_tx, command_rx).run())
            .expect("spawn the capture thread");
        Ok(Capture { entries, reattaches, commands, worker: Some(worker) })
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
        let seen = self.resets.push(&t);
        match seen.reset {
            Some(ResetSign { text, first_line: true }) => out.push(Entry::Notice { at, text: format!("the board was starting: {text}") }),
            Some(ResetSign { text, first_line: false }) => out.push(Entry::Segment { at, reason: SegmentReason::Reset, detail: text }),
            None => {}
        }
        // Before the dump the program may print after it: the failure comes first in time.
        out.extend(seen.memory_errors.into_iter().map(|bytes| Entry::Event { at, device_ms: None, event: memory_error_mark(bytes) }));
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

/// Notices a board starting afresh in its console text: the banner (also after the NUL byte
/// some boards send as they boot), a soft reboot, the boot ROM's lines (ESP32 `rst:0x..`,
/// `ets Jun  8 2016`, `ESP-ROM:`), RP2040's and others' banners alike.
#[derive(Default)]
struct ResetWatch {
    line: Vec<u8>,
    /// A NUL byte on this line: REPL text never holds one, a booting UART sends one.
    nul: bool,
    /// Lines seen since the port was opened.
    lines: u64,
}

/// A reset sign, and whether it was the first line seen: a board that was starting as the port
/// opened (its banner still waiting in the buffer) divides nothing.
struct ResetSign {
    text: String,
    first_line: bool,
}

/// Whether a console line (control characters removed) says the board just started. The sign
/// may follow other text on the line: a prompt the board sat at, or boot noise at another baud.
fn is_reset_line(line: &str) -> bool {
    let from = |sign: &str| line.find(sign).map(|at| &line[at..]);
    line.starts_with("MPY: soft reboot")
        || line == "soft reboot"
        || line.ends_with(">>> soft reboot")
        || from("rst:0x").is_some()
        || from("ets Jun  8 2016").is_some()
        || from("ESP-ROM:").is_some()
        || from("MicroPython ").is_some_and(|banner| banner.contains(" on ") && banner.contains(';'))
}

#[derive(Default)]
struct Seen {
    reset: Option<ResetSign>,
    /// The sizes of the allocations that failed.
    memory_errors: Vec<u64>,
}

impl ResetWatch {
    fn push(&mut self, text: &[u8]) -> Seen {
        let mut seen = Seen::default();
        for &b in text {
            self.nul |= b == 0;
            if b == b'\n' {
                // NULs and other control bytes a booting UART emits are not part of the line.
                let clean: Vec<u8> = self.line.iter().copied().filter(|&c| c >= 0x20 || c == b'\t').collect();
                let line = String::from_utf8_lossy(&clean).trim().to_string();
                self.line.clear();
                let nul = std::mem::take(&mut self.nul);
                let first_line = self.lines == 0;
                self.lines += 1;
                if seen.reset.is_none() && is_reset_line(&line) {
                    seen.reset = Some(ResetSign { text: line, first_line });
                } else if seen.reset.is_none() && nul {
                    seen.reset = Some(ResetSign { text: format!("a NUL byte, as a board sends when it boots: \"{line}\""), first_line });
                } else if let Some(bytes) = failed_allocation(&line) {
                    seen.memory_errors.push(bytes);
                }
            } else if self.line.len() < 256 {
                self.line.push(b);
            }
        }
        seen
    }
}

/// The size in `... memory allocation failed, allocating N bytes` (MicroPython's MemoryError).
fn failed_allocation(line: &str) -> Option<u64> {
    const SIGN: &str = "memory allocation failed, allocating ";
    let rest = &line[line.find(SIGN)? + SIGN.len()..];
    let digits = rest.find(|c: char| !c.is_ascii_digit()).map_or(rest, |end| &rest[..end]);
    rest[digits.len()..].starts_with(" bytes").then(|| digits.parse().ok()).flatten()
}

const MEMORY_ERROR_LABEL: &str = "MemoryError: allocating ";

/// A `MemoryError` seen in the console becomes a mark on the timeline (and in the recording).
pub fn memory_error_mark(bytes: u64) -> Event {
    Event::Mark { label: format!("{MEMORY_ERROR_LABEL}{bytes} B failed") }
}

/// The size of the failed allocation, if `event` is a [`memory_error_mark`].
pub fn memory_error_of(event: &Event) -> Option<u64> {
    let Event::Mark { label } = event else { return None };
    label.strip_prefix(MEMORY_ERROR_LABEL)?.strip_suffix(" B failed")?.parse().ok()
}

/// Poll mode's code, sent once through the raw REPL: a loop kept running on the board that
/// prints `mem_info(1)` and `heapscope-poll ALLOC FREE` each time it reads a `p`, and ends on
/// any other byte. Nothing is compiled per poll and nothing allocated (locals, a one-byte buffer,
/// `readinto`, and `print` of small ints and a constant), so a poll leaves no garbage; sending
/// code per poll left a compiled module's worth (416 B per poll on the 64-bit unix port).
/// `gc.mem_alloc()`/`gc.mem_free()` are read right after the dump as a check on the parse.
const POLL_SERVER: &str = "def __heapscope_poll():\n import gc, micropython, sys\n s = getattr(sys.stdin, 'buffer', sys.stdin)\n b = bytearray(1)\n while s.readinto(b) == 1 and b[0] == 112:\n  micropython.mem_info(1)\n  print('heapscope-poll', gc.mem_alloc(), gc.mem_free())\n__heapscope_poll()\ndel __heapscope_poll\n";

/// The byte that asks the poll loop for a snapshot.
const POLL_ASK: &[u8] = b"p";

/// One poll: enters the raw REPL and starts the poll loop if needed, asks, reads the answer.
fn poll_once(repl: &mut RawRepl<'_>) -> Result<Vec<u8>, ReplError> {
    if repl.state() == ReplState::Normal {
        repl.enter()?;
    }
    if repl.state() == ReplState::Raw {
        repl.start(POLL_SERVER)?;
    }
    repl.send(POLL_ASK)?;
    let mut out = repl.read_reply(b"heapscope-poll ", Duration::from_secs(10))?;
    out.extend(repl.read_reply(b"\n", Duration::from_secs(2))?);
    Ok(out)
}

/// What polling costs the board: garbage per poll, from `gc.mem_alloc()` of successive polls
/// while nothing else runs (the raw REPL stopped the program). Reported once a few polls agree.
#[derive(Default)]
struct PollCost {
    /// `gc.mem_alloc()` at the first poll of this run of the loop, and polls since.
    base: Option<(u64, u64)>,
    reported: bool,
}

impl PollCost {
    const POLLS: u64 = 5;

    fn restart(&mut self) {
        self.base = None;
        self.reported = false;
    }

    /// Notes one poll's `gc.mem_alloc()`; returns the report when there is one.
    fn observe(&mut self, mem_alloc: u64) -> Option<String> {
        match self.base {
            // A collection ran (or the loop restarted): start counting again.
            Some((base, polls)) if mem_alloc >= base => {
                let polls = polls + 1;
                self.base = Some((base, polls));
                if polls == Self::POLLS && !self.reported {
                    self.reported = true;
                    let per_poll = (mem_alloc - base) / polls;
                    return Some(format!(
                        "poll cost: {per_poll} B of garbage per poll on the board (gc.mem_alloc() {base} -> {mem_alloc} B over {polls} polls)"
                    ));
                }
                None
            }
            _ => {
                self.base = Some((mem_alloc, 0));
                None
            }
        }
    }
}

/// Reads the poll's `heapscope-poll ALLOC FREE` line.
fn poll_figures(stdout: &[u8]) -> Option<PythonFigures> {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().find(|l| l.starts_with("heapscope-poll "))?;
    let mut it = line.split_whitespace().skip(1).map(|n| n.parse::<u64>().ok());
    Some(PythonFigures { mem_alloc: it.next()??, mem_free: it.next()?? })
}

enum PollState {
    Off,
    /// Polling: where the board's REPL is, and when the next poll is due.
    On { repl: ReplState, raw_paste: Option<bool>, next: Instant },
}

impl PollState {
    fn start() -> PollState {
        PollState::On { repl: ReplState::Normal, raw_paste: None, next: Instant::now() }
    }

    /// The board was left (or found) at its normal prompt: enter afresh next time.
    fn at_prompt(&mut self) {
        if let PollState::On { repl, .. } = self {
            *repl = ReplState::Normal;
        }
    }
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
    poll_cost: PollCost,
    heap_data_seen: bool,
    /// When the user last typed into the REPL: polls wait until they are done.
    user_typed_at: Option<Instant>,
    /// The last bytes of console text, to see the board back at its `>>> ` prompt.
    console_tail: Vec<u8>,
}

enum Flow {
    Continue,
    Stop,
}

impl Worker {
    fn new(opener: Box<dyn Opener>, link: Box<dyn Link>, options: Options, out: Sender<Entry>, commands: Receiver<Command>) -> Worker {
        let poll = if options.mode == Mode::Poll { PollState::start() } else { PollState::Off };
        Worker {
            opener,
            link,
            options,
            out,
            commands,
            clock: Instant::now(),
            decoder: Decoder::new(),
            poll,
            poll_cost: PollCost::default(),
            heap_data_seen: false,
            user_typed_at: None,
            console_tail: Vec::new(),
        }
    }

    fn now(&self) -> HostMicros {
        self.clock.elapsed().as_micros() as HostMicros
    }

    fn emit(&mut self, entries: Vec<Entry>) {
        for e in entries {
            match &e {
                Entry::Snapshot { .. } => self.heap_data_seen = true,
                Entry::Console { bytes, .. } => {
                    self.console_tail.extend_from_slice(bytes);
                    let excess = self.console_tail.len().saturating_sub(8);
                    self.console_tail.drain(..excess);
                }
                _ => {}
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
                        // The failed poll left the board at its prompt: enter afresh next time.
                        if let PollState::On { next, .. } = &mut self.poll {
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
                    self.hand_repl_to_user();
                    self.user_typed_at = Some(Instant::now());
                    if let Err(gone) = self.link.write_all(&bytes) {
                        if let Flow::Stop = self.lost(gone) {
                            return Flow::Stop;
                        }
                    }
                }
                Ok(Command::Mark(label)) => self.mark(label),
                Ok(Command::Dump(reply)) => {
                    let _ = reply.send(self.take_dump());
                }
                Err(mpsc::TryRecvError::Empty) => return Flow::Continue,
            }
        }
    }

    /// What a raw-REPL conversation left besides its answers (see [`RawRepl::end`]), as entries.
    fn conversation_entries(&mut self, at: HostMicros, console: Vec<u8>, items: Vec<Item>) -> Vec<Entry> {
        let mut entries = Vec::new();
        if !console.is_empty() {
            entries.push(Entry::Console { at, bytes: console });
        }
        self.decoder.items(items, at, &mut entries);
        entries
    }

    /// The user types into the REPL: stop the poll loop and leave the raw REPL first, so what
    /// they type reaches the normal prompt. Polls resume once they are done (see
    /// [`Worker::user_is_done`]).
    fn hand_repl_to_user(&mut self) {
        let PollState::On { repl: state @ (ReplState::Raw | ReplState::Running), raw_paste, .. } = self.poll else { return };
        let at = self.now();
        let mut repl = RawRepl::resume(&mut *self.link, self.decoder.demux(), state, raw_paste);
        let left = repl.leave();
        let (console, items) = repl.end();
        let mut entries = self.conversation_entries(at, console, items);
        if let Err(e) = left {
            entries.push(Entry::Notice { at, text: format!("handing the REPL to the console: {e}") });
        }
        // The prompt the board printed on leaving was consumed: show where the typing goes.
        if !self.console_tail.ends_with(b">>> ") {
            entries.push(Entry::Console { at, bytes: b">>> ".to_vec() });
        }
        self.emit(entries);
        self.poll.at_prompt();
        self.poll_cost.restart();
    }

    /// Whether the user has finished with the REPL: quiet for a while and the board back at its
    /// prompt (a program they started is left to run).
    fn user_is_done(&mut self) -> bool {
        const QUIET: Duration = Duration::from_secs(2);
        match self.user_typed_at {
            None => true,
            Some(t) if t.elapsed() >= QUIET && self.console_tail.ends_with(b">>> ") => {
                self.user_typed_at = None;
                true
            }
            Some(_) => false,
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
            self.poll = PollState::start();
        }
    }

    fn maybe_poll(&mut self) -> Result<(), ReplError> {
        let PollState::On { repl: before, raw_paste, next } = self.poll else { return Ok(()) };
        if Instant::now() < next || !self.user_is_done() {
            return Ok(());
        }
        let at = self.now();
        let mut repl = RawRepl::resume(&mut *self.link, self.decoder.demux(), before, raw_paste);
        let result = poll_once(&mut repl);
        if result.is_ok() {
            // The poll loop stays running on the board for the next poll.
            repl.keep_raw();
        }
        let (state, raw_paste) = (repl.state(), repl.raw_paste);
        let console = repl.take_console();
        let items = std::mem::take(&mut repl.items);
        // On an error, dropping the conversation takes the board back to its prompt.
        drop(repl);
        if state == ReplState::Raw || result.is_err() {
            self.poll_cost.restart();
        }
        let mut entries = Vec::new();
        if !console.is_empty() {
            // An interrupted program's last words: a MemoryError there is marked as in any mode.
            self.decoder.text(console, at, &mut entries);
        }
        self.decoder.items(items, at, &mut entries);
        // One interval after this poll was due, but never in the past: a slow poll does not
        // cause a burst of catch-up polls.
        let next = (next + self.options.poll_interval).max(Instant::now());
        let state = if result.is_ok() { state } else { ReplState::Normal };
        self.poll = PollState::On { repl: state, raw_paste, next };
        let stdout = match result {
            Ok(stdout) => stdout,
            Err(e) => {
                if before == ReplState::Running && matches!(e, ReplError::Timeout { .. }) {
                    // The poll loop answers at once unless it is gone: a board that reset
                    // without a word (no banner while main.py runs).
                    entries.push(Entry::Segment {
                        at,
                        reason: SegmentReason::Reset,
                        detail: "the poll loop on the board stopped answering: the board reset (no banner: main.py running?)".into(),
                    });
                }
                self.emit(entries);
                return Err(e);
            }
        };
        let output = crate::repl::ExecOutput { stdout, stderr: Vec::new() };
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
            if let Some(text) = snapshot.reported.python.and_then(|p| self.poll_cost.observe(p.mem_alloc)) {
                entries.push(Entry::Notice { at, text });
            }
            entries.push(Entry::Snapshot { at, device_ms: None, source: Source::Poll, snapshot: Box::new(snapshot) });
        }
        self.emit(entries);
        Ok(())
    }

    /// A heap dump through the raw REPL. A poll loop running on the board is stopped first, and
    /// the board is left at its prompt: the next poll enters the raw REPL again.
    fn take_dump(&mut self) -> Result<DumpTaken, String> {
        let at = self.now();
        let (state, raw_paste) = match self.poll {
            PollState::On { repl, raw_paste, .. } => (repl, raw_paste),
            PollState::Off => (ReplState::Normal, None),
        };
        let mut repl = RawRepl::resume(&mut *self.link, self.decoder.demux(), state, raw_paste);
        let result = (|| -> Result<heapscope_objects::HeapDump, crate::heapdump::DumpError> {
            if repl.state() != ReplState::Normal {
                repl.leave()?;
            }
            repl.enter()?;
            let dump = crate::heapdump::take(&mut repl, &mut |_, _| {});
            repl.leave()?;
            dump
        })();
        let (console, items) = repl.end();
        let entries = self.conversation_entries(at, console, items);
        self.emit(entries);
        self.poll.at_prompt();
        self.poll_cost.restart();
        let dump = result.map_err(|e| format!("heap dump: {e}"))?;
        let analysis = heapscope_objects::Analysis::new(&dump);
        Ok(DumpTaken { at, dump, analysis })
    }

    /// A mark on the timeline, made on the host now.
    fn mark(&mut self, label: String) {
        let at = self.now();
        self.emit(vec![Entry::Event { at, device_ms: None, event: Event::Mark { label } }]);
    }

    /// The port went away: mark a gap and wait for it to return (or stop).
    fn lost(&mut self, gone: Gone) -> Flow {
        // Close the dead port now, not at the reattach: holding it keeps its name taken.
        self.link = Box::new(crate::link::Unplugged);
        self.poll.at_prompt();
        let at = self.now();
        self.emit(vec![Entry::Gap { at, reason: gone.0.clone() }]);
        if !self.options.reattach {
            return Flow::Stop;
        }
        loop {
            match self.commands.recv_timeout(Duration::from_millis(200)) {
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return Flow::Stop,
                // Marks are the host's: the timeline goes on while the board is away.
                Ok(Command::Mark(label)) => self.mark(label),
                Ok(Command::Dump(reply)) => {
                    let _ = reply.send(Err(format!("{} is unplugged: waiting for it to come back", self.opener.name())));
                }
                Ok(Command::Input(_)) => {
                    let at = self.now();
                    let text = format!("typed while {} is unplugged: not sent", self.opener.name());
                    self.emit(vec![Entry::Notice { at, text }]);
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if let Ok(link) = self.opener.open() {
                self.link = link;
                self.decoder.restart_stream();
                self.poll.at_prompt();
                self.poll_cost.restart();
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
        if let PollState::On { repl: state @ (ReplState::Raw | ReplState::Running), raw_paste, .. } = self.poll {
            // Dropped at once: that stops the poll loop and leaves the board at its prompt.
            drop(RawRepl::resume(&mut *self.link, self.decoder.demux(), state, raw_paste));
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

    /// The watch's reset signs as text.
    struct Watch(ResetWatch);

    impl Watch {
        fn push(&mut self, text: &[u8]) -> Option<String> {
            self.0.push(text).reset.map(|s| s.text)
        }
    }

    #[test]
    fn a_banner_on_the_first_line_is_a_board_starting_not_a_reset() {
        let mut w = ResetWatch::default();
        assert!(w.push(b"MicroPython v1.29.0 on 2026-07-05; ESP32 module with ESP32\r\n").reset.is_some_and(|s| s.first_line));
        assert!(w.push(b"\x00MicroPython v1.29.0 on 2026-07-05; ESP32 module with ESP32\r\n").reset.is_some_and(|s| !s.first_line));
    }

    #[test]
    fn resets_are_seen_in_console_text() {
        let w = ResetWatch::default();
        let mut w = Watch(w);
        assert_eq!(w.push(b">>> print(1)\r\n1\r\n"), None);
        assert_eq!(w.push(b"MPY: soft re"), None);
        assert_eq!(w.push(b"boot\r\n"), Some("MPY: soft reboot".into()));
        assert!(w.push(b"MicroPython v1.29.0 on 2026-07-05; ESP32 module with ESP32\r\n").is_some());
        assert_eq!(w.push(b"the MicroPython v1 docs on x\r\n"), None);
        // A banner right after the prompt the board sat at.
        assert!(w.push(b">>> MicroPython v1.29.0 on 2026-07-05; linux [GCC 14.2.1] version\r\n").is_some());
        // The NUL a UART board sends as it boots, then its banner.
        assert!(w.push(b"\x00MicroPython v1.9.4-8 on 2018-05-04; ESP module with ESP8266\r\n").is_some());
        assert!(w.push(b"\xff\x00\r\nets Jun  8 2016 00:22:57\r\n").is_some());
        assert!(w.push(b"ESP-ROM:esp32s3-20210327\r\n").is_some());
        assert!(w.push(b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n").is_some());
        assert_eq!(w.push(b"MicroPython is fun\r\n"), None);
        assert!(w.push(b"\x00\r\n").is_some());
    }

    #[test]
    fn a_memory_error_in_the_console_becomes_a_mark_before_the_dump_after_it() {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        d.feed(b"Traceback (most recent call last):\r\n  File \"<stdin>\", line 3\r\nMemoryError: memory allocation failed, alloc", 1, &mut out);
        d.feed(b"ating 1088 bytes\r\nGC: total: 2048, used: 64, free: 1984\r\n No. of 1-blocks: 0, 2-blocks: 0, max blk sz: 4, max free sz: 124\r\n>>> ", 2, &mut out);
        let marks: Vec<u64> = out.iter().filter_map(|e| if let Entry::Event { event, .. } = e { memory_error_of(event) } else { None }).collect();
        assert_eq!(marks, [1088]);
        let mark = out.iter().position(|e| matches!(e, Entry::Event { .. })).unwrap();
        let dump = out.iter().position(|e| matches!(e, Entry::Snapshot { .. })).unwrap();
        assert!(mark < dump, "{out:?}");
        // Other wording, a user's own mark, and a bare mention are not failures.
        assert_eq!(failed_allocation("MemoryError: memory allocation failed, allocating 32 bytes (gc.mem_free() said 27872)"), Some(32));
        assert_eq!(failed_allocation("memory allocation failed, allocating many bytes"), None);
        assert_eq!(memory_error_of(&Event::Mark { label: "mark 1".into() }), None);
        assert_eq!(memory_error_of(&memory_error_mark(582)), Some(582));
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

#[cfg(test)]
mod reset_tests {
    use super::*;

    fn resets(bytes: &[u8]) -> Vec<String> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        d.feed(bytes, 0, &mut out);
        out.iter()
            .filter_map(|e| match e {
                Entry::Segment { reason: SegmentReason::Reset, detail, .. } => Some(detail.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_banner_after_a_nul_is_a_reset() {
        let r = resets(b">>> print(1)\r\n1\r\n>>> \x00MicroPython v1.9.4-8-ga9a3caad0 on 2018-05-11; ESP module with ESP8266\r\nType \"help()\" for more information.\r\n>>> ");
        assert_eq!(r.len(), 1, "{r:?}");
    }
}
