/*
 * meetplatform embed.js: put a meetplatform room into your page.
 *
 *   <script src="https://meet.example.com/static/embed.js"></script>
 *   const meeting = MeetplatformEmbed.create({
 *     parentNode: document.getElementById("meeting"),
 *     url: "https://meet.example.com/embed/<room alias>",
 *     token: "<invitation secret or session token>",   // optional in public rooms
 *   });
 *   meeting.on("joined", (data) => ...);
 *   meeting.mute(); meeting.leave(); meeting.dispose();
 *
 * The credential is handed over with postMessage, never in a URL. Messages are sent
 * only to the meeting service's origin and accepted only from the iframe this object
 * created, from that origin. The full API is docs/embedding.md.
 */
(function (global) {
  "use strict";

  var PROTOCOL = 1;
  var ALLOW = "camera; microphone; display-capture; autoplay; fullscreen; clipboard-write";
  var EVENTS = [
    "ready", "joined", "participantJoined", "participantLeft", "knocking", "roleChanged",
    "audioMuted", "videoMuted", "leaving", "left", "readyToClose", "error",
  ];
  var DEFAULT_READY_TIMEOUT_MS = 15000;

  function fail(message) {
    throw new TypeError("MeetplatformEmbed: " + message);
  }

  function Embed(options) {
    if (!options || typeof options !== "object") fail("create() needs an options object");
    var parentNode = options.parentNode;
    if (!parentNode || typeof parentNode.appendChild !== "function") {
      fail("options.parentNode must be an element");
    }
    if (typeof options.url !== "string") fail("options.url must be the room's embed URL");
    var url = new URL(options.url, global.location.href);
    if (url.protocol !== "https:" && url.protocol !== "http:") fail("options.url must be http(s)");
    if (url.search) fail("options.url must not have a query: credentials go in options.token");
    if (!/\/embed\/[^/]+$/.test(url.pathname)) fail("options.url must be a /embed/<room> URL");

    this.origin = url.origin;
    this._token = typeof options.token === "string" && options.token ? options.token : null;
    this._displayName = typeof options.displayName === "string" ? options.displayName : null;
    if (options.prejoin !== undefined && typeof options.prejoin !== "boolean") fail("options.prejoin must be true or false");
    if (options.lang !== undefined && (typeof options.lang !== "string" || !/^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$/.test(options.lang))) {
      fail("options.lang must be a language tag such as \"pt-BR\"");
    }
    this._prejoin = options.prejoin !== false;
    this._lang = options.lang || null;
    this._listeners = {};
    this._queue = [];
    this._ready = false;
    this._disposed = false;
    this._readyTimer = null;
    this._readyTimeout = typeof options.readyTimeoutMs === "number"
      ? options.readyTimeoutMs : DEFAULT_READY_TIMEOUT_MS;

    var handlers = options.on || {};
    for (var name in handlers) {
      if (Object.prototype.hasOwnProperty.call(handlers, name)) this.on(name, handlers[name]);
    }

    // The fragment tells the page who we are and that the credential comes by message.
    url.hash = "origin=" + encodeURIComponent(global.location.origin) + "&handshake=1";
    var iframe = global.document.createElement("iframe");
    iframe.setAttribute("allow", ALLOW);
    iframe.setAttribute("allowfullscreen", "");
    iframe.setAttribute("referrerpolicy", "strict-origin-when-cross-origin");
    iframe.setAttribute("title", typeof options.title === "string" ? options.title : "Meeting");
    iframe.style.border = "0";
    iframe.style.width = options.width || "100%";
    iframe.style.height = options.height || "100%";
    iframe.src = url.href;
    this.iframe = iframe;

    var self = this;
    this._onMessage = function (event) { self._receive(event); };
    this._onLoad = function () { self._loaded(); };
    global.addEventListener("message", this._onMessage);
    iframe.addEventListener("load", this._onLoad);
    parentNode.appendChild(iframe);
  }

  Embed.prototype.on = function (name, handler) {
    if (EVENTS.indexOf(name) < 0) fail("unknown event " + name + " (known: " + EVENTS.join(", ") + ")");
    if (typeof handler !== "function") fail("the handler of " + name + " must be a function");
    (this._listeners[name] = this._listeners[name] || []).push(handler);
    return this;
  };

  Embed.prototype.off = function (name, handler) {
    var list = this._listeners[name] || [];
    var index = list.indexOf(handler);
    if (index >= 0) list.splice(index, 1);
    return this;
  };

  Embed.prototype.mute = function () { this._send("mute", { muted: true }); };
  Embed.prototype.unmute = function () { this._send("mute", { muted: false }); };
  Embed.prototype.leave = function () { this._send("leave", {}); };

  Embed.prototype.dispose = function () {
    if (this._disposed) return;
    this._disposed = true;
    clearTimeout(this._readyTimer);
    global.removeEventListener("message", this._onMessage);
    this.iframe.removeEventListener("load", this._onLoad);
    if (this.iframe.parentNode) this.iframe.parentNode.removeChild(this.iframe);
    this._listeners = {};
    this._queue = [];
  };

  Embed.prototype._send = function (command, data) {
    if (this._disposed) return;
    if (!this._ready) {
      this._queue.push([command, data]);
      return;
    }
    var target = this.iframe.contentWindow;
    if (!target) return;
    target.postMessage({ meetplatform: PROTOCOL, type: "command", command: command, data: data }, this.origin);
  };

  Embed.prototype._receive = function (event) {
    if (this._disposed || event.source !== this.iframe.contentWindow || event.origin !== this.origin) return;
    var message = event.data;
    if (!message || message.meetplatform !== PROTOCOL || message.type !== "event") return;
    if (typeof message.event !== "string") return;
    if (message.event === "ready") {
      this._ready = true;
      clearTimeout(this._readyTimer);
      // The page was (re)loaded: pass the credential, then what was asked before.
      var queued = this._queue;
      this._queue = [];
      this._send("join", { token: this._token, displayName: this._displayName, prejoin: this._prejoin, lang: this._lang });
      for (var i = 0; i < queued.length; i++) this._send(queued[i][0], queued[i][1]);
    }
    this._emit(message.event, message.data || {});
  };

  // The frame loaded but the page never said "ready": the browser refused to show it here
  // (this site is not among the space's embedOrigins) or it is not a meeting page.
  Embed.prototype._loaded = function () {
    if (this._ready || this._readyTimer !== null || this._disposed) return;
    var self = this;
    this._readyTimer = setTimeout(function () {
      if (self._ready || self._disposed) return;
      self._emit("error", {
        code: "notReady",
        message: "the meeting page did not start in the frame; check that " +
          global.location.origin + " is one of the space's embedOrigins",
        fatal: true,
      });
    }, this._readyTimeout);
  };

  Embed.prototype._emit = function (name, data) {
    var list = (this._listeners[name] || []).slice();
    for (var i = 0; i < list.length; i++) {
      try {
        list[i].call(this, data);
      } catch (err) {
        setTimeout(function () { throw err; }, 0);
      }
    }
  };

  global.MeetplatformEmbed = {
    version: PROTOCOL,
    allow: ALLOW,
    events: EVENTS.slice(),
    create: function (options) { return new Embed(options); },
  };
})(window);
