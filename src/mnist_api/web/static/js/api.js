// The calls to the public /v1 API, the only server the page talks to. A failed call throws an
// ApiProblem (with the problem-details body of the answer) or a NetworkProblem.
//
// When the service needs API keys, the key in use (see session.js) goes with every call as
// `Authorization: Bearer KEY`, never in an address. A call that the service answers with 401
// (the key was revoked meanwhile, or the service now needs one) throws a KeyRejected, after the
// handler given to whenKeyRejected has been told once.

const API = "/v1/predictions";
export const PAGE_SIZE = 10;

/** An error answer from the API, with its problem-details (application/problem+json) body. */
export class ApiProblem extends Error {
  constructor(status, problem, retryAfter) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

/** A 401: no key, or one the service does not (or no longer) accept(s). */
export class KeyRejected extends ApiProblem {}

/** The request did not reach the service, or its answer did not come back. */
export class NetworkProblem extends Error {}

let apiKey = null; // the key sent with every call, or null (authentication off)
let session = 0; // changes with the key: answers to calls of an earlier session are dropped
let keyRejected = () => {};

/** Sends `secret` with every call from now on (null: no key). */
export function useKey(secret) {
  apiKey = secret || null;
  session += 1;
}

/** Whether calls carry a key. */
export const hasKey = () => apiKey !== null;

/** A number that changes whenever the key does: compare it before and after an await. */
export const currentSession = () => session;

/** `handler(error)` runs when a call made with the current key (or none) is answered 401. */
export function whenKeyRejected(handler) {
  keyRejected = handler;
}

/** Seconds to wait from a Retry-After header (a number of seconds or an HTTP date), or null. */
function retryAfterSeconds(response) {
  const value = response.headers.get("Retry-After");
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const when = Date.parse(value);
  if (Number.isNaN(when)) return null;
  return Math.max(1, Math.ceil((when - Date.now()) / 1000));
}

/** fetch() with the key (`secret`) in the Authorization header; a NetworkProblem if it fails. */
async function send(url, options, secret) {
  const headers = { ...(options.headers || {}) };
  if (secret) headers.Authorization = `Bearer ${secret}`;
  try {
    return await fetch(url, { ...options, headers });
  } catch (cause) {
    throw new NetworkProblem(String(cause));
  }
}

/** The JSON body of an answer, or null if it has none (or it is not JSON). */
async function jsonBody(response) {
  const type = response.headers.get("Content-Type") || "";
  if (!type.includes("json")) return null;
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/**
 * The error for an answer that is not a success. A 401 to a call made with the key still in use
 * is reported to the whenKeyRejected handler (unless `quiet`: checking a key someone typed).
 */
function problemOf(response, body, secret, quiet) {
  const problem =
    body && typeof body === "object"
      ? body
      : { title: response.statusText || `Error ${response.status}`, detail: "" };
  const retryAfter = retryAfterSeconds(response);
  if (response.status !== 401) return new ApiProblem(response.status, problem, retryAfter);
  const error = new KeyRejected(response.status, problem, retryAfter);
  if (!quiet && secret === apiKey) keyRejected(error);
  return error;
}

/** Fetches a URL of the API and returns its JSON body (null if it has none). */
async function request(url, options = {}, { secret = apiKey, quiet = false } = {}) {
  const response = await send(
    url,
    { ...options, headers: { Accept: "application/json", ...(options.headers || {}) } },
    secret,
  );
  const body = await jsonBody(response);
  if (!response.ok) throw problemOf(response, body, secret, quiet);
  return body;
}

/**
 * Who the service takes a call with `secret` (or none) for: GET /v1/keys/me. Throws a
 * KeyRejected (401) when the key is not accepted, or when the service needs one and none is
 * given; that does not count as the key in use being rejected.
 */
export function checkKey(secret) {
  return request("/v1/keys/me", {}, { secret: secret || null, quiet: true });
}

/** Recognises the digit in an image: POST /v1/predictions. Returns the new prediction. */
export function predict(blob, filename) {
  const form = new FormData();
  form.append("file", blob, filename);
  return request(API, { method: "POST", body: form });
}

/** One page of the history, newest first: GET /v1/predictions (from `cursor` if given). */
export function listPredictions(cursor) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (cursor) params.set("cursor", cursor);
  return request(`${API}?${params}`);
}

/** Records the right digit for a prediction: PUT /v1/predictions/{id}/label. */
export function labelPrediction(id, label) {
  return request(`${API}/${encodeURIComponent(id)}/label`, {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ label }),
  });
}

/** Records that an upload shows no digit at all: PUT /v1/predictions/{id}/not-a-digit. */
export function labelNotADigit(id) {
  return request(`${API}/${encodeURIComponent(id)}/not-a-digit`, { method: "PUT" });
}

/** One page of the review queue, least confident first: GET /v1/review. */
export function listReview(cursor) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (cursor) params.set("cursor", cursor);
  return request(`/v1/review?${params}`);
}

/** An image of the API as a Blob, fetched with the key (an <img> cannot send one). */
export async function fetchImage(url) {
  const secret = apiKey;
  const response = await send(
    url,
    { headers: { Accept: "image/*, application/problem+json" } },
    secret,
  );
  if (!response.ok) throw problemOf(response, await jsonBody(response), secret, false);
  return response.blob();
}

/** The image as it was sent. */
export const imageUrl = (id) => `${API}/${encodeURIComponent(id)}/image`;

/** The 28 x 28 image the model saw. */
export const inputUrl = (id) => `${API}/${encodeURIComponent(id)}/input.png`;
