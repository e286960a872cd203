//! Every key binding, in one table: the handler looks keys up here, the footer shows the short
//! forms that matter in the view on screen, and `?` lists them all.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::View;

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
    TakeDump,
}

/// Where a binding is offered in the footer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// Only in `?`.
    HelpOnly,
    /// In the footer of every view.
    Everywhere,
    /// In the footer of these views.
    In(&'static [View]),
    /// In the footer of these views, when the session has a REPL (live, and not the demo).
    ReplIn(&'static [View]),
}

pub struct Binding {
    /// The keys as `?` shows them.
    pub keys: &'static str,
    /// What they do, for `?`.
    pub what: &'static str,
    /// The footer's short form.
    pub short: &'static str,
    pub shown: Shown,
    /// Key (with the modifiers it needs) → action; the first match in the table wins.
    pub map: &'static [(KeyCode, KeyModifiers, Action)],
}

const NONE: KeyModifiers = KeyModifiers::NONE;
const MOVING_IN_TIME: &[View] = &[View::Map, View::Fragmentation, View::Timeline, View::Imports, View::Diff, View::Types];

pub const BINDINGS: &[Binding] = &[
    Binding {
        keys: "q",
        what: "quit",
        short: "q quit",
        shown: Shown::Everywhere,
        map: &[(KeyCode::Char('q'), NONE, Action::Quit), (KeyCode::Char('c'), KeyModifiers::CONTROL, Action::Quit)],
    },
    Binding { keys: "?", what: "this help", short: "? help", shown: Shown::Everywhere, map: &[(KeyCode::Char('?'), NONE, Action::Help)] },
    Binding {
        keys: "Tab / Shift-Tab",
        what: "next / previous view",
        short: "Tab view",
        shown: Shown::Everywhere,
        map: &[
            (KeyCode::Tab, KeyModifiers::SHIFT, Action::PrevView),
            (KeyCode::BackTab, NONE, Action::PrevView),
            (KeyCode::Tab, NONE, Action::NextView),
        ],
    },
    Binding {
        keys: "1-8",
        what: "the views, in the order of their tabs",
        short: "1-8 views",
        shown: Shown::HelpOnly,
        map: &[
            (KeyCode::Char('1'), NONE, Action::View(0)),
            (KeyCode::Char('2'), NONE, Action::View(1)),
            (KeyCode::Char('3'), NONE, Action::View(2)),
            (KeyCode::Char('4'), NONE, Action::View(3)),
            (KeyCode::Char('5'), NONE, Action::View(4)),
            (KeyCode::Char('6'), NONE, Action::View(5)),
            (KeyCode::Char('7'), NONE, Action::View(6)),
            (KeyCode::Char('8'), NONE, Action::View(7)),
        ],
    },
    Binding {
        keys: "arrows / hjkl",
        what: "move the map cursor; ←→ step in time elsewhere",
        short: "hjkl move",
        shown: Shown::In(&[View::Map]),
        map: &[
            (KeyCode::Left, NONE, Action::Left),
            (KeyCode::Char('h'), NONE, Action::Left),
            (KeyCode::Right, NONE, Action::Right),
            (KeyCode::Char('l'), NONE, Action::Right),
            (KeyCode::Up, NONE, Action::Up),
            (KeyCode::Char('k'), NONE, Action::Up),
            (KeyCode::Down, NONE, Action::Down),
            (KeyCode::Char('j'), NONE, Action::Down),
        ],
    },
    Binding {
        keys: "PgUp / PgDn",
        what: "map, console, objects: a page; other views: 10 snapshots",
        short: "↑↓ PgUp PgDn scroll",
        shown: Shown::In(&[View::Console]),
        map: &[(KeyCode::PageUp, NONE, Action::PageUp), (KeyCode::PageDown, NONE, Action::PageDown)],
    },
    Binding {
        keys: "+ / - / 0",
        what: "zoom the map in / out / to fit the whole heap",
        short: "+/-/0 zoom",
        shown: Shown::In(&[View::Map]),
        map: &[
            (KeyCode::Char('+'), NONE, Action::ZoomIn),
            (KeyCode::Char('='), NONE, Action::ZoomIn),
            (KeyCode::Char('-'), NONE, Action::ZoomOut),
            (KeyCode::Char('0'), NONE, Action::ZoomFit),
        ],
    },
    Binding {
        keys: "c",
        what: "map: highlight blocks changed since the snapshot before",
        short: "c changes",
        shown: Shown::In(&[View::Map]),
        map: &[(KeyCode::Char('c'), NONE, Action::ToggleChanges)],
    },
    Binding {
        keys: "[ ] Home End",
        what: "previous / next, first / last snapshot",
        short: "[ ] Home End step",
        shown: Shown::In(MOVING_IN_TIME),
        map: &[
            (KeyCode::Char('['), NONE, Action::PrevSnapshot),
            (KeyCode::Char(']'), NONE, Action::NextSnapshot),
            (KeyCode::Home, NONE, Action::FirstSnapshot),
            (KeyCode::End, NONE, Action::LastSnapshot),
        ],
    },
    Binding {
        keys: "space",
        what: "live: freeze / follow the board; replay: play / pause",
        short: "space pause",
        shown: Shown::In(MOVING_IN_TIME),
        map: &[(KeyCode::Char(' '), NONE, Action::Freeze)],
    },
    Binding {
        keys: "m",
        what: "add a mark on the timeline",
        short: "m mark",
        shown: Shown::In(&[View::Map, View::Timeline, View::Fragmentation]),
        map: &[(KeyCode::Char('m'), NONE, Action::AddMark)],
    },
    Binding {
        keys: "a",
        what: "diff: compare against this moment",
        short: "a compare against this moment",
        shown: Shown::In(&[View::Diff]),
        map: &[(KeyCode::Char('a'), NONE, Action::DiffAnchor)],
    },
    Binding {
        keys: "s",
        what: "imports: sort by bytes kept / by order",
        short: "s sort",
        shown: Shown::In(&[View::Imports]),
        map: &[(KeyCode::Char('s'), NONE, Action::Sort)],
    },
    Binding {
        keys: "i",
        what: "console: type to the REPL (Enter sends, Esc leaves)",
        short: "i type to the REPL",
        shown: Shown::ReplIn(&[View::Console]),
        map: &[(KeyCode::Char('i'), NONE, Action::Input)],
    },
    Binding {
        keys: "↑↓ ← →",
        what: "objects: select, collapse, expand (the arrows above)",
        short: "↑↓ select · → expand · ← collapse",
        shown: Shown::In(&[View::Objects]),
        map: &[],
    },
    Binding {
        keys: "o",
        what: "map: show the object under the cursor in Objects",
        short: "o object",
        shown: Shown::In(&[View::Map]),
        map: &[(KeyCode::Char('o'), NONE, Action::OpenObject)],
    },
    Binding {
        keys: "d",
        what: "live: take a heap dump into Objects (stops the program)",
        short: "d dump",
        shown: Shown::ReplIn(&[View::Map, View::Objects]),
        map: &[(KeyCode::Char('d'), NONE, Action::TakeDump)],
    },
];

/// The action of a key press, from [`BINDINGS`].
pub fn action(key: KeyEvent) -> Option<Action> {
    BINDINGS
        .iter()
        .flat_map(|b| b.map.iter())
        .find(|(code, needs, _)| *code == key.code && key.modifiers.contains(*needs))
        .map(|(_, _, action)| *action)
}

/// The footer's short forms for `view`, in table order.
pub fn footer(view: View, repl: bool) -> Vec<&'static str> {
    BINDINGS
        .iter()
        .filter(|b| match b.shown {
            Shown::HelpOnly => false,
            Shown::Everywhere => true,
            Shown::In(views) => views.contains(&view),
            Shown::ReplIn(views) => repl && views.contains(&view),
        })
        .map(|b| b.short)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_in_the_table_does_what_the_table_says() {
        for b in BINDINGS {
            for (code, mods, expected) in b.map {
                assert_eq!(action(KeyEvent::new(*code, *mods)), Some(*expected), "{} ({code:?})", b.keys);
            }
        }
        assert_eq!(action(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::NONE)), Some(Action::ToggleChanges));
        assert_eq!(action(KeyEvent::new(KeyCode::Char('z'), KeyModifiers::NONE)), None);
    }

    #[test]
    fn every_footer_key_is_bound() {
        for view in View::ALL {
            for repl in [true, false] {
                for short in footer(view, repl) {
                    let key = short.split(' ').next().unwrap();
                    assert!(BINDINGS.iter().any(|b| b.short == short), "{short}");
                    assert!(!key.is_empty(), "{view:?}: {short}");
                }
            }
        }
        assert!(footer(View::Console, true).contains(&"i type to the REPL"));
        assert!(!footer(View::Console, false).contains(&"i type to the REPL"));
        assert!(footer(View::Map, true).contains(&"d dump"));
        assert!(!footer(View::Map, false).contains(&"d dump"));
    }
}
