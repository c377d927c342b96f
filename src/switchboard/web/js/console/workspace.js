// The signed-in console: one connection, and the parts of the page that
// its frames drive. Each frame type goes to the parts that care.

import { Connection, socketUrl } from "../lib/connection.js";
import { Api } from "./api.js";
import { Board } from "./board.js";
import { CannedResponses } from "./canned.js";
import { ChatList } from "./chats.js";
import { Composer } from "./composer.js";
import { ConversationView } from "./conversation.js";
import { CustomerPanel } from "./customer.js";
import { LeftMessages } from "./left-messages.js";
import { announce, byId, quietly } from "./page.js";
import { ProductSearch } from "./products.js";

const CONNECTION_LABELS = {
  idle: "",
  connecting: "Connecting…",
  open: "Connected",
  reconnecting: "Reconnecting…",
  stopped: "Disconnected",
};

export class Workspace {
  constructor(login, { onSignedOut }) {
    const me = login.agent.id;
    const api = new Api(login.token, onSignedOut);
    this.onSignedOut = onSignedOut;
    this.welcomed = false;
    this.taking = null;

    this.conn = new Connection({
      url: socketUrl(location.href),
      hello: () => ({ token: login.token }),
    });
    const send = (frame) => this.conn.send(frame);
    this.conn.addEventListener("frame", (event) => this.#route(event.detail));
    this.conn.addEventListener("state", (event) => {
      byId("connection").textContent = CONNECTION_LABELS[event.detail] || "";
    });

    this.board = new Board({
      list: byId("board"),
      statusSelect: byId("my-status"),
      me,
      send,
    });
    this.canned = new CannedResponses({
      list: byId("canned-list"),
      form: byId("canned-form"),
      shortcut: byId("canned-shortcut"),
      body: byId("canned-body"),
      save: byId("canned-save"),
      cancel: byId("canned-cancel"),
      error: byId("canned-error"),
      api,
    });
    const composer = new Composer({
      form: byId("composer"),
      input: byId("composer-input"),
      button: byId("composer-send"),
      suggestions: byId("canned-suggestions"),
      canned: this.canned,
      onSend: (text) => this.view.reply(text),
      onTyping: (text) => this.view.typing(text),
    });
    this.view = new ConversationView({ me, send, board: this.board, composer });
    this.customer = new CustomerPanel({ root: byId("customer"), api });
    this.products = new ProductSearch({
      form: byId("product-search"),
      input: byId("product-query"),
      results: byId("product-results"),
      api,
      onSend: (product) => this.view.sendProduct(product),
      canSend: () => this.view.mine,
    });
    this.chats = new ChatList({
      list: byId("chat-list"),
      queueList: byId("queue"),
      queueCount: byId("queue-count"),
      api,
      me,
      onSelect: (id) => this.open(id),
      onTake: (id) => {
        this.taking = id;
        send({ type: "take", conversation: id });
      },
    });
    this.left = new LeftMessages({
      list: byId("left-messages"),
      count: byId("left-count"),
      api,
    });
    this.view.addEventListener("change", () => this.products.render());
  }

  start() {
    this.conn.start();
    quietly(() => this.chats.load());
    quietly(() => this.canned.load());
    quietly(() => this.left.load());
  }

  open(id) {
    this.chats.select(id);
    this.view.open(id);
    this.customer.show(id);
    this.products.render();
  }

  #route(frame) {
    switch (frame.type) {
      case "welcome":
        // After a reconnect, catch up on everything that may have changed.
        if (this.welcomed) {
          this.chats.reload();
          this.left.refresh();
          this.view.resume();
        }
        this.welcomed = true;
        break;
      case "resync":
        // Frames may have been lost: the open chat joins again after its
        // last contiguous seq, and the list reloads its unread counts.
        this.chats.reload();
        this.view.resync();
        break;
      case "board":
        this.board.apply(frame);
        break;
      case "queue":
        this.chats.renderQueue(frame.conversations);
        this.left.refresh();
        break;
      case "message":
        this.chats.onMessage(frame);
        break;
      case "read":
        this.chats.onRead(frame);
        break;
      case "assigned":
      case "transferred":
        this.#assigned(frame);
        break;
      case "closed":
        this.chats.onClosed(frame.conversation);
        break;
      case "context":
        this.customer.onContext(frame);
        break;
      case "error":
        if (frame.code === "auth_failed") {
          this.conn.stop();
          this.onSignedOut();
          return;
        }
        break;
      default:
        break;
    }
    this.view.receive(frame);
  }

  #assigned(frame) {
    const info = frame.conversation;
    this.chats.onAssigned(info, frame.reason || "transfer");
    if (frame.type === "transferred" && frame.from_agent === this.board.me) {
      announce(`Chat transferred to ${info.agent?.name || "another agent"}.`);
    }
    if (this.taking === info.id) {
      this.taking = null;
      this.open(info.id);
    }
  }
}
