// Recording: the REC badge, the moderator's Start/Stop recording button, and the notice
// that tells everybody they are being recorded (docs/signalling-protocol.md, "recording").
//
// The server decides: a meeting records only with record=true; a moderator may start and
// stop it only with allowStartStopRecording; autoStartRecording starts it by itself. Every
// participant gets "recordingChanged" and the page follows.

import { $, el, notify, show } from "./util.js";
import { state } from "./session.js";
import { act } from "./socket.js";
import { emit, isModerator } from "./protocol.js";

function button() {
  let btn = $("recording-btn");
  if (!btn) {
    btn = el("button", { type: "button", id: "recording-btn", class: "tool", "aria-pressed": "false" },
      el("span", { class: "icon", "data-icon": "record" }),
      el("span", { class: "tool-label", text: "Start recording" }));
    btn.hidden = true;
    btn.addEventListener("click", () => {
      const recording = !state.meeting?.recording;
      act("recording", { recording }, recording ? "start recording" : "stop recording").catch(() => {});
    });
    const end = $("end-btn");
    end.parentNode.insertBefore(btn, end);
  }
  return btn;
}

export function renderRecording() {
  const m = state.meeting ?? {};
  const badge = $("recording-badge");
  show(badge, Boolean(m.record));
  badge.classList.toggle("live", Boolean(m.recording));
  badge.title = m.recording ? "This meeting is being recorded" : "This meeting may be recorded";
  const btn = button();
  show(btn, Boolean(m.record) && m.allowStartStopRecording !== false && isModerator());
  btn.setAttribute("aria-pressed", m.recording ? "true" : "false");
  btn.querySelector(".tool-label").textContent = m.recording ? "Stop recording" : "Start recording";
}

// After "joined": the state and, when it records already, the notice.
export function recordingJoined() {
  renderRecording();
  if (state.meeting?.recording) notify("This meeting is being recorded.", { timeout: 10000 });
}

export function recordingChanged(message) {
  if (!state.meeting) return;
  const recording = Boolean(message.data?.recording);
  state.meeting.recording = recording;
  renderRecording();
  notify(recording ? "This meeting is being recorded." : "Recording stopped.",
    { timeout: 10000 });
  emit("recordingChanged", { recording });
}
