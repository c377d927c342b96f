// Who the customer is and what they are looking at: profile and recent
// orders from the shop, the page they are on and their cart.

import { append, formatPrice, h, safeUrl } from "../lib/dom.js";

export class CustomerPanel {
  constructor({ root, api }) {
    this.root = root;
    this.api = api;
    this.conversation = null;
    this.profile = null;
    this.context = null;
  }

  async show(conversationId) {
    this.conversation = conversationId;
    this.profile = null;
    this.context = null;
    this.root.replaceChildren(h("p", { class: "cs-muted", text: "Loading…" }));

    try {
      const details = await this.api.get(`/api/conversations/${conversationId}`);
      if (this.conversation !== conversationId) return;
      this.context = details.context;
      this.profile = await this.api.get(`/api/customers/${details.customer.id}`);
      if (this.conversation !== conversationId) return;
    } catch (error) {
      if (this.conversation === conversationId) {
        this.root.replaceChildren(h("p", { class: "cs-error", text: error.message }));
      }
      return;
    }
    this.render();
  }

  // A `context` frame: the customer moved to another page or changed the cart.
  onContext(frame) {
    if (frame.conversation !== this.conversation || !this.profile) return;
    this.context = frame.context;
    this.render();
  }

  render() {
    const profile = this.profile;
    const shop = profile.profile;
    this.root.replaceChildren();
    append(this.root, [
      h("p", { class: "cs-customer__name", text: profile.name || "Anonymous visitor" }),
      profile.email && h("p", { class: "cs-customer__email", text: profile.email }),
      h("p", {
        class: `cs-tag ${profile.anonymous ? "cs-tag--anon" : "cs-tag--known"}`,
        text: profile.anonymous
          ? "Anonymous visitor"
          : `Signed-in customer · ${profile.external_id}`,
      }),
      pageSection(this.context),
      cartSection(this.context),
      shop && ordersSection(shop.orders || []),
    ]);
  }
}

function pageSection(context) {
  const url = safeUrl(context?.url);
  return h(
    "div",
    { class: "cs-customer__page" },
    h("h3", { text: "Current page" }),
    url
      ? h("a", {
          href: url,
          target: "_blank",
          rel: "noopener",
          text: context.title || url,
        })
      : h("p", { class: "cs-muted", text: "Not known yet." }),
  );
}

function cartSection(context) {
  const cart = context?.cart || [];
  return h(
    "div",
    { class: "cs-customer__cart" },
    h("h3", { text: "Cart" }),
    cart.length
      ? h(
          "ul",
          { class: "cs-plain" },
          ...cart.map((item) => h("li", { text: cartLine(item) })),
        )
      : h("p", { class: "cs-muted", text: "Empty." }),
  );
}

// "2 × Burr Grinder · 89.00": quantity, name (or SKU), and price if known.
function cartLine(item) {
  const price = item.price ? ` · ${item.price}` : "";
  return `${item.quantity} × ${item.name || item.sku}${price}`;
}

function ordersSection(orders) {
  return h(
    "div",
    { class: "cs-customer__orders" },
    h("h3", { text: "Recent orders" }),
    orders.length
      ? h(
          "ul",
          { class: "cs-plain" },
          ...orders.map((order) =>
            h(
              "li",
              { class: "cs-order" },
              h("strong", { text: order.id }),
              " ",
              h("span", { text: `${order.placed_at.slice(0, 10)} · ${order.status}` }),
              " ",
              h("span", { text: formatPrice(order.total, order.currency) }),
              h(
                "ul",
                { class: "cs-plain cs-order__items" },
                ...(order.items || []).map((item) =>
                  h("li", { text: `${item.quantity} × ${item.name}` }),
                ),
              ),
            ),
          ),
        )
      : h("p", { class: "cs-muted", text: "No orders." }),
  );
}
