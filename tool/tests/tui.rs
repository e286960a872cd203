//! The terminal UI rendered by ratatui's TestBackend from the bundled recording, driven by
//! scripted keys and mouse events.

mod fakes;

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
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
    heapscope::tui::palette::letter(c)
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
    for b in heapscope::tui::keys::BINDINGS {
        assert!(text.contains(b.keys), "{} missing from the help", b.keys);
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

fn wheel(kind: MouseEventKind) -> Event {
    Event::Mouse(MouseEvent { kind, column: 40, row: 10, modifiers: KeyModifiers::NONE })
}

#[test]
fn the_wheel_scrolls_a_zoomed_map_and_a_key_brings_the_cursor_back() {
    let is_map_row = |l: &&str| l.strip_prefix("│").and_then(|r| r.split(' ').next()).is_some_and(|a| a.len() >= 6 && a.chars().all(|c| c.is_ascii_hexdigit()));
    // The address of the first map row on screen.
    let first_row = |text: &str| text.lines().find(is_map_row).and_then(|l| l.split(' ').next()).unwrap_or_else(|| panic!("{text}")).to_string();
    let zoomed = vec![key('+'), key('+')];
    let (_, at_top) = run(replay_app(), 80, 24, zoomed.clone());
    let down = wheel(MouseEventKind::ScrollDown);
    let (_, scrolled) = run(replay_app(), 80, 24, [zoomed.clone(), vec![down.clone(), down.clone()]].concat());
    assert_ne!(first_row(&at_top), first_row(&scrolled), "the wheel scrolls:\n{scrolled}");
    let (_, back) = run(replay_app(), 80, 24, [zoomed.clone(), vec![down.clone(), down.clone(), wheel(MouseEventKind::ScrollUp), down]].concat());
    assert_eq!(first_row(&scrolled), first_row(&back), "up undoes down");
    let (_, followed) = run(replay_app(), 80, 24, [zoomed, vec![wheel(MouseEventKind::ScrollDown), code(KeyCode::Right)]].concat());
    assert_eq!(first_row(&at_top), first_row(&followed), "moving the cursor brings its row back on screen");
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
    let marks: Vec<_> = app.history.markers.iter().filter(|m| m.kind == heapscope::tui::history::MarkerKind::Mark).collect();
    assert_eq!(marks.len(), 1);
    assert_eq!(marks[0].at, app.history.snapshots[2].at);
    assert!(text.contains("mark 1"), "{text}");
}

/// The app at the first failure of the bundled recording.
fn at_the_failure() -> App {
    let mut app = replay_app();
    let f = app.history.failures[0];
    app.cursor = Some(f.snapshot);
    app
}

#[test]
fn a_replay_opens_at_the_start_and_plays_to_the_failure() {
    let mut app = replay_app();
    assert_eq!(app.current(), Some(0), "a replay opens at its start");
    app.play();
    assert!(app.playback.is_some());
    let first = app.history.failures[0];
    // Far enough into the future to be past the failure: playing stops there.
    app.tick(std::time::Instant::now() + Duration::from_secs(3600));
    assert_eq!(app.current(), Some(first.snapshot), "stopped at the heap the failure left");
    assert!(app.playback.is_none());
    let message = app.message.clone().unwrap();
    assert!(message.contains("MemoryError: 1,088 B failed") && message.contains("largest free block 1,024 B"), "{message}");
    // Space plays on, to the next failure.
    app.act(heapscope::tui::keys::Action::Freeze);
    app.tick(std::time::Instant::now() + Duration::from_secs(3600));
    assert_eq!(app.current(), Some(app.history.failures[1].snapshot));
    // Space pauses.
    app.act(heapscope::tui::keys::Action::Freeze);
    assert!(app.playback.is_some());
    app.act(heapscope::tui::keys::Action::Freeze);
    assert!(app.playback.is_none());
}

#[test]
fn a_live_view_stops_at_a_failure() {
    use heapscope::entry::{Entry, Source};
    let rec = bundled().unwrap();
    let mut app = App::new(History::new(), "live", true);
    let snapshot = |i: u32| Entry::Snapshot { at: u64::from(i) * 1000, device_ms: None, source: Source::Passive, snapshot: Box::new(rec.snapshot(i).unwrap()) };
    app.ingest(snapshot(0));
    app.ingest(Entry::Event { at: 1500, device_ms: None, event: heapscope::capture::memory_error_mark(582) });
    app.tick(std::time::Instant::now());
    assert!(!app.frozen(), "the heap after the failure has not arrived yet");
    app.ingest(snapshot(1));
    app.ingest(snapshot(2));
    app.tick(std::time::Instant::now());
    assert_eq!(app.current(), Some(1), "frozen on the heap the failure left");
    assert!(app.message.as_deref().unwrap_or("").contains("582 B failed"));
    app.act(heapscope::tui::keys::Action::Freeze);
    app.tick(std::time::Instant::now());
    assert_eq!(app.current(), Some(2), "space follows the board again");
}

#[test]
fn the_failure_is_a_marker_on_the_timeline_with_its_size() {
    for (w, h) in [(80, 24), (160, 48)] {
        let (_, text) = run(at_the_failure(), w, h, vec![key('3')]);
        let marks = text.lines().find(|l| l.trim_start().starts_with('!') || l.contains(" ! ") && !l.contains("MemoryError")).unwrap_or("");
        assert!(marks.matches('!').count() >= 2, "one marker per failure in the marks row:\n{text}");
        assert!(text.contains("MemoryError: allocating 1,088 B failed"), "{text}");
        assert!(text.contains("MemoryError 1,088 B"), "the header names the failure:\n{text}");
    }
}

#[test]
fn the_fragmentation_view_names_the_failed_size_beside_the_largest_free_block() {
    for (w, h) in [(80, 24), (160, 48)] {
        let (_, text) = run(at_the_failure(), w, h, vec![key('2')]);
        let line = text.lines().find(|l| l.contains("failed")).unwrap_or_else(|| panic!("{text}"));
        assert!(line.contains("MemoryError: 1,088 B failed · largest free block 1,024 B"), "{line}");
    }
    // Not at other moments.
    let (_, text) = run(replay_app(), 160, 48, vec![key('2')]);
    assert!(!text.contains("B failed"), "{text}");
}

#[test]
fn the_histogram_is_labelled_in_bytes_and_no_label_is_cut() {
    let (_, text) = run(at_the_failure(), 160, 48, vec![key('2')]);
    assert!(text.contains("a block is 32 B"), "{text}");
    let labels = text.lines().find(|l| l.contains("32B")).unwrap_or_else(|| panic!("{text}"));
    for label in labels.split_whitespace().filter(|t| *t != "│") {
        assert!(label.ends_with('B') || label.ends_with('K') || label.ends_with('M'), "{label:?} in {labels}");
    }
}

#[test]
fn a_narrow_histogram_keeps_the_largest_holes_in_its_last_bar() {
    // At the start the largest hole, 57,632 B, is in the 32K bucket.
    let (_, wide) = run(replay_app(), 160, 48, vec![key('2')]);
    assert!(wide.lines().any(|l| l.contains("32B") && l.contains(" 32K")), "{wide}");
    let (_, narrow) = run(replay_app(), 60, 24, vec![key('2')]);
    let labels = narrow.lines().find(|l| l.contains("32B")).unwrap_or_else(|| panic!("{narrow}"));
    let last = labels.trim_end_matches(['│', ' ']).rsplit(' ').next().unwrap_or("");
    let from: u64 = last.strip_prefix('≥').and_then(|l| l.strip_suffix('K')).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{labels}"));
    assert!(from <= 32, "the last bar holds the 32K bucket: {labels}");
}

#[test]
fn a_small_heap_fills_the_map_panel() {
    let (app, text) = run(replay_app(), 160, 48, vec![]);
    // Map rows start with the address of their first block.
    let map_rows = text.lines().filter(|l| l.strip_prefix("│").and_then(|r| r.split(' ').next()).is_some_and(|a| a.len() >= 6 && a.chars().all(|c| c.is_ascii_hexdigit()))).count();
    let panel = 48 - 2 - 2 - 2 - 2; // header, tabs, footer; the border; the info and legend lines
    assert!(app.regions.map_scale.pixels_per_block > 1, "{:?}", app.regions.map_scale);
    assert!(map_rows * 10 >= panel * 8, "{map_rows} of {panel} rows:\n{text}");
    assert!(text.contains("pixels/block"), "{text}");
}

#[test]
fn zooming_in_at_the_closest_says_why_nothing_changed() {
    let events = std::iter::repeat_n(key('+'), 10).collect();
    let (app, text) = run(replay_app(), 80, 24, events);
    assert_eq!(app.regions.map_scale.pixels_per_block, 16);
    assert!(text.contains("the map is at its closest: 16 pixels/block"), "{text}");
}

#[test]
fn a_message_goes_with_the_next_key_or_click() {
    let closest = |events: Vec<Event>| run(replay_app(), 80, 24, std::iter::repeat_n(key('+'), 10).chain(events).collect());
    let (app, text) = closest(vec![key('-')]);
    assert_eq!(app.regions.map_scale.pixels_per_block, 8);
    assert!(!text.contains("closest") && app.message.is_none(), "zoomed out, no longer at the closest: {text}");
    let (app, _) = closest(vec![key('z')]);
    assert!(app.message.is_some(), "a key that does nothing leaves it");
    let (app, _) = closest(vec![click(40, 8)]);
    assert!(app.message.is_none());
    // A failure reached, then a step on.
    let mut app = replay_app();
    app.play();
    app.tick(std::time::Instant::now() + Duration::from_secs(3600));
    assert!(app.message.as_deref().unwrap_or("").contains("MemoryError"));
    let (app, text) = run(app, 80, 24, vec![key(']')]);
    assert!(!text.contains("MemoryError:") && app.message.is_none(), "{text}");
}

/// A live session whose first snapshot came 3 s after the capture started.
fn live_from_3_s() -> App {
    use heapscope::entry::{Entry, Source};
    let rec = bundled().unwrap();
    let mut app = App::new(History::new(), "live", true);
    for (i, at) in [3_000_000u64, 20_000_000, 50_800_000].into_iter().enumerate() {
        app.ingest(Entry::Snapshot { at, device_ms: None, source: Source::Passive, snapshot: Box::new(rec.snapshot(i as u32 * 5).unwrap()) });
    }
    let mark = heapscope_protocol::wire::Event::Mark { label: "here".into() };
    app.ingest(Entry::Event { at: 50_800_000, device_ms: None, event: mark });
    app
}

#[test]
fn the_header_and_the_timeline_tell_the_same_time() {
    let (_, text) = run(live_from_3_s(), 100, 30, vec![key('3')]);
    assert!(text.lines().next().unwrap().contains("3/3 at 50.8 s"), "{text}");
    assert!(text.contains("m 50.8 s  here"), "the timeline counts from the capture's start too:\n{text}");
}

#[test]
fn a_gap_after_the_last_snapshot_is_on_the_timeline() {
    use heapscope::entry::Entry;
    let mut app = live_from_3_s();
    app.ingest(Entry::Gap { at: 60_000_000, reason: "Broken pipe".into() });
    let (_, text) = run(app, 100, 30, vec![key('3')]);
    // The marks row: marker symbols and spaces only.
    let marks = text.lines().find(|l| l.contains('m') && l.trim_matches('│').chars().all(|c| "!imRG+s ".contains(c))).unwrap_or("");
    assert!(marks.contains('G'), "the gap is in the marks row:\n{text}");
    assert!(text.contains("60 s"), "the axis reaches the gap:\n{text}");
}

#[test]
fn the_imports_view_shows_the_imports_up_to_the_cursor() {
    use heapscope::entry::{Entry, Source};
    use heapscope_protocol::wire::Event as Wire;
    let rec = bundled().unwrap();
    let second = 1_000_000u64;
    // `first` imported from 0 s, `second` from 2 s; as the firmware module does, a snapshot
    // follows each begin and end.
    let app = || {
        let mut app = App::new(History::new(), "live", true);
        let snapshot = |at: u64, i: u32| Entry::Snapshot { at, device_ms: None, source: Source::Passive, snapshot: Box::new(rec.snapshot(i).unwrap()) };
        for (i, name) in ["first", "second"].into_iter().enumerate() {
            let t = 2 * i as u64 * second;
            app.ingest(snapshot(t, 3 * i as u32));
            app.ingest(Entry::Event { at: t + second / 4, device_ms: None, event: Wire::ImportBegin { depth: 0, name: name.into() } });
            app.ingest(snapshot(t + second / 2, 3 * i as u32 + 1));
            app.ingest(Entry::Event { at: t + 3 * second / 4, device_ms: None, event: Wire::ImportEnd { depth: 0, name: name.into(), ok: true, elapsed_us: 1000 } });
            app.ingest(snapshot(t + second, 3 * i as u32 + 2));
        }
        app
    };
    let (_, newest) = run(app(), 100, 30, vec![key('4')]);
    assert!(newest.contains("first") && newest.contains("second"), "{newest}");
    // At 2 s, before `second` began.
    let mut at_2_s = app();
    at_2_s.cursor = Some(3);
    let (_, text) = run(at_2_s, 100, 30, vec![key('4')]);
    assert!(text.contains("first") && !text.contains("second"), "the import to come is not shown yet:\n{text}");
}

#[test]
fn the_header_keeps_its_figures_behind_a_long_name() {
    let long = format!("/home/someone/{}/micropython (demo)", "very-long-directory-name/".repeat(6));
    for (w, wanted) in [(80, "frag"), (120, "largest"), (120, "frag")] {
        let app = App::new(History::from_recording(bundled().unwrap()), long.clone(), false);
        let (_, text) = run(app, w, 24, vec![]);
        let header = text.lines().next().unwrap();
        assert!(header.contains(wanted), "{w} columns: {header}");
    }
    let app = App::new(History::from_recording(bundled().unwrap()), long.clone(), false);
    let (_, text) = run(app, 200, 24, vec![]);
    assert!(text.lines().next().unwrap().contains("micropython (demo)"), "the name's end shows when there is room");
}

#[test]
fn the_name_gives_way_before_the_moment_and_the_figures() {
    for w in [60, 70, 80, 90, 100, 110, 120] {
        let (_, text) = run(at_the_failure(), w, 24, vec![]);
        let header = text.lines().next().unwrap();
        assert!(header.contains("MemoryError 1,088 B") && header.contains("largest 1,024"), "{w} columns: {header}");
        if w >= 80 {
            assert!(header.contains("17/47") && header.contains("8.6 s"), "{w} columns: {header}");
        }
        if header.contains("demo.hsr") {
            assert!(header.contains("at 8.6 s") && header.contains("used"), "the name took the room of a figure at {w} columns: {header}");
        }
    }
}

#[test]
fn the_help_box_stays_inside_the_border_at_80x24() {
    let (_, text) = run(replay_app(), 80, 24, vec![key('?')]);
    let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
    // The view's border: top row 2, bottom row 22, columns 0 and 79.
    assert!(lines[2][1..79].iter().all(|&c| c != '┌' && c != '┐'), "{text}");
    assert_eq!(lines[22].iter().filter(|&&c| c == '─').count(), 78, "{text}");
    for row in &lines[3..22] {
        assert_eq!((row[0], row.get(79).copied()), ('│', Some('│')), "{text}");
    }
    assert!(text.contains("Keys (any key closes)"), "{text}");
}

#[test]
fn the_timeline_legend_is_not_drawn_over_its_lines() {
    let (_, text) = run(at_the_failure(), 160, 48, vec![key('3')]);
    // The names are said once, in the line under the plot.
    assert_eq!(text.matches("largest free").count(), 1, "{text}");
}

/// Runs the UI like `run` and returns the last frame's cells.
fn run_cells(app: App, width: u16, height: u16, events: Vec<Event>) -> ratatui::buffer::Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    let mut script: VecDeque<Event> = events.into();
    start(&mut terminal, app, |_| Ok(Some(script.pop_front().unwrap_or_else(|| key('q')))), None).unwrap();
    terminal.backend().buffer().clone()
}

#[test]
fn without_colour_the_map_is_drawn_in_letters() {
    use heapscope::tui::palette::ColorMode;
    use ratatui::style::Color;
    let mut app = at_the_failure();
    app.color_mode = ColorMode::None;
    let buf = run_cells(app, 100, 30, vec![]);
    assert!(buf.content.iter().all(|c| c.fg == Color::Reset && c.bg == Color::Reset), "NO_COLOR: no colour at all");
    let text: String = buf.content.iter().map(|c| c.symbol()).collect();
    assert!(!text.contains('▀'), "no half blocks that only colour tells apart");
    let map_row: String = buf.content[(3 * 100) as usize..(4 * 100) as usize].iter().map(|c| c.symbol()).collect();
    assert!(map_row.contains('@') && map_row.contains('H'), "{map_row}");
    assert!(text.contains("....."), "free blocks are dots");
}

#[test]
fn a_256_colour_terminal_gets_256_colours() {
    use heapscope::tui::palette::ColorMode;
    use ratatui::style::Color;
    for view in ['1', '2', '3', '5', '6'] {
        let mut app = at_the_failure();
        app.color_mode = ColorMode::Ansi256;
        let buf = run_cells(app, 100, 30, vec![key(view)]);
        assert!(!buf.content.iter().any(|c| matches!(c.fg, Color::Rgb(..)) || matches!(c.bg, Color::Rgb(..))), "view {view}");
        assert!(buf.content.iter().any(|c| c.fg != Color::Reset), "view {view} still has colour");
    }
}

/// Every view, with and without `?` over it, at every size from 1x1 to 30x10: none panics (a
/// panic here is a crash in the user's terminal, at start-up or on a resize). Whole frames at
/// these sizes say the terminal is too small, so each view's panel and the help are also drawn
/// straight into the tiny area.
#[test]
fn no_view_panics_at_any_tiny_size() {
    let mut crashes = Vec::new();
    for (i, view) in View::ALL.into_iter().enumerate() {
        let number = char::from_digit(i as u32 + 1, 10).unwrap();
        for help in [false, true] {
            let mut app = replay_app();
            app.cursor = Some(15);
            for w in 1..=30 {
                for h in 1..=10 {
                    let events = if help { vec![key(number), key('?'), key('?')] } else { vec![key(number)] };
                    app.quit = false;
                    let drawn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let (mut app, _) = run(app, w, h, events);
                        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
                        terminal
                            .draw(|f| {
                                heapscope::tui::render::view(f, f.area(), &mut app);
                                if help {
                                    heapscope::tui::render::help::draw(f, f.area());
                                }
                            })
                            .unwrap();
                        app
                    }));
                    match drawn {
                        Ok(back) => app = back,
                        Err(_) => {
                            crashes.push(format!("{view:?}{} at {w}x{h}", if help { " with help" } else { "" }));
                            app = replay_app();
                            app.cursor = Some(15);
                        }
                    }
                }
            }
            assert_eq!(app.view, view);
        }
    }
    assert!(crashes.is_empty(), "{} crashes, the first: {:?}", crashes.len(), &crashes[..crashes.len().min(10)]);
}

#[test]
fn a_terminal_too_small_is_told_so_and_q_still_quits() {
    use heapscope::tui::render::{MIN_HEIGHT, MIN_WIDTH};
    for (w, h) in [(MIN_WIDTH - 1, 24), (80, MIN_HEIGHT - 1), (40, 12)] {
        let (app, text) = run(replay_app(), w, h, vec![key('5')]);
        assert!(app.quit, "the q the script ends with quits");
        assert_eq!(app.view, View::Diff, "keys still work");
        let wanted = format!("terminal too small: {w}×{h}, heapscope needs at least {MIN_WIDTH}×{MIN_HEIGHT}");
        assert!(text.split_whitespace().collect::<Vec<_>>().join(" ").contains(&wanted), "{text}");
        assert!(!text.contains("Diff"), "no cropped panel: {text}");
    }
    let (_, text) = run(replay_app(), MIN_WIDTH, MIN_HEIGHT, vec![]);
    assert!(!text.contains("too small") && text.contains("Heap map"), "{text}");
}

#[test]
fn page_keys_do_what_the_help_says() {
    let (_, help) = run(replay_app(), 80, 24, vec![key('?')]);
    let line = help.lines().find(|l| l.contains("PgUp / PgDn")).unwrap_or_else(|| panic!("{help}"));
    assert!(line.contains("map, console, objects: a page; other views: 10 snapshots"), "{line}");
    // In time: 10 snapshots.
    for view in ['2', '3', '4', '5', '6'] {
        let (app, _) = run(replay_app(), 80, 24, vec![code(KeyCode::Home), key(view), code(KeyCode::PageDown)]);
        assert_eq!(app.current(), Some(10), "view {view}");
        let (app, _) = run(replay_app(), 80, 24, vec![code(KeyCode::Home), key(view), code(KeyCode::PageDown), code(KeyCode::PageDown), code(KeyCode::PageUp)]);
        assert_eq!(app.current(), Some(10), "view {view}");
    }
    // The map: the cursor, a page of rows on; time stays.
    let (app, _) = run(replay_app(), 80, 24, vec![code(KeyCode::Home), code(KeyCode::PageDown)]);
    assert_eq!(app.current(), Some(0));
    assert!(app.block.1 > 0);
    // The console: a page back.
    let (app, _) = run(replay_app(), 80, 24, vec![code(KeyCode::End), key('7'), code(KeyCode::PageUp)]);
    let last = app.history.len() - 1;
    assert_eq!((app.current(), app.console_scroll > 0), (Some(last), true));
}

#[test]
fn a_live_session_without_a_repl_offers_neither_typing_nor_dumps() {
    use heapscope::entry::{Entry, Source};
    let rec = bundled().unwrap();
    let live = |repl: bool| {
        let mut app = App::new(History::new(), "demo", true);
        app.repl = repl;
        app.ingest(Entry::Snapshot { at: 0, device_ms: None, source: Source::Passive, snapshot: Box::new(rec.snapshot(0).unwrap()) });
        app
    };
    // As the demo runs it: `micropython -c`, no REPL.
    for (view, wanted) in [('1', "d dump"), ('7', "i type to the REPL")] {
        let (_, text) = run(live(false), 200, 24, vec![key(view)]);
        assert!(!text.contains(wanted), "{text}");
        let (_, text) = run(live(true), 200, 24, vec![key(view)]);
        assert!(text.contains(wanted), "attached to a board, {wanted:?} stays: {text}");
    }
    for k in ['d', 'i'] {
        let (app, text) = run(live(false), 200, 24, vec![key(k)]);
        assert!(app.pending_dump.is_none() && app.input.is_none(), "{k}");
        assert!(text.contains("this session has no REPL to type to or take a heap dump through"), "{k}: {text}");
    }
    // The Objects view with no dump says what can be done in this session.
    let (_, text) = run(live(false), 200, 24, vec![key('8')]);
    assert!(text.contains("this session has no REPL to take one through") && !text.contains("press d"), "{text}");
    let (_, text) = run(live(true), 200, 24, vec![key('8')]);
    assert!(text.contains("press d to take one"), "{text}");
}

#[test]
fn figures_have_thousands_separators_and_one_is_singular() {
    use heapscope_protocol::model::BlockKind;
    let app = replay_app();
    let s = app.snapshot().unwrap();
    let area = &s.areas[0];
    let last = area.blocks() - 1;
    assert_eq!(area.kinds().get(last), BlockKind::Free, "the first snapshot ends in a big hole");
    let one = area.allocations().find(|a| a.blocks == 1).expect("a one-block allocation").start;
    let mut at_hole = replay_app();
    at_hole.block = (0, last);
    let (_, text) = run(at_hole, 100, 30, vec![]);
    assert!(text.contains("free: a hole of 1,"), "{text}");
    let mut at_one = replay_app();
    at_one.block = (0, one);
    let (_, text) = run(at_one, 100, 30, vec![]);
    assert!(text.contains(": 1 block (32 B) from block"), "{text}");
    let (_, text) = run(replay_app(), 100, 30, [code(KeyCode::Home), key('5')].into_iter().chain(std::iter::repeat_n(key(']'), 15)).collect());
    assert!(text.contains("net +4,224 B"), "{text}");
}

#[test]
fn without_colour_the_legends_show_the_letters_the_map_draws() {
    use heapscope::tui::palette::ColorMode;
    let text_of = |view: char, changes: bool| {
        let mut app = at_the_failure();
        app.color_mode = ColorMode::None;
        app.highlight_changes = changes;
        let buf = run_cells(app, 120, 30, vec![key(view)]);
        buf.content.chunks(120).map(|row| row.iter().map(|c| c.symbol()).collect::<String>()).collect::<Vec<_>>().join("\n")
    };
    let map = text_of('1', true);
    for sample in [". free ", "H other ", "T tuple ", "L list ", "S str ", "* changed "] {
        assert!(map.contains(sample), "{sample:?} in {map}");
    }
    let diff = text_of('5', false);
    for sample in ["+ allocated ", "- freed ", "= kept "] {
        assert!(diff.contains(sample), "{sample:?} in {diff}");
    }
    let types = text_of('6', false);
    assert!(types.contains("H other "), "{types}");
    for text in [map, diff, types] {
        assert!(!text.contains('█'), "a block only colour tells apart: {text}");
    }
}
