// The live player: plays what /api/v1/speak sends, through Web Audio, as it arrives.
//
// Runs as a gr.HTML component's js_on_load: Gradio gives `element`, `props`, `trigger` and `watch`.
// The page's Stream button asks the studio for a ticket (the component's value: JSON with the
// ticket, the text, the sample rate, the expected length, the chunk plan and the engine's last
// real-time factor); this script opens the WebSocket with that ticket and schedules each chunk
// with an AudioBufferSourceNode right after the one before. It holds back just enough audio that
// the rest arrives in time (from the generation rate it measures), counts stalls, and tells the
// page when the take is complete ('finished') or stopped ('stopped').

const MARGIN = 1.15; // arrival times are stretched by this much when deciding how much to hold back
const JITTER = 0.03; // seconds of slack for the network and the event loop
const LEAD = 0.003; // seconds between scheduling the first buffer and its start
let context = null;
let current = null; // the stream playing now
let clickedAt = null; // performance.now() of the click (or Ctrl+Enter) that asked for the next stream
let pageRate = null; // the generation rate the last stream on this page measured (audio s per wall s)

const root = () => element.querySelector(".live-player");
const setting = (name) => (root() ? root().dataset[name] : "");

function audioContext() {
  // Created and resumed inside the click itself, so browsers that need a gesture let it play.
  if (!context) context = new AudioContext({ latencyHint: "interactive" });
  if (context.state !== "running") context.resume();
  return context;
}

function show(s, state, text) {
  const node = root();
  if (!node || s !== current) return;
  node.dataset.state = state;
  node.querySelector(".live-state").textContent = text;
}

function figures(s) {
  const node = root();
  if (!node || s !== current) return;
  node.dataset.stalls = String(s.stalls);
  if (s.clickToSound !== null) node.dataset.clickToSound = s.clickToSound.toFixed(1);
  node.dataset.lead = s.lead.toFixed(3);
  node.dataset.marks = JSON.stringify(s.marks);
  const parts = [];
  if (s.clickToSound !== null) parts.push(`sound ${(s.clickToSound / 1000).toFixed(2)} s after the click`);
  if (s.complete) parts.push(`engine's first audio ${s.complete.time_to_first_audio.toFixed(2)} s`);
  if (s.lead > 0.02) parts.push(`held back ${s.lead.toFixed(1)} s (generation at ${rateText(s)})`);
  parts.push(`${s.stalls} stall${s.stalls === 1 ? "" : "s"}`);
  node.querySelector(".live-figures").textContent = parts.join(" · ");
  const total = Math.max(s.received, s.ticket.expected, 0.001);
  node.querySelector(".live-played").style.width = `${Math.min(100, (100 * played(s)) / total)}%`;
  node.querySelector(".live-buffered").style.width = `${Math.min(100, (100 * s.received) / total)}%`;
}

function rateText(s) {
  const rate = measuredRate(s) ?? hintRate(s);
  return rate ? `${rate.toFixed(2)}x real time` : "an unknown rate";
}

function played(s) {
  if (!s.startedAt && s.startedAt !== 0) return 0;
  return Math.max(0, Math.min(s.scheduled, context.currentTime - s.startedAt - s.gaps));
}

function decode(data) {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer, 0, bytes.byteLength >> 2);
}

function measuredRate(s) {
  // Seconds of audio made per second of waiting, from the chunks after the first (the first also
  // carries the prompt's prefill).
  if (s.arrivals.length < 2) return null;
  const first = s.arrivals[0];
  const last = s.arrivals[s.arrivals.length - 1];
  const wall = (last.at - first.at) / 1000;
  return wall > 0.02 ? (last.received - first.received) / wall : null;
}

function hintRate(s) {
  if (pageRate) return pageRate;
  return s.ticket.rtf ? 1 / s.ticket.rtf : null;
}

function enough(s) {
  // Whether the audio in hand covers the wait for every later chunk at the generation rate.
  if (s.complete) return true;
  const rate = measuredRate(s) ?? hintRate(s);
  if (!rate) return true; // nothing known yet: play at once and learn the rate as it plays
  const plan = s.ticket.plan;
  // Past the expected length more may still come: plan for at least two of the largest chunks.
  let remaining = Math.max(s.ticket.expected - s.received, 2 * plan[plan.length - 1]);
  let have = s.pending.reduce((sum, buffer) => sum + buffer.duration, 0);
  let wait = 0;
  for (let k = s.arrivals.length; remaining > 1e-6 && k < s.arrivals.length + 10000; k++) {
    const size = Math.min(plan[Math.min(k, plan.length - 1)], remaining);
    wait += size / rate;
    if (wait * MARGIN + JITTER > have) return false;
    have += size;
    remaining -= size;
  }
  return true;
}

function begin(s) {
  s.playing = true;
  s.nextTime = Math.max(s.nextTime, context.currentTime + LEAD);
  if (s.startedAt === null) {
    s.startedAt = s.nextTime;
    s.lead = s.pending.reduce((sum, buffer) => sum + buffer.duration, 0) - (s.arrivals[0]?.seconds ?? 0);
    s.clickToSound = soundsAt(s.nextTime) - s.clicked;
    const node = root();
    if (node) node.dataset.sounded = String(Number(node.dataset.sounded) + 1);
  } else {
    s.gaps += s.nextTime - s.endTime;
  }
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
  for (const buffer of s.pending) {
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(context.destination);
    source.start(s.nextTime);
    source.onended = () => s.sources.delete(source);
    s.sources.add(source);
    s.nextTime += buffer.duration;
    s.scheduled += buffer.duration;
  }
  s.endTime = s.nextTime;
  s.pending = [];
}

function arrive(s, samples) {
  if (!s.arrivals.length) s.marks.first = performance.now() - s.clicked;
  s.received += samples.length / s.ticket.rate;
  s.arrivals.push({ at: performance.now(), received: s.received, seconds: samples.length / s.ticket.rate });
  const buffer = context.createBuffer(1, samples.length, s.ticket.rate);
  buffer.copyToChannel(samples, 0);
  s.pending.push(buffer);
  if (s.playing && context.currentTime >= s.endTime) dry(s);
  if (s.playing) flush(s);
  else if (enough(s)) begin(s);
  else show(s, s.startedAt === null ? "buffering" : "paused", holdText(s));
  figures(s);
}

function holdText(s) {
  const waiting = s.startedAt === null ? "Buffering" : `Paused after a stall (${s.stalls})`;
  return `${waiting}: holding back audio so the rest arrives in time (generation at ${rateText(s)})…`;
}

function dry(s) {
  // The audio in hand has all played and more is coming: pause cleanly, count it, buffer again.
  s.playing = false;
  s.stalls += 1;
  show(s, "paused", holdText(s));
}

function tick(s) {
  if (s !== current || s.ended) return;
  if (s.playing && context.currentTime >= s.endTime) {
    if (s.complete) return end(s);
    dry(s);
  }
  if (!s.playing && s.complete && s.pending.length) begin(s);
  if (!s.playing && s.complete && !s.pending.length && s.startedAt === null) return end(s);
  figures(s);
}

function end(s) {
  s.ended = true;
  clearInterval(s.timer);
  pageRate = measuredRate(s) ?? pageRate;
  const seconds = s.complete ? s.complete.duration : s.received;
  show(s, "done", `Played ${seconds.toFixed(2)} s.`);
  figures(s);
}

function receive(s, message) {
  if (s !== current || s.stopped) return;
  if (message.type === "audio_chunk") {
    const samples = decode(message.data);
    if (samples.length) arrive(s, samples);
  } else if (message.type === "complete") {
    s.complete = message;
    if (!s.playing && s.pending.length) begin(s);
    figures(s);
    trigger("finished", {
      take: message.take, click_to_sound: s.clickToSound, stalls: s.stalls,
      time_to_first_audio: message.time_to_first_audio,
    });
    s.socket.close(1000);
  } else if (message.type === "error") {
    fail(s, message.message);
  }
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
  trigger("stopped", { seconds, played: played(s) });
}

function play(ticket) {
  if (current && !current.stopped) halt(current); // a new stream replaces the one playing
  audioContext();
  const s = {
    ticket, clicked: clickedAt ?? performance.now(), socket: null, sources: new Set(), pending: [], arrivals: [],
    received: 0, scheduled: 0, playing: false, nextTime: 0, endTime: 0, startedAt: null, gaps: 0, lead: 0,
    stalls: 0, clickToSound: null, complete: null, stopped: false, ended: false, timer: null,
  };
  clickedAt = null;
  current = s;
  s.marks = { ticket: performance.now() - s.clicked };
  const node = root();
  if (node) {
    node.dataset.streams = String(Number(node.dataset.streams) + 1);
    delete node.dataset.clickToSound;
  }
  const url = new URL("api/v1/speak", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = new URLSearchParams({ ticket: ticket.ticket }).toString();
  s.socket = new WebSocket(url);
  s.socket.onopen = () => {
    s.marks.open = performance.now() - s.clicked;
    s.socket.send(JSON.stringify({ type: "start", sample_rate: ticket.rate, encoding: "f32" }));
    s.socket.send(JSON.stringify({ type: "speak", text: ticket.text }));
  };
  s.socket.onmessage = (event) => receive(s, JSON.parse(event.data));
  s.socket.onclose = (event) => {
    if (!s.complete && !s.stopped) fail(s, event.reason || "The connection closed before the take was complete.");
  };
  s.timer = setInterval(() => tick(s), 40);
  show(s, "waiting", "Waiting for the first audio…");
  figures(s);
}

document.addEventListener("click", (event) => {
  const trigger_ = setting("trigger");
  if (trigger_ && event.target.closest(trigger_)) {
    clickedAt = performance.now();
    audioContext();
  }
  const stop_ = setting("stop");
  if (stop_ && event.target.closest(stop_)) stop();
}, true);

document.addEventListener("keydown", (event) => {
  const text = setting("text");
  if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || !text || !event.target.closest(text)) return;
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
