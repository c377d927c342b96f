// Small page-wide helpers: announcing to screen readers, the title badge.

const BASE_TITLE = "Switchboard console";

export const byId = (id) => document.getElementById(id);

export function announce(text) {
  const region = byId("announcer");
  region.textContent = "";
  // A fresh text node makes screen readers speak a repeated message too.
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

export function setTitleBadge(count) {
  document.title = count > 0 ? `(${count}) ${BASE_TITLE}` : BASE_TITLE;
}

// Run an async job from an event handler: a failure (the server going
// away for a moment, say) is logged, never an unhandled rejection.
export function quietly(job) {
  Promise.resolve()
    .then(job)
    .catch((error) => console.warn("Switchboard console:", error.message || error));
}
