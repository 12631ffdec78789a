// Minimal echo server on Node's `ws`, the Node peer of Switchboard's --conformance-echo endpoint
// (loadtest/peers/compare.sh). Echoes every message on /echo with its own type.
// Run with Debian's node-ws: NODE_PATH=/usr/share/nodejs node server.js --addr 127.0.0.1:18091
'use strict';
const { WebSocketServer } = require('ws');

let addr = '127.0.0.1:18091';
const i = process.argv.indexOf('--addr');
if (i >= 0 && process.argv[i + 1]) addr = process.argv[i + 1];
const sep = addr.lastIndexOf(':');
const host = addr.slice(0, sep);
const port = Number(addr.slice(sep + 1));

const wss = new WebSocketServer({ host, port, path: '/echo', perMessageDeflate: false, backlog: 4096 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => console.error(`listening on ${host}:${port}`));
