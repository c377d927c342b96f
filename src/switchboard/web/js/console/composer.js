// The reply box: Enter sends, Shift+Enter breaks the line, and "/word"
// offers the canned responses whose shortcut starts with "word"; Enter or
// Tab inserts the highlighted one in place of "/word".

import { h } from "../lib/dom.js";

const SHORTCUT = /(^|\s)\/([\w-]*)$/;

export class Composer {
  constructor({ form, input, button, suggestions, canned, onSend, onTyping }) {
    this.form = form;
    this.input = input;
    this.button = button;
    this.suggestions = suggestions;
    this.canned = canned;
    this.onSend = onSend;
    this.onTyping = onTyping;
    this.matches = [];
    this.active = 0;

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#send();
    });
    input.addEventListener("input", () => {
      this.onTyping(input.value);
      this.#suggest();
    });
    input.addEventListener("keydown", (event) => this.#keydown(event));
    // Leaving the box closes the suggestions, a little later so that a
    // click on one still lands; coming back in time keeps them.
    input.addEventListener("blur", () => {
      this.blurTimer = setTimeout(() => this.#close(), 150);
    });
    input.addEventListener("focus", () => clearTimeout(this.blurTimer));
  }

  set enabled(value) {
    this.input.disabled = !value;
    this.button.disabled = !value;
    if (!value) this.#close();
  }

  clear() {
    this.input.value = "";
    this.#close();
  }

  focus() {
    this.input.focus();
  }

  #send() {
    if (this.onSend(this.input.value)) this.clear();
  }

  #keydown(event) {
    if (this.matches.length) {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const step = event.key === "ArrowDown" ? 1 : -1;
        this.active = (this.active + step + this.matches.length) % this.matches.length;
        this.#render();
        return;
      }
      if (event.key === "Enter" || event.key === "Tab") {
        event.preventDefault();
        this.#insert(this.matches[this.active]);
        return;
      }
      if (event.key === "Escape") {
        event.preventDefault();
        this.#close();
        return;
      }
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.#send();
    }
  }

  #suggest() {
    const before = this.input.value.slice(0, this.input.selectionStart);
    const found = before.match(SHORTCUT);
    this.matches = found ? this.canned.matching(found[2]) : [];
    this.active = 0;
    this.#render();
  }

  #insert(response) {
    const caret = this.input.selectionStart;
    const before = this.input.value
      .slice(0, caret)
      .replace(SHORTCUT, `$1${response.body}`);
    this.input.value = before + this.input.value.slice(caret);
    this.input.setSelectionRange(before.length, before.length);
    this.#close();
    this.onTyping(this.input.value);
  }

  #close() {
    this.matches = [];
    this.#render();
  }

  #render() {
    const open = this.matches.length > 0;
    this.suggestions.hidden = !open;
    this.input.setAttribute("aria-expanded", String(open));
    this.suggestions.replaceChildren(
      ...this.matches.map((response, index) =>
        h(
          "li",
          {
            id: `canned-option-${response.id}`,
            role: "option",
            class: "cs-suggestion",
            "aria-selected": String(index === this.active),
            onmousedown: (event) => {
              event.preventDefault();
              this.#insert(response);
            },
          },
          h("strong", { text: `/${response.shortcut}` }),
          " ",
          h("span", { text: response.body }),
        ),
      ),
    );
    if (open) {
      this.input.setAttribute(
        "aria-activedescendant",
        `canned-option-${this.matches[this.active].id}`,
      );
    } else {
      this.input.removeAttribute("aria-activedescendant");
    }
  }
}
