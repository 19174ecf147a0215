//! The conformance matrix: every scenario in `cases/*.json` runs on Node
//! (plain JavaScript on the machine's `node`) and on Hive, in every
//! parent → child combination it makes sense for, and each trace must equal
//! the reference: what Node prints when Node is both parent and child.
//!
//! The columns ([`COLUMNS`]):
//!
//! - `wasm→os`: `"kind": "os"` scenarios, `conf_spawn.wasm` (in-process,
//!   `--allow-spawn`) against `node/spawn.js`;
//! - every other column runs the fork scenarios (no `kind`): `node/parent.js`
//!   or `conf_parent.wasm` as the parent, `node/child.js` or
//!   `conf_child.wasm` as the child, in `json` or (`adv`) `advanced`
//!   serialization. `node→node` (and `node→node adv`) is the reference the
//!   others are compared to, so its cell only says that it ran (`ref`).
//!   `wasm→wasm` has no serialization and is compared to `node→node`.
//!   The runner tells both parents which child to fork by adding `module`,
//!   `execPath`, `execArgv` and `serialization` to each `fork` step's
//!   options; `node→wasm` runs `conformance-host run conf_child.wasm` (the
//!   `host` binary, built from its own `main.rs` by this crate).
//!
//! - `"kind": "cluster"` scenarios run only in the three cluster columns:
//!   `cluster node` (`node/cluster.js` as the primary, with Node workers: the
//!   reference), `cluster wasm` (`conformance-host run --allow-net
//!   conf_cluster.wasm`, forking itself as its workers) and `cluster
//!   wasm→node` (the same, told by the scenario's `exec` to fork
//!   `node/cluster.js`). The step vocabulary is `node/CLUSTER.md`. Until
//!   `conf_cluster.wasm` is built, the two wasm columns are `n/a`.
//!
//! A scenario may state where Hive as the *parent* deliberately differs
//! (`hive_extra`: lines Hive prints that Node does not; `hive_instead`:
//! `[node line, hive line]` pairs; both with `why`): they apply to
//! `wasm→wasm`, `wasm→node` and the wasm cluster columns only. Where Node is
//! the parent (`node→wasm`) the trace must equal `node→node` exactly, unless
//! the scenario says how that column differs (`differs`: `{columns:
//! {"extra", "instead", "why"}}`): a wasm child that differs from a Node
//! child on purpose. `differs` may also name `cluster wasm`, whose workers
//! are wasm (applied on top of `hive_*`).
//! `na` (`{columns: why}`) marks the columns a scenario makes no sense in; a
//! key names one column or several, comma-separated. A scenario with
//! `expect` has no Node reference (no Node parent could run it: the
//! malformed-input scenarios, whose Node peer writes garbage on its
//! channel): `expect` is the trace the parent must print, and `na` must
//! cover `node→node` and `node→node adv`.
//!
//! `KNOWN_FAILURES` lists the cells expected to fail, each with a reason; a
//! listed cell that passes fails the run, so the list cannot rot.
//! `KNOWN_FLAKY` lists those that fail some of the time (a race in Hive).
//!
//! `cargo test -p conformance` (or `just conformance`); pass a substring to
//! run only matching scenarios.

use host::{Hive, HiveConfig, RunOptions, SpawnPolicy, Stdio};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio as OsStdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Cells expected to fail, every time: `(scenario, columns, reason)`
/// (columns as in [`covers`]). A listed cell that passes fails the run.
/// Empty is the goal.
const KNOWN_FAILURES: &[(&str, &str, &str)] = &[];

/// Cells that fail some of the time, because of a race in Hive:
/// `(scenario, columns, reason)`. A failure is reported as known (with its
/// trace), a pass is allowed and says `✔ flaky`. Empty is the goal.
const KNOWN_FLAKY: &[(&str, &str, &str)] = &[];

/// How messages travel between a parent and a Node child.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Json,
    Advanced,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Json => "json",
            Mode::Advanced => "advanced",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What a column runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `conf_parent.wasm` forks `conf_child.wasm`.
    WasmWasm,
    /// `conf_spawn.wasm` starts OS programs (`"kind": "os"` scenarios).
    WasmOs,
    /// `node/parent.js` forks `node/child.js`: the reference.
    NodeNode(Mode),
    /// `conf_parent.wasm` forks `node/child.js`.
    WasmNode(Mode),
    /// `node/parent.js` forks `host run conf_child.wasm`.
    NodeWasm(Mode),
    /// `node/cluster.js` as the primary, Node workers (`"kind": "cluster"`):
    /// the reference of the cluster columns.
    ClusterNode,
    /// `host run conf_cluster.wasm` as the primary, forking itself.
    ClusterWasm,
    /// `host run conf_cluster.wasm` as the primary, forking `node/cluster.js`.
    ClusterWasmNode,
    /// `node/threads.js` (`"kind": "threads"`): the reference of the
    /// worker_threads column.
    ThreadsNode,
    /// `host run conf_threads.wasm`, its workers the same module.
    ThreadsWasm,
}

struct Column {
    name: &'static str,
    kind: Kind,
}

/// The columns of the matrix, json kinds first, then advanced ones.
const COLUMNS: &[Column] = &[
    Column {
        name: "wasm→wasm",
        kind: Kind::WasmWasm,
    },
    Column {
        name: "wasm→os",
        kind: Kind::WasmOs,
    },
    Column {
        name: "node→node",
        kind: Kind::NodeNode(Mode::Json),
    },
    Column {
        name: "wasm→node",
        kind: Kind::WasmNode(Mode::Json),
    },
    Column {
        name: "node→wasm",
        kind: Kind::NodeWasm(Mode::Json),
    },
    Column {
        name: "node→node adv",
        kind: Kind::NodeNode(Mode::Advanced),
    },
    Column {
        name: "wasm→node adv",
        kind: Kind::WasmNode(Mode::Advanced),
    },
    Column {
        name: "node→wasm adv",
        kind: Kind::NodeWasm(Mode::Advanced),
    },
    Column {
        name: "cluster node",
        kind: Kind::ClusterNode,
    },
    Column {
        name: "cluster wasm",
        kind: Kind::ClusterWasm,
    },
    Column {
        name: "cluster wasm→node",
        kind: Kind::ClusterWasmNode,
    },
    Column {
        name: "threads node",
        kind: Kind::ThreadsNode,
    },
    Column {
        name: "threads wasm",
        kind: Kind::ThreadsWasm,
    },
];

/// Whether a scenario's (or `KNOWN_FAILURES`') key names `column`: a key
/// is one column name or several, comma-separated
/// (`"node→wasm, node→wasm adv"`).
fn covers(key: &str, column: &str) -> bool {
    key.split(',').any(|k| k.trim() == column)
}

const TIMEOUT: Duration = Duration::from_secs(10);

/// Cells run at once: each spends most of its time waiting for processes.
const THREADS: usize = 4;

struct Case {
    name: String,
    json: Value,
    /// The `node→node` trace, per mode, run once by whichever cell needs
    /// it first (a cluster scenario's `cluster node` trace is in the first).
    reference: [OnceLock<Trace>; 2],
}

#[derive(Clone)]
struct Trace {
    lines: Vec<String>,
    /// The parent ran to its end (no time-out, exit status 0).
    ok: bool,
}

impl Case {
    fn is_os(&self) -> bool {
        self.json["kind"].as_str() == Some("os")
    }

    fn is_cluster(&self) -> bool {
        self.json["kind"].as_str() == Some("cluster")
    }

    fn is_threads(&self) -> bool {
        self.json["kind"].as_str() == Some("threads")
    }

    /// Why the scenario is `n/a` in `column`, if it says so.
    fn not_applicable(&self, column: &str) -> Option<String> {
        let na = self.json["na"].as_object()?;
        na.iter()
            .find(|(key, _)| covers(key, column))
            .map(|(_, why)| why.as_str().unwrap_or_default().to_owned())
    }

    /// Panics on a scenario whose fields do not fit together.
    fn check(&self) {
        let name = &self.name;
        for (key, why) in self.json["na"].as_object().into_iter().flatten() {
            check_columns(key, &format!("{name}: `na`"));
            assert!(
                why.as_str().is_some_and(|w| !w.is_empty()),
                "{name}: `na` {key:?} needs a reason"
            );
        }
        for (key, differs) in self.json["differs"].as_object().into_iter().flatten() {
            check_columns(key, &format!("{name}: `differs`"));
            assert!(
                COLUMNS.iter().all(|c| !covers(key, c.name)
                    || matches!(
                        c.kind,
                        Kind::NodeWasm(_) | Kind::ClusterWasm | Kind::ThreadsWasm
                    )),
                "{name}: `differs` is for the columns with wasm children compared to Node \
                 children (node→wasm, cluster wasm, threads wasm): {key:?}"
            );
            assert!(
                differs["why"].as_str().is_some(),
                "{name}: `differs` {key:?} needs a `why`"
            );
        }
        let has_reference = ["node→node", "node→node adv"]
            .iter()
            .any(|c| self.not_applicable(c).is_none());
        if self.json.get("expect").is_some() {
            assert!(
                !has_reference,
                "{name}: a scenario with `expect` has no Node reference: `na` must cover node→node"
            );
            assert!(
                self.json.get("hive_extra").is_none() && self.json.get("hive_instead").is_none(),
                "{name}: `expect` is Hive's own trace: no `hive_extra` or `hive_instead`"
            );
        } else if !self.is_os() && !self.is_threads() && !has_reference {
            panic!("{name}: without a node→node reference the scenario needs `expect`");
        }
    }
}

/// Panics unless every name in `key` is a column.
fn check_columns(key: &str, what: &str) {
    for k in key.split(',') {
        assert!(
            COLUMNS.iter().any(|c| c.name == k.trim()),
            "{what} names no column: {k:?} (the columns: {})",
            COLUMNS
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

#[derive(Clone)]
enum Outcome {
    Pass,
    /// The reference ran (the `node→node` cells).
    Reference,
    Fail {
        /// What the trace is compared to, and its name (`node→node`, `expect`).
        reference: (String, Vec<String>),
        got: Vec<String>,
    },
    /// With the scenario's reason, if it gave one (an os scenario in a
    /// fork column, or the other way round, needs none).
    NotApplicable(Option<String>),
}

struct Runner<'a> {
    runtime: tokio::runtime::Runtime,
    hive: Hive,
    dir: &'a Path,
}

fn main() -> ExitCode {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance");
    let mut cases: Vec<Case> = std::fs::read_dir(dir.join("cases"))
        .expect("cases dir")
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "json").then_some(path)
        })
        .map(|path| Case {
            name: path.file_stem().unwrap().to_string_lossy().into_owned(),
            json: serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            reference: Default::default(),
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    for case in &cases {
        case.check();
    }
    for (name, column, _) in KNOWN_FAILURES.iter().chain(KNOWN_FLAKY) {
        assert!(
            cases.iter().any(|c| c.name == *name),
            "KNOWN_FAILURES/KNOWN_FLAKY: no scenario {name}"
        );
        check_columns(column, &format!("KNOWN_FAILURES/KNOWN_FLAKY {name}"));
    }
    cases.retain(|c| filter.as_ref().is_none_or(|f| c.name.contains(f.as_str())));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = HiveConfig {
        cache_dir: Some(target_dir().join("hive-cache")),
        ..HiveConfig::default()
    };
    let hive = runtime.block_on(async { Hive::new(config) }).expect("hive");
    let runner = Runner {
        runtime,
        hive,
        dir: &dir,
    };

    // Run the cells on a few threads: each spends most of its time waiting.
    let cells: Vec<(usize, usize)> = (0..cases.len())
        .flat_map(|i| (0..COLUMNS.len()).map(move |k| (i, k)))
        .collect();
    let results = Mutex::new(vec![
        vec![Outcome::NotApplicable(None); COLUMNS.len()];
        cases.len()
    ]);
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                loop {
                    let n = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some(&(i, k)) = cells.get(n) else { break };
                    let outcome = runner.cell(&cases[i], &COLUMNS[k]);
                    results.lock().unwrap()[i][k] = outcome;
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    report(&cases, &results)
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// Adds `options` to the options of every `fork` step.
fn with_fork_options(scenario: &Value, options: &[(&str, Value)]) -> Value {
    let mut scenario = scenario.clone();
    for step in scenario["parent"].as_array_mut().into_iter().flatten() {
        let Some(step) = step.as_array_mut() else {
            continue;
        };
        if step.first().and_then(Value::as_str) != Some("fork") {
            continue;
        }
        while step.len() < 3 {
            step.push(Value::Object(Default::default()));
        }
        let opts = step[2].as_object_mut().expect("fork options are an object");
        for (key, value) in options {
            opts.insert((*key).to_owned(), value.clone());
        }
    }
    scenario
}

impl Runner<'_> {
    fn cell(&self, case: &Case, column: &Column) -> Outcome {
        let cluster_column = matches!(
            column.kind,
            Kind::ClusterNode | Kind::ClusterWasm | Kind::ClusterWasmNode
        );
        if cluster_column != case.is_cluster() {
            return Outcome::NotApplicable(None);
        }
        if cluster_column {
            return self.cluster_cell(case, column);
        }
        let threads_column = matches!(column.kind, Kind::ThreadsNode | Kind::ThreadsWasm);
        if threads_column != case.is_threads() {
            return Outcome::NotApplicable(None);
        }
        if threads_column {
            return self.threads_cell(case, column);
        }
        match (column.kind, case.is_os()) {
            (Kind::WasmOs, true) => {
                let node = run_node(&self.dir.join("node/spawn.js"), &case.json.to_string());
                let got = self.run_hive(test_programs_artifacts::CONF_SPAWN, &case.json, true);
                return compare(case, column.name, ("node", &node.lines), got, true);
            }
            (Kind::WasmOs, false) | (_, true) => return Outcome::NotApplicable(None),
            _ => {}
        }
        if let Some(why) = case.not_applicable(column.name) {
            return Outcome::NotApplicable(Some(why));
        }
        match column.kind {
            Kind::NodeNode(mode) => reference_ran(self.reference(case, mode)),
            Kind::WasmWasm => {
                let got = self.run_hive(test_programs_artifacts::CONF_PARENT, &case.json, false);
                self.compare_to_reference(case, column.name, Mode::Json, got, true)
            }
            Kind::WasmNode(mode) => {
                let child = self.dir.join("node/child.js");
                let scenario = with_fork_options(
                    &case.json,
                    &[
                        ("module", child.to_str().unwrap().into()),
                        ("serialization", mode.name().into()),
                    ],
                );
                let got = self.run_hive(test_programs_artifacts::CONF_PARENT, &scenario, true);
                self.compare_to_reference(case, column.name, mode, got, true)
            }
            Kind::NodeWasm(mode) => {
                let cache = target_dir().join("hive-cache");
                let scenario = with_fork_options(
                    &case.json,
                    &[
                        ("module", test_programs_artifacts::CONF_CHILD.into()),
                        ("execPath", env!("CARGO_BIN_EXE_conformance-host").into()),
                        (
                            "execArgv",
                            serde_json::json!(["run", "--cache-dir", cache.to_str().unwrap()]),
                        ),
                        ("serialization", mode.name().into()),
                    ],
                );
                let got = run_node(&self.dir.join("node/parent.js"), &scenario.to_string());
                self.compare_to_reference(case, column.name, mode, got.lines, false)
            }
            Kind::WasmOs
            | Kind::ClusterNode
            | Kind::ClusterWasm
            | Kind::ClusterWasmNode
            | Kind::ThreadsNode
            | Kind::ThreadsWasm => unreachable!(),
        }
    }

    /// A `"kind": "cluster"` scenario in a cluster column: `node/cluster.js`
    /// is the reference; the wasm primary is `conformance-host run
    /// conf_cluster.wasm` (`n/a` while that is not built), told to fork
    /// `node/cluster.js` in `cluster wasm→node` by the scenario's `exec`.
    fn cluster_cell(&self, case: &Case, column: &Column) -> Outcome {
        if let Some(why) = case.not_applicable(column.name) {
            return Outcome::NotApplicable(Some(why));
        }
        let script = self.dir.join("node/cluster.js");
        let reference = case.reference[Mode::Json.index()]
            .get_or_init(|| run_node(&script, &case.json.to_string()));
        if column.kind == Kind::ClusterNode {
            return reference_ran(reference);
        }
        let wasm = Path::new(test_programs_artifacts::GUESTS_DIR).join("conf_cluster.wasm");
        if !wasm.exists() {
            return Outcome::NotApplicable(Some("conf_cluster.wasm not built yet".into()));
        }
        let cache = target_dir().join("hive-cache");
        let mut scenario = case.json.clone();
        let mut command = Command::new(env!("CARGO_BIN_EXE_conformance-host"));
        command.args(["run", "--allow-net", "--cache-dir", cache.to_str().unwrap()]);
        if column.kind == Kind::ClusterWasmNode {
            scenario["exec"] = script.to_str().unwrap().into();
            command.args(["--allow-spawn", "--allow-fork"]);
        }
        command.arg(&wasm).arg(scenario.to_string());
        let got = run_command(command, "host");
        compare(
            case,
            column.name,
            ("cluster node", &reference.lines),
            got.lines,
            true,
        )
    }

    /// A `"kind": "threads"` scenario: `node/threads.js` runs the case on
    /// Node (the reference), `conf_threads.wasm` on Hive; each starts its
    /// own workers from itself.
    fn threads_cell(&self, case: &Case, column: &Column) -> Outcome {
        if let Some(why) = case.not_applicable(column.name) {
            return Outcome::NotApplicable(Some(why));
        }
        let script = self.dir.join("node/threads.js");
        let reference = case.reference[Mode::Json.index()]
            .get_or_init(|| run_node(&script, &case.json.to_string()));
        if column.kind == Kind::ThreadsNode {
            return reference_ran(reference);
        }
        let got = self.run_hive(test_programs_artifacts::CONF_THREADS, &case.json, false);
        compare(
            case,
            column.name,
            ("threads node", &reference.lines),
            got,
            true,
        )
    }

    /// The `node→node` trace in `mode`, or the scenario's `expect`.
    fn reference<'c>(&self, case: &'c Case, mode: Mode) -> &'c Trace {
        case.reference[mode.index()].get_or_init(|| match case.json["expect"].as_array() {
            Some(expect) => Trace {
                lines: expect
                    .iter()
                    .map(|l| l.as_str().expect("`expect` lines are strings").to_owned())
                    .collect(),
                ok: true,
            },
            None => {
                let scenario = match mode {
                    Mode::Json => case.json.clone(),
                    Mode::Advanced => {
                        with_fork_options(&case.json, &[("serialization", "advanced".into())])
                    }
                };
                run_node(&self.dir.join("node/parent.js"), &scenario.to_string())
            }
        })
    }

    fn compare_to_reference(
        &self,
        case: &Case,
        column: &str,
        mode: Mode,
        got: Vec<String>,
        hive_parent: bool,
    ) -> Outcome {
        let reference = self.reference(case, mode);
        let name = if case.json.get("expect").is_some() {
            "expect"
        } else if mode == Mode::Json {
            "node→node"
        } else {
            "node→node adv"
        };
        compare(case, column, (name, &reference.lines), got, hive_parent)
    }

    /// Runs `guest` in-process with the scenario as its argument, with
    /// `--allow-spawn` if `spawn` (`conf_spawn` runs OS programs,
    /// `conf_parent` forks `node`).
    fn run_hive(&self, guest: &str, scenario: &Value, spawn: bool) -> Vec<String> {
        let (stdio, captured) = Stdio::capture();
        let mut options = RunOptions::new(guest);
        options.args = vec![scenario.to_string()];
        options.stdio = Some(stdio);
        if spawn {
            options.allow_spawn = SpawnPolicy::All;
        }
        let ran = self
            .runtime
            .block_on(async { tokio::time::timeout(TIMEOUT, self.hive.run(options)).await });
        let mut lines = lines(&captured.stdout());
        match ran {
            Err(_) => lines.push("(timed out)".into()),
            Ok(Err(e)) => lines.push(format!("(host error: {e:#})")),
            Ok(Ok(status)) if !status.success() => {
                lines.push(format!("(parent ended with {status})"));
                lines.extend(self::lines(&captured.stderr()));
            }
            Ok(Ok(_)) => {}
        }
        lines
    }
}

/// A reference column's cell: it says only that the reference ran to its end.
fn reference_ran(reference: &Trace) -> Outcome {
    if reference.ok {
        Outcome::Reference
    } else {
        Outcome::Fail {
            reference: ("expected".into(), vec!["(a run to the end)".into()]),
            got: reference.lines.clone(),
        }
    }
}

/// Applies the differences the scenario states for `column` (Hive as the
/// parent: `hive_extra`, `hive_instead`; a wasm child that differs on
/// purpose: `differs`), then compares.
fn compare(
    case: &Case,
    column: &str,
    reference: (&str, &[String]),
    mut got: Vec<String>,
    hive_parent: bool,
) -> Outcome {
    let differs = case.json["differs"]
        .as_object()
        .and_then(|d| d.iter().find(|(key, _)| covers(key, column)))
        .map(|(_, d)| d)
        .unwrap_or(&Value::Null);
    let mut extra = vec![&differs["extra"]];
    let mut instead = vec![&differs["instead"]];
    if hive_parent {
        extra.push(&case.json["hive_extra"]);
        instead.push(&case.json["hive_instead"]);
    }
    let fail = |got: Vec<String>| Outcome::Fail {
        reference: (reference.0.to_owned(), reference.1.to_vec()),
        got,
    };
    let mut adjusted = got.clone();
    // `instead`: [reference line, the line printed in its place].
    for pair in instead.iter().flat_map(|i| i.as_array()).flatten() {
        let (Some(node_line), Some(hive_line)) = (pair[0].as_str(), pair[1].as_str()) else {
            panic!(
                "{}: `instead` entries are [node line, hive line]",
                case.name
            );
        };
        match adjusted.iter().position(|l| l == hive_line) {
            Some(at) => adjusted[at] = node_line.to_owned(),
            None => {
                got.push(format!(
                    "(expected {hive_line:?} instead of {node_line:?}, as the scenario says)"
                ));
                return fail(got);
            }
        }
    }
    for line in extra
        .iter()
        .flat_map(|e| e.as_array())
        .flatten()
        .filter_map(Value::as_str)
    {
        if let Some(at) = adjusted.iter().position(|l| l == line) {
            adjusted.remove(at);
        } else {
            got.push(format!("(expected {line:?}, as the scenario says)"));
            return fail(got);
        }
    }
    if adjusted == reference.1 {
        Outcome::Pass
    } else {
        fail(got)
    }
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| l.trim_end().to_owned())
        .collect()
}

/// Runs `node script scenario` (see [`run_command`]).
fn run_node(script: &Path, scenario: &str) -> Trace {
    let mut command = Command::new("node");
    command.arg(script).arg(scenario);
    run_command(command, "node")
}

/// Runs `command` (`who`: `node`, `host`), killing it after `TIMEOUT`. It
/// leads a process group of its own, which is killed after it ends (or
/// times out): a child that outlives it (a `host run` that ignored its
/// SIGTERM, a cluster worker that survived its primary) would otherwise
/// hold its stdout open, and the run, forever.
fn run_command(mut command: Command, who: &str) -> Trace {
    use std::os::unix::process::CommandExt;
    let mut child = match command
        .stdin(OsStdio::null())
        .stdout(OsStdio::piped())
        .stderr(OsStdio::piped())
        .process_group(0)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            return Trace {
                lines: vec![format!("(cannot run {who}: {e})")],
                ok: false,
            };
        }
    };
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            pipe.read_to_end(&mut out).ok();
            let _ = tx.send(out);
        });
        rx
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // Its children have had their channel closed, and end; one that holds
    // stdout open still is killed, with whatever else is in the group.
    let (stdout, outlived) = match stdout.recv_timeout(Duration::from_secs(2)) {
        Ok(bytes) => (bytes, false),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(OsStdio::null())
                .status();
            (stdout.recv().unwrap_or_default(), true)
        }
    };
    let mut out = lines(&stdout);
    let stderr = stderr.recv().unwrap_or_default();
    let mut ok = true;
    match status {
        None => {
            out.push("(timed out)".into());
            ok = false;
        }
        Some(status) if !status.success() => {
            out.push(format!("({who} parent ended with {status})"));
            out.extend(lines(&stderr));
            ok = false;
        }
        Some(_) => {}
    }
    if outlived {
        out.push(format!(
            "(a child outlived the {who} parent and was killed)"
        ));
        ok = false;
    }
    Trace { lines: out, ok }
}

fn report(cases: &[Case], results: &[Vec<Outcome>]) -> ExitCode {
    let width = cases.iter().map(|c| c.name.len()).max().unwrap_or(8).max(8);
    let col_width = |c: &Column| c.name.chars().count().max(9);
    println!(
        "\n{:width$} | {}",
        "scenario",
        COLUMNS
            .iter()
            .map(|c| format!("{:^w$}", c.name, w = col_width(c)))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!(
        "{}-|-{}",
        "-".repeat(width),
        COLUMNS
            .iter()
            .map(|c| "-".repeat(col_width(c)))
            .collect::<Vec<_>>()
            .join("-|-")
    );
    let (mut passed, mut failed, mut known_failed, mut na, mut refs) = (0, 0, 0, 0, 0);
    let mut details = Vec::new();
    let mut known_details = Vec::new();
    let mut reasons = Vec::new();
    for (case, row) in cases.iter().zip(results) {
        let mut row_reasons: Vec<(String, Vec<&str>)> = Vec::new();
        let cells: Vec<String> = row
            .iter()
            .zip(COLUMNS)
            .map(|(outcome, column)| {
                let find = |list: &'static [(&str, &str, &'static str)]| {
                    list.iter()
                        .find(|(n, k, _)| *n == case.name && covers(k, column.name))
                        .map(|(_, _, why)| *why)
                };
                let flaky = find(KNOWN_FLAKY);
                let known = find(KNOWN_FAILURES).or(flaky);
                let mark = match (outcome, known) {
                    (Outcome::Pass, Some(_)) if flaky.is_some() => {
                        passed += 1;
                        "✔ flaky"
                    }
                    (Outcome::Pass, None) => {
                        passed += 1;
                        "✔"
                    }
                    (Outcome::Reference, None) => {
                        refs += 1;
                        "ref"
                    }
                    (Outcome::Pass | Outcome::Reference, Some(_)) => {
                        failed += 1;
                        details.push(format!(
                            "{} ({}) passes but is in KNOWN_FAILURES: remove it from the list",
                            case.name, column.name
                        ));
                        "✘"
                    }
                    (Outcome::Fail { reference, got }, Some(why)) => {
                        known_failed += 1;
                        let what = if flaky.is_some() {
                            "known flaky failure"
                        } else {
                            "known failure"
                        };
                        known_details.push(format!(
                            "{what}: {why}\n{}",
                            side_by_side(case, column.name, reference, got)
                        ));
                        if flaky.is_some() {
                            "✘ flaky"
                        } else {
                            "✘ known"
                        }
                    }
                    (Outcome::Fail { reference, got }, None) => {
                        failed += 1;
                        details.push(side_by_side(case, column.name, reference, got));
                        "✘"
                    }
                    (Outcome::NotApplicable(why), _) => {
                        na += 1;
                        if let Some(why) = why {
                            match row_reasons.iter_mut().find(|(w, _)| w == why) {
                                Some((_, columns)) => columns.push(column.name),
                                None => row_reasons.push((why.clone(), vec![column.name])),
                            }
                        }
                        "n/a"
                    }
                };
                format!("{mark:^w$}", w = col_width(column))
            })
            .collect();
        println!("{:width$} | {}", case.name, cells.join(" | "));
        for (why, columns) in row_reasons {
            let cell = format!("{} ({})", case.name, columns.join(", "));
            match reasons
                .iter_mut()
                .find(|(w, _): &&mut (String, Vec<String>)| *w == why)
            {
                Some((_, cells)) => cells.push(cell),
                None => reasons.push((why, vec![cell])),
            }
        }
    }
    if !reasons.is_empty() {
        println!("\nn/a, as the scenarios say:");
        for (why, cells) in &reasons {
            println!("  {why}:\n    {}", cells.join(", "));
        }
    }
    for d in known_details.iter().chain(&details) {
        println!("\n{d}");
    }
    println!(
        "\n{refs} reference runs, {na} n/a, {known_failed} known failures (KNOWN_FAILURES, KNOWN_FLAKY)"
    );
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn side_by_side(
    case: &Case,
    column: &str,
    (ref_name, reference): &(String, Vec<String>),
    got: &[String],
) -> String {
    let w = reference
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .max(ref_name.chars().count())
        .clamp(4, 60);
    let mut out = format!(
        "FAILED {} ({column}): {}\n  source: {}\n  {ref_name:w$} | {column}\n",
        case.name,
        case.json["about"].as_str().unwrap_or(""),
        case.json["source"].as_str().unwrap_or(""),
    );
    for i in 0..reference.len().max(got.len()) {
        let n = reference.get(i).map_or("", String::as_str);
        let h = got.get(i).map_or("", String::as_str);
        let mark = if n == h { ' ' } else { '≠' };
        out += &format!("{mark} {n:w$} | {h}\n");
    }
    out
}
