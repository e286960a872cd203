//! Support for the workspace integration tests: the firmware's C core behind a safe wrapper,
//! and the worked examples of `protocol/SPEC.md`.

pub mod board;
pub mod cable;
pub mod c_core;
pub mod counting;
pub mod firmware;
pub mod hour;
pub mod spec;
pub mod truth;
pub mod workload;

use std::path::PathBuf;
use std::process::Command;

/// The `heapscope` binary, built fresh once per test run with the test's own profile (this
/// crate depends on the library, so `cargo test -p heapscope-tests` alone would not rebuild
/// the binary, and cargo sets `CARGO_BIN_EXE_heapscope` only for the tool's own tests). The
/// path is the one cargo reports for what it built, never a guess that could find a stale
/// binary of another profile.
pub fn heapscope_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_heapscope).clone()
}

fn build_heapscope() -> PathBuf {
    // target/<profile dir>/deps/<this test>
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps");
    let target_dir = profile_dir.parent().expect("target dir");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", "heapscope", "--bin", "heapscope", "--message-format=json-render-diagnostics"]);
    build.arg("--target-dir").arg(target_dir);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            build.arg("--release");
        }
        Some(other) => {
            build.args(["--profile", other]);
        }
        None => panic!("no profile directory above {}", exe.display()),
    }
    let out = build.stderr(std::process::Stdio::inherit()).output().expect("run cargo to build the heapscope binary");
    assert!(out.status.success(), "building the heapscope binary failed");
    executable_in(&String::from_utf8_lossy(&out.stdout)).expect("cargo reported no heapscope executable")
}

/// The `heapscope` executable in cargo's JSON messages.
fn executable_in(messages: &str) -> Option<PathBuf> {
    messages.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).find_map(|m| {
        let is_it = m["reason"] == "compiler-artifact" && m["target"]["name"] == "heapscope" && m["target"]["kind"][0] == "bin";
        is_it.then(|| m["executable"].as_str().map(PathBuf::from)).flatten()
    })
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

#[cfg(test)]
mod tests {
    use std::process::Command;

    #[test]
    fn the_binary_is_the_one_cargo_built_for_this_profile() {
        let bin = super::heapscope_binary();
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
        assert_eq!(bin.parent(), Some(profile_dir), "{} is not in this test's profile directory", bin.display());
        assert!(bin.is_file());
        let out = Command::new(&bin).arg("--version").output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn the_executable_is_read_from_cargos_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"heapscope","kind":["lib"]},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"heapscope","kind":["bin"]},"executable":"/t/release/heapscope"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#
        );
        assert_eq!(super::executable_in(messages), Some("/t/release/heapscope".into()));
        assert_eq!(super::executable_in(r#"{"reason":"build-finished","success":true}"#), None);
    }
}

/// Running the `heapscope` binary as a user does, and reading what it said.
pub mod cli {
    use std::process::{Command, Output};

    pub fn heapscope() -> Command {
        Command::new(super::heapscope_binary())
    }

    pub fn run(args: &[&str]) -> Output {
        heapscope().args(args).output().expect("run heapscope")
    }

    pub fn stderr(o: &Output) -> String {
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// The JSON a successful command printed.
    pub fn json(o: &Output) -> serde_json::Value {
        assert!(o.status.success(), "exit {:?}: {}", o.status.code(), stderr(o));
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
    }
}
