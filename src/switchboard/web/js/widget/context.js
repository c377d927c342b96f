// What the agent sees of the customer's visit: the page and the cart.
//
// The cart is read from the host page's localStorage key named by the
// `data-cart-key` attribute: a JSON list of {sku, name, quantity, price}.
// Another tab changing it fires a storage event; the page itself can fire
// a "switchboard:cart" event on window after changing it.

const MAX_ITEMS = 100;
const MAX_TEXT = 200;

export function pageContext(cartKey) {
  return {
    url: location.href.slice(0, 2048),
    title: document.title.slice(0, MAX_TEXT),
    cart: readCart(cartKey),
  };
}

export function watchCart(cartKey, callback) {
  if (!cartKey) return;
  window.addEventListener("storage", (event) => {
    if (event.key === cartKey) callback();
  });
  window.addEventListener("switchboard:cart", () => callback());
}

function readCart(cartKey) {
  if (!cartKey) return [];
  let items;
  try {
    items = JSON.parse(localStorage.getItem(cartKey) || "[]");
  } catch {
    return [];
  }
  if (!Array.isArray(items)) return [];
  return items.slice(0, MAX_ITEMS).flatMap((item) => {
    if (!item || typeof item !== "object" || !item.sku) return [];
    const count = Math.trunc(Number(item.quantity) || 0);
    const quantity = Math.max(0, Math.min(10000, count));
    return [
      {
        sku: String(item.sku).slice(0, MAX_TEXT),
        name: String(item.name || "").slice(0, MAX_TEXT),
        quantity,
        price: String(item.price ?? "").slice(0, MAX_TEXT),
      },
    ];
  });
}
