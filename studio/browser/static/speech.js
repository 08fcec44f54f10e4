// A line of text spoken sentence by sentence, as the server's studio/streaming.py does it:
// every sentence decoded in fixed windows, and sentences meeting with 10 ms fades.

import { seeded } from "./picking.js";
import { concat } from "./windows.js";

const FADE_SAMPLES = 240;

// Let the page breathe between steps: clicks (Stop), painting and the player run while the engine works,
// even when WebAssembly runs on the page's own thread.
function breathe() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function fade(samples, rising) {
  const n = Math.min(FADE_SAMPLES, samples.length);
  const out = Float32Array.from(samples);
  for (let i = 0; i < n; i++) {
    const ramp = Math.fround(n === 1 ? 0 : i / (n - 1));
    const at = rising ? i : samples.length - 1 - i;
    out[at] = Math.fround(out[at] * ramp);
  }
  return out;
}

// Speak `plan.sentences` ({ids or embeds, limit}) with `engine`; `onChunk(samples)` gets audio as it is made.
// Returns the tokens (or frames) of every sentence and the whole take.
export async function speak(engine, plan, prompt, how, seed, stopped, onChunk) {
  const random = seeded(seed);
  const pieces = [];
  const steps = [];
  let left = plan.budget;
  const deliverAll = async (samples) => {
    if (samples.length) {
      pieces.push(samples);
      await onChunk(samples);
    }
  };
  for (const [number, sentence] of plan.sentences.entries()) {
    if (left <= 0 || stopped()) break;
    const fadeIn = number > 0;
    const fadeOut = number < plan.sentences.length - 1;
    let started = false;
    let held = new Float32Array(0);
    const deliver = async (samples) => {
      if (fadeIn && !started && samples.length) samples = fade(samples, true);
      started = started || samples.length > 0;
      if (fadeOut) {
        const joined = concat([held, samples]);
        held = joined.slice(Math.max(0, joined.length - FADE_SAMPLES));
        samples = joined.slice(0, Math.max(0, joined.length - FADE_SAMPLES));
      }
      await deliverAll(samples);
    };
    const decoder = engine.decoder(prompt);
    const made = [];
    await engine.generate(sentence, prompt, how, random, Math.min(sentence.limit, left), stopped,
                          async (step) => {
                            made.push(step);
                            await breathe();
                            await deliver(await decoder.push([step]));
                          });
    steps.push(made);
    left -= made.length;
    if (stopped()) break;
    await deliver(await decoder.finish());
    if (fadeOut && held.length) await deliverAll(fade(held, false));
  }
  return { steps, samples: concat(pieces) };
}
