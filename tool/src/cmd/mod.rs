//! One module per command.

pub mod demo;
pub mod dump;
pub mod docs;
pub mod export;
pub mod flash;
pub mod imports;
pub mod inspect;
pub mod objects;
pub mod ports;
pub mod record;
pub mod view;

use std::path::Path;

use crate::exit::{file_error, CliError};
use crate::recording::{Recording, RecordingError};

/// Refuses to write over a file that holds something (a recording of an hour is not lost to a
/// repeated command line) unless `--force` says so; checked before the board is touched.
pub fn check_output(path: &Path, force: bool) -> Result<(), CliError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() > 0 && !force => Err(CliError::BadInput(format!(
            "{} exists ({}): heapscope does not write over it; choose another name, or add --force",
            path.display(),
            crate::human::count(m.len(), "byte")
        ))),
        _ => Ok(()),
    }
}

/// Opens a recording named on the command line; errors name the file.
pub fn open_recording(path: &Path) -> Result<Recording, CliError> {
    Recording::open(path).map_err(|e| match e {
        RecordingError::Io(io) => file_error(path, io),
        other => CliError::BadInput(format!("{}: {other}", path.display())),
    })
}
