// Protocol events: one handler per server event (docs/signalling-protocol.md), leaving
// the page, and the DOM events an embedding page (and tests) listen to.

import { t } from "./i18n.js";
import { $, config, isDefaultLogoutUrl, isSafeHttpUrl, log, notify } from "./util.js";
import { forgetSessionToken, state } from "./session.js";
import {
  count, detachSocket, request, RequestError, setConnectionStatus
} from "./socket.js";
import {
  media, openAudioDialog, reportMedia, setMuted, stopAllMedia, stopScreenShare, toggleCamera
} from "./media.js";
import { mediaMode, sfuHandlers, sfuParticipantJoined, startMedia, stopSfu } from "./sfu.js";
import { closeAllPeers, closePeer, createPeer, peers } from "./peers.js";
import { applyIceConfig, stopIceRefresh } from "./ice.js";
import {
  removeParticipantViews, renderAllParticipants, renderMeetingInfo, renderParticipant,
  renderPeopleCount, renderScreenStage, showScreen, updateToolbar
} from "./view.js";
import { addChatMessage } from "./chat.js";
import { admitGuest, renderModeratorControls, renderWaiting } from "./moderation.js";
import { recordingAvailability, recordingChanged, recordingJoined, renderRecording } from "./recording.js";

// A participant card leaves out every member that is false or empty
// (docs/signalling-protocol.md §3.3: a room of 1,000 sends each joiner 1,000 cards). Every
// card enters the page here, so the rest of the page reads every member.
const CARD_DEFAULTS = Object.freeze({
  externalId: "", guest: false, presenter: false, muted: false, listenOnly: false,
  joinedVoice: false, video: false, screen: false, raisedHand: false, avatarUrl: "",
  reconnecting: false,
});

export function card(p) {
  return p ? { ...CARD_DEFAULTS, ...p } : p;
}

// Someone joined (participantJoined, or one of participantsJoined's list): the roster,
// the tile, the peer connection in mesh meetings, the embedding page's event.
function participantArrived(p, polite) {
  state.participants.set(p.id, p);
  renderParticipant(p);
  if (p.id !== state.self.id && !sfuParticipantJoined(p.id)) createPeer(p.id, polite);
  emit("participantJoined", { participantId: p.id, name: p.name });
}

const handlers = {
  ack(message) {
    const pending = state.pending.get(message.id);
    if (!pending) return;
    state.pending.delete(message.id);
    clearTimeout(pending.timer);
    pending.resolve(message.data ?? {});
  },

  error(message) {
    const pending = message.id !== undefined ? state.pending.get(message.id) : undefined;
    if (pending) {
      state.pending.delete(message.id);
      clearTimeout(pending.timer);
      pending.reject(new RequestError(message.code, message.message, pending.type));
      return;
    }
    if (message.code === "meetingFull") {
      state.meetingFull = true;
      return;
    }
    if (message.request === "media" && (message.code === "cameraLimit" || message.code === "notAllowed")) {
      // The server refused our camera (mesh limit, or viewers' cameras not allowed).
      notify(message.message, { kind: "error", timeout: 10000 });
      if (media.cameraTrack) toggleCamera();
      return;
    }
    log.warn("server error", message.code, message.message, message.request ?? "");
  },

  joined(message) {
    const data = message.data ?? {};
    const first = !state.everJoined;
    state.everJoined = true;
    state.inLobby = false;
    state.attempts = 0;
    state.self = card(data.self);
    state.meeting = data.meeting ?? {};
    applyIceConfig(data);
    setConnectionStatus("");
    showScreen("meeting-screen");
    renderMeetingInfo();

    // Participants: the server's list is the truth (incl. self).
    state.participants.clear();
    for (const p of data.participants ?? []) state.participants.set(p.id, card(p));
    state.participants.set(state.self.id, state.self);
    renderAllParticipants();

    for (const item of data.chat ?? []) addChatMessage(item);

    state.waiting.clear();
    for (const guest of data.waitingGuests ?? []) state.waiting.set(guest.id, guest);
    renderWaiting();
    renderModeratorControls();
    recordingJoined();

    // Peers: we are the later one toward everybody listed, so we are polite and
    // initiate. A resume counts as joining again: start every peer afresh.
    closeAllPeers();
    if (!startMedia(data.media)) { // mesh; the SFU path is sfu.js
      const polite = data.polite ?? true;
      for (const p of state.participants.values()) {
        if (p.id !== state.self.id) createPeer(p.id, polite);
      }
    }
    reportMedia();
    emit("joined", { participantId: state.self.id, role: state.self.role, resumed: Boolean(data.resumed) });
    // The pre-join screen asked already (state.audioChosen); a resumed page asks again.
    if (first && media.audioMode === "none" && !state.audioChosen && !$("audio-dialog").open) openAudioDialog();
  },

  lobby(message) {
    const data = message.data ?? {};
    state.inLobby = true;
    state.attempts = 0;
    setConnectionStatus("");
    $("lobby-meeting-name").textContent = data.meeting?.name ?? "";
    $("lobby-text").textContent = t("lobby.wait");
    if (data.meeting?.name) document.title = t("lobby.title", { name: data.meeting.name });
    showScreen("lobby-screen");
    emit("knocking", {});
  },

  admitted() {
    $("lobby-text").textContent = t("lobby.admitted");
  },

  denied() {
    goAway("denied");
  },

  participantJoined(message) {
    const p = card(message.data?.participant);
    if (!p || !state.self) return;
    participantArrived(p, message.data.polite ?? false);
    renderPeopleCount();
  },

  // A big room announces the joins of a short window together (signalling-protocol §8).
  participantsJoined(message) {
    const list = message.data?.participants;
    if (!Array.isArray(list) || !state.self) return;
    for (const raw of list) {
      const p = card(raw);
      if (p) participantArrived(p, message.data.polite ?? false);
    }
    renderPeopleCount();
  },

  participantUpdated(message) {
    const p = card(message.data?.participant);
    if (!p || !state.self) return;
    const before = state.participants.get(p.id);
    state.participants.set(p.id, p);
    if (p.id === state.self.id) {
      const wasModerator = isModerator();
      const wasPresenter = state.self.presenter;
      state.self = p;
      if (wasModerator !== isModerator()) {
        notify(isModerator() ? t("notice.nowModerator") : t("notice.noLongerModerator"));
        renderModeratorControls();
        renderRecording();
        renderAllParticipants();
        emit("roleChanged", { role: p.role });
      }
      if (wasPresenter !== p.presenter) {
        notify(p.presenter ? t("notice.nowPresenter") : t("notice.noLongerPresenter"));
        if (!p.presenter && media.screen) stopScreenShare();
      }
      updateToolbar();
    }
    if (before && before.raisedHand !== p.raisedHand && p.raisedHand && p.id !== state.self.id) {
      notify(t("notice.raisedHand", { name: p.name }));
    }
    renderParticipant(p);
  },

  participantLeft(message) {
    const id = message.data?.id;
    if (!id) return;
    state.participants.delete(id);
    closePeer(id);
    removeParticipantViews(id);
    renderPeopleCount();
    renderScreenStage();
    emit("participantLeft", { participantId: id, reason: message.data.reason });
  },

  peerReset(message) {
    const id = message.data?.id;
    if (!id || !state.self || id === state.self.id || mediaMode() === "sfu") return;
    closePeer(id);
    createPeer(id, message.data.polite ?? false);
  },

  chat(message) {
    addChatMessage(message.data);
  },

  recordingChanged,

  recordingAvailability,

  muteRequested(message) {
    const by = message.data?.by;
    if (media.micTrack && !media.muted) {
      setMuted(true);
      notify(by ? t("notice.mutedBy", { name: by }) : t("notice.muted"));
    }
  },

  guestWaiting(message) {
    const guest = message.data;
    if (!guest?.id) return;
    const isNew = !state.waiting.has(guest.id);
    state.waiting.set(guest.id, guest);
    renderWaiting();
    if (isNew) {
      notify(t("notice.guestWaiting", { name: guest.name }), {
        timeout: 10000,
        action: { label: t("people.admit"), run: () => admitGuest(guest.id) },
      });
      emit("knocking", { participantId: guest.id, displayName: guest.name });
    }
  },

  guestHandled(message) {
    if (message.data?.id) state.waiting.delete(message.data.id);
    renderWaiting();
  },

  guestLeft(message) {
    if (message.data?.id) state.waiting.delete(message.data.id);
    renderWaiting();
  },

  signal(message) {
    const data = message.data ?? {};
    if (!data.from || !state.self || data.from === state.self.id || mediaMode() === "sfu") return;
    let peer = peers.get(data.from);
    if (!peer) {
      // An offer from someone we have not heard of yet (should not happen: the server
      // sends participantJoined first). They are the later one, so we are impolite.
      peer = createPeer(data.from, false);
    }
    peer?.receive(data);
  },

  ended(message) {
    const data = message.data ?? {};
    goAway(data.reason || "ended", data.logoutUrl);
  },

  removed() {
    goAway("removed");
  },

  replaced() {
    goAway("replaced");
  },
};

Object.assign(handlers, sfuHandlers);

export function dispatch(message) {
  if (!message || typeof message.type !== "string") return;
  count("received", message.type === "signal"
    ? `signal:${message.data?.description ? message.data.description.type : "candidate"}` : message.type);
  const handler = handlers[message.type];
  const more = extraHandlers.get(message.type) ?? [];
  if (handler) handler(message);
  else if (!more.length) log.info("ignoring event", message.type);
  for (const extra of more) extra(message);
}

// Handlers other modules add (the classroom's), run after the built-in one of the same
// event (e.g. "joined" first renders the participants, then the presentation).
const extraHandlers = new Map();

export function addHandlers(map) {
  for (const [type, handler] of Object.entries(map)) {
    if (!extraHandlers.has(type)) extraHandlers.set(type, []);
    extraHandlers.get(type).push(handler);
  }
}

export function isModerator() {
  return state.self?.role === "MODERATOR";
}

// Leave the page for the meeting's logoutURL (when set) or the ended page.
export function goAway(reason, logoutUrl) {
  if (state.leaving) return;
  state.leaving = true;
  clearTimeout(state.reconnectTimer);
  emit("leaving", { reason });
  forgetSessionToken();
  stopAllMedia();
  stopSfu();
  closeAllPeers();
  stopIceRefresh();
  detachSocket();
  const target = logoutUrl || state.meeting?.logoutUrl;
  const destination = target && isSafeHttpUrl(target) && !isDefaultLogoutUrl(target)
    ? target
    : `${config.endedUrl}?reason=${encodeURIComponent(reason)}`;
  emit("left", { reason });
  location.replace(destination);
}

export async function leaveMeeting() {
  if (state.leaving) return;
  try {
    await request("leave", {}, { timeout: 3000 });
  } catch (err) {
    log.warn("leave was not acknowledged", err);
  }
  goAway("left");
}

// Events for an embedding page (and tests): DOM events on window.
export function emit(name, detail) {
  window.dispatchEvent(new CustomEvent(`meetplatform:${name}`, { detail }));
}
