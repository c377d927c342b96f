// Canned responses: the agent's own list, kept on the server, edited here
// and offered by the composer when a "/shortcut" is typed.

import { h } from "../lib/dom.js";
import { quietly } from "./page.js";

export class CannedResponses {
  constructor({ list, form, shortcut, body, save, cancel, error, api }) {
    this.list = list;
    this.form = form;
    this.fields = { shortcut, body };
    this.saveButton = save;
    this.cancelButton = cancel;
    this.error = error;
    this.api = api;
    this.responses = [];
    this.editing = null;

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      quietly(() => this.#save());
    });
    cancel.addEventListener("click", () => this.#edit(null));
  }

  async load() {
    this.responses = (await this.api.get("/api/canned")).responses;
    this.render();
  }

  matching(prefix) {
    const wanted = prefix.toLowerCase();
    return this.responses
      .filter((r) => r.shortcut.toLowerCase().startsWith(wanted))
      .sort((a, b) => a.shortcut.localeCompare(b.shortcut))
      .slice(0, 8);
  }

  render() {
    const sorted = [...this.responses].sort((a, b) =>
      a.shortcut.localeCompare(b.shortcut),
    );
    this.list.replaceChildren(
      ...(sorted.length
        ? sorted.map((response) => this.#item(response))
        : [h("li", { class: "cs-empty", text: "None yet." })]),
    );
  }

  #item(response) {
    return h(
      "li",
      { class: "cs-canned", "data-shortcut": response.shortcut },
      h("strong", { text: `/${response.shortcut}` }),
      h("span", { class: "cs-canned__body", text: response.body }),
      h(
        "span",
        { class: "cs-actions" },
        h("button", {
          type: "button",
          class: "cs-button cs-button--small cs-button--quiet",
          "aria-label": `Edit /${response.shortcut}`,
          text: "Edit",
          onclick: () => this.#edit(response),
        }),
        h("button", {
          type: "button",
          class: "cs-button cs-button--small cs-button--quiet",
          "aria-label": `Delete /${response.shortcut}`,
          text: "Delete",
          onclick: () => quietly(() => this.#delete(response)),
        }),
      ),
    );
  }

  #edit(response) {
    this.editing = response;
    this.error.textContent = "";
    this.fields.shortcut.value = response ? response.shortcut : "";
    this.fields.body.value = response ? response.body : "";
    this.saveButton.textContent = response ? "Save changes" : "Add response";
    this.cancelButton.hidden = !response;
    if (response) this.fields.shortcut.focus();
  }

  async #save() {
    const body = {
      shortcut: this.fields.shortcut.value.trim().replace(/^\//, ""),
      body: this.fields.body.value.trim(),
    };
    try {
      if (this.editing) await this.api.put(`/api/canned/${this.editing.id}`, body);
      else await this.api.post("/api/canned", body);
    } catch (error) {
      this.error.textContent =
        error.status === 422
          ? "Use letters, digits, - or _ for the shortcut."
          : error.message;
      return;
    }
    this.#edit(null);
    await this.load();
  }

  async #delete(response) {
    try {
      await this.api.delete(`/api/canned/${response.id}`);
    } catch (error) {
      this.error.textContent = error.message;
    }
    if (this.editing?.id === response.id) this.#edit(null);
    await this.load();
  }
}
