// A product card: picture, name, price and a link, all from message data.

import { formatPrice, h, safeUrl } from "./dom.js";

export function productCard(data, { base, newTab = false } = {}) {
  const image = safeUrl(data.image, base);
  const link = safeUrl(data.url, base);
  const name = String(data.name || data.sku || "Product");

  return h(
    "div",
    { class: "sb-product" },
    image &&
      h("img", {
        class: "sb-product__image",
        src: image,
        alt: "",
        width: 64,
        height: 64,
      }),
    h(
      "div",
      { class: "sb-product__info" },
      h("span", { class: "sb-product__name", text: name }),
      h("span", {
        class: "sb-product__price",
        text: formatPrice(data.price, data.currency),
      }),
      link &&
        h("a", {
          class: "sb-product__link",
          href: link,
          target: newTab ? "_blank" : null,
          rel: newTab ? "noopener" : null,
          "aria-label": `View ${name}`,
          text: "View product",
        }),
    ),
  );
}
