// The web page of the digit-recognition service: draw or upload a digit, see the prediction,
// review what the model was unsure of, browse and correct the history. Plain JavaScript modules, served as they are (no build step);
// the page only talks to the public /v1 API, with the user's API key when the service needs one.
import { initDrawing, resetPad } from "./canvas.js";
import { byId } from "./dom.js";
import { initHistory, loadHistory, resetHistory } from "./history.js";
import { clearAlert } from "./messages.js";
import { clearResult } from "./result.js";
import { initReview, resetReview } from "./review.js";
import { startSession } from "./session.js";
import { initUpload } from "./upload.js";

initDrawing();
initUpload();
initHistory();
initReview();
resetPad();
startSession({
  signedIn() {
    loadHistory();
  },
  signedOut() {
    // Nothing of the previous key's stays on the page.
    resetHistory();
    resetReview();
    clearResult();
    clearAlert();
    byId("dropzone-file").textContent = "";
  },
});
