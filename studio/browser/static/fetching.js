// Graph files fetched once: kept in the browser's Cache Storage, with byte-level progress while downloading.

const CACHE = "voice-studio-graphs-v1";

export function authHeaders() {
  const key = sessionStorage.getItem("voice-studio-key");
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export async function fetchJson(url, options = {}) {
  const response = await fetch(url, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  const body = await response.json().catch(() => ({ error: `The studio answered ${response.status}.` }));
  if (!response.ok) throw new StudioError(body.error || `The studio answered ${response.status}.`, response.status);
  return body;
}

export class StudioError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function openCache() {
  try {
    return await caches.open(CACHE);
  } catch {
    return null; // no Cache Storage here (an insecure origin): download every visit
  }
}

// Drop cached files of other model versions (their URLs carry another fingerprint).
export async function forgetOthers(prefix, keep) {
  const cache = await openCache();
  if (!cache) return;
  for (const request of await cache.keys()) {
    const path = new URL(request.url).pathname;
    if (path.startsWith(prefix) && !path.startsWith(keep)) await cache.delete(request);
  }
}

// Graph files one at a time (so a tab holds one graph's bytes while it builds that graph's session), read from
// Cache Storage when they are there; `progress(done, total, fromCache)` as bytes arrive.
export class Downloader {
  constructor(total, progress) {
    Object.assign(this, { total, progress, done: 0, cached: 0, cache: undefined });
  }

  async get(url) {
    if (this.cache === undefined) this.cache = await openCache();
    const hit = this.cache && (await this.cache.match(url));
    let bytes;
    if (hit) {
      bytes = new Uint8Array(await hit.arrayBuffer());
      this.cached += bytes.length;
    } else {
      bytes = await download(url, (n) => this.progress(this.done + n, this.total, false));
      if (this.cache) {
        try {
          await this.cache.put(url, new Response(bytes, { headers: { "Content-Type": "application/octet-stream" } }));
        } catch (error) {
          console.warn("could not keep a graph in Cache Storage", error); // quota: still usable this visit
        }
      }
    }
    this.done += bytes.length;
    this.progress(this.done, this.total, Boolean(hit));
    return bytes;
  }
}

async function download(url, progress) {
  const response = await fetch(url, { headers: authHeaders() });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new StudioError(body.error || `Downloading ${url} failed (${response.status}).`, response.status);
  }
  const size = Number(response.headers.get("Content-Length")) || 0;
  const reader = response.body.getReader();
  const bytes = size ? new Uint8Array(size) : null;
  const parts = [];
  let at = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (bytes) bytes.set(value, at);
    else parts.push(value);
    at += value.length;
    progress(at);
  }
  if (bytes) return bytes;
  const joined = new Uint8Array(at);
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return joined;
}
