// The YouTube downloads page: preview, submit, cancel and retry through the JSON API, and live
// progress from the websocket topic "youtube" (events carry ids and numbers; titles and
// reasons are read from the API, which shows each user only their own downloads).
"use strict";

(function youtubeDownloads() {
  const API = "/api/v1/youtube/downloads";
  const ACTIVE = ["waiting", "queued", "downloading"];
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  async function call(method, url, body) {
    const response = await fetch(url, {
      method,
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = answer.error || {};
      const details = (error.details || []).map((d) => d.message).join("; ");
      throw new Error(error.message ? error.message + (details ? ` (${details})` : "") : response.statusText);
    }
    return answer;
  }

  function text(seconds) {
    if (seconds == null) return "";
    const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
    return m ? `${m} min ${s} s` : `${s} s`;
  }

  function field(item, name) { return item.querySelector(`[data-field="${name}"]`); }

  function showProgress(item, data) {
    const percent = Number(data.percent || 0);
    field(item, "bar").value = percent;
    field(item, "bar").textContent = `${Math.round(percent)} %`;
    field(item, "percent").textContent = `${Math.round(percent)} %`;
    field(item, "item").textContent = data.items > 1 ? ` · item ${data.item} of ${data.items}` : "";
    if ("speed" in data) {
      const parts = [];
      if (data.speed) parts.push(`${(data.speed / 1024).toFixed(0)} KiB/s`);
      if (data.eta != null) parts.push(`${text(data.eta)} left`);
      field(item, "speed").textContent = parts.length ? ` · ${parts.join(" · ")}` : "";
    }
  }

  function showStatus(item, status) {
    item.dataset.status = status;
    const badge = field(item, "status");
    badge.textContent = status;
    badge.className = `status yt-status-${status}`;
    item.querySelector('[data-action="cancel"]').hidden = !ACTIVE.includes(status);
    item.querySelector('[data-action="retry"]').hidden = !["failed", "cancelled"].includes(status);
    if (status !== "downloading") field(item, "speed").textContent = "";
  }

  function fill(item, d) {
    item.dataset.downloadId = d.id;
    field(item, "title").textContent = d.title || d.url;
    field(item, "bar").setAttribute("aria-label", `Progress of ${d.title || d.url}`);
    const reason = field(item, "reason");
    reason.textContent = d.reason || "";
    reason.hidden = !d.reason;
    showProgress(item, d);
    showStatus(item, d.status);
  }

  function rowFor(list, d) {
    let item = list.querySelector(`[data-download-id="${CSS.escape(d.id)}"]`);
    if (!item) {
      const template = list.querySelector("li.yt-download") || null;
      item = template ? template.cloneNode(true) : null;
      if (!item) return null;
      list.prepend(item);
    }
    return item;
  }

  async function refresh(list, id) {
    try {
      const d = await call("GET", `${API}/${encodeURIComponent(id)}`);
      const item = rowFor(list, d);
      if (item) fill(item, d);
      else location.reload();
    } catch (_) { /* not ours, or gone */ }
  }

  // Registered now, before the page's socket opens (at DOMContentLoaded), so that it subscribes.
  let onEvent = null;
  MediaNestLive.on("youtube", (event) => { if (onEvent) onEvent(event); });

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.querySelector("[data-youtube-form]");
    const list = document.querySelector("[data-live-youtube]");
    if (!form || !list) return;
    const error = field(form, "error");
    const preview = document.querySelector('[data-field="preview"]');
    let previewTitle = "";

    function fail(message) { error.textContent = message; error.hidden = !message; }
    function body() {
      return {
        url: form.elements.url.value.trim(),
        quality: form.elements.quality.value,
        container: form.elements.container.value,
        audio_only: form.elements.audio_only.checked,
        title: previewTitle,
      };
    }

    form.querySelector('[data-action="preview"]').addEventListener("click", async () => {
      fail("");
      preview.hidden = false;
      preview.textContent = "Looking…";
      try {
        const p = await call("POST", "/api/v1/youtube/preview", { url: form.elements.url.value.trim() });
        previewTitle = p.title;
        preview.replaceChildren();
        if (p.thumbnail && p.thumbnail.startsWith("https:")) {
          const img = document.createElement("img");
          img.src = p.thumbnail; img.alt = ""; img.width = 240;
          preview.append(img);
        }
        const h = document.createElement("h2");
        h.textContent = p.title;
        const meta = document.createElement("p");
        meta.className = "muted";
        meta.textContent = [p.kind, p.channel, p.duration ? text(p.duration) : "", p.items.length ? `${p.items.length} videos` : ""]
          .filter(Boolean).join(" · ");
        preview.append(h, meta);
        if (p.items.length) {
          const ol = document.createElement("ol");
          for (const it of p.items) {
            const li = document.createElement("li");
            li.textContent = it.duration ? `${it.title} (${text(it.duration)})` : it.title;
            ol.append(li);
          }
          preview.append(ol);
        }
      } catch (e) {
        preview.hidden = true;
        fail(e.message);
      }
    });
    form.elements.url.addEventListener("input", () => { previewTitle = ""; });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      fail("");
      try {
        const d = await call("POST", API, body());
        form.elements.url.value = "";
        previewTitle = "";
        if (!list.querySelector("li.yt-download")) { location.reload(); return; }
        const item = rowFor(list, d);
        fill(item, d);
        document.querySelector('[data-field="none"]').hidden = true;
      } catch (e) {
        fail(e.message);
      }
    });

    list.addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button) return;
      const item = button.closest("[data-download-id]");
      const id = encodeURIComponent(item.dataset.downloadId);
      try {
        const d = button.dataset.action === "cancel"
          ? await call("DELETE", `${API}/${id}`)
          : await call("POST", `${API}/${id}/retry`);
        fill(item, d);
      } catch (e) {
        fail(e.message);
      }
    });

    onEvent = (event) => {
      const id = event.data.id;
      const item = list.querySelector(`[data-download-id="${CSS.escape(id)}"]`);
      if (event.event === "progress") {
        if (item) { showProgress(item, event.data); if (item.dataset.status !== "downloading") showStatus(item, "downloading"); }
        return;
      }
      if (item) { showProgress(item, event.data); showStatus(item, event.data.status); }
      refresh(list, id);
    };
  });
})();
