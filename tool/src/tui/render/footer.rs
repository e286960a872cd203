//! The bottom line: the keys that matter here, or a message.

use ratatui::layout::Rect;
use ratatui::style::Stylize;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::tui::app::{App, View};

pub fn draw(f: &mut Frame, rect: Rect, app: &App) {
    if let Some(line) = &app.input {
        let text = Line::from(vec![Span::from(" REPL> ").bold(), Span::from(line.clone()), Span::from("▏"), Span::from("   Enter send · Esc leave").dark_gray()]);
        f.render_widget(Paragraph::new(text), rect);
        return;
    }
    let keys = match app.view {
        View::Map => "q quit · ? help · Tab view · hjkl move · +/- zoom · 0 fit · c changes · [ ] step · space freeze · m mark · o object",
        View::Console if app.live => "q quit · ? help · Tab view · i type to the REPL · ↑↓ scroll",
        View::Console => "q quit · ? help · Tab view · ↑↓ scroll",
        View::Imports => "q quit · ? help · Tab view · s sort · [ ] step",
        View::Objects => "q quit · ? help · Tab view · ↑↓ select · → expand · ← collapse · PgUp/PgDn",
        View::Diff => "q quit · ? help · Tab view · a compare against this moment · [ ] step",
        _ => "q quit · ? help · Tab view · ←→ or [ ] step · Home/End · space freeze · m mark",
    };
    let mut spans = vec![Span::from(format!(" {keys}")).dark_gray()];
    if let Some(m) = &app.message {
        spans.push(Span::from(format!("   {m}")).yellow());
    }
    f.render_widget(Paragraph::new(Line::from(spans)), rect);
}
