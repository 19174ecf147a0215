//! Builds every guest (test programs and examples) for `wasm32-wasip2` and
//! leaves each at `target/guests/<name>.wasm`, the path users and tests rely
//! on. Generates `gen.rs` with a SHOUTY path constant per guest, and, as
//! wasmtime's test-programs do, classifies every guest into a suite (by its
//! name prefix; a guest it cannot classify fails the build) so that each is
//! known to be run by some test: see [`SUITES`].

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a guest's source lives, which decides how it is classified.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `test-programs/src/bin/<name>.rs`, built for `wasm32-wasip2`.
    TestProgram,
    /// `test-programs/p1/src/bin/<name>.rs`, built for `wasm32-wasip1`.
    P1,
    /// `examples/<name>/`, a crate of its own, for `wasm32-wasip2`.
    Example,
}

/// One guest to build and expose.
struct Guest<'a> {
    name: &'a str,
    suite: &'static str,
    /// The target it is built for.
    triple: &'static str,
    /// Its source, relative to the workspace.
    source: String,
}

impl Guest<'_> {
    fn new(name: &str, source: Source) -> Guest<'_> {
        let (triple, source_path) = match source {
            Source::TestProgram => (
                "wasm32-wasip2",
                format!("guests/test-programs/src/bin/{name}.rs"),
            ),
            Source::P1 => (
                "wasm32-wasip1",
                format!("guests/test-programs/p1/src/bin/{name}.rs"),
            ),
            Source::Example => ("wasm32-wasip2", format!("guests/examples/{name}")),
        };
        Guest {
            name,
            suite: classify(source, name),
            triple,
            source: source_path,
        }
    }
}

/// How a suite's guests are known to be run.
enum Run {
    /// Each guest `<name>` has a `#[test] fn <name>` in `host/tests/all`:
    /// `gen.rs` has a `foreach_<suite>!` macro listing the suite, and the
    /// test file's `foreach_<suite>!(assert_test_exists)` fails to compile
    /// when a guest has no test of its name.
    TestPerGuest,
    /// The guests are run by name (their SHOUTY constant or `<name>.wasm`)
    /// from files below these directories of the workspace: one program
    /// taking a scenario argument, a parent forking its child beside it, a
    /// harness. This crate's test `every_guest_is_run` checks that each is
    /// named there (outside its own source).
    ByName(&'static [&'static str]),
}

/// Every suite: its name and how its guests are run. A new prefix needs a
/// suite here, and a test that runs it.
const SUITES: &[(&str, Run)] = &[
    // `host run` on WASI commands (host/tests/all/cli.rs; `cli_net` in net.rs).
    ("cli", Run::TestPerGuest),
    // wasip1 core modules (host/tests/all/cli.rs).
    ("p1", Run::TestPerGuest),
    // `proc_parent` runs one fork scenario per argument (host/tests/all/fork.rs)
    // and forks `proc_child`.
    (
        "proc",
        Run::ByName(&["host/tests/all", "guests/test-programs/src/bin"]),
    ),
    // `cluster_cases`: a primary forking itself as workers
    // (host/tests/all/cluster.rs).
    ("cluster", Run::ByName(&["host/tests/all"])),
    // `fault_cases`: a child's fault beside a working sibling
    // (host/tests/all/faults.rs).
    ("fault", Run::ByName(&["host/tests/all"])),
    // `supervisor_cases`: hive::supervisor (host/tests/all/supervisor.rs).
    ("supervisor", Run::ByName(&["host/tests/all"])),
    // `limits_cases`: children past their limits (host/tests/all/limits.rs).
    ("limits", Run::ByName(&["host/tests/all"])),
    // `capacity_cases`: forks refused where the host is full
    // (host/tests/all/capacity.rs).
    ("capacity", Run::ByName(&["host/tests/all"])),
    // `http_cases`: responses a guest gets wrong, streamed and whole
    // (host/tests/all/http.rs).
    ("http", Run::ByName(&["host/tests/all"])),
    // `serve_hello`: a wasi:http proxy component for `host serve`
    // (host/tests/all/serve.rs).
    ("serve", Run::ByName(&["host/tests/all"])),
    // `thread_cases`: worker threads, ports and buffers a hostile guest
    // misuses (host/tests/all/threads.rs).
    ("thread", Run::ByName(&["host/tests/all"])),
    // `os_cases`: OS children and signals (host/tests/all/{os,signals}.rs).
    ("os", Run::ByName(&["host/tests/all"])),
    // The conformance matrix's Hive side (tests/conformance); `conf_parent`
    // forks `conf_child`.
    (
        "conf",
        Run::ByName(&["tests/conformance", "guests/test-programs/src/bin"]),
    ),
    // `just bench` (bench/run.py); `bench_parent` forks `bench_child`;
    // `bench_chaos` is `just chaos` (bench/chaos.py) and its short run in
    // host/tests/all/cluster.rs.
    (
        "bench",
        Run::ByName(&["bench", "guests/test-programs/src/bin"]),
    ),
    // The examples: run by the integration tests, or forked by another example.
    (
        "example",
        Run::ByName(&["host/tests/all", "guests/examples"]),
    ),
];

/// The suite of a guest, by where it lives and its name prefix. Panics on a
/// guest it cannot classify, as wasmtime's build script does: every guest
/// must belong to a suite that some test runs.
fn classify(source: Source, name: &str) -> &'static str {
    let suite = match source {
        Source::Example => "example",
        Source::P1 if name.starts_with("p1_") => "p1",
        // A test program's suite is its name's prefix, one of `SUITES`.
        Source::TestProgram => SUITES
            .iter()
            .map(|(suite, _)| *suite)
            .find(|suite| {
                name.strip_prefix(suite)
                    .is_some_and(|case| case.starts_with('_'))
            })
            // If you are reading this because you hit this panic: name the
            // program after an existing suite, or add a suite to `SUITES`,
            // with a test that runs it.
            .unwrap_or_else(|| {
                panic!(
                    "don't know how to classify test name `{name}` to a suite: a test program is \
                     named `<suite>_<case>`, with one of the suites in `SUITES` (artifacts/build.rs)"
                )
            }),
        Source::P1 => panic!(
            "don't know how to classify test name `{name}` to a suite: wasip1 programs in \
             `test-programs/p1/src/bin` are named `p1_<case>`"
        ),
    };
    assert!(
        SUITES.iter().any(|(s, _)| *s == suite),
        "suite `{suite}` is not in `SUITES`"
    );
    suite
}

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
    // Classified before anything is built, so that a guest no suite takes
    // fails the build at once.
    let sources = [
        (&test_bins, Source::TestProgram),
        (&p1_bins, Source::P1),
        (&examples, Source::Example),
    ];
    let all: Vec<Guest> = sources
        .into_iter()
        .flat_map(|(names, source)| names.iter().map(move |name| Guest::new(name, source)))
        .collect();

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
        .env_remove("RUSTFLAGS")
        // `cargo clippy` on the host crates must not lint (and fail) the
        // guests it builds; they are linted on their own.
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
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
        .env_remove("RUSTFLAGS")
        // `cargo clippy` on the host crates must not lint (and fail) the
        // guests it builds; they are linted on their own.
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    let status = p1
        .status()
        .expect("failed to run cargo for the wasip1 guests");
    assert!(
        status.success(),
        "building the wasip1 guests failed; is the target installed? (`rustup target add wasm32-wasip1`)"
    );

    std::fs::create_dir_all(&out_dir).unwrap();
    let mut generated = String::new();
    let mut by_name = String::new();
    for Guest {
        name,
        suite,
        triple,
        source,
    } in &all
    {
        // Every guest must have been built: a missing file panics here.
        let built = build_dir.join(format!("{triple}/release/{name}.wasm"));
        let dest = out_dir.join(format!("{name}.wasm"));
        copy_if_changed(&built, &dest);
        let konst = name.to_uppercase().replace('-', "_");
        generated += &format!(
            "pub const {konst}: &str = {:?};\n",
            dest.display().to_string()
        );
        if let Some((_, Run::ByName(places))) = SUITES.iter().find(|(s, _)| s == suite) {
            by_name += &format!("    ({name:?}, {konst:?}, {source:?}, &{places:?}),\n");
        }
    }
    // Used by tests that need the directory itself (a module beside the
    // guests, a path that leaves it).
    generated += &format!(
        "pub const GUESTS_DIR: &str = {:?};\n",
        out_dir.display().to_string()
    );
    for (suite, run) in SUITES {
        if let Run::TestPerGuest = run {
            let members: String = all
                .iter()
                .filter(|g| g.suite == *suite)
                .map(|g| format!("$mac!({});", g.name))
                .collect();
            generated += &format!(
                "#[macro_export]\nmacro_rules! foreach_{suite} {{ ($mac:ident) => {{ {members} }} }}\n"
            );
        }
    }
    // For `every_guest_is_run` (lib.rs): (guest, constant, its source, where
    // it must be named).
    generated += &format!(
        "#[cfg(test)]\nconst RUN_BY_NAME: &[(&str, &str, &str, &[&str])] = &[\n{by_name}];\n"
    );
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
