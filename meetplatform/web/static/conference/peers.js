// Peers: one RTCPeerConnection per other participant, perfect negotiation.

import { log, notify } from "./util.js";
import { state } from "./session.js";
import { send } from "./socket.js";
import { media } from "./media.js";
import { renderParticipant, renderScreenStage } from "./view.js";
import { onIceServersChanged, refreshIceServers, rtcConfiguration } from "./ice.js";

export const peers = new Map();          // participant id -> Peer
export const peerConnections = new Map(); // participant id -> RTCPeerConnection (debug hook)

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

    const pc = new RTCPeerConnection(rtcConfiguration());
    this.pc = pc;
    pc.addEventListener("negotiationneeded", () => this.negotiate());
    pc.addEventListener("icecandidate", ({ candidate }) => {
      send("signal", { to: this.id, candidate: candidate ? candidate.toJSON() : null });
    });
    pc.addEventListener("track", (event) => this.onTrack(event));
    pc.addEventListener("iceconnectionstatechange", () => {
      if (pc.iceConnectionState === "failed") {
        // Fresh TURN credentials first: the old ones may have expired.
        log.warn("ICE failed with", this.id, "- restarting ICE");
        refreshIceServers().catch(() => {}).finally(() => {
          if (!this.closed) pc.restartIce();
        });
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

export function createPeer(id, polite) {
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

export function closePeer(id) {
  const peer = peers.get(id);
  if (!peer) return;
  peer.close();
  peers.delete(id);
  peerConnections.delete(id);
  const audio = document.querySelector(`#audio-sink audio[data-user-id="${CSS.escape(id)}"]`);
  audio?.remove();
  renderParticipant(state.participants.get(id));
}

// New ICE servers (fresh TURN credentials) apply to each connection's next gathering.
onIceServersChanged((configuration) => {
  for (const peer of peers.values()) {
    try {
      peer.pc.setConfiguration({ ...peer.pc.getConfiguration(), ...configuration });
    } catch (err) {
      log.warn("cannot update the ICE servers of", peer.id, err);
    }
  }
});

export function closeAllPeers() {
  for (const id of [...peers.keys()]) closePeer(id);
}
