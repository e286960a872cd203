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
    if let Some(output) = &args.output {
        super::check_output(output, args.force)?;
    }
    let options = capture::Options { mode: args.mode, poll_interval: args.interval, ..capture::Options::default() };
    let (capture, port) = super::record::start_capture(&args.device, options)?;
    let meta = super::record::meta(&port, &format!("{:?}", args.mode).to_lowercase());
    let (mut feed, history) = live_feed(capture, args.output.as_deref(), &meta)?;
    let app = App::new(history, port, true);
    let shown = tui::run_in_terminal(app, Some(&mut feed)).map_err(ui_error);
    finish(feed)?;
    shown.map(|_| ())
}

/// A live feed to `output` (or a temporary recording) and the history reading it back.
pub fn live_feed(capture: crate::capture::Capture, output: Option<&std::path::Path>, meta: &str) -> Result<(Feed, History), CliError> {
    Feed::new(capture, output, meta).map_err(|e| CliError::Io(format!("creating the recording: {e}")))
}

/// Drains the capture into the recording and closes it.
pub fn finish(feed: Feed) -> Result<(), CliError> {
    feed.finish().map_err(|e| CliError::Io(format!("finishing the recording: {e}")))?;
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
