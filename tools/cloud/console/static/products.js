"use strict";

(() => {
  const { api, el, time, message } = con;
  const body = document.querySelector("#products tbody");

  function secretCell(pk) {
    const cell = el("td", { class: "secret" });
    const show = el("button", { type: "button", class: "link", dataset: { pk } }, "show");
    show.addEventListener("click", async () => {
      const reply = await api("GET", "/api/products/" + encodeURIComponent(pk) + "/secret");
      cell.replaceChildren(el("code", {}, reply.productSecret));
    });
    cell.append("****** ", show);
    return cell;
  }

  async function load() {
    const reply = await api("GET", "/api/products");
    body.replaceChildren(...reply.products.map((p) => el("tr", { dataset: { pk: p.productKey } },
      el("td", {}, p.name),
      el("td", {}, el("code", {}, p.productKey)),
      secretCell(p.productKey),
      el("td", {}, p.nodeType),
      el("td", {}, p.dataFormat),
      el("td", {}, p.authType),
      el("td", {}, el("a", { href: "/devices?productKey=" + encodeURIComponent(p.productKey) },
        String(p.devices))),
      el("td", {}, time(p.created)))));
  }

  document.getElementById("product-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    try {
      const reply = await api("POST", "/api/products", {
        name: form.name.value, nodeType: form.nodeType.value,
        dataFormat: form.dataFormat.value, authType: form.authType.value,
      });
      message("product-message", "Created " + reply.name + ": ProductKey " + reply.productKey);
      form.name.value = "";
      await load();
    } catch (err) {
      message("product-message", err.message, true);
    }
  });

  load();
})();
