// The asgi-cache dashboard: polls data.json (served next to this file) and draws it.
// Read-only; every value goes into the page as text (textContent), never as markup.
"use strict";

(function () {
  const HISTORY = 120; // points kept for the hit-rate chart
  const history = [];
  const base = location.pathname.endsWith("/") ? location.pathname : location.pathname + "/";
  let refresh = 2;

  function $(id) {
    return document.getElementById(id);
  }

  function text(id, value) {
    $(id).textContent = value === null || value === undefined ? "-" : String(value);
  }

  function percent(ratio) {
    return (ratio * 100).toFixed(1) + " %";
  }

  function bytes(n) {
    if (n === null || n === undefined) return "-";
    if (n === 0) return "no limit";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return n.toFixed(i ? 1 : 0) + " " + units[i];
  }

  function rows(tableId, items, cells) {
    const body = $(tableId).tBodies[0];
    body.replaceChildren();
    for (const item of items) {
      const tr = document.createElement("tr");
      for (const value of cells(item)) {
        const td = document.createElement("td");
        td.textContent = value === null || value === undefined ? "-" : String(value);
        if (typeof value === "number") td.className = "num";
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  function chart(points) {
    const svg = $("hit-rate-chart");
    const ns = "http://www.w3.org/2000/svg";
    svg.replaceChildren();
    for (const y of [0, 60, 120]) {
      const line = document.createElementNS(ns, "line");
      line.setAttribute("x1", "0");
      line.setAttribute("x2", "600");
      line.setAttribute("y1", String(y));
      line.setAttribute("y2", String(y));
      svg.appendChild(line);
    }
    if (points.length < 1) return;
    const step = 600 / Math.max(HISTORY - 1, 1);
    const start = 600 - step * (points.length - 1);
    const coords = points.map((p, i) => (start + i * step).toFixed(1) + "," + (120 - p * 120).toFixed(1));
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", coords.join(" "));
    svg.appendChild(line);
  }

  function recordHitRate(data) {
    const c = data.counts;
    const answered = c.hits + c.stale;
    const looked = c.hits + c.stale + c.misses;
    const last = history.length ? history[history.length - 1] : null;
    history.push({ answered: answered, looked: looked });
    if (history.length > HISTORY + 1) history.shift();
    const rates = [];
    for (let i = 1; i < history.length; i += 1) {
      const d = history[i].looked - history[i - 1].looked;
      const a = history[i].answered - history[i - 1].answered;
      rates.push(d > 0 ? a / d : rates.length ? rates[rates.length - 1] : data.hit_rate);
    }
    if (!last) rates.push(data.hit_rate);
    chart(rates);
  }

  function render(data) {
    refresh = data.refresh || refresh;
    text("namespace", data.namespace);
    text("backend", data.backend);
    text("status", data.status || "not probed");
    $("status").className = "status " + (data.status || "");
    text("ping", data.latency_ms === null || data.latency_ms === undefined ? null : data.latency_ms + " ms");
    text("updated", new Date(data.time * 1000).toLocaleTimeString());
    text("hit-rate", percent(data.hit_rate));
    const c = data.counts;
    text("counts", c.hits + " hits, " + c.stale + " stale, " + c.misses + " misses, " +
      c.loads + " loads, " + c.errors + " errors");
    recordHitRate(data);

    const lat = data.latency;
    rows("latency", [["hit", lat.hit], ["origin", lat.origin]], (r) => [r[0], r[1].p50, r[1].p90, r[1].p99, r[1].count]);
    rows("routes-traffic", data.routes_by_traffic, (r) => [r.route, r.cached, r.origin, r.hit_p50_ms, r.origin_p50_ms]);
    rows("routes-misses", data.routes_by_misses, (r) => [r.route, r.origin, r.cached, r.origin_p50_ms]);
    rows("requests", data.requests, (r) => [r.layer, r.result, r.reason, r.count]);

    const m = data.memory;
    text("memory-used", bytes(m.used));
    text("memory-max", bytes(m.max));
    text("memory-policy", m.policy);
    text("evictions", m.evictions);
    const bar = $("memory-bar");
    const share = m.max ? Math.min(1, m.used / m.max) : 0;
    bar.style.width = (share * 100).toFixed(1) + "%";
    bar.className = share > 0.9 ? "full" : "";

    const b = data.breaker;
    text("breaker", b ? b.state + " (" + b.transitions + " transitions, " + b.short_circuited + " calls skipped)" : "none");
    const inv = data.invalidations;
    text("pending", inv.pending);
    text("overflows", inv.overflows);
    text("invalidation-kinds", Object.entries(inv.by_kind).map((e) => e[0] + " " + e[1]).join(" \u00b7 ") || "none yet");
    const l1 = data.l1;
    text("l1", l1 ? l1.entries + " entries, " + l1.hits + " hits, " + (l1.evictions || 0) + " evictions" : "off");
    const wb = data.write_behind ? Object.entries(data.write_behind) : [];
    rows("write-behind", wb, (e) => [e[0], e[1].backlog, e[1].lag_seconds, e[1].dead_letters, e[1].applied]);
    $("write-behind-none").hidden = wb.length > 0;

    const warnings = $("warnings");
    warnings.replaceChildren();
    for (const w of data.warnings) {
      const p = document.createElement("p");
      p.textContent = "\u26a0 " + w;
      warnings.appendChild(p);
    }
    warnings.hidden = data.warnings.length === 0;
  }

  async function poll() {
    try {
      const response = await fetch(base + "data.json", { cache: "no-store" });
      if (response.ok) render(await response.json());
      else text("updated", "error " + response.status);
    } catch (err) {
      text("updated", "unreachable");
    }
    setTimeout(poll, refresh * 1000);
  }

  poll();
})();
