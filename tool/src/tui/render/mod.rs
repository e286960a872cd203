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

use ratatui::layout::{Constraint, Layout};
use ratatui::Frame;

use super::app::{App, View};

pub fn draw(f: &mut Frame, app: &mut App) {
    let [header_rect, tabs_rect, body, footer_rect] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1), Constraint::Min(3), Constraint::Length(1)]).areas(f.area());
    header::draw(f, header_rect, app);
    tabs::draw(f, tabs_rect, app);
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
    footer::draw(f, footer_rect, app);
    if app.show_help {
        help::draw(f, body);
    }
    app.color_mode.adapt(f.buffer_mut());
}
