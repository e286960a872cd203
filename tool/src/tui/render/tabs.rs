//! The view tabs: ` N Title`, one after another, the current one highlighted.

use ratatui::layout::Rect;
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::tui::app::{App, View};

/// Width of a tab's text; the mouse handler uses the same.
pub fn width(v: View) -> u16 {
    v.title().len() as u16 + 3
}

pub fn draw(f: &mut Frame, rect: Rect, app: &mut App) {
    app.regions.tabs = rect;
    let mut spans = Vec::new();
    for (i, v) in View::ALL.iter().enumerate() {
        let text = format!(" {} {}", i + 1, v.title());
        spans.push(if *v == app.view { Span::styled(text, Style::default().reversed().bold()) } else { Span::from(text) });
        spans.push(Span::from("│").dark_gray());
    }
    f.render_widget(Paragraph::new(Line::from(spans)), rect);
}
