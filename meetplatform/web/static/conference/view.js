// The view: screens, the grid of tiles, the people list, the screen stage, the toolbar.

import { t } from "./i18n.js";
import { $, confirmAction, el, hueFor, initials, show } from "./util.js";
import { sanitizedFragment } from "./sanitize.js";
import { state } from "./session.js";
import { act, detachSocket } from "./socket.js";
import { emit, isModerator } from "./protocol.js";
import { media } from "./media.js";
import { peers } from "./peers.js";

export function showScreen(id) {
  for (const screen of document.querySelectorAll(".screen")) show(screen, screen.id === id);
}

export function showError(title, text) {
  state.leaving = true;
  clearTimeout(state.reconnectTimer);
  detachSocket();
  $("error-title").textContent = title;
  $("error-text").textContent = text;
  showScreen("error-screen");
  emit("error", { code: "fatal", message: text, fatal: true });
}

export function setConnecting(text) {
  $("connecting-text").textContent = text;
}

export function renderMeetingInfo() {
  const m = state.meeting;
  $("meeting-name").textContent = m.name ?? "";
  document.title = m.name ? `${m.name}` : document.title;
  // No badge in a meeting that cannot record (no media node; recording.js explains).
  show($("recording-badge"), Boolean(m.record) && m.recordingAvailable !== false);
  const welcome = $("welcome");
  welcome.replaceChildren(sanitizedFragment(m.welcome ?? ""));
  show($("welcome-message"), Boolean(welcome.textContent.trim()));
  const modMessage = $("moderator-only-message");
  modMessage.replaceChildren(sanitizedFragment(m.moderatorOnlyMessage ?? ""));
  show($("moderator-message"), isModerator() && Boolean(modMessage.textContent.trim()));
}

function gridColumns(count) {
  if (count <= 1) return 1;
  if (count <= 4) return 2;
  if (count <= 9) return 3;
  if (count <= 16) return 4;
  return 5;
}

export function renderAllParticipants() {
  $("grid").replaceChildren();
  $("people-list").replaceChildren();
  const ordered = [...state.participants.values()];
  for (const p of ordered) renderParticipant(p);
  renderPeopleCount();
  renderScreenStage();
}

export function renderPeopleCount() {
  const count = state.participants.size;
  $("people-count").textContent = String(count);
  const grid = $("grid");
  grid.style.setProperty("--cols", String(gridColumns(grid.children.length)));
  $("self-summary").textContent = state.self ? (isModerator() ? t("people.selfModerator", { name: state.self.name }) : state.self.name) : "";
}

export function removeParticipantViews(id) {
  const sel = `[data-user-id="${CSS.escape(id)}"]`;
  document.querySelector(`#grid .tile${sel}`)?.remove();
  document.querySelector(`#people-list li${sel}`)?.remove();
  document.querySelector(`#audio-sink audio${sel}`)?.remove();
  renderPeopleCount();
}

function badgeList(p) {
  const badges = [];
  if (p.presenter) badges.push(el("span", { class: "badge presenter", title: t("badge.presenter"), text: t("badge.presenter") }));
  if (p.role === "MODERATOR") badges.push(el("span", { class: "badge moderator", title: t("badge.moderator"), text: t("badge.moderator") }));
  if (p.guest) badges.push(el("span", { class: "badge guest", title: t("badge.guest"), text: t("badge.guest") }));
  return badges;
}

function statusIcons(p) {
  const icons = [];
  if (p.raisedHand) icons.push(el("span", { class: "icon status hand", dataset: { icon: "hand" }, title: t("status.hand"), "aria-label": t("status.hand") }));
  if (p.listenOnly) icons.push(el("span", { class: "icon status", dataset: { icon: "headset" }, title: t("status.listenOnly"), "aria-label": t("status.listenOnly") }));
  else if (p.joinedVoice && p.muted) icons.push(el("span", { class: "icon status muted", dataset: { icon: "mic-off" }, title: t("status.muted"), "aria-label": t("status.muted") }));
  else if (p.joinedVoice) icons.push(el("span", { class: "icon status", dataset: { icon: "mic" }, title: t("status.micOn"), "aria-label": t("status.micOn") }));
  if (p.screen) icons.push(el("span", { class: "icon status", dataset: { icon: "screen" }, title: t("status.screen"), "aria-label": t("status.screen") }));
  return icons;
}

// Avatars: https images, or images of this service; anything else shows initials.
function isAvatarUrl(value) {
  if (!value) return false;
  try {
    const url = new URL(value, location.href);
    return url.protocol === "https:" || url.origin === location.origin;
  } catch {
    return false;
  }
}

export function avatar(p, size) {
  const node = el("span", { class: `avatar ${size}`, "aria-hidden": "true" });
  node.style.setProperty("--hue", String(hueFor(p.externalId || p.id)));
  if (isAvatarUrl(p.avatarUrl)) {
    const img = el("img", { src: p.avatarUrl, alt: "" });
    img.addEventListener("error", () => img.replaceWith(document.createTextNode(initials(p.name))));
    node.append(img);
  } else {
    node.textContent = initials(p.name);
  }
  return node;
}

function attachTrack(video, track) {
  if (!track) {
    if (video.srcObject) video.srcObject = null;
    video.dataset.trackId = "";
    return;
  }
  if (video.dataset.trackId !== track.id) {
    video.srcObject = new MediaStream([track]);
    video.dataset.trackId = track.id;
    video.play().catch(() => {});
  }
}

export function renderParticipant(p) {
  if (!p || !state.self) return;
  renderTile(p);
  renderPersonRow(p);
  renderRemoteAudio(p);
}

function renderTile(p) {
  const isSelf = p.id === state.self.id;
  let tile = document.querySelector(`#grid .tile[data-user-id="${CSS.escape(p.id)}"]`);
  if (!tile) {
    tile = el("div", { class: "tile", dataset: { userId: p.id } },
      el("video", { class: "camera", autoplay: true, playsinline: true, muted: true }),
      el("div", { class: "placeholder" }),
      el("div", { class: "nameplate" }));
    tile.querySelector("video").muted = true;
    $("grid").append(tile);
    renderPeopleCount();
  }
  const video = tile.querySelector("video.camera");
  let cameraTrack = null;
  if (isSelf) {
    cameraTrack = media.cameraTrack;
  } else {
    const peer = peers.get(p.id);
    if (peer && p.video) cameraTrack = peer.remoteTracks().camera;
  }
  attachTrack(video, cameraTrack);
  tile.classList.toggle("self", isSelf);
  tile.classList.toggle("has-video", Boolean(cameraTrack));
  tile.classList.toggle("presenter", Boolean(p.presenter));
  tile.classList.toggle("hand", Boolean(p.raisedHand));
  tile.classList.toggle("reconnecting", Boolean(p.reconnecting));
  const placeholder = tile.querySelector(".placeholder");
  const avatarKey = `${p.name}\n${p.avatarUrl ?? ""}`;
  if (placeholder.dataset.key !== avatarKey) {
    placeholder.replaceChildren(avatar(p, "large"));
    placeholder.dataset.key = avatarKey;
  }
  const nameplate = tile.querySelector(".nameplate");
  nameplate.replaceChildren(
    ...statusIcons(p),
    el("span", { class: "name", text: isSelf ? t("people.you", { name: p.name }) : p.name }),
    ...badgeList(p),
  );
  if (p.reconnecting) nameplate.append(el("span", { class: "badge warn", text: t("badge.reconnecting") }));
}

function renderPersonRow(p) {
  const isSelf = p.id === state.self.id;
  let row = document.querySelector(`#people-list li[data-user-id="${CSS.escape(p.id)}"]`);
  if (!row) {
    row = el("li", { class: "person", dataset: { userId: p.id } });
    $("people-list").append(row);
  }
  row.dataset.role = p.role;
  row.dataset.muted = String(Boolean(p.muted));
  row.dataset.hand = String(Boolean(p.raisedHand));
  row.dataset.presenter = String(Boolean(p.presenter));
  const info = el("div", { class: "person-info" },
    avatar(p, "small"),
    el("div", { class: "person-text" },
      el("span", { class: "person-name", text: isSelf ? t("people.you", { name: p.name }) : p.name }),
      el("span", { class: "person-badges" }, ...badgeList(p))),
    el("span", { class: "spacer" }),
    ...statusIcons(p));
  const actions = el("div", { class: "person-actions" });
  if (isModerator()) {
    if (p.raisedHand) actions.append(actionButton("lower-hand", t("people.lowerHand"), () => act("lowerHand", { userId: p.id }, t("act.lowerHand"))));
    if (!isSelf && p.joinedVoice && !p.muted && !p.listenOnly) actions.append(actionButton("mute", t("people.mute"), () => act("mute", { userId: p.id }, t("act.mute"))));
    if (!p.presenter) actions.append(actionButton("presenter", t("people.makePresenter"), () => act("presenter", { userId: p.id }, t("act.presenter"))));
    if (!isSelf && p.role !== "MODERATOR") actions.append(actionButton("promote", t("people.promote"), () => act("role", { userId: p.id, role: "MODERATOR" }, t("act.promote"))));
    if (!isSelf && p.role === "MODERATOR") actions.append(actionButton("demote", t("people.demote"), () => act("role", { userId: p.id, role: "VIEWER" }, t("act.demote"))));
    if (!isSelf) actions.append(actionButton("remove", t("people.remove"), () => removeParticipant(p), "danger"));
  } else if (isSelf && p.raisedHand) {
    actions.append(actionButton("lower-hand", t("people.lowerHand"), () => act("raiseHand", { raised: false }, t("act.lowerOwnHand"))));
  }
  row.replaceChildren(info, actions);
  show(actions, actions.children.length > 0);
}

export function actionButton(action, label, run, extra = "") {
  return el("button", {
    type: "button", class: `btn small ${extra}`.trim(), dataset: { action }, text: label,
    onclick: (event) => {
      event.currentTarget.disabled = true;
      Promise.resolve(run()).catch(() => {}).finally(() => {
        if (event.currentTarget) event.currentTarget.disabled = false;
      });
    },
  });
}

async function removeParticipant(p) {
  const ok = await confirmAction(t("remove.title", { name: p.name }), t("remove.text", { name: p.name }), t("people.remove"));
  if (ok) await act("remove", { userId: p.id }, t("act.remove"));
}

function renderRemoteAudio(p) {
  if (p.id === state.self.id) return;
  const peer = peers.get(p.id);
  const tracks = peer ? peer.remoteTracks().audio : [];
  let audio = document.querySelector(`#audio-sink audio[data-user-id="${CSS.escape(p.id)}"]`);
  if (!tracks.length) {
    audio?.remove();
    return;
  }
  if (!audio) {
    audio = el("audio", { autoplay: true, dataset: { userId: p.id } });
    audio.muted = media.audioMode === "none";
    $("audio-sink").append(audio);
  }
  const key = tracks.map((t) => t.id).join(",");
  if (audio.dataset.tracks !== key) {
    audio.srcObject = new MediaStream(tracks);
    audio.dataset.tracks = key;
    audio.play().catch(() => {});
  }
}

export function renderScreenStage() {
  const stage = $("screen-stage");
  if (!state.self) return;
  let track = null;
  let owner = null;
  if (media.screenTrack) {
    track = media.screenTrack;
    owner = state.self;
  } else {
    for (const [id, peer] of peers) {
      const p = state.participants.get(id);
      const screen = peer.remoteTracks().screen;
      if (p && p.screen && screen) {
        track = screen;
        owner = p;
        break;
      }
    }
  }
  let video = stage.querySelector("video");
  if (!track) {
    if (video) attachTrack(video, null);
    stage.replaceChildren();
    show(stage, false);
    document.querySelector(".stage").classList.remove("sharing");
    return;
  }
  if (!video) {
    video = el("video", { class: "screen-video", autoplay: true, playsinline: true, muted: true });
    video.muted = true;
    stage.replaceChildren(video, el("div", { class: "nameplate" }));
  }
  stage.dataset.userId = owner.id;
  stage.querySelector(".nameplate").replaceChildren(
    el("span", { class: "icon status", dataset: { icon: "screen" } }),
    el("span", { class: "name", text: owner.id === state.self.id ? t("screen.yours") : t("screen.of", { name: owner.name }) }));
  attachTrack(video, track);
  show(stage, true);
  document.querySelector(".stage").classList.add("sharing");
}

function setToolButton(button, { pressed, label, icon, disabled = false, title = "" }) {
  button.setAttribute("aria-pressed", String(Boolean(pressed)));
  button.querySelector(".tool-label").textContent = label;
  button.querySelector(".icon").dataset.icon = icon;
  button.disabled = disabled;
  button.title = title || label;
}

export function updateToolbar() {
  const mode = media.audioMode;
  setToolButton($("audio-btn"), {
    pressed: mode !== "none",
    label: mode === "none" ? t("toolbar.joinAudio") : t("toolbar.leaveAudio"),
    icon: mode === "none" ? "headset" : "headset-off",
  });
  setToolButton($("mic-btn"), {
    pressed: mode === "microphone" && !media.muted,
    label: mode === "listen" ? t("audio.listenOnly") : media.muted ? t("toolbar.unmute") : t("toolbar.mute"),
    icon: mode === "microphone" && !media.muted ? "mic" : "mic-off",
    disabled: mode !== "microphone",
    title: mode === "microphone" ? "" : t("toolbar.micFirst"),
  });
  setToolButton($("camera-btn"), {
    pressed: Boolean(media.cameraTrack),
    label: media.cameraTrack ? t("toolbar.stopCamera") : t("toolbar.startCamera"),
    icon: media.cameraTrack ? "camera" : "camera-off",
  });
  const presenter = Boolean(state.self?.presenter);
  setToolButton($("screen-btn"), {
    pressed: Boolean(media.screenTrack),
    label: media.screenTrack ? t("toolbar.stopSharing") : t("toolbar.shareScreen"),
    icon: "screen",
    disabled: !presenter && !media.screenTrack,
    title: presenter ? "" : t("toolbar.presenterOnly"),
  });
  const raised = Boolean(state.self?.raisedHand);
  setToolButton($("hand-btn"), { pressed: raised, label: raised ? t("people.lowerHand") : t("toolbar.raiseHand"), icon: "hand" });
}
