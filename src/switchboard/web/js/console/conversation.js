// The conversation on screen: its history, live messages, typing and
// read state, and what the agent can do with it.
//
// Opening a chat joins it from seq 0 (the full history); a reconnect
// joins again after the last contiguous seq, and a gap in live messages
// joins after the last one before the gap. Replies not yet acknowledged
// are resent with the same client id after every replay.
//
// One join runs at a time, named by its ref, which the server echoes in
// its `conversation` and `synced`: a gap noticed meanwhile is judged when
// it ends, and a `resync` (the server may have lost frames for us) asks
// for one more join after it.

import { h, randomId } from "../lib/dom.js";
import { MessageList } from "../lib/message-list.js";
import { Timeline } from "../lib/timeline.js";
import { TypingSender, TypingShown } from "../lib/typing.js";
import { byId } from "./page.js";

const RETRY_MS = 2000;

export class ConversationView extends EventTarget {
  constructor({ me, send, board, composer }) {
    super();
    this.me = me;
    this.user = `a:${me}`;
    this.send = send; // send(frame) -> bool
    this.board = board;
    this.composer = composer;
    this.id = null;
    this.info = null;
    this.timeline = null;
    this.list = null;
    this.pending = new Map(); // client id -> entry
    this.maxBody = 4000;
    this.joinRef = null; // the running join, if any
    this.rejoin = false; // join again once it ends

    this.title = byId("conversation-title");
    this.state = byId("conversation-state");
    this.actions = byId("conversation-actions");
    this.slot = byId("conversation-messages");
    this.typingLine = byId("conversation-typing");
    this.problem = byId("conversation-problem");

    this.typingOut = new TypingSender((active) =>
      this.id ? this.send({ type: "typing", conversation: this.id, active }) : false,
    );
    this.typingIn = new TypingShown((names) => {
      this.typingLine.textContent = names.length
        ? `${names.join(", ")} is typing…`
        : "";
    });
    board.addEventListener("change", () => this.#renderActions());
    document.addEventListener("visibilitychange", () => this.markRead());
  }

  get mine() {
    return this.info?.state === "open" && this.info.agent?.id === this.me;
  }

  open(id) {
    if (this.id === id) return;
    this.id = id;
    this.info = null;
    this.pending.clear();
    this.readSent = 0;
    this.timeline = new Timeline(id);
    this.list = new MessageList({
      me: this.user,
      base: location.href,
      newTab: true,
      label: "Conversation messages",
    });
    this.slot.replaceChildren(this.list.root);
    this.typingIn.clear();
    this.problem.textContent = "";
    this.composer.clear();
    this.#join(0);
    this.#render();
  }

  // After a reconnect: catch up from the last contiguous seq.
  resume() {
    if (this.timeline) this.#join(this.timeline.last);
  }

  // The server may have missed frames for us: catch up the same way. A
  // join running now may have read the store before the lost messages,
  // so it gets one more after it.
  resync() {
    if (this.joinRef) this.rejoin = true;
    else this.resume();
  }

  reply(body) {
    const text = body.trim();
    if (!text || !this.mine) return false;
    if (text.length > this.maxBody) {
      this.problem.textContent = `Replies can be at most ${this.maxBody} characters.`;
      return false;
    }
    this.typingOut.stop();
    this.#queue({ client_id: randomId(), kind: "text", body: text });
    return true;
  }

  sendProduct(product) {
    if (!this.mine) return false;
    this.#queue({
      client_id: randomId(),
      kind: "product",
      sku: product.sku,
      body: product.name,
      data: product,
    });
    return true;
  }

  typing(text) {
    if (this.mine) this.typingOut.input(text);
  }

  markRead() {
    const timeline = this.timeline;
    if (!timeline || timeline.replaying) return;
    if (document.visibilityState !== "visible") return;
    if (timeline.last <= (this.readSent || 0)) return;
    const { conversation, last: seq } = timeline;
    if (this.send({ type: "read", conversation, seq })) {
      this.readSent = timeline.last;
    }
  }

  // -- frames -----------------------------------------------------------

  receive(frame) {
    if (frame.type === "welcome") {
      this.maxBody = frame.limits?.max_body || this.maxBody;
      return;
    }
    if (this.id === null) return;
    if (frame.type === "error") {
      this.#error(frame);
      return;
    }
    const id = frame.conversation?.id ?? frame.conversation;
    if (id !== this.id) return;

    switch (frame.type) {
      case "conversation":
      case "assigned":
      case "transferred":
        this.info = frame.conversation;
        this.#render();
        break;
      case "closed":
        this.info = { ...this.info, state: "closed", agent: null };
        this.#render();
        break;
      case "message":
        this.#message(frame);
        break;
      case "synced":
        this.#synced(frame);
        break;
      case "ack":
        this.pending.delete(frame.client_id);
        this.list.acked(frame.client_id, frame.seq);
        break;
      case "read":
        if (frame.user !== this.user) this.list.setPeerRead(frame.seq);
        break;
      case "typing":
        this.typingIn.update(frame);
        break;
      default:
        break;
    }
  }

  #message(message) {
    if (!this.timeline.add(message)) return;
    this.list.add(message);
    if (message.sender === this.user) this.pending.delete(message.client_id);
    else this.typingIn.stopped(message.sender);

    if (!this.timeline.replaying && this.timeline.hasGap) {
      this.#join(this.timeline.last);
    } else {
      this.markRead();
    }
  }

  #synced(frame) {
    // The end of a join superseded by a later one changes nothing; a
    // server that echoes no ref ends whichever is running.
    if ("ref" in frame && frame.ref !== this.joinRef) return;
    this.joinRef = null;
    this.timeline.replaying = false;
    if (this.rejoin || (this.timeline.hasGap && frame.seq < this.timeline.highest)) {
      this.#join(this.timeline.last);
      return;
    }
    for (const entry of this.pending.values()) {
      if (this.timeline.byClientId(entry.client_id, this.user)) {
        this.pending.delete(entry.client_id);
      } else {
        this.#transmit(entry);
      }
    }
    this.readSent = 0;
    this.markRead();
    this.list.scrollToEnd();
  }

  // Errors about a reply mark it; any other error (a refused transfer,
  // take, close or reopen) is said in the problem line.
  #error(frame) {
    if (frame.ref && frame.ref === this.joinRef) {
      this.joinRef = null;
      if (frame.code === "unavailable" || frame.code === "internal") {
        const id = this.id;
        setTimeout(() => this.#retryJoin(id), RETRY_MS);
        return;
      }
    }
    const entry = frame.ref && this.pending.get(frame.ref);
    if (entry) {
      if (frame.code === "unavailable" || frame.code === "internal") {
        setTimeout(() => this.#transmit(entry), RETRY_MS);
        return;
      }
      this.pending.delete(entry.client_id);
      this.list.failed(entry.client_id, frame.message);
      return;
    }
    this.problem.textContent = frame.message;
  }

  #join(after) {
    const ref = randomId();
    this.timeline.replaying = true;
    this.rejoin = false;
    const frame = { type: "join", conversation: this.id, after_seq: after, ref };
    this.joinRef = this.send(frame) ? ref : null; // else the next welcome resumes
  }

  #retryJoin(id) {
    if (this.joinRef || this.id !== id) return; // joined again meanwhile
    this.#join(this.timeline.last);
  }

  #queue(entry) {
    this.pending.set(entry.client_id, entry);
    this.list.pending(entry);
    this.problem.textContent = "";
    this.#transmit(entry);
  }

  #transmit(entry) {
    if (this.timeline.replaying) return; // sent after the replay
    const frame = {
      type: "send",
      conversation: this.id,
      client_id: entry.client_id,
      kind: entry.kind,
      body: entry.kind === "text" ? entry.body : "",
      ref: entry.client_id,
    };
    if (entry.kind === "product") frame.sku = entry.sku;
    this.send(frame);
  }

  // -- rendering --------------------------------------------------------

  #render() {
    const info = this.info;
    if (!info) {
      this.title.textContent = "Loading…";
      this.state.textContent = "";
      this.actions.replaceChildren();
      this.composer.enabled = false;
      return;
    }
    this.title.textContent =
      info.customer?.name || `Visitor ${info.customer?.id ?? ""}`;
    this.state.textContent = describe(info, this.me);
    this.composer.enabled = this.mine;
    this.#renderActions();
    this.dispatchEvent(new CustomEvent("change", { detail: info }));
  }

  #renderActions() {
    const info = this.info;
    if (!info) return;
    const buttons = [];
    if (info.state === "queued") {
      buttons.push(
        button("Take this chat", () =>
          this.send({ type: "take", conversation: info.id }),
        ),
      );
    }
    if (this.mine) {
      buttons.push(this.#transferControl(info));
      buttons.push(
        button("Close chat", () => this.send({ type: "close", conversation: info.id })),
      );
    }
    // A closed chat comes back to the agent who reopens it; the
    // `assigned` that follows turns the view and the composer back on.
    if (info.state === "closed") {
      buttons.push(
        button("Reopen chat", () => {
          this.problem.textContent = "";
          this.send({ type: "reopen", conversation: info.id });
        }),
      );
    }
    this.actions.replaceChildren(...buttons);
  }

  #transferControl(info) {
    const targets = this.board.transferTargets();
    const select = h(
      "select",
      { id: "transfer-to", disabled: !targets.length },
      ...(targets.length
        ? targets.map((agent) =>
            h("option", {
              value: String(agent.id),
              text:
                `${agent.name} ` +
                `(${agent.open_chats}/${agent.capacity}, ${agent.status})`,
            }),
          )
        : [h("option", { value: "", text: "No other agent connected" })]),
    );
    return h(
      "div",
      { class: "cs-transfer" },
      h("label", { for: "transfer-to", text: "Transfer to" }),
      select,
      button("Transfer", () => {
        if (select.value) {
          const agent = Number(select.value);
          this.send({ type: "transfer", conversation: info.id, agent });
        }
      }),
    );
  }
}

function button(text, onclick) {
  return h("button", { type: "button", class: "cs-button", text, onclick });
}

function describe(info, me) {
  if (info.state === "queued") {
    return info.queue_position
      ? `Waiting in the queue (number ${info.queue_position})`
      : "Waiting in the queue";
  }
  if (info.state === "closed") return "Closed";
  if (info.agent?.id === me) return "Open · assigned to you";
  return `Open · assigned to ${info.agent?.name || "another agent"}`;
}
