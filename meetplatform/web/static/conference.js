// The conference page: signalling over /ws, WebRTC mesh, chat, moderation, lobby.
//
// Plain modern JavaScript (native ES modules, no build step). The wire protocol is
// docs/signalling-protocol.md; the modules under conference/ are the browser side of it:
//   util.js      small helpers            peers.js       WebRTC, perfect negotiation
//   sanitize.js  the welcome sanitiser    view.js        participants grid and people list
//   session.js   token and shared state   chat.js        chat and the chat/people tabs
//   socket.js    the signalling socket    moderation.js  moderation and the lobby
//   protocol.js  protocol events          media.js       microphone, camera, screen
//   sfu.js       media through a node (SFU): publisher + one subscriber connection
//   ice.js       ICE servers, TURN credential refresh
//   i18n.js      translations, t()        prejoin.js     the pre-join screen
//   devices.js   device lists, prefs      settings.js    devices during the meeting
//   layout.js    narrow windows: More menu, full-screen chat and people
//   presentation.js  documents, pages, zoom   whiteboard.js  drawing over the slide
//   polls.js     quick polls
// This entry module wires the page's buttons, starts the session and installs the debug
// hook (window.meetplatform). The modules import each other (the event handlers call the
// view, the view calls back into the socket); that is fine for ES modules because no
// module uses another's bindings while it is being evaluated, only when called.

import { $, el, log } from "./conference/util.js";
import { chooseLanguage, i18n, setLanguage, t } from "./conference/i18n.js";
import { initialChoice, runPrejoin } from "./conference/prejoin.js";
import { wireSettings } from "./conference/settings.js";
import { wireLayout } from "./conference/layout.js";
import { prefs } from "./conference/devices.js";
import { sanitizedFragment } from "./conference/sanitize.js";
import { ENTERED_KEY, ENTRY_KEY, state, takeSessionToken } from "./conference/session.js";
import { act, connect, counters, onSocketClosed } from "./conference/socket.js";
import { leaveMeeting } from "./conference/protocol.js";
import {
  describeMediaError, joinAudio, leaveAudio, localTrackSinks, media, onAudioDialogClosed,
  openAudioDialog, setMuted, toggleCamera, toggleScreenShare
} from "./conference/media.js";
import { peerConnections } from "./conference/peers.js";
import { sfuDebug } from "./conference/sfu.js";
import { refreshIceServers } from "./conference/ice.js";
import { showError, showScreen, updateToolbar } from "./conference/view.js";
import { selectTab, sendChat } from "./conference/chat.js";
import { admitGuest, endMeeting, muteAll } from "./conference/moderation.js";
import { classroom, initPresentation } from "./conference/presentation.js";
import { initWhiteboard, shapes } from "./conference/whiteboard.js";
import { initPolls, polls } from "./conference/polls.js";

function wireUi() {
  $("audio-btn").addEventListener("click", () => {
    if (media.audioMode === "none") openAudioDialog();
    else leaveAudio();
  });
  $("audio-dialog").addEventListener("close", () => onAudioDialogClosed());
  $("mic-btn").addEventListener("click", () => setMuted(!media.muted));
  $("camera-btn").addEventListener("click", () => toggleCamera());
  $("screen-btn").addEventListener("click", () => toggleScreenShare());
  $("hand-btn").addEventListener("click", () => {
    const raised = !state.self?.raisedHand;
    act("raiseHand", { raised }, raised ? t("act.raiseHand") : t("act.lowerOwnHand")).catch(() => {});
  });
  $("leave-btn").addEventListener("click", () => leaveMeeting());
  $("lobby-leave").addEventListener("click", () => leaveMeeting());
  $("end-btn").addEventListener("click", () => endMeeting());
  $("mute-all").addEventListener("click", () => muteAll());
  $("admit-all").addEventListener("click", () => {
    for (const id of [...state.waiting.keys()]) admitGuest(id).catch(() => {});
  });
  $("chat-form").addEventListener("submit", sendChat);
  $("tab-chat").addEventListener("click", () => selectTab("chat"));
  $("tab-people").addEventListener("click", () => selectTab("people"));
  document.body.append(el("div", { id: "audio-sink", hidden: true }));
  wireSettings();
  wireLayout();
  initPresentation();
  initWhiteboard();
  initPolls();
}


function stored(key, value) {
  try {
    if (value === undefined) return sessionStorage.getItem(key);
    sessionStorage.setItem(key, value);
  } catch {
    // storage blocked: this page only
  }
  return null;
}

// How this seat enters (meetplatform/web/entry.py): from the page (<meta name="mp-seat">),
// from the embed bridge (window.meetplatformEmbed: {entry, prejoin, lang}), or kept from
// the first load of this tab (a reload).
function readEntry() {
  const embed = window.meetplatformEmbed ?? {};
  let entry = embed.entry ?? null;
  const raw = document.querySelector('meta[name="mp-seat"]')?.content;
  if (!entry && raw) {
    try {
      entry = JSON.parse(raw);
    } catch {
      entry = null;
    }
  }
  if (entry) stored(ENTRY_KEY, JSON.stringify(entry));
  else {
    try {
      entry = JSON.parse(stored(ENTRY_KEY) || "null");
    } catch {
      entry = null;
    }
  }
  return { entry, prejoin: embed.prejoin !== false, lang: embed.lang ?? null };
}

// Open the devices chosen on the pre-join screen (or by its skip) before the socket joins.
async function applyChoice(choice) {
  state.audioChosen = true;
  if (choice.audio === "microphone" || choice.audio === "listen") await joinAudio(choice.audio);
  if (choice.camera && !media.cameraTrack) await toggleCamera();
}

async function start() {
  const { entry, prejoin, lang } = readEntry();
  await setLanguage(chooseLanguage(entry?.locale, lang));
  wireUi();
  updateToolbar();
  state.token = takeSessionToken();
  if (!state.token) {
    showError(t("error.linkIncomplete"), t("error.noSession"));
    return;
  }
  // A reload of a tab that entered already resumes at once (the audio question follows).
  const resuming = stored(ENTERED_KEY) === state.token;
  if (!resuming) {
    const skip = !prejoin || entry?.skipPrejoin;
    let choice = initialChoice(entry);
    if (skip) choice = { audio: choice.audio, camera: entry?.cameraOn === true };
    else choice = await runPrejoin(entry);
    stored(ENTERED_KEY, state.token);
    showScreen("connecting-screen");
    try {
      await applyChoice(choice);
    } catch (err) {
      log.warn("opening the chosen devices failed", err);
    }
  }
  connect();
}

// The debug hook: tests and embedding code read state here (never write it).
window.meetplatform = {
  peers: peerConnections,
  // The media-node path (sfu.js): mode, publisher and subscriber connections, streams.
  sfu: sfuDebug,
  get selfId() { return state.self?.id ?? null; },
  get meeting() { return state.meeting; },
  get participants() { return [...state.participants.values()]; },
  get waitingGuests() { return [...state.waiting.values()]; },
  get connected() { return Boolean(state.socket && state.opened); },
  get inLobby() { return state.inLobby; },
  // The ICE configuration (TURN credentials minted for this participant) and its refresh.
  get iceServers() { return state.iceServers; },
  get iceTransportPolicy() { return state.iceTransportPolicy; },
  refreshIceServers() { return refreshIceServers(); },
  get media() {
    return {
      audioMode: media.audioMode, muted: media.muted,
      camera: Boolean(media.cameraTrack), screen: Boolean(media.screenTrack),
    };
  },
  // Simulate a network drop: the socket goes away without "leave"; the page reconnects.
  dropConnection() {
    const socket = state.socket;
    if (!socket) return false;
    onSocketClosed(1006, "simulated drop", true);
    return true;
  },
  // Frames sent and received by type (signals by description type or "candidate").
  counters,
  // The classroom: the page shown, its shapes, the documents, the poll.
  get presentation() {
    return {
      documentId: classroom.documentId, page: classroom.page,
      viewport: { ...classroom.viewport }, multiUser: classroom.multiUser,
      documents: [...classroom.documents.values()],
      shapes: [...shapes.values()].map((s) => ({ ...s, points: [...s.points] })),
      poll: polls.poll, pollResults: polls.results, pollAnswered: polls.answered,
    };
  },
  describeMediaError,
  sanitizedFragment,
  // The language the page speaks, and the remembered device choices.
  get locale() { return i18n.locale; },
  get devicePrefs() { return { ...prefs }; },
  localTrackSinks,
  // Commands for embed-bridge.js (the /embed page), the same as the page's own buttons.
  setMuted(muted) { setMuted(Boolean(muted)); },
  leave() { return leaveMeeting(); },
};

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
