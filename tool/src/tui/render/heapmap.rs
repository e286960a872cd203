//! The heap map: every block of every area as a pixel, two pixels per cell (half blocks).

use heapscope_protocol::model::BlockKind;
use heapscope_protocol::{ObjType, Snapshot};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use crate::human::{count, thousands};
use crate::tui::app::{App, Zoom};
use crate::tui::palette;

/// Per block: the type code of its allocation, or `FREE_CODE`.
pub type BlockCodes = Vec<Vec<u8>>;
pub const FREE_CODE: u8 = 0xFF;

pub fn block_codes(s: &Snapshot) -> BlockCodes {
    s.areas
        .iter()
        .map(|area| {
            let mut codes = vec![FREE_CODE; area.blocks()];
            for a in area.allocations() {
                codes[a.start..a.start + a.blocks].fill(a.obj_type.code());
            }
            codes
        })
        .collect()
}

/// One cell row of the map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    /// The line above an area after the first.
    Header { area: usize },
    /// Two pixel lines of an area, from block `first`.
    Blocks { area: usize, first: usize },
}

/// How blocks map to pixels: several blocks per pixel for a big heap, several pixels per block
/// for a small one (so a 64 KB heap fills the panel). One of the two is always 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    pub blocks_per_pixel: usize,
    pub pixels_per_block: usize,
}

impl Scale {
    pub const ONE: Scale = Scale { blocks_per_pixel: 1, pixels_per_block: 1 };
    /// The closest the map zooms in.
    pub const MAX_PIXELS_PER_BLOCK: usize = 16;
    /// The farthest it zooms out.
    pub const MAX_BLOCKS_PER_PIXEL: usize = 1 << 20;

    /// Blocks on one pixel line `width` pixels wide.
    pub fn blocks_per_line(self, width: usize) -> usize {
        if self.pixels_per_block > 1 {
            (width / self.pixels_per_block).max(1)
        } else {
            (width * self.blocks_per_pixel).max(1)
        }
    }

    /// The blocks under pixel column `col` of a line: (offset from the line's first block, count).
    pub fn pixel(self, col: usize, width: usize) -> Option<(usize, usize)> {
        if self.pixels_per_block > 1 {
            let block = col / self.pixels_per_block;
            (block < self.blocks_per_line(width)).then_some((block, 1))
        } else {
            Some((col * self.blocks_per_pixel, self.blocks_per_pixel))
        }
    }

    /// Twice as close, or `None` at the closest.
    pub fn zoom_in(self) -> Option<Scale> {
        match self {
            Scale { blocks_per_pixel: b, .. } if b > 1 => Some(Scale { blocks_per_pixel: b / 2, pixels_per_block: 1 }),
            Scale { pixels_per_block: p, .. } if p < Self::MAX_PIXELS_PER_BLOCK => {
                Some(Scale { blocks_per_pixel: 1, pixels_per_block: (p * 2).min(Self::MAX_PIXELS_PER_BLOCK) })
            }
            _ => None,
        }
    }

    /// Twice as far, or `None` at the farthest.
    pub fn zoom_out(self) -> Option<Scale> {
        match self {
            Scale { pixels_per_block: p, .. } if p > 1 => Some(Scale { blocks_per_pixel: 1, pixels_per_block: p / 2 }),
            Scale { blocks_per_pixel: b, .. } if b < Self::MAX_BLOCKS_PER_PIXEL => Some(Scale { blocks_per_pixel: b * 2, pixels_per_block: 1 }),
            _ => None,
        }
    }

    pub fn describe(self) -> String {
        match (self.blocks_per_pixel, self.pixels_per_block) {
            (1, 1) => "1 block/pixel".into(),
            (1, p) => format!("{p} pixels/block"),
            (b, _) => format!("{} blocks/pixel", thousands(b as u64)),
        }
    }
}

/// The rows of the map at `scale`, `width` pixels wide.
pub fn rows(s: &Snapshot, width: usize, scale: Scale) -> Vec<Row> {
    let per_row = scale.blocks_per_line(width) * 2;
    let mut out = Vec::new();
    for (i, a) in s.areas.iter().enumerate() {
        if i > 0 {
            out.push(Row::Header { area: i });
        }
        out.extend((0..a.blocks()).step_by(per_row).map(|first| Row::Blocks { area: i, first }));
    }
    out
}

/// The zoom asked for, or for `Fit`: the closest scale that shows every block (the smallest
/// power of two blocks per pixel for a big heap, the most pixels per block for a small one).
pub fn scale(s: &Snapshot, width: usize, height: usize, zoom: Zoom) -> Scale {
    match zoom {
        Zoom::Fixed(scale) => scale,
        Zoom::Fit => {
            let fits = |scale: Scale| rows(s, width, scale).len() <= height;
            if fits(Scale::ONE) {
                let most = (1..=Scale::MAX_PIXELS_PER_BLOCK.min(width.max(1)))
                    .rev()
                    .find(|&p| fits(Scale { blocks_per_pixel: 1, pixels_per_block: p }))
                    .unwrap_or(1);
                return Scale { blocks_per_pixel: 1, pixels_per_block: most };
            }
            let mut bpp = 1;
            while bpp < Scale::MAX_BLOCKS_PER_PIXEL && !fits(Scale { blocks_per_pixel: bpp, pixels_per_block: 1 }) {
                bpp *= 2;
            }
            Scale { blocks_per_pixel: bpp, pixels_per_block: 1 }
        }
    }
}

fn ruler_width(s: &Snapshot) -> u16 {
    let max = s.areas.iter().map(|a| a.address_of(a.blocks())).max().unwrap_or(0);
    (format!("{max:x}").len() as u16 + 1).max(6)
}

/// The (area, block) under a screen position of the last drawn map.
pub fn block_at(app: &App, x: u16, y: u16) -> Option<(usize, usize)> {
    let s = app.snapshot()?;
    let r = app.regions;
    let width = r.map.width as usize;
    let all = rows(&s, width, r.map_scale);
    match all.get(r.map_first_row + (y - r.map.y) as usize)? {
        Row::Blocks { area, first } => {
            let (offset, _) = r.map_scale.pixel((x - r.map.x) as usize, width)?;
            let block = first + offset;
            (block < s.areas[*area].blocks()).then_some((*area, block))
        }
        Row::Header { .. } => None,
    }
}

/// Draws the map of `s` into `area` with pixels coloured by `color(area, first_block, count)`,
/// recording where it went for the mouse. Returns the scale used.
pub fn draw_map(
    buf: &mut Buffer,
    rect: Rect,
    app: &mut App,
    s: &Snapshot,
    color: &dyn Fn(usize, usize, usize) -> Color,
) -> Scale {
    // The address ruler, when it leaves the map 8 columns; a cut address would mislead.
    let ruler = Some(ruler_width(s)).filter(|&r| r.saturating_add(8) <= rect.width).unwrap_or(0);
    let map = Rect { x: rect.x + ruler, y: rect.y, width: rect.width - ruler, height: rect.height };
    let width = map.width as usize;
    let scale = scale(s, width, map.height as usize, app.zoom);
    let per_line = scale.blocks_per_line(width);
    let all = rows(s, width, scale);
    // Bring the cursor's row on screen when the cursor moved (or the zoom moved its row).
    let cursor_row = all
        .iter()
        .position(|r| matches!(r, Row::Blocks { area, first } if *area == app.block.0 && app.block.1 >= *first && app.block.1 < first + per_line * 2))
        .unwrap_or(0);
    let height = map.height as usize;
    if app.map_followed != Some((app.block, cursor_row)) {
        app.map_followed = Some((app.block, cursor_row));
        if cursor_row < app.map_scroll {
            app.map_scroll = cursor_row;
        } else if cursor_row >= app.map_scroll + height {
            app.map_scroll = cursor_row + 1 - height;
        }
    }
    app.map_scroll = app.map_scroll.min(all.len().saturating_sub(height));
    app.regions.map = map;
    app.regions.map_bpp = scale.blocks_per_pixel as u32;
    app.regions.map_scale = scale;
    app.regions.map_first_row = app.map_scroll;
    let ruler_style = Style::default().fg(Color::DarkGray);
    for (row_i, row) in all.iter().skip(app.map_scroll).take(height).enumerate() {
        let y = map.y + row_i as u16;
        match *row {
            Row::Header { area } => {
                let a = &s.areas[area];
                let label = format!("── area {} at {:#x}: {} ", area + 1, a.pool_start(), count(a.blocks(), "block"));
                buf.set_stringn(rect.x, y, format!("{label:─<w$}", w = rect.width as usize), rect.width as usize, ruler_style);
            }
            Row::Blocks { area, first } => {
                let a = &s.areas[area];
                if ruler > 0 {
                    buf.set_stringn(rect.x, y, format!("{:>w$x} ", a.address_of(first), w = ruler as usize - 1), ruler as usize, ruler_style);
                }
                for col in 0..width {
                    let px = |line: usize| {
                        let (offset, n) = scale.pixel(col, width)?;
                        let start = first + line * per_line + offset;
                        (start < a.blocks()).then(|| (start, n.min(a.blocks() - start)))
                    };
                    let (top, bottom) = (px(0), px(1));
                    let Some((top_start, top_n)) = top else { continue };
                    let is_cursor = |p: Option<(usize, usize)>| p.is_some_and(|(st, n)| app.block.0 == area && app.block.1 >= st && app.block.1 < st + n);
                    let fg = if is_cursor(top) { palette::CURSOR } else { color(area, top_start, top_n) };
                    let bg = match bottom {
                        Some(p) if is_cursor(Some(p)) => palette::CURSOR,
                        Some((st, n)) => color(area, st, n),
                        None => Color::Reset,
                    };
                    let cell = &mut buf[(map.x + col as u16, y)];
                    if app.color_mode == palette::ColorMode::None {
                        // Without colour, a letter per cell: the more telling of its two pixels.
                        let shown = if fg == palette::FREE && bg != Color::Reset { bg } else { fg };
                        let shown = if bg == palette::CURSOR { bg } else { shown };
                        cell.set_char(palette::letter(shown));
                    } else {
                        cell.set_symbol("▀").set_fg(fg).set_bg(bg);
                    }
                }
            }
        }
    }
    scale
}

/// The colour of a pixel on the main map: the type of the first allocation in it, dimmed when
/// the pixel is mostly free.
pub fn type_color(codes: &BlockCodes, area: usize, first: usize, n: usize) -> Color {
    let slice = &codes[area][first..first + n];
    let used = slice.iter().filter(|&&c| c != FREE_CODE).count();
    match slice.iter().find(|&&c| c != FREE_CODE) {
        None => palette::FREE,
        Some(&code) => {
            let c = palette::of(ObjType::from_code(code).unwrap_or(ObjType::Other));
            if used * 2 < n {
                palette::dim(c)
            } else {
                c
            }
        }
    }
}

pub fn draw(f: &mut Frame, rect: Rect, app: &mut App) {
    let block = Block::default().borders(Borders::ALL).title(" Heap map ");
    let inner = block.inner(rect);
    f.render_widget(block, rect);
    let Some(s) = app.snapshot() else {
        let text = match &app.diagnosis {
            Some(why) => format!("waiting for the first snapshot...\n\nNothing yet: {why}"),
            None => "waiting for the first snapshot...".into(),
        };
        f.render_widget(Paragraph::new(text).wrap(ratatui::widgets::Wrap { trim: false }), inner);
        return;
    };
    if s.areas.is_empty() {
        let text = "This snapshot has the board's summary only (micropython.mem_info() without an argument): no block layout to draw.";
        f.render_widget(Paragraph::new(text).wrap(ratatui::widgets::Wrap { trim: true }), inner);
        return;
    }
    let [map_rect, info_rect, legend_rect] = Layout::vertical([Constraint::Min(1), Constraint::Length(1), Constraint::Length(1)]).areas(inner);
    let codes = app.map_codes(&s);
    let changed: Option<Vec<Vec<bool>>> = app.highlight_changes.then(|| changed_blocks(&s, app.previous_snapshot().as_deref()));
    let color = |area: usize, first: usize, n: usize| {
        if let Some(ch) = &changed {
            if ch[area][first..first + n].iter().any(|&c| c) {
                return palette::CHANGED;
            }
        }
        type_color(&codes, area, first, n)
    };
    let scale = draw_map(f.buffer_mut(), map_rect, app, &s, &color);
    f.render_widget(Paragraph::new(cursor_line(app, &s, scale)), info_rect);
    f.render_widget(Paragraph::new(legend(&codes, app.highlight_changes, app.color_mode)), legend_rect);
}

/// Whether each block's kind differs from the snapshot before (all, for a new area).
pub fn changed_blocks(s: &Snapshot, before: Option<&Snapshot>) -> Vec<Vec<bool>> {
    s.areas
        .iter()
        .map(|a| {
            let old = before.and_then(|b| b.areas.iter().find(|o| o.pool_start() == a.pool_start() && o.blocks() == a.blocks()));
            match old {
                Some(o) => (0..a.blocks()).map(|i| a.kinds().get(i) != o.kinds().get(i)).collect(),
                None => vec![before.is_some(); a.blocks()],
            }
        })
        .collect()
}

fn cursor_line(app: &App, s: &Snapshot, scale: Scale) -> Line<'static> {
    let (ai, bi) = app.block;
    let Some(area) = s.areas.get(ai) else { return Line::default() };
    let bi = bi.min(area.blocks().saturating_sub(1));
    let bs = u64::from(area.block_size());
    let what = match area.kinds().get(bi) {
        BlockKind::Free => {
            let end = area.kinds().run_end(bi, BlockKind::Free);
            let mut start = bi;
            while start > 0 && area.kinds().get(start - 1) == BlockKind::Free {
                start -= 1;
            }
            format!("free: a hole of {} ({} B)", count(end - start, "block"), thousands((end - start) as u64 * bs))
        }
        _ => match area.allocation_at(bi) {
            Some(a) => format!("{}: {} ({} B) from block {}", a.obj_type, count(a.blocks, "block"), thousands(a.blocks as u64 * bs), thousands(a.start as u64)),
            None => "tail with no head (torn read)".into(),
        },
    };
    Line::from(vec![
        Span::from(format!(" area {}/{}  block {}  {:#x}  ", ai + 1, s.areas.len(), thousands(bi as u64), area.address_of(bi))),
        Span::from(what).bold(),
        Span::from(format!("   {}", scale.describe())).dark_gray(),
    ])
}

fn legend(codes: &BlockCodes, changes: bool, mode: palette::ColorMode) -> Line<'static> {
    let mut present = [false; 16];
    for area in codes {
        for &c in area {
            if c != FREE_CODE {
                present[c as usize & 15] = true;
            }
        }
    }
    let mut spans = vec![Span::from(" "), palette::swatch(palette::FREE, mode), Span::from(" free ")];
    for t in ObjType::ALL.iter().filter(|t| present[t.code() as usize]) {
        spans.push(palette::swatch(palette::of(*t), mode));
        spans.push(Span::from(format!(" {} ", t.name())));
    }
    if changes {
        spans.push(palette::swatch(palette::CHANGED, mode));
        spans.push(Span::from(" changed "));
    }
    Line::from(spans)
}
