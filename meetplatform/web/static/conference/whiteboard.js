// The whiteboard over the slide: shapes in page units (0..1 of the page's width and
// height, so every screen draws the same), streamed while they are drawn: a "draw"
// starts a shape, the next ones append points, at most once per animation frame
// (signalling §4.1). Pen, line, rectangle, ellipse, text, eraser, undo, clear page.

import { $, notify } from "./util.js";
import { t } from "./i18n.js";
import { state } from "./session.js";
import { act, send } from "./socket.js";
import { addHandlers } from "./protocol.js";
import { classroom, isPresenter } from "./presentation.js";

// Shapes of the current page: id -> {id, kind, by, color, width, points, text, done}.
export const shapes = new Map();
const tool = { kind: "pen", color: "#d32f2f", width: 0.004 };
let drawing = null;   // the shape being drawn by this page
let pending = [];     // its points not sent yet
let frameRequested = false;
let counter = 0;
let lastDrawNotice = 0;

export function whiteboardCanDraw() {
  return isPresenter() || classroom.multiUser;
}

export function resetShapes(list) {
  shapes.clear();
  drawing = null;
  pending = [];
  for (const shape of list) shapes.set(shape.id, { ...shape, points: [...shape.points] });
}

export function updateWhiteboardTools() {
  const can = whiteboardCanDraw();
  for (const button of document.querySelectorAll("#wb-tools button")) button.disabled = !can;
  $("wb-color").disabled = !can;
  $("whiteboard").classList.toggle("drawable", can);
  $("wb-tools").hidden = !can;
}

function canvasSize() {
  const canvas = $("whiteboard");
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  const ratio = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  return { width: canvas.width, height: canvas.height };
}

export function renderWhiteboard() {
  const canvas = $("whiteboard");
  const { width, height } = canvasSize();
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  for (const shape of shapes.values()) drawShape(ctx, shape, width, height);
}

function drawShape(ctx, shape, width, height) {
  const p = shape.points;
  if (p.length < 2) return;
  ctx.strokeStyle = shape.color;
  ctx.fillStyle = shape.color;
  ctx.lineWidth = Math.max(1, shape.width * width);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  const x0 = p[0] * width, y0 = p[1] * height;
  const x1 = p[p.length - 2] * width, y1 = p[p.length - 1] * height;
  ctx.beginPath();
  switch (shape.kind) {
    case "pen":
      ctx.moveTo(x0, y0);
      if (p.length === 2) ctx.lineTo(x0 + 0.01, y0);
      for (let i = 2; i < p.length; i += 2) ctx.lineTo(p[i] * width, p[i + 1] * height);
      ctx.stroke();
      break;
    case "line":
      ctx.moveTo(x0, y0);
      ctx.lineTo(x1, y1);
      ctx.stroke();
      break;
    case "rectangle":
      ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
      break;
    case "ellipse":
      ctx.ellipse((x0 + x1) / 2, (y0 + y1) / 2, Math.abs(x1 - x0) / 2, Math.abs(y1 - y0) / 2, 0, 0, 2 * Math.PI);
      ctx.stroke();
      break;
    case "text":
      ctx.font = `${Math.max(10, Math.round(height * 0.04))}px sans-serif`;
      ctx.textBaseline = "top";
      ctx.fillText(shape.text || "", x0, y0);
      break;
    default:
      break;
  }
}

function pagePoint(event) {
  const rect = $("whiteboard").getBoundingClientRect();
  const x = (event.clientX - rect.left) / rect.width;
  const y = (event.clientY - rect.top) / rect.height;
  // Rounded as the server keeps them, so the drawer's copy equals everyone else's.
  return [round(Math.min(1, Math.max(0, x))), round(Math.min(1, Math.max(0, y)))];
}

function round(v) {
  return Math.round(v * 100000) / 100000;
}

function newShapeId() {
  counter += 1;
  return `${state.self?.id ?? "me"}-${Date.now().toString(36)}-${counter}`;
}

function start(kind, point, extra = {}) {
  const shape = {
    id: newShapeId(), kind, by: state.self?.id, color: tool.color, width: tool.width,
    points: [...point], text: extra.text ?? "", done: Boolean(extra.done),
  };
  shapes.set(shape.id, shape);
  send("draw", { shapeId: shape.id, kind, color: shape.color, width: shape.width,
    points: point.map(round), text: extra.text, done: shape.done });
  renderWhiteboard();
  return shape;
}

function flush(done = false) {
  frameRequested = false;
  if (!drawing) return;
  if (!pending.length && !done) return;
  const data = { shapeId: drawing.id, points: pending.map(round) };
  if (done) data.done = true;
  pending = [];
  send("draw", data);
}

function scheduleFlush() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(() => flush());
}

function hit(point) {
  // The topmost shape with a point within reach (rectangles and ellipses: their box).
  const reach = 0.02;
  const list = [...shapes.values()].reverse();
  for (const shape of list) {
    const p = shape.points;
    if (shape.kind === "rectangle" || shape.kind === "ellipse" || shape.kind === "line") {
      const [x0, y0, x1, y1] = [p[0], p[1], p[p.length - 2], p[p.length - 1]];
      if (point[0] >= Math.min(x0, x1) - reach && point[0] <= Math.max(x0, x1) + reach &&
          point[1] >= Math.min(y0, y1) - reach && point[1] <= Math.max(y0, y1) + reach) return shape;
      continue;
    }
    for (let i = 0; i < p.length; i += 2) {
      if (Math.abs(p[i] - point[0]) < reach && Math.abs(p[i + 1] - point[1]) < reach) return shape;
    }
  }
  return null;
}

function erase(point) {
  const shape = hit(point);
  if (!shape) return;
  if (!isPresenter() && shape.by !== state.self?.id) return;
  shapes.delete(shape.id);
  renderWhiteboard();
  act("erase", { shapeIds: [shape.id] }, t("act.erase")).catch(() => {});
}

function onPointerDown(event) {
  if (!whiteboardCanDraw() || event.button !== 0) return;
  event.preventDefault();
  const canvas = $("whiteboard");
  const point = pagePoint(event);
  if (tool.kind === "eraser") {
    erase(point);
    canvas.setPointerCapture(event.pointerId);
    drawing = { erasing: true };
    return;
  }
  if (tool.kind === "text") {
    const text = window.prompt(t("wb.textPrompt"));
    if (text && text.trim()) start("text", point, { text: text.trim().slice(0, 500), done: true });
    return;
  }
  canvas.setPointerCapture(event.pointerId);
  drawing = start(tool.kind, point);
  pending = [];
}

function onPointerMove(event) {
  if (!drawing) return;
  const point = pagePoint(event);
  if (drawing.erasing) {
    erase(point);
    return;
  }
  if (drawing.kind === "pen") {
    drawing.points.push(...point);
    pending.push(...point);
  } else {
    // Lines, rectangles and ellipses only need their last corner: send the newest.
    drawing.points.splice(2, Infinity, ...point);
    pending = [...point];
  }
  renderWhiteboard();
  scheduleFlush();
}

function onPointerUp(event) {
  if (!drawing) return;
  if (!drawing.erasing) {
    const point = pagePoint(event);
    if (drawing.kind === "pen") {
      drawing.points.push(...point);
      pending.push(...point);
    } else {
      drawing.points.splice(2, Infinity, ...point);
      pending = [...point];
    }
    drawing.done = true;
    flush(true);
    renderWhiteboard();
  }
  drawing = null;
}

function selectTool(kind) {
  tool.kind = kind;
  for (const button of document.querySelectorAll("#wb-tools [data-tool]")) {
    button.setAttribute("aria-pressed", String(button.dataset.tool === kind));
  }
}

export function initWhiteboard() {
  const canvas = $("whiteboard");
  canvas.addEventListener("pointerdown", onPointerDown);
  canvas.addEventListener("pointermove", onPointerMove);
  canvas.addEventListener("pointerup", onPointerUp);
  canvas.addEventListener("pointercancel", onPointerUp);
  for (const button of document.querySelectorAll("#wb-tools [data-tool]")) {
    button.addEventListener("click", () => selectTool(button.dataset.tool));
  }
  $("wb-color").addEventListener("input", (event) => { tool.color = event.target.value; });
  $("wb-undo").addEventListener("click", () => {
    act("undo", {}, t("act.undo")).then((data) => {
      for (const id of data.removed ?? []) shapes.delete(id);
      renderWhiteboard();
    }, () => {});
  });
  $("wb-clear").addEventListener("click", () => {
    act("clearPage", {}, t("act.clearPage")).then((data) => {
      for (const id of data.removed ?? []) shapes.delete(id);
      renderWhiteboard();
    }, () => {});
  });
  new ResizeObserver(() => renderWhiteboard()).observe(canvas);
  selectTool("pen");

  addHandlers({
    draw(message) {
      const d = message.data ?? {};
      if (d.page !== `${classroom.documentId}/${classroom.page}`) return;
      let shape = shapes.get(d.shapeId);
      if (!shape) {
        if (!d.kind) return;  // the start was missed; the next page load brings it
        shape = { id: d.shapeId, kind: d.kind, by: d.by, color: d.color, width: d.width, points: [], text: "", done: false };
        shapes.set(shape.id, shape);
      }
      shape.points.length = Math.min(shape.points.length, d.from ?? shape.points.length);
      shape.points.push(...(d.points ?? []));
      if (d.text !== undefined) shape.text = d.text;
      shape.done = Boolean(d.done);
      renderWhiteboard();
    },
    shapesRemoved(message) {
      const d = message.data ?? {};
      if (d.page !== `${classroom.documentId}/${classroom.page}`) return;
      for (const id of d.ids ?? []) shapes.delete(id);
      renderWhiteboard();
    },
    error(message) {
      // Strokes are sent without ids: their refusals arrive here (at most one notice
      // every few seconds, a refused stream would otherwise flood the page).
      if (message.request === "draw" && message.id === undefined && Date.now() - lastDrawNotice > 5000) {
        lastDrawNotice = Date.now();
        notify(t("wb.drawFailed", { message: message.message }), { timeout: 4000 });
      }
    },
  });
}
