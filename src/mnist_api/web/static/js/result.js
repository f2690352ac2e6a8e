// The result panel: the predicted digit, how confident the model is, the 28 x 28 image it saw
// and a bar for the probability of each digit.
import { inputUrl } from "./api.js";
import { byId, createElement, reveal } from "./dom.js";
import { percent, verdictWords } from "./format.js";
import { forgetImage, showImage } from "./images.js";

const resultPanel = byId("result");
const resultBody = byId("result-body");
const resultEmpty = byId("result-empty");
const resultDigit = byId("result-digit");
const resultConfidence = byId("result-confidence");
const resultInput = byId("result-input");
const resultModel = byId("result-model");
const resultVerdict = byId("result-verdict");
const bars = byId("bars");

/** One bar: the digit, a track filled as far as its probability, and the percentage. */
function bar(digit, p, winner) {
  const li = createElement("li", "bar");
  li.dataset.digit = String(digit);
  li.setAttribute("aria-label", `${digit}: ${percent(p)}`);
  if (winner) {
    li.classList.add("is-winner");
    li.setAttribute("aria-current", "true");
  }
  const label = createElement("span", "bar-label", String(digit));
  label.setAttribute("aria-hidden", "true");
  const track = createElement("span", "bar-track");
  track.setAttribute("aria-hidden", "true");
  const fill = createElement("span", "bar-fill");
  fill.style.width = `${Math.max(0, Math.min(100, p * 100)).toFixed(2)}%`;
  track.append(fill);
  const shown = createElement("span", "bar-value", percent(p));
  shown.setAttribute("aria-hidden", "true");
  li.append(label, track, shown);
  return li;
}

/** Shows a prediction of the API in the result panel. */
export function showResult(prediction) {
  resultPanel.dataset.predictionId = prediction.id;
  resultEmpty.hidden = true;
  resultBody.hidden = false;
  resultDigit.textContent = String(prediction.digit);
  resultConfidence.textContent = percent(prediction.confidence);
  const words = verdictWords(prediction);
  resultVerdict.dataset.verdict = prediction.verdict;
  resultVerdict.querySelector(".verdict-title").textContent = words.title;
  resultVerdict.querySelector(".verdict-text").textContent = words.text;
  showImage(resultInput, inputUrl(prediction.id));
  resultInput.alt = "The 28 by 28 pixel image the model saw for this prediction";
  resultModel.textContent = `Model ${prediction.model_version}`;
  bars.replaceChildren(
    ...prediction.probabilities.map((p, digit) => bar(digit, p, digit === prediction.digit)),
  );
}

/** Empties the result panel (another key, or none, is in use now). */
export function clearResult() {
  delete resultPanel.dataset.predictionId;
  forgetImage(resultInput);
  resultInput.alt = "";
  resultDigit.textContent = "";
  resultConfidence.textContent = "";
  resultVerdict.dataset.verdict = "";
  resultVerdict.querySelector(".verdict-title").textContent = "";
  resultVerdict.querySelector(".verdict-text").textContent = "";
  resultModel.textContent = "";
  bars.replaceChildren();
  resultBody.hidden = true;
  resultEmpty.hidden = false;
}

/** Marks the result panel busy while a prediction is under way. */
export function setResultBusy(on) {
  resultBody.setAttribute("aria-busy", on ? "true" : "false");
  resultPanel.classList.toggle("is-busy", on);
}

/** Brings the result panel into view if it is off screen (on a phone it is below the pad). */
export function revealResult() {
  reveal(resultPanel);
}
