// Small helpers of the conference page: DOM building, notices, the confirm dialog, the
// page's configuration (from its <meta> tags), logging, linkified chat text.

import { t } from "./i18n.js";

export const $ = (id) => document.getElementById(id);
const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";

export const config = {
  wsUrl: meta("mp-ws-url"),
  endedUrl: meta("mp-ended-url") || "/client/ended",
  joinUrl: meta("mp-join-url") || "/client/join",
};

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export function show(node, visible) {
  if (node) node.hidden = !visible;
}

export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || "?").slice(0, 2);
  return letters.toUpperCase();
}

export function hueFor(text) {
  let hash = 0;
  for (const ch of String(text)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return hash % 360;
}

// Times in the participant's language (see i18n.js).
export { formatTime } from "./i18n.js";

export function isSafeHttpUrl(value) {
  try {
    const url = new URL(value, location.href);
    return url.protocol === "https:" || url.protocol === "http:";
  } catch {
    return false;
  }
}

// BigBlueButton's default logoutURL is the server's own root (the XML API fills it in when
// create had none). That page says nothing about the meeting: show the ended page instead.
export function isDefaultLogoutUrl(value) {
  try {
    const url = new URL(value, location.href);
    const base = config.endedUrl.replace(/\/client\/ended$/, "");
    return url.origin === location.origin && !url.search &&
      (url.pathname === "/" || url.pathname === `${base}/` || url.pathname === base);
  } catch {
    return false;
  }
}

export const log = {
  info: (...args) => console.info("[meetplatform]", ...args),
  warn: (...args) => console.warn("[meetplatform]", ...args),
};

// Notices: short messages at the top of the page. Errors stay until dismissed.
export function notify(text, { kind = "info", timeout = 6000, action = null } = {}) {
  const box = el("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" },
    el("span", { class: "notice-text", text }));
  if (action) {
    box.append(el("button", {
      type: "button", class: "btn small", text: action.label,
      onclick: () => { action.run(); box.remove(); },
    }));
  }
  box.append(el("button", {
    type: "button", class: "notice-close", "aria-label": t("notice.dismiss"), text: "×",
    onclick: () => box.remove(),
  }));
  $("notices").append(box);
  if (kind !== "error" && timeout > 0) setTimeout(() => box.remove(), timeout);
  return box;
}

export function confirmAction(title, text, okLabel) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

// Chat text is plain text; web addresses in it become links (built as DOM, never HTML).
export function linkifiedText(text) {
  const fragment = document.createDocumentFragment();
  const pattern = /\bhttps?:\/\/[^\s<>"']+/gi;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    let url = match[0].replace(/[.,;:!?)\]]+$/, "");
    fragment.append(text.slice(last, match.index));
    fragment.append(el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: url }));
    last = match.index + url.length;
  }
  fragment.append(text.slice(last));
  return fragment;
}
