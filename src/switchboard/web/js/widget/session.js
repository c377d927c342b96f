// The customer's side of the chat: one connection, one conversation.
//
// The session says hello with the shop's customer token, or with the
// visitor token it was given the first time (kept in storage so every tab
// is the same visitor). It starts the conversation only once the customer
// asked for a chat; after that every tab and every reconnect resumes it
// with `start` and the last contiguous seq seen, and sends what the
// outbox still holds once the replay is done.
//
// One replay (start or join) runs at a time, named by its ref, which the
// server echoes in its `conversation` and `synced`: a gap noticed meanwhile
// is judged when it ends, and a `resync` (the server may have lost frames
// for us) asks for one more replay after it.
//
// Events (CustomEvent, details in brackets): connection [state],
// conversation [info], reset, message [message], pending [entry],
// ack [{client_id, seq}], failed [{client_id, reason}], read, typing
// [names], problem [text], prechat-required.

import { Connection, socketUrl } from "../lib/connection.js";
import { randomId } from "../lib/dom.js";
import { Timeline } from "../lib/timeline.js";
import { TypingSender, TypingShown } from "../lib/typing.js";
import { pageContext, watchCart } from "./context.js";
import { Outbox } from "./outbox.js";
import { forget, load, save, watch } from "./storage.js";

const VISITOR_TOKEN = "visitor-token";
const STARTED = "started"; // users who have a conversation in this browser
const RETRY_MS = 2000;

export class Session extends EventTarget {
  constructor(config) {
    super();
    this.config = config;
    this.user = "";
    this.info = null; // the conversation snapshot, kept current
    this.timeline = null;
    this.outbox = null;
    this.early = []; // sent before the welcome said who we are
    this.myRead = 0; // my read cursor (any of my tabs)
    this.peerRead = 0; // the agent's read cursor
    this.maxBody = 4000;
    this.replayRef = null; // the running replay, if any
    this.rejoin = false; // replay again once it ends
    this.wanted = false; // the customer asked for a chat in this tab
    this.prechat = { name: "", email: "" };

    this.conn = new Connection({
      url: socketUrl(config.server),
      hello: () => this.#helloFields(),
    });
    this.conn.addEventListener("frame", (e) => this.#receive(e.detail));
    this.conn.addEventListener("state", (e) => this.#emit("connection", e.detail));

    this.typingOut = new TypingSender((active) => this.#sendTyping(active));
    this.typingIn = new TypingShown((names) => this.#emit("typing", names));

    watchCart(config.cartKey, () => this.#sendContext());
    watch(VISITOR_TOKEN, (token) => this.#visitorTokenChanged(token));
  }

  get token() {
    return this.config.customerToken || load(VISITOR_TOKEN);
  }

  // Visitors who never chatted have no token yet; connecting would create
  // one for every page view, so they connect only when they ask to chat.
  get known() {
    return Boolean(this.token);
  }

  // Connect on page load when this browser already has a conversation, so
  // its messages arrive (and count as unread) before the panel opens.
  resumeIfStarted() {
    if (this.known && load(STARTED, []).length) this.conn.start();
  }

  // The customer wants to chat: connect if needed and start or resume.
  begin(prechat) {
    if (prechat) this.prechat = prechat;
    this.wanted = true;
    if (this.conn.state !== "open") this.conn.start();
    else if (!this.timeline) this.#start(); // else it is going on already
  }

  send(body) {
    const text = body.trim();
    if (!text) return false;
    if (text.length > this.maxBody) {
      this.#emit("problem", `Messages can be at most ${this.maxBody} characters.`);
      return false;
    }
    const entry = { client_id: randomId(), body: text, kind: "text" };
    if (this.outbox) this.outbox.add(entry);
    else this.early.push(entry);
    this.#emit("pending", entry);
    this.typingOut.stop();
    this.#transmit(entry);
    return true;
  }

  typing(text) {
    this.typingOut.input(text);
  }

  // Tell the agent everything shown so far has been read.
  markRead() {
    const timeline = this.timeline;
    if (!timeline || timeline.last <= this.myRead) return;
    if (!timeline.unreadFor(this.user, this.myRead)) return;
    const { conversation, last: seq } = timeline;
    if (this.conn.send({ type: "read", conversation, seq })) {
      this.myRead = timeline.last;
    }
  }

  get unread() {
    return this.timeline ? this.timeline.unreadFor(this.user, this.myRead) : 0;
  }

  // -- frames -----------------------------------------------------------

  #helloFields() {
    const token = this.token;
    if (token) return { token, ...this.prechat };
    return { name: this.prechat.name, email: this.prechat.email };
  }

  #receive(frame) {
    switch (frame.type) {
      case "welcome":
        return this.#welcome(frame);
      case "conversation":
        return this.#conversation(frame.conversation);
      case "message":
        return this.#message(frame);
      case "synced":
        return this.#synced(frame);
      case "resync":
        return this.#resync();
      case "ack":
        return this.#ack(frame);
      case "read":
        return this.#read(frame);
      case "typing":
        return this.typingIn.update(frame);
      case "queued":
        return this.#update({ state: "queued", queue_position: frame.position });
      case "assigned":
      case "transferred":
        return this.#update({ ...frame.conversation, queue_position: null });
      case "closed":
        return this.#update({ state: "closed" });
      case "error":
        return this.#error(frame);
      default:
        return undefined;
    }
  }

  #welcome(frame) {
    if (frame.token && !this.config.customerToken) save(VISITOR_TOKEN, frame.token);
    this.user = frame.user;
    this.replayRef = null; // replays of the previous connection are void
    this.rejoin = false;
    this.maxBody = frame.limits?.max_body || this.maxBody;
    this.outbox = new Outbox(frame.user);
    for (const entry of this.early.splice(0)) this.outbox.add(entry);
    if (this.wanted || load(STARTED, []).includes(frame.user)) this.#start();
  }

  #start() {
    const started = load(STARTED, []);
    if (!started.includes(this.user)) save(STARTED, [...started, this.user]);
    this.#replay({
      type: "start",
      after_seq: this.timeline ? this.timeline.last : 0,
      context: pageContext(this.config.cartKey),
    });
  }

  #conversation(info) {
    if (!this.timeline || this.timeline.conversation !== info.id) {
      this.timeline = new Timeline(info.id);
      this.myRead = 0;
      this.peerRead = 0;
      this.#emit("reset");
    }
    this.timeline.replaying = true;
    this.info = info;
    this.#emit("conversation", info);
  }

  #update(fields) {
    if (!this.info) return;
    if (fields.id !== undefined && fields.id !== this.info.id) return;
    this.info = { ...this.info, ...fields };
    this.#emit("conversation", this.info);
  }

  #message(message) {
    const timeline = this.timeline;
    if (!timeline || message.conversation !== timeline.conversation) return;
    if (!timeline.add(message)) return;

    if (message.sender === this.user) this.outbox?.remove(message.client_id);
    else this.typingIn.stopped(message.sender);
    this.#emit("message", message);

    // A hole before this message: ask for a replay of what is missing.
    if (!timeline.replaying && timeline.hasGap) this.#join();
  }

  #synced(frame) {
    const timeline = this.timeline;
    if (!timeline || frame.conversation !== timeline.conversation) return;
    // The end of a replay superseded by a later one changes nothing; a
    // server that echoes no ref ends whichever is running.
    if ("ref" in frame && frame.ref !== this.replayRef) return;
    this.replayRef = null;
    timeline.replaying = false;
    if (this.rejoin || (timeline.hasGap && frame.seq < timeline.highest)) {
      this.#join();
      return;
    }
    for (const entry of this.outbox?.all() || []) {
      if (timeline.byClientId(entry.client_id, this.user)) {
        this.outbox.remove(entry.client_id);
      } else {
        this.#emit("pending", entry);
        this.#transmit(entry);
      }
    }
    this.#emit("conversation", this.info);
  }

  // The server may have missed frames for us: replay after the last
  // contiguous seq. A replay running now may have read the store before
  // the lost messages, so it gets one more after it.
  #resync() {
    if (this.replayRef) this.rejoin = true;
    else if (this.timeline) this.#join();
  }

  #join() {
    this.#replay({
      type: "join",
      conversation: this.timeline.conversation,
      after_seq: this.timeline.last,
    });
  }

  #replay(frame) {
    const ref = randomId();
    if (!this.conn.send({ ...frame, ref })) return; // the next welcome replays
    this.replayRef = ref;
    this.rejoin = false;
    if (this.timeline) this.timeline.replaying = true;
  }

  #ack(frame) {
    this.outbox?.remove(frame.client_id);
    this.#emit("ack", { client_id: frame.client_id, seq: frame.seq });
  }

  #read(frame) {
    if (!this.timeline || frame.conversation !== this.timeline.conversation) return;
    if (frame.user === this.user) this.myRead = Math.max(this.myRead, frame.seq);
    else this.peerRead = Math.max(this.peerRead, frame.seq);
    this.#emit("read", frame);
  }

  #error(frame) {
    if (frame.ref && frame.ref === this.replayRef) {
      this.replayRef = null;
      if (frame.code === "unavailable" || frame.code === "internal") {
        setTimeout(() => this.#retryReplay(), RETRY_MS);
        return;
      }
    }
    const entry =
      frame.ref && this.outbox?.all().find((e) => e.client_id === frame.ref);
    if (entry) {
      if (frame.code === "unavailable" || frame.code === "internal") {
        setTimeout(() => this.#transmit(entry), RETRY_MS);
      } else {
        this.outbox.remove(entry.client_id);
        this.#emit("failed", { client_id: entry.client_id, reason: frame.message });
      }
      return;
    }

    if (frame.code === "auth_failed") {
      // A visitor token from another server or an old database: become
      // a new visitor next time rather than failing for ever.
      if (this.config.customerToken) {
        this.conn.stop("auth");
        this.#emit("problem", "Chat is unavailable: please sign in again.");
        return;
      }
      forget(VISITOR_TOKEN);
      forget(STARTED);
      if (this.wanted) this.conn.restart();
      else this.conn.stop("auth");
      return;
    }
    // The server wants a name and email before a visitor's first chat,
    // whatever this page's data-prechat said. The failed hello left the
    // socket waiting for another; the next begin() opens a fresh one.
    if (frame.code === "bad_frame" && /name and email/.test(frame.message)) {
      this.wanted = false;
      this.conn.stop("prechat");
      this.#emit("prechat-required");
    }
  }

  #retryReplay() {
    if (this.replayRef || this.conn.state !== "open") return;
    if (this.timeline) this.#join();
    else this.#start();
  }

  // -- sending ----------------------------------------------------------

  #transmit(entry) {
    if (!this.timeline || this.timeline.replaying) return; // sent after sync
    this.conn.send({
      type: "send",
      conversation: this.timeline.conversation,
      client_id: entry.client_id,
      body: entry.body,
      kind: "text",
      ref: entry.client_id,
    });
  }

  #sendTyping(active) {
    if (!this.timeline) return false;
    const conversation = this.timeline.conversation;
    return this.conn.send({ type: "typing", conversation, active });
  }

  #sendContext() {
    if (!this.timeline) return;
    this.conn.send({
      type: "context",
      conversation: this.timeline.conversation,
      context: pageContext(this.config.cartKey),
    });
  }

  #visitorTokenChanged(token) {
    // Another tab became a visitor while this one waited for it.
    if (token && this.wanted && this.conn.state !== "open") this.conn.restart();
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
