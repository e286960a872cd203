//! Fragmentation: how the free memory is cut up, and the largest allocation that can succeed.

use heapscope_protocol::metrics;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Block, Borders, Paragraph, Sparkline};
use ratatui::Frame;

use crate::human::thousands;
use crate::tui::app::App;
use crate::tui::palette;

pub fn draw(f: &mut Frame, rect: Rect, app: &App) {
    let block = Block::default().borders(Borders::ALL).title(" Fragmentation ");
    let inner = block.inner(rect);
    f.render_widget(block, rect);
    let (Some(i), Some(s)) = (app.current(), app.snapshot()) else {
        f.render_widget(Paragraph::new("waiting for the first snapshot..."), inner);
        return;
    };
    let sum = app.history.snapshots[i].summary;
    let m = metrics::compute(&s);
    let [text_rect, gauge_rect, chart_rect, trend_rect] =
        Layout::vertical([Constraint::Length(3), Constraint::Length(2), Constraint::Min(4), Constraint::Length(3)]).areas(inner);

    let holes: usize = m.histogram.buckets.iter().map(|b| b.runs).sum();
    let mut lines = vec![
        Line::from(vec![
            Span::from(format!(" {} B free", thousands(sum.free))).bold(),
            Span::from(format!(" in {}; the largest is ", crate::human::count(holes, "hole"))),
            Span::from(format!("{} B", thousands(sum.largest_free))).fg(Color::Cyan).bold(),
            Span::from(format!(" ({:.1}% fragmented)", 100.0 * sum.fragmentation)),
        ]),
        match app.history.failure_at(i) {
            // The moment after a MemoryError: the request against what the heap could give.
            Some(failure) => Line::from(vec![
                Span::from(format!(" MemoryError: {} B failed", thousands(failure.bytes))).red().bold(),
                Span::from(" · largest free block "),
                Span::from(format!("{} B", thousands(sum.largest_free))).fg(Color::Cyan).bold(),
                Span::from(format!(" · {} B free", thousands(sum.free))),
            ]),
            None => Line::from(format!(
                " The largest allocation that can succeed now is {} B: any bigger fails with MemoryError, however much is free.",
                thousands(sum.largest_free)
            )),
        },
    ];
    if let Some(split) = s.reported.max_new_split {
        lines.push(Line::from(format!(" The heap can also grow by a new area of up to {} B (max new split).", thousands(split))).dark_gray());
    }
    if !s.has_layout() {
        lines = vec![Line::from(" This snapshot has the summary only: largest free run from the board's own figures.")];
    }
    f.render_widget(Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false }), text_rect);

    // The picture: all free memory as a bar, the largest hole as the part of it that is usable.
    let width = gauge_rect.width.saturating_sub(2) as u64;
    if sum.free > 0 && width > 0 {
        let usable = (width * sum.largest_free / sum.free).max(u64::from(sum.largest_free > 0)) as usize;
        let bar = Line::from(vec![
            Span::from(" "),
            Span::from("█".repeat(usable)).fg(Color::Cyan),
            Span::from("░".repeat(width as usize - usable)).fg(palette::dim(Color::Rgb(90, 90, 110))),
        ]);
        let label = Line::from(" █ usable as one block  ░ the rest of the free memory, in smaller holes").dark_gray();
        f.render_widget(Paragraph::new(vec![bar, label]), gauge_rect);
    }

    let block_size = u64::from(s.block_size().unwrap_or(16));
    let bar = |label: String, runs: usize| Bar::default().value(runs as u64).label(Line::from(label)).text_value(runs.to_string());
    let buckets = &m.histogram.buckets;
    // Bars of 5 with a gap of 1. When not all fit, the last bar holds every bucket from its size
    // up: the largest holes are what this view is for, so they are never cut off.
    let fit = ((chart_rect.width as usize + 1) / 6).max(1);
    let (each, merged) = if buckets.len() > fit { buckets.split_at(fit - 1) } else { (&buckets[..], &[][..]) };
    let mut bars: Vec<Bar> = each.iter().map(|b| bar(compact_bytes(b.min_blocks as u64 * block_size), b.runs)).collect();
    if let Some(first) = merged.first() {
        bars.push(bar(format!("≥{}", compact_bytes(first.min_blocks as u64 * block_size)), merged.iter().map(|b| b.runs).sum()));
    }
    let chart = BarChart::default()
        .block(Block::default().title(format!(" free holes by size, from the size shown up to the next (a block is {block_size} B): how many ")))
        .data(BarGroup::default().bars(&bars))
        .bar_width(5)
        .bar_gap(1)
        .bar_style(Style::default().fg(Color::Cyan));
    f.render_widget(chart, chart_rect);

    let end = i + 1;
    let start = end.saturating_sub(trend_rect.width as usize);
    let trend: Vec<u64> = app.history.snapshots[start..end].iter().map(|s| (s.summary.fragmentation * 1000.0) as u64).collect();
    let spark = Sparkline::default()
        .block(Block::default().title(" fragmentation over time (up to this snapshot) "))
        .data(&trend)
        .max(1000)
        .style(Style::default().fg(Color::Magenta));
    f.render_widget(spark, trend_rect);
}

/// A byte count in at most five characters, for a bar's label: `32B`, `512B`, `1K`, `64K`, `2M`.
fn compact_bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n}B"),
        1024..1_048_576 => format!("{}K", n / 1024),
        _ => format!("{}M", n / 1_048_576),
    }
}
