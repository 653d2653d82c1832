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
// This entry module wires the page's buttons, starts the session and installs the debug
// hook (window.meetplatform). The modules import each other (the event handlers call the
// view, the view calls back into the socket); that is fine for ES modules because no
// module uses another's bindings while it is being evaluated, only when called.

import { $, el } from "./conference/util.js";
import { sanitizedFragment } from "./conference/sanitize.js";
import { state, takeSessionToken } from "./conference/session.js";
import { act, connect, counters, onSocketClosed } from "./conference/socket.js";
import { leaveMeeting } from "./conference/protocol.js";
import {
  describeMediaError, leaveAudio, media, onAudioDialogClosed, openAudioDialog, setMuted,
  toggleCamera, toggleScreenShare
} from "./conference/media.js";
import { peerConnections } from "./conference/peers.js";
import { sfuDebug } from "./conference/sfu.js";
import { showError, updateToolbar } from "./conference/view.js";
import { selectTab, sendChat } from "./conference/chat.js";
import { admitGuest, endMeeting, muteAll } from "./conference/moderation.js";

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
    act("raiseHand", { raised }, raised ? "raise your hand" : "lower your hand").catch(() => {});
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
}

function start() {
  wireUi();
  updateToolbar();
  state.token = takeSessionToken();
  if (!state.token) {
    showError("This meeting link is incomplete",
      "There is no session to resume in this window. Open the meeting through the link your organiser or learning platform gave you.");
    return;
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
  describeMediaError,
  sanitizedFragment,
  // Commands for embed-bridge.js (the /embed page), the same as the page's own buttons.
  setMuted(muted) { setMuted(Boolean(muted)); },
  leave() { return leaveMeeting(); },
};

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
