"""The page at ``GET /``: paste a text, see the labels with probability bars (a value for
regression, highlighted entity spans for token models). One self-contained HTML file: no
build step, nothing fetched from elsewhere; it calls the same ``/v1/models`` and
``/v1/predict`` as any client. Untrusted text is only ever set as textContent."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lmclassify</title>
<style>
  :root { --fg: #1d2433; --muted: #667085; --line: #d0d5dd; --accent: #2f6fde; --bg: #f7f8fa; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
  main { max-width: 760px; margin: 0 auto; padding: 24px 16px 48px; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  .sub { color: var(--muted); margin: 0 0 18px; font-size: 13px; }
  label { display: block; font-weight: 600; margin: 12px 0 4px; font-size: 13px; }
  select, textarea, input { width: 100%; font: inherit; padding: 8px 10px; border: 1px solid var(--line);
    border-radius: 6px; background: #fff; color: inherit; }
  textarea { min-height: 110px; resize: vertical; }
  button { margin-top: 12px; padding: 8px 18px; font: inherit; font-weight: 600; color: #fff; background: var(--accent);
    border: 0; border-radius: 6px; cursor: pointer; }
  button:disabled { opacity: .6; cursor: wait; }
  .hint { color: var(--muted); font-size: 12px; margin-left: 8px; }
  #info { color: var(--muted); font-size: 13px; margin-top: 6px; }
  #error { color: #b42318; margin-top: 12px; white-space: pre-wrap; }
  #result { margin-top: 20px; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px; }
  #result:empty { display: none; }
  .verdict { font-size: 22px; font-weight: 700; margin-bottom: 12px; }
  .row { display: grid; grid-template-columns: minmax(80px, 160px) 1fr 64px; gap: 10px; align-items: center; margin: 6px 0; }
  .row .name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .row.chosen .name { font-weight: 700; }
  .track { height: 14px; background: #eef1f5; border-radius: 7px; overflow: hidden; }
  .bar { height: 100%; background: #98a2b3; border-radius: 7px; }
  .row.chosen .bar { background: var(--accent); }
  .pct { text-align: right; font-variant-numeric: tabular-nums; color: var(--muted); }
  .spans { font-size: 17px; line-height: 2.1; white-space: pre-wrap; }
  mark { padding: 2px 4px; border-radius: 4px; background: #fde68a; }
  mark small { font-size: 10px; font-weight: 700; text-transform: uppercase; margin-left: 4px; color: #7a4e00; }
  table { border-collapse: collapse; margin-top: 14px; font-size: 13px; }
  td { padding: 2px 10px 2px 0; }
  td.tag { color: var(--muted); }
</style>
</head>
<body>
<main>
  <h1>lmclassify</h1>
  <p class="sub">Paste a text and see what the model says. The same answers as <code>POST /v1/predict</code>
    (<a href="/docs">API docs</a>).</p>
  <label for="model">Model</label>
  <select id="model"></select>
  <div id="info"></div>
  <div id="key-box" hidden>
    <label for="key">API key</label>
    <input id="key" type="password" autocomplete="off" placeholder="the server's bearer token">
  </div>
  <label for="text">Text</label>
  <textarea id="text" placeholder="Type or paste a text"></textarea>
  <div id="pair-box" hidden>
    <label for="text-pair">Second text of the pair</label>
    <textarea id="text-pair"></textarea>
  </div>
  <button id="predict">Predict</button><span class="hint">Ctrl+Enter</span>
  <div id="error"></div>
  <div id="result"></div>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let models = [];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "style") node.style.cssText = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

async function call(path, body) {
  const headers = {};
  if ($("key").value) headers["Authorization"] = "Bearer " + $("key").value;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {method: body === undefined ? "GET" : "POST", headers,
                               body: body === undefined ? undefined : JSON.stringify(body)});
  let data = null;
  try { data = await r.json(); } catch (e) { data = {error: r.statusText}; }
  if (r.status === 401) $("key-box").hidden = false;
  if (!r.ok) throw new Error((data && data.error) || ("HTTP " + r.status));
  return data;
}

function current() { return models.find((m) => m.name === $("model").value); }

function showModel() {
  const m = current();
  if (!m) return;
  $("pair-box").hidden = !m.pairs;
  const per = m.pairs ? "text pair" : "text";
  const what = {single: "one label per " + per, multi: "any number of labels per " + per,
                regression: "a number per " + per, token: "a tag per word, entity spans"}[m.task] || m.task;
  $("info").textContent = m.task + " (" + what + ")" + (m.labels.length ? ": " + m.labels.join(", ") : "")
    + " \\u00b7 base model " + m.base_model + (m.quantize ? " \\u00b7 " + m.quantize : "");
}

function bars(probabilities, chosen) {
  const rows = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  return rows.map(([label, p]) => el("div", {class: "row" + (chosen.includes(label) ? " chosen" : ""), "data-label": label},
    el("span", {class: "name", title: label}, label),
    el("div", {class: "track"}, el("div", {class: "bar", style: "width:" + (100 * p).toFixed(1) + "%"})),
    el("span", {class: "pct"}, (100 * p).toFixed(1) + " %")));
}

function render(rec) {
  const out = $("result");
  out.replaceChildren();
  if ("entities" in rec) {
    const text = rec.text, parts = [];
    let at = 0;
    for (const e of rec.entities) {
      parts.push(text.slice(at, e.start));
      parts.push(el("mark", {"data-label": e.label, title: "score " + (e.score ?? "").toString()},
                    text.slice(e.start, e.end), el("small", {}, e.label)));
      at = e.end;
    }
    parts.push(text.slice(at));
    out.append(el("div", {class: "verdict", id: "label"},
                  rec.entities.length ? rec.entities.length + " entit" + (rec.entities.length === 1 ? "y" : "ies") : "no entities"),
               el("div", {class: "spans"}, ...parts));
    const table = el("table", {id: "tags"});
    rec.tokens.forEach((t, i) => table.append(el("tr", {}, el("td", {}, t), el("td", {class: "tag"}, rec.tags[i] || ""))));
    out.append(table);
  } else if ("value" in rec) {
    out.append(el("div", {class: "verdict", id: "label"}, Number(rec.value).toFixed(4)));
  } else {
    const chosen = "labels" in rec ? rec.labels : [rec.label];
    out.append(el("div", {class: "verdict", id: "label"}, chosen.length ? chosen.join(", ") : "(no label)"),
               ...bars(rec.probabilities, chosen));
  }
}

async function predict() {
  const m = current();
  if (!m) return;
  $("error").textContent = "";
  const text = $("text").value;
  const input = m.pairs ? {text, text_pair: $("text-pair").value} : text;
  $("predict").disabled = true;
  try {
    const data = await call("/v1/predict", {model: m.name, inputs: [input]});
    render(data.predictions[0]);
  } catch (e) {
    $("result").replaceChildren();
    $("error").textContent = e.message;
  } finally {
    $("predict").disabled = false;
  }
}

async function loadModels() {
  try {
    models = (await call("/v1/models")).models;
    $("model").replaceChildren(...models.map((m) => el("option", {value: m.name}, m.name)));
    $("error").textContent = "";
    showModel();
  } catch (e) {
    $("error").textContent = e.message;
  }
}

$("model").addEventListener("change", () => { showModel(); $("result").replaceChildren(); });
$("predict").addEventListener("click", predict);
$("key").addEventListener("change", loadModels);
for (const id of ["text", "text-pair"]) {
  $(id).addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) predict(); });
}
loadModels();
</script>
</body>
</html>
"""
