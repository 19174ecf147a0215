//! The conformance matrix: every scenario in `cases/*.json` runs on Node
//! (plain JavaScript on the machine's `node`: `node/parent.js`, or
//! `node/spawn.js` for `"kind": "os"`) and on Hive (`conf_parent.wasm` or
//! `conf_spawn.wasm`, driven in-process), and the event traces must be equal.
//!
//! A scenario may state where Hive deliberately differs (`hive_extra`: lines
//! Hive prints that Node does not; `hive_instead`: `[node line, hive line]`
//! pairs; both with `why`). `KNOWN_FAILURES` lists
//! scenarios expected to fail, each with a reason; a listed scenario that
//! passes fails the run, so the list cannot rot.
//!
//! `cargo test -p conformance` (or `just conformance`); pass a substring to
//! run only matching scenarios.

use host::{Hive, HiveConfig, RunOptions, Stdio};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio as OsStdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Scenarios expected to fail, with the reason. Empty is the goal.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

/// The parent → child kinds of the matrix, one column each. Only two have a
/// runner (see `main`): `wasm→wasm` runs the scenarios without a `kind`
/// (forks) and `wasm→os` those with `"kind": "os"` (OS programs), each
/// scenario in one of the two. `wasm→node` and `node→wasm` have no runner
/// yet, so every row prints `n/a` there, and in the runnable column its
/// `kind` does not pick; `n/a` counts as neither passed nor failed.
const KINDS: &[&str] = &["wasm→wasm", "wasm→os", "wasm→node", "node→wasm"];

const TIMEOUT: Duration = Duration::from_secs(30);

struct Case {
    name: String,
    json: Value,
}

#[derive(Clone)]
enum Outcome {
    Pass,
    Fail {
        node: Vec<String>,
        hive: Vec<String>,
    },
    NotApplicable,
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
        })
        .filter(|c| filter.as_ref().is_none_or(|f| c.name.contains(f.as_str())))
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = HiveConfig {
        cache_dir: Some(target_dir().join("hive-cache")),
        ..HiveConfig::default()
    };
    let hive = runtime.block_on(async { Hive::new(config) }).expect("hive");

    // Run cases on a few threads: each spends most of its time waiting.
    let results = Mutex::new(vec![Vec::new(); cases.len()]);
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some(case) = cases.get(i) else { break };
                    let row: Vec<Outcome> = KINDS
                        .iter()
                        .map(|kind| match (*kind, case.json["kind"].as_str()) {
                            ("wasm→wasm", None) => {
                                wasm_to(&runtime, &hive, &dir, case, Target::Wasm)
                            }
                            ("wasm→os", Some("os")) => {
                                wasm_to(&runtime, &hive, &dir, case, Target::Os)
                            }
                            _ => Outcome::NotApplicable,
                        })
                        .collect();
                    results.lock().unwrap()[i] = row;
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

/// The kind of child a scenario's parent (a wasm guest) starts.
#[derive(Clone, Copy)]
enum Target {
    /// `fork`ed wasm guests: `node/parent.js` vs `conf_parent.wasm`.
    Wasm,
    /// OS programs: `node/spawn.js` vs `conf_spawn.wasm` (with `--allow-spawn`).
    Os,
}

fn wasm_to(
    runtime: &tokio::runtime::Runtime,
    hive: &Hive,
    dir: &Path,
    case: &Case,
    target: Target,
) -> Outcome {
    let scenario = case.json.to_string();
    let (script, guest) = match target {
        Target::Wasm => ("node/parent.js", test_programs_artifacts::CONF_PARENT),
        Target::Os => ("node/spawn.js", test_programs_artifacts::CONF_SPAWN),
    };
    let node = run_node(&dir.join(script), &scenario);
    let (stdio, captured) = Stdio::capture();
    let mut options = RunOptions::new(guest);
    options.args = vec![scenario];
    options.stdio = Some(stdio);
    if let Target::Os = target {
        options.allow_spawn = host::SpawnPolicy::All;
    }
    let ran = runtime.block_on(async { tokio::time::timeout(TIMEOUT, hive.run(options)).await });
    let mut hive_lines = lines(&captured.stdout());
    match ran {
        Err(_) => hive_lines.push("(timed out)".into()),
        Ok(Err(e)) => hive_lines.push(format!("(host error: {e:#})")),
        Ok(Ok(status)) if !status.success() => {
            hive_lines.push(format!("(parent ended with {status})"));
            hive_lines.extend(lines(&captured.stderr()));
        }
        Ok(Ok(_)) => {}
    }
    compare(case, node, hive_lines)
}

/// Applies the scenario's stated differences, then compares.
fn compare(case: &Case, node: Vec<String>, mut hive: Vec<String>) -> Outcome {
    let extra = case.json["hive_extra"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut adjusted = hive.clone();
    // `hive_instead`: [node line, the line Hive prints in its place].
    for pair in case.json["hive_instead"].as_array().into_iter().flatten() {
        let (Some(node_line), Some(hive_line)) = (pair[0].as_str(), pair[1].as_str()) else {
            panic!(
                "{}: hive_instead entries are [node line, hive line]",
                case.name
            );
        };
        match adjusted.iter().position(|l| l == hive_line) {
            Some(at) => adjusted[at] = node_line.to_owned(),
            None => {
                hive.push(format!(
                    "(expected Hive to print {hive_line:?} instead of {node_line:?}, as the scenario says)"
                ));
                return Outcome::Fail { node, hive };
            }
        }
    }
    for line in extra.iter().filter_map(Value::as_str) {
        if let Some(at) = adjusted.iter().position(|l| l == line) {
            adjusted.remove(at);
        } else {
            hive.push(format!(
                "(expected Hive to print {line:?}, as the scenario says)"
            ));
            return Outcome::Fail { node, hive };
        }
    }
    if adjusted == node {
        Outcome::Pass
    } else {
        Outcome::Fail { node, hive }
    }
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| l.trim_end().to_owned())
        .collect()
}

/// Runs `node script scenario`, killing it after `TIMEOUT`.
fn run_node(script: &Path, scenario: &str) -> Vec<String> {
    let mut child = match Command::new("node")
        .arg(script)
        .arg(scenario)
        .stdin(OsStdio::null())
        .stdout(OsStdio::piped())
        .stderr(OsStdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return vec![format!("(cannot run node: {e})")],
    };
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut out).ok();
        out
    });
    let start = Instant::now();
    let timed_out = loop {
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break true;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut out = lines(&reader.join().unwrap());
    if timed_out {
        out.push("(timed out)".into());
    }
    out
}

fn report(cases: &[Case], results: &[Vec<Outcome>]) -> ExitCode {
    let width = cases.iter().map(|c| c.name.len()).max().unwrap_or(8).max(8);
    println!("\n{:width$} | {}", "scenario", KINDS.join(" | "));
    println!(
        "{}-|-{}",
        "-".repeat(width),
        KINDS
            .iter()
            .map(|k| "-".repeat(k.chars().count()))
            .collect::<Vec<_>>()
            .join("-|-")
    );
    let (mut passed, mut failed) = (0, 0);
    let mut details = Vec::new();
    for (case, row) in cases.iter().zip(results) {
        let known = KNOWN_FAILURES.iter().find(|(n, _)| *n == case.name);
        let cells: Vec<String> = row
            .iter()
            .zip(KINDS)
            .map(|(outcome, kind)| {
                let mark = match (outcome, known) {
                    (Outcome::Pass, None) => {
                        passed += 1;
                        "✔"
                    }
                    (Outcome::Pass, Some(_)) => {
                        failed += 1;
                        details.push(format!(
                            "{} ({kind}) passes but is in KNOWN_FAILURES: remove it from the list",
                            case.name
                        ));
                        "✘"
                    }
                    (Outcome::Fail { .. }, Some((_, why))) => {
                        println!("  known failure {} ({kind}): {why}", case.name);
                        "✘ (known)"
                    }
                    (Outcome::Fail { node, hive }, None) => {
                        failed += 1;
                        details.push(side_by_side(&case.name, kind, &case.json, node, hive));
                        "✘"
                    }
                    (Outcome::NotApplicable, _) => "n/a",
                };
                format!("{mark:^w$}", w = kind.chars().count())
            })
            .collect();
        println!("{:width$} | {}", case.name, cells.join(" | "));
    }
    for d in &details {
        println!("\n{d}");
    }
    println!("\n{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn side_by_side(name: &str, kind: &str, json: &Value, node: &[String], hive: &[String]) -> String {
    let w = node
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 60);
    let mut out = format!(
        "FAILED {name} ({kind}): {}\n  source: {}\n  {:w$} | {}\n",
        json["about"].as_str().unwrap_or(""),
        json["source"].as_str().unwrap_or(""),
        "node",
        "hive"
    );
    for i in 0..node.len().max(hive.len()) {
        let n = node.get(i).map_or("", String::as_str);
        let h = hive.get(i).map_or("", String::as_str);
        let mark = if n == h { ' ' } else { '≠' };
        out += &format!("{mark} {n:w$} | {h}\n");
    }
    out
}
