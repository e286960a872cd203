//! Compiles the firmware's portable C core, warnings as errors, so tests can call it.

fn main() {
    let core = "../firmware/heapscope";
    println!("cargo:rerun-if-changed={core}/hs_core.c");
    println!("cargo:rerun-if-changed={core}/hs_core.h");
    println!("cargo:rerun-if-changed=ffi/layout.c");
    cc::Build::new()
        .file(format!("{core}/hs_core.c"))
        .file("ffi/layout.c")
        .include(core)
        .flag("-std=c99")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("hs_core");
}
