// The calls to the public /v1 API, the only server the page talks to. A failed call throws an
// ApiProblem (with the problem-details body of the answer) or a NetworkProblem.

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

/** The request did not reach the service, or its answer did not come back. */
export class NetworkProblem extends Error {}

/** Seconds to wait from a Retry-After header (a number of seconds or an HTTP date), or null. */
function retryAfterSeconds(response) {
  const value = response.headers.get("Retry-After");
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const when = Date.parse(value);
  if (Number.isNaN(when)) return null;
  return Math.max(1, Math.ceil((when - Date.now()) / 1000));
}

/** Fetches a URL of the API and returns its JSON body (null if it has none). */
async function request(url, options = {}) {
  let response;
  try {
    response = await fetch(url, {
      ...options,
      headers: { Accept: "application/json", ...(options.headers || {}) },
    });
  } catch (cause) {
    throw new NetworkProblem(String(cause));
  }
  const type = response.headers.get("Content-Type") || "";
  let body = null;
  if (type.includes("json")) {
    try {
      body = await response.json();
    } catch {
      body = null;
    }
  }
  if (!response.ok) {
    const problem =
      body && typeof body === "object"
        ? body
        : { title: response.statusText || `Error ${response.status}`, detail: "" };
    throw new ApiProblem(response.status, problem, retryAfterSeconds(response));
  }
  return body;
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

/** The image as it was sent. */
export const imageUrl = (id) => `${API}/${encodeURIComponent(id)}/image`;

/** The 28 x 28 image the model saw. */
export const inputUrl = (id) => `${API}/${encodeURIComponent(id)}/input.png`;
