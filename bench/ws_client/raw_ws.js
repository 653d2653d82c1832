'use strict';
// A minimal RFC 6455 client on `net`, for the load generator's receiving side.
//
// Node's `ws` costs the client ~10 µs per received message (its receiver state machine,
// a Buffer per message, an event per message); with 1,000 receivers in one process that
// caps what the client can count at ~90,000 deliveries/s on this machine, below what the
// servers under test send. This client parses the frames of each TCP read in place and
// hands each text payload to the callback as a `subarray` (no copy): a few hundred ns per
// frame. It implements what the benchmark needs and nothing else:
//
// - the opening handshake (GET with Upgrade, `Origin`, a random `Sec-WebSocket-Key`; the
//   answer must be `101` with the matching `Sec-WebSocket-Accept`);
// - unfragmented text and binary frames from the server (a fragmented message is counted
//   as a protocol error and the socket is dropped: none of the servers fragments);
// - ping → pong with the same payload, close → close reply, then the TCP connection ends;
// - masked text frames to the server (`send`), `close(code)`, `terminate()`.
//
// It mimics the parts of `ws`'s interface ws_client.js uses: `on('message'|'error'|'close')`,
// `once('close')`, `send(string)`, `close(code)`, `terminate()`, `readyState`.

const crypto = require('crypto');
const net = require('net');
const { EventEmitter } = require('events');

const CONNECTING = 0; const OPEN = 1; const CLOSING = 2; const CLOSED = 3;
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const HEADER_END = Buffer.from('\r\n\r\n');

class RawWebSocket extends EventEmitter {
  constructor(url, { origin, handshakeTimeout = 30000 } = {}) {
    super();
    this.readyState = CONNECTING;
    const u = new URL(url);
    this._key = crypto.randomBytes(16).toString('base64');
    this._buf = null;
    this._socket = net.connect({ host: u.hostname, port: Number(u.port) || 80 });
    this._socket.setNoDelay(true);
    this._timer = setTimeout(() => this._fail(new Error('handshake timed out')),
                             handshakeTimeout);
    this._socket.on('connect', () => {
      this._socket.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\n` +
        'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Key: ${this._key}\r\nSec-WebSocket-Version: 13\r\n` +
        (origin ? `Origin: ${origin}\r\n` : '') + '\r\n');
    });
    this._socket.on('data', (chunk) => this._data(chunk));
    this._socket.on('error', (e) => this._fail(e));
    this._socket.on('close', () => this._closed());
  }

  _fail(error) {
    if (this.readyState === CLOSED) return;
    this.emit('error', error);
    this._socket.destroy();
  }

  _closed() {
    clearTimeout(this._timer);
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this.emit('close');
  }

  _data(chunk) {
    let buf = this._buf === null ? chunk : Buffer.concat([this._buf, chunk]);
    this._buf = null;
    if (this.readyState === CONNECTING) {
      const end = buf.indexOf(HEADER_END);
      if (end < 0) { this._buf = buf; return; }
      const head = buf.subarray(0, end).toString('latin1');
      const accept = crypto.createHash('sha1').update(this._key + GUID).digest('base64');
      const status = head.slice(0, head.indexOf('\r\n'));
      if (!/^HTTP\/1\.1 101/.test(status) ||
          !new RegExp(`\r\nsec-websocket-accept: *${accept.replace(/[+/]/g, '\\$&')}`, 'i')
            .test(head)) {
        return this._fail(new Error(`handshake refused: ${status}`));
      }
      clearTimeout(this._timer);
      this.readyState = OPEN;
      this.emit('open');
      buf = buf.subarray(end + 4);
    }
    let at = 0;
    const n = buf.length;
    while (n - at >= 2) {
      const b0 = buf[at]; const b1 = buf[at + 1];
      let len = b1 & 0x7f; let off = at + 2;
      if (len === 126) {
        if (n - at < 4) break;
        len = buf.readUInt16BE(at + 2); off = at + 4;
      } else if (len === 127) {
        if (n - at < 10) break;
        len = Number(buf.readBigUInt64BE(at + 2)); off = at + 10;
      }
      if (b1 & 0x80) return this._fail(new Error('masked frame from the server'));
      if (n - off < len) break;
      const payload = buf.subarray(off, off + len);
      at = off + len;
      const opcode = b0 & 0x0f;
      if (!(b0 & 0x80) || opcode === 0) return this._fail(new Error('fragmented message'));
      if (opcode === 1 || opcode === 2) {
        if (this.readyState === OPEN) this.emit('message', payload);
      } else if (opcode === 9) {
        this._frame(0x8a, payload);
      } else if (opcode === 8) {
        if (this.readyState === OPEN) this._frame(0x88, payload.subarray(0, 2));
        this.readyState = CLOSING;
        this._socket.end();
      }
    }
    if (at < n) this._buf = at === 0 ? buf : Buffer.from(buf.subarray(at));
  }

  // A masked frame with an all-zero masking key: valid for any server (RFC 6455 §5.3
  // asks clients for unpredictable keys to protect proxies, which a benchmark has none of).
  _frame(b0, payload) {
    const len = payload.length;
    let head;
    if (len < 126) {
      head = Buffer.from([b0, 0x80 | len, 0, 0, 0, 0]);
    } else if (len < 65536) {
      head = Buffer.from([b0, 0x80 | 126, len >> 8, len & 0xff, 0, 0, 0, 0]);
    } else {
      head = Buffer.alloc(14);
      head[0] = b0; head[1] = 0x80 | 127;
      head.writeBigUInt64BE(BigInt(len), 2);
    }
    this._socket.write(len === 0 ? head : Buffer.concat([head, payload]));
  }

  send(text) {
    if (this.readyState !== OPEN) return;
    this._frame(0x81, Buffer.from(text));
  }

  close(code = 1000) {
    if (this.readyState !== OPEN) return;
    this.readyState = CLOSING;
    const body = Buffer.alloc(2);
    body.writeUInt16BE(code, 0);
    this._frame(0x88, body);
  }

  terminate() {
    this._socket.destroy();
  }
}

RawWebSocket.CONNECTING = CONNECTING;
RawWebSocket.OPEN = OPEN;
RawWebSocket.CLOSING = CLOSING;
RawWebSocket.CLOSED = CLOSED;

module.exports = RawWebSocket;
