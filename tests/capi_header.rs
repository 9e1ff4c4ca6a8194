//! `include/graft.h` is what cbindgen makes of `src/capi/` with `cbindgen.toml`: fails when the
//! checked-in header is stale. `GRAFT_WRITE_HEADER=1` rewrites it instead.
use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("reading cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/capi/mod.rs"))
        .generate()
        .expect("cbindgen could not generate the header from src/capi/");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("the header is UTF-8");
    let path = root.join("include/graft.h");
    if std::env::var_os("GRAFT_WRITE_HEADER").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("writing include/graft.h");
        eprintln!("wrote {}", path.display());
        return;
    }
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    if old != fresh {
        let line = old.lines().zip(fresh.lines()).position(|(a, b)| a != b).unwrap_or(old.lines().count().min(fresh.lines().count()));
        panic!(
            "include/graft.h is stale: it differs from what cbindgen makes of src/capi/ from line {} on\n  checked in: {:?}\n  generated:  {:?}\nregenerate it with: GRAFT_WRITE_HEADER=1 cargo test --test capi_header",
            line + 1,
            old.lines().nth(line).unwrap_or("<end of file>"),
            fresh.lines().nth(line).unwrap_or("<end of file>")
        );
    }
}
