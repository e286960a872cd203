//! `cargo bench -p heapscope-tests --bench recording`: an hour of recording, written and read
//! back, each figure beside a baseline measured in the same run.
//!
//! Writes the 1-hour recording (see `heapscope_tests::hour`) into `target/bench/`, as a live
//! session does, then: opens it (index) against reading every record (the same file without its
//! index) and against reading the file whole; steps to random snapshots against decoding one
//! keyframe; runs the release binary's `inspect` and `export --csv` against reading the file,
//! with their peak memory; compares its size with what the wire carried; and flips bits in the
//! demo recording and a stream recording. `HEAPSCOPE_BENCH_SNAPSHOTS=N` writes N snapshots instead
//! of 36,000 for a quick run (the closing figures are on the full hour).
//!
//! Prints figures; asserts nothing about time.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use heapscope::recording::Recording;
use heapscope::tui::history::History;
use heapscope_protocol::synth;
use heapscope_protocol::wire::session::{self, Session};
use heapscope_protocol::wire::{decode_body, encode_body, Body, Frame};
use heapscope_tests::{best_of, hour};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn target_dir() -> PathBuf {
    // The bench runs from target/release/deps.
    let exe = std::env::current_exe().expect("own path");
    exe.ancestors().nth(3).expect("target dir").to_path_buf()
}

/// The release `heapscope` binary, built for this run.
fn release_binary() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--release", "--locked", "-p", "heapscope", "--bin", "heapscope"])
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the release binary failed");
    target_dir().join("release/heapscope")
}

/// What running a command cost: wall time, CPU time, peak resident memory (kB).
struct Run {
    wall: Duration,
    cpu: Duration,
    peak_kb: u64,
}

/// Runs `bin args`, output discarded. The peak memory the kernel reports for a child includes
/// its parent's at the fork, so this runs in a fresh copy of this benchmark (small) that runs
/// the command and reports.
fn run_measured(bin: &Path, args: &[&str]) -> Run {
    let me = std::env::current_exe().expect("own path");
    let spec = std::iter::once(bin.to_str().unwrap()).chain(args.iter().copied()).collect::<Vec<_>>().join("\x1f");
    let out = Command::new(me).env(MEASURE, spec).output().expect("run the measuring copy");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Vec<u64> = text.split_whitespace().map(|x| x.parse().unwrap()).collect();
    Run { wall: Duration::from_nanos(v[0]), cpu: Duration::from_nanos(v[1]), peak_kb: v[2] }
}

const MEASURE: &str = "HEAPSCOPE_BENCH_MEASURE";

/// In the measuring copy: runs the command and prints wall ns, CPU ns and peak kB.
#[allow(clippy::zombie_processes, reason = "reaped by wait4, which also gives its resource usage")]
fn measure(spec: &str) {
    let mut parts = spec.split('\x1f');
    let bin = parts.next().unwrap();
    let t = Instant::now();
    let child = Command::new(bin).args(parts).stdout(std::process::Stdio::null()).spawn().expect("run the command");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, status and usage are valid for writes.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = t.elapsed();
    assert_eq!(r, pid, "wait4");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{spec:?} failed: {status}");
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    let cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
    println!("{} {} {}", wall.as_nanos(), cpu.as_nanos(), usage.ru_maxrss);
}

fn main() {
    if let Ok(spec) = std::env::var(MEASURE) {
        return measure(&spec);
    }
    let snapshots: usize = std::env::var("HEAPSCOPE_BENCH_SNAPSHOTS").ok().and_then(|v| v.parse().ok()).unwrap_or(hour::HOUR);
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hour.hsr");
    let minutes = snapshots as f64 / 600.0;
    println!("recording: {snapshots} snapshots ({minutes:.0} min at 10 Hz) of a {}-block heap, ~{} blocks changing each", hour::BLOCKS, 2 * hour::MOVES);

    // Writing, as a live session does.
    let t = Instant::now();
    let mut w = hour::write(&path, snapshots);
    let write_time = t.elapsed();
    let mb = w.file_bytes as f64 / 1e6;
    println!("  written in {:.1} s: {:.1} MB, {:.0} B per snapshot", write_time.as_secs_f64(), mb, w.file_bytes as f64 / snapshots as f64);
    println!(
        "  size: {:.3}x the bytes the wire carried for the same snapshots ({:.1} MB; goal <= 1.2x)",
        w.file_bytes as f64 / w.wire_bytes as f64,
        w.wire_bytes as f64 / 1e6
    );
    let p99 = percentile(&mut w.appends, 0.99);
    let max = *w.appends.last().unwrap();
    let p99_key = if w.keyframe_appends.is_empty() { Duration::ZERO } else { percentile(&mut w.keyframe_appends, 0.99) };
    println!(
        "  append: p99 {:.2} ms, max {:.2} ms = {:.3}x / {:.3}x the 100 ms snapshot period (keyframes, synced: p99 {:.2} ms)",
        ms(p99),
        ms(max),
        ms(p99) / 100.0,
        ms(max) / 100.0,
        ms(p99_key)
    );
    println!(
        "  sync to disk at each keyframe and at close: {} syncs, {:.2} ms each on average, {:.2}% of the writing time",
        w.syncs,
        ms(w.sync_time) / f64::from(w.syncs.max(1)),
        100.0 * w.sync_time.as_secs_f64() / write_time.as_secs_f64()
    );
    let live_kb = w.rss_after_kb.saturating_sub(w.rss_before_kb);
    let held = w.snapshot_bytes as f64 * snapshots as f64;
    println!(
        "  live session (writer + history reading back): resident memory grew {:.1} MB; keeping every snapshot in memory would hold {:.0} MB ({} B each) (goal < 100 MB)",
        live_kb as f64 / 1e3,
        held / 1e6,
        w.snapshot_bytes
    );

    // Opening: the index against reading every record.
    let open_first = || {
        let rec = Recording::open(&path).unwrap();
        assert!(rec.from_index);
        let h = History::from_recording(rec);
        black_box(h.snapshot(0).unwrap());
        black_box(h.snapshot(h.len() - 1).unwrap());
    };
    let t_open = best_of(3, open_first);
    let noindex = dir.join("hour-noindex.hsr");
    {
        let bytes = std::fs::read(&path).unwrap();
        // Cut before the index: the file as a crash leaves it.
        let index_at = u64::from_le_bytes(bytes[bytes.len() - 12..bytes.len() - 4].try_into().unwrap()) as usize;
        std::fs::write(&noindex, &bytes[..index_at]).unwrap();
    }
    let t_scan = best_of(1, || {
        let rec = Recording::open(&noindex).unwrap();
        assert!(!rec.from_index && rec.snapshot_count() == snapshots);
        black_box(History::from_recording(rec).snapshot(0).unwrap());
    });
    let t_read = best_of(3, || {
        black_box(std::fs::read(&path).unwrap());
    });
    println!(
        "  open to the first map (and the last): {:.0} ms (goal < 1 s); reading every record instead (no index, as after a crash): {:.0} ms; reading the file whole: {:.0} ms",
        ms(t_open),
        ms(t_scan),
        ms(t_read)
    );

    // Stepping.
    let rec = Recording::open(&path).unwrap();
    let n = rec.snapshot_count() as u64;
    let mut rng = synth::Rng::new(11);
    let mut jumps: Vec<Duration> = (0..200)
        .map(|_| {
            let o = rng.below(n) as u32;
            let fresh = Recording::open(&path).unwrap();
            let t = Instant::now();
            black_box(fresh.snapshot(o).unwrap());
            t.elapsed()
        })
        .collect();
    let start = rng.below(n - 100) as u32;
    let mut steps: Vec<Duration> = (start..start + 100)
        .map(|o| {
            let t = Instant::now();
            black_box(rec.snapshot(o).unwrap());
            t.elapsed()
        })
        .collect();
    let mut back: Vec<Duration> = (start..start + 100)
        .rev()
        .map(|o| {
            let t = Instant::now();
            black_box(rec.snapshot(o).unwrap());
            t.elapsed()
        })
        .collect();
    let heap = synth::snapshot(7, 16, 1, hour::BLOCKS);
    let key = encode_body(&Frame { seq: 0, device_ms: 0, body: Body::Keyframe(session::keyframe(&heap)) });
    let t_key = best_of(5, || {
        let frame = decode_body(black_box(&key)).unwrap();
        black_box(Session::new().apply(&frame).unwrap());
    });
    let jump_max = *jumps.iter().max().unwrap();
    println!(
        "  step to a random snapshot: p50 {:.2} ms, max {:.2} ms (goal < 5 ms); to the next: p50 {:.2} ms; to the one before: p50 {:.2} ms, max {:.2} ms; baseline, one keyframe decoded and applied by wire::Session: {:.2} ms",
        ms(percentile(&mut jumps, 0.5)),
        ms(jump_max),
        ms(percentile(&mut steps, 0.5)),
        ms(percentile(&mut back, 0.5)),
        ms(*back.iter().max().unwrap()),
        ms(t_key)
    );
    drop(rec);

    // inspect and export by the release binary.
    let bin = release_binary();
    let file = path.to_str().unwrap();
    let cat = run_measured(Path::new("cat"), &[file]);
    let inspect = run_measured(&bin, &["inspect", file]);
    let export = run_measured(&bin, &["export", "--csv", file]);
    let rate = |t: Duration| mb / t.as_secs_f64();
    for (name, run) in [("inspect", &inspect), ("export --csv", &export)] {
        println!(
            "  {name}: {:.0} MB/s ({:.0} MB/s of CPU time), peak {:.1} MB (goals >= 100 MB/s, < 100 MB); baseline cat: {:.0} MB/s, peak {:.1} MB",
            rate(run.wall),
            rate(run.cpu),
            run.peak_kb as f64 / 1e3,
            rate(cat.wall),
            cat.peak_kb as f64 / 1e3
        );
    }
    let _ = std::fs::remove_file(&noindex);

    // Single bit flips.
    let demo = include_bytes!("../../tool/assets/demo.hsr").to_vec();
    let stream = heapscope_tests::hour::stream_recording(&dir.join("stream.hsr"));
    for (name, bytes) in [("demo recording (version 1)", demo), ("stream recording", stream)] {
        let total = Recording::from_bytes(bytes.clone()).unwrap().snapshot_count();
        let mut rng = synth::Rng::new(99);
        let flips = 1000;
        let mut kept = 0usize;
        let mut min_kept = usize::MAX;
        for _ in 0..flips {
            let mut b = bytes.clone();
            let bit = rng.below(b.len() as u64 * 8);
            b[(bit / 8) as usize] ^= 1 << (bit % 8);
            let k = match Recording::from_bytes(b) {
                Ok(rec) => rec.snapshot_count() - rec.verify(),
                Err(_) => 0,
            };
            kept += k;
            min_kept = min_kept.min(k);
        }
        println!(
            "  {name}: snapshots kept after {flips} single bit flips: {:.1} of {total} on average (fewest {min_kept})",
            kept as f64 / flips as f64
        );
    }
}
