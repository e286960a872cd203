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

/// Opens a recording named on the command line; errors name the file.
pub fn open_recording(path: &Path) -> Result<Recording, CliError> {
    Recording::open(path).map_err(|e| match e {
        RecordingError::Io(io) => file_error(path, io),
        other => CliError::BadInput(format!("{}: {other}", path.display())),
    })
}
