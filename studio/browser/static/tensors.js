// Tensors between the studio's JSON, ONNX Runtime Web and plain arrays; float16 where a variant uses it.

export function fromJson(ort, spec) {
  const bytes = Uint8Array.from(atob(spec.data), (c) => c.charCodeAt(0));
  const data = spec.dtype === "int64" ? new BigInt64Array(bytes.buffer) : new Float32Array(bytes.buffer);
  return new ort.Tensor(spec.dtype, data, spec.shape);
}

export function int64(ort, values, shape) {
  return new ort.Tensor("int64", BigInt64Array.from(values, (v) => BigInt(v)), shape);
}

export function zeros(ort, type, shape) {
  const size = shape.reduce((a, b) => a * b, 1);
  return new ort.Tensor(type, type === "float16" ? new Uint16Array(size) : new Float32Array(size), shape);
}

// Float32 values of a float32 or float16 tensor.
export function floats(tensor) {
  if (tensor.type === "float32") return tensor.data;
  if (tensor.type === "float16") return Float32Array.from(tensor.data, halfToFloat);
  throw new Error(`expected a float tensor, got ${tensor.type}`);
}

// Float32 values of a tensor wherever it lives (a WebGPU buffer is read back and released).
export async function readFloats(tensor) {
  if (tensor.location === "cpu" || tensor.location === undefined) return floats(tensor);
  const data = await tensor.getData(true);
  return tensor.type === "float16" ? Float32Array.from(data, halfToFloat) : data;
}

// Release tensors kept on the GPU (a key/value cache the next step has replaced).
export function release(tensors) {
  for (const tensor of tensors) if (tensor.location === "gpu-buffer") tensor.dispose();
}

// A float32 array as a tensor of `type` (float32, or float16 for fp16 graphs).
export function asType(ort, type, values, shape) {
  if (type === "float32") return new ort.Tensor("float32", values, shape);
  return new ort.Tensor("float16", Uint16Array.from(values, floatToHalf), shape);
}

function halfToFloat(h) {
  if (typeof h === "number" && !Number.isInteger(h)) return h; // a Float16Array element is already a number
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

function floatToHalf(value) {
  scratch[0] = value;
  const x = scratchBits[0];
  const sign = (x >> 16) & 0x8000;
  let exponent = ((x >> 23) & 0xff) - 127 + 15;
  let mantissa = x & 0x7fffff;
  if (((x >> 23) & 0xff) === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  if (exponent >= 31) return sign | 0x7c00;
  if (exponent <= 0) {
    if (exponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - exponent;
    let half = mantissa >> shift;
    if ((mantissa >> (shift - 1)) & 1 && ((mantissa & ((1 << (shift - 1)) - 1)) || half & 1)) half += 1;
    return sign | half;
  }
  let half = sign | (exponent << 10) | (mantissa >> 13);
  if (mantissa & 0x1000 && (mantissa & 0x2fff)) half += 1; // round to nearest even
  return half;
}
