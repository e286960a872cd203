//! The truth test of "who holds this memory" (issue 10), shared by the stock interpreter
//! (tests/e2e_objects.rs, through the raw REPL) and the module build (tests/module_objects.rs).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use heapscope::link::{Opener, PathOpener};
use heapscope::port::OpenOptions;
use heapscope::repl::RawRepl;
use heapscope_objects::{Analysis, HeapDump, TOP};
use heapscope_protocol::wire::demux::Demux;

use crate::board::PtyBoard;

pub const APP: &str = "\
readings = {'r': [bytearray(1000) for _ in range(100)]}

class Node:
    pass

def _cycle():
    a = Node()
    b = Node()
    a.other = b
    b.other = a
    return a

cycle = _cycle()

def make():
    secret = [bytearray(500) for _ in range(10)]
    def f():
        return len(secret)
    return f

holder = make()
text = 'x' * 3000
";

pub fn heapscope(args: &[&str]) -> Output {
    Command::new(crate::heapscope_binary()).args(args).output().expect("run heapscope")
}

pub fn ok(o: Output) -> Output {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), String::from_utf8_lossy(&o.stderr));
    o
}

/// Runs code on the board through the raw REPL and returns what it printed.
pub fn board_exec(board: &PtyBoard, code: &str) -> String {
    let mut opener = PathOpener { path: board.port(), options: OpenOptions { baud: 115_200, reset: false } };
    let mut link = opener.open().expect("open the board");
    let mut demux = Demux::new();
    let mut repl = RawRepl::new(&mut *link, &mut demux);
    repl.enter().expect("raw REPL");
    let out = repl.exec(code, Duration::from_secs(60)).expect("exec");
    assert!(!out.failed(), "{code}: {}", String::from_utf8_lossy(&out.stderr));
    repl.leave().expect("back to the prompt");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn take_dump(board: &PtyBoard, file: &Path) -> HeapDump {
    let out = ok(heapscope(&["dump", "--port", &board.port(), "-o", file.to_str().unwrap(), "--json"]));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary["objects"].as_u64().unwrap() > 10, "{summary}");
    HeapDump::from_json(&std::fs::read(file).unwrap()).expect("the dump reads back")
}

pub fn named(a: &Analysis, name: &str) -> u32 {
    (0..a.objects.len() as u32).find(|&i| a.name(i) == Some(name)).unwrap_or_else(|| panic!("no object named {name}"))
}

/// Objects in the dominator subtree of `root`, itself included.
pub fn subtree_size(a: &Analysis, root: u32) -> usize {
    let mut stack = vec![root];
    let mut n = 0;
    while let Some(v) = stack.pop() {
        n += 1;
        stack.extend_from_slice(a.dominated(v));
    }
    n
}

/// The truth test of issue 10 on a board already running: `app` imported, then dumps, checks
/// and deletions. `source` is how the dump is expected to be taken (`raw-repl`, `module`).
pub fn who_holds_the_memory(board: &PtyBoard, word_size: u32, source: &str) {
    std::fs::write(board.dir().join("app.py"), APP).unwrap();
    board_exec(board, "import app\n");
    let file = board.dir().join("one.hsd");
    let dump = take_dump(board, &file);
    assert_eq!(dump.word_size, word_size);
    assert_eq!(dump.source, source);
    assert_eq!(dump.unreliable_blocks(), 0, "nothing changed while the program was stopped");
    if source == "module" {
        // Roots from the module: the VM state (sys.modules, __main__) and the stack.
        for root in ["sys.modules", "__main__", "stack"] {
            assert!(dump.roots.iter().any(|r| r.name == root), "no {root} root in {:?}", dump.roots);
        }
    }
    let a = Analysis::new(&dump);
    let bs = u64::from(dump.areas[0].area.block_size());
    // What nothing in the heap points at: held from outside the heap, or the REPL's garbage.
    let unreferenced: Vec<u32> =
        a.roots.iter().filter(|r| r.kind == heapscope_objects::RootKind::Unreferenced).map(|r| r.object).collect();
    eprintln!(
        "{} roots: {} from the module or named, {} unreferenced retaining {} B of {} B in use",
        a.roots.len(),
        a.roots.len() - unreferenced.len(),
        unreferenced.len(),
        unreferenced.iter().map(|&o| a.retained(o)).sum::<u64>(),
        a.objects.iter().map(|o| o.bytes).sum::<u64>()
    );

    // The dict, the list of 100 bytearrays in it, its path.
    let readings = named(&a, "app.readings");
    assert_eq!(a.type_name(readings), "dict");
    assert_eq!(a.objects[readings as usize].length, Some(1));
    let list = (0..a.objects.len() as u32)
        .find(|&i| a.type_name(i) == "list" && a.objects[i as usize].length == Some(100))
        .expect("the list of 100");
    assert_eq!(a.path_text(list), "app.readings -> list");
    let arrays: Vec<u32> = (0..a.objects.len() as u32)
        .filter(|&i| a.type_name(i) == "bytearray" && a.objects[i as usize].length == Some(1000))
        .collect();
    assert_eq!(arrays.len(), 100);
    assert_eq!(a.path_text(arrays[42]), "app.readings -> list -> bytearray");
    assert!(arrays.iter().all(|&b| a.path_labels(&a.path(b)) == ["app", "readings", "list", "bytearray"]));

    // The cycle: two Node instances, held through the global.
    let cycle = named(&a, "app.cycle");
    assert_eq!(a.type_name(cycle), "Node");
    let nodes: Vec<u32> = (0..a.objects.len() as u32).filter(|&i| a.type_name(i) == "Node").collect();
    assert_eq!(nodes.len(), 2);
    let other = nodes.iter().copied().find(|&n| n != cycle).unwrap();
    assert_eq!(a.path_text(other), "app.cycle -> Node");

    // Held only by a closure: ten bytearrays of 500.
    let holder = named(&a, "app.holder");
    assert_eq!(a.type_name(holder), "closure");
    let secrets: Vec<u32> = (0..a.objects.len() as u32)
        .filter(|&i| a.type_name(i) == "bytearray" && a.objects[i as usize].length == Some(500))
        .collect();
    assert_eq!(secrets.len(), 10);
    assert!(secrets.iter().all(|&s| a.path_text(s).starts_with("app.holder -> ")), "{}", a.path_text(secrets[0]));

    // The long string, with a preview.
    let text = named(&a, "app.text");
    assert_eq!(a.type_name(text), "str");
    assert_eq!(a.objects[text as usize].length, Some(3000));
    assert!(a.objects[text as usize].preview.as_deref().unwrap().starts_with("'xxxxxxxx"));

    // The command line: the top retainer, its JSON shape, and why a bytearray is alive.
    let json = |args: &[&str]| -> serde_json::Value { serde_json::from_slice(&ok(heapscope(args)).stdout).unwrap() };
    // On stock firmware the named objects are the roots, so `app.readings` retains the most; with
    // the module's roots the module `app` holds it, and its own dict and table come between.
    let top_path: &[&str] = if source == "module" { &["app"] } else { &["app", "readings"] };
    let v = json(&["objects", file.to_str().unwrap(), "--json", "--top", "5"]);
    assert_eq!(v["objects"][0]["path"], serde_json::json!(top_path), "{v}");
    assert_eq!(v["objects"].as_array().unwrap().len(), 5);
    let top = v["objects"].as_array().unwrap().iter().find(|o| o["path"] == serde_json::json!(["app", "readings"])).expect("app.readings among the top 5");
    assert_eq!(top["type"], "dict");
    assert_eq!(top["retained"].as_u64(), Some(a.retained(readings)));
    assert_eq!(top["address"].as_str().unwrap(), format!("0x{:x}", a.objects[readings as usize].address));
    assert!(v["objects"][1]["retained"].as_u64() <= v["objects"][0]["retained"].as_u64());
    assert_eq!(v["roots"].as_u64(), Some(a.roots.len() as u64));
    assert_eq!(v["unreliable_blocks"].as_u64(), Some(0));
    let address = format!("0x{:x}", a.objects[arrays[7] as usize].address + 5);
    let why = String::from_utf8(ok(heapscope(&["objects", file.to_str().unwrap(), "--why", &address])).stdout).unwrap();
    assert!(why.contains("= app.readings -> list -> bytearray"), "{why}");
    assert!(why.contains("app.readings: dict"), "{why}");
    let table = String::from_utf8(ok(heapscope(&["objects", file.to_str().unwrap()])).stdout).unwrap();
    eprintln!("{table}\n{why}");
    assert!(table.lines().nth(2).unwrap().ends_with(&top_path.join(".")), "{table}");
    let nowhere = heapscope(&["objects", file.to_str().unwrap(), "--why", "0x10"]);
    assert_eq!(nowhere.status.code(), Some(2), "no object there is bad input");

    // Truth: what deleting each holder gives back to gc.mem_free().
    let out = board_exec(
        board,
        "import gc\ngc.collect()\nprint(gc.mem_free())\n\
         del app.readings\ngc.collect()\nprint(gc.mem_free())\n\
         del app.cycle\ngc.collect()\nprint(gc.mem_free())\n\
         del app.holder\ngc.collect()\nprint(gc.mem_free())\n\
         del app.text\ngc.collect()\nprint(gc.mem_free())\n",
    );
    let free: Vec<i64> = out.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(free.len(), 5, "{out}");
    for (k, (name, obj)) in [("app.readings", readings), ("app.cycle", cycle), ("app.holder", holder), ("app.text", text)].into_iter().enumerate() {
        let gain = free[k + 1] - free[k];
        let retained = a.retained(obj) as i64;
        let objects = subtree_size(&a, obj);
        eprintln!("{name}: retained {retained} B over {objects} allocations; gc.mem_free() gained {gain} B");
        assert!(
            (retained - gain).abs() <= objects as i64 * bs as i64,
            "{name}: retained {retained} B, mem_free gained {gain} B, {objects} allocations of {bs}-byte blocks"
        );
    }

    // After `del` and a collection they are gone.
    let later_file = board.dir().join("two.hsd");
    let later = Analysis::new(&take_dump(board, &later_file));
    for name in ["app.readings", "app.cycle", "app.holder", "app.text"] {
        assert!((0..later.objects.len() as u32).all(|i| later.name(i) != Some(name)), "{name} is still named");
    }
    assert_eq!((0..later.objects.len() as u32).filter(|&i| later.type_name(i) == "bytearray").count(), 0);
    assert_eq!((0..later.objects.len() as u32).filter(|&i| later.type_name(i) == "Node").count(), 0);
    if source == "module" {
        // Held from a root the GC sees: the path starts there.
        let chain = a.path(readings).chain;
        assert_eq!(a.root_kind(chain[0]), Some(heapscope_objects::RootKind::Gc), "{}", a.path_text(readings));
    } else {
        assert!(a.dominator(readings) == TOP);
    }

    // A list that grows between two dumps: the new strings are held by it.
    board_exec(board, "app.log = []\n");
    let before_file = board.dir().join("three.hsd");
    take_dump(board, &before_file);
    board_exec(board, "app.log.extend([str(i) * 20 for i in range(50)])\n");
    let after_file = board.dir().join("four.hsd");
    take_dump(board, &after_file);
    let v = json(&["objects", before_file.to_str().unwrap(), "--diff", after_file.to_str().unwrap(), "--json"]);
    let strs = v["by_type"].as_array().unwrap().iter().find(|t| t["type"] == "str").expect("new strs");
    assert_eq!(strs["count"].as_u64(), Some(50), "{v}");
    assert_eq!(v["by_holder"][0]["path"], "app.log", "{v}");
    assert!(v["by_holder"][0]["count"].as_u64().unwrap() >= 100, "50 strs and their data: {v}");
}

