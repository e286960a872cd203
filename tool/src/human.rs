//! Text a person reads: figures with thousands separators, aligned tables.

use std::fmt::Write;

use heapscope_protocol::wire::Event;

use crate::report::SnapshotReport;

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A change, signed: `+2,560`, `-1,024`, `+0`.
pub fn signed(n: i64) -> String {
    format!("{}{}", if n < 0 { '-' } else { '+' }, thousands(n.unsigned_abs()))
}

/// A moment of a recording as a person reads it: `8.6 s` since the capture started.
pub fn moment(at: crate::entry::HostMicros) -> String {
    format!("{:.1} s", crate::entry::seconds(at))
}

/// `1 segment`, `2 segments`, `1,024 blocks`: a count with its noun, singular for one.
pub fn count(n: impl TryInto<u64>, noun: &str) -> String {
    let n = n.try_into().unwrap_or(u64::MAX);
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", thousands(n))
    }
}

/// A device event as a person reads it: on the UI's timeline, in `inspect` and in `export`.
pub fn event(event: &Event) -> String {
    if let Some(bytes) = crate::capture::memory_error_of(event) {
        return format!("MemoryError: allocating {} B failed", thousands(bytes));
    }
    match event {
        Event::ImportBegin { name, .. } => format!("import {name}"),
        Event::ImportEnd { name, ok: true, elapsed_us, .. } => format!("import {name} done in {:.1} ms", *elapsed_us as f64 / 1000.0),
        Event::ImportEnd { name, ok: false, .. } => format!("import {name} failed"),
        Event::Mark { label } => label.clone(),
        Event::AreaAdded(a) => format!("area +{:#x}", a.pool_start),
        Event::AreaRemoved { pool_start } => format!("area -{pool_start:#x}"),
        Event::StreamStart { period_ms } => format!("stream started, a snapshot every {period_ms} ms"),
        Event::StreamStop => "stream stopped".into(),
        Event::Skipped { count: n } => format!("{} skipped (line budget)", count(*n, "snapshot")),
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

/// A snapshot report as a few readable lines.
pub fn snapshot(r: &SnapshotReport) -> String {
    let mut s = String::new();
    let m = &r.metrics;
    let total = r.reported.total.unwrap_or(0);
    match r.block_size {
        Some(bs) => {
            let blocks: usize = r.areas.iter().map(|a| a.blocks).sum();
            let areas = count(r.areas.len(), "area");
            let _ = writeln!(s, "  GC heap        {:>11} B   {areas}, {} blocks of {bs} B", thousands(total), thousands(blocks as u64));
        }
        None => {
            let _ = writeln!(s, "  GC heap        {:>11} B   (summary only: no layout in this dump)", thousands(total));
        }
    }
    if let (Some(used), Some(free)) = (m.used_bytes, m.free_bytes) {
        let _ = writeln!(s, "  used           {:>11} B   {}", thousands(used), percent(used, used + free));
        let _ = writeln!(s, "  free           {:>11} B   {}", thousands(free), percent(free, used + free));
    }
    if let Some(largest) = m.largest_free_bytes {
        let _ = writeln!(s, "  largest free   {:>11} B   the largest allocation that can succeed now", thousands(largest));
    }
    if let Some(f) = m.fragmentation {
        let _ = writeln!(s, "  fragmentation  {:>11.1}%   1 - largest free / free", 100.0 * f);
    }
    if let Some(split) = r.reported.max_new_split {
        let _ = writeln!(s, "  max new split  {:>11} B   the largest new area the heap could grow by", thousands(split));
    }
    if let Some(used) = r.reported.stack_used {
        let limit = r.reported.stack_limit.map_or(String::new(), |l| format!(" of {} B", thousands(l)));
        let _ = writeln!(s, "  stack          {:>11} B{limit}", thousands(used));
    }
    if !m.free_runs.is_empty() {
        let runs: Vec<String> = m
            .free_runs
            .iter()
            .filter(|b| b.runs > 0)
            .map(|b| {
                let range = if b.min_blocks == b.max_blocks { b.min_blocks.to_string() } else { format!("{}-{}", b.min_blocks, b.max_blocks) };
                format!("{range}: {}", b.runs)
            })
            .collect();
        let _ = writeln!(s, "  free runs      {}  (blocks: count)", runs.join("  "));
    }
    if !m.types.is_empty() {
        let mut types: Vec<_> = m.types.iter().collect();
        types.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let _ = writeln!(s, "  by type        {:>11}   {:>6}", "bytes", "allocs");
        for (name, bytes) in types {
            let _ = writeln!(s, "    {name:<12} {:>11}   {:>6}", thousands(*bytes), m.type_counts[name]);
        }
    }
    for a in &r.areas {
        let _ = writeln!(
            s,
            "  area {}   {} blocks: {} free, {} head, {} tail, largest free run {}",
            a.pool_start,
            thousands(a.blocks as u64),
            thousands(a.free_blocks as u64),
            thousands(a.head_blocks as u64),
            thousands(a.tail_blocks as u64),
            thousands(a.largest_free_blocks as u64)
        );
    }
    for w in &r.warnings {
        let _ = writeln!(s, "  warning: line {}: {}", w.line, w.message);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(2072832), "2,072,832");
    }

    #[test]
    fn signed_changes() {
        assert_eq!(signed(2560), "+2,560");
        assert_eq!(signed(-1024), "-1,024");
        assert_eq!(signed(0), "+0");
        assert_eq!(signed(i64::MIN), "-9,223,372,036,854,775,808");
    }

    #[test]
    fn counts_are_singular_for_one() {
        assert_eq!(count(1, "block"), "1 block");
        assert_eq!(count(1402, "block"), "1,402 blocks");
    }
}
