// When no agent is online: leave a message instead of waiting in vain.

import { h } from "../lib/dom.js";

export function leaveMessageView({ server, token, prefill = {}, onSent, onBack }) {
  const field = (id, label, props) => [
    h("label", { for: id, text: label }),
    h(props.tag || "input", { id, required: true, ...props, tag: null }),
  ];

  const [nameLabel, name] = field("sb-left-name", "Name", {
    autocomplete: "name",
    maxlength: "200",
  });
  const [emailLabel, email] = field("sb-left-email", "Email", {
    type: "email",
    autocomplete: "email",
    maxlength: "200",
  });
  const [bodyLabel, body] = field("sb-left-body", "Message", {
    tag: "textarea",
    rows: "4",
    maxlength: "4000",
  });
  name.value = prefill.name || "";
  email.value = prefill.email || "";

  const problem = h("p", { class: "sb-problem", role: "alert" });
  const submit = h("button", {
    type: "submit",
    class: "sb-primary",
    text: "Send message",
  });

  async function send(event) {
    event.preventDefault();
    problem.textContent = "";
    submit.disabled = true;
    try {
      const headers = { "Content-Type": "application/json" };
      if (token) headers.Authorization = `Bearer ${token}`;
      const response = await fetch(new URL("/api/left-messages", server), {
        method: "POST",
        headers,
        body: JSON.stringify({
          name: name.value.trim(),
          email: email.value.trim(),
          body: body.value.trim(),
        }),
      });
      if (response.ok) {
        onSent({ name: name.value.trim(), email: email.value.trim() });
        return;
      }
      problem.textContent =
        response.status === 422
          ? "Please check your name, email and message."
          : "Sorry, your message could not be sent. Please try again.";
    } catch {
      problem.textContent = "You seem to be offline. Please try again.";
    } finally {
      submit.disabled = false;
    }
  }

  const root = h(
    "form",
    { class: "sb-form", onsubmit: send },
    h("p", {
      text:
        "No one is available to chat right now. " +
        "Leave us a message and we'll reply by email.",
    }),
    nameLabel,
    name,
    emailLabel,
    email,
    bodyLabel,
    body,
    problem,
    submit,
    onBack &&
      h("button", {
        type: "button",
        class: "sb-link",
        text: "Back to the chat",
        onclick: onBack,
      }),
  );
  return { root, focus: () => (name.value ? body : name).focus() };
}
