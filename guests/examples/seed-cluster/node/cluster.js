// The seed's cluster demo, as the seed wrote it (PORT overrides 8000 for
// tests; WORKERS the CPU count). Under a Hive primary
// (`host run --allow-net --allow-spawn seed-cluster.wasm cluster.js`) its
// worker branch runs unchanged.
const cluster = require('cluster');
const http = require('http');
const numCPUs = Number(process.env.WORKERS) || require('os').cpus().length;
const port = Number(process.env.PORT) || 8000;
if (cluster.isMaster) {
  console.log(`[master] ${process.pid} is running`);
  for (let i = 0; i < numCPUs; i++) { cluster.fork(); }
  cluster.on('exit', (worker, code, signal) => {
    console.log(`[master] worker ${worker.process.pid} died`);
  });
} else {
  http.createServer((req, res) => {
    res.writeHead(200);
    res.end(`[worker:${process.pid}] hello world\n`);
  }).listen(port);
  console.log(`[worker] ${process.pid} started`);
}
