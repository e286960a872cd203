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
    // lowest-ranked give way first (shortened where they can be, else dropped), so the figures
    // that tell the story stay. The port's or file's name ranks lowest of all: it only takes
    // the room nothing else can use.
    let mut parts = vec![Part::new(3, Group::State, Span::from(" heapscope ").bold()), Part::new(9, Group::State, state)];
    if let Some(i) = app.current() {
        let s = app.history.snapshots[i];
        let (n, of, at) = (i + 1, app.history.len(), moment(s.at));
        parts.push(Part::new(5, Group::Moment, Span::from(format!("{n}/{of} at {at}"))).or_shorter(format!("{n}/{of} {at}")));
        parts.push(Part::new(4, Group::Figures, Span::from(format!("used {}", thousands(s.summary.used)))));
        parts.push(Part::new(6, Group::Figures, Span::from(format!("free {}", thousands(s.summary.free)))));
        parts.push(Part::new(8, Group::Figures, Span::styled(format!("largest {}", thousands(s.summary.largest_free)), Style::default().fg(Color::Cyan))));
        parts.push(Part::new(7, Group::Figures, Span::from(format!("frag {:.0}%", 100.0 * s.summary.fragmentation))));
        if let Some(failure) = app.history.failure_at(i) {
            parts.push(Part::new(8, Group::Failure, Span::from(format!("MemoryError {} B", thousands(failure.bytes))).red().bold()));
        }
    } else {
        parts.push(Part::new(8, Group::Moment, Span::from("no snapshot yet")));
    }
    let width = rect.width as usize;
    let mut shown = vec![true; parts.len()];
    while line_width(&parts, &shown) > width {
        let Some(lowest) = (0..parts.len()).filter(|&i| shown[i]).min_by_key(|&i| parts[i].rank) else { break };
        if let Some(short) = parts[lowest].shorter.take() {
            parts[lowest].span.content = short.into();
        } else {
            shown[lowest] = false;
        }
    }
    // Dropping the lowest may have freed more than was needed: what was dropped comes back where
    // it fits, most important first.
    let mut dropped: Vec<usize> = (0..parts.len()).filter(|&i| !shown[i]).collect();
    dropped.sort_by_key(|&i| std::cmp::Reverse(parts[i].rank));
    for i in dropped {
        shown[i] = true;
        if line_width(&parts, &shown) > width {
            shown[i] = false;
        }
    }
    let room = width.saturating_sub(line_width(&parts, &shown) + " │ ".chars().count());
    if room >= 10 {
        parts.push(Part::new(0, Group::Title, Span::from(fit(&app.title, room)).dark_gray()));
        shown.push(true);
    }
    f.render_widget(Paragraph::new(Line::from(line(&parts, &shown))), rect);
}

/// Where a part belongs: a `│` stands between groups.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    State,
    Moment,
    Figures,
    Failure,
    Title,
}

struct Part<'a> {
    rank: u8,
    group: Group,
    span: Span<'a>,
    /// A shorter text to fall back to before the part is dropped.
    shorter: Option<String>,
}

impl<'a> Part<'a> {
    fn new(rank: u8, group: Group, span: Span<'a>) -> Part<'a> {
        Part { rank, group, span, shorter: None }
    }

    fn or_shorter(self, shorter: String) -> Part<'a> {
        Part { shorter: Some(shorter), ..self }
    }
}

/// What stands before a part after `prev`: the state is padded by its own background.
fn separator(prev: Group, next: Group) -> &'static str {
    match (prev, next) {
        (_, Group::State) => "",
        (Group::State, _) => "│ ",
        (a, b) if a == b => " ",
        _ => " │ ",
    }
}

fn line_width(parts: &[Part], shown: &[bool]) -> usize {
    line(parts, shown).iter().map(Span::width).sum()
}

/// The parts shown, with their separators; the title's separator is as dim as the title.
fn line<'a>(parts: &[Part<'a>], shown: &[bool]) -> Vec<Span<'a>> {
    let mut spans = Vec::new();
    let mut prev = None;
    for (p, _) in parts.iter().zip(shown).filter(|(_, shown)| **shown) {
        if let Some(prev) = prev {
            let sep = Span::from(separator(prev, p.group));
            spans.push(if p.group == Group::Title { sep.dark_gray() } else { sep });
        }
        prev = Some(p.group);
        spans.push(p.span.clone());
    }
    spans
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
