// Devices during the meeting: the settings panel (camera, microphone, speaker, and the
// front/back switch on devices that have both), and unplugged devices. Switching swaps
// the local track with media.replaceLocalTrack, so every sender (mesh peers, or a media
// node's) gets the new track without renegotiation.

import { $, notify, show } from "./util.js";
import { t } from "./i18n.js";
import { describeMediaError, media, replaceLocalTrack } from "./media.js";
import {
  applySpeaker, canChooseSpeaker, cameraConstraints, deviceLabel, fillSelect, listDevices,
  micConstraints, playTestSound, prefs, savePrefs, watchDevices
} from "./devices.js";

let known = { cameras: [], mics: [], speakers: [] };
let facing = null; // "user" | "environment" once switched by facingMode

function currentId(track) {
  return track?.getSettings?.().deviceId ?? "";
}

async function refresh() {
  known = await listDevices();
  fillSelect($("settings-camera"), known.cameras, currentId(media.cameraTrack) || prefs.cameraId, "camera");
  fillSelect($("settings-mic"), known.mics, currentId(media.micTrack) || prefs.micId, "microphone");
  fillSelect($("settings-speaker"), canChooseSpeaker ? known.speakers : [], prefs.speakerId, "speaker");
  show($("settings-flip"), hasFrontAndBack());
}

// Phones and tablets: a camera facing the user and one facing away.
function hasFrontAndBack() {
  if (known.cameras.length < 2) return false;
  const capabilities = media.cameraTrack?.getCapabilities?.();
  if (capabilities?.facingMode?.length) return true;
  const labels = known.cameras.map((c) => c.label.toLowerCase());
  return labels.some((l) => /front|user|frontal/.test(l)) && labels.some((l) => /back|rear|environment|traseira|trasera|rück|arrière/.test(l));
}

function status(text) {
  $("settings-status").textContent = text;
}

export async function switchDevice(kind, deviceId, facingMode = null) {
  const isCamera = kind === "camera";
  savePrefs(isCamera ? { cameraId: deviceId } : { micId: deviceId });
  const current = isCamera ? media.cameraTrack : media.micTrack;
  if (!current) return false; // not in use: the choice applies when it starts
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia(isCamera ? cameraConstraints(deviceId, facingMode) : micConstraints(deviceId));
  } catch (err) {
    status(describeMediaError(err, isCamera ? "camera" : "microphone"));
    return false;
  }
  const track = isCamera ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
  replaceLocalTrack(isCamera ? "camera" : "mic", track);
  const label = track.label || deviceId;
  status(t("devices.using", { device: label }));
  return true;
}

async function flipCamera() {
  facing = facing === "environment" ? "user" : "environment";
  const ok = await switchDevice("camera", "", facing);
  if (ok) savePrefs({ cameraId: currentId(media.cameraTrack) });
}

export function openSettings() {
  status("");
  refresh().catch((err) => console.warn("[meetplatform] devices", err));
  $("settings-dialog").showModal();
}

// A device in use disappeared: say so and offer the next one of its kind.
async function onDevicesChanged(lists) {
  const before = known;
  known = lists;
  for (const [kind, field, list, prefKey] of [
    ["camera", "cameraTrack", "cameras", "cameraId"], ["microphone", "micTrack", "mics", "micId"],
  ]) {
    const track = media[field];
    const id = currentId(track) || prefs[prefKey];
    if (!id || lists[list].some((d) => d.deviceId === id)) continue;
    const gone = before[list].find((d) => d.deviceId === id);
    const name = gone ? deviceLabel(gone, 0, kind) : t(`devices.${kind}`);
    const next = lists[list][0];
    const box = notify(t("devices.gone", { device: name }), {
      kind: "error",
      action: next ? { label: t("devices.useNext", { device: deviceLabel(next, 0, kind) }), run: () => switchDevice(kind, next.deviceId) } : null,
    });
    box.dataset.deviceGone = kind;
  }
  if ($("settings-dialog").open) refresh();
}

export function wireSettings() {
  $("settings-btn").addEventListener("click", () => openSettings());
  $("settings-camera").addEventListener("change", (e) => switchDevice("camera", e.target.value));
  $("settings-mic").addEventListener("change", (e) => switchDevice("microphone", e.target.value));
  $("settings-speaker").addEventListener("change", (e) => {
    savePrefs({ speakerId: e.target.value });
    applySpeaker();
  });
  $("settings-test-speakers").addEventListener("click", () => playTestSound().catch(() => {}));
  $("settings-flip").addEventListener("click", () => flipCamera());
  // Remote audio elements appear as peers join: each follows the chosen speaker.
  new MutationObserver(() => applySpeaker()).observe($("audio-sink"), { childList: true });
  listDevices().then((lists) => { known = lists; }).catch(() => {});
  watchDevices(onDevicesChanged);
}
