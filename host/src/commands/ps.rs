//! `host ps`: the process trees of this user's running hosts, through
//! their control sockets (`crate::control`).

use crate::runtime::caps::format_size;
use crate::runtime::exit::ExitStatus;
use clap::Parser;
use serde_json::Value;
use std::collections::BTreeMap;

/// Shows the processes of this user's running hosts: for each, the tree of
/// its processes (pid, kind, state, memory, CPU time, restarts, name) and each
/// cluster listener's load per worker.
///
/// A host is reached through its control socket, which only the user who
/// runs it can open (`$XDG_RUNTIME_DIR/hive`, or `/tmp/hive-<uid>`).
#[derive(Debug, Parser)]
#[command(after_help = "Examples:\n  \
    host ps\n  \
    host ps --host 4242 --json\n\n\
    Exit status: 0; 1 when `--host` names no running host.")]
pub struct PsCommand {
    /// Only the host whose (OS) pid this is.
    #[arg(long, value_name = "PID")]
    host: Option<u32>,

    /// Print each host's answer as one JSON line instead of a table.
    #[arg(long)]
    json: bool,
}

impl PsCommand {
    /// Asks every running host (or `--host`) and prints what they say.
    pub fn execute(self) -> anyhow::Result<ExitStatus> {
        let dir = crate::control::socket_dir();
        let mut sockets: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let pid = name.strip_suffix(".sock")?.parse().ok()?;
                Some((pid, e.path()))
            })
            .filter(|(pid, _)| self.host.is_none_or(|h| h == *pid))
            .collect();
        sockets.sort();
        let mut answered = 0;
        for (pid, socket) in sockets {
            match crate::control::request(&socket) {
                Ok(reply) => {
                    answered += 1;
                    if self.json {
                        println!("{reply}");
                    } else {
                        print!("{}", table(&reply));
                    }
                }
                // Left by a host that was killed: nobody listens.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    let _ = std::fs::remove_file(&socket);
                }
                Err(e) => eprintln!("host {pid}: {e}"),
            }
        }
        if answered == 0 && self.host.is_some() {
            eprintln!(
                "no running host with pid {} (control sockets in `{}`)",
                self.host.unwrap_or_default(),
                dir.display()
            );
            return Ok(ExitStatus::Code(1));
        }
        Ok(ExitStatus::Code(0))
    }
}

/// One host's answer as text: its tree, then its listeners.
fn table(reply: &Value) -> String {
    let mut out = format!("host {}\n", reply["host"]);
    out += &format!(
        "  {:<10} {:<5} {:<8} {:>8} {:>8} {:>8}  NAME\n",
        "PID", "KIND", "STATE", "MEMORY", "CPU", "RESTARTS"
    );
    let procs = reply["processes"].as_array().cloned().unwrap_or_default();
    let pids: std::collections::HashSet<u64> =
        procs.iter().filter_map(|p| p["pid"].as_u64()).collect();
    let mut children: BTreeMap<Option<u64>, Vec<&Value>> = BTreeMap::new();
    for p in &procs {
        // A process whose parent is not listed is a root of the tree.
        let parent = p["ppid"].as_u64().filter(|pp| pids.contains(pp));
        children.entry(parent).or_default().push(p);
    }
    fn walk(
        out: &mut String,
        children: &BTreeMap<Option<u64>, Vec<&Value>>,
        parent: Option<u64>,
        depth: usize,
    ) {
        for p in children.get(&parent).into_iter().flatten() {
            let memory = p["memory"].as_u64().map_or("-".into(), format_size);
            let cpu = p["cpu_ms"]
                .as_u64()
                .map_or("-".into(), |ms| format!("{ms}ms"));
            out.push_str(&format!(
                "  {:<10} {:<5} {:<8} {:>8} {:>8} {:>8}  {}{}\n",
                p["pid"].as_u64().unwrap_or_default(),
                p["kind"].as_str().unwrap_or("?"),
                p["state"].as_str().unwrap_or("?"),
                memory,
                cpu,
                p["restarts"].as_u64().unwrap_or_default(),
                "  ".repeat(depth),
                p["name"].as_str().unwrap_or("?"),
            ));
            walk(out, children, p["pid"].as_u64(), depth + 1);
        }
    }
    walk(&mut out, &children, None, 0);
    for l in reply["listeners"].as_array().into_iter().flatten() {
        out += &format!(
            "  listener {} ({}, cluster {}):",
            l["address"].as_str().unwrap_or("?"),
            l["policy"].as_str().unwrap_or("?"),
            l["cluster"]
        );
        for w in l["workers"].as_array().into_iter().flatten() {
            out += &format!(
                " worker {}: {} open, {} connections, {} requests;",
                w["worker"], w["open"], w["connections"], w["requests"]
            );
        }
        out.push('\n');
    }
    out
}
