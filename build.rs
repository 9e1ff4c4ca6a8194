//! Compiles the C kernels in `csrc/cpu/`: every `*_ref.c` file always, and each ISA's files
//! (`*_avx2.c`, `*_avx512.c`, `*_neon.c`) with that ISA's own flags, so one binary carries every
//! variant and `src/kernels` picks one at run time. With the `bindgen` feature it also regenerates
//! the Rust declarations of `csrc/kernels.h` and checks them against `src/kernels/sys.rs`.
//! With the `cuda` feature it compiles every `csrc/cuda/*.cu` with nvcc to PTX (`compute_80`) and to
//! a fatbin holding sm_80 and sm_90 cubins plus that PTX, warnings as errors, and writes
//! `$OUT_DIR/cuda_modules.rs`, which embeds them (`src/cuda` includes it).
use std::path::{Path, PathBuf};

fn sources(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(suffix)))
        .collect();
    v.sort();
    v
}

fn compile(lib: &str, files: &[PathBuf], flags: &[&str]) {
    if files.is_empty() {
        return;
    }
    let mut b = cc::Build::new();
    b.include("csrc").opt_level(3).flag_if_supported("-std=c11").warnings(true);
    b.flag_if_supported("-fno-math-errno");
    for f in flags {
        b.flag(f);
    }
    for f in files {
        b.file(f);
    }
    b.compile(lib);
}

fn main() {
    let cpu = Path::new("csrc/cpu");
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=CC");
    println!("cargo:rerun-if-env-changed=CFLAGS");
    for entry in std::fs::read_dir("csrc").unwrap().chain(std::fs::read_dir(cpu).unwrap()) {
        println!("cargo:rerun-if-changed={}", entry.unwrap().path().display());
    }
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap();
    compile("graft_ref", &sources(cpu, "_ref.c"), &[]);
    if arch == "x86_64" {
        compile("graft_avx2", &sources(cpu, "_avx2.c"), &["-mavx2", "-mfma", "-mf16c", "-mbmi2"]);
        compile(
            "graft_avx512",
            &sources(cpu, "_avx512.c"),
            &[
                "-mavx2", "-mfma", "-mf16c", "-mbmi2", "-mavx512f", "-mavx512bw", "-mavx512vl",
                "-mavx512dq", "-mavx512vnni",
            ],
        );
    }
    if arch == "aarch64" {
        compile("graft_neon", &sources(cpu, "_neon.c"), &["-march=armv8.2-a+dotprod+fp16"]);
    }
    bindings();
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        cuda();
    }
}

/// nvcc from `NVCC`, else `CUDA_HOME/bin/nvcc`, else `nvcc` on `PATH`.
fn find_nvcc() -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=PATH");
    if let Some(p) = std::env::var_os("NVCC") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    if let Some(home) = std::env::var_os("CUDA_HOME") {
        let p = Path::new(&home).join("bin/nvcc");
        if p.is_file() {
            return Some(p);
        }
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).map(|d| d.join("nvcc")).find(|p| p.is_file())
}

fn run_nvcc(nvcc: &Path, args: &[&std::ffi::OsStr], what: &Path) {
    let out = std::process::Command::new(nvcc)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", nvcc.display()));
    if !out.status.success() {
        panic!(
            "nvcc failed on {} ({}):\n{}{}",
            what.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Compiles `csrc/cuda/*.cu`: each file to `<name>.ptx` (compute_80, the JIT fallback for newer GPUs)
/// and `<name>.fatbin` (sm_80 and sm_90 cubins assembled from that PTX, plus the PTX). Warnings of
/// nvcc and ptxas are errors (`-Werror all-warnings`), so a kernel that stops compiling cleanly
/// fails the build. Files compile in parallel, one per core.
fn cuda() {
    let dir = Path::new("csrc/cuda");
    for entry in std::fs::read_dir(dir).expect("reading csrc/cuda") {
        println!("cargo:rerun-if-changed={}", entry.unwrap().path().display());
    }
    let Some(nvcc) = find_nvcc() else {
        panic!(
            "the `cuda` feature needs nvcc, and none was found: set NVCC=/path/to/nvcc, set CUDA_HOME, or put nvcc \
             on PATH (./scripts/install-nvcc.sh installs CUDA 13.0's nvcc from PyPI and prints its path)"
        );
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("cuda");
    std::fs::create_dir_all(&out).unwrap();
    let files = sources(dir, ".cu");
    assert!(!files.is_empty(), "no csrc/cuda/*.cu");
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..jobs.min(files.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(f) = files.get(i) else { break };
                let stem = f.file_stem().unwrap().to_str().unwrap();
                let ptx = out.join(format!("{stem}.ptx"));
                let fatbin = out.join(format!("{stem}.fatbin"));
                let os = |s: &'static str| std::ffi::OsStr::new(s);
                run_nvcc(
                    &nvcc,
                    &[
                        os("-ptx"), os("-arch=compute_80"), os("-std=c++17"), os("-Werror"),
                        os("all-warnings"), os("-Icsrc"), os("-o"), ptx.as_os_str(), f.as_os_str(),
                    ],
                    f,
                );
                run_nvcc(
                    &nvcc,
                    &[
                        os("-fatbin"), os("-Werror"), os("all-warnings"), os("-gencode"), os("arch=compute_80,code=sm_80"),
                        os("-gencode"), os("arch=compute_80,code=sm_90"), os("-gencode"), os("arch=compute_80,code=compute_80"),
                        os("-o"), fatbin.as_os_str(), ptx.as_os_str(),
                    ],
                    f,
                );
            });
        }
    });
    let mut rs = String::from("// Generated by build.rs from csrc/cuda/*.cu. Do not edit.\n");
    rs.push_str("/// Every compiled `csrc/cuda/*.cu` file, in name order.\npub(crate) static MODULES: &[EmbeddedModule] = &[\n");
    for f in &files {
        let stem = f.file_stem().unwrap().to_str().unwrap();
        let ptx = out.join(format!("{stem}.ptx"));
        let fatbin = out.join(format!("{stem}.fatbin"));
        rs.push_str(&format!(
            "    EmbeddedModule {{ name: {stem:?}, ptx: include_str!({:?}), fatbin: include_bytes!({:?}) }},\n",
            ptx.display().to_string(),
            fatbin.display().to_string()
        ));
    }
    rs.push_str("];\n");
    std::fs::write(out.join("../cuda_modules.rs"), rs).unwrap();
}

#[cfg(feature = "bindgen")]
fn bindings() {
    println!("cargo:rerun-if-env-changed=GRAFT_WRITE_BINDINGS");
    let out = bindgen::Builder::default()
        .header("csrc/kernels.h")
        .clang_arg("-Icsrc")
        .allowlist_function("graft_.*")
        .allowlist_type("graft_.*")
        .allowlist_var("GRAFT_.*")
        .layout_tests(false)
        .generate_comments(false)
        .raw_line("//! Generated by bindgen from csrc/kernels.h (`cargo build --features bindgen`). Do not edit.")
        .raw_line("#![allow(non_camel_case_types, non_upper_case_globals, dead_code, missing_docs)]")
        .generate()
        .expect("bindgen failed on csrc/kernels.h")
        .to_string();
    let checked_in = Path::new("src/kernels/sys.rs");
    let old = std::fs::read_to_string(checked_in).unwrap_or_default();
    if old != out {
        if std::env::var("GRAFT_WRITE_BINDINGS").is_ok() {
            std::fs::write(checked_in, &out).unwrap();
        } else {
            let fresh = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("sys.rs");
            std::fs::write(&fresh, &out).unwrap();
            panic!(
                "src/kernels/sys.rs is stale against csrc/kernels.h (fresh output: {}); \
                 rerun with GRAFT_WRITE_BINDINGS=1 cargo build --features bindgen",
                fresh.display()
            );
        }
    }
}

#[cfg(not(feature = "bindgen"))]
fn bindings() {}
