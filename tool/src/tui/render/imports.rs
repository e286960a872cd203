//! Imports: what each import kept, nested imports under their parent.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use crate::cmd::imports::tree_from_events;
use crate::human::thousands;
use crate::tui::app::App;

pub fn draw(f: &mut Frame, rect: Rect, app: &App) {
    let title = if app.imports_by_bytes { " Imports, by bytes kept (s: in order) " } else { " Imports, in order (s: by bytes kept) " };
    let block = Block::default().borders(Borders::ALL).title(title);
    // Like every view, the imports up to the cursor's moment.
    let events = &app.history.entries_for_imports;
    let until = app.current().map_or(u64::MAX, |i| app.history.snapshots[i].at);
    let mut rows = tree_from_events(&events[..events.partition_point(|e| e.at() <= until)]);
    if rows.is_empty() {
        let text = "No import events here. With the heapscope firmware module, call heapscope.trace_imports(True) \
                    before your imports; on stock firmware, `heapscope imports MODULE...` measures them through the REPL.";
        f.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }).block(block), rect);
        return;
    }
    if app.imports_by_bytes {
        // Top-level imports by what they kept, each followed by its nested imports.
        let mut groups: Vec<Vec<_>> = Vec::new();
        for r in rows.drain(..) {
            match groups.last_mut() {
                Some(g) if r.depth > 0 => g.push(r),
                _ => groups.push(vec![r]),
            }
        }
        groups.sort_by_key(|g| std::cmp::Reverse(g[0].retained_bytes));
        rows = groups.into_iter().flatten().collect();
    }
    let table_rows: Vec<Row> = rows
        .iter()
        .map(|r| {
            let name = format!("{}{}", "  ".repeat(r.depth as usize), r.module);
            let kept = if r.ok { thousands(r.retained_bytes.max(0) as u64) } else { "failed".into() };
            Row::new(vec![
                Cell::from(name),
                Cell::from(kept),
                Cell::from(thousands(r.exclusive_bytes.max(0) as u64)),
                Cell::from(r.retained_blocks.to_string()),
                Cell::from(format!("{} → {}", thousands(r.largest_free_before), thousands(r.largest_free_after))),
                Cell::from(format!("{:.1}% → {:.1}%", 100.0 * r.fragmentation_before, 100.0 * r.fragmentation_after)),
                Cell::from(r.time_us.map_or("-".into(), |us| format!("{:.1} ms", us as f64 / 1000.0))),
            ])
            .style(if r.ok { Style::default() } else { Style::default().red() })
        })
        .collect();
    let table = Table::new(
        table_rows,
        [Constraint::Min(16), Constraint::Length(9), Constraint::Length(9), Constraint::Length(7), Constraint::Length(20), Constraint::Length(16), Constraint::Length(9)],
    )
    .header(Row::new(vec!["module", "kept B", "own B", "blocks", "largest free", "fragmentation", "time"]).bold())
    .block(block);
    f.render_widget(table, rect);
}
