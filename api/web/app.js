// talksearch web page: search, play the exact clip, read the transcript, add recordings.
// Plain browser JavaScript talking to the JSON API of the same server; no build step.
"use strict";

const $ = (selector) => document.querySelector(selector);
const LANGUAGE_NAMES = { en: "English", ru: "Русский", ko: "한국어" };
const TRANSCRIPT_SUFFIXES = [".srt", ".vtt", ".json"];
const CLIP_MARGIN = 0.25; // seconds of air around a clip, so its first word is not clipped
const KEY_STORAGE = "talksearch.apiKey";
const KEY_COOKIE = "talksearch_key";

const player = $("#player");
const playing = { recordingId: null, title: "", offset: 0 };
const recordingsById = new Map();
let openTranscriptId = null;

// -- helpers --------------------------------------------------------------------------------------
function mmss(seconds) {
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
  const pad = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${pad(m)}:${pad(s)}` : `${pad(m)}:${pad(s)}`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function languageName(code) {
  return LANGUAGE_NAMES[code] || code;
}

function audioAmount(hours) {
  return hours >= 1 ? `${hours.toFixed(1)} h of audio` : `${Math.round(hours * 60)} min of audio`;
}

function aboutRecording(recording) {
  return [recording?.speaker, recording?.event, recording?.date].filter(Boolean).join(" · ");
}

function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

// The API's errors are {"detail": "one line"}, or a list of the fields at fault (422).
function problem(body, fallback) {
  const detail = body?.detail;
  return Array.isArray(detail) ? detail.map((d) => `${d.loc?.at(-1)}: ${d.msg}`).join("; ") : detail || fallback;
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (apiKey()) headers["X-API-Key"] = apiKey();
  const response = await fetch(path, { ...options, headers });
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) throw new Error(problem(body, response.statusText));
  return body;
}

// -- the words that matched -----------------------------------------------------------------------
// The server marks them ([start, end) code-point ranges), with the same analysis its keyword index
// uses: Korean morphemes without their particles, Russian and English stems.
function marked(text, spans) {
  const chars = Array.from(text || "");
  const fragment = document.createDocumentFragment();
  let at = 0;
  for (const [start, end] of [...(spans || [])].sort((a, b) => a[0] - b[0])) {
    if (start < at) continue;
    fragment.append(chars.slice(at, start).join(""), el("mark", {}, chars.slice(start, end).join("")));
    at = end;
  }
  fragment.append(chars.slice(at).join(""));
  return fragment;
}

// -- playback -------------------------------------------------------------------------------------
function showPlayer(recordingId, title) {
  playing.recordingId = recordingId;
  playing.title = title;
  $("#player-bar").hidden = false;
}

function playClip(hit) {
  showPlayer(hit.recording_id, hit.title);
  playing.offset = Math.max(0, hit.start - CLIP_MARGIN);
  player.dataset.clipStart = String(hit.start);
  delete player.dataset.media;
  player.src = `${hit.clip_url}&margin=${CLIP_MARGIN}`;
  player.play().catch(() => {});
}

function playFrom(recording, seconds) {
  showPlayer(recording.id, recording.title);
  playing.offset = 0;
  delete player.dataset.clipStart;
  const seek = () => {
    player.currentTime = seconds;
    player.play().catch(() => {});
  };
  if (player.dataset.media !== recording.media_url) {
    player.dataset.media = recording.media_url;
    player.src = recording.media_url;
    player.addEventListener("loadedmetadata", seek, { once: true });
    player.load();
  } else {
    seek();
  }
}

function recordingTime() {
  return playing.offset + player.currentTime;
}

player.addEventListener("timeupdate", () => {
  const at = recordingTime();
  $("#now-playing").textContent = `${playing.title} · ${mmss(at)}`;
  if (openTranscriptId === playing.recordingId) followPlayback(at);
});

// -- search ---------------------------------------------------------------------------------------
async function search(query, lang) {
  const params = new URLSearchParams({ q: query, k: "20" });
  if (lang) params.set("lang", lang);
  history.replaceState(null, "", `?${params}`);
  $("#status").textContent = "Searching…";
  const started = performance.now();
  try {
    const hits = await api(`search?${params}`);
    const groups = groupByRecording(hits);
    const ms = Math.round(performance.now() - started);
    const count = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
    $("#status").textContent = hits.length
      ? `${count(hits.length, "passage")} in ${count(groups.size, "recording")} (${ms} ms)`
      : "Nothing found. Try other words or another language.";
    renderResults(groups);
  } catch (error) {
    $("#status").textContent = `Search failed: ${error.message}`;
  }
}

function groupByRecording(hits) {
  const groups = new Map();
  for (const hit of hits) {
    if (!groups.has(hit.recording_id)) groups.set(hit.recording_id, []);
    groups.get(hit.recording_id).push(hit);
  }
  return groups;
}

function renderResults(groups) {
  const results = $("#results");
  results.replaceChildren();
  for (const [recordingId, hits] of groups) {
    const first = hits[0];
    results.append(el("article", { className: "group", "data-recording": recordingId },
      el("header", { className: "group-head" },
        el("h2", { lang: first.language }, first.title),
        el("span", { className: "badge", title: "spoken language" }, languageName(first.language)),
        el("span", { className: "muted" }, aboutRecording(recordingsById.get(recordingId))),
        el("button", { type: "button", className: "link open-transcript",
          onclick: () => openTranscript(recordingId, first) }, "Transcript")),
      el("ol", { className: "hits" }, ...hits.map(renderHit))));
  }
}

function renderHit(hit) {
  // A copied quote names its speaker once the voice has a name (SPEAKER_1 says nothing to a reader).
  const named = hit.speaker && !/^SPEAKER_\d+$/.test(hit.speaker);
  const quote = `“${hit.text}” — ${named ? `${hit.speaker}, ` : ""}${hit.title}, ${mmss(hit.start)}`;
  const translation = hit.translation && hit.language !== "en"
    ? el("p", { className: hit.translation_doubtful ? "translation doubtful" : "translation", lang: "en" },
        hit.translation_doubtful ? el("span", { className: "doubt muted",
          title: "This English was made by the speech recogniser and agrees poorly with what was said" },
          "Machine rendering, low confidence: ") : null,
        marked(hit.translation, hit.translation_highlights)) : null;
  return el("li", { className: "hit", "data-start": hit.start, "data-end": hit.end },
    el("div", { className: "hit-head" },
      el("button", { type: "button", className: "play", disabled: !hit.clip_url,
        title: hit.clip_url ? "Play exactly this passage" : "No audio: imported from a transcript",
        onclick: () => playClip(hit) }, "▶ Play"),
      el("button", { type: "button", className: "time link", title: "Show in the transcript",
        onclick: () => openTranscript(hit.recording_id, hit) }, `${mmss(hit.start)}–${mmss(hit.end)}`),
      el("button", { type: "button", className: "copy", title: "Copy the quote with title and time",
        onclick: (event) => copyQuote(quote, event.currentTarget) }, "Copy quote"),
      hit.speaker ? el("span", { className: "speaker", title: "who says it" }, hit.speaker) : null),
    hit.approximate ? el("p", { className: "approximate muted" },
      "Near match: no transcript has these exact words; this is the closest spelling, as recognised.") : null,
    el("blockquote", { className: "quote", lang: hit.language }, marked(hit.text, hit.highlights)),
    translation);
}

async function copyQuote(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Pages served over plain http to another machine have no clipboard API.
    const area = el("textarea", { className: "visually-hidden" }, text);
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = "Copy quote"; }, 1500);
}

// -- transcript -----------------------------------------------------------------------------------
async function openTranscript(recordingId, focus = null) {
  let recording;
  try {
    recording = await api(`recordings/${encodeURIComponent(recordingId)}`);
  } catch (error) {
    $("#status").textContent = `Cannot open the transcript: ${error.message}`;
    return;
  }
  openTranscriptId = recording.id;
  $("#transcript-title").textContent = recording.title;
  $("#transcript-title").lang = recording.language;
  $("#transcript-meta").textContent = [languageName(recording.language), mmss(recording.duration), aboutRecording(recording)]
    .filter(Boolean).join(" · ");
  const segments = recording.segments.map((segment, i) => {
    const inHit = focus && segment.end > focus.start && segment.start < focus.end;
    const turn = segment.speaker && segment.speaker_label !== recording.segments[i - 1]?.speaker_label;
    return el("li", { className: inHit ? "segment in-hit" : "segment", "data-start": segment.start, "data-end": segment.end },
      el("button", { type: "button", className: "time link", disabled: !recording.media_url,
        title: recording.media_url ? "Play from here" : "No audio: imported from a transcript",
        onclick: () => playFrom(recording, segment.start) }, mmss(segment.start)),
      el("div", {},
        turn ? el("p", { className: "speaker" }, segment.speaker) : null,
        el("p", { lang: segment.language }, segment.text),
        segment.translation && segment.language !== "en"
          ? el("p", { className: "translation", lang: "en" }, segment.translation) : null));
  });
  $("#segments").replaceChildren(...segments);
  renderSpeakers(recording, focus);
  const panel = $("#transcript");
  panel.hidden = false;
  document.body.classList.add("transcript-open");
  const target = panel.querySelector(".in-hit") || panel.querySelector(".segment");
  target?.scrollIntoView({ block: "center", behavior: "instant" });
  if (playing.recordingId === recording.id) followPlayback(recordingTime());
}

// Naming a voice: its label (SPEAKER_2) or current name, and the name to give it.
async function renderSpeakers(recording, focus) {
  let voices = [];
  try {
    voices = await api(`recordings/${encodeURIComponent(recording.id)}/speakers`);
  } catch {
    // the transcript is still worth reading without its speaker list
  }
  $("#speakers").replaceChildren(...voices.map((voice) => {
    const input = el("input", { type: "text", value: voice.name || "", "aria-label": `Name of ${voice.label}`,
      placeholder: voice.suggested ? `sounds like ${voice.suggested}` : voice.label, maxlength: 300 });
    return el("li", { className: "voice", "data-label": voice.label },
      el("form", { onsubmit: async (event) => {
        event.preventDefault();
        try {
          await api(`recordings/${encodeURIComponent(recording.id)}/speakers`, { method: "PATCH",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ speaker: voice.label, name: input.value.trim() || null }) });
          openTranscript(recording.id, focus);
        } catch (error) {
          $("#transcript-meta").textContent = `Cannot rename: ${error.message}`;
        }
      } },
        el("span", { className: "muted" }, `${voice.label} · ${mmss(voice.seconds)}`), input,
        el("button", { type: "submit", className: "rename" }, "Rename")));
  }));
  $("#speakers").hidden = voices.length === 0;
}

function followPlayback(at) {
  let current = null;
  for (const segment of document.querySelectorAll("#segments .segment")) {
    const now = at >= Number(segment.dataset.start) && at < Number(segment.dataset.end);
    segment.classList.toggle("playing", now);
    if (now) current = segment;
  }
  if (current && !current.dataset.followed) {
    document.querySelectorAll("#segments [data-followed]").forEach((s) => delete s.dataset.followed);
    current.dataset.followed = "1";
    current.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }
}

$("#transcript-close").addEventListener("click", () => {
  $("#transcript").hidden = true;
  openTranscriptId = null;
  document.body.classList.remove("transcript-open");
});

// -- library --------------------------------------------------------------------------------------
async function refreshLibrary() {
  try {
    const [stats, recordings] = await Promise.all([api("stats"), api("recordings")]);
    $("#stats").textContent = `${stats.recordings} recordings · ${audioAmount(stats.hours)}`;
    recordingsById.clear();
    recordings.forEach((r) => recordingsById.set(r.id, r));
    $("#recordings").replaceChildren(...recordings.map((r) => el("li", {},
      el("button", { type: "button", className: "link", lang: r.language, onclick: () => openTranscript(r.id) }, r.title),
      el("span", { className: "muted" }, [languageName(r.language), mmss(r.duration), aboutRecording(r)].filter(Boolean).join(" · ")))));
    if (!recordings.length) $("#recordings").append(el("li", { className: "muted" }, "No recordings yet: add one below."));
    const select = $("#lang");
    const known = new Set([...select.options].map((o) => o.value));
    for (const code of new Set(recordings.map((r) => r.language))) {
      if (!known.has(code)) select.append(el("option", { value: code }, languageName(code)));
    }
  } catch (error) {
    $("#stats").textContent = `Library unavailable: ${error.message}`;
  }
}

// -- adding recordings ----------------------------------------------------------------------------
function rememberKey(key) {
  localStorage.setItem(KEY_STORAGE, key);
  // <audio> cannot send headers; servers that protect reads also accept the key from this cookie.
  document.cookie = `${KEY_COOKIE}=${encodeURIComponent(key)}; path=/; SameSite=Strict`;
}

function upload(form) {
  const file = $("#upload-file").files[0];
  const isTranscript = TRANSCRIPT_SUFFIXES.some((s) => file.name.toLowerCase().endsWith(s));
  const data = new FormData(form);
  if (isTranscript) {  // a transcript is not heard again: hot words are for the recogniser
    data.delete("file");
    data.delete("hotwords");
    data.append("transcript", file);
  }
  const request = new XMLHttpRequest();
  request.open("POST", isTranscript ? "recordings/import" : "recordings");
  if (apiKey()) request.setRequestHeader("X-API-Key", apiKey());
  request.upload.addEventListener("progress", (event) => {
    if (!event.lengthComputable) return;
    const sent = event.loaded / event.total;
    showJob(sent, `Uploading ${file.name}… ${Math.round(100 * sent)}%`);
  });
  request.addEventListener("load", () => {
    const body = request.getResponseHeader("content-type")?.includes("json") ? JSON.parse(request.responseText) : null;
    if (request.status === 202) watchJob(body.id);
    else showJob(0, `Upload refused (${request.status}): ${problem(body, request.statusText)}`, "failed");
  });
  request.addEventListener("error", () => showJob(0, "Upload failed: the server could not be reached", "failed"));
  showJob(0, `Uploading ${file.name}…`);
  request.send(data);
}

function showJob(progress, text, state = "running") {
  if ($("#job").hidden) {
    $("#job").hidden = false;
    $("#job").scrollIntoView({ block: "nearest" });
  }
  $("#job").dataset.state = state;
  $("#job-progress").value = progress;
  $("#job-status").textContent = text;
}

async function watchJob(jobId) {
  let job;
  try {
    job = await api(`jobs/${jobId}`);
  } catch (error) {
    showJob(0, `Lost track of the job: ${error.message}`, "failed");
    return;
  }
  if (job.state === "done") {
    showJob(1, job.note || `${job.filename} is searchable now.`, "done");
    refreshLibrary().then(() => $("#job").scrollIntoView({ block: "nearest" }));
    if (job.recording_id) $("#job-status").append(" ", el("button", { type: "button", className: "link",
      onclick: () => openTranscript(job.recording_id) }, "Open transcript"));
  } else if (job.state === "failed") {
    showJob(job.progress, `${job.filename}: ${job.error}`, "failed");
  } else {
    const doing = job.state === "queued" ? "waiting for the job before it" : `transcribing… ${Math.round(100 * job.progress)}%`;
    showJob(job.progress, `${job.filename}: ${doing}`);
    setTimeout(() => watchJob(jobId), 1000);
  }
}

// -- wiring ---------------------------------------------------------------------------------------
$("#search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const query = $("#q").value.trim();
  if (query) search(query, $("#lang").value);
});

$("#upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  upload(event.currentTarget);
});

$("#api-key").value = apiKey();
if (apiKey()) rememberKey(apiKey()); // renews the session cookie that <audio> requests carry
$("#api-key").addEventListener("change", (event) => rememberKey(event.currentTarget.value.trim()));

(async function start() {
  const params = new URLSearchParams(location.search);
  await refreshLibrary();
  if (params.get("q")) {
    $("#q").value = params.get("q");
    $("#lang").value = params.get("lang") || "";
    search(params.get("q"), params.get("lang") || "");
  }
})();
