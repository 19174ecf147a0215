// The `node-1` row of bench/http/run.py: the seed's HTTP server in one process.
// PORT from env (default 8000).
const http = require('http');
const PORT = Number(process.env.PORT || 8000);
http.createServer((req, res) => { res.writeHead(200); res.end(`[worker:${process.pid}] hello world\n`); }).listen(PORT);
console.log(`[worker] ${process.pid} started`);
