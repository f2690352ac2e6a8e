// The Review view: the caller's uploads that most need a person (GET /v1/review, least
// confident first), one at a time, labelled from the keyboard: a digit key for the right digit,
// N for "not a digit", S to skip. A label takes the item off the queue for good.
import {
  currentSession,
  imageUrl,
  inputUrl,
  KeyRejected,
  labelNotADigit,
  labelPrediction,
  listReview,
} from "./api.js";
import { byId, createElement } from "./dom.js";
import { percent, sentence, verdictWords } from "./format.js";
import { updateInHistory } from "./history.js";
import { forgetImage, showImage } from "./images.js";
import { announce, describe, reportError } from "./messages.js";

const start = byId("review-start");
const empty = byId("review-empty");
const itemBox = byId("review-item");
const image = byId("review-image");
const digitText = byId("review-digit");
const confidenceText = byId("review-confidence");
const verdictBadge = byId("review-verdict");
const buttonsBox = byId("review-buttons");
const progress = byId("review-progress");
const errorText = byId("review-error");

let queue = []; // predictions fetched and not yet shown
let cursor = null;
let exhausted = false;
let current = null;
let labelled = 0;
let busy = false;
const seen = new Set(); // ids shown in this round (a skipped one is not shown again)

function button(text, answer, name) {
  const element = createElement("button", "digit-button", text);
  element.type = "button";
  element.dataset.answer = answer;
  element.setAttribute("aria-label", name);
  return element;
}

function buildButtons() {
  const buttons = [];
  for (let digit = 0; digit <= 9; digit += 1) {
    buttons.push(button(String(digit), String(digit), `Label as ${digit}`));
  }
  buttons.push(button("Not a digit", "none", "Not a digit (N)"));
  buttons.push(button("Skip", "skip", "Skip (S)"));
  buttonsBox.replaceChildren(...buttons);
}

async function fetchMore() {
  const session = currentSession();
  const page = await listReview(cursor);
  if (currentSession() !== session) return false;
  for (const prediction of page.items) {
    if (!seen.has(prediction.id)) queue.push(prediction);
  }
  cursor = page.next_cursor;
  exhausted = !cursor;
  return true;
}

function render(prediction) {
  current = prediction;
  seen.add(prediction.id);
  itemBox.dataset.id = prediction.id;
  digitText.textContent = String(prediction.digit);
  confidenceText.textContent = percent(prediction.confidence);
  verdictBadge.dataset.verdict = prediction.verdict;
  verdictBadge.textContent = verdictWords(prediction).title.toLowerCase();
  image.alt = `Upload the model read as ${prediction.digit}, ${percent(prediction.confidence)} sure`;
  image.dataset.fallback = "";
  showImage(image, imageUrl(prediction.id));
  progress.textContent = labelled === 0 ? "" : `${labelled} labelled in this round.`;
  errorText.hidden = true;
  itemBox.hidden = false;
  empty.hidden = true;
}

async function showNext() {
  try {
    if (!queue.length && !exhausted) {
      if (!(await fetchMore())) return;
    }
  } catch (error) {
    reportError(error);
    return;
  }
  const next = queue.shift();
  if (!next) {
    current = null;
    itemBox.hidden = true;
    forgetImage(image);
    empty.hidden = false;
    empty.textContent =
      labelled === 0 ? "Nothing to review." : `Nothing more to review: ${labelled} labelled.`;
    announce(empty.textContent);
    start.hidden = false;
    start.textContent = "Look again";
    return;
  }
  render(next);
  itemBox.focus();
}

async function answer(choice) {
  if (!current || busy) return;
  if (choice === "skip") {
    announce("Skipped.");
    await showNext();
    return;
  }
  busy = true;
  itemBox.classList.add("is-busy");
  const target = current;
  try {
    const updated =
      choice === "none"
        ? await labelNotADigit(target.id)
        : await labelPrediction(target.id, Number(choice));
    labelled += 1;
    updateInHistory(updated);
    announce(choice === "none" ? "Labelled not a digit." : `Labelled ${choice}.`);
    await showNext();
  } catch (error) {
    if (error instanceof KeyRejected) return;
    const { heading, detail } = describe(error);
    errorText.textContent = `Label not saved. ${sentence(heading)} ${detail}`.trim();
    errorText.hidden = false;
  } finally {
    busy = false;
    itemBox.classList.remove("is-busy");
  }
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || !current) return;
  const key = event.key.toLowerCase();
  let choice = null;
  if (/^[0-9]$/.test(key)) choice = key;
  else if (key === "n") choice = "none";
  else if (key === "s") choice = "skip";
  if (choice === null) return;
  event.preventDefault();
  answer(choice);
}

/** Starts a round: the queue from its start, nothing seen yet. */
async function begin() {
  queue = [];
  cursor = null;
  exhausted = false;
  labelled = 0;
  seen.clear();
  start.hidden = true;
  await showNext();
}

/** An original browsers cannot show (TIFF): the 28 x 28 image the model saw instead, once. */
function onImageError() {
  if (!current || image.dataset.fallback === current.id) return;
  image.dataset.fallback = current.id;
  showImage(image, inputUrl(current.id));
}

export function initReview() {
  buildButtons();
  image.addEventListener("error", onImageError);
  start.addEventListener("click", begin);
  buttonsBox.addEventListener("click", (event) => {
    const target = event.target.closest("button[data-answer]");
    if (target) answer(target.dataset.answer);
  });
  itemBox.addEventListener("keydown", onKey);
}

/** Empties the view (another key, or none, is in use now). */
export function resetReview() {
  queue = [];
  cursor = null;
  exhausted = false;
  current = null;
  labelled = 0;
  seen.clear();
  forgetImage(image);
  itemBox.hidden = true;
  empty.hidden = true;
  start.hidden = false;
  start.textContent = "Start reviewing";
}
