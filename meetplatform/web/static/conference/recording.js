// Recording: the REC badge, the moderator's Start/Stop recording button, and the notice
// that tells everybody they are being recorded (docs/signalling-protocol.md, "recording").
//
// The server decides: a meeting records only with record=true; a moderator may start and
// stop it only with allowStartStopRecording; autoStartRecording starts it by itself. Every
// participant gets "recordingChanged" and the page follows.

import { $, el, notify, show } from "./util.js";
import { t } from "./i18n.js";
import { state } from "./session.js";
import { act } from "./socket.js";
import { emit, isModerator } from "./protocol.js";

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
      act("recording", { recording }, recording ? t("act.startRecording") : t("act.stopRecording"))
        .catch(() => {});
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
  badge.title = m.recording ? t("recording.live") : t("meeting.recordingHint");
  const btn = button();
  show(btn, Boolean(m.record) && m.allowStartStopRecording !== false && isModerator());
  btn.setAttribute("aria-pressed", m.recording ? "true" : "false");
  btn.querySelector(".tool-label").textContent = m.recording ? t("recording.stop") : t("recording.start");
}

// After "joined": the state and, when it records already, the notice.
export function recordingJoined() {
  renderRecording();
  if (state.meeting?.recording) notify(t("recording.notice"), { timeout: 10000 });
}

export function recordingChanged(message) {
  if (!state.meeting) return;
  const recording = Boolean(message.data?.recording);
  state.meeting.recording = recording;
  renderRecording();
  notify(recording ? t("recording.notice") : t("recording.stopped"), { timeout: 10000 });
  emit("recordingChanged", { recording });
}
