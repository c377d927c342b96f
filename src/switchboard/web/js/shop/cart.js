// The shop's cart, kept in localStorage where the chat widget reads it
// (data-cart-key). After each change the page fires "switchboard:cart" so
// the widget tells the agent straight away.

export const CART_KEY = "larkspur-cart";

export function readCart() {
  try {
    const items = JSON.parse(localStorage.getItem(CART_KEY) || "[]");
    return Array.isArray(items) ? items : [];
  } catch {
    return [];
  }
}

export function addToCart(product) {
  const items = readCart();
  const line = items.find((item) => item.sku === product.sku);
  if (line) {
    line.quantity += 1;
  } else {
    const { sku, name, price } = product;
    items.push({ sku, name, quantity: 1, price });
  }
  writeCart(items);
}

export function removeFromCart(sku) {
  writeCart(readCart().filter((item) => item.sku !== sku));
}

export function clearCart() {
  writeCart([]);
}

function writeCart(items) {
  localStorage.setItem(CART_KEY, JSON.stringify(items));
  window.dispatchEvent(new Event("switchboard:cart"));
  window.dispatchEvent(new Event("shop:cart"));
}
