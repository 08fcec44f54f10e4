"""4-bit weights for the CPU frame loop: groups of 32 with a scale and a zero point each, run by ONNX Runtime.

A frame reads every talker and code-predictor weight about sixteen times over, so
bytes per weight bound the loop. PyTorch's own int4 CPU kernel
(`_weight_int4pack_mm_for_cpu`) measured no faster than its weight-only int8 one on
this project's CPU: it turns weights back into floats before multiplying. ONNX
Runtime's `MatMulNBits` with accuracy_level 4 instead quantizes the activations to
int8 per group of 32 and multiplies with int8 dot products (VNNI where the CPU has
it), about 2.5x faster than the int8 kernel per matrix-vector product, one thread.

Each projection is one single-node ONNX graph with its packed weights; it runs on
the calling thread (one intra-op thread), so no pool of threads spins beside
PyTorch's, and the vocoder can take the other core.
"""

from __future__ import annotations

import numpy as np
import torch

from ...errors import ModelUnavailable

GROUP = 32  # weights per scale and zero point, along the input dimension
LEVELS = 15  # 4 bits: 0..15


def pack(weight: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MatMulNBits' layout for `weight` [out, in]: (codes [out, in/32, 16] uint8, scales [out*in/32] float32,
    zero points [out, ceil(in/64)] uint8), two 4-bit values a byte, the low nibble first.

    The range of each group includes zero, so a zero weight stays exactly zero.
    """
    rows, columns = weight.shape
    if columns % GROUP:
        raise ValueError(f"4-bit weights need an input size divisible by {GROUP}, not {columns}")
    groups = weight.detach().float().reshape(rows, columns // GROUP, GROUP)
    low = groups.amin(-1).clamp(max=0)
    high = groups.amax(-1).clamp(min=0)
    scales = ((high - low) / LEVELS).clamp_min(1e-12)
    zeros = torch.round(-low / scales).clamp(0, LEVELS)
    codes = torch.round(groups / scales[..., None] + zeros[..., None]).clamp(0, LEVELS).to(torch.uint8)
    codes = codes[..., 0::2] | (codes[..., 1::2] << 4)
    zeros = zeros.to(torch.uint8)
    if zeros.shape[1] % 2:  # each row's zero points fill whole bytes
        zeros = torch.cat([zeros, torch.zeros_like(zeros[:, :1])], dim=1)
    zeros = zeros[:, 0::2] | (zeros[:, 1::2] << 4)
    return codes.contiguous().numpy(), scales.reshape(-1).numpy(), zeros.reshape(-1).contiguous().numpy()


def unpack(codes: np.ndarray, scales: np.ndarray, zeros: np.ndarray) -> torch.Tensor:
    """The float32 weight that `pack` stands for (for tests and error figures)."""
    rows, blocks, _ = codes.shape
    values = np.stack([codes & 15, codes >> 4], axis=-1).reshape(rows, blocks, GROUP).astype(np.float32)
    points = np.stack([zeros & 15, zeros >> 4], axis=-1).reshape(rows, -1)[:, :blocks].astype(np.float32)
    weight = (values - points[..., None]) * scales.reshape(rows, blocks)[..., None]
    return torch.from_numpy(weight.reshape(rows, blocks * GROUP))


class FourBitLinear:
    """y = x W^T (+ bias) with W in 4-bit groups, through ONNX Runtime's MatMulNBits (int8 compute)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        try:
            import onnx  # noqa: F401 - builds the graph below
            import onnxruntime
        except ImportError as error:
            raise ModelUnavailable("--quantize int4 runs on ONNX Runtime and needs the onnx and onnxruntime "
                                   "packages: pip install -r requirements.txt, or start without it.") from error
        self.rows, self.columns = weight.shape
        self.bias = bias
        self.dtype = weight.dtype
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # the caller's thread: nothing spins beside PyTorch and the vocoder
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(self.graph(*pack(weight)), options,
                                                    providers=["CPUExecutionProvider"])

    def graph(self, codes: np.ndarray, scales: np.ndarray, zeros: np.ndarray) -> bytes:
        from onnx import TensorProto, helper, numpy_helper

        node = helper.make_node("MatMulNBits", ["x", "codes", "scales", "zeros"], ["y"], domain="com.microsoft",
                                K=self.columns, N=self.rows, bits=4, block_size=GROUP,
                                accuracy_level=4)  # int8 activations per group, integer dot products
        graph = helper.make_graph(
            [node], "projection",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", self.columns])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", self.rows])],
            [numpy_helper.from_array(codes, "codes"), numpy_helper.from_array(scales, "scales"),
             numpy_helper.from_array(zeros, "zeros")])
        opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
        return helper.make_model(graph, opset_imports=opsets).SerializeToString()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.columns).to(torch.float32).contiguous()
        (out,) = self.session.run(None, {"x": flat.numpy()})
        out = torch.from_numpy(out).to(self.dtype).view(*x.shape[:-1], self.rows)
        return out if self.bias is None else out + self.bias
