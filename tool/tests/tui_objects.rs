//! The Objects view, rendered by ratatui's TestBackend from a hand-built dump, driven by keys.

use std::collections::VecDeque;

use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use heapscope::cmd::objects::app;
use heapscope::tui::app::{App, View};
use heapscope::tui::start;
use heapscope_objects::{synth, Analysis};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn key(c: KeyCode) -> Event {
    Event::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn run(app: App, width: u16, height: u16, events: Vec<Event>) -> (App, String) {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    let mut script: VecDeque<Event> = events.into();
    let app = start(&mut terminal, app, |_| Ok(Some(script.pop_front().unwrap_or_else(|| key(KeyCode::Char('q'))))), None).unwrap();
    let buf = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..buf.area.height {
        let line: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol().to_string()).collect();
        text.push_str(line.trim_end());
        text.push('\n');
    }
    (app, text)
}

fn example_app() -> App {
    let dump = synth::example();
    app(&dump, Analysis::new(&dump), "example.hsd")
}

#[test]
fn the_tree_expands_and_shows_the_path_of_the_selected_object() {
    // Select the top retainer, expand it twice down to the list, select a bytearray.
    let keys = vec![key(KeyCode::Right), key(KeyCode::Down), key(KeyCode::Right), key(KeyCode::Down), key(KeyCode::Right), key(KeyCode::Down), key(KeyCode::Right), key(KeyCode::Down)];
    for (w, h) in [(80, 24), (120, 40)] {
        let (app, text) = run(example_app(), w, h, keys.clone());
        assert_eq!(app.view, View::Objects);
        assert!(text.contains("▾ dict  app.readings"), "{text}");
        assert!(text.contains("bytearray"), "{text}");
        assert!(text.contains("kept alive by (named root): app.readings -> list -> bytearray"), "{text}");
        insta::assert_snapshot!(format!("objects_{w}x{h}"), text);
    }
}

#[test]
fn left_collapses_then_goes_to_the_parent() {
    let keys = vec![key(KeyCode::Right), key(KeyCode::Down), key(KeyCode::Left)];
    let (app, text) = run(example_app(), 100, 30, keys.clone());
    let state = app.objects.as_ref().unwrap();
    assert_eq!(state.selected, 0, "back on the dict");
    assert_eq!(state.analysis.name(state.selected_object().unwrap()), Some("app.readings"));
    assert!(text.contains("▾ dict  app.readings"), "the dict stays expanded: {text}");
    let (_, text) = run(example_app(), 100, 30, [keys, vec![key(KeyCode::Left)]].concat());
    assert!(text.contains("▸ dict  app.readings"), "a second ← collapses it: {text}");
}

#[test]
fn the_object_under_the_map_cursor_opens_in_the_objects_view() {
    let dump = synth::example();
    let analysis = Analysis::new(&dump);
    let greeting = (0..analysis.objects.len() as u32).find(|&i| analysis.name(i) == Some("app.greeting")).unwrap();
    let block = ((analysis.objects[greeting as usize].address - dump.areas[0].area.pool_start()) / 16) as usize;
    let mut a = app(&dump, analysis, "example.hsd");
    a.view = View::Map;
    a.block = (0, block);
    let (app, text) = run(a, 100, 30, vec![key(KeyCode::Char('o'))]);
    assert_eq!(app.view, View::Objects);
    let state = app.objects.as_ref().unwrap();
    assert_eq!(state.analysis.name(state.selected_object().unwrap()), Some("app.greeting"));
    assert!(text.contains("preview 'hello from the heap"), "{text}");
}

#[test]
fn without_a_dump_the_view_says_how_to_get_one_and_a_replay_cannot_take_one() {
    let a = App::new(heapscope::tui::history::History::new(), "none", false);
    let (app, text) = run(a, 100, 20, vec![key(KeyCode::Char('8')), key(KeyCode::Char('d'))]);
    assert!(text.contains("heapscope objects FILE --tui"), "{text}");
    assert!(app.message.as_deref().unwrap().contains("a replay has no board to dump"), "{:?}", app.message);
    assert!(app.pending_dump.is_none() && app.outgoing.is_empty());
}

#[test]
fn a_replay_before_its_first_dump_says_when_the_first_comes() {
    use heapscope::entry::{Entry, Source};
    use heapscope::recording::{Recording, RecordingWriter};
    let path = std::env::temp_dir().join(format!("heapscope-tui-first-dump-{}.hsr", std::process::id()));
    let mut w = RecordingWriter::create(&path, "{}").unwrap();
    let heap = heapscope_protocol::synth::snapshot(2, 16, 1, 2048);
    for i in 0..4u64 {
        w.append(&Entry::Snapshot { at: i * 1_000_000, device_ms: None, source: Source::Poll, snapshot: Box::new(heap.clone()) }).unwrap();
        if i == 2 {
            w.append_dump(2_500_000, &synth::example()).unwrap();
        }
    }
    w.finish(4_000_000).unwrap();
    let replay = || App::new(heapscope::tui::history::History::from_recording(Recording::open(&path).unwrap()), "dumps.hsr", false);
    let before = "no heap dump at or before this moment; the first is at 2.5 s";
    // The first visit, at the first snapshot.
    let (app, text) = run(replay(), 100, 24, vec![key(KeyCode::Char('8'))]);
    assert_eq!(app.current(), Some(0));
    assert!(text.contains(before), "{text}");
    // Past the dump and back.
    let (_, text) = run(replay(), 100, 24, vec![key(KeyCode::Char('8')), key(KeyCode::End)]);
    assert!(text.contains("app.readings"), "the dump, once past it: {text}");
    let (_, text) = run(replay(), 100, 24, vec![key(KeyCode::Char('8')), key(KeyCode::End), key(KeyCode::Home)]);
    assert!(text.contains(before), "{text}");
    let _ = std::fs::remove_file(&path);
}
