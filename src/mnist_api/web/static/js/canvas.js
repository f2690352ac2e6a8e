// The drawing pad: draw a digit with a mouse, pen or finger (pointer events, one pointer at a
// time), clear it, and send it for recognition as a PNG.
import { byId } from "./dom.js";
import { announce, clearAlert, reportError, showAlert } from "./messages.js";
import { isBusy, submit } from "./predict.js";

const INK = "#111827";
const PAPER = "#ffffff";
const NOTHING_DRAWN = "nothing-drawn"; // the kind of alert that drawing takes back

const pad = byId("pad");
const placeholder = byId("pad-placeholder");
const clearButton = byId("clear");
const recogniseButton = byId("recognise");
const ctx = pad.getContext("2d");

let drawing = null; // { id, x, y } of the active pointer
let hasInk = false;

/** Blank paper, and the pen set up again. */
export function resetPad() {
  ctx.save();
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = PAPER;
  ctx.fillRect(0, 0, pad.width, pad.height);
  ctx.restore();
  ctx.strokeStyle = INK;
  ctx.fillStyle = INK;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = pad.width / 14; // like a pen on paper of this size
  hasInk = false;
  placeholder.hidden = false;
}

/** Where a pointer event is, in the canvas's own pixels (it is shown scaled). */
function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) / box.width) * pad.width,
    y: ((event.clientY - box.top) / box.height) * pad.height,
  };
}

function dot({ x, y }) {
  ctx.beginPath();
  ctx.arc(x, y, ctx.lineWidth / 2, 0, Math.PI * 2);
  ctx.fill();
}

// A stroke is one path, re-stroked as it grows: no seams where short segments would meet.
function startPath({ x, y }) {
  ctx.beginPath();
  ctx.moveTo(x, y);
}

function onPointerDown(event) {
  if (event.pointerType === "mouse" && event.button !== 0) return;
  if (drawing) return; // one pointer at a time
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  const point = padPoint(event);
  drawing = { id: event.pointerId, ...point };
  dot(point);
  startPath(point);
  hasInk = true;
  clearAlert(NOTHING_DRAWN);
  placeholder.hidden = true;
}

function onPointerMove(event) {
  if (!drawing || event.pointerId !== drawing.id) return;
  event.preventDefault();
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const each of events.length ? events : [event]) {
    const point = padPoint(each);
    ctx.lineTo(point.x, point.y);
    drawing.x = point.x;
    drawing.y = point.y;
  }
  ctx.stroke();
}

function endStroke(event) {
  if (!drawing || event.pointerId !== drawing.id) return;
  drawing = null;
  if (pad.hasPointerCapture(event.pointerId)) pad.releasePointerCapture(event.pointerId);
}

function onLostPointerCapture(event) {
  if (drawing && event.pointerId === drawing.id) drawing = null;
}

/** The drawing as a PNG file. */
function padBlob() {
  return new Promise((resolve, reject) => {
    pad.toBlob(
      (blob) => (blob ? resolve(blob) : reject(new Error("cannot read the drawing"))),
      "image/png",
    );
  });
}

async function onRecognise() {
  if (isBusy()) return;
  if (!hasInk) {
    showAlert(
      "Nothing to recognise",
      "Draw a digit in the box first, or upload an image.",
      NOTHING_DRAWN,
    );
    return;
  }
  let blob;
  try {
    blob = await padBlob();
  } catch (error) {
    reportError(error);
    return;
  }
  await submit(blob, "drawing.png", recogniseButton);
}

/** Wires up the pad and its Clear and Recognise buttons. */
export function initDrawing() {
  pad.addEventListener("pointerdown", onPointerDown);
  pad.addEventListener("pointermove", onPointerMove);
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);
  pad.addEventListener("lostpointercapture", onLostPointerCapture);
  pad.addEventListener("contextmenu", (event) => event.preventDefault());
  clearButton.addEventListener("click", () => {
    resetPad();
    announce("Drawing cleared.");
  });
  recogniseButton.addEventListener("click", onRecognise);
}
