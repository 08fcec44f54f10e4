// The live player: plays what the studio's page socket (/api/v1/live) sends, through Web Audio, as it arrives.
//
// Runs as a gr.HTML component's js_on_load: Gradio gives `element`, `props`, `trigger` and `watch`.
// A click on the page's button asks the studio for a ticket (the component's value: JSON). At the
// same moment the player takes a socket it opened ahead of the click (on focus of the text or on
// the button, after a take), or opens one, so the handshake overlaps the ticket's round trip; its first
// message is the ticket, and nothing happens on it without one. A Stream ticket ("speech") is one
// take; a Compare ticket ("run") is a series of takes, each announced by a "part" message. Each
// chunk is scheduled with an AudioBufferSourceNode right after the one before. For every take the
// player holds back just enough audio that the rest arrives in time (from the generation rate it
// measures), counts stalls, and tells the page when the stream is complete ('finished') or
// stopped ('stopped').

const MARGIN = 1.15; // arrival times are stretched by this much when deciding how much to hold back
const JITTER = 0.03; // seconds of slack for the network and the event loop
const LEAD = 0.003; // seconds between scheduling the first buffer and its start
let context = null;
let current = null; // the stream playing now
let clickedAt = null; // performance.now() of the click (or Ctrl+Enter) that asked for the next stream
let clickSocket = null; // the socket taken at that click, waiting for its ticket
let spare = null; // a socket opened ahead of a click; without a ticket it can do nothing
let pageRate = null; // the generation rate the last take on this page measured (audio s per wall s)

const root = () => element.querySelector(".live-player");
const setting = (name) => (root() ? root().dataset[name] : "");

function audioContext(resume = true) {
  // Created early (focus, pointerdown) and resumed inside the click, so browsers that need a gesture let it play.
  if (!context) context = new AudioContext({ latencyHint: "interactive" });
  if (resume && context.state !== "running") context.resume();
  return context;
}

// -- sockets ---------------------------------------------------------------------------------------
function openSocket() {
  const url = new URL("api/v1/live", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url);
  socket.openedAt = performance.now();
  socket.addEventListener("open", () => { socket.readyAt = performance.now(); });
  return socket;
}

function warm() {
  // Keep one socket open while a click is likely; the page drops it before the studio would.
  const fresh = spare && spare.readyState <= WebSocket.OPEN &&
    performance.now() - spare.openedAt < 1000 * (Number(setting("spare")) - 1);
  if (fresh) return;
  if (spare) spare.close();
  const socket = openSocket();
  spare = socket;
  socket.addEventListener("close", () => { if (spare === socket) spare = null; });
  setTimeout(() => { if (spare === socket) { spare = null; socket.close(); } }, 1000 * Number(setting("spare")));
}

function takeSocket() {
  const socket = spare && spare.readyState <= WebSocket.OPEN ? spare : openSocket();
  spare = null;
  return socket;
}

// -- what the page shows ---------------------------------------------------------------------------
function show(s, state, text) {
  const node = root();
  if (!node || s !== current) return;
  node.dataset.state = state;
  const label = s.part && s.part.label && state !== "done" ? `${s.part.label}: ` : "";
  node.querySelector(".live-state").textContent = label + text;
}

function figures(s) {
  const node = root();
  if (!node || s !== current) return;
  const p = s.part;
  node.dataset.stalls = String(s.stalls);
  if (s.clickToSound !== null) node.dataset.clickToSound = s.clickToSound.toFixed(1);
  node.dataset.marks = JSON.stringify(s.marks);
  const parts = [];
  if (s.clickToSound !== null) parts.push(`sound ${(s.clickToSound / 1000).toFixed(2)} s after the click`);
  if (s.firstAudio !== null) parts.push(`engine's first audio ${s.firstAudio.toFixed(2)} s`);
  if (p) {
    node.dataset.lead = p.lead.toFixed(3);
    if (p.lead > 0.02) parts.push(`held back ${p.lead.toFixed(1)} s (generation at ${rateText(p)})`);
  }
  parts.push(`${s.stalls} stall${s.stalls === 1 ? "" : "s"}`);
  node.querySelector(".live-figures").textContent = parts.join(" · ");
  const total = p ? Math.max(p.received, p.expected, 0.001) : 1;
  node.querySelector(".live-played").style.width = `${p ? Math.min(100, (100 * played(p)) / total) : 0}%`;
  node.querySelector(".live-buffered").style.width = `${p ? Math.min(100, (100 * p.received) / total) : 0}%`;
}

function rateText(p) {
  const rate = measuredRate(p) ?? hintRate(p);
  return rate ? `${rate.toFixed(2)}x real time` : "an unknown rate";
}

function played(p) {
  if (p.startedAt === null) return 0;
  return Math.max(0, Math.min(p.scheduled, context.currentTime - p.startedAt - p.gaps));
}

// -- one take: how much to hold back, when to play -------------------------------------------------
function newPart(how) {
  return {
    label: how.label || "", rate: how.rate, expected: how.expected || 0, plan: how.plan || [0.08], rtf: how.rtf,
    arrivals: [], pending: [], received: 0, scheduled: 0, playing: false, startedAt: null, gaps: 0, lead: 0,
    complete: null, done: false,
  };
}

function decode(data) {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer, 0, bytes.byteLength >> 2);
}

function measuredRate(p) {
  // Seconds of audio made per second of waiting, from the chunks after the first (the first also
  // carries the prompt's prefill).
  if (p.arrivals.length < 2) return null;
  const first = p.arrivals[0];
  const last = p.arrivals[p.arrivals.length - 1];
  const wall = (last.at - first.at) / 1000;
  return wall > 0.02 ? (last.received - first.received) / wall : null;
}

function hintRate(p) {
  if (pageRate) return pageRate;
  return p.rtf ? 1 / p.rtf : null;
}

function enough(s) {
  // Whether the audio in hand (held, and still playing from the take before) covers the wait for
  // every later chunk of this take at the generation rate.
  const p = s.part;
  if (p.complete) return true;
  const rate = measuredRate(p) ?? hintRate(p);
  if (!rate) return true; // nothing known yet: play at once and learn the rate as it plays
  const plan = p.plan;
  // Past the expected length more may still come: plan for at least two of the largest chunks.
  let remaining = Math.max(p.expected - p.received, 2 * plan[plan.length - 1]);
  let have = p.pending.reduce((sum, buffer) => sum + buffer.duration, 0) +
    Math.max(0, s.endTime - context.currentTime);
  let wait = 0;
  for (let k = p.arrivals.length; remaining > 1e-6 && k < p.arrivals.length + 10000; k++) {
    const size = Math.min(plan[Math.min(k, plan.length - 1)], remaining);
    wait += size / rate;
    if (wait * MARGIN + JITTER > have) return false;
    have += size;
    remaining -= size;
  }
  return true;
}

function begin(s) {
  const p = s.part;
  p.playing = true;
  const at = Math.max(s.nextTime, context.currentTime + LEAD);
  if (p.startedAt === null) {
    p.startedAt = at;
    p.lead = p.pending.reduce((sum, buffer) => sum + buffer.duration, 0) - (p.arrivals[0]?.seconds ?? 0);
    if (s.clickToSound === null) s.clickToSound = soundsAt(at) - s.clicked;
    const node = root();
    if (node && s === current) node.dataset.sounded = String(Number(node.dataset.sounded) + 1);
  } else {
    p.gaps += at - s.endTime;
  }
  s.nextTime = at;
  show(s, "playing", "Playing as it is generated…");
  flush(s);
}

function soundsAt(when) {
  // performance.now() at which the context plays the sample scheduled at `when`.
  const stamp = context.getOutputTimestamp ? context.getOutputTimestamp() : null;
  if (stamp && stamp.performanceTime > 0) return stamp.performanceTime + (when - stamp.contextTime) * 1000;
  const latency = (context.baseLatency || 0) + (context.outputLatency || 0);
  return performance.now() + (when - context.currentTime + latency) * 1000;
}

function flush(s) {
  const p = s.part;
  for (const buffer of p.pending) {
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(context.destination);
    source.start(s.nextTime);
    source.onended = () => s.sources.delete(source);
    s.sources.add(source);
    s.nextTime += buffer.duration;
    p.scheduled += buffer.duration;
  }
  s.endTime = s.nextTime;
  p.pending = [];
}

function arrive(s, samples, rate) {
  const p = s.part;
  if (!("first" in s.marks)) s.marks.first = performance.now() - s.clicked;
  p.received += samples.length / rate;
  p.arrivals.push({ at: performance.now(), received: p.received, seconds: samples.length / rate });
  const buffer = context.createBuffer(1, samples.length, rate);
  buffer.copyToChannel(samples, 0);
  p.pending.push(buffer);
  if (p.playing && context.currentTime >= s.endTime) dry(s);
  if (p.playing) flush(s);
  else if (enough(s)) begin(s);
  else show(s, p.startedAt === null ? "buffering" : "paused", holdText(s));
  figures(s);
}

function holdText(s) {
  const waiting = s.part.startedAt === null ? "Buffering" : `Paused after a stall (${s.stalls})`;
  return `${waiting}: holding back audio so the rest arrives in time (generation at ${rateText(s.part)})…`;
}

function dry(s) {
  // The audio in hand has all played and more of this take is coming: pause cleanly, count it, buffer again.
  s.part.playing = false;
  s.stalls += 1;
  show(s, "paused", holdText(s));
}

function tick(s) {
  if (s !== current || s.ended) return;
  const p = s.part;
  if (p && p.playing && context.currentTime >= s.endTime) {
    if (!p.complete) dry(s);
    else {
      p.playing = false;
      p.done = true;
      pageRate = measuredRate(p) ?? pageRate;
      if (!s.complete) show(s, "between", "played; the next take comes after this one is scored…");
    }
  }
  if (p && !p.playing && p.complete && p.pending.length) begin(s);
  const quiet = !p || (!p.playing && !p.pending.length);
  if (s.complete && quiet) return end(s);
  figures(s);
}

function end(s) {
  s.ended = true;
  clearInterval(s.timer);
  if (s.part) pageRate = measuredRate(s.part) ?? pageRate;
  const seconds = s.heard + (s.part ? s.part.received : 0);
  const takes = s.parts > 1 ? ` in ${s.parts} takes` : "";
  show(s, "done", `Played ${seconds.toFixed(2)} s${takes}.`);
  figures(s);
  warm(); // another click is likely now: its socket is ready
}

// -- messages from the studio ----------------------------------------------------------------------
function receive(s, message) {
  if (s !== current || s.stopped) return;
  s.answered = true;
  if (message.type === "audio_chunk") {
    const samples = decode(message.data);
    if (samples.length && s.part) arrive(s, samples, message.rate || s.part.rate);
  } else if (message.type === "part") {
    if (s.part) s.heard += s.part.received;
    s.part = newPart(message);
    s.parts += 1;
    show(s, "waiting", "waiting for its first audio…");
  } else if (message.type === "part_end") {
    partComplete(s, message);
  } else if (message.type === "complete") {
    if (s.part && !s.part.complete) partComplete(s, message);
    s.complete = message;
    if (s.kind === "speech") {
      trigger("finished", {
        take: message.take, click_to_sound: s.clickToSound, stalls: s.stalls,
        time_to_first_audio: message.time_to_first_audio,
      });
    }
    s.socket.close(1000);
    tick(s);
  } else if (message.type === "error") {
    fail(s, message.message);
  }
}

function partComplete(s, message) {
  const p = s.part;
  if (!p) return;
  p.complete = message;
  if (s.firstAudio === null && typeof message.time_to_first_audio === "number") {
    s.firstAudio = message.time_to_first_audio;
  }
  if (!p.playing && p.pending.length) begin(s);
  figures(s);
}

function fail(s, text) {
  if (s.ended) return;
  s.ended = true;
  clearInterval(s.timer);
  show(s, "error", text);
}

function halt(s) {
  s.stopped = true;
  clearInterval(s.timer);
  if (s.socket.readyState === WebSocket.OPEN) s.socket.send(JSON.stringify({ type: "stop" }));
  s.socket.close(1000);
  for (const source of s.sources) {
    try { source.stop(); } catch (error) { /* already ended */ }
  }
  s.sources.clear();
}

function stop() {
  const s = current;
  if (!s || s.stopped || s.ended) return;
  halt(s);
  const seconds = (performance.now() - s.clicked) / 1000;
  show(s, "stopped", `Stopped after ${seconds.toFixed(1)} s.`);
  trigger("stopped", { seconds, played: s.part ? played(s.part) : 0 });
}

function connect(s, socket, retried) {
  // Send the ticket as the socket's first message, now or once it is open. A spare the studio
  // closed just before the ticket reached it is replaced once: the ticket was not used.
  s.socket = socket;
  const send = () => {
    s.marks.open = (socket.readyAt ?? performance.now()) - s.clicked; // below 0: open before the click
    socket.send(JSON.stringify({ type: "ticket", ticket: s.ticket.ticket }));
  };
  if (socket.readyState === WebSocket.OPEN) send();
  else socket.addEventListener("open", send);
  socket.onmessage = (event) => receive(s, JSON.parse(event.data));
  socket.onclose = (event) => {
    if (s.complete || s.stopped || s !== current) return;
    if (!s.answered && !retried && event.reason !== "This stream ticket is used or expired: click Stream again.") {
      return connect(s, openSocket(), true);
    }
    fail(s, event.reason || "The connection closed before the take was complete.");
  };
}

function play(ticket) {
  if (current && !current.stopped && !current.ended) halt(current); // a new stream replaces the one playing
  audioContext();
  const s = {
    ticket, kind: ticket.kind || "speech", clicked: clickedAt ?? performance.now(), socket: null,
    sources: new Set(), nextTime: 0, endTime: 0, stalls: 0, clickToSound: null, firstAudio: null,
    part: ticket.kind === "run" ? null : newPart(ticket), parts: ticket.kind === "run" ? 0 : 1, heard: 0,
    complete: null, stopped: false, ended: false, answered: false, timer: null,
  };
  const socket = clickSocket ?? takeSocket();
  clickedAt = null;
  clickSocket = null;
  current = s;
  s.marks = { ticket: performance.now() - s.clicked };
  const node = root();
  if (node) {
    node.dataset.streams = String(Number(node.dataset.streams) + 1);
    delete node.dataset.clickToSound;
  }
  connect(s, socket, false);
  s.timer = setInterval(() => tick(s), 40);
  show(s, "waiting", s.kind === "run" ? "Starting…" : "Waiting for the first audio…");
  figures(s);
}

// -- the page's gestures ---------------------------------------------------------------------------
const on = (selector, target) => selector && target instanceof Element && target.closest(selector);

document.addEventListener("click", (event) => {
  if (on(setting("trigger"), event.target)) {
    clickedAt = performance.now();
    audioContext();
    if (clickSocket) clickSocket.close();
    clickSocket = takeSocket(); // opening now overlaps the handshake with the ticket's round trip
  }
  if (on(setting("stop"), event.target)) stop();
}, true);

document.addEventListener("pointerdown", (event) => {
  if (on(setting("trigger"), event.target)) {
    audioContext(); // a gesture: the context may start here
    warm();
  }
}, true);

document.addEventListener("pointerover", (event) => { if (on(setting("trigger"), event.target)) warm(); }, true);
document.addEventListener("focusin", (event) => {
  if (on(setting("text"), event.target)) {
    audioContext(false);
    warm();
  }
}, true);

document.addEventListener("keydown", (event) => {
  const text = setting("text");
  if (!on(text, event.target)) return;
  warm();
  if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
  event.preventDefault();
  const button = document.querySelector(setting("trigger"));
  if (button) button.click();
}, true);

watch("value", () => {
  if (!props.value) return;
  let ticket;
  try {
    ticket = JSON.parse(props.value);
  } catch (error) {
    return;
  }
  if (ticket && ticket.ticket) play(ticket);
});
