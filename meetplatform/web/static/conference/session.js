// The session: the seat's token (from the URL once, then from sessionStorage, so that a
// reload resumes) and the page's shared state, read and written by every other module.

import { log } from "./util.js";

const STORAGE_KEY = "meetplatform.sessionToken";

let memoryToken = null;

export function takeSessionToken() {
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

// What the entry module keeps for a reload: the seat's pre-join settings, and the token
// that passed the pre-join screen already (a reload of it resumes at once).
export const ENTRY_KEY = "meetplatform.entry";
export const ENTERED_KEY = "meetplatform.entered";

export function forgetSessionToken() {
  memoryToken = null;
  try {
    sessionStorage.removeItem(STORAGE_KEY);
    sessionStorage.removeItem(ENTRY_KEY);
    sessionStorage.removeItem(ENTERED_KEY);
  } catch {
    // storage blocked: nothing stored
  }
}

// What the page knows about its connection, its seat and the meeting.
export const state = {
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
  iceTransportPolicy: "all", // "relay": media only through TURN
  inLobby: false,
  nextRequestId: 1,
  pending: new Map(),      // request id -> {resolve, reject, timer, type}
  unreadChat: 0,
  audioChosen: false,      // the pre-join screen (or its skip) chose the audio
};
