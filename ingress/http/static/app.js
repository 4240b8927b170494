// The try-it page: record or pick a voice message, stream its translations (SSE over fetch), manage
// the voice profile. Same origin only; the API key goes in the Authorization header, never in a URL.
"use strict";

const KEY_NAME = "voice-translator.api-key";
const DEFAULT_LANGUAGES = ["en", "es"];
const COMMON_FIRST = ["en", "es", "fr", "de", "it", "pt", "ar", "zh", "ja", "ru", "hi"]; // listed first
const $ = (id) => document.getElementById(id);

let recorder = null;
let recorded = null; // {blob, name} of the last recording
let busy = false;
const languageNames = new Map(); // code -> name, from /languages

// ---- the API key: sessionStorage by default, localStorage when asked to remember it ----
function storedKey() {
  return sessionStorage.getItem(KEY_NAME) || localStorage.getItem(KEY_NAME) || "";
}

function saveKey(key, remember) {
  sessionStorage.removeItem(KEY_NAME);
  localStorage.removeItem(KEY_NAME);
  if (key) (remember ? localStorage : sessionStorage).setItem(KEY_NAME, key);
}

function headers() {
  const key = storedKey();
  return key ? { Authorization: "Bearer " + key } : {};
}

async function errorText(response) {
  try {
    const body = await response.json();
    const message = body.error && body.error.message ? body.error.message : body.error || body.detail;
    if (response.status === 401) return "The service needs a valid API key (" + message + ").";
    return message + (body.requestId ? " (request " + body.requestId + ")" : "");
  } catch (_) {
    return "HTTP " + response.status;
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (!response.ok) throw new Error(await errorText(response));
  return response;
}

// ---- languages ----
async function loadLanguages() {
  const box = $("languages");
  const status = $("languages-status");
  try {
    const { languages } = await (await api("/languages")).json();
    box.querySelectorAll(".language").forEach((el) => el.remove());
    const rank = (code) => (COMMON_FIRST.includes(code) ? COMMON_FIRST.indexOf(code) : COMMON_FIRST.length);
    languages.sort((a, b) => rank(a.code) - rank(b.code) || a.code.localeCompare(b.code));
    for (const lang of languages) {
      languageNames.set(lang.code, lang.name);
      const label = document.createElement("label");
      label.className = "language";
      const input = document.createElement("input");
      input.type = "checkbox";
      input.name = "language";
      input.value = lang.code;
      input.checked = DEFAULT_LANGUAGES.includes(lang.code);
      label.append(input, " " + lang.name + " (" + lang.code + ")");
      box.append(label);
    }
    status.textContent = "";
    status.hidden = true;
  } catch (err) {
    status.hidden = false;
    status.textContent = "Could not load the languages: " + err.message;
  }
}

function chosenLanguages() {
  return [...document.querySelectorAll("input[name=language]:checked")].map((el) => el.value);
}

// ---- the voice message: microphone or file ----
function showInput(blob) {
  const preview = $("input-preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(blob);
  preview.hidden = false;
}

async function toggleRecording() {
  const button = $("record");
  const status = $("record-status");
  if (recorder && recorder.state === "recording") {
    recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    status.textContent = "No microphone: " + err.message;
    return;
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.addEventListener("dataavailable", (e) => { if (e.data.size) chunks.push(e.data); });
  recorder.addEventListener("stop", () => {
    stream.getTracks().forEach((t) => t.stop());
    const type = recorder.mimeType || "audio/webm";
    const blob = new Blob(chunks, { type });
    recorded = { blob, name: "recording." + (type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm") };
    $("audio-file").value = "";
    showInput(blob);
    button.textContent = "Record";
    button.setAttribute("aria-pressed", "false");
    status.textContent = "Recorded " + Math.round(blob.size / 1024) + " KB";
  });
  recorder.start();
  button.textContent = "Stop";
  button.setAttribute("aria-pressed", "true");
  status.textContent = "Recording… press Stop when done";
}

function currentAudio() {
  const file = $("audio-file").files[0];
  if (file) return { blob: file, name: file.name };
  return recorded;
}

// ---- SSE over a streamed fetch body ----
async function* serverEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { name, data: JSON.parse(data.join("\n")) };
    }
  }
}

function audioUrl(base64, mime) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return URL.createObjectURL(new Blob([bytes], { type: mime }));
}

function percent(x) {
  return x === null || x === undefined ? "n/a" : Math.round(x * 100) + "%";
}

function languageItem(code) {
  let item = document.querySelector('#translations li[data-language="' + code + '"]');
  if (!item) {
    item = document.createElement("li");
    item.dataset.language = code;
    item.className = "translation pending";
    const title = document.createElement("h3");
    title.textContent = (languageNames.get(code) || code) + " (" + code + ")";
    const text = document.createElement("p");
    text.className = "text";
    text.textContent = "Working…";
    item.append(title, text);
    $("translations").append(item);
  }
  return item;
}

function showTranslation(t) {
  const item = languageItem(t.target_language);
  item.className = "translation ready";
  item.querySelector(".text").textContent = t.translated_text;
  const audio = document.createElement("audio");
  audio.controls = true;
  audio.preload = "auto";
  audio.src = audioUrl(t.audio_base64, t.audio_mime_type);
  audio.setAttribute("aria-label", "Translation in " + t.target_language);
  const meta = document.createElement("p");
  meta.className = "meta";
  meta.textContent = t.voice_cloned
    ? "Voice similarity to you: " + percent(t.voice_similarity) + " (base voice: " + percent(t.base_voice_similarity) + ")"
    : "In the service's base voice (not converted to yours)";
  item.append(audio, meta);
}

function showFailure(f) {
  const item = languageItem(f.target_language);
  item.className = "translation failed";
  item.querySelector(".text").textContent = "Failed: " + f.error;
}

async function translate() {
  const status = $("translate-status");
  const audio = currentAudio();
  const languages = chosenLanguages();
  if (!audio) { status.textContent = "Record or pick a voice message first."; return; }
  if (!languages.length) { status.textContent = "Choose at least one language."; return; }
  if (busy) return;
  busy = true;
  $("translate").disabled = true;
  $("transcript-block").hidden = true;
  $("translations").replaceChildren();
  languages.forEach(languageItem);
  status.textContent = "Sending…";
  const form = new FormData();
  form.append("audio", audio.blob, audio.name);
  form.append("target_languages", languages.join(","));
  const userId = $("user-id").value.trim();
  if (userId) form.append("user_id", userId);
  try {
    const response = await api("/api/v1/voice/translate/stream", { method: "POST", body: form });
    status.textContent = "Transcribing…";
    for await (const event of serverEvents(response)) {
      const d = event.data;
      if (event.name === "transcription") {
        $("transcript").textContent = d.transcription.text;
        $("transcript-language").textContent = d.transcription.language;
        $("transcript-block").hidden = false;
        status.textContent = "Translating…";
      } else if (event.name === "language") {
        showTranslation(d.translation);
      } else if (event.name === "language_failed") {
        showFailure(d.failure);
      } else if (event.name === "completed") {
        status.textContent = "Done in " + (d.processing_time_ms / 1000).toFixed(1) + " s.";
      } else if (event.name === "error") {
        status.textContent = "Failed: " + d.error;
      }
    }
  } catch (err) {
    status.textContent = "Failed: " + err.message;
  } finally {
    busy = false;
    $("translate").disabled = false;
  }
}

// ---- the voice profile ----
function profilePath() {
  const userId = $("user-id").value.trim();
  if (!userId) throw new Error("Enter your user id above first.");
  return "/api/v1/voice/profiles/" + encodeURIComponent(userId);
}

async function loadProfile() {
  const status = $("profile-status");
  $("profile").hidden = true;
  try {
    const p = await (await api(profilePath())).json();
    $("profile-quality").textContent = percent(p.qualityScore);
    $("profile-samples").textContent = String(p.audioCount);
    $("profile-duration").textContent = (p.totalDurationMs / 1000).toFixed(1) + " s";
    $("profile-version").textContent = String(p.version);
    $("profile-updated").textContent = new Date(p.updatedAt).toLocaleString();
    $("profile").hidden = false;
    status.textContent = "";
  } catch (err) {
    status.textContent = err.message;
  }
}

async function deleteProfile() {
  const status = $("profile-status");
  try {
    const path = profilePath();
    if (!window.confirm("Delete your voice profile? Your next messages will start a new one.")) return;
    await api(path, { method: "DELETE" });
    $("profile").hidden = true;
    status.textContent = "Your voice profile is deleted.";
  } catch (err) {
    status.textContent = err.message;
  }
}

// ---- wiring ----
function init() {
  $("api-key").value = storedKey();
  $("remember-key").checked = Boolean(localStorage.getItem(KEY_NAME));
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    saveKey($("api-key").value.trim(), $("remember-key").checked);
    $("key-status").textContent = storedKey() ? "Key saved for this " + ($("remember-key").checked ? "device." : "tab.") : "No key.";
    loadLanguages();
  });
  $("record").addEventListener("click", toggleRecording);
  $("audio-file").addEventListener("change", () => {
    const file = $("audio-file").files[0];
    if (file) { recorded = null; showInput(file); }
  });
  $("translate").addEventListener("click", translate);
  $("profile-load").addEventListener("click", loadProfile);
  $("profile-delete").addEventListener("click", deleteProfile);
  if (!window.MediaRecorder) {
    $("record").disabled = true;
    $("record-status").textContent = "This browser cannot record; pick a file instead.";
  }
  loadLanguages();
}

document.addEventListener("DOMContentLoaded", init);
