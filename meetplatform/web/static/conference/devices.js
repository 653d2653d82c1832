// Devices: the browser's cameras, microphones and speakers, the choices remembered per
// browser (localStorage), the microphone level meter, the "test speakers" sound, and the
// device list kept up to date (devicechange). Used by the pre-join screen (prejoin.js)
// and the settings panel (settings.js).

import { t } from "./i18n.js";

const PREFS_KEY = "meetplatform.devices";

// {cameraId, micId, speakerId, camera: bool, audio: "microphone"|"listen"|"none"}
export const prefs = loadPrefs();

function loadPrefs() {
  try {
    const stored = JSON.parse(localStorage.getItem(PREFS_KEY) || "{}");
    return stored && typeof stored === "object" ? stored : {};
  } catch {
    return {};
  }
}

export function savePrefs(changes) {
  Object.assign(prefs, changes);
  try {
    localStorage.setItem(PREFS_KEY, JSON.stringify(prefs));
  } catch {
    // storage blocked: the choice lasts for this page only
  }
}

export const canChooseSpeaker = typeof HTMLMediaElement !== "undefined" &&
  "setSinkId" in HTMLMediaElement.prototype;

export async function listDevices() {
  const out = { cameras: [], mics: [], speakers: [] };
  if (!navigator.mediaDevices?.enumerateDevices) return out;
  for (const device of await navigator.mediaDevices.enumerateDevices()) {
    if (device.kind === "videoinput") out.cameras.push(device);
    else if (device.kind === "audioinput") out.mics.push(device);
    else if (device.kind === "audiooutput") out.speakers.push(device);
  }
  return out;
}

export function deviceLabel(device, index, kind) {
  return device.label || t("devices.unnamed", { kind: t(`devices.${kind}`), number: index + 1 });
}

// Fill a <select> with devices; keeps the chosen one (or the first) selected.
export function fillSelect(select, devices, chosenId, kind) {
  select.replaceChildren();
  devices.forEach((device, index) => {
    const option = document.createElement("option");
    option.value = device.deviceId;
    option.textContent = deviceLabel(device, index, kind);
    select.append(option);
  });
  if (!devices.length) {
    const option = document.createElement("option");
    option.value = "";
    option.textContent = kind === "speaker" ? t("devices.systemDefault") : t("devices.none");
    select.append(option);
  }
  if (chosenId && devices.some((d) => d.deviceId === chosenId)) select.value = chosenId;
  select.disabled = devices.length < 1 || (kind === "speaker" && !canChooseSpeaker);
}

export function micConstraints(deviceId = prefs.micId) {
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  if (deviceId) audio.deviceId = { exact: deviceId };
  return { audio };
}

export function cameraConstraints(deviceId = prefs.cameraId, facingMode = null) {
  const video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 24 } };
  if (facingMode) video.facingMode = { exact: facingMode };
  else if (deviceId) video.deviceId = { exact: deviceId };
  return { video };
}

// getUserMedia with the remembered device; a device that is gone falls back to any.
export async function openDevice(kind, deviceId) {
  const constraints = kind === "camera" ? cameraConstraints(deviceId) : micConstraints(deviceId);
  try {
    return await navigator.mediaDevices.getUserMedia(constraints);
  } catch (err) {
    if (deviceId && (err.name === "OverconstrainedError" || err.name === "NotFoundError")) {
      return navigator.mediaDevices.getUserMedia(kind === "camera" ? cameraConstraints("") : micConstraints(""));
    }
    throw err;
  }
}

// Every <audio>/<video> that plays the meeting's sound follows the chosen speaker.
export async function applySpeaker(deviceId = prefs.speakerId) {
  if (!canChooseSpeaker) return;
  for (const element of document.querySelectorAll("#audio-sink audio")) {
    if (element.sinkId !== (deviceId || "")) {
      await element.setSinkId(deviceId || "").catch((err) => console.warn("[meetplatform] setSinkId", err));
    }
  }
}

let audioContext = null;

function context() {
  if (!audioContext) audioContext = new AudioContext();
  if (audioContext.state === "suspended") audioContext.resume().catch(() => {});
  return audioContext;
}

// A short two-tone chime, made with WebAudio (no sound file), on the chosen speaker.
export async function playTestSound(deviceId = prefs.speakerId) {
  const ctx = context();
  const destination = ctx.createMediaStreamDestination();
  const gain = ctx.createGain();
  gain.connect(destination);
  const start = ctx.currentTime + 0.05;
  [660, 880, 990].forEach((frequency, index) => {
    const osc = ctx.createOscillator();
    osc.type = "sine";
    osc.frequency.value = frequency;
    osc.connect(gain);
    osc.start(start + index * 0.25);
    osc.stop(start + index * 0.25 + 0.22);
  });
  gain.gain.setValueAtTime(0.0001, start);
  gain.gain.exponentialRampToValueAtTime(0.3, start + 0.05);
  gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.8);
  const element = new Audio();
  element.srcObject = destination.stream;
  element.dataset.testSound = "1";
  if (canChooseSpeaker && deviceId) await element.setSinkId(deviceId).catch(() => {});
  await element.play().catch(() => {});
  setTimeout(() => { element.srcObject = null; }, 1200);
  return element;
}

// The microphone level (0..1, RMS) of a stream, reported about 20 times a second.
// Returns a function that stops measuring.
export function levelMeter(stream, onLevel) {
  const ctx = context();
  const source = ctx.createMediaStreamSource(stream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const value of samples) sum += value * value;
    onLevel(Math.min(1, Math.sqrt(sum / samples.length) * 4));
  }, 50);
  return () => {
    clearInterval(timer);
    source.disconnect();
  };
}

// Device changes (plugged, unplugged): call back with the new lists.
export function watchDevices(onChange) {
  navigator.mediaDevices?.addEventListener?.("devicechange", async () => {
    try {
      onChange(await listDevices());
    } catch (err) {
      console.warn("[meetplatform] devicechange", err);
    }
  });
}
