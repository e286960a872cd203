//! `heapscope attach` and `heapscope replay`: the full-screen view.

use crate::capture;
use crate::cli::{AttachArgs, ReplayArgs};
use crate::exit::CliError;
use crate::tui::app::App;
use crate::tui::history::History;
use crate::tui::{self, Feed};

pub fn ui_error(e: std::io::Error) -> CliError {
    CliError::Io(format!("terminal: {e}"))
}

/// Checked before a full-screen command starts anything: the view draws on standard output and
/// reads keys from standard input or the controlling terminal (as crossterm does), so without
/// them it would fail on a bare OS error or draw into a pipe. `instead` names the headless way.
pub fn need_terminal(instead: &str) -> Result<(), CliError> {
    use std::io::IsTerminal;
    let keys = std::io::stdin().is_terminal() || std::fs::File::open("/dev/tty").is_ok();
    if std::io::stdout().is_terminal() && keys {
        return Ok(());
    }
    Err(CliError::Io(format!("the full-screen view needs a terminal to draw on and read keys from; {instead}")))
}

pub fn attach(args: &AttachArgs) -> Result<(), CliError> {
    if let Some(output) = &args.output {
        super::check_output(output, args.force)?;
    }
    need_terminal("`heapscope record --port PORT -o FILE` records without one")?;
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
    need_terminal(&format!("`heapscope inspect {}` prints its figures and events", args.input.display()))?;
    let rec = super::open_recording(&args.input)?;
    let title = args.input.display().to_string();
    let mut app = App::new(History::from_recording(rec), title, false);
    app.play();
    tui::run_in_terminal(app, None).map_err(ui_error)?;
    Ok(())
}
