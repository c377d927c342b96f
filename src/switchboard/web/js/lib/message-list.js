// The message list of one conversation, as seen by one user.
//
// Items are keyed by seq and kept in seq order whatever order they arrive
// in; a message sent here shows at once as pending (keyed by its client
// id) and becomes the stored message when the ack or the echo arrives.
// The list is a log region, so screen readers announce new messages; the
// delivery state of each message is kept out of the announcements.

import { formatTime, h } from "./dom.js";
import { productCard } from "./product-card.js";

const STATUS = {
  pending: "Sending…",
  delivered: "Delivered",
  read: "Read",
  failed: "Not sent",
};

export class MessageList {
  #bySeq = new Map(); // seq -> li
  #byClientId = new Map(); // client id -> li, own messages only

  constructor({ me = "", base = location.href, label = "Messages", newTab = false }) {
    this.me = me;
    this.base = base;
    this.newTab = newTab;
    this.peerRead = 0;
    this.root = h("ol", {
      class: "sb-messages",
      role: "log",
      "aria-live": "polite",
      "aria-relevant": "additions",
      "aria-label": label,
      tabindex: "0",
    });
  }

  clear() {
    this.root.replaceChildren();
    this.#bySeq.clear();
    this.#byClientId.clear();
    this.peerRead = 0;
  }

  get size() {
    return this.root.childElementCount;
  }

  // A stored message (from the server); duplicates are ignored.
  add(message) {
    if (this.#bySeq.has(message.seq)) return;
    const mine = message.sender === this.me;
    let item = mine ? this.#byClientId.get(message.client_id) : undefined;

    const stick = this.#nearBottom();
    if (item) {
      item.remove();
    } else {
      item = this.#item(message, mine);
      if (mine) this.#byClientId.set(message.client_id, item);
    }
    item.dataset.seq = String(message.seq);
    this.#bySeq.set(message.seq, item);
    this.#insert(item, message.seq);
    if (mine) this.#status(item);
    if (stick) this.scrollToEnd();
  }

  // A message sent from here and not stored yet.
  pending({ client_id, body, kind = "text", data = null }) {
    if (this.#byClientId.has(client_id)) return;
    const item = this.#item(
      { client_id, body, kind, data, sender: this.me, at: Date.now() / 1000 },
      true,
    );
    this.#byClientId.set(client_id, item);
    this.root.append(item);
    this.#status(item);
    this.scrollToEnd();
  }

  acked(clientId, seq) {
    const item = this.#byClientId.get(clientId);
    if (!item || item.dataset.seq) return;
    item.dataset.seq = String(seq);
    this.#status(item);
  }

  failed(clientId, reason) {
    const item = this.#byClientId.get(clientId);
    if (!item || item.dataset.seq) return;
    item.dataset.failed = reason || "error";
    this.#status(item);
  }

  // The other side has read everything up to `seq`.
  setPeerRead(seq) {
    if (seq <= this.peerRead) return;
    this.peerRead = seq;
    for (const item of this.#byClientId.values()) this.#status(item);
  }

  scrollToEnd() {
    this.root.scrollTop = this.root.scrollHeight;
  }

  #nearBottom() {
    const { scrollTop, scrollHeight, clientHeight } = this.root;
    return scrollHeight - scrollTop - clientHeight < 80;
  }

  // Before the first item with a higher seq, else before the first
  // pending one, else at the end.
  #insert(item, seq) {
    for (const other of this.root.children) {
      const otherSeq = Number(other.dataset.seq || 0);
      if (!other.dataset.seq || otherSeq > seq) {
        this.root.insertBefore(item, other);
        return;
      }
    }
    this.root.append(item);
  }

  #item(message, mine) {
    if (message.kind === "system") {
      return h(
        "li",
        { class: "sb-msg sb-msg--system" },
        h("p", { text: message.body }),
      );
    }
    const who = mine ? "You" : message.sender_name || "Them";
    const body =
      message.kind === "product" && message.data
        ? productCard(message.data, { base: this.base, newTab: this.newTab })
        : h("p", { class: "sb-msg__text", text: message.body });

    return h(
      "li",
      { class: `sb-msg ${mine ? "sb-msg--mine" : "sb-msg--theirs"}` },
      h(
        "div",
        { class: "sb-msg__meta" },
        h("span", { class: "sb-msg__who", text: who }),
        " ",
        h("time", { class: "sb-msg__time", text: formatTime(message.at) }),
      ),
      body,
      mine && h("div", { class: "sb-msg__status", "aria-live": "off" }),
    );
  }

  #status(item) {
    const seq = Number(item.dataset.seq || 0);
    let state = "pending";
    if (item.dataset.failed) state = "failed";
    else if (seq && seq <= this.peerRead) state = "read";
    else if (seq) state = "delivered";

    item.dataset.state = state;
    const label = item.querySelector(".sb-msg__status");
    const text =
      state === "failed" ? `${STATUS.failed}: ${item.dataset.failed}` : STATUS[state];
    if (label && label.textContent !== text) label.textContent = text;
  }
}
