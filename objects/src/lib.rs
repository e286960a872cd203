//! heapscope-objects: who holds this memory.
//!
//! From a [`dump::HeapDump`] (the words of every used block of a MicroPython GC heap, its layout
//! and names) to [`analysis::Analysis`]: objects and their types, references found as the GC's
//! mark phase finds them (every word of an allocation that points at a head block), roots, the
//! dominator tree, retained sizes and the shortest path from a root to any object.
//!
//! Pure library: no I/O.

pub mod analysis;
pub mod base64;
pub mod dump;
pub mod graph;
pub mod synth;

pub use analysis::{diff, Analysis, Diff, KeepPath, Object, Root, RootKind, TOP};
pub use dump::{DumpArea, DumpError, HeapDump, MemoryRange, Named};
