// seed-cluster.js, except the master forks a replacement when a worker dies,
// and a worker says `[worker] <pid> listening` once its server is listening
// (the moment bench/http/refork.py measures). PORT, WORKERS as in seed-cluster.js.
const cluster = require('cluster'); const http = require('http'); const numCPUs = Number(process.env.WORKERS) || require('os').cpus().length;
const PORT = Number(process.env.PORT || 8000);
if (cluster.isMaster) { console.log(`[master] ${process.pid} is running`); for (let i = 0; i < numCPUs; i++) { cluster.fork(); }
  cluster.on('exit', (worker, code, signal) => { console.log(`[master] worker ${worker.process.pid} died`); cluster.fork(); });
} else { http.createServer((req, res) => { res.writeHead(200); res.end(`[worker:${process.pid}] hello world\n`); }).listen(PORT, () => console.log(`[worker] ${process.pid} listening`)); console.log(`[worker] ${process.pid} started`); }
