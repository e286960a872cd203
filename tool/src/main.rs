//! `heapscope`: see the GC heap of a MicroPython board.

use std::process::ExitCode;

fn main() -> ExitCode {
    match heapscope::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("heapscope: {e}");
            e.exit_code()
        }
    }
}
