// Shared helpers of the console pages. Every text from the server goes into the page through
// textContent (el() below), never as HTML.
"use strict";

const con = (() => {
  async function api(method, path, body) {
    const init = { method, headers: {} };
    if (body === undefined && method !== "GET") body = {};  // changes are JSON (auth.py)
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("logged out");
    }
    const reply = await response.json();
    if (!reply.ok) throw new Error(reply.error || "HTTP " + response.status);
    return reply;
  }

  // el("td", {class: "x"}, "text", otherNode): strings become text nodes.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function pad(n, width) { return String(n).padStart(width || 2, "0"); }

  function time(ms) {
    if (!ms) return "-";
    const d = new Date(ms);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." +
      pad(d.getMilliseconds(), 3);
  }

  function message(id, text, isError) {
    const node = document.getElementById(id);
    node.textContent = text;
    node.classList.toggle("error", !!isError);
  }

  // Live log rows matching ``filters`` (see /api/events); the header shows the stream's state.
  function live(filters, onRow) {
    const query = new URLSearchParams(filters).toString();
    const source = new EventSource("/api/events?" + query);
    const badge = document.getElementById("live");
    badge.hidden = false;
    source.onopen = () => {
      badge.textContent = "live";
      badge.className = "live on";
      document.body.dataset.live = "on";
    };
    source.onerror = () => {
      badge.textContent = "reconnecting";
      badge.className = "live off";
      document.body.dataset.live = "off";
    };
    source.addEventListener("row", (event) => onRow(JSON.parse(event.data)));
    return source;
  }

  document.getElementById("logout").addEventListener("click", async () => {
    await fetch("/logout", { method: "POST", headers: { "Content-Type": "application/json" },
      body: "{}" });
    location.href = "/login";
  });

  return { api, el, time, message, live };
})();
