//! The Node bridge's edges on the real binary: which forks are OS programs
//! and what allows them, and `host run` as a Node child (its channel, its
//! pids, its environment). The four-way seed demo is in `node.rs`; the
//! protocol itself in the conformance matrix and `host/src/node`.

use crate::util::Test;
use test_programs_artifacts::*;

/// A module that does not end in `.wasm` is an OS program, which
/// `--allow-spawn` decides (not `--allow-fork`), and the denial names it.
#[test]
fn fork_of_a_program_needs_allow_spawn() {
    Test::run(PROC_PARENT)
        .args(["try-fork", "child.js"])
        .stdout("fork failed: EPERM: this guest may not start OS programs (run the host with `--allow-spawn`)\n")
        .stderr_contains("may not start `node`: allow it with `host run --allow-spawn=node`")
        .check();
}

/// `exec-path` is checked like any program: a guest allowed to start
/// `node` may not name another program to run its module.
#[test]
fn exec_path_is_checked_against_the_allow_list() {
    Test::new()
        .args(["run", "--allow-spawn=node", PROC_PARENT, "try-fork", "x.js", "/bin/sh"])
        .stdout("fork failed: EPERM: this guest may not start OS programs (run the host with `--allow-spawn`)\n")
        .stderr_contains("may not start `/bin/sh`: allow it with `host run --allow-spawn=/bin/sh`")
        .check();
}

/// A Node program forks `host run`: the root guest's pid is the host's
/// (what Node's `child.pid` says), its ppid is Node's own pid, its channel
/// is connected, and the channel's variables never reach it, even with
/// `--inherit-env`.
#[test]
fn host_run_as_a_node_child() {
    const SCRIPT: &str = r#"
        const { fork } = require('node:child_process');
        const [host, parent, args] = process.argv.slice(1);
        const run = (scenario, then) => {
          const child = fork(parent, [scenario], { execPath: host, execArgv: ['run', '--inherit-env'], silent: true });
          let out = '';
          child.stdout.on('data', (d) => (out += d));
          child.on('message', (m) => {
            console.log(`pid ${m.pid === child.pid ? 'is the host\'s' : `${m.pid} != ${child.pid}`}`);
            console.log(`ppid ${m.ppid === process.pid ? 'is node\'s' : `${m.ppid} != ${process.pid}`}`);
            console.log(`connected ${m.connected}`);
          });
          child.on('close', (code) => { console.log(`${scenario} close ${code}`); then(out); });
        };
        run('pids', () => {
          const child = fork(args, [], { execPath: host, execArgv: ['run', '--inherit-env'], silent: true });
          let out = '';
          child.stdout.on('data', (d) => (out += d));
          child.on('close', (code) => {
            console.log(`args close ${code}`);
            console.log(`channel variables ${out.split('\n').filter((l) => l.includes('NODE_CHANNEL')).length}`);
          });
        });
    "#;
    let out = std::process::Command::new("node")
        .args([
            "-e",
            SCRIPT,
            env!("CARGO_BIN_EXE_host"),
            PROC_PARENT,
            CLI_ARGS_ENV,
        ])
        .env("HOST_CACHE_DIR", crate::util::temp_dir("bridge-cache"))
        .output()
        .expect("node is installed");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "pid is the host's\nppid is node's\nconnected true\npids close 0\nargs close 0\nchannel variables 0\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `NODE_CHANNEL_FD` naming something that is not a socket is a clear
/// error, not a guest without its channel.
#[test]
fn a_bad_node_channel_is_a_clear_error() {
    Test::run(CLI_HELLO)
        .env("NODE_CHANNEL_FD", "0")
        .stderr_contains("`NODE_CHANNEL_FD=0` is not an open socket")
        .stderr_contains("unset it to run without a parent channel")
        .status(1)
        .check();
}
