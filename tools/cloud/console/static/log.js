"use strict";

(() => {
  const { api, el, time, live } = con;
  const body = document.querySelector("#log tbody");
  const form = document.getElementById("log-form");
  const KIND = { up: "device → cloud", down: "cloud → device", api: "API", status: "device status" };
  const MAX_ROWS = 500;
  let source = null;

  function filters() {
    const f = {};
    const device = document.getElementById("log-device").value;
    if (device) {
      const [pk, ...rest] = device.split("/");
      f.productKey = pk;
      f.deviceName = rest.join("/");
    }
    const fields = { type: "log-type", status: "log-status", text: "log-text", messageId: "log-message-id" };
    for (const [key, id] of Object.entries(fields)) {
      const value = document.getElementById(id).value.trim();
      if (value) f[key] = value;
    }
    const span = Number(document.getElementById("log-window").value);
    if (span) f.since = String(Date.now() - span);
    return f;
  }

  function preview(text) {
    text = (text || "").replace(/\s+/g, " ");
    return text.length > 90 ? text.slice(0, 87) + "..." : text;
  }

  function pretty(text) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (err) { return text || ""; }
  }

  function showDetail(row) {
    const set = (id, text) => { document.getElementById(id).textContent = text; };
    set("detail-time", time(row.time));
    set("detail-id", row.messageId);
    set("detail-device", row.deviceName ? row.productKey + "/" + row.deviceName : "-");
    set("detail-type", KIND[row.type] || row.type);
    set("detail-topic", row.topic || "-");
    set("detail-status", row.status);
    set("detail-content", pretty(row.content));
    document.getElementById("detail").showModal();
  }

  function rowNode(row) {
    const button = el("button", { type: "button", class: "link" }, "details");
    button.addEventListener("click", () => showDetail(row));
    return el("tr", { dataset: { messageId: row.messageId, type: row.type, status: row.status } },
      el("td", {}, time(row.time)),
      el("td", { class: "mid" }, row.messageId),
      el("td", {}, row.deviceName || "-"),
      el("td", {}, KIND[row.type] || row.type),
      el("td", { class: "topic" }, row.topic || "-"),
      el("td", { class: "content" }, preview(row.content)),
      el("td", { class: "status" }, row.status),
      el("td", {}, button));
  }

  async function search() {
    const f = filters();
    history.replaceState(null, "", "?" + new URLSearchParams(f).toString());
    if (source) source.close();
    body.replaceChildren();
    document.body.dataset.live = "off";
    const reply = await api("GET", "/api/log?" + new URLSearchParams(f).toString());
    body.replaceChildren(...reply.rows.reverse().map(rowNode));
    source = live(f, (row) => {
      body.prepend(rowNode(row));
      while (body.children.length > MAX_ROWS) body.lastChild.remove();
    });
  }

  async function loadDevices() {
    const reply = await api("GET", "/api/devices");
    const select = document.getElementById("log-device");
    select.replaceChildren(el("option", { value: "" }, "all"), ...reply.devices.map((d) =>
      el("option", { value: d.productKey + "/" + d.deviceName }, d.deviceName + " (" + d.productKey + ")")));
  }

  function fromUrl() {  // a filtered view is a link: /log?type=up&text=...
    const q = new URLSearchParams(location.search);
    if (q.get("productKey") && q.get("deviceName")) {
      document.getElementById("log-device").value = q.get("productKey") + "/" + q.get("deviceName");
    }
    const fields = { type: "log-type", status: "log-status", text: "log-text", messageId: "log-message-id" };
    for (const [key, id] of Object.entries(fields)) if (q.get(key)) document.getElementById(id).value = q.get(key);
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); search(); });
  loadDevices().then(fromUrl).then(search);
})();
