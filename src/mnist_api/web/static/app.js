// The web page of the digit-recognition service: draw or upload a digit, see the prediction,
// browse and correct the history. Plain JavaScript; it only talks to the public /v1 API.
"use strict";

(() => {
  const API = "/v1/predictions";
  const PAGE_SIZE = 10;
  const INK = "#111827";
  const PAPER = "#ffffff";

  const $ = (id) => document.getElementById(id);
  const els = {
    alert: $("alert"),
    status: $("status"),
    pad: $("pad"),
    padPlaceholder: $("pad-placeholder"),
    clear: $("clear"),
    recognise: $("recognise"),
    dropzone: $("dropzone"),
    dropzoneFile: $("dropzone-file"),
    fileInput: $("file-input"),
    result: $("result"),
    resultEmpty: $("result-empty"),
    resultBody: $("result-body"),
    resultDigit: $("result-digit"),
    resultConfidence: $("result-confidence"),
    resultInput: $("result-input"),
    resultModel: $("result-model"),
    bars: $("bars"),
    history: $("history"),
    historyEmpty: $("history-empty"),
    loadMore: $("load-more"),
    itemTemplate: $("history-item"),
  };

  // ---------------------------------------------------------------- formatting

  const percent = (p) => `${(p * 100).toFixed(1)}%`;
  const sameDay = (a, b) => a.toDateString() === b.toDateString();
  const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
  const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
    dateStyle: "medium",
    timeStyle: "short",
  });
  const fullFormat = new Intl.DateTimeFormat(undefined, {
    dateStyle: "full",
    timeStyle: "medium",
  });

  function formatTime(iso) {
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) return { short: iso, full: iso };
    const short = sameDay(when, new Date()) ? timeFormat.format(when) : dateTimeFormat.format(when);
    return { short, full: fullFormat.format(when) };
  }

  function sentence(text) {
    const trimmed = String(text || "").trim();
    if (!trimmed) return "";
    const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
    return /[.!?]$/.test(capital) ? capital : `${capital}.`;
  }

  // ---------------------------------------------------------------- messages

  function announce(text) {
    // Re-setting the text makes screen readers announce repeated messages too.
    els.status.textContent = "";
    window.setTimeout(() => {
      els.status.textContent = text;
    }, 50);
  }

  function showAlert(heading, detail) {
    delete els.alert.dataset.kind;
    els.alert.replaceChildren();
    const strong = document.createElement("strong");
    strong.className = "alert-title";
    strong.textContent = heading;
    els.alert.append(strong);
    if (detail) {
      const p = document.createElement("span");
      p.className = "alert-detail";
      p.textContent = detail;
      els.alert.append(" ", p);
    }
    els.alert.hidden = false;
    reveal(els.alert);
  }

  /** Scrolls an element into view if it is off screen (on a phone the result is below). */
  function reveal(element) {
    const box = element.getBoundingClientRect();
    const height = window.innerHeight || document.documentElement.clientHeight;
    if (box.top >= 0 && box.top < height - 48) return;
    const calm = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    element.scrollIntoView({ behavior: calm ? "auto" : "smooth", block: "start" });
  }

  function clearAlert() {
    delete els.alert.dataset.kind;
    els.alert.hidden = true;
    els.alert.replaceChildren();
  }

  /** An error from the API (a problem-details body) or from the network. */
  class ApiProblem extends Error {
    constructor(status, problem, retryAfter) {
      super(problem.detail || problem.title || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
      this.retryAfter = retryAfter;
    }
  }

  class NetworkProblem extends Error {}

  function describe(error) {
    if (error instanceof NetworkProblem) {
      return {
        heading: "Cannot reach the service",
        detail: "Check your connection and try again.",
      };
    }
    if (!(error instanceof ApiProblem)) {
      return { heading: "Something went wrong", detail: sentence(error && error.message) };
    }
    const { status, problem } = error;
    const type = String(problem.type || "");
    const detail = sentence(problem.detail);
    if (status === 413) {
      return { heading: "File too large", detail: detail || sentence(problem.title) };
    }
    if (status === 415 || type.endsWith("/invalid-image") || type.endsWith("/empty-file")) {
      return { heading: "Not an image we can read", detail: detail || sentence(problem.title) };
    }
    if (status === 503) {
      const seconds = error.retryAfter;
      const heading = seconds
        ? `Service busy — try again in ${seconds} s`
        : "Service busy — try again in a moment";
      return { heading, detail };
    }
    if (status === 404) {
      return { heading: problem.title || "Not found", detail };
    }
    return { heading: problem.title || `Error ${status}`, detail };
  }

  function reportError(error) {
    const { heading, detail } = describe(error);
    showAlert(heading, detail);
  }

  // ---------------------------------------------------------------- API calls

  function retryAfterSeconds(response) {
    const value = response.headers.get("Retry-After");
    if (!value) return null;
    if (/^\d+$/.test(value.trim())) return Number(value.trim());
    const when = Date.parse(value);
    if (Number.isNaN(when)) return null;
    return Math.max(1, Math.ceil((when - Date.now()) / 1000));
  }

  async function request(url, options = {}) {
    let response;
    try {
      response = await fetch(url, {
        ...options,
        headers: { Accept: "application/json", ...(options.headers || {}) },
      });
    } catch (cause) {
      throw new NetworkProblem(String(cause));
    }
    const type = response.headers.get("Content-Type") || "";
    let body = null;
    if (type.includes("json")) {
      try {
        body = await response.json();
      } catch {
        body = null;
      }
    }
    if (!response.ok) {
      const problem =
        body && typeof body === "object"
          ? body
          : { title: response.statusText || `Error ${response.status}`, detail: "" };
      throw new ApiProblem(response.status, problem, retryAfterSeconds(response));
    }
    return body;
  }

  const api = {
    predict(blob, filename) {
      const form = new FormData();
      form.append("file", blob, filename);
      return request(API, { method: "POST", body: form });
    },
    list(cursor) {
      const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (cursor) params.set("cursor", cursor);
      return request(`${API}?${params}`);
    },
    label(id, label) {
      return request(`${API}/${encodeURIComponent(id)}/label`, {
        method: "PUT",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ label }),
      });
    },
    imageUrl: (id) => `${API}/${encodeURIComponent(id)}/image`,
    inputUrl: (id) => `${API}/${encodeURIComponent(id)}/input.png`,
  };

  // ---------------------------------------------------------------- drawing pad

  const pad = els.pad;
  const ctx = pad.getContext("2d");
  let drawing = null; // { id, x, y } of the active pointer
  let hasInk = false;

  function resetPad() {
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
    els.padPlaceholder.hidden = false;
  }

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

  pad.addEventListener("pointerdown", (event) => {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    if (drawing) return; // one pointer at a time
    event.preventDefault();
    pad.setPointerCapture(event.pointerId);
    const point = padPoint(event);
    drawing = { id: event.pointerId, ...point };
    dot(point);
    startPath(point);
    hasInk = true;
    if (els.alert.dataset.kind === "nothing-drawn") clearAlert();
    els.padPlaceholder.hidden = true;
  });

  pad.addEventListener("pointermove", (event) => {
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
  });

  function endStroke(event) {
    if (!drawing || event.pointerId !== drawing.id) return;
    drawing = null;
    if (pad.hasPointerCapture(event.pointerId)) pad.releasePointerCapture(event.pointerId);
  }

  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);
  pad.addEventListener("lostpointercapture", (event) => {
    if (drawing && event.pointerId === drawing.id) drawing = null;
  });
  pad.addEventListener("contextmenu", (event) => event.preventDefault());

  els.clear.addEventListener("click", () => {
    resetPad();
    announce("Drawing cleared.");
  });

  function padBlob() {
    return new Promise((resolve, reject) => {
      pad.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("cannot read the drawing"))),
        "image/png");
    });
  }

  els.recognise.addEventListener("click", async () => {
    if (busy) return;
    if (!hasInk) {
      showAlert("Nothing to recognise", "Draw a digit in the box first, or upload an image.");
      els.alert.dataset.kind = "nothing-drawn";
      return;
    }
    let blob;
    try {
      blob = await padBlob();
    } catch (error) {
      reportError(error);
      return;
    }
    await submit(blob, "drawing.png", els.recognise);
  });

  // ---------------------------------------------------------------- upload

  function openPicker() {
    if (busy) return;
    els.fileInput.value = "";
    els.fileInput.click();
  }

  els.dropzone.addEventListener("click", openPicker);
  els.dropzone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      openPicker();
    }
  });

  els.fileInput.addEventListener("change", () => {
    const file = els.fileInput.files && els.fileInput.files[0];
    if (file) uploadFile(file);
  });

  let dragDepth = 0;
  els.dropzone.addEventListener("dragenter", (event) => {
    event.preventDefault();
    dragDepth += 1;
    els.dropzone.classList.add("is-dragover");
  });
  els.dropzone.addEventListener("dragover", (event) => {
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
  });
  els.dropzone.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) els.dropzone.classList.remove("is-dragover");
  });
  els.dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dragDepth = 0;
    els.dropzone.classList.remove("is-dragover");
    const files = event.dataTransfer ? event.dataTransfer.files : null;
    if (!files || files.length === 0) {
      showAlert("Nothing dropped", "Drop an image file, such as a PNG or JPEG.");
      return;
    }
    uploadFile(files[0]);
  });
  // A file dropped beside the drop zone must not make the browser navigate away.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  function uploadFile(file) {
    if (busy) return;
    els.dropzoneFile.textContent = file.name ? `Sent: ${file.name}` : "";
    submit(file, file.name || "upload", els.dropzone);
  }

  // ---------------------------------------------------------------- prediction

  let busy = false;

  /** One prediction at a time: while one is under way both ways in say so and wait. */
  function setBusy(on) {
    busy = on;
    for (const element of [els.recognise, els.dropzone]) {
      if (on) element.setAttribute("aria-disabled", "true");
      else element.removeAttribute("aria-disabled");
    }
    els.resultBody.setAttribute("aria-busy", on ? "true" : "false");
    els.result.classList.toggle("is-busy", on);
  }

  async function submit(blob, filename, control) {
    if (busy) return;
    setBusy(true);
    clearAlert();
    const oldText = control === els.recognise ? control.textContent : null;
    if (oldText) control.textContent = "Recognising…";
    try {
      const prediction = await api.predict(blob, filename);
      showResult(prediction);
      addToHistoryTop(prediction);
      reveal(els.result);
      announce(`Recognised ${prediction.digit}, ${percent(prediction.confidence)} confident.`);
    } catch (error) {
      reportError(error);
    } finally {
      if (oldText) control.textContent = oldText;
      setBusy(false);
    }
  }

  function showResult(prediction) {
    els.result.dataset.predictionId = prediction.id;
    els.resultEmpty.hidden = true;
    els.resultBody.hidden = false;
    els.resultDigit.textContent = String(prediction.digit);
    els.resultConfidence.textContent = percent(prediction.confidence);
    els.resultInput.src = api.inputUrl(prediction.id);
    els.resultInput.alt = `The 28 by 28 pixel image the model saw for this prediction`;
    els.resultModel.textContent = `Model ${prediction.model_version}`;

    const items = prediction.probabilities.map((p, digit) => {
      const li = document.createElement("li");
      li.className = "bar";
      li.dataset.digit = String(digit);
      li.setAttribute("aria-label", `${digit}: ${percent(p)}`);
      if (digit === prediction.digit) {
        li.classList.add("is-winner");
        li.setAttribute("aria-current", "true");
      }
      const label = document.createElement("span");
      label.className = "bar-label";
      label.setAttribute("aria-hidden", "true");
      label.textContent = String(digit);
      const track = document.createElement("span");
      track.className = "bar-track";
      track.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.className = "bar-fill";
      fill.style.width = `${Math.max(0, Math.min(100, p * 100)).toFixed(2)}%`;
      track.append(fill);
      const value = document.createElement("span");
      value.className = "bar-value";
      value.setAttribute("aria-hidden", "true");
      value.textContent = percent(p);
      li.append(label, track, value);
      return li;
    });
    els.bars.replaceChildren(...items);
  }

  // ---------------------------------------------------------------- history

  const known = new Map(); // id -> <li>
  let nextCursor = null;

  function renderItem(prediction, li) {
    const item = li || els.itemTemplate.content.firstElementChild.cloneNode(true);
    item.dataset.id = prediction.id;
    item.dataset.digit = String(prediction.digit);
    item.dataset.label = prediction.label === null || prediction.label === undefined
      ? "" : String(prediction.label);
    item.classList.toggle("is-labelled", item.dataset.label !== "");
    item.classList.toggle(
      "is-corrected",
      item.dataset.label !== "" && Number(item.dataset.label) !== prediction.digit,
    );

    const thumb = item.querySelector(".thumb");
    if (!li) {
      thumb.src = api.imageUrl(prediction.id);
      // The original may be in a format browsers do not show (TIFF): fall back to the 28x28.
      thumb.addEventListener(
        "error",
        () => {
          thumb.src = api.inputUrl(prediction.id);
          thumb.classList.add("is-input");
        },
        { once: true },
      );
    }
    thumb.alt = `Image recognised as ${prediction.digit}`;

    item.querySelector(".history-digit-value").textContent = String(prediction.digit);
    item.querySelector(".history-confidence").textContent =
      `${percent(prediction.confidence)} confident`;

    const badge = item.querySelector(".badge");
    if (item.dataset.label !== "") {
      badge.hidden = false;
      badge.textContent = `labelled ${prediction.label}`;
      badge.classList.toggle("badge-corrected", item.classList.contains("is-corrected"));
    } else {
      badge.hidden = true;
      badge.textContent = "";
    }

    const time = item.querySelector("time");
    const when = formatTime(prediction.created_at);
    time.dateTime = prediction.created_at;
    time.textContent = when.short;
    time.title = when.full;

    const group = item.querySelector(".correct");
    group.setAttribute(
      "aria-label", `Correct digit for the ${prediction.digit} recognised at ${when.short}`);
    const buttons = group.querySelector(".correct-buttons");
    if (!buttons.children.length) {
      for (let digit = 0; digit <= 9; digit += 1) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "digit-button";
        button.textContent = String(digit);
        button.dataset.digit = String(digit);
        button.setAttribute("aria-label", `Label as ${digit}`);
        buttons.append(button);
      }
    }
    const current = item.dataset.label !== "" ? Number(item.dataset.label) : prediction.digit;
    for (const button of buttons.children) {
      const digit = Number(button.dataset.digit);
      const pressed = item.dataset.label !== "" && digit === Number(item.dataset.label);
      button.setAttribute("aria-pressed", pressed ? "true" : "false");
      button.classList.toggle("is-predicted", digit === prediction.digit);
      // Roving tabindex: one Tab stop per item; arrow keys move between the digits.
      button.tabIndex = digit === current ? 0 : -1;
    }
    return item;
  }

  function addToHistoryTop(prediction) {
    const existing = known.get(prediction.id);
    if (existing) {
      renderItem(prediction, existing);
      els.history.prepend(existing);
    } else {
      const li = renderItem(prediction);
      known.set(prediction.id, li);
      els.history.prepend(li);
    }
    els.historyEmpty.hidden = true;
  }

  function appendPage(page) {
    for (const prediction of page.items) {
      if (known.has(prediction.id)) continue;
      const li = renderItem(prediction);
      known.set(prediction.id, li);
      els.history.append(li);
    }
    nextCursor = page.next_cursor;
    els.loadMore.hidden = !nextCursor;
    els.historyEmpty.hidden = known.size > 0;
  }

  async function loadHistory() {
    els.loadMore.disabled = true;
    try {
      const page = await api.list(nextCursor);
      appendPage(page);
      return page;
    } catch (error) {
      reportError(error);
      return null;
    } finally {
      els.loadMore.disabled = false;
    }
  }

  els.loadMore.addEventListener("click", async () => {
    const before = els.history.children.length;
    const page = await loadHistory();
    if (!page) return;
    const added = els.history.children.length - before;
    announce(`${added} more prediction${added === 1 ? "" : "s"} loaded.`);
    // Keep keyboard users in place: focus the first new item's correction group.
    const first = els.history.children[before];
    if (first && els.loadMore.hidden) {
      const target = first.querySelector('.digit-button[tabindex="0"]');
      if (target) target.focus();
    }
  });

  els.history.addEventListener("click", async (event) => {
    const button = event.target.closest(".digit-button");
    if (!button) return;
    const item = button.closest(".history-item");
    const digit = Number(button.dataset.digit);
    const buttons = item.querySelectorAll(".digit-button");
    buttons.forEach((b) => {
      b.disabled = true;
    });
    item.classList.add("is-busy");
    const itemError = item.querySelector(".item-error");
    itemError.hidden = true;
    try {
      const updated = await api.label(item.dataset.id, digit);
      renderItem(updated, item);
      announce(`Prediction labelled ${digit}.`);
    } catch (error) {
      const { heading, detail } = describe(error);
      itemError.textContent = `Correction not saved. ${sentence(heading)} ${detail}`.trim();
      itemError.hidden = false;
    } finally {
      buttons.forEach((b) => {
        b.disabled = false;
      });
      item.classList.remove("is-busy");
      if (document.activeElement === document.body) button.focus();
    }
  });

  els.history.addEventListener("keydown", (event) => {
    const button = event.target.closest && event.target.closest(".digit-button");
    if (!button) return;
    const all = [...button.parentElement.children];
    const index = all.indexOf(button);
    let next = null;
    if (event.key === "ArrowRight" || event.key === "ArrowDown") next = all[(index + 1) % 10];
    else if (event.key === "ArrowLeft" || event.key === "ArrowUp") next = all[(index + 9) % 10];
    else if (event.key === "Home") next = all[0];
    else if (event.key === "End") next = all[9];
    if (!next) return;
    event.preventDefault();
    all.forEach((b) => {
      b.tabIndex = b === next ? 0 : -1;
    });
    next.focus();
  });

  // ---------------------------------------------------------------- start

  resetPad();
  loadHistory();
})();
