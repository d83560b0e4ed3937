// The error explorer: one or two evaluate runs (A, B) joined by utterance id; a sortable,
// filterable table; per utterance the character diff (as scored, after the run's normalizer)
// and the kana-reading diff, with the audio.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { rows: [], runs: [], sort: { key: "cerA", dir: "desc" }, selected: null };
const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(1));

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function columns() {
  const cols = [
    { key: "id", label: "id", value: (r) => r.id },
    { key: "corpus", label: "corpus", value: (r) => r.corpus },
    { key: "speaker", label: "voice", value: (r) => r.speaker },
    { key: "duration", label: "s", num: true, value: (r) => r.duration,
      show: (r) => r.duration.toFixed(1) },
  ];
  for (const run of state.runs) {
    cols.push({ key: `cer${run.key}`, label: `CER ${run.key} %`, num: true,
      value: (r) => (r.runs[run.key] ? r.runs[run.key].cer : -1),
      show: (r) => (r.runs[run.key] ? pct(r.runs[run.key].cer) : "–") });
  }
  if (state.runs.length === 2) {
    cols.push({ key: "delta", label: "Δ B−A", num: true,
      value: (r) => (r.delta === null ? 0 : r.delta),
      show: (r) => (r.delta === null ? "–" : (r.delta > 0 ? "+" : "") + pct(r.delta)),
      cls: (r) => (r.delta < 0 ? "better" : r.delta > 0 ? "worse" : "") });
  }
  cols.push({ key: "looped", label: "loop", value: (r) => (looped(r) ? 1 : 0),
    show: (r) => (looped(r) ? "looped" : ""), cls: () => "loop" });
  cols.push({ key: "ref", label: "reference", value: (r) => r.ref, cls: () => "ref" });
  return cols;
}

const looped = (r) => Object.values(r.runs).some((c) => c && c.looped);
const worstCer = (r) => Math.max(...Object.values(r.runs).map((c) => (c ? c.cer : 0)));

function filtered() {
  const q = $("search").value.trim();
  const corpus = $("corpus").value, speaker = $("speaker").value;
  const loop = $("looped").value, change = $("change").value;
  const minCer = Number($("min-cer").value || 0) / 100;
  return state.rows.filter((r) => {
    if (q && !(r.id.includes(q) || r.ref.includes(q) ||
               Object.values(r.runs).some((c) => c && c.hyp.includes(q)))) return false;
    if (corpus && r.corpus !== corpus) return false;
    if (speaker && r.speaker !== speaker) return false;
    if (loop && (loop === "yes") !== looped(r)) return false;
    if (worstCer(r) < minCer) return false;
    if (change && r.delta !== null) {
      const kind = r.delta < 0 ? "better" : r.delta > 0 ? "worse" : "same";
      if (kind !== change) return false;
    }
    return true;
  });
}

function render() {
  const cols = columns();
  const head = $("head");
  head.replaceChildren(...cols.map((c) => {
    const th = el("th", { class: "sortable", "data-key": c.key, text: c.label });
    if (state.sort.key === c.key) th.classList.add(`sorted-${state.sort.dir}`);
    th.addEventListener("click", () => {
      const dir = state.sort.key === c.key && state.sort.dir === "desc" ? "asc" : "desc";
      state.sort = { key: c.key, dir };
      render();
    });
    return th;
  }));
  const col = cols.find((c) => c.key === state.sort.key) || cols[0];
  const sign = state.sort.dir === "asc" ? 1 : -1;
  const rows = filtered().sort((a, b) => {
    const x = col.value(a), y = col.value(b);
    return (x < y ? -1 : x > y ? 1 : a.id < b.id ? -1 : 1) * sign;
  });
  const body = $("table").querySelector("tbody");
  body.replaceChildren(...rows.map((r) => {
    const tr = el("tr", { "data-id": r.id });
    if (r.id === state.selected) tr.classList.add("selected");
    for (const c of cols) {
      const td = el("td", { text: c.show ? c.show(r) : String(c.value(r)) });
      if (c.num) td.classList.add("num");
      const extra = c.cls ? c.cls(r) : "";
      if (extra) td.classList.add(extra);
      tr.append(td);
    }
    tr.addEventListener("click", () => openDetail(r.id));
    return tr;
  }));
  $("count").textContent = `${rows.length} of ${state.rows.length} utterances`;
}

function diffLine(ops, side) {
  const line = el("div", { class: "line diff", lang: "ja" });
  if (!ops.length) line.append(el("span", { class: "empty", text: "(empty)" }));
  for (const op of ops) {
    const text = side === "ref" ? op.ref : op.hyp;
    if (!text) continue;
    line.append(el("span", { class: op.op === "equal" ? "" : op.op, title: op.op, text }));
  }
  return line;
}

async function openDetail(id) {
  state.selected = id;
  render();
  const detail = $("detail");
  detail.replaceChildren(el("h2", { text: "Utterance" }), el("p", { class: "empty", text: "loading…" }));
  const response = await fetch(`/explore/api/utterance?id=${encodeURIComponent(id)}`);
  const data = await response.json();
  const row = state.rows.find((r) => r.id === id);
  const parts = [el("h2", { text: `Utterance ${id}` })];
  if (row && row.audio) {
    parts.push(el("audio", { id: "detail-audio", controls: "", preload: "auto",
      src: `/explore/api/audio?id=${encodeURIComponent(id)}` }));
  } else {
    parts.push(el("p", { class: "empty", text: "no audio file for this utterance" }));
  }
  parts.push(el("p", { class: "legend" },
    el("span", { class: "substitute", text: "substituted" }),
    el("span", { class: "delete", text: "missing (deleted)" }),
    el("span", { class: "insert", text: "extra (inserted)" })));
  for (const [key, run] of Object.entries(data.runs)) {
    parts.push(el("h3", { text: `${key}: ${run.label} — CER ${pct(run.cer)} %` +
      (run.looped ? " (looped)" : "") }));
    parts.push(el("h4", { text: `reference (normalizer ${run.normalizer})` }), diffLine(run.diff, "ref"));
    parts.push(el("h4", { text: "hypothesis" }), diffLine(run.diff, "hyp"));
    parts.push(el("h4", { text: "reading of the reference (kana)" }),
      diffLine(run.reading.diff, "ref"));
    parts.push(el("h4", { text: "reading of the hypothesis" }), diffLine(run.reading.diff, "hyp"));
  }
  detail.replaceChildren(...parts);
  detail.dataset.loaded = id;
}

function runCard(run) {
  const o = run.overall || {};
  const fig = (name, m) => el("div", { class: "figure" },
    el("b", { text: m ? `${pct(m.rate)} %` : "–" }),
    el("span", { text: m && m.low !== undefined ? `${name} (95% CI ${pct(m.low)}–${pct(m.high)})` : name }));
  const title = el("h3", { text: `${run.key}: ${run.label}` });
  if (run.synthetic) title.append(el("span", { class: "tag", text: "SYNTHETIC speech" }));
  const card = el("section", { class: "card run" }, title,
    el("div", { class: "figures" }, fig("CER", o.cer), fig("WER", o.wer),
       fig("reading CER", o.reading_cer)),
    el("p", { class: "meta", text: `${run.utterances} utterances · normalizer ${run.normalizer}` +
      ` · audio for ${run.audio_files}` + (run.audio_note ? ` (${run.audio_note})` : "") +
      ` · ${run.folder}` }));
  const plots = el("div", { class: "plots" });
  for (const name of run.plots) {
    const img = el("img", { src: `/explore/api/plot/${run.key}/${encodeURIComponent(name)}`,
      alt: name, title: name });
    img.addEventListener("click", () => img.classList.toggle("zoom"));
    plots.append(img);
  }
  card.append(plots);
  return card;
}

function fillSelect(id, values) {
  const select = $(id);
  for (const v of [...new Set(values)].sort()) select.append(el("option", { value: v, text: v || "(none)" }));
}

async function main() {
  const [summary, rows] = await Promise.all([
    fetch("/explore/api/summary").then((r) => r.json()),
    fetch("/explore/api/rows").then((r) => r.json()),
  ]);
  state.runs = summary.runs;
  state.rows = rows.rows;
  $("runs").replaceChildren(...state.runs.map(runCard));
  $("change-filter").hidden = state.runs.length !== 2;
  fillSelect("corpus", state.rows.map((r) => r.corpus));
  fillSelect("speaker", state.rows.map((r) => r.speaker));
  for (const id of ["search", "corpus", "speaker", "looped", "min-cer", "change"]) {
    $(id).addEventListener("input", render);
  }
  render();
  fetch("/api/info").then((r) => { $("transcribe-link").hidden = !r.ok; })
    .catch(() => { $("transcribe-link").hidden = true; });
}

main();
