//! Support for the workspace integration tests: the firmware's C core behind a safe wrapper,
//! and the worked examples of `protocol/SPEC.md`.

pub mod board;
pub mod c_core;
pub mod hour;
pub mod spec;

use std::path::PathBuf;
use std::process::Command;

/// The `heapscope` binary, built fresh once per test run: this crate depends on the library,
/// so `cargo test -p heapscope-tests` alone would not rebuild the binary.
pub fn heapscope_binary() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "heapscope", "--bin", "heapscope"])
            .status()
            .expect("run cargo to build the heapscope binary");
        assert!(status.success(), "building the heapscope binary failed");
    });
    let exe = std::env::current_exe().expect("the test's own path");
    let bin = exe.parent().and_then(|deps| deps.parent()).map(|d| d.join("heapscope")).expect("target dir");
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}

/// CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The shortest CPU time of `runs` runs of `f`. On a loaded machine wall time also counts
/// other processes' slices, and a longer run is interrupted more often than a short one, so
/// comparing two workloads of different length by wall time favours the shorter; time on the
/// CPU does not.
pub fn best_cpu_of<F: FnMut()>(runs: usize, mut f: F) -> std::time::Duration {
    (0..runs)
        .map(|_| {
            let t = thread_cpu_time();
            f();
            thread_cpu_time() - t
        })
        .min()
        .expect("at least one run")
}

/// The shortest of `runs` timings of `f`: the least disturbed by the rest of the machine.
pub fn best_of<F: FnMut()>(runs: usize, mut f: F) -> std::time::Duration {
    (0..runs)
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .expect("at least one run")
}
