// The history of recent predictions, newest first: a page at a time ("Load more"), and a row of
// digit buttons on each item to record the right digit (one Tab stop; arrow keys move).
import {
  currentSession,
  imageUrl,
  inputUrl,
  KeyRejected,
  labelPrediction,
  listPredictions,
} from "./api.js";
import { byId, createElement } from "./dom.js";
import { formatTime, percent, sentence, verdictWords } from "./format.js";
import { forgetImage, showImage } from "./images.js";
import { announce, describe, reportError } from "./messages.js";

const list = byId("history");
const empty = byId("history-empty");
const loadMore = byId("load-more");
const template = byId("history-item");

const known = new Map(); // id -> <li>
let nextCursor = null;

/** The ten "Label as N" buttons of an item. */
function digitButtons() {
  const buttons = [];
  for (let digit = 0; digit <= 9; digit += 1) {
    const button = createElement("button", "digit-button", String(digit));
    button.type = "button";
    button.dataset.digit = String(digit);
    button.setAttribute("aria-label", `Label as ${digit}`);
    buttons.push(button);
  }
  return buttons;
}

/** Fills a history item with a prediction: a new one from the template, or `li` again. */
function renderItem(prediction, li) {
  const item = li || template.content.firstElementChild.cloneNode(true);
  item.dataset.id = prediction.id;
  item.dataset.digit = String(prediction.digit);
  item.dataset.label = prediction.labeled_not_a_digit ? "none" : String(prediction.label ?? "");
  const labelled = item.dataset.label !== "";
  const label = Number(item.dataset.label);
  item.classList.toggle("is-labelled", labelled);
  item.classList.toggle("is-corrected", labelled && label !== prediction.digit);

  const thumb = item.querySelector(".thumb");
  if (!li) {
    // The original may be in a format browsers do not show (TIFF): fall back to the 28x28.
    thumb.addEventListener(
      "error",
      () => {
        thumb.classList.add("is-input");
        showImage(thumb, inputUrl(prediction.id));
      },
      { once: true },
    );
    showImage(thumb, imageUrl(prediction.id), { lazy: true });
  }
  thumb.alt = `Image recognised as ${prediction.digit}`;

  item.querySelector(".history-digit-value").textContent = String(prediction.digit);
  item.querySelector(".history-confidence").textContent =
    `${percent(prediction.confidence)} confident`;

  const flag = item.querySelector(".badge-verdict");
  flag.hidden = prediction.verdict === "digit";
  flag.textContent = flag.hidden ? "" : verdictWords(prediction).title.toLowerCase();
  flag.dataset.verdict = prediction.verdict;

  const badge = item.querySelector(".badge-label");
  if (labelled) {
    badge.hidden = false;
    badge.textContent = prediction.labeled_not_a_digit
      ? "labelled not a digit"
      : `labelled ${prediction.label}`;
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
    "aria-label",
    `Correct digit for the ${prediction.digit} recognised at ${when.short}`,
  );
  const buttons = group.querySelector(".correct-buttons");
  if (!buttons.children.length) buttons.append(...digitButtons());
  const current = labelled ? label : prediction.digit;
  for (const button of buttons.children) {
    const digit = Number(button.dataset.digit);
    button.setAttribute("aria-pressed", labelled && digit === label ? "true" : "false");
    button.classList.toggle("is-predicted", digit === prediction.digit);
    // Roving tabindex: one Tab stop per item; arrow keys move between the digits.
    button.tabIndex = digit === current ? 0 : -1;
  }
  return item;
}

/** Shows a changed prediction where it is in the history, if it is there. */
export function updateInHistory(prediction) {
  const existing = known.get(prediction.id);
  if (existing) renderItem(prediction, existing);
}

/** Puts a new (or updated) prediction at the top of the history. */
export function addToHistoryTop(prediction) {
  const existing = known.get(prediction.id);
  if (existing) {
    renderItem(prediction, existing);
    list.prepend(existing);
  } else {
    const li = renderItem(prediction);
    known.set(prediction.id, li);
    list.prepend(li);
  }
  empty.hidden = true;
}

function appendPage(page) {
  for (const prediction of page.items) {
    if (known.has(prediction.id)) continue;
    const li = renderItem(prediction);
    known.set(prediction.id, li);
    list.append(li);
  }
  nextCursor = page.next_cursor;
  loadMore.hidden = !nextCursor;
  empty.hidden = known.size > 0;
}

/** Loads the next page of the history (the first one on the first call). */
export async function loadHistory() {
  const session = currentSession();
  loadMore.disabled = true;
  try {
    const page = await listPredictions(nextCursor);
    if (currentSession() !== session) return null; // another key's page: not shown
    appendPage(page);
    return page;
  } catch (error) {
    if (currentSession() === session) reportError(error);
    return null;
  } finally {
    loadMore.disabled = false;
  }
}

/** Empties the history (another key, or none, is in use now). */
export function resetHistory() {
  for (const item of known.values()) forgetImage(item.querySelector(".thumb"));
  known.clear();
  list.replaceChildren();
  nextCursor = null;
  loadMore.hidden = true;
  empty.hidden = true;
}

async function onLoadMore() {
  const before = list.children.length;
  const page = await loadHistory();
  if (!page) return;
  const added = list.children.length - before;
  announce(`${added} more prediction${added === 1 ? "" : "s"} loaded.`);
  // Keep keyboard users in place: focus the first new item's correction group.
  const first = list.children[before];
  if (first && loadMore.hidden) {
    const target = first.querySelector('.digit-button[tabindex="0"]');
    if (target) target.focus();
  }
}

function setButtonsDisabled(buttons, disabled) {
  for (const button of buttons) button.disabled = disabled;
}

/** A click on a digit button of an item records that digit as the item's label. */
async function onCorrect(event) {
  const button = event.target.closest(".digit-button");
  if (!button) return;
  const item = button.closest(".history-item");
  const digit = Number(button.dataset.digit);
  const buttons = item.querySelectorAll(".digit-button");
  setButtonsDisabled(buttons, true);
  item.classList.add("is-busy");
  const itemError = item.querySelector(".item-error");
  itemError.hidden = true;
  try {
    const updated = await labelPrediction(item.dataset.id, digit);
    if (known.get(updated.id) !== item) return; // the history was emptied meanwhile
    renderItem(updated, item);
    announce(`Prediction labelled ${digit}.`);
  } catch (error) {
    if (error instanceof KeyRejected) return; // the page asks for a key instead
    const { heading, detail } = describe(error);
    itemError.textContent = `Correction not saved. ${sentence(heading)} ${detail}`.trim();
    itemError.hidden = false;
  } finally {
    setButtonsDisabled(buttons, false);
    item.classList.remove("is-busy");
    if (document.activeElement === document.body) button.focus();
  }
}

/** Arrow keys, Home and End move the focus among an item's digit buttons. */
function onDigitKey(event) {
  const button = event.target.closest?.(".digit-button");
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
  for (const each of all) each.tabIndex = each === next ? 0 : -1;
  next.focus();
}

/** Wires up Load more and the corrections. */
export function initHistory() {
  loadMore.addEventListener("click", onLoadMore);
  list.addEventListener("click", onCorrect);
  list.addEventListener("keydown", onDigitKey);
}
