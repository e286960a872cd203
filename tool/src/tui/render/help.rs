//! `?`: every key, from the one table in `keys.rs`, inside the view's border.

use ratatui::layout::{Constraint, Layout, Margin, Rect};
use ratatui::style::Stylize;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use crate::tui::keys::BINDINGS;

/// Draws the help over `body` (the view's panel), clear of its border.
pub fn draw(f: &mut Frame, body: Rect) {
    let room = body.inner(Margin { horizontal: 2, vertical: 1 });
    let lines: Vec<Line> = BINDINGS.iter().map(|b| Line::from(vec![Span::from(format!(" {:<16}", b.keys)).bold(), Span::from(b.what)])).collect();
    let height = (lines.len() as u16 + 2).min(room.height);
    let width = 76.min(room.width);
    let [_, mid, _] = Layout::vertical([Constraint::Fill(1), Constraint::Length(height), Constraint::Fill(1)]).areas(room);
    let [_, popup, _] = Layout::horizontal([Constraint::Fill(1), Constraint::Length(width), Constraint::Fill(1)]).areas(mid);
    let title = " Keys (any key closes) · mouse: click a block, a tab, a moment ";
    f.render_widget(Clear, popup);
    f.render_widget(Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)), popup);
}
