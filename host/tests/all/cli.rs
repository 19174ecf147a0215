//! `host run`: WASI 0.2 command components, their I/O, exit statuses, traps,
//! bad input, and the compiled-component cache.

use crate::util::{Test, temp_dir, wat_file};
// The `cli_net` guest's tests live in net.rs.
use crate::net::cli_net;
use test_programs_artifacts::*;

macro_rules! assert_test_exists {
    ($name:ident) => {
        #[expect(unused_imports, reason = "existence check only")]
        use self::$name as _;
    };
}
foreach_cli!(assert_test_exists);
foreach_p1!(assert_test_exists);

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
            .stderr_contains(&format!("error: guest `{CLI_TRAP}` (pid "))
            .stderr_contains(&format!(") trapped: wasm trap: {why}\nwasm backtrace:\n"))
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
fn core_module_with_other_imports() {
    let path = wat_file(
        "core-env",
        r#"(module (import "env" "foo" (func)) (func (export "_start")))"#,
    );
    Test::run(&path)
        .stderr(&format!(
            "error: `{path}` is a core WebAssembly module that imports `env::foo`; Hive runs core modules \
             that import only `wasi_snapshot_preview1` (wasip1), and WASI 0.2 components: build it for \
             `wasm32-wasip1` or `wasm32-wasip2`, or make it a component with `wasm-tools component new {path} \
             --adapt wasi_snapshot_preview1.command.wasm -o out.wasm` (the adapter is published with every \
             wasmtime release)\n"
        ))
        .status(1)
        .check();
}

#[test]
fn reactors_are_not_commands() {
    let path = wat_file(
        "core-reactor",
        r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))) (func (export "_initialize")))"#,
    );
    Test::run(&path)
        .stderr(&format!(
            "error: `{path}` is a library (reactor), not a command: it exports no `_start`, so there is \
             nothing to run; build it as a command (a binary with `fn main`)\n"
        ))
        .status(1)
        .check();
    let path = wat_file("component-reactor", "(component)");
    Test::run(&path)
        .stderr(&format!(
            "error: `{path}` is a library (reactor), not a command: it exports no `wasi:cli/run`, so there \
             is nothing to run; build it as a command (a binary with `fn main`)\n"
        ))
        .status(1)
        .check();
}

#[test]
fn async_components_are_named() {
    for (name, wat) in [
        ("stream", "(component (type (stream u8)))"),
        ("future", "(component (type (future)))"),
    ] {
        let path = wat_file(name, wat);
        Test::run(&path)
            .stderr_contains(&format!(
                "error: `{path}` uses the component model's async features (`stream`, `future` or async \
                 functions, as WASI 0.3 components do), which Hive does not run yet: build it for WASI 0.2 \
                 (`wasm32-wasip2`)\n\nCaused by:"
            ))
            .status(1)
            .check();
    }
}

/// wasip1 core modules run directly: args, env, stdio, preopens, and any
/// exit code (the adapter route keeps only 0 and 1).
#[test]
fn p1_cli() {
    Test::new()
        .args(["run", "--env", "A=1", P1_CLI, "--flag"])
        .stdout(&format!("argv[0]={P1_CLI}\nargv[1]=--flag\nenv A=1\n"))
        .stderr("a line on stderr\n")
        .check();
    for code in [0, 3, 42, 255] {
        Test::run(P1_CLI)
            .args(["exit", &code.to_string()])
            .any_stdout()
            .any_stderr()
            .status(code)
            .check();
    }
    Test::run(P1_CLI)
        .args(["stdin"])
        .stdin("from stdin\n")
        .stdout(&format!("argv[0]={P1_CLI}\nargv[1]=stdin\nFROM STDIN\n"))
        .any_stderr()
        .check();
    let dir = temp_dir("p1-read");
    std::fs::write(dir.join("in.txt"), "file contents\n").unwrap();
    Test::new()
        .args([
            "run",
            "--dir",
            &format!("{}::/data", dir.display()),
            P1_CLI,
            "read",
            "/data/in.txt",
        ])
        .stdout(&format!(
            "argv[0]={P1_CLI}\nargv[1]=read\nargv[2]=/data/in.txt\nfile contents\n"
        ))
        .any_stderr()
        .check();
    assert_eq!(
        std::fs::read_to_string(dir.join("in.txt.out")).unwrap(),
        "written by a wasip1 guest\n"
    );
    // A read-only preopen holds for wasip1 too.
    Test::new()
        .args([
            "run",
            "--ro-dir",
            &format!("{}::/data", dir.display()),
            P1_CLI,
            "read",
            "/data/in.txt",
        ])
        .any_stdout()
        .stderr_contains("a line on stderr")
        .status(134)
        .check();
    // Memory limits hold for wasip1 modules too.
    let grow = wat_file(
        "p1-grow",
        r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
             (memory 1)
             (func (export "_start") (call $exit (i32.add (i32.const 10) (memory.grow (i32.const 200))))))"#,
    );
    Test::new()
        .args(["run", "--max-memory", "4M", &grow])
        .stderr_contains(
            "was refused memory: growing to 12.6M of linear memory would pass its limit of 4M",
        )
        .status(9)
        .check();
}

/// What `cli_fs_ops sub` prints in a read-only `--cwd` holding `sub/in.txt`.
const READ_ONLY_RELATIVE: &str = "create: PermissionDenied\nwrite: PermissionDenied\n\
    truncate: PermissionDenied\nrename: PermissionDenied\nmkdir: PermissionDenied\n\
    symlink-out: PermissionDenied\nsymlink-in: PermissionDenied\nremove: PermissionDenied\n\
    read: \"relative\\n\"\n";

/// `--cwd`: relative paths (and tools that default to `.`) resolve inside a
/// preopen, for the root and its forked children.
#[test]
fn cwd() {
    let dir = temp_dir("cwd");
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/in.txt"), "relative\n").unwrap();
    let preopen = format!("{}::/data", dir.display());
    Test::new()
        .args([
            "run",
            "--dir",
            &preopen,
            "--cwd",
            "/data/sub",
            CLI_READ_FILE,
            "in.txt",
        ])
        .stdout("relative\n")
        .check();
    assert!(dir.join("sub/in.txt.out").exists());
    Test::new()
        .args([
            "run",
            "--dir",
            &preopen,
            "--cwd",
            "/data",
            CLI_READ_FILE,
            "sub/in.txt",
        ])
        .stdout("relative\n")
        .check();
    // Read-only stays read-only through the cwd.
    Test::new()
        .args([
            "run", "--ro-dir", &preopen, "--cwd", "/data", CLI_FS_OPS, "sub",
        ])
        .stdout(READ_ONLY_RELATIVE)
        .check();
    // A forked child has the same working directory.
    Test::new()
        .args([
            "run", "--ro-dir", &preopen, "--cwd", "/data", CLI_FS_OPS, "fork", "sub",
        ])
        .stdout(READ_ONLY_RELATIVE)
        .check();
    // wasi-libc resolves `sub/in.txt` as `/sub/in.txt`: with a preopen
    // named `/sub`, that is where it goes. Said up front.
    Test::new()
        .args([
            "run",
            "--dir",
            &format!("{}::/sub", dir.display()),
            "--cwd",
            "/sub",
            CLI_READ_FILE,
        ])
        .args(["sub/in.txt"])
        .stderr_contains("`--cwd /sub`: relative paths under `sub` reach the preopen `/sub`, not ")
        .stderr_contains("cannot read sub/in.txt")
        .status(1)
        .check();
    for (cwd, why) in [
        (
            "/elsewhere",
            "`--cwd /elsewhere`: `/elsewhere` is not inside any preopen; give it one, e.g. `--dir HOST::/elsewhere`",
        ),
        (
            "data",
            "`--cwd data`: give an absolute guest path without `..`",
        ),
        (
            "/data/../x",
            "`--cwd /data/../x`: give an absolute guest path without `..`",
        ),
        ("/data/nope", "is not a directory"),
    ] {
        Test::new()
            .args(["run", "--dir", &preopen, "--cwd", cwd, CLI_HELLO])
            .stderr_contains(why)
            .status(1)
            .check();
    }
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

/// Nothing after the guest is a host option: a wrapper `host run tool.wasm
/// "$@"` must not let its caller widen the sandbox (or stop the guest from
/// seeing `--help`).
#[test]
fn guest_args_are_never_host_options() {
    let flags: &[&[&str]] = &[
        &["--version"],
        &["-V"],
        &["--help"],
        &["-h"],
        &["--"],
        &["--", "--dir", "."],
        &["--env", "A=1"],
        &["--inherit-env"],
        &["--dir", "."],
        &["--ro-dir", "."],
        &["--cwd", "/"],
        &["--argv0", "x"],
        &["--max-memory", "4G"],
        &["--allow-spawn"],
        &["--allow-spawn=sh"],
        &["--allow-net"],
        &["--allow-net=127.0.0.1:*"],
        &["--kill-grace-ms", "1"],
        &["--no-cache"],
        &["--cache-dir", "/tmp"],
        &["--max-procs", "9"],
        &["-S", "inherit-env"],
        &["--invoke", "f"],
        &["run", "x.wasm"],
    ];
    for args in flags {
        let mut expected = format!("argv[0]={CLI_ARGS_ENV}\n");
        for (i, arg) in args.iter().enumerate() {
            expected += &format!("argv[{}]={arg}\n", i + 1);
        }
        Test::run(CLI_ARGS_ENV)
            .args(args.iter().copied())
            .env("A", "from the host")
            .stdout(&expected)
            .check();
    }
    // The guest's file really stayed out of reach.
    let dir = temp_dir("wrapper");
    std::fs::write(dir.join("secret.txt"), "secret\n").unwrap();
    Test::run(CLI_READ_FILE)
        .args(["--dir", &dir.display().to_string()])
        .args([dir.join("secret.txt").display().to_string()])
        .stderr_contains("cannot read")
        .status(1)
        .check();
    assert!(!dir.join("secret.txt.out").exists());
    // Host options still go before the guest.
    Test::new()
        .args(["run", "--env", "A=1", "--", CLI_ARGS_ENV, "x"])
        .stdout(&format!("argv[0]={CLI_ARGS_ENV}\nargv[1]=x\nenv A=1\n"))
        .check();
}

#[test]
fn inherit_env() {
    let out = Test::new()
        .args(["run", "--inherit-env", "--env", "B=override", CLI_ARGS_ENV])
        .env("A", "1")
        .env("B", "2")
        .any_stdout()
        .check();
    assert!(out.stdout.contains("\nenv A=1\n"), "{}", out.stdout);
    assert!(out.stdout.contains("\nenv B=override\n"), "{}", out.stdout);
    assert!(!out.stdout.contains("env B=2"), "{}", out.stdout);
    assert!(out.stdout.contains("\nenv PATH="), "{}", out.stdout);
    // Without it, only what --env names.
    Test::run(CLI_ARGS_ENV)
        .env("A", "1")
        .stdout(&format!("argv[0]={CLI_ARGS_ENV}\n"))
        .check();
}

const MEMORY_REFUSED: &str =
    "M of linear memory would pass its limit of 512M; raise it with `--max-memory SIZE`\n";

#[test]
fn cli_alloc() {
    // Past the default limit: the guest's own abort, and our line naming
    // the flag, once.
    let out = Test::run(CLI_ALLOC)
        .args(["600"])
        .stderr_contains(&format!("guest `{CLI_ALLOC}` (pid "))
        .stderr_contains(") was refused memory: growing to 60")
        .stderr_contains(MEMORY_REFUSED)
        .stderr_contains("memory allocation of 629145600 bytes failed")
        .status(134)
        .check();
    assert_eq!(out.stderr.matches("was refused memory").count(), 1);
    // A guest that copes with the failure still gets the line.
    Test::run(CLI_ALLOC)
        .args(["600", "try"])
        .stdout("could not allocate 600 MiB; carrying on\n")
        .stderr_contains(MEMORY_REFUSED)
        .check();
    Test::new()
        .args(["run", "--max-memory", "1G", CLI_ALLOC, "600"])
        .stdout("allocated 600 MiB\n")
        .check();
    Test::new()
        .args(["run", "--max-memory", "8M", CLI_ALLOC, "16", "try"])
        .stdout("could not allocate 16 MiB; carrying on\n")
        .stderr_contains("would pass its limit of 8M; raise it with `--max-memory SIZE`")
        .check();
    Test::new()
        .args(["run", "--max-memory", "lots", CLI_ALLOC, "1"])
        .stderr_contains("invalid value 'lots' for '--max-memory <SIZE>': `lots` is not a size")
        .status(2)
        .check();
    let help = Test::new().args(["run", "--help"]).any_stdout().check();
    assert!(help.stdout.contains("[default: 512M]"), "{}", help.stdout);
}

#[test]
fn cli_fs_ops() {
    let denied = "create: PermissionDenied\nwrite: PermissionDenied\ntruncate: PermissionDenied\n\
                  rename: PermissionDenied\nmkdir: PermissionDenied\nsymlink-out: PermissionDenied\n\
                 symlink-in: PermissionDenied\nremove: PermissionDenied\n\
                  read: \"kept\\n\"\n";
    for how in [&["/d"][..], &["fork", "/d"]] {
        let dir = temp_dir("ro-dir");
        std::fs::write(dir.join("in.txt"), "kept\n").unwrap();
        Test::new()
            .args([
                "run",
                "--ro-dir",
                &format!("{}::/d", dir.display()),
                CLI_FS_OPS,
            ])
            .args(how.iter().copied())
            .stdout(denied)
            .check();
        let mut left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["in.txt"]);
        assert_eq!(
            std::fs::read_to_string(dir.join("in.txt")).unwrap(),
            "kept\n"
        );
    }
    // The same operations in a `--dir` all work.
    let dir = temp_dir("rw-dir");
    std::fs::write(dir.join("in.txt"), "kept\n").unwrap();
    Test::new()
        .args([
            "run",
            "--dir",
            &format!("{}::/d", dir.display()),
            CLI_FS_OPS,
            "/d",
        ])
        .stdout(
            "create: ok\nwrite: ok\ntruncate: ok\nrename: ok\nmkdir: ok\n\
             symlink-out: PermissionDenied\nsymlink-in: ok\nremove: NotFound\nread: NotFound\n",
        )
        .check();
    // A guest may not plant a link out of its preopen (for an OS child, or
    // the user, to follow later); one inside is fine.
    assert!(!dir.join("out").exists() && dir.join("out").symlink_metadata().is_err());
    assert_eq!(
        std::fs::read_link(dir.join("link")).unwrap(),
        std::path::Path::new("in.txt")
    );
}

#[test]
fn dir_errors() {
    Test::new()
        .args(["run", "--dir", "Cargo.toml", CLI_HELLO])
        .stderr("error: `--dir Cargo.toml`: `Cargo.toml` is a file, not a directory; preopen its directory instead\n")
        .status(1)
        .check();
    Test::new()
        .args(["run", "--ro-dir", "/no/such/dir", CLI_HELLO])
        .stderr("error: `--ro-dir /no/such/dir`: no such directory\n")
        .status(1)
        .check();
}

/// `wasmtime run` users get Hive's flag for what they typed.
#[test]
fn wasmtime_flags_get_a_hint() {
    for (args, hint) in [
        (&["-S", "inherit-env"][..], "Hive's flag is `--inherit-env`"),
        (&["-S", "inherit-network"], "Hive's flag is `--allow-net`"),
        (&["-S", "tcp=y"], "Hive's flag is `--allow-net`"),
        (&["-S", "http"], "Hive has no equivalent of `-S http`"),
        (
            &["-W", "max-memory-size=1000"],
            "Hive's flag is `--max-memory SIZE`",
        ),
        (&["-W", "simd=n"], "Hive has no equivalent of `-W simd`"),
        (&["-C", "cache=n"], "Hive's flag is `--no-cache`"),
        (&["-O", "opt-level=2"], "Hive has no equivalent of `-O`"),
        (&["--invoke", "add"], "Hive has no `--invoke`"),
    ] {
        Test::new()
            .args(["run"])
            .args(args.iter().copied())
            .args([CLI_HELLO])
            .stderr_contains("that is `wasmtime run` syntax")
            .stderr_contains(hint)
            .status(2)
            .check();
    }
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

/// A guest whose preopen holds the cache (`--dir ~` with the default
/// `~/.cache/hive`) runs without it, and the secret it could read is
/// replaced once it is gone: nothing it learned or planted is trusted.
#[test]
fn a_guest_never_reaches_the_cache() {
    let home = temp_dir("cache-home");
    let cache = home.join(".cache/hive");
    Test::run(CLI_HELLO)
        .cache(&cache)
        .stdout("hello from a guest\n")
        .stderr("a line on stderr\n")
        .check();
    let secret = std::fs::read(cache.join("secret.key")).unwrap();
    let before = entries(&cache);
    // The guest may write in there (here: files of its own, a link) and
    // read the secret while it runs...
    let cache_path = cache.display().to_string();
    Test::new()
        .args(["run", "--dir", &home.display().to_string(), CLI_FS_OPS, &cache_path])
        .cache(&cache)
        .any_stdout()
        .stderr(&format!(
            " WARN the compiled-component cache `{cache_path}` is inside `--dir {}`, which the guest can reach: \
             running without the cache (give `--cache-dir` a directory outside every preopen)\n",
            home.display()
        ))
        .check();
    // ...but that secret no longer exists, and the host neither read nor
    // wrote an entry.
    assert!(!cache.join("secret.key").exists());
    assert_eq!(entries(&cache), before);
    // The next run makes a new secret, under which the old entries are
    // forgeries: rebuilt, never loaded.
    let next = Test::run(CLI_HELLO)
        .cache(&cache)
        .env("HOST_LOG", "host=debug")
        .stdout("hello from a guest\n")
        .any_stderr()
        .check();
    assert!(next.stderr.contains("MAC mismatch"), "{}", next.stderr);
    assert_ne!(std::fs::read(cache.join("secret.key")).unwrap(), secret);
    // A read-only preopen of a directory inside the cache counts too.
    Test::new()
        .args(["run", "--ro-dir", &cache.display().to_string(), CLI_HELLO])
        .cache(&cache)
        .stdout("hello from a guest\n")
        .stderr_contains("which the guest can reach: running without the cache")
        .check();
}

/// `--max-total-memory` bounds all guests together; a refusal names it.
#[test]
fn max_total_memory() {
    Test::new()
        .args(["run", "--max-total-memory", "40M", CLI_ALLOC, "60", "try"])
        .stdout("could not allocate 60 MiB; carrying on\n")
        .stderr_contains(
            "was refused memory: all guests together would pass the host's limit of 40M of linear memory; \
             raise it with `--max-total-memory SIZE`",
        )
        .check();
    Test::new()
        .args(["run", "--max-total-memory", "1G", CLI_ALLOC, "60", "try"])
        .stdout("allocated 60 MiB\n")
        .check();
}
