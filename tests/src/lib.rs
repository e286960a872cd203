//! Support for the workspace integration tests: the firmware's C core behind a safe wrapper,
//! and the worked examples of `protocol/SPEC.md`.

pub mod board;
pub mod cable;
pub mod c_core;
pub mod firmware;
pub mod spec;
pub mod truth;
pub mod workload;

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
