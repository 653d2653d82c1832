'use strict';
// WebSocket load generator for bench/ws_bench.py (one Node process, pinned by the harness
// to the CPU the server does not use). It receives with raw_ws.js, which parses each TCP
// read's frames in place (a few hundred ns per message; Node's `ws`, `client: "ws"`, costs
// ~10 µs and tops out near 90,000 deliveries/s here), so the server is the side measured.
//
//   node ws_client.js '<config JSON>'
//
// config: {mode: "fanout" | "hold", urls: FILE, room: index (fanout), inflight: N,
//          client: "raw" (bench/ws_client/raw_ws.js, default) | "ws" (Node `ws`),
//          capSeconds: hard limit of the whole process,
//          fanout: {settleMs, light: {count, intervalMs}, steady: {rate, seconds},
//                   sat: {window, seconds}, senders, textBytes},
//          hold: {holdSeconds}}
// FILE: {"origin": "http://127.0.0.1:PORT", "rooms": [[ws URL, ...], ...]}: one URL per
// participant (for meetplatform each carries a session token issued by the registry).
//
// A participant counts as joined when its first message, `joined`, arrives. Fan-out
// messages are `{"type":"chat","data":{"text":"b<seq> xxx…"}}` sent by a rotating pool of
// `senders` participants (meetplatform limits each socket to 50 messages/s); every server
// delivers each message to every participant of the room, the sender included, so a
// message is complete when N participants have it. Latency = receive time − send time,
// both taken in this process (so it includes this process's own queueing).
//
// Output (stdout, one per line): `MARK <name> <ms>` at phase boundaries (the harness
// samples CPU and memory there) and finally `RESULT <json>`.

const fs = require('fs');
const { performance } = require('perf_hooks');
const NodeWs = require('ws');
const RawWebSocket = require('./raw_ws');

const cfg = JSON.parse(process.argv[2]);
// `client: "raw"` (the default) receives with raw_ws.js, `client: "ws"` with Node's `ws`.
const WebSocket = cfg.client === 'ws' ? NodeWs : RawWebSocket;
const spec = JSON.parse(fs.readFileSync(cfg.urls, 'utf8'));
const now = () => performance.now();
const result = { mode: cfg.mode, errors: {}, serverErrors: 0, closedAfterJoin: 0 };

function out(line) { process.stdout.write(line + '\n'); }
function mark(name) { out(`MARK ${name} ${now().toFixed(3)}`); }
function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }
function finish(code) {
  out('RESULT ' + JSON.stringify(result));
  // Let stdout drain before exiting.
  process.stdout.write('', () => process.exit(code));
}

const cap = setTimeout(() => {
  result.error = `time cap of ${cfg.capSeconds} s reached`;
  finish(3);
}, cfg.capSeconds * 1000);

function pct(values, p) {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round(sorted[k] * 1000) / 1000;
}
function summary(values) {
  return { n: values.length, p50: pct(values, 50), p90: pct(values, 90), p99: pct(values, 99),
           max: pct(values, 100) };
}

const JOINED = Buffer.from('"joined"');
const ERROR = Buffer.from('"type":"error"');

// Open every URL with at most `inflight` handshakes outstanding; resolves once each one
// has joined or failed.
function connectAll(urls, inflight, onMessage) {
  return new Promise((resolve) => {
    const sockets = new Array(urls.length);
    const joinLatency = [];
    let next = 0; let pending = 0; let joined = 0; let failed = 0;
    const t0 = now();
    let tLast = t0;
    function settle() {
      if (joined + failed === urls.length) {
        resolve({ sockets: sockets.filter(Boolean), joined, failed,
                  seconds: (tLast - t0) / 1000, joinLatency });
      }
    }
    function open(i) {
      const started = now();
      const ws = new WebSocket(urls[i], { origin: spec.origin, perMessageDeflate: false,
                                          handshakeTimeout: 30000 });
      let isJoined = false;
      ws.on('message', (data) => {
        if (!isJoined) {
          const k = data.indexOf(JOINED);
          if (k < 0 || k > 16) return;
          isJoined = true;
          tLast = now();
          joinLatency.push(tLast - started);
          sockets[i] = ws;
          pending--; joined++;
          launch();
          settle();
          return;
        }
        onMessage(ws, data);
      });
      ws.on('error', (e) => { result.errors[e.message] = (result.errors[e.message] || 0) + 1; });
      ws.on('close', () => {
        if (!isJoined) {
          pending--; failed++;
          launch();
          settle();
        } else {
          result.closedAfterJoin++;
        }
      });
    }
    function launch() {
      while (pending < inflight && next < urls.length) {
        pending++;
        open(next++);
      }
    }
    launch();
    settle();
  });
}

function closeAll(sockets, timeoutMs) {
  return new Promise((resolve) => {
    let open = 0;
    for (const ws of sockets) {
      if (ws.readyState === WebSocket.CLOSED) continue;
      open++;
      ws.once('close', () => { if (--open === 0) resolve(true); });
      ws.close(1000);
    }
    if (open === 0) resolve(true);
    setTimeout(() => {
      for (const ws of sockets) if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
      resolve(false);
    }, timeoutMs);
  });
}

// --- fan-out ---------------------------------------------------------------------------

const MAX_SEQ = 2000000;
const KEY = Buffer.from('"text":"b');
// Every server under test writes JSON objects whose first member is "type" (the bare
// servers echo the client's own text). Classifying a message by its first bytes keeps the
// load generator from scanning every byte of messages it does not count: in a room filling
// to 1,000, meetplatform's join announcements are most of what the sockets receive,
// and two whole-message searches of each (for the chat marker and for an error) took a
// third of the client's busy time in the join phase. A message in another shape is still
// searched whole.
const TYPE_PREFIX = Buffer.from('{"type":"');
const CHAT_HEAD = Buffer.from('{"type":"chat"');
const ERROR_HEAD = Buffer.from('{"type":"error"');

function startsWith(data, head) {
  const n = head.length;
  if (data.length < n) return false;
  for (let i = 0; i < n; i++) if (data[i] !== head[i]) return false;
  return true;
}

// 1 a chat message, 2 an error, 0 anything else.
function kindOf(data) {
  if (startsWith(data, TYPE_PREFIX)) {
    if (startsWith(data, CHAT_HEAD)) return 1;
    return startsWith(data, ERROR_HEAD) ? 2 : 0;
  }
  if (data.indexOf(KEY) >= 0) return 1;
  return data.indexOf(ERROR) >= 0 ? 2 : 0;
}

function seqOf(data) {
  const k = data.indexOf(KEY);
  if (k < 0) return -1;
  let j = k + KEY.length; let v = 0; let c = data[j];
  while (c >= 48 && c <= 57) { v = v * 10 + (c - 48); c = data[++j]; }
  return v;
}

async function fanout() {
  const f = cfg.fanout;
  const urls = spec.rooms[cfg.room || 0];
  const N = urls.length;
  const sentAt = new Float64Array(MAX_SEQ);
  const count = new Int32Array(MAX_SEQ);
  const phaseOf = new Uint8Array(MAX_SEQ); // 1 light, 2 steady, 3 saturation
  const perReceiver = { 1: [], 2: [] };
  const allDelivered = { 1: [], 2: [], 3: [] };
  const completed = { 1: 0, 2: 0, 3: 0 };
  let satOpen = false; let satStart = 0; let satEnd = 0; let satDeliveries = 0;
  let onComplete = null;

  function onMessage(ws, data) {
    const t = now();
    const kind = kindOf(data);
    if (kind !== 1) {
      if (kind === 2) result.serverErrors++;
      return;
    }
    const s = seqOf(data);
    if (s < 0) return;
    const lat = t - sentAt[s];
    const phase = phaseOf[s];
    if (phase === 1 || phase === 2) perReceiver[phase].push(lat);
    if (satOpen && t >= satStart) satDeliveries++;
    if (++count[s] === N) {
      allDelivered[phase].push(lat);
      completed[phase]++;
      if (onComplete !== null) onComplete(s);
    }
  }

  mark('join_start');
  const conn = await connectAll(urls, cfg.inflight, onMessage);
  mark('joined');
  result.join = { n: N, joined: conn.joined, failed: conn.failed, seconds: conn.seconds,
                  joinsPerSecond: conn.joined / conn.seconds, latency: summary(conn.joinLatency) };
  if (conn.joined !== N) {
    result.error = `only ${conn.joined} of ${N} joined`;
    await closeAll(conn.sockets, 5000);
    return finish(2);
  }
  // Senders: a rotating pool, so that no socket exceeds meetplatform's 50 msg/s limit.
  const senders = conn.sockets.slice(1, 1 + f.senders);
  const pad = 'x'.repeat(f.textBytes);
  let seq = 0; let rot = 0;
  function send(phase) {
    const s = seq++;
    phaseOf[s] = phase;
    const ws = senders[rot++ % senders.length];
    sentAt[s] = now();
    ws.send(`{"type":"chat","data":{"text":"b${s} ${pad}"}}`);
    return s;
  }
  async function drain(fromSeq, toSeq, timeoutMs) {
    const deadline = now() + timeoutMs;
    for (;;) {
      let open = 0;
      for (let s = fromSeq; s < toSeq; s++) if (count[s] < N) open++;
      if (open === 0 || now() > deadline) return open;
      await sleep(20);
    }
  }
  await sleep(f.settleMs);

  // 1. Light load: one message every intervalMs.
  mark('light_start');
  let first = seq;
  for (let i = 0; i < f.light.count; i++) {
    send(1);
    await sleep(f.light.intervalMs);
  }
  mark('light_end');
  let lost = await drain(first, seq, 3000);
  result.light = { sent: seq - first, lost, perReceiver: summary(perReceiver[1]),
                   allDelivered: summary(allDelivered[1]) };

  // 2. Steady stream: `rate` messages per second for `seconds`, on an absolute schedule.
  await sleep(500);
  first = seq;
  mark('steady_start');
  const t0 = now();
  const total = Math.round(f.steady.rate * f.steady.seconds);
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / f.steady.rate;
    const wait = due - now();
    if (wait > 1) await sleep(wait);
    send(2);
  }
  const steadyTime = (now() - t0) / 1000;
  mark('steady_end');
  lost = await drain(first, seq, 3000);
  const steadyRecv = perReceiver[2].length;
  result.steady = { rate: f.steady.rate, seconds: steadyTime, sent: seq - first, lost,
                    deliveries: steadyRecv, perReceiver: summary(perReceiver[2]),
                    allDelivered: summary(allDelivered[2]) };

  // 3. Saturation: keep `window` messages in flight for `seconds`.
  await sleep(500);
  first = seq;
  const inFlight = new Map();
  onComplete = (s) => {
    inFlight.delete(s);
    if (satOpen && now() < satEnd) { const n = send(3); inFlight.set(n, sentAt[n]); }
  };
  // A message that never completes (dropped) must not shrink the window for good.
  const watchdog = setInterval(() => {
    const t = now();
    for (const [s, at] of inFlight) {
      if (t - at > 5000) {
        inFlight.delete(s);
        result.satRelaunched = (result.satRelaunched || 0) + 1;
        if (satOpen && t < satEnd) { const n = send(3); inFlight.set(n, sentAt[n]); }
      }
    }
  }, 500);
  mark('sat_start');
  satStart = now(); satEnd = satStart + f.sat.seconds * 1000; satOpen = true;
  for (let i = 0; i < f.sat.window; i++) { const n = send(3); inFlight.set(n, sentAt[n]); }
  await sleep(f.sat.seconds * 1000);
  const satSeconds = (now() - satStart) / 1000;
  satOpen = false;
  mark('sat_end');
  clearInterval(watchdog);
  lost = await drain(first, seq, 5000);
  result.saturation = { window: f.sat.window, seconds: satSeconds, sent: seq - first,
                        completed: completed[3], lost, deliveries: satDeliveries,
                        deliveriesPerSecond: satDeliveries / satSeconds,
                        messagesPerSecond: completed[3] / satSeconds,
                        allDelivered: summary(allDelivered[3]) };
  await closeAll(conn.sockets, 5000);
  finish(0);
}

// --- hold --------------------------------------------------------------------------------

async function hold() {
  const urls = [].concat(...spec.rooms);
  mark('join_start');
  const conn = await connectAll(urls, cfg.inflight, () => {});
  mark('held');
  result.join = { n: urls.length, joined: conn.joined, failed: conn.failed,
                  seconds: conn.seconds, joinsPerSecond: conn.joined / conn.seconds,
                  latency: summary(conn.joinLatency) };
  await sleep(cfg.hold.holdSeconds * 1000);
  mark('closing');
  const t = now();
  result.closedCleanly = await closeAll(conn.sockets, 10000);
  result.closeSeconds = (now() - t) / 1000;
  mark('closed');
  finish(conn.failed === 0 ? 0 : 2);
}

(cfg.mode === 'fanout' ? fanout() : hold()).catch((e) => {
  result.error = String(e && e.stack || e);
  finish(1);
});
