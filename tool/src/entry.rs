//! What a capture yields, in order: snapshots, device events, console text, and the seams
//! between segments (start, reset, cable pulled and plugged back). Recordings store exactly
//! these; replays, exports and the UI read them back.

use heapscope_protocol::wire::Event;
use heapscope_protocol::Snapshot;

/// Microseconds since the capture started, on the host's clock.
pub type HostMicros = u64;

/// A moment as the seconds since the capture started: the one time base the UI shows and
/// `inspect` and `export` print.
pub fn seconds(at: HostMicros) -> f64 {
    at as f64 / 1e6
}

/// How a snapshot was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Source {
    /// Frames from the heapscope firmware module.
    Stream = 1,
    /// A `mem_info` dump the device printed by itself.
    Passive = 2,
    /// A `mem_info` dump the tool asked for through the raw REPL.
    Poll = 3,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Stream => "stream",
            Source::Passive => "passive",
            Source::Poll => "poll",
        }
    }

    pub fn from_code(code: u8) -> Option<Source> {
        [Source::Stream, Source::Passive, Source::Poll].into_iter().find(|s| *s as u8 == code)
    }
}

/// Why a new segment starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SegmentReason {
    /// The capture began.
    Start = 1,
    /// The board reset (banner, soft reboot, or a new hello from the module).
    Reset = 2,
    /// The port came back after it disappeared.
    Reattach = 3,
}

impl SegmentReason {
    pub fn name(self) -> &'static str {
        match self {
            SegmentReason::Start => "start",
            SegmentReason::Reset => "reset",
            SegmentReason::Reattach => "reattach",
        }
    }

    pub fn from_code(code: u8) -> Option<SegmentReason> {
        [SegmentReason::Start, SegmentReason::Reset, SegmentReason::Reattach].into_iter().find(|s| *s as u8 == code)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Segment { at: HostMicros, reason: SegmentReason, detail: String },
    Snapshot { at: HostMicros, device_ms: Option<u32>, source: Source, snapshot: Box<Snapshot> },
    Event { at: HostMicros, device_ms: Option<u32>, event: Event },
    /// Console text from the device, as received.
    Console { at: HostMicros, bytes: Vec<u8> },
    /// The port went away; the next `Segment { Reattach }` ends the gap.
    Gap { at: HostMicros, reason: String },
    /// Something was received but not understood (a damaged frame, a broken dump).
    Corrupt { at: HostMicros, detail: String },
    /// A message from the tool itself (mode chosen, polling interrupts the program, ...).
    Notice { at: HostMicros, text: String },
}

impl Entry {
    pub fn at(&self) -> HostMicros {
        match self {
            Entry::Segment { at, .. }
            | Entry::Snapshot { at, .. }
            | Entry::Event { at, .. }
            | Entry::Console { at, .. }
            | Entry::Gap { at, .. }
            | Entry::Corrupt { at, .. }
            | Entry::Notice { at, .. } => *at,
        }
    }
}
