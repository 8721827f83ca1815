"use strict";

(() => {
  const { api, el, time, message, live } = con;
  const pk = document.body.dataset.pk;
  const dn = document.body.dataset.dn;
  const base = "/api/devices/" + encodeURIComponent(pk) + "/" + encodeURIComponent(dn);
  const chartBox = document.getElementById("chart");
  const propertySelect = document.getElementById("chart-property");
  const windowSelect = document.getElementById("chart-window");
  let units = {};
  let plot = null;

  function usePublishTopic(topic) {
    document.getElementById("pub-topic").value = topic;
    document.getElementById("pub-payload").focus();
  }

  function topicRows(rows) {
    return rows.map((t) => {
      const concrete = t.canPublishTo && !/[+#]/.test(t.topic);
      const button = concrete ? el("button", { type: "button", class: "link" }, "publish message") : null;
      if (button) button.addEventListener("click", () => usePublishTopic(t.topic));
      return el("tr", {}, el("td", {}, el("code", {}, t.topic)), el("td", {}, t.permission),
        el("td", {}, button));
    });
  }

  function showTopics(rows) {
    document.querySelector("#topic-list tbody").replaceChildren(
      ...topicRows(rows.filter((t) => t.kind === "custom")));
    document.querySelector("#system-topic-list tbody").replaceChildren(
      ...topicRows(rows.filter((t) => t.kind === "system")));
    document.getElementById("pub-topics").replaceChildren(...rows
      .filter((t) => t.canPublishTo && !/[+#]/.test(t.topic))
      .map((t) => el("option", { value: t.topic })));
  }

  function showProperties(props) {
    const names = Object.keys(props).sort();
    document.querySelector("#properties tbody").replaceChildren(...names.map((name) => el("tr",
      { dataset: { property: name } },
      el("td", {}, name), el("td", { class: "value" }, JSON.stringify(props[name].value)),
      el("td", {}, units[name] || ""), el("td", {}, time(props[name].time)))));
    const chosen = propertySelect.value;
    propertySelect.replaceChildren(...names.map((name) => el("option", { value: name }, name)));
    if (names.includes(chosen)) propertySelect.value = chosen;
  }

  async function loadDevice() {
    const { device } = await api("GET", base);
    units = device.units;
    const status = document.getElementById("device-status");
    status.textContent = device.status;
    status.className = "status " + device.status;
    document.getElementById("device-seen").textContent = time(device.lastSeen);
    document.getElementById("device-firmware").textContent = device.firmwareVersion || "-";
    document.getElementById("device-ip").textContent = device.ip || "-";
    showTopics(device.topics);
    showProperties(device.properties);
  }

  function chartOptions(unit, name) {
    return {
      width: Math.max(chartBox.clientWidth, 400),
      height: 260,
      scales: { x: { time: true } },
      series: [{ label: "time", value: (u, v) => (v === null ? "-" : time(v * 1000)) }, {
        label: name + (unit ? " (" + unit + ")" : ""), stroke: "#1f6feb", width: 2,
        points: { show: true, size: 6 },
        value: (u, v) => (v === null || v === undefined ? "-" : v + (unit ? " " + unit : "")),
      }],
      axes: [{ label: "time" }, { label: unit || "value" }],
    };
  }

  async function loadChart() {
    const name = propertySelect.value;
    if (!name) return;
    const span = Number(windowSelect.value);
    const since = span ? Date.now() - span : 0;
    const reply = await api("GET", base + "/history?identifier=" + encodeURIComponent(name) + "&since=" + since);
    const data = [reply.points.map((p) => p[0] / 1000), reply.points.map((p) => p[1])];
    if (plot === null || plot.series[1].label !== chartOptions(reply.unit, name).series[1].label) {
      if (plot) plot.destroy();
      plot = new uPlot(chartOptions(reply.unit, name), data, chartBox);
    } else {
      plot.setData(data);
    }
    chartBox.dataset.points = String(reply.points.length);
    chartBox.dataset.property = name;
    chartBox.dataset.last = reply.points.length ? String(reply.points[reply.points.length - 1][1]) : "";
  }

  function addReply(request, reply) {
    const body = document.querySelector("#replies tbody");
    body.prepend(el("tr", {}, el("td", {}, time(Date.now())), el("td", {}, request),
      el("td", { class: "code" }, reply.code === undefined ? "-" : String(reply.code)),
      el("td", {}, el("code", {}, JSON.stringify(reply)))));
  }

  async function call(path, params, request) {
    try {
      const reply = await api("POST", base + path, params);
      addReply(request, reply.reply);
    } catch (err) {
      addReply(request, { error: err.message });
    }
  }

  function parseJson(text) {
    try { return JSON.parse(text); } catch (err) { return text; }  // a bare word is a string
  }

  document.getElementById("set-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = document.getElementById("set-identifier").value.trim();
    const value = parseJson(document.getElementById("set-value").value);
    call("/property-set", { params: { [id]: value } }, "set " + id + "=" + JSON.stringify(value));
  });

  document.getElementById("service-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = document.getElementById("service-identifier").value.trim();
    const params = parseJson(document.getElementById("service-params").value || "{}");
    call("/service", { identifier: id, params }, "service " + id);
  });

  document.getElementById("pub-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    try {
      const reply = await api("POST", "/api/pub", {
        topic: form.topic.value, payload: form.payload.value, qos: Number(form.qos.value),
      });
      message("pub-message", "Published to " + reply.topic + " (QoS " + reply.qos + "): " + reply.status);
    } catch (err) {
      message("pub-message", err.message, true);
    }
  });

  document.getElementById("device-secret-show").addEventListener("click", async (event) => {
    const reply = await api("GET", base + "/secret");
    document.getElementById("device-secret").textContent = reply.deviceSecret || "(none)";
    event.target.hidden = true;
  });

  propertySelect.addEventListener("change", loadChart);
  windowSelect.addEventListener("change", loadChart);
  let pending = null;
  live({ productKey: pk, deviceName: dn }, (row) => {
    if (row.type !== "status" && row.type !== "up") return;
    clearTimeout(pending);
    pending = setTimeout(() => loadDevice().then(loadChart), 100);
  });
  loadDevice().then(loadChart);
})();
