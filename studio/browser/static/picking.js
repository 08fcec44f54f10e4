// Choosing a token from logits in the order the server's studio/sampling.py uses:
// repetition penalty, banned tokens, then greedy argmax, or temperature, top-k, top-p and a draw.
// Greedy picks equal the server's; sampled takes use the page's own random numbers (not torch's).

const f32 = Math.fround;

export function pick(logits, how, random, history, banned) {
  const scores = Float32Array.from(logits);
  if (how.repetition_penalty !== 1 && history.length) {
    const penalty = f32(how.repetition_penalty);
    for (const token of new Set(history)) {
      const value = scores[token];
      scores[token] = value < 0 ? f32(value * penalty) : f32(value / penalty);
    }
  }
  for (const token of banned) scores[token] = -Infinity;
  if (how.temperature === 0) return argmax(scores);
  const temperature = f32(how.temperature);
  for (let i = 0; i < scores.length; i++) scores[i] = f32(scores[i] / temperature);
  if (how.top_k > 0 && how.top_k < scores.length) {
    const kth = Float32Array.from(scores).sort()[scores.length - how.top_k];
    for (let i = 0; i < scores.length; i++) if (scores[i] < kth) scores[i] = -Infinity;
  }
  const probabilities = softmax(scores);
  if (how.top_p < 1) {
    const order = Array.from(probabilities.keys()).sort((a, b) => probabilities[a] - probabilities[b]);
    let cumulative = 0;
    for (let rank = 0; rank < order.length - 1; rank++) {
      cumulative += probabilities[order[rank]];
      if (cumulative > 1 - how.top_p) break;
      probabilities[order[rank]] = 0;
    }
  }
  let total = 0;
  for (const p of probabilities) total += p;
  let draw = random() * total;
  for (let i = 0; i < probabilities.length; i++) {
    draw -= probabilities[i];
    if (draw < 0 && probabilities[i] > 0) return i;
  }
  return argmax(probabilities);
}

function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

function softmax(scores) {
  let top = -Infinity;
  for (const s of scores) top = Math.max(top, s);
  const out = new Float64Array(scores.length);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += out[i] = Math.exp(scores[i] - top);
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

// A small seeded generator (mulberry32): a take's seed decides it, within this page.
export function seeded(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
