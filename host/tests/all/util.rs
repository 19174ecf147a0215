//! A just-style test builder: run `host` with arguments, compare stdout,
//! stderr and status exactly, and dump everything on a mismatch.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A `host` running in the background, killed when the test ends, even by
/// a failed assertion.
pub struct Host(pub std::process::Child);

impl std::ops::Deref for Host {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Host {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `host ARGS` in the background (shared cache, no `HOST_LOG`):
/// the host and its stdout.
pub fn spawn_host<'a>(
    args: impl IntoIterator<Item = &'a str>,
) -> (Host, std::io::BufReader<std::process::ChildStdout>) {
    spawn_host_with(args, [])
}

/// [`spawn_host`] with `envs` set too.
pub fn spawn_host_with<'a>(
    args: impl IntoIterator<Item = &'a str>,
    envs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> (Host, std::io::BufReader<std::process::ChildStdout>) {
    let mut host = Command::new(env!("CARGO_BIN_EXE_host"))
        .args(args)
        .envs(envs)
        .env("HOST_CACHE_DIR", shared_cache())
        .env_remove("HOST_LOG")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(host.stdout.take().unwrap());
    (Host(host), out)
}

/// The compiled-component cache shared by tests (each guest compiles once).
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("hive-cache")
}

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("t-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes the module or component `wat` describes to a fresh file.
pub fn wat_file(name: &str, wat: &str) -> String {
    let path = temp_dir(name).join(format!("{name}.wasm"));
    std::fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
    path.display().to_string()
}

#[must_use]
pub struct Test {
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    stderr_contains: Vec<String>,
    status: i32,
    cache: PathBuf,
    cwd: PathBuf,
}

pub struct Output {
    pub stdout: String,
    pub stderr: String,
    /// The host's pid (gone by now).
    pub pid: u32,
}

impl Test {
    pub fn new() -> Test {
        Test {
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            stdout: Some(String::new()),
            stderr: Some(String::new()),
            stderr_contains: Vec::new(),
            status: 0,
            cache: shared_cache(),
            cwd: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        }
    }

    /// `host run GUEST ARGS...`
    pub fn run(guest: &str) -> Test {
        Test::new().args(["run", guest])
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Test {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Test {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Run in `dir` (default: the `host` crate's directory).
    pub fn cwd(mut self, dir: &Path) -> Test {
        self.cwd = dir.to_owned();
        self
    }

    pub fn cache(mut self, dir: &Path) -> Test {
        self.cache = dir.to_owned();
        self
    }

    pub fn stdin(mut self, text: &str) -> Test {
        self.stdin = Some(text.into());
        self
    }

    pub fn stdout(mut self, text: &str) -> Test {
        self.stdout = Some(text.into());
        self
    }

    pub fn stderr(mut self, text: &str) -> Test {
        self.stderr = Some(text.into());
        self
    }

    /// Do not compare stderr exactly; require these pieces instead.
    pub fn stderr_contains(mut self, piece: &str) -> Test {
        self.stderr = None;
        self.stderr_contains.push(piece.into());
        self
    }

    pub fn any_stdout(mut self) -> Test {
        self.stdout = None;
        self
    }

    pub fn any_stderr(mut self) -> Test {
        self.stderr = None;
        self
    }

    pub fn status(mut self, status: i32) -> Test {
        self.status = status;
        self
    }

    #[track_caller]
    pub fn check(self) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_host"));
        cmd.args(&self.args)
            .current_dir(&self.cwd)
            .env("HOST_CACHE_DIR", &self.cache)
            .env_remove("HOST_LOG")
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("failed to start host");
        let pid = child.id();
        let input = self.stdin.clone().unwrap_or_default();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(input.as_bytes());
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let status = out.status.code().unwrap_or(-1);
        let mut problems = Vec::new();
        if status != self.status {
            problems.push(format!("status: expected {}, got {status}", self.status));
        }
        if let Some(expected) = &self.stdout
            && *expected != stdout
        {
            problems.push(format!(
                "stdout differs:\n--- expected\n{expected}--- got\n{stdout}---"
            ));
        }
        if let Some(expected) = &self.stderr
            && *expected != stderr
        {
            problems.push(format!(
                "stderr differs:\n--- expected\n{expected}--- got\n{stderr}---"
            ));
        }
        for piece in &self.stderr_contains {
            if !stderr.contains(piece.as_str()) {
                problems.push(format!("stderr lacks {piece:?}"));
            }
        }
        if !problems.is_empty() {
            panic!(
                "\ncommand: host {:?}\ncwd: {}\nstatus: {status}\n{}\n--- full stdout\n{stdout}\n--- full stderr\n{stderr}",
                self.args,
                self.cwd.display(),
                problems.join("\n"),
            );
        }
        Output {
            stdout,
            stderr,
            pid,
        }
    }
}
