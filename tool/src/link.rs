//! A byte link to a board: a serial port, or a pseudo-terminal in tests. Reads wait briefly and
//! return 0 when nothing came; a link whose device went away says `Gone`.

use std::io::{self, Read, Write};

use serialport::{SerialPort, TTYPort};

use crate::port::{self, OpenOptions, PortError};

/// The device is no longer there (cable pulled, board reset its USB, process exited).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gone(pub String);

impl std::fmt::Display for Gone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the port went away: {}", self.0)
    }
}

pub trait Link: Send {
    /// Reads what has arrived, waiting at most a short while; `Ok(0)` when nothing came.
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, Gone>;
    fn write_all(&mut self, data: &[u8]) -> Result<(), Gone>;
}

fn gone(e: io::Error) -> Gone {
    Gone(e.to_string())
}

impl Link for Box<dyn SerialPort> {
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, Gone> {
        match self.read(buf) {
            Ok(0) => Err(Gone("end of file".into())),
            Ok(n) => Ok(n),
            Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) => Ok(0),
            Err(e) => Err(gone(e)),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> Result<(), Gone> {
        Write::write_all(self, data).map_err(gone)?;
        self.flush().map_err(gone)
    }
}

/// Opens (and after an unplug, reopens) the link to one board.
pub trait Opener: Send {
    fn open(&mut self) -> Result<Box<dyn Link>, PortError>;
    /// How the port is named to the user.
    fn name(&self) -> String;
}

/// A serial port by path. Reopening after an unplug never resets the board.
pub struct PathOpener {
    pub path: String,
    pub options: OpenOptions,
}

impl Opener for PathOpener {
    fn open(&mut self) -> Result<Box<dyn Link>, PortError> {
        let port = port::open(&self.path, self.options)?;
        // Only the first open may reset; a reattach finds the board as it is.
        self.options.reset = false;
        Ok(Box::new(port))
    }

    fn name(&self) -> String {
        self.path.clone()
    }
}

/// A link that is already open (a spawned interpreter's pseudo-terminal): it opens once; when
/// it goes, it stays gone.
pub struct OnceOpener {
    link: Option<Box<dyn Link>>,
    name: String,
}

impl OnceOpener {
    pub fn new(link: Box<dyn Link>, name: impl Into<String>) -> OnceOpener {
        OnceOpener { link: Some(link), name: name.into() }
    }
}

impl Opener for OnceOpener {
    fn open(&mut self) -> Result<Box<dyn Link>, PortError> {
        self.link.take().ok_or_else(|| PortError::Other { path: self.name.clone(), message: "it has exited".into() })
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

/// A duplicate of a pseudo-terminal's file descriptor, to give a child process as its stdio.
pub fn pty_stdio(port: &TTYPort) -> io::Result<std::process::Stdio> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    // SAFETY: the fd is open for the life of `port`, which outlives this call.
    let fd = unsafe { BorrowedFd::borrow_raw(port.as_raw_fd()) };
    fd.try_clone_to_owned().map(std::process::Stdio::from)
}
