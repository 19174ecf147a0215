// The seed's child_process demo with real programs.
// Run: node guests/examples/seed-spawn/node/main.js
// Hive port: host run --allow-spawn target/guests/seed-spawn.wasm
'use strict';
const { exec, execFile, spawn } = require('node:child_process');

exec('echo hello world', (err, stdout) => {
  if (err) throw err;
  console.log(`[exec] ${stdout.trim()}`);
});

execFile('echo', ['hi', 'world'], (err, stdout) => {
  if (err) throw err;
  console.log(`[execFile] ${stdout.trim()}`);
});

spawn('npm', ['--help'], { stdio: 'inherit' });

// echo 'hello world' | wc -w
const echo = spawn('echo', ['hello world']);
const wc = spawn('wc', ['-w']);
echo.stdout.pipe(wc.stdin);
wc.stdout.on('data', (data) => console.log(data.toString().trim()));
