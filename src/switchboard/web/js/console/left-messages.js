// Messages customers left while no agent was online.

import { formatTime, h } from "../lib/dom.js";
import { quietly } from "./page.js";

export class LeftMessages {
  constructor({ list, count, api }) {
    this.list = list;
    this.count = count;
    this.api = api;
    this.timer = 0;
  }

  // Debounced: every queue change asks for a refresh.
  refresh() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => quietly(() => this.load()), 200);
  }

  async load() {
    const { messages } = await this.api.get("/api/left-messages");
    this.count.textContent = messages.length ? `(${messages.length})` : "";
    this.list.replaceChildren(
      ...(messages.length
        ? messages.map((message) => this.#item(message))
        : [h("li", { class: "cs-empty", text: "No messages waiting." })]),
    );
  }

  #item(message) {
    const when = new Date(message.created_at * 1000);
    return h(
      "li",
      { class: "cs-left-message", "data-left-message": String(message.id) },
      h(
        "p",
        { class: "cs-left-message__who" },
        h("strong", { text: message.name }),
        " ",
        h("span", { class: "cs-muted", text: `<${message.email}>` }),
      ),
      h("p", {
        class: "cs-muted",
        text: `${when.toLocaleDateString()} ${formatTime(message.created_at)}`,
      }),
      h("p", { class: "cs-left-message__body", text: message.body }),
      h("button", {
        type: "button",
        class: "cs-button cs-button--small",
        "aria-label": `Mark the message from ${message.name} as handled`,
        text: "Mark handled",
        onclick: () =>
          quietly(async () => {
            await this.api.post(`/api/left-messages/${message.id}/handled`);
            await this.load();
          }),
      }),
    );
  }
}
