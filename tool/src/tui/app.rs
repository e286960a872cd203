//! The UI's state and how input changes it. Rendering reads it; nothing here draws.

use std::sync::Arc;
use std::time::Instant;

use ratatui::crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, MouseButton, MouseEventKind};
use heapscope_protocol::Snapshot;
use ratatui::layout::{Position, Rect};

use super::history::History;
use super::keys::{self, Action};
use super::render::heapmap::Scale;
use crate::capture::Command;
use crate::entry::Entry;
use crate::human::thousands;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Map,
    Fragmentation,
    Timeline,
    Imports,
    Diff,
    Types,
    Console,
    Objects,
}

impl View {
    pub const ALL: [View; 8] =
        [View::Map, View::Fragmentation, View::Timeline, View::Imports, View::Diff, View::Types, View::Console, View::Objects];

    pub fn title(self) -> &'static str {
        match self {
            View::Map => "Map",
            View::Fragmentation => "Fragmentation",
            View::Timeline => "Timeline",
            View::Imports => "Imports",
            View::Diff => "Diff",
            View::Types => "Types",
            View::Console => "Console",
            View::Objects => "Objects",
        }
    }

    fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).expect("every view is listed")
    }
}

/// Blocks per pixel on the heap map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zoom {
    /// The closest that shows every block.
    Fit,
    Fixed(Scale),
}

/// Where the last frame put things, for the mouse.
#[derive(Clone, Copy, Debug)]
pub struct Regions {
    pub tabs: Rect,
    pub map: Rect,
    /// Blocks per pixel the map was drawn with.
    pub map_bpp: u32,
    /// The whole scale it was drawn with.
    pub map_scale: Scale,
    pub map_first_row: usize,
    pub timeline: Rect,
}

impl Default for Regions {
    fn default() -> Regions {
        Regions { tabs: Rect::default(), map: Rect::default(), map_bpp: 1, map_scale: Scale::ONE, map_first_row: 0, timeline: Rect::default() }
    }
}

pub struct App {
    pub history: History,
    pub title: String,
    pub live: bool,
    /// The session has a REPL to type to and take dumps through: live, unless the program runs
    /// without one (the demo's `micropython -c`).
    pub repl: bool,
    pub view: View,
    /// The snapshot on screen; `None` follows the newest.
    pub cursor: Option<usize>,
    pub zoom: Zoom,
    /// Map cursor: (area, block).
    pub block: (usize, usize),
    /// First cell row of the map on screen.
    pub map_scroll: usize,
    /// The cursor and its row when the map last scrolled to it: the map follows the cursor
    /// only when it moves, so the wheel can scroll in between.
    pub map_followed: Option<((usize, usize), usize)>,
    pub highlight_changes: bool,
    pub diff_anchor: Option<usize>,
    pub imports_by_bytes: bool,
    pub console_scroll: usize,
    /// Some while typing a line for the REPL.
    pub input: Option<String>,
    pub show_help: bool,
    pub quit: bool,
    /// A short message in the footer.
    pub message: Option<String>,
    /// Commands for the capture (marks, REPL input).
    pub outgoing: Vec<Command>,
    pub regions: Regions,
    /// Live: the line has been down since then (cable out), and why; the figures shown are
    /// from before.
    pub line_down: Option<(std::time::Instant, String)>,
    /// Live, before any snapshot: the capture's word on why none comes (e.g. not a REPL).
    pub diagnosis: Option<String>,
    /// The heap map's per-block types for the snapshot last drawn: redraws of the same moment
    /// (every tick) reuse them.
    pub map_codes: Option<(usize, Arc<super::render::heapmap::BlockCodes>)>,
    /// The heap dump the Objects view shows, if one was opened.
    pub objects: Option<super::render::objects::ObjectsState>,
    /// The answer to a dump asked of the live capture, while it is being taken.
    pub pending_dump: Option<std::sync::mpsc::Receiver<Result<crate::capture::DumpTaken, String>>>,
    /// Which of a replayed recording's dumps the Objects view shows.
    recorded_dump: Option<usize>,
    /// Some while a replay plays.
    pub playback: Option<Playback>,
    /// How the terminal shows colour; drawing adapts to it.
    pub color_mode: super::palette::ColorMode,
    marks: usize,
    /// Failures the live view has already stopped at.
    failures_shown: usize,
}

/// Why `d` and `i` do nothing in a live session without a REPL.
const NO_REPL: &str = "this session has no REPL to type to or take a heap dump through";

/// A replay playing at the recorded pace: snapshot time `from` was on screen at `started`.
#[derive(Clone, Copy, Debug)]
pub struct Playback {
    started: Instant,
    from: u64,
}

impl App {
    pub fn new(history: History, title: impl Into<String>, live: bool) -> App {
        // A replay opens at its start (`play` sets it going); live follows the newest.
        let cursor = if live || history.is_empty() { None } else { Some(0) };
        App {
            history,
            title: title.into(),
            live,
            repl: live,
            view: View::Map,
            cursor,
            zoom: Zoom::Fit,
            block: (0, 0),
            map_scroll: 0,
            map_followed: None,
            highlight_changes: false,
            diff_anchor: None,
            imports_by_bytes: true,
            console_scroll: 0,
            input: None,
            show_help: false,
            quit: false,
            message: None,
            outgoing: Vec::new(),
            regions: Regions::default(),
            line_down: None,
            diagnosis: None,
            map_codes: None,
            objects: None,
            pending_dump: None,
            recorded_dump: None,
            playback: None,
            color_mode: super::palette::ColorMode::default(),
            marks: 0,
            failures_shown: 0,
        }
    }

    /// Starts (or resumes) playing a replay at the recorded pace; from the start if it was at
    /// the end. Playing stops at each `MemoryError`, showing the heap the failure left.
    pub fn play(&mut self) {
        let Some(cur) = self.current().filter(|_| !self.live) else { return };
        let cur = if cur + 1 >= self.history.len() { 0 } else { cur };
        self.cursor = Some(cur);
        self.playback = Some(Playback { started: Instant::now(), from: self.history.snapshots[cur].at });
    }

    /// Moves time on: a playing replay advances to `now`; a live view stops at a new failure
    /// (space follows the board again).
    pub fn tick(&mut self, now: Instant) {
        self.follow_recorded_dumps();
        if self.live {
            while let Some(f) = self.history.failures.get(self.failures_shown).copied() {
                if f.snapshot >= self.history.len() {
                    break; // the heap after it has not arrived yet
                }
                self.failures_shown += 1;
                if !self.frozen() {
                    self.cursor = Some(f.snapshot);
                    self.message = Some(self.failure_message(f.snapshot, "space follows the board again"));
                }
            }
            return;
        }
        let (Some(p), Some(cur)) = (self.playback, self.current()) else { return };
        let due = p.from.saturating_add(now.saturating_duration_since(p.started).as_micros() as u64);
        let reached = self.history.snapshots.partition_point(|s| s.at <= due).saturating_sub(1).max(cur);
        if let Some(f) = self.history.failures.iter().find(|f| f.snapshot > cur && f.snapshot <= reached) {
            let i = f.snapshot;
            self.cursor = Some(i);
            self.playback = None;
            self.message = Some(self.failure_message(i, "space plays on"));
        } else {
            self.cursor = Some(reached);
            if reached + 1 >= self.history.len() {
                self.playback = None;
                self.message = Some("the end of the recording (space plays it again)".into());
            }
        }
    }

    /// What the failure shown at snapshot `i` means, for the footer.
    fn failure_message(&self, i: usize, then: &str) -> String {
        let Some(f) = self.history.failure_at(i) else { return String::new() };
        let s = self.history.snapshots[i].summary;
        format!(
            "MemoryError: {} B failed with {} B free; largest free block {} B ({then})",
            thousands(f.bytes),
            thousands(s.free),
            thousands(s.largest_free)
        )
    }

    /// Index of the snapshot on screen.
    pub fn current(&self) -> Option<usize> {
        self.cursor.or(self.history.len().checked_sub(1))
    }

    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.history.snapshot(self.current()?)
    }

    /// Per-block types of the snapshot on screen, computed once per snapshot.
    pub fn map_codes(&mut self, snapshot: &Snapshot) -> Arc<super::render::heapmap::BlockCodes> {
        let current = self.current().unwrap_or(0);
        match &self.map_codes {
            Some((i, codes)) if *i == current => codes.clone(),
            _ => {
                let codes = Arc::new(super::render::heapmap::block_codes(snapshot));
                self.map_codes = Some((current, codes.clone()));
                codes
            }
        }
    }

    pub fn previous_snapshot(&self) -> Option<Arc<Snapshot>> {
        self.history.snapshot(self.current()?.checked_sub(1)?)
    }

    pub fn frozen(&self) -> bool {
        self.cursor.is_some()
    }

    /// One entry from the capture, kept in memory.
    pub fn ingest(&mut self, e: Entry) {
        self.observe(&e);
        self.history.push(e);
    }

    /// One entry from the capture, already written to the session's recording (`summary` and
    /// `written` say where), from which the history reads it back.
    pub fn ingest_recorded(&mut self, e: Entry, summary: Option<crate::recording::Summary>, written: Option<crate::recording::Written>) {
        self.observe(&e);
        self.history.take(e, summary, written);
    }

    /// What an entry says about the line itself: the cable out, or why nothing comes.
    fn observe(&mut self, e: &Entry) {
        match e {
            Entry::Gap { reason, .. } => self.line_down = Some((std::time::Instant::now(), reason.clone())),
            Entry::Segment { reason: crate::entry::SegmentReason::Reattach, .. } => self.line_down = None,
            Entry::Corrupt { detail, .. } if self.history.is_empty() => self.diagnosis = Some(detail.clone()),
            Entry::Snapshot { .. } => self.diagnosis = None,
            _ => {}
        }
    }

    fn step(&mut self, delta: isize) {
        let Some(cur) = self.current() else { return };
        self.playback = None;
        let last = self.history.len() - 1;
        let next = (cur as isize + delta).clamp(0, last as isize) as usize;
        self.cursor = Some(next);
    }

    pub fn handle(&mut self, event: TermEvent) {
        match event {
            TermEvent::Key(key) if key.kind != KeyEventKind::Release => self.key(key),
            TermEvent::Mouse(m) => match m.kind {
                MouseEventKind::Down(MouseButton::Left) => self.click(m.column, m.row),
                MouseEventKind::ScrollUp if self.view == View::Map => self.map_scroll = self.map_scroll.saturating_sub(3),
                MouseEventKind::ScrollDown if self.view == View::Map => self.map_scroll += 3,
                MouseEventKind::ScrollUp if self.view == View::Console => self.console_scroll += 3,
                MouseEventKind::ScrollDown if self.view == View::Console => self.console_scroll = self.console_scroll.saturating_sub(3),
                _ => {}
            },
            _ => {}
        }
    }

    fn key(&mut self, key: KeyEvent) {
        if let Some(line) = self.input.as_mut() {
            match key.code {
                // Ctrl-C while typing goes to the board (it stops a running program), not to
                // the tool.
                KeyCode::Char('c') if key.modifiers.contains(ratatui::crossterm::event::KeyModifiers::CONTROL) => {
                    line.clear();
                    self.outgoing.push(Command::Input(vec![0x03]));
                }
                KeyCode::Esc => self.input = None,
                KeyCode::Enter => {
                    let mut bytes = std::mem::take(line).into_bytes();
                    bytes.push(b'\r');
                    self.outgoing.push(Command::Input(bytes));
                }
                KeyCode::Backspace => {
                    line.pop();
                }
                KeyCode::Char(c) => line.push(c),
                _ => {}
            }
            return;
        }
        if self.show_help {
            // Any key closes the help; q still quits.
            self.show_help = false;
            if key.code != KeyCode::Char('q') {
                return;
            }
        }
        if let Some(a) = keys::action(key) {
            self.act(a);
        }
    }

    pub fn act(&mut self, a: Action) {
        // A message answers the key before; the next one moves on (its own may replace it).
        if a != Action::Quit {
            self.message = None;
        }
        match a {
            Action::Quit => self.quit = true,
            Action::Help => self.show_help = true,
            Action::NextView => self.view = View::ALL[(self.view.index() + 1) % View::ALL.len()],
            Action::PrevView => self.view = View::ALL[(self.view.index() + View::ALL.len() - 1) % View::ALL.len()],
            Action::View(i) => self.view = View::ALL[i.min(View::ALL.len() - 1)],
            Action::Left | Action::Right | Action::Up | Action::Down | Action::PageUp | Action::PageDown => self.navigate(a),
            Action::ZoomIn => match self.regions.map_scale.zoom_in() {
                Some(scale) => self.zoom = Zoom::Fixed(scale),
                None => {
                    self.message = Some(format!("the map is at its closest: {} (- zooms out, 0 fits)", self.regions.map_scale.describe()))
                }
            },
            Action::ZoomOut => match self.regions.map_scale.zoom_out() {
                Some(scale) => self.zoom = Zoom::Fixed(scale),
                None => self.message = Some(format!("the map is at its farthest: {}", self.regions.map_scale.describe())),
            },
            Action::ZoomFit => {
                self.zoom = Zoom::Fit;
                self.map_scroll = 0;
            }
            Action::Freeze if !self.live => match self.playback.take() {
                Some(_) => self.message = Some("paused (space plays on)".into()),
                None => self.play(),
            },
            Action::Freeze => self.cursor = if self.cursor.is_some() { None } else { self.current() },
            Action::PrevSnapshot => self.step(-1),
            Action::NextSnapshot => self.step(1),
            Action::FirstSnapshot => {
                self.playback = None;
                if !self.history.is_empty() {
                    self.cursor = Some(0);
                }
            }
            Action::LastSnapshot => {
                self.playback = None;
                self.cursor = if self.live { None } else { self.history.len().checked_sub(1) }
            }
            Action::AddMark => {
                self.marks += 1;
                let label = format!("mark {}", self.marks);
                self.message = Some(format!("added {label}"));
                if self.live {
                    // The capture puts it on the timeline (and in the recording).
                    self.outgoing.push(Command::Mark(label));
                } else if let Some(i) = self.current() {
                    let at = self.history.snapshots[i].at;
                    self.history.markers.push(super::history::Marker { at, kind: super::history::MarkerKind::Mark, label });
                }
            }
            Action::DiffAnchor => {
                self.diff_anchor = self.current();
                self.message = self.diff_anchor.map(|i| format!("diff: comparing against snapshot {}", i + 1));
            }
            Action::ToggleChanges => self.highlight_changes = !self.highlight_changes,
            Action::Sort => self.imports_by_bytes = !self.imports_by_bytes,
            Action::OpenObject => self.open_object_under_cursor(),
            Action::TakeDump => {
                if !self.live {
                    self.message = Some("a replay has no board to dump: the Objects view shows the recording's dumps".into());
                } else if !self.repl {
                    self.message = Some(NO_REPL.into());
                } else if self.pending_dump.is_none() {
                    let (reply, answer) = std::sync::mpsc::channel();
                    self.outgoing.push(Command::Dump(reply));
                    self.pending_dump = Some(answer);
                    self.message = Some("taking a heap dump through the raw REPL (this stops the board's program)...".into());
                }
            }
            Action::Input => {
                if !self.live {
                    self.message = Some("a replay has no board to type to".into());
                } else if !self.repl {
                    self.message = Some(NO_REPL.into());
                } else {
                    self.view = View::Console;
                    self.input = Some(String::new());
                }
            }
        }
    }

    fn navigate(&mut self, a: Action) {
        match self.view {
            View::Map => self.move_block(a),
            View::Console => match a {
                Action::Up => self.console_scroll += 1,
                Action::Down => self.console_scroll = self.console_scroll.saturating_sub(1),
                Action::PageUp => self.console_scroll += 20,
                Action::PageDown => self.console_scroll = self.console_scroll.saturating_sub(20),
                _ => {}
            },
            View::Objects => {
                if let Some(o) = self.objects.as_mut() {
                    o.navigate(a);
                }
            }
            View::Timeline | View::Fragmentation | View::Diff | View::Types | View::Imports => match a {
                Action::Left => self.step(-1),
                Action::Right => self.step(1),
                Action::PageUp => self.step(-10),
                Action::PageDown => self.step(10),
                _ => {}
            },
        }
    }

    /// Takes the answer to a dump, if it has come, into the Objects view; returns the dump and
    /// when it was taken, for the recording.
    pub fn receive_dump(&mut self) -> Option<(crate::entry::HostMicros, heapscope_objects::HeapDump)> {
        let answer = self.pending_dump.as_ref()?;
        let result = match answer.try_recv() {
            Ok(result) => result,
            Err(std::sync::mpsc::TryRecvError::Empty) => return None,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Err("heap dump: the capture stopped".into()),
        };
        self.pending_dump = None;
        match result {
            Ok(taken) => {
                self.message = Some(format!(
                    "heap dump: {} objects, {} unreliable blocks",
                    taken.analysis.objects.len(),
                    taken.analysis.unreliable_blocks
                ));
                self.objects = Some(super::render::objects::ObjectsState::new(Arc::new(taken.analysis)));
                self.view = View::Objects;
                Some((taken.at, taken.dump))
            }
            Err(e) => {
                self.message = Some(e);
                None
            }
        }
    }

    /// In a replay's Objects view: the recording's last dump at or before the cursor's moment.
    fn follow_recorded_dumps(&mut self) {
        if self.live || self.view != View::Objects || self.history.dumps.is_empty() {
            return;
        }
        let at = self.current().map_or(0, |i| self.history.snapshots[i].at);
        let wanted = self.history.dump_before(at);
        if wanted == self.recorded_dump {
            return;
        }
        self.recorded_dump = wanted;
        let Some(i) = wanted else {
            // The view says there is none yet, and when the first comes.
            self.objects = None;
            return;
        };
        match self.history.read_dump(i) {
            Ok(dump) => {
                let analysis = heapscope_objects::Analysis::new(&dump);
                self.message = Some(format!("heap dump {} of {}, taken at {}", i + 1, self.history.dumps.len(), crate::human::moment(self.history.dumps[i].0)));
                self.objects = Some(super::render::objects::ObjectsState::new(Arc::new(analysis)));
            }
            Err(e) => {
                self.objects = None;
                self.message = Some(e);
            }
        }
    }

    /// From the heap map: the object under the cursor, in the Objects view.
    fn open_object_under_cursor(&mut self) {
        if self.view != View::Map {
            return;
        }
        let address = self.snapshot().and_then(|s| s.areas.get(self.block.0).map(|a| a.address_of(self.block.1)));
        let Some(objects) = self.objects.as_mut() else {
            self.message = Some("no heap dump open: `heapscope objects FILE --tui`".into());
            return;
        };
        if address.is_some_and(|a| objects.reveal(a)) {
            self.view = View::Objects;
        } else {
            self.message = Some("no object of the dump under the cursor".into());
        }
    }

    /// Moves the map cursor by a pixel (rows by a pixel row); the map scrolls to follow.
    fn move_block(&mut self, a: Action) {
        let Some(s) = self.snapshot() else { return };
        if s.areas.is_empty() {
            return;
        }
        let scale = self.regions.map_scale;
        let step = scale.blocks_per_pixel;
        let width = scale.blocks_per_line(self.regions.map.width as usize);
        let (area, block) = self.block;
        let area = area.min(s.areas.len() - 1);
        let blocks = s.areas[area].blocks();
        let target: isize = match a {
            Action::Left => block as isize - step as isize,
            Action::Right => (block + step) as isize,
            Action::Up => block as isize - width as isize,
            Action::Down => (block + width) as isize,
            Action::PageUp => block as isize - (width * self.regions.map.height as usize * 2) as isize,
            _ => (block + width * self.regions.map.height as usize * 2) as isize,
        };
        self.block = if target < 0 {
            if area > 0 { (area - 1, s.areas[area - 1].blocks() - 1) } else { (0, 0) }
        } else if target as usize >= blocks {
            if area + 1 < s.areas.len() { (area + 1, 0) } else { (area, blocks - 1) }
        } else {
            (area, target as usize)
        };
    }

    fn click(&mut self, x: u16, y: u16) {
        self.message = None;
        let r = self.regions;
        if r.tabs.height > 0 && y == r.tabs.y {
            let mut at = r.tabs.x;
            for (i, v) in View::ALL.iter().enumerate() {
                let w = super::render::tabs::width(*v);
                if x >= at && x < at + w {
                    self.view = View::ALL[i];
                    return;
                }
                at += w + 1;
            }
        }
        if self.view == View::Map && r.map.width > 0 && contains(r.map, x, y) {
            if let Some(block) = super::render::heapmap::block_at(self, x, y) {
                self.block = block;
            }
        }
        if self.view == View::Timeline && contains(r.timeline, x, y) && !self.history.is_empty() {
            let first = self.history.snapshots[0].at;
            let last = self.history.snapshots[self.history.len() - 1].at.max(first + 1);
            let frac = f64::from(x - r.timeline.x) / f64::from(r.timeline.width.max(1));
            let at = first + ((last - first) as f64 * frac) as u64;
            self.playback = None;
            self.cursor = self.history.nearest(at);
        }
    }
}

fn contains(r: Rect, x: u16, y: u16) -> bool {
    r.contains(Position { x, y })
}
