//! The bottom line: the keys that matter here, or a message.

use ratatui::layout::Rect;
use ratatui::style::Stylize;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::tui::app::App;
use crate::tui::keys;

pub fn draw(f: &mut Frame, rect: Rect, app: &App) {
    if let Some(line) = &app.input {
        let text = Line::from(vec![Span::from(" REPL> ").bold(), Span::from(line.clone()), Span::from("▏"), Span::from("   Enter send · Esc leave").dark_gray()]);
        f.render_widget(Paragraph::new(text), rect);
        return;
    }
    // A message (a failure reached, a zoom limit) comes first: it is why the user looks here.
    let mut spans = Vec::new();
    if let Some(m) = &app.message {
        spans.push(Span::from(format!(" {m}   ")).yellow());
    }
    spans.push(Span::from(format!(" {}", keys::footer(app.view, app.repl).join(" · "))).dark_gray());
    f.render_widget(Paragraph::new(Line::from(spans)), rect);
}
