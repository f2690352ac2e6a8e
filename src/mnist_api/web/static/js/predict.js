// Sending an image for recognition, from the drawing pad or an uploaded file. One prediction at
// a time: while one is under way both ways in say so and wait.
import { currentSession, predict } from "./api.js";
import { byId } from "./dom.js";
import { percent, verdictWords } from "./format.js";
import { addToHistoryTop } from "./history.js";
import { announce, clearAlert, reportError } from "./messages.js";
import { revealResult, setResultBusy, showResult } from "./result.js";

const controls = [byId("recognise"), byId("dropzone")];
let busy = false;

/** Whether a prediction is under way. */
export const isBusy = () => busy;

function setBusy(on) {
  busy = on;
  for (const element of controls) {
    if (on) element.setAttribute("aria-disabled", "true");
    else element.removeAttribute("aria-disabled");
  }
  setResultBusy(on);
}

/**
 * Sends an image to the API, then shows the prediction and puts it at the top of the history,
 * or shows what went wrong. While it runs, `button` (if given) reads "Recognising…".
 */
export async function submit(blob, filename, button) {
  if (busy) return;
  setBusy(true);
  clearAlert();
  const oldText = button?.textContent;
  if (button) button.textContent = "Recognising…";
  const session = currentSession();
  try {
    const prediction = await predict(blob, filename);
    if (currentSession() !== session) return; // made with a key that is no longer in use
    showResult(prediction);
    addToHistoryTop(prediction);
    revealResult();
    const words = verdictWords(prediction);
    announce(`${words.title}: ${words.text} ${percent(prediction.confidence)} confident.`);
  } catch (error) {
    if (currentSession() === session) reportError(error);
  } finally {
    if (button) button.textContent = oldText;
    setBusy(false);
  }
}
