//! Drawing: one module per widget; `draw` lays them out.

pub mod console;
pub mod diff;
pub mod footer;
pub mod fragmentation;
pub mod header;
pub mod heapmap;
pub mod help;
pub mod imports;
pub mod objects;
pub mod tabs;
pub mod timeline;
pub mod types;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::app::{App, Regions, View};

/// The smallest terminal the views still read in: the tallest view, Fragmentation, needs 12
/// rows inside its border, under the header and tabs and over the footer; the Types table and
/// the header's figures need 60 columns.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 17;

pub fn draw(f: &mut Frame, app: &mut App) {
    let area = f.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        // Cropped panels would mislead; say what is wrong instead. Nothing is on screen for
        // the mouse.
        app.regions = Regions::default();
        let text = format!("terminal too small: {}×{}, heapscope needs at least {MIN_WIDTH}×{MIN_HEIGHT} (q quits)", area.width, area.height);
        f.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let [header_rect, tabs_rect, body, footer_rect] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1), Constraint::Min(3), Constraint::Length(1)]).areas(area);
    header::draw(f, header_rect, app);
    tabs::draw(f, tabs_rect, app);
    view(f, body, app);
    footer::draw(f, footer_rect, app);
    if app.show_help {
        help::draw(f, body);
    }
    app.color_mode.adapt(f.buffer_mut());
}

/// The panel of the view on screen, in `body`.
pub fn view(f: &mut Frame, body: Rect, app: &mut App) {
    match app.view {
        View::Map => heapmap::draw(f, body, app),
        View::Fragmentation => fragmentation::draw(f, body, app),
        View::Timeline => timeline::draw(f, body, app),
        View::Imports => imports::draw(f, body, app),
        View::Diff => diff::draw(f, body, app),
        View::Types => types::draw(f, body, app),
        View::Console => console::draw(f, body, app),
        View::Objects => objects::draw(f, body, app),
    }
}
