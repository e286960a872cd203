//! Errors a command ends with, and the exit code each means.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the system failed us: a file or device could not be opened, read or written |
//! | 2 | the input is not understood: malformed data, nothing to inspect, bad arguments |

use std::fmt;
use std::process::ExitCode;

use crate::port::PortError;
use crate::recording::RecordingError;
use crate::repl::ReplError;

#[derive(Debug)]
pub enum CliError {
    /// A file or device failed.
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

impl From<PortError> for CliError {
    fn from(e: PortError) -> CliError {
        CliError::Io(e.to_string())
    }
}

impl From<ReplError> for CliError {
    fn from(e: ReplError) -> CliError {
        CliError::Io(e.to_string())
    }
}

impl From<RecordingError> for CliError {
    fn from(e: RecordingError) -> CliError {
        match e {
            RecordingError::Io(e) => CliError::Io(e.to_string()),
            other => CliError::BadInput(other.to_string()),
        }
    }
}

/// An I/O error on a named file.
pub fn file_error(path: &std::path::Path, e: std::io::Error) -> CliError {
    CliError::Io(format!("{}: {e}", path.display()))
}

/// Writes to standard output. A reader that went away (`| head`) ends the output quietly; a
/// closed or failing stdout is an error, never a panic.
pub fn print_out(args: fmt::Arguments<'_>) -> Result<(), CliError> {
    use std::io::Write;
    stdout_result(std::io::stdout().lock().write_fmt(args))
}

/// What a write to standard output came to: a reader that went away (`| head`) ends the output
/// quietly; any other failure is an error.
pub fn stdout_result(written: std::io::Result<()>) -> Result<(), CliError> {
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Io(format!("writing standard output: {e}"))),
    }
}

/// Standard output for printing as input is read: once the reader has gone (`| head`), what is
/// written is dropped and [`Stdout::reader_gone`] says so, so the command can stop early and end
/// quietly; any other failure is returned.
#[derive(Default)]
pub struct Stdout {
    gone: bool,
}

impl Stdout {
    pub fn reader_gone(&self) -> bool {
        self.gone
    }

    fn quiet(&mut self, written: std::io::Result<usize>, len: usize) -> std::io::Result<usize> {
        match written {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.gone = true;
                Ok(len)
            }
            other => other,
        }
    }
}

impl std::io::Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.gone {
            return Ok(buf.len());
        }
        let written = std::io::stdout().lock().write(buf);
        self.quiet(written, buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.gone {
            return Ok(());
        }
        let flushed = std::io::stdout().lock().flush().map(|()| 0);
        self.quiet(flushed, 0).map(|_| ())
    }
}

/// `print!` that returns a [`CliError`] instead of panicking (see [`print_out`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::exit::print_out(format_args!($($arg)*)) };
}

/// `println!` that returns a [`CliError`] instead of panicking (see [`print_out`]).
#[macro_export]
macro_rules! outln {
    () => { $crate::exit::print_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::exit::print_out(format_args!("{}\n", format_args!($($arg)*))) };
}
