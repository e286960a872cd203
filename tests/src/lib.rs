//! Support for the workspace integration tests: the firmware's C core behind a safe wrapper,
//! and the worked examples of `protocol/SPEC.md`.

pub mod board;
pub mod c_core;
pub mod spec;
