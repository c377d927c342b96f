// Product search, and sending a product card into the chat.

import { formatPrice, h, safeUrl } from "../lib/dom.js";
import { quietly } from "./page.js";

const DEBOUNCE_MS = 250;

export class ProductSearch {
  constructor({ form, input, results, api, onSend, canSend }) {
    this.results = results;
    this.api = api;
    this.onSend = onSend;
    this.canSend = canSend;
    this.found = [];
    this.query = "";
    let timer = 0;

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      clearTimeout(timer);
      quietly(() => this.search(input.value));
    });
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => quietly(() => this.search(input.value)), DEBOUNCE_MS);
    });
  }

  async search(text) {
    const query = text.trim();
    this.query = query;
    if (!query) {
      this.found = [];
      this.render();
      return;
    }
    const { products } = await this.api.get(
      `/api/products?q=${encodeURIComponent(query)}&limit=10`,
    );
    if (query !== this.query) return; // a newer search is under way
    this.found = products;
    this.render();
  }

  // Called when the chat on screen changes: sending is for own open chats.
  render() {
    const enabled = this.canSend();
    if (this.query && !this.found.length) {
      this.results.replaceChildren(
        h("li", { class: "cs-empty", text: "No products found." }),
      );
      return;
    }
    this.results.replaceChildren(
      ...this.found.map((product) => {
        const image = safeUrl(product.image, location.href);
        return h(
          "li",
          { class: "cs-product" },
          image && h("img", { src: image, alt: "", width: 40, height: 40 }),
          h(
            "span",
            { class: "cs-product__text" },
            h("span", { class: "cs-product__name", text: product.name }),
            h("span", {
              class: "cs-muted",
              text: `${product.sku} · ${formatPrice(product.price, product.currency)}`,
            }),
          ),
          h("button", {
            type: "button",
            class: "cs-button cs-button--small",
            "aria-label": `Send ${product.name} to the customer`,
            disabled: !enabled,
            text: "Send",
            onclick: () => this.onSend(product),
          }),
        );
      }),
    );
  }
}
