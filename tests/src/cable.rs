//! A serial cable for tests, between the port the tool opens and a board's pseudo-terminal.
//!
//! Real boards sit behind a UART: at 115200 baud 8N1 a byte is 10 bits, so the line carries
//! 11,520 B/s each way, and the board keeps what has arrived in a small receive buffer (a FIFO
//! and a ring buffer of a few hundred bytes) until its software reads it. A byte that arrives
//! while that buffer is full is lost. A pseudo-terminal has neither limit, so without this cable a
//! test would never see what a UART does to a tool that writes too much at once.
//!
//! [`CableSpec`] says what the line is like: [`CableSpec::DIRECT`] (as fast as the ptys go,
//! nothing lost, like USB CDC) or [`CableSpec::uart`] (paced, with a dropping receive buffer of
//! [`CableSpec::with_rx_buffer`] bytes). [`Cable::connect`] starts a thread that carries bytes;
//! [`Cable::plug_in`] gives it a new host-side pseudo-terminal (what the tool opens) and
//! [`Cable::unplug`] pulls it; [`Cable::stats`] counts what was carried and what was dropped.
//!
//! The board's receive buffer is what the interpreter has not yet read from its pseudo-terminal
//! (`FIONREAD` on its slave; the stock unix port reads stdin a byte at a time): a byte is
//! delivered only while fewer than `rx_buffer` bytes are waiting unread, otherwise it is dropped
//! and counted, as a UART FIFO does while the board is busy compiling or running code.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serialport::{SerialPort, TTYPort};

/// What a line between the tool and a board is like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CableSpec {
    /// Bytes per second in each direction; `None`: as fast as the pseudo-terminals go.
    pub bytes_per_sec: Option<u32>,
    /// The board's receive buffer in bytes: what arrives while this many wait unread is
    /// dropped. `None`: unbounded, nothing dropped.
    pub rx_buffer: Option<usize>,
}

impl CableSpec {
    /// No pacing, no loss: a USB CDC board, or the pty as it is.
    pub const DIRECT: CableSpec = CableSpec { bytes_per_sec: None, rx_buffer: None };

    /// The usual receive buffer of a MicroPython UART REPL (ESP32's stdin ring buffer).
    pub const UART_RX_BUFFER: usize = 256;

    /// A UART at `baud` 8N1 (10 bits a byte: 115200 baud = 11,520 B/s each way) with the usual
    /// receive buffer ([`CableSpec::UART_RX_BUFFER`]).
    pub const fn uart(baud: u32) -> CableSpec {
        CableSpec { bytes_per_sec: Some(baud / 10), rx_buffer: Some(CableSpec::UART_RX_BUFFER) }
    }

    /// The same line with a receive buffer of `bytes`.
    pub const fn with_rx_buffer(self, bytes: usize) -> CableSpec {
        CableSpec { rx_buffer: Some(bytes), ..self }
    }
}

/// What a cable has carried so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CableStats {
    /// Bytes from the tool that reached the board.
    pub to_board: u64,
    /// Bytes from the tool lost because the board's receive buffer was full.
    pub dropped: u64,
    /// Bytes from the board that reached the tool's end (lost while unplugged are not counted).
    pub to_host: u64,
}

/// The tool's end of the cable: a pseudo-terminal whose slave the tool opens as its port.
struct HostEnd {
    master: TTYPort,
    /// Held so the host end stays open (and buffers) before the tool opens it.
    _slave: TTYPort,
}

struct Shared {
    host: Mutex<Option<HostEnd>>,
    stats: Mutex<CableStats>,
    /// Everything the board wrote, plugged in or not.
    transcript: Mutex<Vec<u8>>,
    stop: AtomicBool,
}

/// A cable carrying bytes between a board's pseudo-terminal and the tool's, on its own thread.
pub struct Cable {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Cable {
    /// Connects a cable to a board: `board` is the master of the interpreter's pseudo-terminal,
    /// `board_input` its slave (held to measure what the interpreter has not read yet). The
    /// cable starts unplugged at the tool's end.
    pub fn connect(board: TTYPort, board_input: TTYPort, spec: CableSpec) -> Cable {
        let shared = Arc::new(Shared {
            host: Mutex::new(None),
            stats: Mutex::new(CableStats::default()),
            transcript: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::spawn(move || carry(board, board_input, spec, &shared))
        };
        Cable { shared, thread: Some(thread) }
    }

    /// Plugs a new tool end in (a fresh pseudo-terminal, as a replugged USB device is a new
    /// device) and returns the path the tool opens.
    pub fn plug_in(&self) -> PathBuf {
        let (mut master, slave) = pty_pair();
        master.set_timeout(Duration::from_millis(5)).expect("set a timeout on the pty");
        let name = PathBuf::from(slave.name().expect("the pty has a name"));
        *self.shared.host.lock().unwrap() = Some(HostEnd { master, _slave: slave });
        name
    }

    /// Pulls the cable at the tool's end: its pseudo-terminal closes; what the board writes
    /// meanwhile is lost, as on a real line.
    pub fn unplug(&self) {
        *self.shared.host.lock().unwrap() = None;
    }

    /// What the cable has carried and dropped so far.
    pub fn stats(&self) -> CableStats {
        *self.shared.stats.lock().unwrap()
    }

    /// Everything the board wrote since it started.
    pub fn transcript(&self) -> Vec<u8> {
        self.shared.transcript.lock().unwrap().clone()
    }
}

impl Drop for Cable {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A pseudo-terminal pair whose descriptors no child process inherits (serialport opens them
/// without `O_CLOEXEC`): a copy left in a spawned tool would keep a pulled cable's end open.
pub fn pty_pair() -> (TTYPort, TTYPort) {
    let (master, slave) = TTYPort::pair().expect("a pseudo-terminal pair");
    for fd in [master.as_raw_fd(), slave.as_raw_fd()] {
        // SAFETY: F_SETFD on a descriptor we own.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }, 0, "set FD_CLOEXEC");
    }
    (master, slave)
}

/// Bytes a direction may carry now: the line's pace, with at most 4 ms of unused time saved up,
/// so bytes arrive in small bursts as they would one by one on a wire (a loaded test machine
/// makes the line slower, never faster).
struct Pace {
    per_sec: Option<f64>,
    credit: f64,
    last: Instant,
}

impl Pace {
    fn new(bytes_per_sec: Option<u32>) -> Pace {
        Pace { per_sec: bytes_per_sec.map(f64::from), credit: 0.0, last: Instant::now() }
    }

    fn available(&mut self, now: Instant) -> usize {
        let Some(rate) = self.per_sec else { return usize::MAX };
        let saved = (rate / 250.0).max(1.0);
        self.credit = (self.credit + now.saturating_duration_since(self.last).as_secs_f64() * rate).min(saved);
        self.last = now;
        self.credit as usize
    }

    fn spend(&mut self, n: usize) {
        if self.per_sec.is_some() {
            self.credit -= n as f64;
        }
    }
}

/// The board's receive buffer: what the interpreter has not read yet.
///
/// Bytes go into the interpreter's input queue with `TIOCSTI` on its slave, which puts them
/// there at once, so the queue's length (`FIONREAD`) is exact. Where `TIOCSTI` is refused
/// (kernels built without it, no `CAP_SYS_ADMIN`), bytes are written to the master instead; the
/// kernel moves those on a worker thread, so the length may lag and the buffer can hold a
/// little more than its size.
struct RxBuffer {
    tty: TTYPort,
    size: Option<usize>,
    inject: bool,
}

impl RxBuffer {
    /// Bytes waiting unread in the interpreter's input queue.
    fn unread(&self) -> usize {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int through the pointer; the fd is open for `tty`'s life.
        let rc = unsafe { libc::ioctl(self.tty.as_raw_fd(), libc::FIONREAD, &mut n) };
        if rc == 0 { n.max(0) as usize } else { 0 }
    }

    /// How many bytes may arrive now without overflowing.
    fn room(&self) -> usize {
        self.size.map_or(usize::MAX, |size| size.saturating_sub(self.unread()))
    }

    /// Puts `bytes` into the interpreter's input queue; false if the board end is gone.
    fn deliver(&mut self, board: &mut TTYPort, bytes: &[u8]) -> bool {
        if self.inject && self.size.is_some() {
            for (i, b) in bytes.iter().enumerate() {
                // SAFETY: TIOCSTI reads one byte through the pointer; the fd is open.
                if unsafe { libc::ioctl(self.tty.as_raw_fd(), libc::TIOCSTI, b as *const u8) } != 0 {
                    self.inject = false;
                    return self.deliver(board, &bytes[i..]);
                }
            }
            return true;
        }
        board.write_all(bytes).is_ok()
    }
}

/// Waits up to `timeout` for input on the given fds; returns which are readable (or hung up).
fn wait_readable(fds: &[Option<i32>], timeout: Duration) -> Vec<bool> {
    let mut polls: Vec<libc::pollfd> =
        fds.iter().map(|fd| libc::pollfd { fd: fd.unwrap_or(-1), events: libc::POLLIN, revents: 0 }).collect();
    // SAFETY: `polls` is a valid array of `polls.len()` pollfd structs; negative fds are ignored.
    let rc = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, timeout.as_millis() as libc::c_int) };
    polls.iter().map(|p| rc > 0 && p.revents != 0).collect()
}

fn carry(mut board: TTYPort, board_input: TTYPort, spec: CableSpec, shared: &Shared) {
    board.set_timeout(Duration::from_millis(5)).expect("set a timeout on the pty");
    let mut to_host = Pace::new(spec.bytes_per_sec);
    let mut to_board = Pace::new(spec.bytes_per_sec);
    let mut rx = RxBuffer { tty: board_input, size: spec.rx_buffer, inject: true };
    let mut buf = vec![0u8; 4096];
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let (up, down) = (to_host.available(now), to_board.available(now));
        if up == 0 && down == 0 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let host_fd = shared.host.lock().unwrap().as_ref().map(|h| h.master.as_raw_fd());
        let ready = wait_readable(&[(up > 0).then(|| board.as_raw_fd()), host_fd.filter(|_| down > 0)], Duration::from_millis(2));

        // Board to tool. A read error means the interpreter has exited: nothing more comes.
        if ready[0] {
            match board.read(&mut buf[..up.min(4096)]) {
                Ok(n) if n > 0 => {
                    to_host.spend(n);
                    shared.transcript.lock().unwrap().extend_from_slice(&buf[..n]);
                    if let Some(h) = shared.host.lock().unwrap().as_mut() {
                        if h.master.write_all(&buf[..n]).is_ok() {
                            shared.stats.lock().unwrap().to_host += n as u64;
                        }
                    }
                }
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }

        // Tool to board, into the board's receive buffer; what overflows it is lost.
        if ready[1] {
            let read = match shared.host.lock().unwrap().as_mut() {
                Some(h) => h.master.read(&mut buf[..down.min(4096)]).unwrap_or(0),
                None => 0,
            };
            if read > 0 {
                to_board.spend(read);
                let room = rx.room().min(read);
                let delivered = rx.deliver(&mut board, &buf[..room]);
                let mut stats = shared.stats.lock().unwrap();
                if delivered {
                    stats.to_board += room as u64;
                }
                stats.dropped += (read - room) as u64;
            }
        }
    }
}
