// Media through a media node (SFU): used when "joined" says media.mode === "sfu".
//
// The page keeps two RTCPeerConnections with the server (which relays to Janus):
//   publisher   sendonly: microphone, camera (simulcast when the camera is large enough),
//               screen — one transceiver each; every change is a new offer sent with
//               media.publish, the answer comes back in the ack;
//   subscriber  one multistream connection receiving everyone else: the server sends
//               media.offer {seq, sdp, streams}, the page answers with media.answer.
// Received tracks are given to per-participant Remote objects kept in peers.js's map, so
// view.js renders tiles, audio and the screen stage exactly as for mesh peers.
// media.renegotiate (the meeting moved to another node, or fell back to mesh) rebuilds
// both connections without reloading. docs/signalling-protocol.md, "Media through a node".

import { log, notify } from "./util.js";
import { state } from "./session.js";
import { request, send } from "./socket.js";
import { localTrackSinks, media, setMuted } from "./media.js";
import { closeAllPeers, createPeer, peers } from "./peers.js";
import { renderParticipant, renderScreenStage } from "./view.js";
import { onIceServersChanged, rtcConfiguration } from "./ice.js";

export const sfu = {
  active: false,
  info: null,        // the "media" member of joined
  pub: null,         // publisher RTCPeerConnection
  sub: null,         // subscriber RTCPeerConnection
  transceivers: { mic: null, camera: null, screen: null },
  streams: new Map(), // subscriber mid -> {mid, type, userId, source}
  generation: 0,
  publishing: false,
  again: false,
  subQueue: Promise.resolve(),
  layers: new Map(),  // subscriber mid -> substream asked for
  moderated: 0,       // media.moderation events seen (tests)
  renegotiations: 0,
};

// A remote participant as view.js sees it (same shape as a mesh Peer).
class Remote {
  constructor(id) {
    this.id = id;
    this.camera = null;
    this.screen = null;
    this.audio = [];
  }

  remoteTracks() {
    return { camera: this.camera, screen: this.screen, audio: this.audio };
  }

  setTrack() {}

  receive() {}

  close() {}
}

export function mediaMode() {
  return sfu.active ? "sfu" : "mesh";
}

// Before a camera starts: refused early with the reason the server would give.
export function cameraAllowed() {
  const info = state.mediaInfo;
  if (info && info.canPublishVideo === false && state.self?.role !== "MODERATOR") {
    notify("In this meeting only moderators may share a camera.", { kind: "error" });
    return false;
  }
  if (!sfu.active && info?.cameraLimit) {
    const cameras = [...state.participants.values()].filter((p) => p.id !== state.self?.id && p.video).length;
    if (cameras >= info.cameraLimit) {
      notify(`This meeting already shows ${cameras} cameras, the most a meeting without a media server can carry. Ask someone to stop theirs first.`,
        { kind: "error", timeout: 10000 });
      return false;
    }
  }
  return true;
}

// "joined": choose the path. Returns true when the SFU path was taken.
export function startMedia(info) {
  // Hooked here, not at module evaluation: the modules import each other in a cycle.
  localTrackSinks.add(setSfuTrack); // local tracks reach the publisher too (a Set: once)
  if (!sfu.iceHooked) {
    sfu.iceHooked = true;
    onIceServersChanged(applyIceServers);
  }
  state.mediaInfo = info ?? { mode: "mesh" };
  stopSfu();
  closeAllPeers();
  if (state.mediaInfo.mode !== "sfu") return false;
  sfu.active = true;
  sfu.info = state.mediaInfo;
  for (const p of state.participants.values()) {
    if (p.id !== state.self.id) remoteFor(p.id);
  }
  if (media.micTrack) setSfuTrack("mic", media.micTrack);
  if (media.cameraTrack) setSfuTrack("camera", media.cameraTrack);
  if (media.screenTrack) setSfuTrack("screen", media.screenTrack);
  return true;
}

export function stopSfu() {
  sfu.generation += 1;
  sfu.active = false;
  for (const pc of [sfu.pub, sfu.sub]) {
    try {
      pc?.close();
    } catch {
      // closing anyway
    }
  }
  sfu.pub = sfu.sub = null;
  sfu.transceivers = { mic: null, camera: null, screen: null };
  sfu.streams = new Map();
  sfu.layers = new Map();
  sfu.publishing = sfu.again = false;
  sfu.subQueue = Promise.resolve();
}

function remoteFor(id) {
  let remote = peers.get(id);
  if (!(remote instanceof Remote)) {
    remote = new Remote(id);
    peers.set(id, remote);
  }
  return remote;
}

// A participant joined (participantJoined): its tile will get tracks from the subscriber.
export function sfuParticipantJoined(id) {
  if (sfu.active) remoteFor(id);
  return sfu.active;
}

// --- publishing ---------------------------------------------------------------------------

function ensurePublisher() {
  if (sfu.pub) return sfu.pub;
  const pc = new RTCPeerConnection(rtcConfiguration());
  sfu.pub = pc;
  pc.addEventListener("icecandidate", ({ candidate }) => {
    if (sfu.pub === pc) send("media.trickle", { pc: "publisher", candidate: candidate ? candidate.toJSON() : null });
  });
  pc.addEventListener("negotiationneeded", () => publishNow());
  return pc;
}

function simulcastEncodings(track) {
  // Chromium sends as many layers as the resolution allows; below 640 wide there is
  // only one, so simulcast is asked for only when the camera is large enough.
  const width = track.getSettings?.().width ?? 0;
  if (!sfu.info?.simulcast || width < 640) return undefined;
  return [
    { rid: "h", maxBitrate: 900000 },
    { rid: "m", maxBitrate: 300000, scaleResolutionDownBy: 2 },
    { rid: "l", maxBitrate: 100000, scaleResolutionDownBy: 4 },
  ];
}

// Put a local track on the publisher (null stops sending it); called by media.js.
export function setSfuTrack(kind, track) {
  if (!sfu.active) return;
  const pc = ensurePublisher();
  const transceiver = sfu.transceivers[kind];
  if (!transceiver) {
    if (!track) return;
    const init = {
      direction: "sendonly",
      streams: [kind === "screen" ? media.screenStream : media.mainStream],
    };
    const encodings = kind === "camera" ? simulcastEncodings(track) : undefined;
    if (encodings) init.sendEncodings = encodings;
    sfu.transceivers[kind] = pc.addTransceiver(track, init);
    return;
  }
  transceiver.sender.replaceTrack(track).catch((err) => log.warn("replaceTrack failed", err));
  const direction = track ? "sendonly" : "inactive";
  if (transceiver.direction !== direction) transceiver.direction = direction;
}

async function publishNow() {
  if (sfu.publishing) {
    sfu.again = true;
    return;
  }
  sfu.publishing = true;
  const generation = sfu.generation;
  const pc = sfu.pub;
  try {
    do {
      sfu.again = false;
      if (!pc || pc.signalingState !== "stable") return;
      await pc.setLocalDescription(await pc.createOffer());
      const sources = {};
      for (const [kind, transceiver] of Object.entries(sfu.transceivers)) {
        if (transceiver?.mid != null) sources[transceiver.mid] = kind;
      }
      let data;
      try {
        data = await request("media.publish", { sdp: pc.localDescription.sdp, sources }, { timeout: 20000 });
      } catch (err) {
        if (generation !== sfu.generation) return;
        await pc.setLocalDescription({ type: "rollback" }).catch(() => {});
        if (err.code === "notAllowed" || err.code === "invalid") {
          notify(err.message, { kind: "error" });
        } else if (err.code !== "disconnected" && err.code !== "wrongMode") {
          log.warn("publishing failed", err);
        }
        return;
      }
      if (generation !== sfu.generation) return;
      await pc.setRemoteDescription(data.answer);
    } while (sfu.again);
  } catch (err) {
    log.warn("publishing failed", err);
  } finally {
    if (generation === sfu.generation) sfu.publishing = false;
  }
}

// --- receiving ----------------------------------------------------------------------------

function ensureSubscriber() {
  if (sfu.sub) return sfu.sub;
  const pc = new RTCPeerConnection(rtcConfiguration());
  sfu.sub = pc;
  pc.addEventListener("icecandidate", ({ candidate }) => {
    if (sfu.sub === pc) send("media.trickle", { pc: "subscriber", candidate: candidate ? candidate.toJSON() : null });
  });
  pc.addEventListener("track", ({ track }) => {
    track.addEventListener("unmute", () => assignTracks());
    track.addEventListener("ended", () => assignTracks());
    assignTracks();
  });
  return pc;
}

function onOffer(data) {
  if (!sfu.active) return;
  const generation = sfu.generation;
  sfu.subQueue = sfu.subQueue.then(async () => {
    if (generation !== sfu.generation) return;
    const pc = ensureSubscriber();
    sfu.streams = new Map((data.streams ?? []).map((s) => [s.mid, s]));
    await pc.setRemoteDescription({ type: "offer", sdp: data.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    if (generation !== sfu.generation) return;
    await request("media.answer", { seq: data.seq, sdp: pc.localDescription.sdp });
    assignTracks();
  }).catch((err) => log.warn("subscriber offer failed", err));
}

// Give each received track to its participant (by the stream list of the last offer).
function assignTracks() {
  const pc = sfu.sub;
  if (!pc) return;
  const fresh = new Map();
  for (const transceiver of pc.getTransceivers()) {
    const info = sfu.streams.get(transceiver.mid);
    const track = transceiver.receiver?.track;
    if (!info || !info.userId || !track || transceiver.currentDirection === "inactive") continue;
    let entry = fresh.get(info.userId);
    if (!entry) fresh.set(info.userId, entry = { camera: null, screen: null, audio: [] });
    if (info.type === "audio") entry.audio.push(track);
    else if (info.source === "screen") entry.screen = track;
    else entry.camera = track;
  }
  for (const [id, peer] of peers) {
    if (!(peer instanceof Remote)) continue;
    const entry = fresh.get(id) ?? { camera: null, screen: null, audio: [] };
    peer.camera = entry.camera;
    peer.screen = entry.screen;
    peer.audio = entry.audio;
    renderParticipant(state.participants.get(id));
  }
  renderScreenStage();
  chooseLayers();
}

// Simulcast: each camera tile gets the layer its size needs (0 small ... 2 large), and
// the lowest while the downlink is weak.
function chooseLayers() {
  if (!sfu.sub) return;
  for (const [mid, info] of sfu.streams) {
    if (info.type !== "video") continue;
    const video = info.source === "screen"
      ? document.querySelector("#screen-stage video")
      : document.querySelector(`#grid .tile[data-user-id="${CSS.escape(info.userId ?? "")}"] video.camera`);
    const width = video?.clientWidth ?? 0;
    let substream = info.source === "screen" ? 2 : width >= 480 ? 2 : width >= 240 ? 1 : 0;
    if (sfu.weakLink) substream = 0;
    if (sfu.layers.get(mid) === substream) continue;
    sfu.layers.set(mid, substream);
    request("media.configure", { mid, substream }).catch((err) => {
      if (err.code !== "disconnected") log.info("substream choice refused", err.message);
    });
  }
}

async function watchBandwidth() {
  const pc = sfu.sub;
  if (!pc || pc.connectionState !== "connected") return;
  try {
    const report = await pc.getStats();
    let bitrate = null;
    report.forEach((s) => {
      if (s.type === "candidate-pair" && s.nominated && s.availableIncomingBitrate) bitrate = s.availableIncomingBitrate;
    });
    const weak = bitrate !== null && bitrate < 250000;
    if (weak !== Boolean(sfu.weakLink)) {
      sfu.weakLink = weak;
      chooseLayers();
    }
  } catch {
    // the connection closed meanwhile
  }
}

setInterval(() => {
  if (sfu.active) watchBandwidth();
}, 5000);

// Fresh TURN credentials (ice.js) apply to both connections' next gathering.
function applyIceServers(config) {
  for (const pc of [sfu.pub, sfu.sub]) {
    try {
      pc?.setConfiguration(config);
    } catch (err) {
      log.warn("applying new ICE servers failed", err);
    }
  }
}
window.addEventListener("resize", () => {
  if (sfu.active) chooseLayers();
});

// --- server events ------------------------------------------------------------------------

function onRenegotiate(data) {
  sfu.renegotiations += 1;
  if (data?.mode === "mesh") {
    stopSfu();
    state.mediaInfo = { ...(state.mediaInfo ?? {}), mode: "mesh", cameraLimit: data.cameraLimit };
    closeAllPeers();
    if (data.reason) notify(data.reason);
    // Both sides of each pair create their peer now: the larger id is the polite one.
    for (const p of state.participants.values()) {
      if (p.id !== state.self.id) createPeer(p.id, state.self.id > p.id);
    }
    return;
  }
  startMedia({ ...(state.mediaInfo ?? {}), ...data, mode: "sfu" });
}

function onTalking(data) {
  const id = data?.id;
  if (!id) return;
  const tile = document.querySelector(`#grid .tile[data-user-id="${CSS.escape(id)}"]`);
  tile?.classList.toggle("talking", Boolean(data.talking));
}

function onModeration(data) {
  sfu.moderated += 1;
  if (data?.muted && media.micTrack && !media.muted) setMuted(true);
}

// Handlers merged into protocol.js's table.
export const sfuHandlers = {
  "media.offer": (message) => onOffer(message.data ?? {}),
  "media.renegotiate": (message) => onRenegotiate(message.data ?? {}),
  "media.moderation": (message) => onModeration(message.data ?? {}),
  talking: (message) => onTalking(message.data ?? {}),
};

// The debug hook's view (tests read it).
export const sfuDebug = {
  get mode() { return mediaMode(); },
  get publisher() { return sfu.pub; },
  get subscriber() { return sfu.sub; },
  get streams() { return [...sfu.streams.values()]; },
  get moderated() { return sfu.moderated; },
  get renegotiations() { return sfu.renegotiations; },
};
