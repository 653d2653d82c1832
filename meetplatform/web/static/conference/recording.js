// Recording: the REC badge, the moderator's Start/Stop recording button, and the notice
// that tells everybody they are being recorded (docs/signalling-protocol.md, "recording").
//
// The server decides: a meeting records only with record=true; a moderator may start and
// stop it only with allowStartStopRecording; autoStartRecording starts it by itself. Every
// participant gets "recordingChanged" and the page follows.
//
// Recordings are made on media nodes (docs/recordings.md): a meeting whose media go
// browser to browser cannot record ("recordingAvailable": false in "joined", then
// "recordingAvailability" events when a move changes it). Such a page shows no REC badge;
// moderators see the Start button marked unavailable (aria-disabled, so that it stays
// focusable and its title explains why) and are told once, on joining.

import { $, el, notify, show } from "./util.js";
import { t } from "./i18n.js";
import { state } from "./session.js";
import { request } from "./socket.js";
import { emit, isModerator } from "./protocol.js";

// The meeting was created with record=true but cannot record now (no media node).
function unavailable(m = state.meeting ?? {}) {
  return Boolean(m.record) && m.recordingAvailable === false;
}

function explainUnavailable() {
  notify(t("recording.unavailableNotice"), { timeout: 15000 });
}

function start(recording) {
  const what = recording ? t("act.startRecording") : t("act.stopRecording");
  request("recording", { recording }).catch((err) => {
    if (err.code === "recordingUnavailable") {
      // The page thought it could (a move since): the server's answer is the truth.
      if (state.meeting) state.meeting.recordingAvailable = false;
      renderRecording();
      explainUnavailable();
    } else if (err.code !== "disconnected") {
      notify(t("act.failed", { what, message: err.message }), { kind: "error" });
    }
  });
}

function button() {
  let btn = $("recording-btn");
  if (!btn) {
    // .secondary: on phones it goes to the "More" menu (layout.js)
    btn = el("button", { type: "button", id: "recording-btn", class: "tool secondary", "aria-pressed": "false" },
      el("span", { class: "icon", "data-icon": "record" }),
      el("span", { class: "tool-label", text: t("recording.start") }));
    btn.hidden = true;
    btn.addEventListener("click", () => {
      const recording = !state.meeting?.recording;
      if (recording && unavailable()) {
        explainUnavailable();
        return;
      }
      start(recording);
    });
    const end = $("end-btn");
    end.parentNode.insertBefore(btn, end);
  }
  return btn;
}

export function renderRecording() {
  const m = state.meeting ?? {};
  const off = unavailable(m);
  const badge = $("recording-badge");
  show(badge, Boolean(m.record) && !off);
  badge.classList.toggle("live", Boolean(m.recording) && !off);
  badge.title = m.recording ? t("recording.live") : t("meeting.recordingHint");
  const btn = button();
  show(btn, Boolean(m.record) && m.allowStartStopRecording !== false && isModerator());
  btn.setAttribute("aria-pressed", m.recording ? "true" : "false");
  const label = m.recording ? t("recording.stop") : t("recording.start");
  btn.querySelector(".tool-label").textContent = label;
  if (off && !m.recording) {
    btn.setAttribute("aria-disabled", "true");
    btn.title = t("recording.unavailable");
    btn.setAttribute("aria-label", `${label}: ${t("recording.unavailable")}`);
  } else {
    btn.removeAttribute("aria-disabled");
    btn.removeAttribute("title");
    btn.removeAttribute("aria-label");
  }
}

// After "joined": the state and, when it records already, the notice; a moderator of a
// meeting that was created with recording but cannot record is told so.
export function recordingJoined() {
  renderRecording();
  if (state.meeting?.recording) notify(t("recording.notice"), { timeout: 10000 });
  else if (unavailable() && isModerator()) explainUnavailable();
}

export function recordingChanged(message) {
  if (!state.meeting) return;
  const recording = Boolean(message.data?.recording);
  state.meeting.recording = recording;
  renderRecording();
  notify(recording ? t("recording.notice") : t("recording.stopped"), { timeout: 10000 });
  emit("recordingChanged", { recording });
}

// The meeting lost its media node (it runs browser to browser now) or has one again.
export function recordingAvailability(message) {
  if (!state.meeting) return;
  const available = Boolean(message.data?.available);
  if ((state.meeting.recordingAvailable !== false) === available) return;
  state.meeting.recordingAvailable = available;
  renderRecording();
  if (!isModerator() || !state.meeting.record) return;
  if (available) notify(t("recording.availableAgain"), { timeout: 10000 });
  else explainUnavailable();
}
