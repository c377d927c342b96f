// Messages sent but not acknowledged yet, kept in storage per user.
//
// An entry leaves the outbox when the server acknowledges it or when the
// stored message shows up in a replay. Until then it is resent after every
// reconnect with the same client id, which the server dedupes, so a send
// cut off by a lost link or a reload is stored exactly once.

import { load, save } from "./storage.js";

export class Outbox {
  constructor(user) {
    this.key = `outbox.${user}`;
  }

  all() {
    const entries = load(this.key, []);
    return Array.isArray(entries) ? entries : [];
  }

  add(entry) {
    const others = this.all().filter((e) => e.client_id !== entry.client_id);
    save(this.key, [...others, entry]);
  }

  remove(clientId) {
    const entries = this.all();
    const kept = entries.filter((e) => e.client_id !== clientId);
    if (kept.length !== entries.length) save(this.key, kept);
  }

  has(clientId) {
    return this.all().some((e) => e.client_id === clientId);
  }
}
