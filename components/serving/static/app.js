// DefectQA inspector page: upload a board (+ template), ask, draw the answer's boxes; on a
// wafer-map line (GET /v1/models gives each line's kind): upload a bin map, ask, show the answer,
// its pattern and confidence (no boxes, no template).
// Plain JS, no external assets: the page works offline. Server data goes in via
// textContent / attributes only, never innerHTML.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const COLOURS = { open: "#e11d48", short: "#2563eb", mousebite: "#d97706", spur: "#7c3aed",
                  copper: "#059669", "pin-hole": "#db2777" };
const colour = (cls) => COLOURS[cls] || "#111827";

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function clearAnswer() {
  $("overlay").replaceChildren();
  $("defects").replaceChildren();
  $("none-found").hidden = true;
  $("map-result").hidden = true;
  $("fields").replaceChildren();
  $("summary").textContent = "";
  $("answer-text").textContent = "";
}

const WAFER = "wafer-map";
const lineKinds = {};  // line -> kind ("boxes" or "wafer-map"), from GET /v1/models
const isWafer = () => lineKinds[$("line").value] === WAFER;

// What the form asks for follows the chosen line's kind: a board (+ template), or a bin map alone.
function applyKind() {
  const wafer = isWafer();
  $("template-drop").hidden = wafer;
  $("board-title").textContent = wafer ? "Wafer map" : "Board";
  $("board-hint").textContent = wafer ? "choose or drop a bin map PNG (grey levels 0 off wafer, 128 pass, 255 fail)"
                                      : "choose or drop a board image";
  $("question").placeholder = wafer ? "e.g. What pattern does this wafer show?" : "e.g. Describe all defects on this board.";
  $("result-title").textContent = wafer ? "Answer" : "Defects";
  $("board-img").classList.toggle("map", wafer);
  for (const b of document.querySelectorAll(".suggestion")) b.hidden = (b.dataset.kind === WAFER) !== wafer;
  clearAnswer();
}

const modelName = (m) => `${m.name} ${m.version === "local" ? "(local folder)" : "v" + m.version}`;

async function checkModel() {
  const badge = $("model-status");
  try {
    const r = await fetch("/healthz");
    const body = await r.json();
    badge.textContent = r.ok ? `model ${modelName(body.model)}` : `no model: ${body.message}`;
    badge.classList.toggle("bad", !r.ok);
  } catch (e) {
    badge.textContent = "server unreachable";
    badge.classList.add("bad");
  }
}

// One option per product line with a model loaded (GET /v1/models); the selector shows only
// when there is a choice, and the chosen line goes with each question.
async function loadLines() {
  try {
    const r = await fetch("/v1/models");
    const models = (await r.json()).data || [];
    const options = models.map((m) => {
      lineKinds[m.line] = m.kind;
      const o = document.createElement("option");
      o.value = m.line;
      o.textContent = `${m.line} (${m.id} v${m.version})`;
      return o;
    });
    $("line").replaceChildren(...options);
    $("line-row").hidden = options.length < 2;
  } catch (e) {
    $("line-row").hidden = true;
  }
  applyKind();
}

function showBoard(file) {
  const img = $("board-img");
  if (img.src) URL.revokeObjectURL(img.src);
  clearAnswer();
  img.src = URL.createObjectURL(file);
}

$("board-img").addEventListener("load", (e) => {
  const img = e.target;
  $("overlay").setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
  $("placeholder").hidden = true;
});
$("board-img").addEventListener("error", () => {
  $("placeholder").hidden = false;
  $("placeholder").textContent = "This browser cannot preview this file; answers are still listed on the right.";
});

function wireFile(inputId, dropId, nameId, onFile) {
  const input = $(inputId), drop = $(dropId);
  input.addEventListener("change", () => {
    const f = input.files[0];
    $(nameId).textContent = f ? `${f.name} (${Math.round(f.size / 1024)} KB)` : "no file chosen";
    if (f && onFile) onFile(f);
    showError("");
  });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (!e.dataTransfer.files.length) return;
    input.files = e.dataTransfer.files;
    input.dispatchEvent(new Event("change"));
  });
}

function drawDefect(d, i) {
  const [x1, y1, x2, y2] = d.box;
  const g = document.createElementNS(SVG, "g");
  g.setAttribute("class", "det");
  g.dataset.index = i;
  const rect = document.createElementNS(SVG, "rect");
  const attrs = { x: x1, y: y1, width: x2 - x1, height: y2 - y1, stroke: colour(d.class) };
  for (const [k, v] of Object.entries(attrs)) rect.setAttribute(k, v);
  rect.dataset.class = d.class;
  rect.dataset.confidence = d.confidence;
  const label = document.createElementNS(SVG, "text");
  label.setAttribute("x", x1);
  label.setAttribute("y", y1 > 18 ? y1 - 5 : y2 + 15);
  label.setAttribute("fill", colour(d.class));
  label.textContent = `${d.class} ${d.confidence.toFixed(2)}`;
  g.append(rect, label);
  $("overlay").append(g);
}

function listDefect(d, i) {
  const li = document.createElement("li");
  li.dataset.index = i;
  li.dataset.class = d.class;
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = colour(d.class);
  const [x1, y1, x2, y2] = d.box;
  li.append(swatch, `${d.class} ${d.confidence.toFixed(2)} at (${d.centre[0]}, ${d.centre[1]}), ` +
                    `box ${x1},${y1},${x2},${y2}`);
  const g = () => $("overlay").querySelector(`.det[data-index="${i}"]`);
  li.addEventListener("mouseenter", () => g() && g().classList.add("hi"));
  li.addEventListener("mouseleave", () => g() && g().classList.remove("hi"));
  $("defects").append(li);
}

const FIELD_NAMES = { kind: "question", pattern: "pattern", conf: "confidence", asked: "asked about", found: "found",
                      loc: "where", morph: "shape", fail: "failing dies", dies: "dies", share: "failing share (%)",
                      cause: "causes to check" };

function showMapAnswer(body) {
  clearAnswer();
  $("map-answer").textContent = body.answer_text;
  $("pattern").textContent = body.pattern;
  $("confidence").textContent = body.confidence.toFixed(2);
  for (const [k, v] of Object.entries(body.answer)) {
    if (v === null || v === "" || (Array.isArray(v) && !v.length)) continue;
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = FIELD_NAMES[k] || k;
    dd.textContent = Array.isArray(v) ? v.join("; ") : String(v);
    dd.dataset.field = k;
    $("fields").append(dt, dd);
  }
  $("map-result").hidden = false;
  $("summary").textContent = `model ${modelName(body.model)} · ${body.latency_s.toFixed(3)} s`;
  $("answer-text").textContent = body.grammar;
}

function showAnswer(body) {
  if (!body.defects) return showMapAnswer(body);
  clearAnswer();
  body.defects.forEach(drawDefect);
  body.defects.forEach(listDefect);
  if (body.none_found) {
    $("none-found").textContent = body.message || "No defects found";
    $("none-found").hidden = false;
  }
  $("summary").textContent = `${body.message} · model ${modelName(body.model)} · ` +
                             `${body.latency_s.toFixed(2)} s`;
  $("answer-text").textContent = body.answer_text;
}

async function ask(event) {
  if (event) event.preventDefault();
  const board = $("board").files[0], template = $("template").files[0];
  const question = $("question").value.trim();
  if (!board) return showError(isWafer() ? "Choose a wafer map first." : "Choose a board image first.");
  if (!question) return showError("Type a question or click one of the suggestions.");
  const form = new FormData();
  form.append("image", board);
  if (template && !isWafer()) form.append("template", template);
  form.append("question", question);
  if (!$("line-row").hidden) form.append("line", $("line").value);
  showError("");
  $("ask").disabled = true;
  $("busy").hidden = false;
  try {
    const r = await fetch("/v1/inspect", { method: "POST", body: form });
    let body;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) {
      clearAnswer();
      const why = body && body.error ? body.error.message : `HTTP ${r.status}`;
      showError(`The server refused the request: ${why}`);
      return;
    }
    showAnswer(body);
  } catch (e) {
    showError(`Cannot reach the server: ${e.message}`);
  } finally {
    $("ask").disabled = false;
    $("busy").hidden = true;
  }
}

wireFile("board", "board-drop", "board-name", showBoard);
wireFile("template", "template-drop", "template-name", null);
$("line").addEventListener("change", applyKind);
$("ask-form").addEventListener("submit", ask);
for (const b of document.querySelectorAll(".suggestion")) {
  b.addEventListener("click", () => {
    $("question").value = b.textContent;
    if ($("board").files[0]) ask(); else $("question").focus();
  });
}
checkModel();
loadLines();
