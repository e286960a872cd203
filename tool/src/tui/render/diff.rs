//! Diff: two moments overlaid on one map: what was allocated, freed and kept between them.

use heapscope_protocol::model::BlockKind;
use heapscope_protocol::Snapshot;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Stylize;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use crate::human::{signed, thousands};
use crate::tui::app::App;
use crate::tui::palette;
use crate::tui::render::heapmap;

/// Per block of `b`: 0 free in both, 1 allocated since `a`, 2 freed since `a`, 3 kept.
fn compare(a: &Snapshot, b: &Snapshot) -> Vec<Vec<u8>> {
    b.areas
        .iter()
        .map(|area| {
            let old = a.areas.iter().find(|o| o.pool_start() == area.pool_start() && o.blocks() == area.blocks());
            (0..area.blocks())
                .map(|i| {
                    let now = area.kinds().get(i) != BlockKind::Free;
                    let then = old.is_some_and(|o| o.kinds().get(i) != BlockKind::Free);
                    match (then, now) {
                        (false, false) => 0,
                        (false, true) => 1,
                        (true, false) => 2,
                        (true, true) => 3,
                    }
                })
                .collect()
        })
        .collect()
}

pub fn draw(f: &mut Frame, rect: Rect, app: &mut App) {
    let Some(cur) = app.current() else {
        f.render_widget(Paragraph::new("waiting for snapshots...").block(Block::default().borders(Borders::ALL).title(" Diff ")), rect);
        return;
    };
    let anchor = app.diff_anchor.unwrap_or(cur.saturating_sub(1));
    let title = format!(" Diff: snapshot {} → {} (a: compare against the current one) ", anchor + 1, cur + 1);
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(rect);
    f.render_widget(block, rect);
    let (Some(a), Some(b)) = (app.history.snapshot(anchor), app.snapshot()) else { return };
    if b.areas.is_empty() {
        f.render_widget(Paragraph::new("summary-only snapshots: no layout to compare"), inner);
        return;
    }
    let [totals_rect, map_rect] = Layout::vertical([Constraint::Length(2), Constraint::Min(1)]).areas(inner);
    let cmp = compare(&a, &b);
    let bs = u64::from(b.block_size().unwrap_or(16));
    let count = |k: u8| cmp.iter().flatten().filter(|&&c| c == k).count() as u64 * bs;
    let totals = vec![
        Line::from(vec![
            Span::from(" "),
            palette::swatch(palette::ALLOCATED, app.color_mode),
            Span::from(format!(" allocated {} B   ", thousands(count(1)))),
            palette::swatch(palette::FREED, app.color_mode),
            Span::from(format!(" freed {} B   ", thousands(count(2)))),
            palette::swatch(palette::KEPT, app.color_mode),
            Span::from(format!(" kept {} B   ", thousands(count(3)))),
            Span::from(format!("net {} B", signed(count(1) as i64 - count(2) as i64))).bold(),
        ]),
        Line::from(format!(" {:.1} s apart", (app.history.snapshots[cur].at as f64 - app.history.snapshots[anchor].at as f64) / 1e6)).dark_gray(),
    ];
    f.render_widget(Paragraph::new(totals), totals_rect);
    let color = |area: usize, first: usize, n: usize| {
        let cells = &cmp[area][first..first + n];
        for (k, c) in [(1, palette::ALLOCATED), (2, palette::FREED), (3, palette::KEPT)] {
            if cells.contains(&k) {
                return c;
            }
        }
        palette::FREE
    };
    heapmap::draw_map(f.buffer_mut(), map_rect, app, &b, &color);
}
