// The widget: mounts the launcher and panel and decides what the panel
// shows. widget.js (the one script tag a shop adds) imports this module
// and calls `mount` with the tag's data attributes.

import { h } from "../lib/dom.js";
import { ChatView } from "./chat-view.js";
import { leaveMessageView } from "./leave-message.js";
import { noteView, Panel } from "./panel.js";
import { prechatView } from "./prechat.js";
import { Session } from "./session.js";
import { load, save, watch } from "./storage.js";

const PANEL_OPEN = "panel-open";
const PRECHAT = "prechat";

export function mount(options) {
  if (document.getElementById("switchboard-widget")) return null;
  const config = {
    server: options.server,
    customerToken: options.customerToken || null,
    prechat: ["required", "optional", "off"].includes(options.prechat)
      ? options.prechat
      : "optional",
    cartKey: options.cartKey || null,
    title: options.title || "Chat with us",
    buttonLabel: options.buttonLabel || "Chat Now",
  };

  const host = h("div", { id: "switchboard-widget" });
  const shadow = host.attachShadow({ mode: "open" });
  const css = new URL("/static/css/widget.css", config.server).href;
  shadow.append(h("link", { rel: "stylesheet", href: css }));
  document.body.append(host);

  const session = new Session(config);
  const panel = new Panel(shadow, config);
  const chat = new ChatView(session, config);
  const widget = { config, session, panel, chat };

  wirePanel(widget);
  wireStatus(widget);
  session.resumeIfStarted();
  if (load(PANEL_OPEN)) setOpen(widget, true, { focus: false });
  return widget;
}

// -- open and closed, in every tab ------------------------------------------

function wirePanel(widget) {
  widget.panel.addEventListener("toggle", (event) => {
    save(PANEL_OPEN, event.detail.open);
    setOpen(widget, event.detail.open, { focus: true });
  });
  watch(PANEL_OPEN, (open) => setOpen(widget, Boolean(open), { focus: false }));

  // The server refused to start without a name and email: ask for them,
  // as required from now on.
  widget.session.addEventListener("prechat-required", () => {
    widget.config.prechat = "required";
    showPrechat(widget, "Please give your name and email to start a chat.");
  });

  // Another tab finished the pre-chat form: this one follows into the chat.
  watch("visitor-token", (token) => {
    if (token && widget.panel.view?.kind === "prechat") showChat(widget);
  });
}

function setOpen(widget, open, { focus }) {
  const { panel } = widget;
  if (open === panel.isOpen) return;
  if (!open) {
    panel.close({ focus });
    return;
  }
  panel.open({ focus });
  choose(widget);
  widget.session.markRead();
}

// What the panel shows: the chat when one is going on; otherwise the
// leave-a-message form when nobody is online, the pre-chat form for a
// visitor we do not know yet, else a new chat.
async function choose(widget) {
  const { config, session, panel } = widget;
  if (session.info?.state === "open" || panel.view === widget.chat) {
    showChat(widget);
    return;
  }

  panel.show(noteView("Connecting…"));
  const online = await agentsOnline(config.server);
  if (!panel.isOpen) return;

  if (online === 0) showOffline(widget);
  else if (!session.known && config.prechat !== "off") showPrechat(widget);
  else showChat(widget);
}

async function agentsOnline(server) {
  try {
    const response = await fetch(new URL("/api/availability", server));
    if (!response.ok) return null;
    return (await response.json()).agents_online;
  } catch {
    return null; // unknown: try the chat, which queues if need be
  }
}

function showChat(widget, prechat) {
  widget.panel.show(widget.chat);
  widget.session.begin(prechat || load(PRECHAT));
}

function showPrechat(widget, problem = "") {
  const view = prechatView({
    required: widget.config.prechat === "required",
    problem,
    onSubmit: (fields) => {
      save(PRECHAT, fields);
      showChat(widget, fields);
    },
  });
  view.kind = "prechat";
  widget.panel.show(view);
}

function showOffline(widget) {
  const { config, session, panel } = widget;
  const view = leaveMessageView({
    server: config.server,
    token: session.token,
    prefill: load(PRECHAT) || {},
    onSent: (fields) => {
      save(PRECHAT, fields);
      panel.show(
        noteView("Thank you! We received your message and will reply by email."),
      );
    },
    onBack: session.timeline ? () => showChat(widget) : null,
  });
  panel.show(view);
}

// -- header status, connection banner, unread badge -------------------------

function wireStatus(widget) {
  const { session, panel } = widget;
  const on = (type, handler) => session.addEventListener(type, handler);

  on("conversation", () => panel.setStatus(describe(session.info)));
  on("connection", (event) =>
    panel.setBanner(banner(event.detail, session.conn.reason)),
  );

  const unread = () => {
    if (panel.isOpen && document.visibilityState === "visible") session.markRead();
    panel.setUnread(session.unread);
  };
  on("message", unread);
  on("read", unread);
  on("reset", unread);
  on("conversation", unread);
  document.addEventListener("visibilitychange", unread);
  panel.addEventListener("toggle", () => setTimeout(unread));
}

function describe(info) {
  if (!info) return "";
  if (info.state === "open" && info.agent) {
    return `You're chatting with ${info.agent.name || "our team"}.`;
  }
  if (info.state === "queued") {
    return info.queue_position
      ? `Waiting for an agent: you are number ${info.queue_position} in the queue.`
      : "Waiting for an agent…";
  }
  if (info.state === "closed") return "This chat was closed. Write to us to reopen it.";
  return "";
}

function banner(state, reason) {
  if (state === "reconnecting") return "Reconnecting…";
  if (state === "stopped" && reason === "evicted") {
    return "The chat is open in too many tabs; reload this page to use it here.";
  }
  return "";
}
