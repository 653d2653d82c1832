'use strict';
// Issue 10's load generator: one presenter streams whiteboard strokes, a room receives.
//
//   node whiteboard_client.js '<json config>'
//
// Config: {urls: <file of bench/mp_server.py --tokens-out>, origin, rate (updates/s),
// seconds, pointsPerUpdate, strokeUpdates (updates per shape before a new one starts),
// settleMs, capSeconds}. The first URL of room 0 is the moderator, who is the presenter
// (the first moderator to connect is); the others only receive.
//
// Every `draw` adds `pointsPerUpdate` points to the current shape; the server's `draw`
// event names the shape and the index (`from`) where its points start, which is how a
// receiver finds the update's send time (all sockets live in this one process, so one
// clock measures the delivery latency). Uses only bench/ws_client/raw_ws.js (no npm).
//
// Output (stdout): `MARK <name> <ms>` at phase boundaries and finally `RESULT <json>`.

const fs = require('fs');
const { performance } = require('perf_hooks');
const RawWebSocket = require('./raw_ws');

const config = JSON.parse(process.argv[2]);
const now = () => performance.now();
const out = (line) => process.stdout.write(line + '\n');
const mark = (name) => out(`MARK ${name} ${now().toFixed(3)}`);
const finish = (result) => { out('RESULT ' + JSON.stringify(result)); process.exit(0); };
setTimeout(() => finish({ error: 'time cap reached' }), (config.capSeconds || 120) * 1000).unref();

function pct(values, p) {
  if (!values.length) return null;
  const sorted = Float64Array.from(values).sort();
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))] * 100) / 100;
}

const urls = JSON.parse(fs.readFileSync(config.urls, 'utf8'));
const room = urls.rooms[0];
const origin = config.origin || urls.origin;
const sockets = [];
const sentAt = new Map();           // `${shapeId}/${from}` -> ms
const latencies = [];
let delivered = 0; let errors = 0; let measuring = false;

function open(url, onJoined) {
  const ws = new RawWebSocket(url, { origin });
  ws.on('message', (payload) => {
    const message = JSON.parse(payload.toString('utf8'));
    if (message.type === 'joined') onJoined(ws, message.data);
    else if (message.type === 'draw') {
      const d = message.data;
      const t = sentAt.get(`${d.shapeId}/${d.from}`);
      if (t !== undefined && measuring) {
        latencies.push(now() - t);
        delivered += 1;
      }
    } else if (message.type === 'error') {
      errors += 1;
      if (errors < 5) process.stderr.write(`error: ${payload}\n`);
    }
  });
  ws.on('error', (e) => { process.stderr.write(`socket error: ${e.message}\n`); });
  sockets.push(ws);
  return ws;
}

async function main() {
  mark('join_start');
  let presenter = null;
  await new Promise((resolve) => {
    open(room[0], (ws, data) => {
      if (!data.self.presenter) finish({ error: 'the first participant is not the presenter' });
      presenter = ws;
      resolve();
    });
  });
  let joined = 1;
  await new Promise((resolve) => {
    for (const url of room.slice(1)) {
      open(url, () => { joined += 1; if (joined === room.length) resolve(); });
    }
  });
  mark('joined');
  await new Promise((r) => setTimeout(r, config.settleMs || 1000));

  const interval = 1000 / config.rate;
  const total = Math.round(config.rate * config.seconds);
  const per = config.pointsPerUpdate || 2;
  let shape = 0; let inShape = 0; let points = 0; let sent = 0;
  const start = now();
  measuring = true;
  mark('steady_start');
  await new Promise((resolve) => {
    const tick = () => {
      // Paced against the start time, so timer slack does not lower the rate.
      while (sent < total && now() >= start + sent * interval) {
        const data = { shapeId: `s${shape}`, points: [] };
        for (let i = 0; i < per; i++) data.points.push(0.1 + (sent % 100) / 200, 0.2 + i / 100);
        if (inShape === 0) Object.assign(data, { kind: 'pen', color: '#d32f2f' });
        const last = inShape === config.strokeUpdates - 1;
        if (last) data.done = true;
        sentAt.set(`s${shape}/${points}`, now());
        presenter.send(JSON.stringify({ type: 'draw', data }));
        points += 2 * per; inShape += 1; sent += 1;
        if (last) { shape += 1; inShape = 0; points = 0; }
      }
      if (sent >= total) resolve();
      else setTimeout(tick, Math.max(0, start + sent * interval - now()));
    };
    tick();
  });
  // wait for the last deliveries (bounded)
  const expected = sent * (room.length - 1);
  const until = now() + 5000;
  while (delivered < expected && now() < until) await new Promise((r) => setTimeout(r, 20));
  mark('steady_end');
  measuring = false;
  const seconds = (now() - start) / 1000;
  finish({
    participants: room.length, updates: sent, seconds, expected, delivered,
    lost: expected - delivered, errors,
    latencyMs: { p50: pct(latencies, 50), p90: pct(latencies, 90), p99: pct(latencies, 99),
                 max: pct(latencies, 100) },
  });
}

main().catch((e) => finish({ error: String(e && e.stack || e) }));
