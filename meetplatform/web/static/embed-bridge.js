// The iframe side of embedding (/embed/<room>): credentials in, events out.
//
// Loaded instead of conference.js by the /embed page. It works out who frames the page
// (only origins of the room's space can: the server's frame-ancestors), takes the
// credential from the URL fragment or from the parent's "join" command, turns it into a
// seat with POST /embed/<room>/session (same origin, JSON body: nothing in a query, no
// cookie), then hands the seat's session token to conference.js and loads it. The
// conference page's DOM events (meetplatform:*) are forwarded to the parent with
// postMessage, always to the parent's exact origin; commands are accepted only from the
// parent window and from that origin. The contract is docs/embedding.md.

import { chooseLanguage, setLanguage, t } from "./conference/i18n.js";

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";
const $ = (id) => document.getElementById(id);

const config = {
  room: meta("mp-embed-room"),
  isPublic: meta("mp-embed-public") === "true",
  origins: meta("mp-embed-origins").split(/\s+/).filter(Boolean),
  sessionUrl: meta("mp-embed-session-url"),
  conferenceJs: meta("mp-conference-js"),
};

// conference.js keeps the seat's token under this key; a reload of the frame resumes it.
const STORAGE_KEY = "meetplatform.sessionToken";
const PROTOCOL = 1;

// ---------------------------------------------------------------------------------------
// Where we are: the fragment's parameters (then an address without them) and the parent
// ---------------------------------------------------------------------------------------

const fragment = new URLSearchParams(location.hash.slice(1));
if (location.hash) history.replaceState(null, "", location.pathname + location.search);

const framed = window.parent !== window;
const parentOrigin = findParentOrigin();

function findParentOrigin() {
  if (!framed) return null;
  const allowed = new Set([location.origin, ...config.origins]);
  const ancestors = location.ancestorOrigins;
  if (ancestors && ancestors.length > 0) return allowed.has(ancestors[0]) ? ancestors[0] : null;
  const claimed = fragment.get("origin");
  if (claimed && allowed.has(claimed)) return claimed;
  return allowed.size === 1 ? location.origin : null;
}

function post(event, data = {}) {
  if (!parentOrigin) return;
  try {
    window.parent.postMessage({ meetplatform: PROTOCOL, type: "event", event, data }, parentOrigin);
  } catch (err) {
    console.warn("[meetplatform] cannot post to the embedding page", err);
  }
}

// ---------------------------------------------------------------------------------------
// Events out: the conference page's DOM events, forwarded
// ---------------------------------------------------------------------------------------

function participantsNow() {
  const list = window.meetplatform?.participants ?? [];
  return list.map((p) => ({ participantId: p.id, name: p.name, role: p.role }));
}

const FORWARDED = [
  "participantJoined", "participantLeft", "knocking", "roleChanged", "audioMuted",
  "videoMuted", "leaving", "error",
];
for (const name of FORWARDED) {
  window.addEventListener(`meetplatform:${name}`, (event) => post(name, event.detail ?? {}));
}
window.addEventListener("meetplatform:joined", (event) => {
  const detail = event.detail ?? {};
  const self = participantsNow().find((p) => p.participantId === detail.participantId);
  post("joined", { ...detail, name: self?.name ?? null, participants: participantsNow() });
});
window.addEventListener("meetplatform:left", (event) => {
  post("left", event.detail ?? {});
  post("readyToClose", { reason: event.detail?.reason ?? "left" });
});

// ---------------------------------------------------------------------------------------
// Commands in: only from the parent window, only from its origin
// ---------------------------------------------------------------------------------------

window.addEventListener("message", (event) => {
  if (!parentOrigin || event.source !== window.parent || event.origin !== parentOrigin) return;
  const message = event.data;
  if (!message || message.meetplatform !== PROTOCOL || message.type !== "command") return;
  const data = message.data && typeof message.data === "object" ? message.data : {};
  try {
    command(String(message.command), data);
  } catch (err) {
    post("error", { code: "commandFailed", command: String(message.command), message: String(err), fatal: false });
  }
});

function command(name, data) {
  const page = window.meetplatform;
  switch (name) {
    case "join":
      begin({
        token: stringOrNull(data.token), displayName: stringOrNull(data.displayName),
        prejoin: data.prejoin !== false, lang: stringOrNull(data.lang),
      });
      return;
    case "mute":
    case "unmute": {
      const muted = name === "mute" && data.muted !== false;
      if (!page?.setMuted || page.media.audioMode !== "microphone") {
        if (muted) post("audioMuted", { muted: true });
        else post("error", { code: "noMicrophone", command: name, message: "the microphone is not on", fatal: false });
        return;
      }
      page.setMuted(muted);
      return;
    }
    case "leave":
      if (page?.leave) {
        page.leave();
      } else {
        post("left", { reason: "left" });
        post("readyToClose", { reason: "left" });
      }
      return;
    default:
      post("error", { code: "unknownCommand", command: name, message: `unknown command ${name}`, fatal: false });
  }
}

function stringOrNull(value) {
  return typeof value === "string" && value.trim() ? value.trim() : null;
}

// ---------------------------------------------------------------------------------------
// Credentials: a session to resume, an invitation, or (public rooms) a name
// ---------------------------------------------------------------------------------------

let begun = false;
let started = false;

function readStored() {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage blocked (third-party storage off): nothing to resume
  }
}

function forgetStored() {
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // storage blocked: nothing stored
  }
}

async function exchange(body) {
  let response;
  try {
    response = await fetch(config.sessionUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    return { ok: false, error: { code: "network", title: "Cannot reach the meeting service", message: "Check the connection and reload." } };
  }
  let payload = {};
  try {
    payload = await response.json();
  } catch {
    payload = {};
  }
  if (response.ok && typeof payload.sessionToken === "string") return { ok: true, session: payload };
  const error = payload.error ?? {};
  return {
    ok: false,
    error: {
      code: error.code || `http.${response.status}`,
      title: error.title || "Cannot join",
      message: error.message || `The meeting service answered ${response.status}.`,
    },
  };
}

// The embedding site's options for conference.js: skip the pre-join screen (prejoin:
// false, #prejoin=0) and the language (lang, #lang=). The seat's own settings (entry)
// come with the session.
const options = { prejoin: true, lang: null, entry: null };

async function begin(credential) {
  if (begun) return;
  begun = true;
  options.prejoin = credential.prejoin !== false;
  options.lang = credential.lang ?? null;
  await setLanguage(chooseLanguage(options.lang));
  const token = credential.token;
  // A session token handed over by the parent (e.g. from POST /api/v2/rooms/{id}/join).
  if (token && !token.startsWith("mput_")) {
    const result = await exchange({ sessionToken: token });
    if (result.ok) start(result.session);
    else fail(result.error);
    return;
  }
  // A session this tab had already (a reload): the invitation is not needed again.
  const stored = readStored();
  if (stored) {
    const result = await exchange({ sessionToken: stored });
    if (result.ok) {
      start(result.session);
      return;
    }
    forgetStored();
  }
  if (token) {
    await withName({ token }, credential.displayName);
  } else if (config.isPublic) {
    await withName({}, credential.displayName);
  } else {
    fail({
      code: "room.private", title: "This room needs an invitation",
      message: "Only people with an invitation can join this room.",
    });
  }
}

async function withName(body, name) {
  const result = await exchange(name ? { ...body, displayName: name } : body);
  if (result.ok) {
    start(result.session);
  } else if (result.error.code === "userToken.displayNameRequired") {
    askName(body, name ? result.error.message : "");
  } else {
    fail(result.error);
  }
}

function askName(body, problem) {
  const card = document.querySelector("#connecting-screen .card");
  card.querySelector(".spinner")?.remove();
  $("connecting-text").textContent = t("embed.askName");
  let form = $("embed-name-form");
  if (!form) {
    form = document.createElement("form");
    form.id = "embed-name-form";
    form.className = "join-form";
    form.autocomplete = "off";
    const label = Object.assign(document.createElement("label"), { className: "field", htmlFor: "embed-display-name", textContent: t("prejoin.name") });
    const input = Object.assign(document.createElement("input"), {
      className: "text-input", id: "embed-display-name", name: "displayName", type: "text",
      required: true, maxLength: 200, autocomplete: "name",
    });
    const problemBox = Object.assign(document.createElement("p"), { className: "form-problem", id: "embed-name-problem", hidden: true });
    const button = Object.assign(document.createElement("button"), { className: "btn primary", id: "embed-join", type: "submit", textContent: t("prejoin.join") });
    form.append(problemBox, label, input, button);
    card.append(form);
  }
  const problemBox = $("embed-name-problem");
  problemBox.textContent = problem;
  problemBox.hidden = !problem;
  form.onsubmit = (event) => {
    event.preventDefault();
    const name = $("embed-display-name").value.trim();
    if (!name) return;
    $("embed-join").disabled = true;
    withName(body, name).finally(() => {
      const button = $("embed-join");
      if (button) button.disabled = false;
    });
  };
  $("embed-display-name").focus();
}

function fail(error) {
  $("error-title").textContent = error.title;
  $("error-text").textContent = error.message;
  for (const screen of document.querySelectorAll(".screen")) screen.hidden = screen.id !== "error-screen";
  post("error", { code: error.code, message: error.message, fatal: true });
}

// Hand the session token to conference.js the way a join link does (it takes it out of
// the address at once and keeps it in memory and sessionStorage), then load it. The
// address changes in this document only: no request carries it.
async function start(session) {
  if (started) return;
  started = true;
  const sessionToken = session.sessionToken;
  window.meetplatformEmbed = { ...options, entry: session.entry ?? null };
  $("embed-name-form")?.remove();
  $("connecting-text").textContent = t("connecting.joining");
  history.replaceState(null, "", `${location.pathname}?sessionToken=${encodeURIComponent(sessionToken)}`);
  try {
    await import(config.conferenceJs);
  } catch (err) {
    fail({ code: "load", title: "The meeting could not start", message: String(err) });
  }
}

// ---------------------------------------------------------------------------------------
// Start: announce ourselves; take the credential from the fragment or wait for "join"
// ---------------------------------------------------------------------------------------

post("ready", { room: config.room, public: config.isPublic });
if (fragment.get("handshake") === "1" && parentOrigin) {
  await setLanguage(chooseLanguage(fragment.get("lang")));
  if (!begun) $("connecting-text").textContent = t("embed.waiting");
} else {
  begin({
    token: stringOrNull(fragment.get("t")), displayName: stringOrNull(fragment.get("name")),
    prejoin: fragment.get("prejoin") !== "0", lang: stringOrNull(fragment.get("lang")),
  });
}
