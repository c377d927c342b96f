// The agent's chats with their unread counts, and the queue.
//
// The list starts from GET /api/conversations?mine=true and then follows
// the live frames: messages raise a chat's unread count, this agent's
// read cursor (from any of their tabs) clears it, assignments add chats
// and transfers away remove them. The number of chats with unread
// messages is the page title's badge.

import { formatTime, h } from "../lib/dom.js";
import { announce, quietly, setTitleBadge } from "./page.js";

// What the screen reader hears when a chat joins the list, by reason.
const ANNOUNCED = {
  take: (who) => `You took the chat with ${who}.`,
  reopen: (who) => `You reopened the chat with ${who}.`,
};

export class ChatList {
  constructor({ list, queueList, queueCount, api, me, onSelect, onTake }) {
    this.list = list;
    this.queueList = queueList;
    this.queueCount = queueCount;
    this.api = api;
    this.me = me; // agent id
    this.user = `a:${me}`;
    this.onSelect = onSelect;
    this.onTake = onTake;
    this.chats = new Map();
    this.selected = null;
    this.reloading = null;
  }

  // (Re)load from the API; debounced, since bursts of frames ask for it.
  reload() {
    clearTimeout(this.reloading);
    this.reloading = setTimeout(() => quietly(() => this.load()), 150);
  }

  async load() {
    const { conversations } = await this.api.get("/api/conversations?mine=true");
    const fresh = new Map();
    for (const info of conversations) {
      const known = this.chats.get(info.id);
      const lastSeq = Math.max(info.last_seq, known?.lastSeq || 0);
      // A read frame may have overtaken this answer; it knows better.
      const readSeq = known?.readSeq || 0;
      fresh.set(info.id, {
        ...known,
        info,
        unread: readSeq >= lastSeq ? 0 : info.unread,
        lastSeq,
        readSeq,
      });
    }
    // A closed chat stays listed until the page reloads, so the agent can
    // still read it; the API lists open chats only.
    for (const [id, chat] of this.chats) {
      if (!fresh.has(id) && chat.info.state === "closed") fresh.set(id, chat);
    }
    this.chats = fresh;
    this.render();
  }

  select(id) {
    this.selected = id;
    this.render();
  }

  onMessage(message) {
    const chat = this.chats.get(message.conversation);
    if (!chat) return;
    if (message.seq <= chat.lastSeq) return; // a replay of what we counted
    chat.lastSeq = message.seq;
    chat.preview =
      message.kind === "product" ? `Product: ${message.body}` : message.body;
    if (message.sender !== this.user) chat.unread += 1;
    this.render();
  }

  onRead(frame) {
    const chat = this.chats.get(frame.conversation);
    if (!chat || frame.user !== this.user) return;
    chat.readSeq = Math.max(chat.readSeq || 0, frame.seq);
    if (frame.seq >= chat.lastSeq) chat.unread = 0;
    this.render();
  }

  onAssigned(info, reason) {
    const mine = info.agent?.id === this.me;
    const known = this.chats.has(info.id);
    if (mine && !known) {
      this.chats.set(info.id, { info, unread: 0, lastSeq: 0 });
      const who = info.customer?.name || "a visitor";
      announce(ANNOUNCED[reason]?.(who) ?? `New chat from ${who}.`);
    } else if (mine) {
      this.chats.get(info.id).info = info;
    } else if (known && info.id !== this.selected) {
      this.chats.delete(info.id);
    } else if (known) {
      this.chats.get(info.id).info = info;
    }
    this.render();
    this.reload();
  }

  onClosed(id) {
    const chat = this.chats.get(id);
    if (!chat) return;
    chat.info = { ...chat.info, state: "closed", agent: null };
    chat.unread = 0;
    this.render();
  }

  info(id) {
    return this.chats.get(id)?.info;
  }

  render() {
    const chats = [...this.chats.values()].sort((a, b) => b.info.id - a.info.id);
    this.list.replaceChildren(
      ...(chats.length
        ? chats.map((chat) => this.#chatItem(chat))
        : [h("li", { class: "cs-empty", text: "No open chats." })]),
    );
    setTitleBadge(chats.filter((chat) => chat.unread > 0).length);
  }

  renderQueue(entries) {
    this.queueCount.textContent = entries.length ? `(${entries.length})` : "";
    this.queueList.replaceChildren(
      ...(entries.length
        ? entries.map((entry) => this.#queueItem(entry))
        : [h("li", { class: "cs-empty", text: "Nobody is waiting." })]),
    );
  }

  #chatItem(chat) {
    const { info, unread } = chat;
    const name = info.customer?.name || `Visitor ${info.customer?.id ?? ""}`.trim();
    const state = info.state === "open" ? "" : ` (${info.state})`;
    return h(
      "li",
      {},
      h(
        "button",
        {
          type: "button",
          class: "cs-chat",
          "data-conversation": String(info.id),
          "aria-current": info.id === this.selected ? "true" : null,
          onclick: () => this.onSelect(info.id),
        },
        h("span", { class: "cs-chat__name", text: `${name}${state}` }),
        h("span", { class: "cs-chat__preview", text: chat.preview || "" }),
        unread > 0 &&
          h("span", {
            class: "cs-unread",
            "aria-label": `${unread} unread`,
            text: String(unread),
          }),
      ),
    );
  }

  #queueItem(entry) {
    const name = entry.customer?.name || `Visitor ${entry.customer?.id ?? ""}`.trim();
    return h(
      "li",
      { class: "cs-queued", "data-conversation": String(entry.id) },
      h(
        "button",
        { type: "button", class: "cs-chat", onclick: () => this.onSelect(entry.id) },
        h("span", { class: "cs-chat__name", text: `${entry.position}. ${name}` }),
        h("span", {
          class: "cs-chat__preview",
          text: entry.queued_at ? `waiting since ${formatTime(entry.queued_at)}` : "",
        }),
      ),
      h("button", {
        type: "button",
        class: "cs-button cs-button--small",
        "aria-label": `Take the chat with ${name}`,
        text: "Take",
        onclick: () => this.onTake(entry.id),
      }),
    );
  }
}
