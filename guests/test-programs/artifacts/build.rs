//! Builds every guest (test programs and examples) for `wasm32-wasip2` and
//! leaves each at `target/guests/<name>.wasm`, the path users and tests rely
//! on. Generates `gen.rs` with a SHOUTY path constant per guest and
//! `foreach_<suite>!` macros (the wasmtime test-programs pattern).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let guests = manifest.parent().unwrap().parent().unwrap().to_path_buf();
    let workspace = guests.parent().unwrap().to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_absolute() {
                t
            } else {
                workspace.join(t)
            }
        })
        .unwrap_or_else(|| workspace.join("target"));
    let build_dir = target.join("guests-build");
    let out_dir = target.join("guests");

    for dir in [
        "sdk",
        "examples",
        "test-programs/src",
        "test-programs/p1/src",
    ] {
        println!("cargo:rerun-if-changed={}", guests.join(dir).display());
    }
    println!("cargo:rerun-if-changed={}", workspace.join("wit").display());
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );

    let test_bins = names(&guests.join("test-programs/src/bin"), true);
    let p1_bins = names(&guests.join("test-programs/p1/src/bin"), true);
    let examples = names(&guests.join("examples"), false);

    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--target=wasm32-wasip2",
            "-p",
            "test-programs",
        ])
        .env("CARGO_TARGET_DIR", &build_dir)
        // Guests need no debug info; it would only slow their compilation.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        // Whole-program optimization: smaller guests (fewer functions and
        // globals, so a smaller instance per process) and faster calls.
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS");
    for example in &examples {
        cmd.args(["-p", example]);
    }
    let status = cmd.status().expect("failed to run cargo for the guests");
    assert!(
        status.success(),
        "building the guests failed; is the target installed? (`rustup target add wasm32-wasip2`)"
    );
    // wasip1 core modules: the programs Hive runs without a component.
    let mut p1 = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    p1.current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--target=wasm32-wasip1",
            "-p",
            "test-programs-p1",
        ])
        .env("CARGO_TARGET_DIR", &build_dir)
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS");
    let status = p1
        .status()
        .expect("failed to run cargo for the wasip1 guests");
    assert!(
        status.success(),
        "building the wasip1 guests failed; is the target installed? (`rustup target add wasm32-wasip1`)"
    );

    std::fs::create_dir_all(&out_dir).unwrap();
    let mut generated = String::new();
    let built = test_bins
        .iter()
        .chain(&examples)
        .map(|name| (name, "wasm32-wasip2"))
        .chain(p1_bins.iter().map(|name| (name, "wasm32-wasip1")));
    for (name, triple) in built {
        let built = build_dir.join(format!("{triple}/release/{name}.wasm"));
        let dest = out_dir.join(format!("{name}.wasm"));
        copy_if_changed(&built, &dest);
        let konst = name.to_uppercase().replace('-', "_");
        generated += &format!(
            "pub const {konst}: &str = {:?};\n",
            dest.display().to_string()
        );
    }
    generated += &format!(
        "pub const GUESTS_DIR: &str = {:?};\n",
        out_dir.display().to_string()
    );
    for suite in ["cli", "proc", "p1"] {
        let members: Vec<_> = test_bins
            .iter()
            .chain(&p1_bins)
            .filter(|n| n.starts_with(&format!("{suite}_")))
            .map(|n| n.to_string())
            .collect();
        generated += &format!(
            "#[macro_export]\nmacro_rules! foreach_{suite} {{ ($mac:ident) => {{ {} }} }}\n",
            members
                .iter()
                .map(|m| format!("$mac!({m});"))
                .collect::<String>()
        );
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("gen.rs");
    std::fs::write(out, generated).unwrap();
}

/// Guest names: `.rs` files in a `bin` dir, or crate directories.
fn names(dir: &Path, files: bool) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            if files {
                (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(String::from))?
            } else {
                path.join("Cargo.toml")
                    .exists()
                    .then(|| path.file_name()?.to_str().map(String::from))?
            }
        })
        .collect();
    names.sort();
    names
}

/// Copies only when the bytes differ, so unchanged guests keep their mtime
/// (and the host's in-memory module cache stays valid).
fn copy_if_changed(from: &Path, to: &Path) {
    let new = std::fs::read(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    if std::fs::read(to).ok().as_deref() != Some(&new[..]) {
        std::fs::write(to, new).unwrap();
    }
}
