//! Serial ports: finding the board, opening it without resetting it, and errors a user can act
//! on.

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serialport::{SerialPort, SerialPortType};

/// USB bridges and chips MicroPython boards use, by vendor:product.
const KNOWN_BOARDS: &[(u16, Option<u16>, &str)] = &[
    (0x10c4, Some(0xea60), "Silicon Labs CP210x (ESP32 dev boards)"),
    (0x1a86, Some(0x7523), "WCH CH340 (ESP32/ESP8266 boards)"),
    (0x1a86, Some(0x55d4), "WCH CH9102 (ESP32 boards)"),
    (0x0403, Some(0x6001), "FTDI FT232R"),
    (0x0403, Some(0x6015), "FTDI FT231X"),
    (0x303a, Some(0x1001), "Espressif USB-Serial-JTAG (ESP32-C3/C6/S3)"),
    (0x303a, None, "Espressif native USB (ESP32-S2/S3)"),
    (0x2e8a, None, "Raspberry Pi (RP2040/RP2350)"),
    (0xf055, None, "MicroPython (pyboard and others)"),
];

/// What a USB id says about a port, if it looks like a board.
pub fn board_kind(vid: u16, pid: u16) -> Option<&'static str> {
    KNOWN_BOARDS
        .iter()
        .find(|(v, p, _)| *v == vid && p.is_none_or(|p| p == pid))
        .map(|(_, _, name)| *name)
}

/// A serial port as `heapscope ports` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct PortInfo {
    pub path: String,
    /// `usb`, `pci`, `bluetooth` or `unknown`.
    pub kind: &'static str,
    pub vid: Option<String>,
    pub pid: Option<String>,
    pub serial: Option<String>,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    /// Why this port looks like a MicroPython board, if it does (`""` in JSON when it does not:
    /// the field is always a string).
    #[serde(serialize_with = "empty_when_none")]
    pub likely_board: Option<&'static str>,
}

fn empty_when_none<S: serde::Serializer>(v: &Option<&'static str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.unwrap_or(""))
}

pub fn list() -> Result<Vec<PortInfo>, PortError> {
    let ports = serialport::available_ports().map_err(|e| PortError::Enumerate(e.to_string()))?;
    let mut out: Vec<PortInfo> = ports
        .into_iter()
        .map(|p| match p.port_type {
            SerialPortType::UsbPort(u) => PortInfo {
                path: p.port_name,
                kind: "usb",
                vid: Some(format!("{:04x}", u.vid)),
                pid: Some(format!("{:04x}", u.pid)),
                likely_board: board_kind(u.vid, u.pid),
                serial: u.serial_number,
                manufacturer: u.manufacturer,
                product: u.product,
            },
            other => PortInfo {
                path: p.port_name,
                kind: match other {
                    SerialPortType::PciPort => "pci",
                    SerialPortType::BluetoothPort => "bluetooth",
                    _ => "unknown",
                },
                vid: None,
                pid: None,
                serial: None,
                manufacturer: None,
                product: None,
                likely_board: None,
            },
        })
        .collect();
    out.sort_by(|a, b| b.likely_board.is_some().cmp(&a.likely_board.is_some()).then(a.path.cmp(&b.path)));
    Ok(out)
}

/// `--port`, with mpremote's names: `auto` (the first USB serial port), `a0`..`a99`
/// (/dev/ttyACM0..), `u0`..`u99` (/dev/ttyUSB0..), `c0`..`c99` (COM0..), `port:PATH`,
/// `id:SERIAL` (a USB serial number), or a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortSpec {
    Auto,
    Path(String),
    Serial(String),
}

/// The environment variable naming the port when `--port` is not given.
pub const PORT_ENV: &str = "HEAPSCOPE_PORT";

impl PortSpec {
    /// `--port`'s default: `HEAPSCOPE_PORT` if set, else `auto`.
    pub fn from_env() -> PortSpec {
        std::env::var(PORT_ENV).ok().filter(|v| !v.trim().is_empty()).map_or(PortSpec::Auto, |v| {
            v.trim().parse().unwrap_or(PortSpec::Path(v))
        })
    }
}

/// mpremote's short names: `a0` is /dev/ttyACM0, `u0` /dev/ttyUSB0, `c0` COM0.
fn short_name(s: &str) -> Option<String> {
    let (prefix, number) = s.split_at_checked(1)?;
    if number.is_empty() || number.len() > 2 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let base = match prefix {
        "a" => "/dev/ttyACM",
        "u" => "/dev/ttyUSB",
        "c" => "COM",
        _ => return None,
    };
    Some(format!("{base}{number}"))
}

impl std::str::FromStr for PortSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<PortSpec, String> {
        if let Some(path) = short_name(s) {
            return Ok(PortSpec::Path(path));
        }
        Ok(match s {
            "" => return Err("empty port".into()),
            "auto" => PortSpec::Auto,
            _ => {
                if let Some(path) = s.strip_prefix("port:") {
                    if path.is_empty() {
                        return Err("port: needs a path, e.g. port:/dev/ttyUSB0".into());
                    }
                    return Ok(PortSpec::Path(path.to_string()));
                }
                match s.strip_prefix("id:") {
                    Some(serial) if !serial.is_empty() => PortSpec::Serial(serial.to_string()),
                    Some(_) => return Err("id: needs a serial number, e.g. id:0001A2B3".into()),
                    None => PortSpec::Path(s.to_string()),
                }
            }
        })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSpec::Auto => f.write_str("auto"),
            PortSpec::Path(p) => f.write_str(p),
            PortSpec::Serial(s) => write!(f, "id:{s}"),
        }
    }
}

/// The path a spec names. `auto` does what mpremote does: the first USB serial port, those
/// whose USB id is a known board bridge first. A path is kept as given (a by-id link still
/// names the board after it comes back under another device name).
pub fn resolve(spec: &PortSpec) -> Result<String, PortError> {
    match spec {
        PortSpec::Path(p) => Ok(p.clone()),
        PortSpec::Auto => pick_auto(&list()?),
        PortSpec::Serial(serial) => {
            let ports = list()?;
            ports
                .iter()
                .find(|p| p.serial.as_deref() == Some(serial.as_str()))
                .map(|p| p.path.clone())
                .ok_or_else(|| PortError::NoSuchSerial {
                    serial: serial.clone(),
                    known: ports.iter().filter_map(|p| p.serial.clone().map(|s| format!("{} ({s})", p.path))).collect(),
                })
        }
    }
}

/// `auto` over a list of ports: the first USB port, known boards first.
fn pick_auto(ports: &[PortInfo]) -> Result<String, PortError> {
    let mut usb: Vec<&PortInfo> = ports.iter().filter(|p| p.kind == "usb").collect();
    usb.sort_by(|a, b| b.likely_board.is_some().cmp(&a.likely_board.is_some()).then(a.path.cmp(&b.path)));
    usb.first().map(|p| p.path.clone()).ok_or_else(|| PortError::NoBoard { others: ports.iter().map(|p| p.path.clone()).collect() })
}

/// What the system says about the port at `path` (a by-id link or the device itself): both
/// sides are compared after resolving links.
pub fn info(path: &str) -> Option<PortInfo> {
    list().ok()?.into_iter().find(|p| same_port(&p.path, path))
}

/// Whether two names are the same port: links such as `/dev/serial/by-id/...` are followed.
fn same_port(a: &str, b: &str) -> bool {
    let real = |p: &str| std::fs::canonicalize(p).unwrap_or_else(|_| p.into());
    a == b || real(a) == real(b)
}

/// Opening a port failed, or finding one.
#[derive(Debug)]
pub enum PortError {
    Enumerate(String),
    NoBoard { others: Vec<String> },
    NoSuchSerial { serial: String, known: Vec<String> },
    NotFound { path: String },
    Busy { path: String },
    PermissionDenied { path: String },
    Other { path: String, message: String },
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortError::Enumerate(e) => write!(f, "cannot list serial ports: {e}"),
            PortError::NoBoard { others } if others.is_empty() => {
                write!(f, "no board found: no serial ports at all. Is the board plugged in (and its USB cable a data cable)?")
            }
            PortError::NoBoard { others } => write!(
                f,
                "no USB serial port found (ports: {}). Name one with --port PATH (or set {PORT_ENV})",
                others.join(", ")
            ),
            PortError::NoSuchSerial { serial, known } if known.is_empty() => {
                write!(f, "no port with serial number {serial} (no port reports a serial number)")
            }
            PortError::NoSuchSerial { serial, known } => {
                write!(f, "no port with serial number {serial}; ports with serial numbers: {}", known.join(", "))
            }
            PortError::NotFound { path } => write!(f, "{path}: no such port. `heapscope ports` lists the ports there are"),
            PortError::Busy { path } => write!(
                f,
                "{path} is busy: another program has it open (a serial monitor, mpremote, an IDE?). Close it and try again"
            ),
            PortError::PermissionDenied { path } => write!(
                f,
                "{path}: permission denied. Add yourself to the port's group (usually `dialout`: sudo usermod -aG dialout $USER, then log in again)"
            ),
            PortError::Other { path, message } => write!(f, "{path}: {message}"),
        }
    }
}

impl std::error::Error for PortError {}

/// Line settings for opening a port.
#[derive(Clone, Copy, Debug)]
pub struct OpenOptions {
    pub baud: u32,
    /// Pulse the reset line (EN through RTS, as esptool does) after opening.
    pub reset: bool,
}

pub const DEFAULT_BAUD: u32 = 115_200;

pub(crate) fn classify_open_error(path: &str, e: serialport::Error) -> PortError {
    let path = path.to_string();
    let exists = Path::new(&path).exists();
    match e.kind {
        // serialport reports a terminal locked by another opener (EBUSY from TIOCEXCL, or a
        // held flock: "Unable to acquire exclusive lock") as NoDevice.
        serialport::ErrorKind::NoDevice if exists => PortError::Busy { path },
        _ if e.description.contains("busy") => PortError::Busy { path },
        serialport::ErrorKind::Io(io::ErrorKind::PermissionDenied) => PortError::PermissionDenied { path },
        _ if e.description.contains("Permission denied") => PortError::PermissionDenied { path },
        serialport::ErrorKind::Io(io::ErrorKind::NotFound) => PortError::NotFound { path },
        _ if !exists => PortError::NotFound { path },
        _ => PortError::Other { path, message: e.description },
    }
}

/// Times a busy port is tried again, 100 ms apart, before it is reported busy.
const BUSY_RETRIES: u32 = 5;

/// Opens a port without resetting the board (unless asked).
///
/// Opening a tty raises DTR and RTS together. On ESP32 boards those drive EN and IO0 through
/// two transistors: RTS up with DTR down holds the chip in reset. So RTS is dropped first, then
/// DTR: the board never sees that combination.
pub fn open(path: &str, options: OpenOptions) -> Result<Box<dyn SerialPort>, PortError> {
    if !Path::new(path).exists() {
        return Err(PortError::NotFound { path: path.to_string() });
    }
    // A port just closed can still read as busy for a moment: its lock lives until every copy
    // of the descriptor is closed, and a process forked meanwhile holds one until it execs.
    let mut tries = 0;
    let mut port = loop {
        match serialport::new(path, options.baud).timeout(Duration::from_millis(50)).open() {
            Ok(port) => break port,
            Err(e) => match classify_open_error(path, e) {
                PortError::Busy { .. } if tries < BUSY_RETRIES => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                e => return Err(e),
            },
        }
    };
    // Pseudo-terminals and some adapters have no modem lines: best effort.
    let _ = port.write_request_to_send(false);
    let _ = port.write_data_terminal_ready(false);
    if options.reset {
        reset(&mut *port);
    }
    Ok(port)
}

/// A hardware reset through the modem lines: EN low (RTS up, DTR down) for 100 ms.
pub fn reset(port: &mut dyn SerialPort) {
    let _ = port.write_data_terminal_ready(false);
    let _ = port.write_request_to_send(true);
    std::thread::sleep(Duration::from_millis(100));
    let _ = port.write_request_to_send(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn likely_board_is_always_a_string_in_json() {
        let port = |likely_board| PortInfo {
            path: "/dev/ttyS0".into(),
            kind: "unknown",
            vid: None,
            pid: None,
            serial: None,
            manufacturer: None,
            product: None,
            likely_board,
        };
        assert_eq!(serde_json::to_value(port(None)).unwrap()["likely_board"], "");
        assert_eq!(serde_json::to_value(port(Some("ESP32"))).unwrap()["likely_board"], "ESP32");
    }

    #[test]
    fn port_specs() {
        assert_eq!("auto".parse(), Ok(PortSpec::Auto));
        assert_eq!("/dev/ttyUSB0".parse(), Ok(PortSpec::Path("/dev/ttyUSB0".into())));
        assert_eq!("id:0001".parse(), Ok(PortSpec::Serial("0001".into())));
        assert!("id:".parse::<PortSpec>().is_err());
        // mpremote's names.
        assert_eq!("a0".parse(), Ok(PortSpec::Path("/dev/ttyACM0".into())));
        assert_eq!("a9".parse(), Ok(PortSpec::Path("/dev/ttyACM9".into())));
        assert_eq!("u0".parse(), Ok(PortSpec::Path("/dev/ttyUSB0".into())));
        assert_eq!("c0".parse(), Ok(PortSpec::Path("COM0".into())));
        assert_eq!("port:/dev/x".parse(), Ok(PortSpec::Path("/dev/x".into())));
        assert!("port:".parse::<PortSpec>().is_err());
        assert_eq!("ab".parse(), Ok(PortSpec::Path("ab".into())));
    }

    fn usb(path: &str, vid: u16, pid: u16) -> PortInfo {
        PortInfo {
            path: path.into(),
            kind: "usb",
            vid: Some(format!("{vid:04x}")),
            pid: Some(format!("{pid:04x}")),
            serial: None,
            manufacturer: None,
            product: None,
            likely_board: board_kind(vid, pid),
        }
    }

    #[test]
    fn auto_takes_the_first_usb_serial_port_known_boards_first() {
        let pci = PortInfo { kind: "pci", vid: None, pid: None, likely_board: None, ..usb("/dev/ttyS0", 0, 0) };
        // A micro:bit (0d28) or an Adafruit board (239a) is in no table: still the one USB port.
        assert_eq!(pick_auto(&[pci.clone(), usb("/dev/ttyACM0", 0x0d28, 0x0204)]).unwrap(), "/dev/ttyACM0");
        assert_eq!(pick_auto(&[usb("/dev/ttyACM1", 0x239a, 0x80f4), pci.clone()]).unwrap(), "/dev/ttyACM1");
        // With several, a known board bridge ranks first, then by name.
        assert_eq!(pick_auto(&[usb("/dev/ttyACM0", 0x0d28, 0x0204), usb("/dev/ttyUSB3", 0x10c4, 0xea60)]).unwrap(), "/dev/ttyUSB3");
        assert_eq!(pick_auto(&[usb("/dev/ttyACM2", 0x067b, 0x2303), usb("/dev/ttyACM1", 0x1a86, 0x55d3)]).unwrap(), "/dev/ttyACM1");
        assert!(matches!(pick_auto(&[pci]), Err(PortError::NoBoard { .. })));
    }

    #[test]
    fn known_boards_by_usb_id() {
        assert!(board_kind(0x10c4, 0xea60).unwrap().contains("CP210x"));
        assert!(board_kind(0x1a86, 0x55d4).is_some());
        assert!(board_kind(0x303a, 0x1001).unwrap().contains("JTAG"));
        assert!(board_kind(0x303a, 0x4001).unwrap().contains("native USB"), "any Espressif device");
        assert_eq!(board_kind(0x046d, 0xc52b), None, "a mouse receiver");
    }

    #[test]
    fn open_errors_are_named_for_what_the_user_can_do() {
        use serialport::{Error, ErrorKind};
        let here = "/dev/null";
        let busy = classify_open_error(here, Error::new(ErrorKind::NoDevice, "Device or resource busy"));
        assert!(matches!(busy, PortError::Busy { .. }), "{busy:?}");
        let locked = classify_open_error(here, Error::new(ErrorKind::NoDevice, "Unable to acquire exclusive lock on serial port"));
        assert!(locked.to_string().contains("another program has it open"), "{locked}");
        let denied = classify_open_error(here, Error::new(ErrorKind::Io(io::ErrorKind::PermissionDenied), "Permission denied"));
        assert!(denied.to_string().contains("dialout"), "{denied}");
        let gone = classify_open_error("/dev/ttyUSB-gone", Error::new(ErrorKind::NoDevice, "No such device"));
        assert!(matches!(gone, PortError::NotFound { .. }), "{gone:?}");
    }

    #[test]
    fn missing_port_says_so() {
        let err = open("/dev/heapscope-no-such-port", OpenOptions { baud: DEFAULT_BAUD, reset: false }).unwrap_err();
        assert!(matches!(err, PortError::NotFound { .. }));
        assert!(err.to_string().contains("heapscope ports"));
    }

    #[test]
    fn a_by_id_link_is_the_port_it_points_to() {
        let dir = std::env::temp_dir().join(format!("heapscope-by-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = dir.join("ttyACM0");
        std::fs::write(&port, b"").unwrap();
        let link = dir.join("usb-Espressif_USB_JTAG_serial_debug_unit-if00");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&port, &link).unwrap();
        assert!(same_port(port.to_str().unwrap(), link.to_str().unwrap()));
        assert!(!same_port(port.to_str().unwrap(), "/dev/ttyUSB9"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
