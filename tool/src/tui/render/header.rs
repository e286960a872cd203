//! The top line: what is shown, which moment, and the headline figures.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::human::{moment, thousands};
use crate::tui::app::App;

pub fn draw(f: &mut Frame, rect: Rect, app: &App) {
    let state = if !app.live {
        if app.playback.is_some() {
            Span::from(" REPLAY ▶ ").black().on_cyan()
        } else {
            Span::from(" REPLAY ").black().on_cyan()
        }
    } else if let Some((since, _)) = &app.line_down {
        // The cable is out: what is shown is from before.
        Span::from(format!(" CABLE OUT {:.0} s ", since.elapsed().as_secs_f64())).black().on_red()
    } else if app.frozen() {
        Span::from(" FROZEN ").black().on_yellow()
    } else {
        Span::from(" LIVE ").black().on_green()
    };
    // Parts in the order shown, each with its rank: when the line is too narrow the
    // lowest-ranked go first, so the figures that tell the story stay.
    let mut parts: Vec<(u8, Span)> = vec![(3, Span::from(" heapscope ").bold()), (9, state)];
    if let Some(i) = app.current() {
        let s = app.history.snapshots[i];
        parts.push((5, Span::from(format!("│ {}/{} at {} ", i + 1, app.history.len(), moment(s.at)))));
        parts.push((4, Span::from(format!("│ used {} ", thousands(s.summary.used)))));
        parts.push((6, Span::from(format!("free {} ", thousands(s.summary.free)))));
        parts.push((8, Span::styled(format!("largest {} ", thousands(s.summary.largest_free)), Style::default().fg(Color::Cyan))));
        parts.push((7, Span::from(format!("frag {:.0}% ", 100.0 * s.summary.fragmentation))));
        if let Some(failure) = app.history.failure_at(i) {
            parts.push((8, Span::from(format!("│ MemoryError {} B ", thousands(failure.bytes))).red().bold()));
        }
    } else {
        parts.push((8, Span::from("│ no snapshot yet ")));
    }
    let width = rect.width as usize;
    let total = |parts: &[(u8, Span)]| parts.iter().map(|(_, s)| s.width()).sum::<usize>();
    while total(&parts) > width {
        let Some(lowest) = parts.iter().enumerate().min_by_key(|(_, (rank, _))| *rank).map(|(i, _)| i) else { break };
        parts.remove(lowest);
    }
    // The port's or file's name takes what room is left.
    let left = width.saturating_sub(total(&parts));
    let mut spans: Vec<Span> = parts.into_iter().map(|(_, s)| s).collect();
    if left > 12 {
        spans.push(Span::from(format!("│ {}", fit(&app.title, left - 2))).dark_gray());
    }
    f.render_widget(Paragraph::new(Line::from(spans)), rect);
}

/// `text` in at most `width` characters: the end is kept (a port's or file's name ends in what
/// tells it apart), the start elided.
fn fit(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width {
        return text.to_string();
    }
    let keep: String = text.chars().skip(n - width.saturating_sub(1)).collect();
    format!("…{keep}")
}
