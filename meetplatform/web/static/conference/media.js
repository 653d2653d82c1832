// Local media: microphone (or listen only), camera, screen.

import { $, log, notify } from "./util.js";
import { state } from "./session.js";
import { send } from "./socket.js";
import { emit } from "./protocol.js";
import { peers } from "./peers.js";
import { cameraAllowed, setSfuTrack } from "./sfu.js";
import { renderParticipant, renderScreenStage, updateToolbar } from "./view.js";

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

export async function toggleScreenShare() {
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

// Put a local track into the local streams and onto every peer connection.
function setLocalTrack(kind, track) {
  const stream = kind === "screen" ? media.screenStream : media.mainStream;
  const kindOfTrack = kind === "mic" ? "audio" : "video";
  for (const old of stream.getTracks()) {
    if (old.kind === kindOfTrack) stream.removeTrack(old);
  }
  if (track) stream.addTrack(track);
  for (const peer of peers.values()) peer.setTrack(kind, track);
  setSfuTrack(kind, track);
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
