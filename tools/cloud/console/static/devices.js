"use strict";

(() => {
  const { api, el, time, message, live } = con;
  const body = document.querySelector("#devices tbody");
  const filter = document.getElementById("device-filter");
  // Characters that read alike in many fonts: the cause of a mistyped secret.
  const LOOKALIKE = { I: "capital i", l: "small L", 1: "digit one", O: "capital o", 0: "digit zero" };
  const FIELDS = ["productKey", "deviceName", "deviceSecret"];
  const LABELS = { productKey: "ProductKey", deviceName: "DeviceName", deviceSecret: "DeviceSecret" };

  async function loadProducts() {
    const reply = await api("GET", "/api/products");
    const wanted = new URLSearchParams(location.search).get("productKey") || "";
    const options = (selected) => reply.products.map((p) =>
      el("option", p.productKey === selected ? { value: p.productKey, selected: "" }
        : { value: p.productKey }, p.name + " (" + p.productKey + ")"));
    document.getElementById("device-product").replaceChildren(...options(wanted));
    filter.replaceChildren(el("option", { value: "" }, "all"), ...options(wanted));
  }

  function deviceUrl(d) {
    return "/devices/" + encodeURIComponent(d.productKey) + "/" + encodeURIComponent(d.deviceName);
  }

  function actions(d) {
    const path = "/api" + deviceUrl(d);
    const toggle = el("button", { type: "button", class: "toggle" }, d.status === "disabled" ? "Enable" : "Disable");
    toggle.addEventListener("click", async () => {
      await api("POST", path + "/enabled", { enabled: d.status === "disabled" });
      await load();
    });
    const remove = el("button", { type: "button", class: "delete" }, "Delete");
    remove.addEventListener("click", async () => {
      if (!confirm("Delete device " + d.deviceName + "?")) return;
      await api("DELETE", path);
      await load();
    });
    return el("td", {}, toggle, " ", remove);
  }

  async function load() {
    const query = filter.value ? "?productKey=" + encodeURIComponent(filter.value) : "";
    const reply = await api("GET", "/api/devices" + query);
    body.replaceChildren(...reply.devices.map((d) => el("tr",
      { dataset: { pk: d.productKey, dn: d.deviceName, status: d.status } },
      el("td", {}, el("a", { href: deviceUrl(d) }, d.deviceName)),
      el("td", {}, el("code", {}, d.productKey)),
      el("td", { class: "status " + d.status }, d.status),
      el("td", { class: "seen" }, time(d.lastSeen)),
      el("td", { class: "firmware" }, d.firmwareVersion || "-"),
      el("td", {}, d.ip || "-"),
      el("td", {}, d.status === "disabled" ? "no" : "yes"),
      actions(d))));
  }

  function lookalikes(triple) {
    const found = [];
    for (const field of FIELDS) {
      [...triple[field]].forEach((c, i) => {
        if (c in LOOKALIKE) found.push(LABELS[field] + " has " + LOOKALIKE[c] + " '" + c + "' at position " + (i + 1));
      });
    }
    return found;
  }

  function showTriple(triple) {
    const pre = document.getElementById("triple-text");
    pre.replaceChildren();
    for (const field of FIELDS) {
      pre.append(LABELS[field].padEnd(14));
      for (const c of triple[field]) pre.append(c in LOOKALIKE ? el("mark", { title: LOOKALIKE[c] }, c) : c);
      pre.append("\n");
    }
    const warn = document.getElementById("lookalike");
    const found = lookalikes(triple);
    warn.hidden = found.length === 0;
    warn.textContent = "Look-alike characters (I l 1 O 0), check them when you type the triple: " + found.join("; ") + ".";
    document.getElementById("triple").hidden = false;
    document.getElementById("triple-copied").textContent = "";
  }

  document.getElementById("triple-copy").addEventListener("click", async () => {
    const text = document.getElementById("triple-text").textContent;
    const note = document.getElementById("triple-copied");
    try {
      await navigator.clipboard.writeText(text);
      note.textContent = "Copied.";
    } catch (err) {
      const range = document.createRange();
      range.selectNodeContents(document.getElementById("triple-text"));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      note.textContent = document.execCommand("copy") ? "Copied." : "Selected: press Ctrl+C.";
    }
  });

  document.getElementById("device-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    try {
      const triple = await api("POST", "/api/devices",
        { productKey: form.productKey.value, deviceName: form.deviceName.value });
      message("device-message", "Added " + triple.deviceName + ". Keep the DeviceSecret: it is the device's password.");
      showTriple(triple);
      form.deviceName.value = "";
      await load();
    } catch (err) {
      message("device-message", err.message, true);
    }
  });

  filter.addEventListener("change", load);
  let pending = null;
  live({}, (row) => {  // a status or uplink row changes state, last seen or firmware
    if (row.type !== "status" && row.type !== "up") return;
    clearTimeout(pending);
    pending = setTimeout(load, 100);
  });
  loadProducts().then(load);
})();
