//! The analysis on hand-built heaps, where every answer is known.

use heapscope_objects::synth::{bytearray, dict, list, string, HeapBuilder};
use heapscope_objects::{diff, Analysis, HeapDump, RootKind, TOP};

fn at(a: &Analysis, address: u64) -> u32 {
    let i = a.object_at(address).expect("an object there");
    assert_eq!(a.objects[i as usize].address, address, "address is a head");
    i
}

/// `app.readings = {'r': [bytearray(100) x 3]}` and a module object `app`.
fn readings_heap() -> (HeapDump, u64, u64, Vec<u64>) {
    let mut b = HeapBuilder::new32(4096);
    b.skip(3);
    let arrays: Vec<u64> = (0..3).map(|_| bytearray(&mut b, 100)).collect();
    let l = list(&mut b, &arrays);
    let d = dict(&mut b, &[(0x1e, l)]);
    let globals = dict(&mut b, &[(0x2e, d)]);
    let module = b.object("module", &[globals]);
    b.name("app", module);
    b.name("app.readings", d);
    (b.finish(), d, l, arrays)
}

#[test]
fn a_dict_retains_everything_only_it_reaches() {
    let (dump, d, l, arrays) = readings_heap();
    let a = Analysis::new(&dump);
    let (di, li) = (at(&a, d), at(&a, l));
    assert_eq!(a.type_name(di), "dict");
    assert_eq!(a.type_name(li), "list");
    assert_eq!(a.objects[li as usize].length, Some(3));
    assert_eq!(a.objects[di as usize].length, Some(1));
    // Each bytearray: object 1 block + data 7 blocks (100 bytes); list: object + item array;
    // dict: object + table.
    let expected: u64 = 3 * (16 + 112) + 2 * 16 + 2 * 16;
    assert_eq!(a.retained(di), expected);
    let table = a.dominator(li);
    assert_eq!(a.type_name(table), "dict table");
    assert_eq!(a.dominator(table), di);
    assert_eq!(a.dominator(di), TOP, "a named object is a root");
    let ba = at(&a, arrays[1]);
    assert_eq!(a.type_name(ba), "bytearray");
    assert_eq!(a.objects[ba as usize].length, Some(100));
    assert_eq!(a.path_text(ba), "app.readings -> list -> bytearray");
    assert_eq!(a.path_labels(&a.path(ba)), ["app", "readings", "list", "bytearray"]);
    assert_eq!(a.path(ba).root_kind, RootKind::Named);
    // The data of a bytearray is named by its role.
    let data = a.references(ba).iter().copied().find(|&r| a.type_name(r) == "bytearray data");
    assert!(data.is_some(), "references of the bytearray: {:?}", a.references(ba));
    // Largest retainer first: the module holds only its globals dict (readings is a root).
    assert_eq!(a.by_retained()[0], di);
}

#[test]
fn shared_objects_belong_to_no_single_holder() {
    let mut b = HeapBuilder::new32(256);
    let s = string(&mut b, "shared text");
    let l1 = list(&mut b, &[s]);
    let l2 = list(&mut b, &[s]);
    b.name("m.a", l1);
    b.name("m.b", l2);
    let dump = b.finish();
    let a = Analysis::new(&dump);
    let si = at(&a, s);
    assert_eq!(a.dominator(si), TOP);
    assert_eq!(a.retained(at(&a, l1)), 32, "the list and its item array, not the string");
    assert_eq!(a.objects[si as usize].preview.as_deref(), Some("'shared text'"));
    assert_eq!(a.objects[si as usize].length, Some(11));
}

#[test]
fn cycles_are_held_and_unreferenced_cycles_become_roots() {
    // A cycle of two allocations pointing at each other, named through one of them.
    let mut b = HeapBuilder::new32(256);
    let p = b.next_address();
    let q = p + 16;
    b.alloc(&[q], 1);
    b.alloc(&[p], 1);
    b.name("m.cycle", p);
    // An unreferenced cycle: r <-> s.
    let r = b.next_address();
    let s = r + 16;
    b.alloc(&[s], 1);
    b.alloc(&[r], 1);
    let a = Analysis::new(&b.finish());
    let (pi, qi, ri, si) = (at(&a, p), at(&a, q), at(&a, r), at(&a, s));
    assert_eq!(a.dominator(qi), pi);
    assert_eq!(a.retained(pi), 32);
    assert_eq!(a.root_kind(ri), Some(RootKind::Unreferenced), "the lowest member of an orphan cycle");
    assert_eq!(a.dominator(si), ri);
    assert_eq!(a.path_text(si), "<unreferenced> -> other");
}

#[test]
fn only_exact_head_addresses_are_references() {
    let mut b = HeapBuilder::new32(256);
    let target = b.alloc(&[0; 8], 2); // two blocks
    // Into the middle of the head block, at its tail block, and past the pool: no references.
    let holder = b.alloc(&[target + 4, target + 16, 0x5000_0000], 1);
    let real = b.alloc(&[target], 1);
    let a = Analysis::new(&b.finish());
    assert!(a.references(at(&a, holder)).is_empty());
    assert_eq!(a.references(at(&a, real)), [at(&a, target)]);
}

#[test]
fn user_class_instances_take_the_class_name() {
    let mut b = HeapBuilder::new32(256);
    let class = b.object("type", &[0, 0, 0]);
    let instance = b.alloc(&[class, 0], 1);
    b.name("app.Sensor", class);
    b.name("app.s", instance);
    let a = Analysis::new(&b.finish());
    assert_eq!(a.type_name(at(&a, instance)), "Sensor");
    assert_eq!(a.type_name(at(&a, class)), "type");
}

#[test]
fn changed_blocks_are_marked_unreliable() {
    let (mut dump, d, _, arrays) = readings_heap();
    let block = ((arrays[0] - dump.areas[0].area.pool_start()) / 16) as usize;
    dump.areas[0].unreliable.push((block, 1));
    let a = Analysis::new(&dump);
    assert_eq!(a.unreliable_blocks, 1);
    assert!(a.objects[at(&a, arrays[0]) as usize].unreliable);
    assert!(!a.objects[at(&a, d) as usize].unreliable);
    assert!(a.describe(at(&a, arrays[0])).contains("changed during the dump"));
}

#[test]
fn missing_contents_are_flagged_not_invented() {
    let (mut dump, d, _, _) = readings_heap();
    dump.memory.clear();
    let a = Analysis::new(&dump);
    let di = at(&a, d);
    assert!(a.objects[di as usize].missing);
    assert!(a.references(di).is_empty());
    assert_eq!(a.retained(di), 16);
}

#[test]
fn diff_groups_new_objects_by_type_and_holder() {
    let mut b = HeapBuilder::new32(512);
    let l = list(&mut b, &[]);
    b.name("app.log", l);
    let before = Analysis::new(&b.finish());
    // Later: the same list (same address and size) now holds two new strings.
    let mut b = HeapBuilder::new32(512);
    b.skip(1);
    let s1 = string(&mut b, "one");
    let s2 = string(&mut b, "two");
    let items = b.alloc(&[s1, s2], 1);
    let l2 = b.object("list", &[2, 2, items]);
    b.name("app.log", l2);
    let after = Analysis::new(&b.finish());
    let d = diff(&before, &after);
    assert_eq!(d.new_objects.len(), 6, "two strs, their data, the item array and the list object at a new address");
    let strs = d.by_type.iter().find(|t| t.0 == "str").expect("strs are new");
    assert_eq!((strs.1, strs.2), (2, 32));
    assert_eq!(d.by_holder.len(), 1);
}
