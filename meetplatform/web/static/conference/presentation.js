// The presentation area: the current document and page, the page switcher, zoom and
// pan, conversion progress and the presenter's upload. Everyone follows the presenter:
// the server's "presentation" and "viewport" events are the truth (signalling §4.1).

import { $, config, confirmAction, el, notify, show } from "./util.js";
import { t } from "./i18n.js";
import { state } from "./session.js";
import { act } from "./socket.js";
import { addHandlers, isModerator } from "./protocol.js";
import { renderWhiteboard, resetShapes, whiteboardCanDraw, updateWhiteboardTools } from "./whiteboard.js";

export const classroom = {
  documents: new Map(),   // id -> document (signalling §3.5)
  documentId: "default",  // "default": the empty whiteboard page
  page: 1,
  viewport: { zoom: 1, x: 0, y: 0 },
  multiUser: false,
};

const ZOOM_STEP = 1.25;

export function isPresenter() {
  return Boolean(state.self?.presenter);
}

function currentDocument() {
  return classroom.documents.get(classroom.documentId) ?? null;
}

export function pageCount() {
  const doc = currentDocument();
  return doc ? Math.max(1, doc.pagesTotal) : 1;
}

export function slideDescription() {
  const doc = currentDocument();
  const name = doc ? doc.filename : t("pres.whiteboard");
  return t("pres.slide", { document: name, page: classroom.page, pages: pageCount() });
}

// Why a document was refused: the server's reason (English, from the converter) or ours.
function failure(doc) {
  return t("pres.failed", { document: doc.filename, reason: doc.error || t("pres.notConverted") });
}

function renderDocuments() {
  const select = $("doc-select");
  select.replaceChildren(el("option", { value: "default", text: t("pres.noDocument") }));
  for (const doc of classroom.documents.values()) {
    if (doc.state !== "ready") continue;
    select.append(el("option", { value: doc.id, text: doc.filename }));
  }
  select.value = classroom.documentId;
  const list = $("doc-progress");
  list.replaceChildren();
  for (const doc of classroom.documents.values()) {
    let text = null;
    if (doc.state === "queued") text = t("pres.queued", { document: doc.filename });
    else if (doc.state === "converting") {
      text = t("pres.converting", { document: doc.filename, done: doc.pagesDone, total: doc.pagesTotal || "?" });
    } else if (doc.state === "failed") text = failure(doc);
    if (text) {
      list.append(el("li", { class: `doc-state ${doc.state}`, dataset: { documentId: doc.id }, text }));
    }
    if (doc.downloadUrl) {
      list.append(el("li", { class: "doc-download" },
        el("a", { href: doc.downloadUrl, download: doc.filename, text: t("pres.download", { document: doc.filename }) })));
    }
  }
  show(list, list.childElementCount > 0);
}

export function renderPresentation() {
  const doc = currentDocument();
  const image = $("slide-image");
  const description = slideDescription();
  if (doc && doc.state === "ready") {
    const src = doc.pageUrl.replace("{page}", String(classroom.page));
    if (image.getAttribute("src") !== src) image.setAttribute("src", src);
    image.hidden = false;
    $("slide-view").classList.remove("blank");
  } else {
    image.removeAttribute("src");
    image.hidden = true;
    $("slide-view").classList.add("blank");
    if (aspect !== 4 / 3) {
      aspect = 4 / 3;
      fitSlide();
    }
  }
  image.alt = description;
  $("slide-view").setAttribute("aria-label", description);
  $("slide-caption").textContent = description;
  $("page-label").textContent = t("pres.pageOf", { page: classroom.page, pages: pageCount() });
  const presenter = isPresenter();
  $("prev-page").disabled = !presenter || classroom.page <= 1;
  $("next-page").disabled = !presenter || classroom.page >= pageCount();
  $("doc-select").disabled = !presenter;
  show($("doc-remove"), presenter && Boolean(doc) && doc.removable);
  for (const id of ["zoom-in", "zoom-out", "zoom-fit"]) $(id).disabled = !presenter;
  $("zoom-out").disabled = !presenter || classroom.viewport.zoom <= 1;
  show($("upload-btn"), presenter || isModerator());
  const multi = $("multi-user-btn");
  show(multi, isModerator());
  multi.setAttribute("aria-pressed", String(classroom.multiUser));
  applyViewport();
  renderDocuments();
  updateWhiteboardTools();
  renderWhiteboard();
}

// The page's shape: the slide image's own (all pages of a document drawn the same), else
// 4:3 for the empty whiteboard. The view is sized in pixels to fit the frame, and shapes
// are in units of the view, so everyone's drawing lands at the same place on the page.
let aspect = 4 / 3;

export function fitSlide() {
  const frame = $("slide-frame");
  const width = frame.clientWidth;
  const height = frame.clientHeight;
  if (!width || !height) return;
  const w = Math.min(width, height * aspect);
  const view = $("slide-view");
  view.style.width = `${Math.floor(w)}px`;
  view.style.height = `${Math.floor(w / aspect)}px`;
  renderWhiteboard();
}

function applyViewport() {
  const { zoom, x, y } = classroom.viewport;
  $("slide-view").style.transform = zoom === 1 ? "" : `scale(${zoom}) translate(${-x * 100}%, ${-y * 100}%)`;
  $("zoom-label").textContent = `${Math.round(zoom * 100)}%`;
}

function applyPage(data) {
  classroom.documentId = data.documentId ?? "default";
  classroom.page = data.page ?? 1;
  classroom.viewport = data.viewport ?? { zoom: 1, x: 0, y: 0 };
  resetShapes(data.annotations ?? []);
}

function setPage(page, documentId = classroom.documentId) {
  return act("setPage", { documentId, page }, t("act.setPage")).catch(() => {});
}

function setZoom(zoom) {
  const z = Math.min(8, Math.max(1, zoom));
  const { x, y } = classroom.viewport;
  act("viewport", { zoom: z, x: z === 1 ? 0 : x, y: z === 1 ? 0 : y }, t("act.zoom")).catch(() => {});
}

function pan(dx, dy) {
  const { zoom, x, y } = classroom.viewport;
  if (zoom <= 1) return;
  const limit = 1 - 1 / zoom;
  const clamp = (v) => Math.min(limit, Math.max(0, v));
  act("viewport", { zoom, x: clamp(x + dx), y: clamp(y + dy) }, t("act.pan")).catch(() => {});
}

// Where /presentations is mounted: next to /client (the page's own join URL tells).
function presentationsUrl() {
  return config.joinUrl.replace(/\/client\/join$/, "") + "/presentations";
}

async function upload(file) {
  if (!file) return;
  const status = $("upload-status");
  status.textContent = t("pres.uploading", { document: file.name });
  try {
    const response = await fetch(`${presentationsUrl()}/upload?filename=${encodeURIComponent(file.name)}`, {
      method: "POST", body: file, credentials: "same-origin", cache: "no-store",
      headers: { "X-Session-Token": state.token, "Content-Type": "application/octet-stream" },
    });
    if (!response.ok) {
      let why = `HTTP ${response.status}`;
      try { why = (await response.json()).error || why; } catch { /* not JSON */ }
      if (response.status === 413) why = t("pres.tooLarge");
      throw new Error(why);
    }
    status.textContent = t("pres.uploaded", { document: file.name });
  } catch (err) {
    status.textContent = "";
    notify(t("pres.uploadFailed", { document: file.name, reason: err.message }), { kind: "error" });
  }
}

export function initPresentation() {
  const image = $("slide-image");
  image.addEventListener("load", () => {
    if (image.naturalWidth && image.naturalHeight) {
      aspect = image.naturalWidth / image.naturalHeight;
      fitSlide();
    }
  });
  new ResizeObserver(() => fitSlide()).observe($("slide-frame"));
  $("prev-page").addEventListener("click", () => setPage(classroom.page - 1));
  $("next-page").addEventListener("click", () => setPage(classroom.page + 1));
  $("doc-select").addEventListener("change", (event) => setPage(1, event.target.value));
  $("zoom-in").addEventListener("click", () => setZoom(classroom.viewport.zoom * ZOOM_STEP));
  $("zoom-out").addEventListener("click", () => setZoom(classroom.viewport.zoom / ZOOM_STEP));
  $("zoom-fit").addEventListener("click", () => setZoom(1));
  $("slide-frame").addEventListener("keydown", (event) => {
    if (!isPresenter() || whiteboardCanDraw() && event.target !== $("slide-frame")) return;
    const step = 0.1 / classroom.viewport.zoom;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (classroom.viewport.zoom > 1 && moves[event.key]) {
      event.preventDefault();
      pan(...moves[event.key]);
    } else if (event.key === "PageDown" && classroom.page < pageCount()) {
      event.preventDefault();
      setPage(classroom.page + 1);
    } else if (event.key === "PageUp" && classroom.page > 1) {
      event.preventDefault();
      setPage(classroom.page - 1);
    }
  });
  $("doc-remove").addEventListener("click", async () => {
    const doc = currentDocument();
    if (!doc) return;
    if (!(await confirmAction(t("pres.removeDocument"), t("pres.removeText", { document: doc.filename }), t("people.remove")))) return;
    act("removeDocument", { documentId: doc.id }, t("act.removeDocument")).catch(() => {});
  });
  $("upload-btn").addEventListener("click", () => $("upload-input").click());
  $("upload-input").addEventListener("change", (event) => {
    upload(event.target.files?.[0]);
    event.target.value = "";
  });
  $("multi-user-btn").addEventListener("click", () => {
    act("multiUser", { enabled: !classroom.multiUser }, t("act.multiUser")).catch(() => {});
  });

  addHandlers({
    joined(message) {
      const p = message.data?.presentation ?? {};
      classroom.documents.clear();
      for (const doc of p.documents ?? []) classroom.documents.set(doc.id, doc);
      classroom.multiUser = Boolean(p.multiUser);
      applyPage(p);
      renderPresentation();
    },
    document(message) {
      const doc = message.data;
      if (!doc?.id) return;
      const before = classroom.documents.get(doc.id);
      classroom.documents.set(doc.id, doc);
      if (doc.state === "failed" && before?.state !== "failed" && (isPresenter() || isModerator())) {
        notify(failure(doc), { kind: "error" });
      }
      if (doc.state === "ready" && before?.state !== "ready") $("upload-status").textContent = "";
      renderPresentation();
    },
    documentRemoved(message) {
      classroom.documents.delete(message.data?.id);
      renderPresentation();
    },
    presentation(message) {
      applyPage(message.data ?? {});
      renderPresentation();
    },
    viewport(message) {
      classroom.viewport = message.data ?? { zoom: 1, x: 0, y: 0 };
      applyViewport();
      renderWhiteboard();
      $("zoom-out").disabled = !isPresenter() || classroom.viewport.zoom <= 1;
    },
    multiUser(message) {
      classroom.multiUser = Boolean(message.data?.enabled);
      notify(classroom.multiUser ? t("pres.multiUserOn") : t("pres.multiUserOff"));
      renderPresentation();
    },
    participantUpdated(message) {
      if (message.data?.participant?.id === state.self?.id) renderPresentation();
    },
  });
}
