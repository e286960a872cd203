//! `heapscope dump`: a heap dump from a board, to a file.

use std::io::Write;

use heapscope_objects::{Analysis, HeapDump};
use heapscope_protocol::wire::demux::Demux;
use serde_json::json;

use crate::cli::DumpArgs;
use crate::exit::{file_error, CliError};
use crate::heapdump::{self, DumpError};
use crate::human::thousands;
use crate::link::{Link, Opener, PathOpener};
use crate::port::{self, OpenOptions};
use crate::repl::RawRepl;

impl From<DumpError> for CliError {
    fn from(e: DumpError) -> CliError {
        CliError::Io(e.to_string())
    }
}

/// Takes a dump over a link to a board at its REPL and leaves the board at its prompt.
pub fn take(link: &mut dyn Link, progress: &mut dyn FnMut(usize, usize)) -> Result<HeapDump, CliError> {
    let mut demux = Demux::new();
    let mut repl = RawRepl::new(link, &mut demux);
    repl.enter()?;
    let dump = heapdump::take(&mut repl, progress);
    // Back to the prompt even when the dump failed.
    let left = repl.leave();
    let dump = dump?;
    left?;
    Ok(dump)
}

pub fn run(args: &DumpArgs) -> Result<(), CliError> {
    super::check_output(&args.output, args.force)?;
    let path = port::resolve(&args.device.port)?;
    let mut opener = PathOpener { path: path.clone(), options: OpenOptions { baud: args.device.baud, reset: args.device.reset } };
    let mut link = opener.open()?;
    eprintln!("{path}: entering the raw REPL (this stops any program running on the board)");
    let started = std::time::Instant::now();
    let mut progress = |done: usize, total: usize| {
        eprint!("\rreading the heap: {} of {} bytes", thousands(done as u64), thousands(total as u64));
        let _ = std::io::stderr().flush();
    };
    let dump = take(&mut *link, &mut progress)?;
    eprintln!();
    let seconds = started.elapsed().as_secs_f64();
    std::fs::write(&args.output, dump.to_json()).map_err(|e| file_error(&args.output, e))?;
    let analysis = Analysis::new(&dump);
    let summary = json!({
        "file": args.output.display().to_string(),
        "word_size": dump.word_size,
        "content_bytes": dump.content_bytes(),
        "objects": analysis.objects.len(),
        "roots": analysis.roots.len(),
        "names": dump.names.len(),
        "unreliable_blocks": dump.unreliable_blocks(),
        "seconds": seconds,
    });
    if args.json {
        crate::outln!("{}", serde_json::to_string_pretty(&summary).expect("summary serialises"))?;
    } else {
        crate::outln!(
            "{}: {} bytes of heap in {} objects, {} names, {} unreliable blocks, {:.1} s",
            args.output.display(),
            thousands(dump.content_bytes() as u64),
            thousands(analysis.objects.len() as u64),
            dump.names.len(),
            dump.unreliable_blocks(),
            seconds
        )?;
    }
    Ok(())
}
