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

/// Where a system lists stable names for USB serial devices.
pub const BY_ID_DIR: &str = "/dev/serial/by-id";

/// A board by what identifies it, not only by path: after an unplug it may come back under
/// another name (ttyACM0 becomes ttyACM1 while something still holds the old one). At the
/// first open it notes the `/dev/serial/by-id` links to the device and its USB serial number;
/// a reopen tries those links, then the serial number, then the path given.
pub struct BoardOpener {
    port: PathOpener,
    by_id_dir: std::path::PathBuf,
    /// Other names of the same device, found at the first open.
    links: Vec<String>,
    serial: Option<String>,
    identified: bool,
    /// The name the board was last opened under.
    current: String,
}

impl BoardOpener {
    pub fn new(path: String, options: OpenOptions) -> BoardOpener {
        BoardOpener {
            current: path.clone(),
            port: PathOpener { path, options },
            by_id_dir: BY_ID_DIR.into(),
            links: Vec::new(),
            serial: None,
            identified: false,
        }
    }

    /// Looks for stable names in `dir` instead of /dev/serial/by-id (tests).
    pub fn with_by_id_dir(mut self, dir: impl Into<std::path::PathBuf>) -> BoardOpener {
        self.by_id_dir = dir.into();
        self
    }

    fn identify(&mut self) {
        self.identified = true;
        let Ok(device) = std::fs::canonicalize(&self.port.path) else { return };
        if let Ok(entries) = std::fs::read_dir(&self.by_id_dir) {
            self.links = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.to_str() != Some(self.port.path.as_str()) && std::fs::canonicalize(p).is_ok_and(|c| c == device))
                .filter_map(|p| p.to_str().map(String::from))
                .collect();
        }
        self.serial = port::info(&self.port.path).and_then(|p| p.serial);
    }
}

impl Opener for BoardOpener {
    fn open(&mut self) -> Result<Box<dyn Link>, PortError> {
        if !self.identified {
            let link = self.port.open()?;
            self.identify();
            return Ok(link);
        }
        // What identifies the board first: its old name may now be another device's.
        let by_serial = self.serial.as_ref().and_then(|s| port::resolve(&port::PortSpec::Serial(s.clone())).ok());
        for other in self.links.clone().into_iter().chain(by_serial) {
            if let Ok(link) = port::open(&other, self.port.options) {
                self.current = other;
                return Ok(Box::new(link));
            }
        }
        let link = self.port.open()?;
        self.current = self.port.path.clone();
        Ok(link)
    }

    fn name(&self) -> String {
        self.current.clone()
    }
}

/// What stands for a link whose device went away, so the dead port is closed at once (the
/// system can then reuse its name) while the capture waits for the board to come back.
pub struct Unplugged;

impl Link for Unplugged {
    fn read_some(&mut self, _: &mut [u8]) -> Result<usize, Gone> {
        Err(Gone("unplugged".into()))
    }

    fn write_all(&mut self, _: &[u8]) -> Result<(), Gone> {
        Err(Gone("unplugged".into()))
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
