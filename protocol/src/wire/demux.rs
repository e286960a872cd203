//! Splits one serial byte stream into console text and frames.
//!
//! Text passes through untouched. `FF 00` starts a frame and the next `00` ends it. A frame
//! that fails COBS, CRC or payload decoding is reported as [`Item::Corrupt`] with its stream
//! offset and skipped; scanning goes on with the next byte. If a frame's end was lost, the next
//! frame's `FF 00` ends the broken one and starts afresh, so one lost byte costs one frame.

use super::codec::{cobs_decode, DecodeError};
use super::{decode_body, Frame, FRAME_END, MAX_BODY};

/// A piece of the stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// Console bytes, in order (not necessarily whole lines or whole UTF-8 characters).
    Text(Vec<u8>),
    Frame(Frame),
    Corrupt(Corrupt),
}

/// A frame that could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corrupt {
    /// Stream offset of the frame's `FF` start byte.
    pub stream_offset: u64,
    /// Encoded bytes between `FF 00` and the end (at most [`MAX_ENCODED`] kept).
    pub encoded_len: usize,
    pub error: DecodeError,
}

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "corrupt frame at stream byte {} ({} bytes): {}", self.stream_offset, self.encoded_len, self.error)
    }
}

/// Longest encoded frame accepted: the largest body plus COBS overhead.
pub const MAX_ENCODED: usize = MAX_BODY + MAX_BODY / 254 + 2;

/// Counts since the demultiplexer was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DemuxStats {
    pub text_bytes: u64,
    pub frames: u64,
    pub corrupt_frames: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Text,
    /// Saw `FF`; a `00` next starts a frame.
    SawFf,
    Frame,
}

#[derive(Debug)]
pub struct Demux {
    state: State,
    /// Stream offset of the next byte pushed.
    offset: u64,
    frame_start: u64,
    encoded: Vec<u8>,
    body: Vec<u8>,
    stats: DemuxStats,
}

impl Default for Demux {
    fn default() -> Self {
        Demux::new()
    }
}

impl Demux {
    pub fn new() -> Demux {
        Demux {
            state: State::Text,
            offset: 0,
            frame_start: 0,
            encoded: Vec::new(),
            body: Vec::new(),
            stats: DemuxStats::default(),
        }
    }

    pub fn stats(&self) -> DemuxStats {
        self.stats
    }

    /// Stream offset of the next byte to be pushed.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether a frame has started and not yet ended.
    pub fn in_frame(&self) -> bool {
        self.state == State::Frame
    }

    /// Feeds bytes; returns text and frames in stream order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Item> {
        let mut items = Vec::new();
        let mut text = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Text => {
                    // Text runs are copied in one go up to the next 0xFF.
                    let run = bytes[i..].iter().position(|&b| b == 0xFF).unwrap_or(bytes.len() - i);
                    text.extend_from_slice(&bytes[i..i + run]);
                    i += run;
                    if i < bytes.len() {
                        self.state = State::SawFf;
                        i += 1;
                    }
                }
                State::SawFf => {
                    let b = bytes[i];
                    i += 1;
                    match b {
                        0x00 => {
                            self.flush_text(&mut text, &mut items);
                            self.begin_frame(self.offset + i as u64 - 2);
                        }
                        0xFF => text.push(0xFF),
                        _ => {
                            text.extend_from_slice(&[0xFF, b]);
                            self.state = State::Text;
                        }
                    }
                }
                State::Frame => {
                    let rest = &bytes[i..];
                    let end = rest.iter().position(|&b| b == FRAME_END);
                    let take = end.unwrap_or(rest.len());
                    self.encoded.extend_from_slice(&rest[..take]);
                    i += take;
                    if self.encoded.len() > MAX_ENCODED {
                        let error = DecodeError::new(MAX_ENCODED, format!("no frame end within {MAX_ENCODED} bytes"));
                        self.corrupt(error, &mut items);
                        self.state = State::Text;
                        continue;
                    }
                    if end.is_some() {
                        i += 1;
                        self.end_frame(&mut items);
                    }
                }
            }
        }
        self.offset += bytes.len() as u64;
        self.flush_text(&mut text, &mut items);
        items
    }

    fn flush_text(&mut self, text: &mut Vec<u8>, items: &mut Vec<Item>) {
        if !text.is_empty() {
            self.stats.text_bytes += text.len() as u64;
            items.push(Item::Text(std::mem::take(text)));
        }
    }

    fn begin_frame(&mut self, start: u64) {
        self.state = State::Frame;
        self.frame_start = start;
        self.encoded.clear();
    }

    fn end_frame(&mut self, items: &mut Vec<Item>) {
        self.state = State::Text;
        let result = cobs_decode(&self.encoded, &mut self.body).and_then(|()| decode_body(&self.body));
        match result {
            Ok(frame) => {
                self.stats.frames += 1;
                items.push(Item::Frame(frame));
            }
            Err(error) => {
                // A frame whose end was lost runs into the next frame's `FF 00`: the `FF` is
                // the last byte we hold and the `00` just ended us. Start that next frame.
                let restart = self.encoded.last() == Some(&0xFF);
                if restart {
                    self.encoded.pop();
                }
                let next_start = self.frame_start + 2 + self.encoded.len() as u64;
                self.corrupt(error, items);
                if restart {
                    self.begin_frame(next_start);
                }
            }
        }
    }

    fn corrupt(&mut self, error: DecodeError, items: &mut Vec<Item>) {
        self.stats.corrupt_frames += 1;
        items.push(Item::Corrupt(Corrupt { stream_offset: self.frame_start, encoded_len: self.encoded.len(), error }));
        self.encoded.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode_frame, Body, Event};

    fn mark(seq: u16, label: &str) -> Frame {
        Frame { seq, device_ms: 10, body: Body::Event(Event::Mark { label: label.into() }) }
    }

    fn collect(demux: &mut Demux, stream: &[u8], chunk: usize) -> (Vec<u8>, Vec<Frame>, Vec<Corrupt>) {
        let (mut text, mut frames, mut corrupt) = (Vec::new(), Vec::new(), Vec::new());
        for piece in stream.chunks(chunk.max(1)) {
            for item in demux.push(piece) {
                match item {
                    Item::Text(t) => text.extend(t),
                    Item::Frame(f) => frames.push(f),
                    Item::Corrupt(c) => corrupt.push(c),
                }
            }
        }
        (text, frames, corrupt)
    }

    #[test]
    fn text_and_frames_separate_at_any_chunking() {
        let mut stream = b">>> import heapscope\r\n".to_vec();
        stream.extend(encode_frame(&mark(1, "a")));
        stream.extend(b"hello \xff world\r\n");
        stream.extend(encode_frame(&mark(2, "b")));
        stream.extend(b">>> ");
        for chunk in [1, 2, 3, 7, 1000] {
            let mut demux = Demux::new();
            let (text, frames, corrupt) = collect(&mut demux, &stream, chunk);
            assert_eq!(text, b">>> import heapscope\r\nhello \xff world\r\n>>> ", "chunk {chunk}");
            assert_eq!(frames, [mark(1, "a"), mark(2, "b")]);
            assert!(corrupt.is_empty());
            assert_eq!(demux.stats().frames, 2);
        }
    }

    #[test]
    fn a_frame_that_lost_its_end_costs_only_itself() {
        let mut first = encode_frame(&mark(1, "lost end"));
        first.pop();
        let mut stream = first.clone();
        stream.extend(encode_frame(&mark(2, "kept")));
        let mut demux = Demux::new();
        let (_, frames, corrupt) = collect(&mut demux, &stream, 5);
        assert_eq!(frames, [mark(2, "kept")]);
        assert_eq!(corrupt.len(), 1);
        assert_eq!(corrupt[0].stream_offset, 0);
        assert_eq!(demux.stats().corrupt_frames, 1);
    }

    #[test]
    fn corrupt_frames_report_their_offset() {
        let mut stream = b"abc".to_vec();
        let mut bad = encode_frame(&mark(1, "x"));
        // A flip that makes no zero byte, so the frame still ends where it should.
        bad[8] ^= 0x40;
        assert_ne!(bad[8], 0);
        stream.extend(bad);
        stream.extend(b"def");
        let mut demux = Demux::new();
        let (text, frames, corrupt) = collect(&mut demux, &stream, 4);
        assert_eq!(text, b"abcdef");
        assert!(frames.is_empty());
        assert_eq!(corrupt[0].stream_offset, 3);
    }
}
