//! The C API from C: `tests/c/capi_test.c` is compiled with the system C compiler against
//! `include/graft.h` and the libraries cargo built for this test run, and run:
//! - on the default model and the test adapters, linked with the static library;
//! - the same, installed by `scripts/install.sh` into a temporary prefix and built the way the
//!   README says, with `pkg-config --cflags --libs graft` (the shared library);
//! - under valgrind (`--leak-check=full`), or built with `-fsanitize=address` where valgrind is
//!   missing, for leaks and invalid accesses: the whole program on a tiny random model with two
//!   random adapters (a token of the default model costs seconds under valgrind), then its short
//!   `--smoke` run on the default model.
//!
//! Also checks that the header compiles as C++.
mod adapters_common;
use adapters_common::random_native;
use graft::model::tiny::{write_tiny_llama, TinySpec};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The folder with the `libgraft.a` / `libgraft.so` of this build. Cargo builds the library with
/// every crate type for the integration tests and leaves the static and shared ones beside the
/// test executables (`target/<profile>/deps`); `cargo build` also copies them one folder up.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("test executable folder").to_path_buf();
    let candidates = [deps.clone(), deps.parent().map(Path::to_path_buf).unwrap_or_default()];
    let dir = candidates
        .iter()
        .find(|d| d.join("libgraft.a").exists())
        .unwrap_or_else(|| panic!("no libgraft.a in {} or its parent: build the library (cargo build --lib)", deps.display()))
        .clone();
    // The library must be at least as new as every source file, or we would test old code.
    let lib_time = std::fs::metadata(dir.join("libgraft.a")).and_then(|m| m.modified()).expect("libgraft.a mtime");
    let newest = newest_source(&root().join("src"));
    assert!(lib_time >= newest.0, "{} is older than {}: rebuild it (cargo build --lib)", dir.join("libgraft.a").display(), newest.1.display());
    dir
}

fn newest_source(dir: &Path) -> (std::time::SystemTime, PathBuf) {
    let mut best = (std::time::SystemTime::UNIX_EPOCH, dir.to_path_buf());
    for e in std::fs::read_dir(dir).expect("reading src/").flatten() {
        let p = e.path();
        let cand = if p.is_dir() { newest_source(&p) } else { (e.metadata().and_then(|m| m.modified()).unwrap_or(best.0), p) };
        if cand.0 > best.0 {
            best = cand;
        }
    }
    best
}

fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

/// Runs `cmd`, panicking with its output when it fails.
fn run(what: &str, cmd: &mut Command) -> Output {
    let t = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: could not start {cmd:?}: {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed ({}):\n{cmd:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}", out.status);
    eprintln!("{what}: ok in {:.1} s", t.elapsed().as_secs_f64());
    out
}

/// The libraries the static library needs from the system (`rustc --print native-static-libs`).
const NATIVE_LIBS: [&str; 7] = ["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"];
const CFLAGS: [&str; 6] = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g"];

/// The model and adapter arguments of the C program, or None (with the reason) when missing.
fn test_files() -> Option<[PathBuf; 3]> {
    let m = root().join("models");
    let files = [m.join("SmolLM2-135M-Instruct.Q4_1.gguf"), m.join("lora-r8-s7.gguf"), m.join("lora-r16-s1.gguf")];
    for f in &files {
        if !f.exists() {
            eprintln!("SKIP: {} is missing (scripts/fetch-model.sh, scripts/make-test-adapters.sh)", f.display());
            return None;
        }
    }
    Some(files)
}

/// `cc` with the test flags (plus `extra`) building `src` against the static library into `exe`.
fn cc_static(src: &Path, lib: &Path, exe: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new("cc");
    c.args(CFLAGS).args(extra).arg("-I").arg(root().join("include")).arg(src).arg(lib.join("libgraft.a")).args(NATIVE_LIBS).arg("-o").arg(exe);
    c
}

fn check_output(what: &str, out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    assert!(last.ends_with(" passed, 0 failed"), "{what}: last line {last:?}\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn c_program_runs_against_the_static_and_shared_library() {
    let Some(files) = test_files() else { return };
    let lib = lib_dir();
    let tmp = std::env::temp_dir().join(format!("graft-capi-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let src = root().join("tests/c/capi_test.c");

    if have("c++") {
        run("graft.h as C++", Command::new("c++").args(["-std=c++11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-x", "c++"]).arg(root().join("include/graft.h")));
    }

    // Static library, native run.
    let exe = tmp.join("capi_test_static");
    run("cc (static)", &mut cc_static(&src, &lib, &exe, &[]));
    let out = run("capi_test (static)", Command::new(&exe).args(&files));
    check_output("capi_test (static)", &out);
    print!("{}", String::from_utf8_lossy(&out.stdout));

    // Installed with scripts/install.sh, built with pkg-config as the README shows (shared library).
    if have("pkg-config") {
        let prefix = tmp.join("prefix");
        run("scripts/install.sh", Command::new("bash").arg(root().join("scripts/install.sh")).arg(&prefix).env("GRAFT_LIB_DIR", &lib));
        let pc = prefix.join("lib/pkgconfig");
        let exe = tmp.join("capi_test_shared");
        run(
            "cc $(pkg-config --cflags --libs graft)",
            Command::new("sh")
                .arg("-c")
                .arg(r#"cc -std=c11 -Wall -Werror "$1" -o "$2" $(pkg-config --cflags --libs graft) -lm -lpthread"#)
                .arg("sh")
                .arg(&src)
                .arg(&exe)
                .env("PKG_CONFIG_PATH", &pc),
        );
        let out = run("capi_test (shared, via pkg-config)", Command::new(&exe).args(&files).env("LD_LIBRARY_PATH", prefix.join("lib")));
        check_output("capi_test (shared)", &out);
    } else {
        eprintln!("SKIP: the pkg-config check (no pkg-config)");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A tiny llama and two adapters for it (a LoRA and a VeRA) in `dir`: the arguments of the C
/// program for the runs under valgrind.
fn tiny_files(dir: &Path) -> [PathBuf; 3] {
    let model = dir.join("tiny.gguf");
    write_tiny_llama(&model, TinySpec::default(), 3).unwrap();
    let m = graft::model::Model::load(&model).unwrap();
    let a = dir.join("tiny-lora.safetensors");
    graft::adapter::graft_format::write(&a, &random_native(&m, "lora", 4, 1, false)).unwrap();
    let b = dir.join("tiny-vera.safetensors");
    graft::adapter::graft_format::write(&b, &random_native(&m, "vera", 8, 2, false)).unwrap();
    [model, a, b]
}

#[test]
fn c_program_is_clean_under_valgrind_or_asan() {
    let Some(files) = test_files() else { return };
    let lib = lib_dir();
    let tmp = std::env::temp_dir().join(format!("graft-capi-mem-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let tiny = tiny_files(&tmp);
    let src = root().join("tests/c/capi_test.c");
    let exe = tmp.join("capi_test");
    if have("valgrind") {
        run("cc (static, for valgrind)", &mut cc_static(&src, &lib, &exe, &[]));
        // Exit code 99 tells valgrind's findings from the program's own failures (1). The
        // suppressions cover the standard library's thread handle, which valgrind sees as
        // "possibly lost" (std keeps an offset pointer to it).
        let valgrind = |args: &[&std::ffi::OsStr], what: &str| {
            let out = run(
                what,
                Command::new("valgrind")
                    .args(["--leak-check=full", "--error-exitcode=99"])
                    .arg(format!("--suppressions={}", root().join("tests/c/valgrind.supp").display()))
                    .arg(&exe)
                    .args(args),
            );
            check_output(what, &out);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("ERROR SUMMARY: 0 errors"), "{what}:\n{err}");
            assert!(err.contains("definitely lost: 0 bytes") || err.contains("All heap blocks were freed"), "{what}:\n{err}");
        };
        valgrind(&tiny.iter().map(|p| p.as_os_str()).collect::<Vec<_>>(), "capi_test on a tiny model under valgrind");
        let mut smoke = vec![std::ffi::OsStr::new("--smoke")];
        smoke.extend(files.iter().map(|p| p.as_os_str()));
        valgrind(&smoke, "capi_test --smoke on the default model under valgrind");
    } else {
        let probe = tmp.join("probe");
        std::fs::write(tmp.join("probe.c"), "int main(void) { return 0; }\n").unwrap();
        let asan = Command::new("cc").arg("-fsanitize=address").arg(tmp.join("probe.c")).arg("-o").arg(&probe).output().is_ok_and(|o| o.status.success())
            && Command::new(&probe).output().is_ok_and(|o| o.status.success());
        if !asan {
            eprintln!("SKIP: neither valgrind nor AddressSanitizer is available (apt-get install valgrind)");
            let _ = std::fs::remove_dir_all(&tmp);
            return;
        }
        run("cc -fsanitize=address", &mut cc_static(&src, &lib, &exe, &["-fsanitize=address", "-fno-omit-frame-pointer"]));
        for (what, args) in [("capi_test on a tiny model under ASan", tiny.to_vec()), ("capi_test on the default model under ASan", files.to_vec())] {
            let out = run(what, Command::new(&exe).args(&args).env("ASAN_OPTIONS", "detect_leaks=1"));
            check_output(what, &out);
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// `examples/c/hello_graft.c` (the README's C program: two adapters alternately, then a few VeRA
/// steps) built against the static and the shared library and run on the default model, then
/// built with AddressSanitizer (LeakSanitizer on) and run again: no leak, no invalid access.
#[test]
fn example_program_runs_against_both_libraries_and_is_clean_under_asan() {
    let Some(files) = test_files() else { return };
    let lib = lib_dir();
    let tmp = std::env::temp_dir().join(format!("graft-capi-example-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let src = root().join("examples/c/hello_graft.c");
    let check = |what: &str, out: &Output| {
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(s.contains("adapter a:") && s.contains("adapter b:") && s.contains("step 3/3") && s.trim_end().ends_with("ok"), "{what}: {s}");
    };
    let exe = tmp.join("hello_static");
    run("cc hello_graft.c (static)", &mut cc_static(&src, &lib, &exe, &[]));
    check("hello_graft (static)", &run("hello_graft (static)", Command::new(&exe).args(&files)));
    if lib.join("libgraft.so").exists() {
        let exe = tmp.join("hello_shared");
        run(
            "cc hello_graft.c (shared)",
            Command::new("cc").args(CFLAGS).arg("-I").arg(root().join("include")).arg(&src).arg("-L").arg(&lib).arg("-lgraft").arg(format!("-Wl,-rpath,{}", lib.display())).arg("-o").arg(&exe),
        );
        check("hello_graft (shared)", &run("hello_graft (shared)", Command::new(&exe).args(&files)));
    } else {
        panic!("no libgraft.so beside {}", lib.join("libgraft.a").display());
    }
    let exe = tmp.join("hello_asan");
    let built = cc_static(&src, &lib, &exe, &["-fsanitize=address", "-fno-omit-frame-pointer"]).output().expect("running cc");
    if !built.status.success() {
        eprintln!("SKIP: the ASan run (this cc cannot build with -fsanitize=address: {})", String::from_utf8_lossy(&built.stderr));
        return;
    }
    let out = run("hello_graft under ASan", Command::new(&exe).args(&files).env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=99"));
    check("hello_graft (ASan)", &out);
    let _ = std::fs::remove_dir_all(&tmp);
}
