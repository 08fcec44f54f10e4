"""A whole decoder stack as one ONNX Runtime graph: 4-bit products, norms, attention and caches in one call.

The CPU frame loop makes about 100 layer passes per 80 ms frame (28 talker layers, then
the 5 code-predictor layers 15 times), each some 25 small tensor operations. Run op by op
from Python that costs about as much as the products themselves (measured here: 137 ms a
frame with 4-bit products, 81 of them inside ONNX Runtime, in one-off profiling). As one graph a stack pass is one
call: ONNX Runtime's `MatMulNBits` multiplies 4-bit groups with int8 dot products, and
`GroupQueryAttention` applies the rotary positions and writes this step's keys and values
straight into our cache (its past and present buffers are the same memory).

Numbers follow `talker.Stack` (the same norms, rotary tables and attention) up to the
weights' rounding: with weights kept in float32 the graph matches it within 1e-4, which
is what the tests hold it to.
"""

from __future__ import annotations

import numpy as np
import torch

from ...errors import ModelUnavailable
from . import nbits
from .talker import Cache, Part

BITS = {"int4": 4, "int8": 8}
MAX_POSITIONS = 32768  # rotary table rows: positions a request can reach (prompt and frames)


class GraphBuilder:
    """Nodes and weights of one stack graph, written with onnx.helper."""

    def __init__(self, weights: str, group: int | None = None):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.weights = weights  # "int4"/"int8": MatMulNBits on 4/8-bit groups; "float": MatMul (tests)
        self.group = group  # weights per group; None: nbits.group_size of each input
        self.nodes: list = []
        self.initializers: list = []
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def constant(self, array: np.ndarray, hint: str) -> str:
        name = self.name(hint)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: int | list[str] = 1, domain: str = "", **attributes):
        names = outputs if isinstance(outputs, list) else [self.name(op) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op, inputs, names, domain=domain, **attributes))
        return names[0] if len(names) == 1 else names

    def norm(self, x: str, weight: torch.Tensor, eps: float) -> str:
        """Qwen3's RMSNorm over the last axis."""
        return self.node("SimplifiedLayerNormalization", [x, self.constant(_array(weight), "norm")],
                         axis=-1, epsilon=eps)

    def head_norm(self, x: str, weight: torch.Tensor, eps: float, heads: int, head_dim: int) -> str:
        """RMSNorm per attention head (q_norm, k_norm): [b, s, heads * d] viewed as [b, s, heads, d]."""
        split = self.node("Reshape", [x, self.constant(np.array([0, 0, heads, head_dim], np.int64), "shape")])
        normed = self.norm(split, weight, eps)
        return self.node("Reshape", [normed, self.constant(np.array([0, 0, heads * head_dim], np.int64), "shape")])

    def product(self, x: str, projection) -> str:
        """x W^T (+ b) for a `talker.Projection` (weight [out, in])."""
        weight = projection.weight
        if self.weights == "float":
            y = self.node("MatMul", [x, self.constant(_array(weight).T, "weight")])
        else:
            rows, columns = weight.shape
            group, bits = self.group or nbits.group_size(columns), BITS[self.weights]
            codes, scales, zeros = nbits.pack(weight, group, bits)
            inputs = [x, self.constant(codes, "codes"), self.constant(scales, "scales"),
                      self.constant(zeros, "zeros")]
            y = self.node("MatMulNBits", inputs, domain="com.microsoft", K=columns, N=rows, bits=bits,
                          block_size=group, accuracy_level=4)  # int8 activations, integer dot products
        if projection.bias is None:
            return y
        return self.node("Add", [y, self.constant(_array(projection.bias), "bias")])


class StackGraph:
    """`talker.Stack`'s interface (`cache`, `__call__`, `run`) over one ONNX Runtime session.

    Caches are float32 on the CPU, as the graph computes. Rows of several parts (requests in a
    batch) must share one buffer for `GroupQueryAttention`; when a batch's parts change, their
    caches are copied into one and re-pointed at it (joins and leaves, not steps, pay). ONNX
    Runtime writes into the caches without Python's lock held, so calls must not overlap: the
    engine's generation lock (one step at a time) sees to that.
    """

    def __init__(self, stack, weights: str = "int4", threads: int = 1, group: int | None = None):
        try:
            import onnx  # noqa: F401 - builds the graph
            import onnxruntime
        except ImportError as error:
            raise ModelUnavailable(f"--quantize {weights} runs on ONNX Runtime and needs the onnx and onnxruntime "
                                   "packages: pip install -r requirements.txt, or start with --quantize none."
                                   ) from error
        if stack.norm.device.type != "cpu":
            raise ValueError("ONNX Runtime stacks run on the CPU")
        self.layers = len(stack.blocks)
        self.heads, self.kv_heads, self.head_dim = stack.heads, stack.kv_heads, stack.head_dim
        self.hidden = stack.norm.shape[0]
        self.device = stack.norm.device
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # leave idle cores to the vocoder
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(self.graph(stack, GraphBuilder(weights, group)), options,
                                                    providers=["CPUExecutionProvider"])
        self._pool: Cache | None = None
        self._pooled: list[Cache] = []

    # -- building ---------------------------------------------------------------------------
    def graph(self, stack, build: GraphBuilder) -> bytes:
        from onnx import TensorProto, helper

        positions = torch.arange(MAX_POSITIONS, dtype=torch.float32)[:, None] * stack.inv_freq.float().cpu()[None]
        cos = build.constant(_array(positions.cos() * stack.rope_scale), "cos")
        sin = build.constant(_array(positions.sin() * stack.rope_scale), "sin")
        q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        split = build.constant(np.array([q_size, kv_size, kv_size], np.int64), "split")
        halves = build.constant(np.array([stack.blocks[0].gate_up.weight.shape[0] // 2] * 2, np.int64), "halves")
        x = "x"
        for index, block in enumerate(stack.blocks):
            h = build.norm(x, block.input_norm, stack.eps)
            q, k, v = build.node("Split", [build.product(h, block.qkv), split], 3, axis=-1)
            q = build.head_norm(q, block.q_norm, stack.eps, self.heads, self.head_dim)
            k = build.head_norm(k, block.k_norm, stack.eps, self.kv_heads, self.head_dim)
            attended, _, _ = build.node(
                "GroupQueryAttention", [q, k, v, f"past_keys_{index}", f"past_values_{index}", "seqlens",
                                        "total", cos, sin],
                [build.name("attended"), f"keys_{index}", f"values_{index}"], domain="com.microsoft",
                num_heads=self.heads, kv_num_heads=self.kv_heads, do_rotary=1, scale=self.head_dim ** -0.5)
            x = build.node("Add", [x, build.product(attended, block.out)])
            gate, up = build.node("Split", [build.product(build.norm(x, block.post_norm, stack.eps),
                                                          block.gate_up), halves], 2, axis=-1)
            gated = build.node("Mul", [build.node("Mul", [gate, build.node("Sigmoid", [gate])]), up])
            x = build.node("Add", [x, build.product(gated, block.down)])
        build.node("SimplifiedLayerNormalization", [x, build.constant(_array(stack.norm), "norm")], ["hidden"],
                   axis=-1, epsilon=stack.eps)

        def tensor(name, dtype, shape):
            return helper.make_tensor_value_info(name, dtype, shape)

        float_ = TensorProto.FLOAT
        cache = ["rows", self.kv_heads, "length", self.head_dim]
        inputs = [tensor("x", float_, ["rows", "tokens", self.hidden]),
                  tensor("seqlens", TensorProto.INT32, ["rows"]), tensor("total", TensorProto.INT32, [])]
        outputs = [tensor("hidden", float_, ["rows", "tokens", self.hidden])]
        for index in range(self.layers):
            inputs += [tensor(f"past_keys_{index}", float_, cache), tensor(f"past_values_{index}", float_, cache)]
            outputs += [tensor(f"keys_{index}", float_, cache), tensor(f"values_{index}", float_, cache)]
        model = helper.make_model(helper.make_graph(build.nodes, "stack", inputs, outputs, build.initializers),
                                  opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
        return model.SerializeToString()

    # -- running ----------------------------------------------------------------------------
    def cache(self, batch: int, length: int) -> Cache:
        return Cache(self.layers, batch, self.kv_heads, length, self.head_dim, torch.float32, self.device)

    def __call__(self, x: torch.Tensor, cache: Cache, start: int) -> torch.Tensor:
        return self.run(x, [Part(slice(None), cache, start)])

    def run(self, x: torch.Tensor, parts: list[Part]) -> torch.Tensor:
        """Run `x` [rows, tokens, hidden] whose rows come in `parts`; returns the normed hidden states."""
        rows, tokens, _ = x.shape
        if tokens > 1 and any(part.start for part in parts):
            raise ValueError("several tokens at once are only for a prompt (position 0)")
        cache = self._shared(parts)
        ends = [part.start + tokens for part in parts]
        if max(ends) > min(cache.length, MAX_POSITIONS):
            raise ValueError(f"{max(ends)} positions do not fit the cache ({min(cache.length, MAX_POSITIONS)})")
        counts = [_count(part.rows, rows) for part in parts]
        seqlens = np.repeat(np.array(ends, np.int32) - 1, counts)
        binding = self.session.io_binding()
        flat = x.to(torch.float32).contiguous()
        binding.bind_cpu_input("x", flat.numpy())
        binding.bind_cpu_input("seqlens", seqlens)
        binding.bind_cpu_input("total", np.array(max(ends), np.int32))
        hidden = torch.empty(rows, tokens, self.hidden, dtype=torch.float32)
        _bind(binding.bind_output, "hidden", hidden)
        for index in range(self.layers):
            for kind, buffer in (("keys", cache.keys[index]), ("values", cache.values[index])):
                _bind(binding.bind_input, f"past_{kind}_{index}", buffer)
                _bind(binding.bind_output, f"{kind}_{index}", buffer)
        self.session.run_with_iobinding(binding)
        return hidden.to(x.dtype)

    def _shared(self, parts: list[Part]) -> Cache:
        """One cache buffer for every row of `parts`, in their order: `GroupQueryAttention` takes one past
        buffer for the whole batch, and keeping the pool while the parts stay the same makes steps free."""
        if len(parts) == 1:
            self._pool, self._pooled = None, []  # nothing kept for requests that have left
            return parts[0].cache
        caches = [part.cache for part in parts]
        if len(caches) == len(self._pooled) and all(a is b for a, b in zip(caches, self._pooled)):
            return self._pool
        start = 0
        for part in parts:
            if part.rows.start != start or part.rows.stop != start + part.cache.keys.shape[1]:
                raise ValueError("a batch's parts must cover its rows in order, each with its cache's rows")
            start = part.rows.stop
        pool = self.cache(start, max(part.cache.length for part in parts))
        start = 0
        for part in parts:
            cache, count, written = part.cache, part.cache.keys.shape[1], part.start
            pool.keys[:, start:start + count, :, :written] = cache.keys[..., :written, :]
            pool.values[:, start:start + count, :, :written] = cache.values[..., :written, :]
            cache.keys, cache.values = pool.keys[:, start:start + count], pool.values[:, start:start + count]
            cache.length = pool.length
            start += count
        self._pool, self._pooled = pool, caches
        return pool


def _count(rows: slice, total: int) -> int:
    return len(range(*rows.indices(total)))


def _bind(bind, name: str, tensor: torch.Tensor) -> None:
    """Hand ONNX Runtime a tensor's memory (in place: outputs written there, nothing copied)."""
    if not tensor.is_contiguous() or tensor.dtype != torch.float32 or tensor.device.type != "cpu":
        raise ValueError(f"{name} must be a contiguous float32 CPU tensor")
    bind(name, "cpu", 0, np.float32, list(tensor.shape), tensor.data_ptr())


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to(device="cpu", dtype=torch.float32).numpy()
