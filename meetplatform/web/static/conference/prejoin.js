// The pre-join screen: before the socket joins, the participant sees their name, a live
// camera preview (camera on/off), a microphone level meter, a "test speakers" sound, the
// choice of camera, microphone and speaker, and the audio choice (microphone, listen
// only, none); Join hands the choice to the entry module, which opens the devices for the
// meeting and connects. What is offered comes from the seat (meetplatform/web/entry.py:
// BBB's userdata-bbb_* parameters); choices are remembered per browser (devices.js).

import { $, show } from "./util.js";
import { t } from "./i18n.js";
import { describeMediaError } from "./media.js";
import {
  applySpeaker, canChooseSpeaker, fillSelect, levelMeter, listDevices, openDevice, playTestSound,
  prefs, savePrefs
} from "./devices.js";

const ALL_AUDIO = ["microphone", "listen", "none"];

// What the seat allows and the browser remembered: {audio, camera} to start with.
export function initialChoice(entry) {
  const choices = entry?.audioChoices?.length ? entry.audioChoices : ALL_AUDIO;
  let audio = entry?.defaultAudio ?? prefs.audio ?? "microphone";
  if (!choices.includes(audio)) audio = choices[0];
  const video = entry?.video !== false;
  let camera = video && (entry?.cameraOn ?? prefs.camera ?? true);
  if (video && entry?.preview === false && entry?.cameraOn !== true) camera = false;
  return { audio, camera: Boolean(camera), choices, video };
}

export function runPrejoin(entry) {
  const choice = initialChoice(entry);
  const ui = new Prejoin(entry, choice);
  return ui.run();
}

class Prejoin {
  constructor(entry, choice) {
    this.entry = entry;
    this.choice = choice;
    this.cameraStream = null;
    this.micStream = null;
    this.stopMeter = null;
    this.levelState = "";
    this.generation = { camera: 0, mic: 0 };
  }

  run() {
    for (const screen of document.querySelectorAll(".screen")) show(screen, screen.id === "prejoin-screen");
    const name = this.entry?.name ?? "";
    $("prejoin-name").value = name;
    $("prejoin-name").readOnly = !this.entry?.nameEditable;
    show($("prejoin-name"), Boolean(name));
    show(document.querySelector('label[for="prejoin-name"]'), Boolean(name));
    show($("prejoin-name-hint"), Boolean(name));
    for (const mode of ALL_AUDIO) {
      show($(`prejoin-${mode}-choice`), this.choice.choices.includes(mode));
      $(`prejoin-audio-${mode}`).checked = mode === this.choice.audio;
    }
    show($("prejoin-camera"), this.choice.video);
    show($("prejoin-camera-select"), this.choice.video);
    show(document.querySelector('label[for="prejoin-camera-select"]'), this.choice.video);
    show($("prejoin-speaker-select").parentElement, true);

    $("prejoin-camera").addEventListener("click", () => this.setCamera(!this.choice.camera));
    $("prejoin-audio").addEventListener("change", (event) => this.setAudio(event.target.value));
    $("prejoin-camera-select").addEventListener("change", (event) => {
      savePrefs({ cameraId: event.target.value });
      if (this.choice.camera) this.startCamera();
    });
    $("prejoin-mic-select").addEventListener("change", (event) => {
      savePrefs({ micId: event.target.value });
      if (this.choice.audio === "microphone") this.startMic();
    });
    $("prejoin-speaker-select").addEventListener("change", (event) => {
      savePrefs({ speakerId: event.target.value });
      applySpeaker();
    });
    $("prejoin-test-speakers").addEventListener("click", () => playTestSound().catch(() => {}));

    this.renderCamera();
    this.refreshDevices();
    if (this.choice.camera) this.startCamera();
    this.setAudio(this.choice.audio);
    $("prejoin-join").focus();

    return new Promise((resolve) => {
      $("prejoin-form").addEventListener("submit", (event) => {
        event.preventDefault();
        $("prejoin-join").disabled = true;
        $("prejoin-join").textContent = t("prejoin.joining");
        savePrefs({ camera: this.choice.camera, audio: this.choice.audio });
        this.stopAll();
        resolve({ audio: this.choice.audio, camera: this.choice.camera });
      }, { once: true });
    });
  }

  async refreshDevices() {
    try {
      const { cameras, mics, speakers } = await listDevices();
      fillSelect($("prejoin-camera-select"), cameras, this.currentId(this.cameraStream, "video") || prefs.cameraId, "camera");
      fillSelect($("prejoin-mic-select"), mics, this.currentId(this.micStream, "audio") || prefs.micId, "microphone");
      fillSelect($("prejoin-speaker-select"), canChooseSpeaker ? speakers : [], prefs.speakerId, "speaker");
    } catch (err) {
      console.warn("[meetplatform] cannot list devices", err);
    }
  }

  currentId(stream, kind) {
    const track = stream?.getTracks().find((tr) => tr.kind === kind);
    return track?.getSettings?.().deviceId ?? "";
  }

  problem(text) {
    $("prejoin-problem").textContent = text || "";
    show($("prejoin-problem"), Boolean(text));
  }

  renderCamera() {
    const on = this.choice.camera;
    const button = $("prejoin-camera");
    button.setAttribute("aria-pressed", String(on));
    button.querySelector(".tool-label").textContent = on ? t("prejoin.cameraOn") : t("prejoin.cameraOff");
    button.querySelector(".icon").dataset.icon = on ? "camera" : "camera-off";
    show($("prejoin-video-off"), !on || !this.cameraStream);
  }

  setCamera(on) {
    this.choice.camera = on;
    savePrefs({ camera: on });
    if (on) this.startCamera();
    else this.stopCamera();
    this.renderCamera();
  }

  async startCamera() {
    const generation = ++this.generation.camera;
    this.stopCamera(false);
    try {
      const stream = await openDevice("camera", prefs.cameraId);
      if (generation !== this.generation.camera || !this.choice.camera) {
        for (const track of stream.getTracks()) track.stop();
        return;
      }
      this.cameraStream = stream;
      const video = $("prejoin-video");
      video.srcObject = stream;
      video.play().catch(() => {});
      this.problem("");
      this.refreshDevices();
    } catch (err) {
      this.problem(describeMediaError(err, "camera"));
    }
    this.renderCamera();
  }

  stopCamera(bump = true) {
    if (bump) this.generation.camera += 1;
    for (const track of this.cameraStream?.getTracks() ?? []) track.stop();
    this.cameraStream = null;
    $("prejoin-video").srcObject = null;
  }

  setAudio(mode) {
    this.choice.audio = mode;
    savePrefs({ audio: mode });
    const mic = mode === "microphone";
    show($("prejoin-mic-select"), mic);
    show(document.querySelector('label[for="prejoin-mic-select"]'), mic);
    show($("prejoin-level").parentElement, mic);
    if (mic) this.startMic();
    else this.stopMic();
  }

  async startMic() {
    const generation = ++this.generation.mic;
    this.stopMic(false);
    try {
      const stream = await openDevice("microphone", prefs.micId);
      if (generation !== this.generation.mic || this.choice.audio !== "microphone") {
        for (const track of stream.getTracks()) track.stop();
        return;
      }
      this.micStream = stream;
      this.problem("");
      this.setLevelState("silent");
      let heard = 0;
      this.stopMeter = levelMeter(stream, (level) => {
        $("prejoin-level").value = level;
        heard = level > 0.05 ? 10 : Math.max(0, heard - 1);
        this.setLevelState(heard > 0 ? "sound" : "silent");
      });
      this.refreshDevices();
    } catch (err) {
      this.problem(describeMediaError(err, "microphone"));
      this.setLevelState("off");
    }
  }

  // The live region says only when the state changes (not 20 times a second).
  setLevelState(state) {
    if (state === this.levelState) return;
    this.levelState = state;
    $("prejoin-level-status").textContent = state === "sound" ? t("prejoin.levelSound")
      : state === "silent" ? t("prejoin.levelSilent") : t("prejoin.levelOff");
    $("prejoin-level-status").dataset.state = state;
  }

  stopMic(bump = true) {
    if (bump) this.generation.mic += 1;
    this.stopMeter?.();
    this.stopMeter = null;
    for (const track of this.micStream?.getTracks() ?? []) track.stop();
    this.micStream = null;
    $("prejoin-level").value = 0;
    this.setLevelState("off");
  }

  stopAll() {
    this.stopCamera();
    this.stopMic();
  }
}
