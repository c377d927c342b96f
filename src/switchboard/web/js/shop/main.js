// The demo shop page: products, cart, demo sign-in, and the chat widget.

import { formatPrice, h } from "../lib/dom.js";
import { setUpAccount } from "./account.js";
import { clearCart, readCart, removeFromCart } from "./cart.js";
import { loadProducts, renderDetail, renderGrid } from "./catalogue.js";

const byId = (id) => document.getElementById(id);

async function main() {
  const [token, products] = await Promise.all([
    setUpAccount(byId("demo-customer")),
    loadProducts(),
  ]);
  addChatWidget(token);

  renderGrid(byId("products"), products);
  const sku = location.pathname.match(/^\/shop\/product\/([\w-]+)$/)?.[1];
  const product = sku && products.find((p) => p.sku === sku);
  if (product) {
    document.title = `${product.name} · Larkspur`;
    byId("hero").hidden = true;
    renderDetail(byId("product-detail"), product);
  }

  renderCart();
  byId("cart-clear").addEventListener("click", clearCart);
  window.addEventListener("shop:cart", renderCart);
  window.addEventListener("storage", (event) => {
    if (event.key === "larkspur-cart") renderCart();
  });
}

// The documented snippet, filled in the way a shop's server would.
function addChatWidget(token) {
  const snippet = document.importNode(byId("chat-widget").content, true);
  const script = snippet.querySelector("script");
  script.dataset.server = location.origin;
  if (token) script.dataset.customerToken = token;
  else delete script.dataset.customerToken;
  document.body.append(snippet);
}

function renderCart() {
  const items = readCart();
  const count = items.reduce((sum, item) => sum + item.quantity, 0);
  const total = items.reduce(
    (sum, item) => sum + Number(item.price) * item.quantity,
    0,
  );
  byId("cart-count").textContent = String(count);
  byId("cart-items").replaceChildren(
    ...items.map((item) =>
      h(
        "li",
        {},
        h("span", { text: `${item.quantity} × ${item.name}` }),
        h("span", { text: formatPrice(item.price, "EUR") }),
        h("button", {
          type: "button",
          class: "shop-button shop-button--quiet",
          "aria-label": `Remove ${item.name}`,
          text: "Remove",
          onclick: () => removeFromCart(item.sku),
        }),
      ),
    ),
  );
  byId("cart-total").textContent = items.length
    ? `Total ${formatPrice(total, "EUR")}`
    : "Your cart is empty.";
  byId("cart-clear").hidden = !items.length;
}

main();
