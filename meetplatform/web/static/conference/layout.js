// Narrow windows (phones, ≤ 600 px): the toolbar keeps the main actions and puts the
// others (buttons marked .secondary) in a "More" menu; chat and people open as
// full-screen panels from toolbar buttons. The menu's items click the real buttons, so
// every action keeps one implementation, and new toolbar buttons only need the class.

import { $, el, show } from "./util.js";
import { selectTab } from "./chat.js";

const NARROW = window.matchMedia("(max-width: 600px)");

function closeMenu() {
  show($("more-menu"), false);
  $("more-btn").setAttribute("aria-expanded", "false");
}

function openMenu() {
  const menu = $("more-menu");
  const items = [];
  for (const button of document.querySelectorAll(".toolbar .tool")) {
    if (button.hidden || button.id === "more-btn") continue;
    const inMenu = getComputedStyle(button).display === "none";
    if (!inMenu || button.classList.contains("narrow-only")) continue;
    const label = button.querySelector(".tool-label")?.textContent ?? button.textContent;
    items.push(el("button", {
      type: "button", role: "menuitem", class: "menu-item", "data-for": button.id,
      disabled: button.disabled, "data-pressed": button.getAttribute("aria-pressed") ?? undefined,
      onclick: () => { closeMenu(); button.click(); },
    }, el("span", { class: "icon", dataset: { icon: button.querySelector(".icon")?.dataset.icon ?? "" } }),
    el("span", { text: label })));
  }
  menu.replaceChildren(...items);
  show(menu, true);
  $("more-btn").setAttribute("aria-expanded", "true");
  menu.querySelector("button:not([disabled])")?.focus();
}

function openPanel(name) {
  const sidebar = $("sidebar");
  const open = sidebar.classList.contains("open") && sidebar.dataset.panel === name;
  sidebar.classList.toggle("open", !open);
  sidebar.dataset.panel = name;
  $("chat-btn").setAttribute("aria-expanded", String(!open && name === "chat"));
  $("people-btn").setAttribute("aria-expanded", String(!open && name === "people"));
  if (!open) {
    selectTab(name);
    $("sidebar-close").focus();
  }
}

function closePanel() {
  $("sidebar").classList.remove("open");
  $("chat-btn").setAttribute("aria-expanded", "false");
  $("people-btn").setAttribute("aria-expanded", "false");
}

export function wireLayout() {
  $("more-btn").addEventListener("click", () => ($("more-menu").hidden ? openMenu() : closeMenu()));
  $("more-menu").addEventListener("keydown", (event) => {
    const items = [...$("more-menu").querySelectorAll("button:not([disabled])")];
    const index = items.indexOf(document.activeElement);
    if (event.key === "Escape") {
      closeMenu();
      $("more-btn").focus();
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      items[(index + step + items.length) % items.length]?.focus();
    }
  });
  document.addEventListener("click", (event) => {
    if (!$("more-menu").hidden && !event.target.closest("#more-menu, #more-btn")) closeMenu();
  });
  $("chat-btn").addEventListener("click", () => openPanel("chat"));
  $("people-btn").addEventListener("click", () => openPanel("people"));
  $("sidebar-close").addEventListener("click", () => closePanel());
  $("sidebar").addEventListener("keydown", (event) => {
    if (event.key === "Escape" && NARROW.matches) closePanel();
  });
  NARROW.addEventListener("change", () => {
    closeMenu();
    if (!NARROW.matches) closePanel();
  });
}
