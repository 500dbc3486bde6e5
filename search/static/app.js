// The search page: every text shown comes from the index (captions crawled from websites), so it is set with
// textContent, never parsed as HTML.
"use strict";
const $ = (id) => document.getElementById(id);
let shown = [];  // the results on the page, for "Classify shown results"

function status(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

async function call(url, options) {
  const r = await fetch(url, options);
  let body;
  try { body = await r.json(); } catch (e) { body = {error: r.statusText}; }
  if (!r.ok) throw new Error(body.error || ("HTTP " + r.status));
  return body;
}

function render(results, title) {
  shown = results;
  const list = $("results");
  list.replaceChildren();
  status(title);
  for (const h of results) {
    const card = el("div", "result");
    card.dataset.id = h.id;
    const head = el("div", "head");
    const left = el("div");
    left.append(el("div", "caption", h.rank + ". " + h.caption), el("div", "meta", h.id + "  ·  " + h.file));
    head.append(left, el("div", "score", "score " + h.score.toFixed(3)));
    const img = el("img");
    img.src = h.picture_url;
    img.alt = "waveform and spectrogram of " + h.file;
    img.loading = "lazy";
    const row = el("div", "row");
    const audio = el("audio");
    audio.controls = true;
    audio.preload = "none";
    audio.src = h.audio_url;
    const more = el("button", "small more", "More like this");
    more.type = "button";
    more.addEventListener("click", () => similar(h));
    row.append(audio, more);
    card.append(head, img, row, el("div", "labels"));
    list.append(card);
  }
}

function k() { return $("k").value; }

async function search(q) {
  status("searching…");
  try {
    const body = await call("/api/search?q=" + encodeURIComponent(q) + "&k=" + k());
    render(body.results, body.results.length + " sounds for “" + q + "”");
  } catch (e) { status(e.message, true); }
}

async function similar(h) {
  status("finding sounds like " + h.caption + "…");
  try {
    const body = await call(h.similar_url + "&k=" + k());
    render(body.results, "Sounds like “" + h.caption + "” (" + h.id + ")");
    window.scrollTo(0, 0);
  } catch (e) { status(e.message, true); }
}

async function upload(file) {
  if (!file) return;
  status("listening to " + file.name + "…");
  try {
    const body = await call("/api/upload?k=" + k(), {method: "POST", body: file,
      headers: {"Content-Type": file.type || "application/octet-stream"}});
    render(body.results, "Sounds like your file " + file.name);
  } catch (e) { status(file.name + ": " + e.message, true); }
}

async function classifyShown() {
  const labels = $("labels").value.split(",").map((s) => s.trim()).filter((s) => s);
  if (!shown.length) { status("search first, then classify the results", true); return; }
  if (!labels.length) { status("type labels separated by commas", true); return; }
  try {
    const body = await call("/api/classify", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({ids: shown.map((h) => h.id), labels: labels})});
    for (const r of body.results) {
      const card = [...document.querySelectorAll(".result")].find((c) => c.dataset.id === r.id);
      if (!card) continue;
      const box = card.querySelector(".labels");
      box.replaceChildren();
      r.labels.slice(0, 3).forEach((l, i) => box.append(el("span", i === 0 ? "best" : "",
        l.label + " " + (100 * l.probability).toFixed(1) + "%")));
    }
    status("classified " + body.results.length + " sounds over " + labels.length + " labels");
  } catch (e) { status(e.message, true); }
}

$("search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = $("query").value.trim();
  if (q) search(q);
});
$("classify-button").addEventListener("click", classifyShown);
$("file").addEventListener("change", () => upload($("file").files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  drop.classList.remove("over");
  upload(ev.dataTransfer.files[0]);
});
call("/api/info").then((i) => {
  $("info").textContent = i.n_items + " sounds" + (i.n_captions ? ", " + i.n_captions + " captions" : "") +
    " · " + i.source + " · model " + i.checkpoint;
}).catch((e) => status(e.message, true));
