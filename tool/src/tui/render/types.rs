//! Types: bytes and allocations by object type.

use heapscope_protocol::metrics;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};
use ratatui::Frame;

use crate::human::thousands;
use crate::tui::app::App;
use crate::tui::palette;

pub fn draw(f: &mut Frame, rect: Rect, app: &App) {
    let block = Block::default().borders(Borders::ALL).title(" Types: bytes by object type ");
    let Some(s) = app.snapshot() else {
        f.render_widget(Paragraph::new("waiting for the first snapshot...").block(block), rect);
        return;
    };
    let m = metrics::compute(&s);
    if m.types.is_empty() {
        f.render_widget(Paragraph::new("no layout in this snapshot: types need mem_info(1) or the firmware module").block(block), rect);
        return;
    }
    let mut types = m.types.clone();
    types.sort_by_key(|t| std::cmp::Reverse(t.bytes));
    let used = m.used_bytes.max(1);
    let bar_width = rect.width.saturating_sub(50).max(4) as u64;
    let rows: Vec<Row> = types
        .iter()
        .map(|t| {
            let share = t.bytes as f64 / used as f64;
            Row::new(vec![
                Cell::from(palette::swatch(palette::of(t.obj_type), app.color_mode)),
                Cell::from(t.obj_type.name()),
                Cell::from(thousands(t.bytes)),
                Cell::from(thousands(t.allocations as u64)),
                Cell::from(format!("{:.1}%", 100.0 * share)),
                Cell::from("▇".repeat(((share * bar_width as f64).round() as usize).max(1))).style(Style::default().fg(palette::of(t.obj_type))),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [Constraint::Length(1), Constraint::Length(13), Constraint::Length(10), Constraint::Length(8), Constraint::Length(7), Constraint::Min(4)],
    )
    .header(Row::new(vec!["", "type", "bytes", "allocs", "of used", ""]).bold())
    .block(block);
    f.render_widget(table, rect);
}
