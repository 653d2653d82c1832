// Moderation and the lobby: moderator controls, waiting guests, ending and muting all.

import { $, confirmAction, el, notify, show } from "./util.js";
import { state } from "./session.js";
import { act } from "./socket.js";
import { isModerator } from "./protocol.js";
import { actionButton, avatar, renderPeopleCount, updateToolbar } from "./view.js";

export function renderModeratorControls() {
  const mod = isModerator();
  show($("moderator-bar"), mod);
  show($("end-btn"), mod);
  show($("moderator-message"), mod && Boolean($("moderator-only-message").textContent.trim()));
  renderWaiting();
  renderPeopleCount();
  updateToolbar();
}

export function renderWaiting() {
  const mod = isModerator();
  const list = $("waiting-list");
  list.replaceChildren();
  for (const guest of state.waiting.values()) {
    list.append(el("li", { class: "person waiting-guest", dataset: { userId: guest.id } },
      el("div", { class: "person-info" },
        avatar({ id: guest.id, name: guest.name }, "small"),
        el("span", { class: "person-name", text: guest.name })),
      el("div", { class: "person-actions" },
        actionButton("admit", "Admit", () => admitGuest(guest.id), "primary"),
        actionButton("deny", "Deny", () => act("deny", { userId: guest.id }, "deny the guest")))));
  }
  const count = state.waiting.size;
  show($("waiting-section"), mod && count > 0);
  $("waiting-count").textContent = `${count} waiting`;
  show($("waiting-count"), mod && count > 0);
}

export function admitGuest(id) {
  return act("admit", { userId: id }, "admit the guest");
}

export async function endMeeting() {
  const ok = await confirmAction("End the meeting for everyone?", "Everybody will be disconnected and the meeting will be over.", "End meeting");
  if (ok) await act("end", {}, "end the meeting").catch(() => {});
}

export async function muteAll() {
  try {
    const result = await act("muteAll", {}, "mute everyone");
    notify(`Asked ${result?.count ?? "everyone"} to mute.`);
  } catch {
    // reported by act()
  }
}
