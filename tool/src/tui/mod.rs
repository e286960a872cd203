//! The terminal UI: heap map, fragmentation, timeline, imports, diff, types, console.
//!
//! All I/O is injected: [`start`] takes the terminal backend, a source of terminal events, and
//! the capture feeding it (or none, for a replay), so tests drive it with ratatui's
//! `TestBackend`, scripted keys and a recording. The capture runs on its own thread; the UI
//! only ever takes what has already arrived, so it never waits on the port.

pub mod app;
pub mod history;
pub mod keys;
pub mod palette;
pub mod render;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::Event as TermEvent;
use ratatui::backend::Backend;
use ratatui::Terminal;

use crate::capture::Capture;
use crate::entry::Entry;
use crate::recording::{RecordingWriter, Snapshots, Summary};
use app::App;
use history::History;

/// A live capture, and the recording it goes to: the one asked for, or a temporary one, so
/// that what is not on screen waits in the file rather than in memory.
pub struct Feed {
    pub capture: Capture,
    pub writer: Option<RecordingWriter>,
    /// A temporary recording's path, removed when the feed is finished (already removed where
    /// the system lets an open file go).
    temporary: Option<PathBuf>,
    started: Instant,
}

impl Feed {
    /// A feed recording to `output`, or to a temporary file; with the history that reads it.
    pub fn new(capture: Capture, output: Option<&Path>, meta: &str) -> io::Result<(Feed, History)> {
        let (path, temporary) = match output {
            Some(p) => (p.to_path_buf(), None),
            None => {
                let p = std::env::temp_dir().join(format!("heapscope-live-{}-{:x}.hsr", std::process::id(), random_suffix()));
                (p.clone(), Some(p))
            }
        };
        let writer = RecordingWriter::create(&path, meta).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let snapshots = Snapshots::follow(&path)?;
        let temporary = temporary.filter(|p| std::fs::remove_file(p).is_err());
        Ok((Feed { capture, writer: Some(writer), temporary, started: Instant::now() }, History::recorded(snapshots)))
    }

    /// Moves what the capture has delivered into the app (and the recording); never blocks.
    pub fn pump(&mut self, app: &mut App) -> io::Result<()> {
        for e in self.capture.entries.try_iter() {
            let summary = match &e {
                Entry::Snapshot { snapshot, .. } => Some(Summary::of(snapshot)),
                _ => None,
            };
            let written = match self.writer.as_mut() {
                Some(w) => w.append_with(&e, summary)?,
                None => None,
            };
            app.ingest_recorded(e, summary, written);
        }
        for c in app.outgoing.drain(..) {
            self.capture.send(c);
        }
        if let Some((at, dump)) = app.receive_dump() {
            // The live session's recording keeps it beside its snapshots.
            if let Some(w) = self.writer.as_mut() {
                w.append_dump(at, &dump)?;
            }
        }
        Ok(())
    }

    /// Stops the capture, writes what it still delivers, and closes the recording (a temporary
    /// one is removed). Returns the recording's length in bytes.
    pub fn finish(mut self) -> io::Result<u64> {
        self.capture.stop();
        let mut bytes = 0;
        if let Some(mut w) = self.writer.take() {
            for e in self.capture.entries.try_iter() {
                w.append(&e)?;
            }
            bytes = w.finish(self.started.elapsed().as_micros() as u64)?;
        }
        if let Some(p) = self.temporary.take() {
            let _ = std::fs::remove_file(p);
        }
        Ok(bytes)
    }
}

fn random_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// Runs the UI until the user quits. `next_event` waits at most the given time for one terminal
/// event. Returns the app as it was left.
pub fn start<B: Backend>(
    terminal: &mut Terminal<B>,
    mut app: App,
    mut next_event: impl FnMut(Duration) -> io::Result<Option<TermEvent>>,
    mut feed: Option<&mut Feed>,
) -> io::Result<App> {
    while !app.quit {
        if let Some(f) = feed.as_deref_mut() {
            f.pump(&mut app)?;
        } else {
            app.outgoing.clear();
        }
        app.tick(std::time::Instant::now());
        terminal.draw(|frame| render::draw(frame, &mut app)).map_err(|e| io::Error::other(e.to_string()))?;
        if let Some(ev) = next_event(Duration::from_millis(100))? {
            app.handle(ev);
        }
    }
    Ok(app)
}

/// `start` on the real terminal: raw mode, alternate screen and mouse, all undone on the way
/// out (also after a panic), so the shell is left as it was.
pub fn run_in_terminal(mut app: App, feed: Option<&mut Feed>) -> io::Result<App> {
    app.color_mode = palette::ColorMode::detect();
    use ratatui::crossterm::event::{DisableMouseCapture, EnableMouseCapture};
    use ratatui::crossterm::execute;
    use ratatui::crossterm::terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen};

    fn restore() {
        let _ = disable_raw_mode();
        let _ = execute!(io::stdout(), DisableMouseCapture, LeaveAlternateScreen, ratatui::crossterm::cursor::Show);
    }
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        default_hook(info);
    }));
    enable_raw_mode()?;
    execute!(io::stdout(), EnterAlternateScreen, EnableMouseCapture)?;
    let mut terminal = Terminal::new(ratatui::backend::CrosstermBackend::new(io::stdout()))?;
    let result = start(
        &mut terminal,
        app,
        |timeout| {
            if ratatui::crossterm::event::poll(timeout)? {
                ratatui::crossterm::event::read().map(Some)
            } else {
                Ok(None)
            }
        },
        feed,
    );
    restore();
    let _ = std::panic::take_hook();
    result
}
