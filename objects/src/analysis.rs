//! From a dump to who holds what: objects, references as the GC marks them, roots, the
//! dominator tree, retained sizes and the shortest path from a root to every object.

use std::collections::HashMap;

use heapscope_protocol::ObjType;

use crate::dump::{hex, HeapDump};
use crate::graph::{self, Csr, NONE};

/// One allocation of the heap.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub address: u64,
    pub blocks: u32,
    pub bytes: u64,
    type_id: u32,
    /// Its first word is a type: a Python object (not raw data such as a list's item array).
    pub is_object: bool,
    /// Some of its blocks changed while the dump was taken.
    pub unreliable: bool,
    /// Its contents were not in the dump (so its references are unknown).
    pub missing: bool,
    /// Items of a list, tuple, dict or set; bytes of a str, bytes or bytearray.
    pub length: Option<u64>,
    /// The start of a str's or bytes' contents.
    pub preview: Option<String>,
}

/// Why an object is a root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RootKind {
    /// The module said the GC sees it (VM state, Python stack).
    Gc,
    /// A module or a module global (stock firmware).
    Named,
    /// Nothing in the heap points at it: held from outside the heap (the C stack, registers,
    /// static data), or garbage not yet collected.
    Unreferenced,
}

impl RootKind {
    pub fn label(self) -> &'static str {
        match self {
            RootKind::Gc => "gc root",
            RootKind::Named => "named",
            RootKind::Unreferenced => "unreferenced",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    pub object: u32,
    pub kind: RootKind,
}

/// The path that keeps an object alive: from a root, object by object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeepPath {
    pub root_kind: RootKind,
    /// Object indices, the root first and the object last.
    pub chain: Vec<u32>,
}

/// The dominator tree's virtual top: every root hangs under it.
pub const TOP: u32 = u32::MAX - 1;

pub struct Analysis {
    pub word_size: u32,
    pub objects: Vec<Object>,
    type_names: Vec<String>,
    refs: Csr,
    pub roots: Vec<Root>,
    root_kind: HashMap<u32, RootKind>,
    names: HashMap<u32, String>,
    idom: Vec<u32>,
    retained: Vec<u64>,
    parent: Vec<u32>,
    /// Dominator-tree children, largest retained first; index `objects.len()` is [`TOP`].
    children: Csr,
    pub unreliable_blocks: usize,
}

fn word_at(bytes: &[u8], index: usize, size: usize) -> u64 {
    let w = &bytes[index * size..index * size + size];
    if size == 8 {
        u64::from_le_bytes(w.try_into().expect("8 bytes"))
    } else {
        u64::from(u32::from_le_bytes(w.try_into().expect("4 bytes")))
    }
}

/// Where each head block is: pointer to object index, exactly as the GC's VERIFY_PTR (a
/// block-aligned address inside a pool, at a head block).
struct Heads {
    areas: Vec<(u64, u64, u32, Vec<u32>)>,
}

impl Heads {
    #[inline]
    fn find(&self, ptr: u64) -> Option<u32> {
        for (start, end, block_size, index) in &self.areas {
            if ptr >= *start && ptr < *end {
                let offset = ptr - start;
                if !offset.is_multiple_of(u64::from(*block_size)) {
                    return None;
                }
                let i = index[(offset / u64::from(*block_size)) as usize];
                return (i != NONE).then_some(i);
            }
        }
        None
    }
}

fn contents(dump: &HeapDump, address: u64, len: u64) -> Option<&[u8]> {
    let i = dump.memory.partition_point(|r| r.address <= address).checked_sub(1)?;
    let r = &dump.memory[i];
    let offset = (address - r.address) as usize;
    r.bytes.get(offset..offset.checked_add(len as usize)?)
}

/// Reads up to `len` bytes at `address` from the dump, stopping where its contents stop.
fn read_prefix(dump: &HeapDump, address: u64, len: u64) -> Option<&[u8]> {
    let i = dump.memory.partition_point(|r| r.address <= address).checked_sub(1)?;
    let r = &dump.memory[i];
    let offset = (address - r.address) as usize;
    let end = offset.saturating_add(len as usize).min(r.bytes.len());
    r.bytes.get(offset..end)
}

const PREVIEW_BYTES: u64 = 48;

fn preview(type_name: &str, data: &[u8], len: u64) -> String {
    let mut s = String::new();
    let bytes_like = type_name != "str";
    if bytes_like {
        s.push('b');
    }
    s.push('\'');
    if bytes_like {
        for &b in data {
            match b {
                b'\'' => s.push_str("\\'"),
                b'\\' => s.push_str("\\\\"),
                0x20..=0x7e => s.push(b as char),
                _ => s.push_str(&format!("\\x{b:02x}")),
            }
        }
    } else {
        for c in String::from_utf8_lossy(data).chars() {
            match c {
                '\'' => s.push_str("\\'"),
                c if c.is_control() => s.push_str(&c.escape_default().to_string()),
                c => s.push(c),
            }
        }
    }
    s.push('\'');
    if len > data.len() as u64 {
        s.push_str("...");
    }
    s
}

/// The role of raw data reached through a known object's field: word index of the pointer in
/// the object, and the name the data gets.
fn data_field(type_name: &str) -> Option<(usize, &'static str)> {
    Some(match type_name {
        "list" => (3, "list items"),
        "dict" => (3, "dict table"),
        "set" | "frozenset" => (3, "set table"),
        "str" => (3, "str data"),
        "bytes" => (3, "bytes data"),
        "bytearray" => (3, "bytearray data"),
        "array" => (3, "array data"),
        _ => return None,
    })
}

impl Analysis {
    pub fn new(dump: &HeapDump) -> Analysis {
        let ws = dump.word_size as usize;
        let type_by_address: HashMap<u64, &str> = dump.types.iter().map(|t| (t.address, t.name.as_str())).collect();
        let type_type = dump.types.iter().find(|t| t.name == "type").map(|t| t.address);

        // Objects and where their heads are.
        let mut objects = Vec::new();
        let mut heads = Heads { areas: Vec::new() };
        let mut unreliable_blocks = 0;
        let mut mem_info_types = Vec::new();
        for da in &dump.areas {
            let area = &da.area;
            let mut index = vec![NONE; area.blocks()];
            let mut unreliable = vec![false; area.blocks()];
            for &(s, n) in &da.unreliable {
                unreliable[s..s + n].iter_mut().for_each(|u| *u = true);
                unreliable_blocks += n;
            }
            for a in area.allocations() {
                index[a.start] = objects.len() as u32;
                let bytes = a.blocks as u64 * u64::from(area.block_size());
                let address = area.address_of(a.start);
                objects.push(Object {
                    address,
                    blocks: a.blocks as u32,
                    bytes,
                    type_id: 0,
                    is_object: false,
                    unreliable: unreliable[a.start..a.start + a.blocks].iter().any(|&u| u),
                    missing: contents(dump, address, bytes).is_none(),
                    length: None,
                    preview: None,
                });
                mem_info_types.push(a.obj_type);
            }
            heads.areas.push((area.pool_start(), area.address_of(area.blocks()), area.block_size(), index));
        }
        let n = objects.len();
        let first_word: Vec<Option<u64>> = objects
            .iter()
            .map(|o| contents(dump, o.address, o.bytes).filter(|b| b.len() >= ws).map(|b| word_at(b, 0, ws)))
            .collect();

        // Names of objects; a class's name names its instances' type.
        let mut names: HashMap<u32, String> = HashMap::new();
        for named in &dump.names {
            if let Some(i) = heads.find(named.address) {
                // The first name given wins: modules come before globals that alias them.
                names.entry(i).or_insert_with(|| named.name.clone());
            }
        }

        // Types.
        let mut type_names: Vec<String> = vec!["other".into()];
        let mut type_ids: HashMap<String, u32> = HashMap::from([("other".to_string(), 0)]);
        let intern = |name: &str, type_names: &mut Vec<String>, type_ids: &mut HashMap<String, u32>| -> u32 {
            if let Some(&id) = type_ids.get(name) {
                return id;
            }
            let id = type_names.len() as u32;
            type_names.push(name.to_string());
            type_ids.insert(name.to_string(), id);
            id
        };
        for i in 0..n {
            let (name, is_object) = match first_word[i] {
                Some(w) if type_by_address.contains_key(&w) => (type_by_address[&w].to_string(), true),
                Some(w) => match heads.find(w) {
                    Some(class) if type_type.is_some() && first_word[class as usize] == type_type => {
                        let class_name = names.get(&class).map(|n| n.rsplit('.').next().unwrap_or(n).to_string());
                        (class_name.unwrap_or_else(|| "instance".into()), true)
                    }
                    _ => fallback_type(mem_info_types[i]),
                },
                None => fallback_type(mem_info_types[i]),
            };
            objects[i].type_id = intern(&name, &mut type_names, &mut type_ids);
            objects[i].is_object = is_object;
        }

        // References: every word of every allocation that points at a head block (gc_mark).
        let mut edges: Vec<(u32, u32)> = Vec::with_capacity(n * 2);
        let mut referenced = vec![false; n];
        for (i, o) in objects.iter().enumerate() {
            let Some(bytes) = contents(dump, o.address, o.bytes) else { continue };
            let mut last = NONE;
            for w in 0..bytes.len() / ws {
                if let Some(t) = heads.find(word_at(bytes, w, ws)) {
                    if t != last && t != i as u32 {
                        edges.push((i as u32, t));
                        referenced[t as usize] = true;
                        last = t;
                    }
                }
            }
        }

        // Lengths, previews, and names for raw data reached through a known field.
        for i in 0..n {
            let tname = type_names[objects[i].type_id as usize].clone();
            let Some(bytes) = contents(dump, objects[i].address, objects[i].bytes) else { continue };
            let word = |k: usize| (bytes.len() >= (k + 1) * ws).then(|| word_at(bytes, k, ws));
            let length = match tname.as_str() {
                "list" | "str" | "bytes" | "bytearray" | "array" | "set" | "frozenset" => word(2),
                "tuple" => word(1),
                "dict" => word(1).map(|w| w >> 3),
                _ => None,
            };
            objects[i].length = length;
            if let (Some((field, role)), true) = (data_field(&tname), objects[i].is_object) {
                if let Some(target) = word(field).and_then(|p| heads.find(p)) {
                    if !objects[target as usize].is_object {
                        objects[target as usize].type_id = intern(role, &mut type_names, &mut type_ids);
                    }
                }
                if matches!(tname.as_str(), "str" | "bytes") {
                    if let (Some(len), Some(data)) = (length, word(3)) {
                        if let Some(text) = read_prefix(dump, data, len.min(PREVIEW_BYTES)) {
                            objects[i].preview = Some(preview(&tname, text, len));
                        }
                    }
                }
            }
        }

        // Roots, and a virtual top above them.
        let mut roots: Vec<Root> = Vec::new();
        let mut root_kind: HashMap<u32, RootKind> = HashMap::new();
        let mut add_root = |object: u32, kind: RootKind, roots: &mut Vec<Root>| {
            if let std::collections::hash_map::Entry::Vacant(e) = root_kind.entry(object) {
                e.insert(kind);
                roots.push(Root { object, kind });
            }
        };
        if dump.roots.is_empty() {
            let mut named: Vec<u32> = names.keys().copied().collect();
            named.sort_unstable();
            for i in named {
                add_root(i, RootKind::Named, &mut roots);
            }
            for (i, &r) in referenced.iter().enumerate() {
                if !r {
                    add_root(i as u32, RootKind::Unreferenced, &mut roots);
                }
            }
        } else {
            for r in &dump.roots {
                if let Some(i) = heads.find(r.address) {
                    add_root(i, RootKind::Gc, &mut roots);
                }
            }
        }
        let top = n as u32;
        let graph_with_top = |roots: &[Root]| {
            let mut all = edges.clone();
            all.extend(roots.iter().map(|r| (top, r.object)));
            Csr::from_edges(n + 1, &all)
        };
        // Cycles that nothing outside points at are reached from nowhere yet: each gets its
        // lowest-addressed member as an unreferenced root.
        let mut g = graph_with_top(&roots);
        let mut reached = vec![false; n + 1];
        for v in graph::reverse_postorder(&g, top) {
            reached[v as usize] = true;
        }
        let mut extra = false;
        for i in 0..n {
            if !reached[i] {
                add_root(i as u32, RootKind::Unreferenced, &mut roots);
                extra = true;
                let mut stack = vec![i as u32];
                reached[i] = true;
                while let Some(v) = stack.pop() {
                    for &w in g.successors(v) {
                        if !reached[w as usize] {
                            reached[w as usize] = true;
                            stack.push(w);
                        }
                    }
                }
            }
        }
        if extra {
            g = graph_with_top(&roots);
        }
        let (mut idom, rpo) = graph::dominators(&g, top);
        let mut retained: Vec<u64> = objects.iter().map(|o| o.bytes).chain([0]).collect();
        for &v in rpo.iter().rev() {
            if v != top {
                let d = idom[v as usize];
                retained[d as usize] += retained[v as usize];
            }
        }
        let parent = graph::shortest_path_parents(&g, top);
        // Dominator children, largest first.
        let mut tree: Vec<(u32, u32)> = (0..n as u32).map(|v| (idom[v as usize], v)).collect();
        tree.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(retained[b.1 as usize].cmp(&retained[a.1 as usize])).then(a.1.cmp(&b.1)));
        let children = Csr::from_edges(n + 1, &tree);
        for d in idom.iter_mut() {
            if *d == top {
                *d = TOP;
            }
        }
        Analysis {
            word_size: dump.word_size,
            objects,
            type_names,
            refs: Csr { start: g.start[..=n].to_vec(), targets: g.targets[..g.start[n] as usize].to_vec() },
            roots,
            root_kind,
            names,
            idom,
            retained,
            parent,
            children,
            unreliable_blocks,
        }
    }

    pub fn type_name(&self, object: u32) -> &str {
        &self.type_names[self.objects[object as usize].type_id as usize]
    }

    pub fn name(&self, object: u32) -> Option<&str> {
        self.names.get(&object).map(String::as_str)
    }

    pub fn retained(&self, object: u32) -> u64 {
        self.retained[object as usize]
    }

    /// The immediate dominator, or [`TOP`] for objects only the roots together keep alive.
    pub fn dominator(&self, object: u32) -> u32 {
        self.idom[object as usize]
    }

    /// Objects the given one immediately dominates (or the roots' children, for [`TOP`]),
    /// largest retained first.
    pub fn dominated(&self, object: u32) -> &[u32] {
        let v = if object == TOP { self.objects.len() as u32 } else { object };
        self.children.successors(v)
    }

    /// Objects this one points at.
    pub fn references(&self, object: u32) -> &[u32] {
        self.refs.successors(object)
    }

    pub fn root_kind(&self, object: u32) -> Option<RootKind> {
        self.root_kind.get(&object).copied()
    }

    /// The object whose allocation covers `address`.
    pub fn object_at(&self, address: u64) -> Option<u32> {
        let i = self.objects.partition_point(|o| o.address <= address).checked_sub(1)?;
        let o = &self.objects[i];
        (address < o.address + o.bytes).then_some(i as u32)
    }

    /// Every object, largest retained first.
    pub fn by_retained(&self) -> Vec<u32> {
        let mut all: Vec<u32> = (0..self.objects.len() as u32).collect();
        all.sort_by(|&a, &b| self.retained(b).cmp(&self.retained(a)).then(a.cmp(&b)));
        all
    }

    /// The shortest path from a root to the object.
    pub fn path(&self, object: u32) -> KeepPath {
        let top = self.objects.len() as u32;
        let mut chain = vec![object];
        let mut v = object;
        while self.parent[v as usize] != top && self.parent[v as usize] != NONE {
            v = self.parent[v as usize];
            chain.push(v);
        }
        chain.reverse();
        KeepPath { root_kind: self.root_kind(chain[0]).unwrap_or(RootKind::Unreferenced), chain }
    }

    /// The path as names: the last named object's name split at dots (`app`, `readings`), then
    /// the types of the Python objects after it (`list`, `bytearray`). Raw data (item arrays,
    /// dict tables) is left out.
    pub fn path_labels(&self, path: &KeepPath) -> Vec<String> {
        let named_at = path.chain.iter().rposition(|&o| self.names.contains_key(&o));
        let mut labels: Vec<String> = match named_at {
            Some(at) => self.names[&path.chain[at]].split('.').map(str::to_string).collect(),
            None => vec![format!("<{}>", path.root_kind.label())],
        };
        let from = named_at.map_or(0, |at| at + 1);
        for &o in &path.chain[from..] {
            if self.objects[o as usize].is_object || Some(&o) == path.chain.last() {
                labels.push(self.type_name(o).to_string());
            }
        }
        labels
    }

    /// `app.readings -> list -> bytearray`.
    pub fn path_text(&self, object: u32) -> String {
        let path = self.path(object);
        let labels = self.path_labels(&path);
        let named = path.chain.iter().rposition(|&o| self.names.contains_key(&o)).map(|at| self.names[&path.chain[at]].split('.').count());
        match named {
            Some(k) => std::iter::once(labels[..k].join(".")).chain(labels[k..].iter().cloned()).collect::<Vec<_>>().join(" -> "),
            None => labels.join(" -> "),
        }
    }

    /// One line about an object: `list 0x3ffb1230 (100 items)` or `app.readings: dict ...`.
    pub fn describe(&self, object: u32) -> String {
        let o = &self.objects[object as usize];
        let mut s = String::new();
        if let Some(name) = self.name(object) {
            s.push_str(name);
            s.push_str(": ");
        }
        s.push_str(self.type_name(object));
        s.push(' ');
        s.push_str(&hex(o.address));
        if let Some(len) = o.length {
            let unit = match self.type_name(object) {
                "str" | "bytes" | "bytearray" | "array" => "bytes",
                _ => "items",
            };
            s.push_str(&format!(" ({len} {unit})"));
        }
        if let Some(p) = &o.preview {
            s.push(' ');
            s.push_str(p);
        }
        if o.unreliable {
            s.push_str(" [changed during the dump]");
        }
        s
    }
}

fn fallback_type(t: ObjType) -> (String, bool) {
    match t {
        ObjType::Unknown | ObjType::Other => ("other".into(), false),
        t => (t.name().into(), true),
    }
}

/// Objects in `later` that are not in `earlier` (same address, size and type): the leak
/// suspects, grouped by type and by what holds them: the nearest dominator that is not new
/// itself, or the topmost new one where only roots hold them.
pub struct Diff {
    pub new_objects: Vec<u32>,
    /// (type, count, bytes), most bytes first.
    pub by_type: Vec<(String, usize, u64)>,
    /// (the object that holds them; count, bytes), most bytes first.
    pub by_holder: Vec<(u32, usize, u64)>,
}

pub fn diff(earlier: &Analysis, later: &Analysis) -> Diff {
    let old: std::collections::HashSet<(u64, u64, &str)> =
        (0..earlier.objects.len() as u32).map(|i| (earlier.objects[i as usize].address, earlier.objects[i as usize].bytes, earlier.type_name(i))).collect();
    let is_new: Vec<bool> = (0..later.objects.len() as u32)
        .map(|i| !old.contains(&(later.objects[i as usize].address, later.objects[i as usize].bytes, later.type_name(i))))
        .collect();
    let new_objects: Vec<u32> = (0..later.objects.len() as u32).filter(|&i| is_new[i as usize]).collect();
    let mut by_type: HashMap<String, (usize, u64)> = HashMap::new();
    let mut by_holder: HashMap<u32, (usize, u64)> = HashMap::new();
    for &i in &new_objects {
        let bytes = later.objects[i as usize].bytes;
        let t = by_type.entry(later.type_name(i).to_string()).or_default();
        t.0 += 1;
        t.1 += bytes;
        // Up the dominator tree to the first object that is not new; where only the roots hold
        // the new objects, the topmost new one stands for them.
        let mut below = i;
        let mut holder = later.dominator(i);
        while holder != TOP && is_new[holder as usize] {
            below = holder;
            holder = later.dominator(holder);
        }
        if holder == TOP {
            holder = below;
        }
        let h = by_holder.entry(holder).or_default();
        h.0 += 1;
        h.1 += bytes;
    }
    let mut by_type: Vec<_> = by_type.into_iter().map(|(t, (c, b))| (t, c, b)).collect();
    by_type.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    let mut by_holder: Vec<_> = by_holder.into_iter().map(|(h, (c, b))| (h, c, b)).collect();
    by_holder.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    Diff { new_objects, by_type, by_holder }
}
