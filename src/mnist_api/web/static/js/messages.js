// What the page tells the user: the alert area for errors, and the status line that screen
// readers announce.
import { ApiProblem, KeyRejected, NetworkProblem } from "./api.js";
import { byId, createElement, reveal } from "./dom.js";
import { sentence } from "./format.js";

const alertArea = byId("alert");
const statusLine = byId("status");

/** Says something through the polite live region. */
export function announce(text) {
  // Re-setting the text makes screen readers announce repeated messages too.
  statusLine.textContent = "";
  window.setTimeout(() => {
    statusLine.textContent = text;
  }, 50);
}

/** Shows an alert; `kind` marks it so that clearAlert(kind) can take back only this one. */
export function showAlert(heading, detail, kind) {
  delete alertArea.dataset.kind;
  alertArea.replaceChildren();
  alertArea.append(createElement("strong", "alert-title", heading));
  if (detail) alertArea.append(" ", createElement("span", "alert-detail", detail));
  alertArea.hidden = false;
  reveal(alertArea);
  if (kind) alertArea.dataset.kind = kind;
}

/** Hides the alert; with a `kind`, only if the alert shown is of that kind. */
export function clearAlert(kind) {
  if (kind && alertArea.dataset.kind !== kind) return;
  delete alertArea.dataset.kind;
  alertArea.hidden = true;
  alertArea.replaceChildren();
}

/** A heading and a detail sentence that explain an error from the API or the network. */
export function describe(error) {
  if (error instanceof NetworkProblem) {
    return {
      heading: "Cannot reach the service",
      detail: "Check your connection and try again.",
    };
  }
  if (!(error instanceof ApiProblem)) {
    return { heading: "Something went wrong", detail: sentence(error?.message) };
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
  if (status === 429) {
    const seconds = error.retryAfter;
    const heading = seconds
      ? `Too many requests — try again in ${seconds} s`
      : "Too many requests — try again in a moment";
    return { heading, detail };
  }
  if (status === 401) {
    return { heading: "API key not accepted", detail };
  }
  if (status === 403) {
    return { heading: "Not allowed with this API key", detail };
  }
  if (status === 404) {
    return { heading: problem.title || "Not found", detail };
  }
  return { heading: problem.title || `Error ${status}`, detail };
}

/** Shows an error in the alert area (a rejected key is not: the page asks for one instead). */
export function reportError(error) {
  if (error instanceof KeyRejected) return;
  const { heading, detail } = describe(error);
  showAlert(heading, detail);
}
