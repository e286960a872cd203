//! Taking a heap dump through the raw REPL: from the heapscope module when the firmware has it
//! (`heapscope.dump()`, SPEC 3.7: one burst of frames, the heap held still while it runs, the
//! roots as the GC sees them), otherwise from stock firmware as below.
//!
//! Stock firmware:
//!
//! 1. A probe: is `uctypes` there (it reads memory by address), and the word size.
//! 2. Names: `id()` of the built-in types, every `sys.modules` entry and `__main__`, their globals
//!    (and the attributes of classes among them), with their `id()`s. Run inside a function that
//!    is deleted again, before the layout is taken, so its garbage is collected.
//! 3. `gc.collect()` and the layout (`mem_info(1)`): the used blocks and what they are.
//! 4. The used blocks' contents, with `uctypes.bytearray_at` and `binascii.b2a_base64` (the raw
//!    REPL ends output at 0x04; base64 never holds it), a few KB per command for progress. These
//!    commands store no globals, so the heap's own tables do not grow: what they allocate goes
//!    into blocks that were free and are not read.
//! 5. The layout again. A block that was used and changed kind in between (freed by a
//!    collection the dump's own garbage set off, say) is marked unreliable.

use std::fmt;
use std::time::Duration;

use heapscope_objects::dump::{changed_runs, DumpArea, HeapDump, MemoryRange, Named};
use heapscope_objects::base64;
use heapscope_protocol::wire::demux::Item;
use heapscope_protocol::wire::dump::{DumpPart, NameKind};
use heapscope_protocol::wire::session::{Session, Update};
use heapscope_protocol::wire::Body;
use heapscope_protocol::{text, BlockKind, Snapshot};

use crate::repl::{ExecOutput, RawRepl, ReplError};

#[derive(Debug)]
pub enum DumpError {
    Repl(ReplError),
    /// The firmware has no `uctypes`: stock firmware cannot read its heap without it.
    NoUctypes,
    /// The board raised, or printed what the dump cannot use.
    Board(String),
}

impl fmt::Display for DumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DumpError::Repl(e) => write!(f, "{e}"),
            DumpError::NoUctypes => write!(
                f,
                "this firmware has no `uctypes` module, so its heap cannot be read from Python. \
                 Build it with MICROPY_PY_UCTYPES (esp32, rp2 and unix enable it), or use the heapscope firmware module"
            ),
            DumpError::Board(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for DumpError {}

impl From<ReplError> for DumpError {
    fn from(e: ReplError) -> DumpError {
        DumpError::Repl(e)
    }
}

/// Heap bytes read per line of base64 (a multiple of 3: no padding inside a range).
const CHUNK: usize = 384;
/// Heap bytes per command: about half a second of a 115200-baud line, for steady progress.
const PER_EXEC: usize = 16 * CHUNK;

const PROBE: &str = "\
def _hs():
 import sys
 try:
  import heapscope
  print('HS module', hasattr(heapscope, 'dump'))
 except ImportError:
  pass
 try:
  import uctypes, binascii
 except ImportError:
  print('HS nouctypes')
  return
 print('HS ok', 8 if sys.maxsize > 1 << 32 else 4)
_hs()
del _hs
";

const NAMES: &str = "\
def _hs():
 import sys, builtins, __main__
 def t(n, f):
  try:
   print('T', n, id(f()))
  except Exception:
   pass
 for n in ('type', 'object', 'list', 'dict', 'str', 'bytes', 'bytearray', 'tuple', 'set', 'frozenset', 'int', 'float', 'range', 'memoryview', 'slice', 'property', 'staticmethod', 'classmethod', 'complex'):
  t(n, lambda: getattr(builtins, n))
 def o():
  x = 1
  def i():
   return x
  return i
 class K:
  def m(self):
   pass
 t('module', lambda: type(sys))
 t('function', lambda: type(o))
 t('closure', lambda: type(o()))
 t('bound_method', lambda: type(K().m))
 t('generator', lambda: type((lambda: (yield))()))
 def a():
  import array
  return array.array
 t('array', a)
 ms = [('__main__', __main__)] + list(sys.modules.items())
 for n, m in ms:
  print('M', n, id(m))
 for n, m in ms:
  for k, v in m.__dict__.items():
   if not str(k).startswith('_hs'):
    print('G', n, k, id(v))
    if type(v) is type:
     for ck, cv in v.__dict__.items():
      print('G', n, str(k) + '.' + str(ck), id(cv))
_hs()
del _hs
";

const BEFORE: &str = "import gc, micropython\ngc.collect()\nmicropython.mem_info(1)\nprint('HS free', gc.mem_free())\n";
const AFTER: &str = "micropython.mem_info(1)\n";

fn exec(repl: &mut RawRepl<'_>, code: &str, what: &str) -> Result<ExecOutput, DumpError> {
    let out = repl.exec(code, Duration::from_secs(60))?;
    if out.failed() {
        return Err(DumpError::Board(format!("the board raised while {what}: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(out)
}

fn layout(out: &ExecOutput, what: &str) -> Result<Snapshot, DumpError> {
    let snapshot = text::parse(&out.stdout).0.pop().map(|d| d.snapshot);
    snapshot.filter(Snapshot::has_layout).ok_or_else(|| {
        DumpError::Board(format!("no mem_info(1) layout {what}: {:?}", String::from_utf8_lossy(&out.stdout)))
    })
}

/// `id()` as a 32-bit board prints an address at or above 0x40000000: negative.
fn address(id: &str, word_size: u32) -> Option<u64> {
    let v: i128 = id.trim().parse().ok()?;
    let v = if v < 0 { v + (1i128 << (8 * word_size)) } else { v };
    u64::try_from(v).ok()
}

/// Parses the names command's output into (types, names): `T name id`, `M module id`,
/// `G module key id`. Globals of `__main__` are named bare (`x`), others `module.key`.
pub fn parse_names(stdout: &[u8], word_size: u32) -> (Vec<Named>, Vec<Named>) {
    let (mut types, mut modules, mut globals) = (Vec::new(), Vec::new(), Vec::new());
    for line in String::from_utf8_lossy(stdout).lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["T", name, id] => types.extend(address(id, word_size).map(|a| Named::new(*name, a))),
            ["M", name, id] => modules.extend(address(id, word_size).map(|a| Named::new(*name, a))),
            ["G", module, key @ .., id] if !key.is_empty() => {
                let key = key.join(" ");
                let name = if *module == "__main__" { key } else { format!("{module}.{key}") };
                globals.extend(address(id, word_size).map(|a| Named::new(name, a)));
            }
            _ => {}
        }
    }
    // Modules first: a global that is a module (`import gc` inside `app`) keeps the module's name.
    modules.append(&mut globals);
    (types, modules)
}

/// The used ranges of a layout: (address, bytes) for each run of used blocks.
fn used_ranges(snapshot: &Snapshot) -> Vec<(u64, usize)> {
    let mut ranges = Vec::new();
    for area in &snapshot.areas {
        let bs = area.block_size() as usize;
        for run in area.kinds().runs() {
            if run.kind == BlockKind::Free {
                continue;
            }
            let address = area.address_of(run.start);
            match ranges.last_mut() {
                Some((a, n)) if *a + *n as u64 == address => *n += run.len * bs,
                _ => ranges.push((address, run.len * bs)),
            }
        }
    }
    ranges
}

/// The command that prints `chunks` as base64 lines. An expression: it binds no global.
fn read_command(chunks: &[(u64, usize)]) -> String {
    let list: String = chunks.iter().map(|(a, n)| format!("(0x{a:x},{n}),")).collect();
    format!(
        "(lambda a,b,w:[w(b(a(x,n))) for x,n in ({list})])(__import__('uctypes').bytearray_at,__import__('binascii').b2a_base64,__import__('sys').stdout.write)\n"
    )
}

/// Takes a dump from stock firmware through `uctypes`, `probe_text` being what the board
/// answered to [`PROBE`]. The board must be in the raw REPL; it is left there.
/// `progress(done, total)` counts heap bytes read.
fn take_stock(repl: &mut RawRepl<'_>, probe_text: &str, progress: &mut dyn FnMut(usize, usize)) -> Result<HeapDump, DumpError> {
    if probe_text.contains("HS nouctypes") {
        return Err(DumpError::NoUctypes);
    }
    let word_size = probe_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("HS ok ").and_then(|w| w.trim().parse::<u32>().ok()))
        .ok_or_else(|| DumpError::Board(format!("unexpected answer to the probe: {probe_text:?}")))?;
    let names = exec(repl, NAMES, "listing modules and globals")?;
    let (types, names) = parse_names(&names.stdout, word_size);

    let before_out = exec(repl, BEFORE, "taking the layout")?;
    let before = layout(&before_out, "before the dump")?;
    let mem_free = String::from_utf8_lossy(&before_out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("HS free ").and_then(|n| n.trim().parse().ok()));

    let ranges = used_ranges(&before);
    let total: usize = ranges.iter().map(|r| r.1).sum();
    let mut chunks = Vec::new();
    for &(address, len) in &ranges {
        let mut offset = 0;
        while offset < len {
            let n = CHUNK.min(len - offset);
            chunks.push((address + offset as u64, n));
            offset += n;
        }
    }
    let mut memory: Vec<MemoryRange> = Vec::new();
    let mut done = 0;
    progress(0, total);
    let mut i = 0;
    while i < chunks.len() {
        let mut j = i;
        let mut bytes = 0;
        while j < chunks.len() && (j == i || bytes + chunks[j].1 <= PER_EXEC) {
            bytes += chunks[j].1;
            j += 1;
        }
        let out = exec(repl, &read_command(&chunks[i..j]), "reading the heap")?;
        let lines: Vec<&[u8]> = out.stdout.split(|&b| b == b'\n').map(|l| l.trim_ascii()).filter(|l| !l.is_empty()).collect();
        if lines.len() != j - i {
            return Err(DumpError::Board(format!(
                "reading {} chunks from 0x{:x} gave {} lines of output",
                j - i,
                chunks[i].0,
                lines.len()
            )));
        }
        for (line, &(address, n)) in lines.iter().zip(&chunks[i..j]) {
            let bytes = base64::decode(line)
                .map_err(|at| DumpError::Board(format!("the chunk at 0x{address:x} is not base64 (character {at})")))?;
            if bytes.len() != n {
                return Err(DumpError::Board(format!("the chunk at 0x{address:x} has {} bytes, not {n}", bytes.len())));
            }
            match memory.last_mut() {
                Some(r) if r.address + r.bytes.len() as u64 == address => r.bytes.extend_from_slice(&bytes),
                _ => memory.push(MemoryRange { address, bytes }),
            }
        }
        done += bytes;
        progress(done, total);
        i = j;
    }

    let after = layout(&exec(repl, AFTER, "taking the layout again")?, "after the dump")?;
    let areas = before
        .areas
        .into_iter()
        .map(|area| {
            let changed = match after.areas.iter().find(|a| a.pool_start() == area.pool_start() && a.blocks() == area.blocks()) {
                Some(later) => changed_runs(area.kinds(), later.kinds()),
                // The area went away (a split heap shrank) or was resized: nothing in it holds.
                None => vec![(0, area.blocks())],
            };
            // Only blocks that were used matter: blocks free before are not in the dump.
            let mut unreliable: Vec<(usize, usize)> = Vec::new();
            for (start, len) in changed {
                for b in start..start + len {
                    if area.kinds().get(b) != BlockKind::Free {
                        match unreliable.last_mut() {
                            Some((s, n)) if *s + *n == b => *n += 1,
                            _ => unreliable.push((b, 1)),
                        }
                    }
                }
            }
            DumpArea { area, unreliable }
        })
        .collect();
    Ok(HeapDump { word_size, source: "raw-repl".into(), areas, memory, types, names, roots: Vec::new(), mem_free })
}

/// Takes a dump with the heapscope module when the firmware has `heapscope.dump()`, through
/// `uctypes` otherwise. The board must be in the raw REPL; it is left there.
pub fn take(repl: &mut RawRepl<'_>, progress: &mut dyn FnMut(usize, usize)) -> Result<HeapDump, DumpError> {
    let probe = exec(repl, PROBE, "probing for the heapscope module and uctypes")?;
    let probe_text = String::from_utf8_lossy(&probe.stdout).into_owned();
    if probe_text.contains("HS module True") {
        take_module(repl, progress)
    } else {
        take_stock(repl, &probe_text, progress)
    }
}

/// Collects a dump from the frames of `heapscope.dump()`.
#[derive(Default)]
pub struct ModuleDump {
    session: Session,
    begin: Option<(u32, u64)>,
    /// Frames of the dump seen so far (Begin counts; the keyframe in it too).
    frames: u32,
    layout: Option<Snapshot>,
    /// Bytes of used blocks in the layout: what the blocks frames will bring.
    used_bytes: usize,
    memory: Vec<MemoryRange>,
    blocks: u64,
    types: Vec<Named>,
    modules: Vec<Named>,
    globals: Vec<Named>,
    classes: Vec<Named>,
    roots: Vec<Named>,
    end: Option<(u32, u64)>,
    pub corrupt: u64,
}

impl ModuleDump {
    pub fn new() -> ModuleDump {
        ModuleDump { session: Session::new(), ..ModuleDump::default() }
    }

    /// Takes the frames among `items`.
    pub fn push(&mut self, items: Vec<Item>) -> Result<(), DumpError> {
        for item in items {
            let frame = match item {
                Item::Frame(f) => f,
                Item::Corrupt(_) => {
                    self.corrupt += 1;
                    continue;
                }
                Item::Text(_) => continue,
            };
            let in_dump = self.begin.is_some() && self.end.is_none();
            let update = self.session.apply(&frame).map_err(|e| DumpError::Board(format!("dump frame {}: {e}", frame.seq)))?;
            match update {
                Update::Dump(DumpPart::Begin { word_size, mem_free, .. }) => {
                    *self = ModuleDump { session: std::mem::take(&mut self.session), corrupt: self.corrupt, ..ModuleDump::default() };
                    self.begin = Some((word_size, mem_free));
                    self.frames = 1;
                }
                _ if !in_dump => {}
                Update::Snapshot(s) if self.layout.is_none() && matches!(frame.body, Body::Keyframe(_)) => {
                    self.frames += 1;
                    self.used_bytes = s
                        .areas
                        .iter()
                        .map(|a| a.kinds().iter().filter(|&k| k != BlockKind::Free).count() * a.block_size() as usize)
                        .sum();
                    self.layout = Some(s);
                }
                Update::Dump(DumpPart::Blocks(b)) => {
                    self.frames += 1;
                    self.blocks += b.count() as u64;
                    let address = b.address();
                    match self.memory.last_mut() {
                        Some(r) if r.address + r.bytes.len() as u64 == address => r.bytes.extend_from_slice(&b.bytes),
                        _ => self.memory.push(MemoryRange { address, bytes: b.bytes }),
                    }
                }
                Update::Dump(DumpPart::Name { kind, address, prefix, name }) => {
                    self.frames += 1;
                    let named = Named::new(DumpPart::full_name(&prefix, &name), address);
                    match kind {
                        NameKind::Type => self.types.push(named),
                        NameKind::Module => self.modules.push(named),
                        NameKind::Global => self.globals.push(named),
                        NameKind::Class => self.classes.push(named),
                        NameKind::Root => self.roots.push(named),
                    }
                }
                Update::Dump(DumpPart::End { frames, blocks }) => {
                    self.frames += 1;
                    self.end = Some((frames, blocks));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// (heap bytes received, heap bytes in use), once the layout is known.
    pub fn progress(&self) -> Option<(usize, usize)> {
        self.layout.as_ref()?;
        Some((self.blocks as usize * self.block_size(), self.used_bytes))
    }

    fn block_size(&self) -> usize {
        self.layout.as_ref().and_then(|l| l.block_size()).unwrap_or(0) as usize
    }

    pub fn complete(&self) -> bool {
        self.end.is_some()
    }

    /// The dump, if every frame of it arrived.
    pub fn finish(mut self) -> Result<HeapDump, DumpError> {
        let (word_size, mem_free) = self.begin.ok_or_else(|| DumpError::Board("heapscope.dump() sent no dump".into()))?;
        let (frames, blocks) = self.end.ok_or_else(|| DumpError::Board("the dump ended before its last frame".into()))?;
        if frames != self.frames || blocks != self.blocks || self.corrupt > 0 {
            return Err(DumpError::Board(format!(
                "the dump is incomplete: {} of {frames} frames and {} of {blocks} blocks arrived, {} damaged frames",
                self.frames, self.blocks, self.corrupt
            )));
        }
        let layout = self.layout.ok_or_else(|| DumpError::Board("the dump came without its layout".into()))?;
        // Modules first: a global that is a module keeps the module's name; classes last.
        let mut names = self.modules;
        names.append(&mut self.globals);
        names.append(&mut self.classes);
        let areas = layout.areas.into_iter().map(|area| DumpArea { area, unreliable: Vec::new() }).collect();
        Ok(HeapDump {
            word_size,
            source: "module".into(),
            areas,
            memory: self.memory,
            types: self.types,
            names,
            roots: self.roots,
            mem_free: Some(mem_free),
        })
    }
}

/// Runs `heapscope.dump()` after a collection and gathers its frames, with progress as they come.
pub fn take_module(repl: &mut RawRepl<'_>, progress: &mut dyn FnMut(usize, usize)) -> Result<HeapDump, DumpError> {
    let mut dump = ModuleDump::new();
    dump.push(std::mem::take(&mut repl.items))?;
    repl.start("import gc, heapscope\ngc.collect()\nheapscope.dump()\n")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    while !repl.output_done() && std::time::Instant::now() < deadline {
        repl.receive_some()?;
        dump.push(std::mem::take(&mut repl.items))?;
        if let Some((done, total)) = dump.progress() {
            progress(done, total);
        }
        if dump.complete() {
            break;
        }
    }
    let out = repl.finish(Duration::from_secs(60))?;
    if out.failed() {
        return Err(DumpError::Board(format!("heapscope.dump() raised: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    dump.push(std::mem::take(&mut repl.items))?;
    dump.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_ids_are_masked_on_32_bit_boards() {
        assert_eq!(address("-1065353216", 4), Some(0xC080_0000));
        assert_eq!(address("1073741824", 4), Some(0x4000_0000));
        assert_eq!(address("140396103841184", 8), Some(140396103841184));
        assert_eq!(address("x", 4), None);
    }

    #[test]
    fn names_put_modules_first_and_main_globals_bare() {
        let out = b"T list 1000\r\nM __main__ 50\nM app 2000\nG app readings 3000\nG __main__ x 4000\nG app gc 2000\nG app odd key 5000\nnoise\n";
        let (types, names) = parse_names(out, 4);
        assert_eq!(types, vec![Named::new("list", 1000)]);
        let n: Vec<_> = names.iter().map(|n| (n.name.as_str(), n.address)).collect();
        assert_eq!(n, [("__main__", 50), ("app", 2000), ("app.readings", 3000), ("x", 4000), ("app.gc", 2000), ("app.odd key", 5000)]);
    }

    fn module_frames() -> Vec<Item> {
        use heapscope_protocol::synth::pattern_area;
        use heapscope_protocol::wire::dump::DumpBlocks;
        use heapscope_protocol::wire::{session, Frame};
        let snapshot = Snapshot { areas: vec![pattern_area(0x1000, 16, "h=..h...")], reported: Default::default() };
        let blocks = |first: usize, count: usize| {
            DumpPart::Blocks(DumpBlocks {
                word_size: 4,
                block_size: 16,
                pool_start: 0x1000,
                area_blocks: 8,
                first,
                bytes: vec![1; count * 16],
            })
        };
        let bodies = vec![
            Body::Dump(DumpPart::Begin { word_size: 4, block_size: 16, mem_free: 80 }),
            Body::Keyframe(session::keyframe(&snapshot)),
            Body::Dump(blocks(0, 2)),
            Body::Dump(blocks(4, 1)),
            Body::Dump(DumpPart::Name { kind: NameKind::Global, address: 0x1040, prefix: "app".into(), name: "x".into() }),
            Body::Dump(DumpPart::Name { kind: NameKind::Module, address: 0x1000, prefix: "".into(), name: "app".into() }),
            Body::Dump(DumpPart::Name { kind: NameKind::Root, address: 0x1000, prefix: "".into(), name: "sys.modules".into() }),
            Body::Dump(DumpPart::End { frames: 8, blocks: 3 }),
        ];
        bodies.into_iter().enumerate().map(|(i, body)| Item::Frame(Frame { seq: i as u16, device_ms: 0, body })).collect()
    }

    #[test]
    fn a_module_dump_is_gathered_from_its_frames() {
        let mut d = ModuleDump::new();
        d.push(module_frames()).unwrap();
        assert_eq!(d.progress(), Some((48, 48)));
        let dump = d.finish().unwrap();
        assert_eq!(dump.source, "module");
        assert_eq!(dump.memory.len(), 2);
        assert_eq!((dump.memory[0].address, dump.memory[0].bytes.len()), (0x1000, 32));
        assert_eq!(dump.memory[1].address, 0x1040);
        let names: Vec<_> = dump.names.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["app", "app.x"], "modules first");
        assert_eq!(dump.roots, vec![Named::new("sys.modules", 0x1000)]);
        assert_eq!(dump.mem_free, Some(80));
    }

    #[test]
    fn a_module_dump_with_a_frame_lost_is_refused() {
        let mut frames = module_frames();
        frames.remove(3);
        let mut d = ModuleDump::new();
        d.push(frames).unwrap();
        let e = d.finish().unwrap_err().to_string();
        assert!(e.contains("7 of 8 frames") && e.contains("2 of 3 blocks"), "{e}");
        let mut frames = module_frames();
        frames.pop();
        let mut d = ModuleDump::new();
        d.push(frames).unwrap();
        assert!(d.finish().unwrap_err().to_string().contains("before its last frame"));
    }

    #[test]
    fn the_read_command_binds_no_global() {
        let c = read_command(&[(0x3ffb0000, 384), (0x3ffb0180, 16)]);
        assert!(c.starts_with("(lambda"), "{c}");
        assert!(c.contains("(0x3ffb0000,384),(0x3ffb0180,16),"));
        assert!(!c.contains('='));
    }
}
