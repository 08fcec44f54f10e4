"""The decoder stacks as ONNX Runtime graphs (`--quantize int8` / `int4`): structure, caches and packed weights."""

from __future__ import annotations

import pytest
import torch

from studio.engines.qwen import nbits
from studio.engines.qwen.graph import StackGraph
from studio.engines.qwen.talker import Part, Stack


@pytest.fixture(scope="module")
def talker_model(tiny_checkpoint):
    """The tiny checkpoint's talker decoder (2 layers, 2 heads over 1 key/value head), float32."""
    from qwen_tts import Qwen3TTSModel

    model = Qwen3TTSModel.from_pretrained(str(tiny_checkpoint), device_map="cpu", dtype=torch.float32)
    return model.model.talker.model


def test_graph_with_float_weights_is_the_torch_stack(talker_model):
    """With float32 weights the graph's numbers are `Stack`'s: a prompt, steps, rows of two requests at
    different positions in one call, and one of them going on alone after the other left."""
    stack = Stack(talker_model)
    graph = StackGraph(stack, "float")
    hidden = stack.norm.shape[0]
    generator = torch.Generator().manual_seed(0)

    def both(x, parts_torch, parts_graph):
        a, b = stack.run(x, parts_torch), graph.run(x, parts_graph)
        assert a.shape == b.shape
        assert float((a - b).abs().max()) < 1e-4
        return a

    with torch.inference_mode():
        mine, theirs = stack.cache(3, 40), graph.cache(3, 40)
        both(torch.randn(3, 7, hidden, generator=generator), [Part(slice(None), mine, 0)],
             [Part(slice(None), theirs, 0)])
        for position in range(7, 12):
            both(torch.randn(3, 1, hidden, generator=generator), [Part(slice(None), mine, position)],
                 [Part(slice(None), theirs, position)])
        assert float((mine.keys[:, :, :, :12] - theirs.keys[:, :, :, :12]).abs().max()) < 1e-4

        short = (stack.cache(1, 30), graph.cache(1, 30))
        long = (stack.cache(2, 50), graph.cache(2, 50))
        for (cache_torch, cache_graph), length, rows in ((short, 5, 1), (long, 9, 2)):
            prompt = torch.randn(1, length, hidden, generator=generator).expand(rows, -1, -1).contiguous()
            both(prompt, [Part(slice(None), cache_torch, 0)], [Part(slice(None), cache_graph, 0)])
        for step in range(4):
            both(torch.randn(3, 1, hidden, generator=generator),
                 [Part(slice(0, 1), short[0], 5 + step), Part(slice(1, 3), long[0], 9 + step)],
                 [Part(slice(0, 1), short[1], 5 + step), Part(slice(1, 3), long[1], 9 + step)])
        both(torch.randn(2, 1, hidden, generator=generator), [Part(slice(None), long[0], 13)],
             [Part(slice(None), long[1], 13)])


@pytest.mark.parametrize("bits", [4, 8])
def test_grouped_weights_round_trip(bits):
    """Packed groups stand for the weight within half a step of their own scale, zero stays zero, and a group
    size is chosen that divides the input."""
    generator = torch.Generator().manual_seed(0)
    levels = 2 ** bits - 1
    for rows, columns, group in ((96, 32, 32), (64, 96, 32), (8, 256, 128)):  # odd and even groups per row
        weight = torch.randn(rows, columns, generator=generator)
        weight[0, :5] = 0
        back = nbits.unpack(*nbits.pack(weight, group, bits), bits)
        steps = weight.reshape(rows, -1, group)
        step = (steps.amax(-1).clamp(min=0) - steps.amin(-1).clamp(max=0)) / levels
        assert bool(((back - weight).abs().reshape(rows, -1, group) <= step[..., None] * 0.5 + 1e-6).all())
        assert bool((back[0, :5] == 0).all())
    assert [nbits.group_size(n) for n in (1024, 3072, 96, 32)] == [128, 128, 32, 32]
    with pytest.raises(ValueError, match="divisible by 16"):
        nbits.group_size(40)


@pytest.mark.parametrize("weights", ["int4", "int8"])
def test_graph_multiplies_by_the_packed_weights(talker_model, weights):
    """The grouped graph computes what the float graph computes over the unpacked weights, but for its int8
    activations: so the layout (codes, scales, zero points) is the one ONNX Runtime reads."""
    stack = Stack(talker_model)
    packed = StackGraph(stack, weights)
    unpacked = Stack(talker_model)
    for block in unpacked.blocks:
        for projection in (block.qkv, block.out, block.gate_up, block.down):
            weight = projection.weight
            group = nbits.group_size(weight.shape[1])
            size = 4 if weights == "int4" else 8
            projection.weight = nbits.unpack(*nbits.pack(weight, group, size), size)
    exact = StackGraph(unpacked, "float")
    generator = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        caches = packed.cache(2, 20), exact.cache(2, 20)
        x = torch.randn(2, 6, stack.norm.shape[0], generator=generator)
        a, b = packed(x, caches[0], 0), exact(x, caches[1], 0)
    assert float((a - b).abs().mean() / b.std()) < 0.03
