//! heapscope-protocol: the MicroPython GC heap as data.
//!
//! - [`model`]: snapshots, areas, 2-bit block kinds, object types, reported figures.
//! - [`text`]: the parser for every era of `micropython.mem_info()` output, whole or streamed.
//! - [`metrics`]: fragmentation, free-run histogram, largest free block, bytes by type.
//! - [`wire`]: the binary frame format of `SPEC.md`, its encoder, decoder and demultiplexer.
//!
//! Pure library: no I/O.

pub mod metrics;
pub mod model;
pub mod synth;
pub mod text;
pub mod wire;

pub use model::{Allocation, Area, BlockKind, GcFigures, KindTable, ObjType, PythonFigures, Reported, Snapshot};
