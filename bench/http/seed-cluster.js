// The `node-cluster-N` rows of bench/http/run.py: the seed's cluster code as
// given, with PORT from env (default 8000) and numCPUs overridable by env WORKERS.
const cluster = require('cluster'); const http = require('http'); const numCPUs = Number(process.env.WORKERS) || require('os').cpus().length;
const PORT = Number(process.env.PORT || 8000);
if (cluster.isMaster) { console.log(`[master] ${process.pid} is running`); for (let i = 0; i < numCPUs; i++) { cluster.fork(); }
  cluster.on('exit', (worker, code, signal) => { console.log(`[master] worker ${worker.process.pid} died`); });
} else { http.createServer((req, res) => { res.writeHead(200); res.end(`[worker:${process.pid}] hello world\n`); }).listen(PORT); console.log(`[worker] ${process.pid} started`); }
