//! The top line: what is shown, which moment, and the headline figures.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::human::thousands;
use crate::tui::app::App;

pub fn draw(f: &mut Frame, rect: Rect, app: &App) {
    let state = if !app.live {
        Span::from(" REPLAY ").black().on_cyan()
    } else if let Some((since, _)) = &app.line_down {
        // The cable is out: what is shown is from before.
        Span::from(format!(" CABLE OUT {:.0} s ", since.elapsed().as_secs_f64())).black().on_red()
    } else if app.frozen() {
        Span::from(" FROZEN ").black().on_yellow()
    } else {
        Span::from(" LIVE ").black().on_green()
    };
    let mut spans = vec![Span::from(" heapscope ").bold(), state];
    // The figures matter more than the name: narrow terminals drop the name.
    if rect.width >= 110 {
        spans.push(Span::from(format!(" {} ", app.title)).dark_gray());
    }
    if let Some(i) = app.current() {
        let s = app.history.snapshots[i];
        spans.push(Span::from(format!("│ {}/{} at {:.1} s ", i + 1, app.history.len(), s.at as f64 / 1e6)));
        spans.push(Span::from(format!("│ used {} ", thousands(s.summary.used))));
        spans.push(Span::from(format!("free {} ", thousands(s.summary.free))));
        spans.push(Span::styled(format!("largest {} ", thousands(s.summary.largest_free)), Style::default().fg(Color::Cyan)));
        spans.push(Span::from(format!("frag {:.0}%", 100.0 * s.summary.fragmentation)));
    } else {
        spans.push(Span::from("│ no snapshot yet"));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), rect);
}
