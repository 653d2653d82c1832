// Local media: microphone (or listen only), camera, screen.

import { t } from "./i18n.js";
import { $, log, notify } from "./util.js";
import { state } from "./session.js";
import { send } from "./socket.js";
import { emit } from "./protocol.js";
import { peers } from "./peers.js";
import { cameraAllowed } from "./sfu.js";
import { renderParticipant, renderScreenStage, updateToolbar } from "./view.js";
import { cameraConstraints, micConstraints } from "./devices.js";

export const media = {
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

export function describeMediaError(err, device) {
  const name = err?.name || "";
  if (!navigator.mediaDevices || name === "TypeError" && !window.isSecureContext) {
    return t("mediaError.insecure", { device: t(`device.${device}`) });
  }
  switch (name) {
    case "NotAllowedError":
    case "PermissionDeniedError":
      return device === "screen"
        ? t("mediaError.screenDenied")
        : t("mediaError.denied", { device: t(`device.${device}`) });
    case "NotFoundError":
    case "DevicesNotFoundError":
      return t("mediaError.notFound", { device: t(`device.${device}`) });
    case "NotReadableError":
    case "TrackStartError":
      return t("mediaError.notReadable", { device: t(`device.${device}`) });
    case "OverconstrainedError":
      return t("mediaError.overconstrained", { device: t(`device.${device}`) });
    case "SecurityError":
      return t("mediaError.security", { device: t(`device.${device}`) });
    case "AbortError":
      return t("mediaError.abort", { device: t(`device.${device}`) });
    default:
      return t("mediaError.other", { device: t(`device.${device}`), name: name || "?" });
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

export function openAudioDialog() {
  const dialog = $("audio-dialog");
  dialog.returnValue = "";
  dialog.showModal();
}

export async function onAudioDialogClosed() {
  const choice = $("audio-dialog").returnValue;
  if (choice === "microphone") await joinAudio("microphone");
  else if (choice === "listen") await joinAudio("listen");
}

export async function joinAudio(mode) {
  if (media.audioBusy) return;
  media.audioBusy = true;
  try {
    if (mode === "microphone") {
      let stream;
      try {
        stream = await getUserMedia(micConstraints());
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
          notify(t("media.micStopped"), { kind: "error" });
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

export function leaveAudio() {
  removeMicrophone();
  media.audioMode = "none";
  media.muted = true;
  for (const audio of document.querySelectorAll("#audio-sink audio")) audio.muted = true;
  updateToolbar();
  reportMedia();
}

export function setMuted(muted) {
  if (!media.micTrack) return;
  media.muted = muted;
  media.micTrack.enabled = !muted;
  updateToolbar();
  reportMedia();
  emit("audioMuted", { muted });
}

export async function toggleCamera() {
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
  if (!cameraAllowed()) return;
  media.cameraBusy = true;
  try {
    let stream;
    try {
      stream = await getUserMedia(cameraConstraints());
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

export async function toggleScreenShare() {
  if (media.screenTrack) {
    stopScreenShare();
    return;
  }
  if (!state.self?.presenter) {
    notify(t("media.presenterOnly"));
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

export function stopScreenShare() {
  const track = media.screenTrack;
  if (!track) return;
  media.screenTrack = null;
  track.stop();
  setLocalTrack("screen", null);
  updateToolbar();
  renderScreenStage();
  reportMedia();
}

export function stopAllMedia() {
  for (const track of [media.micTrack, media.cameraTrack, media.screenTrack]) track?.stop();
  media.micTrack = media.cameraTrack = media.screenTrack = null;
}

// Where local tracks go: each sink is called with (kind, track) for every change of the
// microphone, camera or screen track. The mesh sink puts the track on every peer
// connection (replaceTrack when the sender exists); a media-node path adds its own sink.
export const localTrackSinks = new Set([
  (kind, track) => { for (const peer of peers.values()) peer.setTrack(kind, track); },
]);

// Put a local track into the local streams and hand it to every sink.
function setLocalTrack(kind, track) {
  const stream = kind === "screen" ? media.screenStream : media.mainStream;
  const kindOfTrack = kind === "mic" ? "audio" : "video";
  for (const old of stream.getTracks()) {
    if (old.kind === kindOfTrack) stream.removeTrack(old);
  }
  if (track) stream.addTrack(track);
  for (const sink of localTrackSinks) {
    try {
      sink(kind, track);
    } catch (err) {
      log.warn("a local track sink failed", err);
    }
  }
}

// Swap the microphone or camera for another device without leaving: the new track
// replaces the old one on every sender (no renegotiation), the old one is stopped.
export function replaceLocalTrack(kind, track) {
  const field = kind === "mic" ? "micTrack" : "cameraTrack";
  const old = media[field];
  if (!old) {
    track.stop();
    return false;
  }
  if (kind === "mic") track.enabled = !media.muted;
  media[field] = track;
  setLocalTrack(kind, track);
  old.stop();
  track.addEventListener("ended", () => {
    if (media[field] !== track) return;
    if (kind === "mic") {
      notify(t("media.micStopped"), { kind: "error" });
      leaveAudio();
    } else {
      toggleCamera();
    }
  });
  if (kind === "camera") renderParticipant(state.self);
  return true;
}

export function reportMedia() {
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
