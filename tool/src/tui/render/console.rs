//! Console: the board's text output with scrollback.

use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use crate::tui::app::App;

pub fn draw(f: &mut Frame, rect: Rect, app: &mut App) {
    // Frozen or replaying: the console as it was at the moment on screen.
    let until = match (app.frozen(), app.current()) {
        (true, Some(i)) => app.history.snapshots[i].at,
        _ => u64::MAX,
    };
    let shown = app.history.console.partition_point(|(at, _)| *at <= until);
    let lines = &app.history.console[..shown];
    let height = rect.height.saturating_sub(2) as usize;
    let max_scroll = lines.len().saturating_sub(height);
    app.console_scroll = app.console_scroll.min(max_scroll);
    let end = lines.len() - app.console_scroll;
    let start = end.saturating_sub(height);
    let title = if app.console_scroll > 0 {
        format!(" Console ({} up) ", crate::human::count(app.console_scroll, "line"))
    } else {
        " Console ".to_string()
    };
    let text: Vec<Line> = lines[start..end].iter().map(|(_, l)| Line::from(l.as_str())).collect();
    f.render_widget(Paragraph::new(text).block(Block::default().borders(Borders::ALL).title(title)), rect);
}
