// Demo sign-in: pick one of the demo shop's customers, or stay a guest.
// A real shop knows who is signed in and signs the customer token itself.

import { h } from "../lib/dom.js";

const ACCOUNT_KEY = "larkspur-customer";

// Fill the selector; resolve to the chosen customer's token, or null.
export async function setUpAccount(select) {
  let customers = [];
  try {
    const response = await fetch("/demo/customers");
    if (response.ok) customers = (await response.json()).customers;
  } catch {
    customers = [];
  }

  const chosen = localStorage.getItem(ACCOUNT_KEY) || "";
  for (const customer of customers) {
    select.append(h("option", { value: customer.external_id, text: customer.name }));
  }
  const current = customers.find((c) => c.external_id === chosen);
  select.value = current ? current.external_id : "";

  select.addEventListener("change", () => {
    if (select.value) localStorage.setItem(ACCOUNT_KEY, select.value);
    else localStorage.removeItem(ACCOUNT_KEY);
    location.reload();
  });
  window.addEventListener("storage", (event) => {
    if (event.key === ACCOUNT_KEY) location.reload();
  });
  return current ? current.token : null;
}
