//! `?`: every key, from the one table in `keys.rs`.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Stylize;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use crate::tui::keys::BINDINGS;

pub fn draw(f: &mut Frame, area: Rect) {
    let height = (BINDINGS.len() as u16 + 4).min(area.height);
    let width = 78.min(area.width);
    let [_, mid, _] = Layout::vertical([Constraint::Fill(1), Constraint::Length(height), Constraint::Fill(1)]).areas(area);
    let [_, popup, _] = Layout::horizontal([Constraint::Fill(1), Constraint::Length(width), Constraint::Fill(1)]).areas(mid);
    let mut lines: Vec<Line> = BINDINGS
        .iter()
        .map(|(keys, _, what)| Line::from(vec![Span::from(format!(" {keys:<16}")).bold(), Span::from(*what)]))
        .collect();
    lines.push(Line::from(" mouse: click a block, a tab, or a moment on the timeline").dark_gray());
    f.render_widget(Clear, popup);
    f.render_widget(Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" Keys (any key closes) ")), popup);
}
