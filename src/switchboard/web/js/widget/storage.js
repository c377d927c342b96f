// The widget's memory: the host page's localStorage, shared by its tabs.
//
// Values are JSON under one prefix. When storage is unavailable (disabled,
// or a private mode that throws) the widget keeps working for this page
// from memory, only without tab sync and resume after reload.

const PREFIX = "switchboard.";
const memory = new Map();

export function load(key, fallback = null) {
  try {
    const raw = localStorage.getItem(PREFIX + key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return memory.has(key) ? memory.get(key) : fallback;
  }
}

export function save(key, value) {
  memory.set(key, value);
  try {
    localStorage.setItem(PREFIX + key, JSON.stringify(value));
  } catch {
    // memory only; see above
  }
}

export function forget(key) {
  memory.delete(key);
  try {
    localStorage.removeItem(PREFIX + key);
  } catch {
    // memory only
  }
}

// Call `callback(value)` when another tab changes `key`. (The storage
// event never fires in the tab that made the change.)
export function watch(key, callback) {
  window.addEventListener("storage", (event) => {
    if (event.key !== PREFIX + key) return;
    let value = null;
    try {
      value = event.newValue === null ? null : JSON.parse(event.newValue);
    } catch {
      return;
    }
    callback(value);
  });
}
