// Chat: messages, the chat form and the chat/people tabs. (The welcome message is
// rendered with the meeting's information, in view.js.)

import { t } from "./i18n.js";
import { $, el, formatTime, linkifiedText, notify, show } from "./util.js";
import { state } from "./session.js";
import { act } from "./socket.js";

export function addChatMessage(item) {
  if (!item || typeof item.text !== "string" || state.chatIds.has(item.id)) return;
  state.chatIds.add(item.id);
  const mine = state.self && item.from === state.self.id;
  const fromApi = item.from === null || item.from === undefined;
  const row = el("li", { class: `chat-message${mine ? " mine" : ""}${fromApi ? " system" : ""}`, dataset: { messageId: item.id } },
    el("div", { class: "chat-meta" },
      el("span", { class: "chat-name", text: item.name || (fromApi ? t("chat.announcement") : t("chat.someone")) }),
      el("time", { class: "chat-time", text: item.at ? formatTime(item.at) : "" })),
    el("div", { class: "chat-text" }, linkifiedText(item.text)));
  const list = $("chat-messages");
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  list.append(row);
  if (nearBottom || mine) list.scrollTop = list.scrollHeight;
  if (!mine && $("tab-chat").getAttribute("aria-selected") !== "true") {
    state.unreadChat += 1;
    $("chat-unread").textContent = String(state.unreadChat);
    show($("chat-unread"), true);
  }
}

export async function sendChat(event) {
  event.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text) return;
  if (text.length > 500) {
    notify(t("chat.tooLong"), { kind: "error" });
    return;
  }
  $("chat-send").disabled = true;
  try {
    await act("chat", { text }, t("act.chat"));
    input.value = "";
  } catch {
    // reported by act()
  } finally {
    $("chat-send").disabled = false;
    input.focus();
  }
}

export function selectTab(name) {
  for (const tab of ["chat", "people"]) {
    const selected = tab === name;
    $(`tab-${tab}`).setAttribute("aria-selected", String(selected));
    show($(`${tab}-panel`), selected);
  }
  if (name === "chat") {
    state.unreadChat = 0;
    show($("chat-unread"), false);
    const list = $("chat-messages");
    list.scrollTop = list.scrollHeight;
  }
}
