// Conformance interpreter for "OS child" scenarios (cases/os-*.json): runs
// the scenario in argv[2] (JSON {"kind": "os", "parent": [...]}) against
// real OS programs via spawn/exec/execFile and their sync forms, printing
// one line per event. A Rust twin running inside a Hive guest must print
// byte-identical traces; keep the two in step.
//
// Output is deterministic by construction: no pids, no timings, and
// stdout/stderr are printed once, in full, at 'close' (never per chunk).
//
// Steps (each an array, [op, ...operands]):
//   ["spawn", cmd, args?, opts?]   opts keys: cwd, env (replaces the whole
//        environment, passed exactly as given), argv0, stdio ("pipe" |
//        "inherit" | "ignore" or an array of 3 of those), detached, shell
//        (true or a path), timeout, killSignal, and the interpreter-only
//        countStdout (true: at close print `stdout bytes N` instead of the
//        stdout text; the stream is read as raw bytes).
//        Listeners: 'spawn' -> "spawn"; 'exit' -> "exit <code> <sig>";
//        'error' -> "error <code> <syscall> <path> <JSON spawnargs>";
//        'close' -> "stdout <JSON text>" (if child.stdout is non-null),
//        "stderr <JSON text>" (if child.stderr is non-null), then
//        "close <code> <sig>".
//   ["write", text] / ["end"]     child.stdin.write(text) / child.stdin.end()
//   ["kill", sig?]                "kill <bool>" or "kill error <code>"
//   ["killed"]                    "killed <bool>"
//   ["pid"]                       "pid number" | "pid undefined"
//   ["status"]                    "exitCode <x> signalCode <y>"
//   ["spawnargs"]                 "spawnfile <file> spawnargs <JSON>"
//   ["wait", kind]                until the N-th event of kind (spawn, exit,
//        close, error) was printed, N = number of waits for that kind so far.
//        If the current child closes first: prints "(no <kind>)".
//   ["sleep", ms]                 await a timer
//   ["trace"]                     until the current child's 'close'
//   ["exec", command, opts?] / ["execFile", file, args?, opts?]
//        opts keys: cwd, env, shell, timeout, killSignal, maxBuffer,
//        encoding. Prints one line from the callback:
//        "exec error=<E> stdout=<JSON> stderr=<JSON>" ("execFile ..."),
//        E = null | {code:..,killed:..,signal:..,message:<JSON>}
//   ["spawnSync", cmd, args?, opts?]  opts keys: cwd, env, input, timeout,
//        killSignal, maxBuffer, shell, argv0.
//        "spawnSync status=.. signal=.. stdout=<JSON> stderr=<JSON> error=<code|null>"
//   ["execSync", command, opts?] / ["execFileSync", file, args?, opts?]
//        stdio is always 'pipe'. "execSync stdout=<JSON>" on success, else
//        "execSync error status=.. signal=.. code=.. stdout=<JSON>
//        stderr=<JSON> message=<JSON>".
//   ["pipeline", [cmd1, args1], [cmd2, args2]]  cmd1's stdout piped into
//        cmd2's stdin; prints only "pipeline <JSON cmd2 stdout> exit <code>".
// After the last step the current child's 'close' is awaited, then exit 0.
'use strict';
const cp = require('node:child_process');

const print = (s) => process.stdout.write(`${s}\n`);
const scenario = JSON.parse(process.argv[2]);
let child = null;
let closed = false;
const seen = {};
const waited = {};
let wake = () => {};

function pick(opts, keys) {
  const out = {};
  for (const k of keys) if (opts && opts[k] !== undefined) out[k] = opts[k];
  return out;
}

function event(kind, text) {
  print(text);
  seen[kind] = (seen[kind] || 0) + 1;
  wake();
}

function attach(c, countStdout) {
  let out = '';
  let outBytes = 0;
  let err = '';
  if (c.stdout) {
    if (countStdout) {
      c.stdout.on('data', (d) => { outBytes += d.length; });
    } else {
      c.stdout.setEncoding('utf8');
      c.stdout.on('data', (d) => { out += d; });
    }
  }
  if (c.stderr) {
    c.stderr.setEncoding('utf8');
    c.stderr.on('data', (d) => { err += d; });
  }
  c.on('spawn', () => event('spawn', 'spawn'));
  c.on('exit', (code, sig) => event('exit', `exit ${code} ${sig}`));
  c.on('error', (e) => event('error',
    `error ${e.code} ${e.syscall} ${e.path} ${JSON.stringify(e.spawnargs)}`));
  c.on('close', (code, sig) => {
    if (c.stdout) print(countStdout ? `stdout bytes ${outBytes}` : `stdout ${JSON.stringify(out)}`);
    if (c.stderr) print(`stderr ${JSON.stringify(err)}`);
    if (c === child) closed = true;
    event('close', `close ${code} ${sig}`);
  });
}

function until(pred) {
  return new Promise((resolve) => {
    const check = () => {
      if (pred() || closed) { wake = () => {}; resolve(); }
    };
    wake = check;
    check();
  });
}

function errShape(err) {
  if (!err) return 'null';
  return `{code:${err.code},killed:${err.killed},signal:${err.signal},message:${JSON.stringify(err.message)}}`;
}

const EXEC_KEYS = ['cwd', 'env', 'shell', 'timeout', 'killSignal', 'maxBuffer', 'encoding'];
const SYNC_KEYS = ['cwd', 'env', 'input', 'timeout', 'killSignal', 'maxBuffer', 'shell', 'argv0'];
const SPAWN_KEYS = ['cwd', 'env', 'argv0', 'stdio', 'detached', 'shell', 'timeout', 'killSignal'];

function syncThrow(word, e) {
  print(`${word} error status=${e.status} signal=${e.signal} code=${e.code} ` +
    `stdout=${JSON.stringify(String(e.stdout ?? ''))} ` +
    `stderr=${JSON.stringify(String(e.stderr ?? ''))} message=${JSON.stringify(e.message)}`);
}

async function main() {
  for (const step of scenario.parent) {
    const op = step[0];
    switch (op) {
      case 'spawn': {
        const [, cmd, args = [], opts = {}] = step;
        child = cp.spawn(cmd, args, pick(opts, SPAWN_KEYS));
        closed = false;
        attach(child, !!opts.countStdout);
        break;
      }
      case 'write': child.stdin.write(step[1]); break;
      case 'end': child.stdin.end(); break;
      case 'kill':
        try {
          print(`kill ${step.length > 1 ? child.kill(step[1]) : child.kill()}`);
        } catch (e) {
          print(`kill error ${e.code}`);
        }
        break;
      case 'killed': print(`killed ${child.killed}`); break;
      case 'pid': print(`pid ${typeof child.pid === 'number' ? 'number' : 'undefined'}`); break;
      case 'status': print(`exitCode ${child.exitCode} signalCode ${child.signalCode}`); break;
      case 'spawnargs':
        print(`spawnfile ${child.spawnfile} spawnargs ${JSON.stringify(child.spawnargs)}`);
        break;
      case 'wait': {
        const kind = step[1];
        waited[kind] = (waited[kind] || 0) + 1;
        const want = waited[kind];
        await until(() => (seen[kind] || 0) >= want);
        if ((seen[kind] || 0) < want) print(`(no ${kind})`);
        break;
      }
      case 'sleep': await new Promise((r) => setTimeout(r, step[1])); break;
      case 'trace': if (child) await until(() => closed); break;
      case 'exec':
      case 'execFile': {
        await new Promise((resolve) => {
          const cb = (err, stdout, stderr) => {
            print(`${op} error=${errShape(err)} stdout=${JSON.stringify(String(stdout))} ` +
              `stderr=${JSON.stringify(String(stderr))}`);
            resolve();
          };
          if (op === 'exec') {
            cp.exec(step[1], pick(step[2], EXEC_KEYS), cb);
          } else {
            cp.execFile(step[1], step[2] || [], pick(step[3], EXEC_KEYS), cb);
          }
        });
        break;
      }
      case 'spawnSync': {
        const [, cmd, args = [], opts = {}] = step;
        const r = cp.spawnSync(cmd, args, pick(opts, SYNC_KEYS));
        print(`spawnSync status=${r.status} signal=${r.signal} ` +
          `stdout=${JSON.stringify(String(r.stdout ?? ''))} ` +
          `stderr=${JSON.stringify(String(r.stderr ?? ''))} error=${r.error ? r.error.code : null}`);
        break;
      }
      case 'execSync': {
        try {
          const out = cp.execSync(step[1], { ...pick(step[2], SYNC_KEYS), stdio: 'pipe' });
          print(`execSync stdout=${JSON.stringify(String(out))}`);
        } catch (e) {
          syncThrow('execSync', e);
        }
        break;
      }
      case 'execFileSync': {
        try {
          const out = cp.execFileSync(step[1], step[2] || [],
            { ...pick(step[3], SYNC_KEYS), stdio: 'pipe' });
          print(`execFileSync stdout=${JSON.stringify(String(out))}`);
        } catch (e) {
          syncThrow('execFileSync', e);
        }
        break;
      }
      case 'pipeline': {
        const [, [cmd1, args1 = []], [cmd2, args2 = []]] = step;
        const a = cp.spawn(cmd1, args1);
        const b = cp.spawn(cmd2, args2);
        a.stdout.pipe(b.stdin);
        let out = '';
        b.stdout.setEncoding('utf8');
        b.stdout.on('data', (d) => { out += d; });
        const code = await new Promise((resolve) => b.on('close', (c) => resolve(c)));
        print(`pipeline ${JSON.stringify(out)} exit ${code}`);
        break;
      }
      default: throw new Error(`unknown step ${op}`);
    }
  }
  if (child) await until(() => closed);
  process.exit(0);
}

main();
