// Decoding a stream in fixed windows with left context, as the server's studio/windows.py does:
// windows are fixed by step index, so the stream equals the one-shot decode.

export class WindowDecoder {
  // decode(steps, closing) -> Float32Array of samples for those steps (and any closing audio).
  constructor(decode, window, context, closingSteps = 0) {
    Object.assign(this, { decode, window, context, closingSteps, steps: [], done: 0 });
  }

  async push(steps) {
    this.steps.push(...steps);
    const pieces = [];
    while (this.steps.length - this.done >= this.window) {
      pieces.push(await this.windowAt(this.done, this.done + this.window, false));
      this.done += this.window;
    }
    return concat(pieces);
  }

  async finish() {
    if (!this.steps.length || (this.done === this.steps.length && !this.closingSteps)) return new Float32Array(0);
    const tail = await this.windowAt(this.done, this.steps.length, true);
    this.done = this.steps.length;
    return tail;
  }

  async windowAt(start, end, closing) {
    const first = Math.max(0, start - this.context);
    const samples = await this.decode(this.steps.slice(first, end), closing);
    const perStep = samples.length / (end - first + (closing ? this.closingSteps : 0));
    return samples.slice(Math.round((start - first) * perStep));
  }
}

export function concat(pieces) {
  const out = new Float32Array(pieces.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}
