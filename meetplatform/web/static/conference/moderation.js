// Moderation and the lobby: moderator controls, waiting guests, ending and muting all.

import { t } from "./i18n.js";
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
        actionButton("admit", t("people.admit"), () => admitGuest(guest.id), "primary"),
        actionButton("deny", t("people.deny"), () => act("deny", { userId: guest.id }, t("act.deny"))))));
  }
  const count = state.waiting.size;
  show($("waiting-section"), mod && count > 0);
  $("waiting-count").textContent = t("people.waitingCount", { count });
  show($("waiting-count"), mod && count > 0);
}

export function admitGuest(id) {
  return act("admit", { userId: id }, t("act.admit"));
}

export async function endMeeting() {
  const ok = await confirmAction(t("end.title"), t("end.text"), t("toolbar.endMeeting"));
  if (ok) await act("end", {}, t("act.end")).catch(() => {});
}

export async function muteAll() {
  try {
    const result = await act("muteAll", {}, t("act.muteAll"));
    notify(result?.count !== undefined ? t("notice.askedToMute", { count: result.count }) : t("notice.askedAllToMute"));
  } catch {
    // reported by act()
  }
}
