//! `cargo bench -p heapscope-tests --bench objects`:
//! - who-holds-what analysis of a 4 MB heap (262,144 blocks, about 40,000 objects), its time
//!   and its peak memory, beside reading every word of the same dump once and loading the dump
//!   file, measured in the same run;
//! - a stock-firmware dump (raw REPL) of a half-used ~119 KB heap of the real interpreter
//!   behind the tests' UART-like cable at 115200 baud (11,520 B/s each way, a 256-byte receive
//!   buffer): the bytes it puts on the line each way, counted, and the seconds it took, against
//!   the heap bytes it reads and the seconds those alone take at the line's rate.
//!
//! - the same dump from the module build (`heapscope.dump()`, 32-bit, a 119,360-byte heap), its
//!   bytes and seconds against its heap bytes and against the stock dump's.
//!
//! Prints figures; asserts nothing about time.

use std::hint::black_box;

use heapscope::link::{Gone, Link, Opener, PathOpener};
use heapscope::port::OpenOptions;
use heapscope_objects::{synth, Analysis, HeapDump};
use heapscope_tests::best_of;
use heapscope_tests::board::PtyBoard;
use heapscope_tests::cable::CableSpec;
use heapscope_tests::counting::{measure, Counting};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    analysis();
    line();
}

/// A link that counts what passes each way.
struct CountingLink {
    inner: Box<dyn Link>,
    read: usize,
    written: usize,
}

impl Link for CountingLink {
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, Gone> {
        let n = self.inner.read_some(buf)?;
        self.read += n;
        Ok(n)
    }

    fn write_all(&mut self, data: &[u8]) -> Result<(), Gone> {
        self.written += data.len();
        self.inner.write_all(data)
    }
}

/// What one dump of a half-used heap over the 115200-baud cable cost.
struct LineDump {
    pool: u64,
    heap: usize,
    read: usize,
    written: usize,
    seconds: f64,
    source: String,
}

/// Fills a heap of `interpreter` to half its pool with live objects, then takes a dump as
/// `heapscope dump` does (the module when the firmware has it, else the raw REPL).
fn line_dump(interpreter: &std::path::Path, heapsize: &str, pool: u64) -> LineDump {
    let board = PtyBoard::start_on(interpreter, &["-X", heapsize], CableSpec::uart(115_200));
    let mut opener = PathOpener { path: board.port(), options: OpenOptions { baud: 115_200, reset: false } };
    let open = |opener: &mut PathOpener| CountingLink { inner: opener.open().expect("open the board"), read: 0, written: 0 };
    let mut link = open(&mut opener);
    {
        let mut demux = heapscope_protocol::wire::demux::Demux::new();
        let mut repl = heapscope::repl::RawRepl::new(&mut link, &mut demux);
        repl.enter().unwrap();
        // Live objects up to half the pool (checked after collections, so garbage is not counted).
        let fill = format!("import gc\nkeep = []\nwhile True:\n gc.collect()\n if gc.mem_alloc() >= {pool} // 2:\n  break\n for _ in range(10):\n  keep.append((str(len(keep)) * 30, bytearray(64), [len(keep)] * 4))\ngc.collect()\nprint(gc.mem_alloc(), gc.mem_free())\n");
        let out = repl.exec(&fill, std::time::Duration::from_secs(60)).unwrap();
        assert!(!out.failed(), "{}", String::from_utf8_lossy(&out.stderr));
        repl.leave().unwrap();
    }
    drop(link);
    let mut link = open(&mut opener);
    let started = std::time::Instant::now();
    let dump = heapscope::cmd::dump::take(&mut link, &mut |_, _| {}).expect("a dump");
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(board.cable_stats().dropped, 0, "the board's receive buffer overflowed");
    LineDump {
        pool: dump.areas[0].area.pool_bytes(),
        heap: dump.content_bytes(),
        read: link.read,
        written: link.written,
        seconds,
        source: dump.source,
    }
}

fn print_line_dump(title: &str, d: &LineDump) {
    let heap = d.heap;
    println!("{title} of a half-used {}-byte heap ({} dump, behind a 115200-baud cable)", d.pool, d.source);
    println!("  heap bytes (used blocks):                 {heap:>8}");
    println!("  line bytes, board to host:                {:>8}   {:.2}x the heap bytes", d.read, d.read as f64 / heap as f64);
    println!("  line bytes, host to board:                {:>8}   {:.2}x the heap bytes", d.written, d.written as f64 / heap as f64);
    println!(
        "  took {:.1} s   {:.2}x the heap bytes alone at 11,520 B/s ({:.1} s; all the line bytes at that rate: {:.1} s)",
        d.seconds,
        d.seconds / (heap as f64 / 11_520.0),
        heap as f64 / 11_520.0,
        (d.read + d.written) as f64 / 11_520.0
    );
}

fn line() {
    // -X heapsize=120800 gives a pool of 119,296 bytes on the stock 64-bit build (the closest to
    // an ESP32's 119,360 its 128-byte table granularity allows); the module build is 32-bit, like
    // an ESP32, and -X heapsize=122160 gives exactly 119,360. Its words are half as wide, so the
    // same objects take fewer heap bytes: compare each with its own heap bytes.
    let stock = line_dump(&heapscope_tests::board::micropython(), "heapsize=120800", 119_296);
    print_line_dump("stock dump through the raw REPL", &stock);
    let module = line_dump(&heapscope_tests::firmware::unix_micropython(), "heapsize=122160", 119_360);
    print_line_dump("module dump (heapscope.dump(), SPEC 3.7)", &module);
    let per_heap_byte = |d: &LineDump| (d.read + d.written) as f64 / d.heap as f64;
    println!(
        "  module against stock: {:.2}x the line bytes per heap byte, {:.2}x the seconds per heap byte",
        per_heap_byte(&module) / per_heap_byte(&stock),
        (module.seconds / module.heap as f64) / (stock.seconds / stock.heap as f64)
    );
}

fn analysis() {
    let dump = synth::program_heap(11, 262_144, 85, 40_000);
    let blocks = dump.areas[0].area.blocks();
    let file = dump.to_json();

    let words = best_of(5, || {
        let mut sum = 0u64;
        for r in &dump.memory {
            for w in r.bytes.chunks_exact(4) {
                sum = sum.wrapping_add(u64::from(u32::from_le_bytes(w.try_into().unwrap())));
            }
        }
        black_box(sum);
    });
    let load = best_of(3, || {
        black_box(HeapDump::from_json(black_box(file.as_bytes())).unwrap());
    });

    // What the analysis takes of the heap at its peak, and keeps.
    let (analysis, peak, kept) = measure(|| Analysis::new(&dump));
    let objects = analysis.objects.len();
    let references: usize = (0..objects as u32).map(|i| analysis.references(i).len()).sum();
    drop(analysis);
    let analyse = best_of(3, || {
        black_box(Analysis::new(black_box(&dump)));
    });

    println!(
        "objects analysis of a {blocks}-block heap ({} MB, {} bytes of used blocks, {objects} objects, {references} references, {} named roots; dump file {} bytes)",
        blocks * 16 / (1024 * 1024),
        dump.content_bytes(),
        dump.names.len(),
        file.len()
    );
    println!("  read every used word once (baseline):     {words:>10.2?}");
    println!("  load the dump file (JSON, base64):        {load:>10.2?}   {:.1}x the baseline", load.as_secs_f64() / words.as_secs_f64());
    println!(
        "  analyse (objects, references, dominators, retained, paths): {analyse:>10.2?}   {:.1}x the baseline",
        analyse.as_secs_f64() / words.as_secs_f64()
    );
    println!(
        "  memory of the analysis: peak {:.1} MB, kept {:.1} MB (the dump itself: {:.1} MB)",
        peak as f64 / 1e6,
        kept as f64 / 1e6,
        dump.content_bytes() as f64 / 1e6
    );
}
