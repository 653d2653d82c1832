'use strict';
// Peer anchor for issue 3: the same broadcast server on Node's `ws` (the library the issue's
// 100,000 deliveries/s target refers to). Same wire behaviour as autobahn_broadcast.py:
// `ws://127.0.0.1:PORT/?room=R&...`, `{"type":"joined","data":{}}` on open, every message
// relayed unchanged to every member of the room including the sender.
//
//   node bench/baselines/ws_broadcast.js PORT
//
// Uses the `ws` installed in bench/ws_client (npm install there). Prints `READY <port>`
// once listening; stops on SIGTERM.

const path = require('path');
const { WebSocketServer } = require(path.join(__dirname, '..', 'ws_client', 'node_modules', 'ws'));

const port = Number(process.argv[2]);
const JOINED = '{"type":"joined","data":{}}';
const rooms = new Map();
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });

wss.on('connection', (ws, req) => {
  const room = new URL(req.url, 'http://127.0.0.1').searchParams.get('room') || '0';
  let members = rooms.get(room);
  if (!members) { members = new Set(); rooms.set(room, members); }
  members.add(ws);
  ws.send(JOINED);
  ws.on('message', (data, isBinary) => {
    for (const member of members) member.send(data, { binary: isBinary });
  });
  ws.on('close', () => {
    members.delete(ws);
    if (members.size === 0 && rooms.get(room) === members) rooms.delete(room);
  });
});
wss.on('listening', () => process.stdout.write(`READY ${wss.address().port}\n`));
process.on('SIGTERM', () => { wss.close(); process.exit(0); });
