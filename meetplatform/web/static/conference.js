// The conference page: signalling over /ws, WebRTC mesh, chat, moderation, lobby.
//
// Plain modern JavaScript (an ES module, no build step). The wire protocol is
// docs/signalling-protocol.md; this file is the browser side of it. Sections:
//   1. small helpers            6. peers (WebRTC, perfect negotiation)
//   2. session token            7. participants grid and people list
//   3. signalling socket        8. chat and the welcome message
//   4. protocol events          9. moderation and the lobby
//   5. local media             10. start-up and the debug hook (window.meetplatform)

"use strict";

// ---------------------------------------------------------------------------------------
// 1. Small helpers
// ---------------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);
const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";

const config = {
  wsUrl: meta("mp-ws-url"),
  endedUrl: meta("mp-ended-url") || "/client/ended",
  joinUrl: meta("mp-join-url") || "/client/join",
};

const STORAGE_KEY = "meetplatform.sessionToken";
const HTML_NS = "http://www.w3.org/1999/xhtml";
const REQUEST_TIMEOUT_MS = 10000;
const PING_INTERVAL_MS = 15000;
// Close codes after which reconnecting cannot help (docs/signalling-protocol.md, §9).
const FINAL_CLOSE = new Map([
  [1000, "left"], [4001, "invalid"], [4003, "denied"], [4004, "ended"],
  [4008, "replaced"], [4009, "removed"], [4010, "ended"], [4400, "error"],
]);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function show(node, visible) {
  if (node) node.hidden = !visible;
}

function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || "?").slice(0, 2);
  return letters.toUpperCase();
}

function hueFor(text) {
  let hash = 0;
  for (const ch of String(text)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return hash % 360;
}

function formatTime(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function isSafeHttpUrl(value) {
  try {
    const url = new URL(value, location.href);
    return url.protocol === "https:" || url.protocol === "http:";
  } catch {
    return false;
  }
}

// BigBlueButton's default logoutURL is the server's own root (the XML API fills it in when
// create had none). That page says nothing about the meeting: show the ended page instead.
function isDefaultLogoutUrl(value) {
  try {
    const url = new URL(value, location.href);
    const base = config.endedUrl.replace(/\/client\/ended$/, "");
    return url.origin === location.origin && !url.search &&
      (url.pathname === "/" || url.pathname === `${base}/` || url.pathname === base);
  } catch {
    return false;
  }
}

const log = {
  info: (...args) => console.info("[meetplatform]", ...args),
  warn: (...args) => console.warn("[meetplatform]", ...args),
};

// Notices: short messages at the top of the page. Errors stay until dismissed.
function notify(text, { kind = "info", timeout = 6000, action = null } = {}) {
  const box = el("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" },
    el("span", { class: "notice-text", text }));
  if (action) {
    box.append(el("button", {
      type: "button", class: "btn small", text: action.label,
      onclick: () => { action.run(); box.remove(); },
    }));
  }
  box.append(el("button", {
    type: "button", class: "notice-close", "aria-label": "Dismiss", text: "×",
    onclick: () => box.remove(),
  }));
  $("notices").append(box);
  if (kind !== "error" && timeout > 0) setTimeout(() => box.remove(), timeout);
  return box;
}

function confirmAction(title, text, okLabel) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

// An allow-list sanitiser mirroring meetplatform/web/sanitize.py. The server already
// sanitises meeting texts; this is defence in depth (and the CSP forbids inline script).
const ALLOWED_TAGS = {
  a: ["href", "title"], abbr: ["title"], b: [], blockquote: [], br: [], code: [], del: [],
  div: [], em: [], h1: [], h2: [], h3: [], h4: [], hr: [], i: [], ins: [], li: [], mark: [],
  ol: [], p: [], pre: [], q: [], s: [], small: [], span: [], strong: [], sub: [], sup: [],
  u: [], ul: [],
};
const DROP_WITH_CONTENT = new Set([
  "script", "style", "template", "iframe", "object", "embed", "noscript", "noembed",
  "noframes", "frameset", "frame", "applet", "svg", "math", "textarea", "select", "title",
  "head", "xmp", "plaintext", "video", "audio", "canvas", "form",
]);

function safeLink(value) {
  const url = String(value).replace(/[\t\n\r]/g, "").replace(/^[\x00-\x20]+|[\x00-\x20]+$/g, "");
  const lower = url.toLowerCase();
  if (!/^(https?:|mailto:)/.test(lower)) return null;
  if (/^https?:/.test(lower) && !/^https?:\/\/./.test(lower)) return null;
  if (/[\x00-\x1f\x7f]/.test(url)) return null;
  return url;
}

function sanitizedFragment(html) {
  const doc = new DOMParser().parseFromString(String(html ?? ""), "text/html");
  const fragment = document.createDocumentFragment();
  const walk = (source, depth) => {
    const out = [];
    if (depth > 200) return out;
    for (const child of source.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        out.push(document.createTextNode(child.data));
        continue;
      }
      if (child.nodeType !== Node.ELEMENT_NODE) continue;
      const tag = child.localName;
      if (child.namespaceURI !== HTML_NS || DROP_WITH_CONTENT.has(tag)) continue;
      const kids = walk(child, depth + 1);
      const allowed = ALLOWED_TAGS[tag];
      if (!allowed || depth >= 32) {
        out.push(...kids);
        continue;
      }
      const node = document.createElement(tag);
      for (const name of allowed) {
        if (!child.hasAttribute(name)) continue;
        let value = child.getAttribute(name);
        if (name === "href") value = safeLink(value);
        if (value !== null) node.setAttribute(name, value);
      }
      if (tag === "a") {
        if (!node.hasAttribute("href")) {
          out.push(...kids);
          continue;
        }
        node.target = "_blank";
        node.rel = "noopener noreferrer";
      }
      node.append(...kids);
      out.push(node);
    }
    return out;
  };
  fragment.append(...walk(doc.body, 0));
  return fragment;
}

// Chat text is plain text; web addresses in it become links (built as DOM, never HTML).
function linkifiedText(text) {
  const fragment = document.createDocumentFragment();
  const pattern = /\bhttps?:\/\/[^\s<>"']+/gi;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    let url = match[0].replace(/[.,;:!?)\]]+$/, "");
    fragment.append(text.slice(last, match.index));
    fragment.append(el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: url }));
    last = match.index + url.length;
  }
  fragment.append(text.slice(last));
  return fragment;
}

// ---------------------------------------------------------------------------------------
// 2. Session token: from the URL once, then from sessionStorage (reload resumes)
// ---------------------------------------------------------------------------------------

let memoryToken = null;

function takeSessionToken() {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get("sessionToken");
  if (fromUrl) {
    memoryToken = fromUrl;
    try {
      sessionStorage.setItem(STORAGE_KEY, fromUrl);
    } catch (err) {
      log.warn("sessionStorage unavailable; a reload will not resume", err);
    }
    url.searchParams.delete("sessionToken");
    url.searchParams.set("resume", "1");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
    return fromUrl;
  }
  try {
    return sessionStorage.getItem(STORAGE_KEY) || memoryToken;
  } catch {
    return memoryToken;
  }
}

function forgetSessionToken() {
  memoryToken = null;
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // storage blocked: nothing stored
  }
}

// ---------------------------------------------------------------------------------------
// 3. The signalling socket: requests with ids, reconnect with backoff, app-level ping
// ---------------------------------------------------------------------------------------

const state = {
  token: null,
  socket: null,
  opened: false,           // the current socket reached "open"
  everJoined: false,       // a "joined" arrived at least once
  attempts: 0,             // failed attempts since the last successful join
  refusals: 0,             // sockets refused before "open" in a row
  reconnectTimer: null,
  pingTimer: null,
  leaving: false,          // we are navigating away: ignore closes
  meetingFull: false,
  self: null,
  meeting: null,
  participants: new Map(), // id -> participant object (incl. self)
  waiting: new Map(),      // waiting guests: id -> {id, name}
  chatIds: new Set(),
  iceServers: [],
  inLobby: false,
  nextRequestId: 1,
  pending: new Map(),      // request id -> {resolve, reject, timer, type}
  unreadChat: 0,
};

class RequestError extends Error {
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

function connect() {
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

function detachSocket() {
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

function onSocketClosed(code, reason, wasOpen) {
  detachSocket();
  if (state.leaving) return;
  if (FINAL_CLOSE.has(code)) {
    let why = FINAL_CLOSE.get(code);
    if (code === 4003 && state.meetingFull) why = "full";
    if (code === 4400) {
      showError("Connection refused", `The server closed the connection: ${reason || "protocol error"}.`);
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
  setConnectionStatus("Connection lost. Reconnecting…");
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
    else showError("This meeting link is not valid any more",
      "The meeting may be over, or you were removed from it. Ask the meeting's organiser for a new link.");
    return;
  }
  if (state.everJoined || state.inLobby) setConnectionStatus("Connection lost. Reconnecting…");
  else setConnecting(status === 0 ? "Cannot reach the meeting service. Retrying…" : "Connecting to the meeting…");
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
  if (state.everJoined) setConnectionStatus(`Connection lost. Reconnecting in ${Math.ceil(delay / 1000)} s…`);
  state.reconnectTimer = setTimeout(() => {
    state.reconnectTimer = null;
    connect();
  }, delay);
}

const counters = { sent: {}, received: {} };

function count(direction, key) {
  counters[direction][key] = (counters[direction][key] ?? 0) + 1;
}

function send(type, data = {}, id) {
  const socket = state.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  count("sent", type === "signal" ? `signal:${data.description ? data.description.type : "candidate"}` : type);
  const frame = { type, data };
  if (id !== undefined) frame.id = id;
  socket.send(JSON.stringify(frame));
  return true;
}

// A request with an id: resolves with the ack's data, rejects with a RequestError.
function request(type, data = {}, { timeout = REQUEST_TIMEOUT_MS } = {}) {
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
function act(type, data = {}, what = type) {
  return request(type, data).catch((err) => {
    if (err.code !== "disconnected") notify(`Could not ${what}: ${err.message}`, { kind: "error" });
    throw err;
  });
}

function startPing() {
  stopPing();
  state.pingTimer = setInterval(() => {
    const socket = state.socket;
    request("ping", { ts: Date.now() }, { timeout: 10000 }).then(
      (data) => {
        if (typeof data?.ts === "number") $("connection-status").title = `Round trip ${Date.now() - data.ts} ms`;
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

function setConnectionStatus(text) {
  const status = $("connection-status");
  status.textContent = text || "";
  show(status, Boolean(text));
}

// ---------------------------------------------------------------------------------------
// 4. Protocol events
// ---------------------------------------------------------------------------------------

const handlers = {
  ack(message) {
    const pending = state.pending.get(message.id);
    if (!pending) return;
    state.pending.delete(message.id);
    clearTimeout(pending.timer);
    pending.resolve(message.data ?? {});
  },

  error(message) {
    const pending = message.id !== undefined ? state.pending.get(message.id) : undefined;
    if (pending) {
      state.pending.delete(message.id);
      clearTimeout(pending.timer);
      pending.reject(new RequestError(message.code, message.message, pending.type));
      return;
    }
    if (message.code === "meetingFull") {
      state.meetingFull = true;
      return;
    }
    log.warn("server error", message.code, message.message, message.request ?? "");
  },

  joined(message) {
    const data = message.data ?? {};
    const first = !state.everJoined;
    state.everJoined = true;
    state.inLobby = false;
    state.attempts = 0;
    state.self = data.self;
    state.meeting = data.meeting ?? {};
    state.iceServers = Array.isArray(data.iceServers) ? data.iceServers : [];
    setConnectionStatus("");
    showScreen("meeting-screen");
    renderMeetingInfo();

    // Participants: the server's list is the truth (incl. self).
    state.participants.clear();
    for (const p of data.participants ?? []) state.participants.set(p.id, p);
    state.participants.set(state.self.id, state.self);
    renderAllParticipants();

    for (const item of data.chat ?? []) addChatMessage(item);

    state.waiting.clear();
    for (const guest of data.waitingGuests ?? []) state.waiting.set(guest.id, guest);
    renderWaiting();
    renderModeratorControls();

    // Peers: we are the later one toward everybody listed, so we are polite and
    // initiate. A resume counts as joining again: start every peer afresh.
    closeAllPeers();
    const polite = data.polite ?? true;
    for (const p of state.participants.values()) {
      if (p.id !== state.self.id) createPeer(p.id, polite);
    }
    reportMedia();
    emit("joined", { participantId: state.self.id, role: state.self.role, resumed: Boolean(data.resumed) });
    if (first && media.audioMode === "none" && !$("audio-dialog").open) openAudioDialog();
  },

  lobby(message) {
    const data = message.data ?? {};
    state.inLobby = true;
    state.attempts = 0;
    setConnectionStatus("");
    $("lobby-meeting-name").textContent = data.meeting?.name ?? "";
    $("lobby-text").textContent = "Please wait: a moderator will let you in shortly.";
    if (data.meeting?.name) document.title = `${data.meeting.name} · waiting`;
    showScreen("lobby-screen");
    emit("knocking", {});
  },

  admitted() {
    $("lobby-text").textContent = "You were let in. Joining…";
  },

  denied() {
    goAway("denied");
  },

  participantJoined(message) {
    const p = message.data?.participant;
    if (!p || !state.self) return;
    state.participants.set(p.id, p);
    renderParticipant(p);
    renderPeopleCount();
    if (p.id !== state.self.id) createPeer(p.id, message.data.polite ?? false);
    emit("participantJoined", { participantId: p.id, name: p.name });
  },

  participantUpdated(message) {
    const p = message.data?.participant;
    if (!p || !state.self) return;
    const before = state.participants.get(p.id);
    state.participants.set(p.id, p);
    if (p.id === state.self.id) {
      const wasModerator = isModerator();
      const wasPresenter = state.self.presenter;
      state.self = p;
      if (wasModerator !== isModerator()) {
        notify(isModerator() ? "You are now a moderator." : "You are no longer a moderator.");
        renderModeratorControls();
        renderAllParticipants();
        emit("roleChanged", { role: p.role });
      }
      if (wasPresenter !== p.presenter) {
        notify(p.presenter ? "You are now the presenter." : "You are no longer the presenter.");
        if (!p.presenter && media.screen) stopScreenShare();
      }
      updateToolbar();
    }
    if (before && before.raisedHand !== p.raisedHand && p.raisedHand && p.id !== state.self.id) {
      notify(`${p.name} raised a hand.`);
    }
    renderParticipant(p);
  },

  participantLeft(message) {
    const id = message.data?.id;
    if (!id) return;
    state.participants.delete(id);
    closePeer(id);
    removeParticipantViews(id);
    renderPeopleCount();
    renderScreenStage();
    emit("participantLeft", { participantId: id, reason: message.data.reason });
  },

  peerReset(message) {
    const id = message.data?.id;
    if (!id || !state.self || id === state.self.id) return;
    closePeer(id);
    createPeer(id, message.data.polite ?? false);
  },

  chat(message) {
    addChatMessage(message.data);
  },

  muteRequested(message) {
    const by = message.data?.by;
    if (media.micTrack && !media.muted) {
      setMuted(true);
      notify(by ? `${by} muted your microphone.` : "Your microphone was muted.");
    }
  },

  guestWaiting(message) {
    const guest = message.data;
    if (!guest?.id) return;
    const isNew = !state.waiting.has(guest.id);
    state.waiting.set(guest.id, guest);
    renderWaiting();
    if (isNew) {
      notify(`${guest.name} is waiting to join.`, {
        timeout: 10000,
        action: { label: "Admit", run: () => admitGuest(guest.id) },
      });
      emit("knocking", { participantId: guest.id, displayName: guest.name });
    }
  },

  guestHandled(message) {
    if (message.data?.id) state.waiting.delete(message.data.id);
    renderWaiting();
  },

  guestLeft(message) {
    if (message.data?.id) state.waiting.delete(message.data.id);
    renderWaiting();
  },

  signal(message) {
    const data = message.data ?? {};
    if (!data.from || !state.self || data.from === state.self.id) return;
    let peer = peers.get(data.from);
    if (!peer) {
      // An offer from someone we have not heard of yet (should not happen: the server
      // sends participantJoined first). They are the later one, so we are impolite.
      peer = createPeer(data.from, false);
    }
    peer?.receive(data);
  },

  ended(message) {
    const data = message.data ?? {};
    goAway(data.reason || "ended", data.logoutUrl);
  },

  removed() {
    goAway("removed");
  },

  replaced() {
    goAway("replaced");
  },
};

function dispatch(message) {
  if (!message || typeof message.type !== "string") return;
  count("received", message.type === "signal"
    ? `signal:${message.data?.description ? message.data.description.type : "candidate"}` : message.type);
  const handler = handlers[message.type];
  if (handler) handler(message);
  else log.info("ignoring event", message.type);
}

function isModerator() {
  return state.self?.role === "MODERATOR";
}

// Leave the page for the meeting's logoutURL (when set) or the ended page.
function goAway(reason, logoutUrl) {
  if (state.leaving) return;
  state.leaving = true;
  clearTimeout(state.reconnectTimer);
  emit("leaving", { reason });
  forgetSessionToken();
  stopAllMedia();
  closeAllPeers();
  detachSocket();
  const target = logoutUrl || state.meeting?.logoutUrl;
  const destination = target && isSafeHttpUrl(target) && !isDefaultLogoutUrl(target)
    ? target
    : `${config.endedUrl}?reason=${encodeURIComponent(reason)}`;
  emit("left", { reason });
  location.replace(destination);
}

async function leaveMeeting() {
  if (state.leaving) return;
  try {
    await request("leave", {}, { timeout: 3000 });
  } catch (err) {
    log.warn("leave was not acknowledged", err);
  }
  goAway("left");
}

// Events for an embedding page (and tests): DOM events on window.
function emit(name, detail) {
  window.dispatchEvent(new CustomEvent(`meetplatform:${name}`, { detail }));
}

// ---------------------------------------------------------------------------------------
// 5. Local media: microphone (or listen only), camera, screen
// ---------------------------------------------------------------------------------------

const media = {
  audioMode: "none",        // "none" | "microphone" | "listen"
  micTrack: null,
  muted: true,
  cameraTrack: null,
  screenTrack: null,
  mainStream: new MediaStream(),   // microphone + camera
  screenStream: new MediaStream(), // screen share
  audioBusy: false,        // a microphone request is in progress
  cameraBusy: false,       // a camera request is in progress
};

function describeMediaError(err, device) {
  const name = err?.name || "";
  if (!navigator.mediaDevices || name === "TypeError" && !window.isSecureContext) {
    return `Your browser does not allow the ${device} on this page: it needs a secure (https) connection.`;
  }
  switch (name) {
    case "NotAllowedError":
    case "PermissionDeniedError":
      return device === "screen"
        ? "Screen sharing was cancelled or is not allowed by your browser."
        : `Permission to use your ${device} was denied. Allow it in your browser's site settings, then try again.`;
    case "NotFoundError":
    case "DevicesNotFoundError":
      return `No ${device} was found. Connect one and try again.`;
    case "NotReadableError":
    case "TrackStartError":
      return `Your ${device} could not be started: it may be in use by another application.`;
    case "OverconstrainedError":
      return `Your ${device} does not support the requested settings.`;
    case "SecurityError":
      return `Your browser blocks the ${device} on this page.`;
    case "AbortError":
      return `Starting your ${device} was interrupted. Try again.`;
    default:
      return `Your ${device} could not be started (${name || "unknown error"}).`;
  }
}

function mediaError(err, device) {
  const text = describeMediaError(err, device);
  log.warn(device, err);
  const box = notify(text, { kind: "error" });
  box.dataset.error = err?.name || "Error";
  box.dataset.device = device;
  emit("error", { code: err?.name || "Error", device, fatal: false });
}

async function getUserMedia(constraints) {
  if (!navigator.mediaDevices?.getUserMedia) {
    const err = new TypeError("getUserMedia unavailable");
    throw err;
  }
  return navigator.mediaDevices.getUserMedia(constraints);
}

function openAudioDialog() {
  const dialog = $("audio-dialog");
  dialog.returnValue = "";
  dialog.showModal();
}

async function onAudioDialogClosed() {
  const choice = $("audio-dialog").returnValue;
  if (choice === "microphone") await joinAudio("microphone");
  else if (choice === "listen") await joinAudio("listen");
}

async function joinAudio(mode) {
  if (media.audioBusy) return;
  media.audioBusy = true;
  try {
    if (mode === "microphone") {
      let stream;
      try {
        stream = await getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
      } catch (err) {
        mediaError(err, "microphone");
        return;
      }
      if (state.leaving) {
        for (const t of stream.getTracks()) t.stop();
        return;
      }
      const track = stream.getAudioTracks()[0];
      setLocalTrack("mic", track);
      track.addEventListener("ended", () => {
        if (media.micTrack === track) {
          notify("Your microphone stopped.", { kind: "error" });
          leaveAudio();
        }
      });
      media.micTrack = track;
      media.muted = false;
      track.enabled = true;
    } else {
      removeMicrophone();
      media.muted = true;
    }
    media.audioMode = mode;
    unmuteRemoteAudio();
    updateToolbar();
    reportMedia();
  } finally {
    media.audioBusy = false;
  }
}

function removeMicrophone() {
  if (media.micTrack) {
    media.micTrack.stop();
    setLocalTrack("mic", null);
    media.micTrack = null;
  }
}

function leaveAudio() {
  removeMicrophone();
  media.audioMode = "none";
  media.muted = true;
  for (const audio of document.querySelectorAll("#audio-sink audio")) audio.muted = true;
  updateToolbar();
  reportMedia();
}

function setMuted(muted) {
  if (!media.micTrack) return;
  media.muted = muted;
  media.micTrack.enabled = !muted;
  updateToolbar();
  reportMedia();
  emit("audioMuted", { muted });
}

async function toggleCamera() {
  if (media.cameraBusy) return;
  if (media.cameraTrack) {
    const track = media.cameraTrack;
    media.cameraTrack = null;
    track.stop();
    setLocalTrack("camera", null);
    updateToolbar();
    renderParticipant(state.self);
    reportMedia();
    emit("videoMuted", { muted: true });
    return;
  }
  media.cameraBusy = true;
  try {
    let stream;
    try {
      stream = await getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 24 } } });
    } catch (err) {
      mediaError(err, "camera");
      return;
    }
    if (state.leaving) {
      for (const t of stream.getTracks()) t.stop();
      return;
    }
    const track = stream.getVideoTracks()[0];
    track.addEventListener("ended", () => {
      if (media.cameraTrack === track) toggleCamera();
    });
    media.cameraTrack = track;
    setLocalTrack("camera", track);
    updateToolbar();
    renderParticipant(state.self);
    reportMedia();
    emit("videoMuted", { muted: false });
  } finally {
    media.cameraBusy = false;
  }
}

async function toggleScreenShare() {
  if (media.screenTrack) {
    stopScreenShare();
    return;
  }
  if (!state.self?.presenter) {
    notify("Only the presenter can share the screen. A moderator can make you presenter.");
    return;
  }
  if (!navigator.mediaDevices?.getDisplayMedia) {
    mediaError(new TypeError("getDisplayMedia unavailable"), "screen");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
  } catch (err) {
    mediaError(err, "screen");
    return;
  }
  const track = stream.getVideoTracks()[0];
  if ("contentHint" in track) track.contentHint = "detail";
  track.addEventListener("ended", () => {
    if (media.screenTrack === track) stopScreenShare();
  });
  media.screenTrack = track;
  setLocalTrack("screen", track);
  updateToolbar();
  renderScreenStage();
  reportMedia();
}

function stopScreenShare() {
  const track = media.screenTrack;
  if (!track) return;
  media.screenTrack = null;
  track.stop();
  setLocalTrack("screen", null);
  updateToolbar();
  renderScreenStage();
  reportMedia();
}

function stopAllMedia() {
  for (const track of [media.micTrack, media.cameraTrack, media.screenTrack]) track?.stop();
  media.micTrack = media.cameraTrack = media.screenTrack = null;
}

// Put a local track into the local streams and onto every peer connection.
function setLocalTrack(kind, track) {
  const stream = kind === "screen" ? media.screenStream : media.mainStream;
  const kindOfTrack = kind === "mic" ? "audio" : "video";
  for (const old of stream.getTracks()) {
    if (old.kind === kindOfTrack) stream.removeTrack(old);
  }
  if (track) stream.addTrack(track);
  for (const peer of peers.values()) peer.setTrack(kind, track);
}

function reportMedia() {
  if (!state.self) return;
  send("media", {
    joinedVoice: media.audioMode !== "none",
    listenOnly: media.audioMode === "listen",
    muted: media.audioMode !== "microphone" || media.muted,
    video: Boolean(media.cameraTrack),
    screen: Boolean(media.screenTrack),
  });
}

function unmuteRemoteAudio() {
  for (const audio of document.querySelectorAll("#audio-sink audio")) {
    audio.muted = false;
    audio.play().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------
// 6. Peers: one RTCPeerConnection per other participant, perfect negotiation
// ---------------------------------------------------------------------------------------

const peers = new Map();          // participant id -> Peer
const peerConnections = new Map(); // participant id -> RTCPeerConnection (debug hook)

// How long the earlier participant waits for the newcomer's first offer before it
// starts negotiating itself (the offer was lost, or the newcomer's page is old).
const FIRST_OFFER_WAIT_MS = 5000;

class Peer {
  // The later participant of a pair is polite and initiates: it adds its data channel and
  // tracks at once, which makes the browser offer. The earlier one (impolite) waits for
  // that first offer and only then adds its own; so the first exchange never collides.
  // (A collision there would roll back the polite side's first offer, and Chromium then
  // rejects the data channel's m-line in its answer: both sides renegotiate forever.)
  // Later collisions (both toggling a camera at once) are settled by perfect negotiation.
  constructor(id, polite) {
    this.id = id;
    this.polite = polite;
    this.started = false;
    this.closed = false;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this.pendingCandidates = [];
    this.queue = Promise.resolve();
    this.senders = { mic: null, camera: null, screen: null };
    this.remoteStreams = new Map(); // stream id -> MediaStream
    this.remoteKinds = { camera: null, screen: null }; // stream ids announced by the peer
    this.meta = null;
    this.startTimer = null;

    const pc = new RTCPeerConnection({ iceServers: state.iceServers });
    this.pc = pc;
    pc.addEventListener("negotiationneeded", () => this.negotiate());
    pc.addEventListener("icecandidate", ({ candidate }) => {
      send("signal", { to: this.id, candidate: candidate ? candidate.toJSON() : null });
    });
    pc.addEventListener("track", (event) => this.onTrack(event));
    pc.addEventListener("iceconnectionstatechange", () => {
      if (pc.iceConnectionState === "failed") {
        log.warn("ICE failed with", this.id, "- restarting ICE");
        pc.restartIce();
      }
      renderParticipant(state.participants.get(this.id));
    });
    pc.addEventListener("connectionstatechange", () => renderParticipant(state.participants.get(this.id)));

    if (polite) this.start();
    else this.startTimer = setTimeout(() => this.start(), FIRST_OFFER_WAIT_MS);
  }

  // Add the data channel and the current local tracks (each triggers negotiation).
  start() {
    if (this.started || this.closed) return;
    this.started = true;
    clearTimeout(this.startTimer);
    this.openMeta();
    this.attachLocalTracks();
  }

  // A negotiated data channel (same id on both sides, no extra signalling) that tells
  // the other side which of our streams is the camera and which the screen.
  openMeta() {
    this.meta = this.pc.createDataChannel("meetplatform-meta", { negotiated: true, id: 0 });
    this.meta.addEventListener("open", () => this.announceStreams());
    this.meta.addEventListener("message", (event) => this.onMeta(event.data));
  }

  attachLocalTracks() {
    if (media.micTrack) this.setTrack("mic", media.micTrack);
    if (media.cameraTrack) this.setTrack("camera", media.cameraTrack);
    if (media.screenTrack) this.setTrack("screen", media.screenTrack);
  }

  setTrack(kind, track) {
    if (this.closed || !this.started) return;
    const sender = this.senders[kind];
    if (sender) {
      // Same slot: swap the track without renegotiating (null sends nothing).
      sender.replaceTrack(track).catch((err) => log.warn("replaceTrack failed", err));
    } else if (track) {
      const stream = kind === "screen" ? media.screenStream : media.mainStream;
      this.senders[kind] = this.pc.addTrack(track, stream);
    }
    this.announceStreams();
  }

  announceStreams() {
    if (!this.meta || this.meta.readyState !== "open") return;
    this.meta.send(JSON.stringify({
      type: "streams",
      camera: media.mainStream.id,
      screen: media.screenTrack ? media.screenStream.id : null,
    }));
  }

  onMeta(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    if (message?.type === "streams") {
      this.remoteKinds = { camera: message.camera ?? null, screen: message.screen ?? null };
      renderParticipant(state.participants.get(this.id));
      renderScreenStage();
    }
  }

  onTrack({ track, streams }) {
    const stream = streams[0] ?? new MediaStream([track]);
    this.remoteStreams.set(stream.id, stream);
    const rerender = () => {
      renderParticipant(state.participants.get(this.id));
      renderScreenStage();
    };
    track.addEventListener("unmute", rerender);
    track.addEventListener("mute", rerender);
    track.addEventListener("ended", rerender);
    stream.addEventListener("removetrack", rerender);
    stream.addEventListener("addtrack", rerender);
    rerender();
  }

  // The remote camera video track, the remote screen track, and remote audio tracks.
  remoteTracks() {
    let camera = null;
    let screen = null;
    const audio = [];
    for (const [streamId, stream] of this.remoteStreams) {
      for (const track of stream.getTracks()) {
        if (track.readyState === "ended") continue;
        if (track.kind === "audio") {
          audio.push(track);
        } else if (streamId === this.remoteKinds.screen) {
          screen = screen ?? track;
        } else if (streamId === this.remoteKinds.camera || this.remoteKinds.camera === null) {
          camera = camera ?? track;
        }
      }
    }
    return { camera, screen, audio };
  }

  // "negotiationneeded" is handled at once (not queued behind incoming signals): the
  // browser fires it only in the stable state, and makingOffer tells handleSignal that
  // an offer of ours is in flight (perfect negotiation, as in the WebRTC spec's example).
  async negotiate() {
    if (this.closed || this.pc.signalingState !== "stable") return;
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      send("signal", { to: this.id, description: this.pc.localDescription.toJSON() });
    } catch (err) {
      log.warn("offer to", this.id, "failed", err);
    } finally {
      this.makingOffer = false;
    }
  }

  receive(data) {
    // Signals of one peer are handled one after the other, in arrival order.
    this.queue = this.queue.then(() => this.handleSignal(data)).catch((err) => {
      log.warn("signal from", this.id, "failed", err);
    });
  }

  async handleSignal({ description, candidate }) {
    if (this.closed) return;
    const pc = this.pc;
    if (description) {
      const readyForOffer = !this.makingOffer &&
        (pc.signalingState === "stable" || this.settingRemoteAnswer);
      const collision = description.type === "offer" && !readyForOffer;
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      const firstOffer = description.type === "offer" && !this.started;
      if (firstOffer) {
        // The newcomer's first offer: take our data channel into this exchange (the
        // offer has its m-line), answer, then add our tracks (a second exchange).
        this.started = true;
        clearTimeout(this.startTimer);
        this.openMeta();
      }
      this.settingRemoteAnswer = description.type === "answer";
      try {
        await pc.setRemoteDescription(description);
      } finally {
        this.settingRemoteAnswer = false;
      }
      await this.flushCandidates();
      if (description.type === "offer") {
        await pc.setLocalDescription();
        send("signal", { to: this.id, description: pc.localDescription.toJSON() });
      }
      if (firstOffer) this.attachLocalTracks();
    } else if (candidate !== undefined) {
      if (candidate === null) return; // end of candidates: nothing to do
      if (!pc.remoteDescription) {
        this.pendingCandidates.push(candidate);
        return;
      }
      await this.addCandidate(candidate);
    }
  }

  async flushCandidates() {
    const queued = this.pendingCandidates;
    this.pendingCandidates = [];
    for (const candidate of queued) await this.addCandidate(candidate);
  }

  async addCandidate(candidate) {
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (err) {
      if (!this.ignoreOffer) log.warn("ICE candidate from", this.id, "refused", err);
    }
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.startTimer);
    try {
      this.meta?.close();
    } catch {
      // closing anyway
    }
    this.pc.close();
  }
}

function createPeer(id, polite) {
  closePeer(id);
  let peer;
  try {
    peer = new Peer(id, polite);
  } catch (err) {
    // e.g. an ICE server entry the browser refuses
    log.warn("cannot create a peer connection", err);
    notify(`Media with ${state.participants.get(id)?.name ?? "a participant"} cannot be set up: ${err.message}`,
      { kind: "error" });
    return null;
  }
  peers.set(id, peer);
  peerConnections.set(id, peer.pc);
  return peer;
}

function closePeer(id) {
  const peer = peers.get(id);
  if (!peer) return;
  peer.close();
  peers.delete(id);
  peerConnections.delete(id);
  const audio = document.querySelector(`#audio-sink audio[data-user-id="${CSS.escape(id)}"]`);
  audio?.remove();
  renderParticipant(state.participants.get(id));
}

function closeAllPeers() {
  for (const id of [...peers.keys()]) closePeer(id);
}

// ---------------------------------------------------------------------------------------
// 7. Participants: the grid of tiles and the people list
// ---------------------------------------------------------------------------------------

function showScreen(id) {
  for (const screen of document.querySelectorAll(".screen")) show(screen, screen.id === id);
}

function showError(title, text) {
  state.leaving = true;
  clearTimeout(state.reconnectTimer);
  detachSocket();
  $("error-title").textContent = title;
  $("error-text").textContent = text;
  showScreen("error-screen");
  emit("error", { code: "fatal", message: text, fatal: true });
}

function setConnecting(text) {
  $("connecting-text").textContent = text;
}

function renderMeetingInfo() {
  const m = state.meeting;
  $("meeting-name").textContent = m.name ?? "";
  document.title = m.name ? `${m.name}` : document.title;
  show($("recording-badge"), Boolean(m.record));
  const welcome = $("welcome");
  welcome.replaceChildren(sanitizedFragment(m.welcome ?? ""));
  show($("welcome-message"), Boolean(welcome.textContent.trim()));
  const modMessage = $("moderator-only-message");
  modMessage.replaceChildren(sanitizedFragment(m.moderatorOnlyMessage ?? ""));
  show($("moderator-message"), isModerator() && Boolean(modMessage.textContent.trim()));
}

function gridColumns(count) {
  if (count <= 1) return 1;
  if (count <= 4) return 2;
  if (count <= 9) return 3;
  if (count <= 16) return 4;
  return 5;
}

function renderAllParticipants() {
  $("grid").replaceChildren();
  $("people-list").replaceChildren();
  const ordered = [...state.participants.values()];
  for (const p of ordered) renderParticipant(p);
  renderPeopleCount();
  renderScreenStage();
}

function renderPeopleCount() {
  const count = state.participants.size;
  $("people-count").textContent = String(count);
  const grid = $("grid");
  grid.style.setProperty("--cols", String(gridColumns(grid.children.length)));
  $("self-summary").textContent = state.self ? `${state.self.name}${isModerator() ? " · moderator" : ""}` : "";
}

function removeParticipantViews(id) {
  const sel = `[data-user-id="${CSS.escape(id)}"]`;
  document.querySelector(`#grid .tile${sel}`)?.remove();
  document.querySelector(`#people-list li${sel}`)?.remove();
  document.querySelector(`#audio-sink audio${sel}`)?.remove();
  renderPeopleCount();
}

function badgeList(p) {
  const badges = [];
  if (p.presenter) badges.push(el("span", { class: "badge presenter", title: "Presenter", text: "Presenter" }));
  if (p.role === "MODERATOR") badges.push(el("span", { class: "badge moderator", title: "Moderator", text: "Moderator" }));
  if (p.guest) badges.push(el("span", { class: "badge guest", title: "Guest", text: "Guest" }));
  return badges;
}

function statusIcons(p) {
  const icons = [];
  if (p.raisedHand) icons.push(el("span", { class: "icon status hand", dataset: { icon: "hand" }, title: "Raised hand", "aria-label": "Raised hand" }));
  if (p.listenOnly) icons.push(el("span", { class: "icon status", dataset: { icon: "headset" }, title: "Listening only", "aria-label": "Listening only" }));
  else if (p.joinedVoice && p.muted) icons.push(el("span", { class: "icon status muted", dataset: { icon: "mic-off" }, title: "Muted", "aria-label": "Muted" }));
  else if (p.joinedVoice) icons.push(el("span", { class: "icon status", dataset: { icon: "mic" }, title: "Microphone on", "aria-label": "Microphone on" }));
  if (p.screen) icons.push(el("span", { class: "icon status", dataset: { icon: "screen" }, title: "Sharing the screen", "aria-label": "Sharing the screen" }));
  return icons;
}

// Avatars: https images, or images of this service; anything else shows initials.
function isAvatarUrl(value) {
  if (!value) return false;
  try {
    const url = new URL(value, location.href);
    return url.protocol === "https:" || url.origin === location.origin;
  } catch {
    return false;
  }
}

function avatar(p, size) {
  const node = el("span", { class: `avatar ${size}`, "aria-hidden": "true" });
  node.style.setProperty("--hue", String(hueFor(p.externalId || p.id)));
  if (isAvatarUrl(p.avatarUrl)) {
    const img = el("img", { src: p.avatarUrl, alt: "" });
    img.addEventListener("error", () => img.replaceWith(document.createTextNode(initials(p.name))));
    node.append(img);
  } else {
    node.textContent = initials(p.name);
  }
  return node;
}

function attachTrack(video, track) {
  if (!track) {
    if (video.srcObject) video.srcObject = null;
    video.dataset.trackId = "";
    return;
  }
  if (video.dataset.trackId !== track.id) {
    video.srcObject = new MediaStream([track]);
    video.dataset.trackId = track.id;
    video.play().catch(() => {});
  }
}

function renderParticipant(p) {
  if (!p || !state.self) return;
  renderTile(p);
  renderPersonRow(p);
  renderRemoteAudio(p);
}

function renderTile(p) {
  const isSelf = p.id === state.self.id;
  let tile = document.querySelector(`#grid .tile[data-user-id="${CSS.escape(p.id)}"]`);
  if (!tile) {
    tile = el("div", { class: "tile", dataset: { userId: p.id } },
      el("video", { class: "camera", autoplay: true, playsinline: true, muted: true }),
      el("div", { class: "placeholder" }),
      el("div", { class: "nameplate" }));
    tile.querySelector("video").muted = true;
    $("grid").append(tile);
    renderPeopleCount();
  }
  const video = tile.querySelector("video.camera");
  let cameraTrack = null;
  if (isSelf) {
    cameraTrack = media.cameraTrack;
  } else {
    const peer = peers.get(p.id);
    if (peer && p.video) cameraTrack = peer.remoteTracks().camera;
  }
  attachTrack(video, cameraTrack);
  tile.classList.toggle("self", isSelf);
  tile.classList.toggle("has-video", Boolean(cameraTrack));
  tile.classList.toggle("presenter", Boolean(p.presenter));
  tile.classList.toggle("hand", Boolean(p.raisedHand));
  tile.classList.toggle("reconnecting", Boolean(p.reconnecting));
  const placeholder = tile.querySelector(".placeholder");
  const avatarKey = `${p.name}\n${p.avatarUrl ?? ""}`;
  if (placeholder.dataset.key !== avatarKey) {
    placeholder.replaceChildren(avatar(p, "large"));
    placeholder.dataset.key = avatarKey;
  }
  const nameplate = tile.querySelector(".nameplate");
  nameplate.replaceChildren(
    ...statusIcons(p),
    el("span", { class: "name", text: isSelf ? `${p.name} (you)` : p.name }),
    ...badgeList(p),
  );
  if (p.reconnecting) nameplate.append(el("span", { class: "badge warn", text: "Reconnecting" }));
}

function renderPersonRow(p) {
  const isSelf = p.id === state.self.id;
  let row = document.querySelector(`#people-list li[data-user-id="${CSS.escape(p.id)}"]`);
  if (!row) {
    row = el("li", { class: "person", dataset: { userId: p.id } });
    $("people-list").append(row);
  }
  row.dataset.role = p.role;
  row.dataset.muted = String(Boolean(p.muted));
  row.dataset.hand = String(Boolean(p.raisedHand));
  row.dataset.presenter = String(Boolean(p.presenter));
  const info = el("div", { class: "person-info" },
    avatar(p, "small"),
    el("div", { class: "person-text" },
      el("span", { class: "person-name", text: isSelf ? `${p.name} (you)` : p.name }),
      el("span", { class: "person-badges" }, ...badgeList(p))),
    el("span", { class: "spacer" }),
    ...statusIcons(p));
  const actions = el("div", { class: "person-actions" });
  if (isModerator()) {
    if (p.raisedHand) actions.append(actionButton("lower-hand", "Lower hand", () => act("lowerHand", { userId: p.id }, "lower the hand")));
    if (!isSelf && p.joinedVoice && !p.muted && !p.listenOnly) actions.append(actionButton("mute", "Mute", () => act("mute", { userId: p.id }, "mute")));
    if (!p.presenter) actions.append(actionButton("presenter", "Make presenter", () => act("presenter", { userId: p.id }, "change the presenter")));
    if (!isSelf && p.role !== "MODERATOR") actions.append(actionButton("promote", "Promote", () => act("role", { userId: p.id, role: "MODERATOR" }, "promote")));
    if (!isSelf && p.role === "MODERATOR") actions.append(actionButton("demote", "Demote", () => act("role", { userId: p.id, role: "VIEWER" }, "demote")));
    if (!isSelf) actions.append(actionButton("remove", "Remove", () => removeParticipant(p), "danger"));
  } else if (isSelf && p.raisedHand) {
    actions.append(actionButton("lower-hand", "Lower hand", () => act("raiseHand", { raised: false }, "lower your hand")));
  }
  row.replaceChildren(info, actions);
  show(actions, actions.children.length > 0);
}

function actionButton(action, label, run, extra = "") {
  return el("button", {
    type: "button", class: `btn small ${extra}`.trim(), dataset: { action }, text: label,
    onclick: (event) => {
      event.currentTarget.disabled = true;
      Promise.resolve(run()).catch(() => {}).finally(() => {
        if (event.currentTarget) event.currentTarget.disabled = false;
      });
    },
  });
}

async function removeParticipant(p) {
  const ok = await confirmAction(`Remove ${p.name}?`, `${p.name} will leave the meeting and cannot come back with the same link.`, "Remove");
  if (ok) await act("remove", { userId: p.id }, "remove the participant");
}

function renderRemoteAudio(p) {
  if (p.id === state.self.id) return;
  const peer = peers.get(p.id);
  const tracks = peer ? peer.remoteTracks().audio : [];
  let audio = document.querySelector(`#audio-sink audio[data-user-id="${CSS.escape(p.id)}"]`);
  if (!tracks.length) {
    audio?.remove();
    return;
  }
  if (!audio) {
    audio = el("audio", { autoplay: true, dataset: { userId: p.id } });
    audio.muted = media.audioMode === "none";
    $("audio-sink").append(audio);
  }
  const key = tracks.map((t) => t.id).join(",");
  if (audio.dataset.tracks !== key) {
    audio.srcObject = new MediaStream(tracks);
    audio.dataset.tracks = key;
    audio.play().catch(() => {});
  }
}

function renderScreenStage() {
  const stage = $("screen-stage");
  if (!state.self) return;
  let track = null;
  let owner = null;
  if (media.screenTrack) {
    track = media.screenTrack;
    owner = state.self;
  } else {
    for (const [id, peer] of peers) {
      const p = state.participants.get(id);
      const screen = peer.remoteTracks().screen;
      if (p && p.screen && screen) {
        track = screen;
        owner = p;
        break;
      }
    }
  }
  let video = stage.querySelector("video");
  if (!track) {
    if (video) attachTrack(video, null);
    stage.replaceChildren();
    show(stage, false);
    document.querySelector(".stage").classList.remove("sharing");
    return;
  }
  if (!video) {
    video = el("video", { class: "screen-video", autoplay: true, playsinline: true, muted: true });
    video.muted = true;
    stage.replaceChildren(video, el("div", { class: "nameplate" }));
  }
  stage.dataset.userId = owner.id;
  stage.querySelector(".nameplate").replaceChildren(
    el("span", { class: "icon status", dataset: { icon: "screen" } }),
    el("span", { class: "name", text: owner.id === state.self.id ? "You are sharing your screen" : `${owner.name}'s screen` }));
  attachTrack(video, track);
  show(stage, true);
  document.querySelector(".stage").classList.add("sharing");
}

function setToolButton(button, { pressed, label, icon, disabled = false, title = "" }) {
  button.setAttribute("aria-pressed", String(Boolean(pressed)));
  button.querySelector(".tool-label").textContent = label;
  button.querySelector(".icon").dataset.icon = icon;
  button.disabled = disabled;
  button.title = title || label;
}

function updateToolbar() {
  const mode = media.audioMode;
  setToolButton($("audio-btn"), {
    pressed: mode !== "none",
    label: mode === "none" ? "Join audio" : "Leave audio",
    icon: mode === "none" ? "headset" : "headset-off",
  });
  setToolButton($("mic-btn"), {
    pressed: mode === "microphone" && !media.muted,
    label: mode === "listen" ? "Listen only" : media.muted ? "Unmute" : "Mute",
    icon: mode === "microphone" && !media.muted ? "mic" : "mic-off",
    disabled: mode !== "microphone",
    title: mode === "microphone" ? "" : "Join audio with a microphone first",
  });
  setToolButton($("camera-btn"), {
    pressed: Boolean(media.cameraTrack),
    label: media.cameraTrack ? "Stop camera" : "Start camera",
    icon: media.cameraTrack ? "camera" : "camera-off",
  });
  const presenter = Boolean(state.self?.presenter);
  setToolButton($("screen-btn"), {
    pressed: Boolean(media.screenTrack),
    label: media.screenTrack ? "Stop sharing" : "Share screen",
    icon: "screen",
    disabled: !presenter && !media.screenTrack,
    title: presenter ? "" : "Only the presenter can share the screen",
  });
  const raised = Boolean(state.self?.raisedHand);
  setToolButton($("hand-btn"), { pressed: raised, label: raised ? "Lower hand" : "Raise hand", icon: "hand" });
}

// ---------------------------------------------------------------------------------------
// 8. Chat and the welcome message
// ---------------------------------------------------------------------------------------

function addChatMessage(item) {
  if (!item || typeof item.text !== "string" || state.chatIds.has(item.id)) return;
  state.chatIds.add(item.id);
  const mine = state.self && item.from === state.self.id;
  const fromApi = item.from === null || item.from === undefined;
  const row = el("li", { class: `chat-message${mine ? " mine" : ""}${fromApi ? " system" : ""}`, dataset: { messageId: item.id } },
    el("div", { class: "chat-meta" },
      el("span", { class: "chat-name", text: item.name || (fromApi ? "Announcement" : "Someone") }),
      el("time", { class: "chat-time", text: item.at ? formatTime(item.at) : "" })),
    el("div", { class: "chat-text" }, linkifiedText(item.text)));
  const list = $("chat-messages");
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  list.append(row);
  if (nearBottom || mine) list.scrollTop = list.scrollHeight;
  if (!mine && $("tab-chat").getAttribute("aria-selected") !== "true") {
    state.unreadChat += 1;
    $("chat-unread").textContent = String(state.unreadChat);
    show($("chat-unread"), true);
  }
}

async function sendChat(event) {
  event.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text) return;
  if (text.length > 500) {
    notify("Messages are limited to 500 characters.", { kind: "error" });
    return;
  }
  $("chat-send").disabled = true;
  try {
    await act("chat", { text }, "send the message");
    input.value = "";
  } catch {
    // reported by act()
  } finally {
    $("chat-send").disabled = false;
    input.focus();
  }
}

function selectTab(name) {
  for (const tab of ["chat", "people"]) {
    const selected = tab === name;
    $(`tab-${tab}`).setAttribute("aria-selected", String(selected));
    show($(`${tab}-panel`), selected);
  }
  if (name === "chat") {
    state.unreadChat = 0;
    show($("chat-unread"), false);
    const list = $("chat-messages");
    list.scrollTop = list.scrollHeight;
  }
}

// ---------------------------------------------------------------------------------------
// 9. Moderation and the lobby
// ---------------------------------------------------------------------------------------

function renderModeratorControls() {
  const mod = isModerator();
  show($("moderator-bar"), mod);
  show($("end-btn"), mod);
  show($("moderator-message"), mod && Boolean($("moderator-only-message").textContent.trim()));
  renderWaiting();
  renderPeopleCount();
  updateToolbar();
}

function renderWaiting() {
  const mod = isModerator();
  const list = $("waiting-list");
  list.replaceChildren();
  for (const guest of state.waiting.values()) {
    list.append(el("li", { class: "person waiting-guest", dataset: { userId: guest.id } },
      el("div", { class: "person-info" },
        avatar({ id: guest.id, name: guest.name }, "small"),
        el("span", { class: "person-name", text: guest.name })),
      el("div", { class: "person-actions" },
        actionButton("admit", "Admit", () => admitGuest(guest.id), "primary"),
        actionButton("deny", "Deny", () => act("deny", { userId: guest.id }, "deny the guest")))));
  }
  const count = state.waiting.size;
  show($("waiting-section"), mod && count > 0);
  $("waiting-count").textContent = `${count} waiting`;
  show($("waiting-count"), mod && count > 0);
}

function admitGuest(id) {
  return act("admit", { userId: id }, "admit the guest");
}

async function endMeeting() {
  const ok = await confirmAction("End the meeting for everyone?", "Everybody will be disconnected and the meeting will be over.", "End meeting");
  if (ok) await act("end", {}, "end the meeting").catch(() => {});
}

async function muteAll() {
  try {
    const result = await act("muteAll", {}, "mute everyone");
    notify(`Asked ${result?.count ?? "everyone"} to mute.`);
  } catch {
    // reported by act()
  }
}

// ---------------------------------------------------------------------------------------
// 10. Start-up and the debug hook
// ---------------------------------------------------------------------------------------

function wireUi() {
  $("audio-btn").addEventListener("click", () => {
    if (media.audioMode === "none") openAudioDialog();
    else leaveAudio();
  });
  $("audio-dialog").addEventListener("close", () => onAudioDialogClosed());
  $("mic-btn").addEventListener("click", () => setMuted(!media.muted));
  $("camera-btn").addEventListener("click", () => toggleCamera());
  $("screen-btn").addEventListener("click", () => toggleScreenShare());
  $("hand-btn").addEventListener("click", () => {
    const raised = !state.self?.raisedHand;
    act("raiseHand", { raised }, raised ? "raise your hand" : "lower your hand").catch(() => {});
  });
  $("leave-btn").addEventListener("click", () => leaveMeeting());
  $("lobby-leave").addEventListener("click", () => leaveMeeting());
  $("end-btn").addEventListener("click", () => endMeeting());
  $("mute-all").addEventListener("click", () => muteAll());
  $("admit-all").addEventListener("click", () => {
    for (const id of [...state.waiting.keys()]) admitGuest(id).catch(() => {});
  });
  $("chat-form").addEventListener("submit", sendChat);
  $("tab-chat").addEventListener("click", () => selectTab("chat"));
  $("tab-people").addEventListener("click", () => selectTab("people"));
  document.body.append(el("div", { id: "audio-sink", hidden: true }));
}

function start() {
  wireUi();
  updateToolbar();
  state.token = takeSessionToken();
  if (!state.token) {
    showError("This meeting link is incomplete",
      "There is no session to resume in this window. Open the meeting through the link your organiser or learning platform gave you.");
    return;
  }
  connect();
}

// The debug hook: tests and embedding code read state here (never write it).
window.meetplatform = {
  peers: peerConnections,
  get selfId() { return state.self?.id ?? null; },
  get meeting() { return state.meeting; },
  get participants() { return [...state.participants.values()]; },
  get waitingGuests() { return [...state.waiting.values()]; },
  get connected() { return Boolean(state.socket && state.opened); },
  get inLobby() { return state.inLobby; },
  get media() {
    return {
      audioMode: media.audioMode, muted: media.muted,
      camera: Boolean(media.cameraTrack), screen: Boolean(media.screenTrack),
    };
  },
  // Simulate a network drop: the socket goes away without "leave"; the page reconnects.
  dropConnection() {
    const socket = state.socket;
    if (!socket) return false;
    onSocketClosed(1006, "simulated drop", true);
    return true;
  },
  // Frames sent and received by type (signals by description type or "candidate").
  counters,
  describeMediaError,
  sanitizedFragment,
  // Commands for embed-bridge.js (the /embed page), the same as the page's own buttons.
  setMuted(muted) { setMuted(Boolean(muted)); },
  leave() { return leaveMeeting(); },
};

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
