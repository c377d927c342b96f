// Typing indicators, both ways.
//
// Outgoing: the first keystroke sends `active: true`, repeated at most
// every `every` ms while typing goes on; a pause of `idle` ms, a send or an
// emptied composer sends `active: false`. Incoming: an indicator shows
// until the other side says it stopped or `timeout` ms pass without news,
// so a lost "stopped" frame never leaves it on for good.

export class TypingSender {
  #lastSent = 0;
  #idleTimer = 0;
  #active = false;

  constructor(send, { every = 3000, idle = 4000 } = {}) {
    this.send = send; // send(active) -> bool
    this.every = every;
    this.idle = idle;
  }

  input(text) {
    if (!text.trim()) {
      this.stop();
      return;
    }
    const now = Date.now();
    if (!this.#active || now - this.#lastSent >= this.every) {
      if (this.send(true)) {
        this.#active = true;
        this.#lastSent = now;
      }
    }
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => this.stop(), this.idle);
  }

  stop() {
    clearTimeout(this.#idleTimer);
    if (!this.#active) return;
    this.#active = false;
    this.send(false);
  }
}

export class TypingShown {
  #timers = new Map();

  constructor(onChange, { timeout = 6000 } = {}) {
    this.onChange = onChange; // onChange(names: string[])
    this.timeout = timeout;
    this.names = new Map(); // user -> name
  }

  update({ user, name, active }) {
    clearTimeout(this.#timers.get(user));
    this.#timers.delete(user);
    if (active) {
      this.names.set(user, name);
      this.#timers.set(
        user,
        setTimeout(() => this.update({ user, active: false }), this.timeout),
      );
    } else if (!this.names.delete(user)) {
      return;
    }
    this.onChange([...this.names.values()]);
  }

  // A message from someone ends their typing.
  stopped(user) {
    if (this.names.has(user)) this.update({ user, active: false });
  }

  clear() {
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.names.clear();
    this.onChange([]);
  }
}
