// Uploading an image: the drop zone opens the file picker (click, Enter or Space) or takes a
// dropped file; the chosen file is sent for recognition at once.
import { byId } from "./dom.js";
import { showAlert } from "./messages.js";
import { isBusy, submit } from "./predict.js";

const dropzone = byId("dropzone");
const dropzoneFile = byId("dropzone-file");
const fileInput = byId("file-input");

let dragDepth = 0; // dragenter/dragleave also fire for the drop zone's children

function openPicker() {
  if (isBusy()) return;
  fileInput.value = "";
  fileInput.click();
}

function uploadFile(file) {
  if (isBusy()) return;
  dropzoneFile.textContent = file.name ? `Sent: ${file.name}` : "";
  submit(file, file.name || "upload");
}

function onKeyDown(event) {
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    openPicker();
  }
}

function onFileChosen() {
  const file = fileInput.files?.[0];
  if (file) uploadFile(file);
}

function onDragEnter(event) {
  event.preventDefault();
  dragDepth += 1;
  dropzone.classList.add("is-dragover");
}

function onDragOver(event) {
  event.preventDefault();
  if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
}

function onDragLeave() {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) dropzone.classList.remove("is-dragover");
}

function onDrop(event) {
  event.preventDefault();
  dragDepth = 0;
  dropzone.classList.remove("is-dragover");
  const files = event.dataTransfer ? event.dataTransfer.files : null;
  if (!files || files.length === 0) {
    showAlert("Nothing dropped", "Drop an image file, such as a PNG or JPEG.");
    return;
  }
  uploadFile(files[0]);
}

/** Wires up the drop zone and the (hidden) file input. */
export function initUpload() {
  dropzone.addEventListener("click", openPicker);
  dropzone.addEventListener("keydown", onKeyDown);
  fileInput.addEventListener("change", onFileChosen);
  dropzone.addEventListener("dragenter", onDragEnter);
  dropzone.addEventListener("dragover", onDragOver);
  dropzone.addEventListener("dragleave", onDragLeave);
  dropzone.addEventListener("drop", onDrop);
  // A file dropped beside the drop zone must not make the browser navigate away.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
}
