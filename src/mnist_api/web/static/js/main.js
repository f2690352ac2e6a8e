// The web page of the digit-recognition service: draw or upload a digit, see the prediction,
// browse and correct the history. Plain JavaScript modules, served as they are (no build step);
// the page only talks to the public /v1 API.
import { initDrawing, resetPad } from "./canvas.js";
import { initHistory, loadHistory } from "./history.js";
import { initUpload } from "./upload.js";

initDrawing();
initUpload();
initHistory();
resetPad();
loadHistory();
