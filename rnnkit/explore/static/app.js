// rnnkit explore: the page. Plain JavaScript and SVG, no build step, no network beyond this
// server. User text only ever reaches the page through textContent (never innerHTML).
"use strict";

const state = { run: 0, info: null, colour: null, text: "", hoverTimer: null,
                hoverAbort: null, source: null, units: null, selection: null };
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(path, body, signal) {
  const sep = path.includes("?") ? "&" : "?";
  const options = body === undefined ? { signal } : {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body), signal };
  const response = await fetch(`${path}${sep}run=${state.run}`, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

// -- colours --------------------------------------------------------------------------------
function background(value, scale, max) {
  if (value === null || value === undefined || !isFinite(value)) return "#ffffff";
  let v;
  if (scale === "gate") v = 2 * value - 1;           // [0, 1] -> [-1, 1]
  else if (scale === "surprise") v = Math.min(1, value / max);  // 0 white .. max red
  else v = Math.max(-1, Math.min(1, value));
  const fade = Math.round(255 * (1 - Math.abs(v)));
  return v >= 0 ? `rgb(255,${fade},${fade})` : `rgb(${fade},${fade},255)`;
}

function shown(token) { return token === "\n" ? "\u21b5\n" : token; }

function renderTokens(box, tokens, values, scale) {
  box.replaceChildren();
  const finite = values.filter((v) => v !== null && isFinite(v));
  const max = Math.max(1e-6, ...finite);
  tokens.forEach((token, i) => {
    const span = el("span", shown(token), "tok");
    span.dataset.i = i;
    span.style.background = background(values[i], scale, max);
    if (/^rgb\((\d+),\1,255\)$/.test(span.style.background.replace(/ /g, "")) &&
        +span.style.background.match(/\d+/)[0] < 110) span.style.color = "#fff";
    span.dataset.value = values[i] === null ? "" : values[i];
    box.appendChild(span);
  });
}

// -- run and controls -----------------------------------------------------------------------
function fillSelect(select, options, keep) {
  const previous = select.value;
  select.replaceChildren();
  for (const [value, label] of options) {
    const option = el("option", label);
    option.value = value;
    select.appendChild(option);
  }
  if (keep && options.some(([value]) => String(value) === previous)) select.value = previous;
}

async function loadRun() {
  const info = await api("/api/run");
  state.info = info;
  $("run-name").textContent = info.name;
  $("run-summary").textContent = `${info.cell.toUpperCase()}, ${info.layers} layer(s) of ` +
    `${info.hidden} units, ${info.level}-level vocabulary of ${info.vocab_size} tokens; ` +
    `texts up to ${info.max_chars} characters.`;
  if (info.runs.length > 1) {
    $("run-choice").hidden = false;
    fillSelect($("run-select"), info.runs.map((name, i) => [i, `${i}: ${name}`]), false);
    $("run-select").value = state.run;
  }
  const language = info.kind === "language_model";
  for (const tab of document.querySelectorAll(".tab")) {
    const view = tab.dataset.view;
    tab.hidden = view === "health" ? false : view === "classify" ? info.kind !== "classifier"
      : view === "forecast" ? info.kind !== "forecaster" : !language;
  }
  if (!language && info.kind === "classifier") $("run-summary").textContent =
    `Classifier: ${info.cell.toUpperCase()}, ${info.layers} layer(s) of ${info.hidden} units` +
    `${info.directions > 1 ? ", bidirectional" : ""}; classes ${info.classes.join(", ")}.`;
  if (info.kind === "forecaster") {
    $("run-summary").textContent = `Forecaster of ${info.target}: ${info.cell.toUpperCase()}, ` +
      `${info.layers} layer(s) of ${info.hidden} units, lookback ${info.lookback}, horizon ` +
      `${info.horizon}${info.quantiles.length ? `, quantiles ${info.quantiles.join(", ")}` : ""}.`;
    const test = info.origins && (info.origins.test || info.origins.val);
    if (test && !$("origin").value) $("origin").value = test[0];
  }
  const layers = [...Array(info.layers).keys()].map((i) => [i, i]);
  for (const select of document.querySelectorAll(".layer-select")) fillSelect(select, layers, true);
  const states = info.has_cell ? [["activation", "tanh(c_t)"], ["cell", "c_t"], ["hidden", "h_t"]]
    : [["hidden", "h_t"]];
  const gates = info.gates.map((g) => [g, `${g} gate`]);
  fillSelect($("quantity"), [["surprise", "surprise (-log p)"], ...gates, ...states], true);
  fillSelect($("units-quantity"), [...states, ...gates], true);
  fillSelect($("sample-gate"), info.gates.length ? info.gates.map((g) => [g, `${g} gate (mean)`])
    : [["none", "(no gates)"]], true);
  $("unit").max = info.hidden - 1;
}

// -- Text view ------------------------------------------------------------------------------
async function colourText() {
  const text = $("text-input").value;
  if (!text) { $("tokens").replaceChildren(); return; }
  const started = performance.now();
  try {
    const data = await api("/api/colour", { text, layer: +$("layer").value,
      quantity: $("quantity").value, unit: +$("unit").value });
    state.colour = data;
    state.text = text;
    renderTokens($("tokens"), data.tokens, data.values, data.scale);
    $("text-status").textContent = `${data.tokens.length} tokens, ` +
      `${Math.round(performance.now() - started)} ms`;
    showError("");
  } catch (problem) {
    showError(problem.message);
  }
}

function valueTable(rows, header) {
  const table = el("table");
  const head = el("tr");
  header.forEach((h) => head.appendChild(el("th", h)));
  table.appendChild(head);
  for (const row of rows) {
    const tr = el("tr");
    row.forEach((cell, j) => {
      const td = el("td", cell.text, j === 0 ? "name" : "");
      for (const [key, value] of Object.entries(cell.data || {})) td.dataset[key] = value;
      tr.appendChild(td);
    });
    table.appendChild(tr);
  }
  return table;
}

function unitBars(values, unit, low, high) {
  const width = 330, height = 34;
  const chart = svg("svg", { width, height, class: "bars" });
  const step = width / values.length;
  values.forEach((value, i) => {
    const share = Math.max(0, Math.min(1, (value - low) / (high - low)));
    chart.appendChild(svg("rect", { x: i * step, y: height * (1 - share), width: Math.max(1, step - 0.3),
      height: height * share, fill: i === unit ? "#c00" : "#678" }));
  });
  return chart;
}

async function hoverToken(i) {
  if (state.hoverAbort) state.hoverAbort.abort();
  const controller = new AbortController();
  state.hoverAbort = controller;
  const unit = +$("unit").value;
  try {
    const data = await api("/api/token", { text: state.text, layer: +$("layer").value,
      position: i }, controller.signal);
    const panel = $("hover");
    panel.replaceChildren();
    panel.appendChild(el("h3", `token ${i}: ${JSON.stringify(data.token)}`));
    panel.appendChild(el("p", `unit ${unit} of layer ${$("layer").value}:`, "note"));
    const rows = Object.entries(data.gates).map(([name, values]) => [
      { text: name }, { text: values[unit].toFixed(4), data: { gate: name, value: values[unit] } }]);
    if (data.cell) rows.push([{ text: "c_t" }, { text: data.cell[unit].toFixed(4),
      data: { gate: "cell_state", value: data.cell[unit] } }]);
    rows.push([{ text: "h_t" }, { text: data.hidden[unit].toFixed(4),
      data: { gate: "hidden", value: data.hidden[unit] } }]);
    const gates = valueTable(rows, ["", "value"]);
    gates.id = "hover-gates";
    panel.appendChild(gates);
    for (const [name, values] of Object.entries(data.gates)) {
      panel.appendChild(el("div", `${name}, all ${values.length} units:`, "note"));
      panel.appendChild(unitBars(values, unit, name === "cell" || name === "new" ? -1 : 0, 1));
    }
    panel.appendChild(el("p", "next token:", "note"));
    const top = valueTable(data.top.map(([token, p]) => [{ text: JSON.stringify(token) },
      { text: p.toFixed(3) }]), ["token", "p"]);
    top.id = "hover-top";
    panel.appendChild(top);
    const spans = $("tokens").querySelectorAll(".tok");
    // null: the gradient overflowed (an exploding one); shaded as the strongest
    const most = Math.max(1e-12, ...data.connectivity.filter((v) => v !== null));
    spans.forEach((span, j) => {
      const value = data.connectivity[j];
      const share = j > i ? 0 : value === null ? 1 : value / most;
      span.style.boxShadow = share > 0.02 ? `inset 0 -5px 0 rgba(0,140,0,${share.toFixed(3)})` : "";
    });
  } catch (problem) {
    if (problem.name !== "AbortError") showError(problem.message);
  }
}

function setupText() {
  let timer = null;
  const later = () => { clearTimeout(timer); timer = setTimeout(colourText, 250); };
  $("text-input").addEventListener("input", later);
  for (const id of ["quantity", "layer", "unit"]) $(id).addEventListener("change", colourText);
  $("tokens").addEventListener("mouseover", (event) => {
    const span = event.target.closest(".tok");
    if (!span) return;
    $("tokens").querySelectorAll(".hovered").forEach((s) => s.classList.remove("hovered"));
    span.classList.add("hovered");
    clearTimeout(state.hoverTimer);
    state.hoverTimer = setTimeout(() => hoverToken(+span.dataset.i), 60);
  });
}

// -- Units view -----------------------------------------------------------------------------
function trace(values, feature) {
  const width = 520, height = 46;
  const chart = svg("svg", { width, height });
  const low = Math.min(...values), high = Math.max(...values);
  const x = (i) => (i / Math.max(1, values.length - 1)) * width;
  const y = (v) => height - 2 - ((v - low) / Math.max(1e-9, high - low)) * (height - 4);
  feature.forEach((f, i) => {
    if (f) chart.appendChild(svg("rect", { x: x(i), y: 0, width: Math.max(1, width / values.length),
      height, fill: "#fde9b8" }));
  });
  chart.appendChild(svg("polyline", { fill: "none", stroke: "#248", "stroke-width": 1,
    points: values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ") }));
  return chart;
}

async function rankUnits() {
  try {
    const data = await api("/api/units/hypothesis", { text: $("units-input").value,
      pattern: $("pattern").value, layer: +$("units-layer").value,
      quantity: $("units-quantity").value });
    const box = $("ranked");
    box.replaceChildren(el("p", "Units ranked by |r| with the hypothesis (shaded: tokens " +
      "inside a match):", "note"));
    for (const unit of data.units) {
      const row = el("div");
      row.appendChild(el("div", `unit ${unit.unit}: r = ${unit.r.toFixed(3)}`));
      row.appendChild(trace(unit.values, data.feature));
      box.appendChild(row);
    }
    showError("");
  } catch (problem) { showError(problem.message); }
}

function renderUnitTokens() {
  const text = $("units-input").value;
  const box = $("units-tokens");
  box.replaceChildren();
  // the tokens come from /api/colour so that indices match the server's
  if (!text) return;
  api("/api/colour", { text, layer: 0, quantity: "surprise", unit: 0 }).then((data) => {
    renderTokens(box, data.tokens, data.tokens.map(() => null), "signed");
  }).catch((problem) => showError(problem.message));
}

function selectedTokens() {
  const selection = window.getSelection();
  if (!selection.rangeCount) return null;
  const range = selection.getRangeAt(0);
  const spans = [...$("units-tokens").querySelectorAll(".tok")]
    .filter((span) => range.intersectsNode(span));
  if (!spans.length) return null;
  return [+spans[0].dataset.i, +spans[spans.length - 1].dataset.i + 1];
}

async function matchSelection() {
  const span = state.selection || selectedTokens();
  if (!span) { showError("select some text in the token box first"); return; }
  try {
    const text = $("units-input").value;
    const data = await api("/api/units/match", { text, start: span[0], end: span[1],
      threshold: +$("threshold").value, layer: +$("units-layer").value,
      quantity: $("units-quantity").value, against: text });
    const box = $("matched");
    box.replaceChildren(el("p", `${data.units.length} unit(s) on over ` +
      `${JSON.stringify(data.selected)}: ${data.units.join(", ") || "none"}`));
    const spans = $("units-tokens").querySelectorAll(".tok");
    spans.forEach((span) => { span.style.background = ""; });
    for (const s of data.spans) {
      for (let i = s.start; i < s.end && i < spans.length; i++) spans[i].style.background = "#cdeccd";
    }
    const short = (text) => (text.length > 80 ? `${text.slice(0, 77)}...` : text);
    if (data.spans.length) {
      box.appendChild(valueTable(data.spans.map((s) => [{ text: short(JSON.stringify(s.text)) },
        { text: s.start }, { text: s.end - s.start }]), ["span where all are on", "token", "length"]));
    }
    showError("");
  } catch (problem) { showError(problem.message); }
}

function setupUnits() {
  $("pattern-preset").addEventListener("change", () => { $("pattern").value = $("pattern-preset").value; });
  $("rank").addEventListener("click", rankUnits);
  $("match").addEventListener("click", matchSelection);
  $("units-input").addEventListener("change", renderUnitTokens);
  $("units-tokens").addEventListener("mouseup", () => {
    state.selection = selectedTokens();
    $("units-tokens").querySelectorAll(".tok").forEach((s) => {
      const i = +s.dataset.i;
      s.classList.toggle("selected", !!state.selection && i >= state.selection[0] && i < state.selection[1]);
    });
    $("selection-status").textContent = state.selection ?
      `tokens ${state.selection[0]} to ${state.selection[1] - 1} selected` : "";
  });
}

// -- Sample view ----------------------------------------------------------------------------
function stopSample() {
  if (state.source) state.source.close();
  state.source = null;
  $("sample-start").disabled = false;
  $("sample-stop").disabled = true;
}

function drawGateChart(series) {
  const box = $("sample-chart");
  box.replaceChildren();
  const names = Object.keys(series);
  if (!names.length) return;
  const width = 900, height = 120;
  const chart = svg("svg", { width, height });
  const colours = ["#c33", "#36c", "#393", "#c80"];
  names.forEach((name, k) => {
    const values = series[name];
    const x = (i) => (i / Math.max(1, values.length - 1)) * width;
    chart.appendChild(svg("polyline", { fill: "none", stroke: colours[k % 4], "stroke-width": 1,
      points: values.map((v, i) => `${x(i).toFixed(1)},${(height - v * height).toFixed(1)}`).join(" ") }));
    chart.appendChild(svg("text", { x: 4, y: 12 + 12 * k, fill: colours[k % 4] },
      `${name} gate, mean over units`));
  });
  box.appendChild(chart);
}

function startSample() {
  stopSample();
  const params = new URLSearchParams({ prime: $("prime").value, length: $("length").value,
    temperature: $("temperature").value, top_k: $("top-k").value, top_p: $("top-p").value,
    layer: $("sample-layer").value, seed: $("seed").value, run: state.run });
  const out = $("sample-out");
  out.replaceChildren(el("span", $("prime").value, "prime"));
  const series = {};
  const gate = $("sample-gate").value;
  let count = 0;
  const source = new EventSource(`/api/sample?${params}`);
  state.source = source;
  $("sample-start").disabled = true;
  $("sample-stop").disabled = false;
  $("sample-status").textContent = "generating...";
  source.onmessage = (event) => {
    const item = JSON.parse(event.data);
    const span = el("span", shown(item.token), "tok");
    span.dataset.i = count++;
    if (item.gates[gate] !== undefined) span.style.background = background(item.gates[gate], "gate", 1);
    span.title = Object.entries(item.gates).map(([n, v]) => `${n} ${v.toFixed(3)}`).join(", ");
    out.appendChild(span);
    for (const [name, value] of Object.entries(item.gates)) (series[name] ||= []).push(value);
    if (count % 10 === 0) drawGateChart(series);
  };
  source.addEventListener("done", () => {
    drawGateChart(series);
    $("sample-status").textContent = `${count} tokens`;
    stopSample();
  });
  source.onerror = () => {
    if (state.source === source) {
      $("sample-status").textContent = `stopped after ${count} tokens`;
      stopSample();
      if (!count) fetch(`/api/sample?${params}`).then((r) => r.json()).then((d) => showError(d.error))
        .catch(() => showError("sampling failed"));
    }
  };
}

// -- Health view ----------------------------------------------------------------------------
function lineChart(title, series, xLabel, yLabel, logY) {
  const width = 460, height = 200, left = 50, bottom = 30;
  const chart = svg("svg", { width, height: height + 20 });
  chart.appendChild(svg("text", { x: left, y: 12 }, title));
  // a log scale shows positive values only (a gradient that vanished to 0 is left out)
  series = series.map((s) => ({ ...s, points: s.points.filter((p) => p[1] !== null &&
    (!logY || p[1] > 0)) }));
  const points = series.flatMap((s) => s.points);
  if (!points.length) { chart.appendChild(svg("text", { x: left, y: 40 }, "no data")); return chart; }
  const ys = points.map((p) => (logY ? Math.log10(Math.max(p[1], 1e-30)) : p[1]));
  const xs = points.map((p) => p[0]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x) => left + ((x - x0) / Math.max(1e-9, x1 - x0)) * (width - left - 10);
  const sy = (y) => 20 + (1 - (y - y0) / Math.max(1e-9, y1 - y0)) * (height - bottom - 20);
  chart.appendChild(svg("line", { x1: left, y1: height - bottom, x2: width - 10, y2: height - bottom, class: "axis" }));
  chart.appendChild(svg("line", { x1: left, y1: 20, x2: left, y2: height - bottom, class: "axis" }));
  chart.appendChild(svg("text", { x: width / 2, y: height - 8 }, xLabel));
  chart.appendChild(svg("text", { x: 2, y: 30 }, (logY ? 10 ** y1 : y1).toPrecision(3)));
  chart.appendChild(svg("text", { x: 2, y: height - bottom }, (logY ? 10 ** y0 : y0).toPrecision(3)));
  chart.appendChild(svg("text", { x: 2, y: height + 12 }, yLabel));
  const colours = ["#c33", "#36c", "#393", "#c80", "#888", "#888"];
  series.forEach((s, k) => {
    chart.appendChild(svg("polyline", { fill: "none", stroke: colours[k % 6], "stroke-width": 1.5,
      points: s.points.map((p) => `${sx(p[0]).toFixed(1)},${sy(logY ? Math.log10(Math.max(p[1], 1e-30)) : p[1]).toFixed(1)}`).join(" ") }));
    chart.appendChild(svg("text", { x: width - 120, y: 30 + 13 * k, fill: colours[k % 6] },
      s.label));
  });
  return chart;
}

function histogram(name, counts) {
  // the values of one gate over all units and steps, in 20 bins from 0 to 1
  const width = 170, height = 90;
  const chart = svg("svg", { width: width + 10, height: height + 30, class: "histogram" });
  chart.appendChild(svg("text", { x: 4, y: 11 }, `${name} gate values, 0 to 1`));
  const most = Math.max(1, ...counts);
  const step = width / counts.length;
  counts.forEach((count, i) => {
    const tall = (count / most) * height;
    chart.appendChild(svg("rect", { x: 4 + i * step, y: 16 + height - tall, width: step - 1,
      height: tall, fill: i < 2 || i >= counts.length - 2 ? "#c33" : "#678" }));
  });
  chart.appendChild(svg("text", { x: 4, y: height + 28 }, "red: below 0.1 or above 0.9"));
  return chart;
}

function saturationChart(name, stats) {
  // Karpathy et al. 2015, fig. 3: each unit at (share of steps < 0.1, share > 0.9)
  const size = 160, pad = 20;
  const chart = svg("svg", { width: size + pad, height: size + pad + 14 });
  chart.appendChild(svg("text", { x: pad, y: 11 }, `${name}: ${(100 * stats["below_0.1"]).toFixed(0)}% < 0.1, ` +
    `${(100 * stats["above_0.9"]).toFixed(0)}% > 0.9`));
  chart.appendChild(svg("rect", { x: pad, y: 14, width: size, height: size, fill: "none", class: "axis", stroke: "#999" }));
  chart.appendChild(svg("line", { x1: pad, y1: 14 + size, x2: pad + size, y2: 14, stroke: "#ddd" }));
  stats.left.forEach((l, i) => {
    chart.appendChild(svg("circle", { cx: pad + l * size, cy: 14 + (1 - stats.right[i]) * size, r: 2,
      fill: "#36c", "fill-opacity": 0.6 }));
  });
  chart.appendChild(svg("text", { x: pad, y: size + pad + 12 }, "x: left-saturated, y: right"));
  return chart;
}

async function loadHealth() {
  const box = $("health");
  box.replaceChildren(el("p", "computing...", "note"));
  const names = state.info.runs;
  const columns = [];
  for (let index = 0; index < names.length; index++) {
    const response = await fetch(`/api/health?run=${index}`);
    const data = await response.json();
    const column = el("div");
    column.appendChild(el("h2", names[index]));
    if (!response.ok) { column.appendChild(el("p", data.error, "error")); columns.push(column); continue; }
    column.appendChild(lineChart("training curves", [
      { label: "train", points: data.curves.train }, { label: "validation", points: data.curves.validation }],
      "step", "loss (nats/token)", false));
    if (data.gradient_flow) {
      const flow = data.gradient_flow;
      const series = [{ label: "||dL/dh_t||", points: flow.hidden_norm.map((v, k) => [k, v]) }];
      if (flow.cell_norm) series.push({ label: "||dL/dc_t||", points: flow.cell_norm.map((v, k) => [k, v]) });
      column.appendChild(lineChart("gradient flow (loss on the last token)", series,
        "steps back from the loss", "norm, log scale", true));
      column.appendChild(el("p", `decay per step: h ${flow.hidden_decay.toFixed(4)}` +
        (flow.cell_decay !== null ? `, c ${flow.cell_decay.toFixed(4)}` : ""), "note"));
    }
    if (data.saturation.length) column.appendChild(el("p", `Gate saturation over ${data.source}:`, "note"));
    data.saturation.forEach((layer, k) => {
      column.appendChild(el("h3", `layer ${k}`));
      const row = el("div");
      for (const [gate, counts] of Object.entries(data.histograms[k])) row.appendChild(histogram(gate, counts));
      column.appendChild(row);
      for (const [gate, stats] of Object.entries(layer)) column.appendChild(saturationChart(gate, stats));
    });
    columns.push(column);
  }
  box.replaceChildren(...columns);
}

// -- Classify view (classifier runs) ----------------------------------------------------------
async function classify() {
  try {
    const data = await api("/api/classify", { text: $("classify-input").value });
    const rows = data.classes.map((name, i) => [{ text: name },
      { text: data.probabilities[i].toFixed(4), data: { value: data.probabilities[i] } }]);
    const table = valueTable(rows, ["class", "probability"]);
    table.id = "classify-table";
    $("classify-probabilities").replaceChildren(el("p", `predicted: ${data.predicted}`), table);
    const most = Math.max(1e-12, ...data.contributions.map(Math.abs));
    renderTokens($("classify-tokens"), data.tokens, data.contributions.map((v) => v / most),
      "signed");
    $("classify-tokens").querySelectorAll(".tok").forEach((span, i) => {
      span.title = `contribution ${data.contributions[i].toFixed(4)}`;
    });
    showError("");
  } catch (problem) { showError(problem.message); }
}

// -- Forecast view (forecaster runs) ----------------------------------------------------------
async function forecast() {
  try {
    const data = await api("/api/forecast", { origin: +$("origin").value,
      layer: +$("forecast-layer").value });
    const start = data.origin - data.history.length;
    const series = [
      { label: "history", points: data.history.map((v, i) => [start + i, v]) },
      { label: "actual", points: data.actual.map((v, i) => [data.origin + i, v]) },
      { label: "forecast", points: data.point.map((v, i) => [data.origin + i, v]) }];
    const names = Object.keys(data.quantiles);
    if (names.length > 1) {
      series.push({ label: `q${names[0]}`, points: data.quantiles[names[0]].map((v, i) => [data.origin + i, v]) });
      series.push({ label: `q${names[names.length - 1]}`,
        points: data.quantiles[names[names.length - 1]].map((v, i) => [data.origin + i, v]) });
    }
    $("forecast-chart").replaceChildren(lineChart(`forecast from step ${data.origin}`, series,
      "step", state.info.target, false));
    const gates = Object.entries(data.gates).map(([name, values]) => ({ label: `${name} (mean)`,
      points: values.map((v, i) => [start + i, v]) }));
    $("forecast-gates").replaceChildren(lineChart("encoder gates over the lookback window", gates,
      "step", "gate value", false));
    $("forecast-note").textContent = `${data.actual.length} actual value(s) after the origin`;
    showError("");
  } catch (problem) { showError(problem.message); }
}

// -- start ----------------------------------------------------------------------------------
function showView(name) {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.setAttribute("aria-pressed", String(tab.dataset.view === name));
  }
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
  if (name === "health") loadHealth().catch((problem) => showError(problem.message));
  if (name === "units" && !$("units-input").value) {
    api("/api/validation").then((data) => {
      $("units-input").value = data.text;
      renderUnitTokens();
    }).catch((problem) => showError(problem.message));
  }
}

async function start() {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => showView(tab.dataset.view));
  }
  $("run-select").addEventListener("change", async () => {
    state.run = +$("run-select").value;
    await loadRun();
    const current = document.querySelector(".tab[aria-pressed=true]");
    if (current.hidden) showView(document.querySelector(".tab:not([hidden])").dataset.view);
    else if (current.dataset.view === "health") showView("health");
    if (state.info.kind === "language_model") colourText();
  });
  setupText();
  setupUnits();
  $("sample-start").addEventListener("click", startSample);
  $("classify-go").addEventListener("click", classify);
  $("forecast-go").addEventListener("click", forecast);
  $("sample-stop").addEventListener("click", stopSample);
  try {
    await loadRun();
    if (state.info.kind !== "language_model") {
      showView(state.info.kind === "classifier" ? "classify" : "forecast");
    }
    document.body.dataset.ready = "true";
  } catch (problem) { showError(problem.message); }
}

start();
