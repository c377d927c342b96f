// Before the first chat of an anonymous visitor: name and email.

import { h } from "../lib/dom.js";

export function prechatView({ required, problem = "", onSubmit }) {
  const optional = required ? "" : " (optional)";
  const name = h("input", {
    id: "sb-name",
    name: "name",
    autocomplete: "name",
    maxlength: "200",
    required,
  });
  const email = h("input", {
    id: "sb-email",
    name: "email",
    type: "email",
    autocomplete: "email",
    maxlength: "200",
    required,
  });
  const root = h(
    "form",
    {
      class: "sb-form",
      onsubmit: (event) => {
        event.preventDefault();
        onSubmit({ name: name.value.trim(), email: email.value.trim() });
      },
    },
    h("p", { text: "Tell us who you are and we'll connect you with our team." }),
    problem ? h("p", { class: "sb-problem", role: "alert", text: problem }) : null,
    h("label", { for: "sb-name", text: `Name${optional}` }),
    name,
    h("label", { for: "sb-email", text: `Email${optional}` }),
    email,
    h("button", { type: "submit", class: "sb-primary", text: "Start chat" }),
  );
  return { root, focus: () => name.focus() };
}
