// The widget's frame: the "Chat Now" launcher and the panel it opens.
//
// The panel shows one view at a time (pre-chat form, chat, leave a
// message). It dispatches "toggle" [{open}] when the customer opens or
// closes it; the owner decides, so every tab can follow the same state.

import { h } from "../lib/dom.js";

export class Panel extends EventTarget {
  constructor(root, config) {
    super();
    this.view = null;
    this.label = config.buttonLabel;
    this.badge = h("span", { class: "sb-badge", hidden: true });
    this.launcher = h(
      "button",
      {
        type: "button",
        class: "sb-launcher",
        "aria-expanded": "false",
        "aria-controls": "sb-panel",
        onclick: () => this.#toggle(!this.isOpen),
      },
      h("span", { class: "sb-launcher__icon", "aria-hidden": "true" }),
      h("span", { text: config.buttonLabel }),
      this.badge,
    );

    this.status = h("p", { class: "sb-status", id: "sb-status" });
    this.banner = h("p", { class: "sb-banner", role: "status", hidden: true });
    this.body = h("div", { class: "sb-body" });
    this.panel = h(
      "section",
      {
        id: "sb-panel",
        class: "sb-panel",
        role: "dialog",
        "aria-modal": "false",
        "aria-labelledby": "sb-title",
        "aria-describedby": "sb-status",
        hidden: true,
        onkeydown: (event) => {
          if (event.key === "Escape") this.#toggle(false);
        },
      },
      h(
        "header",
        { class: "sb-header" },
        h(
          "div",
          { class: "sb-header__text" },
          h("h2", { class: "sb-title", id: "sb-title", text: config.title }),
          this.status,
        ),
        h("button", {
          type: "button",
          class: "sb-close",
          "aria-label": "Close chat",
          text: "×",
          onclick: () => this.#toggle(false),
        }),
      ),
      this.banner,
      this.body,
    );

    root.append(h("div", { class: "sb-widget" }, this.panel, this.launcher));
  }

  get isOpen() {
    return !this.panel.hidden;
  }

  open({ focus = true } = {}) {
    this.panel.hidden = false;
    this.launcher.setAttribute("aria-expanded", "true");
    this.launcher.classList.add("sb-launcher--open");
    if (focus) this.view?.focus?.();
  }

  close({ focus = false } = {}) {
    this.panel.hidden = true;
    this.launcher.setAttribute("aria-expanded", "false");
    this.launcher.classList.remove("sb-launcher--open");
    if (focus) this.launcher.focus();
  }

  show(view, { focus = true } = {}) {
    if (this.view === view) return;
    this.view = view;
    this.body.replaceChildren(view.root);
    view.shown?.();
    if (focus && this.isOpen) view.focus?.();
  }

  setStatus(text) {
    this.status.textContent = text;
  }

  setBanner(text) {
    this.banner.textContent = text || "";
    this.banner.hidden = !text;
  }

  setUnread(count) {
    this.badge.hidden = count <= 0;
    this.badge.textContent = count > 0 ? String(count) : "";
    if (count > 0) {
      this.launcher.setAttribute("aria-label", `${this.label}, ${count} unread`);
    } else {
      this.launcher.removeAttribute("aria-label");
    }
  }

  #toggle(open) {
    this.dispatchEvent(new CustomEvent("toggle", { detail: { open } }));
  }
}

// A view that is only a message (loading, thanks).
export function noteView(text, ...extra) {
  const root = h("div", { class: "sb-note" }, h("p", { text }), ...extra);
  return { root, focus: () => root.querySelector("button, a")?.focus() };
}
