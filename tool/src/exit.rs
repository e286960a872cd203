//! Errors a command ends with, and the exit code each means.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the system failed us: a file or device could not be read or written |
//! | 2 | the input is not understood: malformed data, nothing to inspect, bad arguments |

use std::fmt;
use std::process::ExitCode;

#[derive(Debug)]
pub enum CliError {
    /// Reading or writing failed.
    Io(String),
    /// The input was read but is malformed or holds nothing usable.
    BadInput(String),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Io(_) => ExitCode::from(1),
            CliError::BadInput(_) => ExitCode::from(2),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Io(m) | CliError::BadInput(m) => f.write_str(m),
        }
    }
}
