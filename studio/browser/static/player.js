// Plays audio as it arrives: each chunk is scheduled right after the previous one in one AudioContext.

export class StreamPlayer {
  constructor(rate) {
    this.context = new AudioContext({ sampleRate: rate });
    this.rate = rate;
    this.next = 0;
    this.sources = [];
  }

  play(samples) {
    if (!samples.length) return;
    const buffer = this.context.createBuffer(1, samples.length, this.rate);
    buffer.copyToChannel(samples, 0);
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    this.next = Math.max(this.next, this.context.currentTime + 0.05);
    source.start(this.next);
    this.next += buffer.duration;
    this.sources.push(source);
  }

  stop() {
    for (const source of this.sources) source.stop();
    this.sources = [];
    this.context.close();
  }
}

// A 16-bit WAV of the whole take, for the page's <audio> player and download link.
export function wavBlob(samples, rate) {
  const view = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (at, s) => [...s].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, samples.length * 2, true);
  samples.forEach((s, i) => view.setInt16(44 + i * 2, Math.max(-1, Math.min(1, s)) * 32767, true));
  return new Blob([view], { type: "audio/wav" });
}
