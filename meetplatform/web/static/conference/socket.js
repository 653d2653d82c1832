// The signalling socket: requests with ids, reconnect with backoff, app-level ping.

import { t } from "./i18n.js";
import { $, config, log, notify, show } from "./util.js";
import { state } from "./session.js";
import { dispatch, goAway } from "./protocol.js";
import { setConnecting, showError } from "./view.js";

const REQUEST_TIMEOUT_MS = 10000;
const PING_INTERVAL_MS = 15000;
// Close codes after which reconnecting cannot help (docs/signalling-protocol.md, §9).
const FINAL_CLOSE = new Map([
  [1000, "left"], [4001, "invalid"], [4003, "denied"], [4004, "ended"],
  [4008, "replaced"], [4009, "removed"], [4010, "ended"], [4400, "error"],
]);

export class RequestError extends Error {
  constructor(code, message, type) {
    super(message || code);
    this.code = code;
    this.type = type;
  }
}

function socketUrl() {
  const base = config.wsUrl || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  return `${base}?sessionToken=${encodeURIComponent(state.token)}`;
}

export function connect() {
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = null;
  state.opened = false;
  let socket;
  try {
    socket = new WebSocket(socketUrl());
  } catch (err) {
    log.warn("cannot open the socket", err);
    scheduleReconnect();
    return;
  }
  state.socket = socket;
  socket.addEventListener("open", () => {
    if (state.socket !== socket) return;
    state.opened = true;
    state.refusals = 0;
    startPing();
  });
  socket.addEventListener("message", (event) => {
    if (state.socket !== socket) return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      log.warn("unreadable frame from the server");
      return;
    }
    try {
      dispatch(message);
    } catch (err) {
      log.warn("handling", message?.type, "failed", err);
    }
  });
  socket.addEventListener("close", (event) => {
    if (state.socket !== socket) return;
    onSocketClosed(event.code, event.reason, state.opened);
  });
}

export function detachSocket() {
  const socket = state.socket;
  state.socket = null;
  stopPing();
  for (const [, pending] of state.pending) {
    clearTimeout(pending.timer);
    pending.reject(new RequestError("disconnected", "the connection was lost", pending.type));
  }
  state.pending.clear();
  if (socket && socket.readyState <= WebSocket.OPEN) {
    try {
      socket.close(1000);
    } catch {
      // already closing
    }
  }
}

export function onSocketClosed(code, reason, wasOpen) {
  detachSocket();
  if (state.leaving) return;
  if (FINAL_CLOSE.has(code)) {
    let why = FINAL_CLOSE.get(code);
    if (code === 4003 && state.meetingFull) why = "full";
    if (code === 4400) {
      showError(t("error.refused"), t("error.refusedText", { reason: reason || "protocol error" }));
      return;
    }
    goAway(why);
    return;
  }
  if (!wasOpen) {
    state.refusals += 1;
    checkTokenThenReconnect();
    return;
  }
  setConnectionStatus(t("connection.lost"));
  scheduleReconnect();
}

// A socket refused before "open" looks like 1006 to scripts. Ask the page route whether
// the link is still valid: if not, stop; if the network is down, keep trying.
async function checkTokenThenReconnect() {
  let status = 0;
  try {
    const response = await fetch(`${config.joinUrl}?sessionToken=${encodeURIComponent(state.token)}`, {
      method: "GET", cache: "no-store", credentials: "same-origin", redirect: "manual",
    });
    status = response.status;
  } catch {
    status = 0; // network down
  }
  if (state.leaving) return;
  if (status === 404 || status === 400) {
    if (state.everJoined) goAway("invalid");
    else showError(t("error.linkInvalid"), t("error.linkInvalidText"));
    return;
  }
  if (state.everJoined || state.inLobby) setConnectionStatus(t("connection.lost"));
  else setConnecting(status === 0 ? t("connection.unreachable") : t("connection.connecting"));
  scheduleReconnect();
}

function backoffDelay(attempt) {
  const base = Math.min(10000, 500 * 2 ** attempt);
  const jitter = 0.8 + Math.random() * 0.4;
  return Math.round(base * jitter);
}

function scheduleReconnect() {
  if (state.leaving || state.reconnectTimer) return;
  const delay = backoffDelay(state.attempts);
  state.attempts += 1;
  if (state.everJoined) setConnectionStatus(t("connection.lostIn", { seconds: Math.ceil(delay / 1000) }));
  state.reconnectTimer = setTimeout(() => {
    state.reconnectTimer = null;
    connect();
  }, delay);
}

export const counters = { sent: {}, received: {} };

export function count(direction, key) {
  counters[direction][key] = (counters[direction][key] ?? 0) + 1;
}

export function send(type, data = {}, id) {
  const socket = state.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  count("sent", type === "signal" ? `signal:${data.description ? data.description.type : "candidate"}` : type);
  const frame = { type, data };
  if (id !== undefined) frame.id = id;
  socket.send(JSON.stringify(frame));
  return true;
}

// A request with an id: resolves with the ack's data, rejects with a RequestError.
export function request(type, data = {}, { timeout = REQUEST_TIMEOUT_MS } = {}) {
  return new Promise((resolve, reject) => {
    const id = `c-${state.nextRequestId++}`;
    if (!send(type, data, id)) {
      reject(new RequestError("disconnected", "not connected", type));
      return;
    }
    const timer = setTimeout(() => {
      state.pending.delete(id);
      reject(new RequestError("timeout", "no answer from the server", type));
    }, timeout);
    state.pending.set(id, { resolve, reject, timer, type });
  });
}

// Fire a request and report a failure to the user.
export function act(type, data = {}, what = type) {
  return request(type, data).catch((err) => {
    if (err.code !== "disconnected") notify(t("act.failed", { what, message: err.message }), { kind: "error" });
    throw err;
  });
}

function startPing() {
  stopPing();
  state.pingTimer = setInterval(() => {
    const socket = state.socket;
    request("ping", { ts: Date.now() }, { timeout: 10000 }).then(
      (data) => {
        if (typeof data?.ts === "number") $("connection-status").title = t("connection.roundTrip", { ms: Date.now() - data.ts });
      },
      (err) => {
        // No answer: the socket is half-dead. Drop it and reconnect.
        if (err.code === "timeout" && state.socket === socket) {
          log.warn("ping timed out; reconnecting");
          onSocketClosed(1006, "ping timeout", true);
        }
      },
    );
  }, PING_INTERVAL_MS);
}

function stopPing() {
  clearInterval(state.pingTimer);
  state.pingTimer = null;
}

export function setConnectionStatus(text) {
  const status = $("connection-status");
  status.textContent = text || "";
  show(status, Boolean(text));
}
