// One WebSocket to the server that keeps itself alive.
//
// It says hello, pings every heartbeat interval the server announced in
// its welcome, treats silence past the heartbeat timeout as a dead link
// (a half-open TCP connection never reports its close), and reconnects
// with jittered exponential backoff. Frames are dispatched as "frame"
// events; every state change is a "state" event.

import { backoffDelay } from "./backoff.js";

export const PROTOCOL_VERSION = 1;

export const State = Object.freeze({
  IDLE: "idle", // not started
  CONNECTING: "connecting", // first attempt, before welcome
  OPEN: "open", // welcomed
  RECONNECTING: "reconnecting", // lost the link; retrying
  STOPPED: "stopped", // stopped on purpose, or evicted
});

// The server closed us because the user has too many connections; coming
// back would only evict another tab, so this one stays closed.
const EVICTED = 4000;

export class Connection extends EventTarget {
  #ws = null;
  #retry = 0;
  #ping = 0;
  #silence = 0;

  // `hello()` returns the hello fields (token, name, email) when needed,
  // so a token learned meanwhile is used on the next attempt.
  constructor({ url, hello, backoff = {} }) {
    super();
    this.url = url;
    this.hello = hello;
    this.backoff = backoff;
    this.state = State.IDLE;
    this.welcome = null;
    this.attempt = 0;
    this.reason = "";
    window.addEventListener("online", () => this.#retryNow());
  }

  start() {
    if (this.state === State.IDLE || this.state === State.STOPPED) this.#open();
  }

  stop(reason = "") {
    this.reason = reason;
    this.#setState(State.STOPPED);
    this.#drop();
  }

  // Drop the link and connect again at once (for example with a new token).
  restart() {
    this.#drop();
    this.#open();
  }

  send(frame) {
    if (this.state !== State.OPEN || !this.#ws) return false;
    this.#ws.send(JSON.stringify(frame));
    return true;
  }

  #open() {
    clearTimeout(this.#retry);
    if (this.state !== State.RECONNECTING) this.#setState(State.CONNECTING);

    const ws = new WebSocket(this.url);
    this.#ws = ws;
    ws.addEventListener("open", () => {
      if (ws !== this.#ws) return;
      ws.send(JSON.stringify({ type: "hello", v: PROTOCOL_VERSION, ...this.hello() }));
    });
    ws.addEventListener("message", (event) => this.#receive(ws, event.data));
    ws.addEventListener("close", (event) => this.#lost(ws, event.code));
  }

  #receive(ws, text) {
    if (ws !== this.#ws) return;
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return; // the server only sends JSON; ignore anything else
    }
    this.#heard();

    if (frame.type === "welcome") {
      this.welcome = frame;
      this.attempt = 0;
      this.#startPings(frame.heartbeat || {});
      this.#setState(State.OPEN);
    }
    this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
  }

  #lost(ws, code) {
    if (ws !== this.#ws) return;
    this.#drop();
    if (this.state === State.STOPPED) return;
    if (code === EVICTED) {
      this.stop("evicted");
      return;
    }

    this.#setState(State.RECONNECTING);
    const delay = backoffDelay(this.attempt, this.backoff);
    this.attempt += 1;
    this.#retry = setTimeout(() => this.#open(), delay);
  }

  #retryNow() {
    if (this.state === State.RECONNECTING && !this.#ws) this.#open();
  }

  // Forget the socket first, so its late events are ignored, then close it.
  #drop() {
    const ws = this.#ws;
    this.#ws = null;
    clearTimeout(this.#retry);
    clearInterval(this.#ping);
    clearTimeout(this.#silence);
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  }

  #startPings({ interval = 10, timeout = 30 }) {
    clearInterval(this.#ping);
    this.#ping = setInterval(() => this.send({ type: "ping" }), interval * 1000);
    this.silenceLimit = timeout * 1000;
    this.#heard();
  }

  #heard() {
    if (!this.silenceLimit) return;
    clearTimeout(this.#silence);
    const ws = this.#ws;
    this.#silence = setTimeout(() => this.#lost(ws, 0), this.silenceLimit);
  }

  #setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }
}

export function socketUrl(server) {
  const url = new URL("/ws", server);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}
