//! One module per command.

pub mod demo;
pub mod export;
pub mod flash;
pub mod imports;
pub mod inspect;
pub mod ports;
pub mod record;
pub mod view;
