// The baseline: the fastest hello world node:http serves.
import { createServer } from 'node:http';

createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain;charset=UTF-8' });
  res.end('Hello, world!');
}).listen(Number(process.env.PORT), '127.0.0.1');
