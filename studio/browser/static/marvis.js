// Marvis (CSM) in the page: the graphs written by `python -m studio.export marvis`, run in the frame loop of
// transformers' generate (as the server's studio/marvis.py uses it): the backbone picks each frame's first code,
// the depth decoder the other codes one by one, and Mimi decodes fixed windows of frames.

import { pick } from "./picking.js";
import { floats, fromJson, int64, readFloats, release, zeros } from "./tensors.js";
import { WindowDecoder } from "./windows.js";

const WINDOW = 5;
const CONTEXT = 10;

export class Marvis {
  static repetitionPenalty = false; // CSM's generate has none
  static unit = "frames of codes";
  static cachedGraphs = ["backbone", "depth_decoder"]; // on WebGPU their caches stay on the GPU between steps

  constructor(ort, sessions, layout) {
    this.ort = ort;
    this.layout = layout;
    this.sessions = sessions;
    this.backbonePast = sessions.backbone.inputNames.filter((n) => n.startsWith("past_key_values."));
    this.depthPast = sessions.depth_decoder.inputNames.filter((n) => n.startsWith("past_key_values."));
  }

  emptyCache(names, heads, headDim) {
    const cache = {};
    for (const name of names) cache[name] = zeros(this.ort, "float32", [1, heads, 0, headDim]);
    return cache;
  }

  async backbone(embeds, start, past) {
    const length = embeds.dims[1];
    const positions = Array.from({ length }, (_, i) => start + i);
    const out = await this.sessions.backbone.run({ inputs_embeds: embeds,
      position_ids: int64(this.ort, positions, [1, length]), ...past });
    release(Object.values(past));
    const present = {};
    for (const name of this.backbonePast) present[name] = out[name.replace("past_key_values", "present")];
    this.cacheLocation = present[this.backbonePast[0]].location; // "gpu-buffer" on WebGPU: no copy per step
    return { logits: await readFloats(out.logits), hidden: out.last_hidden_state, past: present };
  }

  // One frame of codes: the backbone's first code, then the depth decoder's, each from its own logits.
  async frame(logits, hidden, how, random) {
    const { codebook_size: size, num_codebooks: count, depth_kv_heads: heads, depth_head_dim: headDim } = this.layout;
    const codes = [pick(logits.subarray(0, size), how, random, [], [])];
    let past = this.emptyCache(this.depthPast, heads, headDim);
    let ids = [0, codes[0]];
    let positions = [0, 1];
    while (codes.length < count) {
      const out = await this.sessions.depth_decoder.run({ input_ids: int64(this.ort, ids, [1, ids.length]),
        backbone_hidden: hidden, cache_position: int64(this.ort, positions, [positions.length]), ...past });
      release(Object.values(past));
      past = {};
      for (const name of this.depthPast) past[name] = out[name.replace("past_key_values", "present")];
      codes.push(pick((await readFloats(out.logits)).subarray(0, size), how, random, [], []));
      ids = [codes[codes.length - 1]];
      positions = [positions[positions.length - 1] + 1];
    }
    release(Object.values(past));
    return codes;
  }

  // Frames of one sentence ({embeds}: its turn embedded by the studio), one at a time.
  async generate(sentence, prompt, how, random, limit, stopped, onFrame) {
    const ort = this.ort;
    const text = fromJson(ort, sentence.embeds);
    const prefix = prompt.prefix_embeds;
    const hidden = prefix.dims[2];
    const length = prefix.dims[1] + text.dims[1];
    const joined = new Float32Array(length * hidden);
    joined.set(prefix.data);
    joined.set(text.data, prefix.data.length);
    const { backbone_kv_heads: heads, backbone_head_dim: headDim } = this.layout;
    let step = await this.backbone(new ort.Tensor("float32", joined, [1, length, hidden]), 0,
                                   this.emptyCache(this.backbonePast, heads, headDim));
    try {
      for (let made = 0; made < limit && !stopped(); made++) {
        const codes = await this.frame(step.logits, step.hidden, how, random);
        release([step.hidden]);
        if (codes.slice(0, -1).every((c) => c === this.layout.codebook_eos)) return; // the end-of-audio frame
        await onFrame(codes);
        const embeds = (await this.sessions.embed_audio.run({ codes: int64(ort, codes, [1, 1, codes.length]) }))
          .inputs_embeds;
        step = await this.backbone(embeds, length + made, step.past);
      }
    } finally {
      release([step.hidden, ...Object.values(step.past)]);
    }
  }

  decoder() {
    const count = this.layout.num_codebooks;
    const vocode = async (frames) => {
      const codes = new Array(count * frames.length);
      frames.forEach((frame, t) => frame.forEach((code, k) => { codes[k * frames.length + t] = code; }));
      const out = await this.sessions.mimi_decoder.run({ codes: int64(this.ort, codes, [1, count, frames.length]) });
      return Float32Array.from(floats(out.audio));
    };
    return new WindowDecoder(vocode, WINDOW, CONTEXT, 0);
  }

  static prompt(ort, json) {
    return { prefix_embeds: fromJson(ort, json.tensors.prefix_embeds) };
  }
}
