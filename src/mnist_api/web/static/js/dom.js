// Small DOM helpers shared by the page's modules.

/** The element of index.html with this id. */
export const byId = (id) => document.getElementById(id);

/** A new element with a class name and, if given, its text. */
export function createElement(tag, className, text) {
  const element = document.createElement(tag);
  element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

/** Scrolls an element into view if it is off screen (on a phone the result is below). */
export function reveal(element) {
  const box = element.getBoundingClientRect();
  const height = window.innerHeight || document.documentElement.clientHeight;
  if (box.top >= 0 && box.top < height - 48) return;
  const calm = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  element.scrollIntoView({ behavior: calm ? "auto" : "smooth", block: "start" });
}
