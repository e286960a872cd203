//! The terminal UI rendered by ratatui's TestBackend from the bundled recording, driven by
//! scripted keys and mouse events.

mod fakes;

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use heapscope::capture::{self, Capture, Mode};
use heapscope::cmd::demo::bundled;
use heapscope::link::OnceOpener;
use heapscope::tui::app::{App, View};
use heapscope::tui::history::History;
use heapscope::tui::{start, Feed};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn key(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

fn code(c: KeyCode) -> Event {
    Event::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn click(x: u16, y: u16) -> Event {
    Event::Mouse(MouseEvent { kind: MouseEventKind::Down(MouseButton::Left), column: x, row: y, modifiers: KeyModifiers::NONE })
}

fn replay_app() -> App {
    App::new(History::from_recording(bundled().unwrap()), "demo.hsr", false)
}

/// Runs the UI on `events` (then `q`) and returns the app and the last screen as text.
fn run(app: App, width: u16, height: u16, events: Vec<Event>) -> (App, String) {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    let mut script: VecDeque<Event> = events.into();
    let app = start(&mut terminal, app, |_| Ok(Some(script.pop_front().unwrap_or_else(|| key('q')))), None).unwrap();
    (app, screen(&terminal))
}

/// A map pixel's colour as a letter: mem_info's letters for its types (`H` other), lower case
/// when the pixel is mostly free, `.` free, `@` cursor, `*` changed, `+ - =` the diff's
/// allocated, freed and kept.
fn pixel(c: ratatui::style::Color) -> char {
    use heapscope::tui::palette;
    use heapscope_protocol::ObjType;
    let fixed = [(palette::FREE, '.'), (palette::CURSOR, '@'), (palette::CHANGED, '*'), (palette::ALLOCATED, '+'), (palette::FREED, '-'), (palette::KEPT, '=')];
    if let Some((_, ch)) = fixed.iter().find(|(col, _)| *col == c) {
        return *ch;
    }
    for t in ObjType::ALL {
        let letter = match t {
            ObjType::Other => 'H',
            ObjType::Unknown => 'U',
            ObjType::Set => 'E',
            ObjType::Int => 'I',
            ObjType::Closure => 'C',
            ObjType::BoundMethod => 'N',
            ObjType::Instance => 'O',
            ObjType::Type => 'Y',
            t => t.mem_info_letter(),
        };
        if palette::of(t) == c {
            return letter;
        }
        if palette::dim(palette::of(t)) == c {
            return letter.to_ascii_lowercase();
        }
    }
    ' '
}

/// The screen as text. Map cells (half blocks) show their upper pixel; the lower pixels of
/// each map row follow the screen, so the snapshot holds the whole map.
fn screen(terminal: &Terminal<TestBackend>) -> String {
    let buf = terminal.backend().buffer();
    let w = buf.area.width as usize;
    let mut lines = Vec::new();
    let mut lower = Vec::new();
    for (y, row) in buf.content().chunks(w).enumerate() {
        let mut line = String::new();
        let mut low = String::new();
        for c in row {
            if c.symbol() == "▀" {
                line.push(pixel(c.fg));
                low.push(pixel(c.bg));
            } else {
                line.push_str(c.symbol());
                low.push(' ');
            }
        }
        lines.push(line.trim_end().to_string());
        if !low.trim().is_empty() {
            lower.push(format!("{y:>3}: {}", low.trim_end()));
        }
    }
    if !lower.is_empty() {
        lines.push("--- lower pixels of the map rows ---".into());
        lines.extend(lower);
    }
    lines.join("\n")
}

const VIEWS: [(char, &str); 7] =
    [('1', "map"), ('2', "fragmentation"), ('3', "timeline"), ('4', "imports"), ('5', "diff"), ('6', "types"), ('7', "console")];

#[test]
fn every_view_at_80x24_and_160x48() {
    for (w, h) in [(80, 24), (160, 48)] {
        for (k, name) in VIEWS {
            // Half way through the recording, so the diff and the timeline have both sides.
            let events = [code(KeyCode::Home), key(k)].into_iter().chain(std::iter::repeat_n(key(']'), 15)).collect();
            let (_, text) = run(replay_app(), w, h, events);
            insta::assert_snapshot!(format!("{name}_{w}x{h}"), text);
        }
    }
}

#[test]
fn help_lists_every_key() {
    let (app, text) = run(replay_app(), 80, 24, vec![key('?')]);
    assert!(app.quit);
    insta::assert_snapshot!("help_80x24", text);
    for (keys, _, _) in heapscope::tui::keys::BINDINGS {
        assert!(text.contains(keys), "{keys} missing from the help");
    }
}

/// The map of a screen: its rows (upper pixels) and the lower pixels.
fn map_rows(text: &str) -> String {
    text.lines().filter(|l| l.starts_with("│55") || l.contains(": ")).collect::<Vec<_>>().join("\n")
}

#[test]
fn stepping_the_timeline_changes_the_map() {
    let (first, at_first) = run(replay_app(), 100, 30, vec![code(KeyCode::Home)]);
    assert_eq!(first.current(), Some(0));
    let (later, at_20) = run(replay_app(), 100, 30, [code(KeyCode::Home)].into_iter().chain(std::iter::repeat_n(key(']'), 20)).collect());
    assert_eq!(later.current(), Some(20));
    assert!(at_first.contains(" 1/"), "{at_first}");
    assert!(at_20.contains(" 21/"), "{at_20}");
    assert_ne!(map_rows(&at_first), map_rows(&at_20), "the heap map shows the heap at the chosen moment");
    let (back, at_back) = run(replay_app(), 100, 30, [code(KeyCode::Home)].into_iter().chain(std::iter::repeat_n(key(']'), 21)).chain([key('[')]).collect());
    assert_eq!(back.current(), Some(20));
    assert_eq!(map_rows(&at_20), map_rows(&at_back), "the same moment draws the same map");
}

#[test]
fn the_cursor_names_the_block_under_it() {
    let (app, text) = run(replay_app(), 100, 30, vec![code(KeyCode::Home), key('l'), key('l'), key('j')]);
    let (area, block) = app.block;
    assert_eq!(area, 0);
    assert!(block > 0);
    let info = text.lines().find(|l| l.contains("area 1/1")).unwrap_or_else(|| panic!("{text}"));
    assert!(info.contains(&format!("block {block}")) || info.contains(&format!("block {}", heapscope::human::thousands(block as u64))), "{info}");
    assert!(info.contains("0x"), "{info}");
}

#[test]
fn tabs_numbers_and_the_mouse_switch_views() {
    let (app, _) = run(replay_app(), 80, 24, vec![code(KeyCode::Tab), code(KeyCode::Tab)]);
    assert_eq!(app.view, View::Timeline);
    let (app, _) = run(replay_app(), 80, 24, vec![key('6')]);
    assert_eq!(app.view, View::Types);
    // " 1 Map│ 2 Fragmentation│ 3 Timeline": x = 25 is inside the third tab, on row 1.
    let (app, _) = run(replay_app(), 80, 24, vec![click(25, 1)]);
    assert_eq!(app.view, View::Timeline);
    let (app, _) = run(replay_app(), 80, 24, vec![key('1'), click(40, 8)]);
    assert_ne!(app.block, (0, 0), "a click on the map moves the cursor there");
}

#[test]
fn zoom_changes_blocks_per_pixel() {
    let (fit, _) = run(replay_app(), 80, 24, vec![]);
    let (zoomed, _) = run(replay_app(), 80, 24, vec![key('+')]);
    assert!(zoomed.regions.map_bpp < fit.regions.map_bpp || fit.regions.map_bpp == 1);
    let (out, _) = run(replay_app(), 80, 24, vec![key('-'), key('-')]);
    assert!(out.regions.map_bpp >= fit.regions.map_bpp * 2);
}

#[test]
fn the_ui_never_waits_on_the_port() {
    // If the UI waited for the port, this would never finish: the watchdog turns a hang into
    // a failure.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let opener = OnceOpener::new(Box::new(fakes::SilentLink), "silent");
        let options = capture::Options { mode: Mode::Passive, reattach: false, ..capture::Options::default() };
        let capture = Capture::start(Box::new(opener), options).unwrap();
        let (mut feed, history) = Feed::new(capture, None, "{}").unwrap();
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        let mut script: VecDeque<Event> = vec![key('m'), key('2'), key('?'), code(KeyCode::Esc), key('q')].into();
        let app = App::new(history, "silent", true);
        let app = start(&mut terminal, app, |_| -> io::Result<Option<Event>> { Ok(script.pop_front()) }, Some(&mut feed)).unwrap();
        let _ = done_tx.send((app.view, screen(&terminal)));
    });
    let (view, text) = done_rx.recv_timeout(Duration::from_secs(60)).expect("the UI answered its keys while the port said nothing");
    assert_eq!(view, View::Fragmentation);
    assert!(text.contains("waiting for the first snapshot"), "{text}");
}

#[test]
fn live_entries_appear_as_they_arrive() {
    use heapscope::entry::{Entry, Source};
    let rec = bundled().unwrap();
    let mut app = App::new(History::new(), "live", true);
    for i in 0..5u32 {
        let s = rec.snapshot(i * 5).unwrap();
        app.ingest(Entry::Snapshot { at: u64::from(i) * 1_000_000, device_ms: None, source: Source::Passive, snapshot: Box::new(s) });
    }
    app.ingest(Entry::Console { at: 6, bytes: b"hello from the board\r\n>>> ".to_vec() });
    let (app, text) = run(app, 80, 24, vec![key('7')]);
    assert_eq!(app.current(), Some(4), "live follows the newest snapshot");
    assert!(text.contains("LIVE") && text.contains("hello from the board"), "{text}");
    let mut app = app;
    app.cursor = None;
    app.quit = false;
    let (app, _) = run(app, 80, 24, vec![key(' '), key('[')]);
    assert!(app.frozen());
    assert_eq!(app.current(), Some(3));
}

#[test]
fn marks_land_on_the_timeline() {
    let (app, text) = run(replay_app(), 100, 30, vec![code(KeyCode::Home), key(']'), key(']'), key('m'), key('3')]);
    assert_eq!(app.history.markers.len(), 1);
    assert_eq!(app.history.markers[0].at, app.history.snapshots[2].at);
    assert!(text.contains("mark 1"), "{text}");
}
