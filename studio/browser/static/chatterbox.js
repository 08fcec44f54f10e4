// Chatterbox-Turbo in the page: the server's studio/chatterbox.py loop on ONNX Runtime Web.
// The server made the voice's prompt tensors once (its speech encoder); the page embeds the text,
// runs the language model with its key/value cache token by token, and decodes fixed windows of tokens.

import { pick } from "./picking.js";
import { asType, floats, fromJson, int64, readFloats, release, zeros } from "./tensors.js";
import { WindowDecoder } from "./windows.js";

export const START_TOKEN = 6561;
export const STOP_TOKEN = 6562;
const SILENCE_TOKEN = 4299;
const TAIL_SILENCE = 3;
const WINDOW = 10;
const CONTEXT = 10;
export const GRAPHS = ["embed_tokens", "language_model", "conditional_decoder"];

export class Chatterbox {
  static unit = "speech tokens";
  static cachedGraphs = ["language_model"]; // on WebGPU its cache stays on the GPU between steps
  constructor(ort, sessions) {
    this.ort = ort;
    this.embed = sessions.embed_tokens;
    this.model = sessions.language_model;
    this.vocoder = sessions.conditional_decoder;
    this.pastNames = this.model.inputNames.filter((name) => name.startsWith("past_key_values."));
    const meta = (this.model.inputMetadata || []).find((m) => m.name === this.pastNames[0]);
    const shape = meta && meta.shape ? meta.shape : [];
    this.kvHeads = Number.isInteger(shape[1]) ? shape[1] : 16;
    this.headDim = Number.isInteger(shape[3]) ? shape[3] : 64;
    this.cacheType = meta && meta.type === "float16" ? "float16" : "float32";
  }

  // Speech tokens of one sentence ({ids}), one at a time: `onToken(token)` is awaited after each; stops at STOP_TOKEN,
  // at `limit`, or when `stopped()` says so.
  async generate(sentence, prompt, how, random, limit, stopped, onToken) {
    const ort = this.ort;
    const ids = sentence.ids;
    const text = await this.embed.run({ input_ids: int64(ort, ids, [1, ids.length]) });
    const textEmbeds = text.inputs_embeds;
    const conditioning = prompt.audio_features;
    const hidden = textEmbeds.dims[2];
    const length = conditioning.dims[1] + ids.length;
    const joined = new Float32Array(length * hidden);
    joined.set(conditioning.data);
    joined.set(floats(textEmbeds), conditioning.data.length);
    let embeds = asType(ort, textEmbeds.type, joined, [1, length, hidden]);
    let past = {};
    for (const name of this.pastNames) past[name] = zeros(ort, this.cacheType, [1, this.kvHeads, 0, this.headDim]);
    let total = length;
    let positions = Array.from({ length }, (_, i) => i);
    const history = [START_TOKEN];
    const banned = [START_TOKEN];
    try {
      for (let step = 0; step < limit && !stopped(); step++) {
        const feeds = { inputs_embeds: embeds, attention_mask: int64(ort, new Array(total).fill(1), [1, total]),
                        position_ids: int64(ort, positions, [1, positions.length]), ...past };
        const out = await this.model.run(feeds);
        release(Object.values(past));
        past = {};
        for (const name of this.pastNames) past[name] = out[name.replace("past_key_values", "present")];
        this.cacheLocation = past[this.pastNames[0]].location; // "gpu-buffer" on WebGPU: no copy per step
        const logits = out.logits;
        const vocab = logits.dims[2];
        const rows = logits.dims[1];
        const last = (await readFloats(logits)).subarray((rows - 1) * vocab, rows * vocab);
        const token = pick(last.subarray(0, STOP_TOKEN + 1), how, random, history, banned);
        history.push(token);
        if (token === STOP_TOKEN) return;
        await onToken(token);
        embeds = (await this.embed.run({ input_ids: int64(ort, [token], [1, 1]) })).inputs_embeds;
        total += 1;
        positions = [positions[positions.length - 1] + 1];
      }
    } finally {
      release(Object.values(past));
    }
  }

  decoder(prompt) {
    const vocode = async (steps, closing) => {
      const body = closing ? [...steps, ...new Array(TAIL_SILENCE).fill(SILENCE_TOKEN)] : steps;
      const reference = prompt.audio_tokens.data;
      const tokens = new BigInt64Array(reference.length + body.length);
      tokens.set(reference);
      body.forEach((t, i) => { tokens[reference.length + i] = BigInt(t); });
      const out = await this.vocoder.run({
        speech_tokens: new this.ort.Tensor("int64", tokens, [1, tokens.length]),
        speaker_embeddings: prompt.speaker_embeddings, speaker_features: prompt.speaker_features });
      return Float32Array.from(floats(out[this.vocoder.outputNames[0]]));
    };
    return new WindowDecoder(vocode, WINDOW, CONTEXT, TAIL_SILENCE);
  }

  static prompt(ort, json) {
    const tensors = {};
    for (const [name, spec] of Object.entries(json.tensors)) tensors[name] = fromJson(ort, spec);
    return tensors;
  }
}
