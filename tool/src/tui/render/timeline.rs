//! The timeline: used, free and largest free over time, the events along it, and the cursor.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::symbols::Marker as Dot;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph, Sparkline};
use ratatui::Frame;

use crate::entry::seconds;
use crate::human::{moment, thousands};
use crate::tui::app::App;
use crate::tui::history::MarkerKind;

pub fn draw(f: &mut Frame, rect: Rect, app: &mut App) {
    let block = Block::default().borders(Borders::ALL).title(" Timeline ");
    let inner = block.inner(rect);
    f.render_widget(block, rect);
    let h = &app.history;
    if h.is_empty() {
        f.render_widget(Paragraph::new("waiting for the first snapshot..."), inner);
        return;
    }
    let [chart_rect, frag_rect, marks_rect, list_rect] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(2), Constraint::Length(1), Constraint::Length(3)]).areas(inner);
    // The axis starts when the capture did: the header, `inspect` and `export` count from there.
    // ... and reaches the latest event: a gap or a mark after the last snapshot is drawn too.
    let last = h.snapshots.iter().map(|s| s.at).chain(h.markers.iter().map(|m| m.at)).max().unwrap_or(0);
    let t_end = seconds(last).max(0.001);
    let series = |f: fn(&crate::recording::Summary) -> u64| -> Vec<(f64, f64)> {
        h.snapshots.iter().map(|s| (seconds(s.at), f(&s.summary) as f64)).collect()
    };
    let used = series(|s| s.used);
    let free = series(|s| s.free);
    let largest = series(|s| s.largest_free);
    let y_max = h.snapshots.iter().map(|s| s.summary.used + s.summary.free).max().unwrap_or(1).max(1) as f64;
    let cur = app.current().unwrap_or(0);
    let x_cur = seconds(h.snapshots[cur].at);
    let cursor = vec![(x_cur, 0.0), (x_cur, y_max)];
    let datasets = vec![
        Dataset::default().name("used").marker(Dot::Braille).graph_type(GraphType::Line).style(Style::default().fg(Color::Yellow)).data(&used),
        Dataset::default().name("free").marker(Dot::Braille).graph_type(GraphType::Line).style(Style::default().fg(Color::Green)).data(&free),
        Dataset::default().name("largest free").marker(Dot::Braille).graph_type(GraphType::Line).style(Style::default().fg(Color::Cyan)).data(&largest),
        Dataset::default().marker(Dot::Braille).graph_type(GraphType::Line).style(Style::default().fg(Color::White)).data(&cursor),
    ];
    // The legend is the line under the plot: ratatui's own box would cover the lines.
    let chart = Chart::new(datasets)
        .legend_position(None)
        .x_axis(Axis::default().bounds([0.0, t_end]).labels(vec![Line::from("0 s"), Line::from(format!("{t_end:.0} s"))]))
        .y_axis(Axis::default().bounds([0.0, y_max]).labels(vec![Line::from("0"), Line::from(thousands(y_max as u64))]));
    f.render_widget(chart, chart_rect);
    // The plot area, for the mouse: the chart leaves room for the y labels on the left.
    let label_w = thousands(y_max as u64).len() as u16 + 1;
    app.regions.timeline = Rect { x: chart_rect.x + label_w, width: chart_rect.width.saturating_sub(label_w), ..chart_rect };

    // Fragmentation along the same time axis: one column per moment, the cursor's marked, and
    // nothing where no snapshot was taken (not a 0%).
    let plot = app.regions.timeline;
    let columns = plot.width as usize;
    let mut frag: Vec<Option<u64>> = vec![None; columns];
    let mut cursor_col = 0;
    for (i, s) in h.snapshots.iter().enumerate() {
        let x = ((seconds(s.at) / t_end) * (columns.saturating_sub(1)) as f64) as usize;
        if let Some(v) = frag.get_mut(x) {
            *v = Some(v.unwrap_or(0).max((s.summary.fragmentation * 1000.0) as u64));
        }
        if i == cur {
            cursor_col = x;
        }
    }
    let [frag_label, frag_plot] = Layout::horizontal([Constraint::Length(label_w), Constraint::Min(1)]).areas(frag_rect);
    f.render_widget(Paragraph::new(vec![Line::from("frag"), Line::from(format!("{:.0}%", 100.0 * h.snapshots[cur].summary.fragmentation))]).magenta(), frag_label);
    f.render_widget(Sparkline::default().data(&frag).max(1000).style(Style::default().fg(Color::Magenta)), frag_plot);
    if let Some(cell) = f.buffer_mut().cell_mut((frag_plot.x + cursor_col as u16, frag_plot.y)) {
        cell.set_fg(Color::White);
    }

    // Markers along the same time axis.
    let mut row = vec![' '; plot.width as usize];
    for m in &h.markers {
        let x = ((seconds(m.at) / t_end) * f64::from(plot.width.saturating_sub(1))) as usize;
        if let Some(c) = row.get_mut(x) {
            *c = m.kind.symbol();
        }
    }
    let mut marks = vec![Span::from(" ".repeat(label_w as usize))];
    marks.extend(row.into_iter().map(|c| {
        let span = Span::from(c.to_string());
        if c == MarkerKind::MemoryError.symbol() {
            span.red().bold()
        } else {
            span.magenta()
        }
    }));
    let marks = Line::from(marks);
    f.render_widget(Paragraph::new(marks), marks_rect);

    // The markers nearest the cursor, named.
    let near: Vec<Line> = {
        let mut ms: Vec<_> = h.markers.iter().collect();
        ms.sort_by_key(|m| m.at.abs_diff(h.snapshots[cur].at));
        ms.into_iter()
            .take(2)
            .map(|m| Line::from(format!(" {} {}  {}", m.kind.symbol(), moment(m.at), m.label)).dark_gray())
            .collect()
    };
    let mut lines = vec![Line::from(vec![
        Span::from(" used").yellow(),
        Span::from(" · ").dark_gray(),
        Span::from("free").green(),
        Span::from(" · ").dark_gray(),
        Span::from("largest free").cyan(),
        Span::from(" │ ").dark_gray(),
        Span::from("! MemoryError ").red().bold(),
        Span::from("i import m mark R reset G gap + growth s skipped").magenta(),
    ])];
    lines.extend(near);
    f.render_widget(Paragraph::new(lines), list_rect);
}
