// The product grid and the single-product page.

import { formatPrice, h } from "../lib/dom.js";
import { addToCart } from "./cart.js";

// A few bestsellers out of the demo catalogue.
const FEATURED = [
  "SB-1001",
  "SB-1006",
  "SB-1008",
  "SB-1013",
  "SB-1024",
  "SB-1026",
  "SB-1031",
  "SB-1044",
];

export async function loadProducts() {
  try {
    const response = await fetch("/demo/products");
    if (!response.ok) return [];
    return (await response.json()).products;
  } catch {
    return [];
  }
}

export function renderGrid(list, products) {
  const featured = FEATURED.map((sku) => products.find((p) => p.sku === sku)).filter(
    Boolean,
  );
  list.replaceChildren(...featured.map(productTile));
}

export function renderDetail(section, product) {
  section.replaceChildren(
    h("img", { src: product.image, alt: "", width: 240, height: 240 }),
    h(
      "div",
      { class: "product-detail__info" },
      h("h1", { text: product.name }),
      h("p", {
        class: "product-price",
        text: formatPrice(product.price, product.currency),
      }),
      h("p", { class: "product-sku", text: `Article ${product.sku}` }),
      addButton(product),
      h("p", {}, h("a", { href: "/", text: "← Back to all products" })),
    ),
  );
  section.hidden = false;
}

function productTile(product) {
  return h(
    "li",
    { class: "product" },
    h("img", { src: product.image, alt: "", width: 160, height: 160 }),
    h("h3", {}, h("a", { href: product.url, text: product.name })),
    h("p", {
      class: "product-price",
      text: formatPrice(product.price, product.currency),
    }),
    addButton(product),
  );
}

function addButton(product) {
  return h("button", {
    type: "button",
    class: "shop-button",
    "aria-label": `Add ${product.name} to cart`,
    text: "Add to cart",
    onclick: () => addToCart(product),
  });
}
