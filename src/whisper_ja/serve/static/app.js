// The transcription page: upload or record, POST to /v1/audio/transcriptions (verbose_json),
// show the transcript and its segments, and offer SRT / VTT built from those segments
// (the same cue layout as whisper_ja.serve.formats).
"use strict";

const $ = (id) => document.getElementById(id);
let lastResult = null;
let lastName = "transcript";

function duration(seconds) {
  const whole = Math.floor(seconds);
  if (whole < 120) return `${whole} s`;
  const rest = whole % 60;
  return `${Math.floor(whole / 60)} min${rest ? ` ${rest} s` : ""}`;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function stamp(seconds, sep) {
  let ms = Math.max(0, Math.round(seconds * 1000));
  const h = Math.floor(ms / 3600000); ms -= h * 3600000;
  const m = Math.floor(ms / 60000); ms -= m * 60000;
  const s = Math.floor(ms / 1000); ms -= s * 1000;
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(h)}:${pad(m)}:${pad(s)}${sep}${pad(ms, 3)}`;
}

function subtitles(segments, kind) {
  const sep = kind === "srt" ? "," : ".";
  const cues = segments.map((s, i) =>
    (kind === "srt" ? `${i + 1}\n` : "") +
    `${stamp(s.start, sep)} --> ${stamp(s.end, sep)}\n${s.text}\n\n`);
  return (kind === "vtt" ? "WEBVTT\n\n" : "") + cues.join("");
}

function download(kind) {
  if (!lastResult) return;
  const type = kind === "srt" ? "application/x-subrip" : "text/vtt";
  const blob = new Blob([subtitles(lastResult.segments, kind)], { type });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${lastName}.${kind}`;
  document.body.appendChild(link);
  link.click();
  link.remove();
}

function showResult(result, seconds) {
  lastResult = result;
  $("result").hidden = false;
  $("transcript").textContent = result.text || "(no speech found)";
  $("transcript").classList.toggle("empty", !result.text);
  const body = $("segments").querySelector("tbody");
  body.replaceChildren();
  for (const seg of result.segments) {
    const row = document.createElement("tr");
    for (const [value, cls] of [[stamp(seg.start, "."), "time"], [stamp(seg.end, "."), "time"],
                                [seg.text, ""]]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      if (cls) cell.className = cls;
      row.appendChild(cell);
    }
    row.addEventListener("click", () => {
      const player = $("player");
      if (!player.hidden) { player.currentTime = seg.start; player.play(); }
    });
    body.appendChild(row);
  }
  const loops = result.segments.filter((s) => s.looped).length;
  $("meta").textContent = `${result.duration.toFixed(1)} s of audio, ${result.segments.length} ` +
    `segment(s), answered in ${seconds.toFixed(1)} s` +
    (loops ? ` · ${loops} segment(s) repeat themselves (possible hallucination)` : "");
}

async function transcribe(blob, name) {
  lastName = name.replace(/\.[^.]+$/, "") || "transcript";
  const player = $("player");
  player.src = URL.createObjectURL(blob);
  player.hidden = false;
  const form = new FormData();
  form.append("file", blob, name);
  form.append("model", $("model").dataset.id || "whisper-1");
  form.append("response_format", "verbose_json");
  form.append("language", $("language").value.trim() || "ja");
  if ($("prompt").value.trim()) form.append("prompt", $("prompt").value.trim());
  setStatus(`Transcribing ${name}…`);
  const started = performance.now();
  try {
    const response = await fetch("/v1/audio/transcriptions", { method: "POST", body: form });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
      setStatus(`Not transcribed: ${message}`, true);
      return;
    }
    showResult(body, (performance.now() - started) / 1000);
    setStatus(`Transcribed ${name}.`);
  } catch (err) {
    setStatus(`Not transcribed: ${err}`, true);
  }
}

// --- microphone: WebAudio samples encoded as 16-bit WAV (any browser, no codec needed) ---
let recorder = null;

function encodeWav(chunks, rate) {
  const length = chunks.reduce((n, c) => n + c.length, 0);
  const view = new DataView(new ArrayBuffer(44 + 2 * length));
  const text = (offset, s) => [...s].forEach((ch, i) => view.setUint8(offset + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * length, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true);
  view.setUint16(22, 1, true); view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, 2 * length, true);
  let offset = 44;
  for (const chunk of chunks) {
    for (const x of chunk) {
      view.setInt16(offset, Math.max(-1, Math.min(1, x)) * 0x7fff, true);
      offset += 2;
    }
  }
  return new Blob([view], { type: "audio/wav" });
}

async function startRecording() {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const context = new AudioContext();
  const source = context.createMediaStreamSource(stream);
  const node = context.createScriptProcessor(4096, 1, 1);
  const chunks = [];
  node.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
  source.connect(node);
  node.connect(context.destination);
  recorder = { stream, context, node, chunks, started: performance.now() };
  $("record").textContent = "■ Stop and transcribe";
  $("record").classList.add("recording");
  setStatus("Recording… speak now.");
}

async function stopRecording() {
  const { stream, context, node, chunks } = recorder;
  recorder = null;
  node.disconnect();
  stream.getTracks().forEach((t) => t.stop());
  const rate = context.sampleRate;
  await context.close();
  $("record").textContent = "● Record from microphone";
  $("record").classList.remove("recording");
  await transcribe(encodeWav(chunks, rate), "recording.wav");
}

$("record").addEventListener("click", async () => {
  try {
    if (recorder) await stopRecording(); else await startRecording();
  } catch (err) {
    setStatus(`Microphone unavailable: ${err.message || err}`, true);
  }
});

$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (file) transcribe(file, file.name);
});
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const file = e.dataTransfer.files[0];
  if (file) transcribe(file, file.name);
});
$("download-srt").addEventListener("click", () => download("srt"));
$("download-vtt").addEventListener("click", () => download("vtt"));
$("copy").addEventListener("click", () => navigator.clipboard.writeText(lastResult ? lastResult.text : ""));

fetch("/api/info").then((r) => r.json()).then((info) => {
  $("model").textContent = `${info.model} · ${info.backend}`;
  $("model").dataset.id = info.model;
  $("explore-link").hidden = !info.explore;
  $("file").dataset.maxBytes = info.max_upload_bytes;
  // The server refuses longer audio up front (HTTP 413): say so before anyone uploads it.
  $("limits").textContent = `Up to ${Math.round(info.max_upload_bytes / 1e6)} MB and ` +
    `${duration(info.max_audio_s)} of audio per file (longer recordings: whisper-ja transcribe).`;
}).catch(() => { $("model").textContent = "server unreachable"; });
