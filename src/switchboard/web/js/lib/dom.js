// Building DOM nodes from data.
//
// Everything that comes from a user, the server or the shop goes in as
// text: `h` turns strings into text nodes and sets `text` with
// textContent, and URLs pass through `safeUrl` before they become an href
// or a src. No function here ever parses markup.

export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// An absolute http(s) URL, or null: a "javascript:" or "data:" link from
// a message must never reach an href.
export function safeUrl(value, base) {
  if (typeof value !== "string" || !value) return null;
  try {
    const url = new URL(value, base);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

export function formatPrice(amount, currency) {
  const number = Number(amount);
  if (!Number.isFinite(number)) return `${amount} ${currency || ""}`.trim();
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(
      number,
    );
  } catch {
    return `${number.toFixed(2)} ${currency || ""}`.trim();
  }
}

export function formatTime(seconds) {
  if (!seconds) return "";
  return new Date(seconds * 1000).toLocaleTimeString([], {
    hour: "2-digit",
    minute: "2-digit",
  });
}

// Ids for client messages. getRandomValues works outside secure contexts
// too, unlike crypto.randomUUID, so a shop served over plain http works.
export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
