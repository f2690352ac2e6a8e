// API keys on the page. The page first asks GET /v1/keys/me, without a key, whether the service
// needs one. If it does not (authentication off), the page works as it always did. If it does,
// the page asks for a key once, checks it with /v1/keys/me, keeps it in this tab's
// sessionStorage (never localStorage, never in an address) and sends it with every call (see
// api.js). The header names the key in use and has a Sign out button that forgets it. When a
// call is answered 401 (the key was revoked meanwhile), the key is forgotten and the page asks
// for one again, saying why.
import { checkKey, hasKey, KeyRejected, useKey, whenKeyRejected } from "./api.js";
import { byId, createElement } from "./dom.js";
import { sentence } from "./format.js";
import { announce, describe, reportError } from "./messages.js";

const STORAGE_KEY = "mnist-api-key";

const signin = byId("signin");
const form = byId("signin-form");
const input = byId("key-input");
const errorArea = byId("signin-error");
const submitButton = byId("signin-submit");
const app = byId("app");
const keybar = byId("keybar");
const keyName = byId("key-name");
const signOutButton = byId("sign-out");
const firstHeading = byId("draw-heading");

let handlers = { signedIn() {}, signedOut() {} };
let checking = false;

// sessionStorage may be switched off (a privacy setting): the key then lives in memory only.
function storedKey() {
  try {
    return window.sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

function storeKey(secret) {
  try {
    window.sessionStorage.setItem(STORAGE_KEY, secret);
  } catch {
    // kept in memory only
  }
}

function unstoreKey() {
  try {
    window.sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // nothing was stored
  }
}

/** The public id of a key (`mnist_<id>_<secret>`), to name a key whose name is not known. */
function keyId(secret) {
  const match = /^mnist_([0-9a-f]{12})_/.exec(secret);
  return match ? match[1] : "";
}

function showError(heading, detail) {
  errorArea.replaceChildren(createElement("strong", "field-error-title", heading));
  if (detail) errorArea.append(" ", createElement("span", "field-error-detail", detail));
  errorArea.hidden = false;
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", "signin-hint signin-error");
}

function clearError() {
  errorArea.hidden = true;
  errorArea.replaceChildren();
  input.removeAttribute("aria-invalid");
  input.setAttribute("aria-describedby", "signin-hint");
}

/** Shows the key form instead of the page (with an error, if given) and focuses its field. */
function ask(error) {
  handlers.signedOut();
  app.hidden = true;
  keybar.hidden = true;
  signin.hidden = false;
  input.value = "";
  if (error) showError(error.heading, error.detail);
  else clearError();
  input.focus();
}

/** Shows the page; `name` is the key in use (null: no key, authentication is off). */
function enter(name) {
  signin.hidden = true;
  clearError();
  app.hidden = false;
  keybar.hidden = name === null;
  keyName.textContent = name ?? "";
  keyName.title = name ?? ""; // a long name is cut short on a phone
  handlers.signedIn();
}

/** Asks the service whether it needs a key, and shows the form or the page. */
async function discover() {
  try {
    await checkKey(null);
    enter(null); // authentication is off: the page works without a key
  } catch (error) {
    if (error instanceof KeyRejected) {
      ask(null);
      return;
    }
    // The service cannot say now (busy, or out of reach): show the page as it was; its calls
    // will tell, and a 401 to one of them brings the form.
    enter(null);
    reportError(error);
  }
}

/** Called by api.js when the service answers 401 to a call made with the key in use. */
function onKeyRejected(error) {
  const had = hasKey();
  if (!had && !signin.hidden) return; // already asking, and saying why
  useKey(null);
  unstoreKey();
  const detail = sentence(error.problem?.detail);
  if (had) {
    ask({
      heading: "Your API key is no longer accepted.",
      detail: `${detail} Enter another key to go on.`.trim(),
    });
  } else {
    ask({ heading: "This service now needs an API key.", detail: "Enter your key to go on." });
  }
  announce("Your API key was not accepted. Enter a key.");
}

function setChecking(on) {
  checking = on;
  submitButton.textContent = on ? "Checking…" : "Sign in";
  if (on) submitButton.setAttribute("aria-disabled", "true");
  else submitButton.removeAttribute("aria-disabled");
  form.setAttribute("aria-busy", on ? "true" : "false");
}

async function onSubmit(event) {
  event.preventDefault();
  if (checking) return;
  const secret = input.value.trim();
  if (!secret) {
    showError("Enter your API key.", "Keys start with mnist_, followed by letters and digits.");
    input.focus();
    return;
  }
  setChecking(true);
  let info;
  try {
    info = await checkKey(secret);
  } catch (error) {
    if (error instanceof KeyRejected) {
      showError("That key was not accepted.", sentence(error.problem?.detail));
    } else {
      const { heading, detail } = describe(error);
      showError(sentence(heading), detail);
    }
    input.focus();
    input.select();
    return;
  } finally {
    setChecking(false);
  }
  useKey(secret);
  storeKey(secret);
  input.value = ""; // the key is not left in the page
  enter(info.name || info.id);
  announce(`Signed in with the API key ${info.name || info.id}.`);
  // The form is gone: put the focus at the start of what is now on the page.
  firstHeading.tabIndex = -1;
  firstHeading.focus();
}

function onSignOut() {
  useKey(null);
  unstoreKey();
  handlers.signedOut();
  announce("Signed out: this tab has forgotten the API key.");
  discover();
}

/**
 * Starts the page: with the key this tab kept, if any (checked first), or without one.
 * `signedIn()` runs when the page is shown with a key (or without one, authentication off);
 * `signedOut()` when the key is forgotten, so the page can drop what it showed for it.
 */
export async function startSession(callbacks) {
  handlers = callbacks;
  form.addEventListener("submit", onSubmit);
  signOutButton.addEventListener("click", onSignOut);
  whenKeyRejected(onKeyRejected);

  const secret = storedKey();
  if (!secret) {
    await discover();
    return;
  }
  useKey(secret);
  try {
    const info = await checkKey(secret);
    enter(info.name || info.id);
  } catch (error) {
    if (error instanceof KeyRejected) {
      useKey(null);
      unstoreKey();
      ask({
        heading: "Your API key is no longer accepted.",
        detail: `${sentence(error.problem?.detail)} Enter another key to go on.`.trim(),
      });
      return;
    }
    // Cannot check it now (busy, out of reach): keep it, and let the calls tell.
    enter(`key ${keyId(secret)}`);
    reportError(error);
  }
}
