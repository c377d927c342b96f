// The chat itself: messages, who is typing, and the composer.

import { h } from "../lib/dom.js";
import { MessageList } from "../lib/message-list.js";

export class ChatView {
  constructor(session, config) {
    this.session = session;
    this.list = new MessageList({ base: config.server, label: "Chat messages" });
    this.typing = h("p", { class: "sb-typing", "aria-live": "polite" });
    this.problem = h("p", { class: "sb-problem", role: "alert" });
    this.input = h("textarea", {
      id: "sb-input",
      class: "sb-input",
      rows: "2",
      maxlength: String(session.maxBody),
      placeholder: "Write a message…",
      autocomplete: "off",
      oninput: () => this.session.typing(this.input.value),
      onkeydown: (event) => this.#keydown(event),
    });
    const form = h(
      "form",
      { class: "sb-composer", onsubmit: (event) => this.#submit(event) },
      h("label", { class: "sb-visually-hidden", for: "sb-input", text: "Message" }),
      this.input,
      h("button", { type: "submit", class: "sb-send", text: "Send" }),
    );
    this.root = h(
      "div",
      { class: "sb-chat" },
      this.list.root,
      this.typing,
      this.problem,
      form,
    );
    this.#listen();
  }

  focus() {
    this.input.focus();
  }

  shown() {
    this.list.scrollToEnd();
  }

  #listen() {
    const on = (type, handler) =>
      this.session.addEventListener(type, (event) => handler(event.detail));
    const list = this.list;

    on("reset", () => list.clear());
    on("message", (message) => {
      list.me = this.session.user;
      list.add(message);
    });
    on("pending", (entry) => list.pending(entry));
    on("ack", ({ client_id, seq }) => list.acked(client_id, seq));
    on("failed", ({ client_id, reason }) => list.failed(client_id, reason));
    on("read", (frame) => {
      if (frame.user !== this.session.user) list.setPeerRead(frame.seq);
    });
    on("typing", (names) => {
      this.typing.textContent = names.length ? `${names.join(", ")} is typing…` : "";
    });
    on("problem", (text) => {
      this.problem.textContent = text;
    });
    on("connection", () => {
      this.input.maxLength = this.session.maxBody;
    });
  }

  #keydown(event) {
    // Enter sends, Shift+Enter starts a new line.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.#submit(event);
    }
  }

  #submit(event) {
    event.preventDefault();
    this.problem.textContent = "";
    if (this.session.send(this.input.value)) this.input.value = "";
    this.input.focus();
  }
}
