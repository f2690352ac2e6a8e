// How numbers, times and messages are written on the page.

/** A probability (0..1) as a percentage with one decimal: 0.9876 -> "98.8%". */
export const percent = (p) => `${(p * 100).toFixed(1)}%`;

const sameDay = (a, b) => a.toDateString() === b.toDateString();
const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "short",
});
const fullFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: "full",
  timeStyle: "medium",
});

/** What a prediction's verdict says, in words: a short title and a sentence. */
export function verdictWords(prediction) {
  const { digit, confidence, verdict } = prediction;
  if (verdict === "not_a_digit") {
    return {
      title: "Not a digit?",
      text: `This does not look like a digit. The closest digit is ${digit}, at only ${percent(confidence)}.`,
    };
  }
  if (verdict === "uncertain") {
    return {
      title: "Not sure",
      text: `Probably a ${digit}, but it could well be another digit.`,
    };
  }
  return { title: "A digit", text: `The model reads a ${digit}.` };
}

/** An ISO timestamp, short (the time alone if it is today) and in full (for a tooltip). */
export function formatTime(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return { short: iso, full: iso };
  const short = sameDay(when, new Date()) ? timeFormat.format(when) : dateTimeFormat.format(when);
  return { short, full: fullFormat.format(when) };
}

/** A text as a sentence: trimmed, capitalised, ending with a full stop ("" stays ""). */
export function sentence(text) {
  const trimmed = String(text || "").trim();
  if (!trimmed) return "";
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}
