//! `cargo bench -p heapscope-tests --bench render`: drawing one frame of the heap map for a
//! 262,144-block (4 MB) heap at 200x60, against decoding one snapshot of that heap from the
//! wire, measured in the same run. The map shows the second of two snapshots, so highlighting
//! changes compares it with a real previous one. Prints figures; asserts nothing about time.

use std::hint::black_box;

use heapscope_tests::best_cpu_of as best_of;

use heapscope::entry::{Entry, Source};
use heapscope::tui::app::{App, View};
use heapscope::tui::history::History;
use heapscope::tui::render;
use heapscope_protocol::synth;
use heapscope_protocol::wire::demux::{Demux, Item};
use heapscope_protocol::wire::session::{self, Session};
use heapscope_protocol::wire::{encode_frame, Body, Frame};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn main() {
    let heap = synth::snapshot(7, 16, 1, 262_144);
    let frame = encode_frame(&Frame { seq: 1, device_ms: 0, body: Body::Keyframe(session::keyframe(&heap)) });

    let decode = best_of(20, || {
        let mut demux = Demux::new();
        let mut s = Session::new();
        for item in demux.push(black_box(&frame)) {
            if let Item::Frame(f) = item {
                black_box(s.advance(f).unwrap());
            }
        }
    });

    // The snapshot shown follows one with about 200 changed blocks, as at 10 Hz on a busy board.
    let next = synth::mutate(&heap, 8, 12);
    let changed: usize = render::heapmap::changed_blocks(&next, Some(&heap)).iter().flatten().filter(|&&c| c).count();
    let mut history = History::new();
    history.push(Entry::Snapshot { at: 0, device_ms: None, source: Source::Stream, snapshot: Box::new(heap.clone()) });
    history.push(Entry::Snapshot { at: 100, device_ms: None, source: Source::Stream, snapshot: Box::new(next) });
    let mut app = App::new(history, "bench", true);
    app.view = View::Map;
    app.cursor = Some(1);
    assert!(app.previous_snapshot().is_some(), "the shown snapshot has one before it");
    let mut terminal = Terminal::new(TestBackend::new(200, 60)).unwrap();
    terminal.draw(|f| render::draw(f, &mut app)).unwrap();
    let bpp = app.regions.map_bpp;
    let draw = best_of(20, || {
        app.map_codes = None;
        terminal.draw(|f| render::draw(f, &mut app)).unwrap();
    });
    let redraw = best_of(20, || {
        terminal.draw(|f| render::draw(f, &mut app)).unwrap();
    });
    app.highlight_changes = true;
    let draw_changes = best_of(20, || {
        terminal.draw(|f| render::draw(f, &mut app)).unwrap();
    });

    println!("heap map of a 262,144-block heap at 200x60 ({bpp} blocks per pixel, keyframe {} bytes)", frame.len());
    println!("  decode one snapshot (demux, CRC, keyframe):  {decode:>10.2?}");
    println!("  draw one frame of the map (a new snapshot):  {draw:>10.2?}   {:.2}x the decode", draw.as_secs_f64() / decode.as_secs_f64());
    println!("  redraw the same snapshot (each UI tick):     {redraw:>10.2?}   {:.2}x the decode", redraw.as_secs_f64() / decode.as_secs_f64());
    println!(
        "  ... with the {changed} blocks changed since the previous snapshot highlighted: {draw_changes:>10.2?}   {:.2}x the decode",
        draw_changes.as_secs_f64() / decode.as_secs_f64()
    );
}
