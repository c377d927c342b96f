// The status board: every agent's status and load, live.
//
// A `board` frame with `full: true` replaces the whole board; the others
// carry only the entries that changed (an entry with `removed` is gone).
// The board also drives this agent's own status switch, so every tab
// shows what was chosen in any of them.

import { h } from "../lib/dom.js";

export class Board extends EventTarget {
  constructor({ list, statusSelect, me, send }) {
    super();
    this.list = list;
    this.statusSelect = statusSelect;
    this.me = me;
    this.entries = new Map();
    statusSelect.addEventListener("change", () => {
      send({ type: "status", status: statusSelect.value });
    });
  }

  apply(frame) {
    if (frame.full) this.entries.clear();
    for (const entry of frame.agents) {
      if (entry.removed) this.entries.delete(entry.id);
      else this.entries.set(entry.id, { ...this.entries.get(entry.id), ...entry });
    }
    this.render();
    this.dispatchEvent(new Event("change"));
  }

  entry(id) {
    return this.entries.get(id);
  }

  // Agents a chat can go to: connected, not me.
  transferTargets() {
    return [...this.entries.values()].filter((e) => e.id !== this.me && e.connected);
  }

  render() {
    const sorted = [...this.entries.values()].sort((a, b) =>
      a.name.localeCompare(b.name),
    );
    this.list.replaceChildren(...sorted.map((entry) => this.#row(entry)));

    const mine = this.entries.get(this.me);
    if (mine && mine.status !== this.statusSelect.value) {
      this.statusSelect.value = mine.status;
    }
  }

  #row(entry) {
    const shown = presence(entry);
    return h(
      "li",
      { class: `cs-agent cs-agent--${shown}`, "data-agent": String(entry.id) },
      h("span", { class: "cs-dot", "aria-hidden": "true" }),
      h("span", {
        class: "cs-agent__name",
        text: entry.id === this.me ? `${entry.name} (you)` : entry.name,
      }),
      h("span", { class: "cs-agent__status", text: LABELS[shown] }),
      h("span", {
        class: "cs-agent__load",
        text: `${entry.open_chats ?? 0}/${entry.capacity ?? 0} chats`,
      }),
    );
  }
}

const LABELS = { online: "Online", away: "Away", offline: "Offline" };

// What the team sees: an agent with no live connection is offline,
// whatever status they chose.
export function presence(entry) {
  return entry.connected ? entry.status : "offline";
}
