// MediaNest's page script: theme choice and live updates over the websocket. No build step.
"use strict";

(function theme() {
  const saved = localStorage.getItem("medianest-theme");
  if (saved) document.documentElement.dataset.theme = saved;
  document.addEventListener("DOMContentLoaded", () => {
    const button = document.querySelector("[data-theme-toggle]");
    if (!button) return;
    button.addEventListener("click", () => {
      const dark = document.documentElement.dataset.theme === "dark" ||
        (!document.documentElement.dataset.theme && matchMedia("(prefers-color-scheme: dark)").matches);
      const next = dark ? "light" : "dark";
      document.documentElement.dataset.theme = next;
      localStorage.setItem("medianest-theme", next);
    });
  });
})();

// One socket per page; reconnects with backoff and resubscribes.
const MediaNestLive = {
  handlers: new Map(),
  socket: null,
  delay: 1000,
  on(topic, handler) {
    if (!this.handlers.has(topic)) this.handlers.set(topic, []);
    this.handlers.get(topic).push(handler);
  },
  connect() {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.delay = 1000;
      socket.send(JSON.stringify({ action: "subscribe", topics: [...this.handlers.keys()] }));
      document.documentElement.dataset.live = "connected";
    });
    socket.addEventListener("message", (msg) => {
      const event = JSON.parse(msg.data);
      if (event.type === "subscribed") document.documentElement.dataset.subscribed = event.topics.join(" ");
      for (const handler of this.handlers.get(event.topic) || []) handler(event);
    });
    socket.addEventListener("close", () => {
      document.documentElement.dataset.live = "disconnected";
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 30000);
    });
  },
};

async function refreshWidget(section) {
  const response = await fetch(section.dataset.widgetUrl, { headers: { Accept: "text/html" } });
  if (!response.ok) return;
  const holder = document.createElement("div");
  holder.innerHTML = await response.text();
  const fresh = holder.firstElementChild;
  if (fresh) section.replaceWith(fresh);
}

document.addEventListener("DOMContentLoaded", () => {
  const dashboard = document.querySelector("[data-live-dashboard]") ||
    (document.querySelector("main h1")?.textContent === "Dashboard" ? document.body : null);
  if (dashboard) {
    for (const section of document.querySelectorAll(".widget[data-topic]")) {
      MediaNestLive.on(section.dataset.topic, () => {
        const current = document.getElementById(section.id);
        if (current) refreshWidget(current);
      });
    }
    // An integration turned on or off changes which widgets exist: reload the page.
    MediaNestLive.on("plugins", () => location.reload());
  }
  const admin = document.querySelector("[data-live-admin]");
  if (admin) {
    MediaNestLive.on("plugins", (event) => {
      const card = admin.querySelector(`[data-plugin="${CSS.escape(event.data.name)}"]`);
      if (!card) return;
      const status = card.querySelector("[data-status]");
      status.textContent = event.data.status;
      status.className = `status status-${event.data.status.replaceAll(" ", "-")}`;
      // Keep the toggle in step, so that it does what its label says.
      const button = card.querySelector("[data-toggle]");
      if (button) {
        button.textContent = event.data.enabled ? "Disable" : "Enable";
        button.setAttribute("aria-pressed", String(event.data.enabled));
        button.form.elements.enabled.value = event.data.enabled ? "0" : "1";
      }
    });
  }
  if (MediaNestLive.handlers.size) MediaNestLive.connect();
});

// Settings whose values an instance offers live (a Sonarr's quality profiles, say): the saved
// instance's fieldset names a JSON route; its fields become choices from the answer.
async function offerChoices(fieldset) {
  let answer;
  try {
    const response = await fetch(fieldset.dataset.optionsUrl, { headers: { Accept: "application/json" } });
    answer = await response.json();
    if (!response.ok) throw new Error(answer.error ? answer.error.message : response.statusText);
  } catch (error) {
    const note = document.createElement("small");
    note.className = "options-note";
    note.textContent = `Could not read the choices from this server: ${error.message}`;
    fieldset.append(note);
    return;
  }
  for (const input of fieldset.querySelectorAll(":scope > label > input[data-options]")) {
    const items = answer[input.dataset.options] || [];
    const select = document.createElement("select");
    select.name = input.name;
    select.append(new Option("(not chosen)", ""));
    for (const item of items) {
      const value = String(item[input.dataset.optionValue]);
      select.append(new Option(String(item[input.dataset.optionLabel]), value, false, value === input.value));
    }
    if (input.value && ![...select.options].some((o) => o.value === input.value)) {
      select.append(new Option(`${input.value} (not on the server)`, input.value, false, true));
    }
    input.replaceWith(select);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const fieldset of document.querySelectorAll("fieldset[data-options-url]")) offerChoices(fieldset);
});

// Requests and notifications, live: the bell's unread count, a request's status and progress
// wherever the page shows it, and new requests for the people who approve them.
function showRequest(data) {
  for (const holder of document.querySelectorAll(`[data-request-id="${CSS.escape(data.id)}"]`)) {
    const status = holder.querySelector("[data-request-status]");
    if (status) {
      status.textContent = data.status_text;
      status.className = `status req-${data.status}`;
    }
    const reason = holder.querySelector("[data-request-reason]");
    if (reason) {
      reason.textContent = data.reason || "";
      reason.hidden = !data.reason;
    }
    const bar = holder.querySelector("[data-request-progress]");
    if (bar) {
      const p = data.progress;
      bar.hidden = !p;
      bar.replaceChildren();
      if (p) {
        const meter = document.createElement("progress");
        meter.max = 100;
        meter.value = p.percent;
        const text = document.createElement("span");
        text.dataset.percent = "";
        text.textContent = `${p.percent}%${p.eta ? ` · done by ${new Date(p.eta).toLocaleTimeString()}` : ""}`;
        bar.append(meter, " ", text);
      }
    }
  }
}

function toast(text, link) {
  const box = document.createElement(link ? "a" : "div");
  if (link) box.href = link;
  box.className = "toast";
  box.setAttribute("role", "status");
  box.textContent = text;
  document.body.append(box);
  setTimeout(() => box.remove(), 8000);
}

function setUnread(count) {
  const badge = document.querySelector("[data-unread-count]");
  if (!badge) return;
  badge.textContent = String(count);
  badge.hidden = !count;
}

async function fillBadges() {
  const slots = [...document.querySelectorAll(".request-badge[data-tmdb-id]")];
  if (!slots.length) return;
  const keys = [...new Set(slots.map((s) => `${s.dataset.mediaType}:${s.dataset.tmdbId}`))];
  for (let i = 0; i < keys.length; i += 100) {
    const response = await fetch(`/api/v1/media/status?ids=${keys.slice(i, i + 100).join(",")}`,
      { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const { statuses } = await response.json();
    for (const slot of slots) {
      const status = statuses[`${slot.dataset.mediaType}:${slot.dataset.tmdbId}`];
      if (!status || status.state === "requestable") continue;
      slot.textContent = status.text;
      slot.className = `request-badge badge badge-${status.state}`;
      slot.dataset.state = status.state;
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  fillBadges();
  if (!document.querySelector("[data-live-me]")) return;
  MediaNestLive.on("me", (event) => {
    if (event.event === "notification") {
      setUnread(event.data.unread);
      toast(`${event.data.subject}: ${event.data.message}`, event.data.link);
    } else if (event.event === "notifications-read") {
      setUnread(event.data.unread);
    } else if (event.event.startsWith("request-")) {
      showRequest(event.data);
    }
  });
  const fresh = document.querySelector("[data-new-requests]");
  let count = 0;
  MediaNestLive.on("requests", (event) => {
    if (event.event === "created" && fresh) {
      count += 1;
      fresh.hidden = false;
      fresh.replaceChildren();
      const link = document.createElement("a");
      link.href = location.href;
      link.textContent = `${count} new request${count === 1 ? "" : "s"}: show`;
      fresh.append(link);
    } else if (event.event !== "deleted") {
      showRequest(event.data);
    }
  });
  if (!MediaNestLive.socket) MediaNestLive.connect();
});
