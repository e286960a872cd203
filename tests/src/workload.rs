//! A CPU-bound, heap-churning MicroPython program for the streaming tests and benchmark, and
//! what the host makes of a module's output: console text, frames, their bytes on the line.

use heapscope_protocol::wire::demux::{Demux, Item};
use heapscope_protocol::wire::{encode_frame, Body, Event, Frame};

/// MicroPython source defining `churn(rounds)`: lists, strings and slices made and dropped in a
/// tight loop, returning a checksum that depends only on `rounds` (same work, same answer).
pub const CHURN: &str = r#"
def churn(rounds):
    acc = 0
    keep = []
    for r in range(rounds):
        row = [i * r for i in range(16)]
        keep.append(row)
        keep.append(str(r) * (r % 7 + 1))
        if len(keep) > 60:
            keep = keep[30:]
        acc = (acc * 31 + sum(row) + len(keep[-1])) % 1000003
    return acc
"#;

/// What a stream of module output held.
#[derive(Debug, Default)]
pub struct StreamTally {
    pub text: Vec<u8>,
    pub frames: Vec<Frame>,
    pub corrupt: u64,
}

impl StreamTally {
    /// Splits `bytes` into console text and frames, as the host does.
    pub fn of(bytes: &[u8]) -> StreamTally {
        let mut demux = Demux::new();
        let mut t = StreamTally::default();
        for item in demux.push(bytes) {
            match item {
                Item::Text(x) => t.text.extend(x),
                Item::Frame(f) => t.frames.push(f),
                Item::Corrupt(_) => {}
            }
        }
        t.corrupt = demux.stats().corrupt_frames;
        t
    }

    /// The frames from the n-th `stream start` event (0-based) to the `stream stop` after it.
    pub fn stream(&self, n: usize) -> &[Frame] {
        let starts: Vec<usize> =
            self.frames.iter().enumerate().filter(|(_, f)| matches!(f.body, Body::Event(Event::StreamStart { .. }))).map(|(i, _)| i).collect();
        let from = starts[n];
        let to = self.frames[from..].iter().position(|f| matches!(f.body, Body::Event(Event::StreamStop))).map_or(self.frames.len(), |p| from + p + 1);
        &self.frames[from..to]
    }
}

/// Figures of one streaming window: from its `stream start` to its `stream stop`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    /// Bytes the frames took on the line, `FF 00` to the end byte.
    pub bytes: usize,
    /// Device milliseconds from the start event to the stop event.
    pub span_ms: u32,
    pub keyframes: usize,
    pub deltas: usize,
    pub skipped: u64,
}

impl Window {
    pub fn of(frames: &[Frame]) -> Window {
        let mut w = Window { span_ms: frames.last().map_or(0, |l| l.device_ms.wrapping_sub(frames[0].device_ms)), ..Window::default() };
        for f in frames {
            w.bytes += encode_frame(f).len();
            match &f.body {
                Body::Keyframe(_) => w.keyframes += 1,
                Body::Delta(_) => w.deltas += 1,
                Body::Event(Event::Skipped { count }) => w.skipped += u64::from(*count),
                _ => {}
            }
        }
        w
    }

    pub fn bytes_per_s(&self) -> f64 {
        self.bytes as f64 * 1000.0 / f64::from(self.span_ms.max(1))
    }

    pub fn sent(&self) -> usize {
        self.keyframes + self.deltas
    }

    pub fn add(&mut self, o: &Window) {
        self.bytes += o.bytes;
        self.span_ms += o.span_ms;
        self.keyframes += o.keyframes;
        self.deltas += o.deltas;
        self.skipped += o.skipped;
    }
}
