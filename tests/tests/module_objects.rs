//! Who holds this memory, against the module build (the project's 32-bit host port with the
//! heapscope module): `heapscope dump` takes the dump with `heapscope.dump()`, roots come from
//! the module, and retained sizes are checked against what `gc.mem_free()` gains.

use heapscope_tests::board::PtyBoard;
use heapscope_tests::truth::who_holds_the_memory;

#[test]
fn retained_sizes_match_what_deleting_the_holders_frees_on_the_module_build() {
    let board = PtyBoard::start_with(&heapscope_tests::firmware::unix_micropython(), &["-X", "heapsize=122160"]);
    who_holds_the_memory(&board, 4, "module");
}

/// `heapscope.dump()` under `micropython.heap_lock()`: it allocates nothing on the GC heap, and
/// every frame of the burst arrives whole and makes a dump.
#[test]
fn the_dump_allocates_nothing_and_arrives_whole() {
    use heapscope::heapdump::ModuleDump;
    use heapscope_protocol::wire::demux::Demux;
    let dir = std::env::temp_dir().join(format!("heapscope-module-dump-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("main.py");
    std::fs::write(
        &script,
        "import heapscope, micropython, gc\nx = [bytearray(100) for _ in range(30)]\ngc.collect()\n\
         micropython.heap_lock()\nheapscope.dump()\nmicropython.heap_unlock()\nprint('done')\n",
    )
    .unwrap();
    let out = std::process::Command::new(heapscope_tests::firmware::unix_micropython())
        .args(["-X", "heapsize=122160"])
        .arg(&script)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut demux = Demux::new();
    let items = demux.push(&out.stdout);
    let mut dump = ModuleDump::new();
    dump.push(items).unwrap();
    let dump = dump.finish().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dump.word_size, 4);
    assert_eq!(dump.areas[0].area.pool_bytes(), 119_360);
    let used: usize = dump.memory.iter().map(|r| r.bytes.len()).sum();
    assert!(used > 30 * 112, "{used}");
    assert!(dump.names.iter().any(|n| n.name == "x"), "{:?}", dump.names);
    let a = heapscope_objects::Analysis::new(&dump);
    let x = (0..a.objects.len() as u32).find(|&i| a.name(i) == Some("x")).unwrap();
    assert_eq!(a.type_name(x), "list");
    assert_eq!(a.objects[x as usize].length, Some(30));
}
