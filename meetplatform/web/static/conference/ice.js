// ICE configuration: the servers and transport policy the server hands over in "joined"
// and in the "iceRefresh" ack (docs/signalling-protocol.md). TURN credentials are minted
// per participant with a lifetime (iceServersTtl): a TURN server only checks it when an
// allocation is created, so peer connections set up later and ICE restarts need fresh
// ones. The page asks again before three quarters of the lifetime are over and right
// before an ICE restart, and every peer connection module takes the new servers through
// onIceServersChanged (RTCPeerConnection.setConfiguration applies them to the next
// gathering).

import { log } from "./util.js";
import { state } from "./session.js";
import { request } from "./socket.js";

const listeners = new Set();
let refreshTimer = null;

// The RTCConfiguration every new RTCPeerConnection of the page uses.
export function rtcConfiguration() {
  const config = { iceServers: state.iceServers };
  if (state.iceTransportPolicy === "relay") config.iceTransportPolicy = "relay";
  return config;
}

// Take the ICE fields of "joined" or of an "iceRefresh" ack.
export function applyIceConfig(data) {
  state.iceServers = Array.isArray(data?.iceServers) ? data.iceServers : [];
  state.iceTransportPolicy = data?.iceTransportPolicy === "relay" ? "relay" : "all";
  clearTimeout(refreshTimer);
  refreshTimer = null;
  const ttl = Number(data?.iceServersTtl);
  if (Number.isFinite(ttl) && ttl > 0) {
    refreshTimer = setTimeout(() => refreshIceServers().catch(() => {}), ttl * 750);
  }
  for (const listener of listeners) {
    try {
      listener(rtcConfiguration());
    } catch (err) {
      log.warn("applying new ICE servers failed", err);
    }
  }
}

// Ask the server for fresh ICE servers (new TURN credentials) and apply them.
export async function refreshIceServers() {
  try {
    applyIceConfig(await request("iceRefresh"));
  } catch (err) {
    log.warn("could not refresh the ICE servers", err);
    throw err;
  }
}

// Called with the new RTCConfiguration whenever the ICE servers change.
export function onIceServersChanged(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function stopIceRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = null;
}
