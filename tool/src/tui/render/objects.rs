//! Objects: who holds the memory. The dominator tree of a heap dump, largest retained first
//! (→ expands, ← collapses or goes to the parent), and for the selected object its type, size,
//! retained size, preview and the path from a root that keeps it alive.

use std::collections::HashSet;
use std::sync::Arc;

use heapscope_objects::dump::hex;
use heapscope_objects::{Analysis, TOP};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use crate::human::thousands;
use crate::tui::app::App;
use crate::tui::keys::Action;

/// The Objects view's dump and where the user is in its tree.
pub struct ObjectsState {
    pub analysis: Arc<Analysis>,
    expanded: HashSet<u32>,
    /// Row selected, in the rows as shown.
    pub selected: usize,
    scroll: usize,
}

impl ObjectsState {
    pub fn new(analysis: Arc<Analysis>) -> ObjectsState {
        ObjectsState { analysis, expanded: HashSet::new(), selected: 0, scroll: 0 }
    }

    /// The tree as shown: (object, depth), depth-first, expanded objects followed by what they
    /// dominate.
    pub fn rows(&self) -> Vec<(u32, usize)> {
        let a = &self.analysis;
        let mut rows = Vec::new();
        let mut stack: Vec<(u32, usize)> = a.dominated(TOP).iter().rev().map(|&o| (o, 0)).collect();
        while let Some((o, depth)) = stack.pop() {
            rows.push((o, depth));
            if self.expanded.contains(&o) {
                stack.extend(a.dominated(o).iter().rev().map(|&c| (c, depth + 1)));
            }
        }
        rows
    }

    pub fn selected_object(&self) -> Option<u32> {
        self.rows().get(self.selected).map(|r| r.0)
    }

    /// Expands the dominators of the object covering `address` and selects it.
    pub fn reveal(&mut self, address: u64) -> bool {
        let a = self.analysis.clone();
        let Some(object) = a.object_at(address) else { return false };
        let mut d = a.dominator(object);
        while d != TOP {
            self.expanded.insert(d);
            d = a.dominator(d);
        }
        if let Some(i) = self.rows().iter().position(|r| r.0 == object) {
            self.selected = i;
        }
        true
    }

    pub fn navigate(&mut self, action: Action) {
        let rows = self.rows();
        let Some(&(object, depth)) = rows.get(self.selected) else { return };
        let last = rows.len().saturating_sub(1);
        match action {
            Action::Up => self.selected = self.selected.saturating_sub(1),
            Action::Down => self.selected = (self.selected + 1).min(last),
            Action::PageUp => self.selected = self.selected.saturating_sub(20),
            Action::PageDown => self.selected = (self.selected + 20).min(last),
            Action::Right => {
                self.expanded.insert(object);
            }
            // Already collapsed: go up to the parent.
            Action::Left if !self.expanded.remove(&object) && depth > 0 => {
                if let Some(p) = rows[..self.selected].iter().rposition(|r| r.1 < depth) {
                    self.selected = p;
                }
            }
            _ => {}
        }
    }
}

pub fn draw(f: &mut Frame, rect: Rect, app: &mut App) {
    let block = Block::default().borders(Borders::ALL).title(" Objects: who holds the memory (dominator tree, largest retained first) ");
    let Some(state) = app.objects.as_mut() else {
        let text = match app.history.dumps.first() {
            // A replay of a recording with dumps, before the first.
            Some(&(first, _)) if !app.live => format!("no heap dump at or before this moment; the first is at {}", crate::human::moment(first)),
            // What can be done here: d only where a REPL can take the dump.
            _ if app.repl => "no heap dump yet: press d to take one through the REPL".into(),
            _ if app.live => "no heap dump: this session has no REPL to take one through; open one with `heapscope objects FILE --tui` (take it from a board with `heapscope dump -o FILE`)".into(),
            _ => "no heap dump: press d in a live session, or open one with `heapscope objects FILE --tui` (take it with `heapscope dump -o FILE`)".into(),
        };
        f.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }).block(block), rect);
        return;
    };
    let a = state.analysis.clone();
    let rows = state.rows();
    let detail_height = 9.min(rect.height / 2);
    let [tree_rect, detail_rect] = Layout::vertical([Constraint::Min(3), Constraint::Length(detail_height)]).areas(rect);
    let visible = tree_rect.height.saturating_sub(3) as usize;
    state.selected = state.selected.min(rows.len().saturating_sub(1));
    if state.selected < state.scroll {
        state.scroll = state.selected;
    } else if visible > 0 && state.selected >= state.scroll + visible {
        state.scroll = state.selected + 1 - visible;
    }
    let table_rows: Vec<Row> = rows
        .iter()
        .enumerate()
        .skip(state.scroll)
        .take(visible)
        .map(|(i, &(o, depth))| {
            let has_children = !a.dominated(o).is_empty();
            let marker = if !has_children { "  " } else if state.expanded.contains(&o) { "▾ " } else { "▸ " };
            let mut label = format!("{}{marker}{}", "  ".repeat(depth), a.type_name(o));
            if let Some(name) = a.name(o) {
                label.push_str(&format!("  {name}"));
            } else if let Some(p) = &a.objects[o as usize].preview {
                label.push_str(&format!("  {p}"));
            }
            let row = Row::new(vec![
                Cell::from(thousands(a.retained(o))),
                Cell::from(thousands(a.objects[o as usize].bytes)),
                Cell::from(label),
            ]);
            if i == state.selected {
                row.style(Style::default().reversed())
            } else {
                row
            }
        })
        .collect();
    let table = Table::new(table_rows, [Constraint::Length(11), Constraint::Length(9), Constraint::Min(10)])
        .header(Row::new(vec!["retained", "bytes", "object"]).bold())
        .block(block);
    f.render_widget(table, tree_rect);

    let detail_block = Block::default().borders(Borders::ALL).title(" Selected ");
    let Some(o) = rows.get(state.selected).map(|r| r.0) else {
        f.render_widget(Paragraph::new("the dump holds no objects").block(detail_block), detail_rect);
        return;
    };
    let obj = &a.objects[o as usize];
    let mut lines = vec![
        Line::from(format!("{}  at {}", a.type_name(o), hex(obj.address))),
        Line::from(format!(
            "size {} B in {} blocks · retains {} B{}",
            thousands(obj.bytes),
            obj.blocks,
            thousands(a.retained(o)),
            obj.length.map(|l| format!(" · length {l}")).unwrap_or_default()
        )),
    ];
    if let Some(p) = &obj.preview {
        lines.push(Line::from(format!("preview {p}")));
    }
    if obj.unreliable {
        lines.push(Line::from("changed while the dump was taken: not to be trusted").yellow());
    }
    let path = a.path(o);
    lines.push(Line::from(format!("kept alive by ({} root): {}", path.root_kind.label(), a.path_text(o))).bold());
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(detail_block), detail_rect);
}
