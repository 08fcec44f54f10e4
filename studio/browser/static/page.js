// The page: pick an engine, voice, backend and variant; fetch graphs (cached); speak into the player.

import { Chatterbox } from "./chatterbox.js";
import { Marvis } from "./marvis.js";
import { Downloader, fetchJson, forgetOthers, StudioError } from "./fetching.js";
import { StreamPlayer, wavBlob } from "./player.js";
import { speak } from "./speech.js";

// The studio serves the runtime itself, never a CDN; `npm ci` installs it.
const ort = await import("/browser/ort/ort.all.min.mjs").catch(() => null);
if (ort) {
  ort.env.wasm.wasmPaths = "/browser/ort/";
  ort.env.logLevel = "error";
  // Threads need cross-origin isolation (the studio sends COOP/COEP); half the cores, as ONNX Runtime Web's default.
  ort.env.wasm.numThreads = crossOriginIsolated ? Math.min(4, Math.ceil((navigator.hardwareConcurrency || 2) / 2)) : 1;
}

const ENGINES = { "chatterbox-turbo": Chatterbox, marvis: Marvis };
const ORDER = { wasm: ["fp32", "q8", "fp16", "q4", "q4f16"], webgpu: ["q4f16", "fp16", "q4", "fp32", "q8"] };
const BACKEND_NAMES = { webgpu: "WebGPU", wasm: "WebAssembly" };
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const state = { loaded: null, stopping: false };

function show(id, text) {
  $(id).textContent = text;
}

function fail(message) {
  $("error").hidden = !message;
  show("error", message || "");
}

function megabytes(bytes) {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

// The user's words for a failure: out of memory and missing runtime files said plainly.
export function describeFailure(error, variant) {
  const text = String(error && (error.message || error));
  if (error instanceof StudioError) return text;
  if (error instanceof RangeError || /out of memory|bad_alloc|allocation failed|Failed to allocate|OOM|memory access out of bounds|Aborted\(/i.test(text)) {
    const size = variant ? ` the ${variant.name} variant (${megabytes(variant.bytes)})` : " this model";
    return `This tab ran out of memory running${size}. Close other tabs, or choose a smaller variant ` +
      "(on WebAssembly a tab can address at most 4 GB; 4-bit variants are smallest).";
  }
  return `The browser engine failed: ${text}`;
}
window.describeFailure = describeFailure;

async function detectBackend(choice) {
  if (choice !== "auto") return choice;
  try {
    if (navigator.gpu && (await navigator.gpu.requestAdapter())) return "webgpu";
  } catch { /* no adapter: WebAssembly */ }
  return "wasm";
}

// The variant to run: the one asked for, else the best that fits the backend; null when none fits.
function chooseVariant(manifest, backend, asked) {
  const offered = manifest.variants;
  if (asked !== "auto") return offered.find((v) => v.name === asked && (backend !== "wasm" || v.fits_wasm)) || null;
  const fitting = offered.filter((v) => backend !== "wasm" || v.fits_wasm);
  for (const name of ORDER[backend]) {
    const found = fitting.find((v) => v.name === name);
    if (found) return found;
  }
  return null;
}

function noVariantMessage(manifest, backend, asked) {
  const named = manifest.variants.find((v) => v.name === asked);
  if (named) return `The ${asked} variant of ${manifest.label} (${megabytes(named.bytes)}) does not fit ` +
    `${BACKEND_NAMES[backend]}: a WebAssembly tab can address at most 4 GB. Choose a smaller variant or WebGPU.`;
  if (asked !== "auto") return `The ${asked} variant of ${manifest.label} is not in the studio's model folder; ` +
    `it has: ${manifest.variants.map((v) => v.name).join(", ")}.`;
  const smallest = Math.min(...manifest.variants.map((v) => v.bytes));
  return `No variant of ${manifest.label} fits ${BACKEND_NAMES[backend]}: the smallest is ${megabytes(smallest)}, ` +
    "and a WebAssembly tab can address at most 4 GB. Use a browser with WebGPU.";
}

async function loadEngine() {
  const name = $("engine").value;
  const manifest = await fetchJson(`/browser/api/${name}/manifest`);
  const backend = await detectBackend($("backend").value);
  const variant = chooseVariant(manifest, backend, $("variant").value);
  if (!variant) throw new StudioError(noVariantMessage(manifest, backend, $("variant").value));
  const key = `${name}/${manifest.fingerprint}/${backend}/${variant.name}`;
  if (state.loaded && state.loaded.key === key) return state.loaded;
  if (state.loaded) await Promise.all(Object.values(state.loaded.sessions).map((s) => s.release())); // free memory
  state.loaded = null;
  const base = `/browser/api/${name}/graphs/${manifest.fingerprint}/`;
  await forgetOthers(`/browser/api/${name}/graphs/`, base);
  $("download").hidden = false;
  const started = performance.now();
  const downloads = new Downloader(variant.bytes, (done, total, fromCache) => {
    $("download-bar").value = total ? done / total : 1;
    show("download-note", `${fromCache ? "from the browser's cache" : "downloading"}: ` +
      `${megabytes(done)} of ${megabytes(total)}`);
  });
  const sessions = {};
  for (const [graph, spec] of Object.entries(variant.graphs)) {
    const model = await downloads.get(base + spec.model);
    const externalData = [];
    for (const file of spec.data) externalData.push({ path: file, data: await downloads.get(base + file) });
    show("status", `Preparing ${graph} on ${BACKEND_NAMES[backend]} ...`);
    const onGpu = backend === "webgpu" && ENGINES[name].cachedGraphs.includes(graph);
    sessions[graph] = await ort.InferenceSession.create(model, { executionProviders: [backend], externalData,
      ...(onGpu ? { preferredOutputLocation: "gpu-buffer" } : {}) });
  }
  const cached = downloads.cached;
  show("download-note", cached === variant.bytes ? `${megabytes(variant.bytes)} from the browser's cache`
    : `downloaded ${megabytes(variant.bytes - cached)} (kept in the browser's cache for the next visit)`);
  const engine = new ENGINES[name](ort, sessions, manifest.layout);
  state.loaded = { key, engine, sessions, manifest, backend, variant, seconds: (performance.now() - started) / 1000,
                   cached: cached === variant.bytes };
  window.voiceStudioLoaded = { engine: name, backend, variant: variant.name, bytes: variant.bytes,
                               fromCache: state.loaded.cached };
  return state.loaded;
}

function describeLoaded(loaded) {
  const threads = loaded.backend === "wasm" ? `, ${ort.env.wasm.numThreads} thread${ort.env.wasm.numThreads > 1 ? "s" : ""}` : "";
  return `${loaded.manifest.label} on ${BACKEND_NAMES[loaded.backend]}${threads}, variant ${loaded.variant.name} ` +
    `(${megabytes(loaded.variant.bytes)})${crossOriginIsolated ? "" : "; not cross-origin isolated: one thread"}`;
}

// The server's defaults (studio/engine.py Sampling): a repetition penalty where the engine's loop has one.
function sampling(name) {
  const number = (id) => Number($(id).value);
  return { temperature: number("temperature"), top_k: number("top-k"), top_p: 1.0,
           repetition_penalty: ENGINES[name].repetitionPenalty === false ? 1.0 : 1.05 };
}

async function run() {
  fail("");
  state.stopping = false;
  $("speak").disabled = true;
  $("stop").disabled = false;
  $("take").hidden = $("take-link").hidden = true;
  window.voiceStudioTake = null;
  show("metrics", "");
  let loaded = null;
  let player = null;
  try {
    loaded = await loadEngine();
    const name = $("engine").value;
    show("status", describeLoaded(loaded) + " · preparing the text and voice ...");
    const maxFrames = Number($("max-frames").value) || null;
    const body = JSON.stringify({ text: $("text").value, language: "English", max_frames: maxFrames });
    const [plan, voice] = await Promise.all([
      fetchJson(`/browser/api/${name}/text`, { method: "POST", body, headers: { "Content-Type": "application/json" } }),
      fetchJson(`/browser/api/${name}/voices/${encodeURIComponent($("voice").value)}`)]);
    const prompt = ENGINES[name].prompt(ort, voice);
    const rate = loaded.manifest.sample_rate;
    player = new StreamPlayer(rate);
    show("status", describeLoaded(loaded) + " · speaking ...");
    const started = performance.now();
    let firstAudio = null;
    let made = 0;
    const result = await speak(loaded.engine, plan, prompt, sampling(name), Number($("seed").value) || 0,
      () => state.stopping, async (samples) => {
        if (firstAudio === null) firstAudio = (performance.now() - started) / 1000;
        made += samples.length;
        player.play(samples);
        show("metrics", `first audio after ${firstAudio.toFixed(2)} s · ${(made / rate).toFixed(2)} s of audio so far`);
      });
    const seconds = (performance.now() - started) / 1000;
    const duration = result.samples.length / rate;
    const rtf = duration ? seconds / duration : 0;
    const stopped = state.stopping ? " Stopped." : "";
    show("metrics", `${duration.toFixed(2)} s of audio; first audio after ${(firstAudio ?? seconds).toFixed(2)} s; ` +
      `total ${seconds.toFixed(2)} s (real-time factor ${rtf.toFixed(2)}, measured in this browser); ` +
      `${result.steps.reduce((n, sentence) => n + sentence.length, 0)} ${ENGINES[name].unit}.${stopped}`);
    show("status", describeLoaded(loaded) + (state.stopping ? " · stopped" : " · done"));
    const url = URL.createObjectURL(wavBlob(result.samples, rate));
    $("take").src = $("take-link").href = url;
    $("take").hidden = $("take-link").hidden = false;
    window.voiceStudioTake = { engine: name, backend: loaded.backend, variant: loaded.variant.name,
      steps: result.steps, samples: Array.from(result.samples), stopped: state.stopping,
      timeToFirstAudio: firstAudio, realTimeFactor: rtf, seconds, cacheLocation: loaded.engine.cacheLocation };
  } catch (error) {
    if (error instanceof StudioError && error.status === 401) $("key-row").hidden = false;
    if (player) player.stop();
    fail(describeFailure(error, loaded ? loaded.variant : null));
    show("status", "Not speaking.");
    window.voiceStudioTake = { error: $("error").textContent };
  } finally {
    $("speak").disabled = false;
    $("stop").disabled = true;
  }
}

async function fillVoices() {
  const listed = await fetchJson("/browser/api/voices");
  $("voice").replaceChildren(...listed.voices.map((name) => new Option(name, name, false, name === listed.default)));
  if (!listed.voices.length) throw new StudioError("The library has no voices yet: save one in the studio first.");
}

async function fillVariants() {
  const manifest = await fetchJson(`/browser/api/${$("engine").value}/manifest`);
  $("variant").replaceChildren(new Option("Auto", "auto"),
    ...manifest.variants.map((v) => new Option(`${v.name} (${megabytes(v.bytes)})`, v.name)));
  const asked = params.get("variant");
  if (asked && !manifest.variants.some((v) => v.name === asked)) {
    $("variant").append(new Option(`${asked} (not in the model folder)`, asked));
  }
  if (asked) $("variant").value = asked;
}

async function start() {
  $("engine").replaceChildren(new Option("Chatterbox-Turbo", "chatterbox-turbo"), new Option("Marvis TTS", "marvis"));
  for (const [param, id] of [["engine", "engine"], ["backend", "backend"], ["voice", "voice"]]) {
    if (params.get(param) && id !== "voice") $(id).value = params.get(param);
  }
  $("speak").addEventListener("click", run);
  $("stop").addEventListener("click", () => { state.stopping = true; show("status", "Stopping ..."); });
  $("key-row").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("voice-studio-key", $("key").value);
    location.reload();
  });
  $("engine").addEventListener("change", () => fillVariants().catch((e) => fail(describeFailure(e))));
  try {
    if (!ort) throw new StudioError("ONNX Runtime Web is missing from this studio: run `npm ci` in its folder.");
    await fillVoices();
    if (params.get("voice")) $("voice").value = params.get("voice");
    await fillVariants();
    show("status", `Ready. ${crossOriginIsolated ? "Cross-origin isolated: WebAssembly can use threads." :
      "Not cross-origin isolated: WebAssembly runs on one thread."}`);
    $("speak").disabled = false;
  } catch (error) {
    if (error instanceof StudioError && error.status === 401) $("key-row").hidden = false;
    fail(describeFailure(error));
    show("status", "Not ready.");
  }
  document.body.dataset.ready = "true";
}

start();
