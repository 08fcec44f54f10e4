"""4- and 8-bit weights in ONNX Runtime's `MatMulNBits` layout: groups along the input, a scale and a zero point each.

A frame reads every talker and code-predictor weight about sixteen times over, so
bytes per weight bound the loop. PyTorch's own int4 CPU kernel
(`_weight_int4pack_mm_for_cpu`) measured no faster than its weight-only int8 one on
this project's CPU: it turns weights back into floats before multiplying. ONNX
Runtime's `MatMulNBits` with accuracy_level 4 instead quantizes the activations to
int8 per group and multiplies with int8 dot products (VNNI where the CPU has it).
`graph.StackGraph` puts these products into one graph per decoder stack.
"""

from __future__ import annotations

import numpy as np
import torch

GROUP = 128  # weights per scale and zero point, along the input dimension (smaller where it does not divide)


def group_size(columns: int) -> int:
    """The largest group of at most GROUP weights (16 or more, a power of two) that divides the input size."""
    size = GROUP
    while columns % size:
        size //= 2
        if size < 16:
            raise ValueError(f"grouped weights need an input size divisible by 16, not {columns}")
    return size


def pack(weight: torch.Tensor, group: int, bits: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MatMulNBits' layout for `weight` [out, in] in groups of `group`: (codes [out, in/group, group*bits/8]
    uint8, scales [out*in/group] float32, zero points uint8). With 4 bits, two values share a byte (the low
    nibble first) and each row's zero points fill whole bytes.

    The range of each group includes zero, so a zero weight stays exactly zero.
    """
    rows, columns = weight.shape
    if columns % group:
        raise ValueError(f"a group of {group} does not divide the input size {columns}")
    levels = 2 ** bits - 1
    groups = weight.detach().float().reshape(rows, columns // group, group)
    low = groups.amin(-1).clamp(max=0)
    high = groups.amax(-1).clamp(min=0)
    scales = ((high - low) / levels).clamp_min(1e-12)
    zeros = torch.round(-low / scales).clamp(0, levels)
    codes = torch.round(groups / scales[..., None] + zeros[..., None]).clamp(0, levels).to(torch.uint8)
    zeros = zeros.to(torch.uint8)
    if bits == 4:
        codes = codes[..., 0::2] | (codes[..., 1::2] << 4)
        if zeros.shape[1] % 2:
            zeros = torch.cat([zeros, torch.zeros_like(zeros[:, :1])], dim=1)
        zeros = zeros[:, 0::2] | (zeros[:, 1::2] << 4)
    elif bits != 8:
        raise ValueError(f"weights come in 4 or 8 bits, not {bits}")
    return codes.contiguous().numpy(), scales.reshape(-1).numpy(), zeros.reshape(-1).contiguous().numpy()


def unpack(codes: np.ndarray, scales: np.ndarray, zeros: np.ndarray, bits: int = 4) -> torch.Tensor:
    """The float32 weight that `pack` stands for (for tests and error figures)."""
    rows, blocks, _ = codes.shape
    if bits == 4:
        values = np.stack([codes & 15, codes >> 4], axis=-1).reshape(rows, blocks, -1)
        points = np.stack([zeros & 15, zeros >> 4], axis=-1).reshape(rows, -1)[:, :blocks]
    else:
        values, points = codes, zeros.reshape(rows, blocks)
    values, points = values.astype(np.float32), points[..., None].astype(np.float32)
    weight = (values - points) * scales.reshape(rows, blocks)[..., None]
    return torch.from_numpy(weight.reshape(rows, -1))
