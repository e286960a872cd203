//! Hand-built heaps for tests and benchmarks: allocate objects word by word, get a dump.

use heapscope_protocol::{Area, BlockKind, KindTable, ObjType};

use crate::dump::{DumpArea, HeapDump, MemoryRange, Named};

/// Addresses of the built-in types in built heaps (outside the pool, as on a board's flash).
pub const TYPES: &[(&str, u64)] = &[
    ("type", 0x3f40_0000),
    ("list", 0x3f40_0100),
    ("dict", 0x3f40_0200),
    ("str", 0x3f40_0300),
    ("bytes", 0x3f40_0400),
    ("bytearray", 0x3f40_0500),
    ("tuple", 0x3f40_0600),
    ("function", 0x3f40_0700),
    ("closure", 0x3f40_0800),
    ("module", 0x3f40_0900),
];

pub fn type_address(name: &str) -> u64 {
    TYPES.iter().find(|t| t.0 == name).map(|t| t.1).unwrap_or_else(|| panic!("no built type {name}"))
}

/// A single-area heap being built, allocations in address order.
pub struct HeapBuilder {
    pub word_size: u32,
    pub block_size: u32,
    pub pool_start: u64,
    kinds: KindTable,
    types: Vec<ObjType>,
    bytes: Vec<u8>,
    blocks: usize,
    pub names: Vec<Named>,
}

impl HeapBuilder {
    /// A 32-bit heap of `blocks` 16-byte blocks at an ESP32-like address.
    pub fn new32(blocks: usize) -> HeapBuilder {
        HeapBuilder {
            word_size: 4,
            block_size: 16,
            pool_start: 0x3ffb_0000,
            kinds: KindTable::with_capacity(blocks),
            types: Vec::new(),
            bytes: Vec::new(),
            blocks,
            names: Vec::new(),
        }
    }

    /// The address the next allocation gets.
    pub fn next_address(&self) -> u64 {
        self.pool_start + self.kinds.len() as u64 * u64::from(self.block_size)
    }

    /// Leaves `blocks` free.
    pub fn skip(&mut self, blocks: usize) {
        self.kinds.push_run(BlockKind::Free, blocks);
        self.bytes.resize(self.kinds.len() * self.block_size as usize, 0);
    }

    /// Allocates enough blocks for `words` (at least `min_blocks`) and returns the address.
    pub fn alloc(&mut self, words: &[u64], min_blocks: usize) -> u64 {
        let address = self.next_address();
        let per_block = (self.block_size / self.word_size) as usize;
        let blocks = words.len().div_ceil(per_block).max(min_blocks).max(1);
        self.kinds.push(BlockKind::Head);
        self.kinds.push_run(BlockKind::Tail, blocks - 1);
        self.types.push(ObjType::Unknown);
        for &w in words {
            if self.word_size == 8 {
                self.bytes.extend_from_slice(&w.to_le_bytes());
            } else {
                self.bytes.extend_from_slice(&(w as u32).to_le_bytes());
            }
        }
        self.bytes.resize(self.kinds.len() * self.block_size as usize, 0);
        address
    }

    /// An object of a built-in type: the type pointer, then `fields`.
    pub fn object(&mut self, type_name: &str, fields: &[u64]) -> u64 {
        let mut words = vec![type_address(type_name)];
        words.extend_from_slice(fields);
        self.alloc(&words, 1)
    }

    /// Raw bytes (string data, a bytearray's items) of `len` bytes.
    pub fn data(&mut self, content: &[u8]) -> u64 {
        let address = self.next_address();
        let blocks = content.len().div_ceil(self.block_size as usize).max(1);
        self.kinds.push(BlockKind::Head);
        self.kinds.push_run(BlockKind::Tail, blocks - 1);
        self.types.push(ObjType::Unknown);
        self.bytes.extend_from_slice(content);
        self.bytes.resize(self.kinds.len() * self.block_size as usize, 0);
        address
    }

    pub fn name(&mut self, name: &str, address: u64) {
        self.names.push(Named::new(name, address));
    }

    /// The dump: every used block's contents, free space left out.
    pub fn finish(mut self) -> HeapDump {
        let used = self.kinds.len();
        self.kinds.push_run(BlockKind::Free, self.blocks.saturating_sub(used));
        let area = Area::new(self.pool_start, self.block_size, self.kinds.clone(), self.types).expect("a consistent area");
        let bs = self.block_size as usize;
        let mut memory = Vec::new();
        for run in self.kinds.runs().filter(|r| r.kind != BlockKind::Free) {
            let (s, e) = (run.start * bs, (run.start + run.len) * bs);
            match memory.last_mut() {
                Some(MemoryRange { address, bytes }) if *address + bytes.len() as u64 == self.pool_start + s as u64 => {
                    bytes.extend_from_slice(&self.bytes[s..e])
                }
                _ => memory.push(MemoryRange { address: self.pool_start + s as u64, bytes: self.bytes[s..e].to_vec() }),
            }
        }
        HeapDump {
            word_size: self.word_size,
            source: "synthetic".into(),
            areas: vec![DumpArea { area, unreliable: Vec::new() }],
            memory,
            types: TYPES.iter().map(|&(n, a)| Named::new(n, a)).collect(),
            names: self.names,
            roots: Vec::new(),
            mem_free: None,
        }
    }
}

/// A 32-bit list of `items` (the list and its item array).
pub fn list(b: &mut HeapBuilder, items: &[u64]) -> u64 {
    let array = if items.is_empty() { 0 } else { b.alloc(items, 1) };
    b.object("list", &[items.len() as u64, items.len() as u64, array])
}

/// A str with its contents in a separate allocation, as `mp_obj_new_str_copy` makes it.
pub fn string(b: &mut HeapBuilder, text: &str) -> u64 {
    let mut content = text.as_bytes().to_vec();
    content.push(0);
    let data = b.data(&content);
    b.object("str", &[0, text.len() as u64, data])
}

pub fn bytearray(b: &mut HeapBuilder, len: usize) -> u64 {
    let data = b.data(&vec![0u8; len]);
    b.object("bytearray", &[1 << 8 | 1, len as u64, data])
}

/// A dict of (key, value) pairs: the dict object and its table.
pub fn dict(b: &mut HeapBuilder, pairs: &[(u64, u64)]) -> u64 {
    let mut table = Vec::new();
    for &(k, v) in pairs {
        table.extend_from_slice(&[k, v]);
    }
    let t = b.alloc(&table, 1);
    b.object("dict", &[(pairs.len() as u64) << 3 | 0b100, pairs.len() as u64, t])
}

/// A 32-bit heap of `blocks` 16-byte blocks, about `fill` percent used, shaped like a program's:
/// module globals holding lists of strings, bytearrays and tuples, some shared between lists.
/// Stops at `max_objects` allocations.
pub fn program_heap(seed: u64, blocks: usize, fill: u64, max_objects: usize) -> HeapDump {
    let mut rng = heapscope_protocol::synth::Rng::new(seed);
    let mut b = HeapBuilder::new32(blocks);
    let limit = blocks * fill as usize / 100;
    let mut allocations = 0;
    let mut shared: Vec<u64> = Vec::new();
    let mut global = 0;
    let used = |b: &HeapBuilder| ((b.next_address() - b.pool_start) / u64::from(b.block_size)) as usize;
    while allocations + 400 < max_objects && used(&b) + 8000 < limit {
        let count = 20 + rng.below(160) as usize;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            if rng.below(8) == 0 {
                b.skip(1 + rng.below(3) as usize);
            }
            let item = match rng.below(10) {
                0..=3 => {
                    let len = 8 + rng.below(150) as usize;
                    allocations += 2;
                    string(&mut b, &"s".repeat(len))
                }
                4..=5 => {
                    allocations += 2;
                    bytearray(&mut b, 16 + rng.below(600) as usize)
                }
                6..=7 => {
                    allocations += 1;
                    b.object("tuple", &[2, 0x7, 0x9])
                }
                _ if !shared.is_empty() => shared[rng.below(shared.len() as u64) as usize],
                _ => {
                    allocations += 1;
                    b.alloc(&[0; 8], 2)
                }
            };
            if rng.below(50) == 0 {
                shared.push(item);
            }
            items.push(item);
        }
        allocations += 2;
        let l = list(&mut b, &items);
        b.name(&format!("app.g{global}"), l);
        global += 1;
    }
    b.finish()
}

/// A small program's heap for views and demos: module `app` with `app.readings`, a dict holding
/// a list of three bytearrays, `app.greeting`, a str, and `app.cache`, a list of strs.
pub fn example() -> HeapDump {
    let mut b = HeapBuilder::new32(1024);
    b.skip(2);
    let arrays: Vec<u64> = (0..3).map(|_| bytearray(&mut b, 200)).collect();
    let l = list(&mut b, &arrays);
    let readings = dict(&mut b, &[(0x1e, l)]);
    let greeting = string(&mut b, "hello from the heap, a string long enough to be cut short in a preview");
    b.skip(5);
    let words: Vec<u64> = ["alpha", "beta", "gamma"].iter().map(|w| string(&mut b, w)).collect();
    let cache = list(&mut b, &words);
    let globals = dict(&mut b, &[(0x2e, readings), (0x3e, greeting), (0x4e, cache)]);
    let module = b.object("module", &[globals]);
    b.name("app", module);
    b.name("app.readings", readings);
    b.name("app.greeting", greeting);
    b.name("app.cache", cache);
    b.finish()
}
