//! `host run`: WASI 0.2 command components, their I/O, exit statuses, traps,
//! bad input, and the compiled-component cache.

use crate::util::{Test, temp_dir};
use test_programs_artifacts::*;

macro_rules! assert_test_exists {
    ($name:ident) => {
        #[expect(unused_imports, reason = "existence check only")]
        use self::$name as _;
    };
}
foreach_cli!(assert_test_exists);

#[test]
fn cli_hello() {
    Test::run(CLI_HELLO)
        .stdout("hello from a guest\n")
        .stderr("a line on stderr\n")
        .check();
}

#[test]
fn hello_example() {
    Test::run(HELLO).stdout("Hello, world!\n").check();
}

#[test]
fn cli_args_env() {
    Test::run(CLI_ARGS_ENV)
        .args(["--flag", "two words", "-x"])
        .stdout(&format!(
            "argv[0]={CLI_ARGS_ENV}\nargv[1]=--flag\nargv[2]=two words\nargv[3]=-x\n"
        ))
        .check();
    Test::new()
        .args([
            "run",
            "--env",
            "A=1",
            "--env",
            "B=x=y",
            "--env",
            "INHERITED",
            "--env",
            "ABSENT_VAR",
        ])
        .args(["--argv0", "prog", CLI_ARGS_ENV, "z"])
        .env("INHERITED", "from host")
        .env("ABSENT_VAR_NOT", "")
        .stdout("argv[0]=prog\nargv[1]=z\nenv A=1\nenv B=x=y\nenv INHERITED=from host\n")
        .check();
}

#[test]
fn cli_read_file() {
    let dir = temp_dir("read-file");
    std::fs::write(dir.join("in.txt"), "file contents\n").unwrap();
    let preopen = format!("{}::/data", dir.display());
    Test::new()
        .args(["run", "--dir", &preopen, CLI_READ_FILE, "/data/in.txt"])
        .stdout("file contents\n")
        .check();
    assert_eq!(
        std::fs::read_to_string(dir.join("in.txt.out")).unwrap(),
        "written by the guest\n"
    );
    // Without the preopen the guest sees no file system.
    Test::run(CLI_READ_FILE)
        .args(["/data/in.txt"])
        .stderr_contains("cannot read /data/in.txt")
        .status(1)
        .check();
}

#[test]
fn cli_stdin_echo() {
    Test::run(CLI_STDIN_ECHO)
        .stdin("quiet words\nmore\n")
        .stdout("QUIET WORDS\nMORE\n")
        .check();
}

#[test]
fn cli_exit_code() {
    for code in [0, 3, 42, 255] {
        Test::run(CLI_EXIT_CODE)
            .args([code.to_string()])
            .stdout(&format!("exiting with {code}\n"))
            .status(code)
            .check();
    }
    // std's `process::exit` on wasip2 only carries success or failure.
    Test::run(CLI_EXIT_CODE)
        .args(["42", "std"])
        .stdout("exiting with 42\n")
        .status(1)
        .check();
}

#[test]
fn cli_trap() {
    for (how, why) in [
        ("panic", "wasm `unreachable` instruction executed"),
        ("unreachable", "wasm `unreachable` instruction executed"),
        ("oob", "out of bounds memory access"),
    ] {
        let out = Test::run(CLI_TRAP)
            .args([how])
            .stdout(&format!("about to trap: {how}\n"))
            .stderr_contains(&format!("error: guest `{CLI_TRAP}` (pid 4194305) trapped: wasm trap: {why}\nwasm backtrace:\n"))
            .stderr_contains("cli_trap::main")
            .status(134)
            .check();
        assert!(
            !out.stderr
                .contains("RUST_BACKTRACE=1` environment variable to display a backtrace\nStack")
        );
    }
}

#[test]
fn missing_file() {
    Test::run("no/such/guest.wasm")
        .stderr("error: failed to read `no/such/guest.wasm`\n\nCaused by:\n    No such file or directory (os error 2)\n")
        .status(1)
        .check();
}

#[test]
fn not_wasm() {
    Test::run("Cargo.toml")
        .stderr("error: `Cargo.toml` is not a WebAssembly file (it does not start with `\\0asm`)\n")
        .status(1)
        .check();
}

#[test]
fn truncated_component() {
    let dir = temp_dir("truncated");
    let bytes = std::fs::read(CLI_HELLO).unwrap();
    let path = dir.join("truncated.wasm");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let path = path.display().to_string();
    Test::run(&path)
        .stderr_contains(&format!(
            "error: `{path}` is not a valid WebAssembly component\n\nCaused by:\n"
        ))
        .status(1)
        .check();
}

#[test]
fn core_module() {
    let dir = temp_dir("core");
    let path = dir.join("core.wasm");
    std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
    let path = path.display().to_string();
    Test::run(&path)
        .stderr(&format!(
            "error: `{path}` is a core WebAssembly module, not a component; Hive runs WASI 0.2 components: \
             build it for `wasm32-wasip2`, or adapt it with `wasm-tools component new {path} \
             --adapt wasi_snapshot_preview1.command.wasm -o out.wasm`\n"
        ))
        .status(1)
        .check();
}

#[test]
fn cli_missing_import() {
    Test::run(CLI_MISSING_IMPORT)
        .stderr_contains(&format!(
            "error: `{CLI_MISSING_IMPORT}` cannot be linked: it needs an import Hive does not provide\n\nCaused by:\n    component imports instance `test:missing/nowhere`"
        ))
        .status(1)
        .check();
}

#[test]
fn missing_dir() {
    Test::new()
        .args(["run", "--dir", "/no/such/dir::/data", CLI_HELLO])
        .stderr("error: `--dir /no/such/dir`: no such directory\n")
        .status(1)
        .check();
}

#[test]
fn env_without_name() {
    Test::new()
        .args(["run", "--env", "=value", CLI_HELLO])
        .stderr_contains("invalid value '=value' for '--env <NAME[=VALUE]>': `=value` has no variable name: use `--env NAME=VALUE` or `--env NAME`")
        .status(2)
        .check();
}

#[test]
fn usage_errors() {
    Test::new()
        .args(["run"])
        .stderr_contains("Usage: host run")
        .status(2)
        .check();
    Test::new()
        .args(["frobnicate"])
        .stderr_contains("unrecognized subcommand")
        .status(2)
        .check();
}

#[test]
fn help_has_examples() {
    let out = Test::new().args(["run", "--help"]).any_stdout().check();
    assert!(
        out.stdout
            .contains("Examples:\n  host run target/guests/hello.wasm"),
        "{}",
        out.stdout
    );
    let out = Test::new().args(["--help"]).any_stdout().check();
    assert!(out.stdout.contains("Example:"), "{}", out.stdout);
}

#[test]
fn compiled_cache() {
    let cache = temp_dir("cache");
    let run = || {
        Test::run(CLI_HELLO)
            .cache(&cache)
            .env("HOST_LOG", "host=debug")
            .stdout("hello from a guest\n")
    };
    let first = run().any_stderr().check();
    assert!(
        first.stderr.contains("compiled component cache miss"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("compiled component "),
        "{}",
        first.stderr
    );
    let second = run().any_stderr().check();
    assert!(
        second.stderr.contains("compiled component cache hit"),
        "{}",
        second.stderr
    );
    assert!(!second.stderr.contains("cache miss"), "{}", second.stderr);

    // Corrupt every entry: the host must notice, rebuild, and still run.
    for path in entries(&cache) {
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let third = run().any_stderr().check();
    assert!(
        third
            .stderr
            .contains("discarded a corrupt compiled-component cache entry"),
        "{}",
        third.stderr
    );
    assert!(third.stderr.contains("MAC mismatch"), "{}", third.stderr);
    let fourth = run().any_stderr().check();
    assert!(fourth.stderr.contains("cache hit"), "{}", fourth.stderr);

    // A truncated entry is rebuilt too.
    for path in entries(&cache) {
        std::fs::write(path, b"short").unwrap();
    }
    let fifth = run().any_stderr().check();
    assert!(
        fifth.stderr.contains("shorter than its trailer"),
        "{}",
        fifth.stderr
    );

    // --no-cache neither reads nor writes.
    let empty = temp_dir("no-cache");
    Test::new()
        .args(["run", "--no-cache", CLI_HELLO])
        .cache(&empty)
        .stdout("hello from a guest\n")
        .stderr("a line on stderr\n")
        .check();
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

/// The compiled components in a cache directory.
fn entries(cache: &std::path::Path) -> Vec<std::path::PathBuf> {
    let entries: Vec<_> = std::fs::read_dir(cache)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
        .collect();
    assert!(!entries.is_empty(), "no entries in {}", cache.display());
    entries
}

/// An entry is bound to its key: one copied over another key's file (a
/// valid entry, for another component) is rejected, and the right component
/// is compiled and run.
#[test]
fn compiled_cache_entry_swap() {
    let cache = temp_dir("cache-swap");
    let hello = || {
        Test::run(CLI_HELLO)
            .cache(&cache)
            .env("HOST_LOG", "host=debug")
            .stdout("hello from a guest\n")
            .any_stderr()
            .check()
    };
    hello();
    let hello_entry = entries(&cache).pop().unwrap();
    let args = || {
        Test::run(CLI_ARGS_ENV)
            .cache(&cache)
            .env("HOST_LOG", "host=debug")
            .stdout(&format!("argv[0]={CLI_ARGS_ENV}\n"))
            .any_stderr()
            .check()
    };
    let first = args();
    assert!(first.stderr.contains("cache miss"), "{}", first.stderr);
    let args_entry = entries(&cache)
        .into_iter()
        .find(|path| *path != hello_entry)
        .unwrap();
    std::fs::copy(&hello_entry, &args_entry).unwrap();
    let swapped = args();
    assert!(
        swapped
            .stderr
            .contains("discarded a corrupt compiled-component cache entry"),
        "{}",
        swapped.stderr
    );
    assert!(
        swapped.stderr.contains("MAC mismatch"),
        "{}",
        swapped.stderr
    );
    let again = args();
    assert!(again.stderr.contains("cache hit"), "{}", again.stderr);
    // A renamed (not copied) entry is rejected the same way.
    std::fs::rename(&hello_entry, &args_entry).unwrap();
    let renamed = args();
    assert!(
        renamed.stderr.contains("MAC mismatch"),
        "{}",
        renamed.stderr
    );
    let hello_again = hello();
    assert!(
        hello_again.stderr.contains("cache miss"),
        "{}",
        hello_again.stderr
    );
}

/// `host compile` fills the cache `host run` reads: the first run is a hit.
#[test]
fn compile_fills_the_cache() {
    let cache = temp_dir("compile");
    let compile = || {
        Test::new()
            .args(["compile", CLI_HELLO])
            .cache(&cache)
            .env("HOST_LOG", "host=debug")
            .any_stderr()
            .check()
    };
    let first = compile();
    assert!(first.stderr.contains("cache miss"), "{}", first.stderr);
    assert_eq!(entries(&cache).len(), 1);
    let second = compile();
    assert!(second.stderr.contains("cache hit"), "{}", second.stderr);
    assert!(!second.stderr.contains("cache miss"), "{}", second.stderr);
    let run = Test::run(CLI_HELLO)
        .cache(&cache)
        .env("HOST_LOG", "host=debug")
        .stdout("hello from a guest\n")
        .any_stderr()
        .check();
    assert!(run.stderr.contains("cache hit"), "{}", run.stderr);
    assert!(!run.stderr.contains("cache miss"), "{}", run.stderr);
    // Not a component: an error naming the file, nothing written.
    let bad = temp_dir("compile-bad");
    std::fs::write(bad.join("x.wasm"), b"not wasm").unwrap();
    let bad_path = bad.join("x.wasm").display().to_string();
    Test::new()
        .args(["compile", &bad_path])
        .cache(&cache)
        .stderr_contains("is not a WebAssembly file")
        .status(1)
        .check();
    assert_eq!(entries(&cache).len(), 1);
}
