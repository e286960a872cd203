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
use std::time::Duration;

use ratatui::crossterm::event::Event as TermEvent;
use ratatui::backend::Backend;
use ratatui::Terminal;

use crate::capture::Capture;
use crate::recording::RecordingWriter;
use app::App;

/// A live capture, and the recording it also goes to.
pub struct Feed {
    pub capture: Capture,
    pub writer: Option<RecordingWriter>,
}

impl Feed {
    /// Moves what the capture has delivered into the app (and the recording); never blocks.
    pub fn pump(&mut self, app: &mut App) -> io::Result<()> {
        for e in self.capture.entries.try_iter() {
            if let Some(w) = self.writer.as_mut() {
                w.append(&e)?;
            }
            app.ingest(e);
        }
        for c in app.outgoing.drain(..) {
            self.capture.send(c);
        }
        app.receive_dump();
        Ok(())
    }
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
