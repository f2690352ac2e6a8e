// Images of the API in <img> elements. Without a key (authentication off) an <img> loads its
// address itself, as any image. With a key it cannot: the key goes in a header, which <img>
// does not send. Then the image is fetched with the key and shown from a blob: URL, which is
// revoked when the image is replaced or forgotten. Lazy images (the history's thumbnails) are
// fetched when they come near the screen.
import { ApiProblem, currentSession, fetchImage, hasKey } from "./api.js";

const MAX_RETRIES = 3; // after 429 (the key's rate limit): wait as told, then try again

const blobUrls = new WeakMap(); // <img> -> the blob: URL it shows
const wanted = new WeakMap(); // <img> -> the address it should show
let observer = null;

function onIntersect(entries) {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    observer.unobserve(entry.target);
    const url = wanted.get(entry.target);
    if (url) load(entry.target, url, 0);
  }
}

function lazyObserver() {
  if (!observer && "IntersectionObserver" in window) {
    observer = new IntersectionObserver(onIntersect, { rootMargin: "600px 0px" });
  }
  return observer;
}

/** Revokes the blob: URL an <img> shows, if any. */
function release(img) {
  const url = blobUrls.get(img);
  if (url) {
    URL.revokeObjectURL(url);
    blobUrls.delete(img);
  }
}

async function load(img, url, attempt) {
  const session = currentSession();
  const stillWanted = () => currentSession() === session && wanted.get(img) === url;
  let blob;
  try {
    blob = await fetchImage(url);
  } catch (error) {
    // A 401 is handled where keys are (the page asks for one); a 404 or a lost network leave
    // the image empty. Over the rate limit, wait as long as the service says and try again.
    if (error instanceof ApiProblem && error.status === 429 && attempt < MAX_RETRIES) {
      const seconds = Math.min(60, Math.max(1, error.retryAfter || 1));
      window.setTimeout(() => {
        if (stillWanted()) load(img, url, attempt + 1);
      }, seconds * 1000);
    }
    return;
  }
  if (!stillWanted()) return;
  const shown = URL.createObjectURL(blob);
  release(img);
  blobUrls.set(img, shown);
  img.src = shown;
}

/** Shows the API's image at `url` in `img`; `lazy`: only once it comes near the screen. */
export function showImage(img, url, { lazy = false } = {}) {
  wanted.set(img, url);
  if (!hasKey()) {
    release(img);
    img.src = url;
    return;
  }
  const watcher = lazy ? lazyObserver() : null;
  if (watcher) {
    watcher.unobserve(img);
    watcher.observe(img);
  } else {
    load(img, url, 0);
  }
}

/** Empties an <img> shown with showImage and lets go of its blob: URL. */
export function forgetImage(img) {
  wanted.delete(img);
  observer?.unobserve(img);
  release(img);
  img.removeAttribute("src");
}
