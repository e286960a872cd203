//! Every key binding, in one table: the handler looks actions up here and `?` shows it.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    NextView,
    PrevView,
    View(usize),
    Left,
    Right,
    Up,
    Down,
    PageUp,
    PageDown,
    ZoomIn,
    ZoomOut,
    ZoomFit,
    Freeze,
    PrevSnapshot,
    NextSnapshot,
    FirstSnapshot,
    LastSnapshot,
    AddMark,
    DiffAnchor,
    ToggleChanges,
    Sort,
    Input,
    OpenObject,
}

/// (keys as shown, action, what it does)
pub const BINDINGS: &[(&str, Action, &str)] = &[
    ("q", Action::Quit, "quit"),
    ("?", Action::Help, "this help"),
    ("Tab / Shift-Tab", Action::NextView, "next / previous view"),
    ("1-8", Action::View(0), "map, fragmentation, timeline, imports, diff, types, console, objects"),
    ("arrows / hjkl", Action::Left, "move the cursor (pans the map)"),
    ("PgUp / PgDn", Action::PageUp, "scroll a page"),
    ("+ / -", Action::ZoomIn, "zoom the map in / out"),
    ("0", Action::ZoomFit, "fit the whole heap"),
    ("space", Action::Freeze, "freeze / follow the live heap"),
    ("[ / ]", Action::PrevSnapshot, "previous / next snapshot"),
    ("Home / End", Action::FirstSnapshot, "first / last snapshot"),
    ("m", Action::AddMark, "add a mark on the timeline"),
    ("a", Action::DiffAnchor, "diff: compare against this moment"),
    ("c", Action::ToggleChanges, "map: highlight blocks changed since the snapshot before"),
    ("s", Action::Sort, "imports: sort by bytes kept / by order"),
    ("i", Action::Input, "console: type a line for the REPL (Enter sends, Esc leaves)"),
    ("o", Action::OpenObject, "map: show the object under the cursor in Objects"),
];

pub fn action(key: KeyEvent) -> Option<Action> {
    let shift = key.modifiers.contains(KeyModifiers::SHIFT);
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Action::Quit,
        KeyCode::Char('?') => Action::Help,
        KeyCode::Tab if shift => Action::PrevView,
        KeyCode::Tab => Action::NextView,
        KeyCode::BackTab => Action::PrevView,
        KeyCode::Char(c @ '1'..='8') => Action::View(c as usize - '1' as usize),
        KeyCode::Left | KeyCode::Char('h') => Action::Left,
        KeyCode::Right | KeyCode::Char('l') => Action::Right,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Char('+') | KeyCode::Char('=') => Action::ZoomIn,
        KeyCode::Char('-') => Action::ZoomOut,
        KeyCode::Char('0') => Action::ZoomFit,
        KeyCode::Char(' ') => Action::Freeze,
        KeyCode::Char('[') => Action::PrevSnapshot,
        KeyCode::Char(']') => Action::NextSnapshot,
        KeyCode::Home => Action::FirstSnapshot,
        KeyCode::End => Action::LastSnapshot,
        KeyCode::Char('m') => Action::AddMark,
        KeyCode::Char('a') => Action::DiffAnchor,
        KeyCode::Char('c') => Action::ToggleChanges,
        KeyCode::Char('s') => Action::Sort,
        KeyCode::Char('i') => Action::Input,
        KeyCode::Char('o') => Action::OpenObject,
        _ => return None,
    })
}
