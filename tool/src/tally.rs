//! Running counts over a capture, and the one-line status a headless command shows.

use std::time::Duration;

use crate::entry::{Entry, Source};
use crate::human::{count, thousands};
use crate::recording::Summary;

#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub snapshots: u64,
    pub stream: u64,
    pub passive: u64,
    pub poll: u64,
    pub events: u64,
    /// Snapshots the device skipped for the line budget.
    pub skipped: u64,
    pub segments: u64,
    pub gaps: u64,
    pub corrupt: u64,
    pub console_bytes: u64,
    /// The end of the console text, to say what the device said last.
    console_tail: Vec<u8>,
    pub last: Option<Summary>,
}

/// Bytes of console text kept for [`Tally::last_console_line`].
const CONSOLE_TAIL: usize = 512;

impl Tally {
    pub fn add(&mut self, e: &Entry) {
        match e {
            Entry::Snapshot { source, snapshot, .. } => {
                self.snapshots += 1;
                match source {
                    Source::Stream => self.stream += 1,
                    Source::Passive => self.passive += 1,
                    Source::Poll => self.poll += 1,
                }
                self.last = Some(Summary::of(snapshot));
            }
            Entry::Event { event, .. } => {
                self.events += 1;
                if let heapscope_protocol::wire::Event::Skipped { count } = event {
                    self.skipped += u64::from(*count);
                }
            }
            Entry::Segment { .. } => self.segments += 1,
            Entry::Gap { .. } => self.gaps += 1,
            Entry::Corrupt { .. } => self.corrupt += 1,
            Entry::Console { bytes, .. } => {
                self.console_bytes += bytes.len() as u64;
                self.console_tail.extend_from_slice(bytes);
                let over = self.console_tail.len().saturating_sub(CONSOLE_TAIL);
                self.console_tail.drain(..over);
            }
            Entry::Notice { .. } => {}
        }
    }

    /// The last line of console text that is not blank.
    pub fn last_console_line(&self) -> Option<String> {
        let tail = String::from_utf8_lossy(&self.console_tail);
        tail.lines().map(str::trim).rfind(|l| !l.is_empty()).map(str::to_string)
    }

    pub fn sources(&self) -> String {
        let parts: Vec<String> = [("stream", self.stream), ("passive", self.passive), ("poll", self.poll)]
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{n} {name}"))
            .collect();
        if parts.is_empty() {
            "none yet".into()
        } else {
            parts.join(", ")
        }
    }

    /// `12.3 s  42 snapshots (3.4/s)  12 KB  used 6,192 B  largest free 112,112 B`
    pub fn status(&self, elapsed: Duration, bytes: u64) -> String {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { self.snapshots as f64 / secs } else { 0.0 };
        let mut s = format!("{secs:6.1} s  {} ({rate:.1}/s)  {} KB", count(self.snapshots, "snapshot"), thousands(bytes / 1024));
        if let Some(l) = self.last {
            s += &format!("  used {} B  largest free {} B", thousands(l.used), thousands(l.largest_free));
        }
        if self.skipped > 0 {
            s += &format!("  {} skipped by the device", self.skipped);
        }
        if self.gaps > 0 {
            s += &format!("  {}", count(self.gaps, "gap"));
        }
        if self.corrupt > 0 {
            s += &format!("  {} damaged", self.corrupt);
        }
        s
    }
}
