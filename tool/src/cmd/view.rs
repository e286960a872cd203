//! `heapscope attach` and `heapscope replay`: the full-screen view.

use crate::capture;
use crate::cli::{AttachArgs, ReplayArgs};
use crate::exit::CliError;
use crate::tui::app::App;
use crate::tui::history::History;
use crate::tui::{self, Feed};

fn ui_error(e: std::io::Error) -> CliError {
    CliError::Io(format!("terminal: {e}"))
}

pub fn attach(args: &AttachArgs) -> Result<(), CliError> {
    let options = capture::Options { mode: args.mode, poll_interval: args.interval, ..capture::Options::default() };
    let (capture, port) = super::record::start_capture(&args.device, options)?;
    let writer = match &args.output {
        Some(path) => Some(super::record::create_writer(path, &super::record::meta(&port, &format!("{:?}", args.mode).to_lowercase()))?),
        None => None,
    };
    let mut feed = Feed { capture, writer };
    let app = App::new(History::new(), port, true);
    tui::run_in_terminal(app, Some(&mut feed)).map_err(ui_error)?;
    feed.capture.stop();
    finish(feed)
}

/// Drains the capture into the recording and closes it.
pub fn finish(mut feed: Feed) -> Result<(), CliError> {
    let mut app = App::new(History::new(), "", true);
    feed.pump(&mut app).map_err(|e| CliError::Io(format!("writing the recording: {e}")))?;
    if let Some(w) = feed.writer.take() {
        let end = app.history.snapshots.last().map_or(0, |s| s.at);
        w.finish(end).map_err(|e| CliError::Io(format!("finishing the recording: {e}")))?;
    }
    Ok(())
}

pub fn replay(args: &ReplayArgs) -> Result<(), CliError> {
    let rec = super::open_recording(&args.input)?;
    let title = args.input.display().to_string();
    let mut app = App::new(History::from_recording(rec), title, false);
    app.play();
    tui::run_in_terminal(app, None).map_err(ui_error)?;
    Ok(())
}
